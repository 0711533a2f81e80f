#!/usr/bin/python3
"""The archive-layout matrix: every documented layout of calibration data, as Python's pickler writes it
(protocol 2, torch.save's default), with 1, 2 and 3 entries per container, through `qreport analyze`.
Each run must see the expected batches and the exact per-feature input maxima of the data it was given.
Also: OrderedDict, storages saved from a GPU (location "cuda:0"), and pickle protocols above 2.
Usage: test_archive_layouts.py QREPORT"""
import collections
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from typing import Optional

import torch
import torch.nn as nn

QREPORT = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="qreport-layouts-")
failures = []


class ThreeInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.fy = nn.Linear(3, 2)
        self.fz = nn.Linear(3, 2)

    def forward(self, x, y: Optional[torch.Tensor] = None, z: Optional[torch.Tensor] = None):
        out = self.fc(x)
        if y is not None:
            out = out + self.fy(y)
        if z is not None:
            out = out + self.fz(z)
        return out


model = os.path.join(TMP, "model.pt")
torch.manual_seed(0)
torch.jit.save(torch.jit.script(ThreeInput().eval()), model)
batches = [torch.randn(4, 3) * (k + 1) + k for k in range(3)]


def analyze(name, obj, expect_batches, xs, extra=(), save=torch.save):
    path = os.path.join(TMP, name + ".pt")
    save(obj, path)
    r = subprocess.run([QREPORT, "analyze", model, "--calib", path, "--format", "json", "-q", *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        failures.append(f"{name}: exit {r.returncode}: {r.stderr.strip()}")
        return
    j = json.loads(r.stdout)
    got_batches = j["calibration"]["batches"]
    got = j["detectors"]["outlier_detector"]["modules"]["fc"]["input_activation_per_channel_max"]
    want = torch.stack([x.amax(0) for x in xs]).amax(0).tolist()
    if got_batches != expect_batches or got != want:
        failures.append(f"{name}: {got_batches} batches, max {got}; want {expect_batches}, {want}")
    else:
        print(f"ok {name}")


for n in (1, 2, 3):
    xs = batches[:n]
    analyze(f"list{n}", list(xs), n, xs)
    analyze(f"tuple{n}", tuple(xs), n, xs)
    analyze(f"tuple_batches{n}", [(x,) for x in xs], n, xs)
    analyze(f"list_batches{n}", [[x] for x in xs], n, xs)
    analyze(f"dict_of_lists{n}", {"x": list(xs)}, n, xs)
    analyze(f"dict_of_tuples{n}", {"x": tuple(xs)}, n, xs)
    analyze(f"ordered_dict{n}", collections.OrderedDict([("x", list(xs))]), n, xs)
    analyze(f"tensor{n}", torch.cat(xs), n, xs, extra=("--batch-size", "4"))
    # n arguments in one batch: dict of Tensor, and one tuple batch of n arguments
    names = ["x", "y", "z"][:n]
    analyze(f"dict_of_tensors{n}", {k: batches[i] for i, k in enumerate(names)}, 1, batches[:1])
    analyze(f"ordered_dict_of_tensors{n}", collections.OrderedDict((k, batches[i]) for i, k in enumerate(names)), 1,
            batches[:1])
    analyze(f"args_tuple{n}", [tuple(batches[:n])], 1, batches[:1])
    # n arguments x n batches
    analyze(f"dict_args_x_batches{n}", {k: [b * (i + 1) for b in xs] for i, k in enumerate(names)}, n, xs)
# Two OrderedDicts in one pickle: the second names the class through the memo.
analyze("ordered_dict_nested", collections.OrderedDict([("x", list(batches)), ("y", list(batches))]), 3, batches)


def cuda_tagged(obj, path):
    """torch.save of CPU tensors, then the storages' location rewritten to "cuda:0", as a GPU run writes it."""
    plain = path + ".cpu"
    torch.save(obj, plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
                assert b"cuda:0" in data
            dst.writestr(info.filename, data)


analyze("cuda_tagged", list(batches), 3, batches, save=cuda_tagged)


def expect_error(name, obj, message, **save_kwargs):
    path = os.path.join(TMP, name + ".pt")
    torch.save(obj, path, **save_kwargs)
    r = subprocess.run([QREPORT, "analyze", model, "--calib", path, "-q"], capture_output=True, text=True)
    if r.returncode != 2 or message not in r.stderr or len(r.stderr.strip().splitlines()) != 1:
        failures.append(f"{name}: exit {r.returncode}, stderr {r.stderr.strip()!r}; want 2 and {message!r}")
    else:
        print(f"ok {name}")


for protocol in (3, 4, 5):
    expect_error(f"protocol{protocol}", list(batches), f"was saved with pickle protocol {protocol}; LibTorch reads "
                 "protocol 2: save it with torch.save(obj, path) without pickle_protocol (the default is 2)",
                 pickle_protocol=protocol)

for f in failures:
    print("FAIL", f)
print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
