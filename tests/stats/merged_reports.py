"""Compares a report made from merged statistics (qreport merge, distributed analyze) with the single run
over the same batches, by the rule docs/statistics.md states: minima, maxima and counts equal, averages
within rel 1e-5 (ratios PyTorch saturates at the float32 maximum saturated in both), the error detector's
histogram-based values within 1 dB and rel 5e-2.

Everything in the report is compared, lists length first: every module value of every detector, each
detector's report text, the qconfig and equalization mappings, worst_layers and the warnings. Values
decided from histogram-based figures (the zero point, the recommended activation observer, what limits a
layer's SQNR, a layer's rank) may differ only where the single run's figures lie within the tolerance of
the decision's threshold, and the mappings and texts may then follow them, for those modules alone."""
import math
import re

# Values computed from averages (rel 1e-5), from merged histograms (docs/statistics.md), or decisions
# that follow them; everything else must be equal.
AVERAGED = {"input_activation_dynamic_static_comp_stat", "output_activation_dynamic_static_comp_stat",
            "outlier_detection_percentile_ratios"}
HISTOGRAM_DB = {"input_sqnr_minmax_db", "input_sqnr_histogram_db", "input_histogram_gain_db", "sqnr_db"}
HISTOGRAM_RANGE = {"input_histogram_min", "input_histogram_max", "input_histogram_scale"}
DB_TOL = 1.0
RANGE_REL = 5e-2

SATURATED = 1e37  # an infinite max/percentile ratio, which PyTorch's float32 average keeps near FLT_MAX
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan")


def close(a, b, rel):
    if a is None or b is None or isinstance(a, (str, bool)):
        return a == b
    if a >= SATURATED and b >= SATURATED:
        return True
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def close_list(got, want, rel):
    return isinstance(got, list) and len(got) == len(want) and all(close(g, w, rel) for g, w in zip(got, want))


def db_close(got, want):
    return close(got, want, 0) or (got is not None and want is not None and abs(got - want) <= DB_TOL)


def undecided(fields, options):
    """Decisions of the error detector that the merge tolerance allows to go either way, for one module of
    the single run: {key: True} for recommended_activation_observer (the histogram gain within the
    tolerance of --histogram-min-gain) and sqnr_limited_by (weight and input SQNR within the tolerance)."""
    out = {}
    gain = fields.get("input_histogram_gain_db")
    threshold = options.get("histogram_min_gain_db", 0.5)
    out["recommended_activation_observer"] = gain is None or abs(gain - threshold) <= DB_TOL
    per_channel = fields.get("recommended_weight_observer") == "default_per_channel_weight_observer"
    w = fields.get("weight_sqnr_per_channel_db" if per_channel else "weight_sqnr_per_tensor_db")
    hist = fields.get("recommended_activation_observer") == "default_histogram_observer"
    i = fields.get("input_sqnr_histogram_db" if hist else "input_sqnr_minmax_db")
    out["sqnr_limited_by"] = w is None or i is None or abs(w - i) <= 2 * DB_TOL
    return out


def zero_point_close(got, want, fields):
    """The zero point is quant_min - round(min / scale): min and scale each within rel 5e-2 move it by at
    most |min / scale| * 0.1, plus one for the rounding."""
    if got is None or want is None:
        return got == want
    lo, scale = fields.get("input_histogram_min"), fields.get("input_histogram_scale")
    if lo is None or not scale:
        return got == want
    return abs(got - want) <= abs(lo / scale) * 2 * RANGE_REL + 1


def compare_text(got, want, where, failures, free_modules):
    """Line by line: the same lines with numbers within DB_TOL (ranks and dB figures) in any order among
    lines of the same shape; a line naming a module whose decisions may go either way may differ."""
    g_lines, w_lines = got.splitlines(), want.splitlines()
    if len(g_lines) != len(w_lines):
        failures.append(f"{where}: {len(g_lines)} lines, single run {len(w_lines)}")
        return 1

    def shape(line):
        return NUMBER.sub("#", line), [float(x) for x in NUMBER.findall(line)]

    unmatched = list(range(len(g_lines)))
    for w in w_lines:
        ws, wn = shape(w)
        hit = None
        for k in unmatched:
            gs, gn = shape(g_lines[k])
            if gs == ws and len(gn) == len(wn) and all(
                    a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= DB_TOL) for a, b in zip(gn, wn)):
                hit = k
                break
        if hit is None:
            if not any(m and re.search(r"(^|\s)" + re.escape(m) + r"(\s|$)", w) for m in free_modules):
                failures.append(f"{where}: line {w!r} has no counterpart in the merged report")
            continue
        unmatched.remove(hit)
    return 1


