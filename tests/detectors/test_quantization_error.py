#!/usr/bin/python3
"""The quantization-error detector against an oracle built from PyTorch's own observers and
fake-quantize functions, on the eager model that was scripted into each fixture:
  * weight SQNR per tensor / per channel: default_weight_observer / default_per_channel_weight_observer,
    torch.fake_quantize_per_tensor_affine / torch.fake_quantize_per_channel_affine, within 0.01 dB;
  * input qparams: MinMaxObserver and HistogramObserver (quint8, reduce_range as get_default_qconfig("x86"))
    fed with every input of the layer, batch by batch: scale within rel 1e-5, zero point exact. PyTorch
    1.13's HistogramObserver truncates its torch.histc bounds to integers (docs/differences.md); the oracle
    runs it with that one call corrected, and the test shows what the uncorrected one loses;
  * input SQNR: qreport's estimate from the histogram within 0.25 dB of the exact measurement (every input
    fake-quantized with those qparams);
  * --simulate: the model's output SQNR, and each observed layer's, with every Linear/Conv input and weight
    fake-quantized (default_qconfig, then qreport's recommended mapping), within 0.1 dB of the same
    simulation in Python: forward pre-hooks and F.linear substituted with PyTorch's fake-quantize functions;
  * on a model built to show them: a Linear whose input has an outlier feature gains from the histogram
    range, a conv whose output channels have widely spread weight ranges gains from per-channel weights,
    and the qconfig mapping picks the histogram observer exactly where the gain passes the bound.
Usage: test_quantization_error.py QREPORT FIXTURES_DIR SOURCE_DIR"""
import builtins
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
QREPORT, FIX, SRC = sys.argv[1:4]
for sub in ("data", "tests/parity", "tests/features"):
    sys.path.insert(0, os.path.join(SRC, sub))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch.ao.quantization.observer as observer_module  # noqa: E402
from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver  # noqa: E402

import feature_oracle  # noqa: E402
import fixtures  # noqa: E402
import transformer_fixtures  # noqa: E402
from error_oracle import fq_weight, histc_bounds_as_floats, sqnr, weight_sqnrs  # noqa: E402
from make_fixtures import save_batches  # noqa: E402

torch.set_num_threads(1)
failures = []
checked = {"weight_db": 0, "qparams": 0, "input_db": 0, "simulated_db": 0}
worst_input_gap = [0.0, ""]
worst_simulated_gap = [0.0, ""]


def check(ok, what):
    if not ok:
        failures.append(what)


def input_oracle(xs, quant_max):
    mm = MinMaxObserver(quant_min=0, quant_max=quant_max)
    hist = HistogramObserver(quant_min=0, quant_max=quant_max)
    for x in xs:
        mm(x.float())
        hist(x.float())
    out = {}
    for name, obs in (("minmax", mm), ("histogram", hist)):
        s, z = obs.calculate_qparams()
        s, z = float(s), int(z)
        sig = noise = 0.0
        for x in xs:
            x = x.float()
            fq = torch.fake_quantize_per_tensor_affine(x, s, z, 0, quant_max)
            sig += x.double().square().sum().item()
            noise += (x - fq).double().square().sum().item()
        out[name] = (s, z, sqnr(sig, noise))
    return out


def run_qreport(d, *extra):
    detectors = [] if "--detectors" in extra else ["--detectors", "error"]
    r = subprocess.run([QREPORT, "analyze", f"{d}/model.pt", "--calib", f"{d}/calib.pt", *detectors,
                        "--format", "json", "--threads", "1", "-q", *extra], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"qreport failed on {d}: {r.stderr}")
    return json.loads(r.stdout)


def close_db(got, want, tol):
    if want is None:
        return got is None
    return got is not None and abs(got - want) <= tol


