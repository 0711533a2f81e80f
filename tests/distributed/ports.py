"""A TCP port for a test job's store (MASTER_PORT), for the suites that start ranks themselves.

Binding port 0 and closing it hands out a port from the kernel's ephemeral range, the range every
outgoing connection's local port also comes from: another suite's rank connecting to its own store could
take it before this job's rank 0 binds it (the 2.x and 1.13 suites, run side by side, failed that way
once). A random port below that range, checked free, cannot be taken by an outgoing connection, and two
suites picking at random from 12,000 ports rarely meet."""
import random
import socket

_pick = random.Random()  # its own generator: a test's seeding of `random` must not make suites pick alike


def ephemeral_floor():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    top = ephemeral_floor()
    low = max(1024, top - 12000)
    for _ in range(200 if low < top else 0):  # no room below the range (it starts at 1024): the fallback
        port = _pick.randrange(low, top)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))  # every address, as rank 0's store binds it
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the kernel's choice, as before
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
