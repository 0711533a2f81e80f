#!/usr/bin/python3
"""Distributed analyze against one process, same batches, one thread per rank: N ranks x 1 thread (launched
with the environment torchrun sets) against 1 rank x 1 thread, interleaved runs, whole-job wall time,
medians and the speedup. Also prints the bytes each rank sends in the reduction (its statistics).

    /usr/bin/python3 bench/distributed.py --inputs /tmp/bench --qreport build/qreport [--model resnet18]
                                          [--ranks 2] [--reps 3]
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_single(q, model, calib):
    t0 = time.perf_counter()
    subprocess.run([q, "analyze", model, "--calib", calib, "--threads", "1", "-q", "-o", os.devnull], check=True)
    return time.perf_counter() - t0


def run_job(q, model, calib, ranks):
    port = free_port()
    t0 = time.perf_counter()
    procs = []
    for r in range(ranks):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(r), WORLD_SIZE=str(ranks),
                   LOCAL_RANK=str(r), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([q, "analyze", model, "--calib", calib, "--threads", "1", "-q", "-o",
                                       os.devnull], env=env))
    codes = [p.wait() for p in procs]
    if any(codes):
        sys.exit(f"bench: a rank failed: {codes}")
    return time.perf_counter() - t0


def run_independent(q, model, calib, ranks, batches):
    """The machine's ceiling: N unrelated processes at once, each over 1/N of the batches, no job."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([q, "analyze", model, "--calib", calib, "--threads", "1", "--max-batches",
                               str(batches // ranks), "-q", "-o", os.devnull], env=dict(os.environ, OMP_NUM_THREADS="1"))
             for _ in range(ranks)]
    if any(p.wait() for p in procs):
        sys.exit("bench: an independent run failed")
    return time.perf_counter() - t0


def count_batches(calib):
    import re
    import zipfile
    return sum(1 for n in zipfile.ZipFile(calib).namelist() if re.search(r"/data/\d+$", n))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--inputs", required=True)
    p.add_argument("--qreport", required=True)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    d = os.path.join(a.inputs, a.model)
    model, calib = os.path.join(d, "model.pt"), os.path.join(d, "calib.pt")
    single, job, ceiling = [], [], []
    batches = count_batches(calib)
    for _ in range(a.reps):
        single.append(run_single(a.qreport, model, calib))
        job.append(run_job(a.qreport, model, calib, a.ranks))
        ceiling.append(run_independent(a.qreport, model, calib, a.ranks, batches))
    stats = os.path.join(tempfile.mkdtemp(), "one.qstats")
    subprocess.run([a.qreport, "analyze", model, "--calib", calib, "--max-batches", "1", "-q", "-o", os.devnull,
                    "--save-stats", stats], check=True)
    s, j, c = statistics.median(single), statistics.median(job), statistics.median(ceiling)
    print(f"| model | batches | 1 rank x 1 thread s | {a.ranks} ranks x 1 thread s | speedup | per-run speedups | "
          f"ceiling: {a.ranks} independent processes, 1/{a.ranks} of the batches each | "
          f"bytes per rank in the reduction |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    runs = ", ".join(f"{x / y:.2f}" for x, y in zip(single, job))
    print(f"| {a.model} | {batches} | {s:.3f} | {j:.3f} | **{s / j:.2f}x** | {runs} | {c:.3f} s = {s / c:.2f}x | "
          f"{os.path.getsize(stats)} |")
    print(f"\n{a.reps} interleaved runs, medians; {os.cpu_count()} cores.")


if __name__ == "__main__":
    main()
