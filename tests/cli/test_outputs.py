#!/usr/bin/python3
"""Outputs are all or nothing, and checked early (docs/usage.md, "Outputs"):
  * -o and --save-stats whose folder is missing, whose parent is a file, or that name a directory: exit 2
    with the system's reason, before calibration starts (no calibration batch logged with -v), nothing
    written;
  * an output that fails while it is written (/dev/full): exit 2 with the reason, and the other output
    (--save-stats, or -o) is not written either;
  * qreport report --stats and qreport merge check their -o the same way; a good run writes both.
Usage: test_outputs.py QREPORT"""
import os
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
QREPORT = sys.argv[1]
import torch  # noqa: E402

T = tempfile.mkdtemp(prefix="qreport-outputs-")
failures = []


def run(*args):
    return subprocess.run([QREPORT, *args], capture_output=True, text=True)


def expect(name, args, code, line, absent=(), calibrated=False):
    """Exit `code`, exactly one error line equal to `line`, no file of `absent` left; with -v in args,
    `calibrated` says whether a calibration batch may have run."""
    r = run(*args)
    lines = [l for l in r.stderr.splitlines() if l.startswith("qreport: error:")]
    ok = r.returncode == code and lines == [line]
    if not ok:
        failures.append(f"{name}: exit {r.returncode} (want {code}), error lines {lines!r}, want [{line!r}]")
    if not calibrated and "calibration batch" in r.stderr:
        failures.append(f"{name}: calibration ran before the output was checked")
        ok = False
    for path in absent:
        if os.path.exists(path):
            failures.append(f"{name}: {path} was written")
            ok = False
    leftovers = [f for f in os.listdir(T) if ".tmp." in f]
    if leftovers:
        failures.append(f"{name}: temporary files left: {leftovers}")
        ok = False
    if ok:
        print(f"ok {name}")


def main():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    M, C = f"{T}/model.pt", f"{T}/calib.pt"
    torch.jit.save(torch.jit.script(model.eval()), M)
    torch.save([torch.randn(2, 4) for _ in range(3)], C)
    os.mkdir(f"{T}/dir")
    open(f"{T}/afile", "w").write("x")
    base = ["analyze", M, "--calib", C, "--threads", "1", "-v"]
    S = f"{T}/left.qstats"
    E = "qreport: error: cannot write output file"

    # Checked before calibration, with the reason.
    expect("-o in a missing folder", [*base, "-o", f"{T}/nodir/r.json"], 2,
           f"{E} '{T}/nodir/r.json': No such file or directory")
    expect("-o under a file", [*base, "-o", f"{T}/afile/r.json"], 2, f"{E} '{T}/afile/r.json': Not a directory")
    expect("-o a directory", [*base, "-o", f"{T}/dir"], 2, f"{E} '{T}/dir': Is a directory")
    expect("--save-stats in a missing folder", [*base, "--save-stats", f"{T}/nodir/s.qstats", "-o", f"{T}/r.json"], 2,
           f"{E} '{T}/nodir/s.qstats': No such file or directory", absent=[f"{T}/r.json"])
    # The case: a failed run leaves no statistics file.
    expect("--save-stats with an unwritable -o", [*base, "--save-stats", S, "-o", "/nonexistent/r.json"], 2,
           f"{E} '/nonexistent/r.json': No such file or directory", absent=[S])
    # Fails while writing, after calibration: neither output is written.
    expect("-o on a full device", [*base, "--save-stats", S, "-o", "/dev/full"], 2,
           f"{E} '/dev/full': No space left on device", absent=[S], calibrated=True)
    expect("--save-stats on a full device", [*base, "--save-stats", "/dev/full", "-o", f"{T}/r.json"], 2,
           f"{E} '/dev/full': No space left on device", absent=[f"{T}/r.json"], calibrated=True)

    # A good run writes both; report --stats and merge check their outputs too.
    r = run(*base, "--save-stats", S, "-o", f"{T}/r.json", "-q")
    if r.returncode != 0 or not os.path.exists(S) or not os.path.exists(f"{T}/r.json"):
        failures.append(f"good run: exit {r.returncode} {r.stderr.strip()!r}")
    else:
        print("ok a good run writes the report and the statistics")
    expect("report --stats -o in a missing folder", ["report", M, "--stats", S, "-o", f"{T}/nodir/r.txt"], 2,
           f"{E} '{T}/nodir/r.txt': No such file or directory")
    expect("merge -o in a missing folder", ["merge", S, "-o", f"{T}/nodir/m.qstats"], 2,
           f"{E} '{T}/nodir/m.qstats': No such file or directory")

    if failures:
        print("\n".join(failures))
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
