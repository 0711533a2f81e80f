"""The per-feature oracle (--ch-axis auto), built from PyTorch's own pieces on the eager model.

PyTorch's ModelReport cannot observe transformers per feature: FX treats nn.TransformerEncoder as one
leaf, MultiheadAttention's out_proj is applied with F.linear and never called as a module, and its
observer only supports ch_axis=1 (spec bug B1). So this oracle:
  * runs the eager model with grad enabled, which is PyTorch's slow path (the fused fast paths are taken
    only without grad), and records the input of every leaf-module call with forward pre-hooks, and the
    input and output of every Linear application through F.linear (out_proj's functional call included);
  * moves each module's feature axis to 1 (the last axis for Linear, LayerNorm and recurrent layers,
    axis 1 for convolutions, the fixture's stated axis for modules without a weight) and feeds PyTorch's
    ModelReportObserver with it, so the observer math is PyTorch's on the per-feature axis;
  * attaches those observers where PyTorch's detectors look for them and runs the detectors' own
    generate_detector_report on the eager model;
  * reports the axis used (PyTorch writes the ch_axis it was built with) counted from the front.
The result has the layout of tests/parity/oracle.py's, so tests/parity/compare.py compares it.
"""
import inspect
import re
from collections import defaultdict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import default_qconfig
from torch.ao.quantization.fx._model_report.detector import (DynamicStaticDetector,
                                                              InputWeightEqualizationDetector,
                                                              OutlierDetector, PerChannelDetector)
from torch.ao.quantization.fx._model_report.model_report_observer import ModelReportObserver

from oracle import plain

PRE, POST = "model_report_pre_observer", "model_report_post_observer"
LAST_AXIS_TYPES = (nn.Linear, nn.LayerNorm, nn.LSTM, nn.GRU, nn.RNN)
AXIS_1_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def leaves(model):
    return {fqn: m for fqn, m in model.named_modules() if len(list(m.children())) == 0}


def traced_first_inputs(model, traced):
    """{fqn: parameter name} for leaves whose traced call does not receive forward's first argument.

    torch.jit.trace drops an argument a module reads only for its dtype or device: Hugging Face's
    LlamaRotaryEmbedding.forward(x, position_ids) becomes forward(position_ids). PyTorch's ModelReport (FX)
    observes x, which the traced call no longer carries, so qreport observes the first argument the call
    receives (docs/usage.md, "Hugging Face models"); the oracle takes that argument by name from the hook.
    """
    out = {}
    subs = dict(traced.named_modules()) if traced is not None else {}
    for fqn, m in leaves(model).items():
        if fqn not in subs or not subs[fqn]._c._has_method("forward"):
            continue
        names = [a.name for a in subs[fqn]._c._get_method("forward").schema.arguments[1:]]
        params = list(inspect.signature(m.forward).parameters)
        if not names or not params:
            continue
        name = names[0]
        numbered = re.fullmatch(r"argument_(\d+)", name)  # the tracer's name for a positional argument
        if numbered:
            name = params[int(numbered.group(1)) - 1]
        if name != params[0] and name in params:
            out[fqn] = name
    return out


def record(model, batches, first_input=None):
    """Inputs (and Linear/Conv outputs) of every call, in execution order, on PyTorch's slow path.
    first_input: {fqn: parameter name} where a call's observed input is not forward's first argument."""
    inputs, outputs = defaultdict(list), defaultdict(list)
    linear_of = {id(m.weight): fqn for fqn, m in model.named_modules() if isinstance(m, nn.Linear)}
    hooks = []
    first_input = first_input or {}
    for fqn, m in leaves(model).items():
        if isinstance(m, nn.Linear):
            continue  # seen through F.linear below, whether called as a module or functionally
        if fqn in first_input:
            sig = inspect.signature(m.forward)

            def named(mod, args, kwargs, fqn=fqn, sig=sig):
                inputs[fqn].append(sig.bind(*args, **kwargs).arguments[first_input[fqn]].detach().clone())
            hooks.append(m.register_forward_pre_hook(named, with_kwargs=True))
        else:
            hooks.append(m.register_forward_pre_hook(lambda mod, inp, fqn=fqn: inputs[fqn].append(inp[0].detach().clone())))
        hooks.append(m.register_forward_hook(
            lambda mod, inp, out, fqn=fqn: outputs[fqn].append(out.detach().clone()) if torch.is_tensor(out) else None))
    real_linear = F.linear

    def linear(x, w, b=None):
        y = real_linear(x, w, b)
        fqn = linear_of.get(id(w))
        if fqn is not None:
            inputs[fqn].append(x.detach().clone())
            outputs[fqn].append(y.detach().clone())
        return y

    F.linear = linear  # nn.Linear.forward and F.multi_head_attention_forward both look it up here
    try:
        with torch.enable_grad():
            for b in batches:
                model(*b)
    finally:
        F.linear = real_linear
        for h in hooks:
            h.remove()
    return inputs, outputs


