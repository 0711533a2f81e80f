#!/usr/bin/env python3
"""A transformer scripted by PyTorch 2.x, given to a qreport built against an older LibTorch (Debian's 1.13):
nn.MultiheadAttention calls aten::scaled_dot_product_attention from 2.0 on, an op 1.13 does not know, so the
load must end in exit 2 with one line that says a newer PyTorch saved the model and points to the default
build. Run with the 2.x Python (the venv's) that writes the model.
Usage: test_newer_model.py QREPORT"""
import subprocess
import sys
import tempfile

import torch

QREPORT = sys.argv[1]
assert int(torch.__version__.split(".")[0]) >= 2, f"needs PyTorch 2.x to write the model, has {torch.__version__}"
tmp = tempfile.mkdtemp()
torch.manual_seed(0)
layer = torch.nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True).eval()
scripted = torch.jit.script(layer)
assert "scaled_dot_product_attention" in str(scripted.inlined_graph) or any(
    "scaled_dot_product_attention" in str(m.code) for m in [scripted.self_attn]), "2.x MHA no longer calls SDPA?"
scripted.save(f"{tmp}/encoder.pt")
torch.save([torch.randn(2, 5, 16)], f"{tmp}/calib.pt")

r = subprocess.run([QREPORT, "analyze", f"{tmp}/encoder.pt", "--calib", f"{tmp}/calib.pt"],
                   capture_output=True, text=True, timeout=120)
lines = r.stderr.strip().splitlines()
print(r.stderr)
assert r.returncode == 2, f"exit {r.returncode}, expected 2"
assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}"
assert lines[0].startswith(f"qreport: error: model '{tmp}/encoder.pt' was saved by a newer PyTorch than this "
                           "qreport's LibTorch 1."), lines[0]
assert "scaled_dot_product_attention" in lines[0], lines[0]
assert "qreport's default build (scripts/build) uses PyTorch 2.x's LibTorch" in lines[0], lines[0]
assert r.stdout == "", "no partial report on stdout"
print("1 passed, 0 failed")
