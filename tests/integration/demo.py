#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The hamirror demo (run by scripts/demo.sh): a two-node cluster plus a client and a
witness on one machine, in network namespaces on 198.18.0.0/15, built with the same
harness as the integration tests.

The nodes have two networks (tests/integration/test_failover.py builds them): the
production bridge (client, witness, virtual IP) and a direct link for heartbeats and
replication. A small TCP service, started by the start_prim script on the primary,
answers with its node's name; the client reaches it only through the VIP.

Steps: first start (both nodes wait for the admin), `mirrorctl prim`, writes replicated
to the secondary, a planned swap and back with the service following the VIP, then a
hard crash of the primary with the measured gap until the client is served by the
survivor. The demo is a list of steps (STEPS), each a function step_x(demo) that prints
what it does and raises on failure.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamirror_test as ht  # noqa: E402
import test_failover as tf  # noqa: E402

STATE_NAMES = {v: k for k, v in ht.STATE_RC.items()}
STATE_NAMES[ht.STATE_RC_UNREACHABLE] = "unreachable"

BOLD = "\033[1m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


class Demo:
    def __init__(self, cluster):
        self.c = cluster
        self.step_no = 0

    def title(self, text):
        self.step_no += 1
        print("\n%s== %d. %s%s" % (BOLD, self.step_no, text, RESET), flush=True)

    def cmd(self, node, *args, show_rc=True):
        """Run mirrorctl on node, echo the command line and its output like a shell would."""
        print("%s[%s]# mirrorctl %s%s" % (BOLD, node, " ".join(args), RESET), flush=True)
        rc, out, err = self.c.ctl(node, *args)
        sys.stdout.write(out)
        sys.stdout.write(err)
        if show_rc:
            print("(exit code %d)" % rc)
        sys.stdout.flush()
        return rc, out, err


def step_topology(d):
    c = d.c
    d.title("Topology: network namespaces joined by a bridge, addresses in 198.18.0.0/15")
    for host in c.node_names + c.extra_ns:
        role = {"cl": "client", "wi": "split-brain witness"}.get(host, "cluster node")
        print("  %-10s %-14s %s" % (c.netns_of(host), ht.HOST_ADDR[host], role))
    print("  %-10s %-14s bridge br0" % (c.netns_of("br"), ""))
    print("  xl (veth)  198.19.0.1 <-> 198.19.0.2: heartbeats and replication, n1 to n2")
    print("The virtual IP is %s; the witness is %s." % (ht.VIP_ADDR, ht.HOST_ADDR["wi"]))
    print("Each node also has a private mount namespace: %s is the node's own directory"
          % os.path.join(c.shared, "data"))
    print("there, so both nodes use the same userconfig.xml (%s)." % c.userconfig)


def ask(c):
    t = tf.Failover("test_start_then_hard_crash_of_the_primary")
    t.c = c
    return t.ask()


def has_vip(c, n):
    rc, out, _ = c.run(n, "ip", "-o", "addr", "show", "dev", "eth0")
    return (ht.VIP_ADDR + "/") in out


def wait_states(c, want, timeout_s=30):
    ht.wait_for(lambda: all((c.status(n)["state"], c.status(n)["readiness"]) == s
                            for n, s in want.items()), timeout_s, interval_s=0.1,
                what="states %s" % want)


def step_start(d):
    c = d.c
    d.title("Start mirrord on both nodes: first start, nobody has history")
    for n in ("n1", "n2"):
        p = c.start_daemon(n, level="info")
        print("  %s: mirrord -m %s -f started, pid %d" % (n, c.module, p.pid))
    wait_states(c, {"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")})
    d.cmd("n1", "state")
    print("Both wait: neither may decide alone which copy is the good one.")
    d.title("mirrorctl prim on n1 (the node holding the good data)")
    t0 = time.monotonic()
    d.cmd("n1", "prim")
    wait_states(c, {"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")})
    print("  n1 is PRIM and n2 SECOND (Ready, up to date) after %.2fs." % (
        time.monotonic() - t0))
    ht.wait_for(lambda: ask(c) == "n1", 10, what="the service answers via the VIP")
    print("  VIP %s on n1: %s, on n2: %s; the client asks the VIP -> \"%s\"" % (
        ht.VIP_ADDR, has_vip(c, "n1"), has_vip(c, "n2"), ask(c)))


