#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The split-brain witness check (daemon/witness.c) through tests/netfix_tool, without
mirrord: ICMP echo to the witness namespace wi (198.18.0.254) is reached from n1 and not
reached, within the timeout, once wi's link is down; the TCP form counts a listening and
a refusing port as reached and a dead witness as not reached; any one of several
witnesses is enough. Both the thread-pool form (witness_check) and the blocking form
(witness_probe, --sync) are exercised.

Only 198.18.0.0/15 is used; every wait is bounded; the harness tears everything down."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import hamirror_test as ht  # noqa: E402

WI = ht.HOST_ADDR["wi"]           # 198.18.0.254
NOBODY = ht.SUBNET + ".253"       # no host has it
TOOL = os.environ.get("MR_NETFIX_TOOL") or os.path.join(
    os.path.dirname(os.path.abspath(ht.BIN_DIR)), "tests", "netfix_tool")
LISTEN_PORT = 7000
CLOSED_PORT = 7001

TCP_LISTENER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
s.settimeout(60)
print("listening", flush=True)
while True:
    c, a = s.accept()
    print("accepted", a[0], flush=True)
    c.close()
"""


class Witness(ht.ClusterTestCase):
    cluster_kwargs = dict(binaries=False)

    @classmethod
    def setUpClass(cls):
        if not os.access(TOOL, os.X_OK):
            raise ht.HarnessError("netfix_tool not found at %s; build the project first" % TOOL)
        super().setUpClass()

    def witness(self, *args, timeout_ms=600, sync=False):
        """Run the check from n1; returns (rc, stdout line, elapsed seconds)."""
        argv = [TOOL, "witness"] + list(args) + ["--timeout-ms", str(timeout_ms)]
        if sync:
            argv.append("--sync")
        t0 = time.monotonic()
        rc, out, err = self.c.run("n1", *argv, timeout=30)
        elapsed = time.monotonic() - t0
        self.assertIn(rc, (0, 1), "netfix_tool witness failed: %s%s" % (out, err))
        return rc, out.strip(), elapsed

    def link_down(self, ns):
        """Take ns's eth0 down until the end of the test."""
        self.c.link_down(ns)
        self.addCleanup(self.link_up, ns)

    def link_up(self, ns):
        # Back to a clean state for the next test: carrier back on, and no FAILED
        # neighbour entry on n1 (its next ARP try would only come a second later).
        self.c.link_up(ns)
        ht.wait_for(lambda: "LOWER_UP" in json.loads(ht.run(
            ["ip", "-n", self.c.netns_of(ns), "-j", "link", "show", "eth0"]).stdout)[0]["flags"],
            5, what="%s eth0 carrier" % ns)
        ht.run(["ip", "-n", self.c.netns_of("n1"), "neigh", "flush", "dev", "eth0"])

    def wi_down(self):
        self.link_down("wi")

    def listener(self):
        path = os.path.join(self.c.tmp, "listener-%d.out" % time.monotonic_ns())
        out = open(path, "w")
        p = subprocess.Popen(self.c.ns_argv("wi", [sys.executable, "-c", TCP_LISTENER, WI,
                                                  str(LISTEN_PORT)]),
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        out.close()
        self.addCleanup(self._stop, p)
        ht.wait_for(lambda: "listening" in ht.read_text(path) or p.poll() is not None, 10,
                    what="listener on wi")
        self.assertIsNone(p.poll(), ht.read_text(path))
        return p, path

    @staticmethod
    def _stop(p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    # ---- ICMP ------------------------------------------------------------------------

    def test_icmp_reached(self):
        for sync in (False, True):
            rc, out, _ = self.witness(WI, sync=sync)
            self.assertEqual(rc, 0, out)
            self.assertRegex(out, r"^reached: 198\.18\.0\.254 answered in [0-9.]+ ms$")

    def test_icmp_any_witness_is_enough(self):
        rc, out, _ = self.witness(NOBODY, WI)
        self.assertEqual(rc, 0, out)
        self.assertIn("reached: %s answered" % WI, out)

    def test_icmp_not_reached_when_witness_down(self):
        self.wi_down()
        for sync in (False, True):
            rc, out, elapsed = self.witness(WI, timeout_ms=500, sync=sync)
            self.assertEqual(rc, 1, out)
            self.assertEqual(out, "not reached: no answer from %s within 500 ms" % WI)
            self.assertGreaterEqual(elapsed, 0.45)
            self.assertLess(elapsed, 5, "the check must end at its timeout")

    def test_icmp_not_reached_when_own_link_down(self):
        # n1's own eth0 down: no route at all; still a clean "not reached"
        self.link_down("n1")
        rc, out, elapsed = self.witness(WI, timeout_ms=300)
        self.assertEqual(rc, 1, out)
        self.assertTrue(out.startswith("not reached: no answer from %s within 300 ms" % WI), out)
        self.assertLess(elapsed, 5)

    # ---- TCP -------------------------------------------------------------------------

    def test_tcp_reached_when_listening(self):
        p, path = self.listener()
        rc, out, _ = self.witness("%s:%d" % (WI, LISTEN_PORT))
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"^reached: 198\.18\.0\.254:%d answered in [0-9.]+ ms$" % LISTEN_PORT)
        ht.wait_for(lambda: "accepted " + ht.HOST_ADDR["n1"] in ht.read_text(path), 5,
                    what="the listener to see n1's connection")

    def test_tcp_reached_when_refused(self):
        # nothing listens on CLOSED_PORT: the RST proves wi is up and reachable
        for sync in (False, True):
            rc, out, _ = self.witness("%s:%d" % (WI, CLOSED_PORT), sync=sync)
            self.assertEqual(rc, 0, out)
            self.assertIn("reached: %s:%d answered" % (WI, CLOSED_PORT), out)

    def test_tcp_not_reached_when_witness_down(self):
        self.listener()
        self.wi_down()
        for port in (LISTEN_PORT, CLOSED_PORT):
            rc, out, elapsed = self.witness("%s:%d" % (WI, port), timeout_ms=500)
            self.assertEqual(rc, 1, out)
            self.assertEqual(out, "not reached: no answer from %s:%d within 500 ms" % (WI, port))
            self.assertGreaterEqual(elapsed, 0.45)
            self.assertLess(elapsed, 5)

    def test_mixed_witnesses(self):
        # an ICMP witness nobody answers and a refusing TCP one: reached
        rc, out, _ = self.witness(NOBODY, "%s:%d" % (WI, CLOSED_PORT))
        self.assertEqual(rc, 0, out)
        self.wi_down()
        rc, out, _ = self.witness(NOBODY, "%s:%d" % (WI, CLOSED_PORT), timeout_ms=400)
        self.assertEqual(rc, 1, out)
        self.assertEqual(out, "not reached: no answer from %s, %s:%d within 400 ms"
                         % (NOBODY, WI, CLOSED_PORT))


if __name__ == "__main__":
    ht.main(binaries=False)
