#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The VIP modules (daemon/vip.c, nl.c, garp.c) through tests/netfix_tool, without
mirrord: take / release are idempotent and really change eth0, the gratuitous ARPs reach
a client (AF_PACKET capture in cl) and move its neighbour entry, a VIP that another node
answers for is refused (ARP probe) and not added, and vip_check() notices a downed
interface and an address deleted behind its back.

Only 198.18.0.0/15 is used (VIP 198.18.0.100/24); every wait is bounded; the harness
deletes the namespaces (and so every address) at the end."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import hamirror_test as ht  # noqa: E402

VIP = ht.VIP_ADDR                     # 198.18.0.100
VIP_CIDR = VIP + "/%d" % ht.PREFIXLEN
TOOL = os.environ.get("MR_NETFIX_TOOL") or os.path.join(
    os.path.dirname(os.path.abspath(ht.BIN_DIR)), "tests", "netfix_tool")

# ARP capture for the client namespace: prints "ready", then one JSON object per ARP
# frame seen on eth0 until the duration expires or the count is reached.
ARP_CAPTURE = r"""
import json, socket, sys, time
dur, want_vip = float(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("eth0", 0x0806))
s.settimeout(0.1)
print("ready", flush=True)
t0 = time.monotonic()
while time.monotonic() - t0 < dur:
    try:
        f = s.recv(2048)
    except socket.timeout:
        continue
    if len(f) < 42:
        continue
    a = f[14:42]
    print(json.dumps({
        "t": round(time.monotonic() - t0, 3),
        "eth_dst": f[0:6].hex(":"), "eth_src": f[6:12].hex(":"),
        "op": int.from_bytes(a[6:8], "big"),
        "sha": a[8:14].hex(":"), "spa": socket.inet_ntoa(a[14:18]),
        "tha": a[18:24].hex(":"), "tpa": socket.inet_ntoa(a[24:28]),
    }), flush=True)
"""


