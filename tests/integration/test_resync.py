#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Resync (issue 6), on the two-network topology of test_failover.py: the primary
fails, the survivor (ALONE) keeps writing, the old primary returns and is brought
back in line while the application keeps writing; at the end both real trees are
identical (names, types, modes, owners, sizes, contents, times)."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamirror_test as ht  # noqa: E402
import test_failover as tf  # noqa: E402
import test_replication as tr  # noqa: E402

# Changes made on the survivor while the other node is away: new files, a big file, a
# rewrite, a truncate, a deleted file, a renamed directory, a symlink, a mode change.
ALONE_CHANGES = r"""
import os, sys
root = sys.argv[1]
J = lambda *p: os.path.join(root, *p)
os.makedirs(J("alone", "deep"), exist_ok=True)
for i in range(50):
    with open(J("alone", "deep", "f%03d" % i), "wb") as f:
        f.write(os.urandom(1000 + i * 37))
with open(J("big"), "wb") as f:
    f.write(os.urandom(3 * 1024 * 1024 + 17))
with open(J("before", "r0"), "r+b") as f:
    f.seek(100); f.write(b"REWRITTEN-ALONE")
os.truncate(J("before", "r1"), 10)
os.unlink(J("before", "r2"))
os.rename(J("before", "sub"), J("moved-sub"))
os.symlink("alone/deep/f001", J("link"))
os.chmod(J("before", "r3"), 0o600)
print("alone changes done")
"""

BEFORE = r"""
import os, sys
root = sys.argv[1]
J = lambda *p: os.path.join(root, *p)
os.makedirs(J("before", "sub", "x"), exist_ok=True)
for i in range(10):
    with open(J("before", "r%d" % i), "wb") as f:
        f.write(os.urandom(5000))
with open(J("before", "sub", "x", "leaf"), "w") as f:
    f.write("leaf")
print("before done")
"""

# A writer that keeps going during the resync (the application does not stop).
WRITER = r"""
import os, sys, time
root, secs = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + secs
i = 0
while time.monotonic() < end:
    p = os.path.join(root, "live-%d" % (i % 40))
    with open(p, "ab") as f:
        f.write(os.urandom(3000))
    if i % 7 == 0:
        with open(os.path.join(root, "big"), "r+b") as f:
            f.seek((i * 65536) % (3 * 1024 * 1024)); f.write(b"LIVE%08d" % i)
    i += 1
    time.sleep(0.002)
print("writer wrote", i)
"""


class Resync(tf.Failover):
    def test_old_primary_returns_and_is_resynced_while_writing(self):
        c = self.c
        self.start_pair()
        shared = c.node("n1").repl_dirs["data"][1]
        rc, out, err = c.run("n1", sys.executable, "-c", BEFORE, shared)
        self.assertEqual(rc, 0, out + err)
        # crash of the primary; n2 takes over and writes alone
        gap = tf.crash_gap(c)
        ht.log("failover in %.3f s" % gap)
        rc, out, err = c.run("n2", sys.executable, "-c", ALONE_CHANGES, shared)
        self.assertEqual(rc, 0, out + err)
        gen2 = self.st("n2")["generation"]["seq"]
        # n1 comes back: joins n2 as SECOND, is resynced while n2's application writes
        w = c.popen("n2", sys.executable, "-c", WRITER, shared, "6")
        c.link_up("n1")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "up"])
        t0 = time.monotonic()
        c.start_daemon("n1")
        self.wait_states({"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")}, 120)
        ht.log("resync: n1 back to SECOND (Ready) in %.2f s" % (time.monotonic() - t0))
        w.wait(60)
        self.assertEqual(w.returncode, 0)
        ht.wait_for(lambda: self.st("n1")["replication"]["received_seq"] ==
                    self.st("n2")["replication"]["last_seq"], 20, what="n1 caught up")
        diff = tr.settled_diff(c.node("n1").repl_dirs["data"][0],
                               c.node("n2").repl_dirs["data"][0])
        self.assertEqual(diff, [], "trees differ after the resync:\n" + "\n".join(diff[:40]))
        s1 = self.st("n1")
        self.assertTrue(s1["uptodate"])
        self.assertEqual(s1["generation"]["seq"], gen2)
        text = ht.read_text(c.node("n2").log_file)
        self.assertIn("resync: done", text)


# only the resync test in this file
for _name in [n for n in dir(tf.Failover) if n.startswith("test_")]:
    setattr(Resync, _name, None)



# The split-brain case needs two primaries, which the VIP probe and the witness
# prevent on purpose: this configuration has neither.
SPLIT_CONFIG = tf.CONFIG
SPLIT_CONFIG = SPLIT_CONFIG[:SPLIT_CONFIG.index("    <vip>")] + \
    SPLIT_CONFIG[SPLIT_CONFIG.index("    <rfs "):]
