#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Resync cases beyond test_resync.py (issue 6), on the two-network topology of
test_failover.py. Each ends with both real trees identical (names, types, modes, owners,
sizes, contents, times) and checks from n1's log which kind of resync ran:

- the secondary stops cleanly, the primary writes alone, the secondary returns: only the
  files and blocks in the primary's dirty set are sent ("mode=changed"), every other file
  is skipped unread;
- the secondary is SIGKILLed with writes in flight: same boot, so its copy is still exact;
  the unacknowledged ops are in the dirty set; it returns through "mode=changed";
- the secondary is SIGKILLed in the middle of a full resync (a writer running on the
  primary): the second attempt compares checksums, sends only what the first attempt had
  not, and converges;
- the primary is SIGKILLed with unacknowledged writes in flight: the survivor's set is
  trusted and the old primary's pre-write log names the files its unacknowledged writes
  touched, so only those and the survivor's changes are compared ("mode=changed"), and
  the old primary's extra writes are undone;
- a primary running alone is SIGKILLed: its pre-write log still lists what it changed,
  so the returning secondary gets only those files;
- a full resync of a large tree (1 GiB by default, MR_RESYNC_BIG_MIB) into an empty node
  while a writer runs on the primary;
- files the application holds open across a re-pairing, renamed, replaced, unlinked, or
  known only by a hard link other than the name they were opened by."""
import json
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamirror_test as ht  # noqa: E402
import test_failover as tf  # noqa: E402
import test_replication as tr  # noqa: E402

BIG_MIB = int(os.environ.get("MR_RESYNC_BIG_MIB", "1024"))

MAKE = r"""
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(os.path.join(root, "tree", "sub"), exist_ok=True)
chunk = os.urandom(1 << 20)
for i in range(n):
    with open(os.path.join(root, "tree", "sub" if i % 2 else "", "f%03d" % i), "wb") as f:
        left = size
        while left > 0:
            k = min(left, len(chunk))
            f.write(chunk[:k])
            left -= k
        f.write(b"%08d" % i)
print("made")
"""

# Compressible files: numbered text lines (root, n, size).
TEXT = r"""
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(os.path.join(root, "text"), exist_ok=True)
for i in range(n):
    line, lines, k = b"", [], 0
    total = 0
    while total < size:
        line = b"%08d the quick brown fox jumps over the lazy dog, file %d\n" % (k, i)
        lines.append(line)
        total += len(line)
        k += 1
    with open(os.path.join(root, "text", "t%02d" % i), "wb") as f:
        f.write(b"".join(lines)[:size])
print("made")
"""

# Changes made by the primary alone: each kind of op the dirty set follows.
CHANGES = r"""
import os, sys
root = sys.argv[1]
J = lambda *p: os.path.join(root, *p)
with open(J("tree", "f000"), "r+b") as f:          # two blocks rewritten in place
    f.seek(5 * 4096 + 100); f.write(b"A" * 5000)
with open(J("tree", "f002"), "ab") as f:           # appended
    f.write(os.urandom(10000))
os.truncate(J("tree", "f004"), 3000)               # shrunk, then grown again
with open(J("tree", "f004"), "r+b") as f:
    f.seek(20000); f.write(b"end")
with open(J("tree", "new"), "wb") as f:            # created
    f.write(os.urandom(70000))
os.unlink(J("tree", "f006"))                       # deleted
os.rename(J("tree", "f008"), J("tree", "f008.moved"))  # a file renamed
os.chmod(J("tree", "f010"), 0o600)                 # metadata only
os.symlink("f000", J("tree", "ln"))
fd = os.open(J("tree", "f012"), os.O_WRONLY | os.O_TRUNC)  # emptied by open(O_TRUNC)
os.write(fd, b"short"); os.close(fd)
print("changed")
"""

# Keeps writing (appends and in-place rewrites) until killed or out of time.
WRITER = r"""
import os, sys, time
root, secs = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + secs
i = 0
while time.monotonic() < end:
    with open(os.path.join(root, "live-%d" % (i % 8)), "ab") as f:
        f.write(os.urandom(4000))
    with open(os.path.join(root, "tree", "sub", "f001"), "r+b") as f:
        f.seek((i * 12288) % (192 * 1024)); f.write(b"L%07d" % i)
    i += 1
    time.sleep(0.003)
print("wrote", i)
"""

# Holds files open for its whole life and writes to them (root): one renamed after its
# open, one whose name another file replaced (its data no longer has a name), one
# unlinked, and a second descriptor of the first closed on the way. Prints "open" once
# everything is set up.
HOLDER = r"""
import os, sys, time
root = sys.argv[1]
J = lambda *p: os.path.join(root, "held", *p)
os.makedirs(J(), exist_ok=True)
fds = [os.open(J("h%d" % i), os.O_RDWR | os.O_CREAT, 0o644) for i in range(4)]
for fd in fds:
    os.pwrite(fd, os.urandom(65536), 0)
os.rename(J("h1"), J("h1.moved"))
with open(J("other"), "wb") as f:
    f.write(b"replaces h2")
os.rename(J("other"), J("h2"))
os.unlink(J("h3"))
extra = os.open(J("h0"), os.O_WRONLY)
print("open", flush=True)
i = 0
while True:
    for fd in fds:
        os.pwrite(fd, os.urandom(4096), (i % 64) * 4096)
    if i == 100:
        os.close(extra)
    i += 1
    time.sleep(0.001)
"""

# Writes as fast as it can without fsync, forever (killed with the node).
FLOOD = r"""
import os, sys
root = sys.argv[1]
i = 0
while True:
    with open(os.path.join(root, "tree", "sub", "f%03d" % (2 * (i % 5) + 1)), "r+b") as f:
        f.seek((i * 4096 * 7) % (1 << 20)); f.write(os.urandom(4096))
    with open(os.path.join(root, "flood-%d" % (i % 20)), "wb") as f:
        f.write(os.urandom(8192))
    i += 1
