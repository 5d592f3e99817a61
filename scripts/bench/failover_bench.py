#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""bench.sh section "failover": hard crash of the primary (SIGKILL of every process of
the node and its links down) -> first answer of the service through the VIP, as seen
by the client, over N rounds, with the default heartbeat settings (pulse 200 ms,
timeout 1500 ms) and the aggressive ones (50 ms / 250 ms). Topology and service:
tests/integration/test_failover.py. Each round is a fresh two-node cluster."""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration", "lib"))
import hamirror_test as ht  # noqa: E402
import test_failover as tf  # noqa: E402


# The client: connects to the VIP every 5 ms (50 ms connect timeout) until the service
# answers "n2", then prints CLOCK_MONOTONIC (system-wide, so comparable with ours).
PROBER = r"""
import socket, sys, time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.05)
        s.settimeout(0.5)
        if s.recv(64).strip() == b"n2":
            print("%.6f" % time.monotonic(), flush=True)
            sys.exit(0)
        s.close()
    except OSError:
        pass
    time.sleep(0.005)
sys.exit(1)
"""


def one_round(pulse, timeout):
    with ht.Cluster(userconfig=tf.CONFIG, pulse=pulse, hb_timeout=timeout) as c:
        tf.setup(c)
        t = tf.Failover("test_start_then_hard_crash_of_the_primary")
        t.c = c
        t.start_pair()
        prober = subprocess.Popen(c.ns_argv("cl", [sys.executable, "-c", PROBER, ht.VIP_ADDR,
                                                   str(tf.PORT)]),
                                  stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(0.2)  # the prober is connecting to n1 (answers "n1") by now
            t0 = time.monotonic()
            c.kill_node("n1")
            ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "down"])
            out, _ = prober.communicate(timeout=70)
        finally:
            if prober.poll() is None:
                prober.kill()
                prober.wait()
        if prober.returncode != 0:
            raise ht.HarnessError("the client never got an answer from n2")
        return float(out.strip()) - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    ht.require_root()
    print("%-28s %8s %8s %8s  %s" % ("failover (kill -> answer)", "median", "max", "target",
                                        "rounds (s)"))
    ok = True
    for label, pulse, timeout, target in (("default 200ms/1500ms", "200ms", "1500ms", 2.0),
                                          ("aggressive 50ms/250ms", "50ms", "250ms", 0.4)):
        gaps = [one_round(pulse, timeout) for _ in range(max(a.runs, 1))]
        med = statistics.median(gaps)
        print("%-28s %7.3fs %7.3fs %7.1fs  %s%s" % (
            label, med, max(gaps), target, " ".join("%.3f" % g for g in gaps),
            "" if med <= target else "  (target missed)"), flush=True)
        ok = ok and med <= target
    return 0


if __name__ == "__main__":
    sys.exit(main())
