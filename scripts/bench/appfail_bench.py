#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Application failure (issue 7), with the default monitoring settings:

- local restart: the service is SIGKILLed on the primary; <errd><proc action="restart">
  (polltimer 1 s, a failure acts after one more poll) restarts it; measured from the kill
  to the client getting an answer from n1 again through the VIP;
- hung service: the service is SIGSTOPped on the primary; <tcp action="stopstart">
  (interval 2 s, timeout 1 s, a failure acts after one more interval) fails it over;
  measured from the SIGSTOP to the client getting an answer from n2.

The service is test_monitor.py's hm-svc (listen backlog 1: a hung process stops
accepting, so new connections time out once its queue is full).
usage: MR_BIN_DIR=$PWD/build/bin python3 scripts/bench/appfail_bench.py [--runs N]"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration", "lib"))
import hamirror_test as ht  # noqa: E402
import test_failover as tf  # noqa: E402
import test_monitor as tm  # noqa: E402

ERRD = """    <errd>
      <proc name="hm-svc" atleast="1" action="restart" class="prim"/>
    </errd>
"""
TCP = """      <tcp ident="svc" when="prim" action="stopstart">
        <to addr="127.0.0.1" port="%d"/>
      </tcp>
""" % tf.PORT


def cluster(config):
    c = ht.Cluster(userconfig=config)
    c.open()
    svc = tf.setup(c)
    sd = os.path.join(os.path.dirname(c.userconfig), "scripts")
    for name, text in (("start_prim", tm.START_PRIM), ("stop_prim", tm.STOP_PRIM)):
        with open(os.path.join(sd, name), "w") as f:
            f.write(text)
    p = os.path.join(svc, "hm-svc")
    with open(p, "w") as f:
        f.write(tm.SVC)
    os.chmod(p, 0o755)
    return c, svc


def states(c, want, timeout_s=60):
    ht.wait_for(lambda: all((c.status(n)["state"], c.status(n)["readiness"]) == s
                            for n, s in want.items()), timeout_s, interval_s=0.05,
                what="states %s" % want)


def pair(c):
    c.start_daemon("n1")
    c.start_daemon("n2")
    states(c, {"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")})
    c.ctl("n1", "prim")
    states(c, {"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")})


def svc_pid(svc, n):
    with open(os.path.join(svc, "%s.pid" % n)) as f:
        return int(f.read().strip())


def served_after(c, sig, svc, want):
    """Signal n1's service; seconds until the client is served by `want` via the VIP."""
    prober = subprocess.Popen(c.ns_argv("cl", [sys.executable, "-c", tf.PROBER, ht.VIP_ADDR,
                                               str(tf.PORT), want]),
                              stdout=subprocess.PIPE, text=True)
    try:
        if want == "n1":
            time.sleep(0.2)  # (the prober may be served by the old process first)
            prober.kill()
            prober.wait()
            t0 = time.monotonic()
            os.kill(svc_pid(svc, "n1"), sig)
            prober = subprocess.Popen(c.ns_argv("cl", [sys.executable, "-c", tf.PROBER,
                                                       ht.VIP_ADDR, str(tf.PORT), want]),
                                      stdout=subprocess.PIPE, text=True)
        else:
            t0 = time.monotonic()
            os.kill(svc_pid(svc, "n1"), sig)
        out, _ = prober.communicate(timeout=70)
    finally:
        if prober.poll() is None:
            prober.kill()
            prober.wait()
    if prober.returncode != 0:
        raise ht.HarnessError("the client was never served by %s" % want)
    return float(out.strip()) - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    ht.require_root()
    restart, hang = [], []
    c, svc = cluster(tm.with_monitoring(tf.CONFIG, errd=ERRD))
    try:
        pair(c)
        for _ in range(a.runs):  # maxloop 3 (default): at most 3 restarts
            ht.wait_for(lambda: c.status("n1").get("resources", {}).get("proc.hm-svc") == "up",
                        10, what="proc.hm-svc up")
            restart.append(served_after(c, signal.SIGKILL, svc, "n1"))
            ht.log("restart: %.2f s" % restart[-1])
            c.ctl("n1", "restart")  # an admin command: resets maxloop
            states(c, {"n1": ("PRIM", "Ready")})
    finally:
        c.close()
    for _ in range(a.runs):
        c, svc = cluster(tm.with_monitoring(tf.CONFIG, check=TCP))
        try:
            pair(c)
            ht.wait_for(lambda: c.status("n1").get("resources", {}).get("tcp.svc") == "up",
                        10, what="tcp.svc up")
            hang.append(served_after(c, signal.SIGSTOP, svc, "n2"))
            ht.log("hang -> peer: %.2f s" % hang[-1])  # (stop_prim continued and ended it)
        finally:
            c.close()
    print("%-52s %8s %8s %8s" % ("application failure (defaults)", "median", "min", "max"))
    for name, v in (("killed -> restarted locally, answering (errd 1 s)", restart),
                    ("hung (SIGSTOP) -> answering on the peer (tcp 2 s/1 s)", hang)):
        print("%-52s %7.2fs %7.2fs %7.2fs" % (name, statistics.median(v), min(v), max(v)))


if __name__ == "__main__":
    main()