"""


class ResyncCases(tf.Failover):
    def shared(self, n="n1"):
        return self.c.node(n).repl_dirs["data"][1]

    def real(self, n):
        return self.c.node(n).repl_dirs["data"][0]

    def run_py(self, n, script, *args, timeout=300):
        rc, out, err = self.c.run(n, sys.executable, "-c", script, *args, timeout=timeout)
        self.assertEqual(rc, 0, out + err)
        return out

    def log_from(self, n, off):
        return ht.read_text(self.c.node(n).log_file)[off:]

    def log_len(self, n):
        return len(ht.read_text(self.c.node(n).log_file))

    def resync_line(self, text):
        m = None
        for m in re.finditer(r"resync: done .*", text):
            pass
        self.assertIsNotNone(m, "no finished resync in the log")
        return m.group(0)

    def field(self, line, name):
        return int(re.search(r"\b%s=(\d+)" % name, line).group(1))

    def assert_identical(self, prim="n1", sec="n2"):
        c = self.c
        ht.wait_for(lambda: self.st(sec)["replication"]["received_seq"] ==
                    self.st(prim)["replication"]["last_seq"], 30, what="caught up")
        diff = tr.settled_diff(self.real(prim), self.real(sec))
        if diff:
            c.dump_logs("trees differ")
        self.assertEqual(diff, [], "trees differ:\n" + "\n".join(diff[:40]))

    def full_resync(self):
        """`mirrorctl resync --full` on n1, until n2 is back up to date with an identical
        copy; n1's log from the command on."""
        off = self.log_len("n1")
        rc, out, err = self.c.ctl("n1", "resync", "--full")
        self.assertEqual(rc, 0, out + err)
        ht.wait_for(lambda: not self.st("n2")["uptodate"], 10, what="n2 not up to date")
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        self.assert_identical()
        return self.log_from("n1", off)

    def wait_checkpoint(self, n="n1"):
        """Until the primary's pre-write log has retired every name (a checkpoint while
        paired): what it named before is acknowledged by the peer."""
        ht.wait_for(lambda: self.st(n)["replication"]["prelog"]["names"] == 0 and
                    not self.st(n)["replication"]["prelog"]["all"], 30,
                    what="a checkpoint of the pre-write log")

    def stop_second(self):
        """`mirrorctl stop` on n2, until n2 is STOP and n1 ALONE."""
        rc, out, err = self.c.ctl("n2", "stop")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n2": ("STOP", "NotReady"), "n1": ("ALONE", "Ready")})

    def pair_with(self, n_files, size):
        """n1 PRIM, n2 SECOND over n_files files of size bytes made through the mount."""
        self.start_pair()
        self.run_py("n1", MAKE, self.shared(), str(n_files), str(size))

    # ---- the secondary leaves and returns --------------------------------------

    def test_clean_stop_of_the_secondary_sends_only_changed_blocks(self):
        c = self.c
        self.pair_with(14, 256 * 1024)
        self.stop_second()
        self.run_py("n1", CHANGES, self.shared())
        off = self.log_len("n1")
        rc, out, err = c.ctl("n2", "start")
        self.assertEqual(rc, 0, out + err)
        # (no writer here: how long n1 stays alone would change what it sends; the
        # resync under a writer is tested below and in test_resync.py)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        self.assert_identical()
        log = self.log_from("n1", off)
        self.assertIn("mode=changed", log)
        line = self.resync_line(log)
        ht.log(line)
        # files never touched alone were not read: f001, f003, ... f013
        self.assertGreaterEqual(self.field(line, "unchanged_files"), 7, line)
        # what changed, not the tree (14 files of 256 KiB): a few blocks, a new file
        # of 70 KB, and the renamed file whole (its new name is new to n2)
        self.assertLess(self.field(line, "sent_bytes"), 1024 * 1024, line)

    def test_secondary_killed_with_writes_in_flight_returns_exact(self):
        c = self.c
        self.pair_with(14, 1 << 20)
        flood = c.popen("n1", sys.executable, "-c", FLOOD, self.shared())
        time.sleep(1.0)
        c.kill_node("n2")  # SIGKILL mid-stream: ops sent and never acknowledged
        ht.run(["ip", "-n", c.netns_of("n2"), "link", "set", "xl", "down"])
        self.wait_states({"n1": ("ALONE", "Ready")}, 30)
        time.sleep(0.5)
        flood.kill()
        flood.wait(10)
        self.run_py("n1", CHANGES, self.shared())
        c.link_up("n2")
        ht.run(["ip", "-n", c.netns_of("n2"), "link", "set", "xl", "up"])
        off = self.log_len("n1")
        c.start_daemon("n2")
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 120)
        self.assert_identical()
        log = self.log_from("n1", off)
        self.assertIn("exact_copy=yes", log)
        self.assertIn("mode=changed", log)
        ht.log(self.resync_line(log))

    def test_secondary_killed_mid_resync_resumes_and_converges(self):
        """(A small in-flight ceiling, so that what was sent is about what was applied.)"""
        c = self.c
        mib = max(96, BIG_MIB // 4)
        total = mib * 1024 * 1024
        self.open_cluster(tf.CONFIG.replace("<rfs ", '<rfs maxinflight="4194304" ', 1))
        c = self.c
        c.start_daemon("n1")
        c.start_daemon("n2")
        self.wait_states({"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")})
        # n1 holds data n2 does not: made in the real directory before the first `prim`
        self.run_py("n1", MAKE, self.real("n1"), "8", str(total // 8))
        rc, out, err = c.ctl("n1", "prim")
        self.assertEqual(rc, 0, out + err)
        w = c.popen("n1", sys.executable, "-c", WRITER, self.shared(), "600")
        self.addCleanup(lambda: w.poll() is None and w.kill())

        def sent():
            r = self.st("n1")["replication"].get("resync") or {}
            return r.get("sent_bytes", 0) if r.get("state") == "running" else 0
        # kill n2 once the resync has sent (and, with a 4 MiB window, n2 applied)
        # a third of the data
        ht.wait_for(lambda: sent() > total // 3, 300, interval_s=0.02,
                    what="the resync a third done")
        first = sent()
        c.kill_node("n2")
        ht.run(["ip", "-n", c.netns_of("n2"), "link", "set", "xl", "down"])
        self.wait_states({"n1": ("ALONE", "Ready")}, 30)
        with open(os.path.join(c.node("n2").state_dir, "app.meta")) as f:
            meta2 = json.load(f)
        self.assertFalse(meta2["uptodate"], "a half-resynced node must not be up to date")
        c.link_up("n2")
        ht.run(["ip", "-n", c.netns_of("n2"), "link", "set", "xl", "up"])
        off = self.log_len("n1")
        c.start_daemon("n2")
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 300)
        w.kill()
        w.wait(10)
        self.assert_identical()
        line = self.resync_line(self.log_from("n1", off))
        ht.log("first attempt sent %d of %d bytes before the kill; the second: %s" % (
            first, total, line))
        # what the first attempt wrote was compared, not sent again
        self.assertLess(self.field(line, "sent_bytes"), total - first + total // 10, line)

    def test_bandwidth_cap_is_respected(self):
        """<rfs reiallowedbw="KB/s">: the resync never sends faster than the cap (only
        a lower bound on its duration is checked: a slow machine cannot fail it)."""
        cap_kb = 4096
        self.open_cluster(tf.CONFIG.replace("<rfs ", '<rfs reiallowedbw="%d" ' % cap_kb, 1))
        c = self.c
        c.start_daemon("n1")
        c.start_daemon("n2")
        self.wait_states({"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")})
        self.run_py("n1", MAKE, self.real("n1"), "4", str(3 << 20))  # 12 MiB
        off = self.log_len("n1")
        rc, out, err = c.ctl("n1", "prim")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 120)
        self.assert_identical()
        log = self.log_from("n1", off)
        self.assertIn("cap_kbytes_s=%d" % cap_kb, log)
        line = self.resync_line(log)
        ms, sent = self.field(line, "ms"), self.field(line, "sent_bytes")
        ht.log("capped resync: %s (%.0f KB/s)" % (line, sent / 1024 / (ms / 1000.0)))
        self.assertGreaterEqual(sent, 12 << 20)
        # at most one chunk (1 MiB) ahead of the cap
        self.assertGreaterEqual(ms / 1000.0, (sent - (1 << 20)) / 1024.0 / cap_kb * 0.95, line)

    def test_compression_under_a_cap_and_a_larger_block(self):
        """<rfs reicompress="auto">: under a bandwidth cap (a link slower than zlib)
        compressible data travels deflated, and the cap counts the bytes on the wire;
        <rfs reiblocksize="64K">: checksums per 64 KiB, in the resync and in verify."""
        cfg = tf.CONFIG.replace("<rfs ", '<rfs reiallowedbw="8192" reiblocksize="64K" ', 1)
        self.open_cluster(cfg)
        c = self.c
        c.start_daemon("n1")
        c.start_daemon("n2")
        self.wait_states({"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")})
        self.run_py("n1", TEXT, self.real("n1"), "6", str(4 << 20))  # 24 MiB of text
        self.run_py("n2", TEXT, self.real("n2"), "3", str(4 << 20))  # half of it there
        off = self.log_len("n1")
        rc, out, err = c.ctl("n1", "prim")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 120)
        self.assert_identical()
        log = self.log_from("n1", off)
        self.assertIn("block=65536 compress=auto", log)
        line = self.resync_line(log)
        ht.log(line)
        z_in, z_out = self.field(line, "zlib_in"), self.field(line, "zlib_out")
        # the three files n2 lacked (12 MiB) went deflated; the three it had, not at all
        self.assertGreaterEqual(z_in, 12 << 20, line)
        self.assertLess(z_out, z_in // 3, line)
        self.assertLess(self.field(line, "sent_bytes"), 6 << 20, line)
        rc, out, err = c.ctl("n1", "verify")
        self.assertEqual(rc, 0, out + err)

    def test_full_resync_of_a_large_file_hashed_in_two_halves(self):
        """The target hashes a large request (16 MiB or more) with two threads, a half
        each: a block damaged in each half of a 40 MiB file is found and repaired, and
        nothing else is sent."""
        self.pair_with(2, 64 * 1024)
        self.run_py("n1", "import os, sys\n"
                    "with open(os.path.join(sys.argv[1], 'big'), 'wb') as f:\n"
                    "    for i in range(40): f.write(os.urandom(1 << 20))\n", self.shared())
        self.assert_identical()
        victim = os.path.join(self.real("n2"), "big")
        with open(victim, "r+b") as f:  # behind the secondary's back
            for off in ((1 << 20) + 100, (35 << 20) + 5):
                f.seek(off)
                f.write(b"damage")
        log = self.full_resync()
        line = self.resync_line(log)
        self.assertIn("mode=compare", log)
        self.assertEqual(self.field(line, "sent_bytes"), 2 * 4096, line)

    def test_full_resync_requested_again_and_again_always_runs(self):
        """`mirrorctl resync --full` makes a new generation, then drops the link. The
        heartbeat with that generation could reach the secondary before the link's end
        did: it took the generation as its own, the next pairing found both equal, and
        no resync ran (a block damaged on n2 stayed damaged, n2 "up to date"). A
        secondary now takes only the generation of the current link's HELLO.
        The test knob MR_TEST_RESYNC_DROP_DELAY_MS (MR_TESTING builds) holds the link
        300 ms after the heartbeat, so the heartbeat always arrives first."""
        os.environ["MR_TEST_RESYNC_DROP_DELAY_MS"] = "300"
        try:
            self.pair_with(2, 64 * 1024)
        finally:
            del os.environ["MR_TEST_RESYNC_DROP_DELAY_MS"]
        victim = os.path.join(self.real("n2"), "tree", "f000")
        for i in range(3):
            with open(victim, "r+b") as f:  # behind the secondary's back
                f.seek(4096 + i)
                f.write(b"damage")
            log = self.full_resync()
            self.assertIn("resync: done", log, "round %d: no resync ran" % i)

    def test_full_resync_while_the_differing_blocks_are_rewritten(self):
        """The source compares a range's blocks by two readers without the order lock
        and reads again, under it, what it sends whenever a live op came meanwhile: a
        writer rewriting exactly the blocks that differ during a full resync of a
        256 MiB file leaves no stale block on the target. (The writer holds the file open
        across the re-pairing that `resync --full` makes.)"""
        c = self.c
        self.pair_with(2, 64 * 1024)
        self.run_py("n1", "import os, sys\n"
                    "with open(os.path.join(sys.argv[1], 'big'), 'wb') as f:\n"
                    "    for i in range(256): f.write(os.urandom(1 << 20))\n", self.shared())
        self.assert_identical()
        with open(os.path.join(self.real("n2"), "big"), "r+b") as f:  # behind its back
            for b in range(3, 256 * 256, 16):
                f.seek(b * 4096)
                f.write(b"D" * 4096)
        w = c.popen("n1", sys.executable, "-c",
                    "import os, random, sys\n"
                    "blocks = list(range(3, 256 * 256, 16))\n"
                    "fd = os.open(os.path.join(sys.argv[1], 'big'), os.O_WRONLY)\n"
                    "while True:\n"
                    "    os.pwrite(fd, os.urandom(4096), random.choice(blocks) * 4096)\n",
                    self.shared())
        self.addCleanup(lambda: w.poll() is None and w.kill())
        off = self.log_len("n1")
        rc, out, err = c.ctl("n1", "resync", "--full")
        self.assertEqual(rc, 0, out + err)
        ht.wait_for(lambda: not self.st("n2")["uptodate"], 10, what="n2 not up to date")
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 120)
        self.assertIsNone(w.poll(), "the writer stopped early")
        w.kill()
        w.wait(10)
        self.assert_identical()
        self.assertIn("mode=compare", self.log_from("n1", off))

    # ---- files held open across a re-pairing ------------------------------------

    def start_holder(self, n="n1"):
        w = self.c.popen(n, sys.executable, "-c", HOLDER, self.shared(n))
        self.addCleanup(lambda: w.poll() is None and w.kill())
        ht.wait_for(lambda: ht.read_text(w.out_path).startswith("open") or w.poll() is not None,
                    30, what="the holder's files open")
        self.assertIsNone(w.poll(), ht.read_text(w.err_path))
        return w

    def start_writer(self, script, what):
        """Run script (python, argv[1] = n1's mount) on n1 until killed; wait for its
        line 'open' (its files are open)."""
        w = self.c.popen("n1", sys.executable, "-c", script, self.shared())
        self.addCleanup(lambda: w.poll() is None and w.kill())
        ht.wait_for(lambda: ht.read_text(w.out_path).startswith("open") or w.poll() is not None,
                    30, what=what)
        self.assertIsNone(w.poll(), ht.read_text(w.err_path))
        return w

    def check_holder_goes_on(self, w, off2, prim="n1", sec="n2"):
        """The holder's writes after the re-pairing are applied on the secondary (the
        primary's seq goes on, the secondary follows and fails nothing); then the trees
        are identical."""
        want = {prim: ("PRIM", "Ready"), sec: ("SECOND", "Ready")}
        seq = self.st(prim)["replication"]["last_seq"]
        ht.wait_for(lambda: self.st(prim)["replication"]["last_seq"] > seq + 400, 30,
                    what="the holder writing on")
        self.wait_states(want, 10)
        self.assertIsNone(w.poll(), ht.read_text(w.err_path))
        w.kill()
        w.wait(10)
        self.assert_identical(prim=prim, sec=sec)
        self.wait_states(want, 10)
        # (during the resync's passes a live op may find a name not made yet; after
        # it, none may fail)
        log = self.log_from(sec, off2)
        ready = log.rfind("-> SECOND (Ready)")
        self.assertGreaterEqual(ready, 0, "no SECOND (Ready) in the log")
        self.assertNotIn("stale", log[ready:].lower())

    def test_files_held_open_across_a_restart_of_the_secondary(self):
        """The secondary's map of open files dies with it: when it returns, the primary
        binds again every file the application still holds open (by its current name, or
        as nameless when it has none), so the writes through those descriptors apply."""
        c = self.c
        self.pair_with(2, 64 * 1024)
        w = self.start_holder()
        self.stop_second()
        off2 = self.log_len("n2")
        rc, out, err = c.ctl("n2", "start")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        self.check_holder_goes_on(w, off2)

    def test_files_held_open_across_a_full_resync(self):
        """`resync --full` pairs again and runs passes while the application writes
        through descriptors it opened before: each pass binds them again, and the resync
        converges."""
        c = self.c
        self.pair_with(2, 64 * 1024)
        w = self.start_holder()
        off2 = self.log_len("n2")
        rc, out, err = c.ctl("n1", "resync", "--full")
        self.assertEqual(rc, 0, out + err)
        ht.wait_for(lambda: not self.st("n2")["uptodate"], 10, what="n2 not up to date")
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        self.check_holder_goes_on(w, off2)

    def n2_alone_after_a_crash_of_n1(self):
        """Pair, SIGKILL n1 and cut its link: n2 runs alone and writes 32 MiB (a first
        resync pass long enough for the application to write during it). n1's link is
        left down; c.link_up("n1") and the xl link bring it back."""
        c = self.c
        self.pair_with(2, 64 * 1024)
        self.wait_checkpoint()
        c.kill_node("n1")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "down"])
        self.wait_states({"n2": ("ALONE", "Ready")}, 30)
        self.run_py("n2", "import os, sys\n"
                    "with open(os.path.join(sys.argv[1], 'alone.bin'), 'wb') as f:\n"
                    "    f.write(os.urandom(32 << 20))\n", self.shared("n2"))

    def test_files_held_open_by_the_survivor_when_the_old_primary_returns(self):
        """The product's main case: the primary dies, the application restarts on the
        survivor and holds its files open; the old primary returns and resyncs while
        those descriptors keep writing, and the pair converges."""
        c = self.c
        self.n2_alone_after_a_crash_of_n1()
        w = self.start_holder("n2")
        c.link_up("n1")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "up"])
        off1, off2 = self.log_len("n1"), self.log_len("n2")
        c.start_daemon("n1")
        self.wait_states({"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")}, 120)
        self.check_holder_goes_on(w, off1, prim="n2", sec="n1")
        # The first pass cannot apply the holder's writes to files n1 does not have yet:
        # a second pass runs, and compares the files it sent by checksums rather than
        # sending their marked blocks again.
        line = self.resync_line(self.log_from("n2", off2))
        ht.log(line)
        self.assertGreaterEqual(self.field(line, "passes"), 2, line)
        self.assertLess(self.field(line, "sent_bytes"), 40 << 20, line)

    def test_file_grown_by_the_survivor_during_the_first_pass(self):
        """The survivor's application made a file while alone and keeps appending to it
        while the old primary returns. The first pass cannot apply those appends (the
        returning node does not have the file yet), and they lie past the blocks written
        while alone: the next pass must cover them. It does because a file created while
        alone counts as marked from its start (mark_trunc(0)), so a later pass compares
        it rather than sending only marked blocks; this test keeps it so."""
        c = self.c
        self.n2_alone_after_a_crash_of_n1()
        w = c.popen("n2", sys.executable, "-c",
                    "import os, signal, sys\n"
                    "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n"
                    "fd = os.open(os.path.join(sys.argv[1], 'grow.log'),\n"
                    "             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)\n"
                    "os.write(fd, os.urandom(65536))\n"
                    "print('open', flush=True)\n"
                    "signal.sigwait([signal.SIGUSR1])\n"
                    "while True:\n"
                    "    os.write(fd, os.urandom(65536))\n", self.shared("n2"))
        self.addCleanup(lambda: w.poll() is None and w.kill())
        ht.wait_for(lambda: ht.read_text(w.out_path).startswith("open") or w.poll() is not None,
                    30, what="grow.log open")
        self.assertIsNone(w.poll(), ht.read_text(w.err_path))
        c.link_up("n1")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "up"])
        off2 = self.log_len("n2")
        c.start_daemon("n1")
        ht.wait_for(lambda: "resync: started" in self.log_from("n2", off2), 60,
                    what="the resync started")
        w.send_signal(signal.SIGUSR1)
        self.wait_states({"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")}, 120)
        w.kill()
        w.wait(10)
        line = self.resync_line(self.log_from("n2", off2))
        ht.log(line)
        self.assertGreaterEqual(self.field(line, "passes"), 2, line)
        self.assert_identical(prim="n2", sec="n1")

    def test_file_held_open_through_a_name_the_resync_makes_a_hard_link(self):
        """n2's `b` is a file of its own; on n1 `b` became a hard link of `a`, which the
        application holds open through `b` and writes. The resync binds `b` to n2's old
        file at the start, then makes `b` a link of `a`: the binding to the replaced file
        goes with it (writes there would be lost silently), and the pass after binds `b`
        again. The writes the binding took before the RS_LINK went to the old file:
        the pass is not clean, so a second pass compares `a` again (a write between the
        pass's read of `a` and the RS_LINK was lost when the first pass counted as
        clean: the trees differed, once in 9 runs here)."""
        c = self.c
        self.pair_with(2, 64 * 1024)
        self.run_py("n1", "import os, sys\n"
                    "for n in 'ab':\n"
                    "    with open(os.path.join(sys.argv[1], n), 'wb') as f:\n"
                    "        f.write(os.urandom(1 << 20))\n", self.shared())
        self.stop_second()
        self.run_py("n1", "import os, sys\n"
                    "os.unlink(os.path.join(sys.argv[1], 'b'))\n"
                    "os.link(os.path.join(sys.argv[1], 'a'), os.path.join(sys.argv[1], 'b'))\n",
                    self.shared())
        w = self.start_writer("import os, random, sys, time\n"
                              "fd = os.open(os.path.join(sys.argv[1], 'b'), os.O_WRONLY)\n"
                              "print('open', flush=True)\n"
                              "while True:\n"
                              "    os.pwrite(fd, os.urandom(4096), random.randrange(256) * 4096)\n"
                              "    time.sleep(0.001)\n", "b open")
        off1 = self.log_len("n1")
        off2 = self.log_len("n2")
        rc, out, err = c.ctl("n2", "start")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        self.check_holder_goes_on(w, off2)
        line = self.resync_line(self.log_from("n1", off1))
        self.assertGreaterEqual(self.field(line, "passes"), 2, line)
        self.assertIn("the pass is not clean", self.log_from("n2", off2))
        st_a = os.stat(os.path.join(self.real("n2"), "a"))
        st_b = os.stat(os.path.join(self.real("n2"), "b"))
        self.assertEqual((st_a.st_ino, st_a.st_nlink), (st_b.st_ino, 2))

    def test_temporary_files_do_not_keep_a_tree_with_hard_links_resyncing(self):
        """An application that writes into files it unlinked while open (SQLite's
        temporary files), in a tree with 400 hard links: every pass sends an RS_LINK for
        each link's second name. Those find the link already there and must not count
        as replaced files: the temporary files the secondary holds with no name would
        be unbound, their next writes fail, and the pass would not be clean. The pass
        converges at once. (The builds before this test unbound on every RS_LINK, but
        this test did not catch them at it: their pass was clean too.)"""
        c = self.c
        self.pair_with(2, 64 * 1024)
        self.run_py("n1", "import os, sys\n"
                    "t = os.path.join(sys.argv[1], 'linked')\n"
                    "os.mkdir(t)\n"
                    "for i in range(400):\n"
                    "    with open(os.path.join(t, 'f%03d' % i), 'wb') as f:\n"
                    "        f.write(os.urandom(4096))\n"
                    "    os.link(os.path.join(t, 'f%03d' % i), os.path.join(t, 'h%03d' % i))\n",
                    self.shared())
        self.stop_second()
        # (changes while n2 is away, and a directory renamed: the set is not trusted,
        # so every pass walks the whole tree and sends the RS_LINK)
        self.run_py("n1", "import os, sys\n"
                    "os.mkdir(os.path.join(sys.argv[1], 'd'))\n"
                    "os.rename(os.path.join(sys.argv[1], 'd'), os.path.join(sys.argv[1], 'e'))\n",
                    self.shared())
        w = self.start_writer("import os, sys, time\n"
                              "i = 0\n"
                              "print('open', flush=True)\n"
                              "while True:\n"
                              "    p = os.path.join(sys.argv[1], 'tmp%d' % (i % 4))\n"
                              "    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)\n"
                              "    os.unlink(p)\n"
                              "    for b in range(4):\n"
                              "        os.pwrite(fd, b'T' * 4096, b * 4096)\n"
                              "        time.sleep(0.001)\n"
                              "    os.close(fd)\n"
                              "    i += 1\n", "the temporary-file writer started")
        off1 = self.log_len("n1")
        rc, out, err = c.ctl("n2", "start")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        self.assertIsNone(w.poll(), ht.read_text(w.err_path))
        line = self.resync_line(self.log_from("n1", off1))
        ht.log(line)
        self.assertIn("mode=compare", self.log_from("n1", off1))
        self.assertLessEqual(self.field(line, "passes"), 3, line)
        w.kill()
        w.wait(10)
        self.assert_identical()

    def start_lost_holder(self, wait_signal=False):
        """An application that makes a file with two hard links `a` and `b`, opens it by
        `a`, unlinks `a` and writes through its descriptor (after SIGUSR1 if
        wait_signal). The file lives on as `b`, a name the primary's table of open files
        never saw."""
        w = self.c.popen("n1", sys.executable, "-c",
                         "import os, random, signal, sys, time\n"
                         "J = lambda n: os.path.join(sys.argv[1], n)\n"
                         "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n"
                         "with open(J('a'), 'wb') as f:\n"
                         "    f.write(os.urandom(1 << 20))\n"
                         "os.link(J('a'), J('b'))\n"
                         "fd = os.open(J('a'), os.O_RDWR)\n"
                         "os.unlink(J('a'))\n"
                         "print('open', flush=True)\n"
                         "if sys.argv[2] == '1':\n"
                         "    signal.sigwait([signal.SIGUSR1])\n"
                         "while True:\n"
                         "    os.pwrite(fd, os.urandom(4096), random.randrange(256) * 4096)\n"
                         "    time.sleep(0.001)\n", self.shared(), "1" if wait_signal else "0")
        self.addCleanup(lambda: w.poll() is None and w.kill())
        ht.wait_for(lambda: ht.read_text(w.out_path).startswith("open") or w.poll() is not None,
                    30, what="a open")
        self.assertIsNone(w.poll(), ht.read_text(w.err_path))
        return w

    def check_lost_holder_goes_on(self, w, off2):
        self.check_holder_goes_on(w, off2)
        self.assertFalse(os.path.lexists(os.path.join(self.real("n2"), "a")))
        self.assertEqual(os.stat(os.path.join(self.real("n2"), "b")).st_nlink, 1)

    def test_file_held_open_by_a_hard_link_name_since_unlinked(self):
        """The application writes through a descriptor of `a`, since unlinked; the file
        is still `b`. When the secondary returns, the resync's walk meets the file's
        inode as `b` and binds the descriptor to it there, so its writes apply and the
        resync converges (before, every write through it failed on the secondary and no
        pass was clean)."""
        self.pair_with(2, 64 * 1024)
        w = self.start_lost_holder()
        self.stop_second()
        off2 = self.log_len("n2")
        rc, out, err = self.c.ctl("n2", "start")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        self.check_lost_holder_goes_on(w, off2)

    def test_file_held_open_by_a_removed_name_forces_a_resync(self):
        """The same, but nothing is written while the secondary is away: the pairing
        would need no resync, and the first write through the descriptor would then fail
        on the secondary. The primary refuses that pairing once, with a new generation,
        so the next one resyncs and finds `b`."""
        self.pair_with(2, 64 * 1024)
        w = self.start_lost_holder(wait_signal=True)
        self.stop_second()
        off1, off2 = self.log_len("n1"), self.log_len("n2")
        rc, out, err = self.c.ctl("n2", "start")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        w.send_signal(signal.SIGUSR1)
        self.check_lost_holder_goes_on(w, off2)
        self.assertIn("an open file is known only by a name since removed",
                      self.log_from("n1", off1))
        # a refusal in the normal course, not an error (REFUSE code 7)
        self.assertRegex(self.log_from("n1", off1),
                         r"notice +peer: refusing link peer=n2 addr=\S+ code=7 ")
        self.assertRegex(self.log_from("n2", off2),
                         r"notice +peer: refused by peer peer=n1 addr=\S+ code=7 ")

    def fail_second_by_a_blocker(self):
        """An op the secondary cannot apply: n1 makes a directory where n2's copy has a
        file, put there behind its back. n2 fails and the link drops; n1 goes on alone.
        Returns the offset of n2's log before."""
        self.pair_with(2, 64 * 1024)
        with open(os.path.join(self.real("n2"), "blocker"), "wb") as f:
            f.write(b"behind its back")
        off2 = self.log_len("n2")
        mkdir = "import os, sys\nos.mkdir(os.path.join(sys.argv[1], 'blocker'))\n"
        self.run_py("n1", mkdir, self.shared())
        self.wait_states({"n1": ("ALONE", "Ready"), "n2": ("WAIT", "NotReady")}, 30)
        self.assertIn("File exists", self.log_from("n2", off2))
        return off2

    def test_secondary_that_cannot_apply_an_op_rejoins_on_its_own(self):
        """The failed secondary says when it will rejoin and how to do it now; after the
        delay it rejoins on its own with a resync from the primary, which replaces what
        made the op fail, and the pair is back without the admin."""
        off2 = self.fail_second_by_a_blocker()
        st = self.st("n2")
        self.assertIn("rejoins on its own in 10 s", st["message"], st)
        self.assertIn("mirrorctl second", st["message"], st)
        self.assertTrue(st["rejoin"]["blocked"] and st["rejoin"]["scheduled"], st)
        self.assertLessEqual(st["rejoin"]["in_ms"], 10000, st)
        self.assertEqual(st["rejoin"]["count"], 1, st)
        rc, out, err = self.c.ctl("n2", "status")
        self.assertRegex(out, r"rejoin: +on its own in \d+\.\d s \(automatic rejoin 1;", out)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        log = self.log_from("n2", off2)
        self.assertIn("rejoin 1 of maxloop=3", log)
        self.assertIn("rejoining the primary on its own", log)
        self.assert_identical()
        self.assertTrue(os.path.isdir(os.path.join(self.real("n2"), "blocker")))

    def test_secondary_that_fails_past_maxloop_waits_for_the_admin(self):
        """With maxloop="0" no automatic rejoin is allowed: the failed secondary waits,
        saying so, and `mirrorctl second` on it resyncs it from the primary."""
        self.open_cluster(tf.CONFIG.replace('<service ', '<service maxloop="0" ', 1))
        off2 = self.fail_second_by_a_blocker()
        st = self.st("n2")
        self.assertIn("no automatic rejoin past maxloop", st["message"], st)
        self.assertTrue(st["rejoin"]["blocked"], st)
        self.assertFalse(st["rejoin"]["scheduled"], st)
        self.assertIn("mirrorctl second", self.log_from("n2", off2))
        # it does not rejoin on its own: still waiting past the first automatic delay
        end = time.monotonic() + 12
        while time.monotonic() < end:
            self.assertEqual(self.st("n2")["state"], "WAIT")
            time.sleep(0.5)
        rc, out, err = self.c.ctl("n2", "second")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        self.assert_identical()
        self.assertTrue(os.path.isdir(os.path.join(self.real("n2"), "blocker")))

    def test_full_resync_sends_no_zeros_into_a_fresh_copy(self):
        """A copy RS_FILE has just made is all hole, and the target's hashes say zeros:
        the source then sends its blocks that are not zeros without hashing them, and
        nothing for its zeros (holes or written zeros), so a sparse file stays sparse.
        A block the target holds as zeros where the source has data is still sent."""
        self.pair_with(2, 64 * 1024)
        self.run_py("n1", "import os, sys\n"
                    "d = sys.argv[1]\n"
                    "with open(os.path.join(d, 'sparse'), 'wb') as f:\n"
                    "    f.truncate(32 << 20)\n"
                    "    for off in (0, (5 << 20) + 3 * 4096, 31 << 20):\n"
                    "        f.seek(off); f.write(os.urandom(4096))\n"
                    "with open(os.path.join(d, 'zeros'), 'wb') as f:\n"
                    "    f.write(bytes(2 << 20) + os.urandom(4096) + bytes(2 << 20))\n"
                    "with open(os.path.join(d, 'data'), 'wb') as f:\n"
                    "    f.write(os.urandom(2 << 20))\n", self.shared())
        self.assert_identical()
        for name in ("sparse", "zeros"):  # gone behind the secondary's back
            os.unlink(os.path.join(self.real("n2"), name))
        with open(os.path.join(self.real("n2"), "data"), "r+b") as f:
            f.seek(1 << 20)
            f.write(bytes(4096))  # zeros where the source has data
        log = self.full_resync()
        line = self.resync_line(log)
        self.assertEqual(self.field(line, "sent_bytes"), 5 * 4096, line)
        st = os.stat(os.path.join(self.real("n2"), "sparse"))
        self.assertLess(st.st_blocks * 512, 1 << 20, "the sparse file's copy is not sparse")

    def test_xattrs_and_hard_links_are_resynced(self):
        """Extended attributes (in both kinds of resync) and hard links (a link made
        alone makes the dirty set untrusted: compare mode) come back identical."""
        c = self.c
        self.pair_with(6, 64 * 1024)
        self.run_py("n1", "import os, sys\n"
                    "os.setxattr(os.path.join(sys.argv[1], 'tree', 'f002'), 'user.gone', b'x')\n"
                    "os.link(os.path.join(sys.argv[1], 'tree', 'f000'),"
                    " os.path.join(sys.argv[1], 'tree', 'old-link'))\n", self.shared())
        for rnd, script, mode in (
                ("xattrs only", "import os, sys\n"
                 "J = lambda n: os.path.join(sys.argv[1], 'tree', n)\n"
                 "os.setxattr(J('f000'), 'user.a', b'alpha')\n"
                 "os.setxattr(J('f000'), 'user.bin', bytes(range(256)) * 4)\n"
                 "os.removexattr(J('f002'), 'user.gone')\n"
                 "os.setxattr(os.path.join(sys.argv[1], 'tree'), 'user.dir', b'd')\n",
                 "mode=changed"),
                ("hard links", "import os, sys\n"
                 "J = lambda n: os.path.join(sys.argv[1], 'tree', n)\n"
                 "os.link(J('f004'), J('hl1'))\n"
                 "os.link(J('f004'), J('sub/hl2'))\n"
                 "os.unlink(J('old-link'))\n"
                 "os.setxattr(J('hl1'), 'user.shared', b'one inode')\n",
                 "mode=compare")):
            rc, out, err = c.ctl("n2", "stop")
            self.assertEqual(rc, 0, out + err)
            self.wait_states({"n2": ("STOP", "NotReady"), "n1": ("ALONE", "Ready")})
            self.run_py("n1", script, self.shared())
            off = self.log_len("n1")
            rc, out, err = c.ctl("n2", "start")
            self.assertEqual(rc, 0, out + err)
            self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
            self.assert_identical()
            self.assertIn(mode, self.log_from("n1", off), rnd)
        st = os.stat(os.path.join(self.real("n2"), "tree", "hl1"))
        self.assertEqual(st.st_nlink, 3)
        self.assertEqual(os.getxattr(os.path.join(self.real("n2"), "tree", "sub", "hl2"),
                                     "user.shared"), b"one inode")

    def test_verify_diff_and_full_resync(self):
        """verify finds a block damaged behind the secondary's back, changes nothing;
        diff says what a resync would send; resync --full repairs it."""
        c = self.c
        self.pair_with(6, 256 * 1024)
        rc, out, err = c.ctl("n1", "verify")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("0 differ", out)
        # damage n2's copy behind its back (the real directory, not through mirrord)
        victim = os.path.join(self.real("n2"), "tree", "sub", "f001")
        with open(victim, "r+b") as f:
            f.seek(70000)
            f.write(b"silent corruption")
        rc, out, err = c.ctl("n1", "verify")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("differs: tree/sub/f001 (1 blocks)", out)
        self.assertIn("1 differ", out)
        rc, out, err = c.ctl("n1", "verify", "--json")
        v = json.loads(out)
        self.assertEqual(v["differing_files"], 1)
        self.assertFalse(v["identical"])
        with open(victim, "rb") as f:  # verify changed nothing
            f.seek(70000)
            self.assertEqual(f.read(17), b"silent corruption")
        # the dirty set knows nothing of it: diff says a resync would send nothing
        rc, out, err = c.ctl("n1", "diff", "--json")
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(json.loads(out)["files"], 0)
        rc, out, err = c.ctl("n2", "verify")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("on the primary", err)
        # the admin asks for a full resync: every file compared, the block repaired
        log = self.full_resync()
        self.assertIn("mode=compare", log)
        line = self.resync_line(log)
        self.assertLessEqual(self.field(line, "sent_bytes"), 64 * 1024, line)
        rc, out, err = c.ctl("n1", "verify")
        self.assertEqual(rc, 0, out + err)
        # while n2 is away, diff counts what n1 changes
        self.stop_second()
        self.run_py("n1", "import os, sys\n"
                    "for n in ('f000', 'f002', 'f004'):\n"
                    "    with open(os.path.join(sys.argv[1], 'tree', n), 'r+b') as f:\n"
                    "        f.write(b'x' * 5000)\n", self.shared())
        rc, out, err = c.ctl("n1", "diff")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("changed since the peer's copy: 3 files, 0.0 MiB", out)
        self.assertIn("a resync now sends only these", out)
        self.assertEqual(self.st("n1")["changed"]["files"], 3)
        rc, out, err = c.ctl("n1", "status")
        self.assertIn("3 files here", out)

    # ---- the primary fails ------------------------------------------------------

    def test_primary_killed_with_unacknowledged_writes_converges(self):
        c = self.c
        self.pair_with(60, 256 * 1024)
        self.wait_checkpoint()  # the tree's creation is acknowledged
        flood = c.popen("n1", sys.executable, "-c", FLOOD, self.shared())
        time.sleep(1.0)
        gap = tf.crash_gap(c)  # SIGKILL of n1 with the flood's ops in flight
        ht.log("failover in %.3f s" % gap)
        flood.wait(10)
        self.run_py("n2", CHANGES, self.shared("n2"))
        c.link_up("n1")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "up"])
        off = self.log_len("n2")
        off1 = self.log_len("n1")
        c.start_daemon("n1")
        self.wait_states({"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")}, 120)
        self.assert_identical(prim="n2", sec="n1")
        log = self.log_from("n2", off)
        # the old primary may hold writes nobody acknowledged: not an exact copy, but
        # its pre-write log names the files they touched (the flood's five files and
        # the directory it creates files in), so only those and the survivor's own
        # changes are compared: exactly those files are re-checked
        self.assertIn("exact_copy=no", log)
        self.assertIn("peer_changes=listed", log)
        self.assertIn("mode=changed", log)
        self.assertRegex(self.log_from("n1", off1), r"plog: read back names=\d+ all=no")
        line = self.resync_line(log)
        ht.log(line)
        # 60 files in tree/: 7 changed by n2, 5 written by the flood, the rest skipped
        self.assertGreaterEqual(self.field(line, "unchanged_files"), 45, line)

    def test_alone_primary_killed_keeps_its_list_of_changes(self):
        c = self.c
        self.pair_with(60, 256 * 1024)
        self.wait_checkpoint()
        self.stop_second()
        self.run_py("n1", CHANGES, self.shared())
        c.kill_node("n1")  # ALONE, SIGKILLed: its dirty set was never saved
        c.link_up("n1")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "up"])
        off = self.log_len("n1")
        c.start_daemon("n1")
        rc, out, err = c.ctl("n2", "start")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 120)
        self.assert_identical()
        log = self.log_from("n1", off)
        self.assertRegex(log, r"plog: read back names=\d+ all=no")
        self.assertIn("mode=changed", log)
        line = self.resync_line(log)
        ht.log(line)
        # the names logged before each change, compared by checksums: the files of
        # tree/, whose entries changed; nothing of tree/sub/ (30 files) was read
        self.assertGreaterEqual(self.field(line, "unchanged_files"), 30, line)

    def test_full_resync_of_a_large_tree_while_writing(self):
        c = self.c
        c.start_daemon("n1")
        c.start_daemon("n2")
        self.wait_states({"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")})
        t = time.monotonic()
        self.run_py("n1", MAKE, self.real("n1"), "16", str(BIG_MIB * 1024 * 1024 // 16),
                    timeout=600)
        ht.log("%d MiB made in %.1f s" % (BIG_MIB, time.monotonic() - t))
        off = self.log_len("n1")
        rc, out, err = c.ctl("n1", "prim")
        self.assertEqual(rc, 0, out + err)
        w = c.popen("n1", sys.executable, "-c", WRITER, self.shared(), "600")
        self.addCleanup(lambda: w.poll() is None and w.kill())
        t = time.monotonic()
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 900)
        ht.log("full resync of %d MiB while writing: %.1f s" % (BIG_MIB, time.monotonic() - t))
        w.kill()
        w.wait(10)
        self.assert_identical()
        line = self.resync_line(self.log_from("n1", off))
        ht.log(line)
        self.assertGreaterEqual(self.field(line, "sent_bytes"), BIG_MIB * 1024 * 1024)


for _name in [n for n in dir(tf.Failover) if n.startswith("test_")]:
    setattr(ResyncCases, _name, None)

if __name__ == "__main__":
    ht.main()
