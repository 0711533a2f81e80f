#!/usr/bin/env python3
"""A build against LibTorch 1.x (Debian's 1.13) given a torch.export program written by the venv's PyTorch 2.x:
it recognises the archive and exits 2 with one line saying its LibTorch predates torch.export and pointing to
the default build, for inspect and analyze alike; never a TorchScript loader's complaint.
Usage: test_exported_old_build.py QREPORT   (run with the 2.x Python)"""
import subprocess
import sys
import tempfile

import torch

QREPORT = sys.argv[1]
tmp = tempfile.mkdtemp()
ep = torch.export.export(torch.nn.Linear(4, 2).eval(), (torch.randn(2, 4),))
torch.export.save(ep, f"{tmp}/linear.bin")  # any extension: recognised by content
torch.save([torch.randn(2, 4)], f"{tmp}/calib.pt")
failed = 0
for command, expected in [
    (["inspect", f"{tmp}/linear.bin"], "which this qreport's LibTorch 1."),
    (["analyze", f"{tmp}/linear.bin", "--calib", f"{tmp}/calib.pt"], "which this qreport's LibTorch 1."),
]:
    r = subprocess.run([QREPORT] + command, capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    ok = r.returncode == 2 and len(lines) == 1 and expected in lines[0] and r.stdout == ""
    print(("PASS " if ok else "FAIL ") + command[0] + ": " + r.stderr.strip())
    failed += not ok
print(f"{2 - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
