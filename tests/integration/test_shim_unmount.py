#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""integration.shim_unmount - SIGTERM to mirror-shim while writers are busy.

Two writer processes create files in the mounted dir: each file is written in full,
fsynced and closed, and only then recorded (name + sha256) in a manifest OUTSIDE the
mount (itself fsynced). Once enough files exist, mirror-shim gets SIGTERM in the middle
of the run. From then on the writers may fail (ENOTCONN...) or keep writing into the
underlying dir after the lazy unmount: both are fine. Checks: no writer error before
the SIGTERM, mirror-shim exits 0 within its deadline and the mount is gone, and every
file recorded in a manifest is intact (checksum) in the underlying directory.
Needs root and /dev/fuse (exit 77 otherwise).
"""

import hashlib
import os
import re
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
import posix_suite as ps  # noqa: E402

WRITERS = 2
MIN_FILES_BEFORE_KILL = 150
WRITER_LIMIT_S = 120


def writer(idx, d, manifest_path, status_path):
    """Child process body: write files until stopped or deadline. Never returns."""
    code = 0
    try:
        man = os.open(manifest_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                      0o644)
        seed = hashlib.sha256(b"writer%d" % idx).digest()
        deadline = time.monotonic() + WRITER_LIMIT_S
        n = 0
        while time.monotonic() < deadline:
            name = "w%d_%05d" % (idx, n)
            size = 4096 + (n * 7919 + idx * 104729) % (256 * 1024)
            block = hashlib.sha256(seed + b"%d" % n).digest() * 128
            data = (block * (size // len(block) + 1))[:size]
            try:
                fd = os.open(os.path.join(d, name),
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view[:65536]):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                with open(status_path, "a") as st:
                    st.write("ERR %d %s %s\n" % (time.monotonic_ns(),
                                                 ps._ename(e.errno or 0), name))
                break
            os.write(man, b"%s %s\n" % (name.encode(), hashlib.sha256(data).hexdigest()
                                        .encode()))
            os.fsync(man)
            n += 1
        os.close(man)
    except BaseException as e:  # report, never raise out of a forked child
        try:
            with open(status_path, "a") as st:
                st.write("EXC %d %r\n" % (time.monotonic_ns(), e))
        except OSError:
            pass
        code = 1
    os._exit(code)


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def main():
    if os.geteuid() != 0:
        print("integration.shim_unmount: needs root (FUSE mounts); skipping")
        return ps.SKIP_RC
    if not os.path.exists("/dev/fuse"):
        print("integration.shim_unmount: /dev/fuse is missing; skipping")
        return ps.SKIP_RC
    if not os.access(ps.find_shim_bin(), os.X_OK):
        print("integration.shim_unmount: %s is missing (build first)" % ps.find_shim_bin())
        return 1
    tmp = tempfile.mkdtemp(prefix="hamirror-shim-unmount-", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    d = os.path.join(tmp, "m")
    os.mkdir(d)
    problems = []
    pids = []
    m = ps.ShimMount(d, log_path=os.path.join(tmp, "mirror-shim.log"))
    manifests = [os.path.join(tmp, "manifest.%d" % i) for i in range(WRITERS)]
    status = [os.path.join(tmp, "status.%d" % i) for i in range(WRITERS)]
    try:
        m.start()
        for i in range(WRITERS):
            pid = os.fork()
            if pid == 0:
                writer(i, d, manifests[i], status[i])
            pids.append(pid)
        ps.wait_for(lambda: sum(count_lines(p) for p in manifests) >= MIN_FILES_BEFORE_KILL
                    or any(os.path.exists(s) for s in status), 60,
                    "%d files written through the mount" % MIN_FILES_BEFORE_KILL)
        t_kill = time.monotonic_ns()
        before = sum(count_lines(p) for p in manifests)
        print("integration.shim_unmount: %d files recorded; SIGTERM to mirror-shim" % before)
        rc = m.stop(sig=signal.SIGTERM, timeout_s=30)
        if rc != 0:
            problems.append("mirror-shim exit status after SIGTERM under load: %s" % rc)
        if ps.fuse_mounts(d):
            problems.append("mount still present after SIGTERM")
        time.sleep(0.5)      # let the writers run into the unmount (errors or not)
    except Exception as e:
        problems.append("%s: %s" % (type(e).__name__, e))
        t_kill = 0
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        m.stop()
        ps.force_unmount(d)

    for i, sp in enumerate(status):
        if not os.path.exists(sp):
            print("writer %d: no error (kept writing to the underlying dir)" % i)
            continue
        with open(sp) as f:
            for line in f:
                parts = line.split()
                print("writer %d: %s" % (i, line.strip()))
                if parts[0] == "EXC" or (t_kill and int(parts[1]) < t_kill):
                    problems.append("writer %d failed before the SIGTERM: %s" % (i, line.strip()))

    log = m.log_text()
    if re.search(r"ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:",
                 log):
        problems.append("sanitizer report in mirror-shim's stderr (see below)")

    checked = bad = 0
    for mp in manifests:
        if not os.path.exists(mp):
            continue
        with open(mp) as f:
            for line in f:
                name, digest = line.split()
                checked += 1
                try:
                    with open(os.path.join(d, name), "rb") as g:
                        got = hashlib.sha256(g.read()).hexdigest()
                except OSError as e:
                    got = "unreadable (%s)" % ps._ename(e.errno)
                if got != digest:
                    bad += 1
                    if bad <= 10:
                        problems.append("%s: recorded %s, underlying dir has %s"
                                        % (name, digest[:16], got[:24]))
    print("integration.shim_unmount: %d recorded files checked in the underlying dir, "
          "%d bad" % (checked, bad))
    if checked < MIN_FILES_BEFORE_KILL and not problems:
        problems.append("only %d files were recorded" % checked)
    if problems:
        print("--- mirror-shim stderr (last 6000 bytes) ---\n" + log[-6000:])
    shutil.rmtree(tmp, ignore_errors=True)
    for pr in problems:
        print("FAIL: " + pr)
    if not problems:
        print("integration.shim_unmount: PASS")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
