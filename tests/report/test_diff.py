#!/usr/bin/python3
"""qreport diff on pairs of reports made from one real report: an added outlier, a removed module, changed
options, SQNR changes (gains that must not gate, a model output that fell, a figure that became null, changes
below the display threshold), an integer --min-sqnr bound. What each diff must say comes from diff_oracle.py,
an independent Python model of the documented rules; the goldens in tests/report/golden/diff_* are written
from that oracle (--update), never from the tool, and the test checks both that the goldens equal the oracle
and that the tool's stdout equals the goldens byte for byte. Exit codes and stderr (gate lines, warnings) are
compared exactly with the oracle's, and a few key facts are also asserted by hand.
Usage: test_diff.py QREPORT FIXTURES_DIR SOURCE_DIR [--update]"""
import copy
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import diff_oracle  # noqa: E402

QREPORT, FIX, SRC = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
UPDATE = "--update" in sys.argv
GOLDEN = os.path.join(SRC, "tests", "report", "golden")
TMP = tempfile.mkdtemp(prefix="qreport-diff-")
failures = []
passed = 0

base = json.loads(subprocess.run([QREPORT, "analyze", f"{FIX}/parity/two_linear/model.pt", "--calib",
                                  f"{FIX}/parity/two_linear/calib.pt", "--format", "json", "-q",
                                  "--detectors", "per_channel,dynamic_static,equalization,outlier"],
                                 capture_output=True, text=True, check=True).stdout)
base["model"]["path"] = "model.pt"  # fixed names: the goldens do not depend on where fixtures live
base["calibration"]["path"] = "calib.pt"
base["model"]["sha256"] = "ab" * 32  # and a fixed hash: fixture files may differ by machine
base["tool"]["libtorch"] = "x"       # and no LibTorch version (no reader uses it)


def write(name, report):
    with open(os.path.join(TMP, name), "w") as f:
        json.dump(report, f, indent=1)


def run(args):
    return subprocess.run([QREPORT, "diff", *args], capture_output=True, text=True, cwd=TMP)


def option(args, name, default):
    return type(default)(args[args.index(name) + 1]) if name in args else default


def expected_stderr(d, args):
    """What main writes to stderr: warnings, then the new-findings gate, the SQNR gate, and the summary."""
    if "-q" in args:
        return ""
    lines = ["qreport: warning: " + w for w in d["warnings"]]
    gated = 0
    if option(args, "--fail-on", "none") == "new-findings":
        lines += ["qreport: new finding: %s %s: %s" % f for f in d["appeared"]]
        gated += len(d["appeared"])
    if "--max-sqnr-drop" in args:
        drops = diff_oracle.gate_lines(d, option(args, "--max-sqnr-drop", 0.0))
        lines += ["qreport: " + g for g in drops]
        gated += len(drops)
    if gated:
        lines.append("qreport: diff: %d gated change%s; exit 1" % (gated, "" if gated == 1 else "s"))
    return "".join(line + "\n" for line in lines)


def check(name, old, new, args, code, golden, must=(), must_not=()):
    """Runs diff old.json new.json ARGS; the stdout must equal the golden, which must equal the oracle's."""
    global passed
    write("old.json", old)
    write("new.json", new)
    d = diff_oracle.diff(old, new, "old.json", "new.json", option(args, "--min-change", 0.05))
    fmt = option(args, "--format", "text")
    want = diff_oracle.as_json(d) if fmt == "json" else diff_oracle.text(d)
    path = os.path.join(GOLDEN, golden)
    if UPDATE:
        open(path, "w").write(want)
    problems = []
    if open(path).read() != want:
        problems.append(f"{golden} differs from the oracle's diff (run with --update)")
    r = run(["old.json", "new.json", *args])
    err = expected_stderr(d, args)
    if r.returncode != code:
        problems.append(f"exit {r.returncode}, want {code}")
    if r.stdout != want:
        problems.append(f"stdout differs from {golden}:\n{r.stdout}")
    if r.stderr != err:
        problems.append(f"stderr {r.stderr!r}, want {err!r}")
    problems += [f"stdout+stderr lack {s!r}" for s in must if s not in r.stdout + r.stderr]
    problems += [f"stdout+stderr have {s!r}" for s in must_not if s in r.stdout + r.stderr]
    if problems:
        failures.append(f"{name}: " + "; ".join(problems))
    else:
        passed += 1
        print(f"ok {name}")


# 1. Outliers appear in fc1 (none before), and fc2 gains a flagged channel (a changed finding).
old = copy.deepcopy(base)
m = old["detectors"]["outlier_detector"]["modules"]
m["fc1"]["outliers_detected"] = [False] * len(m["fc1"]["outliers_detected"])
new = copy.deepcopy(base)
new["detectors"]["outlier_detector"]["modules"]["fc2"]["outliers_detected"][0] = True
check("added outlier", old, new, ["--fail-on", "new-findings"], 1, "diff_added_outlier.txt",
      must=["qreport: new finding: outliers fc1: outliers in channel(s) 1, 2\n"])
