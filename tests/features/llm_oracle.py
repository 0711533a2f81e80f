"""The oracle of the outlier detector's "llm_int8" summary, from PyTorch alone: forward pre-hooks on every
nn.Linear of the eager model record its inputs; per input feature max |x| and the share of tokens (rows)
with |x| >= 6, each input's kurtosis (Pearson: 4th central moment / variance^2, float64 over all of its
values), and LLM.int8()'s rule as docs/usage.md ("Outliers the LLM way") states qreport's reading of it:
per input width, the Linear inputs of that width are the layers; a feature holds the rule when |x| >= 6
somewhere in at least 25% of them and in at least 6% of their tokens pooled."""
from collections import defaultdict

import torch
import torch.nn as nn


def record_linear_inputs(model, batches):
    inputs = defaultdict(list)
    hooks = [m.register_forward_pre_hook(lambda mod, inp, fqn=fqn: inputs[fqn].append(inp[0].detach().clone()))
             for fqn, m in model.named_modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            for b in batches:
                model(*b)
    finally:
        for h in hooks:
            h.remove()
    return inputs


def run(model, batches):
    model.eval()
    modules, by_width = {}, defaultdict(list)
    for fqn, xs in record_linear_inputs(model, batches).items():
        x = torch.cat([t.reshape(-1, t.shape[-1]) for t in xs]).double()
        big = (x.abs() >= 6).sum(0)
        c = x - x.mean()
        var = c.pow(2).mean().item()
        modules[fqn] = {"tokens": x.shape[0], "abs_max": x.abs().amax(0).tolist(),
                        "share_above_6": (big.double() / x.shape[0]).tolist(), "above": big.tolist(),
                        "kurtosis": c.pow(4).mean().item() / var ** 2 if var > 0 else None}
        by_width[x.shape[1]].append(fqn)
    rule, groups = [], []
    for width in sorted(by_width):
        fqns = by_width[width]
        tokens = sum(modules[f]["tokens"] for f in fqns)
        feats = []
        for i in range(width):
            hit = sum(modules[f]["abs_max"][i] >= 6 for f in fqns)
            if not hit:
                continue
            share = sum(modules[f]["above"][i] for f in fqns) / tokens
            holds = hit / len(fqns) >= 0.25 and share >= 0.06
            feats.append({"feature": i, "layers_hit": hit, "token_share": share, "rule": holds,
                          "abs_max": max(modules[f]["abs_max"][i] for f in fqns)})
            if holds:
                rule.append({"input_features": width, "feature": i})
        groups.append({"input_features": width, "layers": len(fqns), "tokens": tokens, "features": feats})
    return {"modules": modules, "groups": groups, "rule_features": rule}