def compare_worst(got, want, where, failures, free_modules):
    if not isinstance(got, list) or len(got) != len(want):
        failures.append(f"{where}: {got!r} against {want!r}")
        return 1
    sqnr_of = {w["fqn"]: w["sqnr_db"] for w in want}
    for k, (g, w) in enumerate(zip(got, want)):
        # Each rank's value moves by at most the tolerance; a layer may change places only with one whose
        # SQNR is within twice the tolerance of it.
        ok = db_close(g["sqnr_db"], w["sqnr_db"])
        if g["fqn"] != w["fqn"]:
            if g["fqn"] in sqnr_of:
                swapped = abs(sqnr_of[g["fqn"]] - w["sqnr_db"]) <= 2 * DB_TOL
            else:  # a layer from just outside the ranking, in its last places
                swapped = k >= len(want) - 2
            ok = ok and swapped
        if g.get("limited_by") != w.get("limited_by") and g["fqn"] == w["fqn"] and g["fqn"] not in free_modules:
            ok = False
        if not ok:
            failures.append(f"{where}[{k}]: merged {g!r}, single run {w!r}")
    return len(want)


def compare(direct, merged, failures):
    n = 0
    free = set()  # modules whose histogram-based decisions may go either way
    if set(direct["detectors"]) != set(merged["detectors"]):
        failures.append(f"detectors {sorted(merged['detectors'])} against {sorted(direct['detectors'])}")
        return n
    for det, body in direct["detectors"].items():
        other = merged["detectors"][det]
        if set(body["modules"]) != set(other["modules"]):
            failures.append(f"{det}: modules differ")
            continue
        options = body.get("options", {})
        if other.get("options") != options:
            failures.append(f"{det}: options {other.get('options')!r} against {options!r}")
        for fqn, fields in body["modules"].items():
            got_fields = other["modules"][fqn]
            if list(got_fields) != list(fields):
                failures.append(f"{det}.{fqn}: keys {list(got_fields)} against {list(fields)}")
                continue
            free_keys = undecided(fields, options) if det == "quantization_error_detector" else {}
            if any(free_keys.values()):
                free.add(fqn)
            for key, want in fields.items():
                got = got_fields[key]
                where = f"{det}.{fqn}.{key}"
                if key == "sqnr_db" and other.get("error_batches_used") == 0:
                    # qreport report has no data to measure a layer's output SQNR: null, by design.
                    ok = got is None
                    n += 1
                    if not ok:
                        failures.append(f"merge: {where}: {got!r} without data, want null")
                    continue
                if key == "input_histogram_zero_point":
                    ok = zero_point_close(got, want, fields)
                elif key in free_keys:
                    ok = got == want or free_keys[key]
                elif key in HISTOGRAM_DB:
                    ok = db_close(got, want)
                elif key in HISTOGRAM_RANGE:
                    ok = close(got, want, RANGE_REL)
                elif key in AVERAGED:
                    ok = close_list(got, want, 1e-5) if isinstance(want, list) else close(got, want, 1e-5)
                else:
                    ok = got == want and type(got) == type(want)
                n += 1
                if not ok:
                    failures.append(f"merge: {where}: merged {got!r}, single run {want!r}")
        if det == "quantization_error_detector" and other.get("error_batches_used") == 0:
            # qreport report has no data to measure the layers' output SQNR (sqnr_db null, checked above): no
            # ranking and no per-layer lines to compare; one warning says why (checked below).
            n += 1
            if other.get("worst_layers"):
                failures.append(f"{det}.worst_layers: {other.get('worst_layers')!r} without data, want none")
        elif det == "quantization_error_detector":
            n += compare_worst(other.get("worst_layers"), body.get("worst_layers", []), f"{det}.worst_layers", failures,
                               free)
            n += compare_text(other["report"], body["report"], f"{det}.report", failures, free)
        else:
            n += 1
            if other["report"] != body["report"]:
                failures.append(f"{det}.report: the merged report's text differs from the single run's")
    for mapping in ("qconfig_mapping", "equalization_mapping"):
        want, got = direct.get(mapping, {}), merged.get(mapping, {})
        if list(got) != list(want):
            failures.append(f"{mapping}: modules {list(got)} against {list(want)}")
            continue
        for fqn, entry in want.items():
            n += 1
            if got[fqn] != entry and not (mapping == "qconfig_mapping" and any(
                    fqn == m or m.startswith(fqn + ".") for m in free) and
                    {k: v for k, v in got[fqn].items() if k != "activation"} ==
                    {k: v for k, v in entry.items() if k != "activation"}):
                failures.append(f"{mapping}.{fqn}: merged {got[fqn]!r}, single run {entry!r}")
    n += 1
    no_data = merged["detectors"].get("quantization_error_detector", {}).get("error_batches_used") == 0
    expected = list(direct.get("warnings", []))
    if no_data:  # the one warning a report from statistics adds (above)
        expected.append("quantization_error_detector: sqnr_db is null for every layer: qreport report has only the "
                        "saved statistics, and measuring it needs the calibration data (qreport analyze measures it)")
    # A job's report says which batches rank 0 measured sqnr_db on (docs/distributed.md): one warning of
    # this exact shape, last, that a single run does not have.
    got_warnings = list(merged.get("warnings", []))
    job = re.compile(r"quantization_error_detector: in a job of \d+ ranks, sqnr_db is measured on rank 0's own "
                     r"batches \(\d+(, \d+)* of its archive\), not on the job's first \d+")
    if got_warnings and job.fullmatch(got_warnings[-1]):
        got_warnings.pop()
    if got_warnings != expected:
        failures.append(f"warnings: merged {merged.get('warnings')!r}, single run {direct.get('warnings')!r}")
    return n