def step_status(d):
    d.title("mirrorctl status on each node")
    for n in d.c.node_names:
        d.cmd(n, "status", show_rc=False)
        print()


def step_state(d):
    d.title("mirrorctl state: the state as an exit code (STOP 0, WAIT 1, ALONE 2, PRIM 3, SECOND 4)")
    for n in d.c.node_names:
        rc = d.c.state_rc(n)
        print("  %s: mirrorctl state -> exit code %d (%s)" % (n, rc, STATE_NAMES.get(rc, "?")))


# Run inside n1's namespaces, through the mount: each operation the application makes
# is replicated to n2 before the call returns (async="second": n2 has received it).
WRITER = r"""
import os, sys
d = sys.argv[1]
os.chdir(d)
def say(what):
    print("  n1$ " + what, flush=True)
say("echo 'Hello from n1, written through the hamirror mount.' > hello.txt")
with open("hello.txt", "w") as f:
    f.write("Hello from n1, written through the hamirror mount.\n")
say("write 4 MiB of random bytes (os.urandom) to random.bin.tmp, fsync it")
fd = os.open("random.bin.tmp", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
data = os.urandom(4 << 20)
off = 0
while off < len(data):
    off += os.write(fd, data[off:off + (1 << 20)])
os.fsync(fd)
os.close(fd)
say("mv random.bin.tmp random.bin          (rename)")
os.rename("random.bin.tmp", "random.bin")
say("ln hello.txt hello-link.txt           (hard link)")
os.link("hello.txt", "hello-link.txt")
say("append a line to hello-link.txt (the same inode as hello.txt), fsync it")
fd = os.open("hello-link.txt", os.O_WRONLY | os.O_APPEND)
os.write(fd, b"Appended through the hard link.\n")
os.fsync(fd)
os.close(fd)
"""

FILES = ("hello.txt", "hello-link.txt", "random.bin")

# Checks, inside a node, the hard link and the rename (prints "ok").
LAYOUT = r"""
import os, sys
d = sys.argv[1]
a, b = os.stat(os.path.join(d, "hello.txt")), os.stat(os.path.join(d, "hello-link.txt"))
ok = (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev) and a.st_nlink == 2
ok = ok and not os.path.exists(os.path.join(d, "random.bin.tmp"))
print("ok" if ok else "hard link or rename not as expected")
"""


def shared_dir(c):
    """The configured path of the replicated directory (the same on both nodes)."""
    return c.node("n1").repl_dirs["data"][1]


def shell(d, node, script):
    """Run a shell command line inside node, echo it and its output like a shell would."""
    print("%s[%s]# %s%s" % (BOLD, node, script, RESET), flush=True)
    rc, out, err = d.c.run(node, "/bin/sh", "-c", script)
    sys.stdout.write(out)
    sys.stdout.write(err)
    sys.stdout.flush()
    return rc, out, err


def step_write(d):
    c = d.c
    d.title("Write on the primary through its mount (inside n1's namespaces)")
    print("n1 has the replicated directory mounted read-write (FUSE) at %s;" % shared_dir(c))
    print("a short Python script there writes, renames, hard-links and fsyncs:")
    rc, out, err = c.run("n1", sys.executable, "-c", WRITER, shared_dir(c), timeout=60)
    sys.stdout.write(out)
    if rc != 0:
        sys.stdout.write(err)
        raise ht.HarnessError("the writer on n1 failed with exit code %d" % rc)
    print("  done: with async=\"second\" each call above returned only after n2 had applied it.")
    # acks are cumulative and mean "applied"; the last ones (e.g. the RELEASE of a file
    # closed just now) may still be in flight: wait until n2 has applied all n1 sent
    def caught_up():
        r1 = c.status("n1")["replication"]
        return (r1["acked_seq"] == r1["last_seq"] and
                c.status("n2")["replication"]["received_seq"] == r1["last_seq"])
    ht.wait_for(caught_up, 10, what="n2 caught up with n1")


