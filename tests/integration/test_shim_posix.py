#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""integration.shim_posix - the standalone mirror-shim against raw ext4.

Needs root and /dev/fuse (exit 77 otherwise). In a temp dir under /var/tmp it makes
raw/ and shim/, mounts `mirror-shim -f shim/`, runs shim/posix_suite.py on both, takes a
checksum manifest of shim/ through the mount, unmounts with SIGTERM and checks that the
underlying shim/ holds exactly the same tree. Also: --read-only (every mutation EROFS,
reads fine), SIGINT and daemon mode, and the failure cases (DIR missing, DIR already
mounted, not root). Every wait has a deadline; every mount is undone in a finally.
"""

import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
import posix_suite as ps  # noqa: E402

SHIM = ps.find_shim_bin()


def skip_reason():
    if os.geteuid() != 0:
        return "integration.shim_posix: needs root (FUSE mounts, mknod, other uids)"
    if not os.path.exists("/dev/fuse"):
        return "integration.shim_posix: /dev/fuse is missing"
    return None


class ShimTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="hamirror-shim-", dir="/var/tmp")
        os.chmod(self.tmp, 0o755)
        self.mounts = []

    def tearDown(self):
        for m in self.mounts:
            m.stop()
        for sub in os.listdir(self.tmp):
            ps.force_unmount(os.path.join(self.tmp, sub))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def mkdir(self, name):
        p = os.path.join(self.tmp, name)
        os.mkdir(p)
        os.chmod(p, 0o755)
        return p

    def mount(self, d, extra=()):
        m = ps.ShimMount(d, extra=extra, log_path=d + ".log")
        self.mounts.append(m)
        return m.start()

    def run_shim(self, argv, timeout_s=20, **kw):
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout_s, **kw)


class PosixSuite(ShimTestCase):
    def test_posix_suite_and_data_after_unmount(self):
        raw = self.mkdir("raw")
        shim = self.mkdir("shim")
        m = self.mount(shim)
        results, ok = ps.run_suite(raw, shim)
        self.assertGreaterEqual(len(results), 70)
        diffs = [r["name"] for r in results if r["status"] not in ("PASS", "KNOWN")]
        through = ps.manifest(shim)
        rc = m.stop()
        self.assertEqual(rc, 0, "mirror-shim exit status after SIGTERM: %s\n%s"
                         % (rc, m.log_text()[-3000:]))
        self.assertEqual(ps.fuse_mounts(shim), 0, "still mounted after SIGTERM")
        after = ps.manifest(shim)
        lines = ps.manifest_diff(through, after)
        self.assertFalse(lines, "tree seen through the mount differs from the underlying "
                         "tree after unmount:\n  " + "\n  ".join(lines))
        if not diffs:
            # Same operations, same results: the trees must match too (times excepted),
            # except the directories of cases whose comparison accepted a documented
            # difference (note set, e.g. O_TMPFILE answered with EOPNOTSUPP), and
            # absolute symlink targets, which name their own tree.
            accepted = {r["name"] for r in results if r.get("note")}

            def norm(man, root):
                out = {}
                for k, v in man.items():
                    if k.split("/", 1)[0] in accepted:
                        continue
                    if v and v[0] == "lnk" and isinstance(v[7], str):
                        # the size of a symlink is its target's length
                        v = v[:4] + (None,) + v[5:7] + (v[7].replace(root, "<root>"),) + v[8:]
                    out[k] = v
                return out

            lines = ps.manifest_diff(norm(ps.manifest(raw, with_times=False), raw),
                                     norm(ps.manifest(shim, with_times=False), shim))
            self.assertFalse(lines, "raw tree differs from shim tree:\n  "
                             + "\n  ".join(lines))
        self.assertTrue(ok, "cases that differ between raw and shim: %s" % ", ".join(diffs))


class MountModes(ShimTestCase):
    def populate(self, d):
        with open(os.path.join(d, "file"), "wb") as f:
            f.write(b"read-only content")
        os.mkdir(os.path.join(d, "dir"))
        os.mkdir(os.path.join(d, "emptydir"))
        os.symlink("file", os.path.join(d, "link"))
        os.setxattr(os.path.join(d, "file"), "user.k", b"v")

    def test_read_only(self):
        d = self.mkdir("ro")
        self.populate(d)
        before = ps.manifest(d)
        m = self.mount(d, extra=["--read-only"])
        J = os.path.join
        f = J(d, "file")
        mutations = [
            ("open O_WRONLY", lambda: os.open(f, os.O_WRONLY)),
            ("open O_RDWR", lambda: os.open(f, os.O_RDWR)),
            ("open O_CREAT new", lambda: os.open(J(d, "new"), os.O_CREAT | os.O_WRONLY)),
            ("open O_TRUNC", lambda: os.open(f, os.O_RDONLY | os.O_TRUNC)),
            ("truncate", lambda: os.truncate(f, 0)),
            ("mkdir", lambda: os.mkdir(J(d, "newdir"))),
            ("rmdir", lambda: os.rmdir(J(d, "emptydir"))),
            ("unlink", lambda: os.unlink(f)),
            ("rename", lambda: os.rename(f, J(d, "renamed"))),
            ("link", lambda: os.link(f, J(d, "hard"))),
            ("symlink", lambda: os.symlink("x", J(d, "sym"))),
            ("chmod", lambda: os.chmod(f, 0o600)),
            ("chown", lambda: os.chown(f, 1, 1)),
            ("utime", lambda: os.utime(f, ns=(1, 1))),
            ("setxattr", lambda: os.setxattr(f, "user.n", b"1")),
            ("removexattr", lambda: os.removexattr(f, "user.k")),
            ("mknod", lambda: os.mknod(J(d, "node"), 0o600 | stat.S_IFCHR,
                                       os.makedev(1, 3))),
            ("mkfifo", lambda: os.mkfifo(J(d, "fifo"))),
            ("renameat2 EXCHANGE", lambda: ps.renameat2(f, J(d, "dir"),
                                                        ps.RENAME_EXCHANGE)),
        ]
        wrong = []
        for name, fn in mutations:
            try:
                r = fn()
                if isinstance(r, int) and name.startswith("open"):
                    os.close(r)
                wrong.append("%s: succeeded" % name)
            except OSError as e:
                if e.errno != errno.EROFS:
                    wrong.append("%s: %s instead of EROFS" % (name, ps._ename(e.errno)))
        read_checks = [
            ("read", lambda: ps.rfile(f), b"read-only content"),
            ("listdir", lambda: sorted(os.listdir(d)), ["dir", "emptydir", "file", "link"]),
            ("readlink", lambda: os.readlink(J(d, "link")), "file"),
            ("getxattr", lambda: os.getxattr(f, "user.k"), b"v"),
            ("listxattr", lambda: os.listxattr(f), ["user.k"]),
            ("stat dir", lambda: stat.S_ISDIR(os.stat(J(d, "dir")).st_mode), True),
            ("statvfs", lambda: os.statvfs(d).f_namemax, 255),
        ]
        for name, fn, want in read_checks:
            try:
                got = fn()
            except OSError as e:
                wrong.append("read op %s failed: %s" % (name, ps._ename(e.errno)))
                continue
            if got != want:
                wrong.append("read op %s: %r, expected %r" % (name, got, want))
        self.assertFalse(wrong, "read-only mount:\n  " + "\n  ".join(wrong))
        self.assertEqual(m.stop(), 0)
        self.assertEqual(ps.manifest(d), before, "read-only mount changed the tree")

    def test_sigint_unmounts(self):
        d = self.mkdir("sigint")
        m = self.mount(d)
        with open(os.path.join(d, "x"), "wb") as f:
            f.write(b"before sigint")
        rc = m.stop(sig=signal.SIGINT)
        self.assertEqual(rc, 0, "exit status after SIGINT: %s\n%s" % (rc, m.log_text()))
        self.assertEqual(ps.fuse_mounts(d), 0)
        self.assertEqual(ps.rfile(os.path.join(d, "x")), b"before sigint")

    def test_daemon_mode(self):
        d = self.mkdir("daemon")
        with open(os.path.join(d, "old"), "wb") as f:
            f.write(b"old")
        try:
            p = self.run_shim([SHIM, d], timeout_s=30)
            self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
            # "exits 0 only once the mount is live": no polling here on purpose.
            self.assertEqual(ps.fuse_mounts(d), 1, "mount not live when the parent exited")
            try:
                got = ps.rfile(os.path.join(d, "old"))
            except OSError as e:
                got = "open/read failed: %s" % ps._ename(e.errno)
            self.assertEqual(got, b"old", "reading a file that existed before the mount, "
                             "through a detached (no -f) mirror-shim")
            with open(os.path.join(d, "new"), "wb") as f:
                f.write(b"new")
            u = subprocess.run(["fusermount3", "-u", d], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
            self.assertEqual(u.returncode, 0, u.stdout)
            ps.wait_for(lambda: ps.fuse_mounts(d) == 0, 10, "unmount of %s" % d)
            self.assertEqual(sorted(os.listdir(d)), ["new", "old"])
            self.assertEqual(ps.rfile(os.path.join(d, "new")), b"new")
            # The detached server must exit once unmounted.
            ps.wait_for(lambda: not _procs_with_arg(SHIM, d), 10,
                        "the detached mirror-shim to exit")
        finally:
            ps.force_unmount(d)

    def test_umount_command(self):
        d = self.mkdir("umount")
        m = self.mount(d)
        with open(os.path.join(d, "f"), "wb") as f:
            f.write(b"data")
        u = subprocess.run(["umount", d], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30)
        self.assertEqual(u.returncode, 0, u.stdout)
        rc = m.proc.wait(timeout=15)
        self.assertEqual(rc, 0, "exit status after umount: %s" % rc)
        m.stop()
        self.assertEqual(ps.rfile(os.path.join(d, "f")), b"data")

    def test_unmounted_from_outside_leaves_the_mount_below(self):
        """The replicated directory is itself a mount point (here a bind mount, in
        production often a data disk). An admin's lazy umount detaches the shim's
        mount while a file is open on it, so the FUSE connection lives on. When
        the shim then stops, an unmount by path would reach the mount below and
        take the directory's real contents away (the next open of the directory
        would find the empty mount point: files "lost"). It must leave it alone."""
        src = self.mkdir("below-src")
        d = self.mkdir("below")
        with open(os.path.join(src, "f"), "wb") as f:
            f.write(b"on the disk")
        subprocess.run(["mount", "--bind", src, d], check=True, timeout=30)
        held = None
        try:
            m = self.mount(d)
            held = open(os.path.join(d, "f"), "rb")  # keeps the detached mount alive
            u = subprocess.run(["umount", "-l", d], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
            self.assertEqual(u.returncode, 0, u.stdout)
            self.assertEqual(ps.fuse_mounts(d), 0)
            rc = m.stop()
            self.assertEqual(rc, 0, "exit status: %s\n%s" % (rc, m.log_text()))
            self.assertEqual(_mounts_at(d), 1, "the bind mount below the shim was unmounted "
                             "too\n" + m.log_text())
            self.assertEqual(ps.rfile(os.path.join(d, "f")), b"on the disk")
        finally:
            if held is not None:
                try:
                    held.close()
                except OSError:  # ENOTCONN: the shim is gone
                    pass
            for _ in range(4):
                if not _mounts_at(d):
                    break
                subprocess.run(["umount", "-l", d], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=30)


def _mounts_at(path):
    """Number of mounts of any type stacked exactly at path."""
    n = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and ps._unescape_mountinfo(fields[4]) == path:
                n += 1
    return n


def _procs_with_arg(binary, arg):
    """PIDs whose command line is `binary ... arg` (used to see a detached server)."""
    out = []
    base = os.path.basename(binary)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == base and \
                os.fsencode(arg) in argv:
            out.append(int(pid))
    return out


class Failures(ShimTestCase):
    def test_missing_dir(self):
        missing = os.path.join(self.tmp, "does-not-exist")
        p = self.run_shim([SHIM, "-f", missing])
        err = p.stderr.decode(errors="replace")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("does-not-exist", err, "message should name the directory: %r" % err)
        self.assertEqual(len(err.strip().splitlines()), 1, "one-line reason: %r" % err)

    def test_not_a_directory(self):
        f = os.path.join(self.tmp, "plainfile")
        with open(f, "wb"):
            pass
        p = self.run_shim([SHIM, "-f", f])
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(p.stderr.strip(), "no message on stderr")
        self.assertEqual(ps.fuse_mounts(f), 0)

    def test_already_mounted(self):
        d = self.mkdir("twice")
        self.mount(d)
        try:
            p = self.run_shim([SHIM, "-f", d], timeout_s=20)
        except subprocess.TimeoutExpired:
            self.fail("second mirror-shim on the same DIR did not fail (still running)")
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(p.stderr.strip(), "no message on stderr")
        self.assertEqual(ps.fuse_mounts(d), 1, "a second mount was stacked")
        with open(os.path.join(d, "still-works"), "wb") as f:
            f.write(b"ok")

    def test_not_root(self):
        d = self.mkdir("nonroot")
        # Copy the binary so uid 65534 can reach it whatever the build dir's modes.
        b = os.path.join(self.tmp, "mirror-shim")
        shutil.copy2(SHIM, b)
        os.chmod(b, 0o755)
        p = self.run_shim(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           b, "-f", d])
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(p.stderr.strip(), "no message on stderr")
        self.assertEqual(ps.fuse_mounts(d), 0)


def main():
    why = skip_reason()
    if why:
        print(why + "; skipping")
        return ps.SKIP_RC
    if not ps.have_setfacl():
        # Preflight: the ACL cases need setfacl/getfacl.
        print("integration.shim_posix: installing the acl package (setfacl/getfacl)")
        try:
            subprocess.run(["apt-get", "install", "-y", "-qq", "acl"], timeout=300,
                           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        except (OSError, subprocess.TimeoutExpired) as e:
            print("integration.shim_posix: apt-get failed: %s" % e)
        if not ps.have_setfacl():
            print("integration.shim_posix: WARNING: no setfacl; the ACL cases only "
                  "check that both sides lack it")
    if not os.access(SHIM, os.X_OK):
        print("integration.shim_posix: %s is missing (build driver-shim first)" % SHIM)
        return 1
    prog = unittest.main(argv=[sys.argv[0]] + sys.argv[1:], exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
