#!/usr/bin/python3
"""One recommendation per layer (issue 21, item 2): on every parity fixture, the qconfig mapping, the
error detector's recommended observers and the per-channel findings come from one decision, and the
weight half of that decision is the one PyTorch's own observers give:
  * the weight observer is default_per_channel_weight_observer exactly where per-channel weights gain
    weight SQNR, computed here with default_weight_observer / default_per_channel_weight_observer and
    torch's fake-quantize functions on the scripted model's weights;
  * every Linear/Conv layer's recommended_activation_observer / recommended_weight_observer equal the
    mapping entry of the module prepare_fx matches (the fused module named in the fixture's fused.json);
  * a per_channel finding exists exactly where the mapping says per-channel and the module does not use
    it, and its text states the measured gain in dB (two decimals);
  * --simulate's "recommended" run reads the same mapping (test_quantization_error.py compares its numbers
    with a Python simulation configured from these recommendations).
And equalization findings follow the module-level decision the detector states in its own text
(PyTorch's share of channels, not any one channel), on the demo model: its conv1.0 has 1/3 channels
benefitting and the text says "We suggest to not use input weight equalization".
Usage: test_one_recommendation.py QREPORT FIXTURES_DIR DEMO_DIR"""
import json
import math
import os
import re
import subprocess
import sys

import torch

from error_oracle import weight_energies

QREPORT, FIX, DEMO = sys.argv[1:4]
torch.set_num_threads(1)
failures = []
checked = [0]


def check(ok, what):
    checked[0] += 1
    if not ok:
        failures.append(what)


def weight_gain(w):
    """PyTorch's per-channel gain in dB: per-tensor noise over per-channel noise (None where either is 0)."""
    sig, nt, nc = weight_energies(w)
    if sig == 0 or nt == 0 or nc == 0:
        return None
    return 10 * math.log10(nt / nc)


def check_equalization_follows_text():
    r = subprocess.run([QREPORT, "analyze", f"{DEMO}/model.pt", "--calib", f"{DEMO}/calib.pt", "--format", "json",
                        "--fail-on", "equalization", "--threads", "1"], capture_output=True, text=True)
    check(r.returncode in (0, 1), f"demo: exit {r.returncode}: {r.stderr}")
    if r.returncode not in (0, 1):
        return
    rep = json.loads(r.stdout)
    text = rep["detectors"]["input_weight_equalization_detector"]["report"]
    said = dict(re.findall(r"For Module (\S+) looked at with axis \d+: \n\tWe suggest to (use|not use) input", text))
    check(said.get("conv1.0") == "not use", f"demo: the fixture changed: {text}")
    want = {f for f, v in said.items() if v == "use"}
    found = set(re.findall(r"qreport: finding: equalization (\S+):", r.stderr))
    check(found == want, f"demo: equalization findings {sorted(found)} != the text's {sorted(want)}")
    check(r.returncode == (1 if want else 0), f"demo: --fail-on equalization exit {r.returncode}")
    fused = {"conv1.0": "conv1", "conv2.0": "conv2"}
    for f, v in said.items():
        got = rep["equalization_mapping"][fused.get(f, f)]["equalization_recommended"]
        check(got == (v == "use"), f"demo: equalization_mapping.{fused.get(f, f)} {got}, the text says {v}")


def main():
    check_equalization_follows_text()
    names = sorted(os.listdir(f"{FIX}/parity"))
    check(len(names) >= 10, f"only {len(names)} parity fixtures")
    for name in names:
        d = f"{FIX}/parity/{name}"
        extra = ["--ch-axis", "1"] if name in ("linear_3d", "spiky") else []
        r = subprocess.run([QREPORT, "analyze", f"{d}/model.pt", "--calib", f"{d}/calib.pt", "--detectors", "all",
                            "--format", "json", "--fail-on", "per_channel", "--threads", "1", *extra],
                           capture_output=True, text=True)
        check(r.returncode in (0, 1), f"{name}: exit {r.returncode}: {r.stderr}")
        if r.returncode not in (0, 1):
            continue
        rep = json.loads(r.stdout)
        fused = json.load(open(f"{d}/fused.json")) if os.path.exists(f"{d}/fused.json") else []

        def target(fqn):
            for p in sorted(fused, key=len):
                if fqn.startswith(p + "."):
                    return p
            return fqn
        mapping = rep["qconfig_mapping"]
        errors = rep["detectors"]["quantization_error_detector"]["modules"]
        modules = dict(torch.jit.load(f"{d}/model.pt").named_modules())
        check(len(errors) > 0, f"{name}: no layer measured")
        for fqn, e in errors.items():
            t = target(fqn)
            check(t in mapping, f"{name}.{fqn}: no mapping entry for {t}")
            if t not in mapping:
                continue
            check(e["recommended_activation_observer"] == mapping[t]["activation"],
                  f"{name}.{fqn}: activation {e['recommended_activation_observer']} != mapping {mapping[t]['activation']}")
            check(e["recommended_weight_observer"] == mapping[t]["weight"],
                  f"{name}.{fqn}: weight {e['recommended_weight_observer']} != mapping {mapping[t]['weight']}")
            g = weight_gain(modules[fqn].weight)
            if g is not None:
                want = "default_per_channel_weight_observer" if g > 0 else "default_weight_observer"
                check(mapping[t]["weight"] == want, f"{name}.{fqn}: PyTorch's per-channel gain {g:.4f} dB, mapping "
                                                    f"{mapping[t]['weight']}")
                check(e["weight_per_channel_gain_db"] is not None and abs(e["weight_per_channel_gain_db"] - g) < 0.01,
                      f"{name}.{fqn}: gain {e['weight_per_channel_gain_db']} dB, PyTorch {g} dB")
        # per_channel findings: exactly where the mapping says per-channel, with the measured gain.
        found = dict(re.findall(r"qreport: finding: per_channel (\S+): (.*)", r.stderr))
        pc = rep["detectors"]["per_channel_detector"]["modules"]
        want = {f for f, m in pc.items() if m["per_channel_quantization_supported"]
                and not m["per_channel_quantization_used"]
                and mapping.get(target(f), {}).get("weight") == "default_per_channel_weight_observer"}
        check(set(found) == want, f"{name}: per_channel findings {sorted(found)} != {sorted(want)}")
        for f in set(found) & want:
            g = errors.get(f, {}).get("weight_per_channel_gain_db")
            if g is not None:
                check(f"per-channel weights gain {g:.2f} dB" in found[f], f"{name}.{f}: finding {found[f]!r}, gain {g}")
            check("barely" not in found[f], f"{name}.{f}: finding {found[f]!r}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"one recommendation: {checked[0]} checks on {len(names)} parity fixtures")


if __name__ == "__main__":
    main()