class Vip(ht.ClusterTestCase):
    cluster_kwargs = dict(binaries=False)

    @classmethod
    def setUpClass(cls):
        if not os.access(TOOL, os.X_OK):
            raise ht.HarnessError("netfix_tool not found at %s; build the project first" % TOOL)
        super().setUpClass()

    # ---- helpers -----------------------------------------------------------------

    def tool(self, ns, *args, timeout=20):
        """Run netfix_tool in ns; returns (rc, stdout, stderr)."""
        return self.c.run(ns, TOOL, *args, timeout=timeout)

    def addrs(self, ns):
        """eth0's IPv4 addresses in ns as "a.b.c.d/len" strings."""
        links = json.loads(ht.run(["ip", "-n", self.c.netns_of(ns), "-j", "addr", "show",
                                   "dev", "eth0"]).stdout)
        return ["%s/%d" % (a["local"], a["prefixlen"])
                for a in links[0].get("addr_info", []) if a["family"] == "inet"]

    def mac(self, ns):
        links = json.loads(ht.run(["ip", "-n", self.c.netns_of(ns), "-j", "link", "show",
                                   "eth0"]).stdout)
        return links[0]["address"]

    def flags(self, ns):
        links = json.loads(ht.run(["ip", "-n", self.c.netns_of(ns), "-j", "link", "show",
                                   "eth0"]).stdout)
        return links[0]["flags"]

    def link_up(self, ns):
        self.c.link_up(ns)
        ht.wait_for(lambda: "LOWER_UP" in self.flags(ns), 5, what="%s eth0 carrier" % ns)

    def take(self, ns, *extra):
        rc, out, err = self.tool(ns, "take", VIP_CIDR, *extra)
        self.assertEqual((rc, out.strip().splitlines()[-1:]), (0, ["taken"]),
                         "take on %s: %s%s" % (ns, out, err))
        return out, err

    def release(self, ns):
        rc, out, err = self.tool(ns, "release", VIP_CIDR)
        self.assertEqual((rc, out.strip()), (0, "released"), "release on %s: %s%s" % (ns, out, err))
        return err

    def setUp(self):
        # every test starts with both links up and the VIP nowhere
        for ns in ("n1", "n2"):
            if not all(f in self.flags(ns) for f in ("UP", "LOWER_UP")):
                self.link_up(ns)
            self.release(ns)
            self.assertNotIn(VIP_CIDR, self.addrs(ns))

    def bg(self, ns, argv, out_path):
        """Start argv in ns in the background, stdout to out_path; stopped by tearDown."""
        out = open(out_path, "w")
        p = subprocess.Popen(self.c.ns_argv(ns, argv), stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.addCleanup(self._stop, p)
        return p

    @staticmethod
    def _stop(p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def wait_exit(self, p, timeout_s, what):
        try:
            return p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise ht.HarnessError("%s still running after %ss" % (what, timeout_s))

    def out_path(self, name):
        return os.path.join(self.c.tmp, "%s-%s.out" % (self.id().rsplit(".", 1)[-1], name))

    # ---- tests ---------------------------------------------------------------------

    def test_take_and_release_are_idempotent(self):
        # no interface named: chosen by subnet (eth0 holds 198.18.0.1/24)
        out, err = self.take("n1", "--no-wait")
        self.assertIn("vip: added addr=%s dev=eth0" % VIP_CIDR, err)
        self.assertIn(VIP_CIDR, self.addrs("n1"))
        self.assertIn("198.18.0.1/24", self.addrs("n1"), "the node's own address must stay")
        self.assertNotIn(VIP_CIDR, self.addrs("n2"))

        # the same VIP again, interface named: "already there" is success
        out, err = self.take("n1", "eth0", "--no-wait")
        self.assertIn("already=yes", err)
        self.assertEqual(self.addrs("n1").count(VIP_CIDR), 1)

        # a secondary address of the existing /24: no second prefix route
        rt = ht.run(["ip", "-n", self.c.netns_of("n1"), "-4", "route", "show",
                     "198.18.0.0/24"]).stdout.strip().splitlines()
        self.assertEqual(len(rt), 1, rt)
        show = ht.run(["ip", "-n", self.c.netns_of("n1"), "addr", "show", "eth0"]).stdout
        self.assertRegex(show, r"inet %s .*secondary" % VIP_CIDR.replace(".", r"\."))

        err = self.release("n1")
        self.assertIn("vip: removed addr=%s dev=eth0" % VIP_CIDR, err)
        self.assertNotIn("already_gone", err)
        self.assertNotIn(VIP_CIDR, self.addrs("n1"))
        err = self.release("n1")
        self.assertIn("already_gone=yes", err)
        self.assertIn("198.18.0.1/24", self.addrs("n1"))

    def test_unknown_interface_and_no_subnet(self):
        rc, out, _ = self.tool("n1", "take", VIP_CIDR, "nosuch0", "--no-wait")
        self.assertEqual(rc, 3, out)
        self.assertIn("no interface nosuch0", out)
        # 198.19.5.5/24: no interface of n1 holds that subnet
        rc, out, _ = self.tool("n1", "take", "198.19.5.5/24", "--no-wait")
        self.assertEqual(rc, 3, out)
        self.assertIn("no interface holds an address of its subnet", out)
        self.assertNotIn("198.19.5.5/24", self.addrs("n1"))

    def test_announcements_reach_the_client(self):
        n1_mac = self.mac("n1")
        # the client believes the VIP is at n2 (as after a failover from n2)
        ht.run(["ip", "-n", self.c.netns_of("cl"), "neigh", "replace", VIP, "lladdr",
                self.mac("n2"), "dev", "eth0", "nud", "stale"])

        cap_path = self.out_path("capture")
        cap = self.bg("cl", [sys.executable, "-c", ARP_CAPTURE, "30", VIP], cap_path)
        ht.wait_for(lambda: "ready" in ht.read_text(cap_path), 10, what="capture ready")

        def read_frames():
            return [json.loads(l) for l in ht.read_text(cap_path).splitlines() if l.startswith("{")]

        def read_garps():
            return [f for f in read_frames() if f["op"] == 1 and f["spa"] == VIP and f["tpa"] == VIP
                    and f["sha"] == n1_mac]

        t0 = time.monotonic()
        self.take("n1")      # returns after the last announcement
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, 4.5, "take returned before the late announcement")
        self.assertLess(elapsed, 15)
        ht.wait_for(lambda: len(read_garps()) >= 6, 5, what="6 gratuitous ARPs in %s" % cap_path)
        self._stop(cap)

        garps = read_garps()
        frames = read_frames()
        self.assertGreaterEqual(len(garps), 5, "gratuitous ARPs seen by cl: %r" % frames)
        for f in garps:
            self.assertEqual(f["eth_dst"], "ff:ff:ff:ff:ff:ff")
            self.assertEqual(f["eth_src"], n1_mac)
        # the burst is ~200 ms apart, then one more ~5 s later
        ts = [f["t"] for f in garps]
        self.assertLess(ts[4] - ts[0], 1.5, ts)
        self.assertEqual(len(garps), 6, ts)
        self.assertGreater(ts[5] - ts[0], 4.0, ts)
        # the probe before the add: sender 0.0.0.0, target the VIP
        probes = [f for f in frames if f["op"] == 1 and f["spa"] == "0.0.0.0" and f["tpa"] == VIP]
        self.assertEqual(len(probes), 3, frames)
        self.assertLess(max(f["t"] for f in probes), ts[0])

        def neigh():
            n = json.loads(ht.run(["ip", "-n", self.c.netns_of("cl"), "-j", "neigh", "show",
                                   VIP, "dev", "eth0"]).stdout)
            return n[0].get("lladdr") if n else None
        ht.wait_for(lambda: neigh() == n1_mac, 5,
                    what="cl's neighbour entry for %s to point at n1 (%s)" % (VIP, n1_mac))
        self.release("n1")

    def test_take_refused_while_another_node_answers(self):
        n1_mac = self.mac("n1")
        self.take("n1", "--no-wait")

        rc, out, _ = self.tool("n2", "probe", VIP, "eth0")
        self.assertEqual((rc, out.strip()), (1, n1_mac))

        rc, out, err = self.tool("n2", "take", VIP_CIDR, "--no-wait")
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(out.strip(), "refused: %s is answered by MAC %s on eth0" % (VIP, n1_mac))
        self.assertIn('vip: not taking addr=%s dev=eth0 reason="answered by MAC %s"' % (VIP, n1_mac),
                      err)
        self.assertNotIn(VIP_CIDR, self.addrs("n2"))
        self.assertIn(VIP_CIDR, self.addrs("n1"))

        # once n1 let go, n2 may take it
        self.release("n1")
        rc, out, _ = self.tool("n2", "probe", VIP, "eth0")
        self.assertEqual((rc, out.strip()), (0, "free"))
        self.take("n2", "--no-wait")
        self.assertIn(VIP_CIDR, self.addrs("n2"))
        self.release("n2")

    def test_check_one_shot(self):
        rc, out, _ = self.tool("n1", "check", VIP_CIDR)
        self.assertEqual(rc, 0, out)
        self.assertIn("check: rc=0 (ok)", out)
        status = json.loads(out.split("status: ", 1)[1])
        self.assertEqual(status["vip"]["held"], False)
        self.assertEqual(status["vip"]["addrs"], [{"addr": VIP, "prefixlen": 24,
                                                   "interface": "eth0", "present": False}])
        self.c.link_down("n1")
        try:
            rc, out, _ = self.tool("n1", "check", VIP_CIDR)
            self.assertEqual(rc, 1, out)
            self.assertIn("check: rc=-100 (ENETDOWN) why=dev=eth0 is down", out)
        finally:
            self.link_up("n1")

    def test_check_sees_link_down_and_deleted_address(self):
        path = self.out_path("watch")
        p = self.bg("n1", [TOOL, "take", VIP_CIDR, "--no-wait", "--watch-ms", "30000"], path)

        def seen(s, after=0):
            return lambda: s in ht.read_text(path)[after:]

        ht.wait_for(seen("check: rc=0 (ok)"), 10, what="take + first check: %s" % path)
        self.assertIn("taken", ht.read_text(path))
        self.assertIn(VIP_CIDR, self.addrs("n1"))

        mark = len(ht.read_text(path))
        self.c.link_down("n1")
        ht.wait_for(seen("check: rc=-100 (ENETDOWN) why=dev=eth0 is down", mark), 5,
                    what="ENETDOWN after eth0 down")
        mark = len(ht.read_text(path))
        self.link_up("n1")
        ht.wait_for(seen("check: rc=0 (ok)", mark), 5, what="ok after eth0 up")

        mark = len(ht.read_text(path))
        ht.run(["ip", "-n", self.c.netns_of("n1"), "addr", "del", VIP_CIDR, "dev", "eth0"])
        ht.wait_for(seen("check: rc=-99 (EADDRNOTAVAIL) why=addr=%s is no longer on dev=eth0" % VIP,
                         mark), 5, what="EADDRNOTAVAIL after the address was deleted")
        self._stop(p)
        text = ht.read_text(path)
        self.assertIsNone(ht.Cluster.SANITIZER_RE.search(text), text)


if __name__ == "__main__":
    ht.main(binaries=False)