def compare(name, model, batches, d, quant_max=127):
    report = run_qreport(d)
    mods = report["detectors"]["quantization_error_detector"]["modules"]
    inputs, _ = feature_oracle.record(model, batches)
    named = dict(model.named_modules())
    want_fqns = [f for f, m in named.items() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    check(sorted(mods) == sorted(want_fqns), f"{name}: modules {sorted(mods)} != {sorted(want_fqns)}")
    oracle = {}
    for fqn in want_fqns:
        if fqn not in mods:
            continue
        got = mods[fqn]
        wt, wc = weight_sqnrs(named[fqn].weight)
        check(close_db(got["weight_sqnr_per_tensor_db"], wt, 0.01),
              f"{name}.{fqn}: weight per tensor {got['weight_sqnr_per_tensor_db']} != {wt}")
        check(close_db(got["weight_sqnr_per_channel_db"], wc, 0.01),
              f"{name}.{fqn}: weight per channel {got['weight_sqnr_per_channel_db']} != {wc}")
        checked["weight_db"] += 2
        if fqn not in inputs:
            check(got["input_sqnr_minmax_db"] is None, f"{name}.{fqn}: input SQNR without an input")
            continue
        o = input_oracle(inputs[fqn], quant_max)
        oracle[fqn] = o
        for kind in ("minmax", "histogram"):
            s, z, db = o[kind]
            gs, gz = got[f"input_{kind}_scale"], got[f"input_{kind}_zero_point"]
            check(gs is not None and math.isclose(gs, s, rel_tol=1e-5) and gz == z,
                  f"{name}.{fqn}: {kind} qparams ({gs}, {gz}) != PyTorch's ({s}, {z})")
            checked["qparams"] += 1
            g = got[f"input_sqnr_{kind}_db"]
            check(close_db(g, db, 0.25), f"{name}.{fqn}: input SQNR ({kind}) {g} dB, exact {db} dB")
            if g is not None and db is not None and abs(g - db) > worst_input_gap[0]:
                worst_input_gap[:] = [abs(g - db), f"{name}.{fqn} ({kind})"]
            checked["input_db"] += 1
    return report, oracle


def flat(out):
    if torch.is_tensor(out):
        return [out.detach()] if out.is_floating_point() else []
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flat(o)]
    return []


def site_of(named, fqn):
    """The call site prepare_fx (and qreport) observe for a Linear/Conv: its fused parent, else itself."""
    from torch.ao.nn.intrinsic import _FusedModule
    parent = fqn.rpartition(".")[0]
    return parent if parent and isinstance(named.get(parent), _FusedModule) else fqn


def oracle_mapping(model, report, oracle):
    """The recommended configuration per Linear/Conv, from PyTorch's side: per-channel weights exactly where
    PyTorch's observers give per-channel a higher weight SQNR; the histogram range where the exact input
    SQNR gain is at least 0.5 dB. qreport decides the latter from its estimate (within 0.25 dB): within
    0.3 dB of the bound, and for dynamic quantization (the dynamic-vs-static detector's, checked by the
    parity suite), qreport's choice is taken. The report's mapping must equal this one."""
    named = dict(model.named_modules())
    errors = report["detectors"]["quantization_error_detector"]["modules"]
    out = {}
    for fqn, m in named.items():
        if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            continue
        wt, wc = weight_sqnrs(m.weight)
        weight = "default_per_channel_weight_observer" if wt is not None and wc is not None and wc > wt else \
            "default_weight_observer"
        mine = errors.get(fqn, {}).get("recommended_activation_observer", "default_observer")
        act = "default_observer"
        if fqn in oracle and oracle[fqn]["histogram"][2] is not None and oracle[fqn]["minmax"][2] is not None:
            gain = oracle[fqn]["histogram"][2] - oracle[fqn]["minmax"][2]
            act = "default_histogram_observer" if gain >= 0.5 else "default_observer"
            if abs(gain - 0.5) < 0.3:
                act = mine
        if mine == "default_dynamic_quant_observer":
            act = mine
        out[fqn] = {"activation": act, "weight": weight}
    return out


