#!/usr/bin/python3
"""Distributed analyze on this machine: ranks launched with the environment torchrun sets (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; Debian 12's own torchrun fails before starting any
worker) and once with Slurm's (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID).
  * 2 and 3 ranks over one archive (batch i on rank i mod N), and per-rank archives ('{rank}'): rank 0's
    report equals the single-process report over the same batches by the merge rule (merged_reports.py);
    the other ranks write nothing and exit 0;
  * faults, each ending every surviving rank non-zero with one line naming the failed rank, no report:
    a rank whose forward fails, a rank killed mid-run, a rank that never joins, a rank with another model.
Skipped (77) where qreport was built without c10d. Usage: test_distributed.py QREPORT SOURCE_DIR"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings

warnings.filterwarnings("ignore")
QREPORT, SRC = sys.argv[1:3]
sys.path.insert(0, os.path.join(SRC, "data"))
sys.path.insert(0, os.path.join(SRC, "tests", "stats"))
import torch  # noqa: E402

import fixtures  # noqa: E402
from merged_reports import compare  # noqa: E402
from ports import free_port  # noqa: E402  (this folder)

T = tempfile.mkdtemp(prefix="qreport-dist-")
failures = []



def launch(world, args, ranks=None, env_style="torchrun", per_rank_args=None, timeout=20):
    """Starts the ranks (all, or those listed) as torchrun would; returns the Popen objects."""
    port = free_port()
    procs = []
    for r in (range(world) if ranks is None else ranks):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        if env_style == "torchrun":
            env.update(RANK=str(r), WORLD_SIZE=str(world), LOCAL_RANK=str(r))
        else:
            env.update(SLURM_PROCID=str(r), SLURM_NTASKS=str(world), SLURM_LOCALID=str(r))
        a = list(args) + (per_rank_args(r) if per_rank_args else []) + ["--dist-timeout", str(timeout)]
        procs.append(subprocess.Popen([QREPORT, "analyze", *a], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, limit=120):
    out = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
            e += "\n(HUNG: killed by the test)"
        out.append((p.returncode, o, e))
    return out


def error_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("qreport: error:")]


def expect_fault(name, results, codes, message, or_lost_store=()):
    """Every listed rank's exit code, one error line each, and `message` in each surviving rank's line.
    or_lost_store: ranks that may instead report losing the store, when rank 0 (which serves it) named the
    fault and exited first (a race seen once in CI: rank 1 then says "lost the job's store"; rank 0's
    line, checked here too, still names the fault)."""
    ok = True
    for r, (code, _, err) in results.items():
        want = codes[r]
        lines = error_lines(err)
        named = len(lines) == 1 and (message in lines[0] or (r in or_lost_store and "lost the job's store" in lines[0]))
        if code != want or len(lines) != 1 or (want == 4 and not named):
            failures.append(f"{name}: rank {r}: exit {code} (want {want}), stderr {err.strip()!r}")
            ok = False
    if os.path.exists(f"{T}/{name}.json") or os.path.exists(f"{T}/{name}.qstats"):
        failures.append(f"{name}: a report was written")
        ok = False
    if ok:
        print(f"ok {name}")


def wait_listening(port, limit=30):
    start = time.time()
    while time.time() - start < limit:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.02)
    return False


class SilentListener:
    """A port held by a program that accepts connections and never says anything."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                self.conns.append(self.sock.accept()[0])
            except OSError:
                return


def rank_env(world, rank, port):
    return dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                LOCAL_RANK=str(rank))


def timed(name, proc, code, message, low, high, limit=120):
    """proc's exit code, its one error line containing `message`, and its time since start in [low, high]."""
    start = proc.started
    try:
        _, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        err += "\n(HUNG: killed by the test)"
    took = time.time() - start
    lines = error_lines(err)
    if proc.returncode != code or len(lines) != 1 or message not in lines[0] or not low <= took <= high:
        failures.append(f"{name}: exit {proc.returncode} (want {code}) after {took:.1f} s (want {low}-{high} s), "
                        f"stderr {err.strip()!r}, want {message!r}")
    else:
        print(f"ok {name}: exit {code} after {took:.2f} s")
    return took


