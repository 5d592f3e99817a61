#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The cluster state machine end to end (issue 5), on two networks:

    production  198.18.0.0/24 on a bridge: n1, n2, the client cl, the witness wi, the VIP
    xlink       198.19.0.0/24, a veth pair straight between n1 and n2: heartbeats and
                replication (ident="flow")

start_prim starts a small TCP service on port 7000 answering with the node's name;
stop_prim stops it. The client reaches it only through the VIP.
"""
import hashlib
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import hamirror_test as ht  # noqa: E402

XL = {"n1": "198.19.0.1", "n2": "198.19.0.2"}
PORT = 7000

def _config():
    """The harness's userconfig.xml with heartbeats (and replication, ident="flow") on
    the direct xlink, and a <user> section for the test service's scripts."""
    t = ht.USERCONFIG_TEMPLATE
    hb = t[t.index("      <heartbeat "):t.index("    </heart>")]
    t = t.replace(hb, """      <heartbeat name="xlink" ident="flow">
        <server name="${n1}" addr="198.19.0.1"/>
        <server name="${n2}" addr="198.19.0.2"/>
      </heartbeat>
""")
    user = t[t.index("    <user "):t.index("    <check>")]
    t = t.replace(user, """    <user nicestoptimeout="10s" forcestoptimeout="5s" starttimeout="10s">
      <var name="SVC_DIR" value="${tmp}/svc"/>
    </user>
""")
    return t


CONFIG = _config()

SERVICE = r"""
import os, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d)); s.listen(16)
name = os.environ["HAMIRROR_NODE"].encode()
while True:
    c, _ = s.accept()
    try:
        c.sendall(name + b"\n")
    finally:
        c.close()
""" % PORT

START_PRIM = """#!/bin/sh
# test service: answers with the node name on port %d
pidfile="$SVC_DIR/$HAMIRROR_NODE.pid"
echo "start_prim $*"
echo "$*" >> "$SVC_DIR/$HAMIRROR_NODE.start_prim"
if [ -e "$SVC_DIR/fail-$HAMIRROR_NODE" ]; then
	echo "start_prim: failing on purpose"
	exit 3
fi
setsid %s -c '%s' </dev/null >/dev/null 2>&1 &
echo $! > "$pidfile"
""" % (PORT, sys.executable, SERVICE.replace("'", "'\"'\"'"))

STOP_PRIM = """#!/bin/sh
[ "$1" = force ] && { sig=KILL; shift; } || sig=TERM
pidfile="$SVC_DIR/$HAMIRROR_NODE.pid"
echo "stop_prim $* SIG$sig"
[ -s "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
alive() {  # running, and not a zombie waiting for a reaper
	kill -0 "$1" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]
}
kill -s $sig "$pid" 2>/dev/null
for i in $(seq 100); do alive "$pid" || break; sleep 0.05; done
alive "$pid" && exit 1
rm -f "$pidfile"
"""

PRESTART = """#!/bin/sh
exec "$(dirname "$0")/stop_prim" force "$@"
"""

# A client in its own namespace: connects to argv[1]:argv[2] every 5 ms (50 ms connect
# timeout) until the service answers argv[3], then prints CLOCK_MONOTONIC (system-wide,
# so comparable with the caller's time.monotonic()). Used by the demo and the bench.
PROBER = r"""
import socket, sys, time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=0.05)
        s.settimeout(0.5)
        if s.recv(64).strip() == sys.argv[3].encode():
            print("%.6f" % time.monotonic(), flush=True)
            sys.exit(0)
        s.close()
    except OSError:
        pass
    time.sleep(0.005)
sys.exit(1)
"""


def crash_gap(c):
    """Hard crash of n1 (every process SIGKILLed, both links down); returns the seconds
    until the client is served by n2 through the VIP."""
    import subprocess
    prober = subprocess.Popen(c.ns_argv("cl", [sys.executable, "-c", PROBER, ht.VIP_ADDR,
                                               str(PORT), "n2"]),
                              stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)  # the prober is connected to n1 by now (answers "n1")
        t0 = time.monotonic()
        c.kill_node("n1")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "down"])
        out, _ = prober.communicate(timeout=70)
    finally:
        if prober.poll() is None:
            prober.kill()
            prober.wait()
    if prober.returncode != 0:
        raise ht.HarnessError("the client was never served by n2 through the VIP")
    return float(out.strip()) - t0


