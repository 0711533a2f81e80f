"""An independent model of `qreport diff`: what a diff of two saved reports must contain, computed from the
two report dicts with the rules of docs/usage.md ("qreport diff") and the finding rules of
docs/usage.md ("--fail-on"), and rendered in the documented text and JSON layouts. tests/report/test_diff.py
writes its goldens from this module (never from the tool) and checks that the tool's output equals them.

Nothing here calls qreport or reuses its code: a rule changed in one place and not the other fails the test.
"""
import json

SETTINGS_WARNING = ("the two reports used different settings ({} changed): differences below may come from the "
                    "settings, not the model")


def format_db(v):
    """A dB value in a finding's text: one decimal, and no "-0.0"."""
    return "%.1f" % (0.0 if abs(v) < 0.05 else v)


def format_db2(v):
    """A measured gain or loss in a finding's text: two decimals, and no "-0.00"."""
    return "%.2f" % (0.0 if abs(v) < 0.005 else v)


EQUALIZATION_SHARE = 0.4
FLT_MAX = 3.4028234663852886e38


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def findings(report):
    """(kind, module, detail) of every finding, by detector then module, as --fail-on sees them."""
    dets = report["detectors"]
    error = dets.get("quantization_error_detector", {}).get("modules", {})
    out = []
    for name, body in dets.items():
        for fqn, f in body.get("modules", {}).items():
            if name == "per_channel_detector":
                if f.get("per_channel_quantization_supported") is True and f.get("per_channel_quantization_used") is not True:
                    detail = "supports per-channel weight quantization but does not use it"
                    g = error.get(fqn, {}).get("weight_per_channel_gain_db")
                    if is_number(g) and g <= 0:
                        continue  # the one decision keeps per-tensor weights where per-channel loses: no finding
                    if is_number(g):
                        detail += "; per-channel weights gain %s dB of weight SQNR" % format_db2(g)
                    out.append(("per_channel", fqn, detail))
            elif name == "dynamic_vs_static_detector":
                if f.get("dynamic_recommended") is True:
                    out.append(("dynamic", fqn, "dynamic quantization is recommended"))
            elif name == "input_weight_equalization_detector":
                rec = f.get("input_weight_equalization_recommended", [])
                chans = [str(c) for c, x in enumerate(rec) if x is True]
                # PyTorch's module-level rule, as its report text states it: a share of the channels (40%).
                if rec and len(chans) / len(rec) >= EQUALIZATION_SHARE:
                    out.append(("equalization", fqn,
                                "input-weight equalization is recommended for channel(s) " + ", ".join(chans)))
            elif name == "outlier_detector":
                flagged = f.get("outliers_detected", [])
                enough = f.get("outlier_detection_is_sufficient_batches", [])
                ratios = f.get("outlier_detection_percentile_ratios", [])
                used = f.get("outlier_detection_batches_used", [])
                # A sparse channel (PyTorch's max / 0 saturated at FLT_MAX in some batch) is a note, not an outlier.
                sparse = {c for c, (r, u) in enumerate(zip(ratios, used))
                          if is_number(r) and isinstance(u, int) and u > 0 and r * u >= FLT_MAX / 2}
                chans = [str(c) for c, (x, s) in enumerate(zip(flagged, enough))
                         if x is True and s is True and c not in sparse]
                if chans:
                    detail = "outliers in channel(s) " + ", ".join(chans)
                    g = error.get(fqn, {}).get("input_histogram_gain_db")
                    if is_number(g):
                        detail += ("; clipping to the histogram range recovers %s dB of input SQNR" % format_db2(g)
                                   if g > 0 else
                                   "; clipping to the histogram range loses %s dB of input SQNR" % format_db2(-g))
                    out.append(("outliers", fqn, detail))
            elif name == "quantization_error_detector":
                bound = body.get("options", {}).get("min_sqnr_db")
                db = f.get("sqnr_db")
                bad = sum(f.get(k) for k in ("input_nan_count", "input_inf_count") if isinstance(f.get(k), int))
                if is_number(bound) and db is None and bad > 0:  # NaN/inf made inside the model
                    nan, inf = f.get("input_nan_count") or 0, f.get("input_inf_count") or 0
                    what = ("NaN and infinite" if inf > 0 else "NaN") if nan > 0 else "infinite"
                    first = f.get("input_non_finite_first_batch")
                    out.append(("sqnr", fqn, "no SQNR: its input contains %s values made inside the model%s"
                                % (what, " (first in calibration batch %d)" % first if isinstance(first, int) else "")))
                    continue
                if is_number(bound) and is_number(db) and db < bound:
                    by = f.get("sqnr_limited_by")
                    out.append(("sqnr", fqn, "SQNR %s dB under the recommended configuration, below --min-sqnr %s dB%s"
                                % (format_db(db), format_db(bound),
                                   " (limited by its %s)" % by if isinstance(by, str) else "")))
    return out


