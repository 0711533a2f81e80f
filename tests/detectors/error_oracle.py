"""The oracle pieces the error-detector tests share, all from PyTorch's own observers and fake-quantize
functions: SQNR in dB, a weight fake-quantized under default_qconfig's (per tensor) or the per-channel
weight observer, its energies, and 1.13's HistogramObserver with float histc bounds."""
import builtins
import math

import torch
import torch.ao.quantization.observer as observer_module
from torch.ao.quantization.observer import default_per_channel_weight_observer, default_weight_observer


def sqnr(signal, noise):
    return 10 * math.log10(signal / noise) if signal > 0 and noise > 0 else None


def fq_weight(w, per_channel):
    w = w.detach().float()
    obs = default_per_channel_weight_observer() if per_channel else default_weight_observer()
    obs(w)
    s, z = obs.calculate_qparams()
    if per_channel:
        return torch.fake_quantize_per_channel_affine(w, s, z.to(torch.int32), 0, -128, 127)
    return torch.fake_quantize_per_tensor_affine(w, float(s), int(z), -128, 127)


def weight_energies(w):
    """(signal, noise per tensor, noise per channel) of w, summed in float64."""
    w = w.detach().float()
    sig = w.double().square().sum().item()
    return (sig,) + tuple((w - fq_weight(w, pc)).double().square().sum().item() for pc in (False, True))


def weight_sqnrs(w):
    """(per-tensor SQNR, per-channel SQNR) of w in dB, None where not finite."""
    sig, nt, nc = weight_energies(w)
    return sqnr(sig, nt), sqnr(sig, nc)


def histc_bounds_as_floats():
    """HistogramObserver.forward in PyTorch 1.13 calls torch.histc(x, bins, min=int(min_val), max=int(max_val)),
    truncating its bounds to integers (docs/differences.md, 16). Shadowing int in the observer's module for
    float tensors only restores the float bounds (PyTorch 1.12 and 2.0-2.4); every other int() there takes an
    int tensor or a Python number."""
    observer_module.int = lambda v: float(v) if torch.is_tensor(v) and v.is_floating_point() else builtins.int(v)
