#!/usr/bin/python3
"""Statistics files that were damaged or edited: the digest, the semantic checks, runs counted twice,
counts that overflow (docs/statistics.md, "Integrity").
  * the digest qreport stores equals the one tests/stats/qstats.py computes from the documentation;
  * bit flips: one random bit of a saved file flipped, N times: `report --stats` either refuses it (exit
    2, one line) or gives the same report; a changed report with exit 0 is a failure;
  * hand edits signed again with a valid digest: too many channels for the model, an axis out of range,
    min > max, a negative histogram count, a histogram whose bins differ from the count it states, more
    batches than calls: exit 2 naming the problem;
  * the same calibration run twice (merge a a, report --stats a --stats a, a copy, a second calibration
    over the same batches): exit 2 naming both files; counts near 2^63: exit 2 instead of wrapping;
  * the same inputs give the same file, byte for byte.
Usage: test_stats_integrity.py QREPORT SOURCE_DIR [FLIPS]"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
QREPORT, SRC = sys.argv[1:3]
FLIPS = int(sys.argv[3]) if len(sys.argv) > 3 else 40
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import qstats  # noqa: E402
from merged_reports import compare  # noqa: E402

T = tempfile.mkdtemp(prefix="qreport-integrity-")
failures = []


def run(*args):
    return subprocess.run([QREPORT, *args], capture_output=True, text=True)


def expect_error(name, args, message):
    r = run(*args)
    lines = [l for l in r.stderr.splitlines() if l.startswith("qreport: error:")]
    if r.returncode != 2 or len(lines) != 1 or message not in lines[0]:
        failures.append(f"{name}: exit {r.returncode}, stderr {r.stderr.strip()!r}, want exit 2 with {message!r}")
    else:
        print(f"ok {name}")
    return r


class Small(torch.nn.Module):
    """A conv (3 input channels) and a Linear (8 features): both kinds of channel count the model states."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.relu(self.conv(x)).flatten(2).mean(1)[:, :8])


def point(d, site, side="input"):
    for p in d["points"]:
        if p["site"] == site and p["side"] == side:
            return p
    raise KeyError(site)


def edited(name, edit):
    d = qstats.load(f"{T}/a.qstats")
    edit(d)
    path = f"{T}/{name}.qstats"
    qstats.save_signed(d, path)
    return path


