# SPDX-License-Identifier: GPL-2.0-or-later
"""hamirror_test - the multi-node integration test harness (Python 3 stdlib only).

A Cluster is a throw-away two-node topology on one machine (DESIGN.md section 8):

    <p>-br   a network namespace holding the Linux bridge br0
    <p>-n1   node n1: network namespace + persistent private mount namespace, 198.18.0.1/24
    <p>-n2   node n2: the same, 198.18.0.2/24
    <p>-cl   a client, 198.18.0.10/24
    <p>-wi   the split-brain witness, 198.18.0.254/24

Each namespace is joined to br0 by a veth pair whose namespace-side end is eth0.
<p> is "hm" + 4 hex digits, unique per run. Only 198.18.0.0/15 is used and IPv6 is
disabled in every namespace, so no traffic ever leaves for a real address.

All files live in one temp dir (tempfile.mkdtemp(prefix="hamirror-it-")):

    tls/            CA and node certificates (scripts/gen-certs.sh)
    hb.key          heartbeat key (0600)
    userconfig.xml  the module config, identical on both nodes
    shared/data     the configured replicated path (an empty mount point on the host)
    n1/data         n1's real replicated dir, bind-mounted on shared/data inside n1's
                    mount namespace (so the same userconfig.xml works on both nodes)
    n1/{state,run,log}  n1's own dirs, named directly by n1/node.ini
    n1/out/         captured stdout/stderr of every process the harness started on n1
    ns/             a private bind mount holding the mount-namespace files ns/n1, ns/n2

Ownership of a run is recorded in /run/hamirror-it/<p>/ (owner pid + start time, temp
dir); cleanup_stale() removes what runs that died (e.g. killed by a ctest timeout) left.

Every wait is bounded (wait_for); teardown kills only the PIDs this run started or that
live in its own namespaces, unmounts, deletes the namespaces and the temp dir, also on
exceptions and on SIGINT/SIGTERM.

Entry points: `python3 hamirror_test.py cleanup-stale` and `python3 hamirror_test.py
selftest` (build the topology, check node-to-node reachability, tear down).
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import time
import unittest

SKIP_RC = 77
SOURCE_DIR = os.environ.get("MR_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
BIN_DIR = os.environ.get("MR_BIN_DIR") or os.path.join(SOURCE_DIR, "build", "bin")
GEN_CERTS = os.path.join(SOURCE_DIR, "scripts", "gen-certs.sh")
STATE_ROOT = "/run/hamirror-it"
NETNS_DIR = "/run/netns"
PREFIX_RE = re.compile(r"^hm[0-9a-f]{4}$")
NETNS_RE = re.compile(r"^(hm[0-9a-f]{4})-[a-z0-9]+$")

SUBNET = "198.18.0"
PREFIXLEN = 24
HOST_ADDR = {"n1": SUBNET + ".1", "n2": SUBNET + ".2", "n3": SUBNET + ".3",
             "cl": SUBNET + ".10", "wi": SUBNET + ".254"}
VIP_ADDR = SUBNET + ".100"
DEFAULT_MODULE = "app"

# Exit codes of `mirrorctl state`.
STATE_RC = {"STOP": 0, "WAIT": 1, "ALONE": 2, "PRIM": 3, "SECOND": 4}
STATE_RC_UNREACHABLE = 5


class HarnessError(Exception):
    """The harness could not do what was asked (setup failed, wait expired...)."""


class DaemonDied(HarnessError):
    """A daemon exited while we waited for it."""


def log(msg):
    print("[harness] " + msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# small helpers


def skip(msg):
    """Print a SKIP line and exit with the code ctest treats as skipped."""
    print("SKIP: " + msg, flush=True)
    sys.exit(SKIP_RC)


def require_root():
    """Exit 77 (skipped) unless we are root and can use network namespaces and FUSE."""
    if os.geteuid() != 0:
        skip("needs root (network and mount namespaces)")
    for tool in ("ip", "nsenter", "unshare", "mount", "umount", "setpriv"):
        if shutil.which(tool) is None:
            skip("needs the '%s' command (scripts/install-deps.sh)" % tool)
    probe = "hmprobe%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        skip("'ip netns add' does not work here: %s" % r.stderr.strip())
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    try:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        os.close(fd)
    except OSError as e:
        skip("/dev/fuse is not usable: %s" % e.strerror)


def require_binaries(*names):
    """Fail (not skip) when a binary the test needs was not built."""
    for n in names or ("mirrord", "mirrorctl"):
        p = os.path.join(BIN_DIR, n)
        if not os.access(p, os.X_OK):
            raise HarnessError("%s not found in MR_BIN_DIR=%s; build the project first" % (n, BIN_DIR))


def bin_path(name):
    return os.path.join(BIN_DIR, name)


def wait_for(cond, timeout_s, interval_s=0.05, what="condition"):
    """Poll cond() until it returns a true value, and return that value.

    Raises HarnessError naming `what` when timeout_s expires. Exceptions raised by cond
    propagate (they are failures, not "not yet")."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise HarnessError("timed out after %.1fs waiting for %s" % (timeout_s, what))
        time.sleep(interval_s)


STATE_NUM = {"STOP": 0, "WAIT": 1, "ALONE": 2, "PRIM": 3, "SECOND": 4}
READY_NUM = {"NotReady": 0, "Transient": 1, "Ready": 2}


