#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Two mirrord daemons in two node namespaces: identity, config hash, module lock,
clean stop on SIGTERM, and what mirrorctl says once the daemon is gone."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import hamirror_test as ht  # noqa: E402


class TwoNodes(ht.ClusterTestCase):
    start_daemons = ("n1", "n2")

    def test_status_names_node_peer_and_same_config_hash(self):
        c = self.c
        st = {n: c.status(n) for n in ("n1", "n2")}
        for me, peer in (("n1", "n2"), ("n2", "n1")):
            s = st[me]
            self.assertEqual(s.get("module"), c.module, s)
            self.assertEqual(s.get("node"), me, s)
            self.assertEqual(s.get("peer"), peer, s)
            self.assertIn(ht.HOST_ADDR[peer], str(s.get("peer_addr")), s)
            # first start, no history on either node: both wait for `mirrorctl prim`
            self.assertEqual(s.get("state"), "WAIT", s)
            self.assertEqual(s.get("pid"), c.daemon_pid(me), s)
            for key in ("readiness", "uptodate", "message", "config", "config_hash", "version",
                        "uptime_ms", "log"):
                self.assertIn(key, s)
            self.assertRegex(str(s["config_hash"]), r"^[0-9a-f]{32}$")
        self.assertEqual(st["n1"]["config_hash"], st["n2"]["config_hash"])

    def test_state_exit_code_is_wait_on_first_start(self):
        for n in ("n1", "n2"):
            ht.wait_for(lambda: self.c.status(n)["readiness"] == "NotReady", 10,
                        what="%s: WAIT (NotReady) on first start" % n)
            rc, out, err = self.c.ctl(n, "state")
            self.assertEqual(rc, ht.STATE_RC["WAIT"], "%s: mirrorctl state: %s%s" % (n, out, err))

    def test_status_still_answers_when_node_ini_broke_after_start(self):
        """A node.ini that gained an unrelated error after mirrord started (here: the
        heartbeat key file became world-readable) still lets mirrorctl reach the daemon,
        with a warning naming the problem."""
        c = self.c
        key = c.hb_key
        mode = os.stat(key).st_mode & 0o777
        os.chmod(key, 0o644)
        try:
            rc, out, err = c.ctl("n1", "status")
        finally:
            os.chmod(key, mode)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("node n1", out)
        self.assertIn("readable by group or others", err)
        self.assertIn("warning:", err)

    def test_second_daemon_for_same_module_is_refused_by_lock(self):
        pid = self.ensure_daemon("n1")
        rc, out, err = self.c.run_mirrord("n1", timeout=10)
        self.assertEqual(rc, 1, "second mirrord: exit %s\nstdout: %s\nstderr: %s" % (rc, out, err))
        self.assertRegex(err, r"(?i)lock|already running")
        self.assertIn(self.c.node("n1").lock, err)
        self.assertIn(str(pid), err, "the message should name the pid holding the lock")
        # the first daemon is unaffected
        self.assertEqual(self.c.daemon_pid("n1"), pid)
        self.assertEqual(self.c.status("n1")["pid"], pid)

    def test_sigterm_stops_cleanly_then_ctl_says_unreachable(self):
        c = self.c
        self.ensure_daemon("n2")
        sock = c.node("n2").sock
        self.assertTrue(os.path.exists(sock))
        rc = c.stop_daemon("n2", timeout_s=10)
        self.assertEqual(rc, 0, "mirrord exit code after SIGTERM")
        self.assertFalse(os.path.exists(sock), "control socket %s left behind" % sock)
        rc, out, err = c.ctl("n2", "status")
        self.assertEqual(rc, 3, "mirrorctl status with no daemon: %s%s" % (out, err))
        self.assertIn(sock, err + out, "the message should name the socket")
        rc, out, err = c.ctl("n2", "state")
        self.assertEqual(rc, ht.STATE_RC_UNREACHABLE, "mirrorctl state with no daemon: %s%s" % (out, err))
        # and it can be started again (the lock file left behind does not block it)
        c.start_daemon("n2")
        self.assertEqual(c.status("n2")["state"], "WAIT")

    def test_sigint_stops_cleanly(self):
        c = self.c
        p = self.ensure_daemon("n1")
        sock = c.node("n1").sock
        os.kill(p, signal.SIGINT)
        proc = c.node("n1").daemon
        proc.wait(10)
        c.node("n1").daemon = None
        self.assertEqual(proc.returncode, 0, "mirrord exit code after SIGINT")
        self.assertFalse(os.path.exists(sock), "control socket %s left behind" % sock)
        c.start_daemon("n1")

    def test_restart_after_node_crash(self):
        c = self.c
        self.ensure_daemon("n1")
        n2_pid = self.ensure_daemon("n2")
        c.kill_node("n1")                      # SIGKILL + eth0 down: stale socket, lock freed
        self.assertIsNone(c.daemon_pid("n1"))
        rc, out, err = c.ctl("n1", "status")
        self.assertEqual(rc, 3, "mirrorctl status after the crash: %s%s" % (out, err))
        self.assertEqual(c.status("n2")["pid"], n2_pid, "n2 must not notice n1's crash yet")
        c.link_up("n1")
        c.start_daemon("n1")                   # must cope with the stale socket file
        st = c.status("n1")
        self.assertEqual((st["node"], st["state"]), ("n1", "WAIT"))

    def test_sighup_reopens_log(self):
        c = self.c
        pid = self.ensure_daemon("n1")
        node = c.node("n1")
        rotated = node.log_file + ".1"
        os.rename(node.log_file, rotated)
        os.kill(pid, signal.SIGHUP)
        # the daemon still answers, and writes to a new file at the configured path
        ht.wait_for(lambda: c.status("n1") and os.path.exists(node.log_file), 5,
                    what="log file re-created after SIGHUP")
        self.assertEqual(c.daemon_pid("n1"), pid)
        self.assertTrue(re.search(r"mirrord: ready", ht.read_text(rotated)))


if __name__ == "__main__":
    ht.main()
