#!/usr/bin/python3
"""The HTML report on real architectures (mobilenet_v3_small, resnet50, and ViT-B/16 with its 768- and
3072-feature layers, as users script them; random weights): under the 1.5 MB budget, summary first (overview, worst layers, findings, then one folded <details> per detector),
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


# ViT-B/16 at its own 224x224 (its position embedding fixes the size), one image per batch: the page's
# size comes from its layers and their widths, not from the batch. The last case is the fullest overview
# (issue 24 item 7): mobilenet_v3_small's 54 layers with a row for every scheme, the sensitivity bars and a
# plan whose walk keeps many layers (its curve beside the chart); ViT-B/16's sensitivity pass takes minutes.
ALL_SCHEMES = ("int8-static,int8-weight-only,int8-dynamic,int4-weight-only-g32,int4-weight-only-g64,"
               "int4-weight-only-g128,fp8-dynamic,fp8-dynamic-per-row,smoothquant")
PLAN = ["--schemes", ALL_SCHEMES, "--target-sqnr", "40", "--scheme", "fp8-dynamic", "--sensitivity-batches", "1"]
for name, shape, batches, extra in (("mobilenet_v3_small", (2, 3, 96, 96), 3, []),
                                    ("resnet50", (2, 3, 96, 96), 3, []),
                                    ("vit_b_16", (1, 3, 224, 224), 2, []),
                                    ("mobilenet_v3_small", (2, 3, 96, 96), 3, PLAN)):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().eval()
    if name == "vit_b_16":  # torchvision zeroes the head, whose weight SQNR would then have no value
        nn.init.normal_(model.heads.head.weight, std=0.02)
    # Linear subclasses count (MultiheadAttention's out_proj is a NonDynamicallyQuantizableLinear).
    layers = sum(isinstance(m, (nn.Linear, nn.Conv2d)) for m in model.modules())
    torch.jit.save(torch.jit.script(model), f"{tmp}/{name}.pt")
    torch.save([torch.randn(*shape) for _ in range(batches)], f"{tmp}/{name}_calib.pt")
    html = f"{tmp}/{name}.html"
    subprocess.run([QREPORT, "analyze", f"{tmp}/{name}.pt", "--calib", f"{tmp}/{name}_calib.pt", "--format", "html",
                    "-o", html, "-q", *extra], check=True)
    size = os.path.getsize(html)
    page = open(html, encoding="utf-8").read()
    model_file = f"{tmp}/{name}.pt"
    if extra:
        name += " with every scheme and a plan"
        kept = len(re.findall(r'height="9" fill="#222"/>', page))
        cells = sum(c != "#f4f4f4" for c in re.findall(r'height="11" fill="(#[0-9a-f]{6})"/>', page))
        print(f"{name}: {kept} layers kept, {cells} scheme cells")
        if kept < 5 or cells < layers:
            failures.append(f"{name}: {kept} kept layers and {cells} scheme cells: not the full overview this case "
                            "is for")
    print(f"{name}: {size / 1e6:.2f} MB, {layers} Linear/Conv layers")
    if size >= BUDGET:
        failures.append(f"{name}: {size} bytes, over the {BUDGET}-byte budget")
    sections = re.findall(r'<section id="([^"]+)"', page)
    want = ["overview", "worst", "findings", "per_channel_detector", "dynamic_vs_static_detector",
            "input_weight_equalization_detector", "outlier_detector", "quantization_error_detector"]
    if extra:
        want[2:2] = ["schemes", "sensitivity", "pt2e"]  # pt2e: the X86InductorQuantizer settings, shown with a plan
    if sections != want:
        failures.append(f"{name}: sections {sections}, want {want}")
    for det in want[-5:]:
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
    os.remove(model_file)  # ViT-B/16's is 346 MB

print("\n".join(failures) or "ok: summary-first HTML within budget")
sys.exit(1 if failures else 0)
