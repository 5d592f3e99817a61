#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The replication link's security (daemon/peer.c, daemon/tls.c): TLS 1.3 only, mutual
authentication against the cluster CA with the peer's node name, the HELLO checks (config
hash), robustness against a garbled peer, and the key-file checks at start-up.

Every case drives mirrord's module log (log_dir/MODULE.log) and waits with deadlines for
the line that names the reason. n1 (nodes[0]) connects to n2, which listens on
198.18.0.2:9201."""

import os
import re
import shutil
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import hamirror_test as ht  # noqa: E402

RFS_PORT = 9201
N2_EP = "%s:%d" % (ht.HOST_ADDR["n2"], RFS_PORT)

# A TLS client speaking the link protocol (proto.h): HELLO, wait for the peer's HELLO,
# then garbage. Runs inside n1's namespaces with n1's certificate.
GARBLER = r"""
import socket, ssl, struct, sys
ca, cert, key, host, port, node, module, hash_hex = sys.argv[1:9]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_verify_locations(ca)
ctx.load_cert_chain(cert, key)
raw = socket.create_connection((host, int(port)), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="n2")
def pstr(b):
    return struct.pack(">H", len(b)) + b
payload = (struct.pack(">HB", 2, 0) + pstr(node.encode()) + pstr(module.encode())
           + bytes.fromhex(hash_hex) + bytes(16) + struct.pack(">Q", 0))
s.sendall(struct.pack(">IHH", len(payload), 1, 0) + payload)
buf = b""
while len(buf) < 8:
    d = s.recv(4096)
    if not d:
        print("EOF before HELLO", flush=True); sys.exit(1)
    buf += d
ln, typ, fl = struct.unpack(">IHH", buf[:8])
print("peer frame type=%d len=%d" % (typ, ln), flush=True)
if typ != 1:
    sys.exit(1)
# a header with an unknown type, then noise
s.sendall(struct.pack(">IHH", 16, 0xdead, 0) + bytes(range(16)) * 4)
try:
    while s.recv(4096):
        pass
except (ssl.SSLError, OSError) as e:
    print("closed with %s" % e, flush=True)
