"""The input SQNR of every Linear/Conv under MinMaxObserver's and HistogramObserver's qparams, from
PyTorch's own observers and fake-quantize on the eager model's recorded inputs: what tests/parity/compare.py
builds the expected default_histogram_observer entries of the qconfig mapping from (make_fixtures.py
writes it to input_sqnr.json next to oracle.json). The quint8 range is [0, 127], as
get_default_qconfig("x86") sets it, which the parity suite's default --backend x86 assumes."""
import builtins
import math
import os
import sys

import torch
import torch.ao.quantization.observer as observer_module
import torch.nn as nn
from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "features"))
import feature_oracle  # noqa: E402

QUANT_MAX = 127


def histc_bounds_as_floats():
    """PyTorch 1.13's HistogramObserver.forward calls torch.histc(x, bins, min=int(min_val), max=int(max_val)),
    truncating its bounds (docs/differences.md; qreport keeps the float bounds). Shadowing int in the
    observer's module for float tensors restores them; every other int() there takes an int or a number."""
    observer_module.int = lambda v: float(v) if torch.is_tensor(v) and v.is_floating_point() else builtins.int(v)


def sqnr_db(xs, scale, zero_point):
    sig = noise = 0.0
    for x in xs:
        fq = torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, QUANT_MAX)
        sig += x.double().square().sum().item()
        noise += (x - fq).double().square().sum().item()
    return 10 * math.log10(sig / noise) if sig > 0 and noise > 0 else None


def input_sqnr(model, batches):
    """{fqn: {"minmax_db", "histogram_db"}} for every nn.Linear/nn.ConvNd that saw an input."""
    inputs, _ = feature_oracle.record(model, batches)
    histc_bounds_as_floats()
    try:
        return observe(model, inputs)
    finally:
        del observer_module.int  # the fixtures' other oracles run PyTorch unchanged


def observe(model, inputs):
    out = {}
    for fqn, m in model.named_modules():
        if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) or fqn not in inputs:
            continue
        xs = [x.float() for x in inputs[fqn]]
        entry = {}
        for name, obs in (("minmax", MinMaxObserver(quant_min=0, quant_max=QUANT_MAX)),
                          ("histogram", HistogramObserver(quant_min=0, quant_max=QUANT_MAX))):
            for x in xs:
                obs(x)
            s, z = obs.calculate_qparams()
            entry[f"{name}_db"] = sqnr_db(xs, float(s), int(z))
        out[fqn] = entry
    return out
