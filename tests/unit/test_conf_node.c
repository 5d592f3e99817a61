/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_conf_node.c - node.ini parser: a valid file, then one test per kind of
 * error, each checking the message and its line.
 *
 * A mkdtemp() directory holds state/, run/, log/, ca.pem, cert.pem (0644),
 * key.pem and hb.key (0600); files are written from templates with @TMP@.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "err.h"

static char tmpdir[] = "/tmp/test_conf_node.XXXXXX";
static char ini_path[300];

/* Lines 1..17; tests edit single lines, so line numbers are known. */
static const char valid_ini[] = "; test node.ini\n"               /* 1 */
                                "[node]\n"                        /* 2 */
                                "name = node1\n"                  /* 3 */
                                "state_dir = @TMP@/state\n"       /* 4 */
                                "run_dir = @TMP@/run\n"           /* 5 */
                                "log_dir = @TMP@/log\n"           /* 6 */
                                "\n"                              /* 7 */
                                "[tls]\n"                         /* 8 */
                                "# comment\n"                     /* 9 */
                                "ca = @TMP@/ca.pem\n"             /* 10 */
                                "cert = @TMP@/cert.pem\n"         /* 11 */
                                "key = @TMP@/key.pem\n"           /* 12 */
                                "\n"                              /* 13 */
                                "[heartbeat]\n"                   /* 14 */
                                "key_file = @TMP@/hb.key ; 600\n" /* 15 */
                                "\n"                              /* 16 */
                                "; end\n";                        /* 17 */

/* ---- helpers ------------------------------------------------------------ */

static char *
subst(const char *text, const char *from, const char *to)
{
	size_t n = 0, lf = strlen(from), lt = strlen(to);
	const char *s;
	char *out, *o;

	for (s = text; (s = strstr(s, from)) != NULL; s += lf)
		n++;
	out = calloc(1, strlen(text) + n * (lt > lf ? lt - lf : 0) + 1);
	assert_non_null(out);
	for (o = out, s = text; *s;) {
		if (strncmp(s, from, lf) == 0) {
			memcpy(o, to, lt);
			o += lt;
			s += lf;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
}

/* Write text (with @TMP@ substituted) to ini_path and load it. */
static int
load_text(const char *text, struct node_conf **n, struct conf_errs *e)
{
	char *t = subst(text, "@TMP@", tmpdir);
	FILE *f = fopen(ini_path, "we");

	assert_non_null(f);
	fputs(t, f);
	fclose(f);
	free(t);
	return conf_node_load(ini_path, n, e);
}

/* The valid file with one line replaced. */
static int
load_edited(const char *from, const char *to, struct node_conf **n, struct conf_errs *e)
{
	char *t = subst(valid_ini, from, to);
	int r;

	assert_string_not_equal(t, valid_ini);
	r = load_text(t, n, e);
	free(t);
	return r;
}

static void
dump_errs(const struct conf_errs *e)
{
	fprintf(stderr, "%zu message(s)\n", e->n);
	for (size_t i = 0; i < e->n; i++)
		fprintf(stderr, "  %s\n", e->msgs[i]);
}

/* line > 0: message starts with "PATH:LINE: "; line 0: "PATH: ". */
static void
expect_err(const struct conf_errs *e, int line, const char *sub)
{
	char prefix[400];

	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%d: ", ini_path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", ini_path);
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->msgs[i], prefix, strlen(prefix)) == 0 && strstr(e->msgs[i], sub))
			return;
	dump_errs(e);
	fail_msg("no message \"%s...%s...\"", prefix, sub);
}

/* Load the edited file, expect MR_ECONFIG with exactly one message. */
static void
expect_one_error(const char *from, const char *to, int line, const char *sub)
{
	struct conf_errs e = { 0 };
	struct node_conf *n = NULL;
	int r = load_edited(from, to, &n, &e);

	if (r != MR_ECONFIG || e.n != 1)
		dump_errs(&e);
	assert_int_equal(r, MR_ECONFIG);
	assert_null(n);
	assert_int_equal(e.n, 1);
	expect_err(&e, line, sub);
	conf_errs_done(&e);
}

