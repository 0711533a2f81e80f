#!/usr/bin/python3
"""Compares qreport's JSON report with PyTorch's ModelReport (oracle.json) value by value, at rel 1e-4.

Where qreport deliberately differs from PyTorch (docs/differences.md), the oracle is first put into the
corrected form, so the difference itself is asserted:
  * outlier detector: a channel with batches_used 0 has ratio null and is not flagged (PyTorch: 1/0 = inf,
    flagged), and the report string lists it accordingly; 1.13's "occured" is spelled "occurred".
  * mappings: advice for a child of a fused module (conv1.0) names the fused module (conv1), which is
    what prepare_fx matches; the fixture's fused.json lists the fused modules.
  * mappings, with qreport's error detector: per-channel weights exactly where they gain weight SQNR
    (docs/differences.md), the gain computed here with PyTorch's weight observers and fake-quantize on the
    fixture's scripted model.
Usage: compare.py QREPORT_JSON ORACLE_JSON NAME
"""
import json
import math
import os
import sys

REL = 1e-4


class Mismatch(Exception):
    pass


def py_repr(x):
    return repr(float(x))


def outlier_text(info, spelling):
    lines = []
    for fqn, d in info.items():
        header = False
        ch_axis = d["outlier_detection_channel_axis"]
        for i, flagged in enumerate(d["outliers_detected"]):
            add = []
            if flagged:
                mx = d["input_activation_per_channel_max"][i]
                add.append(f"\tFor channel {i}, we found outliers in the preceding activation data with a max value "
                           f"across all batches of {py_repr(mx)}.\n")
            if d["constant_batch_counts"][i] != 0:
                add.append(f"\tFor channel {i}, we found {d['constant_batch_counts'][i]} constant value batches. We "
                           f"recommend taking a look at the dict and data to see how frequent this {spelling} and why.\n")
            if add and not header:
                lines.append(f"For Module {fqn} looked at with axis {ch_axis}: \n")
                header = True
            lines.extend(add)
    text = "Outlier detection report: \n"
    if lines:
        return text + "".join(lines) + (
            "Note: outlier detection is only reliable for stationary distributions. We recommend running the static "
            "vs. dynamic detector to ensure activation data before modules above is stationary to ensure the most "
            "accurate results.")
    return text + "There were no outliers found in the activations.\n"


def corrected_outlier(info):
    out = {}
    for fqn, d in info.items():
        d = dict(d)
        ratios = list(d["outlier_detection_percentile_ratios"])
        flags = list(d["outliers_detected"])
        for c, used in enumerate(d["outlier_detection_batches_used"]):
            if used == 0:
                ratios[c] = None
                flags[c] = False
        d["outlier_detection_percentile_ratios"] = ratios
        d["outliers_detected"] = flags
        out[fqn] = d
    return out


def compare_values(got, want, where, counter):
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            raise Mismatch(f"{where}: got {got!r}, want {want!r}")
        for i, (g, w) in enumerate(zip(got, want)):
            compare_values(g, w, f"{where}[{i}]", counter)
        return
    counter[0] += 1
    if want is None or got is None or isinstance(want, (bool, str)) or isinstance(got, (bool, str)):
        if got != want or type(got) != type(want):
            raise Mismatch(f"{where}: got {got!r}, want {want!r}")
        return
    if not math.isclose(float(got), float(want), rel_tol=REL, abs_tol=1e-12):
        raise Mismatch(f"{where}: got {got!r}, want {want!r}")


def per_channel_gains(model_path):
    """PyTorch's per-channel weight SQNR gain (dB) of every Linear/Conv of the scripted model, by fqn."""
    import torch
    from torch.ao.quantization.observer import default_per_channel_weight_observer, default_weight_observer
    gains = {}
    for fqn, m in torch.jit.load(model_path).named_modules():
        # MultiheadAttention's out_proj is a NonDynamicallyQuantizableLinear: a Linear to quantization.
        if m.original_name not in ("Linear", "NonDynamicallyQuantizableLinear", "Conv1d", "Conv2d", "Conv3d") or \
                not hasattr(m, "weight"):
            continue
        w = m.weight.detach().float()
        t, c = default_weight_observer(), default_per_channel_weight_observer()
        t(w)
        c(w)
        (s, z), (cs, cz) = t.calculate_qparams(), c.calculate_qparams()
        nt = (w - torch.fake_quantize_per_tensor_affine(w, float(s), int(z), -128, 127)).double().square().sum().item()
        nc = (w - torch.fake_quantize_per_channel_affine(w, cs, cz.to(torch.int32), 0, -128, 127)).double().square().sum().item()
        if nt > 0 and nc > 0 and w.abs().sum().item() > 0:
            gains[fqn] = 10 * math.log10(nt / nc)
    return gains


