#!/usr/bin/python3
"""Runs the code of docs/python.md on a qreport JSON report and prepare_fx/convert_fx's the fixture model
with the result: the documented lines work, and the mapping reaches PyTorch's quantization.
Usage: test_python_mapping.py QREPORT FIXTURES_DIR SOURCE_DIR"""
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

report = os.path.join(tempfile.mkdtemp(), "report.json")
subprocess.run([QREPORT, "analyze", f"{FIX}/parity/conv_bn_relu/model.pt", "--calib",
                f"{FIX}/parity/conv_bn_relu/calib.pt", "--format", "json", "-o", report, "-q"], check=True)

# The first python block of the doc defines mappings_from_report().
doc = open(os.path.join(SRC, "docs", "python.md")).read()
blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
namespace = {}
exec(blocks[0], namespace)

model, batches = fixtures.conv_bn_relu()
model.eval()
qconfig_mapping, equalization_mapping = namespace["mappings_from_report"](report, model)
prepared = prepare_fx(model, qconfig_mapping, batches[0], _equalization_config=equalization_mapping)
for b in batches:
    prepared(*b)

failures = []
qmap = prepared._qconfig_map
# The report maps conv1.0 and conv2.0 (children of the fused modules) to per-channel weights; in the
# unfused model they are conv1 and conv2.
for name in ("conv1", "conv2"):
    q = qmap.get(name)
    if q is None or not isinstance(q.weight(), PerChannelMinMaxObserver):
        failures.append(f"{name}: qconfig {q}")
if qmap.get("fc") is None:
    failures.append("fc: no qconfig")
quantized = convert_fx(prepared)
qscheme = quantized.conv1.weight().qscheme()
if qscheme not in (torch.per_channel_affine, torch.per_channel_symmetric):
    failures.append(f"conv1 weight qscheme {qscheme}")
out = quantized(*batches[0])
if out.shape != (2, 5):
    failures.append(f"quantized output shape {tuple(out.shape)}")
print("\n".join(failures) or "ok: docs/python.md mapping prepared and converted the model")
sys.exit(1 if failures else 0)
