#!/usr/bin/python3
"""The HTML report in a real browser: headless Chromium loads it offline, the DOM has a section and
plots per detector, and a screenshot shows the plots (the alarm and normal bar colours are on screen).
Exits 77 (ctest: skipped) where Chromium is not installed.
Usage: test_html_chromium.py QREPORT FIXTURES_DIR"""
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
print("\n".join(failures) or "ok: html report renders in headless Chromium with its plots")
sys.exit(1 if failures else 0)
