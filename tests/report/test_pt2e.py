#!/usr/bin/python3
"""The report's "pt2e" key (issue 25 item 5) round-tripped through torchao 0.18.0's PT2E flow: its `python`
snippet is executed as docs/python.md says (torch.export -> prepare_pt2e with X86InductorQuantizer ->
calibrate -> convert_pt2e) and the converted graph is read back. Expected, from the report's own
qconfig_mapping and plan (not from the pt2e key), with the PT2E module name of a layer taken from the eager
model (a MultiheadAttention's projections: the MultiheadAttention):
  * a Linear/Conv node is quantized (its weight and input come through dequantize nodes) exactly where the
    report quantizes its module, and stays float where it keeps it in float or never names it;
  * in a dynamic report the input's qparams are computed per call (choose_qparams), in a static one they
    are constants;
  * the same with `quantizer.set_global(config)` added: the None entries keep their modules in float, and the
    check fails when they are dropped (a control run);
  * the .pt and .pt2 reports of one model carry the same pt2e settings.
The Conv1d and Conv3d layers the quantizer cannot quantize by name are listed in not_expressed, not named.
Models: a conv net whose conv2 the int8-static plan keeps in float and whose Linear layers see batches of
very different scales (dynamic advice: kept in float by a static quantizer), and a TransformerEncoderLayer
with a Linear head under an int8-dynamic plan, a model with a Conv1d, a Conv3d, a Conv2d and a Linear, the
same with its Conv1d fused into a ConvReLU1d, and (.pt only) subclasses of nn.Linear and nn.Conv2d. Default
build only: exits 77 without torchao's PT2E.
Usage: test_pt2e.py QREPORT"""
import copy
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
QREPORT = sys.argv[1]
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # noqa: F401
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer  # noqa: F401
    assert hasattr(torch.export, "save")
except Exception as e:  # noqa: BLE001
    print(f"skipped: no torchao PT2E or torch.export here ({type(e).__name__}: {e})")
    sys.exit(77)

torch.manual_seed(0)
torch.set_num_threads(1)
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


class ConvNet(nn.Module):
    """conv2's input channel 1 is x100 and its weight column /100: the sensitive layer an int8-static plan
    keeps in float (as in tests/pipeline/test_sensitivity.py). The second input scales the Linear layers'
    input, by 1 to 1000 across batches: their outputs alone are non-stationary (dynamic advice)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 10)
        with torch.no_grad():
            self.conv1.weight[1] *= 100
            self.conv1.bias[1] *= 100
            self.conv2.weight[:, 1] /= 100
            self.bn1.running_mean.uniform_(-0.1, 0.1)
            self.bn1.running_var.uniform_(0.9, 1.1)

    def forward(self, x, s):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        h = h.mean(dim=(2, 3)) * s
        return self.fc2(F.relu(self.fc1(h)))


class Mixed(nn.Module):
    """Layers of every kind the report advises: a Conv1d followed by an nn.ReLU module, a Conv3d (neither
    quantizable by name), a Conv2d and a Linear. Fused (fuse_modules on c1d and relu), c1d is a ConvReLU1d
    that the quantizer quantizes by its name."""

    def __init__(self):
        super().__init__()
        self.c1d = nn.Conv1d(4, 8, 3)
        self.relu = nn.ReLU()
        self.c3d = nn.Conv3d(2, 4, 3)
        self.c2d = nn.Conv2d(2, 4, 3)
        self.fc = nn.Linear(16, 6)

    def forward(self, x, y, z):
        a = self.relu(self.c1d(x)).mean(-1)
        b = self.c3d(y).mean((2, 3, 4))
        c = self.c2d(z).mean((2, 3))
        return self.fc(torch.cat([a, b, c], 1))


class ScaledLinear(nn.Linear):
    pass


class MyConv(nn.Conv2d):
    pass


class Subclassed(nn.Module):
    """Subclasses of nn.Linear and nn.Conv2d (the TorchScript report advises them like their base class; the
    quantizer does not quantize them by name) beside a plain nn.Linear."""

    def __init__(self):
        super().__init__()
        self.conv = MyConv(3, 4, 3)
        self.scaled = ScaledLinear(4, 8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(F.relu(self.scaled(self.conv(x).mean((2, 3)))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.head = nn.Linear(32, 8)

    def forward(self, x):
        return self.head(self.layer(x))


def write(d, model, batches):
    torch.jit.save(torch.jit.script(model), f"{d}/model.pt")
    torch.export.save(torch.export.export(model, batches[0]), f"{d}/model.pt2")
    torch.save(batches, f"{d}/calib.pt")


def analyze(d, ext, *extra):
    out = f"{d}/report{ext}{'-plan' if extra else ''}.json"
    r = subprocess.run([QREPORT, "analyze", f"{d}/model{ext}", "--calib", f"{d}/calib.pt", "--format", "json",
                        "-o", out, "-q", "--threads", "1", *extra], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"qreport analyze {ext} {' '.join(extra)}: exit {r.returncode}: {r.stderr}")
    return json.load(open(out))


def shown(d, ext, python, *extra):
    """The text and HTML reports of the same run show the JSON's pt2e.python, byte for byte."""
    for fmt in ("text", "html"):
        r = subprocess.run([QREPORT, "analyze", f"{d}/model{ext}", "--calib", f"{d}/calib.pt", "--format", fmt,
                            "-q", "--threads", "1", *extra], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"qreport analyze --format {fmt}: exit {r.returncode}: {r.stderr}")
        if fmt == "text":
            check("\n== PT2E (X86InductorQuantizer) ==\n" + python in r.stdout, "text report lacks pt2e.python")
        else:
            m = re.search(r'<section id="pt2e">.*?<pre>(.*?)</pre>', r.stdout, flags=re.S)
            check(m is not None and html.unescape(m.group(1)) == python, "HTML report lacks pt2e.python")


