#!/usr/bin/python3
"""Hostile saved reports given to `qreport diff` and `qreport table`: deep nesting, wrong types, "NaN"
strings, garbage detector bodies, duplicate keys. Each must exit 2 with exactly one line naming the file and
the JSON path of the first problem, never crash (139) or report an internal error (70); and the values that
are meaningful in another JSON kind (an integer where a float is expected) are read.
Usage: test_report_readers.py QREPORT"""
import copy
import json
import os
import subprocess
import sys
import tempfile

QREPORT = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="qreport-readers-")
failures = []
passed = 0

# A small valid report, in the layout analyze writes (docs/json-schema.md).
GOOD = {
    "schema_version": 1,
    "tool": {"name": "qreport", "version": "0.1.0", "libtorch": "1.13.0"},
    "model": {"path": "m.pt", "sha256": "ab" * 32, "modules": 3},
    "calibration": {"path": "c.pt", "batches": 2, "device": "cpu"},
    "detectors": {
        "per_channel_detector": {"options": {"backend": "x86"}, "report": "",
                                 "modules": {"conv2.0": {"per_channel_quantization_supported": True,
                                                         "per_channel_quantization_used": False}}},
        "outlier_detector": {"options": {"ratio_threshold": 3.5}, "report": "",
                             "modules": {"fc": {"outliers_detected": [False, True],
                                                "outlier_detection_is_sufficient_batches": [True, True],
                                                "outlier_detection_percentile_ratios": [1.5, 9.0]}}},
        "quantization_error_detector": {"options": {"min_sqnr_db": None}, "report": "",
                                        "modules": {"fc": {"sqnr_db": 31.5, "input_sqnr_minmax_db": 31.5}},
                                        "worst_layers": [{"fqn": "fc", "sqnr_db": 31.5, "limited_by": "input"}]},
    },
    "qconfig_mapping": {},
    "equalization_mapping": {},
    "simulation": {"recommended": {"output_sqnr_db": 30.0, "layers_output_sqnr_db": {"fc": 31.0}}},
    "warnings": [],
}


def write(name, text):
    with open(os.path.join(TMP, name), "w") as f:
        f.write(text)


def run(*args):
    return subprocess.run([QREPORT, *args], capture_output=True, text=True, cwd=TMP)


def expect_error(name, text, message, prefix=False):
    """diff (as the old and as the new report) and table each exit 2 with one line: "bad.json: " and the
    message (a JSON path and what is wrong there), or, for a message starting with "bad.json", that message."""
    global passed
    write("bad.json", text)
    problems = []
    for args in (["diff", "bad.json", "good.json"], ["diff", "good.json", "bad.json"], ["table", "bad.json"]):
        r = run(*args)
        want = "qreport: error: " + (message if message.startswith("bad.json") else "bad.json: " + message)
        ok = r.stderr.startswith(want) if prefix else r.stderr == want + "\n"
        if r.returncode != 2 or not ok or len(r.stderr.splitlines()) != 1 or r.stdout:
            problems.append(f"{args[0]}: exit {r.returncode}, stderr {r.stderr[:300]!r}")
    if problems:
        failures.append(f"{name}: " + "; ".join(problems) + f" (want exit 2, {message[:200]!r})")
    else:
        passed += 1
        print(f"ok {name}")


def mutate(change):
    r = copy.deepcopy(GOOD)
    change(r)
    return json.dumps(r)


write("good.json", json.dumps(GOOD))
for args in (["diff", "good.json", "good.json"], ["table", "good.json"]):
    r = run(*args)
    if r.returncode != 0 or r.stderr:
        failures.append(f"the valid report: {args[0]} exit {r.returncode}, {r.stderr!r}")

# 1. 20,000 nested arrays (160 KB) in an option value: the reader stops at its depth bound (64), naming where.
deep = json.dumps(GOOD).replace('"ratio_threshold": 3.5', '"deep": ' + "[" * 20000 + "]" * 20000)
expect_error("20,000 nested arrays", deep,
             "$.detectors.outlier_detector.options.deep" + "[0]" * 60 + ": nested deeper than 64 levels")
# ... and in a module's field, where `table` prints cells.
deep = json.dumps(GOOD).replace('"outlier_detection_percentile_ratios": [1.5, 9.0]',
                                '"x": ' + "[" * 20000 + "]" * 20000)
