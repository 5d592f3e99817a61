#!/usr/bin/python3
"""Synchronous replication between two real mirrord over TLS (DESIGN.md section 2).

n1 runs `mirrord --role primary`, n2 `mirrord --role secondary`, each in its own network
and mount namespaces. A workload runs on n1 through the mount; the test then compares the
two nodes' real directories entry by entry (content hash, type, mode, owner, size, link
count and hard-link groups, user xattrs, mtimes of files and directories: the primary sends
the exact times its objects and their parent directories got). Also: crash safety (SIGKILL of the primary's mirrord under load: every write the
application saw return is on the secondary) and hostile input (a peer with a valid
certificate sending paths that escape the root).
"""
import os
import random
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(HERE, "shim"))
import hamirror_test as ht  # noqa: E402
import posix_suite as ps  # noqa: E402

# The workload: more than 20 kinds of operation, run inside n1's namespaces.
WORKLOAD = r"""
import ctypes, mmap, os, sys
d = sys.argv[1]
J = lambda *p: os.path.join(d, *p)
libc = ctypes.CDLL(None, use_errno=True)
def renameat2(a, b, flags):
    if libc.syscall(316, -100, a.encode(), -100, b.encode(), flags) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")
os.mkdir(J("dir")); os.mkdir(J("dir", "sub"))
with open(J("a.txt"), "w") as f: f.write("hello\n")                      # create + write
with open(J("a.txt"), "a") as f: f.write("appended\n")                   # O_APPEND
fd = os.open(J("sparse"), os.O_CREAT | os.O_RDWR, 0o640)
os.pwrite(fd, b"end", 1 << 20); os.pwrite(fd, b"start", 0)              # sparse writes
libc.fallocate(fd, 0, ctypes.c_long(8192), ctypes.c_long(65536))       # fallocate
libc.fallocate(fd, 3, ctypes.c_long(0), ctypes.c_long(4096))             # punch hole
os.fsync(fd); os.close(fd)
fd = os.open(J("big"), os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, os.urandom(3 << 20)); os.fdatasync(fd); os.close(fd)        # 1 MiB records
os.truncate(J("big"), 1 << 20)                                           # truncate shrink
os.truncate(J("a.txt"), 100)                                             # truncate grow
fd = os.open(J("open-renamed"), os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"before ")
os.rename(J("open-renamed"), J("dir", "renamed"))                        # rename while open
os.write(fd, b"after rename"); os.close(fd)
fd = os.open(J("ghost"), os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b"ghost data"); os.unlink(J("ghost"))                       # unlink while open
os.write(fd, b" more"); os.fsync(fd); os.close(fd)
os.link(J("a.txt"), J("dir", "hard"))                                    # hard link
os.symlink("../a.txt", J("dir", "ln"))                                   # symlink
os.mkfifo(J("fifo"), 0o600)                                              # mknod (fifo)
os.chmod(J("dir", "renamed"), 0o600)                                     # chmod
os.chown(J("a.txt"), 1234, 5678)                                         # chown
os.lchown(J("dir", "ln"), 42, 43)                                        # lchown
os.utime(J("sparse"), ns=(1_000_000_000, 2_000_000_123))                 # utimens
os.setxattr(J("a.txt"), "user.color", b"blue")                           # setxattr
os.setxattr(J("big"), "user.tmp", b"x"); os.removexattr(J("big"), "user.tmp")  # removexattr
with open(J("mm"), "wb") as f: f.write(b"\0" * 8192)
with open(J("mm"), "r+b") as f:                                          # mmap writes
    m = mmap.mmap(f.fileno(), 8192); m[100:105] = b"MMAP!"; m.flush(); m.close()
with open(J("x1"), "w") as f: f.write("one")
with open(J("x2"), "w") as f: f.write("two")
renameat2(J("x1"), J("x2"), 2)                                           # RENAME_EXCHANGE
try:
    renameat2(J("x1"), J("x2"), 1)                                       # NOREPLACE: EEXIST
except OSError:
    pass
os.rename(J("x1"), J("dir", "sub", "moved"))                             # rename across dirs
os.mkdir(J("gone")); os.rmdir(J("gone"))                                 # mkdir + rmdir
with open(J("trunc"), "w") as f: f.write("long content here")
with open(J("trunc"), "w") as f: f.write("short")                        # O_TRUNC reopen
os.unlink(J("x2"))                                                       # unlink
fd = os.open(J("dsync"), os.O_CREAT | os.O_WRONLY | os.O_DSYNC, 0o644)   # O_DSYNC writes
os.write(fd, b"durable"); os.close(fd)
print("workload done")
"""