def is_sqnr_key(key):
    """An SQNR figure (gated): a value in dB that names an SQNR, never a gain."""
    return key.endswith("_db") and "sqnr" in key and "gain" not in key


def sqnr_figures(report):
    out = {}
    for det, body in report["detectors"].items():
        for fqn, f in body.get("modules", {}).items():
            for k, v in f.items():
                if is_sqnr_key(k):
                    out[(det, fqn, k)] = float(v) if v is not None else None
    for config, body in report.get("simulation", {}).items():
        for site, v in body.get("layers_output_sqnr_db", {}).items():
            out[("simulation." + config, site, "layers_output_sqnr_db")] = float(v) if v is not None else None
    return out


def compact(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def settings(report):
    out = {}
    for det, body in report["detectors"].items():
        for k, v in body.get("options", {}).items():
            out[det + "." + k] = compact(float(v) if k.endswith("_db") and is_number(v) else v)
    for k in ("batches", "device"):
        if k in report.get("calibration", {}):
            out["calibration." + k] = compact(report["calibration"][k])
    for k in ("scheme", "runs", "batches"):
        if k in report.get("sensitivity", {}):
            out["sensitivity." + k] = compact(report["sensitivity"][k])
    return out


def diff(old, new, old_name, new_name, min_change=0.05):
    """The diff as a dict of plain Python values (the documented JSON keys)."""
    mods = lambda r: {fqn for body in r["detectors"].values() for fqn in body.get("modules", {})}
    sa, sb = settings(old), settings(new)
    changed_settings = [(k, sa.get(k, "(absent)"), sb.get(k, "(absent)")) for k in sorted(set(sa) | set(sb))
                        if sa.get(k, "(absent)") != sb.get(k, "(absent)")]
    fa, fb = findings(old), findings(new)
    da = {(k, m): d for k, m, d in fa}
    db = {(k, m): d for k, m, d in fb}
    outputs = []
    for config in list(new.get("simulation", {})) + [c for c in old.get("simulation", {}) if c not in new.get("simulation", {})]:
        o, n = old.get("simulation", {}).get(config), new.get("simulation", {}).get(config)
        value = lambda c: float(c["output_sqnr_db"]) if c and c.get("output_sqnr_db") is not None else None
        outputs.append({"config": config, "in_old": o is not None, "in_new": n is not None,
                        "old": value(o), "new": value(n)})
    xa, xb = sqnr_figures(old), sqnr_figures(new)
    # Without disable-one runs (--sensitivity-runs enable-one) in either report, their null figures mean
    # "not run": not compared.
    no_skip = "enable-one" in (old.get("sensitivity", {}).get("runs"), new.get("sensitivity", {}).get("runs"))
    figures = [(key, xa[key], xb[key]) for key in sorted(xb) if key in xa and xa[key] != xb[key]
               and not (no_skip and key[2] == "sensitivity_skip_output_sqnr_db")]
    listed = [f for f in figures if f[1] is None or f[2] is None or abs(f[2] - f[1]) > min_change]
    return {
        "old_name": old_name, "new_name": new_name,
        "old_sha": old.get("model", {}).get("sha256", ""), "new_sha": new.get("model", {}).get("sha256", ""),
        "model_output": outputs,
        "settings": changed_settings,
        "added": sorted(mods(new) - mods(old)), "removed": sorted(mods(old) - mods(new)),
        "appeared": [f for f in fb if (f[0], f[1]) not in da],
        "disappeared": [f for f in fa if (f[0], f[1]) not in db],
        "changed": [(k, m, da[(k, m)], d) for k, m, d in fb if (k, m) in da and da[(k, m)] != d],
        "min_change": min_change, "figures": figures, "listed": listed,
        "warnings": [SETTINGS_WARNING.format(len(changed_settings))] if changed_settings else [],
    }


def f2(v):
    return "null" if v is None else "%.2f" % v


def change_text(a, b):
    s = f2(a) + " -> " + f2(b)
    if a is not None and b is not None:
        s += " (%s%s dB)" % ("+" if b >= a else "", f2(b - a))
    return s


def name_of(source, fqn, key):
    return "%s %s (%s)" % (fqn or "model", key, source)


def text(d):
    out = ["qreport diff %s -> %s" % (d["old_name"], d["new_name"]),
           "model: the same file (sha256)" if d["old_sha"] == d["new_sha"] else "model: changed (sha256 differs)",
           "", "== model output SQNR (simulation) =="]
    if not d["model_output"]:
        out.append("  neither report has one (qreport analyze --simulate)")
    for m in d["model_output"]:
        line = "  %s: %s -> %s" % (m["config"], f2(m["old"]) if m["in_old"] else "(absent)",
                                   f2(m["new"]) if m["in_new"] else "(absent)")
        if m["in_old"] and m["in_new"] and m["old"] is not None and m["new"] is not None:
            line += " (%s%s dB)" % ("+" if m["new"] >= m["old"] else "", f2(m["new"] - m["old"]))
        out.append(line)

    def section(title, lines):
        out.extend(["", "== %s (%d) ==" % (title, len(lines))] + lines)

    section("settings changed", ["  %s: %s -> %s" % s for s in d["settings"]])
    section("modules added", ["  + " + m for m in d["added"]])
    section("modules removed", ["  - " + m for m in d["removed"]])
    section("findings appeared", ["  + %s %s: %s" % f for f in d["appeared"]])
    section("findings disappeared", ["  - %s %s: %s" % f for f in d["disappeared"]])
    section("findings changed", ["  ~ %s %s: %s -> %s" % c for c in d["changed"]])
    out.extend(["", "== SQNR changes (%d) ==" % len(d["listed"])])
    hidden = len(d["figures"]) - len(d["listed"])
    if hidden:
        out.append("  (%d smaller than %s dB not listed: --min-change)" % (hidden, f2(d["min_change"])))
    out.extend("  %s: %s" % (name_of(*key), change_text(a, b)) for key, a, b in d["listed"])
    if d["warnings"]:
        out.extend(["", "== warnings =="] + ["- " + w for w in d["warnings"]])
    return "\n".join(out) + "\n"


def as_json(d):
    delta = lambda a, b: b - a if a is not None and b is not None else None
    j = {
        "schema_version": 1, "kind": "diff",
        "old": {"report": d["old_name"], "sha256": d["old_sha"]},
        "new": {"report": d["new_name"], "sha256": d["new_sha"]},
        "model_changed": d["old_sha"] != d["new_sha"],
        "model_output_sqnr": [dict(m, change=delta(m["old"], m["new"])) for m in d["model_output"]],
        "settings_changed": [{"setting": k, "old": None if a == "(absent)" else json.loads(a),
                              "new": None if b == "(absent)" else json.loads(b)} for k, a, b in d["settings"]],
        "modules_added": d["added"], "modules_removed": d["removed"],
        "findings_appeared": [{"kind": k, "module": m, "detail": t} for k, m, t in d["appeared"]],
        "findings_disappeared": [{"kind": k, "module": m, "detail": t} for k, m, t in d["disappeared"]],
        "findings_changed": [{"kind": k, "module": m, "old": a, "new": b} for k, m, a, b in d["changed"]],
        "min_change_db": d["min_change"],
        "db_changes": [{"detector": s, "module": m, "key": k, "old": a, "new": b, "change": delta(a, b)}
                       for (s, m, k), a, b in d["listed"]],
        "db_changes_not_listed": len(d["figures"]) - len(d["listed"]),
        "warnings": d["warnings"],
    }
    return render_json(j) + "\n"


def render_json(v, level=0):
    """docs/json-schema.md's layout: two-space indentation, arrays of numbers, booleans and nulls on one line."""
    pad = "  " * (level + 1)
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [pad + json.dumps(k, ensure_ascii=False) + ": " + render_json(x, level + 1) for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(v, list):
        if not v:
            return "[]"
        if not isinstance(v[0], (dict, list, str)):
            return "[" + ", ".join(render_json(x, level + 1) for x in v) + "]"
        return "[\n" + ",\n".join(pad + render_json(x, level + 1) for x in v) + "\n" + "  " * level + "]"
    return json.dumps(v, ensure_ascii=False)


def gate_lines(d, max_drop):
    """--max-sqnr-drop: every SQNR figure, the model output first, that dropped by more than max_drop or became
    null; also those below --min-change (the gate sees all)."""
    bound = "%g" % max_drop
    items = [(name_of("simulation." + m["config"], "", "output_sqnr_db"), m["old"], m["new"])
             for m in d["model_output"] if m["in_old"] and m["in_new"]]
    items += [(name_of(*key), a, b) for key, a, b in d["figures"]]
    out = []
    for name, a, b in items:
        if a is not None and b is None:
            out.append("%s became null (%s -> null: not measurable, the new report's warnings say why), gated by "
                       "--max-sqnr-drop %s" % (name, f2(a), bound))
        elif a is not None and b is not None and a - b > max_drop:
            out.append("%s dropped by %s dB (%s -> %s), more than --max-sqnr-drop %s" % (name, f2(a - b), f2(a), f2(b), bound))
    return out
