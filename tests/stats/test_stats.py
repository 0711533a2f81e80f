#!/usr/bin/python3
"""Statistics files: analyze --save-stats, qreport report, qreport merge.
  * round trip: the report from a saved file is byte for byte the direct report; torch.load opens the file;
  * merge: resnet18 (fused, scripted) over 6 batches, and the same batches in 3 shards analyzed separately
    and merged: minima, maxima and counts bit-equal, averages within rel 1e-5, the error detector's
    histogram-based values within the tolerances docs/statistics.md states (1 dB; ranges rel 5e-2), ratios
    PyTorch saturates at the float32 maximum saturated in both;
  * thresholds change freely; what would need other observations exits 2 with the reason;
  * bad files: truncated, wrong version, not statistics, another model, mismatched settings: exit 2, one line.
Usage: test_stats.py QREPORT SOURCE_DIR"""
import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
QREPORT, SRC = sys.argv[1:3]
sys.path.insert(0, os.path.join(SRC, "data"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

import fixtures  # noqa: E402
from merged_reports import compare  # noqa: E402

T = tempfile.mkdtemp(prefix="qreport-stats-")
failures = []

def qreport(*args, code=0):
    r = subprocess.run([QREPORT, *args], capture_output=True, text=True)
    if r.returncode != code:
        failures.append(f"{' '.join(args)}: exit {r.returncode}, want {code}: {r.stderr.strip()}")
    return r


def expect_error(name, args, message):
    r = qreport(*args, code=2)
    lines = [l for l in r.stderr.splitlines() if l.startswith("qreport: error:")]
    if len(lines) != 1 or message not in lines[0]:
        failures.append(f"{name}: stderr {r.stderr.strip()!r} lacks {message!r}")
    else:
        print(f"ok {name}")


def self_check(direct):
    """merged_reports.compare must be able to fail: each mutation of the direct report below is a merged
    report that breaks the merge rule, and compare must say so."""
    def flip_weight_observer(d):  # decided from the weights alone: exact in any merge
        m = first_of(d, "quantization_error_detector")
        m["recommended_weight_observer"] = ("default_weight_observer" if m["recommended_weight_observer"] ==
                                            "default_per_channel_weight_observer" else
                                            "default_per_channel_weight_observer")
    mutations = {
        "a shorter ratio list": lambda d: first_of(d, "outlier_detector")["outlier_detection_percentile_ratios"].pop(),
        "an empty ratio list": lambda d: first_of(d, "outlier_detector")["outlier_detection_percentile_ratios"].clear(),
        "a zero point far off": lambda d: first_of(d, "quantization_error_detector").update(
            input_histogram_zero_point=first_of(d, "quantization_error_detector")["input_histogram_zero_point"] + 40),
        "a flipped weight recommendation": flip_weight_observer,
        "a report text": lambda d: d["detectors"]["outlier_detector"].update(report="x"),
        "an error report line": lambda d: d["detectors"]["quantization_error_detector"].update(
            report=d["detectors"]["quantization_error_detector"]["report"].replace(" dB", " dB!", 1)),
        "a qconfig entry": lambda d: d["qconfig_mapping"][next(iter(d["qconfig_mapping"]))].update(weight="x"),
        "worst_layers cut": lambda d: d["detectors"]["quantization_error_detector"]["worst_layers"].pop(),
        "a warning dropped": lambda d: d["warnings"].pop(),
    }
    missed = 0
    for name, mutate in mutations.items():
        m = copy.deepcopy(direct)
        mutate(m)
        found = []
        compare(direct, m, found)
        if not found:
            failures.append(f"merged_reports.compare misses {name}")
            missed += 1
    if not missed:
        print(f"ok merged_reports.compare catches {len(mutations)} kinds of difference")


def first_of(d, det):
    mods = d["detectors"][det]["modules"]
    return mods[next(iter(mods))]


def main():
    torch.manual_seed(21)
    gm, _ = fixtures.fused("resnet18")
    torch.jit.save(torch.jit.script(gm), f"{T}/model.pt")
    batches = [torch.randn(2, 3, 64, 64) for _ in range(6)]
    torch.save(batches, f"{T}/all.pt")
    for s in range(3):
        torch.save(batches[2 * s:2 * s + 2], f"{T}/shard{s}.pt")
    common = ["--threads", "1", "-q", "--format", "json"]
    qreport("analyze", f"{T}/model.pt", "--calib", f"{T}/all.pt", "--save-stats", f"{T}/all.qstats",
            "-o", f"{T}/direct.json", *common)
    # Round trip.
    qreport("report", f"{T}/model.pt", "--stats", f"{T}/all.qstats", "-o", f"{T}/again.json", *common)
    def without_measured(path):
        """The report less what only a run with data measures (the layers' output SQNR, issue 21)."""
        j = json.load(open(path))
        e = j["detectors"]["quantization_error_detector"]
        for k in ("report", "worst_layers", "error_batches_used"):
            e.pop(k, None)
        for m in e["modules"].values():
            m.pop("sqnr_db", None)
        # Statistics files do not hold the LLM.int8() sums: the report from them says so (docs/statistics.md).
        o = j["detectors"]["outlier_detector"]
        llm = o.pop("llm_int8")
        if path.endswith("again.json") and list(llm) != ["unavailable"]:
            failures.append(f"round trip: llm_int8 {str(llm)[:80]}, want unavailable")
        j["warnings"] = [w for w in j["warnings"] if "sqnr_db" not in w]
        return json.dumps(j, sort_keys=True)
    if without_measured(f"{T}/direct.json") != without_measured(f"{T}/again.json"):
        failures.append("round trip: the report from the statistics differs from the direct report")
    else:
        print("ok round trip")
    saved = torch.load(f"{T}/all.qstats", weights_only=False)  # 2.6+ defaults to weights_only=True
    if saved["format"] != "qreport-stats" or saved["version"] != 2 or saved["calibration"][0]["batches"] != 6:
        failures.append(f"torch.load: {saved['format']}, {saved['version']}, {saved['calibration']}")
    # Merge of three shards.
    for s in range(3):
        qreport("analyze", f"{T}/model.pt", "--calib", f"{T}/shard{s}.pt", "--save-stats", f"{T}/shard{s}.qstats",
                "-o", os.devnull, *common)
    qreport("merge", f"{T}/shard0.qstats", f"{T}/shard1.qstats", f"{T}/shard2.qstats", "-o", f"{T}/merged.qstats")
    qreport("report", f"{T}/model.pt", "--stats", f"{T}/merged.qstats", "-o", f"{T}/merged.json", *common)
    direct, merged = json.load(open(f"{T}/direct.json")), json.load(open(f"{T}/merged.json"))
    n = compare(direct, merged, failures)
    if merged["calibration"]["batches"] != 6:
        failures.append(f"merged batches {merged['calibration']['batches']}")
    # report takes several files too (merged on the fly): the same report.
    qreport("report", f"{T}/model.pt", "--stats", f"{T}/shard0.qstats", "--stats", f"{T}/shard1.qstats", "--stats",
            f"{T}/shard2.qstats", "-o", f"{T}/merged2.json", *common)
    if json.load(open(f"{T}/merged2.json"))["detectors"] != merged["detectors"]:
        failures.append("report over three files differs from report over their merge")
    print(f"ok merge: {n} values compared")
    self_check(direct)
    # Thresholds change freely.
    r = qreport("report", f"{T}/model.pt", "--stats", f"{T}/all.qstats", "--outlier-ratio-threshold", "5",
                "--dynamic-static-tolerance", "0.7", *common)
    if r.returncode == 0 and json.loads(r.stdout)["detectors"]["outlier_detector"]["options"]["ratio_threshold"] != 5:
        failures.append("report: --outlier-ratio-threshold not applied")
    # What needs other observations, and bad files.
    M, S = f"{T}/model.pt", f"{T}/all.qstats"
    expect_error("other ch-axis", ["report", M, "--stats", S, "--ch-axis", "1"],
                 "--ch-axis 1 needs other observations than the statistics hold (observed with --ch-axis auto)")
    expect_error("other percentile", ["report", M, "--stats", S, "--outlier-reference-percentile", "0.9"],
                 "needs other observations than the statistics hold (observed at 0.975")
    qreport("analyze", M, "--calib", f"{T}/shard0.pt", "--detectors", "outlier",
            "--save-stats", f"{T}/outlier.qstats", "-o", os.devnull, "-q")
    expect_error("detector not observed", ["report", M, "--stats", f"{T}/outlier.qstats", "--detectors", "equalization"],
                 "the statistics hold no observations for input_weight_equalization_detector")
    expect_error("mismatched settings", ["merge", S, f"{T}/outlier.qstats", "-o", f"{T}/x.qstats"],
                 "was observed with other settings")
    data = open(S, "rb").read()
    open(f"{T}/truncated.qstats", "wb").write(data[: len(data) // 2])
    expect_error("truncated", ["report", M, "--stats", f"{T}/truncated.qstats"], "statistics file")
    v3 = dict(saved)
    v3["version"] = 3
    torch.save(v3, f"{T}/v3.qstats")
    expect_error("wrong version", ["report", M, "--stats", f"{T}/v3.qstats"], "has format version 3 (this qreport reads 2)")
    expect_error("not statistics", ["report", M, "--stats", f"{T}/all.pt"], "not of qreport statistics")
    other = fixtures.fused("two_linear")[0]
    torch.jit.save(torch.jit.script(other), f"{T}/other.pt")
    expect_error("other model", ["report", f"{T}/other.pt", "--stats", S], "was made from another model")
    expect_error("stats and calib", ["report", M, "--stats", S, "--calib", f"{T}/all.pt"], "excludes")
    expect_error("stats and simulate", ["report", M, "--stats", S, "--simulate"], "--stats reads saved statistics")
    if failures:
        print("\n".join(failures[:40]))
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
