#!/usr/bin/python3
"""Runs qreport, the plain-inference baseline and (optionally) PyTorch's ModelReport side by side on the
inputs of bench/make_inputs.py: interleaved runs, whole-process wall time and peak RSS, medians, ratios,
one Markdown table on stdout.

    /usr/bin/python3 bench/run.py --inputs DIR --qreport build/qreport --baseline build/qreport_bench_baseline
                                  [--threads N] [--reps R] [--modelreport] [--device cpu|cuda] [--all] [--keep-logs DIR]
                                  [--subset DETECTORS]

--all: the four CPU cases of the performance goals (resnet18, mobilenet_v2, ViT-B/16 and mobilenet_v2 with
300 small batches; bench/make_inputs.py --models resnet18,mobilenet_v2,vit_b_16,mobilenet_v2_small), each
against its goal, with PyTorch's ModelReport timed beside the CNNs (--modelreport-reps runs, default 1: it
takes 10-20x longer and is context, not the measured ratio).

Interleaving (baseline, qreport, baseline with qreport's heap policy, ModelReport, baseline, ...) spreads
drift of the machine evenly over all of them. The load+instrument figure comes from qreport's own stage
log (-v).

Two baselines on the CPU: plain LibTorch inference with the C library's heap defaults (what a user's
program does), and the same with qreport's heap policy (--keep-freed-memory, lib/common/heap.h) and its
exit without teardown (--fast-exit, apps/qreport/main.cpp), whose ratio is the cost of the analysis alone
(qreport's policies also speed up the inference it runs and its exit). The goals are judged by that
heap-matched ratio (issue 23); the default-heap one is shown beside it.

--subset DETECTORS (a comma list, as qreport's --detectors): qreport is also timed with only those
detectors, interleaved with the other runs, and a second table splits each case's cost in two: that
subset, and what `--detectors all` adds to it (for example --subset per_channel,dynamic_static,equalization,outlier:
PyTorch's four ModelReport detectors against qreport's quantization-error detector on top).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Issue 23's goals: whole process, --detectors all, against plain inference of the same batches under
# qreport's heap policy (CPU).
GOALS = {"resnet18": 1.10, "mobilenet_v2": 1.35, "vit_b_16": 1.15, "mobilenet_v2_small": 1.30}


def timed(cmd, stderr_path):
    """Whole-process wall time (s) and peak RSS (MiB) of one run; raises when it fails."""
    with open(stderr_path, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=err, stderr=err)  # the baseline's forward_s line too
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("bench: command failed (%s): %s\n%s" % (status, " ".join(cmd), open(stderr_path).read()))
    return wall, usage.ru_maxrss / 1024.0


def count_batches(calib):
    """Number of batches in a list archive, without importing torch: the zip's data/N records."""
    import zipfile
    return sum(1 for n in zipfile.ZipFile(calib).namelist() if re.search(r"/data/\d+$", n))