def step_compare(d):
    c = d.c
    d.title("The same bytes on the secondary (n2 reads its own copy, mounted read-only)")
    sums = {}
    for n in c.node_names:
        rc, out, _ = shell(d, n, "cd %s && ls -li && sha256sum %s" % (shared_dir(c),
                                                                     " ".join(FILES)))
        if rc != 0:
            raise ht.HarnessError("%s: listing or hashing the files failed" % n)
        sums[n] = dict(reversed(ln.split(None, 1)) for ln in out.splitlines()
                       if len(ln.split()) == 2 and len(ln.split()[0]) == 64)
        print()
    print("Side by side (sha256, first 32 hex digits):")
    print("  %-16s %-34s %s" % ("file", "n1 (primary, via mount)", "n2 (secondary, read-only)"))
    all_same = True
    for f in FILES:
        a, b = sums["n1"].get(f, "-"), sums["n2"].get(f, "-")
        same = a == b and a != "-"
        all_same = all_same and same
        print("  %-16s %-34s %-34s %s" % (f, a[:32], b[:32], "MATCH" if same else "DIFFER"))
    if not all_same:
        raise ht.HarnessError("the secondary's copy differs from the primary's")
    print("All %d files are byte-for-byte identical on both nodes." % len(FILES))
    for n in c.node_names:
        rc, out, err = c.run(n, sys.executable, "-c", LAYOUT, shared_dir(c))
        if rc != 0 or out.strip() != "ok":
            raise ht.HarnessError("%s: unexpected layout: %s%s" % (n, out, err))
    print("On both nodes hello.txt and hello-link.txt are one inode (link count 2), and")
    print("random.bin.tmp no longer exists (the rename was replicated, not a copy).")

    print("\nWriting on the secondary is refused: its copy is mounted read-only.")
    rc, _, err = shell(d, "n2", "echo 'local write' > %s/local.txt" % shared_dir(c))
    print("(exit code %d)" % rc)
    if rc == 0 or "Read-only file system" not in err:
        raise ht.HarnessError("a write on the secondary did not fail with EROFS")


def step_counters(d):
    c = d.c
    d.title("Replication counters (the \"replication\" object of mirrorctl status --json)")
    for n in c.node_names:
        st = c.status(n)
        r = st.get("replication", {})
        print("  %s (%s): %s" % (n, st.get("state"), ", ".join(
            "%s=%s" % (k, json.dumps(v)) for k, v in r.items())))
    r1 = c.status("n1")["replication"]
    r2 = c.status("n2")["replication"]
    done = r1["acked_seq"] == r1["last_seq"] == r2["received_seq"]
    print("n1 numbered %d operations (last_seq); n2 has applied and acknowledged every one"
          % r1["last_seq"])
    print("up to %d (acked_seq, on n1) and received up to %d (received_seq): %s." % (
        r1["acked_seq"], r2["received_seq"],
        "nothing is outstanding" if done else "NOT all caught up"))


def step_config_check(d):
    c = d.c
    d.title("mirrorctl config check on a deliberately broken copy of userconfig.xml")
    text = ht.read_text(c.userconfig)
    broken = (text.replace('pulse="100ms"', 'pulse="fast"')
              .replace('port="9201"', 'port="99999"')
              .replace("<check>", "<check>\n      <bogus/>"))
    path = c.write_file("broken-userconfig.xml", broken)
    print("Broken on purpose: pulse=\"fast\", port=\"99999\" and an unknown <bogus/> element.")
    d.cmd(c.node_names[0], "config", "check", c.userconfig)
    d.cmd(c.node_names[0], "config", "check", path)