SPLIT_CONFIG = SPLIT_CONFIG.replace(
    '    <check>\n      <splitbrain ident="witness" exec="ping" arg="${witness}"/>\n'
    '    </check>\n', '')

WRITE = r"""
import os, sys
with open(os.path.join(sys.argv[1], sys.argv[2]), "w") as f:
    f.write(sys.argv[3])
"""


class SplitBrain(tf.Failover):
    userconfig = SPLIT_CONFIG

    def start_pair(self):
        c = self.c
        c.start_daemon("n1")
        c.start_daemon("n2")
        self.wait_states({"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")})
        rc, out, err = c.ctl("n1", "prim")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")})

    def write(self, n, name, text):
        rc, out, err = self.c.run(n, sys.executable, "-c", WRITE,
                                  self.c.node(n).repl_dirs["data"][1], name, text)
        self.assertEqual(rc, 0, out + err)

    def test_split_brain_is_detected_and_resolved_by_the_admin(self):
        c = self.c
        self.start_pair()
        self.write("n1", "common", "before the split")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "down"])
        self.wait_states({"n1": ("ALONE", "Ready"), "n2": ("ALONE", "Ready")})
        self.write("n1", "common", "n1 wrote this during the split")
        self.write("n1", "only-n1", "n1")
        self.write("n2", "common", "n2 wrote this during the split")
        self.write("n2", "only-n2", "n2")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "up"])
        # both see the other primary: reported, nothing overwritten
        self.wait_states({"n1": ("ALONE", "NotReady"), "n2": ("ALONE", "NotReady")})
        s1, s2 = self.st("n1"), self.st("n2")
        self.assertIn("SPLIT BRAIN", s1["message"])
        self.assertEqual(s1["generation"]["seq"], s2["generation"]["seq"])
        self.assertNotEqual(s1["generation"]["id"], s2["generation"]["id"])
        self.assertEqual(s1["peer_node"]["generation"]["id"], s2["generation"]["id"])
        time.sleep(2)  # a few heartbeats and link attempts: still nothing moves
        real = {n: c.node(n).repl_dirs["data"][0] for n in ("n1", "n2")}
        with open(os.path.join(real["n2"], "common")) as f:
            self.assertEqual(f.read(), "n2 wrote this during the split")
        self.assertTrue(os.path.exists(os.path.join(real["n2"], "only-n2")))
        # the admin keeps n1's data
        rc, out, err = c.ctl("n2", "second")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        diff = tr.compare_trees(real["n1"], real["n2"])
        self.assertEqual(diff, [], "\n".join(diff[:20]))
        with open(os.path.join(real["n2"], "common")) as f:
            self.assertEqual(f.read(), "n1 wrote this during the split")
        self.assertFalse(os.path.exists(os.path.join(real["n2"], "only-n2")))


class SplitBrainPolicy(SplitBrain):
    """<rfs splitbrain_policy="discard-least-changes">: the side that changed fewer
    files gives its changes up by itself; the counts show in status."""
    userconfig = SPLIT_CONFIG.replace(
        "<rfs ", '<rfs splitbrain_policy="discard-least-changes" ', 1)

    def test_the_side_with_fewer_changes_gives_up(self):
        c = self.c
        self.start_pair()
        self.write("n1", "common", "before the split")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "down"])
        self.wait_states({"n1": ("ALONE", "Ready"), "n2": ("ALONE", "Ready")})
        for i in range(3):
            self.write("n1", "n1-%d" % i, "n1 wrote this during the split")
        self.write("n2", "common", "n2 wrote this during the split")
        self.assertEqual(self.st("n1")["changed"]["files"], 3)
        self.assertEqual(self.st("n2")["changed"]["files"], 1)
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "up"])
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")}, 60)
        self.assertIn("splitbrain_policy=discard-least-changes",
                      ht.read_text(c.node("n2").log_file))
        real = {n: c.node(n).repl_dirs["data"][0] for n in ("n1", "n2")}
        diff = tr.compare_trees(real["n1"], real["n2"])
        self.assertEqual(diff, [], "\n".join(diff[:20]))
        with open(os.path.join(real["n2"], "common")) as f:
            self.assertEqual(f.read(), "before the split")


for _name in [n for n in dir(tf.Failover) if n.startswith("test_")]:
    setattr(SplitBrain, _name, None)
    setattr(SplitBrainPolicy, _name, None)
# the admin's way is tested without a policy
SplitBrainPolicy.test_split_brain_is_detected_and_resolved_by_the_admin = None

if __name__ == "__main__":
    ht.main()
