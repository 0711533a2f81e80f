#!/usr/bin/python3
"""Issue 24 item 7: the HTML overview chart carries one row per requested scheme (each layer's local output
SQNR), the sensitivity bars and the plan's keep list, with the layer names written under the columns, and the
plan's curve sits beside it. Every figure drawn is checked against the JSON report of the same run (the same
inputs give the same bytes): a scheme cell's colour band and its written value (whole dB), no cell where the
scheme leaves the layer in float; a bar's height against the enable-one figure on the chart's dB scale, red
exactly below the target; the disable-one tick; the kept marks under exactly the plan's layers; the curve's
listed points; the hover text's figures. The page without --schemes and --sensitivity has none of it.
Usage: test_html_overview.py QREPORT"""
import json
import math
import re
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

QREPORT = sys.argv[1]
SCHEMES = ["int8-dynamic", "int4-weight-only-g32", "fp8-dynamic"]
BAND_H = 56  # the sensitivity band's height in lib/report/svg.cpp
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


class Net(nn.Module):
    """A Conv2d (16 channels: fp8 quantizes it, the int schemes leave it in float), a Linear with 40 inputs
    (int4 g32 skips it), and Linear layers with a x30 input feature, so that the figures differ per layer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 32, 3, padding=1)
        self.proj = nn.Linear(32, 64)
        self.mid = nn.Linear(64, 40)
        self.tail = nn.Linear(40, 48)
        self.head = nn.Linear(48, 16)
        with torch.no_grad():
            self.proj.weight[:, 3] /= 30

    def forward(self, x):
        h = F.relu(self.conv(x)).mean(dim=(2, 3))
        h = h.clone()
        h[:, 3] = h[:, 3] * 30
        return self.head(F.relu(self.tail(F.relu(self.mid(F.relu(self.proj(h)))))))


def run(d, *args):
    r = subprocess.run([QREPORT, "analyze", f"{d}/m.pt", "--calib", f"{d}/c.pt", "--threads", "1", "-q", *args],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"qreport {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return r.stdout


def band_color(db):
    """docs/quantization-error.md's rough guide, the colours lib/report/svg.cpp gives the bands."""
    return ("#d73027" if db < 15 else "#fc8d59" if db < 25 else "#fee08b" if db < 30 else "#d9ef8b" if db < 40
            else "#91cf60")


def scale_top(rep):
    """The bars' dB scale: 0 up to the largest finite figure or the target, rounded up to 10 dB."""
    hi = rep["plan"]["target_sqnr_db"]
    for m in rep["detectors"]["quantization_error_detector"]["modules"].values():
        for k in ("sensitivity_output_sqnr_db", "sensitivity_skip_output_sqnr_db"):
            if m.get(k) is not None:
                hi = max(hi, m[k])
    for p in rep["plan"]["curve"]:
        if p["output_sqnr_db"] is not None:
            hi = max(hi, p["output_sqnr_db"])
    return max(10.0, math.ceil(hi / 10) * 10)


