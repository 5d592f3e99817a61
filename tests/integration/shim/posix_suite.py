#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""posix_suite - POSIX behaviour comparison of a raw directory and a shim mount.

Every case is one operation sequence. It runs once in a fresh sub-directory of the raw
directory and once in a fresh sub-directory of the shim-mounted directory (both on the
same file system), and records, step by step, return values, errno names and stat
fields. The two records must be identical. Inode numbers are never compared directly:
each one is replaced by a per-case label ("i1", "i2", ...) in order of first sight, so
only the relations ("same inode as") are compared. Times are recorded only where they
are deterministic (set explicitly) or as relations ("recent", "unchanged").

Cases that need another user run their steps in a forked child that drops to that
uid/gid (os.setgroups/setresgid/setresuid), so the kernel's (and the shim's
default_permissions) checks apply. Root is required for those and for mknod/chown.

Use:
    posix_suite.py --raw DIR_A --shim DIR_B [-k SUBSTRING]... [-v]
    posix_suite.py --list
or from Python: run_suite(raw_dir, shim_dir) -> (results, ok).

The ACL cases use setfacl/getfacl (Debian package `acl`); without them they record
"setfacl missing" on both sides (test_shim_posix.py installs the package first).
Case directories are left in place so the caller can compare trees afterwards.
The module also holds the helpers the ctest drivers share: find_shim_bin(), wait_for(),
fuse_mounts(), force_unmount(), ShimMount (mount with a deadline, always unmounted) and
manifest()/manifest_diff() (checksums of a whole tree, inode numbers as link groups).

