#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Many small files: N files of 100 bytes (1000 per directory), identical on both nodes.
Prints (1) the first pairing, where a resync compares every file (nothing is known about
the other copy), (2) a reconnection with nothing changed (the secondary stopped cleanly
and started again: equal generation and sequence, so no resync at all), and (3) a
reconnection after 10 files changed on the primary (the dirty set names them: the other
files are walked but not read).
Usage: smallfiles_bench.py [N] (default 200000); MR_BIN_DIR as for the tests."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration", "lib"))
import hamirror_test as ht  # noqa: E402
import test_failover as tf  # noqa: E402


def second_ready(c):
    s = c.status("n2")
    return s["state"] == "SECOND" and s["readiness"] == "Ready"


def stop_n2(c):
    c.ctl("n2", "stop")
    ht.wait_for(lambda: c.status("n2")["state"] == "STOP", 60)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    ht.require_root()
    with ht.Cluster(userconfig=tf.CONFIG) as c:
        tf.setup(c)
        t = time.monotonic()
        for d in (c.node(x).repl_dirs["data"][0] for x in ("n1", "n2")):
            for i in range(n // 1000):
                os.mkdir(os.path.join(d, "d%03d" % i))
                for j in range(1000):
                    with open(os.path.join(d, "d%03d" % i, "f%04d" % j), "wb") as f:
                        f.write(b"x" * 100)
        ht.log("made %d files per node in %.1f s" % (n, time.monotonic() - t))
        c.start_daemon("n1", level="info")
        c.start_daemon("n2", level="info")
        ht.wait_for(lambda: c.status("n1")["readiness"] == "NotReady", 30)
        t = time.monotonic()
        c.ctl("n1", "prim")
        ht.wait_for(lambda: second_ready(c), 1800, interval_s=0.2)
        first = time.monotonic() - t
        stop_n2(c)
        t = time.monotonic()
        c.ctl("n2", "start")
        ht.wait_for(lambda: second_ready(c), 1800, interval_s=0.05)
        again = time.monotonic() - t
        # away again; 10 files change on n1: the trusted dirty set names them, the walk
        # skips the other files unread
        stop_n2(c)
        rc, out, err = c.run("n1", sys.executable, "-c",
                             "import os, sys\n"
                             "for i in range(10):\n"
                             "    open(os.path.join(sys.argv[1], 'd%03d' % i, 'f0007'),"
                             " 'wb').write(b'changed')\n", c.node("n1").repl_dirs["data"][1])
        if rc != 0:
            raise ht.HarnessError(err)
        t = time.monotonic()
        c.ctl("n2", "start")
        ht.wait_for(lambda: second_ready(c), 1800, interval_s=0.05)
        changed = time.monotonic() - t
    print("%d small files: first pairing (compare every file) %.1f s; reconnection with "
          "nothing changed %.2f s; with 10 files changed %.2f s" % (n, first, again, changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
