#!/usr/bin/python3
"""The HTML report in a real browser: headless Chromium loads it offline, the DOM has a section and
plots per detector, and a screenshot shows the plots (the alarm and normal bar colours are on screen).
Then, measured in the browser (a copy of the page with a probe script that opens every <details> and
reads each SVG text's bounding box), on resnet18, resnet18 with --schemes rows, sensitivity bars and a plan,
and a 90-layer model with long names: no two texts of a chart overlap and none leaves its chart; the plan's
curve sits to the right of the overview chart; the overview names every layer under its column, readable in a
screenshot; outlier charts are at most 12, the other modules with outliers in a table; a sparse channel's
infinite ratio is a marker whose hover says inf, and the log axis ends within a decade of the largest
finite ratio; the heading names the model; no two findings rows say the same thing.
Exits 77 (ctest: skipped) where Chromium is not installed.
Usage: test_html_chromium.py QREPORT FIXTURES_DIR"""
import html as htmllib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

QREPORT, FIX = sys.argv[1:3]
chromium = shutil.which("chromium") or shutil.which("chromium-browser")
if not chromium:
    print("skipped: no chromium on PATH")
    sys.exit(77)

tmp = tempfile.mkdtemp()
html = os.path.join(tmp, "report.html")
subprocess.run([QREPORT, "analyze", f"{FIX}/parity/spiky/model.pt", "--calib", f"{FIX}/parity/spiky/calib.pt", "--ch-axis", "1",
                "--format", "html", "-o", html, "-q"], check=True)
failures = []
text = open(html, encoding="utf-8").read()
# Self-contained: no script, no external resource (the SVG namespace URI is an identifier, not a fetch).
if "<script" in text.lower():
    failures.append("the page has a script")
urls = set(re.findall(r"https?://[^\s\"'<>)]+", text)) - {"http://www.w3.org/2000/svg"}
if urls:
    failures.append(f"external references: {sorted(urls)}")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
         f"--user-data-dir={tmp}/profile"]
dom = subprocess.run([chromium, *FLAGS, "--dump-dom", "file://" + html], capture_output=True, text=True,
                     timeout=120).stdout
sections = ["overview", "worst", "findings", "per_channel_detector", "dynamic_vs_static_detector",
            "input_weight_equalization_detector", "outlier_detector", "quantization_error_detector"]
at = [dom.find(f'id="{s}"') for s in sections]
if -1 in at:
    failures.append(f"DOM lacks sections {[s for s, a in zip(sections, at) if a < 0]}")
elif at != sorted(at):
    failures.append(f"sections out of order: {sorted(zip(at, sections))}")
# The overview first: one hover column per Linear/Conv layer (spiky, fused: linear.0, conv.0), named with its SQNR.
columns = re.findall(r'class="col"><title>([^<]*)</title>', dom)
if [c.split(":")[0] for c in columns] != ["linear.0", "conv.0"] or not all(" dB" in c for c in columns):
    failures.append(f"overview columns {columns}")
svgs = dom.count("<svg")
if svgs < 4:  # overview, S chart, charts of the modules with findings (outliers, equalization)
    failures.append(f"only {svgs} plots in the DOM")
if "outliers in channel(s) 0, 2, 4, 6" not in dom:
    failures.append("findings table lacks the spiky outliers")

png = os.path.join(tmp, "shot.png")
subprocess.run([chromium, *FLAGS, f"--screenshot={png}", "--window-size=1200,4000", "file://" + html],
               capture_output=True, timeout=120)


