/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_conf_cluster.c - userconfig.xml parser: value parsers, malformed
 * fixtures (each with its message and line), valid fixtures with defaults,
 * macros and the configuration hash.
 *
 * Fixtures live in tests/unit/data/conf; replicated directories must exist, so
 * fixtures write @TMP@ and the tests substitute a mkdtemp() directory holding
 * db/, db/sub/, db2/ and a regular file "plainfile". Messages name "bad.xml".
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
#include <arpa/inet.h>

#include "conf.h"
#include "err.h"

static char tmpdir[] = "/tmp/test_conf_cluster.XXXXXX";

/* ---- helpers ------------------------------------------------------------ */

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long len;

	if (f == NULL)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len >= 0);
	rewind(f);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return buf;
}

/* Replace every "from" in text by "to". Caller frees. */
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

/* Text of a fixture with @TMP@ replaced. Caller frees. */
static char *
fixture(const char *name)
{
	char path[512];
	char *raw, *text;

	snprintf(path, sizeof(path), "%s/conf/%s", MR_TEST_DATA, name);
	raw = read_all(path);
	text = subst(raw, "@TMP@", tmpdir);
	free(raw);
	return text;
}

static int
parse_text(const char *text, struct cluster_conf **c, struct conf_errs *e)
{
	return conf_cluster_parse("bad.xml", text, strlen(text), c, e);
}

static int
parse_fixture(const char *name, struct cluster_conf **c, struct conf_errs *e)
{
	char *text = fixture(name);
	int r = parse_text(text, c, e);

	free(text);
	return r;
}

static void
dump_errs(const char *what, const struct conf_errs *e)
{
	fprintf(stderr, "%s: %zu message(s)\n", what, e->n);
	for (size_t i = 0; i < e->n; i++)
		fprintf(stderr, "  %s\n", e->msgs[i]);
}

/* Index of the message that starts with "bad.xml:LINE:" and contains sub, or -1. */
static int
find_err(const struct conf_errs *e, int line, const char *sub)
{
	char prefix[32];

	snprintf(prefix, sizeof(prefix), "bad.xml:%d: ", line);
	for (size_t i = 0; i < e->n; i++)
		if (strncmp(e->msgs[i], prefix, strlen(prefix)) == 0 && strstr(e->msgs[i], sub))
			return (int)i;
	return -1;
}

static void
expect_err(const struct conf_errs *e, int line, const char *sub)
{
	if (find_err(e, line, sub) < 0) {
		dump_errs("got", e);
		fail_msg("no message \"bad.xml:%d: ...%s...\"", line, sub);
	}
}

static struct cluster_conf *
parse_ok(const char *name)
{
	struct conf_errs e = { 0 };
	struct cluster_conf *c = NULL;
	int r = parse_fixture(name, &c, &e);

	if (r != 0) {
		dump_errs(name, &e);
		fail_msg("%s: expected success, got %d", name, r);
	}
	assert_int_equal(e.n, 0);
	assert_non_null(c);
	conf_errs_done(&e);
	return c;
}

static uint32_t
v4(const struct sockaddr_storage *ss)
{
	assert_int_equal(ss->ss_family, AF_INET);
	return ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr);
}

/* ---- value parsers ------------------------------------------------------- */

