#!/usr/bin/env python3
"""torch.export programs for the .pt2 front end's tests (tests/exported): small Linear/Conv models exported
with a dynamic batch and saved with torch.export.save, with their inputs and what PyTorch computes from them
(ExportedProgram.module(), the oracle the interpreter must reproduce), and what forward hooks see at module
boundaries. Tensors are written as raw little-endian bytes with a shape line, which the C++ test reads
without a loader of its own.
Usage: make_exported_fixtures.py OUT_DIR   (exit 77 when this PyTorch has no torch.export.save)"""
import json
import os
import sys

import torch
import torch.nn as nn

if not hasattr(torch, "export") or not hasattr(torch.export, "save"):
    print(f"skipped: PyTorch {torch.__version__} has no torch.export.save")
    sys.exit(77)

OUT = sys.argv[1]
# One thread, as the C++ test runs: how a reduction is split between threads changes its last bits
# (scaled_dot_product_attention's), and the test wants equal bits.
torch.set_num_threads(1)
os.makedirs(OUT, exist_ok=True)


class ConvLinear(nn.Module):
    """Conv, BatchNorm, a ReLU called twice, a Sequential of Linears, and a view by the symbolic batch size
    (sym_size and integer arithmetic nodes)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 5)
        self.block = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        x = x.view(x.size(0), -1)
        x = self.relu(self.fc(x))
        return self.block(x) + x[:, :3]


def write_tensor(path, t):
    t = t.detach().contiguous()
    with open(path, "wb") as f:
        f.write((" ".join(str(s) for s in t.shape) + "\n").encode())
        f.write(t.numpy().tobytes())


def export(model, example, name, dynamic_shapes):
    ep = torch.export.export(model, example, dynamic_shapes=dynamic_shapes)
    torch.export.save(ep, f"{OUT}/{name}.pt2")
    return ep


torch.manual_seed(0)
model = ConvLinear().eval()
with torch.no_grad():  # a BatchNorm with statistics of its own, not the defaults
    model.bn.running_mean.uniform_(-0.5, 0.5)
    model.bn.running_var.uniform_(0.5, 2.0)
batch = torch.export.Dim("batch")
ep = export(model, (torch.randn(2, 3, 8, 8),), "conv_linear", ({0: batch},))
runner = ep.module()
# What the interpreter must reproduce: the exported program's own run, at two batch sizes.
seen = {}


def hook(name):
    def record(mod, args, out):
        seen.setdefault(name, (args[0], out))  # the first call of each module
    return record


for name in ["fc", "block.2", "conv"]:
    model.get_submodule(name).register_forward_hook(hook(name))
for n in [2, 5]:
    x = torch.randn(n, 3, 8, 8)
    write_tensor(f"{OUT}/conv_linear.in{n}", x)
    with torch.no_grad():
        write_tensor(f"{OUT}/conv_linear.out{n}", runner(x))
        if n == 5:
            model(x)
            for name, (i, o) in seen.items():
                write_tensor(f"{OUT}/conv_linear.{name}.input", i)
                write_tensor(f"{OUT}/conv_linear.{name}.output", o)

# The modules inspect must list, in named_modules() order, with their classes, and the leaf calls.
with open(f"{OUT}/conv_linear.modules.json", "w") as f:
    json.dump([[n, f"{type(m).__module__}.{type(m).__qualname__}"] for n, m in model.named_modules()], f)

# A transformer layer: attention (scaled_dot_product_attention, the packed in-projection, out_proj applied
# inside the attention call), layer norms, symbolic sizes of the batch.
torch.manual_seed(1)
encoder = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True).eval()
runner = export(encoder, (torch.randn(2, 5, 16),), "encoder", ({0: torch.export.Dim("batch")},)).module()
for n in [2, 3]:
    x = torch.randn(n, 5, 16)
    write_tensor(f"{OUT}/encoder.in{n}", x)
    with torch.no_grad():
        write_tensor(f"{OUT}/encoder.out{n}", runner(x))

# Programs qreport must refuse (tests/exported/test_exported.py checks the messages).


class WithCond(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.cond(x.sum() > 0, lambda y: self.fc(y), lambda y: y * 2, (x,))


export(WithCond().eval(), (torch.randn(2, 4),), "cond", None)

# Exported in train mode: 2.x writes dropout's and batch norm's training flags into the graph, not a buffer
# mutation, so only the nodes themselves show it.
export(nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 2)).train(), (torch.randn(2, 4),),
       "train_dropout", None)


@torch.library.custom_op("qreport_test::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@twice.register_fake
def _(x):
    return torch.empty_like(x)


class WithCustomOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return twice(self.fc(x))


export(WithCustomOp().eval(), (torch.randn(2, 4),), "custom_op", None)


class Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x)


export(Tokens().eval(), (torch.randn(2, 6, 4),), "dynamic_seq",
       ({0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")},))
print(f"exported fixtures in {OUT}")
