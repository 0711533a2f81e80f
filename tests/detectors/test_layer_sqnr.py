#!/usr/bin/python3
"""sqnr_db is each Linear/Conv layer's output SQNR, checked against an oracle built from PyTorch's own
observers and fake-quantize functions (issue 21, item 1):
  * the oracle records every input of every layer (forward pre-hooks and F.linear), computes the input
    qparams with MinMaxObserver and HistogramObserver (quint8 in [0, 127], get_default_qconfig("x86")),
    the weight's with default_weight_observer / default_per_channel_weight_observer, decides the
    configuration by qreport's documented rule from PyTorch's numbers (per-channel weights where they
    gain weight SQNR; the histogram range where it gains 0.5 dB of input SQNR), and measures
        10 log10( sum y^2 / sum (layer(fq(x), fq(W)) - y)^2 ),  y = layer(x, W),
    over the batches qreport says it measured; qreport's figure must be within 0.5 dB (in practice 1e-3);
  * the x100/÷100 case: a conv (and a Linear) whose input channel 1 is scaled x100 by the layer before
    and whose weight column 1 is divided by 100, the float model unchanged. Its weight and input SQNRs
    look fine; its output SQNR is poor. qreport must rank it worst, and `--fail-on sqnr --min-sqnr 25`
    must exit 1 naming it;
  * resnet18 (the parity fixture): every layer against the oracle; conv1's figures are printed.
Usage: test_layer_sqnr.py QREPORT FIXTURES_DIR SOURCE_DIR"""
import json
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
from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver  # noqa: E402

import feature_oracle  # noqa: E402
import fixtures  # noqa: E402
from error_oracle import fq_weight, histc_bounds_as_floats, sqnr, weight_sqnrs  # noqa: E402
from make_fixtures import save_batches  # noqa: E402

torch.set_num_threads(1)
QMAX = 127
HISTOGRAM_MIN_GAIN = 0.5
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


def input_qparams(xs):
    out = {}
    for name, obs in (("minmax", MinMaxObserver(quant_min=0, quant_max=QMAX)),
                      ("histogram", HistogramObserver(quant_min=0, quant_max=QMAX))):
        for x in xs:
            obs(x.float())
        s, z = obs.calculate_qparams()
        s, z = float(s), int(z)
        sig = noise = 0.0
        for x in xs:
            x = x.float()
            sig += x.double().square().sum().item()
            noise += (x - torch.fake_quantize_per_tensor_affine(x, s, z, 0, QMAX)).double().square().sum().item()
        out[name] = (s, z, sqnr(sig, noise))
    return out


def apply(m, x, w):
    if isinstance(m, nn.Linear):
        return F.linear(x, w, m.bias)
    return m._conv_forward(x, w, m.bias)


def layer_sqnr(m, xs, q, per_channel):
    wq = fq_weight(m.weight, per_channel)
    sig = noise = 0.0
    with torch.no_grad():
        for x in xs:
            y = apply(m, x, m.weight)
            yq = apply(m, torch.fake_quantize_per_tensor_affine(x, q[0], q[1], 0, QMAX), wq)
            sig += y.double().square().sum().item()
            noise += (yq.double() - y.double()).square().sum().item()
    return sqnr(sig, noise)