static void
durations_parse(void **state)
{
	uint32_t ms = 0;

	(void)state;
	assert_int_equal(conf_parse_duration_ms("700ms", &ms), 0);
	assert_int_equal(ms, 700);
	assert_int_equal(conf_parse_duration_ms("250", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(conf_parse_duration_ms("30s", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(conf_parse_duration_ms("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(conf_parse_duration_ms("24h", &ms), 0);
	assert_int_equal(ms, 86400000);
	assert_int_equal(conf_parse_duration_ms("0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(conf_parse_duration_ms("5 parsecs", &ms), -EINVAL);
	assert_int_equal(conf_parse_duration_ms("", &ms), -EINVAL);
	assert_int_equal(conf_parse_duration_ms("s", &ms), -EINVAL);
	assert_int_equal(conf_parse_duration_ms("-1s", &ms), -EINVAL);
	assert_int_equal(conf_parse_duration_ms(" 1s", &ms), -EINVAL);
	assert_int_equal(conf_parse_duration_ms("1S", &ms), -EINVAL);
	assert_int_equal(conf_parse_duration_ms("1sec", &ms), -EINVAL);
	assert_int_equal(conf_parse_duration_ms("1193h", &ms), 0);
	assert_int_equal(conf_parse_duration_ms("1194h", &ms), -ERANGE);
	assert_int_equal(conf_parse_duration_ms("99999999999999999999999", &ms), -ERANGE);
	assert_int_equal(conf_parse_duration_ms(NULL, &ms), -EINVAL);
}

static void
sizes_parse(void **state)
{
	uint64_t b = 0;

	(void)state;
	assert_int_equal(conf_parse_size_bytes("4096", &b), 0);
	assert_int_equal(b, 4096);
	assert_int_equal(conf_parse_size_bytes("64K", &b), 0);
	assert_int_equal(b, 65536);
	assert_int_equal(conf_parse_size_bytes("64M", &b), 0);
	assert_int_equal(b, 64ull << 20);
	assert_int_equal(conf_parse_size_bytes("2g", &b), 0);
	assert_int_equal(b, 2ull << 30);
	assert_int_equal(conf_parse_size_bytes("1T", &b), -EINVAL);
	assert_int_equal(conf_parse_size_bytes("1MB", &b), -EINVAL);
	assert_int_equal(conf_parse_size_bytes("M", &b), -EINVAL);
	assert_int_equal(conf_parse_size_bytes("", &b), -EINVAL);
	assert_int_equal(conf_parse_size_bytes("17179869184G", &b), -ERANGE);
}

static void
bools_and_ips_parse(void **state)
{
	struct sockaddr_storage ss;
	bool v = false;

	(void)state;
	assert_int_equal(conf_parse_bool("on", &v), 0);
	assert_true(v);
	assert_int_equal(conf_parse_bool("off", &v), 0);
	assert_false(v);
	assert_int_equal(conf_parse_bool("yes", &v), 0);
	assert_true(v);
	assert_int_equal(conf_parse_bool("0", &v), 0);
	assert_false(v);
	assert_int_equal(conf_parse_bool("On", &v), -EINVAL);
	assert_int_equal(conf_parse_bool("maybe", &v), -EINVAL);

	assert_int_equal(conf_parse_ip("198.18.0.1", &ss), AF_INET);
	assert_int_equal(v4(&ss), 0xc6120001u);
	assert_int_equal(conf_parse_ip("fd00::1", &ss), AF_INET6);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(conf_parse_ip("198.18.0.300", &ss), -EINVAL);
	assert_int_equal(conf_parse_ip("localhost", &ss), -EINVAL);
	assert_int_equal(conf_parse_ip("", &ss), -EINVAL);
}

static void
errs_format(void **state)
{
	struct conf_errs e = { 0 };

	(void)state;
	for (int i = 0; i < 20; i++)
		conf_errs_add(&e, "f.xml", i, "msg %d", i);
	conf_errs_add(&e, NULL, 3, "bare");
	assert_int_equal(e.n, 21);
	assert_string_equal(e.msgs[0], "f.xml: msg 0");
	assert_string_equal(e.msgs[7], "f.xml:7: msg 7");
	assert_string_equal(e.msgs[20], "bare");
	conf_errs_done(&e);
	assert_int_equal(e.n, 0);
	conf_errs_done(&e); /* empty list, again */
}

/* ---- malformed userconfig.xml: one test per fixture ---------------------------- */

struct bad_case {
	const char *file;
	int line;
	const char *sub;
};

static const struct bad_case bad_cases[] = {
	{ "bad-not-well-formed.xml", 8, "not well-formed XML: Opening and ending tag mismatch" },
	{ "bad-unknown-element.xml", 13, "<vhost>: This element is not expected" },
	{ "bad-unknown-attr.xml", 4, "<heart> @colour: The attribute 'colour' is not allowed" },
	{ "bad-enum-async.xml", 10,
	  "<rfs> @async: The value 'sometimes' is not an element of the set" },
	{ "bad-reiblocksize.xml", 10, "<rfs> @reiblocksize: must be a power of two" },
	{ "bad-duration.xml", 4,
	  "<heart> @pulse: \"5 parsecs\" is not valid; expected a duration" },
	{ "bad-one-node.xml", 5, "<heartbeat>: has 1 <server> element; expected exactly 2" },
	{ "bad-three-nodes.xml", 5, "<heartbeat>: has 3 <server> elements; expected exactly 2" },
	{ "bad-dup-node-names.xml", 7,
	  "<server> @name: node \"node1\" is already named at line 6" },
	{ "bad-dup-addr.xml", 7,
	  "<server> @addr: 198.18.0.1 is also the address of node \"node1\"" },
	{ "bad-ip.xml", 7,
	  "<server> @addr: \"198.18.0.300\" is not a numeric IPv4 or IPv6 address" },
	{ "bad-vip-node-addr.xml", 14,
	  "<virtual_addr> @addr: VIP 198.18.0.2 is also the address of node \"node2\"" },
	{ "bad-relative-dir.xml", 11, "<replicated> @dir: \"srv/db\" is not an absolute path" },
	{ "bad-missing-dir.xml", 11, "/no-such-dir does not exist" },
	{ "bad-not-a-dir.xml", 11, "/plainfile is not a directory" },
	{ "bad-dir-not-normalised.xml", 11, "//db/\" is not normalised" },
	{ "bad-nested-dirs.xml", 12, "/db/sub is nested inside" },
	{ "bad-dup-dirs.xml", 12, "/db is already replicated (line 11)" },
	{ "bad-notrepl-dotdot.xml", 12,
	  "<notreplicated> @path: \"cache/../../etc\" contains a \"..\" component" },
	{ "bad-tocheck-absolute.xml", 12,
	  "<tocheck> @path: \"/etc/passwd\" is not a relative path" },
	{ "bad-regexpath.xml", 12,
	  "<notreplicated> @regexpath: \"(tmp|cache\" is not a valid POSIX extended regular "
	  "expression" },
	{ "bad-splitbrain-arg.xml", 14,
	  "<splitbrain> @arg: witness \"gateway.example\" is not valid; expected a numeric IP address" },
	{ "bad-splitbrain-exec.xml", 14, "<splitbrain> @exec: \"/bin/true\" is not supported" },
	{ "bad-two-splitbrains.xml", 15, "only one <splitbrain> is allowed (first at line 14)" },
	{ "bad-port-range.xml", 10, "<rfs> @port: The value '70000' is greater than the maximum" },
	{ "bad-port-same.xml", 10,
	  "<rfs> @port: 9300 is also the heartbeat port (<heart> line 4)" },
	{ "bad-timeout-pulse.xml", 4, "<heart> @timeout: timeout 1s is less than 3 x pulse 500ms" },
	{ "bad-defaultprim.xml", 3,
	  "<service> @defaultprim: \"node9\" is not a node of this module" },
	{ "bad-mode.xml", 3, "<service> @mode: \"farm\" is not supported" },
	{ "bad-hb-other-nodes.xml", 11,
	  "<server> @name: node \"nodeX\" is not one of the two nodes \"node1\" and \"node2\"" },
	{ "bad-dup-hb-ident.xml", 9,
	  "<heartbeat> @ident: heartbeat ident \"flow\" is already used "
	  "at line 5" },
	{ "bad-netmask.xml", 14,
	  "<virtual_addr> @netmask: \"255.0.255.0\" is not a valid IPv4 "
	  "netmask" },
	{ "bad-dup-checker-ident.xml", 15,
	  "<ping> @ident: checker ident \"app\" is already used by <tcp> at line 14" },
	{ "bad-check-action.xml", 14, "<tcp> @action: \"stopstart\" does not fit when=\"pre\"" },
	{ "bad-flow-no-rfs.xml", 5,
	  "\"flow\" marks the replication network but there is no <rfs>" },
	{ "bad-dup-macro.xml", 4, "<macro> @name: macro \"A\" is already defined at line 3" },
	{ "bad-size.xml", 10, "<rfs> @maxinflight: \"4T\" is not valid; expected a size" },
	{ "bad-external-dtd.xml", 1, "external DTD \"file:///etc/passwd\" is not allowed" },
	{ "bad-xxe.xml", 3, "<!ENTITY xxe>: DTD declarations are not allowed" },
	{ "bad-billion-laughs.xml", 3, "<!ENTITY lol>: DTD declarations are not allowed" },
};

static void
bad_fixture(void **state)
{
	const struct bad_case *bc = *state;
	struct conf_errs e = { 0 };
	struct cluster_conf *c = NULL;
	int r;

	r = parse_fixture(bc->file, &c, &e);
	if (r != MR_ECONFIG)
		dump_errs(bc->file, &e);
	assert_int_equal(r, MR_ECONFIG);
	assert_null(c);
	assert_true(e.n >= 1);
	expect_err(&e, bc->line, bc->sub);
	conf_errs_done(&e);
}

/* The entity names /etc/passwd: nothing of it may reach any message, and the
 * document is refused. */
static void
xxe_never_reads_the_file(void **state)
{
	struct conf_errs e = { 0 };
	struct cluster_conf *c = NULL;

	(void)state;
	assert_int_equal(parse_fixture("bad-xxe.xml", &c, &e), MR_ECONFIG);
	assert_null(c);
	for (size_t i = 0; i < e.n; i++) {
		assert_null(strstr(e.msgs[i], "root:"));
		assert_null(strstr(e.msgs[i], "/bin/"));
	}
	/* the reference is reported as undefined, never substituted */
	expect_err(&e, 6, "Entity 'xxe' not defined");
	conf_errs_done(&e);
}

static void
several_errors_all_reported(void **state)
{
	struct conf_errs e = { 0 };
	struct cluster_conf *c = NULL;

	(void)state;
	/* a message already in the list is kept, new ones are appended */
	conf_errs_add(&e, "earlier", 1, "kept");
	assert_int_equal(parse_fixture("bad-multi.xml", &c, &e), MR_ECONFIG);
	assert_null(c);
	assert_string_equal(e.msgs[0], "earlier:1: kept");
	expect_err(&e, 4, "<heart> @port: 9201 is also the replication port");
	expect_err(&e, 7, "\"198.18.0.999\" is not a numeric IPv4 or IPv6 address");
	expect_err(&e, 11, "\"relative/db\" is not an absolute path");
	expect_err(&e, 13, "\"([\" is not a valid POSIX extended regular expression");
	expect_err(&e, 14, "\"../outside\" contains a \"..\" component");
	expect_err(&e, 18, "witness \"not-an-ip\" is not valid");
	expect_err(&e, 20, "<errd> @polltimer: \"fast\" is not valid; expected a duration");
	assert_int_equal(e.n, 8);
	/* in file order */
	for (size_t i = 2; i < e.n; i++)
		assert_true(atoi(strchr(e.msgs[i], ':') + 1) >=
		            atoi(strchr(e.msgs[i - 1], ':') + 1));
	conf_errs_done(&e);
}

static void
inline_cases(void **state)
{
	static const struct {
		const char *xml;
		int line;
		const char *sub;
	} cases[] = {
		{ "", 1, "not well-formed XML" },
		{ "<safe>\n<service mode=\"mirror\">\n", 3, "not well-formed XML" },
		{ "<mirror/>\n", 1, "<mirror>: No matching global declaration" },
		{ "<safe>\n  <service mode=\"mirror\"/>\n</safe>\n", 2,
		  "<service>: Missing child element(s)" },
		{ "<!DOCTYPE safe [\n<!ELEMENT safe ANY>\n]>\n<safe/>\n", 2,
		  "<!ELEMENT safe>: DTD declarations are not allowed" },
		{ "<!DOCTYPE safe [\n<!ATTLIST safe a CDATA \"x\">\n]>\n<safe/>\n", 2,
		  "<!ATTLIST safe>: DTD declarations are not allowed" },
		{ "<!DOCTYPE safe [\n<!ENTITY % p SYSTEM \"file:///etc/passwd\">\n%p;\n]>\n<safe/>\n",
		  2, "<!ENTITY p>: DTD declarations are not allowed" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf_errs e = { 0 };
		struct cluster_conf *c = NULL;

		assert_int_equal(parse_text(cases[i].xml, &c, &e), MR_ECONFIG);
		assert_null(c);
		expect_err(&e, cases[i].line, cases[i].sub);
		for (size_t k = 0; k < e.n; k++)
			assert_null(strstr(e.msgs[k], "root:"));
		conf_errs_done(&e);
	}
}

static void
load_missing_file(void **state)
{
	struct conf_errs e = { 0 };
	struct cluster_conf *c = NULL;

	(void)state;
	assert_int_equal(conf_cluster_load("/nonexistent/userconfig.xml", &c, &e), -ENOENT);
	assert_null(c);
	assert_int_equal(e.n, 1);
	assert_non_null(strstr(e.msgs[0], "/nonexistent/userconfig.xml: cannot open"));
	conf_errs_done(&e);
}

/* ---- valid configurations ------------------------------------------------------ */

static void
minimal_defaults(void **state)
{
	struct cluster_conf *c = parse_ok("minimal.xml");
	char dir[256];

	(void)state;
	assert_string_equal(c->path, "bad.xml");
	assert_string_equal(c->nodes[0], "node1");
	assert_string_equal(c->nodes[1], "node2");
	assert_int_equal(conf_cluster_node_index(c, "node2"), 1);
	assert_int_equal(conf_cluster_node_index(c, "node3"), -ENOENT);

	assert_int_equal(c->service.boot, CONF_BOOT_IGNORE);
	assert_true(c->service.failover);
	assert_int_equal(c->service.defaultprim, CONF_DEFAULTPRIM_ALONE);
	assert_int_equal(c->service.maxloop, 3);
	assert_int_equal(c->service.loop_interval_ms, 24u * 3600 * 1000);
	assert_int_equal(c->service.boot_delay_ms, 0);

	assert_int_equal(c->heart.port, 9200);
	assert_int_equal(c->heart.pulse_ms, 200);
	assert_int_equal(c->heart.timeout_ms, 1500);
	assert_int_equal(c->heart.n_hbs, 1);
	assert_string_equal(c->heart.hbs[0].name, "net0");
	assert_string_equal(c->heart.hbs[0].ident, "net0");
	assert_int_equal(c->heart.hbs[0].pulse_ms, 200);
	assert_int_equal(c->heart.hbs[0].timeout_ms, 1500);
	assert_string_equal(c->heart.hbs[0].servers[0].name, "node1");
	assert_string_equal(c->heart.hbs[0].servers[0].addr_str, "198.18.0.1");
	assert_int_equal(v4(&c->heart.hbs[0].servers[0].addr), 0xc6120001u);
	assert_int_equal(c->heart.hbs[0].servers[1].line, 7);

	assert_false(c->vip.present);
	assert_true(c->rfs.present);
	assert_int_equal(c->rfs.async, CONF_ASYNC_SECOND);
	assert_int_equal(c->rfs.port, 9201);
	assert_int_equal(c->rfs.sendtimeout_ms, 30000);
	assert_int_equal(c->rfs.reitimeout_ms, 150000);
	assert_int_equal(c->rfs.nbrei, 6);
	assert_int_equal(c->rfs.reiallowedbw_kbps, 0);
	assert_int_equal(c->rfs.reiblocksize, 4096);
	assert_int_equal(c->rfs.reicompress, CONF_COMPRESS_AUTO);
	assert_int_equal(c->rfs.asynclag_bytes, 64ull << 20);
	assert_int_equal(c->rfs.maxinflight_bytes, 64ull << 20);
	assert_int_equal(c->rfs.n_repl, 1);
	snprintf(dir, sizeof(dir), "%s/db", tmpdir);
	assert_string_equal(c->rfs.repl[0].dir, dir);
	assert_false(c->rfs.repl[0].read_only);
	assert_int_equal(c->rfs.repl[0].n_notrepl, 0);
	assert_int_equal(c->rfs.repl[0].n_tocheck, 0);

	assert_false(c->user.present);
	assert_false(c->errd.present);
	assert_int_equal(c->n_checks, 0);
	assert_false(c->splitbrain.present);

	assert_int_equal(strlen(c->hash_hex), 32);
	assert_int_equal(strspn(c->hash_hex, "0123456789abcdef"), 32);
	for (int i = 0; i < 16; i++) {
		char two[3];

		snprintf(two, sizeof(two), "%02x", c->hash[i]);
		assert_memory_equal(two, &c->hash_hex[2 * i], 2);
	}
	conf_cluster_free(c);
}

static void
full_example_fields(void **state)
{
	struct cluster_conf *c = parse_ok("full.xml");
	const struct conf_replicated *r;
	char buf[256];

	(void)state;
	assert_int_equal(c->service.boot, CONF_BOOT_AUTO);
	assert_false(c->service.failover);
	assert_int_equal(c->service.defaultprim, CONF_DEFAULTPRIM_SERVER);
	assert_string_equal(c->service.defaultprim_server, "node2");
	assert_int_equal(c->service.maxloop, 5);
	assert_int_equal(c->service.loop_interval_ms, 12u * 3600 * 1000);
	assert_int_equal(c->service.boot_delay_ms, 10000);

	assert_int_equal(c->heart.port, 9300);
	assert_int_equal(c->heart.n_hbs, 2);
	assert_int_equal(c->heart.hbs[0].pulse_ms, 200);
	assert_int_equal(c->heart.hbs[0].timeout_ms, 2000);
	assert_string_equal(c->heart.hbs[1].ident, "flow");
	assert_int_equal(c->heart.hbs[1].pulse_ms, 50);
	assert_int_equal(c->heart.hbs[1].timeout_ms, 500);
	/* written node2 first: still stored by node index */
	assert_string_equal(c->heart.hbs[1].servers[0].name, "node1");
	assert_string_equal(c->heart.hbs[1].servers[0].addr_str, "fd00::1");
	assert_int_equal(c->heart.hbs[1].servers[0].addr.ss_family, AF_INET6);
	assert_string_equal(c->heart.hbs[1].servers[1].name, "node2");

	assert_true(c->vip.present);
	assert_false(c->vip.tcpreset);
	assert_int_equal(c->vip.n_intfs, 1);
	assert_string_equal(c->vip.intfs[0].name, "eth0");
	assert_false(c->vip.intfs[0].check);
	assert_true(c->vip.intfs[0].arpreroute);
	assert_int_equal(c->vip.intfs[0].arpinterval_ms, 30000);
	assert_int_equal(c->vip.intfs[0].arpelapse_ms, 600000);
	assert_int_equal(c->vip.intfs[0].n_addrs, 2);
	assert_string_equal(c->vip.intfs[0].addrs[0].addr_str, "198.18.0.100"); /* macro */
	assert_int_equal(c->vip.intfs[0].addrs[0].prefixlen, 24);
	assert_false(c->vip.intfs[0].addrs[0].check);
	assert_string_equal(c->vip.intfs[0].addrs[0].where, "one_side");
	assert_int_equal(c->vip.intfs[0].addrs[1].prefixlen, 64);
	assert_true(c->vip.intfs[0].addrs[1].check);
	assert_string_equal(c->vip.intfs[0].addrs[1].where, "one_side_alias");

	assert_int_equal(c->rfs.async, CONF_ASYNC_ASYNC);
	assert_int_equal(c->rfs.port, 9301);
	assert_int_equal(c->rfs.sendtimeout_ms, 10000);
	assert_int_equal(c->rfs.reitimeout_ms, 300000);
	assert_int_equal(c->rfs.nbrei, 8);
	assert_int_equal(c->rfs.reiallowedbw_kbps, 50000);
	assert_int_equal(c->rfs.reiblocksize, 64 * 1024);
	assert_int_equal(c->rfs.reicompress, CONF_COMPRESS_ON);
	assert_int_equal(c->rfs.asynclag_bytes, 128ull << 20);
	assert_int_equal(c->rfs.maxinflight_bytes, 1ull << 30);
	assert_int_equal(c->rfs.n_repl, 2);
	r = &c->rfs.repl[0];
	snprintf(buf, sizeof(buf), "%s/db", tmpdir);
	assert_string_equal(r->dir, buf); /* macro */
	assert_true(r->read_only);
	assert_int_equal(r->n_notrepl, 2);
	assert_string_equal(r->notrepl[0].path, "cache");
	assert_null(r->notrepl[0].regexpath);
	assert_null(r->notrepl[1].path);
	assert_string_equal(r->notrepl[1].regexpath, ".*\\.tmp$");
	assert_int_equal(r->n_tocheck, 2);
	assert_string_equal(r->tocheck[0], "data/PG_VERSION");
	assert_string_equal(r->tocheck[1], "conf");

	assert_true(c->user.present);
	assert_int_equal(c->user.nicestoptimeout_ms, 60000);
	assert_int_equal(c->user.forcestoptimeout_ms, 20000);
	assert_int_equal(c->user.starttimeout_ms, 120000);
	assert_false(c->user.logging);
	assert_int_equal(c->user.n_vars, 3);
	assert_string_equal(c->user.vars[0].name, "SERVICES");
	assert_string_equal(c->user.vars[0].value, "postgresql");
	snprintf(buf, sizeof(buf), "%s/db/data", tmpdir);
	assert_string_equal(c->user.vars[1].value, buf);
	assert_string_equal(c->user.vars[2].value, "100%UNKNOWN%"); /* unknown macro kept */

	assert_true(c->errd.present);
	assert_int_equal(c->errd.polltimer_ms, 10000);
	assert_int_equal(c->errd.n_procs, 2);
	assert_string_equal(c->errd.procs[0].name, "postgres");
	assert_string_equal(c->errd.procs[0].nameregex, "^postgres$");
	assert_string_equal(c->errd.procs[0].argregex, "-D .*");
	assert_int_equal(c->errd.procs[0].atmax, 4);
	assert_int_equal(c->errd.procs[0].start_after, 2);
	assert_string_equal(c->errd.procs[0].action, "restart");
	assert_string_equal(c->errd.procs[1].class_, "prim");
	assert_string_equal(c->errd.procs[1].action, "stopstart");
	assert_int_equal(c->errd.procs[1].atleast, 1);
	assert_int_equal(c->errd.procs[1].atmax, -1);
	assert_null(c->errd.procs[1].nameregex);

	assert_int_equal(c->n_checks, 5);
	assert_int_equal(c->checks[0].kind, CONF_CHECK_TCP);
	assert_string_equal(c->checks[0].ident, "pg");
	assert_string_equal(c->checks[0].action, "stopstart");
	assert_int_equal(c->checks[0].n_to, 1);
	assert_int_equal(c->checks[0].to[0].port, 5432);
	assert_int_equal(c->checks[0].to[0].interval_ms, 15000);
	assert_int_equal(c->checks[0].to[0].timeout_ms, 3000);
	assert_int_equal(c->checks[1].kind, CONF_CHECK_PING);
	assert_string_equal(c->checks[1].when, "pre");
	assert_string_equal(c->checks[1].action, "wait");
	assert_int_equal(c->checks[1].to[0].interval_ms, 2000);
	assert_int_equal(c->checks[1].to[0].timeout_ms, 1000);
	assert_int_equal(c->checks[2].kind, CONF_CHECK_INTF);
	assert_string_equal(c->checks[2].to[0].addr_str, "198.18.0.1");
	assert_int_equal(c->checks[3].kind, CONF_CHECK_IP);
	assert_string_equal(c->checks[3].when, "prim");
	assert_string_equal(c->checks[3].action, "stopstart");
	assert_int_equal(c->checks[3].to[0].interval_ms, 5000);
	assert_int_equal(c->checks[4].kind, CONF_CHECK_CUSTOM);
	assert_string_equal(c->checks[4].exec, "/usr/local/bin/probe");
	assert_string_equal(c->checks[4].arg, "-q");
	assert_string_equal(c->checks[4].when, "second");

	assert_true(c->splitbrain.present);
	assert_string_equal(c->splitbrain.ident, "witness");
	assert_int_equal(c->splitbrain.n_witnesses, 2);
	assert_string_equal(c->splitbrain.witness_strs[1], "198.18.0.253");
	assert_int_equal(v4(&c->splitbrain.witnesses[0]), 0xc61200feu);
	conf_cluster_free(c);
}

/* conf/userconfig.xml, the shipped example, validates once its replicated
 * directory is pointed at one that exists. */
static void
shipped_example_validates(void **state)
{
	char path[512];
	char *raw, *text, *dir;
	struct conf_errs e = { 0 };
	struct cluster_conf *c = NULL;
	int r;

	(void)state;
	snprintf(path, sizeof(path), "%s/conf/userconfig.xml", MR_SOURCE_DIR);
	raw = read_all(path);
	assert_non_null(strstr(raw, "/srv/hamirror/db"));
	if (asprintf(&dir, "%s/db", tmpdir) < 0)
		fail();
	text = subst(raw, "/srv/hamirror/db", dir);
	r = conf_cluster_parse("userconfig.xml", text, strlen(text), &c, &e);
	if (r != 0)
		dump_errs("conf/userconfig.xml", &e);
	assert_int_equal(r, 0);
	assert_true(c->vip.present);
	assert_true(c->splitbrain.present);
	assert_true(c->errd.present && c->errd.n_procs >= 1);
	assert_true(c->n_checks >= 1);
	assert_string_equal(c->rfs.repl[0].dir, dir);
	conf_cluster_free(c);
	conf_errs_done(&e);

	/* as shipped (no such directory here), only the directory is reported */
	r = conf_cluster_load(path, &c, &e);
	if (r == MR_ECONFIG) {
		assert_int_equal(e.n, 1);
		assert_non_null(strstr(e.msgs[0], "/srv/hamirror/db does not exist"));
	} else {
		assert_int_equal(r, 0); /* a machine that has /srv/hamirror/db */
		conf_cluster_free(c);
	}
	conf_errs_done(&e);
	free(dir);
	free(text);
	free(raw);
}

static void
macros_expand_in_attributes(void **state)
{
	static const char xml[] =
	        "<safe>\n"
	        "  <macro name=\"NET\" value=\"198.18.0\"/>\n"
	        "  <macro name=\"PULSE\" value=\"250ms\"/>\n"
	        "  <macro name=\"DIR\" value=\"@TMP@/db2\"/>\n"
	        "  <service mode=\"mirror\">\n"
	        "    <heart pulse=\"%PULSE%\">\n"
	        "      <heartbeat name=\"n\">\n"
	        "        <server name=\"a\" addr=\"%NET%.1\"/>\n"
	        "        <server name=\"b\" addr=\"%NET%.2\"/>\n"
	        "      </heartbeat>\n"
	        "    </heart>\n"
	        "    <rfs><replicated dir=\"%DIR%\"/></rfs>\n"
	        "    <user><var name=\"X\" value=\"%NET%%%PULSE%%NOPE%\"/></user>\n"
	        "  </service>\n"
	        "</safe>\n";
	char *text = subst(xml, "@TMP@", tmpdir);
	struct conf_errs e = { 0 };
	struct cluster_conf *c = NULL;
	char dir[256];

	(void)state;
	assert_int_equal(parse_text(text, &c, &e), 0);
	assert_int_equal(c->heart.pulse_ms, 250);
	assert_int_equal(c->heart.hbs[0].pulse_ms, 250);
	assert_string_equal(c->heart.hbs[0].servers[1].addr_str, "198.18.0.2");
	snprintf(dir, sizeof(dir), "%s/db2", tmpdir);
	assert_string_equal(c->rfs.repl[0].dir, dir);
	assert_string_equal(c->user.vars[0].value, "198.18.0%250ms%NOPE%");
	conf_cluster_free(c);
	free(text);
}

static void
canonical_text(void **state)
{
	struct cluster_conf *c = parse_ok("hash-a.xml");
	char *t = conf_cluster_canonical(c);

	(void)state;
	assert_non_null(t);
	assert_non_null(strstr(t, "format=hamirror-userconfig-1\n"));
	assert_non_null(strstr(t, "\nheart.pulse_ms=200\n"));
	assert_non_null(strstr(t, "\nheart.0.server.1.addr=198.18.0.2\n"));
	assert_non_null(strstr(t, "\nrfs.async=none\n"));
	assert_non_null(strstr(t, "\nvip.0.addr.0.prefixlen=32\n"));
	assert_non_null(strstr(t, "\nuser.var.0.A=1\n"));
	assert_int_equal(t[strlen(t) - 1], '\n');
	free(t);
	conf_cluster_free(c);
}

static void
hash_ignores_form_and_defaults(void **state)
{
	struct cluster_conf *a = parse_ok("hash-a.xml");
	struct cluster_conf *b = parse_ok("hash-b.xml");
	struct cluster_conf *c = parse_ok("hash-c.xml");

	(void)state;
	/* whitespace, comments, attribute order, explicit defaults, macros */
	if (strcmp(a->hash_hex, b->hash_hex) != 0) {
		char *ta = conf_cluster_canonical(a), *tb = conf_cluster_canonical(b);

		fprintf(stderr, "--- a\n%s--- b\n%s", ta, tb);
		free(ta);
		free(tb);
	}
	assert_string_equal(a->hash_hex, b->hash_hex);
	assert_memory_equal(a->hash, b->hash, 16);
	/* a different pulse is a different configuration */
	assert_string_not_equal(a->hash_hex, c->hash_hex);
	conf_cluster_free(a);
	conf_cluster_free(b);
	conf_cluster_free(c);
}

/* Every one-attribute change of the minimal file changes the hash. */
static void
hash_sees_every_effective_change(void **state)
{
	static const char *const edits[][2] = {
		{ "<service mode=\"mirror\">", "<service mode=\"mirror\" failover=\"off\">" },
		{ "<service mode=\"mirror\">", "<service mode=\"mirror\" maxloop=\"4\">" },
		{ "<heart>", "<heart port=\"9300\">" },
		{ "<heart>", "<heart timeout=\"2s\">" },
		{ "heartbeat name=\"net0\"", "heartbeat name=\"net0\" ident=\"flow\"" },
		{ "198.18.0.2", "198.18.0.3" },
		{ "name=\"node2\"", "name=\"node3\"" },
		{ "<rfs>", "<rfs async=\"none\">" },
		{ "<rfs>", "<rfs nbrei=\"7\">" },
		{ "<rfs>", "<rfs maxinflight=\"32M\">" },
		{ "<rfs>", "<rfs reiblocksize=\"64K\">" },
		{ "<rfs>", "<rfs reicompress=\"off\">" },
		{ "/db\"/>", "/db2\"/>" },
		{ "/db\"/>", "/db\" mode=\"read_only\"/>" },
		{ "/db\"/>", "/db\"><tocheck path=\"x\"/></replicated>" },
		{ "</rfs>", "</rfs><user/>" },
		{ "</rfs>", "</rfs><errd/>" },
		{ "</rfs>",
		  "</rfs><check><splitbrain ident=\"w\" exec=\"ping\" arg=\"198.18.0.9\"/>"
		  "</check>" },
	};
	struct cluster_conf *base = parse_ok("minimal.xml");
	char *text = fixture("minimal.xml");

	(void)state;
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char *changed = subst(text, edits[i][0], edits[i][1]);
		struct conf_errs e = { 0 };
		struct cluster_conf *c = NULL;

		assert_string_not_equal(changed, text);
		if (parse_text(changed, &c, &e) != 0) {
			dump_errs(edits[i][1], &e);
			fail();
		}
		if (strcmp(c->hash_hex, base->hash_hex) == 0)
			fail_msg("edit %zu (%s) did not change the hash", i, edits[i][1]);
		conf_cluster_free(c);
		free(changed);
	}
	free(text);
	conf_cluster_free(base);
}

static void
load_from_file(void **state)
{
	char path[512];
	char *text = fixture("minimal.xml");
	struct conf_errs e = { 0 };
	struct cluster_conf *c = NULL;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/userconfig.xml", tmpdir);
	f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(conf_cluster_load(path, &c, &e), 0);
	assert_string_equal(c->path, path);
	conf_cluster_free(c);
	/* the file name appears in messages */
	f = fopen(path, "we");
	assert_non_null(f);
	fputs("<safe>\n<oops/>\n</safe>\n", f);
	fclose(f);
	assert_int_equal(conf_cluster_load(path, &c, &e), MR_ECONFIG);
	assert_true(e.n >= 1);
	assert_int_equal(strncmp(e.msgs[0], path, strlen(path)), 0);
	assert_int_equal(strncmp(e.msgs[0] + strlen(path), ":2: <oops>", 10), 0);
	conf_errs_done(&e);
	(void)unlink(path);
	free(text);
}

/* ---- fixture directory --------------------------------------------------------- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
group_setup(void **state)
{
	char p[256];
	int fd;

	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(p, sizeof(p), "%s/db", tmpdir);
	if (mkdir(p, 0755) == -1)
		return -1;
	snprintf(p, sizeof(p), "%s/db/sub", tmpdir);
	if (mkdir(p, 0755) == -1)
		return -1;
	snprintf(p, sizeof(p), "%s/db2", tmpdir);
	if (mkdir(p, 0755) == -1)
		return -1;
	snprintf(p, sizeof(p), "%s/plainfile", tmpdir);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	if (fd == -1)
		return -1;
	close(fd);
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
	struct CMUnitTest tests[64 + sizeof(bad_cases) / sizeof(bad_cases[0])];
	size_t n = 0;
	const struct CMUnitTest fixed[] = {
		/* clang-format off */
		cmocka_unit_test(durations_parse),
		cmocka_unit_test(sizes_parse),
		cmocka_unit_test(bools_and_ips_parse),
		cmocka_unit_test(errs_format),
		cmocka_unit_test(xxe_never_reads_the_file),
		cmocka_unit_test(several_errors_all_reported),
		cmocka_unit_test(inline_cases),
		cmocka_unit_test(load_missing_file),
		cmocka_unit_test(minimal_defaults),
		cmocka_unit_test(full_example_fields),
		cmocka_unit_test(shipped_example_validates),
		cmocka_unit_test(macros_expand_in_attributes),
		cmocka_unit_test(canonical_text),
		cmocka_unit_test(hash_ignores_form_and_defaults),
		cmocka_unit_test(hash_sees_every_effective_change),
		cmocka_unit_test(load_from_file),
		/* clang-format on */
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		tests[n++] = fixed[i];
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct CMUnitTest t = cmocka_unit_test_prestate(bad_fixture, (void *)&bad_cases[i]);

		t.name = bad_cases[i].file;
		tests[n++] = t;
	}
	return _cmocka_run_group_tests("conf_cluster", tests, n, group_setup, group_teardown);
}