def mha_children(model):
    """Layers a MultiheadAttention applies itself (F.multi_head_attention_forward): torchao 0.18.0's
    X86InductorQuantizer finds no linear there in torch.export's graph (no nn.Linear/F.linear source
    partition), so they stay in float whatever the settings; the report must not name them."""
    return {f"{name}.{child}" for name, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)
            for child in ("in_proj", "out_proj")}


def by_name(m):
    """Whether torchao 0.18.0's X86InductorQuantizer can quantize module m by its name: it finds layers
    through source partitions keyed by their exact class, nn.Linear and nn.Conv2d, and nn.Conv1d only in the
    sequence [nn.Conv1d, nn.ReLU] inside the named module (a fused ConvReLU1d, named itself, not its
    child); no Conv3d, no subclass."""
    if isinstance(m, torch.ao.nn.intrinsic._FusedModule):
        return type(m[0]) in (nn.Linear, nn.Conv2d) or (type(m[0]) is nn.Conv1d and type(m[1]) is nn.ReLU)
    return type(m) in (nn.Linear, nn.Conv2d)


def no_annotator(model):
    return {name for name, m in model.named_modules() if not by_name(m)}


def expected(report, model):
    """(is_dynamic, {module name: quantized}, [layers advised quantized that it cannot quantize]) from the
    report's qconfig_mapping and plan, by the rules of docs/python.md, "PT2E" (written independently of
    lib/report/pt2e_report.cpp)."""
    plan = report.get("plan")
    keep = set(plan["keep_float"]) if plan and plan["scheme"] in ("int8-static", "int8-dynamic") else set()
    q = {f: v for f, v in report["qconfig_mapping"].items() if f not in mha_children(model)}
    if plan and plan["scheme"] == "int8-dynamic":
        return True, {f: f not in keep for f in q if f in report["sensitivity"]["layers"]}, []
    adv = {f: q[f]["activation"] == "default_dynamic_quant_observer" for f in q if f not in keep}
    reached = [d for f, d in adv.items() if f not in no_annotator(model)]
    dynamic = bool(reached) and all(reached) and not (plan and plan["scheme"] == "int8-static")
    names, unquantizable = {}, []
    for f in q:
        quantized = f not in keep and (dynamic or not adv[f])
        if quantized and f in no_annotator(model):
            unquantizable.append(f)  # not named, stays in float, listed as not expressed
        else:
            names[f] = quantized
    return dynamic, names, unquantizable


def owner(node, named):
    """The module a node belongs to: the innermost nn_module_stack entry among `named` (a fused ConvReLU1d
    `c1d` rather than its child `c1d.0`), else the innermost entry."""
    path = [v[0].removeprefix("L['self'].") for v in (node.meta.get("nn_module_stack") or {}).values()]
    return next((p for p in reversed(path) if p in named), path[-1] if path else "")


def through_dequantize(arg):
    return isinstance(arg, torch.fx.Node) and "dequantize" in str(arg.target)


def dynamic_qparams(x):
    """x = dequantize(quantize(v, scale, zero_point)): whether the scale is computed per call (a node from
    choose_qparams) rather than a constant."""
    q = x.args[0]
    scale = q.args[1] if isinstance(q, torch.fx.Node) and len(q.args) > 1 else None
    return isinstance(scale, torch.fx.Node)


