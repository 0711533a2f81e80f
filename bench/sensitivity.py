#!/usr/bin/python3
"""The cost of qreport's sensitivity pass (issue 24, item 3) in plain-forward equivalents per layer:

    ratio = T_sensitivity / (L x T_plain)

T_sensitivity is qreport's own "stage sensitivity" time (-v; enable-one and disable-one of every layer and the
all-quantized run, under --scheme int8-static, no plan; with --runs enable-one, --sensitivity-runs
enable-one: no disable-one runs), T_plain the plain LibTorch inference of the same batches
(bench/baseline.cpp's forward_s: the forward passes alone, same threads), L the number of layers measured.
The goal is ratio <= 0.6. T_plain is measured twice: with the C library's heap defaults, and under qreport's
heap policy (--keep-freed-memory), which speeds inference up; the heap-matched ratio is the cost of the
analysis. Each input is made here: resnet18 and mobilenet_v2 (torchvision, random
weights, fused with fuse_fx, scripted) on 4 batches of 4x3x224x224, and a BERT-base-sized encoder
(transformers' BertModel from BertConfig(): 12 layers, hidden 768, 73 Linear layers, traced) on 4 batches
of 2x128 tokens. Runs interleave (baseline, qreport, baseline, ...) and the medians are reported.

    .venv/bin/python bench/sensitivity.py --qreport build/qreport --baseline build/qreport_bench_baseline
                                          [--reps 3] [--threads 2] [--models resnet18,mobilenet_v2,bert]
                                          [--runs both,enable-one]
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
    p.add_argument("--runs", default="both,enable-one", help="--sensitivity-runs values to time, comma-separated")
    a = p.parse_args()
    modes = a.runs.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in a.models.split(","):
            model, calib = make(name, d)
            plain, heap = [], []
            sens = {m: [] for m in modes}
            layers, forwards = None, {}
            for _ in range(a.reps):
                for extra, into in (([], plain), (["cpu", "--keep-freed-memory"], heap)):
                    out = subprocess.run([a.baseline, model, calib, str(a.threads), *extra], capture_output=True, text=True)
                    into.append(float(re.search(r"forward_s ([0-9.]+)", out.stdout + out.stderr).group(1)))
                for mode in modes:
                    r = subprocess.run([a.qreport, "analyze", model, "--calib", calib, "--detectors", "error",
                                        "--sensitivity", "--sensitivity-runs", mode, "--scheme", a.scheme,
                                        "--threads", str(a.threads), "--format", "json", "-o", f"{d}/r.json", "-v"],
                                       capture_output=True, text=True)
                    if r.returncode != 0:
                        sys.exit(f"qreport failed on {name}: {r.stderr[-2000:]}")
                    sens[mode].append(float(re.search(r"stage sensitivity: ([0-9.]+) s", r.stderr).group(1)))
                    rep = json.load(open(f"{d}/r.json"))
                    layers = len(rep["sensitivity"]["layers"])
                    forwards[mode] = rep["sensitivity"]["forwards"]
            tp, th = statistics.median(plain), statistics.median(heap)
            print(f"{name}: sensitivity {sens} s, plain {plain} s, plain under qreport's heap {heap} s",
                  file=sys.stderr, flush=True)
            for mode in modes:
                ts = statistics.median(sens[mode])
                rows.append((name, mode, layers, tp, th, ts, ts / (layers * tp), ts / (layers * th), forwards[mode],
                             min(sens[mode]), max(sens[mode]), min(plain), max(plain), min(heap), max(heap)))
    print("| model | --sensitivity-runs | layers L | plain forwards of the batches (s) | the same, qreport's heap (s) | "
          "sensitivity pass (s) | ratio T_sens / (L x T_plain) | heap-matched ratio | runs of the batches | "
          "spread: sensitivity, plain, plain with qreport's heap (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, mode, L, tp, th, ts, ratio, hratio, fw, smin, smax, pmin, pmax, hmin, hmax in rows:
        print(f"| {name} | {mode} | {L} | {tp:.3f} | {th:.3f} | {ts:.2f} | {ratio:.2f} | **{hratio:.2f}** | {fw} | "
              f"{smin:.2f}-{smax:.2f}, {pmin:.3f}-{pmax:.3f}, {hmin:.3f}-{hmax:.3f} |")


main()
