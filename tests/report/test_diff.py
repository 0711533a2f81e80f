#!/usr/bin/python3
"""qreport diff on pairs of reports made from one real report: an added outlier, a removed module, changed
options, an SQNR drop past the bound. Outputs are compared byte for byte with tests/report/golden/diff_*
(the runs use fixed file names in a temporary directory, so the text is deterministic); exit codes and
gate lines exactly. Usage: test_diff.py QREPORT FIXTURES_DIR SOURCE_DIR [--update]"""
import copy
import json
import os
import subprocess
import sys
import tempfile

QREPORT, FIX, SRC = sys.argv[1:4]
UPDATE = "--update" in sys.argv
GOLDEN = os.path.join(SRC, "tests", "report", "golden")
TMP = tempfile.mkdtemp(prefix="qreport-diff-")
failures = []

base = json.loads(subprocess.run([QREPORT, "analyze", f"{FIX}/parity/two_linear/model.pt", "--calib",
                                  f"{FIX}/parity/two_linear/calib.pt", "--format", "json", "-q",
                                  "--detectors", "per_channel,dynamic_static,equalization,outlier"],
                                 capture_output=True, text=True, check=True).stdout)
base["model"]["path"] = "model.pt"  # fixed names: the goldens do not depend on where fixtures live
base["calibration"]["path"] = "calib.pt"
base["model"]["sha256"] = "ab" * 32  # and a fixed hash: fixture files may differ by machine


def write(name, report):
    with open(os.path.join(TMP, name), "w") as f:
        json.dump(report, f, indent=1)


def run(args):
    return subprocess.run([QREPORT, "diff", *args], capture_output=True, text=True, cwd=TMP)


def check(name, old, new, args, code, stderr, golden):
    write("old.json", old)
    write("new.json", new)
    r = run(["old.json", "new.json", *args])
    path = os.path.join(GOLDEN, golden)
    if UPDATE:
        open(path, "w").write(r.stdout)
    want = open(path).read()
    if r.returncode != code or r.stdout != want or r.stderr != stderr:
        failures.append(f"{name}: exit {r.returncode} (want {code}), stderr {r.stderr!r} (want {stderr!r}), "
                        f"stdout {'matches' if r.stdout == want else 'differs from ' + golden}:\n{r.stdout}")
    else:
        print(f"ok {name}")


# 1. Outliers appear in fc1 (none before), and fc2 gains a flagged channel (a changed finding).
old = copy.deepcopy(base)
m = old["detectors"]["outlier_detector"]["modules"]
m["fc1"]["outliers_detected"] = [False] * len(m["fc1"]["outliers_detected"])
new = copy.deepcopy(base)
new["detectors"]["outlier_detector"]["modules"]["fc2"]["outliers_detected"][0] = True
check("added outlier", old, new, ["--fail-on", "new-findings"], 1,
      "qreport: new finding: outliers fc1: outliers in channel(s) 1, 2\nqreport: diff: 1 gated change; exit 1\n",
      "diff_added_outlier.txt")
check("added outlier, no gate", old, new, [], 0, "", "diff_added_outlier.txt")

# 2. fc2 removed from the model (renames are not guessed: a removal).
new = copy.deepcopy(base)
for det in new["detectors"].values():
    det["modules"].pop("fc2", None)
check("removed module", base, new, ["--fail-on", "new-findings", "--format", "json"], 0, "", "diff_removed_module.json")

# 3. Changed options: a warning, and the findings they change.
new = copy.deepcopy(base)
new["detectors"]["outlier_detector"]["options"]["ratio_threshold"] = 2.0
new["calibration"]["batches"] = 8
check("changed options", base, new, [], 0,
      "qreport: warning: the two reports used different settings (2 changed): differences below may come from the "
      "settings, not the model\n", "diff_changed_options.txt")

# 4. SQNR (the quantization error detector's dB values): a drop past the bound fails the gate.
old = copy.deepcopy(base)
old["detectors"]["quantization_error_detector"] = {"options": {}, "report": "", "modules": {
    "fc1": {"weight_sqnr_per_tensor_db": 38.5, "input_sqnr_minmax_db": 31.25},
    "fc2": {"weight_sqnr_per_tensor_db": 40.0, "input_sqnr_minmax_db": 29.0}}}
new = copy.deepcopy(old)
new["detectors"]["quantization_error_detector"]["modules"]["fc1"]["input_sqnr_minmax_db"] = 22.75
new["detectors"]["quantization_error_detector"]["modules"]["fc2"]["input_sqnr_minmax_db"] = 30.5
check("SQNR drop past the bound", old, new, ["--max-sqnr-drop", "3"], 1,
      "qreport: fc1 input_sqnr_minmax_db dropped by 8.50 dB (31.25 -> 22.75), more than --max-sqnr-drop 3\n"
      "qreport: diff: 1 gated change; exit 1\n", "diff_sqnr_drop.txt")
check("SQNR drop within the bound", old, new, ["--max-sqnr-drop", "10", "-q"], 0, "", "diff_sqnr_drop.txt")

# Same inputs, same bytes; HTML is one self-contained page.
r1, r2 = run(["old.json", "new.json", "--format", "html"]), run(["old.json", "new.json", "--format", "html"])
if r1.returncode != 0 or r1.stdout != r2.stdout or "<script" in r1.stdout or 'id="findings"' not in r1.stdout:
    failures.append("html: " + r1.stderr)
else:
    print("ok html")

# Not a qreport report, another schema version: exit 2, one line.
write("other.json", {"hello": 1})
write("v2.json", dict(base, schema_version=2))
for name, args, message in (
        ("not a report", ["old.json", "other.json"], "qreport: error: other.json is not a qreport JSON report"),
        ("schema 2", ["v2.json", "old.json"], "qreport: error: v2.json has report schema_version 2 (this qreport reads 1)"),
        ("bad bound", ["old.json", "old.json", "--max-sqnr-drop", "-1"], "qreport: error: --max-sqnr-drop must be a number >= 0")):
    r = run(args)
    if r.returncode != 2 or not r.stderr.startswith(message) or len(r.stderr.splitlines()) != 1:
        failures.append(f"{name}: exit {r.returncode}, stderr {r.stderr!r}")
    else:
        print(f"ok {name}")

for f in failures:
    print("FAIL", f)
print(f"{10 - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