static char *
tmp_path(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", tmpdir, name) < 0)
		fail();
	return p;
}

/* ---- tests ---------------------------------------------------------------- */

static void
valid_file(void **state)
{
	struct conf_errs e = { 0 };
	struct node_conf *n = NULL;
	char *p;
	int r;

	(void)state;
	r = load_text(valid_ini, &n, &e);
	if (r != 0)
		dump_errs(&e);
	assert_int_equal(r, 0);
	assert_int_equal(e.n, 0);
	assert_string_equal(n->path, ini_path);
	assert_string_equal(n->name, "node1");
	p = tmp_path("state");
	assert_string_equal(n->state_dir, p);
	free(p);
	p = tmp_path("run");
	assert_string_equal(n->run_dir, p);
	free(p);
	p = tmp_path("log");
	assert_string_equal(n->log_dir, p);
	free(p);
	p = tmp_path("ca.pem");
	assert_string_equal(n->tls_ca, p);
	free(p);
	p = tmp_path("cert.pem");
	assert_string_equal(n->tls_cert, p);
	free(p);
	p = tmp_path("key.pem"); /* 0600: accepted */
	assert_string_equal(n->tls_key, p);
	free(p);
	p = tmp_path("hb.key"); /* inline comment stripped */
	assert_string_equal(n->hb_key_file, p);
	free(p);
	conf_node_free(n);
	conf_node_free(NULL);
}

static void
shipped_examples_parse(void **state)
{
	static const char *const files[] = { "node1.ini", "node2.ini" };

	(void)state;
	/* Their paths do not exist here: every error must be about a path, none
	 * about syntax, sections or keys. */
	for (size_t i = 0; i < 2; i++) {
		struct conf_errs e = { 0 };
		struct node_conf *n = NULL;
		char path[512];

		snprintf(path, sizeof(path), "%s/conf/%s", MR_SOURCE_DIR, files[i]);
		if (conf_node_load(path, &n, &e) == 0) {
			conf_node_free(n);
			continue;
		}
		for (size_t k = 0; k < e.n; k++) {
			if (strstr(e.msgs[k], "syntax") || strstr(e.msgs[k], "unknown") ||
			    strstr(e.msgs[k], "missing") || strstr(e.msgs[k], "absolute") ||
			    strstr(e.msgs[k], "node name"))
				fail_msg("%s", e.msgs[k]);
		}
		conf_errs_done(&e);
	}
}

static void
unknown_key(void **state)
{
	(void)state;
	expect_one_error("cert = @TMP@/cert.pem\n", "cert = @TMP@/cert.pem\ncrl = /x\n", 12,
	                 "[tls] crl: unknown key; expected one of: ca, cert, key");
}

static void
unknown_section(void **state)
{
	(void)state;
	expect_one_error("\n; end\n", "\n[debug]\nack_delay_ms = 5\ndrop_every_n = 3\n", 18,
	                 "[debug]: unknown section; expected [node], [tls] or [heartbeat]");
}

static void
key_outside_section(void **state)
{
	(void)state;
	expect_one_error("; test node.ini\n", "module = db\n", 1,
	                 "module: key outside any section");
}

static void
missing_key(void **state)
{
	(void)state;
	expect_one_error("run_dir = @TMP@/run\n", "", 0, "[node] run_dir: missing (mandatory)");
}

static void
duplicate_key(void **state)
{
	(void)state;
	expect_one_error("log_dir = @TMP@/log\n", "log_dir = @TMP@/log\nname = node2\n", 7,
	                 "[node] name: already set at line 3");
}

static void
relative_path(void **state)
{
	(void)state;
	expect_one_error("state_dir = @TMP@/state", "state_dir = var/lib/hamirror", 4,
	                 "[node] state_dir: \"var/lib/hamirror\" is not an absolute path");
}

static void
missing_dir(void **state)
{
	(void)state;
	expect_one_error("log_dir = @TMP@/log", "log_dir = @TMP@/nolog", 6,
	                 "/nolog does not exist; create it");
}