def hb_datagram(key, node_idx, net_idx, module, epoch, seq, state="ALONE", readiness="Ready",
                uptodate=True, flags=1, gen_seq=1, gen_id=1, handover_seq=0, config_hash=b"",
                changed_files=0):
    """One heartbeat datagram as daemon/hb.c encodes it (160 bytes: a 128-byte body,
    big-endian, then HMAC-SHA256 of the body under key). For tests that play a peer."""
    import hashlib
    import hmac
    mod = module.encode()[:32].ljust(32, b"\0")
    body = (b"HMHB" + struct.pack(">BBB", 2, node_idx, net_idx) + mod
            + struct.pack(">QQ", epoch, seq)
            + struct.pack(">BBBB", STATE_NUM[state], READY_NUM[readiness], int(uptodate), flags)
            + struct.pack(">QQQ", gen_seq, gen_id, handover_seq)
            + config_hash[:16].ljust(16, b"\0")
            + struct.pack(">I", changed_files))
    body = body.ljust(128, b"\0")
    return body + hmac.new(key, body, hashlib.sha256).digest()


def run(cmd, check=True, timeout=30, input=None):
    """Run a host command, return CompletedProcess (text). check=True raises on failure."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        raise HarnessError("command timed out after %ss: %s" % (timeout, " ".join(cmd)))
    if check and r.returncode != 0:
        raise HarnessError("command failed (exit %d): %s\n%s%s" % (
            r.returncode, " ".join(cmd), r.stdout, r.stderr))
    return r


def read_text(path, default=""):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def tail(text, lines=200):
    ls = text.splitlines()
    if len(ls) <= lines:
        return text
    return "... (%d earlier lines not shown)\n" % (len(ls) - lines) + "\n".join(ls[-lines:]) + "\n"


def log_digest(text, lines=200):
    """A mirrord log for a failure report: every line above debug level (the state
    changes, warnings and errors that explain a failure, however early), then the
    last lines of everything."""
    ls = text.splitlines()
    if len(ls) <= lines:
        return text
    early = [ln for ln in ls[:-lines] if " debug " not in ln]
    return ("... (%d earlier lines; those above debug level:)\n" % (len(ls) - lines) +
            "\n".join(early[-400:]) + "\n... (the last %d lines:)\n" % lines +
            "\n".join(ls[-lines:]) + "\n")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def proc_starttime(pid):
    """Start time of pid in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return int(s[s.rindex(")") + 2:].split()[19])


def mounts_under(path):
    """Mount points at or below path in our mount namespace, deepest first."""
    path = os.path.realpath(path)
    res = []
    for line in read_text("/proc/self/mountinfo").splitlines():
        mp = line.split()[4].encode().decode("unicode_escape")
        if mp == path or mp.startswith(path + "/"):
            res.append(mp)
    res.sort(key=len, reverse=True)
    return res


def list_netns():
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_pids(ns):
    r = run(["ip", "netns", "pids", ns], check=False, timeout=10)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def ns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def mntns_pids(ino):
    """PIDs whose mount namespace has inode ino."""
    pids = []
    if ino is None:
        return pids
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            link = os.readlink("/proc/%s/ns/mnt" % d)
        except OSError:
            continue
        if link == "mnt:[%d]" % ino:
            pids.append(int(d))
    return pids


def sigkill_pids(pids, timeout_s=5):
    """SIGKILL each pid (never ourselves) and wait until they are gone."""
    pids = [p for p in set(pids) if p != os.getpid()]
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    for p in pids:
        while pid_alive(p) and time.monotonic() < deadline:
            # reap our own children; others are reaped by their parent
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
            if not pid_alive(p):
                break
            # a zombie of someone else still counts as alive for kill(0); check state
            if _is_zombie(p):
                break
            time.sleep(0.02)


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2] == "Z"
    except OSError:
        return True


# --------------------------------------------------------------------------------------
# control socket (raw protocol: 4-byte big-endian length + one JSON object)

CTL_MAX_FRAME = 65536


def frame(payload):
    """Encode a control frame. payload: dict/list (JSON-encoded), str or bytes (as is)."""
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    elif isinstance(payload, str):
        payload = payload.encode()
    return struct.pack(">I", len(payload)) + payload


class CtlConn:
    """A raw control-socket client, for protocol and abuse tests."""

    def __init__(self, path, timeout_s=5.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout_s)
        self.sock.connect(path)
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        """Send bytes. Returns False if the daemon already closed (EPIPE/ECONNRESET)."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def send_frame(self, payload):
        return self.send_raw(frame(payload))

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _fill(self):
        """Read more bytes; returns False on EOF/reset. Raises socket.timeout."""
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            return False
        if not d:
            return False
        self.buf += d
        return True

    def recv_frame(self):
        """Next reply as a dict, or None if the daemon closed before a whole frame.

        Raises HarnessError when nothing arrives in time or the reply is not a valid frame."""
        try:
            while len(self.buf) < 4:
                if not self._fill():
                    return None
            n = struct.unpack(">I", self.buf[:4])[0]
            if n > CTL_MAX_FRAME:
                raise HarnessError("reply announces %d bytes (over the %d limit)" % (n, CTL_MAX_FRAME))
            while len(self.buf) < 4 + n:
                if not self._fill():
                    return None
        except socket.timeout:
            raise HarnessError("no reply from %s within %ss" % (self.path, self.sock.gettimeout()))
        body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        try:
            return json.loads(body)
        except ValueError as e:
            raise HarnessError("reply is not JSON (%s): %r" % (e, body[:200]))

    def request(self, obj):
        if not self.send_frame(obj):
            raise HarnessError("daemon closed the connection before the request was sent")
        r = self.recv_frame()
        if r is None:
            raise HarnessError("daemon closed the connection without replying")
        return r

    def wait_closed(self, timeout_s=5.0):
        """True once the daemon has closed the connection (EOF or reset) within timeout_s.

        Any bytes that arrive first are kept in self.buf."""
        deadline = time.monotonic() + timeout_s
        old = self.sock.gettimeout()
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    if not self._fill():
                        return True
                except socket.timeout:
                    return False
            return False
        finally:
            self.sock.settimeout(old)


# --------------------------------------------------------------------------------------
# generated configuration

USERCONFIG_TEMPLATE = """<?xml version="1.0"?>
<safe>
  <service mode="mirror" defaultprim="${defaultprim}" failover="${failover}">
    <heart port="${heart_port}" pulse="${pulse}" timeout="${hb_timeout}">
      <heartbeat name="net0" ident="flow">
        <server name="${n1}" addr="${n1_addr}"/>
        <server name="${n2}" addr="${n2_addr}"/>
      </heartbeat>
    </heart>
    <vip>
      <interface_list>
        <interface check="on" name="eth0">
          <real_interface>
            <virtual_addr addr="${vip}" where="one_side_alias" check="on"/>
          </real_interface>
        </interface>
      </interface_list>
    </vip>
    <rfs async="${async_mode}" port="${rfs_port}">