check("added outlier, no gate", old, new, [], 0, "diff_added_outlier.txt")

# 2. fc2 removed from the model (renames are not guessed: a removal).
new = copy.deepcopy(base)
for det in new["detectors"].values():
    det["modules"].pop("fc2", None)
check("removed module", base, new, ["--fail-on", "new-findings", "--format", "json"], 0, "diff_removed_module.json",
      must=['"modules_removed": [\n    "fc2"\n  ]'])

# 3. Changed options: a warning, and the findings they change.
new = copy.deepcopy(base)
new["detectors"]["outlier_detector"]["options"]["ratio_threshold"] = 2.0
new["calibration"]["batches"] = 8
check("changed options", base, new, [], 0, "diff_changed_options.txt",
      must=["outlier_detector.ratio_threshold: 3.5 -> 2.0"])

# 4. SQNR figures. fc1: per-channel weights no longer gain (a gain that fell 11.84 dB: not an SQNR, never
# gated) because its per-tensor weight SQNR rose to the per-channel one; its input moved by 0.02 dB (not listed). fc2's sqnr_db became
# null (gated). The simulation: the default configuration's model output fell from 34.8 to 3.5 dB and fc1's
# output with it (both gated), the recommended one moved by 0.01 dB.
def error_module(w_tensor, w_channel, x_minmax, x_hist, sqnr):
    return {"weight_sqnr_per_tensor_db": w_tensor, "weight_sqnr_per_channel_db": w_channel,
            "weight_per_channel_gain_db": round(w_channel - w_tensor, 2),
            "input_sqnr_minmax_db": x_minmax, "input_sqnr_histogram_db": x_hist,
            "input_histogram_gain_db": round(x_hist - x_minmax, 2),
            "recommended_activation_observer": "default_observer", "recommended_weight_observer": "default_weight_observer",
            "sqnr_db": sqnr, "sqnr_limited_by": "input" if sqnr is not None else None}


def simulation(default_out, default_fc1, recommended_out):
    return {"default_qconfig": {"output_sqnr_db": default_out, "layers_output_sqnr_db": {"fc1": default_fc1, "fc2": 30.0}},
            "recommended": {"output_sqnr_db": recommended_out, "layers_output_sqnr_db": {"fc1": 35.0, "fc2": 32.0}}}


old = copy.deepcopy(base)
old["detectors"]["quantization_error_detector"] = {
    "options": {"backend": "x86", "min_sqnr_db": None}, "report": "",
    "modules": {"fc1": error_module(38.5, 50.34, 31.25, 31.25, 31.25), "fc2": error_module(40.0, 40.5, 29.0, 29.5, 29.5)}}
old["simulation"] = simulation(34.8, 33.0, 36.0)
new = copy.deepcopy(old)
new["detectors"]["quantization_error_detector"]["modules"] = {
    "fc1": error_module(50.34, 50.34, 31.27, 31.27, 31.27), "fc2": error_module(40.0, 40.5, 30.5, 30.5, None)}
new["simulation"] = simulation(3.5, 3.0, 36.01)
gate = ["qreport: model output_sqnr_db (simulation.default_qconfig) dropped by 31.30 dB (34.80 -> 3.50), "
        "more than --max-sqnr-drop 3\n",
        "qreport: fc2 sqnr_db (quantization_error_detector) became null (29.50 -> null: not measurable, the new "
        "report's warnings say why), gated by --max-sqnr-drop 3\n",
        "qreport: fc1 layers_output_sqnr_db (simulation.default_qconfig) dropped by 30.00 dB (33.00 -> 3.00), more "
        "than --max-sqnr-drop 3\n",
        "qreport: diff: 3 gated changes; exit 1\n"]
check("SQNR drops past the bound", old, new, ["--max-sqnr-drop", "3"], 1, "diff_sqnr.txt",
      must=gate + ["  default_qconfig: 34.80 -> 3.50 (-31.30 dB)\n", "(3 smaller than 0.05 dB not listed"],
      must_not=["gain_db", "+0.00", "-0.00"])
check("a figure that became null fails any bound", old, new, ["--max-sqnr-drop", "40", "-q"], 1, "diff_sqnr.txt")
check("SQNR, every change listed", old, new, ["--min-change", "0", "--format", "json"], 0, "diff_sqnr_all.json",
      must=['"db_changes_not_listed": 0', '"key": "input_sqnr_minmax_db"'], must_not=["gain_db"])
# The gate sees what the display threshold hides: a 0.01 dB drop of a layer's output fails a bound of 0, and
# only that; within a bound of 0.5 it passes.
tiny = copy.deepcopy(old)
tiny["simulation"]["recommended"]["layers_output_sqnr_db"]["fc1"] = 34.99
check("SQNR gate below the display threshold", old, tiny, ["--max-sqnr-drop", "0"], 1, "diff_sqnr_hidden.txt",
      must=["qreport: fc1 layers_output_sqnr_db (simulation.recommended) dropped by 0.01 dB (35.00 -> 34.99), more "
            "than --max-sqnr-drop 0\nqreport: diff: 1 gated change; exit 1\n", "== SQNR changes (0) ==\n  (1 smaller"])