WRITER = r"""
import os, sys
root, log = sys.argv[1], sys.argv[2]
with open(log, "a") as lf:
    for i in range(1000000):
        name = "w%06d" % i
        data = (name * 50).encode()
        try:
            fd = os.open(os.path.join(root, name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
        except OSError as e:
            print("stopped: %s" % e, flush=True)
            break
        lf.write(name + "\n"); lf.flush()
"""


def setup(c):
    """On an open Cluster(userconfig=CONFIG): the xlink, the scripts and the service
    dir (returned). scripts/bench/failover_bench.py uses it too."""
    svc = os.path.join(c.tmp, "svc")
    os.mkdir(svc, 0o755)
    sd = os.path.join(os.path.dirname(c.userconfig), "scripts")
    os.makedirs(sd, 0o755, exist_ok=True)
    for name, text in (("start_prim", START_PRIM), ("stop_prim", STOP_PRIM),
                       ("prestart", PRESTART)):
        p = os.path.join(sd, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o755)
    n1, n2 = c.netns_of("n1"), c.netns_of("n2")
    ht.run(["ip", "-n", n1, "link", "add", "xl", "type", "veth", "peer", "name", "xl",
            "netns", n2])
    for n, ns in (("n1", n1), ("n2", n2)):
        ht.run(["ip", "-n", ns, "addr", "add", XL[n] + "/24", "dev", "xl"])
        ht.run(["ip", "-n", ns, "link", "set", "xl", "up"])
    return svc


