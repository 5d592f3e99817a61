#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The harness itself (no daemons): every host reaches the nodes over the bridge, only
198.18.0.0/15 is used, nothing can be routed elsewhere, and each node's mount namespace
shows its own directories at the shared configured paths."""

import ipaddress
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import hamirror_test as ht  # noqa: E402

BENCH_NET = ipaddress.ip_network("198.18.0.0/15")

UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999)); s.settimeout(10)
print("listening", flush=True)
d, a = s.recvfrom(100); s.sendto(d + b" from " + sys.argv[1].encode(), a)
"""

UDP_PING = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
for i in range(25):
    s.sendto(b"hi", (sys.argv[1], 9999))
    try:
        print(s.recvfrom(100)[0].decode()); break
    except socket.timeout:
        pass
"""


class Topology(ht.ClusterTestCase):
    cluster_kwargs = dict(binaries=False)

    def hosts(self):
        return self.c.node_names + self.c.extra_ns

    def test_every_host_reaches_every_node(self):
        c = self.c
        for dst in c.node_names:
            for src in self.hosts():
                if src == dst:
                    continue
                echo = subprocess.Popen(c.ns_argv(dst, [sys.executable, "-c", UDP_ECHO, ht.HOST_ADDR[dst]]),
                                        stdout=subprocess.PIPE, text=True)
                try:
                    self.assertEqual(echo.stdout.readline().strip(), "listening")
                    rc, out, err = c.run(src, sys.executable, "-c", UDP_PING, ht.HOST_ADDR[dst])
                    self.assertEqual(out.strip(), "hi from " + ht.HOST_ADDR[dst],
                                     "%s -> %s: %s%s" % (src, dst, out, err))
                finally:
                    echo.kill()
                    echo.wait()
                    echo.stdout.close()

    def test_only_benchmark_addresses_and_no_way_out(self):
        c = self.c
        for host in self.hosts() + ["br"]:
            ns = c.netns_of(host)
            links = json.loads(ht.run(["ip", "-n", ns, "-j", "addr", "show"]).stdout)
            for link in links:
                self.assertLessEqual(len(link["ifname"]), 15)
                for a in link.get("addr_info", []):
                    self.assertEqual(a["family"], "inet", "%s %s: IPv6 must be off: %r" % (ns, link["ifname"], a))
                    ip = ipaddress.ip_address(a["local"])
                    self.assertTrue(ip.is_loopback or ip in BENCH_NET, "%s: address %s" % (ns, ip))
            routes = json.loads(ht.run(["ip", "-n", ns, "-j", "route", "show"]).stdout)
            for r in routes:
                self.assertNotEqual(r["dst"], "default", "%s has a default route" % ns)
                self.assertTrue(ipaddress.ip_network(r["dst"]).subnet_of(BENCH_NET), "%s: route %r" % (ns, r))
            if host in c.node_names + c.extra_ns:
                eth0 = [l for l in links if l["ifname"] == "eth0"]
                self.assertEqual(len(eth0), 1, "%s: no eth0" % ns)
                self.assertIn("UP", eth0[0]["flags"])

    def test_each_node_sees_its_own_dirs_at_the_shared_path(self):
        c = self.c
        shared = os.path.join(c.shared, "data")
        for n in c.node_names:
            own, path = c.node(n).repl_dirs["data"]
            self.assertEqual(path, shared)
            with open(os.path.join(own, "whoami"), "w") as f:
                f.write(n)
        for n in c.node_names:
            rc, out, err = c.run(n, "cat", os.path.join(shared, "whoami"))
            self.assertEqual((rc, out), (0, n), err)
        self.assertFalse(os.path.exists(os.path.join(shared, "whoami")),
                         "the host must see the empty mount point, not a node's dir")

    def test_mounts_stay_private_to_their_node(self):
        c = self.c
        target = c.node("n1").state_dir
        rc, _, err = c.run("n1", "mount", "-t", "tmpfs", "-o", "size=1m", "hm-test", target)
        self.assertEqual(rc, 0, err)
        try:
            rc, out, _ = c.run("n1", "findmnt", "-n", "-o", "SOURCE", target)
            self.assertEqual(out.strip(), "hm-test")
            rc, out, _ = c.run("n2", "findmnt", "-n", "-o", "SOURCE", target)
            self.assertNotEqual(out.strip(), "hm-test", "n1's mount leaked into n2")
            self.assertNotIn(target, ht.mounts_under(c.tmp), "n1's mount leaked to the host")
        finally:
            c.run("n1", "umount", target)

    def test_kill_node_takes_its_link_down(self):
        c = self.c
        p = c.popen("n2", "sleep", "600")
        c.kill_node("n2")
        self.assertIsNotNone(p.poll(), "process survived kill_node")
        links = json.loads(ht.run(["ip", "-n", c.netns_of("n2"), "-j", "link", "show", "eth0"]).stdout)
        self.assertNotIn("UP", links[0]["flags"])
        c.link_up("n2")
        links = json.loads(ht.run(["ip", "-n", c.netns_of("n2"), "-j", "link", "show", "eth0"]).stdout)
        self.assertIn("UP", links[0]["flags"])


if __name__ == "__main__":
    ht.main(binaries=False)
