"""Compares a report made from merged statistics (qreport merge, distributed analyze) with the single run
over the same batches, by the rule docs/statistics.md states: minima, maxima and counts equal, averages
within rel 1e-5 (ratios PyTorch saturates at the float32 maximum saturated in both), the error detector's
histogram-based values within 1 dB and rel 5e-2."""
import math

# Values computed from averages (rel 1e-5), from merged histograms (docs/statistics.md), or flags that
# follow them; everything else must be equal.
AVERAGED = {"input_activation_dynamic_static_comp_stat", "output_activation_dynamic_static_comp_stat",
            "outlier_detection_percentile_ratios"}
HISTOGRAM_DB = {"input_sqnr_minmax_db", "input_sqnr_histogram_db", "input_histogram_gain_db", "sqnr_db"}
HISTOGRAM_RANGE = {"input_histogram_min", "input_histogram_max", "input_histogram_scale"}
HISTOGRAM_OTHER = {"input_histogram_zero_point", "recommended_activation_observer", "sqnr_limited_by"}


SATURATED = 1e37  # an infinite max/percentile ratio, which PyTorch's float32 average keeps near FLT_MAX


def close(a, b, rel):
    if a is None or b is None or isinstance(a, (str, bool)):
        return a == b
    if a >= SATURATED and b >= SATURATED:
        return True
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def compare(direct, merged, failures):
    n = 0
    for det, body in direct["detectors"].items():
        other = merged["detectors"][det]
        if set(body["modules"]) != set(other["modules"]):
            failures.append(f"{det}: modules differ")
            continue
        for fqn, fields in body["modules"].items():
            for key, want in fields.items():
                got = other["modules"][fqn][key]
                where = f"{det}.{fqn}.{key}"
                if key in HISTOGRAM_OTHER:
                    continue
                if key == "sqnr_db" and other.get("error_batches_used") == 0:
                    # qreport report has no data to measure a layer's output SQNR: null, by design.
                    ok = got is None
                    n += 1
                    if not ok:
                        failures.append(f"merge: {where}: {got!r} without data, want null")
                    continue
                if key in HISTOGRAM_DB:
                    ok = close(got, want, 0) or (got is not None and want is not None and abs(got - want) <= 1.0)
                elif key in HISTOGRAM_RANGE:
                    ok = close(got, want, 5e-2)
                elif key in AVERAGED:
                    ok = all(close(g, w, 1e-5) for g, w in zip(got, want)) if isinstance(want, list) else close(got, want, 1e-5)
                else:
                    ok = got == want
                n += 1
                if not ok:
                    failures.append(f"merge: {where}: merged {got!r}, single run {want!r}")
    return n


