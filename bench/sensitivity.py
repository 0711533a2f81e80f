#!/usr/bin/python3
"""The cost of qreport's sensitivity pass (issue 24, item 3) in plain-forward equivalents per layer:

    ratio = T_sensitivity / (L x T_plain)

T_sensitivity is qreport's own "stage sensitivity" time (-v; enable-one and disable-one of every layer and the
all-quantized run, under --scheme int8-static, no plan), T_plain the plain LibTorch inference of the same
batches (bench/baseline.cpp's forward_s: the forward passes alone, same threads), L the number of layers
measured. The goal is ratio <= 0.6. Each input is made here: resnet18 and mobilenet_v2 (torchvision, random
weights, fused with fuse_fx, scripted) on 4 batches of 4x3x224x224, and a BERT-base-sized encoder
(transformers' BertModel from BertConfig(): 12 layers, hidden 768, 73 Linear layers, traced) on 4 batches
of 2x128 tokens. Runs interleave (baseline, qreport, baseline, ...) and the medians are reported.

    .venv/bin/python bench/sensitivity.py --qreport build/qreport --baseline build/qreport_bench_baseline
                                          [--reps 3] [--threads 2] [--models resnet18,mobilenet_v2,bert]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")


def make(name, d):
    import torch
    torch.manual_seed(0)
    path, calib = f"{d}/{name}.pt", f"{d}/{name}_calib.pt"
    if name in ("resnet18", "mobilenet_v2"):
        import torchvision
        from torch.ao.quantization.quantize_fx import fuse_fx
        m = getattr(torchvision.models, name)().eval()
        m = fuse_fx(m)
        torch.jit.save(torch.jit.script(m), path)
        torch.save([torch.randn(4, 3, 224, 224) for _ in range(4)], calib)
    else:
        from transformers import BertConfig, BertModel
        class Encoder(torch.nn.Module):  # the hidden states, as a tensor (as data/minilm.py wraps it)
            def __init__(self):
                super().__init__()
                self.bert = BertModel(BertConfig())

            def forward(self, input_ids):
                return self.bert(input_ids=input_ids, return_dict=False)[0]
        m = Encoder().eval()
        ids = [torch.randint(0, 30522, (2, 128)) for _ in range(4)]
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(m, ids[0], strict=False, check_trace=False), path)
        torch.save(ids, calib)
    return path, calib


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--qreport", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default="resnet18,mobilenet_v2,bert")
    p.add_argument("--scheme", default="int8-static")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in a.models.split(","):
            model, calib = make(name, d)
            plain, sens, layers, forwards = [], [], None, None
            for _ in range(a.reps):
                out = subprocess.run([a.baseline, model, calib, str(a.threads)], capture_output=True, text=True)
                plain.append(float(re.search(r"forward_s ([0-9.]+)", out.stdout + out.stderr).group(1)))
                r = subprocess.run([a.qreport, "analyze", model, "--calib", calib, "--detectors", "error",
                                    "--sensitivity", "--scheme", a.scheme, "--threads", str(a.threads), "--format", "json",
                                    "-o", f"{d}/r.json", "-v"], capture_output=True, text=True)
                if r.returncode != 0:
                    sys.exit(f"qreport failed on {name}: {r.stderr[-2000:]}")
                sens.append(float(re.search(r"stage sensitivity: ([0-9.]+) s", r.stderr).group(1)))
                rep = json.load(open(f"{d}/r.json"))
                layers = len(rep["sensitivity"]["layers"])
                forwards = rep["sensitivity"]["forwards"]
            tp, ts = statistics.median(plain), statistics.median(sens)
            print(f"{name}: sensitivity {sens} s, plain {plain} s", file=sys.stderr, flush=True)
            rows.append((name, layers, tp, ts, ts / (layers * tp), forwards, min(sens), max(sens), min(plain), max(plain)))
    print("| model | layers L | plain forward of the 4 batches (s) | sensitivity pass (s) | ratio T_sens / (L x T_plain) | "
          "full runs of the batches (2 + 2L) | spread: sensitivity, plain (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, L, tp, ts, ratio, fw, smin, smax, pmin, pmax in rows:
        print(f"| {name} | {L} | {tp:.3f} | {ts:.2f} | **{ratio:.2f}** | {fw} | {smin:.2f}-{smax:.2f}, {pmin:.3f}-{pmax:.3f} |")


main()
