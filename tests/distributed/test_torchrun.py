#!/usr/bin/env python3
"""Distributed analyze under a real launcher: the venv's `torchrun --nproc-per-node 2 --no-python qreport analyze`
on localhost (c10d rendezvous through torchrun's own store and environment, not variables set by hand), against the
single-process run over the same batches, by the merge rule of docs/statistics.md (merged_reports.py). Debian 12's
own torchrun (PyTorch 1.13 on Python 3.11) fails before starting any worker; the venv's works.
Usage: test_torchrun.py QREPORT SOURCE_DIR TORCHRUN"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
QREPORT, SRC, TORCHRUN = sys.argv[1:4]
sys.path.insert(0, os.path.join(SRC, "data"))
sys.path.insert(0, os.path.join(SRC, "tests", "stats"))
import torch  # noqa: E402

import fixtures  # noqa: E402
from merged_reports import compare  # noqa: E402
from ports import free_port  # noqa: E402  (this folder)

T = tempfile.mkdtemp(prefix="qreport-torchrun-")



def main():
    torch.manual_seed(7)
    gm, _ = fixtures.fused("resnet18")
    model = f"{T}/model.pt"
    torch.jit.save(torch.jit.script(gm), model)
    torch.save([torch.randn(2, 3, 64, 64) for _ in range(6)], f"{T}/all.pt")
    common = ["--threads", "1", "--format", "json", "-q"]
    subprocess.run([QREPORT, "analyze", model, "--calib", f"{T}/all.pt", "-o", f"{T}/single.json", *common],
                   check=True, timeout=300)
    cmd = [TORCHRUN, "--nproc-per-node", "2", "--no-python", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), QREPORT, "analyze", model, "--calib", f"{T}/all.pt",
           "-o", f"{T}/torchrun.json", "--dist-timeout", "60", "--threads", "1", "--format", "json", "-v"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
        print(f"FAIL torchrun exited {r.returncode}")
        print("0 passed, 1 failed")
        sys.exit(1)
    single = json.load(open(f"{T}/single.json"))
    got = json.load(open(f"{T}/torchrun.json"))
    failures = []
    n = compare(single, got, failures)
    if got["calibration"]["batches"] != 6:
        failures.append(f"batches {got['calibration']['batches']}, expected 6")
    # Two ranks of one job, not two single runs writing the same file: each rank's log lines name it.
    for rank in (0, 1):
        if f": rank {rank}: " not in r.stderr:
            failures.append(f"no log line of rank {rank}: torchrun did not start a 2-rank job")
    # sqnr_db of a job is measured on rank 0's own batches (0, 2, ... of the shared archive), and says so.
    want = ("quantization_error_detector: in a job of 2 ranks, sqnr_db is measured on rank 0's own batches "
            "(0 of its archive), not on the job's first 1")
    if want not in got.get("warnings", []):
        failures.append(f"no warning {want!r}")
    # torchrun's agent serves the store: rank 0 is its client, not a second server on the same port (the
    # review saw c10d's "[E ... TCPStore.cpp] ... failed to bind" on every run, even with -q).
    if "bind" in r.stderr:
        failures.append("c10d logged a failed bind: rank 0 tried to serve the agent's store port")
    for f in failures:
        print("FAIL", f)
    print(f"torchrun, 2 ranks: {n} values against the single run")
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    sys.exit(1 if failures else 0)


main()
