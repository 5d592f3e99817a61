#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Application monitoring (issue 7) on the two-network topology of test_failover.py.

The service is a small TCP server started by start_prim as the program `hm-svc` (a Python
script with a shebang, so its command name is hm-svc); it answers with the node's name.

- errd: the service killed on the primary is restarted locally (restart); killed again and
  again, maxloop stops the module and the peer takes over;
- a tcp checker against the service hung with SIGSTOP (its listen backlog fills, connects
  time out): stopstart, the peer takes over, and no acknowledged write is lost;
- a custom checker whose program reports through `mirrorctl set custom.probe down|up`: the
  module waits (WAIT NotReady), then starts again by itself;
- `mirrorctl checker off`: a hung service is left alone, and the setting survives a
  restart of the daemon.
Every action is logged with the resource (checker ident) and the reason."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hamirror_test as ht  # noqa: E402
import test_failover as tf  # noqa: E402

# test_failover's service as a program of its own (command name hm-svc), backlog 1
SVC = "#!%s\n" % sys.executable + tf.SERVICE.replace("s.listen(16)", "s.listen(1)")
assert "s.listen(1)" in SVC

START_PRIM = """#!/bin/sh
pidfile="$SVC_DIR/$HAMIRROR_NODE.pid"
echo "start_prim $*"
setsid "$SVC_DIR/hm-svc" </dev/null >/dev/null 2>&1 &
echo $! > "$pidfile"
"""

# as test_failover's, but a stopped (SIGSTOP) service is continued so that TERM works
STOP_PRIM = tf.STOP_PRIM.replace('kill -s $sig "$pid" 2>/dev/null',
                                 'kill -s $sig "$pid" 2>/dev/null; kill -CONT "$pid" 2>/dev/null')

# A custom checker program: mirrors the word in its control file into custom.probe.
PROBE = """#!/bin/sh
last=
while :; do
	v=$(cat "%s.$HAMIRROR_NODE" 2>/dev/null)
	if [ -n "$v" ] && [ "$v" != "$last" ]; then
		"%s" set -r custom.probe -v "$v" && last=$v  # (SafeKit's form)
	fi
	sleep 0.1
done
"""


def with_monitoring(config, errd="", check=""):
    t = config.replace("    <check>\n", "    <check>\n" + check, 1)
    if errd:
        t = t.replace("    <user ", errd + "    <user ", 1)
    return t


ERRD = """    <errd polltimer="300ms">
      <proc name="hm-svc" atleast="1" action="restart" class="prim"/>
    </errd>
"""
ERRD_HANDLER = """    <errd polltimer="300ms">
      <proc name="hm-svc" atleast="1" action="svc-handler" class="prim"/>
    </errd>
"""
# A handler: records its arguments; with "fix" in its mode file, starts the service again
# and exits 0 (handled), else exits 1 (SafeKit: stopstart).
HANDLER = """#!/bin/sh
echo "$*" >> "$SVC_DIR/handler.log"  # (the <user> vars are in the environment)
if [ "$(cat "%s/handler.mode")" = fix ]; then
	setsid "%s/hm-svc" </dev/null >/dev/null 2>&1 &
	echo $! > "%s/$HAMIRROR_NODE.pid"
	exit 0
fi
exit 1
"""
ERRD_UNIT = """    <errd polltimer="300ms">
      <proc name="hm-unit" service="yes" action="noaction" class="prim"/>
    </errd>
"""
TCP = """      <tcp ident="svc" when="prim" action="stopstart">
        <to addr="127.0.0.1" port="%d" interval="300ms" timeout="200ms"/>
      </tcp>
""" % tf.PORT
CUSTOM = """      <custom ident="probe" when="pre" exec="probe" action="wait"/>
"""
PING = """      <ping ident="gw" when="pre" action="noaction">
        <to addr="198.18.0.254" interval="300ms" timeout="200ms"/>
      </ping>
      <ping ident="nobody" when="pre" action="noaction">
        <to addr="198.18.0.250" interval="300ms" timeout="200ms"/>
      </ping>
"""