def main():
    torch.manual_seed(5)
    M = f"{T}/model.pt"
    torch.jit.save(torch.jit.script(Small().eval()), M)
    batches = [torch.randn(2, 3, 6, 6) for _ in range(4)]
    torch.save(batches, f"{T}/calib.pt")
    torch.save(batches[:2], f"{T}/half0.pt")
    torch.save(batches[2:], f"{T}/half1.pt")
    common = ["--threads", "1", "-q", "--format", "json"]
    for name, calib in (("a", "calib.pt"), ("again", "calib.pt"), ("h0", "half0.pt"), ("h1", "half1.pt")):
        r = run("analyze", M, "--calib", f"{T}/{calib}", "--save-stats", f"{T}/{name}.qstats", "-o", f"{T}/{name}.json",
                *common)
        if r.returncode != 0:
            print(f"analyze {name}: exit {r.returncode}: {r.stderr}")
            sys.exit(1)
    A = f"{T}/a.qstats"
    direct = open(f"{T}/a.json").read()

    # The digest, computed again from the documentation's encoding.
    d = qstats.load(A)
    if d.get("digest") != qstats.digest(d):
        failures.append(f"digest: stored {d.get('digest')!r}, the documented encoding gives {qstats.digest(d)!r}")
    else:
        print("ok digest matches the documented encoding")
    # Deterministic: the same inputs, the same file (the run identifier is a hash, not a random number).
    if open(A, "rb").read() != open(f"{T}/again.qstats", "rb").read():
        failures.append("the same analyze twice wrote different statistics files")
    else:
        print("ok same inputs, same statistics file")
    # The report from the statistics equals the direct one by the merge rule (which knows that qreport report
    # cannot measure the layers' output SQNR: sqnr_db null, one warning); the bit flips compare with it exactly.
    r = run("report", M, "--stats", A, "-o", f"{T}/round.json", *common)
    round_failures = []
    if r.returncode != 0:
        failures.append(f"round trip: exit {r.returncode} {r.stderr.strip()!r}")
    else:
        compare(json.loads(direct), json.load(open(f"{T}/round.json")), round_failures)
        failures.extend(f"round trip: {f}" for f in round_failures)
        direct = open(f"{T}/round.json").read()

    # Bit flips.
    data = open(A, "rb").read()
    rng = random.Random(1234)
    silent = refused = same = 0
    for i in range(FLIPS):
        bit = rng.randrange(len(data) * 8)
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path = f"{T}/flip.qstats"
        open(path, "wb").write(flipped)
        r = run("report", M, "--stats", path, *common)
        lines = [l for l in r.stderr.splitlines() if l.startswith("qreport: error:")]
        if r.returncode == 0 and r.stdout == direct:
            same += 1
        elif r.returncode == 0:
            silent += 1
            failures.append(f"bit flip {bit}: exit 0 with a different report")
        elif r.returncode == 2 and len(lines) == 1:
            refused += 1
        else:
            failures.append(f"bit flip {bit}: exit {r.returncode}, stderr {r.stderr.strip()[-300:]!r}")
    print(f"bit flips: {FLIPS} tries, {silent} silently changed reports, {refused} refused (exit 2), {same} same report")

    # Edits signed again: only the semantic checks can refuse them.
    def more_channels(d):
        e = point(d, "conv")["minmax"][0]
        e["min"], e["max"] = e["min"].repeat(40), e["max"].repeat(40)
        p = point(d, "conv")["percentile"][0]
        for k in ("avg_ratio", "batches_used", "constant_batches"):
            p[k] = p[k].repeat(40)
    expect_error("channels against the model", ["report", M, "--stats", edited("channels", more_channels)],
                 "do not fit the model: the minima and maxima of the input of 'conv' have 120 channels on axis 1, "
                 "where the model's Conv2d takes a multiple g of 3")

    def linear_features(d):
        e = point(d, "fc")["minmax"][0]
        e["min"], e["max"] = e["min"][:4], e["max"][:4]
        p = point(d, "fc")["percentile"][0]
        for k in ("avg_ratio", "batches_used", "constant_batches"):
            p[k] = p[k][:4]
    expect_error("features against the model", ["report", M, "--stats", edited("features", linear_features)],
                 "the minima and maxima of the input of 'fc' have 4 channels on axis -1, where the model's Linear "
                 "takes 8 (its weight's in_features)")

    def percentile_only(d):
        p = point(d, "conv")["percentile"][0]
        for k in ("avg_ratio", "batches_used", "constant_batches"):
            p[k] = p[k].repeat(2)
    expect_error("percentile against min/max", ["report", M, "--stats", edited("pct", percentile_only)],
                 "the percentile statistics of 'conv' (input) disagree with its min/max on the channels (6 against 3)")

    def axis60(d):
        point(d, "conv")["minmax"][0]["axis"] = 60
    expect_error("axis", ["report", M, "--stats", edited("axis", axis60)],
                 "the min/max of 'conv' (input) has axis 60, but was asked for axis 1")

    def min_above_max(d):
        e = point(d, "conv")["minmax"][0]
        e["min"][0] = e["max"][0] + 1.0
    expect_error("min > max", ["report", M, "--stats", edited("minmax", min_above_max)],
                 "the min/max of 'conv' (input) has min > max in channel 0")

    def negative_count(d):
        point(d, "conv")["histogram"]["histogram"][5] = -3.0
    expect_error("negative histogram count", ["report", M, "--stats", edited("negative", negative_count)],
                 "the histogram of 'conv' (input) has a negative or non-finite count in bin 5")

    def stated_bins(d):
        point(d, "conv")["histogram"]["bins"] = 1000
    expect_error("stated bins", ["report", M, "--stats", edited("bins", stated_bins)],
                 "the histogram of 'conv' states 1000 bins (HistogramObserver's are 2048)")

    def fewer_bins(d):
        h = point(d, "conv")["histogram"]
        h["histogram"] = h["histogram"][:1024]
    expect_error("bins against the stated count", ["report", M, "--stats", edited("fewer", fewer_bins)],
                 "the histogram of 'conv' has 1024 bins, not the 2048 it states")

    def batches_above_calls(d):
        point(d, "conv")["histogram"]["batches"] = point(d, "conv")["calls"] + 1
    expect_error("batches > calls", ["report", M, "--stats", edited("calls", batches_above_calls)],
                 "the histogram of 'conv' (input) counts more batches than calls")

    def run_twice(d):
        d["calibration"] = d["calibration"] * 2
    expect_error("a run twice in one file", ["report", M, "--stats", edited("twice", run_twice)], "is counted twice")

    def unsigned(d):
        point(d, "conv")["minmax"][0]["max"][0] *= 2
    d = qstats.load(A)
    unsigned(d)
    torch.save(d, f"{T}/unsigned.qstats")  # the old digest kept
    expect_error("edit without signing", ["report", M, "--stats", f"{T}/unsigned.qstats"],
                 "its digest does not match its contents")
    d = qstats.load(A)
    d.pop("digest", None)
    torch.save(d, f"{T}/nodigest.qstats")
    expect_error("no digest", ["report", M, "--stats", f"{T}/nodigest.qstats"], "'digest' is missing")
    d = qstats.load(A)
    d["version"] = 1
    qstats.save_signed(d, f"{T}/v1.qstats")
    expect_error("version 1", ["report", M, "--stats", f"{T}/v1.qstats"],
                 "has format version 1 (this qreport reads 2: save the statistics again with qreport analyze "
                 "--save-stats)")

    # The same run twice.
    shutil.copy(A, f"{T}/copy.qstats")
    run_id = qstats.load(A)["calibration"][0].get("run", "(none)")
    twice = (f"holds calibration run {run_id[:12]}... ('{T}/calib.pt', 4 batches), which '{A}' holds already: "
             "merging them would count those batches twice")
    expect_error("merge a a", ["merge", A, A, "-o", f"{T}/aa.qstats"], f"statistics file '{A}' " + twice)
    expect_error("report --stats a --stats a", ["report", M, "--stats", A, "--stats", A],
                 f"statistics file '{A}' " + twice)
    expect_error("merge a copy", ["merge", A, f"{T}/copy.qstats", "-o", f"{T}/ac.qstats"],
                 f"statistics file '{T}/copy.qstats' " + twice)
    expect_error("merge a second calibration of the same batches", ["merge", A, f"{T}/again.qstats", "-o",
                 f"{T}/ag.qstats"], f"statistics file '{T}/again.qstats' " + twice)
    if os.path.exists(f"{T}/aa.qstats") or os.path.exists(f"{T}/ac.qstats"):
        failures.append("a refused merge wrote its output")
    # Two halves merge, and equal the whole run's batches.
    r = run("merge", f"{T}/h0.qstats", f"{T}/h1.qstats", "-o", f"{T}/halves.qstats")
    if r.returncode != 0 or qstats.load(f"{T}/halves.qstats")["calibration"][1]["batches"] != 2:
        failures.append(f"merge of two halves: exit {r.returncode} {r.stderr.strip()!r}")
    else:
        print("ok two different runs merge")

    # Counts that would overflow when added: each file is valid alone.
    big = 2 ** 63 - 1  # the largest count a file may hold

    def huge_calls(d):
        p = point(d, "conv")
        p["calls"] = big
    d = qstats.load(f"{T}/h0.qstats")
    huge_calls(d)
    qstats.save_signed(d, f"{T}/h0big.qstats")
    expect_error("calls overflow", ["merge", f"{T}/h0big.qstats", f"{T}/h1.qstats", "-o", f"{T}/o.qstats"],
                 f"statistics file '{T}/h1.qstats' cannot be merged with the files before it: the sum of their calls of "
                 "the input of 'conv' would overflow")
    d = qstats.load(f"{T}/h0.qstats")
    d["calibration"][0]["batches"] = big
    qstats.save_signed(d, f"{T}/h0batches.qstats")
    expect_error("batches overflow", ["report", M, "--stats", f"{T}/h0batches.qstats", "--stats", f"{T}/h1.qstats"],
                 "the sum of their calibration batches would overflow")

    if failures:
        print("\n".join(failures[:40]))
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