check("SQNR within the bound", old, tiny, ["--max-sqnr-drop", "0.5"], 0, "diff_sqnr_hidden.txt")

# 5. An integer --min-sqnr bound and integer SQNRs (as a hand-written or re-serialized report has them) are
# numbers like any other: the sqnr finding appears.
old = copy.deepcopy(base)
old["detectors"]["quantization_error_detector"] = {"options": {"min_sqnr_db": None}, "report": "",
                                                   "modules": {"fc1": {"sqnr_db": 31, "sqnr_limited_by": "input"}}}
new = copy.deepcopy(old)
new["detectors"]["quantization_error_detector"]["options"]["min_sqnr_db"] = 40
check("integer bound", old, new, ["--fail-on", "new-findings"], 1, "diff_int_bound.txt",
      must=["qreport: new finding: sqnr fc1: SQNR 31.0 dB under the recommended configuration, below --min-sqnr "
            "40.0 dB (limited by its input)\n"])

# 6. Review: a report made with --sensitivity-runs enable-one has null disable-one figures because those runs
# did not run. They used to fail --max-sqnr-drop as figures that "became null"; now they are not compared, and
# the changed setting is listed.
old = copy.deepcopy(base)
old["detectors"]["quantization_error_detector"] = {
    "options": {"min_sqnr_db": None}, "report": "",
    "modules": {"fc1": {"sqnr_db": 31.0, "sensitivity_output_sqnr_db": 40.0, "sensitivity_skip_output_sqnr_db": 35.0}}}
old["sensitivity"] = {"scheme": "int8-static", "batches": 4, "runs": "both", "all_quantized_output_sqnr_db": 30.0}
new = copy.deepcopy(old)
new["detectors"]["quantization_error_detector"]["modules"]["fc1"]["sensitivity_skip_output_sqnr_db"] = None
new["sensitivity"]["runs"] = "enable-one"
check("disable-one not run", old, new, ["--max-sqnr-drop", "0.5"], 0, "diff_sensitivity_runs.txt",
      must=['sensitivity.runs: "both" -> "enable-one"'], must_not=["became null"])
new["detectors"]["quantization_error_detector"]["modules"]["fc1"]["sensitivity_output_sqnr_db"] = 30.0
check("enable-one figures still gated", old, new, ["--max-sqnr-drop", "0.5"], 1, "diff_sensitivity_enable.txt",
      must=["fc1 sensitivity_output_sqnr_db (quantization_error_detector) dropped by 10.00 dB"])

# Same inputs, same bytes; HTML is one self-contained page with the model output SQNR.
write("old.json", old)
write("new.json", new)
old_sim = copy.deepcopy(base)
old_sim["simulation"] = simulation(34.8, 33.0, 36.0)
new_sim = copy.deepcopy(base)
new_sim["simulation"] = simulation(3.5, 3.0, 36.0)
write("old_sim.json", old_sim)
write("new_sim.json", new_sim)
r1, r2 = run(["old_sim.json", "new_sim.json", "--format", "html"]), run(["old_sim.json", "new_sim.json", "--format", "html"])
if (r1.returncode != 0 or r1.stdout != r2.stdout or "<script" in r1.stdout or 'id="findings"' not in r1.stdout
        or "<tr><td>default_qconfig</td><td>34.80</td><td>3.50</td><td>-31.30</td></tr>" not in r1.stdout
        or "<tr><td>fc1</td><td>layers_output_sqnr_db</td><td>simulation.default_qconfig</td><td>33.00</td>"
           "<td>3.00</td><td>-30.00</td></tr>" not in r1.stdout):
    failures.append("html: " + r1.stderr + r1.stdout)
else:
    passed += 1
    print("ok html")

# Not a qreport report, another schema version, bad bounds: exit 2, one line.
write("other.json", {"hello": 1})
write("v2.json", dict(base, schema_version=2))
for name, args, message in (
        ("not a report", ["old.json", "other.json"], "qreport: error: other.json is not a qreport JSON report"),
        ("schema 2", ["v2.json", "old.json"], "qreport: error: v2.json has report schema_version 2 (this qreport reads 1)"),
        ("bad bound", ["old.json", "old.json", "--max-sqnr-drop", "-1"], "qreport: error: --max-sqnr-drop must be a number >= 0"),
        ("bad threshold", ["old.json", "old.json", "--min-change", "-1"], "qreport: error: --min-change must be a number >= 0")):
    r = run(args)
    if r.returncode != 2 or not r.stderr.startswith(message) or len(r.stderr.splitlines()) != 1:
        failures.append(f"{name}: exit {r.returncode}, stderr {r.stderr!r}")
    else:
        passed += 1
        print(f"ok {name}")

for f in failures:
    print("FAIL", f)
print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures or not passed else 0)