${replicated_xml}
    </rfs>
    <user nicestoptimeout="30s" forcestoptimeout="10s"/>
    <check>
      <splitbrain ident="witness" exec="ping" arg="${witness}"/>
    </check>
  </service>
</safe>
"""

NODE_INI_TEMPLATE = """[node]
name = ${name}
state_dir = ${state_dir}
run_dir = ${run_dir}
log_dir = ${log_dir}

[tls]
ca = ${ca}
cert = ${cert}
key = ${key}

[heartbeat]
key_file = ${hb_key}
"""


def _subst(template, values):
    """string.Template substitution that fails loudly on a missing placeholder."""
    try:
        return string.Template(template).substitute(values)
    except KeyError as e:
        raise HarnessError("config template uses ${%s}, which the harness does not define; known: %s"
                           % (e.args[0], ", ".join(sorted(values))))


# --------------------------------------------------------------------------------------
# the cluster

_LIVE = []              # open clusters, torn down by main() and the signal handlers
_OLD_HANDLERS = {}
_SIG = {"teardown": 0, "pending": None, "raised": False}


class _Interrupted(KeyboardInterrupt):
    pass


def _on_signal(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception like SIGINT so `with`/finally blocks tear
    # down. Only once: a second Ctrl-C must not abort the teardown the first one started.
    # A signal that arrives during a teardown is raised when that teardown is done.
    if _SIG["raised"]:
        return
    if _SIG["teardown"]:
        _SIG["pending"] = signum
        return
    _SIG["raised"] = True
    raise _Interrupted("signal %d" % signum)


def _install_handlers():
    if _OLD_HANDLERS:
        return
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            _OLD_HANDLERS[s] = signal.signal(s, _on_signal)
        except ValueError:      # not the main thread
            pass


def _restore_handlers():
    for s, h in _OLD_HANDLERS.items():
        signal.signal(s, h)
    _OLD_HANDLERS.clear()


class Node:
    """One node: its namespaces, directories and the processes started on it."""

    def __init__(self, cluster, name):
        c = cluster
        self.name = name
        self.netns = "%s-%s" % (c.prefix, name)
        self.addr = HOST_ADDR[name]
        self.dir = os.path.join(c.tmp, name)
        self.mntns = os.path.join(c.tmp, "ns", name)
        self.state_dir = os.path.join(self.dir, "state")
        self.run_dir = os.path.join(self.dir, "run")
        self.log_dir = os.path.join(self.dir, "log")
        self.out_dir = os.path.join(self.dir, "out")
        self.node_ini = os.path.join(self.dir, "node.ini")
        self.sock = os.path.join(self.run_dir, c.module + ".sock")
        self.lock = os.path.join(self.run_dir, c.module + ".lock")
        self.log_file = os.path.join(self.log_dir, c.module + ".log")
        self.repl_dirs = {}     # name -> (own real dir, configured shared path)
        self.procs = []         # (Popen, argv, stdout path, stderr path)
        self.daemon = None      # the Popen of the running mirrord, if any
        self.daemon_out = None  # (stdout path, stderr path) of the last mirrord started

    def __repr__(self):
        return "<Node %s %s>" % (self.name, self.netns)


class Cluster:
    """A throw-away two-node topology. Use as a context manager, or open()/close().

    Arguments:
      nodes       node names (default n1, n2; addresses from HOST_ADDR)
      module      module name (mirrord -m)
      extra_ns    other hosts on the bridge (default client "cl" and witness "wi")
      replicated  names of replicated dirs; each is <tmp>/shared/<name> in the config
      userconfig  a string.Template for userconfig.xml; placeholders: see template_vars()
      binaries    False to build the topology without mirrord/mirrorctl (selftest, demo)
      **config    values for the default template: defaultprim, failover, heart_port, pulse,
                  hb_timeout, vip, async_mode, rfs_port, witness
    """

    def __init__(self, nodes=("n1", "n2"), module=DEFAULT_MODULE, extra_ns=("cl", "wi"),
                 replicated=("data",), userconfig=None, binaries=True, **config):
        if binaries:
            require_binaries()
        self.node_names = list(nodes)
        self.module = module
        self.extra_ns = list(extra_ns)
        self.replicated = list(replicated)
        self.userconfig_template = userconfig or USERCONFIG_TEMPLATE
        self.config = dict(defaultprim="alone", failover="on", heart_port=9200, pulse="100ms",
                           hb_timeout="1s", vip=VIP_ADDR, async_mode="second", rfs_port=9201,
                           witness=HOST_ADDR["wi"])
        unknown = set(config) - set(self.config)
        if unknown:
            raise HarnessError("unknown Cluster config keys: %s" % ", ".join(sorted(unknown)))
        self.config.update(config)
        self.prefix = None
        self.tmp = None
        self.record = None
        self.nodes = {}
        self.netns_made = []
        self.mounted = []       # host-namespace mounts we made, in order
        self.opened = False
        self.closed = False
        self.seq = 0

    # ---- lifecycle -----------------------------------------------------------------

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, etype, exc, tb):
        if etype is not None and not issubclass(etype, KeyboardInterrupt):
            self.dump_logs("test failed: %s: %s" % (etype.__name__, exc))
        self.close()
        return False

    def open(self):
        """Build everything. On any failure, undo what was made and re-raise."""
        require_root()
        _install_handlers()
        cleanup_stale(quiet=True)
        _LIVE.append(self)
        self.opened = True
        t0 = time.monotonic()
        try:
            self._claim_prefix()
            self._make_files()
            self._make_mount_namespaces()
            self._make_network()
        except BaseException:
            self.close()
            raise
        log("cluster %s ready in %.2fs (tmp %s)" % (self.prefix, time.monotonic() - t0, self.tmp))
        return self

    def _claim_prefix(self):
        os.makedirs(STATE_ROOT, mode=0o755, exist_ok=True)
        existing = set(list_netns())
        for _ in range(100):
            p = "hm" + secrets.token_hex(2)
            if any(n.startswith(p + "-") for n in existing):
                continue
            try:
                os.mkdir(os.path.join(STATE_ROOT, p), 0o755)
            except FileExistsError:
                continue
            self.prefix = p
            self.record = os.path.join(STATE_ROOT, p)
            break
        else:
            raise HarnessError("could not find a free namespace prefix in 100 tries")
        with open(os.path.join(self.record, "owner"), "w") as f:
            f.write("%d %d\n" % (os.getpid(), proc_starttime(os.getpid())))
        self.tmp = tempfile.mkdtemp(prefix="hamirror-it-")
        with open(os.path.join(self.record, "tmpdir"), "w") as f:
            f.write(self.tmp + "\n")

    def _make_files(self):
        # 0755 so that a non-root client can reach the run dirs (socket permission tests).
        os.chmod(self.tmp, 0o755)
        self.shared = os.path.join(self.tmp, "shared")
        self.tls_dir = os.path.join(self.tmp, "tls")
        self.hb_key = os.path.join(self.tmp, "hb.key")
        self.userconfig = os.path.join(self.tmp, "userconfig.xml")
        for n in self.node_names:
            self.nodes[n] = Node(self, n)
        run([GEN_CERTS, self.tls_dir] + self.node_names)
        fd = os.open(self.hb_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        for r in self.replicated:
            os.makedirs(os.path.join(self.shared, r), mode=0o755)
        for node in self.nodes.values():
            for d in (node.dir, node.state_dir, node.run_dir, node.log_dir, node.out_dir):
                os.makedirs(d, mode=0o755, exist_ok=True)
                os.chmod(d, 0o755)
            for r in self.replicated:
                own = os.path.join(node.dir, r)
                os.makedirs(own, mode=0o755)
                node.repl_dirs[r] = (own, os.path.join(self.shared, r))
            self.write_node_ini(node.name)
        self.write_userconfig()

    def template_vars(self):
        """Placeholders available to userconfig templates."""
        v = dict(self.config)
        v.update(tmp=self.tmp, shared=self.shared, module=self.module,
                 data=os.path.join(self.shared, self.replicated[0]) if self.replicated else "")
        for i, n in enumerate(self.node_names, 1):
            v["n%d" % i] = n
            v["n%d_addr" % i] = HOST_ADDR[n]
        v["replicated_xml"] = "\n".join(
            '      <replicated dir="%s" mode="read_only"/>' % os.path.join(self.shared, r)
            for r in self.replicated)
        return v

    def render_userconfig(self, template=None, **overrides):
        v = self.template_vars()
        v.update(overrides)
        return _subst(template or self.userconfig_template, v)

    def write_userconfig(self, template=None, path=None, **overrides):
        """(Re)write userconfig.xml (or another path) from a template; returns the path."""
        path = path or self.userconfig
        with open(path, "w") as f:
            f.write(self.render_userconfig(template, **overrides))
        return path

    def node_ini_text(self, node_name, **overrides):
        """node.ini text for node_name; overrides: name, state_dir, run_dir, log_dir, ca,
        cert, key, hb_key."""
        node = self.nodes[node_name]
        v = dict(name=node_name, state_dir=node.state_dir, run_dir=node.run_dir,
                 log_dir=node.log_dir, ca=os.path.join(self.tls_dir, "ca.crt"),
                 cert=os.path.join(self.tls_dir, node_name + ".crt"),
                 key=os.path.join(self.tls_dir, node_name + ".key"), hb_key=self.hb_key)
        v.update(overrides)
        return _subst(NODE_INI_TEMPLATE, v)

    def write_node_ini(self, node_name, path=None, **overrides):
        """Write node.ini for node_name (default: its own node.ini); returns the path."""
        path = path or self.nodes[node_name].node_ini
        with open(path, "w") as f:
            f.write(self.node_ini_text(node_name, **overrides))
        return path

    def write_file(self, relpath, text, mode=0o644):
        """Write a file in the temp dir (for deliberately broken configs...); returns its path."""
        path = os.path.join(self.tmp, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def _make_mount_namespaces(self):
        nsdir = os.path.join(self.tmp, "ns")
        os.mkdir(nsdir, 0o755)
        run(["mount", "--bind", nsdir, nsdir])
        self.mounted.append(nsdir)
        run(["mount", "--make-private", nsdir])
        for node in self.nodes.values():
            open(node.mntns, "w").close()
            run(["unshare", "--mount=" + node.mntns, "--propagation", "private", "true"])
            self.mounted.append(node.mntns)
            for own, shared in node.repl_dirs.values():
                run(["nsenter", "--mount=" + node.mntns, "--", "mount", "--bind", own, shared])

    def _ip(self, ns, *args):
        run(["ip", "-n", ns] + list(args))

    def _add_netns(self, ns):
        run(["ip", "netns", "add", ns])
        self.netns_made.append(ns)
        # No IPv6: nothing (DAD, router solicitations, MLD) may leave 198.18.0.0/15.
        for k in ("all", "default"):
            p = "net.ipv6.conf.%s.disable_ipv6=1" % k
            run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", p], check=False)
        self._ip(ns, "link", "set", "lo", "up")

    def _make_network(self):
        br = self.netns_of("br")
        self._add_netns(br)
        self._ip(br, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
        self._ip(br, "link", "set", "br0", "up")
        for host in self.node_names + self.extra_ns:
            ns = self.netns_of(host)
            self._add_netns(ns)
            self._ip(br, "link", "add", "v-" + host, "type", "veth", "peer", "name", "eth0",
                     "netns", ns)
            self._ip(br, "link", "set", "v-" + host, "master", "br0", "up")
            self._ip(ns, "addr", "add", "%s/%d" % (HOST_ADDR[host], PREFIXLEN), "dev", "eth0")
            self._ip(ns, "link", "set", "eth0", "up")

    def netns_of(self, host):
        return "%s-%s" % (self.prefix, host)

    def close(self):
        """Tear everything down. Idempotent; best effort. Signals wait until it is done."""
        if self.closed or not self.opened:
            return
        _SIG["teardown"] += 1
        try:
            self._close()
        finally:
            _SIG["teardown"] -= 1
        if not _SIG["teardown"] and _SIG["pending"] is not None and not _SIG["raised"]:
            signum, _SIG["pending"], _SIG["raised"] = _SIG["pending"], None, True
            raise _Interrupted("signal %d" % signum)

    def _close(self):
        self.closed = True
        errs = []

        def attempt(what, fn, *a):
            try:
                fn(*a)
            except Exception as e:      # keep going: leave as little as possible behind
                errs.append("%s: %s" % (what, e))

        for node in self.nodes.values():
            attempt("stop processes of " + node.name, self._stop_all, node)
        attempt("kill namespace processes", self._kill_ns_processes)
        for node in self.nodes.values():  # the cgroup mirrord made for its scripts
            attempt("remove the scripts' cgroup of " + node.name, _rm_scripts_cgroup,
                    node.name, self.module)
        for mp in reversed(self.mounted):
            attempt("unmount " + mp, _umount, mp)
        self.mounted = []
        for ns in reversed(self.netns_made):
            attempt("delete netns " + ns, run, ["ip", "netns", "del", ns])
        self.netns_made = []
        if self.tmp:
            attempt("remove " + self.tmp, _remove_tree, self.tmp)
        if self.record:
            attempt("remove " + self.record, shutil.rmtree, self.record)
        if self in _LIVE:
            _LIVE.remove(self)
        if not _LIVE:
            _restore_handlers()
        for e in errs:
            log("teardown of %s: %s" % (self.prefix, e))

    def _stop_all(self, node):
        """SIGTERM the node's processes still running, SIGKILL after 5 s."""
        live = [p for p, *_ in node.procs if p.poll() is None]
        for p in live:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        for p in live:
            try:
                p.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        node.daemon = None

    def _kill_ns_processes(self):
        pids = []
        for ns in self.netns_made:
            pids += netns_pids(ns)
        for node in self.nodes.values():
            pids += mntns_pids(ns_inode(node.mntns) if node.mntns in self.mounted else None)
        if pids:
            log("killing leftover processes in namespaces of %s: %s" % (self.prefix, sorted(set(pids))))
            sigkill_pids(pids)

    # ---- running things on a node --------------------------------------------------

    def node(self, name):
        try:
            return self.nodes[name]
        except KeyError:
            raise HarnessError("no node %r (nodes: %s)" % (name, ", ".join(self.nodes)))

    def ns_argv(self, name, argv):
        """argv wrapped to run inside node `name`'s mount and network namespaces
        (or only the network namespace for non-node hosts like 'cl' and 'wi')."""
        if name in self.nodes:
            n = self.nodes[name]
            return ["nsenter", "--mount=" + n.mntns, "--net=" + os.path.join(NETNS_DIR, n.netns),
                    "--"] + list(argv)
        return ["nsenter", "--net=" + os.path.join(NETNS_DIR, self.netns_of(name)), "--"] + list(argv)

    def run(self, name, *argv, timeout=30, input=None):
        """Run argv inside host/node `name`; returns (rc, stdout, stderr)."""
        try:
            r = subprocess.run(self.ns_argv(name, argv), capture_output=True, text=True,
                               timeout=timeout, input=input)
        except subprocess.TimeoutExpired as e:
            raise HarnessError("%s: command did not finish within %ss: %s\nstdout: %s\nstderr: %s" % (
                name, timeout, " ".join(argv), e.stdout, e.stderr))
        if self.SANITIZER_RE.search(r.stderr):
            raise HarnessError("%s: sanitizer report from %s:\n%s" % (name, " ".join(argv), r.stderr))
        return r.returncode, r.stdout, r.stderr

    def popen(self, name, *argv):
        """Start argv in the background inside node `name`, output to files in its out/ dir.

        The process is tracked: kill_node() and teardown stop it. Returns the Popen; its
        attributes out_path/err_path name the capture files."""
        node = self.node(name)
        self.seq += 1
        base = os.path.join(node.out_dir, "%03d-%s" % (self.seq, os.path.basename(argv[0])))
        out_path, err_path = base + ".stdout", base + ".stderr"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen(self.ns_argv(name, argv), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=err, start_new_session=True, close_fds=True)
        p.out_path, p.err_path, p.argv = out_path, err_path, list(argv)
        node.procs.append((p, list(argv), out_path, err_path))
        return p

    def mirrord_argv(self, name, config=None, node_ini=None, level="debug", foreground=True,
                     module=None, syslog=False, extra=()):
        """mirrord's argv for node `name` (defaults: the cluster's config, -f, -l debug, and
        --no-syslog so test runs do not fill the host's journal)."""
        node = self.node(name)
        argv = [bin_path("mirrord"), "-m", module or self.module, "-c", config or self.userconfig,
                "-n", node_ini or node.node_ini]
        if foreground:
            argv.append("-f")
        if level:
            argv += ["-l", level]
        if not syslog:
            argv.append("--no-syslog")
        return argv + list(extra)

    def run_mirrord(self, name, timeout=10, **kw):
        """Run mirrord synchronously (for start-up failures); returns (rc, stdout, stderr).

        A mirrord that is still running after `timeout` is killed and reported."""
        p = self.popen(name, *self.mirrord_argv(name, **kw))
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
            raise HarnessError("%s: mirrord was expected to exit but still ran after %ss:\n%s" % (
                name, timeout, read_text(p.err_path)))
        return rc, read_text(p.out_path), read_text(p.err_path)

    def start_daemon(self, name, wait=True, timeout_s=10, **kw):
        """Start mirrord -f on node `name`; by default wait until it is ready (it logged
        "mirrord: ready" and the control socket answers). Returns the Popen."""
        node = self.node(name)
        if node.daemon is not None and node.daemon.poll() is None:
            raise HarnessError("%s: mirrord already running (pid %d)" % (name, node.daemon.pid))
        log_off = _size(node.log_file)
        p = self.popen(name, *self.mirrord_argv(name, **kw))
        node.daemon = p
        node.daemon_out = (p.out_path, p.err_path)
        if wait:
            self.wait_ready(name, timeout_s=timeout_s, log_offset=log_off)
        return p

    def wait_ready(self, name, timeout_s=10, log_offset=0):
        node = self.node(name)
        p = node.daemon

        def ready():
            if p.poll() is not None:
                raise DaemonDied("%s: mirrord exited with code %s before it was ready\nstderr:\n%s" % (
                    name, p.returncode, tail(read_text(p.err_path), 50)))
            text = _read_from(node.log_file, log_offset) + read_text(p.err_path) + read_text(p.out_path)
            if "mirrord: ready" not in text:
                return False
            try:
                with CtlConn(node.sock, timeout_s=2) as c:
                    return c.request({"cmd": "status"}).get("ok") is True
            except (OSError, HarnessError):
                return False

        wait_for(ready, timeout_s, what="%s: mirrord ready (\"mirrord: ready\" logged, socket %s answers)"
                 % (name, node.sock))

    def stop_daemon(self, name, timeout_s=10):
        """SIGTERM mirrord on `name` and wait for it; SIGKILL after timeout_s.

        Returns its exit code (negative signal number if it had to be killed)."""
        node = self.node(name)
        p = node.daemon
        if p is None:
            raise HarnessError("%s: no mirrord was started" % name)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log("%s: mirrord (pid %d) did not exit within %ss of SIGTERM; SIGKILL" % (
                    name, p.pid, timeout_s))
                p.kill()
                p.wait(5)
        node.daemon = None
        return p.returncode

    def kill_node(self, name):
        """Simulate a crash of the whole node: SIGKILL every process the harness started
        there (and anything else living in its namespaces), then take eth0 down."""
        node = self.node(name)
        pids = [p.pid for p, *_ in node.procs if p.poll() is None]
        pids += netns_pids(node.netns) + mntns_pids(ns_inode(node.mntns))
        sigkill_pids(pids)
        for p, *_ in node.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                raise HarnessError("%s: pid %d survived SIGKILL" % (name, p.pid))
        node.daemon = None
        self.link_down(name)

    def link_down(self, name):
        run(["ip", "-n", self.netns_of(name), "link", "set", "eth0", "down"])

    def link_up(self, name):
        run(["ip", "-n", self.netns_of(name), "link", "set", "eth0", "up"])

    def daemon_pid(self, name):
        p = self.node(name).daemon
        return p.pid if p is not None and p.poll() is None else None

    # ---- mirrorctl ---------------------------------------------------------------

    def mirrorctl_argv(self, name, *args, json=False, socket=None, node_ini=True):
        node = self.node(name)
        argv = [bin_path("mirrorctl"), "-m", self.module]
        if node_ini:
            argv += ["-n", node.node_ini]
        if socket:
            argv += ["-s", socket]
        if json:
            argv.append("--json")
        return argv + list(args)

    def ctl(self, name, *args, json=False, timeout=10, **kw):
        """Run mirrorctl inside node `name`; returns (rc, stdout, stderr)."""
        return self.run(name, *self.mirrorctl_argv(name, *args, json=json, **kw), timeout=timeout)

    def status(self, name):
        """`mirrorctl status --json` on node `name`, as a dict."""
        rc, out, err = self.ctl(name, "status", json=True)
        if rc != 0:
            raise HarnessError("%s: mirrorctl status --json exited %d\nstdout: %s\nstderr: %s" % (
                name, rc, out, err))
        try:
            v = json.loads(out)
        except ValueError as e:
            raise HarnessError("%s: mirrorctl status --json printed invalid JSON (%s):\n%s" % (
                name, e, out))
        if not isinstance(v, dict):
            raise HarnessError("%s: mirrorctl status --json printed a %s, not an object" % (
                name, type(v).__name__))
        return v

    def state_rc(self, name):
        """Exit code of `mirrorctl state` (see STATE_RC)."""
        return self.ctl(name, "state")[0]

    def wait_state(self, name, state, timeout_s=10):
        return wait_for(lambda: self.status(name).get("state") == state, timeout_s,
                        what="%s: state %s" % (name, state))

    def connect(self, name, timeout_s=5.0):
        """A raw CtlConn to node `name`'s control socket."""
        return CtlConn(self.node(name).sock, timeout_s)

    # ---- logs ------------------------------------------------------------------------

    SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error: "
                              r"|WARNING: ThreadSanitizer|MR_BUG_ON|BUG at ")

    def sanitizer_reports(self):
        """Sanitizer/MR_BUG_ON reports in the captured stderr of every process started,
        as a list of "node pid: excerpt" strings (builds with MR_ASAN/MR_UBSAN/MR_TSAN)."""
        found = []
        for node in self.nodes.values():
            for p, argv, _, ep in node.procs:
                text = read_text(ep)
                m = self.SANITIZER_RE.search(text)
                if m:
                    start = text.rfind("\n", 0, m.start()) + 1
                    found.append("%s pid %d (%s): %s" % (node.name, p.pid, os.path.basename(argv[0]),
                                                         text[start:start + 2000]))
        return found

    def daemon_log(self, name):
        return read_text(self.node(name).log_file)

    def proc_marks(self):
        """How many processes each node has started so far (for dump_logs(since=...))."""
        return {n: len(node.procs) for n, node in self.nodes.items()}

    def dump_logs(self, why="", since=None):
        """Print every node's module log and the captured output of its processes (only
        those still running or started after the marks in `since`, when given)."""
        if not self.nodes:
            return
        out = ["", "=" * 78, "hamirror harness: logs of cluster %s%s" % (self.prefix, (": " + why) if why else "")]
        keep = os.environ.get("MR_KEEP_LOGS")  # a directory: whole logs copied there
        for node in self.nodes.values():
            out.append("-" * 30 + " %s: %s " % (node.name, node.log_file))
            out.append(log_digest(read_text(node.log_file, "(no log file)\n")))
            if keep:
                os.makedirs(keep, exist_ok=True)
                with open(os.path.join(keep, "%s-%s.log" % (self.prefix, node.name)), "w") as f:
                    f.write(read_text(node.log_file))
            for i, (p, argv, op, ep) in enumerate(node.procs):
                if since is not None and i < since.get(node.name, 0) and p.poll() is not None:
                    continue
                state = "running" if p.poll() is None else "exit %s" % p.returncode
                out.append("-" * 30 + " %s: pid %d (%s): %s" % (node.name, p.pid, state, " ".join(argv)))
                for label, path in (("stdout", op), ("stderr", ep)):
                    t = read_text(path)
                    if t:
                        out.append("[%s]" % label)
                        out.append(tail(t, 100))
        out.append("=" * 78)
        print("\n".join(out), file=sys.stderr, flush=True)


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_from(path, offset):
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size >= offset:
                f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _umount(mp):
    run(["umount", mp], check=False)
    if mp in mounts_under(mp):
        run(["umount", "-l", mp], check=False)
    if mp in mounts_under(mp):
        raise HarnessError("still mounted")