def blas_of(binary):
    """The BLAS library a binary loads through libblas.so.3 (Debian's alternatives), resolved."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    m = re.search(r"libblas\.so\.3 => (\S+)", out)
    return os.path.realpath(m.group(1)) if m else "none"


def stage_seconds(log, stages):
    found = dict(re.findall(r"stage (\w+): ([0-9.]+) s", log))
    return sum(float(found.get(s, "nan")) for s in stages)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--inputs", required=True)
    p.add_argument("--qreport", required=True)
    p.add_argument("--baseline", required=True)
    p.add_argument("--models", default="resnet18,mobilenet_v2")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--keep-logs", metavar="DIR", help="copy each model's last qreport -v log (stage times) here")
    p.add_argument("--modelreport", action="store_true", help="also time PyTorch's ModelReport (slow)")
    p.add_argument("--modelreport-reps", type=int, default=None,
                   help="ModelReport runs per model (default: --reps; 1 with --all)")
    p.add_argument("--all", action="store_true", help="the four CPU goal cases, with ModelReport for the CNNs")
    p.add_argument("--subset", metavar="DETECTORS",
                   help="also time qreport with only these detectors (qreport's --detectors list) and split the cost")
    a = p.parse_args()
    if a.subset is not None and not a.subset.strip():
        p.error("--subset needs a comma list of detectors (qreport's --detectors), not an empty one")
    if a.all:
        a.models = ",".join(GOALS)
        a.modelreport = True
        if a.modelreport_reps is None:
            a.modelreport_reps = 1
    if a.modelreport_reps is None:
        a.modelreport_reps = a.reps

    # Same BLAS on both sides, or the ratio compares BLAS builds, not qreport.
    blas = {b: blas_of(b) for b in (a.baseline, a.qreport)}
    if len(set(blas.values())) != 1:
        sys.exit("bench: baseline and qreport load different BLAS libraries: %s" % blas)
    tmp = tempfile.mkdtemp(prefix="qreport-bench-")
    rows = []
    for name in a.models.split(","):
        d = os.path.join(a.inputs, name)
        model, calib = os.path.join(d, "model.pt"), os.path.join(d, "calib.pt")
        cmds = {
            "baseline": [a.baseline, model, calib, str(a.threads), a.device],
            "qreport": [a.qreport, "analyze", model, "--calib", calib, "--detectors", "all", "--device", a.device,
                        "--threads", str(a.threads), "--format", "json", "-o", os.path.join(tmp, "r.json"), "-v"],
        }
        if a.device == "cpu":  # a GPU's activations are not on the host heap: no second baseline there
            cmds["baseline_heap"] = [a.baseline, model, calib, str(a.threads), a.device, "--keep-freed-memory",
                                     "--fast-exit"]
        if a.subset:
            cmds["qreport_subset"] = [a.subset if c == "all" else c for c in cmds["qreport"]]
        if a.modelreport and os.path.exists(os.path.join(d, "fx_model.pth")):  # no FX model for ViT
            cmds["modelreport"] = ["/usr/bin/python3", os.path.join(HERE, "modelreport.py"), d, str(a.threads)]
        times = {k: [] for k in cmds}
        rss = {k: [] for k in cmds}
        setup, calibrate, forward = [], [], []
        for rep in range(a.reps):
            for k, cmd in cmds.items():
                if k == "modelreport" and rep >= a.modelreport_reps:
                    continue
                log = os.path.join(tmp, k + ".log")
                w, r = timed(cmd, log)
                times[k].append(w)
                rss[k].append(r)
                text = open(log).read()
                if k == "qreport":
                    setup.append(stage_seconds(text, ["load", "instrument"]))
                    calibrate.append(stage_seconds(text, ["calibrate"]))
                elif k == "baseline":
                    m = re.search(r"forward_s ([0-9.]+)", text)
                    forward.append(float(m.group(1)) if m else float("nan"))
        if a.keep_logs:
            os.makedirs(a.keep_logs, exist_ok=True)
            shutil.copy(os.path.join(tmp, "qreport.log"), os.path.join(a.keep_logs, name + "-qreport.log"))
        # Memory against the number of batches: the same run on the first half of the batches.
        half = [c for c in cmds["qreport"]] + ["--max-batches", str(max(1, count_batches(calib) // 2))]
        rss_half = max(timed(half, os.path.join(tmp, "half.log"))[1] for _ in range(2))
        med = {k: statistics.median(v) for k, v in times.items()}
        pair = [q / b for q, b in zip(times["qreport"], times["baseline"])]  # each rep's interleaved pair
        row = {"model": name, "baseline_s": med["baseline"], "qreport_s": med["qreport"],
               "ratio": med["qreport"] / med["baseline"], "heap_s": med.get("baseline_heap", float("nan")),
               "heap_ratio": med["qreport"] / med.get("baseline_heap", float("nan")), "spread": (min(pair), max(pair)), "setup_s": statistics.median(setup),
               "calibrate_s": statistics.median(calibrate), "forward_s": statistics.median(forward),
               "rss_baseline": max(rss["baseline"]), "rss_qreport": max(rss["qreport"]), "rss_half": rss_half}
        if "qreport_subset" in med:
            row["subset_s"] = med["qreport_subset"]
        if "modelreport" in med:
            row["modelreport_s"] = med["modelreport"]
            row["mr_ratio"] = med["modelreport"] / med["baseline"]
        rows.append(row)

    mr = a.modelreport
    print("| model | baseline s | qreport s | qreport / baseline | per-run ratios |"
          " baseline, qreport's heap s | qreport / that | load+instrument s |"
          " peak RSS baseline MiB | peak RSS qreport MiB (half the batches) |" +
          (" ModelReport s | ModelReport / baseline |" if mr else "") +
          (" goal (heap-matched) |" if a.device == "cpu" and any(r["model"] in GOALS for r in rows) else ""))
    goals = a.device == "cpu" and any(r["model"] in GOALS for r in rows)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if mr else "") + ("---|" if goals else ""))
    for r in rows:
        heap = "- | -" if r["heap_s"] != r["heap_s"] else "%.3f | **%.2fx**" % (r["heap_s"], r["heap_ratio"])  # NaN: GPU
        line = "| %s | %.3f | %.3f | %.2fx | %.2f-%.2f | %s | %.3f | %.0f | %.0f (%.0f) |" % (
            r["model"], r["baseline_s"], r["qreport_s"], r["ratio"], r["spread"][0], r["spread"][1], heap, r["setup_s"],
            r["rss_baseline"], r["rss_qreport"], r["rss_half"])
        if mr:
            line += " %.2f | %.1fx |" % (r["modelreport_s"], r["mr_ratio"]) if "mr_ratio" in r else " - | - |"
        if goals:
            g = GOALS.get(r["model"])
            judged = r["heap_ratio"]
            line += (" <= %.2fx: %s |" % (g, "met" if judged <= g else "NOT met")) if g and judged == judged else " - |"
        print(line)
    print("\n%d interleaved runs each, medians; %d threads; device %s; BLAS %s (baseline and qreport)."
          % (a.reps, a.threads, a.device, blas[a.baseline]))
    # The batch loop alone, without process start, loading and the report: where per-batch costs show.
    print("Batch loop alone (medians): " + "; ".join(
        "%s %.3f s in qreport's calibrate stage against %.3f s of the baseline's forward passes (%.2fx)"
        % (r["model"], r["calibrate_s"], r["forward_s"], r["calibrate_s"] / max(r["forward_s"], 1e-9)) for r in rows) + ".")
    if mr and a.modelreport_reps < a.reps:
        print("ModelReport: %d run(s) per model." % a.modelreport_reps)
    if a.subset:
        # Against the heap-matched baseline on the CPU (the cost of the analysis), the default one elsewhere.
        ref, ref_name = ("heap_s", "baseline with qreport's heap") if a.device == "cpu" else ("baseline_s", "baseline")
        print("\nThe cost split: qreport with --detectors %s, and what the rest of `all` adds (medians, same runs)\n" % a.subset)
        print("| model | %s s | subset s | subset / baseline | all s | all / baseline | all - subset s |" % ref_name)
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print("| %s | %.3f | %.3f | %.2fx | %.3f | %.2fx | %+.3f |" % (
                r["model"], r[ref], r["subset_s"], r["subset_s"] / r[ref], r["qreport_s"], r["qreport_s"] / r[ref],
                r["qreport_s"] - r["subset_s"]))


if __name__ == "__main__":
    main()
