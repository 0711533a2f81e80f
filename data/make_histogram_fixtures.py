#!/usr/bin/python3
"""Writes the HistogramObserver fixtures: sequences of batches and what the running PyTorch's own
HistogramObserver holds after each batch (min_val, max_val, the 2048 bins), the range its
_non_linear_param_search chooses and its calculate_qparams, for tests/observers/test_histogram_replay.cpp.
Run with the Python of the LibTorch qreport is built against (QREPORT_PYTHON): the replay follows that
version's algorithm. PyTorch 1.13's torch.histc bounds are corrected to floats as in
tests/detectors/test_quantization_error.py (docs/differences.md 16).

Files in OUTDIR: index.json; NAME.x.f32 (the batches, concatenated, float32 little-endian);
NAME.states.f32 (per batch: min_val, max_val, then the bins); with PyTorch >= 2.5 also NAME.merged.f32 (the
first and second half of the batches observed apart and combined, merge_oracle).
Usage: python data/make_histogram_fixtures.py OUTDIR
"""
import builtins
import json
import os
import sys
import warnings

import torch
import torch.ao.quantization.observer as observer_module
from torch.ao.quantization.observer import HistogramObserver

warnings.filterwarnings("ignore")


def float_bounds():
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 0):
        observer_module.int = lambda v: float(v) if torch.is_tensor(v) and v.is_floating_point() else builtins.int(v)


def cases():
    g = torch.Generator().manual_seed(20261206)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    c = {}
    # The range grows on both sides, alternately and together, and sometimes not at all.
    c["grow_both_sides"] = [randn(4000) * s + o for s, o in
                            ((1.0, 0.0), (1.5, 0.4), (1.2, -1.1), (0.5, 0.0), (3.0, 0.0), (2.5, 2.0), (6.0, -3.0))]
    # Batches inside the range add bin for bin; then one grows it.
    c["inside_then_grow"] = [randn(3000) * 4, randn(3000), randn(2000) * 2, randn(3000) * 5]
    # Constant batches, then a batch with a range, then the constant again.
    c["constant"] = [torch.full((500,), 0.75), torch.full((300,), 0.75), randn(2000), torch.full((400,), 0.75)]
    c["zeros_then_relu"] = [torch.zeros(1000), torch.zeros(1000), randn(5000).clamp_min(0), randn(5000).clamp_min(0) * 2]
    # One value at a time.
    c["single_value"] = [torch.tensor([3.25]), torch.tensor([-1.5]), torch.tensor([7.0]), randn(1000) * 3]
    c["negative_only"] = [-randn(3000).abs() * s - o for s, o in ((1.0, 0.0), (2.0, 0.5), (1.5, 0.0), (4.0, 0.1))]
    # Magnitudes from 1e-6 to 1e6 in every batch, of both signs.
    c["wide_dynamic_range"] = [torch.sign(randn(4000)) * torch.pow(10.0, rand(4000) * 12 - 6) * (1 + k)
                               for k in range(4)]
    # Many small batches: the range creeps outward with rare spikes.
    c["many_batches"] = [randn(500) * (1 + 0.03 * k) + (5.0 if k % 17 == 16 else 0.0) * torch.sign(randn(500)) *
                         (rand(500) < 0.01) for k in range(60)]
    # A narrow range far from zero (float32 steps are coarse there) and integer values on bin edges.
    c["large_offset"] = [1000 + randn(3000) * 0.01 * (1 + k) for k in range(5)]
    c["integers"] = [torch.randint(-20 * (k + 1), 30 * (k + 1), (3000,), generator=g).float() for k in range(5)]
    c["relu_growing"] = [randn(2, 8, 16, 16).clamp_min(0) * (1 + k) for k in range(5)]
    return c


def merge_oracle(first, second):
    """PyTorch >= 2.5: two observers' histograms, each moved onto the union of their ranges by the observer's
    own _combine_histograms (with an empty batch histogram: 0 + transformed is transformed), added in
    float32, then min_val and max_val (qreport merge's combine, lib/stats/merge.cpp)."""
    a, b = HistogramObserver(), HistogramObserver()
    for x in first:
        a(x)
    for x in second:
        b(x)
    lo, hi = torch.min(a.min_val, b.min_val), torch.max(a.max_val, b.max_val)
    zeros = torch.zeros(a.bins)
    ta = a._combine_histograms(a.histogram, a.min_val, a.max_val, zeros, lo, hi)
    tb = b._combine_histograms(b.histogram, b.min_val, b.max_val, zeros, lo, hi)
    return torch.cat([lo.reshape(1), hi.reshape(1), ta + tb])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    float_bounds()
    torch.set_num_threads(1)
    index = {"torch": torch.__version__, "upsample_rate": HistogramObserver().upsample_rate, "cases": []}
    for name, batches in cases().items():
        observers = {q: HistogramObserver(quant_min=0, quant_max=q) for q in (255, 127)}
        states = []
        for x in batches:
            for obs in observers.values():
                obs(x)
            h = observers[255]
            states.append(torch.cat([h.min_val.reshape(1), h.max_val.reshape(1), h.histogram]))
        torch.cat([x.reshape(-1) for x in batches]).numpy().astype("<f4").tofile(os.path.join(out, name + ".x.f32"))
        torch.stack(states).numpy().astype("<f4").tofile(os.path.join(out, name + ".states.f32"))
        lo, hi = observers[255]._non_linear_param_search()
        entry = {"name": name, "batches": [x.numel() for x in batches], "search": [lo.item(), hi.item()],
                 "qparams": {}}
        for q, obs in observers.items():
            scale, zero_point = obs.calculate_qparams()
            entry["qparams"][str(q)] = [scale.item(), zero_point.item()]
        index["cases"].append(entry)
        if hasattr(HistogramObserver, "_upscale_histogram") and len(batches) > 1:
            entry["merge_split"] = len(batches) // 2
            merged = merge_oracle(batches[:len(batches) // 2], batches[len(batches) // 2:])
            merged.numpy().astype("<f4").tofile(os.path.join(out, name + ".merged.f32"))
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)


if __name__ == "__main__":
    main()