def oracle(model, batches, measured_batches):
    """Every Linear/Conv layer: PyTorch's numbers and the configurations the rule allows. The qparams come
    from every batch; the output SQNR from the first measured_batches (as qreport reports it did)."""
    named = dict(model.named_modules())
    lincon = [f for f, m in named.items() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    inputs, _ = feature_oracle.record(model, batches)
    first, _ = feature_oracle.record(model, batches[:measured_batches])
    out = {}
    for fqn in lincon:
        m = named[fqn]
        if fqn not in inputs:
            continue
        wt, wc = weight_sqnrs(m.weight)
        qp = input_qparams(inputs[fqn])
        per_channel = wc is not None and wt is not None and wc > wt
        gain = (qp["histogram"][2] - qp["minmax"][2]) if qp["histogram"][2] and qp["minmax"][2] else None
        # qreport decides the histogram range from its estimate of the input SQNR (within 0.25 dB of the
        # exact one): near the bound either choice is allowed, each with its own oracle figure.
        allowed = {}
        if gain is None or gain < HISTOGRAM_MIN_GAIN + 0.3:
            allowed["default_observer"] = layer_sqnr(m, first[fqn], qp["minmax"][:2], per_channel)
        if gain is not None and gain > HISTOGRAM_MIN_GAIN - 0.3:
            allowed["default_histogram_observer"] = layer_sqnr(m, first[fqn], qp["histogram"][:2], per_channel)
        out[fqn] = {"per_channel": per_channel, "allowed": allowed, "weight": (wt, wc), "input": qp}
    return out


def run(d, *extra, quiet=True):
    r = subprocess.run([QREPORT, "analyze", f"{d}/model.pt", "--calib", f"{d}/calib.pt", "--format", "json",
                        "--threads", "1", *(["-q"] if quiet else []), *extra], capture_output=True, text=True)
    return r


def compare(name, model, batches, d, *extra):
    r = run(d, "--detectors", "error", *extra)
    check(r.returncode == 0, f"{name}: exit {r.returncode}: {r.stderr}")
    if r.returncode != 0:
        return None, None
    rep = json.loads(r.stdout)
    det = rep["detectors"]["quantization_error_detector"]
    used = det["error_batches_used"]
    check(used == min(len(batches), det["options"]["error_batches"]), f"{name}: error_batches_used {used}")
    want = oracle(model.eval(), batches, used)
    mods = det["modules"]
    check(sorted(mods) == sorted(want), f"{name}: layers {sorted(mods)} != {sorted(want)}")
    for fqn, w in want.items():
        got = mods.get(fqn)
        if got is None:
            continue
        want_weight = "default_per_channel_weight_observer" if w["per_channel"] else "default_weight_observer"
        check(got["recommended_weight_observer"] == want_weight,
              f"{name}.{fqn}: weight observer {got['recommended_weight_observer']} != {want_weight}")
        act = got["recommended_activation_observer"]
        check(act in w["allowed"], f"{name}.{fqn}: activation observer {act} not in {sorted(w['allowed'])}")
        if act not in w["allowed"]:
            continue
        o = w["allowed"][act]
        check(got["sqnr_db"] is not None and o is not None and abs(got["sqnr_db"] - o) <= 0.5,
              f"{name}.{fqn}: sqnr_db {got['sqnr_db']} dB, PyTorch {o} dB")
    worst = [x["fqn"] for x in det["worst_layers"]]
    ranked = sorted((f for f in mods if mods[f]["sqnr_db"] is not None), key=lambda f: mods[f]["sqnr_db"])
    check(worst == ranked[:len(worst)] and len(worst) == min(len(ranked), det["options"]["worst_layers"]),
          f"{name}: worst_layers {worst} != {ranked[:len(worst)]}")
    return rep, want


class Compensated(nn.Module):
    """pre's output channel 1 is 100 times larger and conv's weight column 1 100 times smaller than in the
    model they come from: the same function, a very different int8 model."""

    def __init__(self, scaled):
        super().__init__()
        self.pre = nn.Conv2d(3, 8, 3, padding=1)
        self.conv = nn.Conv2d(8, 16, 3, padding=1)
        self.head = nn.Conv2d(16, 4, 1)
        if scaled:
            with torch.no_grad():
                self.pre.weight[1] *= 100
                self.pre.bias[1] *= 100
                self.conv.weight[:, 1] /= 100

    def forward(self, x):
        return self.head(F.relu(self.conv(F.relu(self.pre(x)))))


class CompensatedLinear(nn.Module):
    def __init__(self, scaled):
        super().__init__()
        self.pre = nn.Linear(16, 32)
        self.fc = nn.Linear(32, 32)
        self.head = nn.Linear(32, 4)
        if scaled:
            with torch.no_grad():
                self.pre.weight[1] *= 100
                self.pre.bias[1] *= 100
                self.fc.weight[:, 1] /= 100

    def forward(self, x):
        return self.head(F.relu(self.fc(F.relu(self.pre(x)))))


def make(d, cls, shape, scaled):
    torch.manual_seed(21)
    model = cls(scaled).eval()
    batches = [(torch.randn(*shape),) for _ in range(4)]
    os.makedirs(d, exist_ok=True)
    torch.jit.save(torch.jit.script(model), f"{d}/model.pt")
    save_batches(batches, f"{d}/calib.pt")
    return model, batches


def check_compensated(tmp, cls, shape, layer):
    name = cls.__name__
    plain, _ = make(f"{tmp}/{name}-plain", cls, shape, False)
    model, batches = make(f"{tmp}/{name}", cls, shape, True)
    x = batches[0][0]
    check(torch.allclose(plain(x), model(x), rtol=1e-4, atol=1e-4), f"{name}: the scaling changed the float model")
    for extra in ((), ("--error-batches", "4")):
        rep, want = compare(name, model, batches, f"{tmp}/{name}", *extra)
        if rep is None:
            return
        det = rep["detectors"]["quantization_error_detector"]
        got = det["modules"][layer]
        check(det["worst_layers"][0]["fqn"] == layer, f"{name}: worst layer {det['worst_layers'][0]}, not {layer}")
        check(got["sqnr_db"] < 10, f"{name}.{layer}: sqnr_db {got['sqnr_db']} dB is not poor")
        # The diagnostics that missed it: both energy-weighted, both fine.
        check(got["input_sqnr_minmax_db"] > 25 and got["weight_sqnr_per_tensor_db"] > 25,
              f"{name}.{layer}: diagnostics {got['input_sqnr_minmax_db']}, {got['weight_sqnr_per_tensor_db']}")
        act = got["recommended_activation_observer"]
        print(f"{name}.{layer} ({'all' if extra else 'default'} batches): sqnr_db {got['sqnr_db']:.3f} dB, PyTorch "
              f"{want[layer]['allowed'][act]:.3f} dB; input SQNR {got['input_sqnr_minmax_db']:.2f} dB, weight SQNR "
              f"{got['weight_sqnr_per_tensor_db']:.2f} dB")
    r = run(f"{tmp}/{name}", "--detectors", "all", "--fail-on", "sqnr", "--min-sqnr", "25", quiet=False)
    check(r.returncode == 1, f"{name}: --fail-on sqnr --min-sqnr 25 exit {r.returncode}, want 1: {r.stderr}")
    check(f"qreport: finding: sqnr {layer}: " in r.stderr, f"{name}: no sqnr finding for {layer}: {r.stderr}")
    # The plain model's layer is fine: the gate fails on the scaling, not on the architecture.
    r = run(f"{tmp}/{name}-plain", "--detectors", "error", "--fail-on", "sqnr", "--min-sqnr", "25")
    check(r.returncode == 0, f"{name}-plain: --fail-on sqnr exit {r.returncode}: {r.stderr}")


def check_report_from_stats(tmp):
    """qreport report has no data: sqnr_db is null, it says why, and refuses --fail-on sqnr."""
    d = f"{tmp}/Compensated"
    r = run(d, "--detectors", "error", "--save-stats", f"{tmp}/c.qstats")
    check(r.returncode == 0, f"--save-stats: {r.stderr}")
    r = subprocess.run([QREPORT, "report", f"{d}/model.pt", "--stats", f"{tmp}/c.qstats", "--detectors", "error",
                        "--format", "json"], capture_output=True, text=True)
    check(r.returncode == 0, f"report --stats: exit {r.returncode}: {r.stderr}")
    if r.returncode == 0:
        j = json.loads(r.stdout)
        det = j["detectors"]["quantization_error_detector"]
        check(all(m["sqnr_db"] is None for m in det["modules"].values()), "report --stats: sqnr_db not null")
        check(det["error_batches_used"] == 0 and det["worst_layers"] == [], "report --stats: measured something")
        check(any("sqnr_db is null for every layer" in w for w in j["warnings"]), f"report --stats: {j['warnings']}")
    r = subprocess.run([QREPORT, "report", f"{d}/model.pt", "--stats", f"{tmp}/c.qstats", "--detectors", "error",
                        "--fail-on", "sqnr", "--min-sqnr", "25"], capture_output=True, text=True)
    check(r.returncode == 2 and "--fail-on sqnr needs the layers' output SQNR" in r.stderr,
          f"report --stats --fail-on sqnr: exit {r.returncode}: {r.stderr}")


class LogBetween(nn.Module):
    """b(log(a(x))): log of a negative value makes NaN inside the model, from ordinary data."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)
        with torch.no_grad():
            self.a.weight.copy_(torch.eye(4))
            self.a.bias.zero_()

    def forward(self, x):
        return self.b(torch.log(self.a(x)))


def check_invalid_values(tmp):
    """NaN made inside the model (issue 22, item 5): b's SQNR figures are null, the warnings name NaN and the
    first batch, the sqnr gate fails on it, and no detector calls it unobserved or constant."""
    torch.manual_seed(5)
    for name, batches, first in (("nan0", [(torch.randn(8, 4),) for _ in range(3)], 0),
                                 ("nan2", [(torch.rand(8, 4) + 0.1,) for _ in range(2)] + [(torch.randn(8, 4),)], 2)):
        d = f"{tmp}/{name}"
        os.makedirs(d, exist_ok=True)
        torch.jit.save(torch.jit.script(LogBetween().eval()), f"{d}/model.pt")
        save_batches(batches, f"{d}/calib.pt")
        r = subprocess.run([QREPORT, "analyze", f"{d}/model.pt", "--calib", f"{d}/calib.pt", "--format", "json",
                            "--detectors", "all", "--simulate", "--fail-on", "sqnr", "--min-sqnr", "40",
                            "--error-batches", "3"], capture_output=True, text=True)
        check(r.returncode == 1, f"{name}: --fail-on sqnr exit {r.returncode}, want 1: {r.stderr}")
        check(f"qreport: finding: sqnr b: no SQNR: its input contains NaN values made inside the model (first in "
              f"calibration batch {first})" in r.stderr, f"{name}: no NaN finding for b: {r.stderr}")
        if not r.stdout:
            continue
        j = json.loads(r.stdout)
        b = j["detectors"]["quantization_error_detector"]["modules"]["b"]
        check(b["sqnr_db"] is None and b["input_sqnr_minmax_db"] is None and b["input_sqnr_histogram_db"] is None,
              f"{name}: b's SQNR figures are not null: {b}")
        check(b["sqnr_limited_by"] is None, f"{name}: b limited by {b['sqnr_limited_by']}")
        check(b["input_nan_count"] > 0 and b["input_non_finite_first_batch"] == first,
              f"{name}: b's NaN count {b['input_nan_count']}, first batch {b['input_non_finite_first_batch']}")
        a = j["detectors"]["quantization_error_detector"]["modules"]["a"]
        check(a["input_nan_count"] == 0 and a["sqnr_db"] is not None, f"{name}: a {a}")
        text = "\n".join(j["warnings"])
        check(f"sqnr_db of 'b' is null: its input contains" in text and f"NaN" in text and
              f"first in calibration batch {first}" in text, f"{name}: warnings {j['warnings']}")
        for wrong in ("never observed", "a range of 0", "was not observed"):
            check(not any(wrong in w and "'b'" in w for w in j["warnings"]), f"{name}: warning says {wrong!r}: {text}")


def check_stateful_rerun(tmp):
    """A QAT model's fake-quantizers update their ranges on every forward, in eval mode too. The error pass's
    second run of the first batch (--error-memory 0, or a layer whose values were not kept) starts from the
    buffers calibration started with, so it sees that batch as calibration did: the report is the same byte for
    byte either way (the Conv's sqnr_db differed by 6 dB before), and so is what --simulate sees after it."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx
    torch.manual_seed(11)
    x = torch.randn(2, 2, 4, 4)
    qat = prepare_qat_fx(torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.ReLU()).train(),
                         get_default_qat_qconfig_mapping("x86"), (x,))
    qat(x)
    torch.jit.save(torch.jit.script(qat.eval()), f"{tmp}/qat.pt")
    torch.save([x * s for s in (1.0, 4.0, 0.25, 8.0)], f"{tmp}/qat_calib.pt")  # ranges that move
    args = [QREPORT, "analyze", f"{tmp}/qat.pt", "--calib", f"{tmp}/qat_calib.pt", "--format", "json",
            "--detectors", "all", "--simulate"]
    kept = subprocess.run(args, capture_output=True, text=True)
    rerun = subprocess.run(args + ["--error-memory", "0"], capture_output=True, text=True)
    check(kept.returncode == 0 and rerun.returncode == 0 and kept.stdout == rerun.stdout,
          f"QAT model, values kept or run again: exit {kept.returncode}/{rerun.returncode}, reports "
          f"{'equal' if kept.stdout == rerun.stdout else 'differ'}: {kept.stderr[-300:]} {rerun.stderr[-300:]}")
    if kept.returncode == 0 and rerun.returncode == 0:
        got = json.loads(rerun.stdout)["detectors"]["quantization_error_detector"]["modules"]
        check(all(m.get("sqnr_db") is not None for m in got.values()) and got, f"QAT model: sqnr_db {got}")


def check_kept_values(d):
    """The error pass measures from the layer values calibration kept (--error-memory): with none kept (it runs
    the model again), with part of them (a budget of half of what the run keeps) and with all, the report is the
    same, byte for byte."""
    args = ["analyze", f"{d}/model.pt", "--calib", f"{d}/calib.pt", "--format", "json", "--detectors", "all",
            "--error-batches", "2", "--schemes", "int8-dynamic,smoothquant"]
    r = subprocess.run([QREPORT, *args, "-v"], capture_output=True, text=True)
    check(r.returncode == 0, f"kept values: exit {r.returncode}: {r.stderr}")
    kept = [int(line.split()[4]) for line in r.stderr.splitlines() if "bytes of layer values kept" in line]
    check(len(kept) == 1 and kept[0] > 2 << 20, f"kept values: {kept} bytes kept, want more than 2 MiB")
    if r.returncode != 0 or len(kept) != 1:
        return
    for mib in ("0", str(kept[0] // 2 >> 20)):
        other = subprocess.run([QREPORT, *args, "--error-memory", mib], capture_output=True, text=True)
        check(other.returncode == 0 and other.stdout == r.stdout,
              f"--error-memory {mib}: exit {other.returncode}, report differs from keeping all: {other.stderr}")
    for bad in ("-1", str(1 << 31)):
        other = subprocess.run([QREPORT, *args, "--error-memory", bad], capture_output=True, text=True)
        check(other.returncode == 2 and other.stderr ==
              "qreport: error: --error-memory must be a count of MiB from 0 to 1073741824\n",
              f"--error-memory {bad}: exit {other.returncode}: {other.stderr!r}")


def main():
    histc_bounds_as_floats()
    check_invalid_values(tempfile.mkdtemp(prefix="qreport-nan-"))
    tmp = tempfile.mkdtemp(prefix="qreport-layer-sqnr-")
    check_compensated(tmp, Compensated, (2, 3, 16, 16), "conv")
    check_compensated(tmp, CompensatedLinear, (64, 16), "fc")
    check_report_from_stats(tmp)
    check_kept_values(f"{FIX}/parity/resnet18")
    check_stateful_rerun(tmp)
    model, batches = fixtures.fused("resnet18")
    rep, want = compare("resnet18", model.eval(), batches, f"{FIX}/parity/resnet18", "--error-batches", "2")
    if rep:
        got = rep["detectors"]["quantization_error_detector"]["modules"]["conv1.0"]
        w = want["conv1.0"]
        print(f"resnet18 conv1.0: sqnr_db {got['sqnr_db']:.3f} dB, PyTorch "
              f"{w['allowed'][got['recommended_activation_observer']]:.3f} dB; weight {got['weight_sqnr_per_tensor_db']:.2f} "
              f"/ {got['weight_sqnr_per_channel_db']:.2f} dB, input {got['input_sqnr_minmax_db']:.2f} dB")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("layer output SQNR: all checks passed")


if __name__ == "__main__":
    main()