Exit status: 0 when every case matches (or is listed in KNOWN_DIFFERENCES), 1 on any
DIFF/ERROR, 2 on usage errors. Python 3 standard library only.
"""

import argparse
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import mmap
import os
import pickle
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time

# Cases whose difference is accepted, name -> reason. Keep it empty unless the shim
# truly cannot match the raw behaviour; every entry must say why.
KNOWN_DIFFERENCES = {}

NOBODY = 65534          # a non-root user with no home, no groups
USER_A = 60001          # test users with no passwd entry; gid == uid
USER_B = 60002
GROUP_G = 60010         # a group neither test user belongs to
CHILD_DEADLINE_S = 60.0

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
SYS_renameat2 = 316     # x86_64
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
XATTR_CREATE = getattr(os, "XATTR_CREATE", 1)
XATTR_REPLACE = getattr(os, "XATTR_REPLACE", 2)
DT_NAMES = {0: "UNKNOWN", 1: "FIFO", 2: "CHR", 4: "DIR", 6: "BLK", 8: "REG", 10: "LNK",
            12: "SOCK"}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.fallocate.restype = ctypes.c_int


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec),
                            ctypes.c_int]
_libc.opendir.restype = ctypes.c_void_p
_libc.opendir.argtypes = [ctypes.c_char_p]
_libc.readdir.restype = ctypes.POINTER(_Dirent)
_libc.readdir.argtypes = [ctypes.c_void_p]
_libc.closedir.argtypes = [ctypes.c_void_p]
_libc.syncfs.argtypes = [ctypes.c_int]
_libc.linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_int]
AT_SYMLINK_FOLLOW = 0x400


def _oserr():
    e = ctypes.get_errno()
    return OSError(e, os.strerror(e))


def renameat2(old, new, flags):
    r = _libc.syscall(ctypes.c_long(SYS_renameat2), ctypes.c_int(AT_FDCWD),
                      ctypes.c_char_p(os.fsencode(old)), ctypes.c_int(AT_FDCWD),
                      ctypes.c_char_p(os.fsencode(new)), ctypes.c_uint(flags))
    if r == -1:
        raise _oserr()
    return 0


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) == -1:
        raise _oserr()
    return 0


def utimensat(path, atime, mtime, nofollow=False):
    """atime/mtime: (sec, nsec) or UTIME_NOW / UTIME_OMIT."""
    ts = (_Timespec * 2)()
    for i, t in enumerate((atime, mtime)):
        if isinstance(t, tuple):
            ts[i].tv_sec, ts[i].tv_nsec = t
        else:
            ts[i].tv_sec, ts[i].tv_nsec = 0, t
    if _libc.utimensat(AT_FDCWD, os.fsencode(path), ts,
                       AT_SYMLINK_NOFOLLOW if nofollow else 0) == -1:
        raise _oserr()
    return 0


def syncfs(fd):
    if _libc.syncfs(fd) == -1:
        raise _oserr()
    return 0


def linkat_follow(src, dst):
    """linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW): os.link() calls plain
    link() unless dir fds are given, which would link the /proc magic link itself."""
    if _libc.linkat(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst),
                    AT_SYMLINK_FOLLOW) == -1:
        raise _oserr()
    return 0


def readdir_types(path):
    """Names and d_type through libc readdir (os.scandir hides d_type)."""
    dp = _libc.opendir(os.fsencode(path))
    if not dp:
        raise _oserr()
    out = []
    try:
        while True:
            ent = _libc.readdir(dp)
            if not ent:
                break
            out.append((ent.contents.d_name.decode(errors="replace"),
                        DT_NAMES.get(ent.contents.d_type, str(ent.contents.d_type))))
    finally:
        _libc.closedir(dp)
    return sorted(out)


# ---------------------------------------------------------------------------------------
# Recording


def _norm(v):
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        v = bytes(v)
        if len(v) <= 64:
            return v
        return ("bytes", len(v), hashlib.sha256(v).hexdigest()[:16])
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _norm(x)) for k, x in v.items()))
    if isinstance(v, os.stat_result):
        return "stat_result"
    return repr(v)


def _ename(e):
    if e == errno.EOPNOTSUPP:      # == ENOTSUP on Linux; one spelling everywhere
        return "EOPNOTSUPP"
    return errno.errorcode.get(e, "E%d" % e)


TYPE_NAMES = {stat.S_IFREG: "reg", stat.S_IFDIR: "dir", stat.S_IFLNK: "lnk",
              stat.S_IFIFO: "fifo", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk",
              stat.S_IFSOCK: "sock"}


class Rec:
    """The record of one case on one side: an ordered list of (label, value)."""

    def __init__(self, d):
        self.d = d
        self.items = []
        self.inos = {}
        self.fds = []

    def add(self, label, value):
        v = _norm(value)
        if isinstance(v, str):
            v = v.replace(self.d, "<d>")
        self.items.append((label, v))

    def ino(self, n):
        if n not in self.inos:
            self.inos[n] = "i%d" % (len(self.inos) + 1)
        return self.inos[n]

    def call(self, label, fn, *args, **kw):
        """Run fn; record ('ok', value) or ('err', ENAME). Returns the value or None."""
        try:
            v = fn(*args, **kw)
        except OSError as e:
            self.add(label, ("err", _ename(e.errno)))
            return None
        self.add(label, ("ok", v))
        return v

    def ok(self, label, fn, *args, **kw):
        """Like call() but records only success/errno, not the value (fds, pids)."""
        try:
            v = fn(*args, **kw)
        except OSError as e:
            self.add(label, ("err", _ename(e.errno)))
            return None
        self.add(label, "ok")
        return v if v is not None else True

    def open(self, label, path, flags, mode=0o644):
        fd = self.ok(label, os.open, path, flags | os.O_CLOEXEC, mode)
        if fd is not None:
            self.fds.append(fd)
        return fd

    def close(self, label, fd):
        if fd in self.fds:
            self.fds.remove(fd)
        return self.call(label, os.close, fd)

    def st(self, st, times=False, blocks=False):
        fmt = stat.S_IFMT(st.st_mode)
        d = {"type": TYPE_NAMES.get(fmt, oct(fmt)), "mode": oct(stat.S_IMODE(st.st_mode)),
             "nlink": st.st_nlink, "uid": st.st_uid, "gid": st.st_gid,
             "ino": self.ino(st.st_ino)}
        if fmt != stat.S_IFDIR or blocks:
            d["size"] = st.st_size
        if fmt in (stat.S_IFCHR, stat.S_IFBLK):
            d["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
        if blocks:
            d["blocks"] = st.st_blocks
        if times:
            d["atime_ns"] = st.st_atime_ns
            d["mtime_ns"] = st.st_mtime_ns
        return d

    def stat(self, label, path, follow=True, times=False, blocks=False):
        try:
            st = os.stat(path, follow_symlinks=follow)
        except OSError as e:
            self.add(label, ("err", _ename(e.errno)))
            return None
        self.add(label, ("ok", self.st(st, times, blocks)))
        return st

    def fstat(self, label, fd, times=False, blocks=False):
        try:
            st = os.fstat(fd)
        except OSError as e:
            self.add(label, ("err", _ename(e.errno)))
            return None
        self.add(label, ("ok", self.st(st, times, blocks)))
        return st

    def as_user(self, prefix, uid, gid, fn, groups=()):
        """Run fn(rec) in a forked child with uid/gid (and supplementary groups) and
        append its records, labelled with prefix."""
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(rfd)
                sub = Rec(self.d)
                sub.inos = dict(self.inos)
                try:
                    os.setgroups(list(groups))
                    os.setresgid(gid, gid, gid)
                    os.setresuid(uid, uid, uid)
                    fn(sub)
                except Exception as e:  # recorded, compared like everything else
                    sub.add("EXCEPTION", _exc_str(e))
                data = pickle.dumps((sub.items, sub.inos))
                view = memoryview(data)
                while view:
                    n = os.write(wfd, view)
                    view = view[n:]
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(wfd)
        chunks = []
        deadline = time.monotonic() + CHILD_DEADLINE_S
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    self.add(prefix + "CHILD", "timeout after %.0fs" % CHILD_DEADLINE_S)
                    break
                ready, _, _ = select.select([rfd], [], [], left)
                if not ready:
                    continue
                b = os.read(rfd, 65536)
                if not b:
                    break
                chunks.append(b)
        finally:
            os.close(rfd)
            _reap(pid, deadline)
        if chunks:
            try:
                items, inos = pickle.loads(b"".join(chunks))
            except Exception as e:
                self.add(prefix + "CHILD", "bad output: %s" % e)
                return
            self.items.extend((prefix + lab, v) for lab, v in items)
            self.inos = inos

    def finish(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


def _reap(pid, deadline):
    while True:
        try:
            p, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if p == pid:
            return
        if time.monotonic() > deadline + 5:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
            return
        time.sleep(0.01)


def _exc_str(e):
    if isinstance(e, OSError) and e.errno is not None:
        return "%s(%s)" % (type(e).__name__, _ename(e.errno))
    return "%s: %s" % (type(e).__name__, e)


# ---------------------------------------------------------------------------------------
# Helpers used by cases (they raise; a failure becomes an EXCEPTION record)


def J(*parts):
    return os.path.join(*parts)


def wfile(path, data=b"", mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def rfile(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return readall(fd)
    finally:
        os.close(fd)


def readall(fd, off=0):
    out = []
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            return b"".join(out)
        out.append(b)
        off += len(b)


def hole_map(fd):
    size = os.fstat(fd).st_size
    out, off = [], 0
    while off < size:
        try:
            d = os.lseek(fd, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                break
            raise
        h = os.lseek(fd, d, os.SEEK_HOLE)
        out.append((d, h))
        off = h
    return tuple(out)


def pattern(n, seed=0):
    """Deterministic, non-repeating-looking bytes."""
    block = hashlib.sha256(b"%d" % seed).digest() * 128   # 4 KiB
    reps = n // len(block) + 1
    return (block * reps)[:n]


def have_setfacl():
    return shutil.which("setfacl") is not None and shutil.which("getfacl") is not None


def run_cmd(argv):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode(errors="replace")


# ---------------------------------------------------------------------------------------
# Cases

CASES = []


def case(name, compare=None):
    def deco(fn):
        CASES.append((name, fn, compare))
        return fn
    return deco


# --- create / open flags -----------------------------------------------------------------

@case("open_creat_new")
def _(r, d):
    fd = r.open("open O_CREAT|O_WRONLY 0640", J(d, "f"), os.O_CREAT | os.O_WRONLY, 0o640)
    r.call("write", os.write, fd, b"hello")
    r.close("close", fd)
    r.stat("stat", J(d, "f"))
    r.call("read back", rfile, J(d, "f"))


@case("open_creat_umask_modes")
def _(r, d):
    for i, m in enumerate((0o777, 0o666, 0o600, 0o4755, 0o1777, 0o000)):
        fd = r.open("creat %o" % m, J(d, "f%d" % i), os.O_CREAT | os.O_WRONLY, m)
        if fd is not None:
            r.close("close", fd)
        r.stat("stat %o" % m, J(d, "f%d" % i))


@case("open_excl_existing_eexist")
def _(r, d):
    wfile(J(d, "f"), b"x")
    r.open("O_CREAT|O_EXCL existing", J(d, "f"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    fd = r.open("O_CREAT|O_EXCL new", J(d, "g"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    r.close("close", fd)
    os.symlink("dangling", J(d, "l"))
    r.open("O_CREAT|O_EXCL on dangling symlink", J(d, "l"),
           os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    r.call("lexists target", os.path.lexists, J(d, "dangling"))


@case("open_trunc")
def _(r, d):
    wfile(J(d, "f"), pattern(10000))
    fd = r.open("O_TRUNC|O_RDWR", J(d, "f"), os.O_TRUNC | os.O_RDWR)
    r.fstat("fstat", fd)
    r.call("write", os.write, fd, b"abc")
    r.close("close", fd)
    r.call("content", rfile, J(d, "f"))
    fd = r.open("O_TRUNC|O_RDONLY", J(d, "f"), os.O_TRUNC | os.O_RDONLY)
    r.close("close", fd)
    r.stat("stat", J(d, "f"))


@case("open_append_interleaved")
def _(r, d):
    wfile(J(d, "f"), b"0123456789")
    a = r.open("open O_APPEND", J(d, "f"), os.O_WRONLY | os.O_APPEND)
    b = r.open("open plain", J(d, "f"), os.O_WRONLY)
    for i in range(5):
        r.call("append %d" % i, os.write, a, b"A%d" % i)
        r.call("plain %d" % i, os.write, b, b"b")
        r.call("tell append", os.lseek, a, 0, os.SEEK_CUR)
    r.call("pwrite on O_APPEND (appends on Linux)", os.pwrite, a, b"PP", 0)
    r.call("tell", os.lseek, a, 0, os.SEEK_CUR)
    r.close("close a", a)
    r.close("close b", b)
    r.call("content", rfile, J(d, "f"))


@case("open_append_two_appenders")
def _(r, d):
    fds = [r.open("open %d" % i, J(d, "log"), os.O_CREAT | os.O_WRONLY | os.O_APPEND)
           for i in range(3)]
    for n in range(30):
        r.call("w%d" % n, os.write, fds[n % 3], b"line %02d from %d\n" % (n, n % 3))
    for fd in fds:
        r.close("close", fd)
    r.call("content", rfile, J(d, "log"))


@case("open_direct")
def _(r, d):
    buf = mmap.mmap(-1, 8192)
    buf.write(pattern(8192, 7))
    fd = r.open("open O_DIRECT|O_CREAT", J(d, "f"), os.O_CREAT | os.O_RDWR | os.O_DIRECT)
    if fd is None:
        return
    r.call("aligned write 8K", os.write, fd, buf)
    r.call("unaligned write", os.pwrite, fd, b"x" * 100, 3)
    rb = mmap.mmap(-1, 8192)
    r.call("aligned read", os.preadv, fd, [rb], 0)
    r.add("read data", bytes(rb))
    r.close("close", fd)
    r.call("content via page cache", rfile, J(d, "f"))


def _tmpfile_compare(raw, shim):
    if raw == shim:
        return True, ""
    if shim and shim[0] == ("open O_TMPFILE", ("err", "EOPNOTSUPP")) and len(shim) == 1:
        return True, "shim answers O_TMPFILE with a clean EOPNOTSUPP"
    return False, ""


@case("open_tmpfile", compare=_tmpfile_compare)
def _(r, d):
    fd = r.open("open O_TMPFILE", d, os.O_TMPFILE | os.O_RDWR, 0o600)
    if fd is None:
        return
    r.call("write", os.write, fd, b"anonymous data")
    r.fstat("fstat", fd)
    r.call("listdir", sorted, os.listdir(d))
    r.call("linkat /proc/self/fd", linkat_follow, "/proc/self/fd/%d" % fd, J(d, "named"))
    r.stat("stat named", J(d, "named"))
    r.fstat("fstat after link", fd)
    r.close("close", fd)
    r.call("content", rfile, J(d, "named"))


@case("open_nofollow_symlink_eloop")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.symlink("f", J(d, "l"))
    r.open("O_NOFOLLOW on symlink", J(d, "l"), os.O_RDONLY | os.O_NOFOLLOW)
    fd = r.open("O_NOFOLLOW on file", J(d, "f"), os.O_RDONLY | os.O_NOFOLLOW)
    r.close("close", fd)
    fd = r.open("O_PATH|O_NOFOLLOW on symlink", J(d, "l"), os.O_PATH | os.O_NOFOLLOW)
    if fd is not None:
        r.fstat("fstat O_PATH fd", fd)
        r.close("close", fd)


@case("open_directory_flag")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.mkdir(J(d, "sub"))
    r.open("O_DIRECTORY on file", J(d, "f"), os.O_RDONLY | os.O_DIRECTORY)
    fd = r.open("O_DIRECTORY on dir", J(d, "sub"), os.O_RDONLY | os.O_DIRECTORY)
    r.close("close", fd)
    r.open("O_WRONLY on dir", J(d, "sub"), os.O_WRONLY)
    r.open("O_CREAT on existing dir", J(d, "sub"), os.O_CREAT | os.O_RDONLY)


@case("open_errors_missing")
def _(r, d):
    wfile(J(d, "f"), b"x")
    r.open("open missing", J(d, "nope"), os.O_RDONLY)
    r.open("creat in missing dir", J(d, "nodir", "f"), os.O_CREAT | os.O_WRONLY)
    r.open("file as dir component", J(d, "f", "x"), os.O_RDONLY)
    r.open("creat with trailing slash", J(d, "new/"), os.O_CREAT | os.O_WRONLY)


@case("open_access_mode_ebadf")
def _(r, d):
    wfile(J(d, "f"), b"data")
    fd = r.open("O_RDONLY", J(d, "f"), os.O_RDONLY)
    r.call("write on O_RDONLY", os.write, fd, b"x")
    r.call("ftruncate on O_RDONLY", os.ftruncate, fd, 0)
    r.close("close", fd)
    fd = r.open("O_WRONLY", J(d, "f"), os.O_WRONLY)
    r.call("read on O_WRONLY", os.read, fd, 10)
    r.close("close", fd)
    r.call("content", rfile, J(d, "f"))


# --- read / write / holes -----------------------------------------------------------------

@case("write_read_offsets")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    r.call("write", os.write, fd, b"abcdefghij")
    r.call("lseek 3", os.lseek, fd, 3, os.SEEK_SET)
    r.call("write XY", os.write, fd, b"XY")
    r.call("lseek cur", os.lseek, fd, 0, os.SEEK_CUR)
    r.call("read", os.read, fd, 100)
    r.call("lseek end -2", os.lseek, fd, -2, os.SEEK_END)
    r.call("read tail", os.read, fd, 100)
    r.call("read at EOF", os.read, fd, 100)
    r.call("lseek negative", os.lseek, fd, -100, os.SEEK_SET)
    r.close("close", fd)


@case("pwrite_past_eof_hole")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    r.call("pwrite at 1MiB", os.pwrite, fd, b"tail", 1 << 20)
    r.call("pwrite at 10", os.pwrite, fd, b"head", 10)
    r.call("fsync", os.fsync, fd)
    r.fstat("fstat", fd, blocks=True)
    r.call("pread hole", os.pread, fd, 64, 4096)
    r.call("pread across end", os.pread, fd, 100, (1 << 20) - 2)
    r.call("pread past EOF", os.pread, fd, 100, 2 << 20)
    r.call("whole", readall, fd)
    r.close("close", fd)


@case("pread_pwrite_sizes")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    off = 0
    for n in (1, 7, 4095, 4096, 4097, 65536, 131073, 1 << 20, 3):
        r.call("pwrite %d at %d" % (n, off), os.pwrite, fd, pattern(n, n), off)
        off += n + 123
    r.call("fstat size", lambda: os.fstat(fd).st_size)
    r.call("content", readall, fd)
    r.call("pread odd", os.pread, fd, 5000, 4093)
    r.close("close", fd)


@case("write_large_8m")
def _(r, d):
    data = pattern(8 << 20, 3)
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_WRONLY)
    total = 0
    view = memoryview(data)
    while view:
        n = os.write(fd, view[:3 << 20])
        total += n
        view = view[n:]
    r.add("written", total)
    r.close("close", fd)
    r.call("content", rfile, J(d, "f"))
    r.stat("stat", J(d, "f"))


@case("seek_data_hole")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    os.pwrite(fd, b"a" * 4096, 0)
    os.pwrite(fd, b"b" * 8192, 1 << 20)
    os.pwrite(fd, b"c" * 10, 3 << 20)
    r.call("hole map", hole_map, fd)
    r.call("SEEK_HOLE 0", os.lseek, fd, 0, os.SEEK_HOLE)
    r.call("SEEK_DATA 4096", os.lseek, fd, 4096, os.SEEK_DATA)
    r.call("SEEK_DATA past EOF", os.lseek, fd, 4 << 20, os.SEEK_DATA)
    r.call("SEEK_HOLE past EOF", os.lseek, fd, 4 << 20, os.SEEK_HOLE)
    r.call("fsync", os.fsync, fd)
    r.call("hole map after fsync", hole_map, fd)
    r.fstat("fstat", fd, blocks=True)
    r.close("close", fd)


@case("sparse_only_hole")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    r.call("ftruncate 16MiB", os.ftruncate, fd, 16 << 20)
    r.call("SEEK_DATA 0", os.lseek, fd, 0, os.SEEK_DATA)
    r.call("SEEK_HOLE 0", os.lseek, fd, 0, os.SEEK_HOLE)
    r.call("SEEK_END", os.lseek, fd, 0, os.SEEK_END)
    r.fstat("fstat", fd, blocks=True)
    r.close("close", fd)


@case("truncate_grow_shrink")
def _(r, d):
    wfile(J(d, "f"), pattern(10000, 1))
    r.call("truncate grow 1MiB", os.truncate, J(d, "f"), 1 << 20)
    r.stat("stat grown", J(d, "f"))
    r.call("tail zeros", lambda: rfile(J(d, "f"))[10000:] == bytes((1 << 20) - 10000))
    r.call("truncate shrink 100", os.truncate, J(d, "f"), 100)
    r.call("content", rfile, J(d, "f"))
    r.call("truncate grow again 5000", os.truncate, J(d, "f"), 5000)
    r.call("content", rfile, J(d, "f"))
    r.call("truncate 0", os.truncate, J(d, "f"), 0)
    r.stat("stat", J(d, "f"), blocks=True)


@case("truncate_errors")
def _(r, d):
    os.mkdir(J(d, "dir"))
    r.call("truncate dir", os.truncate, J(d, "dir"), 0)
    r.call("truncate missing", os.truncate, J(d, "nope"), 0)
    wfile(J(d, "f"), b"x")
    r.call("truncate negative", os.truncate, J(d, "f"), -1)


@case("ftruncate_open_fd")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    r.call("write", os.write, fd, pattern(20000, 2))
    r.call("ftruncate 3000", os.ftruncate, fd, 3000)
    r.fstat("fstat", fd)
    r.call("read past new EOF", os.pread, fd, 100, 5000)
    r.call("write at old offset", os.write, fd, b"Z")
    r.fstat("fstat after write", fd)
    r.call("hole map", hole_map, fd)
    r.call("ftruncate grow", os.ftruncate, fd, 1 << 21)
    r.call("content", readall, fd)
    r.close("close", fd)


def _falloc_case(mode, label, prefill=True):
    def body(r, d):
        fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
        if prefill:
            os.write(fd, pattern(256 << 10, 9))
            os.fsync(fd)
        r.call("fallocate %s" % label, fallocate, fd, mode, 64 << 10, 128 << 10)
        r.fstat("fstat", fd, blocks=True)
        r.call("hole map", hole_map, fd)
        r.call("fallocate beyond EOF %s" % label, fallocate, fd, mode, 1 << 20, 8192)
        r.fstat("fstat 2", fd, blocks=True)
        r.call("hole map 2", hole_map, fd)
        # Content last: on ext4, SEEK_DATA reports unwritten extents whose pages are in
        # the page cache as data, so a read before the map would make it cache-dependent.
        r.call("content", readall, fd)
        r.close("close", fd)
    return body


case("fallocate_default")(_falloc_case(0, "default", prefill=False))
case("fallocate_default_over_data")(_falloc_case(0, "default"))
case("fallocate_keep_size")(_falloc_case(FALLOC_FL_KEEP_SIZE, "KEEP_SIZE", prefill=False))
case("fallocate_punch_hole")(_falloc_case(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                          "PUNCH_HOLE|KEEP_SIZE"))
case("fallocate_zero_range")(_falloc_case(FALLOC_FL_ZERO_RANGE, "ZERO_RANGE"))


@case("fallocate_bad_modes")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    os.write(fd, b"x" * 8192)
    r.call("PUNCH_HOLE without KEEP_SIZE", fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)
    r.call("zero length", fallocate, fd, 0, 0, 0)
    r.close("close", fd)
    fd = r.open("open rdonly", J(d, "f"), os.O_RDONLY)
    r.call("fallocate on O_RDONLY", fallocate, fd, 0, 0, 4096)
    r.close("close", fd)


@case("copy_file_range")
def _(r, d):
    wfile(J(d, "src"), pattern(300000, 5))
    a = r.open("open src", J(d, "src"), os.O_RDONLY)
    b = r.open("open dst", J(d, "dst"), os.O_CREAT | os.O_WRONLY)
    total = 0
    while total < 300000:
        n = os.copy_file_range(a, b, 300000 - total)
        if n == 0:
            break
        total += n
    r.add("copied", total)
    r.close("close a", a)
    r.close("close b", b)
    r.call("dst equals src", lambda: rfile(J(d, "dst")) == rfile(J(d, "src")))


# --- directories -----------------------------------------------------------------------

@case("mkdir_basic")
def _(r, d):
    r.stat("parent before", d)
    r.call("mkdir 0755", os.mkdir, J(d, "a"), 0o755)
    r.call("mkdir 0700", os.mkdir, J(d, "b"), 0o700)
    r.call("mkdir 01777", os.mkdir, J(d, "c"), 0o1777)
    r.call("mkdir 0777 (umask)", os.mkdir, J(d, "e"), 0o777)
    for n in "abce":
        r.stat("stat " + n, J(d, n))
    r.stat("parent after", d)
    r.call("mkdir nested", os.mkdir, J(d, "a", "x"))
    r.stat("a after nested", J(d, "a"))


@case("mkdir_errors")
def _(r, d):
    os.mkdir(J(d, "a"))
    wfile(J(d, "f"))
    r.call("mkdir existing dir", os.mkdir, J(d, "a"))
    r.call("mkdir existing file", os.mkdir, J(d, "f"))
    r.call("mkdir missing parent", os.mkdir, J(d, "nope", "x"))
    r.call("mkdir under file", os.mkdir, J(d, "f", "x"))
    os.symlink("a", J(d, "l"))
    r.call("mkdir over symlink", os.mkdir, J(d, "l"))


@case("rmdir_cases")
def _(r, d):
    os.makedirs(J(d, "full", "sub"))
    os.mkdir(J(d, "empty"))
    wfile(J(d, "f"))
    r.call("rmdir non-empty", os.rmdir, J(d, "full"))
    r.call("rmdir empty", os.rmdir, J(d, "empty"))
    r.call("rmdir again", os.rmdir, J(d, "empty"))
    r.call("rmdir file", os.rmdir, J(d, "f"))
    r.call("rmdir dot", os.rmdir, J(d, "full", "sub", "."))
    r.call("rmdir nested", os.rmdir, J(d, "full", "sub"))
    r.stat("parent", J(d, "full"))
    r.call("listdir", sorted, os.listdir(d))
    r.stat("d", d)


@case("unlink_cases")
def _(r, d):
    os.mkdir(J(d, "dir"))
    wfile(J(d, "f"), b"x")
    os.symlink("f", J(d, "l"))
    r.call("unlink dir", os.unlink, J(d, "dir"))
    r.call("unlink missing", os.unlink, J(d, "nope"))
    r.call("unlink symlink", os.unlink, J(d, "l"))
    r.call("target still there", os.path.exists, J(d, "f"))
    r.call("unlink file", os.unlink, J(d, "f"))
    r.stat("stat unlinked", J(d, "f"))
    r.call("listdir", sorted, os.listdir(d))


# --- rename --------------------------------------------------------------------------------

@case("rename_over_existing_file")
def _(r, d):
    wfile(J(d, "a"), b"AAAA")
    wfile(J(d, "b"), b"BB")
    sa = r.stat("stat a", J(d, "a"))
    r.stat("stat b", J(d, "b"))
    r.call("rename a b", os.rename, J(d, "a"), J(d, "b"))
    r.stat("stat a", J(d, "a"))
    sb = r.stat("stat b", J(d, "b"))
    r.add("b is old a", bool(sa and sb and sa.st_ino == sb.st_ino))
    r.call("content", rfile, J(d, "b"))
    r.call("listdir", sorted, os.listdir(d))


@case("rename_dir_over_dir")
def _(r, d):
    os.makedirs(J(d, "src", "inner"))
    os.makedirs(J(d, "full", "x"))
    os.mkdir(J(d, "empty"))
    r.call("rename dir over non-empty dir", os.rename, J(d, "src"), J(d, "full"))
    r.call("rename dir over empty dir", os.rename, J(d, "src"), J(d, "empty"))
    r.stat("stat empty", J(d, "empty"))
    r.call("listdir", sorted, os.listdir(d))
    r.call("listdir empty", sorted, os.listdir(J(d, "empty")))
    r.stat("d", d)


@case("rename_type_mismatch")
def _(r, d):
    os.mkdir(J(d, "dir"))
    os.mkdir(J(d, "dir2"))
    wfile(J(d, "f"), b"x")
    r.call("rename dir onto file", os.rename, J(d, "dir"), J(d, "f"))
    r.call("rename file onto dir", os.rename, J(d, "f"), J(d, "dir"))
    r.call("rename missing", os.rename, J(d, "nope"), J(d, "x"))
    r.call("rename into missing dir", os.rename, J(d, "f"), J(d, "nodir", "f"))
    r.call("rename dir into own subdir", os.rename, J(d, "dir"), J(d, "dir", "sub"))
    r.call("rename dir to trailing-slash name", os.rename, J(d, "dir2"), J(d, "dir3/"))
    r.call("rename file to trailing-slash name", os.rename, J(d, "f"), J(d, "g/"))
    r.call("listdir", sorted, os.listdir(d))


@case("rename_noreplace")
def _(r, d):
    wfile(J(d, "a"), b"A")
    wfile(J(d, "b"), b"B")
    r.call("NOREPLACE onto existing", renameat2, J(d, "a"), J(d, "b"), RENAME_NOREPLACE)
    r.call("NOREPLACE onto new", renameat2, J(d, "a"), J(d, "c"), RENAME_NOREPLACE)
    r.call("listdir", sorted, os.listdir(d))
    r.call("c", rfile, J(d, "c"))
    r.call("b", rfile, J(d, "b"))
    r.call("NOREPLACE|EXCHANGE", renameat2, J(d, "b"), J(d, "c"),
           RENAME_NOREPLACE | RENAME_EXCHANGE)


@case("rename_exchange_file_dir")
def _(r, d):
    wfile(J(d, "f"), b"file")
    os.mkdir(J(d, "dir"))
    wfile(J(d, "dir", "inside"), b"in")
    sf = r.stat("f", J(d, "f"))
    sd = r.stat("dir", J(d, "dir"))
    r.call("EXCHANGE f dir", renameat2, J(d, "f"), J(d, "dir"), RENAME_EXCHANGE)
    a = r.stat("f after", J(d, "f"))
    b = r.stat("dir after", J(d, "dir"))
    r.add("swapped", bool(sf and sd and a and b and a.st_ino == sd.st_ino
                          and b.st_ino == sf.st_ino))
    r.call("f/inside", rfile, J(d, "f", "inside"))
    r.call("dir content", rfile, J(d, "dir"))
    r.call("EXCHANGE with missing", renameat2, J(d, "f"), J(d, "nope"), RENAME_EXCHANGE)
    r.call("EXCHANGE back", renameat2, J(d, "f"), J(d, "dir"), RENAME_EXCHANGE)
    r.call("dir/inside", rfile, J(d, "dir", "inside"))


@case("rename_exchange_across_dirs")
def _(r, d):
    os.makedirs(J(d, "x"))
    os.makedirs(J(d, "y", "deep"))
    wfile(J(d, "x", "a"), b"a")
    r.call("EXCHANGE x/a y/deep", renameat2, J(d, "x", "a"), J(d, "y", "deep"),
           RENAME_EXCHANGE)
    r.stat("x", J(d, "x"))
    r.stat("y", J(d, "y"))
    r.stat("x/a", J(d, "x", "a"))
    r.stat("y/deep", J(d, "y", "deep"))


@case("rename_across_dirs")
def _(r, d):
    os.makedirs(J(d, "p", "moving", "kid"))
    os.mkdir(J(d, "q"))
    wfile(J(d, "p", "file"), b"payload")
    r.call("rename file across", os.rename, J(d, "p", "file"), J(d, "q", "file2"))
    r.call("rename dir across", os.rename, J(d, "p", "moving"), J(d, "q", "moved"))
    r.stat("p", J(d, "p"))
    r.stat("q", J(d, "q"))
    r.stat("q/moved", J(d, "q", "moved"))
    r.call("q/moved/kid/..", lambda: os.stat(J(d, "q", "moved", "kid", "..")).st_ino
           == os.stat(J(d, "q", "moved")).st_ino)
    r.call("content", rfile, J(d, "q", "file2"))
    r.call("walk", lambda: sorted((os.path.relpath(a, d), sorted(b), sorted(c))
                                  for a, b, c in os.walk(d)))


@case("rename_same_inode_and_self")
def _(r, d):
    wfile(J(d, "a"), b"x")
    os.link(J(d, "a"), J(d, "b"))
    r.call("rename a a", os.rename, J(d, "a"), J(d, "a"))
    r.call("rename a b (same inode)", os.rename, J(d, "a"), J(d, "b"))
    r.call("listdir", sorted, os.listdir(d))
    r.stat("a", J(d, "a"))
    r.stat("b", J(d, "b"))


@case("rename_symlink_and_special")
def _(r, d):
    os.symlink("target", J(d, "l"))
    os.mkfifo(J(d, "fifo"))
    r.call("rename symlink", os.rename, J(d, "l"), J(d, "l2"))
    r.call("readlink", os.readlink, J(d, "l2"))
    r.call("rename fifo", os.rename, J(d, "fifo"), J(d, "fifo2"))
    r.stat("fifo2", J(d, "fifo2"))


# --- links -----------------------------------------------------------------------------

@case("hardlink_nlink")
def _(r, d):
    os.mkdir(J(d, "other"))
    wfile(J(d, "a"), b"shared")
    r.call("link a b", os.link, J(d, "a"), J(d, "b"))
    r.call("link a other/c", os.link, J(d, "a"), J(d, "other", "c"))
    for n in ("a", "b", "other/c"):
        r.stat("stat " + n, J(d, n))
    fd = r.open("open b for append", J(d, "b"), os.O_WRONLY | os.O_APPEND)
    r.call("append via b", os.write, fd, b"+more")
    r.close("close", fd)
    r.call("read via c", rfile, J(d, "other", "c"))
    r.call("unlink a", os.unlink, J(d, "a"))
    r.stat("stat b", J(d, "b"))
    r.stat("stat c", J(d, "other", "c"))
    r.call("unlink b", os.unlink, J(d, "b"))
    r.stat("stat c", J(d, "other", "c"))


@case("hardlink_errors")
def _(r, d):
    os.mkdir(J(d, "dir"))
    wfile(J(d, "a"), b"x")
    wfile(J(d, "b"), b"y")
    r.call("link to dir", os.link, J(d, "dir"), J(d, "dirlink"))
    r.call("link onto existing", os.link, J(d, "a"), J(d, "b"))
    r.call("link missing", os.link, J(d, "nope"), J(d, "c"))
    r.call("link into missing dir", os.link, J(d, "a"), J(d, "nodir", "c"))
    os.symlink("a", J(d, "sym"))
    r.call("link symlink itself", os.link, J(d, "sym"), J(d, "sym2"), follow_symlinks=False)
    r.stat("lstat sym2", J(d, "sym2"), follow=False)
    r.stat("lstat sym", J(d, "sym"), follow=False)


@case("hardlink_fstat_after_link")
def _(r, d):
    fd = r.open("open", J(d, "a"), os.O_CREAT | os.O_RDWR)
    r.fstat("fstat", fd)
    os.link(J(d, "a"), J(d, "b"))
    r.fstat("fstat after link", fd)
    os.unlink(J(d, "a"))
    os.unlink(J(d, "b"))
    r.fstat("fstat after unlinks", fd)
    r.close("close", fd)


@case("symlink_basic")
def _(r, d):
    wfile(J(d, "f"), b"content")
    r.call("symlink rel", os.symlink, "f", J(d, "rel"))
    r.call("symlink long target", os.symlink, "x" * 4000, J(d, "long"))
    r.call("readlink rel", os.readlink, J(d, "rel"))
    r.call("readlink long", os.readlink, J(d, "long"))
    r.stat("lstat rel", J(d, "rel"), follow=False)
    r.stat("stat rel", J(d, "rel"))
    r.call("read via symlink", rfile, J(d, "rel"))
    r.call("symlink existing name", os.symlink, "f", J(d, "rel"))
    r.call("readlink on file", os.readlink, J(d, "f"))
    r.call("symlink empty target", os.symlink, "", J(d, "empty"))


@case("symlink_dangling_and_loop")
def _(r, d):
    os.symlink("nowhere", J(d, "dang"))
    os.symlink("loop2", J(d, "loop1"))
    os.symlink("loop1", J(d, "loop2"))
    r.stat("stat dangling", J(d, "dang"))
    r.stat("lstat dangling", J(d, "dang"), follow=False)
    r.call("readlink dangling", os.readlink, J(d, "dang"))
    r.stat("stat loop", J(d, "loop1"))
    r.open("open loop", J(d, "loop1"), os.O_RDONLY)
    fd = r.open("O_CREAT through dangling", J(d, "dang"), os.O_CREAT | os.O_WRONLY)
    r.close("close", fd)
    r.stat("target created", J(d, "nowhere"))


@case("symlink_dir_traversal")
def _(r, d):
    os.makedirs(J(d, "real", "sub"))
    wfile(J(d, "real", "sub", "f"), b"deep")
    os.symlink("real/sub", J(d, "ls"))
    os.symlink(J(d, "real"), J(d, "abs"))
    r.call("read via dir symlink", rfile, J(d, "ls", "f"))
    r.call("read via absolute symlink", rfile, J(d, "abs", "sub", "f"))
    r.call("listdir via symlink", sorted, os.listdir(J(d, "ls")))
    r.call("ls/.. is real", lambda: os.stat(J(d, "ls", "..")).st_ino
           == os.stat(J(d, "real")).st_ino)


# --- special files ---------------------------------------------------------------------

@case("mkfifo")
def _(r, d):
    r.call("mkfifo 0640", os.mkfifo, J(d, "p"), 0o640)
    r.stat("stat", J(d, "p"))
    r.call("mkfifo existing", os.mkfifo, J(d, "p"))
    fd = r.open("open O_RDONLY|O_NONBLOCK", J(d, "p"), os.O_RDONLY | os.O_NONBLOCK)
    w = r.open("open O_WRONLY|O_NONBLOCK", J(d, "p"), os.O_WRONLY | os.O_NONBLOCK)
    if fd is not None and w is not None:
        r.call("write pipe", os.write, w, b"through the fifo")
        r.call("read pipe", os.read, fd, 100)
    if w is not None:
        r.close("close w", w)
    if fd is not None:
        r.close("close r", fd)


@case("mknod_devices")
def _(r, d):
    r.call("mknod chr 1,3", os.mknod, J(d, "null"), 0o666 | stat.S_IFCHR,
           os.makedev(1, 3))
    r.call("mknod blk 7,200", os.mknod, J(d, "blk"), 0o600 | stat.S_IFBLK,
           os.makedev(7, 200))
    r.call("mknod reg", os.mknod, J(d, "reg"), 0o600 | stat.S_IFREG)
    r.call("mknod sock", os.mknod, J(d, "sock"), 0o600 | stat.S_IFSOCK)
    for n in ("null", "blk", "reg", "sock"):
        r.stat("stat " + n, J(d, n))
    r.call("mknod existing", os.mknod, J(d, "null"), 0o666 | stat.S_IFCHR,
           os.makedev(1, 3))


@case("mknod_chardev_open")
def _(r, d):
    os.mknod(J(d, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    fd = r.open("open char device 1,3", J(d, "null"), os.O_RDWR)
    if fd is not None:
        r.call("write /dev/null node", os.write, fd, b"discarded")
        r.call("read /dev/null node", os.read, fd, 10)
        r.close("close", fd)


# --- attributes ------------------------------------------------------------------------

@case("chmod_modes")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.mkdir(J(d, "dir"))
    for m in (0o7777, 0o4755, 0o2755, 0o1777, 0o000, 0o644):
        r.call("chmod f %o" % m, os.chmod, J(d, "f"), m)
        r.stat("stat f", J(d, "f"))
    r.call("chmod dir 3775", os.chmod, J(d, "dir"), 0o3775)
    r.stat("stat dir", J(d, "dir"))
    r.call("chmod missing", os.chmod, J(d, "nope"), 0o644)


@case("chmod_via_symlink_and_fd")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.symlink("f", J(d, "l"))
    r.call("chmod via symlink", os.chmod, J(d, "l"), 0o600)
    r.stat("f", J(d, "f"))
    r.stat("lstat l", J(d, "l"), follow=False)
    fd = r.open("open", J(d, "f"), os.O_RDONLY)
    r.call("fchmod", os.fchmod, fd, 0o751)
    r.fstat("fstat", fd)
    r.call("fchown", os.fchown, fd, USER_A, GROUP_G)
    r.fstat("fstat", fd)
    r.close("close", fd)


@case("chown_variants")
def _(r, d):
    wfile(J(d, "f"), b"x", 0o6755)
    os.chmod(J(d, "f"), 0o6755)
    os.symlink("f", J(d, "l"))
    r.stat("before", J(d, "f"))
    r.call("chown A:G", os.chown, J(d, "f"), USER_A, GROUP_G)
    r.stat("after chown (suid/sgid cleared?)", J(d, "f"))
    r.call("chown -1:0", os.chown, J(d, "f"), -1, 0)
    r.stat("after gid only", J(d, "f"))
    r.call("lchown symlink", os.chown, J(d, "l"), USER_B, USER_B, follow_symlinks=False)
    r.stat("lstat l", J(d, "l"), follow=False)
    r.stat("f unchanged", J(d, "f"))
    os.mkdir(J(d, "dir"))
    r.call("chown dir", os.chown, J(d, "dir"), NOBODY, NOBODY)
    r.stat("dir", J(d, "dir"))


@case("utime_explicit_ns")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.mkdir(J(d, "dir"))
    t1 = (1_000_000_000 * 1_600_000_000 + 123_456_789, 1_000_000_000 * 1_500_000_000 + 1)
    r.call("utime ns", os.utime, J(d, "f"), ns=t1)
    r.stat("stat", J(d, "f"), times=True)
    r.call("utime dir", os.utime, J(d, "dir"), ns=(5, 7))
    r.stat("stat dir", J(d, "dir"), times=True)
    r.call("utime pre-1970", os.utime, J(d, "f"), ns=(-1_000_000_000, 0))
    r.stat("stat", J(d, "f"), times=True)
    fd = r.open("open", J(d, "f"), os.O_RDWR)
    r.call("futimens", os.utime, fd, ns=(42_000_000_001, 43_000_000_002))
    r.fstat("fstat", fd, times=True)
    r.close("close", fd)


@case("utimensat_now_omit")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.utime(J(d, "f"), ns=(1_000_000_000_000_000_000, 1_100_000_000_000_000_000))
    r.call("atime NOW, mtime OMIT", utimensat, J(d, "f"), UTIME_NOW, UTIME_OMIT)
    st = os.stat(J(d, "f"))
    now = time.time_ns()
    r.add("atime recent", abs(now - st.st_atime_ns) < 10 * 10**9)
    r.add("mtime kept", st.st_mtime_ns)
    r.call("atime OMIT, mtime explicit", utimensat, J(d, "f"), UTIME_OMIT, (77, 88))
    st2 = os.stat(J(d, "f"))
    r.add("atime unchanged", st2.st_atime_ns == st.st_atime_ns)
    r.add("mtime", st2.st_mtime_ns)
    r.call("both OMIT", utimensat, J(d, "f"), UTIME_OMIT, UTIME_OMIT)
    st2b = os.stat(J(d, "f"))
    r.add("both OMIT: nothing changed", (st2b.st_atime_ns == st2.st_atime_ns,
                                         st2b.st_mtime_ns == st2.st_mtime_ns))
    r.call("both NOW", utimensat, J(d, "f"), UTIME_NOW, UTIME_NOW)
    st3 = os.stat(J(d, "f"))
    r.add("both recent", abs(time.time_ns() - st3.st_mtime_ns) < 10 * 10**9
          and abs(time.time_ns() - st3.st_atime_ns) < 10 * 10**9)
    r.call("utimensat missing", utimensat, J(d, "nope"), UTIME_NOW, UTIME_NOW)


@case("lutimes_symlink")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.utime(J(d, "f"), ns=(10**18, 10**18))
    os.symlink("f", J(d, "l"))
    r.call("lutimes", os.utime, J(d, "l"), ns=(3_000_000_003, 4_000_000_004),
           follow_symlinks=False)
    r.stat("lstat l", J(d, "l"), follow=False, times=True)
    r.stat("target unchanged", J(d, "f"), times=True)
    r.call("utime via symlink", os.utime, J(d, "l"), ns=(5, 6))
    r.stat("target changed", J(d, "f"), times=True)
    r.call("utimensat NOFOLLOW NOW on symlink", utimensat, J(d, "l"), UTIME_OMIT, UTIME_NOW,
           nofollow=True)
    r.stat("target still", J(d, "f"), times=True)


@case("mtime_ctime_update_on_write")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.utime(J(d, "f"), ns=(10**9, 10**9))
    os.utime(d, ns=(10**9, 10**9))
    fd = r.open("open", J(d, "f"), os.O_WRONLY)
    r.call("write", os.write, fd, b"more")
    r.close("close", fd)
    st = os.stat(J(d, "f"))
    r.add("mtime advanced by write", st.st_mtime_ns > 10**9)
    r.call("truncate", os.truncate, J(d, "f"), 1)
    wfile(J(d, "g"), b"")
    std = os.stat(d)
    r.add("dir mtime advanced by create", std.st_mtime_ns > 10**9)


# --- xattrs and ACLs -------------------------------------------------------------------

@case("xattr_user_basic")
def _(r, d):
    wfile(J(d, "f"), b"x")
    r.call("set user.a", os.setxattr, J(d, "f"), "user.a", b"alpha")
    r.call("set user.b empty", os.setxattr, J(d, "f"), "user.b", b"")
    r.call("set user.c binary", os.setxattr, J(d, "f"), "user.c", bytes(range(256)))
    r.call("get user.a", os.getxattr, J(d, "f"), "user.a")
    r.call("get user.b", os.getxattr, J(d, "f"), "user.b")
    r.call("get user.c", os.getxattr, J(d, "f"), "user.c")
    r.call("list", lambda: sorted(os.listxattr(J(d, "f"))))
    r.call("overwrite user.a", os.setxattr, J(d, "f"), "user.a", b"ALPHA2")
    r.call("get user.a", os.getxattr, J(d, "f"), "user.a")
    r.call("remove user.a", os.removexattr, J(d, "f"), "user.a")
    r.call("list", lambda: sorted(os.listxattr(J(d, "f"))))
    fd = r.open("open", J(d, "f"), os.O_RDONLY)
    r.call("fsetxattr", os.setxattr, fd, "user.fd", b"via fd")
    r.call("fgetxattr", os.getxattr, fd, "user.fd")
    r.close("close", fd)


@case("xattr_flags_errors")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.setxattr(J(d, "f"), "user.e", b"1")
    r.call("XATTR_CREATE existing", os.setxattr, J(d, "f"), "user.e", b"2", XATTR_CREATE)
    r.call("XATTR_CREATE new", os.setxattr, J(d, "f"), "user.n", b"3", XATTR_CREATE)
    r.call("XATTR_REPLACE missing", os.setxattr, J(d, "f"), "user.m", b"4", XATTR_REPLACE)
    r.call("XATTR_REPLACE existing", os.setxattr, J(d, "f"), "user.e", b"5", XATTR_REPLACE)
    r.call("get missing", os.getxattr, J(d, "f"), "user.missing")
    r.call("remove missing", os.removexattr, J(d, "f"), "user.missing")
    r.call("bad namespace", os.setxattr, J(d, "f"), "bogus.x", b"1")
    r.call("empty name suffix", os.setxattr, J(d, "f"), "user.", b"1")
    r.call("name too long", os.setxattr, J(d, "f"), "user." + "n" * 300, b"1")
    r.call("get on missing file", os.getxattr, J(d, "nope"), "user.e")
    r.call("values", lambda: [os.getxattr(J(d, "f"), n) for n in ("user.e", "user.n")])


@case("xattr_large_and_many")
def _(r, d):
    wfile(J(d, "f"), b"x")
    r.call("set 3000 bytes", os.setxattr, J(d, "f"), "user.big", pattern(3000, 1))
    r.call("get 3000", os.getxattr, J(d, "f"), "user.big")
    r.call("set 64 KiB", os.setxattr, J(d, "f"), "user.huge", pattern(65536, 2))
    r.call("set 64 KiB + 1", os.setxattr, J(d, "f"), "user.huge2", pattern(65537, 2))
    for i in range(20):
        r.call("set many %d" % i, os.setxattr, J(d, "f"), "user.m%02d" % i, b"v%d" % i)
    r.call("list", lambda: sorted(os.listxattr(J(d, "f"))))


@case("xattr_dir_and_symlink")
def _(r, d):
    os.mkdir(J(d, "dir"))
    wfile(J(d, "f"))
    os.symlink("f", J(d, "l"))
    r.call("set on dir", os.setxattr, J(d, "dir"), "user.d", b"dir")
    r.call("get on dir", os.getxattr, J(d, "dir"), "user.d")
    r.call("set user.* on symlink (nofollow)", os.setxattr, J(d, "l"), "user.s", b"s",
           follow_symlinks=False)
    r.call("set via symlink (follow)", os.setxattr, J(d, "l"), "user.t", b"t")
    r.call("list target", lambda: sorted(os.listxattr(J(d, "f"))))
    r.call("list symlink nofollow", lambda: sorted(os.listxattr(J(d, "l"),
                                                                follow_symlinks=False)))
    r.call("trusted.* as root", os.setxattr, J(d, "f"), "trusted.t", b"root only")
    r.call("get trusted", os.getxattr, J(d, "f"), "trusted.t")


@case("xattr_nonroot")
def _(r, d):
    wfile(J(d, "mine"), b"x")
    os.chown(J(d, "mine"), NOBODY, NOBODY)
    wfile(J(d, "theirs"), b"x", 0o644)
    os.setxattr(J(d, "theirs"), "user.k", b"v")
    os.setxattr(J(d, "theirs"), "trusted.k", b"v")

    def body(u):
        u.call("set on own file", os.setxattr, J(d, "mine"), "user.a", b"1")
        u.call("set on root 0644 file", os.setxattr, J(d, "theirs"), "user.a", b"1")
        u.call("get on root 0644 file", os.getxattr, J(d, "theirs"), "user.k")
        u.call("list (no trusted)", lambda: sorted(os.listxattr(J(d, "theirs"))))
        u.call("set trusted", os.setxattr, J(d, "mine"), "trusted.x", b"1")
        u.call("get trusted", os.getxattr, J(d, "theirs"), "trusted.k")
    r.as_user("nobody: ", NOBODY, NOBODY, body)


def _getfacl(path):
    rc, out = run_cmd(["getfacl", "--omit-header", "--numeric", "--absolute-names", path])
    return rc, out


@case("acl_access")
def _(r, d):
    if not have_setfacl():
        r.add("setfacl", "missing")
        return
    wfile(J(d, "f"), b"secret")
    os.chmod(J(d, "f"), 0o600)
    r.call("setfacl", run_cmd, ["setfacl", "-m", "u:%d:r,g:%d:rw,m::rw" % (NOBODY, GROUP_G),
                                J(d, "f")])
    r.call("getfacl", _getfacl, J(d, "f"))
    r.call("xattr bytes", os.getxattr, J(d, "f"), "system.posix_acl_access")
    r.stat("stat (mode shows mask)", J(d, "f"))

    def body(u):
        fd = u.open("named user opens for read", J(d, "f"), os.O_RDONLY)
        if fd is not None:
            u.call("read", os.read, fd, 100)
            u.close("close", fd)
        u.open("named user opens for write", J(d, "f"), os.O_WRONLY)
        u.call("access R_OK", os.access, J(d, "f"), os.R_OK)
    r.as_user("nobody: ", NOBODY, NOBODY, body)
    r.as_user("other: ", USER_B, USER_B,
              lambda u: u.open("other user opens", J(d, "f"), os.O_RDONLY))

    def grp(u):
        fd = u.open("group member opens rw", J(d, "f"), os.O_RDWR)
        if fd is not None:
            u.close("close", fd)
    r.as_user("group: ", USER_A, USER_A, grp, groups=(GROUP_G,))
    r.call("chmod 0600 updates mask", os.chmod, J(d, "f"), 0o600)
    r.call("getfacl", _getfacl, J(d, "f"))
    r.as_user("nobody2: ", NOBODY, NOBODY,
              lambda u: u.open("read after mask cleared", J(d, "f"), os.O_RDONLY))
    r.call("setfacl -b", run_cmd, ["setfacl", "-b", J(d, "f")])
    r.call("xattr gone", os.getxattr, J(d, "f"), "system.posix_acl_access")


@case("acl_default_inherit")
def _(r, d):
    if not have_setfacl():
        r.add("setfacl", "missing")
        return
    os.mkdir(J(d, "dir"), 0o750)
    r.call("setfacl -d", run_cmd, ["setfacl", "-d", "-m", "u:%d:rwx,o::-" % NOBODY,
                                   J(d, "dir")])
    r.call("getfacl dir", _getfacl, J(d, "dir"))
    wfile(J(d, "dir", "new"), b"x", 0o666)
    os.mkdir(J(d, "dir", "subdir"), 0o777)
    r.call("getfacl new file", _getfacl, J(d, "dir", "new"))
    r.call("getfacl new subdir", _getfacl, J(d, "dir", "subdir"))
    r.stat("new file", J(d, "dir", "new"))
    r.stat("new subdir", J(d, "dir", "subdir"))
    os.chmod(J(d, "dir"), 0o755)

    def body(u):
        fd = u.open("named user writes inherited file", J(d, "dir", "new"), os.O_WRONLY)
        if fd is not None:
            u.call("write", os.write, fd, b"by nobody")
            u.close("close", fd)
    r.as_user("nobody: ", NOBODY, NOBODY, body)


# --- permissions ------------------------------------------------------------------------

@case("sticky_dir_rules")
def _(r, d):
    os.mkdir(J(d, "tmp"))
    os.chmod(J(d, "tmp"), 0o1777)
    wfile(J(d, "tmp", "a_file"), b"a")
    os.chown(J(d, "tmp", "a_file"), USER_A, USER_A)
    os.chmod(J(d, "tmp", "a_file"), 0o666)
    wfile(J(d, "tmp", "root_file"), b"r", 0o666)
    os.chmod(J(d, "tmp", "root_file"), 0o666)

    def b_user(u):
        u.call("B unlinks A's file", os.unlink, J(d, "tmp", "a_file"))
        u.call("B renames A's file", os.rename, J(d, "tmp", "a_file"), J(d, "tmp", "x"))
        u.call("B renames onto A's file", lambda: (wfile(J(d, "tmp", "b_file"), b"b"),
                                                   os.rename(J(d, "tmp", "b_file"),
                                                             J(d, "tmp", "a_file")))[1])
        u.call("B unlinks root's file", os.unlink, J(d, "tmp", "root_file"))
        fd = u.open("B writes A's 0666 file", J(d, "tmp", "a_file"), os.O_WRONLY)
        if fd is not None:
            u.close("close", fd)
        u.call("B unlinks own file", os.unlink, J(d, "tmp", "b_file"))
    r.as_user("B: ", USER_B, USER_B, b_user)
    r.as_user("A: ", USER_A, USER_A,
              lambda u: u.call("A unlinks own file", os.unlink, J(d, "tmp", "a_file")))
    r.call("listdir", sorted, os.listdir(J(d, "tmp")))


@case("setgid_dir_inherit")
def _(r, d):
    os.mkdir(J(d, "sg"))
    os.chown(J(d, "sg"), 0, GROUP_G)
    os.chmod(J(d, "sg"), 0o2777)
    r.stat("sg", J(d, "sg"))
    wfile(J(d, "sg", "rootfile"), b"", 0o2755)
    os.mkdir(J(d, "sg", "rootdir"), 0o755)
    r.stat("root file", J(d, "sg", "rootfile"))
    r.stat("root subdir", J(d, "sg", "rootdir"))

    def body(u):
        fd = u.open("A creates 02755 file", J(d, "sg", "afile"),
                    os.O_CREAT | os.O_WRONLY, 0o2755)
        if fd is not None:
            u.close("close", fd)
        u.call("A mkdir", os.mkdir, J(d, "sg", "adir"), 0o755)
        u.stat("A file (not in group: sgid dropped)", J(d, "sg", "afile"))
        u.stat("A subdir", J(d, "sg", "adir"))
        u.call("A mknod fifo", os.mkfifo, J(d, "sg", "afifo"), 0o644)
        u.stat("A fifo", J(d, "sg", "afifo"))
    r.as_user("A: ", USER_A, USER_A, body)
    r.stat("rootdir/..", J(d, "sg", "rootdir", ".."))


@case("nonroot_eacces")
def _(r, d):
    wfile(J(d, "secret"), b"s")
    os.chmod(J(d, "secret"), 0o600)
    os.mkdir(J(d, "rootdir"), 0o755)
    os.chmod(J(d, "rootdir"), 0o755)
    os.mkdir(J(d, "noexec"), 0o700)
    os.chmod(J(d, "noexec"), 0o744)
    wfile(J(d, "noexec", "inner"), b"i", 0o644)
    wfile(J(d, "ro"), b"read only", 0o644)
    os.chmod(J(d, "ro"), 0o644)

    def body(u):
        u.open("read 0600 root file", J(d, "secret"), os.O_RDONLY)
        u.open("create in 0755 root dir", J(d, "rootdir", "x"), os.O_CREAT | os.O_WRONLY)
        u.call("mkdir in 0755 root dir", os.mkdir, J(d, "rootdir", "y"))
        u.call("unlink in 0755 root dir", os.unlink, J(d, "ro"))
        u.call("stat through dir without x", os.stat, J(d, "noexec", "inner"))
        u.call("list dir with r but no x", lambda: sorted(os.listdir(J(d, "noexec"))))
        u.open("write 0644 root file", J(d, "ro"), os.O_WRONLY)
        u.call("truncate 0644 root file", os.truncate, J(d, "ro"), 0)
        u.call("chmod root file", os.chmod, J(d, "ro"), 0o777)
        u.call("chown root file", os.chown, J(d, "ro"), NOBODY, NOBODY)
        u.call("utime explicit on root file", os.utime, J(d, "ro"), ns=(1, 1))
        u.call("utime NOW on root file (no write perm)", os.utime, J(d, "ro"))
        u.call("setxattr root file", os.setxattr, J(d, "ro"), "user.x", b"1")
        u.call("access W_OK", os.access, J(d, "ro"), os.W_OK)
        u.call("access R_OK", os.access, J(d, "ro"), os.R_OK)
        u.call("mknod char dev", os.mknod, J(d, "dev"), 0o600 | stat.S_IFCHR,
               os.makedev(1, 3))
        u.call("link to root file (protected_hardlinks?)", os.link, J(d, "ro"),
               J(d, "lnk"))
    r.as_user("nobody: ", NOBODY, NOBODY, body)


@case("nonroot_own_files")
def _(r, d):
    os.mkdir(J(d, "home"))
    os.chown(J(d, "home"), USER_A, USER_A)

    def body(u):
        h = J(d, "home")
        fd = u.open("create", J(h, "f"), os.O_CREAT | os.O_RDWR, 0o640)
        if fd is not None:
            u.call("write", os.write, fd, b"mine")
            u.close("close", fd)
        u.stat("stat", J(h, "f"))
        u.call("chmod own", os.chmod, J(h, "f"), 0o600)
        u.call("chown own to other uid", os.chown, J(h, "f"), USER_B, -1)
        u.call("chgrp to non-member group", os.chown, J(h, "f"), -1, GROUP_G)
        u.call("utime explicit own", os.utime, J(h, "f"), ns=(11, 12))
        u.stat("stat", J(h, "f"), times=True)
        u.call("chmod setgid as non-member", os.chmod, J(h, "f"), 0o2644)
        u.stat("stat (sgid?)", J(h, "f"))
        u.call("mkdir", os.mkdir, J(h, "sub"))
        u.call("rename", os.rename, J(h, "f"), J(h, "sub", "g"))
        u.call("symlink", os.symlink, "sub/g", J(h, "l"))
        u.call("lchown symlink to self", os.chown, J(h, "l"), USER_A, USER_A,
               follow_symlinks=False)
        u.call("rm", os.unlink, J(h, "sub", "g"))
        u.call("rmdir", os.rmdir, J(h, "sub"))
    r.as_user("A: ", USER_A, USER_A, body)


@case("kill_suid_on_write")
def _(r, d):
    wfile(J(d, "f"), b"x")
    os.chmod(J(d, "f"), 0o6777)
    wfile(J(d, "g"), b"x")
    os.chmod(J(d, "g"), 0o6777)
    r.stat("before", J(d, "f"))

    def body(u):
        fd = u.open("open", J(d, "f"), os.O_WRONLY)
        if fd is not None:
            u.call("write", os.write, fd, b"y")
            u.close("close", fd)
        u.call("truncate", os.truncate, J(d, "g"), 0)
    r.as_user("nobody: ", NOBODY, NOBODY, body)
    r.stat("after write by non-owner", J(d, "f"))
    r.stat("after truncate by non-owner", J(d, "g"))


# --- mmap ----------------------------------------------------------------------------

@case("mmap_shared_write")
def _(r, d):
    size = 256 << 10
    wfile(J(d, "f"), bytes(size))
    fd = r.open("open", J(d, "f"), os.O_RDWR)
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    for off in (0, 4095, 65536, size - 10):
        m[off:off + 10] = b"MMAPWRITE%d" % (off % 10)
    m.flush()     # msync(MS_SYNC)
    r.add("msync", "ok")
    r.call("read via same fd", os.pread, fd, 20, 4090)
    m.close()
    r.close("close", fd)
    r.call("read via fresh fd", rfile, J(d, "f"))
    r.stat("stat", J(d, "f"))


@case("mmap_write_then_close_before_munmap")
def _(r, d):
    wfile(J(d, "f"), bytes(8192))
    fd = os.open(J(d, "f"), os.O_RDWR)
    m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    os.close(fd)
    m[100:110] = b"0123456789"
    m.close()   # no explicit msync: munmap must not lose the data (page cache)
    r.call("read via fresh fd", rfile, J(d, "f"))
    fd = r.open("open O_RDONLY", J(d, "f"), os.O_RDONLY)
    r.call("fsync", os.fsync, fd)
    r.close("close", fd)


@case("mmap_private_not_written")
def _(r, d):
    wfile(J(d, "f"), b"original" * 512)
    fd = os.open(J(d, "f"), os.O_RDONLY)
    m = mmap.mmap(fd, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
    m[0:8] = b"PRIVATE!"
    r.add("private view", m[0:16])
    m.close()
    os.close(fd)
    r.call("file unchanged", lambda: rfile(J(d, "f"))[:16])


# --- locks -----------------------------------------------------------------------------

@case("flock_conflict")
def _(r, d):
    wfile(J(d, "f"), b"x")
    a = r.open("open a", J(d, "f"), os.O_RDWR)
    b = r.open("open b", J(d, "f"), os.O_RDWR)
    r.call("a LOCK_EX|LOCK_NB", fcntl.flock, a, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.call("b LOCK_EX|LOCK_NB", fcntl.flock, b, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.call("b LOCK_SH|LOCK_NB", fcntl.flock, b, fcntl.LOCK_SH | fcntl.LOCK_NB)
    r.call("a LOCK_UN", fcntl.flock, a, fcntl.LOCK_UN)
    r.call("b LOCK_SH|LOCK_NB", fcntl.flock, b, fcntl.LOCK_SH | fcntl.LOCK_NB)
    r.call("a LOCK_SH|LOCK_NB", fcntl.flock, a, fcntl.LOCK_SH | fcntl.LOCK_NB)
    r.call("a upgrade EX|NB", fcntl.flock, a, fcntl.LOCK_EX | fcntl.LOCK_NB)
    r.close("close a", a)
    r.close("close b", b)


_FLOCK = "@hhqqi4x"


def _getlk(fd, typ, start, length):
    arg = struct.pack(_FLOCK, typ, os.SEEK_SET, start, length, 0)
    res = fcntl.fcntl(fd, fcntl.F_GETLK, arg)
    return struct.unpack(_FLOCK, res)


@case("fcntl_lock_conflict")
def _(r, d):
    wfile(J(d, "f"), b"x" * 1000)
    fd = r.open("open", J(d, "f"), os.O_RDWR)
    parent = os.getpid()
    r.call("F_SETLK write 0..100", fcntl.fcntl, fd, fcntl.F_SETLK,
           struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 100, 0))

    def child(u):
        c = u.open("child open", J(d, "f"), os.O_RDWR)
        u.call("child F_SETLK write 50..60", fcntl.fcntl, c, fcntl.F_SETLK,
               struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 50, 10, 0))
        u.call("child F_SETLK read 50..60", fcntl.fcntl, c, fcntl.F_SETLK,
               struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, 50, 10, 0))
        u.call("child F_SETLK write 200..300", lambda: fcntl.fcntl(
            c, fcntl.F_SETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 200, 100, 0))
            and "set")
        lk = _getlk(c, fcntl.F_WRLCK, 0, 10)
        u.add("child F_GETLK type/start/len", (lk[0], lk[2], lk[3]))
        u.add("child F_GETLK holder is parent", lk[4] == parent)
        lk = _getlk(c, fcntl.F_WRLCK, 500, 10)
        u.add("child F_GETLK free range", lk[0] == fcntl.F_UNLCK)
    r.as_user("child: ", 0, 0, child)
    lk = _getlk(fd, fcntl.F_WRLCK, 0, 10)
    r.add("own lock not reported to self", lk[0] == fcntl.F_UNLCK)
    r.call("F_SETLK unlock", fcntl.fcntl, fd, fcntl.F_SETLK,
           struct.pack(_FLOCK, fcntl.F_UNLCK, os.SEEK_SET, 0, 0, 0))
    r.as_user("child2: ", 0, 0, lambda u: u.call(
        "child F_SETLK after unlock", lambda: fcntl.fcntl(
            os.open(J(d, "f"), os.O_RDWR), fcntl.F_SETLK,
            struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 100, 0)) and "set"))
    r.close("close", fd)


@case("ofd_lock_conflict")
def _(r, d):
    wfile(J(d, "f"), b"x" * 100)
    a = r.open("open a", J(d, "f"), os.O_RDWR)
    b = r.open("open b", J(d, "f"), os.O_RDWR)
    r.call("a F_OFD_SETLK", lambda: fcntl.fcntl(a, fcntl.F_OFD_SETLK, struct.pack(
        _FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 10, 0)) and "set")
    r.call("b F_OFD_SETLK", lambda: fcntl.fcntl(b, fcntl.F_OFD_SETLK, struct.pack(
        _FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 5, 10, 0)) and "set")
    r.close("close a", a)
    r.call("b F_OFD_SETLK after a closed", lambda: fcntl.fcntl(b, fcntl.F_OFD_SETLK,
           struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 5, 10, 0)) and "set")
    r.close("close b", b)


# --- statfs, readdir, sync -------------------------------------------------------------

@case("statfs_geometry")
def _(r, d):
    s = os.statvfs(d)
    r.add("f_bsize", s.f_bsize)
    r.add("f_frsize", s.f_frsize)
    r.add("f_blocks", s.f_blocks)
    r.add("f_files", s.f_files)
    r.add("f_namemax", s.f_namemax)
    r.add("f_bavail <= f_bfree", s.f_bavail <= s.f_bfree)
    r.add("f_bfree > 0", s.f_bfree > 0)


@case("statfs_mount_flags")
def _(r, d):
    s = os.statvfs(d)
    r.add("ST_RDONLY", bool(s.f_flag & os.ST_RDONLY))
    r.add("ST_NOSUID", bool(s.f_flag & os.ST_NOSUID))
    r.add("ST_NODEV", bool(s.f_flag & os.ST_NODEV))
    r.add("ST_NOEXEC", bool(s.f_flag & os.ST_NOEXEC))


@case("readdir_dtype")
def _(r, d):
    os.mkdir(J(d, "dir"))
    wfile(J(d, "file"))
    os.symlink("file", J(d, "link"))
    os.symlink("dir", J(d, "dirlink"))
    os.mkfifo(J(d, "fifo"))
    os.mknod(J(d, "chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(J(d, "sock"), 0o600 | stat.S_IFSOCK)
    r.call("readdir d_type", readdir_types, d)
    r.call("scandir", lambda: sorted(
        (e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False),
         e.is_symlink(), e.is_dir()) for e in os.scandir(d)))
    r.call("scandir inode relation", lambda: all(
        e.inode() == os.lstat(J(d, e.name)).st_ino for e in os.scandir(d)))


@case("readdir_1000_entries")
def _(r, d):
    for i in range(1000):
        if i % 10 == 0:
            os.mkdir(J(d, "d%04d" % i))
        else:
            wfile(J(d, "f%04d_%s" % (i, "x" * (i % 50))), b"")
    names = os.listdir(d)
    r.add("count", len(names))
    r.add("sorted names", sorted(names))
    r.call("types", lambda: sorted((e.name, e.is_dir(follow_symlinks=False))
                                   for e in os.scandir(d)))
    r.add("no duplicates", len(set(names)) == len(names))
    r.stat("dir", d)


@case("readdir_while_modifying")
def _(r, d):
    for i in range(300):
        wfile(J(d, "e%03d" % i))
    it = os.scandir(d)
    seen = []
    for n, e in enumerate(it):
        seen.append(e.name)
        if n == 10:
            for i in range(0, 300, 2):
                try:
                    os.unlink(J(d, "e%03d" % i))
                except FileNotFoundError:
                    pass
    it.close()
    r.add("no duplicates", len(set(seen)) == len(seen))
    r.add("odd names all seen", all("e%03d" % i in seen for i in range(1, 300, 2)))
    r.call("after", lambda: sorted(os.listdir(d)))


@case("readdir_dot_dotdot_and_empty")
def _(r, d):
    os.mkdir(J(d, "empty"))
    r.call("listdir empty", os.listdir, J(d, "empty"))
    r.call("raw readdir has . and ..", lambda: [x for x in readdir_types(J(d, "empty"))])
    fd = r.open("open dir", J(d, "empty"), os.O_RDONLY | os.O_DIRECTORY)
    r.call("read on dir fd", os.read, fd, 10)
    r.close("close", fd)


@case("fsync_fdatasync_syncfs")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    os.write(fd, b"x" * 10000)
    r.call("fsync file", os.fsync, fd)
    r.call("fdatasync file", os.fdatasync, fd)
    r.call("syncfs", syncfs, fd)
    r.close("close", fd)
    dfd = r.open("open dir", d, os.O_RDONLY | os.O_DIRECTORY)
    r.call("fsync dir", os.fsync, dfd)
    r.call("fdatasync dir", os.fdatasync, dfd)
    r.close("close dir", dfd)
    ro = r.open("open O_RDONLY", J(d, "f"), os.O_RDONLY)
    r.call("fsync O_RDONLY fd", os.fsync, ro)
    r.close("close", ro)
    fd = r.open("open O_SYNC", J(d, "g"), os.O_CREAT | os.O_WRONLY | os.O_SYNC)
    r.call("write O_SYNC", os.write, fd, b"sync")
    r.close("close", fd)
    fd = r.open("open O_DSYNC", J(d, "g"), os.O_WRONLY | os.O_DSYNC | os.O_APPEND)
    r.call("write O_DSYNC", os.write, fd, b"dsync")
    r.close("close", fd)
    r.call("content", rfile, J(d, "g"))


@case("close_flush_dup")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    fd2 = os.dup(fd)
    r.call("write", os.write, fd, b"abc")
    r.call("close dup", os.close, fd2)
    r.call("write after dup close", os.write, fd, b"def")
    r.fstat("fstat", fd)
    r.close("close", fd)
    r.call("close again", os.close, fd)
    r.call("content", rfile, J(d, "f"))


# --- open-file identity ------------------------------------------------------------------

@case("unlinked_while_open")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    r.call("write 1", os.write, fd, b"before unlink;")
    r.call("unlink", os.unlink, J(d, "f"))
    r.call("write 2", os.write, fd, pattern(100000, 4))
    r.call("pwrite", os.pwrite, fd, b"PATCH", 3)
    r.fstat("fstat", fd)
    r.call("read back", readall, fd)
    r.call("ftruncate", os.ftruncate, fd, 10)
    r.call("read back", readall, fd)
    r.call("setxattr on unlinked", os.setxattr, fd, "user.u", b"1")
    r.call("fchmod on unlinked", os.fchmod, fd, 0o600)
    r.fstat("fstat", fd)
    r.call("listdir", os.listdir, d)
    wfile(J(d, "f"), b"new file, same name")
    r.call("new file", rfile, J(d, "f"))
    r.call("old fd unaffected", readall, fd)
    r.close("close", fd)


@case("renamed_while_open")
def _(r, d):
    os.mkdir(J(d, "other"))
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    r.call("write 1", os.write, fd, b"one;")
    r.call("rename", os.rename, J(d, "f"), J(d, "other", "g"))
    r.call("write 2", os.write, fd, b"two;")
    wfile(J(d, "f"), b"replacement")
    r.call("write 3", os.write, fd, b"three;")
    r.call("fsync", os.fsync, fd)
    r.close("close", fd)
    r.call("renamed file", rfile, J(d, "other", "g"))
    r.call("new f", rfile, J(d, "f"))


@case("renamed_over_while_open")
def _(r, d):
    wfile(J(d, "victim"), b"victim data")
    v = r.open("open victim", J(d, "victim"), os.O_RDWR)
    wfile(J(d, "new"), b"new data")
    r.call("rename new over victim", os.rename, J(d, "new"), J(d, "victim"))
    r.call("write to replaced fd", os.pwrite, v, b"VICTIM", 0)
    r.call("replaced fd content", readall, v)
    r.fstat("fstat replaced fd", v)
    r.close("close", v)
    r.call("victim path content", rfile, J(d, "victim"))


@case("write_through_two_names")
def _(r, d):
    wfile(J(d, "a"), bytes(100))
    os.link(J(d, "a"), J(d, "b"))
    fa = r.open("open a", J(d, "a"), os.O_RDWR)
    fb = r.open("open b", J(d, "b"), os.O_RDWR)
    r.call("pwrite a", os.pwrite, fa, b"AAAA", 0)
    r.call("pread b", os.pread, fb, 8, 0)
    r.call("pwrite b", os.pwrite, fb, b"BB", 2)
    r.call("pread a", os.pread, fa, 8, 0)
    r.close("close a", fa)
    r.close("close b", fb)


# --- names and paths --------------------------------------------------------------------

@case("long_names")
def _(r, d):
    n255 = "n" * 255
    n256 = "n" * 256
    fd = r.open("create 255", J(d, n255), os.O_CREAT | os.O_WRONLY)
    r.close("close", fd)
    r.open("create 256", J(d, n256), os.O_CREAT | os.O_WRONLY)
    r.call("mkdir 256", os.mkdir, J(d, "d" * 256))
    r.call("symlink 256", os.symlink, "x", J(d, "s" * 256))
    r.call("rename to 256", os.rename, J(d, n255), J(d, n256))
    r.call("stat 256", os.stat, J(d, n256))
    r.call("mkdir 255", os.mkdir, J(d, "d" * 255))
    r.call("listdir", lambda: sorted(len(x) for x in os.listdir(d)))
    r.call("utf-8 name", lambda: (wfile(J(d, "é" * 127), b"u"), os.listdir(d).count("é" * 127))[1])
    r.open("utf-8 name 256 bytes", J(d, "é" * 128), os.O_CREAT | os.O_WRONLY)


@case("path_max_deep")
def _(r, d):
    p = d
    depth = 0
    while len(p) < 3000:
        p = J(p, "deep_directory_%02d" % depth)
        os.mkdir(p)
        depth += 1
    wfile(J(p, "leaf"), b"leaf")
    r.add("depth", depth)
    r.call("read leaf", rfile, J(p, "leaf"))
    r.open("path > PATH_MAX", J(p, "x" * 250, "y" * 250, "z" * 250, "w" * 250), os.O_RDONLY)


@case("dotdot_handling")
def _(r, d):
    os.makedirs(J(d, "a", "b"))
    fd = r.open("create a/b/../f", J(d, "a", "b", "..", "f"), os.O_CREAT | os.O_WRONLY)
    r.close("close", fd)
    r.call("exists a/f", os.path.exists, J(d, "a", "f"))
    r.call("a/b/.. is a", lambda: os.stat(J(d, "a", "b", "..")).st_ino
           == os.stat(J(d, "a")).st_ino)
    r.call("a/./b/./.", lambda: os.stat(J(d, "a", ".", "b", ".", ".")).st_ino
           == os.stat(J(d, "a", "b")).st_ino)
    r.call("rename via ..", os.rename, J(d, "a", "b", "..", "f"), J(d, "a", "b", "f2"))
    r.call("mkdir ..", os.mkdir, J(d, "a", ".."))
    r.call("rmdir ..", os.rmdir, J(d, "a", "b", ".."))
    r.call("unlink .", os.unlink, J(d, "a", "."))
    r.call("rename .", os.rename, J(d, "a", "."), J(d, "z"))
    r.call("listdir a/b", os.listdir, J(d, "a", "b"))


@case("dotdot_of_mount_root")
def _(r, d):
    root = os.path.dirname(d)         # the raw dir / the shim mount point
    parent = os.path.dirname(root)
    r.call("root/.. is the parent of the mount point", lambda: os.path.samestat(
        os.stat(J(root, "..")), os.stat(parent)))
    r.call("case/../.. is the parent too", lambda: os.path.samestat(
        os.stat(J(d, "..", "..")), os.stat(parent)))
    fd = r.open("open root O_PATH", root, os.O_PATH | os.O_DIRECTORY)
    r.call("openat(root, '..') escapes to parent", lambda: os.path.samestat(
        os.stat("..", dir_fd=fd), os.stat(parent)))
    r.close("close", fd)


@case("enotdir_components")
def _(r, d):
    wfile(J(d, "f"), b"x")
    r.call("stat f/", os.stat, J(d, "f") + "/")
    r.call("stat f/.", os.stat, J(d, "f", "."))
    r.call("mkdir f/x", os.mkdir, J(d, "f", "x"))
    r.call("unlink f/", os.unlink, J(d, "f") + "/")
    r.call("rename f/ g", os.rename, J(d, "f") + "/", J(d, "g"))
    r.call("symlink at f/x", os.symlink, "t", J(d, "f", "x"))


# --- more: privileges, exec, notifications, directory offsets --------------------------

@case("root_dac_override")
def _(r, d):
    wfile(J(d, "zero"), b"mode 0000", 0o000)
    os.chmod(J(d, "zero"), 0o000)
    wfile(J(d, "ro"), b"mode 0444")
    os.chmod(J(d, "ro"), 0o444)
    os.mkdir(J(d, "rodir"))
    os.chmod(J(d, "rodir"), 0o555)
    r.call("root reads 0000", rfile, J(d, "zero"))
    fd = r.open("root opens 0444 for write", J(d, "ro"), os.O_WRONLY | os.O_APPEND)
    if fd is not None:
        r.call("write", os.write, fd, b"+root")
        r.close("close", fd)
    r.call("content", rfile, J(d, "ro"))
    fd = r.open("root creates in 0555 dir", J(d, "rodir", "f"), os.O_CREAT | os.O_WRONLY)
    if fd is not None:
        r.close("close", fd)
    r.call("root mkdir in 0555 dir", os.mkdir, J(d, "rodir", "sub"))
    r.call("access X_OK on 0644 file (root)", os.access, J(d, "ro"), os.X_OK)
    os.chmod(J(d, "ro"), 0o744)
    r.call("access X_OK on 0744 file (root)", os.access, J(d, "ro"), os.X_OK)


@case("exec_binary_etxtbsy")
def _(r, d):
    shutil.copy2("/bin/sleep", J(d, "sleeper"))
    os.chmod(J(d, "sleeper"), 0o755)
    with open(J(d, "script.sh"), "w") as f:
        f.write("#!/bin/sh\necho \"script ran with $1\"\n")
    os.chmod(J(d, "script.sh"), 0o755)
    r.call("run script", lambda: subprocess.run([J(d, "script.sh"), "arg"],
                                                stdout=subprocess.PIPE, timeout=20).stdout)
    p = subprocess.Popen([J(d, "sleeper"), "5"])
    try:
        wait_for(lambda: os.path.exists("/proc/%d/exe" % p.pid) and
                 os.readlink("/proc/%d/exe" % p.pid).endswith("sleeper"), 10, "exec")
        r.open("open running binary for write", J(d, "sleeper"), os.O_WRONLY)
    finally:
        p.kill()
        p.wait(timeout=10)
    r.call("exec a missing file", lambda: subprocess.run(
        [J(d, "script.sh")[:-3] + ".none"], timeout=10))
    wfile(J(d, "noexec"), b"#!/bin/sh\n", 0o644)
    r.call("exec 0644 file", lambda: subprocess.run([J(d, "noexec")], timeout=10))


@case("fcntl_setfl_append")
def _(r, d):
    wfile(J(d, "f"), b"0123456789")
    fd = r.open("open O_WRONLY", J(d, "f"), os.O_WRONLY)
    r.call("write at 0", os.write, fd, b"ab")
    r.call("F_SETFL O_APPEND", fcntl.fcntl, fd, fcntl.F_SETFL, os.O_APPEND)
    r.call("write appends", os.write, fd, b"XY")
    r.call("F_GETFL has O_APPEND", lambda: bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND))
    r.call("F_SETFL 0", fcntl.fcntl, fd, fcntl.F_SETFL, 0)
    r.call("lseek 4", os.lseek, fd, 4, os.SEEK_SET)
    r.call("write at 4", os.write, fd, b"--")
    r.close("close", fd)
    r.call("content", rfile, J(d, "f"))


@case("fcntl_lease")
def _(r, d):
    wfile(J(d, "f"), b"x")
    fd = r.open("open O_RDONLY", J(d, "f"), os.O_RDONLY)
    r.call("F_SETLEASE F_RDLCK", fcntl.fcntl, fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    r.call("F_GETLEASE", fcntl.fcntl, fd, fcntl.F_GETLEASE)
    r.call("F_SETLEASE F_UNLCK", fcntl.fcntl, fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    r.close("close", fd)


_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
IN_NAMES = {0x1: "ACCESS", 0x2: "MODIFY", 0x4: "ATTRIB", 0x8: "CLOSE_WRITE",
            0x10: "CLOSE_NOWRITE", 0x20: "OPEN", 0x40: "MOVED_FROM", 0x80: "MOVED_TO",
            0x100: "CREATE", 0x200: "DELETE", 0x40000000: "ISDIR"}


def _inotify_events(fd):
    out = []
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            return out
        buf = os.read(fd, 65536)
        off = 0
        while off < len(buf):
            _wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, off)
            name = buf[off + 16:off + 16 + ln].rstrip(b"\0").decode()
            out.append((name, "|".join(v for k, v in sorted(IN_NAMES.items()) if mask & k)))
            off += 16 + ln


@case("inotify_events")
def _(r, d):
    ifd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if ifd < 0:
        raise _oserr()
    try:
        if _libc.inotify_add_watch(ifd, os.fsencode(d), 0x3ff) < 0:
            raise _oserr()
        wfile(J(d, "f"), b"data")
        os.chmod(J(d, "f"), 0o600)
        os.rename(J(d, "f"), J(d, "g"))
        os.mkdir(J(d, "sub"))
        os.unlink(J(d, "g"))
        os.rmdir(J(d, "sub"))
        r.add("events", _inotify_events(ifd))
    finally:
        os.close(ifd)


_libc.telldir.restype = ctypes.c_long
_libc.telldir.argtypes = [ctypes.c_void_p]
_libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
_libc.rewinddir.argtypes = [ctypes.c_void_p]


def _readn(dp, n):
    out = []
    for _ in range(n):
        ent = _libc.readdir(dp)
        if not ent:
            break
        out.append(ent.contents.d_name.decode())
    return out


@case("readdir_seekdir_telldir")
def _(r, d):
    for i in range(600):
        wfile(J(d, "e%04d" % i))
    dp = _libc.opendir(os.fsencode(d))
    if not dp:
        raise _oserr()
    try:
        first = _readn(dp, 150)
        pos = _libc.telldir(dp)
        nxt = _readn(dp, 200)
        _libc.seekdir(dp, pos)
        again = _readn(dp, 200)
        r.add("seekdir back gives the same names", again == nxt)
        rest = _readn(dp, 10000)
        allnames = first + again + rest
        r.add("one pass sees each name once", (len(allnames), len(set(allnames))))
        wfile(J(d, "late"))
        _libc.rewinddir(dp)
        after = _readn(dp, 10000)
        r.add("rewinddir sees the new entry", "late" in after)
        r.add("count after rewind", len(after))
    finally:
        _libc.closedir(dp)


@case("preadv_pwritev")
def _(r, d):
    fd = r.open("open", J(d, "f"), os.O_CREAT | os.O_RDWR)
    r.call("pwritev 3 iovecs", os.pwritev, fd, [b"aaa", pattern(5000, 1), b"ccc"], 10)
    bufs = [bytearray(7), bytearray(4096), bytearray(2000)]
    r.call("preadv", os.preadv, fd, bufs, 0)
    r.add("bufs", [bytes(b) for b in bufs])
    r.call("writev", os.writev, fd, [b"x", b"y"])
    r.call("content", readall, fd)
    r.close("close", fd)


@case("sendfile_splice")
def _(r, d):
    wfile(J(d, "src"), pattern(200000, 8))
    a = r.open("open src", J(d, "src"), os.O_RDONLY)
    b = r.open("open dst", J(d, "dst"), os.O_CREAT | os.O_WRONLY)
    n = 0
    while n < 200000:
        k = os.sendfile(b, a, n, 200000 - n)
        if k == 0:
            break
        n += k
    r.add("sendfile bytes", n)
    rp, wp = os.pipe()
    try:
        r.call("splice file->pipe", os.splice, a, wp, 4096, offset_src=1000)
        r.call("read pipe", os.read, rp, 8192)
    finally:
        os.close(rp)
        os.close(wp)
    r.close("close a", a)
    r.close("close b", b)
    r.call("dst equals src", lambda: rfile(J(d, "dst")) == rfile(J(d, "src")))


@case("cwd_renamed")
def _(r, d):
    os.makedirs(J(d, "a", "inner"))

    def body(u):
        os.chdir(J(d, "a", "inner"))
        wfile("rel", b"relative")
        os.rename(J(d, "a"), J(d, "b"))
        u.call("getcwd after rename", lambda: os.getcwd().replace(d, "<d>"))
        u.call("relative read", rfile, "rel")
        wfile("rel2", b"after")
        u.call("relative create lands in renamed dir", os.path.exists, J(d, "b", "inner", "rel2"))
        u.call("rmdir cwd (not empty)", os.rmdir, J(d, "b", "inner"))
        os.unlink("rel")
        os.unlink("rel2")
        u.call("rmdir cwd", os.rmdir, J(d, "b", "inner"))
        u.call("create in deleted cwd", lambda: wfile("x", b""))
        u.call("getcwd of deleted", lambda: os.getcwd().replace(d, "<d>"))
    r.as_user("root child: ", 0, 0, body)


@case("many_hardlinks")
def _(r, d):
    wfile(J(d, "f0"), b"one inode")
    for i in range(1, 200):
        os.link(J(d, "f0"), J(d, "f%d" % i))
    r.stat("f0", J(d, "f0"))
    r.stat("f199", J(d, "f199"))
    for i in range(0, 199):
        os.unlink(J(d, "f%d" % i))
    r.stat("last name", J(d, "f199"))
    r.call("content", rfile, J(d, "f199"))


@case("odd_names")
def _(r, d):
    names = [b"with space", b"new\nline", b"back\\slash", b"\xff\xfe-not-utf8", b"-dash",
             b"tab\there", b"\xe2\x80\x8b", b"quote'\"", b"...", b"a" * 255]
    bd = os.fsencode(d)
    for n in names:
        r.call("create %r" % n[:20], wfile, bd + b"/" + n, n)
    r.call("listdir bytes", lambda: sorted(os.listdir(bd)))
    for n in names:
        r.call("read %r" % n[:20], rfile, bd + b"/" + n)
    r.call("rename odd", os.rename, bd + b"/" + names[3], bd + b"/" + names[1] + b"2")
    r.call("listdir bytes", lambda: sorted(os.listdir(bd)))


@case("symlink_escape_mount")
def _(r, d):
    root = os.path.dirname(d)
    parent = os.path.dirname(root)
    os.symlink("../..", J(d, "up2"))
    os.symlink(parent, J(d, "abs"))
    r.call("../.. from case dir resolves to the mount point's parent",
           lambda: os.path.samestat(os.stat(J(d, "up2")), os.stat(parent)))
    r.call("absolute symlink out of the tree",
           lambda: os.path.samestat(os.stat(J(d, "abs")), os.stat(parent)))
    r.call("readlink", os.readlink, J(d, "up2"))


def _vfs_cap(uid_caps=0x400):
    """A security.capability v2 value granting CAP_NET_BIND_SERVICE (permitted)."""
    return struct.pack("<IIIII", 0x02000001, uid_caps, 0, 0, 0)


@case("security_capability_killpriv")
def _(r, d):
    wfile(J(d, "f"), b"x", 0o755)
    os.chmod(J(d, "f"), 0o755)
    r.call("set security.capability", os.setxattr, J(d, "f"), "security.capability",
           _vfs_cap())
    r.call("get", os.getxattr, J(d, "f"), "security.capability")
    fd = r.open("open", J(d, "f"), os.O_WRONLY)
    r.call("write by root", os.write, fd, b"y")
    r.close("close", fd)
    r.call("capability after write", os.getxattr, J(d, "f"), "security.capability")
    r.call("set again", os.setxattr, J(d, "f"), "security.capability", _vfs_cap())
    r.call("chown", os.chown, J(d, "f"), USER_A, USER_A)
    r.call("capability after chown", os.getxattr, J(d, "f"), "security.capability")


@case("xattr_on_special_files")
def _(r, d):
    os.mkfifo(J(d, "fifo"))
    os.mknod(J(d, "chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    r.call("user.* on fifo", os.setxattr, J(d, "fifo"), "user.x", b"1")
    r.call("user.* on char dev", os.setxattr, J(d, "chr"), "user.x", b"1")
    r.call("trusted.* on fifo", os.setxattr, J(d, "fifo"), "trusted.x", b"1")
    r.call("list fifo", lambda: sorted(os.listxattr(J(d, "fifo"))))


# Last on purpose: a shim that keeps one fd per known inode runs out of descriptors
# here, and that must not spill into other cases.
@case("many_files_beyond_fd_limit")
def _(r, d):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    n = 50000 if hard == resource.RLIM_INFINITY else min(hard + 2000, 50000)
    first_err = None
    created = 0
    for i in range(n):
        try:
            fd = os.open(J(d, "m%06d" % i), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644)
            os.close(fd)
            created += 1
        except OSError as e:
            first_err = _ename(e.errno)
            break
    r.add("created (more than RLIMIT_NOFILE's hard limit)", created == n)
    r.add("first create error", first_err)
    statted = 0
    for i in range(created):
        try:
            os.stat(J(d, "m%06d" % i))
            statted += 1
        except OSError as e:
            r.add("first stat error", _ename(e.errno))
            break
    r.add("all stat ok", statted == created)
    r.call("listdir count", lambda: len(os.listdir(d)))
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d, exist_ok=True)


CASE_NAMES = [c[0] for c in CASES]


# ---------------------------------------------------------------------------------------
# Running and comparing


def _prepare(root, name):
    d = J(root, name)
    if os.path.lexists(d):
        shutil.rmtree(d)
    os.mkdir(d)
    os.chmod(d, 0o755)
    return d


def run_case(root, name, fn):
    d = _prepare(root, name)
    r = Rec(d)
    try:
        fn(r, d)
    except Exception as e:
        r.add("EXCEPTION", _exc_str(e))
    finally:
        r.finish()
    return r.items


def _fmt(v):
    s = repr(v)
    return s if len(s) <= 300 else s[:297] + "..."


def compare_items(raw, shim):
    """First differing record: (index, label, raw_value, shim_value) or None."""
    for i in range(max(len(raw), len(shim))):
        a = raw[i] if i < len(raw) else ("<missing>", None)
        b = shim[i] if i < len(shim) else ("<missing>", None)
        if a != b:
            return i, a, b
    return None


def _check_traversable(root):
    p = os.path.abspath(root)
    bad = []
    while True:
        st = os.stat(p)
        if not st.st_mode & stat.S_IXOTH:
            bad.append(p)
        if p == "/":
            break
        p = os.path.dirname(p)
    return bad


def run_suite(raw_dir, shim_dir, select=None, verbose=False, out=sys.stdout):
    """Run the selected cases (all, or those whose name contains one of `select`) on both
    directories and print a table. Returns (results, ok); results is a list of dicts:
    {name, status: PASS|DIFF|KNOWN|ERROR, note, raw, shim, first_diff}."""
    old_umask = os.umask(0o022)
    results = []
    try:
        for root in (raw_dir, shim_dir):
            os.chmod(root, 0o755)
            bad = _check_traversable(root)
            if bad:
                print("posix_suite: warning: not searchable by others (non-root cases "
                      "will fail alike): %s" % ", ".join(bad), file=out)
        for name, fn, cmp in CASES:
            if select and not any(s in name for s in select):
                continue
            t0 = time.monotonic()
            raw = run_case(raw_dir, name, fn)
            shim = run_case(shim_dir, name, fn)
            dt = time.monotonic() - t0
            note = ""
            if cmp is not None:
                same, note = cmp(raw, shim)
            else:
                same = raw == shim
            diff = None if same else compare_items(raw, shim)
            raw_exc = any(lab.endswith("EXCEPTION") or lab.endswith("CHILD")
                          for lab, _ in raw)
            if not same and name in KNOWN_DIFFERENCES:
                status, note = "KNOWN", KNOWN_DIFFERENCES[name]
            elif not same:
                status = "DIFF"
            elif raw_exc:
                status, note = "ERROR", "the case raised on both sides (suite bug?)"
            else:
                status = "PASS"
            res = {"name": name, "status": status, "note": note, "raw": raw, "shim": shim,
                   "first_diff": diff, "seconds": dt}
            results.append(res)
            _print_result(res, verbose, out)
    finally:
        os.umask(old_umask)
    counts = {}
    for res in results:
        counts[res["status"]] = counts.get(res["status"], 0) + 1
    print("posix_suite: %d cases: %s" % (len(results), ", ".join(
        "%d %s" % (n, s) for s, n in sorted(counts.items()))), file=out)
    ok = all(res["status"] in ("PASS", "KNOWN") for res in results)
    return results, ok


def _print_result(res, verbose, out):
    line = "%-40s %-5s %6.2fs" % (res["name"], res["status"], res["seconds"])
    if res["note"]:
        line += "  (%s)" % res["note"]
    print(line, file=out)
    if res["first_diff"] is not None:
        i, a, b = res["first_diff"]
        print("    step %d: raw : %s = %s" % (i, a[0], _fmt(a[1])), file=out)
        print("    step %d: shim: %s = %s" % (i, b[0], _fmt(b[1])), file=out)
        ndiff = sum(1 for x, y in zip(res["raw"], res["shim"]) if x != y)
        ndiff += abs(len(res["raw"]) - len(res["shim"]))
        if ndiff > 1:
            print("    (%d differing steps in all; -v shows them)" % ndiff, file=out)
        if verbose:
            for j in range(max(len(res["raw"]), len(res["shim"]))):
                x = res["raw"][j] if j < len(res["raw"]) else None
                y = res["shim"][j] if j < len(res["shim"]) else None
                if x != y and j != i:
                    print("    step %d: raw : %s" % (j, _fmt(x)), file=out)
                    print("    step %d: shim: %s" % (j, _fmt(y)), file=out)
    elif verbose and res["status"] == "PASS":
        for lab, v in res["raw"]:
            print("      %s = %s" % (lab, _fmt(v)), file=out)
    out.flush()


# ---------------------------------------------------------------------------------------
# Helpers shared with the ctest drivers (test_shim_*.py): find the binary, mount, wait,
# unmount, manifests.

SOURCE_DIR = os.environ.get("MR_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
SKIP_RC = 77


def find_shim_bin():
    """mirror-shim: $MR_SHIM_BIN, else $MR_BIN_DIR/mirror-shim, else build/bin."""
    if os.environ.get("MR_SHIM_BIN"):
        return os.environ["MR_SHIM_BIN"]
    bindir = os.environ.get("MR_BIN_DIR") or J(SOURCE_DIR, "build", "bin")
    return J(bindir, "mirror-shim")


def wait_for(cond, timeout_s, what, interval_s=0.02):
    """Poll cond() until it returns a true value; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout_s, what))
        time.sleep(interval_s)


