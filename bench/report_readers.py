#!/usr/bin/python3
"""The readers of saved reports on a large report: `qreport table` of it and `qreport diff` of it with itself,
against parsing it (qreport_bench_json_parse: read the file, nlohmann's DOM parse, nothing else). Issue 22's
goal: each within 2x of parsing (diff reads two reports, so it is compared with two parses as well as one).
Whole-process wall time and peak RSS, median of --reps interleaved runs, one Markdown table on stdout.

    /usr/bin/python3 bench/report_readers.py --qreport build/qreport --parse build/qreport_bench_json_parse
                                             --template REPORT.json [--modules 30000] [--reps 3] [--old OLD_QREPORT]

The large report repeats the modules of --template (a report written by analyze --format json, ideally with
every detector and --simulate) under new names ("block{i}.{fqn}") until each detector has --modules modules;
the simulation's layers are repeated the same way. --old also times another qreport binary (the previous main)
on the same files, for the before/after figures.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1: diff's gates, not a failure of the run
        sys.exit("bench: %s exited %d: %s" % (" ".join(cmd), code, proc.stderr.read().decode()[:500]))
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def make_report(template, modules, path):
    with open(template) as f:
        t = json.load(f)
    for det in t["detectors"].values():
        base = det.get("modules", {})
        if not base:
            continue
        det["modules"] = {"block%d.%s" % (i // len(base), fqn): fields
                          for i, (fqn, fields) in zip(range(modules), (x for _ in range(modules) for x in base.items()))}
    for config in t.get("simulation", {}).values():
        base = config["layers_output_sqnr_db"]
        if base:
            config["layers_output_sqnr_db"] = {
                "block%d.%s" % (i // len(base), site): v
                for i, (site, v) in zip(range(modules), (x for _ in range(modules) for x in base.items()))}
    with open(path, "w") as f:
        json.dump(t, f, indent=2)
    return os.path.getsize(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--qreport", required=True)
    p.add_argument("--parse", required=True, help="qreport_bench_json_parse")
    p.add_argument("--template", required=True)
    p.add_argument("--modules", type=int, default=30000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--old", help="another qreport binary to time on the same files")
    a = p.parse_args()
    load = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="qreport-bench-readers-")
    report = os.path.join(tmp, "large.json")
    size = make_report(a.template, a.modules, report)
    copy = os.path.join(tmp, "large_copy.json")
    with open(report, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    cases = [("parse", [a.parse, report]),
             ("table", [a.qreport, "table", report]),
             ("diff", [a.qreport, "diff", report, copy, "--max-sqnr-drop", "0"])]
    if a.old:
        cases += [("old table", [a.old, "table", report]), ("old diff", [a.old, "diff", report, copy])]
    times = {name: [] for name, _ in cases}
    cpus = {name: [] for name, _ in cases}
    rss = {name: 0.0 for name, _ in cases}
    for _ in range(a.reps):
        for name, cmd in cases:
            wall, cpu, peak = timed(cmd)
            times[name].append(wall)
            cpus[name].append(cpu)
            rss[name] = max(rss[name], peak)
    parse = statistics.median(times["parse"])
    parse_cpu = statistics.median(cpus["parse"])
    print("report: %d modules per detector, %.1f MB; median of %d runs; %d CPUs, load average %.1f before"
          % (a.modules, size / 1e6, a.reps, os.cpu_count(), load))
    print()
    print("| run | wall s | / parse | / two parses | CPU s (user+sys) | CPU / parse | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, _ in cases:
        m, c = statistics.median(times[name]), statistics.median(cpus[name])
        print("| %s | %.2f | %.2fx | %.2fx | %.2f | %.2fx | %.0f |"
              % (name, m, m / parse, m / (2 * parse), c, c / parse_cpu, rss[name]))


if __name__ == "__main__":
    main()