def _rm_scripts_cgroup(node, module):
    """mirrord runs the scripts in cgroup v2 hamirror-NODE-MODULE, a child of its own
    cgroup (ours); it is left behind when the daemon stops before the application."""
    mnt = rel = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - cgroup2 " in line:
                mnt = line.split()[4]
                break
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                rel = line[3:].strip()
    if mnt is None or rel is None:
        return
    d = os.path.join(mnt + (rel if rel != "/" else ""), "hamirror-%s-%s" % (node, module))
    if os.path.isdir(d):
        _empty_cgroup(d)
        os.rmdir(d)


def _empty_cgroup(d, timeout_s=5.0):
    """Kill what is still in cgroup d: an application the scripts started can outlive
    its node's namespaces when a test fails midway, and then the namespace sweep does
    not see it. Bounded; raises HarnessError if the cgroup does not empty."""
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        with open(os.path.join(d, "cgroup.procs")) as f:
            pids = [int(x) for x in f.read().split()]
        if not pids:
            return
        if time.monotonic() >= deadline:
            raise HarnessError("cgroup %s still holds %s" % (d, pids))
        if not told:
            log("killing processes left in %s: %s" % (d, pids))
            told = True
        try:  # cgroup v2 (Linux 5.14 and later): every process in it at once
            with open(os.path.join(d, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        time.sleep(0.05)


def _remove_tree(path):
    left = mounts_under(path)
    for mp in left:
        _umount(mp)
    left = mounts_under(path)
    if left:
        raise HarnessError("not removed: still mounted: %s" % ", ".join(left))
    shutil.rmtree(path)


# --------------------------------------------------------------------------------------
# leftovers of earlier runs


def _owner_alive(record):
    try:
        pid, start = (int(x) for x in read_text(os.path.join(record, "owner")).split()[:2])
    except ValueError:
        # no owner written yet: a run that is just starting, or one that died at once
        try:
            return time.time() - os.stat(record).st_mtime < 60
        except OSError:
            return False
    return proc_starttime(pid) == start


def cleanup_stale(quiet=False):
    """Remove what earlier runs left behind when their owner process is gone: processes in
    their namespaces, mounts, network namespaces, temp dirs, records. Returns the prefixes
    cleaned."""
    cleaned = []
    records = set()
    try:
        records = {d for d in os.listdir(STATE_ROOT) if PREFIX_RE.match(d)}
    except FileNotFoundError:
        pass
    orphans = {}
    for ns in list_netns():
        m = NETNS_RE.match(ns)
        if m:
            orphans.setdefault(m.group(1), []).append(ns)
    for p in sorted(records | set(orphans)):
        rec = os.path.join(STATE_ROOT, p)
        if p in records and _owner_alive(rec):
            continue
        tmp = read_text(os.path.join(rec, "tmpdir")).strip() if p in records else ""
        nss = orphans.get(p, [])
        pids = []
        for ns in nss:
            pids += netns_pids(ns)
        nsfiles = []
        if tmp and os.path.isdir(os.path.join(tmp, "ns")):
            for f in os.listdir(os.path.join(tmp, "ns")):
                nsfiles.append(os.path.join(tmp, "ns", f))
                if os.path.ismount(nsfiles[-1]):
                    pids += mntns_pids(ns_inode(nsfiles[-1]))
        if not quiet:
            log("cleaning stale run %s (netns %s, tmp %s, pids %s)" % (
                p, " ".join(nss) or "-", tmp or "-", sorted(set(pids)) or "-"))
        sigkill_pids(pids)
        if tmp and tmp.startswith(tempfile.gettempdir() + "/hamirror-it-") and os.path.isdir(tmp):
            for mp in mounts_under(tmp):
                _umount(mp)
            try:
                _remove_tree(tmp)
            except Exception as e:
                log("stale %s: %s: %s" % (p, tmp, e))
        for ns in nss:
            run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(rec, ignore_errors=True)
        cleaned.append(p)
    return cleaned


# --------------------------------------------------------------------------------------
# unittest glue


def _bad_count(result):
    return len(result.failures) + len(result.errors) if result is not None else 0


class ClusterTestCase(unittest.TestCase):
    """Base class: one Cluster per test class (self.c), built in setUpClass.

    cluster_kwargs are passed to Cluster(); start_daemons lists the nodes whose mirrord is
    started (and waited for) before the first test. When a test fails or errors, the logs
    of every node are printed right after it."""

    cluster_kwargs = {}
    start_daemons = ()
    c = None

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(**cls.cluster_kwargs)
        cls.c.open()
        try:
            for n in cls.start_daemons:
                cls.c.start_daemon(n)
        except BaseException:
            cls.c.dump_logs("setUpClass failed")
            cls.c.close()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.c is None:
            return
        try:
            # stop daemons first, so that leak reports at exit are captured too
            for n in cls.c.nodes:
                if cls.c.daemon_pid(n) is not None:
                    cls.c.stop_daemon(n)
            reports = cls.c.sanitizer_reports()
        finally:
            cls.c.close()
        if reports:
            raise AssertionError("sanitizer reports:\n" + "\n\n".join(reports))

    def run(self, result=None):
        before = _bad_count(result)
        marks = self.c.proc_marks() if self.c is not None else None
        r = super().run(result)
        if result is not None and _bad_count(result) > before and self.c is not None:
            self.c.dump_logs("after failure of %s" % self.id(), since=marks)
        return r

    def ensure_daemon(self, name):
        """Start mirrord on `name` unless it is running (tests need not depend on order)."""
        if self.c.daemon_pid(name) is None:
            self.c.start_daemon(name)
        return self.c.daemon_pid(name)


def main(binaries=True):
    """Entry point of every test file: skip (77) unless root, run unittest, tear down."""
    require_root()
    try:
        if binaries:
            require_binaries()
    except HarnessError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
    _install_handlers()
    rc = 1
    try:
        prog = unittest.main(module="__main__", exit=False, verbosity=2)
        rc = 0 if prog.result.wasSuccessful() else 1
    except KeyboardInterrupt as e:
        log("interrupted (%s); tearing down" % (e or "SIGINT"))
        rc = 130
    finally:
        for c in list(_LIVE):
            c.close()
        _restore_handlers()
    sys.exit(rc)


# --------------------------------------------------------------------------------------
# command line: cleanup-stale, selftest


_UDP_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999)); s.settimeout(10)
print("listening", flush=True)
d, a = s.recvfrom(100); s.sendto(d, a)
"""

_UDP_PING = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
for i in range(20):
    s.sendto(b"hm", (sys.argv[1], 9999))
    try:
        print(s.recvfrom(100)[0].decode()); break
    except socket.timeout:
        pass
"""