def main():
    got_all = json.load(open(sys.argv[1]))
    oracle = json.load(open(sys.argv[2]))
    name = sys.argv[3]
    counter = [0]
    merged = {}
    for det, want in oracle.items():
        got = got_all["detectors"][det]
        want_modules = want["modules"]
        want_text = want["report"]
        if det == "outlier_detector":
            # The formatter reproduces PyTorch's own string before the corrections are applied: 1.13 spells
            # "occured", 2.x "occurred".
            if want_text not in (outlier_text(want_modules, "occured"), outlier_text(want_modules, "occurred")):
                raise Mismatch(f"{det}: the oracle formatter does not reproduce PyTorch's string")
            want_modules = corrected_outlier(want_modules)
            want_text = outlier_text(want_modules, "occurred")
        if set(got["modules"]) != set(want_modules):
            raise Mismatch(f"{det}: modules {sorted(got['modules'])} != {sorted(want_modules)}")
        for fqn, fields in want_modules.items():
            if list(got["modules"][fqn]) != list(fields):
                raise Mismatch(f"{det}.{fqn}: keys {list(got['modules'][fqn])} != {list(fields)}")
            for key, w in fields.items():
                compare_values(got["modules"][fqn][key], w, f"{det}.{fqn}.{key}", counter)
        compare_values(got["report"], want_text, f"{det}.report", counter)
        for fqn, flags in want["qconfig_info"].items():
            old = merged.get(fqn, [False, False, False])
            merged[fqn] = [a or b for a, b in zip(old, flags)]
    # ModelReport.generate_qconfig_mapping over the four detectors, children of fused modules renamed.
    fused_path = os.path.join(os.path.dirname(sys.argv[2]), "fused.json")
    fused = json.load(open(fused_path)) if os.path.exists(fused_path) else []

    def target(fqn):
        for p in sorted(fused, key=len):
            if fqn.startswith(p + "."):
                return p
        return fqn
    renamed = {}
    for fqn, flags in merged.items():
        old = renamed.get(target(fqn), [False, False, False])
        renamed[target(fqn)] = [a or b for a, b in zip(old, flags)]
    merged = renamed
    # qreport's quantization-error detector (not PyTorch's) asks for HistogramObserver where its range gains
    # at least --histogram-min-gain (0.5 dB) of input SQNR over MinMaxObserver's. The expectation comes from
    # PyTorch's side alone: input_sqnr.json (tests/parity/input_oracle.py, PyTorch's observers and
    # fake-quantize on the recorded inputs). qreport estimates each SQNR within 0.25 dB
    # (test_quantization_error), so a gain within 0.5 dB of the threshold may go either way. Dynamic
    # quantization takes precedence (it computes its range per call).
    error_options = got_all["detectors"].get("quantization_error_detector", {}).get("options")
    histogram, either = set(), set()
    if error_options is not None:  # the error detector ran
        sqnr_path = os.path.join(os.path.dirname(sys.argv[2]), "input_sqnr.json")
        if not os.path.exists(sqnr_path):
            raise Mismatch("the fixture has no input_sqnr.json (PyTorch's input SQNRs): run make_fixtures.py again")
        threshold = error_options["histogram_min_gain_db"]
        for fqn, e in json.load(open(sqnr_path)).items():
            if e["minmax_db"] is None or e["histogram_db"] is None:
                continue
            gain = e["histogram_db"] - e["minmax_db"]
            if abs(gain - threshold) <= 0.5:
                either.add(target(fqn))
            elif gain >= threshold:
                histogram.add(target(fqn))
    # Where the error detector ran, the measured per-channel gain decides the weight observer.
    per_channel = {fqn: f[1] for fqn, f in merged.items()}
    if "quantization_error_detector" in got_all["detectors"]:
        for fqn, g in per_channel_gains(os.path.join(os.path.dirname(sys.argv[2]), "model.pt")).items():
            if target(fqn) in per_channel:
                per_channel[target(fqn)] = g > 0
    want_q = {fqn: {"activation": "default_dynamic_quant_observer" if f[0] else
                    "default_histogram_observer" if fqn in histogram else "default_observer",
                    "weight": "default_per_channel_weight_observer" if per_channel[fqn] else "default_weight_observer"}
              for fqn, f in merged.items()}
    if set(got_all["qconfig_mapping"]) != set(want_q):
        raise Mismatch(f"qconfig_mapping keys {sorted(got_all['qconfig_mapping'])} != {sorted(want_q)}")
    for fqn, w in want_q.items():
        got_activation = got_all["qconfig_mapping"][fqn]["activation"]
        if fqn in either and w["activation"] != "default_dynamic_quant_observer" and got_activation in (
                "default_histogram_observer", "default_observer"):
            counter[0] += 1
        else:
            compare_values(got_activation, w["activation"], f"qconfig.{fqn}", counter)
        compare_values(got_all["qconfig_mapping"][fqn]["weight"], w["weight"], f"qconfig.{fqn}", counter)
    if set(got_all["equalization_mapping"]) != set(want_q):
        raise Mismatch("equalization_mapping keys differ from the qconfig mapping's")
    print(f"parity {name}: {counter[0]} values compared, all equal")


if __name__ == "__main__":
    try:
        main()
    except Mismatch as e:
        print(f"parity {sys.argv[3]}: MISMATCH {e}")
        sys.exit(1)