LAYER_OPS = (torch.ops.aten.linear.default, torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default,
             torch.ops.aten.conv3d.default)


def quantized_layers(gm, named):
    """[(module, weight quantized, input quantized, input qparams dynamic)] of every linear/conv node, the
    module by owner()."""
    out = []
    for n in gm.graph.nodes:
        if n.op == "call_function" and n.target in LAYER_OPS:
            x, w = n.args[0], n.args[1]
            xq = through_dequantize(x)
            out.append((owner(n, named), through_dequantize(w), xq, xq and dynamic_qparams(x)))
    return out


def run_snippet(code, model, batches):
    ns = {"model": model, "example_inputs": batches[0], "calibration_batches": batches}
    exec(code, ns)
    return ns["quantized"]


def verify(name, code, model, batches, dynamic, names, global_config=False):
    """Executes the snippet; returns the differences between the converted graph and the expectation. With
    a global config, what it does to layers the report does not name is the quantizer's business (a Conv3d
    stays float, a Conv1d before an nn.ReLU is quantized), except MultiheadAttention's projections: float."""
    errors = []
    gm = run_snippet(code, model, batches)
    layers = quantized_layers(gm, names)
    mha = {name for name, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    for module, wq, xq, dyn in layers:
        if global_config and module not in names and module not in mha:
            continue
        want = names.get(module, False)
        if wq != want or xq != want:
            errors.append(f"{name}: {module}: weight quantized {wq}, input {xq}, expected {want}")
        elif want and dyn != dynamic:
            errors.append(f"{name}: {module}: input qparams {'dynamic' if dyn else 'static'}, expected "
                          f"{'dynamic' if dynamic else 'static'}")
    seen = {m for m, *_ in layers}
    for module in names:
        if module not in seen:
            errors.append(f"{name}: {module} named by the settings has no linear/conv node")
    gm(*batches[0])  # the converted model runs
    return errors, layers


def round_trip(name, report, model, batches):
    dynamic, names, unquantizable = expected(report, model)
    p = report["pt2e"]
    check(p["quantizer"] == "X86InductorQuantizer", f"{name}: quantizer {p['quantizer']}")
    check(p["is_dynamic"] == dynamic, f"{name}: is_dynamic {p['is_dynamic']}, expected {dynamic}")
    got = {k: v is not None for k, v in p["module_name_qconfig"].items()}
    check(got == names, f"{name}: module_name_qconfig {p['module_name_qconfig']}, expected {names}")
    check(all(v in (None, "dynamic" if dynamic else "static") for v in p["module_name_qconfig"].values()),
          f"{name}: values {p['module_name_qconfig']}")
    head = "no annotator for "
    listed = [n[len(head):n.index(": ")].split(", ") for n in p["not_expressed"] if n.startswith(head)]
    check(listed == ([unquantizable] if unquantizable else []),
          f"{name}: no annotator for {listed}, expected {unquantizable}")
    errors, layers = verify(name, p["python"], model, batches, dynamic, names)
    failures.extend(errors)
    q = sum(1 for _, wq, *_ in layers if wq)
    print(f"{name}: {'dynamic' if dynamic else 'static'}, {q} of {len(layers)} linear/conv nodes quantized, "
          f"kept in float: {sorted(k for k, v in names.items() if not v)}")
    # A report that quantizes nothing would leave the static/dynamic qparams check untested.
    check(q > 0, f"{name}: no linear/conv node quantized")
    # Under a global config too; and without the None entries that must fail (the check can fail).
    with_global = p["python"].replace("\nprepared = ", "\nquantizer.set_global(config)\nprepared = ")
    failures.extend(verify(name + " +set_global", with_global, model, batches, dynamic, names, True)[0])
    kept = [k for k, v in names.items() if not v]
    if kept:
        dropped = "\n".join(line for line in with_global.split("\n")
                            if "# in float" not in line and "set_module_name_qconfig(name, None)" not in line)
        control = verify(name + " control", dropped, model, batches, dynamic, names, True)[0]
        check(len(control) >= len(kept), f"{name}: dropping the None entries went unnoticed")
    return kept


with tempfile.TemporaryDirectory() as d:
    model = ConvNet().eval()
    batches = [(torch.randn(2, 3, 12, 12), torch.full((1,), 10.0 ** (i % 4))) for i in range(8)]
    write(d, model, batches)
    # All layers int8-static give about 15 dB at the output, keeping conv2 about 40 dB: 30 dB is reached by
    # keeping conv2 alone, with a wide margin either side.
    plan = analyze(d, ".pt", "--target-sqnr", "30", "--scheme", "int8-static")
    check(plan["plan"]["keep_float"] and plan["plan"]["reached"], f"conv net: plan {plan['plan']['keep_float']}")
    kept = round_trip("conv net, int8-static plan", plan, model, batches)
    shown(d, ".pt", plan["pt2e"]["python"], "--target-sqnr", "30", "--scheme", "int8-static")
    # docs/python.md, "PT2E", shows this very snippet.
    doc = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../docs/python.md")).read()
    doc = doc[doc.index("## PT2E"):]
    doc = doc[doc.index("```python\n") + len("```python\n"):]
    check(doc[:doc.index("```")] == plan["pt2e"]["python"], "docs/python.md's PT2E snippet is not the conv net's")
    check(len(kept) >= 2, f"conv net: expected the plan's layer and a dynamic-advised one in float, got {kept}")
    pt, pt2 = analyze(d, ".pt"), analyze(d, ".pt2")
    check(pt["pt2e"] == pt2["pt2e"], f"conv net: .pt and .pt2 settings differ: {pt['pt2e']} / {pt2['pt2e']}")
    round_trip("conv net, .pt2 report", pt2, model, batches)

mixed = Mixed().eval()
fused = torch.ao.quantization.fuse_modules(copy.deepcopy(mixed), [["c1d", "relu"]])
for label, model in (("mixed", mixed), ("mixed, fused", fused)):
    with tempfile.TemporaryDirectory() as d:
        batches = [(torch.randn(2, 4, 10), torch.randn(2, 2, 5, 5, 5), torch.randn(2, 2, 6, 6)) for _ in range(6)]
        write(d, model, batches)
        pt, pt2 = analyze(d, ".pt"), analyze(d, ".pt2")
        check(pt["pt2e"] == pt2["pt2e"], f"{label}: .pt and .pt2 settings differ: {pt['pt2e']} / {pt2['pt2e']}")
        check(set(pt["qconfig_mapping"]) == {"c1d", "c3d", "c2d", "fc"}, f"{label}: mapping {list(pt['qconfig_mapping'])}")
        round_trip(label, pt, model, batches)
        round_trip(label + ", .pt2 report", pt2, model, batches)

with tempfile.TemporaryDirectory() as d:
    # .pt only: the .pt2 front end does not recognise a subclass as a layer (its report has no entry for it).
    model = Subclassed().eval()
    batches = [(torch.randn(2, 3, 8, 8),) for _ in range(6)]
    write(d, model, batches)
    pt = analyze(d, ".pt")
    check(set(pt["qconfig_mapping"]) == {"conv", "scaled", "fc"}, f"subclassed: mapping {list(pt['qconfig_mapping'])}")
    round_trip("subclassed", pt, model, batches)

with tempfile.TemporaryDirectory() as d:
    model = Encoder().eval()
    batches = [(torch.randn(2, 6, 32),) for _ in range(6)]
    write(d, model, batches)
    # All Linear layers dynamic give about 42.7 dB at the output, keeping `head` about 51.7 dB: 48 dB keeps
    # one layer and quantizes the rest, so both the None entry and the dynamic qparams are checked.
    plan = analyze(d, ".pt", "--target-sqnr", "48", "--scheme", "int8-dynamic")
    check(plan["plan"]["keep_float"] and plan["plan"]["reached"], f"encoder: plan {plan['plan']['keep_float']}")
    check(plan["pt2e"]["is_dynamic"], "encoder: the int8-dynamic plan is not dynamic")
    round_trip("encoder, int8-dynamic plan", plan, model, batches)
    pt, pt2 = analyze(d, ".pt"), analyze(d, ".pt2")
    check(pt["pt2e"] == pt2["pt2e"], f"encoder: .pt and .pt2 settings differ: {pt['pt2e']} / {pt2['pt2e']}")
    check(not any("self_attn" in k for k in pt2["pt2e"]["module_name_qconfig"]), "encoder: a MultiheadAttention setting")
    check(any("layer.self_attn.out_proj" in n for n in pt2["pt2e"]["not_expressed"]),
          f"encoder: out_proj not listed as not expressed: {pt2['pt2e']['not_expressed']}")
    round_trip("encoder, .pt2 report", pt2, model, batches)

print("\n".join(failures) or "ok: prepare_pt2e/convert_pt2e with the reports' settings quantize exactly what they say")
sys.exit(1 if failures else 0)