def compare_trees(a, b):
    """Lines describing how two real directories differ (empty: identical), the root
    directory itself included."""
    def root(d):
        st = os.stat(d)
        return {".": ("dir", oct(st.st_mode & 0o7777), st.st_uid, st.st_gid, st.st_mtime_ns)}
    return ps.manifest_diff(dict(ps.manifest(a), **root(a)), dict(ps.manifest(b), **root(b)))


def settled_diff(a, b, timeout_s=10.0):
    """compare_trees(a, b) once the copies agree, or its last answer after timeout_s:
    the secondary applies the last RELEASEs (times, no data) asynchronously, so a tree
    can still differ for a moment after every sequence number was received."""
    deadline = time.monotonic() + timeout_s
    while True:
        diff = compare_trees(a, b)
        if not diff or time.monotonic() >= deadline:
            return diff
        time.sleep(0.05)


class ReplicationCase(unittest.TestCase):
    async_mode = "second"

    def start_pair(self, c):
        c.start_daemon("n2", extra=["--role", "secondary"])
        c.start_daemon("n1", extra=["--role", "primary"])
        ht.wait_for(lambda: c.status("n1")["state"] == "PRIM" and
                    c.status("n2")["state"] == "SECOND", 20,
                    what="n1 PRIM and n2 SECOND")

    def real(self, c, node):
        return c.node(node).repl_dirs["data"][0]

    def shared(self, c):
        return c.node("n1").repl_dirs["data"][1]

    def run_workload(self, c):
        rc, out, err = c.run("n1", sys.executable, "-c", WORKLOAD, self.shared(c), timeout=120)
        self.assertEqual(rc, 0, "workload failed:\n%s%s" % (out, err))
        st = c.status("n1")["replication"]
        self.assertEqual(st["acked_seq"], st["last_seq"], st)
        self.assertFalse(st["diverged"], st)
        self.assertGreater(st["last_seq"], 40, st)

    def check_identical(self, c):
        # RELEASE of the last files is asynchronous; it changes no data, but let the
        # secondary apply everything that was sent before comparing
        ht.wait_for(lambda: c.status("n2")["replication"]["received_seq"] ==
                    c.status("n1")["replication"]["last_seq"], 10, what="secondary caught up")
        lines = compare_trees(self.real(c, "n1"), self.real(c, "n2"))
        self.assertFalse(lines, "primary and secondary differ:\n  " + "\n  ".join(lines))
        self.assertFalse(c.status("n2")["replication"]["apply_failed"])


class MixedWorkloadSecond(ReplicationCase):
    def test_mixed_workload_identical(self):
        with ht.Cluster(async_mode=self.async_mode) as c:
            self.start_pair(c)
            self.run_workload(c)
            self.check_identical(c)
            # what an admin sees
            rc, out, err = c.ctl("n1", "status")
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"mirror: +primary, link up, async=%s, seq (\d+) acked \1,"
                             % self.async_mode)
            rc, out, err = c.ctl("n2", "status")
            self.assertRegex(out, r"mirror: +secondary, link up, async=%s, received seq \d+"
                             % self.async_mode)
            # the secondary's copy is read-only to local users
            rc, out, err = c.run("n2", "/bin/sh", "-c", "echo x > %s/local" % self.shared(c))
            self.assertNotEqual(rc, 0)
            self.assertIn("Read-only file system", err)
            for n in ("n1", "n2"):
                self.assertEqual(c.stop_daemon(n), 0)
            self.assertFalse(c.sanitizer_reports())


class MixedWorkloadNone(MixedWorkloadSecond):
    async_mode = "none"