expect_error("20,000 nested arrays in a module", deep, '$.detectors.outlier_detector.modules.fc.x' + "[0]" * 59 +
             ": nested deeper than 64 levels")

# 2. Wrong types where a reader looks: the path of the value, what was expected, what came.
cases = [
    ("model is a number", lambda r: r.update(model=5), "$.model: expected an object, got a number"),
    ("model is an array", lambda r: r.update(model=[1, 2]), "$.model: expected an object, got an array"),
    ("model.sha256 is a number", lambda r: r.update(model={"sha256": 5}), "$.model.sha256: expected a string, got a number"),
    ("model.path is null", lambda r: r["model"].update(path=None), "$.model.path: expected a string, got null"),
    ("tool.name is a number", lambda r: r.update(tool={"name": 7}), "$.tool.name: expected a string, got a number"),
    ("tool is a string", lambda r: r.update(tool="qreport"), "$.tool: expected an object, got a string \"qreport\""),
    ("calibration.batches is negative", lambda r: r["calibration"].update(batches=-3),
     "$.calibration.batches: expected a non-negative integer, got -3"),
    ("calibration.device is a list", lambda r: r["calibration"].update(device=["cpu"]),
     "$.calibration.device: expected a string, got an array"),
    ("detectors is a list", lambda r: r.update(detectors=[]),
     "$.detectors: expected an object (detector name -> results), got an array"),
    ("a garbage detector body", lambda r: r["detectors"].update(per_channel_detector=5),
     "$.detectors.per_channel_detector: expected an object (the detector's options, report and modules), got a number"),
    ("modules is a string", lambda r: r["detectors"]["outlier_detector"].update(modules="fc"),
     "$.detectors.outlier_detector.modules: expected an object (module name -> fields), got a string \"fc\""),
    ("a module is a number", lambda r: r["detectors"]["per_channel_detector"]["modules"].update({"conv2.0": 1}),
     '$.detectors.per_channel_detector.modules["conv2.0"]: expected an object (the module\'s fields), got a number'),
    ("options is a list", lambda r: r["detectors"]["outlier_detector"].update(options=[]),
     "$.detectors.outlier_detector.options: expected an object, got an array"),
    ("report is a number", lambda r: r["detectors"]["outlier_detector"].update(report=1),
     "$.detectors.outlier_detector.report: expected a string, got a number"),
    ("a flag is a string", lambda r: r["detectors"]["per_channel_detector"]["modules"]["conv2.0"].update(
        per_channel_quantization_used="no"),
     '$.detectors.per_channel_detector.modules["conv2.0"].per_channel_quantization_used: expected a boolean, '
     'got a string "no"'),
    ("an outlier flag is a number", lambda r: r["detectors"]["outlier_detector"]["modules"]["fc"].update(
        outliers_detected=[False, 1]),
     "$.detectors.outlier_detector.modules.fc.outliers_detected[1]: expected a boolean, got a number"),
    ("outlier lists of different lengths", lambda r: r["detectors"]["outlier_detector"]["modules"]["fc"].update(
        outlier_detection_is_sufficient_batches=[True]),
     "$.detectors.outlier_detector.modules.fc.outlier_detection_is_sufficient_batches: 1 entries, but "
     "outliers_detected has 2"),
    ("sqnr_limited_by is a number", lambda r: r["detectors"]["quantization_error_detector"]["modules"]["fc"].update(
        sqnr_limited_by=1), "$.detectors.quantization_error_detector.modules.fc.sqnr_limited_by: expected a string "
                            "or null, got a number"),
    ("a dB value is a list", lambda r: r["detectors"]["quantization_error_detector"]["modules"]["fc"].update(
        sqnr_db=[1]), "$.detectors.quantization_error_detector.modules.fc.sqnr_db: expected a number or null, got an array"),
    ("min_sqnr_db is a string", lambda r: r["detectors"]["quantization_error_detector"]["options"].update(
        min_sqnr_db="40"), "$.detectors.quantization_error_detector.options.min_sqnr_db: expected a number or null, "
                           "got the string \"40\" (qreport writes a value it could not measure as null)"),
    ("simulation is a list", lambda r: r.update(simulation=[]),
     "$.simulation: expected an object (configuration -> output SQNRs), got an array"),
    ("a simulated layer is a string", lambda r: r["simulation"]["recommended"]["layers_output_sqnr_db"].update(fc="x"),
     "$.simulation.recommended.layers_output_sqnr_db.fc: expected a number or null, got the string \"x\" (qreport "
     "writes a value it could not measure as null)"),
]
for name, change, message in cases:
    expect_error(name, mutate(change), message)

