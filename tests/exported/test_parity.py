#!/usr/bin/env python3
"""Issue 25 item 4: qreport analyze on a model's torch.export program (.pt2) gives the report it gives on
the same model scripted (.pt): every number within rel 1e-4, every string (findings, recommendations,
reports) equal, the same module names (the eager fqns), the same qconfig and equalization mappings. The
same for qreport report --stats on the statistics each run saved.

What cannot be equal is excluded here, and documented in docs/differences.md ("Exported programs"):
- the pseudo-module "<mha>.in_proj" (MultiheadAttention's packed in-projection), which only the .pt2 report
  has: its rows, mapping entries, text lines and ranks, counts of layers that include it, and LLM.int8()'s
  model-wide groups (which count its input among the Linear inputs of its width);
- the model's path, hash and module count (the pseudo-modules are modules), and the tool's run details.

Usage: test_parity.py QREPORT MAKE_FIXTURES OUT_DIR NAME [qreport args...]   (exit 77: no torch.export)"""
import json
import math
import os
import re
import subprocess
import sys

qreport, maker, out, name = sys.argv[1:5]
extra = sys.argv[5:]
REL = 1e-4
d = os.path.join(out, name)
made = subprocess.run([sys.executable, maker, out, name], capture_output=True, text=True)
if made.returncode == 77:
    print(made.stdout.strip())
    sys.exit(77)
if made.returncode != 0:
    sys.exit("fixture failed:\n" + made.stdout + made.stderr)


def run(args, path):
    r = subprocess.run([qreport] + args + ["--detectors", "all", "--format", "json", "-q", "-o", path] + extra,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"qreport {' '.join(args)} exited {r.returncode}: {r.stderr}")
    with open(path) as f:
        return json.load(f)


def analyze(model):
    """analyze with --save-stats, then report --stats on the saved statistics: both reports."""
    base = os.path.join(d, os.path.basename(model))
    direct = run(["analyze", model, "--calib", os.path.join(d, "calib.pt"), "--threads", "1",
                  "--save-stats", base + ".qstats"], base + ".json")
    saved = run(["report", model, "--stats", base + ".qstats"], base + ".stats.json")
    return direct, saved


pt, pt_saved = analyze(os.path.join(d, "model.pt"))
pt2, pt2_saved = analyze(os.path.join(d, "model.pt2"))
IN_PROJ = re.compile(r"\.in_proj\b")
NUM = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
errors = []


def close(a, b):
    if a == b:
        return True
    if isinstance(a, float) and isinstance(b, float) and (math.isnan(a) and math.isnan(b)):
        return True
    return abs(a - b) <= REL * max(abs(a), abs(b)) or abs(a - b) <= 1e-9


def same_text(a, b, where):
    """Strings equal, except lines naming an in_proj pseudo-module (dropped) and the rounded figures inside
    them: two values within REL can sit either side of a rounding boundary, so a shown figure may move by
    0.1 (its value is compared at REL in its own field)."""
    la = a.split("\n")
    lb = []
    dropping = False
    for line in b.split("\n"):  # an in_proj line and its indented continuation lines
        if IN_PROJ.search(line):
            dropping = True
            continue
        if dropping and line.startswith(("\t", "    ")):
            continue
        dropping = False
        lb.append(line)
    strip = lambda l: re.sub(r"^\s*\d+\.\s+", "", l)  # noqa: E731  ranks shift when an in_proj is ranked
    la, lb = [strip(l) for l in la], [strip(l) for l in lb]
    if len(la) != len(lb) and "lowest" in a:
        n = min(len(la), len(lb))  # a ranked list may lose its last entry to an in_proj
        la, lb = la[:n], lb[:n]
    if len(la) != len(lb):
        errors.append(f"{where}: {len(la)} lines (.pt) against {len(lb)} (.pt2)")
        return
    for x, y in zip(la, lb):
        if NUM.sub("#", x) != NUM.sub("#", y):
            errors.append(f"{where}:\n  .pt : {x}\n  .pt2: {y}")
            return
        for p, q in zip(NUM.findall(x), NUM.findall(y)):
            if "." not in p and "." not in q and int(q) - int(p) == len(in_proj):
                continue  # a count of layers that counts the pseudo-modules too ("The 8 layers ...")
            if p != q and not close(float(p), float(q)) and not (abs(float(p) - float(q)) <= 0.1 + 1e-9 and "." in p):
                errors.append(f"{where}: {x!r} against {y!r}")
                return


def compare(a, b, where):
    if isinstance(a, dict) and isinstance(b, dict):
        kb = [k for k in b if not IN_PROJ.search(k)]
        if list(a) != kb:
            errors.append(f"{where}: keys {list(a)} (.pt) against {kb} (.pt2)")
            return
        for k in a:
            compare(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        if all(isinstance(x, dict) and "fqn" in x for x in a + b):
            b = [x for x in b if not IN_PROJ.search(x["fqn"])]
            n = min(len(a), len(b))
            if where.endswith("worst_layers"):
                a, b = a[:n], b[:n]
        if len(a) != len(b):
            errors.append(f"{where}: {len(a)} items (.pt) against {len(b)} (.pt2)")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            compare(x, y, f"{where}[{i}]")
    elif isinstance(a, str) and isinstance(b, str):
        if a != b:
            same_text(a, b, where)
    elif isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        if a != b:
            errors.append(f"{where}: {a!r} (.pt) against {b!r} (.pt2)")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not close(float(a), float(b)):
            errors.append(f"{where}: {a!r} (.pt) against {b!r} (.pt2)")
    elif a != b:
        errors.append(f"{where}: {a!r} (.pt) against {b!r} (.pt2)")


in_proj = sorted({k for k in pt2["detectors"].get("per_channel_detector", {}).get("modules", {}) if IN_PROJ.search(k)})
for r in (pt, pt2, pt_saved, pt2_saved):
    for key in ("model", "tool"):
        r.pop(key, None)
    if in_proj:
        # LLM.int8()'s model-wide groups count every Linear input of a width, the pseudo-modules' too: their
        # layer and token counts and the features found differ by construction. Each layer's own figures
        # (llm_int8.modules) are compared.
        llm = r["detectors"].get("outlier_detector", {}).get("llm_int8", {})
        llm.pop("groups", None)
        llm.pop("rule_features", None)
compare(pt, pt2, "$")
compare(pt_saved, pt2_saved, "report --stats: $")
if errors:
    print(f"{name}: {len(errors)} difference(s) between the .pt and .pt2 reports")
    for e in errors[:40]:
        print(" ", e)
    sys.exit(1)
print(f"{name}: the .pt and .pt2 reports agree, from analyze and from report --stats" + (f" (excluded: {', '.join(in_proj)})" if in_proj else ""))
