#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The control socket: root-only (file mode and SO_PEERCRED), and robust against
garbage. After every abuse the daemon must still be the same process and answer."""

import json
import os
import random
import socket
import stat
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import hamirror_test as ht  # noqa: E402

NOBODY = 65534

# Runs as a non-root uid: one status request on a raw connection; prints the reply
# (or why there was none) and whether the daemon closed the connection afterwards.
RAW_CLIENT = r"""
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(json.dumps({"connect_error": e.strerror})); sys.exit(0)
body = b'{"cmd":"status"}'
try:
    s.sendall(struct.pack(">I", len(body)) + body)
except OSError:
    pass
buf = b""
closed = False
while True:
    try:
        d = s.recv(65536)
    except ConnectionResetError:
        d = b""
    if not d:
        closed = True
        break
    buf += d
n = struct.unpack(">I", buf[:4])[0] if len(buf) >= 4 else -1
reply = json.loads(buf[4:4 + n]) if n >= 0 and len(buf) >= 4 + n else None
print(json.dumps({"reply": reply, "closed": closed, "extra": len(buf) - 4 - max(n, 0)}))
"""


def padded_request(n_bytes):
    """A syntactically valid request whose JSON text is exactly n_bytes long."""
    head, tail = b'{"cmd":"status","args":["', b'"]}'
    body = head + b"x" * (n_bytes - len(head) - len(tail)) + tail
    assert len(body) == n_bytes
    return body


class CtlSocket(ht.ClusterTestCase):
    start_daemons = ("n1",)

    def setUp(self):
        self.pid = self.ensure_daemon("n1")
        self.sock = self.c.node("n1").sock

    def assert_alive(self, after):
        self.assertEqual(self.c.daemon_pid("n1"), self.pid, "mirrord died after %s" % after)
        st = self.c.status("n1")
        self.assertEqual(st.get("pid"), self.pid, "after %s" % after)
        with self.c.connect("n1") as conn:
            r = conn.request({"cmd": "status"})
        self.assertIs(r.get("ok"), True, "raw status after %s: %r" % (after, r))

    def assert_error_then_close(self, conn, what):
        r = conn.recv_frame()
        self.assertIsNotNone(r, "%s: connection closed without an error reply" % what)
        self.assertIs(r.get("ok"), False, "%s: reply %r" % (what, r))
        self.assertIsInstance(r.get("error"), str, "%s: reply %r" % (what, r))
        self.assertIsInstance(r.get("code"), int, "%s: reply %r" % (what, r))
        self.assertTrue(conn.wait_closed(5), "%s: daemon kept the connection open after the error" % what)
        return r

    # ---- who may connect ---------------------------------------------------------

    def test_socket_is_0660_root_root(self):
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660, oct(st.st_mode))
        self.assertEqual((st.st_uid, st.st_gid), (0, 0))

    def test_nonroot_uid_with_gid0_refused_by_peercred(self):
        as_nobody_gid0 = ["setpriv", "--reuid=%d" % NOBODY, "--regid=0", "--clear-groups"]
        rc, out, err = self.c.run("n1", *as_nobody_gid0, sys.executable, "-c", RAW_CLIENT, self.sock)
        self.assertEqual(rc, 0, err)
        res = json.loads(out)
        self.assertNotIn("connect_error", res, "gid 0 should pass the file permission check")
        r = res["reply"]
        self.assertIsNotNone(r, "refused without a reply: %r" % res)
        self.assertIs(r.get("ok"), False, r)
        self.assertEqual(r.get("code"), -5004, r)
        self.assertIn("root-only", r.get("error", ""), r)
        self.assertTrue(res["closed"], "daemon did not close the refused connection")
        self.assertEqual(res["extra"], 0, "more than one reply: %r" % res)

        rc, out, err = self.c.run("n1", *as_nobody_gid0,
                                  *self.c.mirrorctl_argv("n1", "status", socket=self.sock, node_ini=False))
        self.assertEqual(rc, 1, "mirrorctl as uid %d: %s%s" % (NOBODY, out, err))
        self.assertIn("root-only", err)
        self.assertIn("client refused uid=%d" % NOBODY, self.c.daemon_log("n1"))
        self.assert_alive("a non-root client")

    def test_nonroot_gid_refused_by_file_permissions(self):
        as_nobody = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]
        rc, out, err = self.c.run("n1", *as_nobody, sys.executable, "-c", RAW_CLIENT, self.sock)
        self.assertEqual(json.loads(out).get("connect_error"), "Permission denied", out + err)
        rc, out, err = self.c.run("n1", *as_nobody,
                                  *self.c.mirrorctl_argv("n1", "status", socket=self.sock, node_ini=False))
        self.assertIn(rc, (1, 3), "mirrorctl as uid/gid %d: %s%s" % (NOBODY, out, err))
        self.assertIn("permission denied", err.lower())
        self.assert_alive("a client without permission")

    # ---- garbage -------------------------------------------------------------------

    def test_random_bytes(self):
        rnd = random.Random(20240601)
        for i in range(20):
            blob = rnd.randbytes(rnd.choice((1, 3, 4, 5, 17, 256, 4096)))
            with self.c.connect("n1") as conn:
                conn.send_raw(blob)
                conn.shutdown_write()
                self.assertTrue(conn.wait_closed(5), "blob %d: daemon did not close after EOF" % i)
                # whatever arrived must be whole error replies
                while len(conn.buf) >= 4:
                    n = struct.unpack(">I", conn.buf[:4])[0]
                    self.assertLessEqual(4 + n, len(conn.buf), "blob %d: truncated reply" % i)
                    r = json.loads(conn.buf[4:4 + n])
                    self.assertIs(r.get("ok"), False, "blob %d: %r" % (i, r))
                    conn.buf = conn.buf[4 + n:]
                self.assertEqual(conn.buf, b"", "blob %d: trailing bytes in the reply" % i)
        self.assert_alive("random bytes")

    def test_non_json_frame(self):
        with self.c.connect("n1") as conn:
            conn.send_frame(b"this is not JSON {")
            self.assert_error_then_close(conn, "non-JSON frame")
        self.assert_alive("a non-JSON frame")

    def test_json_array_frame(self):
        with self.c.connect("n1") as conn:
            conn.send_frame([{"cmd": "status"}])
            self.assert_error_then_close(conn, "JSON array")
        self.assert_alive("a JSON array")

    def test_unknown_key(self):
        with self.c.connect("n1") as conn:
            conn.send_frame({"cmd": "status", "bogus": 1})
            r = self.assert_error_then_close(conn, "unknown key")
            self.assertIn("bogus", r["error"])
        self.assert_alive("an unknown key")

    def test_unknown_command(self):
        with self.c.connect("n1") as conn:
            r = conn.request({"cmd": "no-such-command"})
            self.assertIs(r.get("ok"), False, r)
            self.assertEqual(r.get("code"), -5005, r)
        self.assert_alive("an unknown command")

    def test_frame_announcing_16mib(self):
        with self.c.connect("n1") as conn:
            conn.send_raw(struct.pack(">I", 16 << 20) + b"{" * 100)
            self.assert_error_then_close(conn, "16 MiB announced")
        self.assert_alive("a 16 MiB frame header")

    def test_frame_of_65537_bytes(self):
        with self.c.connect("n1") as conn:
            conn.send_frame(padded_request(65537))    # may fail half-way: the daemon closes
            self.assert_error_then_close(conn, "65537-byte frame")
        self.assert_alive("a 65537-byte frame")

    def test_frame_of_65536_bytes_is_not_oversized(self):
        with self.c.connect("n1") as conn:
            self.assertTrue(conn.send_frame(padded_request(65536)))
            r = conn.recv_frame()
            self.assertIsNotNone(r, "no reply to a 65536-byte frame (the limit itself)")
            self.assertNotEqual(r.get("code"), -5002, "65536 bytes is within the limit: %r" % r)
        self.assert_alive("a 65536-byte frame")

    def test_truncated_frame_then_close(self):
        with self.c.connect("n1") as conn:
            conn.send_raw(struct.pack(">I", 100) + b'{"cmd":"st')
        with self.c.connect("n1") as conn:
            conn.send_raw(b"\x00\x00")              # half a header
        self.assert_alive("truncated frames")

    def test_pipelined_requests_get_one_reply_each(self):
        with self.c.connect("n1") as conn:
            conn.send_raw(ht.frame({"cmd": "status"}) * 3)
            for i in range(3):
                r = conn.recv_frame()
                self.assertIsNotNone(r, "reply %d missing" % i)
                self.assertIs(r.get("ok"), True, r)
        self.assert_alive("pipelined requests")

    def _connect_retrying(self):
        """Connect, retrying while the listen backlog is full (EAGAIN) for up to 5 s."""
        def attempt():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(self.sock)
                return s
            except BlockingIOError:
                s.close()
                return None
        return ht.wait_for(attempt, 5, interval_s=0.005, what="a free slot in the listen backlog")

    def test_200_connections_opened_and_closed(self):
        for _ in range(200):
            self._connect_retrying().close()
        held = []
        try:
            for _ in range(200):
                held.append(self._connect_retrying())
        finally:
            for s in held:
                s.close()
        self.assert_alive("400 connections opened and closed")


if __name__ == "__main__":
    ht.main()
