#!/usr/bin/python3
"""Writes the per-feature fixtures: for each transformer, attention, recurrent or Conv1d model, model.pt
(scripted eager model), calib.pt (list of batches) and oracle.json (tests/features/feature_oracle.py).
Usage: /usr/bin/python3 data/make_feature_fixtures.py OUTDIR [NAME ...]
       data/make_feature_fixtures.py OUTDIR --hf   the Hugging Face models (traced); without transformers in
                                                   this Python, one line and exit 0 (their tests skip)
"""
import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "tests", "parity"))
sys.path.insert(0, os.path.join(here, "..", "tests", "features"))

import torch  # noqa: E402

import feature_oracle  # noqa: E402
import input_oracle  # noqa: E402
import transformer_fixtures  # noqa: E402
from make_fixtures import save_batches  # noqa: E402


def main():
    out = sys.argv[1]
    names = sys.argv[2:] or list(transformer_fixtures.FEATURES)
    if names == ["--hf"]:
        try:
            import transformers  # noqa: F401
        except ImportError:
            print(f"Hugging Face fixtures skipped: {sys.executable} has no transformers")
            return
        names = list(transformer_fixtures.HF_FEATURES)
    torch.set_num_threads(1)
    for name in names:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        model, batches, weightless_axis = {**transformer_fixtures.FEATURES, **transformer_fixtures.HF_FEATURES}[name]()
        model.eval()
        if name in transformer_fixtures.HF_FEATURES:
            with torch.no_grad():
                scripted = torch.jit.trace(model, batches[0], strict=False, check_trace=False)
        else:
            scripted = torch.jit.script(model)
        torch.jit.save(scripted, os.path.join(d, "model.pt"))
        save_batches(batches, os.path.join(d, "calib.pt"))
        with open(os.path.join(d, "input_sqnr.json"), "w") as f:  # PyTorch's input SQNRs (compare.py)
            json.dump(input_oracle.input_sqnr(model, batches), f, indent=1)
        with open(os.path.join(d, "oracle.json"), "w") as f:
            traced = scripted if name in transformer_fixtures.HF_FEATURES else None
            json.dump(feature_oracle.run(model, batches, weightless_axis, traced), f, indent=1)
        print("fixture", name, "->", d)


if __name__ == "__main__":
    main()