def main():
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        torch.jit.save(torch.jit.script(Net().eval()), f"{d}/m.pt")
        torch.save([torch.randn(4, 16, 8, 8) for _ in range(4)], f"{d}/c.pt")
        schemes = ["--schemes", ",".join(SCHEMES)]
        first = json.loads(run(d, *schemes, "--sensitivity", "--scheme", "int8-dynamic", "--format", "json"))
        mods = first["detectors"]["quantization_error_detector"]["modules"]
        skips = [m["sensitivity_skip_output_sqnr_db"] for m in mods.values()
                 if m.get("sensitivity_skip_output_sqnr_db") is not None]
        target = round((first["sensitivity"]["all_quantized_output_sqnr_db"] + max(skips)) / 2, 1)
        args = [*schemes, "--target-sqnr", str(target), "--scheme", "int8-dynamic"]
        rep = json.loads(run(d, *args, "--format", "json"))
        page = run(d, *args, "--format", "html")
        check(page == run(d, *args, "--format", "html"), "the same inputs gave another page")
        plain = run(d, "--format", "html")
    plan = rep["plan"]
    mods = rep["detectors"]["quantization_error_detector"]["modules"]
    check(plan["reached"] and plan["keep_float"], f"the plan keeps no layer: {plan}")

    overview = page[page.index('<section id="overview">'):page.index("</section>", page.index('<section id="overview">'))]
    chart = overview[overview.index('id="overview-chart"'):overview.index("</svg>")]
    names = re.findall(r'class="tk ln">([^<]*)</text>', chart)
    check(names == list(mods), f"names under the columns {names}, want {list(mods)} (graph order)")
    # Column centres, from the hover rectangles (one per layer, in order).
    cols = [(float(x) + float(w) / 2, t) for x, w, t in
            re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="[\d.]+" fill="#000" '
                       r'fill-opacity="0" class="col"><title>([^<]*)</title>', chart)]
    check(len(cols) == len(mods), f"{len(cols)} hover columns for {len(mods)} layers")
    labels = re.findall(r'text-anchor="end" class="tk"(?: fill="#d62728")?>([^<]*)</text>', chart)
    for s in SCHEMES:
        check(s in labels, f"no row labelled {s}: {labels}")
    check("sensitivity" in labels and "int8-dynamic" in labels and "plan: keep" in labels,
          f"no sensitivity or keep labels: {labels}")
    check(f"target {target:.0f} dB" in labels, f"the band does not name the target {target}: {labels}")
    # Scheme cells: (x, y, width, colour) of the coloured rectangles, and the written values by position.
    rows_y = {}
    for y, label in re.findall(r'<text x="[\d.]+" y="([\d.]+)" text-anchor="end" class="tk">([^<]*)</text>', chart):
        if label in SCHEMES and label not in rows_y:  # the first: int8-dynamic also names the sensitivity band
            rows_y[label] = float(y) - 9
    cells = [c for c in re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="11" '
                                   r'fill="(#[0-9a-f]{6})"/>', chart) if c[3] != "#f4f4f4"]  # not the row's band
    values = [(float(x), float(y), t) for x, y, t in
              re.findall(r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="middle" class="cv">([^<]*)</text>', chart)]
    n_cells = 0
    for s in SCHEMES:
        y0 = rows_y.get(s)
        for (cx, hover), (fqn, m) in zip(cols, mods.items()):
            v = m["schemes"][s]["output_sqnr_db"] if m["schemes"].get(s) else None
            here = [c for c in cells if abs(float(c[1]) - (y0 or -1)) < 0.01
                    and abs(float(c[0]) + float(c[2]) / 2 - cx) < 0.05]
            if v is None:
                check(not here, f"{s} {fqn}: a cell where the scheme leaves the layer in float")
                continue
            n_cells += 1
            check(len(here) == 1 and here[0][3] == band_color(v),
                  f"{s} {fqn}: cell {here}, want one of colour {band_color(v)} ({v:.2f} dB)")
            written = [t for x, y, t in values if abs(x - cx) < 0.05 and abs(y - (y0 + 8.5)) < 0.05]
            check(written == [f"{v:.0f}"], f"{s} {fqn}: written {written}, want {v:.0f}")
            check(f"{s} {v:.1f}" in hover, f"{s} {fqn}: hover {hover!r} lacks {v:.1f}")
    check(n_cells >= 2 * len(mods) - 2, f"only {n_cells} scheme cells")
    # Sensitivity bars: height / band = enable-one / scale, red exactly below the target; the tick at disable-one.
    top = scale_top(rep)
    bars = [b for b in re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" '
                                  r'fill="(#d62728|#1f77b4)"/>', chart) if b[3] != "9"]  # not a finding mark
    not_quantized = set(rep["sensitivity"]["not_quantized"])
    for (cx, hover), (fqn, m) in zip(cols, mods.items()):
        here = [b for b in bars if abs(float(b[0]) + float(b[2]) / 2 - cx) < 0.05]
        if fqn in not_quantized:
            check(not here, f"{fqn}: a bar for a layer the scheme does not quantize")
            continue
        e = m["sensitivity_output_sqnr_db"]
        want_h = min(max(e / top, 0), 1) * BAND_H
        check(len(here) == 1 and abs(float(here[0][3]) - want_h) < 0.02,
              f"{fqn}: bar {here}, want height {want_h:.2f} ({e:.2f} dB of {top})")
        check(here and (here[0][4] == "#d62728") == (e < target), f"{fqn}: bar colour against the target")
        check(f"only it quantized {e:.1f} dB" in hover, f"{fqn}: hover {hover!r} lacks {e:.1f}")
    kept_x = [float(x) + float(w) / 2 for x, w in
              re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="9" fill="#222"/>', chart)]
    want_x = [cx for (cx, _), fqn in zip(cols, mods) if fqn in plan["keep_float"]]
    check(len(kept_x) == len(want_x) and all(abs(a - b) < 0.05 for a, b in zip(kept_x, want_x)),
          f"kept marks at {kept_x}, want under {plan['keep_float']} at {want_x}")
    # The curve beside the chart, in the overview, once on the page, each point listed with its figure.
    check('<div class="beside">' in overview and 'id="plan-curve"' in overview, "the plan's curve is not beside it")
    check(page.count('id="plan-curve"') == 1, "the curve is on the page more than once")
    curve = overview[overview.index('id="plan-curve"'):]
    for p in plan["curve"]:
        what = f"+{p['added']}" if p["added"] else "none kept"
        check(f"{what}: {p['output_sqnr_db']:.1f} dB" in curve, f"the curve does not list {what}")
    # Without the options: none of it.
    plain_chart = plain[plain.index('id="overview-chart"'):]
    plain_chart = plain_chart[:plain_chart.index("</svg>")]
    check('class="cv"' not in plain_chart and "plan: keep" not in plain_chart and "sensitivity" not in plain_chart
          and 'id="plan-curve"' not in plain, "the plain page has scheme, sensitivity or plan marks")
    print(f"{len(mods)} layers, {n_cells} scheme cells, target {target} dB, kept {plan['keep_float']}; "
          f"page {len(page.encode())} bytes")
    print("\n".join(failures) or "ok: the overview carries the schemes, the sensitivity bars and the plan")
    sys.exit(1 if failures else 0)


main()
