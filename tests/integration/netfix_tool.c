/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * netfix_tool.c - a small CLI over vip.c, garp.c, nl.c and witness.c, for
 * test_vip.py and test_witness.py (root, network namespaces).
 *
 * Not installed; no part of mirrord. Each command builds what mirrord would
 * build from userconfig.xml (a struct conf_vip / conf_splitbrain in memory),
 * runs it on a libuv loop, prints one result line on stdout and exits.
 * The module logs (vip: added ...) go to stderr at debug level.
 *
 *   take ADDR/PREFIX [IFNAME] [--no-wait] [--watch-ms N]
 *        "taken" (exit 0) or "refused: WHY" / "error: WHY" (exit 1). Keeps the
 *        address; waits for the last announcement (~5 s) unless --no-wait.
 *        --watch-ms N: then run vip_check() every 100 ms for N ms and print
 *        "check: rc=R (NAME) why=..." each time the result changes.
 *   release ADDR/PREFIX [IFNAME]     "released" (exit 0) or "error: WHY" (1)
 *   check ADDR/PREFIX [IFNAME]       vip_check() of a vip that is not held
 *        (interfaces only) and vip_status(): "check: rc=R (NAME) why=...",
 *        then "status: {json}"; exit 0 when rc is 0, else 1
 *   probe ADDR IFNAME                the MAC that answered (exit 1) or "free" (0)
 *   witness ADDR[:PORT]... --timeout-ms N [--sync]
 *        "reached: DETAIL" (exit 0) or "not reached: DETAIL" (exit 1)
 *
 * Exit 2: usage; 3: could not even start (bad address, no interface...).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "conf.h"
#include "err.h"
#include "garp.h"
#include "log.h"
#include "util.h"
#include "vip.h"
#include "witness.h"

#define EXIT_USAGE 2
#define EXIT_SETUP 3

struct tool {
	uv_loop_t *loop;
	struct vip *vip;
	uv_timer_t watch;
	uint64_t watch_end_ms;
	int last_check;
	bool checked_once;
	bool done;
	int result;
	int rc; /* exit code */
	bool no_wait;
	unsigned watch_ms;
};

static void
usage(void)
{
	fprintf(stderr, "usage: netfix_tool take ADDR/PREFIX [IFNAME] [--no-wait] [--watch-ms N]\n"
	                "       netfix_tool release ADDR/PREFIX [IFNAME]\n"
	                "       netfix_tool check ADDR/PREFIX [IFNAME]\n"
	                "       netfix_tool probe ADDR IFNAME\n"
	                "       netfix_tool witness ADDR[:PORT]... --timeout-ms N [--sync]\n");
	exit(EXIT_USAGE);
}

static unsigned
parse_uint(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v > 3600000)
		usage();
	return (unsigned)v;
}

/* "ADDR/PREFIX" (prefix optional: 32 / 128) into va. */
static void
parse_vip_addr(const char *s, struct conf_vip_addr *va)
{
	char buf[CONF_ADDR_MAX];
	char *slash;
	int fam;

	if (mr_strlcpy(buf, s, sizeof(buf)) < 0)
		usage();
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	fam = conf_parse_ip(buf, &va->addr);
	if (fam < 0) {
		fprintf(stderr, "netfix_tool: %s is not an IP address\n", buf);
		exit(EXIT_USAGE);
	}
	(void)mr_strlcpy(va->addr_str, buf, sizeof(va->addr_str));
	va->prefixlen = fam == AF_INET ? 32 : 128;
	if (slash != NULL) {
		unsigned pl = parse_uint(slash + 1);

		if (pl > va->prefixlen)
			usage();
		va->prefixlen = (uint8_t)pl;
	}
	va->check = true;
	(void)mr_strlcpy(va->where, "one_side_alias", sizeof(va->where));
}

static void
print_check(struct tool *t, bool always)
{
	char why[256];
	int r = vip_check(t->vip, why, sizeof(why));

	if (!always && t->checked_once && r == t->last_check)
		return;
	t->checked_once = true;
	t->last_check = r;
	printf("check: rc=%d (%s) why=%s\n", r, r == 0 ? "ok" : uv_err_name(r), why);
	fflush(stdout);
}

static void
on_watch(uv_timer_t *h)
{
	struct tool *t = h->data;

	print_check(t, false);
	if (mr_now_ms() >= t->watch_end_ms)
		uv_close((uv_handle_t *)h, NULL);
}

static void
on_done(void *ctx, int result, const char *why)
{
	struct tool *t = ctx;

	t->done = true;
	t->result = result;
	if (result == -EADDRINUSE)
		printf("refused: %s\n", why);
	else if (result < 0)
		printf("error: %s: %s\n", mr_strerror(result), why);
	fflush(stdout);
	t->rc = result == 0 ? 0 : 1;
}

static void
on_taken(void *ctx, int result, const char *why)
{
	struct tool *t = ctx;

	on_done(ctx, result, why);
	if (result != 0)
		return;
	printf("taken\n");
	fflush(stdout);
	if (t->watch_ms > 0) {
		t->watch_end_ms = mr_now_ms() + t->watch_ms;
		(void)uv_timer_init(t->loop, &t->watch);
		t->watch.data = t;
		(void)uv_timer_start(&t->watch, on_watch, 0, 100);
	}
	/* --no-wait: drop the announcement schedule (the first one was sent) */
	if (t->no_wait && t->watch_ms == 0) {
		vip_free(t->vip);
		t->vip = NULL;
	}
}

static void
on_released(void *ctx, int result, const char *why)
{
	on_done(ctx, result, why);
	if (result == 0) {
		printf("released\n");
		fflush(stdout);
	}
}