def _unescape_mountinfo(s):
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
            .replace("\\134", "\\")


def fuse_mounts(path):
    """Number of FUSE mounts stacked exactly at path (from /proc/self/mountinfo)."""
    path = os.path.realpath(path)
    n = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype = right.split()[0] if right else ""
            if len(fields) > 4 and _unescape_mountinfo(fields[4]) == path and \
                    fstype.startswith("fuse"):
                n += 1
    return n


def force_unmount(path, max_rounds=5):
    """Best effort: lazily unmount every FUSE mount stacked at path."""
    for _ in range(max_rounds):
        if not fuse_mounts(path):
            return
        for argv in (["fusermount3", "-u", "-z", path], ["umount", "-l", path]):
            try:
                subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if not fuse_mounts(path):
                return


class ShimMount:
    """One `mirror-shim -f [extra] DIR` process in the background. Use as a context
    manager: the mount is always gone (SIGTERM, then SIGKILL and a lazy unmount) on
    exit. stderr goes to a file so it can be searched for sanitizer reports."""

    def __init__(self, directory, extra=(), binary=None, log_path=None, env=None):
        self.dir = os.path.realpath(directory)
        self.bin = binary or find_shim_bin()
        self.extra = list(extra)
        self.log_path = log_path or (self.dir.rstrip("/") + ".shim.log")
        self.env = env
        self.proc = None
        self.rc = None
        self.before = 0

    def start(self, timeout_s=15.0):
        self.before = fuse_mounts(self.dir)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.bin, "-f"] + self.extra + [self.dir],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=self.env)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("mirror-shim exited with %d before mounting: %s"
                                   % (self.proc.returncode, self.log_text()[-2000:]))
            return fuse_mounts(self.dir) > self.before
        wait_for(up, timeout_s, "the FUSE mount at %s" % self.dir)
        return self

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout_s=30.0):
        """Signal the process and wait for it to exit and the mount to go. Returns the
        exit status (negative: killed by that signal); never leaves the mount behind."""
        if self.proc is None:
            return self.rc
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.rc = self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.rc = self.proc.wait(timeout=30)
                self.rc = "hung (killed after %.0fs)" % timeout_s
            try:
                wait_for(lambda: fuse_mounts(self.dir) <= self.before, 10.0,
                         "the mount at %s to go" % self.dir)
            except TimeoutError:
                force_unmount(self.dir)
        finally:
            if fuse_mounts(self.dir) > self.before:
                force_unmount(self.dir)
            self._log.close()
            self.proc = None
        return self.rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def manifest(root, with_times=True):
    """Everything observable about a tree, inode numbers replaced by hard-link groups:
    {relpath: (type, mode, uid, gid, size, nlink, link_group, content_sha256|target|rdev,
    user xattrs, mtime_ns)}."""
    out = {}
    groups = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = J(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            fmt = stat.S_IFMT(st.st_mode)
            if fmt == stat.S_IFREG:
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                extra = h.hexdigest()
            elif fmt == stat.S_IFLNK:
                extra = os.readlink(p)
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                extra = None
            if fmt != stat.S_IFDIR and st.st_nlink > 1:
                group = groups.setdefault(st.st_ino, "g%d" % len(groups))
            else:
                group = None
            try:
                xa = tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False))
                                  for n in os.listxattr(p, follow_symlinks=False)
                                  if n.startswith("user.")))
            except OSError:
                xa = "unsupported"
            out[rel] = (TYPE_NAMES.get(fmt), oct(stat.S_IMODE(st.st_mode)), st.st_uid,
                        st.st_gid, st.st_size if fmt != stat.S_IFDIR else None,
                        st.st_nlink, group, extra, xa,
                        st.st_mtime_ns if with_times and fmt != stat.S_IFDIR else None)
    return out


def manifest_diff(a, b, limit=20):
    """Human lines describing how manifest a differs from b (empty when equal)."""
    lines = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            lines.append("%s:\n      before: %s\n      after : %s" % (k, a.get(k), b.get(k)))
            if len(lines) >= limit:
                lines.append("... (more)")
                break
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", help="raw directory (the reference)")
    ap.add_argument("--shim", help="directory with the shim mounted over it")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("-k", action="append", metavar="SUBSTRING",
                    help="run only cases whose name contains SUBSTRING (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.list:
        for name in CASE_NAMES:
            print(name + ("  [known difference: %s]" % KNOWN_DIFFERENCES[name]
                          if name in KNOWN_DIFFERENCES else ""))
        print("%d cases" % len(CASE_NAMES))
        return 0
    if not a.raw or not a.shim:
        ap.error("--raw and --shim are required (or --list)")
    for p in (a.raw, a.shim):
        if not os.path.isdir(p):
            ap.error("%s is not a directory" % p)
    if os.geteuid() != 0:
        print("posix_suite: must run as root (mknod, chown, other users)", file=sys.stderr)
        return 2
    _, ok = run_suite(os.path.abspath(a.raw), os.path.abspath(a.shim), a.k, a.verbose)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