static void
dir_is_a_file(void **state)
{
	(void)state;
	expect_one_error("run_dir = @TMP@/run", "run_dir = @TMP@/ca.pem", 5,
	                 "/ca.pem is not a directory");
}

static void
file_is_a_dir(void **state)
{
	(void)state;
	expect_one_error("ca = @TMP@/ca.pem", "ca = @TMP@/state", 10, "[tls] ca: ");
	expect_one_error("ca = @TMP@/ca.pem", "ca = @TMP@/state", 10,
	                 "/state is not a regular file");
}

static void
missing_file(void **state)
{
	(void)state;
	expect_one_error("cert = @TMP@/cert.pem", "cert = @TMP@/nocert.pem", 11, "[tls] cert: ");
	expect_one_error("cert = @TMP@/cert.pem", "cert = @TMP@/nocert.pem", 11,
	                 "/nocert.pem does not exist");
}

static void
key_0644_refused(void **state)
{
	char *key = tmp_path("key-0644.pem");
	char want[600];
	int fd;

	(void)state;
	fd = open(key, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(key, 0644), 0);
	snprintf(want, sizeof(want),
	         "[tls] key: %s is readable by group or others (mode 0644); run chmod 600 %s", key,
	         key);
	expect_one_error("key = @TMP@/key.pem", "key = @TMP@/key-0644.pem", 12, want);
	free(key);
}

static void
hb_key_0640_refused(void **state)
{
	char *key = tmp_path("hb-0640.key");
	int fd;

	(void)state;
	fd = open(key, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(key, 0640), 0);
	expect_one_error("key_file = @TMP@/hb.key", "key_file = @TMP@/hb-0640.key", 15,
	                 "[heartbeat] key_file: ");
	expect_one_error("key_file = @TMP@/hb.key", "key_file = @TMP@/hb-0640.key", 15,
	                 "(mode 0640); run chmod 600");
	free(key);
}

static void
key_0400_accepted(void **state)
{
	char *key = tmp_path("key-0400.pem");
	char *t = subst(valid_ini, "key = @TMP@/key.pem", "key = @TMP@/key-0400.pem");
	struct conf_errs e = { 0 };
	struct node_conf *n = NULL;
	int fd;

	(void)state;
	fd = open(key, O_CREAT | O_WRONLY | O_CLOEXEC, 0400);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(load_text(t, &n, &e), 0);
	assert_string_equal(n->tls_key, key);
	conf_node_free(n);
	free(t);
	free(key);
}

static void
bad_node_name(void **state)
{
	(void)state;
	expect_one_error("name = node1", "name = node 1", 3,
	                 "[node] name: \"node 1\" is not a valid node name");
	expect_one_error("name = node1", "name = nöde", 3, "is not a valid node name");
	expect_one_error("name = node1",
	                 "name = n123456789012345678901234567890123456789012345678901234567890123",
	                 3, "expected 1..63 characters of [A-Za-z0-9._-]");
}

static void
syntax_error_line(void **state)
{
	(void)state;
	expect_one_error("\n[heartbeat]", "\nthis line is not ini\n[heartbeat]", 14,
	                 "syntax error: expected \"[section]\", \"key = value\" or a comment");
	{
		/* "[tls" is not a section header: ca, cert and key then land in [node] */
		struct conf_errs e = { 0 };
		struct node_conf *n = NULL;

		assert_int_equal(load_edited("[tls]\n", "[tls\n", &n, &e), MR_ECONFIG);
		expect_err(&e, 8, "syntax error");
		expect_err(&e, 10, "[node] ca: unknown key");
		conf_errs_done(&e);
	}
}

static void
long_lines(void **state)
{
	char comment[1200], value[1200];
	struct conf_errs e = { 0 };
	struct node_conf *n = NULL;

	(void)state;
	/* a long comment is fine */
	memset(comment, 'x', sizeof(comment));
	memcpy(comment, "; ", 2);
	memcpy(comment + sizeof(comment) - 2, "\n", 2);
	{
		char *t = subst(valid_ini, "; test node.ini\n", comment);

		assert_int_equal(load_text(t, &n, &e), 0);
		conf_node_free(n);
		free(t);
	}
	/* a long value is not silently cut */
	memset(value, 'a', sizeof(value));
	memcpy(value, "ca = /", 6);
	memcpy(value + sizeof(value) - 2, "\n", 2);
	{
		char *t = subst(valid_ini, "ca = @TMP@/ca.pem\n", value);

		assert_int_equal(load_text(t, &n, &e), MR_ECONFIG);
		expect_err(&e, 10, "line too long");
		conf_errs_done(&e);
		free(t);
	}
}

