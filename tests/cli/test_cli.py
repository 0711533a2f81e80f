#!/usr/bin/python3
"""CLI tests: exit codes, the one-line error messages, JSON shape, text output, no partial output files,
determinism. Data-driven: each case is (name, args, expected exit code, expected stderr substring).
Usage: test_cli.py QREPORT FIXTURES_DIR SOURCE_DIR"""
import json
import os
import subprocess
import sys
import tempfile

QREPORT, FIX, SRC = sys.argv[1], sys.argv[2], sys.argv[3]
G = f"{FIX}/graph"
P = f"{FIX}/parity"
TMP = tempfile.mkdtemp()
with open(f"{TMP}/empty.pt", "wb"):
    pass
with open(f"{TMP}/random.pt", "wb") as f:
    f.write(bytes(range(256)) * 8)
with open(f"{G}/two_input.pt", "rb") as f:
    data = f.read()
with open(f"{TMP}/truncated.pt", "wb") as f:
    f.write(data[: len(data) // 2])

LIN = f"{P}/two_linear/model.pt"
LINC = f"{P}/two_linear/calib.pt"
with open(LINC, "rb") as f:
    data = f.read()
with open(f"{TMP}/calib_truncated.pt", "wb") as f:
    f.write(data[: len(data) // 2])
os.makedirs(f"{TMP}/outdir", exist_ok=True)
os.symlink(os.path.abspath(LINC), f"{TMP}/link-to-calib.pt")
# A model whose file-format version is past this LibTorch's, as a newer PyTorch writes.
import zipfile  # noqa: E402
with zipfile.ZipFile(LIN) as src, zipfile.ZipFile(f"{TMP}/newer.pt", "w") as dst:
    for info in src.infolist():
        dst.writestr(info.filename, b"99\n" if info.filename.endswith("/version") else src.read(info.filename))
with open(f"{TMP}/r1.json", "w") as f:
    f.write("{}")

# What differs between the builds (docs/builds.md); this Python's torch is the build's.
import torch  # noqa: E402
_torch2 = int(torch.__version__.split(".")[0]) >= 2
# A CUDA LibTorch (the default build) on a machine without a GPU, or a CPU-only LibTorch.
NO_CUDA = "no CUDA GPU is available on this machine" if torch.version.cuda else "without CUDA"
# LibTorch 2.x's unpickler checks a view's bounds itself, before qreport's own check.
VIEW_PAST_STORAGE = ("storage offset 47 is out of bounds for storage of size 48 bytes" if _torch2
                     else "a tensor's sizes and offset reach past its storage")
# A Linear with an infinite weight: its output SQNR cannot be measured, and a gate must not pass it (the
# review's m_winf.pt passed --fail-on sqnr with exit 0).
torch.manual_seed(0)
_winf = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8)).eval()
with torch.no_grad():
    _winf[2].weight[1, 1] = float("inf")
torch.jit.save(torch.jit.script(_winf), f"{TMP}/winf.pt")
torch.save([torch.randn(4, 8) for _ in range(3)], f"{TMP}/winf_calib.pt")
# A 3 KB archive of a broadcast batch (torch.expand) that materialises to 1.8 GB.
torch.save([torch.zeros(1, 3, 12, 12).expand(2 ** 20, 3, 12, 12)], f"{TMP}/expanded.pt")
# The TorchScript class name of a quantized ConvReLU2d: where the class is defined in this PyTorch.
import torch.nn.intrinsic.quantized as _nniq  # noqa: E402
QCONVRELU = f"{_nniq.ConvReLU2d.__module__}.{_nniq.ConvReLU2d.__qualname__}"

CASES = [
    ("help", ["--help"], 0, ""),
    ("no subcommand", [], 2, "qreport: error: A subcommand is required"),
    ("unknown option", ["analyze", LIN, "--calib", LINC, "--bogus"], 2, "qreport: error: The following argument was not expected: --bogus"),
    ("model missing", ["analyze", "/nonexistent.pt", "--calib", LINC], 2, "qreport: error: model '/nonexistent.pt' does not exist"),
    ("model empty", ["analyze", f"{TMP}/empty.pt", "--calib", LINC], 2, "is empty"),
    ("model random bytes", ["analyze", f"{TMP}/random.pt", "--calib", LINC], 2, "cannot load model"),
    ("model truncated", ["analyze", f"{TMP}/truncated.pt", "--calib", LINC], 2, "cannot load model"),
    ("model is an archive", ["analyze", LINC, "--calib", LINC], 2,
     f"model '{LINC}' is a torch.save archive, not a TorchScript model (it has data.pkl and no code/)"),
    ("model is a directory", ["analyze", TMP, "--calib", LINC], 2, "is a directory, not a file"),
    ("model with a corrupt pickle (fuzz)", ["analyze", f"{SRC}/tests/fuzz/regressions/model/huge-allocation.pt", "--calib", LINC], 2, "is corrupt: its data.pkl is not a well-formed pickle"),
    ("model with a corrupt source-range pickle (fuzz: a memo id of 1.9e9)", ["analyze", f"{SRC}/tests/fuzz/regressions/model/debug-pkl-memo-id.pt", "--calib", LINC], 2, "is corrupt: its code/__torch__.py.debug_pkl is not a well-formed pickle"),
    ("model with records outside its folder (fuzz)", ["analyze", f"{SRC}/tests/fuzz/regressions/model/record-name-mismatch.pt", "--calib", LINC], 2, "is corrupt: file in archive is not in a subdirectory bare_lineaR/"),
    ("archive missing", ["analyze", LIN, "--calib", "/nonexistent.pt"], 2, "calibration archive '/nonexistent.pt' does not exist"),
    ("archive empty", ["analyze", LIN, "--calib", f"{TMP}/empty.pt"], 2, "is empty"),
    ("archive random", ["analyze", LIN, "--calib", f"{TMP}/random.pt"], 2, "not a torch.save archive"),
    ("archive legacy", ["analyze", LIN, "--calib", f"{G}/calib_legacy.pt"], 2, "legacy (pre-1.6) torch.save format"),
    ("archive is a model", ["analyze", LIN, "--calib", LIN], 2, "it looks like a TorchScript model"),
    ("archive empty list", ["analyze", LIN, "--calib", f"{G}/calib_empty_list.pt"], 2, "the list of batches is empty"),
    ("archive non-tensor", ["analyze", LIN, "--calib", f"{G}/calib_nontensor.pt"], 2, "batch 0 is a String, expected a Tensor"),
    ("wrong arity", ["analyze", f"{G}/two_input.pt", "--calib", LINC], 2, "does not fit forward(x, y, scale)"),
    ("dict bad key", ["analyze", f"{G}/two_input.pt", "--calib", f"{G}/calib_dict_badkey.pt"], 2, "does not fit forward(x, y, scale)"),
    ("dict ok", ["analyze", f"{G}/two_input.pt", "--calib", f"{G}/calib_dict.pt"], 0, ""),
    ("tuples ok", ["analyze", f"{G}/two_input.pt", "--calib", f"{G}/calib_tuples.pt"], 0, ""),
    ("shape mismatch fails forward", ["analyze", LIN, "--calib", f"{G}/calib_wrong_shape.pt"], 3, "the model's forward failed on calibration batch 0"),
    ("model raises", ["analyze", f"{G}/failing.pt", "--calib", f"{G}/calib_large.pt"], 3, "input too large"),
    ("unknown detector", ["analyze", LIN, "--calib", LINC, "--detectors", "bogus"], 2, "unknown detector 'bogus'"),
    ("unknown backend", ["analyze", LIN, "--calib", LINC, "--backend", "tpu"], 2, "--backend must be one of"),
    ("sqnr gate without bound", ["analyze", LIN, "--calib", LINC, "--fail-on", "sqnr"], 2,
     "qreport: error: --fail-on sqnr needs --min-sqnr DB (the bound a layer's SQNR must reach)\n"),
    ("sqnr gate fails", ["analyze", LIN, "--calib", LINC, "--fail-on", "sqnr", "--min-sqnr", "200", "-o", "/dev/null"], 1,
     "qreport: finding: sqnr fc1: SQNR "),
    ("sqnr gate passes", ["analyze", LIN, "--calib", LINC, "--fail-on", "sqnr", "--min-sqnr", "1", "-o", "/dev/null"], 0, ""),
    ("sqnr bound not finite", ["analyze", LIN, "--calib", LINC, "--min-sqnr", "inf"], 2, "--min-sqnr must be a finite number"),
    ("histogram gain negative", ["analyze", LIN, "--calib", LINC, "--histogram-min-gain", "-1"], 2,
     "--histogram-min-gain must be a finite number of dB, 0 or more"),
    ("worst zero", ["analyze", LIN, "--calib", LINC, "--worst", "0"], 2, "--worst must be 1 or more"),
    ("simulate without error detector", ["analyze", LIN, "--calib", LINC, "--simulate", "--detectors", "outlier"], 2,
     "--simulate needs the error detector"),
    ("simulate", ["analyze", LIN, "--calib", LINC, "--simulate", "-o", "/dev/null"], 0, ""),
    ("save-stats onto -o", ["analyze", LIN, "--calib", LINC, "--save-stats", f"{TMP}/same", "-o", f"{TMP}/same"], 2,
     f"--save-stats '{TMP}/same' and -o '{TMP}/same' are the same file"),
    # Review: '-' with the report in a file was called "the same file" as it.
    ("save-stats to stdout", ["analyze", LIN, "--calib", LINC, "--save-stats", "-", "-o", f"{TMP}/r.json"], 2,
     "--save-stats needs a file name: the statistics are binary, not for stdout ('-')"),
    ("save-stats onto -o -", ["analyze", LIN, "--calib", LINC, "--save-stats", "-", "-o", "-"], 2,
     "--save-stats '-' and the report (stdout) are the same file"),
    ("save-stats onto the model", ["analyze", LIN, "--calib", LINC, "--save-stats", LIN], 2,
     f"--save-stats '{LIN}' is the input file"),
    # Review: the text report went to stdout and the statistics to /dev/stdout, one over the other (exit 0).
    ("save-stats onto stdout", ["analyze", LIN, "--calib", LINC, "--save-stats", "/dev/stdout"], 2,
     "--save-stats '/dev/stdout' and the report (stdout) are the same file"),
    ("stats without calib or stats", ["analyze", LIN], 2, "--calib is required (or, for qreport report, --stats FILE...)"),
    ("merge needs -o", ["merge", LIN], 2, "--output is required"),
    ("unknown format", ["analyze", LIN, "--calib", LINC, "--format", "xml"], 2, "--format"),
    ("unknown device", ["analyze", LIN, "--calib", LINC, "--device", "tpu"], 2, "--device must be cpu, cuda or cuda:N"),
    ("cuda without CUDA", ["analyze", LIN, "--calib", LINC, "--device", "cuda"], 2, NO_CUDA),
    ("threshold out of range", ["analyze", LIN, "--calib", LINC, "--equalization-threshold", "1.5"], 2, "--equalization-threshold must be > 0 and < 1"),
    ("percentile out of range", ["analyze", LIN, "--calib", LINC, "--outlier-reference-percentile", "2"], 2, "--outlier-reference-percentile must be in [0, 1]"),
    ("tolerance out of range", ["analyze", LIN, "--calib", LINC, "--dynamic-static-tolerance", "-1"], 2, "--dynamic-static-tolerance must be in [0, 1]"),
    ("bad batch size", ["analyze", LIN, "--calib", LINC, "--batch-size", "-3"], 2, "qreport: error: --batch-size must be at least 1"),
    ("frozen model", ["analyze", f"{G}/frozen.pt", "--calib", LINC], 2, "is frozen (torch.jit.freeze or optimize_for_inference): its modules are gone and its weights are graph constants, so there is nothing to observe; analyze the scripted model before freezing"),
    ("optimize_for_inference model", ["inspect", f"{G}/optimized.pt"], 2, "is frozen (torch.jit.freeze or optimize_for_inference)"),
    ("batch size on a list archive", ["analyze", LIN, "--calib", LINC, "--batch-size", "4"], 2,
     f"--batch-size splits an archive of one Tensor; '{LINC}' holds its batches already (a list): leave --batch-size out"),
    ("batch size zero", ["analyze", LIN, "--calib", LINC, "--batch-size", "0"], 2, "qreport: error: --batch-size must be at least 1"),
    ("max batches zero", ["analyze", LIN, "--calib", LINC, "--max-batches", "0"], 2, "qreport: error: --max-batches must be at least 1"),
    ("output is the model", ["analyze", LIN, "--calib", LINC, "-o", LIN], 2, f"qreport: error: -o '{LIN}' is the input file '{LIN}'; choose another output file"),
    ("output is the archive, through a link", ["analyze", LIN, "--calib", LINC, "-o", f"{TMP}/link-to-calib.pt"], 2, f"is the input file '{LINC}'"),
    ("inspect output is the model", ["inspect", LIN, "-o", LIN], 2, "is the input file"),
    ("table output is its report", ["table", f"{TMP}/r1.json", "-o", f"{TMP}/r1.json"], 2, "is the input file"),
    ("output dir missing", ["analyze", LIN, "--calib", LINC, "-o", "/nonexistent/dir/r.json"], 2, "cannot write output file"),
    ("all-zero batches", ["analyze", f"{G}/called_twice.pt", "--calib", f"{G}/calib_zeros.pt", "--format", "json"], 0, "is null: the epoch range is 0"),
    ("tuple output", ["analyze", f"{G}/tuple_out.pt", "--calib", f"{G}/calib_tensor.pt"], 0, ""),
    ("dict output", ["analyze", f"{G}/dict_out.pt", "--calib", f"{G}/calib_tensor.pt"], 0, ""),
    ("integer inputs", ["analyze", f"{G}/embed.pt", "--calib", f"{G}/calib_ids.pt"], 0, ""),
    ("tensor archive split", ["analyze", f"{G}/tuple_out.pt", "--calib", f"{G}/calib_tensor.pt", "--batch-size", "2"], 0, ""),
    ("archive with a huge declared length (fuzz)", ["analyze", LIN, "--calib", f"{SRC}/tests/fuzz/regressions/archive/oom-huge-string-length.pt"], 2, "claims more bytes than the file holds"),
    ("archive with an impossible pickle (fuzz)", ["analyze", LIN, "--calib", f"{SRC}/tests/fuzz/regressions/archive/unpickler-pop-underflow.pt"], 2, "data.pkl is not a well-formed pickle"),
    ("archive with a huge memo id (fuzz)", ["analyze", LIN, "--calib", f"{SRC}/tests/fuzz/regressions/archive/huge-memo-id.pt"], 2, "data.pkl is not a well-formed pickle"),
    ("archive with a view past its storage (fuzz)", ["analyze", LIN, "--calib", f"{SRC}/tests/fuzz/regressions/archive/view-past-storage.pt"], 2, VIEW_PAST_STORAGE),
    ("archive truncated", ["analyze", LIN, "--calib", f"{TMP}/calib_truncated.pt"], 2, "cannot read calibration archive"),
    ("NaN in a batch", ["analyze", f"{G}/tuple_out.pt", "--calib", f"{G}/calib_nan.pt"], 2, "calibration batch 1, argument 'x' contains NaN values"),
    ("Inf in a batch", ["analyze", f"{G}/tuple_out.pt", "--calib", f"{G}/calib_inf.pt"], 2, "calibration batch 0, argument 'x' contains infinite values"),
    ("1-D inputs, PyTorch's axis", ["analyze", f"{G}/tuple_out.pt", "--calib", f"{G}/calib_1d.pt", "--format", "json", "--ch-axis", "1"], 0, "has no channel axis 1"),
    ("1-D inputs, auto: a Linear's features are its only axis", ["analyze", f"{G}/tuple_out.pt", "--calib", f"{G}/calib_1d.pt", "--format", "json"], 0, ""),
    ("ch-axis not a number", ["analyze", LIN, "--calib", LINC, "--ch-axis", "last"], 2, "qreport: error: --ch-axis must be auto or an axis >= 0 (got 'last')"),
    ("ch-axis negative", ["inspect", LIN, "--ch-axis=-1"], 2, "qreport: error: --ch-axis must be auto or an axis >= 0 (got '-1')"),
    ("float64 inputs are cast", ["analyze", f"{G}/tuple_out.pt", "--calib", f"{G}/calib_float64.pt"], 0, "qreport: warning: calibration batch 0, argument 'x': float64 data cast to the model's float32 (so is every such tensor; --no-cast makes this an error)"),
    ("float64 inputs, --no-cast", ["analyze", f"{G}/tuple_out.pt", "--calib", f"{G}/calib_float64.pt", "--no-cast"], 2, "qreport: error: calibration batch 0, argument 'x' is float64 but the model's parameters are float32 (without --no-cast qreport casts it)"),
    ("float16 inputs, float model", ["analyze", f"{G}/fused.pt", "--calib", f"{G}/calib_img_half.pt"], 0, "float16 data cast to the model's float32"),
    ("float16 model on the CPU", ["analyze", f"{G}/half.pt", "--calib", f"{G}/calib_img_half.pt"], 2, "has float16 parameters, and LibTorch has no CPU kernels for half-precision convolutions and matrix products: analyze the float32 model (model.float() before torch.jit.save) or run on a GPU (--device cuda)"),
    ("already quantized model", ["analyze", f"{G}/quantized.pt", "--calib", f"{G}/calib_img.pt"], 2, f"is already quantized (module 'conv' ({QCONVRELU}), op aten::quantize_per_tensor); qreport analyzes the float model, or a QAT model before convert"),
    ("QAT model analyzes", ["analyze", f"{G}/qat.pt", "--calib", f"{G}/calib_img.pt", "-o", f"{TMP}/qat.txt"], 0, ""),
    ("model from a newer PyTorch", ["analyze", f"{TMP}/newer.pt", "--calib", LINC], 2, "was saved by a newer PyTorch than this qreport's LibTorch"),
    ("output is a directory", ["analyze", LIN, "--calib", LINC, "-o", f"{TMP}/outdir"], 2, "cannot write output file"),
    ("output dir unwritable", ["analyze", LIN, "--calib", LINC, "-o", "/proc/qreport-report.json"], 2, "cannot write output file"),
    ("max batches negative", ["analyze", LIN, "--calib", LINC, "--max-batches", "-1"], 2, "--max-batches must be at least 1"),
    ("threads negative", ["analyze", LIN, "--calib", LINC, "--threads", "-2"], 2,
     "--threads must be 0 (one per core) or a count up to 1024"),
    # Review: 100000 threads crashed inside OpenMP (exit 139), 30000 exited 1 like a finding.
    # Review: an empty value (an unset variable in a CI script) was taken as "none" / no file.
    ("fail-on empty", ["analyze", LIN, "--calib", LINC, "--fail-on", ""], 2, "--fail-on needs a value: none, all"),
    ("save-stats empty", ["analyze", LIN, "--calib", LINC, "--save-stats", ""], 2, "--save-stats needs a file name"),
    # Review: CLI11 read an empty number as 0 (--target-sqnr "" gated on 0 dB and passed) and "0x1e" as 30.
    ("target-sqnr empty", ["analyze", LIN, "--calib", LINC, "--target-sqnr", "", "--fail-on", "plan"], 2,
     "qreport: error: --target-sqnr: a number is expected, not an empty value (run 'qreport --help')"),
    ("min-sqnr empty", ["analyze", LIN, "--calib", LINC, "--min-sqnr", "", "--fail-on", "sqnr"], 2,
     "qreport: error: --min-sqnr: a number is expected, not an empty value (run 'qreport --help')"),
    ("threads hexadecimal", ["analyze", LIN, "--calib", LINC, "--threads", "0x2"], 2,
     "qreport: error: --threads: a decimal number is expected, not '0x2' (run 'qreport --help')"),
    ("diff max drop empty", ["diff", LIN, LIN, "--max-sqnr-drop", ""], 2,
     "qreport: error: --max-sqnr-drop: a number is expected, not an empty value (run 'qreport --help')"),
    ("sqnr gate on a layer with an infinite weight", ["analyze", f"{TMP}/winf.pt", "--calib", f"{TMP}/winf_calib.pt",
     "--fail-on", "sqnr", "--min-sqnr", "20", "-o", "/dev/null"], 1,
     "qreport: finding: sqnr 2: no SQNR: the signal is not finite"),
    ("archive of a broadcast view", ["analyze", LIN, "--calib", f"{TMP}/expanded.pt"], 2,
     "holds a broadcast view (torch.expand: stride 0 along dimension 0, 452984832 values from 432 stored); save the "
     "batches materialised, with .contiguous()"),
    ("threads too many", ["analyze", LIN, "--calib", LINC, "--threads", "100000"], 2,
     "--threads must be 0 (one per core) or a count up to 1024"),
    ("ch-axis out of range", ["analyze", LIN, "--calib", LINC, "--ch-axis", "5", "--detectors", "equalization"], 0, "has no channel axis 5"),
    ("missing --calib", ["analyze", LIN], 2, "--calib is required"),
    ("fail-on unknown kind", ["analyze", LIN, "--calib", LINC, "--fail-on", "bugs"], 2, "unknown --fail-on kind 'bugs'"),
    ("fail-on outliers", ["analyze", f"{P}/spiky/model.pt", "--calib", f"{P}/spiky/calib.pt", "--ch-axis", "1", "--fail-on", "outliers", "--format", "json", "-o", f"{TMP}/gate.json"], 1, "qreport: --fail-on outliers: 2 findings; exit 1"),
    ("fail-on none found", ["analyze", f"{P}/spiky/model.pt", "--calib", f"{P}/spiky/calib.pt", "--ch-axis", "1", "--fail-on", "dynamic", "-o", f"{TMP}/gate2.json"], 0, ""),
    ("fail-on all", ["analyze", f"{P}/spiky/model.pt", "--calib", f"{P}/spiky/calib.pt", "--ch-axis", "1", "--fail-on", "all", "--min-sqnr", "1", "-o", f"{TMP}/gate3.json"], 1, "--fail-on all: 4 findings"),  # no per_channel finding where per-channel weights lose SQNR (issue 21, 2)
    # Gates that could never fail are refused (exit 2, one line), before calibration: the archive named
    # here does not exist, and the gate's error comes first.
    ("fail-on sqnr without the error detector", ["analyze", LIN, "--calib", "/nonexistent.pt", "--fail-on", "sqnr", "--min-sqnr", "99", "--detectors", "outlier"], 2,
     "qreport: error: --fail-on sqnr needs the error detector, which --detectors outlier leaves out\n"),
    ("fail-on outliers without the outlier detector", ["analyze", LIN, "--calib", "/nonexistent.pt", "--fail-on", "outliers", "--detectors", "per_channel"], 2,
     "qreport: error: --fail-on outliers needs the outlier detector, which --detectors per_channel leaves out\n"),
    ("fail-on all without --min-sqnr", ["analyze", LIN, "--calib", "/nonexistent.pt", "--fail-on", "all"], 2,
     "qreport: error: --fail-on all includes sqnr, which needs --min-sqnr DB (the bound a layer's SQNR must reach)\n"),
    ("fail-on all with two detectors", ["analyze", LIN, "--calib", "/nonexistent.pt", "--fail-on", "all", "--min-sqnr", "20", "--detectors", "outlier,error"], 2,
     "qreport: error: --fail-on all needs the per_channel, dynamic_static, equalization detectors, which --detectors outlier,error leaves out\n"),
    ("fail-on dynamic,equalization by PyTorch's names", ["analyze", LIN, "--calib", "/nonexistent.pt", "--fail-on", "dynamic,equalization", "--detectors", "dynamic_vs_static_detector"], 2,
     "qreport: error: --fail-on dynamic,equalization needs the equalization detector, which --detectors dynamic_vs_static_detector leaves out\n"),
    ("report --stats gates likewise, before reading statistics", ["report", LIN, "--stats", "/nonexistent.stats", "--fail-on", "outliers", "--detectors", "per_channel"], 2,
     "qreport: error: --fail-on outliers needs the outlier detector, which --detectors per_channel leaves out\n"),
    # qreport report has no data to measure the layers' output SQNR, so sqnr (inside all) is refused there first.
    ("report --stats: all without --min-sqnr", ["report", LIN, "--stats", "/nonexistent.stats", "--fail-on", "all"], 2,
     "qreport: error: --fail-on sqnr needs the layers' output SQNR, which is measured on the calibration data: use qreport analyze --calib\n"),
    ("fail-on sqnr with its detector and bound runs", ["analyze", LIN, "--calib", LINC, "--fail-on", "sqnr", "--min-sqnr", "1", "--detectors", "error", "-o", "/dev/null"], 0, ""),
    ("inspect missing model", ["inspect", "/nonexistent.pt"], 2, "model '/nonexistent.pt' does not exist"),
    ("inspect bad format", ["inspect", LIN, "--format", "html"], 2, "--format"),
    ("table missing file", ["table", "/nonexistent.json"], 2, "cannot read '/nonexistent.json'"),
    ("table not json", ["table", LINC], 2, f"{LINC} is not valid JSON"),
    ("table not a report", ["table", f"{SRC}/tests/fuzz/corpus/../../../bench/../README.md"], 2, "not valid JSON"),
    ("outlier ratio below 1", ["analyze", LIN, "--calib", LINC, "--outlier-ratio-threshold", "0.5"], 2, "--outlier-ratio-threshold"),
]

failures = 0


def run(args):
    return subprocess.run([QREPORT] + args, capture_output=True, text=True, timeout=300)


def fail(name, why):
    global failures
    failures += 1
    print(f"FAIL {name}: {why}")


for name, args, code, err in CASES:
    r = run(args)
    if r.returncode != code:
        fail(name, f"exit {r.returncode}, want {code}; stderr: {r.stderr.strip()}")
        continue
    if err and err not in r.stderr:
        fail(name, f"stderr {r.stderr.strip()!r} lacks {err!r}")
    if code not in (0, 1):  # 1 is --fail-on's verdict, not an error
        lines = [l for l in r.stderr.splitlines() if l.startswith("qreport: error:")]
        if len(lines) != 1 or "Traceback" in r.stderr or "frame #" in r.stderr:
            fail(name, f"expected one error line, got {r.stderr!r}")
    print(f"ok {name}")

# JSON shape and determinism.
out1, out2 = f"{TMP}/r1.json", f"{TMP}/r2.json"
for out in (out1, out2):
    r = run(["analyze", f"{P}/conv_bn_relu/model.pt", "--calib", f"{P}/conv_bn_relu/calib.pt", "--format", "json", "-o", out])
    if r.returncode != 0:
        fail("json", r.stderr)
j = json.load(open(out1))
expect_top = ["schema_version", "tool", "model", "calibration", "detectors", "qconfig_mapping", "equalization_mapping", "pt2e",
              "warnings"]
if list(j) != expect_top:
    fail("json shape", list(j))
if j["schema_version"] != 1 or j["tool"]["name"] != "qreport" or j["calibration"]["batches"] != 3:
    fail("json header", j["tool"])
if sorted(j["detectors"]) != ["dynamic_vs_static_detector", "input_weight_equalization_detector", "outlier_detector",
                              "per_channel_detector", "quantization_error_detector"]:
    fail("json detectors", sorted(j["detectors"]))
if j["qconfig_mapping"].get("conv1") != {"activation": "default_observer", "weight": "default_per_channel_weight_observer"} or "conv1.0" in j["qconfig_mapping"]:
    fail("qconfig_mapping names the fused module", j["qconfig_mapping"])
if open(out1, "rb").read() != open(out2, "rb").read():
    fail("determinism", "two runs gave different bytes")
else:
    print("ok determinism")
if [f for f in os.listdir(TMP) if ".tmp." in f]:
    fail("atomic output", os.listdir(TMP))

# Heap policy (lib/common/heap.h): freed memory kept for reuse, unless the user set glibc's malloc
# tunables; the report is the same bytes either way.
heap_logs = {}
for label, extra in (("kept", {}), ("user", {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})):
    r = subprocess.run([QREPORT, "analyze", LIN, "--calib", LINC, "-v", "--format", "json", "-o", f"{TMP}/heap_{label}.json"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, **extra))
    heap_logs[label] = r.stderr
want = {"kept": "heap: freed memory kept for reuse (no mmap, no trim)",
        "user": "heap: glibc's malloc tunables as set in GLIBC_TUNABLES"}
if "ASAN_OPTIONS" in os.environ:  # scripts/sanitize: AddressSanitizer's allocator refuses mallopt
    want["kept"] = "heap: the allocator refused the settings (a sanitizer's, or not glibc's); its defaults kept"
for label, line in want.items():
    if line not in heap_logs[label]:
        fail(f"heap policy {label}", heap_logs[label])
if open(f"{TMP}/heap_kept.json", "rb").read() != open(f"{TMP}/heap_user.json", "rb").read():
    fail("heap policy", "the report depends on the heap policy")
else:
    print("ok heap policy")

# A failed run leaves no report file behind.
bad = f"{TMP}/bad.json"
run(["analyze", LIN, "--calib", f"{G}/calib_wrong_shape.pt", "-o", bad])
if os.path.exists(bad):
    fail("no partial output", "report written by a failed run")

# Text report and detector selection.
r = run(["analyze", LIN, "--calib", LINC, "--detectors", "outlier,per_channel"])
if "== outlier_detector ==" not in r.stdout or "dynamic_vs_static" in r.stdout:
    fail("text", r.stdout)
if "For channel 1, we found outliers in the preceding activation data with a max value across all batches of 9.0." not in r.stdout:
    fail("text content", r.stdout)

# SIGINT during calibration: exit 130, one error line, no report file, no temporary file left.
import signal  # noqa: E402
sig_out = f"{TMP}/interrupted.json"
proc = subprocess.Popen([QREPORT, "analyze", f"{G}/slow.pt", "--calib", f"{G}/calib_slow.pt", "-v", "-o", sig_out,
                         "--threads", "1"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
for line in proc.stderr:
    if "calibration batch 3/400 done" in line:
        proc.send_signal(signal.SIGINT)
        break
rest = proc.stderr.read()
code = proc.wait(timeout=120)
errors = [l for l in rest.splitlines() if l.startswith("qreport: error:")]
if code != 130 or len(errors) != 1 or "interrupted during calibration" not in errors[0]:
    fail("sigint", f"exit {code}, stderr tail {rest[-300:]!r}")
elif os.path.exists(sig_out) or [f for f in os.listdir(TMP) if ".tmp." in f]:
    fail("sigint", "a report or temporary file was left behind")
else:
    print("ok sigint")

# inspect: the fused children observe at their parent's call site; never-called modules are flagged.
r = run(["inspect", f"{P}/conv_bn_relu/model.pt", "--format", "json"])
ins = json.loads(r.stdout) if r.returncode == 0 else {}
obs = {(o["detector"], o["fqn"], o["side"]): o for o in ins.get("observations", [])}
o = obs.get(("input_weight_equalization_detector", "conv1.0", "input"), {})
if o.get("site") != "conv1" or not o.get("parent_fallback") or ins.get("call_sites") != ["conv1", "conv2", "pool", "fc"]:
    fail("inspect json", r.stdout[:400] + r.stderr)
r = run(["inspect", f"{G}/never_called.pt"])
if "unused  torch.nn.modules.linear.Linear [Linear]  NEVER CALLED" not in r.stdout or \
        "unused input (range): NOT OBSERVED" not in r.stdout:
    fail("inspect text", r.stdout)
# --fail-on writes the report before exiting 1.
if not os.path.exists(f"{TMP}/gate.json") or "outlier_detector" not in json.load(open(f"{TMP}/gate.json"))["detectors"]:
    fail("fail-on report", "no report written before exit 1")
# table on a saved report, with filters.
r = run(["table", f"{TMP}/gate.json", "--module", "linear.1", "--feature", "outlier"])
lines = r.stdout.splitlines()
if r.returncode != 0 or "Channel-level information (8 rows)" not in r.stdout or \
        not any(l.split()[:3] == ["0", "linear.1", "0"] for l in lines) or "conv.0" in r.stdout:
    fail("table", r.stdout + r.stderr)
# html: one self-contained file.
r = run(["analyze", f"{P}/spiky/model.pt", "--calib", f"{P}/spiky/calib.pt", "--ch-axis", "1", "--format", "html"])
if r.returncode != 0 or not r.stdout.startswith("<!DOCTYPE html>") or "<script" in r.stdout or r.stdout.count("<svg") < 5:
    fail("html", r.stdout[:200] + r.stderr)
# No progress output when stderr is not a terminal (these runs capture it).
r = run(["analyze", LIN, "--calib", LINC])
if r.stderr:
    fail("quiet when not a tty", r.stderr)

# Subclasses of nn.Linear / nn.Conv2d follow PyTorch's rules: isinstance for per-channel and
# dynamic-static, the exact type for equalization (skipped, with a warning); ConvTranspose2d is no Conv2d.
r = run(["analyze", f"{G}/subclasses.pt", "--calib", f"{G}/calib_img.pt", "--format", "json"])
j = json.loads(r.stdout) if r.returncode == 0 else {"detectors": {}, "warnings": []}
det = j["detectors"]
ok = (r.returncode == 0 and sorted(det.get("per_channel_detector", {}).get("modules", {})) == ["conv", "lin"] and
      sorted(det["dynamic_vs_static_detector"]["modules"]) == ["conv", "lin"] and
      det["dynamic_vs_static_detector"]["modules"]["lin"]["is_dynamic_supported"] is True and
      det["input_weight_equalization_detector"]["modules"] == {} and
      "input_weight_equalization_detector: 'lin' (MyLinear) skipped: PyTorch's equalization detector takes only "
      "the exact types nn.Linear and nn.Conv1d/2d/3d, not subclasses" in j["warnings"])
if not ok:
    fail("Linear/Conv subclasses", r.stdout[:300] + r.stderr)
else:
    print("ok Linear/Conv subclasses")
r = run(["analyze", LIN, "--calib", LINC, "--fail-on", "all", "--min-sqnr", "1", "-q", "-o", f"{TMP}/quiet-gate.json"])
if r.returncode != 1 or r.stderr:
    fail("-q with --fail-on", f"exit {r.returncode}, stderr {r.stderr!r}")
else:
    print("ok -q with --fail-on")

# A gate whose detector judged no module (--ch-axis 7 skips every module: 2-d inputs) exits 2 after
# writing the report, naming why; without the gate the same run exits 0.
gate_json = f"{TMP}/unjudged.json"
r = run(["analyze", LIN, "--calib", LINC, "--ch-axis", "7", "--fail-on", "outliers", "-q", "--format", "json", "-o",
         gate_json])
want = ("qreport: error: --fail-on outliers cannot be evaluated: outlier_detector judged no module ('fc1' skipped: a "
        "2-d tensor has no channel axis 7; 1 more in the report)\n")
if r.returncode != 2 or r.stderr != want or json.load(open(gate_json))["detectors"]["outlier_detector"]["modules"] != {}:
    fail("unjudged gate", f"exit {r.returncode}, stderr {r.stderr!r}")
else:
    print("ok unjudged gate")
r = run(["analyze", LIN, "--calib", LINC, "--ch-axis", "7", "--fail-on", "per_channel,outliers,equalization", "-q",
         "-o", gate_json])
want = ("qreport: error: --fail-on outliers cannot be evaluated: outlier_detector judged no module ('fc1' skipped: a "
        "2-d tensor has no channel axis 7; 1 more in the report), --fail-on equalization cannot be evaluated: "
        "input_weight_equalization_detector judged no module ('fc1' skipped: input statistics unavailable: a 2-d tensor "
        "has no channel axis 7; 1 more in the report)\n")
if r.returncode != 2 or r.stderr != want:
    fail("unjudged gates", f"exit {r.returncode}, stderr {r.stderr!r}")
else:
    print("ok unjudged gates")
r = run(["analyze", LIN, "--calib", LINC, "--ch-axis", "7", "-q", "-o", gate_json])
if r.returncode != 0:
    fail("ungated run with nothing judged", f"exit {r.returncode}, stderr {r.stderr!r}")
# The same from saved statistics (qreport report): the gate reads the same detectors.
stats = f"{TMP}/axis7.stats"
r1 = run(["analyze", LIN, "--calib", LINC, "--ch-axis", "7", "-q", "--save-stats", stats, "-o", "/dev/null"])
r = run(["report", LIN, "--stats", stats, "--ch-axis", "7", "--fail-on", "outliers", "-q", "-o", gate_json])
want = ("qreport: error: --fail-on outliers cannot be evaluated: outlier_detector judged no module ('fc1' skipped: a "
        "2-d tensor has no channel axis 7; 1 more in the report)\n")
if r1.returncode != 0 or r.returncode != 2 or r.stderr != want:
    fail("unjudged gate from statistics", f"exit {r1.returncode}/{r.returncode}, stderr {r1.stderr + r.stderr!r}")
else:
    print("ok unjudged gate from statistics")
# diff --max-sqnr-drop between reports without SQNR figures (no error detector) could never fail.
for label, dets in (("a", "outlier"), ("b", "outlier,per_channel")):
    run(["analyze", LIN, "--calib", LINC, "--detectors", dets, "--format", "json", "-o", f"{TMP}/nosqnr_{label}.json"])
r = run(["diff", f"{TMP}/nosqnr_a.json", f"{TMP}/nosqnr_b.json", "--max-sqnr-drop", "1"])
want = (f"qreport: error: --max-sqnr-drop needs SQNR figures, and {TMP}/nosqnr_a.json has none (no "
        "quantization_error_detector modules, no simulation): analyze with the error detector\n")
if r.returncode != 2 or r.stderr != want or r.stdout:
    fail("diff drop gate without SQNR", f"exit {r.returncode}, stderr {r.stderr!r}")
else:
    print("ok diff drop gate without SQNR")
r = run(["diff", f"{TMP}/nosqnr_a.json", f"{TMP}/nosqnr_b.json", "--fail-on", "new-findings", "-o", "/dev/null"])
if r.returncode not in (0, 1):
    fail("diff without the drop gate", f"exit {r.returncode}, stderr {r.stderr!r}")

# --fail-on outliers on a plain ReLU CNN (resnet18, random weights): PyTorch flags every channel whose
# reference percentile is 0 in some batch (ratio max / 0 -> FLT_MAX); the gate fails only on the finite
# ratios above the threshold. The expectation comes from PyTorch's own values (the fixture's oracle.json),
# and the JSON keeps PyTorch's raw flags.
R18 = f"{P}/resnet18"
oracle = json.load(open(f"{R18}/oracle.json"))["outlier_detector"]["modules"]
want_gate, want_sparse = {}, {}
for fqn, d in oracle.items():
    ratios, used = d["outlier_detection_percentile_ratios"], d["outlier_detection_batches_used"]
    sparse = [c for c, x in enumerate(ratios) if used[c] > 0 and x > 1e30]  # max / 0 in some batch
    real = [c for c, x in enumerate(ratios) if used[c] > 0 and x <= 1e30 and x > d["outlier_detection_ratio_threshold"]
            and d["outlier_detection_is_sufficient_batches"][c]]
    if sparse:
        want_sparse[fqn] = sparse
    if real:
        want_gate[fqn] = real
r18_json = f"{TMP}/resnet18_gate.json"
r = run(["analyze", f"{R18}/model.pt", "--calib", f"{R18}/calib.pt", "--threads", "1", "--fail-on", "outliers",
         "--format", "json", "-o", r18_json])
got_gate = {}
for line in r.stderr.splitlines():
    if line.startswith("qreport: finding: outliers "):
        fqn, rest = line[len("qreport: finding: outliers "):].split(": ", 1)
        got_gate[fqn] = [int(c) for c in rest.split(";")[0].replace("outliers in channel(s) ", "").split(", ")]
rj = json.load(open(r18_json)) if os.path.exists(r18_json) else {"detectors": {"outlier_detector": {"modules": {}}}}
raw_flags_kept = all(rj["detectors"]["outlier_detector"]["modules"][f]["outliers_detected"][c]
                     for f, cs in want_sparse.items() for c in cs)
summary = f"{len(want_gate)} modules gated, {sum(map(len, want_sparse.values()))} sparse channels"
if len(want_sparse) < 10 or not want_gate:
    fail("resnet18 outlier gate", f"the fixture no longer has sparse and real outliers to tell apart ({summary})")
elif r.returncode != 1 or got_gate != want_gate:
    fail("resnet18 outlier gate", f"exit {r.returncode}; gated {sorted(got_gate.items())[:3]}, want "
                                  f"{sorted(want_gate.items())[:3]}")
elif rj["detectors"]["outlier_detector"].get("sparse_channels") != want_sparse or not raw_flags_kept:
    fail("resnet18 sparse channels", f"sparse_channels {str(rj['detectors']['outlier_detector'].get('sparse_channels'))[:200]}")
else:
    print(f"ok resnet18 outlier gate ({summary})")
# The text report notes the sparse channels apart, with their max.
r = run(["analyze", f"{R18}/model.pt", "--calib", f"{R18}/calib.pt", "--threads", "1", "--detectors", "outlier"])
fqn = next(f for f in want_sparse if f in want_gate)  # a module with both
c = want_sparse[fqn][0]
mx = oracle[fqn]["input_activation_per_channel_max"][c]
note = (f"- sparse {fqn}: sparse channels {c} (max {mx:.4g}), " if len(want_sparse[fqn]) > 1 else
        f"- sparse {fqn}: sparse channel {c} (max {mx:.4g}): ")
if "\n== notes ==\n" not in r.stdout or note not in r.stdout or f"- outliers {fqn}: outliers in channel(s) {', '.join(map(str, want_gate[fqn]))}\n" not in r.stdout:
    fail("sparse notes", r.stdout[r.stdout.find("== findings"):][:600])
else:
    print("ok sparse notes")

# Interface-typed and forked submodules: observed at their own calls, nothing reported never called.
for name, model, fqn, width in (("interface", "interface.pt", "blk.fc2", 8), ("fork", "forked.pt", "layers.1", 4)):
    r = run(["analyze", f"{G}/{model}", "--calib", f"{G}/calib_iface.pt", "--format", "json"])
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    mod = j.get("detectors", {}).get("outlier_detector", {}).get("modules", {}).get(fqn, {})
    if r.returncode != 0 or "never called" in r.stderr or len(mod.get("input_activation_per_channel_max", [])) != width:
        fail(f"{name} submodule", r.stderr + r.stdout[:200])
    else:
        print(f"ok {name} submodule")

# -o -: the report on stdout.
r = run(["analyze", LIN, "--calib", LINC, "--format", "json", "-o", "-"])
if r.returncode != 0 or json.loads(r.stdout)["calibration"]["batches"] != 4:
    fail("-o -", r.stderr)
else:
    print("ok -o -")

# A path that is not UTF-8 is escaped losslessly (Python's surrogateescape), never a crash.
odd = os.fsencode(TMP) + b"/model-\xff\xfe.pt"
with open(LIN, "rb") as src, open(odd, "wb") as dst:
    dst.write(src.read())
r = subprocess.run([QREPORT.encode(), b"analyze", odd, b"--calib", LINC.encode(), b"--format", b"json"],
                   capture_output=True, timeout=300)
if r.returncode != 0 or os.fsencode(json.loads(r.stdout)["model"]["path"]) != odd:
    fail("non-UTF-8 path", r.stderr.decode(errors="replace"))
else:
    print("ok non-UTF-8 path")


# Output onto things that are not regular files: written in place, never replaced. Run as an
# unprivileged user when the tests run as root, so that a regression cannot replace a system file.
def as_nobody():
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)


shared = tempfile.mkdtemp()
os.chmod(shared, 0o777)
for path in (LIN, LINC):
    with open(path, "rb") as src, open(f"{shared}/{os.path.basename(os.path.dirname(path))}-{os.path.basename(path)}", "wb") as dst:
        dst.write(src.read())
m, c = f"{shared}/two_linear-model.pt", f"{shared}/two_linear-calib.pt"
os.chmod(m, 0o644)
os.chmod(c, 0o644)
# A copy of the binary the unprivileged user can reach, wherever the build tree is.
import shutil  # noqa: E402
qreport_copy = f"{shared}/qreport"
shutil.copy(QREPORT, qreport_copy)
os.chmod(qreport_copy, 0o755)
# stdout is a file the unprivileged user may write (a pipe created here would belong to root).
captured = f"{shared}/stdout.txt"
with open(captured, "w") as out:
    os.chmod(captured, 0o666)
    r = subprocess.run([qreport_copy, "analyze", m, "--calib", c, "--format", "json", "-o", "/dev/stdout"], stdout=out,
                       stderr=subprocess.PIPE, text=True, timeout=300, preexec_fn=as_nobody)
text = open(captured).read()
if r.returncode != 0 or json.loads(text)["calibration"]["batches"] != 4 or not os.path.islink("/dev/stdout"):
    fail("-o /dev/stdout", r.stderr)
else:
    print("ok -o /dev/stdout")
fifo = f"{shared}/report.fifo"
os.mkfifo(fifo)
os.chmod(fifo, 0o666)
import threading  # noqa: E402
got = []
reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
reader.start()
r = subprocess.run([qreport_copy, "analyze", m, "--calib", c, "--format", "json", "-o", fifo], capture_output=True,
                   text=True, timeout=300, preexec_fn=as_nobody)
reader.join(timeout=60)
import stat  # noqa: E402
if r.returncode != 0 or not got or json.loads(got[0])["calibration"]["batches"] != 4 or \
        not stat.S_ISFIFO(os.stat(fifo).st_mode):
    fail("-o FIFO", r.stderr)
else:
    print("ok -o FIFO")

# The demo in data/demo works.
r = run(["analyze", f"{SRC}/data/demo/model.pt", "--calib", f"{SRC}/data/demo/calib.pt"])
if r.returncode != 0 or "Outlier detection report" not in r.stdout:
    fail("demo", r.stderr)

print(f"{len(CASES) + 27 - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
