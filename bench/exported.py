#!/usr/bin/python3
"""The .pt2 front end against the TorchScript one (issue 25 item 8): on inputs of
`bench/make_inputs.py --exported` (model.pt and model.pt2 from one eager module), interleaved runs of

  analyze model.pt   and   analyze model.pt2        (whole process, --detectors all): goal .pt2/.pt <= 1.10
  qreport_bench_baseline model.pt  and  qreport_bench_exported model.pt2   (plain inference): goal <= 1.10

with medians, per-run ratios and the stage log of the last run of each, one Markdown table on stdout.

    .venv/bin/python bench/exported.py --inputs DIR --qreport build/qreport --baseline build/qreport_bench_baseline
                                       --exported build/qreport_bench_exported [--models resnet18,vit_b_16]
                                       [--threads N] [--reps R]
"""
import argparse
import os
import re
import statistics
import tempfile

from run import timed

GOAL = 1.10


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--inputs", required=True)
    p.add_argument("--qreport", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--exported", required=True)
    p.add_argument("--models", default="resnet18,vit_b_16")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="qreport-bench-exported-")
    print("| model | analyze .pt s | analyze .pt2 s | .pt2 / .pt | per-run | plain .pt s | plain .pt2 s | .pt2 / .pt |"
          " per-run | stages .pt (load/instrument/calibrate/detectors/error) | stages .pt2 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name in a.models.split(","):
        d = os.path.join(a.inputs, name)
        calib = os.path.join(d, "calib.pt")

        def analyze(ext):
            return [a.qreport, "analyze", os.path.join(d, "model." + ext), "--calib", calib, "--detectors", "all",
                    "--threads", str(a.threads), "--format", "json", "-o", os.path.join(tmp, ext + ".json"), "-v"]
        cmds = {"pt": analyze("pt"), "pt2": analyze("pt2"),
                "plain_pt": [a.baseline, os.path.join(d, "model.pt"), calib, str(a.threads), "cpu"],
                "plain_pt2": [a.exported, os.path.join(d, "model.pt2"), calib, str(a.threads)]}
        times = {k: [] for k in cmds}
        for _ in range(a.reps):
            for k, cmd in cmds.items():
                times[k].append(timed(cmd, os.path.join(tmp, k + ".log"))[0])
        med = {k: statistics.median(v) for k, v in times.items()}
        pairs = [x / y for x, y in zip(times["pt2"], times["pt"])]
        plain = [x / y for x, y in zip(times["plain_pt2"], times["plain_pt"])]

        def stages(k):
            found = dict(re.findall(r"stage (\w+): ([0-9.]+) s", open(os.path.join(tmp, k + ".log")).read()))
            return " / ".join(found.get(s, "-") for s in ("load", "instrument", "calibrate", "detectors", "error_pass"))
        r1, r2 = med["pt2"] / med["pt"], med["plain_pt2"] / med["plain_pt"]
        print("| %s | %.3f | %.3f | **%.2fx** (%s) | %.2f-%.2f | %.3f | %.3f | **%.2fx** (%s) | %.2f-%.2f | %s | %s |" % (
            name, med["pt"], med["pt2"], r1, "met" if r1 <= GOAL else "NOT met", min(pairs), max(pairs),
            med["plain_pt"], med["plain_pt2"], r2, "met" if r2 <= GOAL else "NOT met", min(plain), max(plain),
            stages("pt"), stages("pt2")))
    print("\n%d interleaved runs each, medians; %d threads; goal .pt2 / .pt <= %.2fx for both." % (a.reps, a.threads, GOAL))


if __name__ == "__main__":
    main()