def selftest():
    """Build the topology without daemons and check every host reaches n1 over the bridge."""
    require_root()
    with Cluster(binaries=False) as c:
        for n in c.node_names:
            for own, shared in c.nodes[n].repl_dirs.values():
                with open(os.path.join(own, "who"), "w") as f:
                    f.write(n)
                rc, out, _ = c.run(n, "cat", os.path.join(shared, "who"))
                assert rc == 0 and out == n, "%s sees %r in %s" % (n, out, shared)
        for src in c.node_names[1:] + c.extra_ns:
            echo = subprocess.Popen(c.ns_argv("n1", [sys.executable, "-c", _UDP_ECHO, HOST_ADDR["n1"]]),
                                    stdout=subprocess.PIPE, text=True)
            try:
                assert echo.stdout.readline().strip() == "listening"
                rc, out, err = c.run(src, sys.executable, "-c", _UDP_PING, HOST_ADDR["n1"])
                assert out.strip() == "hm", "%s cannot reach n1: %s %s" % (src, out, err)
            finally:
                echo.kill()
                echo.wait()
                echo.stdout.close()
            print("ok: %s -> n1 over br0" % src)
        print("ok: each node sees its own %s" % c.nodes["n1"].repl_dirs["data"][1])
    print("selftest passed")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "cleanup-stale":
        if os.geteuid() != 0:
            skip("needs root")
        done = cleanup_stale()
        print("cleaned: %s" % (" ".join(done) or "nothing"))
    elif cmd == "selftest":
        selftest()
    else:
        print("usage: %s cleanup-stale|selftest" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