def step_swap(d):
    c = d.c
    d.title("Planned switch-over: mirrorctl swap on the primary, and back")
    for prim, sec in (("n1", "n2"), ("n2", "n1")):
        t0 = time.monotonic()
        d.cmd(prim, "swap")
        wait_states(c, {sec: ("PRIM", "Ready"), prim: ("SECOND", "Ready")}, 60)
        ht.wait_for(lambda: ask(c) == sec, 10, what="the service on %s" % sec)
        print("  %.2fs later: %s is PRIM with the VIP, %s SECOND; the client gets \"%s\"." % (
            time.monotonic() - t0, sec, prim, ask(c)))
    print("The application was stopped, the stream drained, the VIP moved, then the")
    print("application started on the other node: nothing acknowledged can be lost.")


def step_crash(d):
    c = d.c
    d.title("Hard crash of the primary n1: SIGKILL of all its processes, links down")
    gap = tf.crash_gap(c)
    st = c.status("n2")
    print("  The client is served by n2 through the VIP %.3f s after the crash." % gap)
    print("  n2: %s (%s), VIP held: %s, witness: %s" % (
        st["state"], st["readiness"], has_vip(c, "n2"), st["witness"].get("detail")))
    print("  (pulse %s, timeout %s; aggressive settings go below 0.4 s: docs/BENCHMARKS.md)"
          % (c.config["pulse"], c.config["hb_timeout"]))


# An application's journal on the survivor: opened once, appended every 5 ms, never closed
# (as a database holds its files) while the old primary returns.
JOURNAL = r"""
import os, sys, time
fd = os.open(os.path.join(sys.argv[1], "journal.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
             0o644)
i = 0
while True:
    os.write(fd, b"entry %08d %s\n" % (i, time.strftime("%H:%M:%S").encode()))
    i += 1
    time.sleep(0.005)
"""


def real_sha256(c, n, name):
    import hashlib
    with open(os.path.join(c.node(n).repl_dirs["data"][0], name), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def step_return(d):
    c = d.c
    d.title("n1 returns: it is behind n2, which wrote alone; a resync brings it back")
    shared = shared_dir(c)
    shell(d, "n2", "head -c 64M /dev/urandom > %s/written-alone.bin && sync" % shared)
    journal = c.popen("n2", sys.executable, "-c", JOURNAL, shared)
    print("  n2's application keeps %s/journal.log open and appends to it every 5 ms" % shared)
    c.link_up("n1")
    ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "up"])
    t0 = time.monotonic()
    c.start_daemon("n1", level="info")
    print("  n1: mirrord started again; it joins n2 as SECOND (Transient) and is resynced")
    print("  while n2's application keeps running. n2's view, every 0.3 s:")
    last = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        s1 = c.status("n1")
        rs = c.status("n2").get("replication", {}).get("resync")
        if rs is not None:
            mib = 1024.0 * 1024
            pct = min(100, int(rs["bytes"] * 100 / rs["total_bytes"])) if rs["total_bytes"] else 100
            line = "  [%-30s] %3d%%  pass %d, %d files, %.1f of %.1f MiB" % (
                "#" * (pct * 30 // 100), pct, rs["pass"], rs["files"], rs["bytes"] / mib,
                rs["total_bytes"] / mib)
            if line != last:
                print(line, flush=True)
                last = line
        if (s1["state"], s1["readiness"]) == ("SECOND", "Ready"):
            break
        time.sleep(0.3)
    wait_states(c, {"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")})
    print("  After %.2f s: n1 is SECOND (Ready, up to date), n2 PRIM: the pair is whole again."
          % (time.monotonic() - t0))
    d.cmd("n1", "status", show_rc=False)
    # the journal's descriptor was opened while n1 was away: n2 bound it again on n1
    seq = c.status("n2")["replication"]["last_seq"]
    ht.wait_for(lambda: c.status("n2")["replication"]["last_seq"] > seq + 100, 30,
                what="the journal growing")
    journal.kill()
    journal.wait(10)
    ht.wait_for(lambda: c.status("n1")["replication"]["received_seq"] ==
                c.status("n2")["replication"]["last_seq"], 30, what="n1 caught up")
    h1, h2 = real_sha256(c, "n1", "journal.log"), real_sha256(c, "n2", "journal.log")
    size = os.path.getsize(os.path.join(c.node("n2").repl_dirs["data"][0], "journal.log"))
    print("  journal.log (%d bytes, written through one descriptor the whole time):" % size)
    print("    sha256 on n1 %s\n    sha256 on n2 %s  %s" % (
        h1[:16], h2[:16], "identical" if h1 == h2 else "DIFFERENT"))
    if h1 != h2:
        raise ht.HarnessError("journal.log differs between the nodes")