class MonitorBase(tf.Failover):
    """Helpers only: the service as hm-svc, the probe program."""

    def open_cluster(self, userconfig):
        super().open_cluster(userconfig)
        sd = os.path.join(os.path.dirname(self.c.userconfig), "scripts")
        for name, text in (("start_prim", START_PRIM), ("stop_prim", STOP_PRIM)):
            with open(os.path.join(sd, name), "w") as f:
                f.write(text)
        p = os.path.join(self.svc, "hm-svc")
        with open(p, "w") as f:
            f.write(SVC)
        os.chmod(p, 0o755)
        self.ctl_file = os.path.join(self.svc, "probe.state")
        p = os.path.join(sd, "svc-handler")
        with open(p, "w") as f:
            f.write(HANDLER % ((self.svc,) * 3))
        os.chmod(p, 0o755)
        p = os.path.join(sd, "probe")
        with open(p, "w") as f:
            f.write(PROBE % (self.ctl_file, os.path.join(ht.BIN_DIR, "mirrorctl")))
        os.chmod(p, 0o755)

    def log(self, n):
        return ht.read_text(self.c.node(n).log_file)

    def svc_pid(self, n):
        """The service's pid from its pid file, or None while the file is missing or being
        written (a restarted service truncates it first)."""
        try:
            with open(os.path.join(self.svc, "%s.pid" % n)) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def kill_svc(self, n, sig=signal.SIGKILL):
        ht.wait_for(lambda: self.svc_pid(n) is not None, 10, what="the service's pid on %s" % n)
        pid = self.svc_pid(n)
        os.kill(pid, sig)
        return pid

    def wait_new_svc(self, n, old_pid, timeout_s=20):
        ht.wait_for(lambda: self.svc_pid(n) not in (None, old_pid) and self.ask() == n,
                    timeout_s, what="the service restarted on %s" % n)

    def resource(self, n, name):
        return self.st(n).get("resources", {}).get(name)


class Errd(MonitorBase):
    userconfig = with_monitoring(tf.CONFIG, errd=ERRD)

    def test_killed_service_is_restarted_then_maxloop_hands_over(self):
        c = self.c
        self.start_pair()
        ht.wait_for(lambda: self.resource("n1", "proc.hm-svc") == "up", 10,
                    what="proc.hm-svc up on n1")
        self.assertEqual(self.resource("n2", "proc.hm-svc"), "init")  # class=prim
        # a namesake on n1 that the scripts did not start (another port): errd follows
        # the processes start_prim started (their cgroup), so it does not hide the kill
        ht.wait_for(lambda: "follows the processes the scripts started" in self.log("n1"), 10,
                    what="errd following start_prim's processes")
        decoy_dir = os.path.join(self.svc, "decoy")
        os.mkdir(decoy_dir)
        decoy = os.path.join(decoy_dir, "hm-svc")
        with open(decoy, "w") as f:
            f.write(SVC.replace(str(tf.PORT), str(tf.PORT + 1)))
        os.chmod(decoy, 0o755)
        c.popen("n1", decoy)
        # maxloop="3" (the default): three restarts, the fourth detection stops
        for i in range(3):
            old = self.kill_svc("n1")
            self.wait_new_svc("n1", old)
            self.assertEqual((self.st("n1")["state"], self.st("n2")["state"]),
                             ("PRIM", "SECOND"))
            self.assertEqual(self.st("n1")["maxloop"]["count"], i + 1)
        log = self.log("n1")
        self.assertRegex(log, r"check: action=restart resource=proc\.hm-svc "
                              r"reason=\"0 running, at least 1 expected\"")
        self.kill_svc("n1")
        self.wait_states({"n1": ("STOP", "NotReady"), "n2": ("ALONE", "Ready")}, 60)
        ht.wait_for(lambda: self.ask() == "n2", 20, what="the service answering on n2")
        self.assertIn("fsm: action stop called by maxloop", self.log("n1"))
        # an admin command resets the counter
        rc, out, err = c.ctl("n1", "start")
        self.assertEqual(rc, 0, out + err)
        self.wait_states({"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")}, 60)
        self.assertEqual(self.st("n1")["maxloop"]["count"], 0)


