#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""integration.shim_stress - concurrent workload through mirror-shim.

Mounts `mirror-shim -f` over a temp dir, runs shim_stress (8 threads, every read,
stat and listing checked against an in-memory model) for MR_STRESS_SECONDS (default
20), then checks: shim_stress passed its own verification; the tree seen through the
mount equals the underlying tree after unmount (content checksums, modes, link
groups, xattrs); mirror-shim exited 0 on SIGTERM with no sanitizer report on stderr.
Needs root and /dev/fuse (exit 77 otherwise).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim"))
import posix_suite as ps  # noqa: E402

SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|"
                          r"WARNING: ThreadSanitizer|runtime error:|SUMMARY: \w+Sanitizer")


def main():
    if os.geteuid() != 0:
        print("integration.shim_stress: needs root (FUSE mounts); skipping")
        return ps.SKIP_RC
    if not os.path.exists("/dev/fuse"):
        print("integration.shim_stress: /dev/fuse is missing; skipping")
        return ps.SKIP_RC
    shim = ps.find_shim_bin()
    # ctest passes the target's path; by hand: next to mirror-shim or in build/tests.
    stress = os.environ.get("MR_SHIM_STRESS") or next(
        (p for p in (os.path.join(os.path.dirname(shim), "shim_stress"),
                     os.path.join(os.path.dirname(shim), "..", "tests", "shim_stress"))
         if os.access(p, os.X_OK)), os.path.join(os.path.dirname(shim), "shim_stress"))
    for b in (shim, stress):
        if not os.access(b, os.X_OK):
            print("integration.shim_stress: %s is missing (build first)" % b)
            return 1
    seconds = os.environ.get("MR_STRESS_SECONDS", "20")
    tmp = tempfile.mkdtemp(prefix="hamirror-shim-stress-", dir="/var/tmp")
    os.chmod(tmp, 0o755)
    d = os.path.join(tmp, "m")
    os.mkdir(d)
    problems = []
    m = ps.ShimMount(d, log_path=os.path.join(tmp, "mirror-shim.log"))
    try:
        m.start()
        print("integration.shim_stress: mounted %s, running shim_stress for %s s" % (d, seconds))
        sys.stdout.flush()
        try:
            p = subprocess.run([stress, "-s", seconds, d], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=float(seconds) + 120)
            out = p.stdout.decode(errors="replace")
            print(out)
            if p.returncode != 0 or "verification passed" not in out:
                problems.append("shim_stress failed (exit %d)" % p.returncode)
        except subprocess.TimeoutExpired:
            problems.append("shim_stress hung (no exit %s s after its deadline)" % 120)
        through = ps.manifest(d)
        print("integration.shim_stress: %d entries through the mount" % len(through))
        rc = m.stop()
        if rc != 0:
            problems.append("mirror-shim exit status after SIGTERM: %s" % rc)
        if ps.fuse_mounts(d):
            problems.append("still mounted after SIGTERM")
        else:
            lines = ps.manifest_diff(through, ps.manifest(d))
            if lines:
                problems.append("through the mount vs after unmount:\n  " + "\n  ".join(lines))
        log = m.log_text()
        if SANITIZER_RE.search(log):
            problems.append("sanitizer report in mirror-shim's stderr:\n" + log[-6000:])
    except Exception as e:
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        m.stop()
        ps.force_unmount(d)
        if problems:
            print("--- mirror-shim stderr (last 3000 bytes) ---\n" + m.log_text()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    for pr in problems:
        print("FAIL: " + pr)
    if not problems:
        print("integration.shim_stress: PASS")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