# 3. "NaN" written as a string (Python's json module writes NaN bare, hand edits as a string): refused, not
# skipped, so that --max-sqnr-drop 0 cannot pass on a value nobody read.
expect_error("the string NaN", mutate(lambda r: r["detectors"]["quantization_error_detector"]["modules"]["fc"].update(
    input_sqnr_minmax_db="NaN")), "$.detectors.quantization_error_detector.modules.fc.input_sqnr_minmax_db: expected a "
                                  "number or null, got the string \"NaN\" (qreport writes a value it could not measure as null)")
expect_error("bare NaN", json.dumps(GOOD).replace('"sqnr_db": 31.5, "input', '"sqnr_db": NaN, "input'),
             "bad.json is not valid JSON: [json.exception.parse_error.101]", prefix=True)
expect_error("a number beyond double", json.dumps(GOOD).replace('"sqnr_db": 31.5, "input', '"sqnr_db": 1e999, "input'),
             "bad.json is not valid JSON: [json.exception.out_of_range.406] number overflow parsing '1e999'")
expect_error("a key twice", json.dumps(GOOD).replace('"sqnr_db": 31.5,', '"sqnr_db": 31.5, "sqnr_db": 99.0,'),
             '$.detectors.quantization_error_detector.modules.fc: the key "sqnr_db" appears twice')
expect_error("a module twice", json.dumps(GOOD).replace('"modules": {"fc": {"sqnr_db"', '"modules": {"fc": {}, "fc": {"sqnr_db"'),
             '$.detectors.quantization_error_detector.modules: the key "fc" appears twice')

# 4. Not a report at all: the reader's own words, exit 2.
global_cases = [("an array", "[1, 2]", "bad.json is not a qreport JSON report"),
                ("empty", "", "bad.json is not valid JSON"),
                ("tool.name is another tool", json.dumps(dict(GOOD, tool={"name": "other"})),
                 "bad.json is not a qreport JSON report (its tool.name is \"other\")"),
                ("schema_version 1.0", json.dumps(GOOD).replace('"schema_version": 1', '"schema_version": 1.0'),
                 "bad.json has report schema_version 1.0 (this qreport reads 1)")]
for name, text, message in global_cases:
    write("bad.json", text)
    r = run("table", "bad.json")
    if r.returncode != 2 or not r.stderr.startswith("qreport: error: " + message) or len(r.stderr.splitlines()) != 1:
        failures.append(f"{name}: exit {r.returncode}, stderr {r.stderr!r}")
    else:
        passed += 1
        print(f"ok {name}")

# A directory is not a report (the file is read in one piece: its size must be a file's).
r = run("table", ".")
if r.returncode != 2 or r.stderr != "qreport: error: cannot read '.': it is a directory\n":
    failures.append(f"directory: exit {r.returncode}, stderr {r.stderr!r}")
else:
    passed += 1
    print("ok directory")

# 5. Numbers of another kind where they are meaningful: an integer SQNR and an integer --min-sqnr bound give the
# sqnr finding (they were ignored: only floats counted), and a huge integer is shown, not wrapped.
ints = mutate(lambda r: (r["detectors"]["quantization_error_detector"]["options"].update(min_sqnr_db=40),
                         r["detectors"]["quantization_error_detector"]["modules"]["fc"].update(sqnr_db=31),
                         r["detectors"]["outlier_detector"]["modules"]["fc"].update(count=18446744073709551614)))
write("ints.json", ints)
r = run("diff", "good.json", "ints.json", "--fail-on", "new-findings")
want = ("qreport: new finding: sqnr fc: SQNR 31.0 dB under the recommended configuration, below --min-sqnr 40.0 dB\n"
        "qreport: diff: 1 gated change; exit 1\n")
if r.returncode != 1 or not r.stderr.endswith(want):
    failures.append(f"integer bound: exit {r.returncode}, stderr {r.stderr!r}, want ending {want!r}")
else:
    passed += 1
    print("ok integer bound")
r = run("table", "ints.json", "--feature", "count")
if r.returncode != 0 or "fc         1.84467e+19" not in r.stdout:
    failures.append(f"huge integer: exit {r.returncode}, {r.stdout!r} {r.stderr!r}")
else:
    passed += 1
    print("ok huge integer")

for f in failures:
    print("FAIL", f)
print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