class Handler(MonitorBase):
    userconfig = with_monitoring(tf.CONFIG, errd=ERRD_HANDLER)

    def test_handler_exit_0_handles_and_exit_1_fails_over(self):
        mode = os.path.join(self.svc, "handler.mode")
        with open(mode, "w") as f:
            f.write("fix\n")
        self.start_pair()
        ht.wait_for(lambda: self.resource("n1", "proc.hm-svc") == "up", 10,
                    what="proc.hm-svc up on n1")
        old = self.kill_svc("n1")
        self.wait_new_svc("n1", old)  # the handler started it again
        # (the handler exits after starting it; mirrord logs when it reaps the handler)
        ht.wait_for(lambda: "check: resource=proc.hm-svc handled by svc-handler" in
                    self.log("n1"), 10, what="the handler's exit 0 logged")
        with open(os.path.join(self.svc, "handler.log")) as f:
            self.assertIn("proc.hm-svc 0 running, at least 1 expected", f.read())
        self.assertEqual(self.st("n1")["state"], "PRIM")
        with open(mode, "w") as f:
            f.write("fail\n")
        ht.wait_for(lambda: self.resource("n1", "proc.hm-svc") == "up", 10,
                    what="proc.hm-svc up again")
        self.kill_svc("n1")
        self.wait_states({"n2": ("PRIM", "Ready")}, 60)
        self.assertRegex(self.log("n1"), r"check: action=stopstart resource=proc\.hm-svc "
                                         r"reason=\"handler svc-handler failed \(status 1")


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - cgroup2 " in line:
                return line.split()[4]
    return None


class Unit(MonitorBase):
    """<proc service="yes">: a systemd unit's processes, counted from its cgroup. This
    machine runs no systemd: the test makes the cgroup a unit would have
    (system.slice/hm-unit.service) and puts a process of n1's namespace in it."""
    userconfig = with_monitoring(tf.CONFIG, errd=ERRD_UNIT)

    def test_unit_up_while_its_cgroup_has_a_process(self):
        mnt = cgroup2_mount()
        if mnt is None:
            self.skipTest("no cgroup v2 here")
        slice_dir = os.path.join(mnt, "system.slice")
        made_slice = not os.path.isdir(slice_dir)
        unit = os.path.join(slice_dir, "hm-unit.service")
        os.makedirs(unit)
        self.addCleanup(lambda: made_slice and os.rmdir(slice_dir))
        self.addCleanup(lambda: os.path.isdir(unit) and os.rmdir(unit))
        p = self.c.popen("n1", "sleep", "600")
        with open(os.path.join(unit, "cgroup.procs"), "w") as f:
            f.write("%d\n" % p.pid)
        self.start_pair()
        ht.wait_for(lambda: self.resource("n1", "proc.hm-unit") == "up", 10,
                    what="proc.hm-unit up on n1")
        p.kill()
        p.wait()
        ht.wait_for(lambda: self.resource("n1", "proc.hm-unit") == "down", 10,
                    what="proc.hm-unit down once the unit has no process")
        self.assertRegex(self.log("n1"), r"check: action=noaction resource=proc\.hm-unit "
                                         r"reason=\"0 running, at least 1 expected\"")


class Tcp(MonitorBase):
    userconfig = with_monitoring(tf.CONFIG, check=TCP)

    def test_hung_service_fails_over_without_losing_a_write(self):
        c = self.c
        self.start_pair()
        ht.wait_for(lambda: self.resource("n1", "tcp.svc") == "up", 10,
                    what="tcp.svc up on n1")
        shared = c.node("n1").repl_dirs["data"][1]
        log = os.path.join(c.tmp, "writes.log")
        w = c.popen("n1", sys.executable, "-c", tf.WRITER, shared, log)
        ht.wait_for(lambda: os.path.exists(log) and os.path.getsize(log) > 200, 20,
                    what="writer running")
        self.kill_svc("n1", signal.SIGSTOP)  # hung: alive (errd sees it), not serving
        self.wait_states({"n2": ("PRIM", "Ready")}, 60)
        ht.wait_for(lambda: self.ask() == "n2", 20, what="the service answering on n2")
        w.wait(30)
        self.assertRegex(self.log("n1"), r"check: action=stopstart resource=tcp\.svc reason=")
        with open(log) as f:
            names = [ln.strip() for ln in f if ln.strip()]
        self.assertGreater(len(names), 0)
        real = c.node("n2").repl_dirs["data"][0]
        for name in names:
            with open(os.path.join(real, name), "rb") as f:
                self.assertEqual(f.read(), (name * 50).encode(),
                                 "acknowledged write %s lost" % name)

    def test_checkers_off_leave_a_hung_service_alone_and_persist(self):
        c = self.c
        self.start_pair()
        # the intf and ip checkers appear in the same model; `state -v` lists them all
        ht.wait_for(lambda: self.resource("n1", "tcp.svc") == "up", 10, what="tcp.svc up")
        self.assertEqual(self.resource("n1", "intf.eth0"), "up")
        self.assertEqual(self.resource("n1", "ip.%s" % ht.VIP_ADDR), "up")
        self.assertEqual(self.resource("n2", "ip.%s" % ht.VIP_ADDR), "init")
        rc, out, err = c.ctl("n1", "state", "-v")
        self.assertEqual(rc, 3, out + err)  # PRIM
        self.assertRegex(out, r"tcp\.svc +up")
        self.assertIn("checkers on, errd on, maxloop 0/3", out)
        rc, out, err = c.ctl("n1", "checker", "off")
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(self.st("n1")["checkers"], "off")
        self.assertEqual(self.resource("n1", "tcp.svc"), "init")
        pid = self.kill_svc("n1", signal.SIGSTOP)
        self.addCleanup(lambda: os.kill(pid, signal.SIGCONT))
        # 20 intervals of 300 ms: a running checker would have acted long before
        time.sleep(6)
        self.assertEqual((self.st("n1")["state"], self.st("n1")["readiness"]),
                         ("PRIM", "Ready"))
        self.assertNotIn("check: action=", self.log("n1"))
        os.kill(pid, signal.SIGCONT)
        # the setting is kept across a restart of the daemon
        c.stop_daemon("n1")
        c.start_daemon("n1")
        self.assertEqual(self.st("n1")["checkers"], "off")
        rc, out, err = c.ctl("n1", "checker", "on")
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(self.st("n1")["checkers"], "on")