def pixels(path):
    """RGB(A) rows of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 4 if ctype == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


if not os.path.exists(png):
    failures.append("no screenshot")
else:
    w, h, bpp, rows = pixels(png)
    colours = {}
    for row in rows[::2]:
        for x in range(0, w * bpp, bpp * 2):
            rgb = row[x:x + 3]
            colours[rgb] = colours.get(rgb, 0) + 1
    alarm, normal = colours.get(bytes([0xd6, 0x27, 0x28]), 0), colours.get(bytes([0x1f, 0x77, 0xb4]), 0)
    if alarm < 20 or normal < 20:
        failures.append(f"screenshot {w}x{h}: alarm pixels {alarm}, normal pixels {normal}")

PROBE = """<script>
(function(){
 function charts(){
  return [...document.querySelectorAll('svg')].map(svg=>{
   const b=svg.getBoundingClientRect();
   return {id:svg.id||'', box:[b.left+scrollX,b.top+scrollY,b.right+scrollX,b.bottom+scrollY],
     texts:[...svg.querySelectorAll('text')].map(t=>{const r=t.getBoundingClientRect();
       return [r.left+scrollX,r.top+scrollY,r.right+scrollX,r.bottom+scrollY,t.getAttribute('class')||'',t.textContent]})};
  });
 }
 const out={closed_height:document.documentElement.scrollHeight, closed:charts()};
 document.querySelectorAll('details').forEach(d=>d.open=true);
 out.open_height=document.documentElement.scrollHeight;
 out.open=charts();
 const pre=document.createElement('pre'); pre.id='probe'; pre.textContent=JSON.stringify(out); document.body.appendChild(pre);
})();
</script>"""


def measure(page_path):
    """Chart and text boxes of the page in Chromium (CSS px), details closed and then all open."""
    probe = page_path + ".probe.html"
    with open(probe, "w", encoding="utf-8") as f:
        f.write(open(page_path, encoding="utf-8").read().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([chromium, *FLAGS, "--window-size=1200,1000", "--dump-dom", "file://" + probe],
                         capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom, flags=re.S)
    return json.loads(htmllib.unescape(m.group(1))) if m else None


def text_problems(charts):
    """Pairs of texts of one chart whose boxes overlap (by more than half a pixel each way), and texts
    that reach outside their chart."""
    bad = []
    for ch in charts:
        t = ch["texts"]
        for i in range(len(t)):
            a = t[i]
            if a[0] < ch["box"][0] - 1 or a[2] > ch["box"][2] + 1 or a[1] < ch["box"][1] - 1 or a[3] > ch["box"][3] + 1:
                bad.append(f"{a[5]!r} outside its chart")
            for b in t[i + 1:]:
                if min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5:
                    bad.append(f"{a[5]!r} overlaps {b[5]!r}")
    return bad


def analyze(model, calib, out, *extra):
    r = subprocess.run([QREPORT, "analyze", model, "--calib", calib, "--threads", "1", "-o", out, *extra],
                       capture_output=True, text=True, timeout=600)
    return r


# resnet18 (its ReLUs make sparse channels) and a 90-layer model with long names (the overview widens).
R18 = f"{FIX}/parity/resnet18"
r18_html, r18_json = os.path.join(tmp, "r18.html"), os.path.join(tmp, "r18.json")
gate = analyze(f"{R18}/model.pt", f"{R18}/calib.pt", r18_html, "--format", "html", "--fail-on", "outliers")
analyze(f"{R18}/model.pt", f"{R18}/calib.pt", r18_json, "--format", "json")
gated = [l.split()[3].rstrip(":") for l in gate.stderr.splitlines() if l.startswith("qreport: finding: outliers ")]
rj = json.load(open(r18_json))
wide = os.path.join(tmp, "wide")
subprocess.run([sys.executable, "-c", f"""
import collections, torch, torch.nn as nn
torch.manual_seed(0)
layers = collections.OrderedDict()
for i in range(90):
    layers[f"block_{{i:02d}}_projection_with_a_rather_long_descriptive_name"] = nn.Linear(8, 8)