def start_rank(world, rank, port, args, timeout):
    p = subprocess.Popen([QREPORT, "analyze", *args, "--dist-timeout", str(timeout)], env=rank_env(world, rank, port),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.started = time.time()
    return p


def join_faults(M, common):
    """--dist-timeout against peers that accept and never answer, and Ctrl-C while joining."""
    args = [M, "--calib", f"{T}/all.pt", "-o", f"{T}/join.json", *common]
    # A port held by a program that accepts and never answers.
    quiet = SilentListener()
    p = start_rank(2, 1, quiet.port, args, 3)
    timed("silent listener, --dist-timeout 3", p, 4,
          f"rank 0's store at 127.0.0.1:{quiet.port} accepted the connection but did not answer within 3 s", 2.9, 8)
    # A SIGSTOPped rank 0: its store's port accepts (the kernel does), nothing answers.
    port = free_port()
    r0 = start_rank(2, 0, port, args, 30)
    if not wait_listening(port):
        failures.append("stopped rank 0: rank 0 never listened")
    r0.send_signal(signal.SIGSTOP)
    p = start_rank(2, 1, port, args, 3)
    timed("SIGSTOPped rank 0, --dist-timeout 3", p, 4, "did not answer within 3 s", 2.9, 8)
    r0.kill()
    r0.communicate()
    # Ctrl-C while joining: rank 0 waiting for rank 1, and rank 1 blocked on the silent listener.
    port = free_port()
    r0 = start_rank(2, 0, port, args, 60)
    if not wait_listening(port):
        failures.append("Ctrl-C: rank 0 never listened")
    time.sleep(0.5)
    r0.send_signal(signal.SIGINT)
    r0.started = time.time()
    timed("Ctrl-C on rank 0 waiting for rank 1", r0, 130, "interrupted while the job's ranks were meeting", 0, 2)
    connected = len(quiet.conns)
    p = start_rank(2, 1, quiet.port, args, 60)
    start = time.time()
    while len(quiet.conns) == connected and time.time() - start < 30:  # it has started, and is blocked on the store
        time.sleep(0.02)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    p.started = time.time()
    timed("Ctrl-C on rank 1 blocked on a silent store", p, 130, "interrupted while the job's ranks were meeting", 0, 2)
    if os.path.exists(f"{T}/join.json"):
        failures.append("join faults: a report was written")


def after_reduction(M, common):
    """Rank 0 fails after the reduction (its -o or --save-stats cannot be written): every other rank exits 4;
    an unwritable -o is found before calibration, and the other ranks hear of it at once."""
    full = "cannot write output file '/dev/full': No space left on device"
    res = finish(launch(2, [M, "--calib", f"{T}/all.pt", "-o", "/dev/full", *common]))
    expect_fault("rank 0's -o fails", dict(enumerate(res)), {0: 2, 1: 4}, "rank 0 failed: " + full)
    if error_lines(res[0][2]) != ["qreport: error: rank 0: " + full]:
        failures.append(f"rank 0's -o fails: rank 0 said {res[0][2].strip()!r}")
    res = finish(launch(2, [M, "--calib", f"{T}/all.pt", "--save-stats", "/dev/full", "-o", f"{T}/saved.json",
                            *common]))
    expect_fault("saved", dict(enumerate(res)), {0: 2, 1: 4}, "rank 0 failed: " + full)
    start = time.time()
    res = finish(launch(2, [M, "--calib", f"{T}/all.pt", "-o", f"{T}/nodir/r.json", *common], timeout=60))
    expect_fault("nodir", dict(enumerate(res)), {0: 2, 1: 4},
                 f"rank 0 failed: cannot write output file '{T}/nodir/r.json': No such file or directory")
    if time.time() - start > 30:
        failures.append(f"an unwritable -o on rank 0 took {time.time() - start:.0f} s to end the job")


def mixed_calibration(M, batches, common):
    """Ranks given other archives, patterns or --max-batches: every rank exits 4 before calibrating."""
    torch.save(batches[::-1], f"{T}/reversed.pt")
    for s in range(2):
        torch.save(batches[3 * s:3 * s + 3], f"{T}/other-{s}.pt")
    cases = [("other archive", lambda r: ["--calib", f"{T}/all.pt" if r == 0 else f"{T}/reversed.pt"]),
             ("other pattern", lambda r: ["--calib", f"{T}/shard-{{rank}}.pt" if r == 0 else f"{T}/other-{{rank}}.pt"]),
             ("other --max-batches", lambda r: ["--calib", f"{T}/all.pt"] + (["--max-batches", "4"] if r else []))]
    for name, per_rank in cases:
        res = finish(launch(2, [M, "-o", f"{T}/{name}.json", *common], per_rank_args=per_rank))
        expect_fault(name, dict(enumerate(res)), {0: 4, 1: 4}, "rank 1 has another calibration than rank 0",
                     or_lost_store=(1,))


def main():
    torch.manual_seed(31)
    gm, _ = fixtures.fused("resnet18")
    M = f"{T}/model.pt"
    torch.jit.save(torch.jit.script(gm), M)
    batches = [torch.randn(2, 3, 64, 64) for _ in range(6)]
    torch.save(batches, f"{T}/all.pt")
    common = ["--threads", "1", "--format", "json", "-q"]
    subprocess.run([QREPORT, "analyze", M, "--calib", f"{T}/all.pt", "-o", f"{T}/single.json", *common], check=True)
    single = json.load(open(f"{T}/single.json"))

    # Probe: a 2-rank job that cannot form because this build lacks c10d says so (exit 2): skip, unless the
    # environment says this build must have it (CI sets QREPORT_REQUIRE_DISTRIBUTED=1 where the setup
    # installs a LibTorch with Gloo): then a build that quietly lost c10d fails here.
    probe = finish(launch(2, [M, "--calib", f"{T}/all.pt", "-o", os.devnull, *common], ranks=[0], timeout=1))
    if probe[0][0] == 2 and "without c10d" in probe[0][2]:
        if os.environ.get("QREPORT_REQUIRE_DISTRIBUTED") == "1":
            print("FAILED: QREPORT_REQUIRE_DISTRIBUTED=1, but qreport was built without c10d's Gloo: "
                  + probe[0][2].strip())
            sys.exit(1)
        print("skipped: qreport was built without c10d's Gloo")
        sys.exit(77)

    for world, style in ((2, "torchrun"), (3, "torchrun"), (3, "slurm")):
        out = f"{T}/dist{world}{style}.json"
        res = finish(launch(world, [M, "--calib", f"{T}/all.pt", "-o", out, *common], env_style=style))
        if any(code != 0 for code, _, _ in res):
            failures.append(f"{world} ranks ({style}): exits {[c for c, _, _ in res]}: {[e for _, _, e in res]}")
            continue
        got = json.load(open(out))
        n = compare(single, got, failures)
        if got["calibration"]["batches"] != 6:
            failures.append(f"{world} ranks: batches {got['calibration']['batches']}")
        print(f"ok {world} ranks ({style}): {n} values against the single run")

    # Per-rank archives: shard-{rank}.pt.
    for s in range(2):
        torch.save(batches[3 * s:3 * s + 3], f"{T}/shard-{s}.pt")
    res = finish(launch(2, [M, "--calib", f"{T}/shard-{{rank}}.pt", "-o", f"{T}/pattern.json", *common]))
    if any(code != 0 for code, _, _ in res):
        failures.append(f"per-rank archives: exits {[c for c, _, _ in res]}: {[e for _, _, e in res]}")
    else:
        n = compare(single, json.load(open(f"{T}/pattern.json")), failures)
        print(f"ok per-rank archives: {n} values")

    # Faults. 1: rank 1's forward fails (its archive has the wrong shape).
    torch.save([torch.randn(2, 5, 64, 64)], f"{T}/bad-1.pt")
    torch.save(batches[:2], f"{T}/bad-0.pt")
    res = finish(launch(2, [M, "--calib", f"{T}/bad-{{rank}}.pt", "-o", f"{T}/forward.json", *common]))
    expect_fault("forward", dict(enumerate(res)), {0: 4, 1: 3},
                 "rank 1 failed: the model's forward failed on calibration batch 0")

    # 2: rank 1 killed mid-run (after its first batch); rank 0 gives up after --dist-timeout without progress.
    torch.save([torch.randn(2, 3, 64, 64) for _ in range(200)], f"{T}/long.pt")
    procs = launch(2, [M, "--calib", f"{T}/long.pt", "-o", f"{T}/killed.json", "--threads", "1", "--format", "json"],
                   per_rank_args=lambda r: ["-v"] if r == 1 else ["-q"], timeout=4)
    start = time.time()
    line = ""
    while "calibration batch 1/" not in line and time.time() - start < 60:
        line = procs[1].stderr.readline()
    procs[1].send_signal(signal.SIGKILL)
    res = finish(procs)
    expect_fault("killed", {0: res[0]}, {0: 4}, "rank 1 stopped making progress within 4 s (last at batch")

    # 3: rank 1 never joins.
    res = finish(launch(2, [M, "--calib", f"{T}/all.pt", "-o", f"{T}/never.json", *common], ranks=[0], timeout=3))
    expect_fault("never", {0: res[0]}, {0: 4}, "rank 1 never joined within 3 s")

    # 4: rank 1 has another model.
    other = fixtures.fused("mobilenet_v2")[0]
    torch.jit.save(torch.jit.script(other), f"{T}/other.pt")
    res = finish(launch(2, ["--calib", f"{T}/all.pt", "-o", f"{T}/mismatch.json", *common],
                        per_rank_args=lambda r: [M if r == 0 else f"{T}/other.pt"]))
    expect_fault("mismatch", dict(enumerate(res)), {0: 4, 1: 4}, "rank 1 has another model than rank 0",
                 or_lost_store=(1,))

    join_faults(M, common)
    after_reduction(M, common)
    mixed_calibration(M, batches, common)

    if failures:
        print("\n".join(failures[:30]))
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