def simulate_oracle(model, batches, report, oracle):
    """The model's output SQNR and each site's, with fake-quantized Linear/Conv inputs and weights."""
    named = dict(model.named_modules())
    lincon = [f for f, m in named.items() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    mapping = oracle_mapping(model, report, oracle)
    for fqn, want in mapping.items():
        got = report["qconfig_mapping"].get(site_of(named, fqn))
        check(got is not None and got["activation"] == want["activation"] and got["weight"] == want["weight"],
              f"qconfig_mapping[{site_of(named, fqn)}] {got} != PyTorch's decision {want}")

    def entry(fqn):
        return mapping[fqn]

    def act_fq(fqn, config, x):
        if config == "default_qconfig" or entry(fqn)["activation"] == "default_observer":
            s, z, _ = oracle[fqn]["minmax"]
        elif entry(fqn)["activation"] == "default_histogram_observer":
            s, z, _ = oracle[fqn]["histogram"]
        else:  # dynamic: the call's own range
            obs = MinMaxObserver(quant_min=0, quant_max=127)
            obs(x)
            s, z = obs.calculate_qparams()
            s, z = float(s), int(z)
        return torch.fake_quantize_per_tensor_affine(x, s, z, 0, 127)

    def w_fq(fqn, config):
        per_channel = config == "recommended" and entry(fqn)["weight"] == "default_per_channel_weight_observer"
        return fq_weight(named[fqn].weight, per_channel)

    sites = sorted({site_of(named, f) for f in lincon if f in oracle})
    got_sites = sorted(report["simulation"]["default_qconfig"]["layers_output_sqnr_db"])
    check(got_sites == sites, f"--simulate sites {got_sites} != the observed Linear/Conv call sites {sites}")
    linear_of = {id(named[f].weight): f for f in lincon if isinstance(named[f], nn.Linear)}
    state = {"config": None, "outputs": {}}
    real_linear = F.linear

    def linear(x, w, b=None):
        fqn = linear_of.get(id(w))
        if fqn is not None and state["config"]:
            x, w = act_fq(fqn, state["config"], x), state["weights"][fqn]
        y = real_linear(x, w, b)
        if fqn in sites:
            state["outputs"].setdefault(fqn, []).append(y.detach())
        return y

    hooks = []
    for f in lincon:
        if isinstance(named[f], nn.Linear):
            continue
        hooks.append(named[f].register_forward_pre_hook(
            lambda m, inp, f=f: (act_fq(f, state["config"], inp[0]),) + tuple(inp[1:]) if state["config"] else None))
    for s in sites:
        if not isinstance(named[s], nn.Linear):
            hooks.append(named[s].register_forward_hook(
                lambda m, inp, out, s=s: state["outputs"].setdefault(s, []).append(out.detach())))
    F.linear = linear
    sums = {c: {"out": [0.0, 0.0], **{s: [0.0, 0.0] for s in sites}} for c in ("default_qconfig", "recommended")}
    originals = {f: named[f].weight.detach().clone() for f in lincon}
    try:
        with torch.enable_grad():
            for b in batches:
                state["config"], state["outputs"] = None, {}
                ref = flat(model(*b))
                ref_layers = state["outputs"]
                for c in ("default_qconfig", "recommended"):
                    state["config"], state["outputs"] = c, {}
                    state["weights"] = {f: w_fq(f, c) for f in lincon}
                    with torch.no_grad():
                        for f in lincon:
                            if not isinstance(named[f], nn.Linear):
                                named[f].weight.copy_(state["weights"][f])
                    got = flat(model(*b))
                    with torch.no_grad():
                        for f in lincon:
                            named[f].weight.copy_(originals[f])
                    check(len(ref) == len(got), f"{c}: {len(got)} outputs, float model {len(ref)}")
                    for r, g in zip(ref, got):
                        sums[c]["out"][0] += r.double().square().sum().item()
                        sums[c]["out"][1] += (r.double() - g.double()).square().sum().item()
                    for s in sites:
                        check(len(ref_layers.get(s, [])) == len(state["outputs"].get(s, [])) > 0,
                              f"{c}: {s} called {len(state['outputs'].get(s, []))} times, float "
                              f"{len(ref_layers.get(s, []))}")
                        for r, g in zip(ref_layers.get(s, []), state["outputs"].get(s, [])):
                            sums[c][s][0] += r.double().square().sum().item()
                            sums[c][s][1] += (r.double() - g.double()).square().sum().item()
    finally:
        F.linear = real_linear
        for h in hooks:
            h.remove()
    return {c: {k: sqnr(*v) for k, v in d.items()} for c, d in sums.items()}


def compare_simulation(name, model, batches, d, oracle):
    report = run_qreport(d, "--detectors", "all", "--simulate")
    want = simulate_oracle(model, batches, report, oracle)
    for c, layers in want.items():
        got = report["simulation"][c]
        check(close_db(got["output_sqnr_db"], layers["out"], 0.1),
              f"{name} --simulate {c}: output SQNR {got['output_sqnr_db']} dB, Python {layers['out']} dB")
        checked["simulated_db"] += 1
        gap = abs(got["output_sqnr_db"] - layers["out"]) if got["output_sqnr_db"] is not None and layers["out"] else 0
        if gap >= worst_simulated_gap[0]:
            worst_simulated_gap[:] = [gap, f"{name} {c}: {got['output_sqnr_db']:.2f} dB"]
        for s, db in layers.items():
            if s == "out":
                continue
            check(s in got["layers_output_sqnr_db"] and close_db(got["layers_output_sqnr_db"][s], db, 0.1),
                  f"{name} --simulate {c}: {s} {got['layers_output_sqnr_db'][s]} dB, Python {db} dB")
            checked["simulated_db"] += 1
    return report


def check_truncation_bug_shown():
    """What the correction changes: uncorrected 1.13 drops every value outside [int(min), int(max)]. PyTorch 2.x
    passes the float bounds itself (no int() to shadow): there, only that every value is counted."""
    x = torch.linspace(-0.5, 2.7, 1000)
    if tuple(builtins.int(v) for v in torch.__version__.split(".")[:2]) < (2, 0):
        saved = observer_module.__dict__.pop("int", None)
        try:
            h = HistogramObserver(quant_min=0, quant_max=127)
            h(x)
            dropped = 1000 - h.histogram.sum().item()
        finally:
            if saved is not None:
                observer_module.int = saved
        check(dropped > 300, f"uncorrected HistogramObserver dropped only {dropped} of 1000 values")
    h = HistogramObserver(quant_min=0, quant_max=127)
    h(x)
    check(h.histogram.sum().item() == 1000, "corrected HistogramObserver does not count every value")


class Gains(nn.Module):
    """fc's input has one feature 30 times wider than the other 255 (an outlier channel); conv's output
    channels have weights of very different magnitudes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3)
        self.fc = nn.Linear(256, 4)
        with torch.no_grad():
            self.conv.weight.mul_(torch.logspace(-3, 0, 8).view(8, 1, 1, 1))

    def forward(self, x, f):
        return self.conv(x).mean(), self.fc(f)


def gains_fixture(d):
    torch.manual_seed(13)
    model = Gains().eval()
    batches = []
    for i in range(6):
        f = torch.randn(256, 256)
        f[:, 3] *= 30
        f *= 1 + i / 4  # ranges that grow: the histogram merge path runs
        batches.append((torch.randn(2, 4, 8, 8), f))
    os.makedirs(d, exist_ok=True)
    torch.jit.save(torch.jit.script(model), f"{d}/model.pt")
    save_batches(batches, f"{d}/calib.pt")
    return model, batches


class Degenerate(nn.Module):
    """zero: an all-zero weight (no signal); flat: a conv whose input is constant."""

    def __init__(self):
        super().__init__()
        self.zero = nn.Linear(4, 4)
        self.flat = nn.Conv2d(2, 2, 1)
        with torch.no_grad():
            self.zero.weight.zero_()

    def forward(self, x):
        return self.zero(x), self.flat(torch.ones(1, 2, 3, 3))


def check_degenerate(tmp):
    """A zero signal or a constant input gives null, with a warning naming why; never NaN or Infinity."""
    d = f"{tmp}/degenerate"
    os.makedirs(d, exist_ok=True)
    torch.jit.save(torch.jit.script(Degenerate()), f"{d}/model.pt")
    save_batches([(torch.randn(3, 4),) for _ in range(2)], f"{d}/calib.pt")
    r = subprocess.run([QREPORT, "analyze", f"{d}/model.pt", "--calib", f"{d}/calib.pt", "--detectors", "error",
                        "--format", "json"], capture_output=True, text=True)
    check(r.returncode == 0, f"degenerate: exit {r.returncode}: {r.stderr}")
    check("NaN" not in r.stdout and "Infinity" not in r.stdout, "degenerate: non-finite number in the JSON")
    j = json.loads(r.stdout)
    m = j["detectors"]["quantization_error_detector"]["modules"]
    check(m["zero"]["weight_sqnr_per_tensor_db"] is None and m["zero"]["weight_sqnr_per_channel_db"] is None,
          f"degenerate: zero weight {m['zero']}")
    check(m["zero"]["input_sqnr_minmax_db"] is not None, "degenerate: zero's input is measurable")
    check(m["flat"]["input_sqnr_minmax_db"] is None and m["flat"]["input_sqnr_histogram_db"] is None,
          f"degenerate: constant input {m['flat']}")
    want = ["quantization_error_detector: weight SQNR per tensor of 'zero' is null: the signal is zero",
            "quantization_error_detector: input SQNR of 'flat' is null: its input is constant"]
    for w in want:
        check(w in j["warnings"], f"degenerate: warning {w!r} missing from {j['warnings']}")


def main():
    histc_bounds_as_floats()
    check_truncation_bug_shown()
    cases = []
    for name in ("resnet18", "mobilenet_v2"):
        model, batches = fixtures.fused(name)
        cases.append((name, model.eval(), batches, f"{FIX}/parity/{name}"))
    for name in ("encoder_batch_first", "hand_attention"):
        model, batches, _ = transformer_fixtures.FEATURES[name]()
        cases.append((name, model.eval(), batches, f"{FIX}/features/{name}"))
    tmp = tempfile.mkdtemp(prefix="qreport-error-")
    check_degenerate(tmp)
    model, batches = gains_fixture(f"{tmp}/gains")
    cases.append(("gains", model, batches, f"{tmp}/gains"))
    for name, model, batches, d in cases:
        report, oracle = compare(name, model, batches, d)
        if name in ("resnet18", "encoder_batch_first", "gains"):
            compare_simulation(name, model, batches, d, oracle)
        if name == "gains":
            m = report["detectors"]["quantization_error_detector"]["modules"]
            hg = m["fc"]["input_histogram_gain_db"]
            exact_hg = oracle["fc"]["histogram"][2] - oracle["fc"]["minmax"][2]
            check(hg is not None and hg > 1 and exact_hg > 1, f"gains: fc histogram gain {hg} dB (exact {exact_hg})")
            check(m["fc"]["recommended_activation_observer"] == "default_histogram_observer", "gains: fc not histogram")
            cg = m["conv"]["weight_per_channel_gain_db"]
            check(cg is not None and cg > 5, f"gains: conv per-channel gain {cg} dB")
            check(m["conv"]["recommended_activation_observer"] == "default_observer", "gains: conv has no outliers")
            worst = report["detectors"]["quantization_error_detector"]["worst_layers"]
            check([w["fqn"] for w in worst] == sorted(m, key=lambda f: m[f]["sqnr_db"]), f"gains: ranking {worst}")
            # The mapping follows the bound: above the measured gain, min/max again.
            r2 = run_qreport(d, "--histogram-min-gain", str(math.ceil(hg + 1)))
            check(r2["qconfig_mapping"]["fc"]["activation"] == "default_observer", "gains: bound not applied")
            check(report["qconfig_mapping"]["fc"]["activation"] == "default_histogram_observer", "gains: mapping")
            check(report["qconfig_mapping"]["conv"]["weight"] == "default_per_channel_weight_observer", "gains: conv")
    print(f"checked {checked['weight_db']} weight SQNRs, {checked['qparams']} input qparams, {checked['input_db']} "
          f"input SQNRs, {checked['simulated_db']} simulated SQNRs on {len(cases)} models; largest input SQNR estimate error {worst_input_gap[0]:.3f} dB "
          f"({worst_input_gap[1]}); largest simulated output SQNR error {worst_simulated_gap[0]:.4f} dB "
          f"({worst_simulated_gap[1]})")
    if failures:
        for f in failures[:40]:
            print("FAIL", f)
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