# A writer that records each write only after the call returned (after fsync with
# async="none"), in a log outside the replicated directory.
WRITER = r"""
import os, sys, hashlib
d, logpath, sync = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
log = open(logpath, "a", buffering=1)
i = 0
try:
    while True:
        name = "f%03d" % (i % 50)
        data = ("%08d" % i).encode() * 512
        fd = os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY, 0o644)
        off = (i // 50) * len(data)
        os.pwrite(fd, data, off)
        if sync:
            os.fsync(fd)
        os.close(fd)
        log.write("%s %d %s\n" % (name, off, hashlib.sha256(data).hexdigest()))
        i += 1
except OSError as e:
    print("writer stopped: %s after %d writes" % (e, i), flush=True)
"""


class CrashSafety(ReplicationCase):
    rounds = 10

    def test_sigkill_primary_loses_no_acknowledged_write(self):
        rnd = random.Random(int(os.environ.get("MR_TEST_SEED", "1234")))
        for mode in ("second", "none"):
            with ht.Cluster(async_mode=mode) as c:
                for rnd_i in range(self.rounds // 2):
                    self.one_round(c, rnd, mode, rnd_i)

    def one_round(self, c, rnd, mode, rnd_i):
        for n in ("n1", "n2"):  # fresh nodes: a restarted pair would need a resync
            for e in os.listdir(self.real(c, n)):
                subprocess.run(["rm", "-rf", os.path.join(self.real(c, n), e)], check=True)
            for e in os.listdir(c.node(n).state_dir):  # no history either
                os.unlink(os.path.join(c.node(n).state_dir, e))
        self.start_pair(c)
        logpath = os.path.join(c.node("n1").out_dir, "writes-%s-%d.log" % (mode, rnd_i))
        w = c.popen("n1", sys.executable, "-c", WRITER, self.shared(c), logpath,
                    "1" if mode == "none" else "0")
        ht.wait_for(lambda: os.path.exists(logpath) and os.path.getsize(logpath) > 0, 20,
                    what="writer started")
        time.sleep(rnd.uniform(0.05, 0.6))  # the random moment (not a synchronisation)
        os.kill(c.daemon_pid("n1"), 9)
        c.node("n1").daemon.wait(10)
        c.node("n1").daemon = None
        w.wait(30)
        with open(logpath) as f:
            records = [ln.split() for ln in f if ln.strip()]
        self.assertGreater(len(records), 0)
        sec = self.real(c, "n2")
        for name, off, digest in records:
            with open(os.path.join(sec, name), "rb") as f:
                f.seek(int(off))
                got = f.read(4096)
            import hashlib
            self.assertEqual(hashlib.sha256(got).hexdigest(), digest,
                             "%s mode=%s round %d: acknowledged write %s@%s missing on the "
                             "secondary (%d writes recorded)" % (c.prefix, mode, rnd_i, name,
                                                                 off, len(records)))
        ht.log("crash round mode=%s %d: %d acknowledged writes all on the secondary" % (
            mode, rnd_i, len(records)))
        self.assertEqual(c.stop_daemon("n2"), 0)


class StalledSecondary(ReplicationCase):
    def test_primary_carries_on_when_the_secondary_stops_acknowledging(self):
        """SIGSTOP the secondary's mirrord: the primary's writes see latency, never an
        error; the link is dropped (heartbeats lost, peer silent, or sendtimeout) and n1
        goes ALONE with the divergence recorded; after SIGCONT the secondary does not
        silently resume: it is resynced."""
        with ht.Cluster() as c:
            self.start_pair(c)
            d = self.shared(c)
            rc, out, err = c.run("n1", "/bin/sh", "-c", "echo before > %s/f && sync" % d)
            self.assertEqual(rc, 0, err)
            os.kill(c.daemon_pid("n2"), 19)  # SIGSTOP
            try:
                t = time.monotonic()
                rc, out, err = c.run("n1", sys.executable, "-c",
                                     "import os,sys; fd=os.open(sys.argv[1], os.O_WRONLY|os.O_APPEND);"
                                     "os.write(fd, b'during stall\\n'); os.fsync(fd)",
                                     os.path.join(d, "f"), timeout=60)
                waited = time.monotonic() - t
                self.assertEqual(rc, 0, "the application saw an error: %s" % err)
                ht.log("write during a stalled secondary returned after %.1f s" % waited)
                ht.wait_for(lambda: c.status("n1")["state"] == "ALONE", 30,
                            what="n1 ALONE after the stall")
                self.assertTrue(c.status("n1")["replication"]["diverged"])
            finally:
                os.kill(c.daemon_pid("n2"), 18)  # SIGCONT
            # the resumed secondary missed a change: it is resynced, not silently resumed
            ht.wait_for(lambda: c.status("n1")["state"] == "PRIM" and
                        c.status("n2")["state"] == "SECOND" and
                        c.status("n2")["readiness"] == "Ready", 60,
                        what="the pair resynced after the stall")
            self.assertIn("resync: done", ht.read_text(c.node("n1").log_file))
            with open(os.path.join(self.real(c, "n2"), "f")) as f:
                self.assertEqual(f.read(), "before\nduring stall\n")
            for n in ("n1", "n2"):
                self.assertEqual(c.stop_daemon(n), 0)


class SendTimeout(ReplicationCase):
    def test_primary_drops_a_peer_that_stops_acknowledging(self):
        """The secondary stays connected (PING/PONG) but never acknowledges (test knob
        MR_TEST_WITHHOLD_ACKS, MR_TESTING builds): after <rfs sendtimeout="2s"> the primary
        drops the link, completes the waiting write locally and goes ALONE."""
        with ht.Cluster() as c:
            text = open(c.userconfig).read()
            self.assertIn('<rfs async="second"', text)
            with open(c.userconfig, "w") as f:
                f.write(text.replace('<rfs async="second"', '<rfs sendtimeout="2s" async="second"'))
            os.environ["MR_TEST_WITHHOLD_ACKS"] = "1"
            try:
                c.start_daemon("n2", extra=["--role", "secondary"])
            finally:
                del os.environ["MR_TEST_WITHHOLD_ACKS"]
            c.start_daemon("n1", extra=["--role", "primary"])
            ht.wait_for(lambda: c.status("n1")["state"] == "PRIM", 20, what="n1 PRIM")
            off = os.path.getsize(c.node("n1").log_file)
            t = time.monotonic()
            rc, out, err = c.run("n1", "/bin/sh", "-c", "echo x > %s/f" % self.shared(c),
                                 timeout=60)
            waited = time.monotonic() - t
            self.assertEqual(rc, 0, "the application saw an error: %s" % err)
            log = ht.read_text(c.node("n1").log_file)[off:]
            self.assertRegex(log, r"repl: peer stalled, dropping the link reason=\"no "
                                  r"acknowledgement for \d+ ms \(sendtimeout 2000 ms\)")
            # (the stall clock starts with the first unacknowledged record, which may be
            # the first resync record of the pairing rather than this write)
            self.assertGreaterEqual(waited, 0.5)
            # the write completed locally and the divergence was recorded (the secondary,
            # still alive, may re-pair and be resynced right after: the flag then clears)
            ht.wait_for(lambda: "divergence recorded" in
                        ht.read_text(c.node("n1").log_file)[off:], 20,
                        what="n1 recorded the divergence")
            for n in ("n1", "n2"):
                self.assertEqual(c.stop_daemon(n), 0)


# A TLS client with n1's certificate that plays a primary and sends hostile ops.
EVIL = r"""
import socket, ssl, struct, sys
ca, cert, key, host, port, module, hash_hex, path = sys.argv[1:9]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_verify_locations(ca)
ctx.load_cert_chain(cert, key)
raw = socket.create_connection((host, int(port)), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="n2")
def pstr(b):
    return struct.pack(">H", len(b)) + b
def frame(t, p):
    return struct.pack(">IHH", len(p), t, 0) + p
hello = (struct.pack(">HB", 2, 1) + pstr(b"n1") + pstr(module.encode())  # version 2, primary
         + bytes.fromhex(hash_hex) + bytes(16) + struct.pack(">Q", 0))
s.sendall(frame(1, hello))
buf = b""
while len(buf) < 8:
    d = s.recv(4096)
    if not d:
        print("EOF before HELLO", flush=True); sys.exit(1)
    buf += d
print("peer frame type=%d" % struct.unpack(">IHH", buf[:8])[1], flush=True)
# OP seq 1: CREATE (type 2) of a file at the hostile path
op = (struct.pack(">QBB", 1, 2, 0) + struct.pack(">II", 0o100, 0) + struct.pack(">Q", 5)
      + struct.pack(">III", 0o100644, 0, 0) + struct.pack(">QQQ", 0, 0, 0)
      + struct.pack(">qI", 0, 0) + struct.pack(">qI", 0, 0)    # atime, mtime
      + struct.pack(">qI", 0, 0) + struct.pack(">qI", 0, 0)    # parents' mtimes
      + pstr(path.encode()) + pstr(b"") + pstr(b"") + struct.pack(">I", 0))
s.sendall(frame(3, op))
try:
    while s.recv(4096):
        pass
except (ssl.SSLError, OSError) as e:
    pass
print("closed", flush=True)
"""


# Heartbeats of a fake primary n1 (ALONE Ready, generation 0 like its HELLO: no
# resync is due, so every op is applied strictly), so that n2 joins it as
# SECOND; argv: key file, module, config hash (hex), n2's address.
FAKE_HB = r"""
import os, socket, sys, time
sys.path.insert(0, os.environ["HT_LIB"])
import hamirror_test as ht
key = open(sys.argv[1], "rb").read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.1", 9200))
epoch = int(time.time() * 1e6)
for seq in range(1, 100000):
    s.sendto(ht.hb_datagram(key, 0, 0, sys.argv[2], epoch, seq, gen_seq=0, gen_id=0,
                            config_hash=bytes.fromhex(sys.argv[3])), (sys.argv[4], 9200))
    time.sleep(0.1)
"""


class HostilePeer(ReplicationCase):
    def test_paths_escaping_the_root_are_refused(self):
        with ht.Cluster() as c:
            c.start_daemon("n2", extra=["--role", "secondary"])
            h = c.status("n2")["config_hash"]
            os.environ["HT_LIB"] = os.path.dirname(os.path.abspath(ht.__file__))
            c.popen("n1", sys.executable, "-c", FAKE_HB, c.hb_key, c.module, h,
                    ht.HOST_ADDR["n2"])
            ht.wait_for(lambda: c.status("n2")["state"] == "SECOND", 15,
                        what="n2 joins the fake primary as SECOND")
            real = self.real(c, "n2")
            outside = os.path.dirname(real)
            # a symlink planted in the secondary's real directory, pointing out of it
            os.symlink(outside, os.path.join(real, "evil"))
            cases = [("../escaped", "malformed|refused op|\\.\\."),
                     ("/abs-escaped", "refused op"),
                     ("evil/escaped-link", "no longer matches|cannot apply")]
            for path, why in cases:
                off = os.path.getsize(c.node("n2").log_file)
                rc, out, err = c.run("n1", sys.executable, "-c", EVIL,
                                     os.path.join(c.tls_dir, "ca.crt"),
                                     os.path.join(c.tls_dir, "n1.crt"),
                                     os.path.join(c.tls_dir, "n1.key"), ht.HOST_ADDR["n2"],
                                     "9201", c.module, h, path, timeout=30)
                self.assertEqual(rc, 0, out + err)
                self.assertIn("peer frame type=1", out)
                ht.wait_for(lambda: "link down" in ht.read_text(c.node("n2").log_file)[off:],
                            15, what="n2 dropped the hostile link (%s)" % path)
                text = ht.read_text(c.node("n2").log_file)[off:]
                import re
                self.assertRegex(text, why, text[-2000:])
                for name in ("escaped", "abs-escaped", "escaped-link"):
                    self.assertFalse(os.path.exists(os.path.join(outside, name)),
                                     "%s was created outside the root" % name)
                    self.assertFalse(os.path.exists("/" + name))
                # the daemon is alive and answers
                self.assertEqual(c.status("n2")["pid"], c.daemon_pid("n2"))
                if "no longer matches" in why:
                    break  # the copy is marked diverged: later links are refused
            self.assertEqual(c.stop_daemon("n2"), 0)


if __name__ == "__main__":
    ht.main()
