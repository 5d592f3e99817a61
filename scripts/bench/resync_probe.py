#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""One resync, measured closely: a full copy of MIB MiB (8 files) into an empty node, or
with --same a pairing where both nodes hold the same data (compare only), or with --delta
the return of a cleanly stopped SECOND after 1% of the 4 KiB blocks changed on n1 (the
bench's trusted delta; --delta-compare: after a directory rename, so checksums only). Prints the
resync's duration from n1's own log line and the CPU time of every mirrord thread during
it (from /proc), so a change to the data path can be judged one at a time.

usage: MR_BIN_DIR=$PWD/build/bin python3 scripts/bench/resync_probe.py
       [--same | --delta | --delta-compare] [MIB]
Env: PERF=SECONDS also records `perf record -a -g` to /tmp/perf.data during the resync;
WARM=1 keeps the page cache (no drop_caches before the run); STATES=1 samples every
mirrord thread's scheduler state (/proc/PID/task/TID/stat) every 5 ms during the resync and
prints how often each was running (R), sleeping (S) or in the disk (D), and how often no
thread of either daemon was running (the pipeline stalled)."""
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration", "lib"))
import hamirror_test as ht  # noqa: E402
import resync_bench as rb  # noqa: E402
import test_failover as tf  # noqa: E402


def thread_cpu(c):
    out = {}
    for n in ("n1", "n2"):
        pid = c.node(n).daemon.pid
        st = open("/proc/%d/stat" % pid).read()  # the whole process, ended threads too
        f = st[st.rindex(")") + 2:].split()
        out[(n, "all")] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                st = open("/proc/%d/task/%s/stat" % (pid, tid)).read()
            except OSError:
                continue
            f = st[st.rindex(")") + 2:].split()
            out[(n, tid)] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return out


class StateSampler(threading.Thread):
    """Counts each mirrord thread's state every 5 ms until stopped."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.pids = {n: c.node(n).daemon.pid for n in ("n1", "n2")}
        self.counts = {}
        self.samples = 0
        self.none_running = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.wait(0.005):
            running = 0
            for n, pid in self.pids.items():
                try:
                    tids = os.listdir("/proc/%d/task" % pid)
                except OSError:
                    continue
                for tid in tids:
                    try:
                        st = open("/proc/%d/task/%s/stat" % (pid, tid)).read()
                    except OSError:
                        continue
                    name = st[st.index("(") + 1:st.rindex(")")]
                    state = st[st.rindex(")") + 2]
                    k = (n, name)
                    self.counts.setdefault(k, {}).setdefault(state, 0)
                    self.counts[k][state] += 1
                    running += state == "R"
            self.samples += 1
            self.none_running += running == 0

    def report(self):
        print("  thread states over %d samples (share of samples in R / S / D):" % self.samples)
        for k in sorted(self.counts):
            st = self.counts[k]
            tot = sum(st.values())
            if st.get("R", 0) + st.get("D", 0) < tot * 0.02:
                continue
            print("    %s %-14s R %3.0f%%  S %3.0f%%  D %3.0f%%" % (
                k[0], k[1], 100.0 * st.get("R", 0) / tot, 100.0 * st.get("S", 0) / tot,
                100.0 * st.get("D", 0) / tot))
        print("    no mirrord thread running: %.0f%% of samples" % (
            100.0 * self.none_running / max(1, self.samples)))


def delta_setup(c, files, per, compare):
    """Pair, stop n2 cleanly, change 1% of the blocks on n1 (after a rename when compare);
    the next `mirrorctl start` on n2 is the resync to measure."""
    c.start_daemon("n1", level="info")
    c.start_daemon("n2", level="info")
    rb.wait_states(c, {"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")}, 30)
    c.ctl("n1", "prim")
    rb.wait_states(c, {"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")})
    c.ctl("n2", "stop")
    rb.wait_states(c, {"n2": ("STOP", "NotReady"), "n1": ("ALONE", "Ready")}, 60)
    if compare:
        c.run("n1", sys.executable, "-c", "import os, sys; os.mkdir(sys.argv[1] + '/d.old'); "
              "os.rename(sys.argv[1] + '/d.old', sys.argv[1] + '/d.new')",
              c.node("n1").repl_dirs["data"][1])
    print("changed %s blocks" % rb.change(c, files, per, 7))