class CustomWait(MonitorBase):
    userconfig = with_monitoring(tf.CONFIG, check=CUSTOM + PING)

    def test_custom_checker_down_waits_then_restarts(self):
        c = self.c
        for n in ("n1", "n2"):
            with open("%s.%s" % (self.ctl_file, n), "w") as f:
                f.write("up\n")
        self.start_pair()
        ht.wait_for(lambda: self.resource("n1", "custom.probe") == "up", 10,
                    what="custom.probe up")
        with open(self.ctl_file + ".n1", "w") as f:
            f.write("down\n")
        # wait: n1 hands over and stays in WAIT (NotReady) while the resource is down
        self.wait_states({"n1": ("WAIT", "NotReady"), "n2": ("ALONE", "Ready")}, 30)
        self.assertRegex(self.log("n1"), r"check: action=wait resource=custom\.probe "
                                         r"reason=\"set down by its program\"")
        ht.wait_for(lambda: self.ask() == "n2", 20, what="the service on n2")
        time.sleep(1)
        self.assertEqual(self.st("n1")["state"], "WAIT")
        with open(self.ctl_file + ".n1", "w") as f:
            f.write("up\n")
        # then it starts again by itself, and joins the primary
        self.wait_states({"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")}, 30)
        self.assertGreaterEqual(
            self.log("n1").count("check: resource=custom.probe up again; starting again"), 2)
        # until its first report, a wait rule's resource (init) holds the module in WAIT:
        # n1 restarted without its probe's answer does not rejoin
        c.stop_daemon("n1")
        os.unlink(self.ctl_file + ".n1")
        c.start_daemon("n1")
        time.sleep(2)
        self.assertEqual(self.st("n1")["state"], "WAIT")
        self.assertEqual(self.resource("n1", "custom.probe"), "init")
        self.assertIn("check: waiting for the first check", self.log("n1"))
        with open(self.ctl_file + ".n1", "w") as f:
            f.write("up\n")
        self.wait_states({"n1": ("SECOND", "Ready"), "n2": ("PRIM", "Ready")}, 30)
        # ping checkers (ICMP echo): the witness answers, an unused address does not;
        # with noaction a down resource is only logged
        self.assertEqual(self.resource("n1", "ping.gw"), "up")
        self.assertEqual(self.resource("n1", "ping.nobody"), "down")
        self.assertIn("check: action=noaction resource=ping.nobody", self.log("n1"))
        # a resource the monitor owns cannot be set by hand
        rc, out, err = c.ctl("n1", "set", "custom.nope", "up")
        self.assertNotEqual(rc, 0)
        self.assertIn("no resource custom.nope", out + err)


for _cls in (MonitorBase, Errd, Handler, Unit, Tcp, CustomWait):
    for _name in [n for n in dir(tf.Failover) if n.startswith("test_")]:
        setattr(_cls, _name, None)

if __name__ == "__main__":
    ht.main()
