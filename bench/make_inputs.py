#!/usr/bin/python3
"""Writes the benchmark inputs: resnet18 and mobilenet_v2 (torchvision, random weights, eval mode) fused
with fuse_fx and scripted, vit_b_16 scripted as it is, and a calibration archive of random batches for
each. Usage:
    /usr/bin/python3 bench/make_inputs.py OUTDIR [--batches-resnet N] [--batches-mobilenet N] [--batch B]
                                                 [--batches-vit N] [--batch-vit B]
                                                 [--batches-small N] [--size-small S] [--size S]
                                                 [--models resnet18,mobilenet_v2,vit_b_16,mobilenet_v2_small]
                                                 [--exported]
The defaults are the sizes of the performance issues (16 and 8 batches of 8x3x224x224; ViT-B/16: 4 batches
of 2x3x224x224; mobilenet_v2_small: 300 batches of 1x3x64x64); the CI smoke run uses tiny ones (ViT only at its own 224x224 size, so not in CI).
--exported also writes model.pt2: the same eager module (fused for the CNNs) through torch.export with a
dynamic batch, for bench/exported.py's .pt2 against .pt comparison (issue 25 item 8).
"""
import argparse
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch.ao.quantization.quantize_fx import fuse_fx  # noqa: E402

import fixtures  # noqa: E402  (dealias: one object per module path, as in the parity fixtures)


def export(model, example, d):
    """model.pt2 of the module model.pt was scripted from, its batch dimension dynamic."""
    ep = torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, os.path.join(d, "model.pt2"))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--models", default="resnet18,mobilenet_v2")
    p.add_argument("--batches-resnet", type=int, default=16)
    p.add_argument("--batches-mobilenet", type=int, default=8)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batches-vit", type=int, default=4)
    p.add_argument("--batch-vit", type=int, default=2)
    p.add_argument("--batches-small", type=int, default=300)
    p.add_argument("--size-small", type=int, default=64)
    p.add_argument("--exported", action="store_true", help="also write model.pt2 (torch.export) of each model")
    a = p.parse_args()
    batches = {"resnet18": a.batches_resnet, "mobilenet_v2": a.batches_mobilenet, "vit_b_16": a.batches_vit,
               "mobilenet_v2_small": a.batches_small}
    for i, name in enumerate(a.models.split(",")):
        torch.manual_seed(100 + i)
        # mobilenet_v2_small: the same network fed many single small images, the case where qreport's fixed
        # costs per observed call (dispatch, allocation, thread wake-ups) decide the ratio, not its reads.
        arch = "mobilenet_v2" if name == "mobilenet_v2_small" else name
        batch, size = (1, a.size_small) if name == "mobilenet_v2_small" else (a.batch, a.size)
        model = getattr(torchvision.models, arch)().eval()
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        if name.startswith("vit"):
            # A transformer as users script it; ViT takes 224x224 images only. No ModelReport run: FX sees
            # the encoder's attention as one leaf (the transformers issue).
            torch.jit.save(torch.jit.script(model), os.path.join(d, "model.pt"))
            torch.save([torch.randn(a.batch_vit, 3, 224, 224) for _ in range(batches[name])], os.path.join(d, "calib.pt"))
            if a.exported:
                export(model, (torch.randn(max(2, a.batch_vit), 3, 224, 224),), d)
            print("bench input", name, "->", d, flush=True)
            continue
        gm = fixtures.dealias(fuse_fx(model))
        torch.jit.save(torch.jit.script(gm), os.path.join(d, "model.pt"))
        torch.save([torch.randn(batch, 3, size, size) for _ in range(batches[name])],
                   os.path.join(d, "calib.pt"))
        # The same model as an eager GraphModule, for PyTorch's ModelReport (bench/modelreport.py).
        torch.save(gm, os.path.join(d, "fx_model.pth"))
        if a.exported:
            export(gm, (torch.randn(max(2, batch), 3, size, size),), d)  # 0 and 1 specialize
        print("bench input", name, "->", d, flush=True)


if __name__ == "__main__":
    main()
