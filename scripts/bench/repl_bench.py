#!/usr/bin/python3
"""repl_bench.py - the "replication" section of scripts/bench.sh.

Two real mirrord in network namespaces (the integration-test harness), n1 primary and n2
secondary over veth + TLS 1.3. In one run it measures, each through n1's mount:
  local  - n1 primary with no secondary (ALONE: the same code path, nothing replicated)
  second - replicated, <rfs async="second">
  none   - replicated, <rfs async="none">
(a) sequential write of SEQ_MIB MiB, bs=1M, then fdatasync (MB/s, median of RUNS);
(b) 4 KiB overwrite + fdatasync latency, p50/p99 over LAT_OPS operations;
plus the TCP round trip between the two namespaces (p50 over 2000 ping-pongs).
Targets: (a) replicated/local >= 0.6; (b) p50 <= local p50 + 3 round trips.

usage: repl_bench.py LAT_BINARY [--runs N] [--seq-mib N] [--lat-ops N]
Prints a table; never fails because of a figure (exit 1 only if a workload cannot run).
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "integration", "lib"))
os.environ.setdefault("MR_BIN_DIR", os.path.join(SRC, "build", "bin"))
import hamirror_test as ht  # noqa: E402

SEQ = r"""
import os, sys, time
path, mib = sys.argv[1], int(sys.argv[2])
buf = os.urandom(1 << 20)
t = time.perf_counter()
fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
for _ in range(mib):
    os.write(fd, buf)
os.fdatasync(fd)
os.close(fd)
print("%.1f" % (mib * 1.048576 / (time.perf_counter() - t)))
os.unlink(path)
"""

ECHO_SERVER = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.2", 9299)); s.listen(1)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    d = c.recv(64)
    if not d:
        break
    c.sendall(d)
"""

ECHO_CLIENT = r"""
import socket, time
for i in range(100):
    try:
        s = socket.create_connection(("198.18.0.2", 9299), timeout=5); break
    except OSError:
        time.sleep(0.05)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
lat = []
for i in range(2000):
    t = time.perf_counter_ns(); s.sendall(b"x" * 32); s.recv(64)
    lat.append(time.perf_counter_ns() - t)
lat.sort()
print("%.1f %.1f" % (lat[len(lat) // 2] / 1000, lat[int(len(lat) * 0.99)] / 1000))
"""


def measure(mode, lat_bin, runs, seq_mib, lat_ops):
    """Figures for one configuration: (seq MB/s median, p50 us, p99 us, rtt p50 us)."""
    replicated = mode != "local"
    with ht.Cluster(async_mode=mode if replicated else "second") as c:
        if replicated:
            c.start_daemon("n2", extra=["--role", "secondary"], level="info")
        c.start_daemon("n1", extra=["--role", "primary"], level="info")
        want = "PRIM" if replicated else "ALONE"
        ht.wait_for(lambda: c.status("n1")["state"] == want, 20, what="n1 %s" % want)
        d = c.node("n1").repl_dirs["data"][1]
        seqs = []
        for _ in range(runs):
            rc, out, err = c.run("n1", sys.executable, "-c", SEQ, os.path.join(d, "seq"),
                                 str(seq_mib), timeout=600)
            if rc != 0:
                raise SystemExit("seq write failed (%s): %s" % (mode, err))
            seqs.append(float(out.split()[0]))
        rc, out, err = c.run("n1", lat_bin, os.path.join(d, "lat"), str(lat_ops), "64",
                             timeout=600)
        if rc != 0:
            raise SystemExit("latency run failed (%s): %s" % (mode, err))
        p50, p99 = (float(x) for x in out.split()[:2])
        rtt = None
        if replicated:
            srv = c.popen("n2", sys.executable, "-c", ECHO_SERVER)
            rc, out, err = c.run("n1", sys.executable, "-c", ECHO_CLIENT, timeout=120)
            srv.wait(10)
            if rc == 0:
                rtt = float(out.split()[0])
        for n in ("n1", "n2"):
            if c.daemon_pid(n) is not None:
                c.stop_daemon(n)
        return statistics.median(seqs), seqs, p50, p99, rtt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lat")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seq-mib", type=int, default=1024)
    ap.add_argument("--lat-ops", type=int, default=5000)
    a = ap.parse_args()
    ht.require_root()
    res = {}
    for mode in ("local", "second", "none"):
        print("repl_bench: measuring %s" % mode, flush=True)
        res[mode] = measure(mode, a.lat, a.runs, a.seq_mib, a.lat_ops)
    rtt = statistics.median([r[4] for r in res.values() if r[4] is not None])
    loc = res["local"]
    print()
    print("== replication: through n1's mount, local (ALONE) vs replicated to n2 over "
          "veth + TLS 1.3, medians ==")
    print("TCP round trip n1<->n2 (p50 of 2000): %.1f us" % rtt)
    print("%-28s %10s %8s %8s %10s %10s  %s" % ("mode", "seq MB/s", "ratio", "target",
                                                 "p50 us", "p99 us", "p50 vs local"))
    for mode in ("local", "second", "none"):
        seq, seqs, p50, p99, _ = res[mode]
        if mode == "local":
            print("%-28s %10.1f %8s %8s %10.1f %10.1f  %s" % (mode, seq, "1.00", "", p50, p99, ""))
            continue
        ratio = seq / loc[0] if loc[0] else float("nan")
        extra = (p50 - loc[2]) / rtt if rtt else float("nan")
        print("%-28s %10.1f %8.2f %8s %10.1f %10.1f  +%.1f RTT (target <= 3) %s" % (
            "replicated async=" + mode, seq, ratio, ">= 0.6" + (" ok" if ratio >= 0.6 else " below"),
            p50, p99, extra, "ok" if extra <= 3 else "below target"))
    print("all seq runs (MB/s): " + "; ".join("%s %s" % (m, " ".join("%.0f" % x for x in res[m][1]))
                                              for m in res))
    print("reference (limits.md, same machine): GlusterFS replica 2 reached 0.23x local "
          "throughput and ~7x local fsync latency")


if __name__ == "__main__":
    main()
