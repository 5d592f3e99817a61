#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The hamirror demo (run by scripts/demo.sh): a two-node cluster plus a client and a
witness on one machine, in network namespaces on 198.18.0.0/15, built with the same
harness as the integration tests.

It shows only what works today. The demo is a list of steps (STEPS); a later version adds
its steps (an application, a failover and a failback) to that list, each a function
step_x(demo) that prints what it does and raises on failure.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import hamirror_test as ht  # noqa: E402

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
    print("Each node also has a private mount namespace: %s is the node's own directory"
          % os.path.join(c.shared, "data"))
    print("there, so both nodes use the same userconfig.xml (%s)." % c.userconfig)


def step_start(d):
    c = d.c
    d.title("Start mirrord on both nodes")
    for n in c.node_names:
        t0 = time.monotonic()
        p = c.start_daemon(n, level="info")
        print("  %s: mirrord -m %s -f started, pid %d, ready in %.2fs" % (
            n, c.module, p.pid, time.monotonic() - t0))


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


def step_stop(d):
    c = d.c
    d.title("Stop both daemons (SIGTERM)")
    for n in c.node_names:
        rc = c.stop_daemon(n)
        print("  %s: mirrord exited with code %d; control socket removed: %s" % (
            n, rc, "yes" if not os.path.exists(c.node(n).sock) else "NO"))
    d.cmd(c.node_names[0], "status")


STEPS = [step_topology, step_start, step_status, step_state, step_config_check, step_stop]

NOT_YET = """
What you saw is everything this version does end to end: two daemons that load and
validate the configuration, know their node and peer, answer mirrorctl on a root-only
control socket, and stop cleanly. Both nodes stay in STOP.

Not shown, because it does not exist yet: heartbeats between the nodes, the start
command and the WAIT/ALONE/PRIM/SECOND states, replication of the application's
writes, the virtual IP, restart scripts, failover and failback, resync. They arrive in
later versions, and this demo will show them as they do.
"""


def main():
    ht.require_root()
    try:
        ht.require_binaries()
    except ht.HarnessError as e:
        print("demo: %s" % e, file=sys.stderr)
        return 1
    with ht.Cluster() as c:
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
