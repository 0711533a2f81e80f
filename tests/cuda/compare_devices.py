#!/usr/bin/python3
"""The whole report on --device cuda against --device cpu for one parity fixture: numbers within rel
1e-4, everything else equal, except a boolean whose deciding value lies within 1e-4 of its threshold.
The error detector's histogram-based values follow HistogramObserver's search, which a bin's worth of
difference in the activations (cuDNN against oneDNN) can stop one step apart: its SQNRs within 0.25 dB
(the estimate's own bound), its ranges within rel 5e-2, its zero points within 1, and its recommendation
(and the mapping's histogram observer) free where the CPU's gain lies within 0.25 dB of the bound.
Deep models take RTOL (e.g. 1e-2 for resnet18 and mobilenet_v2): cuDNN and oneDNN sum each convolution in
a different order, and through 20-50 layers the activations themselves drift apart, most visibly in the
statistics of channels whose values are near zero (a minimum, a percentile ratio over a tiny median). Their
numbers are then compared norm-wise, each against the largest magnitude of its array (the usual test for
results of different summation orders), percentile ratios within 5 x RTOL (a ratio of two order statistics
is ill-conditioned where the median is small: resnet18's layer4.1.relu channel 502 gave 150.23 on the CPU
and 147.87 on an H200, 1.6e-2), and the borderline band for booleans widens to RTOL.
Exits 77 (ctest: skipped) where qreport cannot use CUDA (no GPU, or a LibTorch without CUDA).
Usage: compare_devices.py QREPORT FIXTURE_DIR [RTOL]"""
import json
import math
import subprocess
import sys
import tempfile

QREPORT, DIR = sys.argv[1:3]
RTOL = float(sys.argv[3]) if len(sys.argv) > 3 else None  # None: elementwise, rel 1e-4
BAND = RTOL or 1e-4
worst = [0.0, ""]  # the largest difference seen, relative to its scale, and where
tmp = tempfile.mkdtemp()


def report(device):
    out = f"{tmp}/{device}.json"
    r = subprocess.run([QREPORT, "analyze", f"{DIR}/model.pt", "--calib", f"{DIR}/calib.pt", "--format", "json",
                        "--device", device, "-o", out, "-q"], capture_output=True, text=True)
    if r.returncode == 2 and ("without CUDA" in r.stderr or "no CUDA GPU" in r.stderr):
        print("skipped:", r.stderr.strip())
        sys.exit(77)
    if r.returncode != 0:
        sys.exit(f"qreport --device {device} failed: {r.stderr}")
    return json.load(open(out))


cpu, gpu = report("cpu"), report("cuda")
problems = []


def close(a, b, scale, path):
    if a is None or b is None:
        return a is b
    if RTOL is None:
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    if math.isinf(a) or math.isinf(b):
        return a == b
    rel = abs(a - b) / max(scale, 1e-6)
    if rel > worst[0]:
        worst[:] = [rel, path]
    return rel <= (5 * RTOL if "percentile_ratios[" in path else RTOL)


def near(value, threshold):
    return value is not None and abs(value - threshold) <= BAND * max(1.0, abs(threshold))


def borderline(det, options, fields, key, index):
    """Whether the boolean fields[key][index] is decided by a value within BAND of its threshold."""
    pick = (lambda v: v[index] if index is not None else v)
    if key == "outliers_detected":
        return near(pick(fields["outlier_detection_percentile_ratios"]), options["ratio_threshold"])
    if key == "input_weight_equalization_recommended":
        s, t = pick(fields["input_weight_channel_comparison_metrics"]), options["ratio_threshold"]
        return near(s, t) or near(s, 1 / t)
    if key == "dynamic_recommended":
        return near(fields.get("input_activation_dynamic_static_comp_stat"), options["tolerance"])
    return False


def walk(a, b, path, ctx, scale=None):
    if isinstance(a, dict):
        if list(a) != list(b):
            problems.append(f"{path}: keys differ")
            return
        for k in a:
            walk(a[k], b[k], f"{path}.{k}", ctx)
    elif isinstance(a, list):
        if len(a) != len(b):
            problems.append(f"{path}: lengths {len(a)} vs {len(b)}")
            return
        finite = [abs(x) for x in a if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)]
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", ctx + [i], max(finite, default=None))
    elif isinstance(a, bool) or isinstance(b, bool):
        if a != b:
            det, fqn, key = ctx[0], ctx[1], ctx[2]
            d = cpu["detectors"][det]
            idx = ctx[3] if len(ctx) > 3 else None
            if not borderline(det, d["options"], d["modules"][fqn], key, idx):
                problems.append(f"{path}: {a} vs {b}")
    elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if not close(a, b, scale if scale is not None else abs(a), path):
            problems.append(f"{path}: {a} vs {b}")
    elif a != b and not path.endswith(".device") and not path.endswith(".report"):
        problems.append(f"{path}: {a!r} vs {b!r}")


ERROR_DB = {"input_sqnr_minmax_db", "input_sqnr_histogram_db", "input_histogram_gain_db", "sqnr_db"}
ERROR_RANGE = {"input_histogram_min", "input_histogram_max", "input_histogram_scale"}
ERROR_FREE = {"recommended_activation_observer", "sqnr_limited_by"}
bound = cpu["detectors"].get("quantization_error_detector", {}).get("options", {}).get("histogram_min_gain_db", 0.5)
unsure = set()  # layers whose histogram recommendation may differ across devices


def error_field(fqn, key, a, b):
    path = f"quantization_error_detector.{fqn}.{key}"
    if key in ERROR_DB:
        ok = (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 0.25)
    elif key in ERROR_RANGE:
        ok = (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=5e-2))
    elif key == "input_histogram_zero_point":
        ok = (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1)
    elif key in ERROR_FREE:
        ok = True
    else:
        walk(a, b, path, ["quantization_error_detector", fqn, key])
        return
    if not ok:
        problems.append(f"{path}: {a} vs {b}")


for det in cpu["detectors"]:
    for fqn in cpu["detectors"][det]["modules"]:
        for key in cpu["detectors"][det]["modules"][fqn]:
            a, b = cpu["detectors"][det]["modules"][fqn][key], gpu["detectors"][det]["modules"][fqn][key]
            if det == "quantization_error_detector":
                error_field(fqn, key, a, b)
                g = cpu["detectors"][det]["modules"][fqn].get("input_histogram_gain_db")
                if key == "input_histogram_gain_db" and g is not None and abs(g - bound) <= 0.25:
                    unsure.add(fqn)
                continue
            walk(a, b, f"{det}.{fqn}.{key}", [det, fqn, key])
for fqn, q in cpu["qconfig_mapping"].items():
    g = gpu["qconfig_mapping"].get(fqn)
    if g is None:
        problems.append(f"qconfig_mapping.{fqn}: missing on cuda")
    elif q != g and not any(u == fqn or u.startswith(fqn + ".") for u in unsure):
        problems.append(f"qconfig_mapping.{fqn}: {q} vs {g}")
if RTOL is not None:
    print(f"largest difference, relative to its array's largest magnitude: {worst[0]:.2e} ({worst[1]})")
print("\n".join(problems[:40]) or f"ok: cuda report equals cpu report for {DIR}")
sys.exit(1 if problems else 0)