torch.jit.save(torch.jit.script(nn.Sequential(layers).eval()), "{wide}.pt")
torch.save([torch.randn(4, 8) for _ in range(2)], "{wide}_calib.pt")
"""], check=True)
analyze(f"{wide}.pt", f"{wide}_calib.pt", f"{wide}.html", "--format", "html")
# resnet18 with scheme rows (their figures written in the cells), the sensitivity bars and the plan's curve
# beside the overview chart (issue 24 item 7).
plan_html = os.path.join(tmp, "r18_plan.html")
analyze(f"{R18}/model.pt", f"{R18}/calib.pt", plan_html, "--format", "html", "--schemes",
        "int8-static,fp8-dynamic,int4-weight-only-g128", "--target-sqnr", "35", "--sensitivity-batches", "1")

pages = {"spiky": html, "resnet18": r18_html, "90 layers": f"{wide}.html", "resnet18 with a plan": plan_html}
probes = {}
for name, path in pages.items():
    probes[name] = m = measure(path)
    if not m:
        failures.append(f"{name}: the probe did not run")
        continue
    bad = text_problems(m["open"])
    if bad:
        failures.append(f"{name}: {len(bad)} overlapping or clipped chart texts, e.g. {bad[:3]}")
    page = open(path, encoding="utf-8").read()
    # The heading names the model; findings with the same kind and text share one row.
    model_path = {"spiky": f"{FIX}/parity/spiky/model.pt", "resnet18": f"{R18}/model.pt", "90 layers": f"{wide}.pt",
                  "resnet18 with a plan": f"{R18}/model.pt"}[name]
    if f"<h1>Quantization report: <code>{model_path}</code></h1>" not in page:
        failures.append(f"{name}: the heading does not name the model: {re.findall(r'<h1>.*?</h1>', page)}")
    rows = re.findall(r'<tr><td>([^<]*)</td><td>(?:(?!</td>).)*</td><td>([^<]*)</td></tr>',
                      page[page.find('<section id="findings"'):page.find("<h2>Detector details</h2>")])
    if len(rows) != len(set(rows)):
        failures.append(f"{name}: findings rows repeat: {len(rows)} rows, {len(set(rows))} distinct")
    print(f"{name}: page {m['closed_height']} px tall ({m['open_height']} px with every detail open), "
          f"{len(m['open'])} charts")

# The overview names every layer: one rotated label per column, and in a screenshot each label's box
# holds dark (text) pixels.
m = probes.get("resnet18")
layers = len(rj["detectors"]["quantization_error_detector"]["modules"])
if m:
    ov = [c for c in m["closed"] if c["id"] == "overview-chart"][0]
    labels = [t for t in ov["texts"] if "ln" in t[4].split()]
    if [t[5] for t in labels] != re.findall(r'class="col"><title>([^:<]*):', open(r18_html).read()):
        failures.append(f"overview labels {[t[5] for t in labels][:5]} do not name its columns")
    if len(labels) != layers:
        failures.append(f"overview: {len(labels)} labels for {layers} layers")
    shot = os.path.join(tmp, "overview.png")
    height = int(max([t[3] for t in labels] + [1000])) + 20
    subprocess.run([chromium, *FLAGS, f"--screenshot={shot}", f"--window-size=1200,{height}", "file://" + r18_html],
                   capture_output=True, timeout=120)
    w, h, bpp, rows = pixels(shot)
    unreadable = []
    for t in labels:
        dark = 0
        for y in range(int(t[1]), min(int(t[3]) + 1, h)):
            row = rows[y]
            for x in range(int(t[0]), min(int(t[2]) + 1, w)):
                r, g, b = row[x * bpp:x * bpp + 3]
                dark += r < 140 and g < 140 and b < 140
        if dark < 15:
            unreadable.append((t[5], dark))
    if unreadable:
        failures.append(f"overview screenshot: labels without text pixels {unreadable[:4]}")
    # With a plan: the curve sits beside the overview chart (to its right, their tops within its title's
    # height), and the scheme cells' figures are on the chart.
    pm = probes.get("resnet18 with a plan")
    if pm:
        boxes = {c["id"]: c["box"] for c in pm["closed"] if c["id"] in ("overview-chart", "plan-curve")}
        if len(boxes) != 2 or boxes["plan-curve"][0] < boxes["overview-chart"][2] - 1 or \
                abs(boxes["plan-curve"][1] - boxes["overview-chart"][1]) > 20:
            failures.append(f"resnet18 with a plan: the curve is not beside the overview chart: {boxes}")
        ov = [c for c in pm["closed"] if c["id"] == "overview-chart"][0]
        if sum(t[4] == "cv" for t in ov["texts"]) < layers:
            failures.append("resnet18 with a plan: fewer scheme figures than layers on the overview chart")
    wide_ov = [c for c in probes["90 layers"]["closed"] if c["id"] == "overview-chart"] if probes.get("90 layers") else []
    want = [f"block_{i:02d}_projection_with_a_rather_long_descriptive_name" for i in range(90)]
    if not wide_ov or [t[5] for t in wide_ov[0]["texts"] if "ln" in t[4].split()] != want:
        failures.append("90 layers: the overview does not name its 90 columns")

# Outlier charts: at most 12, for modules with outliers that count; the others in a table; sparse
# channels as inf markers (hover "inf"), the axis within a decade of the largest finite ratio.
page = open(r18_html, encoding="utf-8").read()
section = page[page.find('<section id="outlier_detector"'):]
section = section[:section.find("</section>")]
charts = re.findall(r'<svg .*?</svg>', section, flags=re.S)
charted = [re.search(r"<title>(.*?): max / reference percentile", c).group(1) for c in charts]
table = section[section.find('<table class="rest">'):]
listed = re.findall(r"<tr><td><code>([^<]*)</code></td>", table[:table.find("</table>")])
if len(charts) > 12 or sorted(charted + listed) != sorted(gated) or len(gated) <= 12:
    failures.append(f"outlier charts {len(charts)} + table {len(listed)} != {len(gated)} modules gated")
sparse = {}  # from the raw ratios: max / 0 in some batch saturates at FLT_MAX (3.4e38)
for fqn, d in rj["detectors"]["outlier_detector"]["modules"].items():
    cs = [c for c, r in enumerate(d["outlier_detection_percentile_ratios"]) if r is not None and r > 1e30]
    if cs:
        sparse[fqn] = cs
infs = 0
for fqn, chart in zip(charted, charts):
    mod = rj["detectors"]["outlier_detector"]["modules"][fqn]
    hovers = re.findall(r'class="inf"><title>ch (\d+): inf \(', chart)
    infs += len(hovers)
    if [int(c) for c in hovers] != sparse.get(fqn, []):
        failures.append(f"{fqn}: inf markers on channels {hovers}, sparse channels {sparse.get(fqn)}")
    finite = [r for c, r in enumerate(mod["outlier_detection_percentile_ratios"])
              if r is not None and c not in sparse.get(fqn, [])]
    ticks = [float(t) for t in
             re.findall(r'<text x="60.00" y="[\d.]+" text-anchor="end" class="tk">([^<]*)</text>', chart)]
    if not ticks or max(ticks) > 10 * max(finite + [mod["outlier_detection_ratio_threshold"]]):
        failures.append(f"{fqn}: axis up to {max(ticks) if ticks else None}, largest finite ratio {max(finite)}")
if infs == 0:
    failures.append("no chart of resnet18 shows a sparse channel: the inf markers are untested")

print("\n".join(failures) or "ok: html report renders in headless Chromium with its plots")
sys.exit(1 if failures else 0)
