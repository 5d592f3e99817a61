#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""mirrord refuses to start on a bad configuration, and says exactly what is wrong:
userconfig.xml errors name file:line, unsafe key files are refused, and a node must
be one of the two servers of userconfig.xml. mirrorctl config check agrees."""

import os
import re
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import hamirror_test as ht  # noqa: E402


def line_of(text, needle):
    """1-based number of the first line of text containing needle."""
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in the config" % needle)


class ConfigErrors(ht.ClusterTestCase):
    # No daemon is started: every test runs mirrord expecting it to refuse.

    def good_config(self):
        return ht.read_text(self.c.userconfig)

    def assert_refused(self, what, **kw):
        """Run mirrord on n1 with the given -c/-n; it must exit 1 promptly."""
        rc, out, err = self.c.run_mirrord("n1", timeout=10, **kw)
        self.assertEqual(rc, 1, "%s: mirrord exit %s\nstdout: %s\nstderr: %s" % (what, rc, out, err))
        self.assertTrue(err.strip(), "%s: nothing on stderr" % what)
        self.assertFalse(os.path.exists(self.c.node("n1").sock),
                         "%s: a control socket was left behind" % what)
        return err

    def test_good_config_is_accepted(self):
        rc, out, err = self.c.ctl("n1", "config", "check", self.c.userconfig)
        self.assertEqual(rc, 0, "mirrorctl config check on the good config: %s%s" % (out, err))

    def test_invalid_value_names_file_and_line(self):
        text = self.good_config().replace('pulse="100ms"', 'pulse="fast"')
        path = self.c.write_file("bad-pulse.xml", text)
        line = line_of(text, 'pulse="fast"')
        err = self.assert_refused("pulse=fast", config=path)
        self.assertIn("%s:%d" % (path, line), err)
        self.assertIn("pulse", err)
        rc, out, cerr = self.c.ctl("n1", "config", "check", path)
        self.assertEqual(rc, 1, out + cerr)
        self.assertIn("%s:%d" % (path, line), out + cerr)

    def test_every_error_is_reported(self):
        text = (self.good_config().replace('pulse="100ms"', 'pulse="fast"')
                .replace('<rfs async="second" port="9201">', '<rfs async="second" port="99999">'))
        path = self.c.write_file("two-errors.xml", text)
        err = self.assert_refused("two errors", config=path)
        self.assertIn("%s:%d" % (path, line_of(text, 'pulse="fast"')), err)
        self.assertIn("%s:%d" % (path, line_of(text, 'port="99999"')), err)

    def test_unknown_element_names_file_line_and_element(self):
        text = self.good_config().replace("<check>", "<check>\n      <bogus/>")
        path = self.c.write_file("unknown-element.xml", text)
        err = self.assert_refused("unknown element", config=path)
        self.assertIn("%s:%d" % (path, line_of(text, "<bogus/>")), err)
        self.assertIn("bogus", err)

    def test_xml_syntax_error_names_file_and_line(self):
        text = self.good_config().replace("</rfs>", "")
        path = self.c.write_file("syntax.xml", text)
        err = self.assert_refused("XML syntax error", config=path)
        self.assertRegex(err, re.escape(path) + r":\d+")
        rc, out, cerr = self.c.ctl("n1", "config", "check", path)
        self.assertEqual(rc, 1, out + cerr)

    def test_missing_replicated_dir(self):
        missing = os.path.join(self.c.tmp, "shared", "nowhere")
        text = self.good_config().replace(os.path.join(self.c.shared, "data"), missing)
        path = self.c.write_file("missing-dir.xml", text)
        err = self.assert_refused("missing replicated dir", config=path)
        self.assertIn("%s:%d" % (path, line_of(text, missing)), err)
        self.assertIn(missing, err)

    def test_missing_config_file(self):
        path = os.path.join(self.c.tmp, "does-not-exist.xml")
        err = self.assert_refused("missing file", config=path)
        self.assertIn(path, err)

    def test_tls_key_readable_by_others(self):
        key = os.path.join(self.c.tmp, "loose", "n1.key")
        os.makedirs(os.path.dirname(key), exist_ok=True)
        shutil.copy(os.path.join(self.c.tls_dir, "n1.key"), key)
        os.chmod(key, 0o644)
        ini = self.c.write_node_ini("n1", path=os.path.join(self.c.tmp, "loose", "tls-0644.ini"), key=key)
        err = self.assert_refused("tls key 0644", node_ini=ini)
        self.assertIn("readable by group or others", err)
        self.assertIn(key, err)

    def test_heartbeat_key_readable_by_group(self):
        key = os.path.join(self.c.tmp, "loose", "hb.key")
        os.makedirs(os.path.dirname(key), exist_ok=True)
        shutil.copy(self.c.hb_key, key)
        os.chmod(key, 0o640)
        ini = self.c.write_node_ini("n1", path=os.path.join(self.c.tmp, "loose", "hb-0640.ini"), hb_key=key)
        err = self.assert_refused("heartbeat key 0640", node_ini=ini)
        self.assertIn("readable by group or others", err)
        self.assertIn(key, err)

    def test_node_name_not_in_userconfig(self):
        ini = self.c.write_node_ini("n1", path=os.path.join(self.c.tmp, "n3.ini"), name="n3")
        err = self.assert_refused("node n3", node_ini=ini)
        self.assertIn("n3", err)
        # the admin is told which names would be valid
        self.assertIn("n1", err)
        self.assertIn("n2", err)

    def test_node_ini_errors_are_all_reported(self):
        text = self.c.node_ini_text("n1", state_dir="relative/state",
                                    run_dir="/nonexistent-hamirror-run")
        ini = self.c.write_file("bad-node.ini", text + "\n[bogus]\nx = 1\n")
        err = self.assert_refused("bad node.ini", node_ini=ini)
        self.assertIn("relative/state", err)
        self.assertIn("/nonexistent-hamirror-run", err)
        self.assertIn("bogus", err)
        self.assertIn(ini, err)


if __name__ == "__main__":
    ht.main()
