#!/usr/bin/python3
"""Regenerates data/demo: a small conv net (fused with fuse_fx, scripted) and 4 calibration batches.
Usage: /usr/bin/python3 data/make_demo.py"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import fixtures  # noqa: E402

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo")
os.makedirs(out, exist_ok=True)
gm, _ = fixtures.fused("conv_bn_relu")
torch.manual_seed(42)
batches = []
for k in range(4):
    x = torch.randn(4, 3, 12, 12)
    x[:, 1, 0, 0] = 40.0  # a spiky input channel, so the outlier detector has something to say
    batches.append(x)
torch.jit.save(torch.jit.script(gm), os.path.join(out, "model.pt"))
torch.save(batches, os.path.join(out, "calib.pt"))
print("demo ->", out)