def step_verify(d):
    c = d.c
    d.title("Verify both copies online (the application keeps running), change nothing")
    d.cmd("n2", "verify")


def step_changed_only(d):
    c = d.c
    d.title("The secondary leaves cleanly, the primary writes: only changed blocks come back")
    d.cmd("n1", "stop")
    wait_states(c, {"n1": ("STOP", "NotReady"), "n2": ("ALONE", "Ready")})
    shell(d, "n2", "dd if=/dev/urandom of=%s/written-alone.bin bs=4k count=40 seek=1000 "
          "conv=notrunc status=none" % shared_dir(c))
    d.cmd("n2", "diff")
    off = len(ht.read_text(c.node("n2").log_file))
    t0 = time.monotonic()
    d.cmd("n1", "start")
    wait_states(c, {"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")})
    line = [l for l in ht.read_text(c.node("n2").log_file)[off:].splitlines()
            if "resync: done" in l]
    print("  n1 back to SECOND (Ready) in %.2f s; n2's log:" % (time.monotonic() - t0))
    for l in line[-1:]:
        print("  " + l[l.index("resync:"):])


def step_stop(d):
    c = d.c
    d.title("Stop the module: the secondary first (no failover), then the primary")
    d.cmd("n1", "stop")
    wait_states(c, {"n1": ("STOP", "NotReady"), "n2": ("ALONE", "Ready")})
    d.cmd("n2", "stop")
    wait_states(c, {"n2": ("STOP", "NotReady")})
    print("  both STOP; VIP held by n2: %s; the service answers: %s" % (has_vip(c, "n2"),
                                                                        ask(c)))
    for n in c.node_names:
        if c.daemon_pid(n) is None:
            continue
        rc = c.stop_daemon(n)
        print("  %s: mirrord exited with code %d; control socket removed: %s" % (
            n, rc, "yes" if not os.path.exists(c.node(n).sock) else "NO"))
    d.cmd(c.node_names[0], "status")


STEPS = [step_topology, step_start, step_status, step_state, step_write, step_compare,
         step_counters, step_config_check, step_swap, step_crash, step_return, step_verify,
         step_changed_only, step_stop]

NOT_YET = """
What you saw: two nodes that elect a primary from their data generations (and wait for
the admin when neither may decide), replicate every write synchronously over TLS, move
the application and its VIP with nothing lost on a planned swap, and fail over on their
own after a hard crash, checking the split-brain witness and that nobody else answers
for the VIP first; the crashed node came back as secondary while the application ran.

The crashed primary may have held writes nobody acknowledged, so its return compared
every block by checksum; the secondary that left cleanly came back with only the blocks
the primary's dirty set had recorded (no checksums, no reading of unchanged files).
"""


def main():
    ht.require_root()
    try:
        ht.require_binaries()
    except ht.HarnessError as e:
        print("demo: %s" % e, file=sys.stderr)
        return 1
    with ht.Cluster(userconfig=tf.CONFIG, pulse="200ms", hb_timeout="1500ms") as c:
        tf.setup(c)
        d = Demo(c)
        for step in STEPS:
            step(d)
        print(NOT_YET)
    print("Cleaned up: namespaces, mounts and temporary files removed.")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything it created has been removed.", file=sys.stderr)
        sys.exit(130)