static int
cmd_vip(const char *cmd, int argc, char **argv)
{
	struct conf_vip_addr va;
	struct conf_vip_intf intf;
	struct conf_vip conf;
	struct tool t;
	char err[256];
	int r;

	memset(&va, 0, sizeof(va));
	memset(&intf, 0, sizeof(intf));
	memset(&conf, 0, sizeof(conf));
	memset(&t, 0, sizeof(t));
	if (argc < 1)
		usage();
	parse_vip_addr(argv[0], &va);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-wait") == 0 && strcmp(cmd, "take") == 0)
			t.no_wait = true;
		else if (strcmp(argv[i], "--watch-ms") == 0 && strcmp(cmd, "take") == 0 &&
		         i + 1 < argc)
			t.watch_ms = parse_uint(argv[++i]);
		else if (argv[i][0] != '-' && intf.name[0] == '\0' &&
		         mr_strlcpy(intf.name, argv[i], sizeof(intf.name)) == 0)
			continue;
		else
			usage();
	}
	intf.check = true;
	intf.arpinterval_ms = 60000;
	intf.arpelapse_ms = 1200000;
	intf.addrs = &va;
	intf.n_addrs = 1;
	conf.present = true;
	conf.tcpreset = true;
	conf.intfs = &intf;
	conf.n_intfs = 1;

	t.loop = uv_default_loop();
	r = vip_new(t.loop, &conf, &t.vip, err, sizeof(err));
	if (r < 0) {
		printf("error: %s: %s\n", mr_strerror(r), err);
		return EXIT_SETUP;
	}
	if (strcmp(cmd, "take") == 0) {
		vip_take(t.vip, on_taken, &t);
	} else if (strcmp(cmd, "release") == 0) {
		vip_release(t.vip, on_released, &t);
	} else {
		json_t *st = json_object();
		char *s;

		print_check(&t, true);
		vip_status(t.vip, st);
		s = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
		printf("status: %s\n", s != NULL ? s : "null");
		free(s);
		json_decref(st);
		t.rc = t.last_check == 0 ? 0 : 1;
		t.done = true;
	}
	/* Runs until the operation, the announcements (a stopped timer does not
	 * keep the loop alive) and the watch are over. */
	(void)uv_run(t.loop, UV_RUN_DEFAULT);
	vip_free(t.vip);
	(void)uv_run(t.loop, UV_RUN_DEFAULT);
	if (!t.done) {
		printf("error: no result\n");
		t.rc = EXIT_SETUP;
	}
	r = uv_loop_close(t.loop);
	if (r < 0)
		fprintf(stderr, "netfix_tool: uv_loop_close: %s\n", uv_strerror(r));
	return t.rc;
}

static int
cmd_probe(int argc, char **argv)
{
	struct sockaddr_storage ss;
	uint8_t mac[GARP_MAC_LEN];
	char s[GARP_MAC_STR_LEN];
	unsigned idx;
	int r;

	if (argc != 2)
		usage();
	if (conf_parse_ip(argv[0], &ss) < 0)
		usage();
	idx = if_nametoindex(argv[1]);
	if (idx == 0) {
		printf("error: no interface %s\n", argv[1]);
		return EXIT_SETUP;
	}
	r = garp_probe((int)idx, &ss, mac);
	if (r < 0) {
		printf("error: %s\n", mr_strerror(r));
		return EXIT_SETUP;
	}
	printf("%s\n", r == 1 ? garp_mac_str(mac, s) : "free");
	return r == 1 ? 1 : 0;
}

struct wtool {
	bool done;
	bool reached;
};

static void
on_witness(void *ctx, bool reached, const char *detail)
{
	struct wtool *w = ctx;

	w->done = true;
	w->reached = reached;
	printf("%s: %s\n", reached ? "reached" : "not reached", detail);
	fflush(stdout);
}

static int
cmd_witness(int argc, char **argv)
{
	struct sockaddr_storage addrs[8];
	struct conf_splitbrain sb;
	struct wtool w = { 0 };
	unsigned timeout_ms = 1000;
	bool sync = false;
	size_t n = 0;
	int r;

	memset(&sb, 0, sizeof(sb));
	memset(addrs, 0, sizeof(addrs));
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
			timeout_ms = parse_uint(argv[++i]);
		else if (strcmp(argv[i], "--sync") == 0)
			sync = true;
		else if (n < ARRAY_SIZE(addrs) && conf_parse_ip_port(argv[i], &addrs[n]) >= 0)
			n++;
		else
			usage();
	}
	if (n == 0)
		usage();
	if (sync) {
		char detail[512];
		bool reached = witness_probe(addrs, n, timeout_ms, detail, sizeof(detail));

		printf("%s: %s\n", reached ? "reached" : "not reached", detail);
		return reached ? 0 : 1;
	}
	sb.present = true;
	sb.witnesses = addrs;
	sb.n_witnesses = n;
	r = witness_check(uv_default_loop(), &sb, timeout_ms, on_witness, &w);
	if (r < 0) {
		printf("error: %s\n", mr_strerror(r));
		return EXIT_SETUP;
	}
	(void)uv_run(uv_default_loop(), UV_RUN_DEFAULT);
	(void)uv_loop_close(uv_default_loop());
	if (!w.done) {
		printf("error: no result\n");
		return EXIT_SETUP;
	}
	return w.reached ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	log_init("netfix_tool", LOG_LVL_DEBUG, true, false);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "take") == 0 || strcmp(argv[1], "release") == 0 ||
	    strcmp(argv[1], "check") == 0)
		return cmd_vip(argv[1], argc - 2, argv + 2);
	if (strcmp(argv[1], "probe") == 0)
		return cmd_probe(argc - 2, argv + 2);
	if (strcmp(argv[1], "witness") == 0)
		return cmd_witness(argc - 2, argv + 2);
	usage();
	return EXIT_USAGE;
}
