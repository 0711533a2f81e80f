#!/usr/bin/env python3
"""The .pt2 error pass measures from the layer values calibration kept (--error-memory, layer_capture.h), as
the TorchScript path does: on a model's torch.export program, the report with all values kept, with part of
them (a budget of half of what the run keeps) and with none (the model runs again) is the same, byte for
byte, and the run says how much it kept. Models: mobilenet_v2 (fused convolutions, whose children observe
their parent: inputs kept, outputs not) and a TransformerEncoder (MultiheadAttention's functional out_proj
and the in_proj pseudo-module: inputs only).

Usage: test_capture.py QREPORT MAKE_PARITY OUT_DIR   (exit 77: no torch.export)"""
import os
import subprocess
import sys

qreport, maker, out = sys.argv[1:4]
failures = []


def check(ok, what):
    print(("ok  " if ok else "FAIL") + " " + what)
    if not ok:
        failures.append(what)


for name, least in (("mobilenet_v2", 2 << 20), ("encoder", 1 << 10)):
    made = subprocess.run([sys.executable, maker, out, name], capture_output=True, text=True)
    if made.returncode == 77:
        print(made.stdout.strip())
        sys.exit(77)
    if made.returncode != 0:
        sys.exit("fixture failed:\n" + made.stdout + made.stderr)
    d = os.path.join(out, name)
    args = [qreport, "analyze", os.path.join(d, "model.pt2"), "--calib", os.path.join(d, "calib.pt"),
            "--detectors", "all", "--format", "json", "--error-batches", "2"]
    r = subprocess.run(args + ["-v"], capture_output=True, text=True)
    kept = [int(line.split()[4]) for line in r.stderr.splitlines() if "bytes of layer values kept" in line]
    check(r.returncode == 0 and len(kept) == 1 and kept[0] >= least,
          f"{name}: exit {r.returncode}, {kept} bytes kept (want at least {least})")
    if r.returncode != 0 or len(kept) != 1:
        continue
    budgets = ["0"] + ([str(kept[0] // 2 >> 20)] if kept[0] >= 2 << 20 else [])
    for mib in budgets:
        other = subprocess.run(args + ["--error-memory", mib, "-v"], capture_output=True, text=True)
        now = [int(line.split()[4]) for line in other.stderr.splitlines() if "bytes of layer values kept" in line]
        check(other.returncode == 0 and other.stdout == r.stdout and now and now[0] < kept[0],
              f"{name}: --error-memory {mib}: exit {other.returncode}, {now} bytes kept, "
              f"report {'equal' if other.stdout == r.stdout else 'differs'}")
sys.exit(1 if failures else 0)