def main():
    modes = ("--same", "--delta", "--delta-compare")
    args = [a for a in sys.argv[1:] if a not in modes]
    same = "--same" in sys.argv[1:]
    delta = "--delta" in sys.argv[1:] or "--delta-compare" in sys.argv[1:]
    mib = int(args[0]) if args else 1024
    files = int(os.environ.get("FILES", 20 if delta else 8))
    ht.require_root()
    with ht.Cluster(userconfig=tf.CONFIG) as c:
        tf.setup(c)
        real = {n: c.node(n).repl_dirs["data"][0] for n in ("n1", "n2")}
        rb.make_files([real["n1"], real["n2"]], files, mib << 20)
        if delta:
            delta_setup(c, files, (mib << 20) // files, "--delta-compare" in sys.argv[1:])
        elif not same:
            for f in os.listdir(real["n2"]):
                os.unlink(os.path.join(real["n2"], f))
        if not delta:
            c.start_daemon("n1", level="info")
            c.start_daemon("n2", level="info")
            rb.wait_states(c, {"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")}, 30)
        if not os.environ.get("WARM") and not delta:
            subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=True)
            for f in os.listdir(real["n1"]):  # the source's data in the cache, as usual
                with open(os.path.join(real["n1"], f), "rb") as fh:
                    while fh.read(1 << 24):
                        pass
        os.sync()
        off = len(ht.read_text(c.node("n1").log_file))
        perf = None
        if os.environ.get("PERF"):
            perf = subprocess.Popen(["perf", "record", "-F", "999", "-a"] + os.environ.get("PERF_G", "-g").split() + ["-o",
                                     "/tmp/perf.data", "--", "sleep", os.environ["PERF"]],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        sampler = StateSampler(c) if os.environ.get("STATES") else None
        if sampler is not None:
            sampler.start()
        before = thread_cpu(c)
        stat0 = open("/proc/stat").readline().split()[1:]
        c.ctl("n2" if delta else "n1", "start" if delta else "prim")
        t = rb.wait_resync(c, off, 600)
        after = thread_cpu(c)
        if sampler is not None:
            sampler.halt.set()
            sampler.join()
        stat1 = open("/proc/stat").readline().split()[1:]
        d = [int(b) - int(a) for a, b in zip(stat0, stat1)]
        print("  machine: %.0f%% idle, %.0f%% iowait, %.0f%% softirq over the run" % (
            100.0 * d[3] / sum(d), 100.0 * d[4] / sum(d), 100.0 * d[6] / sum(d)))
        what = "delta" if delta else "compare" if same else "full copy"
        print("%s %d MiB: %.2f s (%.0f MB/s)" % (what, mib, t, (mib << 20) / t / 1e6))
        print("  mirrord CPU-s: n1 %.2f, n2 %.2f (every thread)" % tuple(
            after[(n, "all")] - before[(n, "all")] for n in ("n1", "n2")))
        for k in sorted(after):
            if k[1] == "all":
                continue
            d = after[k] - before.get(k, 0)
            if d >= 0.02:
                print("  %s thread %s: %.2f CPU-s" % (k[0], k[1], d))
        print("  (a thread that ended during the resync, such as n1's resync thread, "
              "is not listed)")
        if sampler is not None:
            sampler.report()
        if os.environ.get("SHOWLOG"):
            for n in ("n1", "n2"):
                for line in ht.read_text(c.node(n).log_file)[off if n == "n1" else 0:].splitlines():
                    if re.search(os.environ["SHOWLOG"], line):
                        print(n, line)
        if perf is not None:
            perf.wait()


if __name__ == "__main__":
    main()
