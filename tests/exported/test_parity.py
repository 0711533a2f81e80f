#!/usr/bin/env python3
"""Issue 25 item 4: qreport analyze on a model's torch.export program (.pt2) gives the report it gives on
the same model scripted (.pt): every number within rel 1e-4, every string (findings, recommendations,
reports) equal, the same module names (the eager fqns), the same qconfig and equalization mappings. The
same for qreport report --stats on the statistics each run saved.

What cannot be equal is excluded here, and documented in docs/differences.md ("Exported programs"):
- the pseudo-module "<mha>.in_proj" (MultiheadAttention's packed in-projection), which only the .pt2 report
  has: its rows, mapping entries, text lines and ranks, counts of layers that include it, and LLM.int8()'s
  model-wide groups (which count its input among the Linear inputs of its width);
- the model's path, hash and module count (the pseudo-modules are modules), and the tool's run details;
- with --simulate and --sensitivity, the warning naming each in_proj (it stays in float in whole-model runs,
  as on the scripted model, which cannot quantize it) and its entry in sensitivity.not_quantized.

Usage: test_parity.py QREPORT MAKE_FIXTURES OUT_DIR NAME [--passes] [qreport args...]   (exit 77: no torch.export)
--passes: the args are analyze's alone (--simulate, --schemes, --sensitivity, --target-sqnr: issue 25 item 1),
and report --stats, which takes none of them, is not run."""
import json
import math
import os
import re
import subprocess
import sys

qreport, maker, out, name = sys.argv[1:5]
extra = sys.argv[5:]
passes = extra[:1] == ["--passes"]
if passes:
    extra = extra[1:]
REL = 1e-4
d = os.path.join(out, name)
made = subprocess.run([sys.executable, maker, out, name], capture_output=True, text=True)
if made.returncode == 77:
    print(made.stdout.strip())
    sys.exit(77)
if made.returncode != 0:
    sys.exit("fixture failed:\n" + made.stdout + made.stderr)


REUSE = re.compile(r"sensitivity: (\d+) of (\d+) call sites can reuse")
reuse = {}  # model -> (reusable, total) call sites of the sensitivity pass, from -v


def run(args, path):
    verbose = passes and "--target-sqnr" in extra
    r = subprocess.run([qreport] + args + ["--detectors", "all", "--format", "json", "-v" if verbose else "-q",
                                           "-o", path] + extra, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"qreport {' '.join(args)} exited {r.returncode}: {r.stderr}")
    m = REUSE.search(r.stderr)
    if m:
        reuse[args[1]] = (int(m.group(1)), int(m.group(2)))
    with open(path) as f:
        return json.load(f)


def analyze(model):
    """analyze with --save-stats, then report --stats on the saved statistics: both reports."""
    base = os.path.join(d, os.path.basename(model))
    if passes:
        direct = run(["analyze", model, "--calib", os.path.join(d, "calib.pt"), "--threads", "1"],
                     base + ".passes.json")
        return direct, None
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
        if all(isinstance(x, str) for x in a + b):  # warnings, not_quantized: the in_proj entries are .pt2's
            b = [x for x in b if not IN_PROJ.search(x)]
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
    if r is None:
        continue
    for key in ("model", "tool"):
        r.pop(key, None)
    if in_proj:
        # LLM.int8()'s model-wide groups count every Linear input of a width, the pseudo-modules' too: their
        # layer and token counts and the features found differ by construction. Each layer's own figures
        # (llm_int8.modules) are compared.
        llm = r["detectors"].get("outlier_detector", {}).get("llm_int8", {})
        llm.pop("groups", None)
        llm.pop("rule_features", None)
SCHEME_NULLS = re.compile(r"^quantization_error_detector: schemes\.(\S+) is null for (\d+) layers? \(.*?\): (.*)$")


def scheme_nulls(r):
    """Takes --schemes' grouped null warnings ("schemes.S is null for N layers ('a', ...): why") out of r's
    warnings: {(S, why): N}. The .pt2's groups also count the in_proj pseudo-modules (their first three names
    can list one), so they are compared as counts, not strings."""
    out, kept = {}, []
    for w in r.get("warnings", []):
        m = SCHEME_NULLS.match(w)
        if m:
            out[(m.group(1), m.group(3))] = int(m.group(2))
        else:
            kept.append(w)
    r["warnings"] = kept
    return out


if passes:
    na, nb = scheme_nulls(pt), scheme_nulls(pt2)
    err_b = pt2["detectors"].get("quantization_error_detector", {}).get("modules", {})
    for s in sorted({s for s, _ in list(na) + list(nb)}):
        # every group of the .pt is in the .pt2, and the .pt2's extra nulls are exactly its in_proj rows' nulls
        extra_nulls = sum(1 for k in in_proj if k in err_b and (err_b[k].get("schemes") or {}).get(s, 0) is None)
        got = sum(n for (t, _), n in nb.items() if t == s) - sum(n for (t, _), n in na.items() if t == s)
        if got != extra_nulls or any(nb.get(key, 0) < n for key, n in na.items() if key[0] == s):
            errors.append(f"$.warnings: schemes.{s} null groups {sorted((w, n) for (t, w), n in na.items() if t == s)} "
                          f"(.pt) against {sorted((w, n) for (t, w), n in nb.items() if t == s)} (.pt2), "
                          f"{extra_nulls} in_proj null")
compare(pt, pt2, "$")
if not passes:
    compare(pt_saved, pt2_saved, "report --stats: $")
else:  # the options ran: the agreement above is not that of two reports without their keys
    err = pt2["detectors"].get("quantization_error_detector", {}).get("modules", {})
    if "--schemes" in extra and not any(m.get("schemes") for m in err.values()):
        errors.append("--schemes: no layer of the .pt2 report has schemes")
    if "--simulate" in extra and (pt2.get("simulation") or {}).get("recommended", {}).get("output_sqnr_db") is None:
        errors.append("--simulate: the .pt2 report has no simulated output SQNR")
    if "--target-sqnr" in extra and "curve" not in (pt2.get("plan") or {}):
        errors.append("--target-sqnr: the .pt2 report has no plan")
    # The interpreter's sensitivity runs reuse earlier outputs where the scripted model's do (skippable
    # calls), so the figures above were measured with the reuse on.
    got = [reuse.get(os.path.join(d, m)) for m in ("model.pt", "model.pt2")]
    if "--target-sqnr" in extra and (got[0] is None or got[0] != got[1] or got[1][0] == 0):
        errors.append(f"--sensitivity: call sites reusing earlier outputs (of all) {got[0]} (.pt) against {got[1]} (.pt2)")
if errors:
    print(f"{name}: {len(errors)} difference(s) between the .pt and .pt2 reports")
    for e in errors[:40]:
        print(" ", e)
    sys.exit(1)
print(f"{name}: the .pt and .pt2 reports agree, " + (f"with {' '.join(extra)}" if passes else "from analyze and from report --stats") + (f" (excluded: {', '.join(in_proj)})" if in_proj else ""))
