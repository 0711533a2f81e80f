#!/usr/bin/python3
"""Runs the code of docs/python.md on a qreport JSON report and prepare_fx/convert_fx's the fixture model
with the result: the documented lines work, and the mapping reaches PyTorch's quantization.
Usage: test_python_mapping.py QREPORT FIXTURES_DIR SOURCE_DIR"""
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
QREPORT, FIX, SRC = sys.argv[1:4]
sys.path.insert(0, os.path.join(SRC, "data"))

import torch  # noqa: E402
from torch.ao.quantization.observer import PerChannelMinMaxObserver  # noqa: E402
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx  # noqa: E402

import fixtures  # noqa: E402

# The docs' first python block defines mappings_from_report().
doc = open(os.path.join(SRC, "docs", "python.md")).read()
blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
namespace = {}
exec(blocks[0], namespace)
failures = []


def quantized(module):
    return type(module).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized",
                                              "torch.nn.quantized", "torch.nn.intrinsic.quantized"))


def check(name, model, batches):
    """Prepares and converts the fused model that was analyzed with the report's mappings; every module
    the report names must come out quantized (a mapping naming conv1.0 would leave ConvReLU2d conv1 float)."""
    report = os.path.join(tempfile.mkdtemp(), "report.json")
    subprocess.run([QREPORT, "analyze", f"{FIX}/parity/{name}/model.pt", "--calib", f"{FIX}/parity/{name}/calib.pt",
                    "--format", "json", "-o", report, "-q"], check=True)
    qconfig_mapping, equalization_mapping = namespace["mappings_from_report"](report, model)
    prepared = prepare_fx(model, qconfig_mapping, batches[0], _equalization_config=equalization_mapping)
    for b in batches:
        prepared(*b)
    converted = convert_fx(prepared)
    modules = dict(converted.named_modules())
    names = list(json.load(open(report))["qconfig_mapping"])
    left_float = [n for n in names if not quantized(modules.get(n))]
    if left_float:
        failures.append(f"{name}: {len(left_float)} of {len(names)} suggested modules stay float: {left_float}")
    converted(*batches[0])
    print(f"{name}: {len(names)} suggested modules, all quantized" if not left_float else failures[-1])
    return converted, prepared


model, batches = fixtures.fused("conv_bn_relu")
quantized_model, prepared = check("conv_bn_relu", model, batches)
# The per-channel advice for the fused conv reaches it.
# (PyTorch 1.13 keeps the resolved qconfigs on the prepared model; 2.x does not, and the converted weight's
# qscheme below asserts the same outcome there.)
if hasattr(prepared, "_qconfig_map"):
    q = prepared._qconfig_map.get("conv1")
    if q is None or not isinstance(q.weight(), PerChannelMinMaxObserver):
        failures.append(f"conv1: qconfig {q}")
qscheme = quantized_model.conv1.weight().qscheme()
if qscheme not in (torch.per_channel_affine, torch.per_channel_symmetric):
    failures.append(f"conv1 weight qscheme {qscheme}")
model, batches = fixtures.fused("resnet18")
check("resnet18", model, batches)
print("\n".join(failures) or "ok: docs/python.md mappings quantize every module the reports suggest")
sys.exit(1 if failures else 0)