def feature_axis(fqn, module, x, weightless_axis):
    # The fixture's ground truth for this module, where it states one (data/transformer_fixtures.py).
    stated = weightless_axis.get(fqn) if isinstance(weightless_axis, dict) else None
    if stated is None:
        if isinstance(module, LAST_AXIS_TYPES):
            return x.dim() - 1
        if isinstance(module, AXIS_1_TYPES):
            return 1
        stated = weightless_axis["*"] if isinstance(weightless_axis, dict) else weightless_axis
    return x.dim() - 1 if stated == "last" else stated


def observer(xs, axis_of, **kwargs):
    obs = ModelReportObserver(ch_axis=1, **kwargs)
    for x in xs:
        obs(x.movedim(axis_of(x), 1))
    return obs


def fix_axis(text, info, key, axes):
    """PyTorch writes the ch_axis it was built with (1); the per-feature axis is the one used."""
    for fqn, d in info.items():
        d[key] = axes[fqn]
        text = text.replace(f"For Module {fqn} looked at with axis 1: \n", f"For Module {fqn} looked at with axis {axes[fqn]}: \n")
    return text


def run(model, batches, weightless_axis, traced=None):
    model.eval()
    for m in model.modules():
        m.qconfig = default_qconfig
    inputs, outputs = record(model, batches, traced_first_inputs(model, traced))
    mods = dict(model.named_modules())
    unseen = [f for f, m in mods.items() if isinstance(m, nn.Linear) and f not in inputs]
    if unseen:
        raise AssertionError(f"Linear modules never applied on the slow path: {unseen}")
    axis_of = {fqn: (lambda x, f=fqn: feature_axis(f, mods[f], x, weightless_axis)) for fqn in inputs}
    used_axis = {fqn: axis_of[fqn](xs[0]) for fqn, xs in inputs.items()}

    def detect(det, attach):
        for fqn in attach:
            for name, obs in attach[fqn].items():
                setattr(mods[fqn], name, obs)
        try:
            text, info = det.generate_detector_report(model)
            qinfo = det.get_qconfig_info(model)
        finally:
            for fqn in attach:
                for name in attach[fqn]:
                    delattr(mods[fqn], name)
        info = {fqn: {k: plain(v) for k, v in d.items()} for fqn, d in info.items()}
        qinfo = {fqn: [bool(i.is_activation_dynamic), bool(i.is_weight_per_channel),
                       bool(i.is_equalization_recommended)] for fqn, i in qinfo.items()}
        return text, info, qinfo

    out = {}
    text, info, q = detect(PerChannelDetector("x86"), {})
    out["per_channel_detector"] = {"report": text, "modules": info, "qconfig_info": q}

    ranged = [f for f, m in mods.items() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) and f in inputs]
    text, info, q = detect(DynamicStaticDetector(tolerance=0.5),
                           {f: {PRE: observer(inputs[f], lambda x: 1 if x.dim() > 1 else 0),
                                POST: observer(outputs[f], lambda x: 1 if x.dim() > 1 else 0)} for f in ranged})
    out["dynamic_vs_static_detector"] = {"report": text, "modules": info, "qconfig_info": q}

    iwe = [f for f, m in mods.items() if type(m) in (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d) and f in inputs]
    det = InputWeightEqualizationDetector(0.5, ch_axis=1)
    text, info, q = detect(det, {f: {PRE: observer(inputs[f], axis_of[f])} for f in iwe})
    text = fix_axis(text, info, "input_weight_channel_axis", used_axis)
    out["input_weight_equalization_detector"] = {"report": text, "modules": info, "qconfig_info": q}

    targets = [f for f in leaves(model) if f in inputs]
    det = OutlierDetector()
    text, info, q = detect(det, {f: {PRE: observer(inputs[f], axis_of[f], comp_percentile=det.reference_percentile)}
                                 for f in targets})
    text = fix_axis(text, info, "outlier_detection_channel_axis", used_axis)
    out["outlier_detector"] = {"report": text, "modules": info, "qconfig_info": q}
    return out