print("closed", flush=True)
"""


class LinkSecurity(ht.ClusterTestCase):

    # ---- helpers --------------------------------------------------------------------

    def setUp(self):
        # every case starts from both daemons stopped
        for n in ("n1", "n2"):
            if self.c.daemon_pid(n) is not None:
                self.c.stop_daemon(n)

    def mark(self, node):
        return ht._size(self.c.node(node).log_file)

    def log_from(self, node, off):
        return ht._read_from(self.c.node(node).log_file, off)

    def wait_log(self, node, pattern, off, timeout_s=15):
        """Wait until pattern (regex) appears in node's log after offset off; return the match."""
        rx = re.compile(pattern)
        pid_proc = self.c.node(node).daemon

        def found():
            m = rx.search(self.log_from(node, off))
            if m:
                return m
            if pid_proc is not None and pid_proc.poll() is not None:
                raise ht.DaemonDied("%s: mirrord exited (%s) while waiting for /%s/" % (
                    node, pid_proc.returncode, pattern))
            return None
        return ht.wait_for(found, timeout_s, what="%s log: /%s/" % (node, pattern))

    def start(self, node, **kw):
        self.c.start_daemon(node, **kw)

    def node_ini_with(self, node, tag, **overrides):
        path = os.path.join(self.c.tmp, "%s-%s.ini" % (node, tag))
        return self.c.write_node_ini(node, path=path, **overrides)

    def ca(self):
        return os.path.join(self.c.tls_dir, "ca.crt")

    def make_wrong_name_cert(self):
        """n3's certificate, signed by the cluster CA (a copy of it, in another dir)."""
        d = os.path.join(self.c.tmp, "wrong")
        if not os.path.exists(os.path.join(d, "n3.crt")):
            os.makedirs(d, exist_ok=True)
            for f in ("ca.crt", "ca.key"):
                shutil.copy2(os.path.join(self.c.tls_dir, f), os.path.join(d, f))
            ht.run([ht.GEN_CERTS, d, "n3"])
        return os.path.join(d, "n3.crt"), os.path.join(d, "n3.key")

    def make_self_signed(self, name):
        d = os.path.join(self.c.tmp, "selfsigned")
        os.makedirs(d, exist_ok=True)
        crt, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
        if not os.path.exists(crt):
            ht.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name, "-days", "2",
                    "-keyout", key, "-out", crt])
            os.chmod(key, 0o600)
        return crt, key

    def assert_no_link_up(self, *offs):
        for node, off in offs:
            self.assertNotIn("peer: link up", self.log_from(node, off), "%s: link came up" % node)

    def wait_link_up(self, offs, timeout_s=15):
        self.wait_log("n1", r"peer: link up peer=n2 addr=%s tls=TLSv1\.3 cipher=\S+" %
                      re.escape(N2_EP), offs["n1"], timeout_s)
        self.wait_log("n2", r"peer: link up peer=n1 addr=198\.18\.0\.1:\d+ tls=TLSv1\.3 "
                      r"cipher=\S+", offs["n2"], timeout_s)

    # ---- cases ----------------------------------------------------------------------

    def test_01_link_up_keepalive_and_silent_peer(self):
        c = self.c
        offs = {n: self.mark(n) for n in ("n1", "n2")}
        self.start("n2")
        self.start("n1")
        self.wait_link_up(offs)
        # an idle link stays up past PEER_DEAD_MS thanks to PING/PONG (observation window)
        t_end = time.monotonic() + 6.5
        ht.wait_for(lambda: time.monotonic() >= t_end, 10, what="6.5 s of idle link")
        for n in ("n1", "n2"):
            self.assertNotIn("peer: link down", self.log_from(n, offs[n]), "%s: idle link dropped" % n)
        # a frozen peer is declared dead after 5 s of silence...
        off2 = self.mark("n2")
        pid1 = c.daemon_pid("n1")
        os.kill(pid1, signal.SIGSTOP)
        try:
            self.wait_log("n2", r'peer: link down peer=n1 addr=\S+ reason="peer silent for 5000 ms"',
                          off2, 12)
        finally:
            off1 = self.mark("n1")
            off2 = self.mark("n2")
            os.kill(pid1, signal.SIGCONT)
        # ...and when it wakes up, the link is re-established
        self.wait_link_up({"n1": off1, "n2": off2}, 20)
        self.assertTrue(c.status("n2")["pid"] == c.daemon_pid("n2"))

    def test_02_wrong_node_name_certificate_refused(self):
        crt, key = self.make_wrong_name_cert()
        # n2 presents a certificate for n3: n1 (the client) refuses the server
        offs = {n: self.mark(n) for n in ("n1", "n2")}
        self.start("n2", node_ini=self.node_ini_with("n2", "n3cert", cert=crt, key=key))
        self.start("n1")
        self.wait_log("n1", r'peer: TLS handshake failed peer=%s reason="certificate verify '
                      r'failed: hostname mismatch"' % re.escape(N2_EP), offs["n1"])
        self.wait_log("n2", r"peer: TLS handshake failed peer=198\.18\.0\.1:\d+ reason=",
                      offs["n2"])
        self.assert_no_link_up(*offs.items())
        self.c.stop_daemon("n1")
        self.c.stop_daemon("n2")
        # n1 presents a certificate for n3: n2 (the server) refuses the client
        offs = {n: self.mark(n) for n in ("n1", "n2")}
        self.start("n2")
        self.start("n1", node_ini=self.node_ini_with("n1", "n3cert", cert=crt, key=key))
        self.wait_log("n2", r'peer: TLS handshake failed peer=198\.18\.0\.1:\d+ reason="certificate '
                      r'verify failed: hostname mismatch"', offs["n2"])
        self.wait_log("n1", r"peer: TLS handshake failed peer=%s reason=" % re.escape(N2_EP),
                      offs["n1"])
        self.assert_no_link_up(*offs.items())

    def test_03_self_signed_certificate_refused(self):
        # n2 (server) with a self-signed certificate that does name n2
        crt, key = self.make_self_signed("n2")
        offs = {n: self.mark(n) for n in ("n1", "n2")}
        self.start("n2", node_ini=self.node_ini_with("n2", "selfsigned", cert=crt, key=key))
        self.start("n1")
        self.wait_log("n1", r'peer: TLS handshake failed peer=%s reason="certificate verify '
                      r'failed: self-signed certificate"' % re.escape(N2_EP), offs["n1"])
        self.assert_no_link_up(*offs.items())
        self.c.stop_daemon("n1")
        self.c.stop_daemon("n2")
        # n1 (client) with a self-signed certificate
        crt, key = self.make_self_signed("n1")
        offs = {n: self.mark(n) for n in ("n1", "n2")}
        self.start("n2")
        self.start("n1", node_ini=self.node_ini_with("n1", "selfsigned", cert=crt, key=key))
        self.wait_log("n2", r'peer: TLS handshake failed peer=198\.18\.0\.1:\d+ reason="certificate '
                      r'verify failed: self-signed certificate"', offs["n2"])
        self.assert_no_link_up(*offs.items())

    def test_04_client_without_certificate_refused(self):
        off = self.mark("n2")
        self.start("n2")
        rc, out, err = self.c.run("n1", "openssl", "s_client", "-connect", N2_EP,
                                  "-CAfile", self.ca(), "-servername", "n2", input="", timeout=20)
        self.wait_log("n2", r'peer: TLS handshake failed peer=198\.18\.0\.1:\d+ reason="peer did '
                      r'not return a certificate"', off)
        self.assertNotIn("peer: link up", self.log_from("n2", off))
        self.assertEqual(self.c.status("n2")["pid"], self.c.daemon_pid("n2"))

    def test_05_tls12_client_refused(self):
        off = self.mark("n2")
        self.start("n2")
        tls = self.c.tls_dir
        rc, out, err = self.c.run("n1", "openssl", "s_client", "-tls1_2", "-connect", N2_EP,
                                  "-CAfile", self.ca(), "-cert", os.path.join(tls, "n1.crt"),
                                  "-key", os.path.join(tls, "n1.key"), input="", timeout=20)
        self.assertNotEqual(rc, 0, "a TLS 1.2 handshake must fail: %s%s" % (out, err))
        self.wait_log("n2", r'peer: TLS handshake failed peer=198\.18\.0\.1:\d+ reason="unsupported '
                      r'protocol: peer offers at most TLSv1\.2, TLSv1\.3 is required"', off)
        self.assertNotIn("peer: link up", self.log_from("n2", off))

    def test_06_config_hash_mismatch_refused_with_both_hashes(self):
        c = self.c
        other = c.write_userconfig(path=os.path.join(c.tmp, "userconfig-pulse200.xml"),
                                   pulse="200ms")
        offs = {n: self.mark(n) for n in ("n1", "n2")}
        self.start("n2", config=other)
        self.start("n1")
        h1, h2 = c.status("n1")["config_hash"], c.status("n2")["config_hash"]
        self.assertNotEqual(h1, h2)
        self.wait_log("n1", r"peer: refusing link peer=n2 addr=\S+ code=3 reason=\"config hash "
                      r"differs: local %s \(%s\) peer %s; compare with 'mirrorctl config show "
                      % (h1, re.escape(c.userconfig), h2), offs["n1"])
        self.wait_log("n2", r"peer: refusing link peer=n1 addr=\S+ code=3 reason=\"config hash "
                      r"differs: local %s \(%s\) peer %s;" % (h2, re.escape(other), h1), offs["n2"])
        self.assert_no_link_up(*offs.items())

    def test_07_garbled_frame_drops_link_daemon_survives(self):
        c = self.c
        off = self.mark("n2")
        self.start("n2")
        h = c.status("n2")["config_hash"]
        tls = c.tls_dir
        rc, out, err = c.run("n1", sys.executable, "-c", GARBLER, self.ca(),
                             os.path.join(tls, "n1.crt"), os.path.join(tls, "n1.key"),
                             ht.HOST_ADDR["n2"], str(RFS_PORT), "n1", c.module, h, timeout=20)
        self.assertEqual(rc, 0, "garbler: %s%s" % (out, err))
        self.assertIn("peer frame type=1", out)
        self.assertIn("closed", out)
        self.wait_log("n2", r"peer: link up peer=n1 ", off)
        self.wait_log("n2", r'peer: malformed frame: unknown frame type 57005', off)
        self.wait_log("n2", r'peer: link down peer=n1 addr=\S+ reason="malformed frame: ', off)
        # the daemon is still there and answers...
        self.assertEqual(c.status("n2")["pid"], c.daemon_pid("n2"))
        # ...and accepts a proper link afterwards
        offs = {n: self.mark(n) for n in ("n1", "n2")}
        self.start("n1")
        self.wait_link_up(offs)

    def test_08_foreign_address_and_second_connection_refused(self):
        c = self.c
        offs = {n: self.mark(n) for n in ("n1", "n2")}
        self.start("n2")
        self.start("n1")
        self.wait_link_up(offs)
        probe = ("import socket,sys; s=socket.create_connection((sys.argv[1], %d), timeout=5); "
                 "s.settimeout(5); print('eof' if s.recv(1) == b'' else 'data')" % RFS_PORT)
        off = self.mark("n2")
        rc, out, err = c.run("cl", sys.executable, "-c", probe, ht.HOST_ADDR["n2"])
        self.assertEqual((rc, out.strip()), (0, "eof"), err)
        self.wait_log("n2", r'peer: connection refused peer=198\.18\.0\.10:\d+ reason="not the '
                      r'address of peer n1', off)
        rc, out, err = c.run("n1", sys.executable, "-c", probe, ht.HOST_ADDR["n2"])
        self.assertEqual((rc, out.strip()), (0, "eof"), err)
        self.wait_log("n2", r'peer: connection refused peer=198\.18\.0\.1:\d+ reason="second '
                      r'connection while a link with n1 is up"', off)
        for n in ("n1", "n2"):
            self.assertNotIn("peer: link down", self.log_from(n, offs[n]))

    def test_09_key_file_not_owned_by_root_refused(self):
        c = self.c
        d = os.path.join(c.tmp, "keyown")
        os.makedirs(d, exist_ok=True)
        key = os.path.join(d, "n1.key")
        shutil.copy2(os.path.join(c.tls_dir, "n1.key"), key)
        os.chmod(key, 0o600)
        os.chown(key, 65534, 65534)
        off = self.mark("n1")
        rc, out, err = c.run_mirrord("n1", node_ini=self.node_ini_with("n1", "keyown", key=key))
        self.assertEqual(rc, 1, "mirrord with a key owned by uid 65534: %s%s" % (out, err))
        text = self.log_from("n1", off) + err
        self.assertRegex(text, r"peer: TLS key file %s is owned by uid 65534; it must be owned "
                         r"by root" % re.escape(key))
        # mode 0644: node.ini validation already refuses it, naming the file
        os.chown(key, 0, 0)
        os.chmod(key, 0o644)
        rc, out, err = c.run_mirrord("n1", node_ini=self.node_ini_with("n1", "keyown", key=key))
        self.assertEqual(rc, 1, "mirrord with a 0644 key: %s%s" % (out, err))
        self.assertIn(key, err)
        self.assertRegex(err, r"0644|group|other")


if __name__ == "__main__":
    ht.main()