class Failover(unittest.TestCase):
    cluster_config = {}

    userconfig = CONFIG

    def setUp(self):
        ht.require_root()
        self.open_cluster(self.userconfig)

    def open_cluster(self, userconfig):
        """A fresh cluster on userconfig (closing the test's current one, if any)."""
        if getattr(self, "c", None) is not None:
            self.c.close()
        self.c = ht.Cluster(userconfig=userconfig, **self.cluster_config)
        self.c.open()
        self.addCleanup(self.c.close)
        self.svc = setup(self.c)

    # ---- helpers -----------------------------------------------------------------

    def st(self, n):
        return self.c.status(n)

    def wait_states(self, want, timeout_s=30):
        try:
            self._wait_states(want, timeout_s)
        except ht.HarnessError as e:
            self.c.dump_logs("waiting for states: %s" % e)
            raise

    def _wait_states(self, want, timeout_s):
        def ok():
            return all((self.st(n)["state"], self.st(n)["readiness"]) == s
                       for n, s in want.items())
        ht.wait_for(ok, timeout_s, interval_s=0.1, what="states %s (now %s)" % (
            want, {n: (self.st(n)["state"], self.st(n)["readiness"], self.st(n)["message"])
                   for n in want}))

    def has_vip(self, n):
        rc, out, _ = self.c.run(n, "ip", "-o", "addr", "show", "dev", "eth0")
        return (ht.VIP_ADDR + "/") in out

    def ask(self, timeout_s=0.3):
        """The service's answer through the VIP, from the client, or None."""
        rc, out, _ = self.c.run("cl", sys.executable, "-c",
                                "import socket,sys\n"
                                "try:\n"
                                " s=socket.create_connection(('%s',%d),timeout=%s)\n"
                                " print(s.recv(64).decode().strip())\n"
                                "except OSError as e:\n"
                                " print('ERR', e)\n" % (ht.VIP_ADDR, PORT, timeout_s))
        out = out.strip()
        return None if out.startswith("ERR") or not out else out

    def start_pair(self):
        c = self.c
        c.start_daemon("n1")
        c.start_daemon("n2")
        # first start: nobody has history, both wait for the admin
        self.wait_states({"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")})
        self.assertIn("mirrorctl prim", self.st("n1")["message"])
        self.assertFalse(self.has_vip("n1") or self.has_vip("n2"))
        rc, out, err = c.ctl("n1", "prim")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")})
        self.assertTrue(self.has_vip("n1"))
        self.assertFalse(self.has_vip("n2"))
        ht.wait_for(lambda: self.ask() == "n1", 10, what="the client reaches n1 via the VIP")

    # ---- tests -------------------------------------------------------------------

    def test_start_then_hard_crash_of_the_primary(self):
        c = self.c
        self.start_pair()
        s = self.st("n1")
        self.assertEqual(s["peer_node"]["state"], "SECOND")
        self.assertEqual(s["vip"]["owner"], "n1")
        self.assertTrue(s["heartbeat"]["networks"][0]["up"])
        # hard crash: every process of n1 killed, its links down
        try:
            gap = crash_gap(c)
        except ht.HarnessError:
            sys.stderr.write("---- n2 log\n%s\n%s\n" % (
                ht.read_text(c.node("n2").log_file)[-6000:], self.st("n2")))
            raise
        ht.log("failover: kill -> first answer through the VIP in %.3f s" % gap)
        print("FAILOVER_GAP_S %.3f" % gap, flush=True)
        s = self.st("n2")
        self.assertEqual((s["state"], s["readiness"]), ("ALONE", "Ready"), s)
        self.assertTrue(self.has_vip("n2"))
        self.assertTrue(s["witness"]["reached"], s["witness"])
        self.assertTrue(os.path.exists(os.path.join(self.svc, "n2.start_prim")))

    def test_xlink_cut_with_both_alive_no_second_primary(self):
        c = self.c
        self.start_pair()
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "down"])
        # n2 loses every heartbeat, reaches the witness, probes the VIP: n1 answers
        ht.wait_for(lambda: self.st("n2")["state"] == "WAIT" and
                    self.st("n2")["readiness"] == "NotReady", 20, what="n2 WAIT (NotReady)")
        self.assertIn("another host answers", self.st("n2")["message"])
        self.assertFalse(self.has_vip("n2"))
        self.wait_states({"n1": ("ALONE", "Ready")})
        self.assertTrue(self.has_vip("n1"))
        self.assertEqual(self.ask(), "n1")
        # heal: n2 rejoins (n1 wrote nothing alone: no resync needed)
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "up"])
        self.wait_states({"n1": ("PRIM", "Ready"), "n2": ("SECOND", "Ready")})
        # now the production network of the primary is cut: it hands over
        c.link_down("n1")
        self.wait_states({"n2": ("ALONE", "Ready")})
        self.assertTrue(self.has_vip("n2"))
        self.assertFalse(self.has_vip("n1"))
        self.assertEqual(self.st("n1")["state"], "WAIT")
        ht.wait_for(lambda: self.ask() == "n2", 10, what="the client reaches n2")

    def test_swap_and_stop_lose_no_acknowledged_write(self):
        c = self.c
        self.start_pair()
        shared = c.node("n1").repl_dirs["data"][1]
        log = os.path.join(c.tmp, "writes.log")
        w = c.popen("n1", sys.executable, "-c", WRITER, shared, log)
        ht.wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 200, 20,
                    what="writer running")
        rc, out, err = c.ctl("n1", "swap")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")}, 60)
        w.wait(30)
        self.assertTrue(self.has_vip("n2"))
        self.assertFalse(self.has_vip("n1"))
        ht.wait_for(lambda: self.ask() == "n2", 10, what="the service moved to n2")
        with open(log) as f:
            names = [ln.strip() for ln in f if ln.strip()]
        self.assertGreater(len(names), 0)
        for n in ("n1", "n2"):
            real = c.node(n).repl_dirs["data"][0]
            for name in names:
                try:
                    with open(os.path.join(real, name), "rb") as f:
                        got = f.read()
                except FileNotFoundError:
                    got = None  # lost entirely: the logs below say why
                if got != (name * 50).encode():
                    c.dump_logs("acknowledged write %s lost on %s" % (name, n))
                self.assertEqual(got, (name * 50).encode(),
                                 "%s: acknowledged write %s lost" % (n, name))
        ht.log("swap: %d acknowledged writes on both nodes" % len(names))
        # stop of the new primary: planned failover back to n1
        w2 = c.popen("n2", sys.executable, "-c", WRITER, shared, log + "2")
        ht.wait_for(lambda: os.path.exists(log + "2") and os.path.getsize(log + "2") > 200,
                    20, what="second writer running")
        rc, out, err = c.ctl("n2", "stop")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n2": ("STOP", "NotReady"), "n1": ("ALONE", "Ready")}, 60)
        w2.wait(30)
        self.assertTrue(self.has_vip("n1"))
        ht.wait_for(lambda: self.ask() == "n1", 10, what="the service moved back to n1")
        with open(log + "2") as f:
            names = [ln.strip() for ln in f if ln.strip()]
        real = c.node("n1").repl_dirs["data"][0]
        for name in names:
            with open(os.path.join(real, name), "rb") as f:
                self.assertEqual(f.read(), (name * 50).encode(), "acknowledged %s lost" % name)

    def test_forged_and_replayed_heartbeats_are_ignored(self):
        c = self.c
        self.start_pair()
        h = bytes.fromhex(self.st("n2")["config_hash"])
        key = open(c.hb_key, "rb").read()
        bad = ht.hb_datagram(b"x" * 32, 0, 0, c.module, int(time.time() * 1e6), 1,
                             state="STOP", readiness="NotReady", config_hash=h)
        old = ht.hb_datagram(key, 0, 0, c.module, 1000, 1, state="STOP",
                             readiness="NotReady", config_hash=h)
        code = ("import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                "s.bind(('%s',0))\nfor d in (bytes.fromhex('%s'),bytes.fromhex('%s')):\n"
                " s.sendto(d,('%s',9200))\n" % (XL["n1"], bad.hex(), old.hex(), XL["n2"]))
        rc, out, err = c.run("n1", sys.executable, "-c", code)
        self.assertEqual(rc, 0, err)

        def counted():
            net = self.st("n2")["heartbeat"]["networks"][0]
            return net["dropped_bad_mac"] >= 1 and net["dropped_replay"] >= 1
        ht.wait_for(counted, 10, what="forged and replayed heartbeats counted")
        text = ht.read_text(c.node("n2").log_file)
        self.assertRegex(text, r"hb: dropped heartbeat .*reason=bad-mac")
        self.assertRegex(text, r"hb: dropped heartbeat .*reason=(old-epoch|replay)")
        # and nothing moved
        self.assertEqual(self.st("n2")["state"], "SECOND")
        self.assertEqual(self.st("n1")["state"], "PRIM")

    def test_vip_vanishing_on_the_primary_is_a_stopstart(self):
        """The ip checker: the VIP deleted behind the primary's back -> stopstart: it
        hands over to the SECOND, then starts again and rejoins as SECOND."""
        c = self.c
        self.start_pair()
        c.run("n1", "ip", "addr", "del", ht.VIP_ADDR + "/32", "dev", "eth0")
        # n2 takes over (ALONE, PRIM as soon as n1 rejoins as SECOND)
        self.wait_states({"n2": ("PRIM", "Ready"), "n1": ("SECOND", "Ready")})
        self.assertTrue(self.has_vip("n2"))
        ht.wait_for(lambda: self.ask() == "n2", 10, what="the client reaches n2")
        self.assertFalse(self.has_vip("n1"))
        text = ht.read_text(c.node("n1").log_file)
        self.assertIn("ip checker: the virtual IP vanished", text)

    def test_failing_start_prim_stops_the_node_and_the_peer_takes_over(self):
        """swap to n2, whose start_prim fails: n2 stops (STOP NotReady, VIP released)
        and n1, up to date, takes the service back."""
        c = self.c
        self.start_pair()
        open(os.path.join(self.svc, "fail-n2"), "w").close()
        rc, out, err = c.ctl("n1", "swap")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n2": ("STOP", "NotReady"), "n1": ("ALONE", "Ready")}, 60)
        self.assertIn("start_prim", self.st("n2")["message"])
        self.assertTrue(self.has_vip("n1"))
        self.assertFalse(self.has_vip("n2"))
        ht.wait_for(lambda: self.ask() == "n1", 10, what="the service back on n1")
        log = os.path.join(c.node("n2").log_dir, "%s.start_prim.log" % c.module)
        self.assertIn("failing on purpose", ht.read_text(log))

    def test_failover_off_makes_the_survivor_wait(self):
        c = self.c
        self.start_pair()
        rc, out, err = c.ctl("n2", "failover", "off")
        self.assertEqual(rc, 0, out + err)
        self.assertFalse(self.st("n2")["failover"])
        c.kill_node("n1")
        ht.run(["ip", "-n", c.netns_of("n1"), "link", "set", "xl", "down"])
        self.wait_states({"n2": ("WAIT", "NotReady")})
        self.assertFalse(self.has_vip("n2"))
        self.assertIsNone(self.ask())


class DefaultPrim(Failover):
    """defaultprim="n2": once n2 is an up-to-date SECOND, the application swaps back to
    it on its own."""
    cluster_config = {"defaultprim": "n2"}

    def test_swaps_back_to_the_default_primary(self):
        c = self.c
        c.start_daemon("n1")
        c.start_daemon("n2")
        self.wait_states({"n1": ("WAIT", "NotReady"), "n2": ("WAIT", "NotReady")})
        rc, out, err = c.ctl("n1", "prim")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n2": ("PRIM", "Ready"), "n1": ("SECOND", "Ready")}, 60)
        self.assertTrue(self.has_vip("n2"))
        ht.wait_for(lambda: self.ask() == "n2", 10, what="the service on n2")
        self.assertIn("defaultprim=n2", ht.read_text(c.node("n1").log_file))


# only the DefaultPrim test of its own class
for _name in [n for n in dir(Failover) if n.startswith("test_")]:
    setattr(DefaultPrim, _name, None)


if __name__ == "__main__":
    ht.main()
