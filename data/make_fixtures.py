#!/usr/bin/python3
"""Writes test fixtures: for each parity model, model.pt (scripted fuse_fx model), calib.pt (list of
batches) and oracle.json (PyTorch's own ModelReport, one detector per run). Usage:
    /usr/bin/python3 data/make_fixtures.py OUTDIR [NAME ...]
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))

import torch  # noqa: E402

import fixtures  # noqa: E402
import input_oracle  # noqa: E402
import oracle  # noqa: E402


def save_batches(batches, path):
    items = [b[0] if len(b) == 1 else tuple(b) for b in batches]
    torch.save(items, path)


def main():
    out = sys.argv[1]
    names = sys.argv[2:] or list(fixtures.PARITY)
    torch.set_num_threads(1)
    for name in names:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        gm, batches = fixtures.fused(name)
        torch.jit.save(fixtures.script(gm), os.path.join(d, "model.pt"))
        save_batches(batches, os.path.join(d, "calib.pt"))
        with open(os.path.join(d, "oracle.json"), "w") as f:
            json.dump(oracle.run_all(name), f, indent=1, sort_keys=False)
        with open(os.path.join(d, "input_sqnr.json"), "w") as f:  # PyTorch's input SQNRs (compare.py)
            json.dump(input_oracle.input_sqnr(gm, batches), f, indent=1)
        with open(os.path.join(d, "fused.json"), "w") as f:  # fused modules: what prepare_fx matches
            json.dump([n for n, m in gm.named_modules() if type(m).__module__.startswith(
                ("torch.nn.intrinsic", "torch.ao.nn.intrinsic"))], f)
        print("fixture", name, "->", d)


if __name__ == "__main__":
    main()