static void
all_errors_reported(void **state)
{
	static const char text[] = "[node]\n"                   /* 1 */
	                           "name = -bad name-\n"        /* 2 */
	                           "state_dir = relative\n"     /* 3 */
	                           "run_dir = @TMP@/none\n"     /* 4 */
	                           "colour = blue\n"            /* 5 */
	                           "garbage\n"                  /* 6 */
	                           "[tls]\n"                    /* 7 */
	                           "ca = @TMP@/ca.pem\n"        /* 8 */
	                           "cert = @TMP@/cert.pem\n"    /* 9 */
	                           "key = @TMP@/cert.pem\n"     /* 10: 0644 */
	                           "[heartbeat]\n"              /* 11 */
	                           "key_file = @TMP@/hb.key\n"; /* 12 */
	struct conf_errs e = { 0 };
	struct node_conf *n = NULL;

	(void)state;
	assert_int_equal(load_text(text, &n, &e), MR_ECONFIG);
	assert_null(n);
	expect_err(&e, 2, "is not a valid node name");
	expect_err(&e, 3, "is not an absolute path");
	expect_err(&e, 4, "does not exist");
	expect_err(&e, 5, "[node] colour: unknown key");
	expect_err(&e, 6, "syntax error");
	expect_err(&e, 10, "(mode 0644); run chmod 600");
	expect_err(&e, 0, "[node] log_dir: missing (mandatory)");
	assert_int_equal(e.n, 7);
	conf_errs_done(&e);
}

static void
missing_file_itself(void **state)
{
	struct conf_errs e = { 0 };
	struct node_conf *n = NULL;

	(void)state;
	assert_int_equal(conf_node_load("/nonexistent/node.ini", &n, &e), -ENOENT);
	assert_null(n);
	assert_int_equal(e.n, 1);
	assert_non_null(strstr(e.msgs[0], "/nonexistent/node.ini: cannot open"));
	conf_errs_done(&e);
}

/* ---- fixture directory ------------------------------------------------------ */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
make_file(const char *name, mode_t mode)
{
	char p[300];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	close(fd);
	return chmod(p, mode);
}

static int
group_setup(void **state)
{
	static const char *const dirs[] = { "state", "run", "log" };
	char p[300];

	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", tmpdir, dirs[i]);
		if (mkdir(p, 0755) == -1)
			return -1;
	}
	if (make_file("ca.pem", 0644) || make_file("cert.pem", 0644) ||
	    make_file("key.pem", 0600) || make_file("hb.key", 0600))
		return -1;
	snprintf(ini_path, sizeof(ini_path), "%s/node.ini", tmpdir);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/* clang-format off */
		cmocka_unit_test(valid_file),
		cmocka_unit_test(shipped_examples_parse),
		cmocka_unit_test(unknown_key),
		cmocka_unit_test(unknown_section),
		cmocka_unit_test(key_outside_section),
		cmocka_unit_test(missing_key),
		cmocka_unit_test(duplicate_key),
		cmocka_unit_test(relative_path),
		cmocka_unit_test(missing_dir),
		cmocka_unit_test(dir_is_a_file),
		cmocka_unit_test(file_is_a_dir),
		cmocka_unit_test(missing_file),
		cmocka_unit_test(key_0644_refused),
		cmocka_unit_test(hb_key_0640_refused),
		cmocka_unit_test(key_0400_accepted),
		cmocka_unit_test(bad_node_name),
		cmocka_unit_test(syntax_error_line),
		cmocka_unit_test(long_lines),
		cmocka_unit_test(all_errors_reported),
		cmocka_unit_test(missing_file_itself),
		/* clang-format on */
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
