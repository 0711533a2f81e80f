#!/usr/bin/python3
"""The HTML report on real architectures (mobilenet_v3_small, resnet50, as users script them): under the
1.5 MB budget, summary first (overview, worst layers, findings, then one folded <details> per detector),
one overview column per Linear/Conv layer whose hover text names it, and no chart label overlapping its
neighbour. Usage: test_html_budget.py QREPORT"""
import os
import re
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torchvision  # noqa: E402

QREPORT = sys.argv[1]
BUDGET = 1_500_000
CHAR_WIDTH = 5.6  # the 10px tick font, as lib/report/svg.cpp assumes
failures = []
tmp = tempfile.mkdtemp(prefix="qreport-html-")


def overlapping_labels(page):
    """Axis labels (class tk) on one baseline of one chart whose text boxes overlap."""
    bad = []
    for chart in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        rows = {}
        for x, y, anchor, text in re.findall(
                r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="(middle)" class="tk">([^<]*)</text>', chart):
            rows.setdefault(y, []).append((float(x), len(text)))
        for labels in rows.values():
            labels.sort()
            for (x0, n0), (x1, n1) in zip(labels, labels[1:]):
                if x1 - x0 < (n0 + n1) / 2 * CHAR_WIDTH:
                    bad.append((x0, x1))
    return bad


for name in ("mobilenet_v3_small", "resnet50"):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().eval()
    layers = sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    torch.jit.save(torch.jit.script(model), f"{tmp}/{name}.pt")
    torch.save([torch.randn(2, 3, 96, 96) for _ in range(3)], f"{tmp}/{name}_calib.pt")
    html = f"{tmp}/{name}.html"
    subprocess.run([QREPORT, "analyze", f"{tmp}/{name}.pt", "--calib", f"{tmp}/{name}_calib.pt", "--format", "html",
                    "-o", html, "-q"], check=True)
    size = os.path.getsize(html)
    page = open(html, encoding="utf-8").read()
    print(f"{name}: {size / 1e6:.2f} MB, {layers} Linear/Conv layers")
    if size >= BUDGET:
        failures.append(f"{name}: {size} bytes, over the {BUDGET}-byte budget")
    sections = re.findall(r'<section id="([^"]+)"', page)
    want = ["overview", "worst", "findings", "per_channel_detector", "dynamic_vs_static_detector",
            "input_weight_equalization_detector", "outlier_detector", "quantization_error_detector"]
    if sections != want:
        failures.append(f"{name}: sections {sections}, want {want}")
    for det in want[3:]:
        if not re.search(f'<section id="{det}"><details><summary>', page):
            failures.append(f"{name}: {det} is not folded in a <details>")
    overview = page[page.find('id="overview-chart"'):]
    overview = overview[:overview.find("</svg>")]
    columns = re.findall(r'class="col"><title>([^<]*)</title>', overview)
    if len(columns) != layers:
        failures.append(f"{name}: {len(columns)} overview columns for {layers} layers")
    elif not all(re.match(r"[\w.]+: weight [\d.]+ → [\d.]+ dB, input", c) for c in columns):
        failures.append(f"{name}: overview hover texts {columns[:3]} lack names or values")
    bad = overlapping_labels(page)
    if bad:
        failures.append(f"{name}: {len(bad)} overlapping axis labels, e.g. at x={bad[0]}")
    if "<script" in page.lower():
        failures.append(f"{name}: the page has a script")

print("\n".join(failures) or "ok: summary-first HTML within budget")
sys.exit(1 if failures else 0)
