/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_hb.c - unit tests for the heartbeats (daemon/hb.c): the codec (round
 * trips, golden bytes, every corrupted byte and bit, wrong key, wrong size,
 * authenticated-but-malformed datagrams), the replay window, the key file
 * checks, and, when running as root, two hb instances talking over lo in a
 * private network namespace (127.0.0.0/8 only): peer info, immediate
 * propagation of hb_set_local(), loss after the timeout, restart with a new
 * epoch, and forged datagrams counted as drops.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "conf.h"
#include "err.h"
#include "hb.h"
#include "log.h"
#include "util.h"

/* 32 bytes, no NUL used */
static const uint8_t test_key[] = "hamirror-test-key-0123456789abcd";
#define TEST_KEY_LEN 32u

static struct hb_msg
sample_msg(void)
{
	struct hb_msg m = {
		.node_idx = 1,
		.net_idx = 2,
		.module = "web",
		.epoch = 0x0102030405060708u,
		.seq = 0x1112131415161718u,
		.info = {
			.state = 3,
			.readiness = 2,
			.uptodate = true,
			.flags = HB_F_FAILOVER | HB_F_HANDOVER | HB_F_SPLITBRAIN,
			.gen_seq = 0x2122232425262728u,
			.gen_id = 0x3132333435363738u,
			.handover_seq = 0x4142434445464748u,
			.changed_files = 0x51525354u,
		},
	};
	int i;

	for (i = 0; i < 16; i++)
		m.info.config_hash[i] = (uint8_t)(0xa0 + i);
	return m;
}

static void
assert_msg_equal(const struct hb_msg *a, const struct hb_msg *b)
{
	assert_int_equal(a->node_idx, b->node_idx);
	assert_int_equal(a->net_idx, b->net_idx);
	assert_string_equal(a->module, b->module);
	assert_true(a->epoch == b->epoch);
	assert_true(a->seq == b->seq);
	assert_int_equal(a->info.state, b->info.state);
	assert_int_equal(a->info.readiness, b->info.readiness);
	assert_int_equal(a->info.uptodate, b->info.uptodate);
	assert_int_equal(a->info.flags, b->info.flags);
	assert_true(a->info.gen_seq == b->info.gen_seq);
	assert_true(a->info.gen_id == b->info.gen_id);
	assert_true(a->info.handover_seq == b->info.handover_seq);
	assert_memory_equal(a->info.config_hash, b->info.config_hash, 16);
}

static void
encode_ok(const struct hb_msg *m, uint8_t buf[HB_WIRE_BYTES])
{
	assert_int_equal(hb_encode(m, test_key, TEST_KEY_LEN, buf, HB_WIRE_BYTES), HB_WIRE_BYTES);
}

/* Recompute the MAC after the test changed the body on purpose. */
static void
remac(uint8_t buf[HB_WIRE_BYTES])
{
	unsigned int len = 0;

	assert_non_null(HMAC(EVP_sha256(), test_key, (int)TEST_KEY_LEN, buf, HB_BODY_BYTES,
	                     buf + HB_BODY_BYTES, &len));
	assert_int_equal(len, HB_MAC_BYTES);
}

/* ---- codec ------------------------------------------------------------------- */

static void
round_trip(void **state)
{
	struct hb_msg m = sample_msg(), d;
	uint8_t buf[HB_WIRE_BYTES];

	(void)state;
	encode_ok(&m, buf);
	memset(&d, 0x55, sizeof(d));
	assert_int_equal(hb_decode(buf, sizeof(buf), test_key, TEST_KEY_LEN, &d), 0);
	assert_msg_equal(&m, &d);
}

/* Each field at its extremes, one at a time, so a field that is encoded at
 * the wrong place or width shows up as a mismatch in the other fields. */
static void
every_field(void **state)
{
	uint8_t buf[HB_WIRE_BYTES];
	struct hb_msg m, d;
	int field, v, i;

	(void)state;
	for (field = 0; field < 13; field++) {
		for (v = 0; v < 2; v++) {
			uint64_t big = v == 0 ? 0 : UINT64_MAX;
			uint8_t small = v == 0 ? 0 : 0xff;

			m = sample_msg();
			switch (field) {
			case 0:
				m.node_idx = small;
				break;
			case 1:
				m.net_idx = small;
				break;
			case 2:
				if (v == 0)
					m.module[0] = '\0';
				else
					memcpy(m.module, "abcdefghijklmnopqrstuvwxyz012345", 33);
				break;
			case 3:
				m.epoch = big;
				break;
			case 4:
				m.seq = big;
				break;
			case 5:
				m.info.state = small;
				break;
			case 6:
				m.info.readiness = small;
				break;
			case 7:
				m.info.uptodate = v != 0;
				break;
			case 8:
				m.info.flags = small;
				break;
			case 9:
				m.info.gen_seq = big;
				break;
			case 10:
				m.info.gen_id = big;
				break;
			case 11:
				m.info.handover_seq = big;
				break;
			default:
				for (i = 0; i < 16; i++)
					m.info.config_hash[i] = small;
				break;
			}
			encode_ok(&m, buf);
			memset(&d, 0x55, sizeof(d));
			assert_int_equal(hb_decode(buf, sizeof(buf), test_key, TEST_KEY_LEN, &d),
			                 0);
			assert_msg_equal(&m, &d);
		}
	}
}

static void
encode_refuses_bad_arguments(void **state)
{
	struct hb_msg m = sample_msg();
	uint8_t buf[HB_WIRE_BYTES + 1];

	(void)state;
	assert_int_equal(hb_encode(&m, test_key, HB_KEY_MIN_BYTES - 1, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(hb_encode(&m, NULL, TEST_KEY_LEN, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(hb_encode(&m, test_key, TEST_KEY_LEN, buf, HB_WIRE_BYTES - 1), -EINVAL);
	memset(m.module, 'x', sizeof(m.module)); /* 33 bytes, no NUL */
	assert_int_equal(hb_encode(&m, test_key, TEST_KEY_LEN, buf, sizeof(buf)), -EINVAL);
	/* a larger buffer is fine; only HB_WIRE_BYTES are written */
	m = sample_msg();
	buf[HB_WIRE_BYTES] = 0x77;
	assert_int_equal(hb_encode(&m, test_key, TEST_KEY_LEN, buf, sizeof(buf)), HB_WIRE_BYTES);
	assert_int_equal(buf[HB_WIRE_BYTES], 0x77);
}

/* Every single-byte and single-bit change of a datagram is refused: a bad
 * MAC (-EPERM), or for magic and version -EBADMSG before the MAC. */
static void
corruption_is_refused(void **state)
{
	struct hb_msg m = sample_msg(), d;
	uint8_t good[HB_WIRE_BYTES], buf[HB_WIRE_BYTES];
	size_t i;
	int bit, r;

	(void)state;
	encode_ok(&m, good);
	for (i = 0; i < sizeof(good); i++) {
		for (bit = -1; bit < 8; bit++) {
			memcpy(buf, good, sizeof(buf));
			buf[i] ^= bit < 0 ? 0xff : (uint8_t)(1u << bit);
			r = hb_decode(buf, sizeof(buf), test_key, TEST_KEY_LEN, &d);
			if (i < 5)
				assert_int_equal(r, -EBADMSG);
			else
				assert_int_equal(r, -EPERM);
		}
	}
}

static void
wrong_key_is_refused(void **state)
{
	struct hb_msg m = sample_msg(), d;
	uint8_t buf[HB_WIRE_BYTES];
	uint8_t other[TEST_KEY_LEN];

	(void)state;
	encode_ok(&m, buf);
	memcpy(other, test_key, sizeof(other));
	other[TEST_KEY_LEN - 1] ^= 1;
	assert_int_equal(hb_decode(buf, sizeof(buf), other, sizeof(other), &d), -EPERM);
	/* a prefix of the right key is another key */
	assert_int_equal(hb_decode(buf, sizeof(buf), test_key, TEST_KEY_LEN - 1, &d), -EPERM);
	assert_int_equal(hb_decode(buf, sizeof(buf), test_key, HB_KEY_MIN_BYTES - 1, &d), -EINVAL);
	assert_int_equal(hb_decode(buf, sizeof(buf), NULL, TEST_KEY_LEN, &d), -EINVAL);
}

static void
wrong_size_is_refused(void **state)
{
	struct hb_msg m = sample_msg(), d;
	uint8_t *buf;

	(void)state;
	buf = calloc(1, HB_WIRE_BYTES + 1);
	assert_non_null(buf);
	encode_ok(&m, buf);
	assert_int_equal(hb_decode(buf, 0, test_key, TEST_KEY_LEN, &d), -EBADMSG);
	assert_int_equal(hb_decode(buf, HB_WIRE_BYTES - 1, test_key, TEST_KEY_LEN, &d), -EBADMSG);
	assert_int_equal(hb_decode(buf, HB_WIRE_BYTES + 1, test_key, TEST_KEY_LEN, &d), -EBADMSG);
	assert_int_equal(hb_decode(NULL, HB_WIRE_BYTES, test_key, TEST_KEY_LEN, &d), -EBADMSG);
	assert_int_equal(hb_decode(buf, HB_WIRE_BYTES, test_key, TEST_KEY_LEN, &d), 0);
	free(buf);
}

/* Properly MACed, but not what hb_encode() writes: refused all the same. */
static void
malformed_but_authentic_is_refused(void **state)
{
	struct hb_msg m = sample_msg(), d;
	uint8_t good[HB_WIRE_BYTES], buf[HB_WIRE_BYTES];
	size_t i;

	(void)state;
	encode_ok(&m, good);
	for (i = 103; i < HB_BODY_BYTES; i++) { /* reserved bytes */
		memcpy(buf, good, sizeof(buf));
		buf[i] = 1;
		remac(buf);
		assert_int_equal(hb_decode(buf, sizeof(buf), test_key, TEST_KEY_LEN, &d), -EBADMSG);
	}
	memcpy(buf, good, sizeof(buf));
	buf[57] = 2; /* uptodate */
	remac(buf);
	assert_int_equal(hb_decode(buf, sizeof(buf), test_key, TEST_KEY_LEN, &d), -EBADMSG);
	memcpy(buf, good, sizeof(buf));
	buf[7 + 5] = 'x'; /* "web\0\0x": garbage after the NUL */
	remac(buf);
	assert_int_equal(hb_decode(buf, sizeof(buf), test_key, TEST_KEY_LEN, &d), -EBADMSG);
	/* the unchanged datagram with its MAC recomputed is still fine */
	memcpy(buf, good, sizeof(buf));
	remac(buf);
	assert_int_equal(hb_decode(buf, sizeof(buf), test_key, TEST_KEY_LEN, &d), 0);
}

/* The bytes of sample_msg() under test_key. Pinned: if this fails, the wire
 * format changed, so bump HB_VERSION (and update this on purpose). */
static const char golden_hex[] =
        /* magic "HMHB", version 2, node 1, net 2, module "web" NUL padded */
        "484d484202010277656200000000000000000000000000000000000000000000"
        /* ... epoch, seq, state 3, readiness 2, uptodate 1, flags 0x15, gen_seq */
        "0000000000000001020304050607081112131415161718030201152122232425"
        /* ... gen_id, handover_seq, config_hash */
        "26272831323334353637384142434445464748a0a1a2a3a4a5a6a7a8a9aaabac"
        /* ... changed_files 0x51525354, reserved zero up to byte 128 */
        "adaeaf5152535400000000000000000000000000000000000000000000000000"
        /* HMAC-SHA256 (computed independently with Python's hmac module) */
        "0bd00cc7f1c26ad9ba09d8948b99aaad4594758279163a96939ad6190458ba9c";

static void
golden_bytes(void **state)
{
	struct hb_msg m = sample_msg();
	uint8_t buf[HB_WIRE_BYTES];
	char hex[2 * HB_WIRE_BYTES + 1];
	size_t i;

	(void)state;
	encode_ok(&m, buf);
	for (i = 0; i < sizeof(buf); i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", buf[i]);
	assert_string_equal(hex, golden_hex);
}

/* ---- replay window ------------------------------------------------------------- */

static void
replay_rules(void **state)
{
	struct hb_replay r = { 0 };

	(void)state;
	assert_false(hb_replay_accept(&r, 0, 0)); /* fresh window: anything but (0, 0) */
	assert_true(hb_replay_accept(&r, 100, 1));
	assert_false(hb_replay_accept(&r, 100, 1)); /* equal */
	assert_true(hb_replay_accept(&r, 100, 2));
	assert_true(hb_replay_accept(&r, 100, 10)); /* gaps are fine (other networks, losses) */
	assert_false(hb_replay_accept(&r, 100, 9)); /* lower */
	assert_false(hb_replay_accept(&r, 100, 2));
	assert_false(hb_replay_accept(&r, 99, 1000)); /* lower epoch, whatever the seq */
	assert_false(hb_replay_accept(&r, 0, UINT64_MAX));
	assert_true(r.epoch == 100 && r.seq == 10);  /* refusals change nothing */
	assert_true(hb_replay_accept(&r, 101, 1));   /* restart: new epoch, seq from 1 */
	assert_false(hb_replay_accept(&r, 100, 11)); /* the old epoch is over */
	assert_true(hb_replay_accept(&r, 101, 2));
	assert_true(hb_replay_accept(&r, 101, UINT64_MAX));
	assert_false(hb_replay_accept(&r, 101, UINT64_MAX));
	assert_true(hb_replay_accept(&r, UINT64_MAX, 0));
	assert_false(hb_replay_accept(&r, UINT64_MAX, 0));
}

/* ---- key file ------------------------------------------------------------------- */

/* A key file of len bytes: test_key when len is TEST_KEY_LEN. */
static char *
write_key_file(size_t len)
{
	char tmpl[] = "/tmp/test_hb_key.XXXXXX";
	uint8_t *data;
	size_t i;
	int fd;

	fd = mkstemp(tmpl);
	assert_true(fd != -1);
	data = calloc(1, len + 1);
	assert_non_null(data);
	for (i = 0; i < len; i++)
		data[i] = len == TEST_KEY_LEN ? test_key[i] : (uint8_t)(i * 7 + 1);
	assert_true(write(fd, data, len) == (ssize_t)len);
	assert_int_equal(close(fd), 0);
	free(data);
	return mr_xstrdup(tmpl);
}

/* One network 127.0.0.1 <-> 127.0.0.2, a second one 127.0.1.1 <-> 127.0.1.2
 * when n_hbs is 2. */
static void
make_conf(struct cluster_conf *c, struct conf_heartbeat *hbs, size_t n_hbs, uint32_t pulse_ms,
          uint32_t timeout_ms)
{
	static const char *const addrs[2][2] = { { "127.0.0.1", "127.0.0.2" },
		                                 { "127.0.1.1", "127.0.1.2" } };
	size_t i, j;

	memset(c, 0, sizeof(*c));
	memset(hbs, 0, n_hbs * sizeof(*hbs));
	(void)mr_strlcpy(c->nodes[0], "n1", sizeof(c->nodes[0]));
	(void)mr_strlcpy(c->nodes[1], "n2", sizeof(c->nodes[1]));
	c->heart.port = 9200;
	c->heart.pulse_ms = pulse_ms;
	c->heart.timeout_ms = timeout_ms;
	c->heart.hbs = hbs;
	c->heart.n_hbs = n_hbs;
	for (i = 0; i < n_hbs; i++) {
		(void)snprintf(hbs[i].name, sizeof(hbs[i].name), "net%zu", i);
		(void)snprintf(hbs[i].ident, sizeof(hbs[i].ident), "ident%zu", i);
		hbs[i].pulse_ms = pulse_ms;
		hbs[i].timeout_ms = timeout_ms;
		for (j = 0; j < 2; j++) {
			(void)mr_strlcpy(hbs[i].servers[j].name, c->nodes[j],
			                 sizeof(hbs[i].servers[j].name));
			(void)mr_strlcpy(hbs[i].servers[j].addr_str, addrs[i][j],
			                 sizeof(hbs[i].servers[j].addr_str));
			assert_int_equal(conf_parse_ip(addrs[i][j], &hbs[i].servers[j].addr),
			                 AF_INET);
		}
	}
}

static void
key_file_size_checked(void **state)
{
	struct conf_heartbeat hbs[1];
	struct hb_info info = { 0 };
	struct cluster_conf c;
	struct hb *h = NULL;
	char err[256], want[256];
	char *path;
	uv_loop_t loop;

	(void)state;
	make_conf(&c, hbs, 1, 200, 1500);
	assert_int_equal(uv_loop_init(&loop), 0);

	path = write_key_file(8);
	assert_int_equal(
	        hb_start(&loop, &c, 0, "web", path, &info, NULL, NULL, &h, err, sizeof(err)),
	        MR_ECONFIG);
	assert_null(h);
	(void)snprintf(want, sizeof(want), "key file %s: 8 bytes, at least 16 needed", path);
	assert_string_equal(err, want);
	(void)unlink(path);
	free(path);

	path = write_key_file(300);
	assert_int_equal(
	        hb_start(&loop, &c, 0, "web", path, &info, NULL, NULL, &h, err, sizeof(err)),
	        MR_ECONFIG);
	(void)snprintf(want, sizeof(want), "key file %s: 300 bytes, at most 256 allowed", path);
	assert_string_equal(err, want);
	(void)unlink(path);
	free(path);

	assert_int_equal(hb_start(&loop, &c, 0, "web", "/nonexistent/hb.key", &info, NULL, NULL, &h,
	                          err, sizeof(err)),
	                 -ENOENT);
	assert_non_null(strstr(err, "key file /nonexistent/hb.key: "));

	assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- two instances over lo in a private network namespace ----------------------- */

/* Enter a fresh network namespace (once) and bring lo up, so 127.0.0.0/8 is
 * ours alone. false when not root or not allowed (the test is skipped). */
static bool
private_netns(void)
{
	static int done; /* 1 ok, -1 failed */
	struct ifreq ifr;
	int fd;

	if (done != 0)
		return done > 0;
	done = -1;
	if (geteuid() != 0 || unshare(CLONE_NEWNET) == -1)
		return false;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	memset(&ifr, 0, sizeof(ifr));
	(void)mr_strlcpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name));
	assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	assert_int_equal(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
	(void)close(fd);
	done = 1;
	return true;
}

struct node {
	const char *name;
	struct hb *hb;
	int n_peer;
	int n_lost;
	struct hb_info peer;
	bool net_up[2];
	int n_net_changes;
	int n_events;     /* every callback, in order */
	int last_down_ev; /* n_events at the last on_net(down) */
	int lost_ev;      /* n_events at the last on_lost */
	uint64_t lost_ms; /* mr_now_ms() at the last on_lost */
};

static void
on_peer(void *ctx, const struct hb_info *peer)
{
	struct node *n = ctx;

	n->n_events++;
	n->n_peer++;
	n->peer = *peer;
}

static void
on_net(void *ctx, size_t net_idx, bool up)
{
	struct node *n = ctx;

	assert_true(net_idx < 2);
	assert_true(n->net_up[net_idx] != up); /* changes only */
	n->n_events++;
	n->n_net_changes++;
	n->net_up[net_idx] = up;
	if (!up)
		n->last_down_ev = n->n_events;
}

static void
on_lost(void *ctx)
{
	struct node *n = ctx;

	n->n_events++;
	n->n_lost++;
	n->lost_ev = n->n_events;
	n->lost_ms = mr_now_ms();
}

static const struct hb_cbs test_cbs = {
	.on_peer = on_peer,
	.on_net = on_net,
	.on_lost = on_lost,
};

struct rt {
	bool init;
	uv_loop_t loop;
	uv_timer_t tick; /* makes every UV_RUN_ONCE return within 10 ms */
	struct cluster_conf conf;
	struct conf_heartbeat hbs[2];
	char *key_path;
	struct node nodes[2];
};

static void
tick_cb(uv_timer_t *t)
{
	(void)t;
}

static void
rt_init(struct rt *rt, size_t n_hbs, uint32_t pulse_ms, uint32_t timeout_ms)
{
	memset(rt, 0, sizeof(*rt));
	make_conf(&rt->conf, rt->hbs, n_hbs, pulse_ms, timeout_ms);
	rt->key_path = write_key_file(TEST_KEY_LEN);
	assert_int_equal(uv_loop_init(&rt->loop), 0);
	assert_int_equal(uv_timer_init(&rt->loop, &rt->tick), 0);
	assert_int_equal(uv_timer_start(&rt->tick, tick_cb, 10, 10), 0);
	rt->init = true; /* from here on rt_done() cleans up */
	rt->nodes[0].name = "n1";
	rt->nodes[1].name = "n2";
}

static void
rt_start(struct rt *rt, int idx, uint8_t state)
{
	struct hb_info info = { .state = state, .readiness = 2, .uptodate = true };
	char err[256] = "";
	int r;

	/* a new instance reports its networks from scratch (a stopped one says nothing) */
	memset(rt->nodes[idx].net_up, 0, sizeof(rt->nodes[idx].net_up));
	r = hb_start(&rt->loop, &rt->conf, idx, "web", rt->key_path, &info, &test_cbs,
	             &rt->nodes[idx], &rt->nodes[idx].hb, err, sizeof(err));
	if (r != 0)
		fail_msg("hb_start(%d): %s (%s)", idx, mr_strerror(r), err);
}

/* Teardown of every runtime test, also after a failed assertion, so a failing
 * test leaves no instance running into the next one. */
static int
rt_done(void **state)
{
	struct rt *rt = *state;

	if (!rt->init) {
		free(rt);
		return 0;
	}
	hb_stop(rt->nodes[0].hb);
	hb_stop(rt->nodes[1].hb);
	uv_close((uv_handle_t *)&rt->tick, NULL);
	assert_int_equal(uv_run(&rt->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&rt->loop), 0);
	(void)unlink(rt->key_path);
	free(rt->key_path);
	free(rt);
	return 0;
}

static int
rt_alloc(void **state)
{
	*state = calloc(1, sizeof(struct rt));
	return *state == NULL ? -1 : 0;
}

typedef bool (*cond_fn)(struct rt *rt, const void *arg);

/* Run the loop until cond holds or timeout_ms passed. */
static bool
wait_for(struct rt *rt, cond_fn cond, const void *arg, uint64_t timeout_ms)
{
	uint64_t deadline = mr_now_ms() + timeout_ms;

	while (!cond(rt, arg)) {
		if (mr_now_ms() >= deadline)
			return false;
		(void)uv_run(&rt->loop, UV_RUN_ONCE);
	}
	return true;
}

static bool
both_heard(struct rt *rt, const void *arg)
{
	(void)arg;
	return rt->nodes[0].n_peer > 0 && rt->nodes[1].n_peer > 0;
}

static bool
all_nets_up(struct rt *rt, const void *arg)
{
	size_t n = *(const size_t *)arg, i, j;

	for (i = 0; i < 2; i++)
		for (j = 0; j < n; j++)
			if (!rt->nodes[i].net_up[j])
				return false;
	return true;
}

struct peer_state {
	int node;
	uint8_t state;
};

static bool
sees_state(struct rt *rt, const void *arg)
{
	const struct peer_state *ps = arg;

	return rt->nodes[ps->node].n_peer > 0 && rt->nodes[ps->node].peer.state == ps->state;
}

static bool
n1_lost(struct rt *rt, const void *arg)
{
	return rt->nodes[0].n_lost >= *(const int *)arg;
}

/* One counter of network 0 as hb_status() shows it. */
static long long
status_counter(struct hb *h, const char *name)
{
	json_t *res = json_object(), *v;
	long long x = -1;

	hb_status(h, res);
	v = json_object_get(
	        json_array_get(json_object_get(json_object_get(res, "heartbeat"), "networks"), 0),
	        name);
	if (json_is_integer(v))
		x = json_integer_value(v);
	else if (json_is_true(v))
		x = 1;
	else if (json_is_false(v))
		x = 0;
	json_decref(res);
	return x;
}

struct counter_at_least {
	const char *name;
	long long min;
};

static bool
n1_counter(struct rt *rt, const void *arg)
{
	const struct counter_at_least *c = arg;

	return status_counter(rt->nodes[0].hb, c->name) >= c->min;
}

/* Send buf to 127.0.0.1:9200 (node n1, network 0) from src. */
static void
send_from(const char *src, const uint8_t *buf, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
	a.sin_port = htons(9200);
	assert_true(sendto(fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a)) == (ssize_t)len);
	(void)close(fd);
}

/* A datagram n2 could have sent on network 0, with the given key. */
static void
forge(uint8_t buf[HB_WIRE_BYTES], const uint8_t *key, size_t key_len, uint64_t epoch, uint64_t seq)
{
	struct hb_msg m = {
		.node_idx = 1,
		.net_idx = 0,
		.module = "web",
		.epoch = epoch,
		.seq = seq,
		.info = { .state = 1 },
	};

	assert_int_equal(hb_encode(&m, key, key_len, buf, HB_WIRE_BYTES), HB_WIRE_BYTES);
}

static void
status_shape(struct hb *h)
{
	json_t *res = json_object(), *hb, *nets, *n;

	hb_status(h, res);
	hb = json_object_get(res, "heartbeat");
	assert_true(json_is_object(hb));
	assert_int_equal(json_integer_value(json_object_get(hb, "pulse_ms")), 50);
	assert_int_equal(json_integer_value(json_object_get(hb, "timeout_ms")), 250);
	assert_true(json_is_true(json_object_get(hb, "peer_alive")));
	nets = json_object_get(hb, "networks");
	assert_int_equal(json_array_size(nets), 2);
	n = json_array_get(nets, 1);
	assert_string_equal(json_string_value(json_object_get(n, "name")), "net1");
	assert_string_equal(json_string_value(json_object_get(n, "ident")), "ident1");
	assert_string_equal(json_string_value(json_object_get(n, "local")), "127.0.1.1:9200");
	assert_string_equal(json_string_value(json_object_get(n, "peer")), "127.0.1.2:9200");
	assert_true(json_is_true(json_object_get(n, "up")));
	assert_true(json_is_integer(json_object_get(n, "last_rx_ms_ago")));
	assert_true(json_integer_value(json_object_get(n, "rx")) > 0);
	assert_true(json_integer_value(json_object_get(n, "tx")) > 0);
	assert_int_equal(json_integer_value(json_object_get(n, "tx_errors")), 0);
	assert_int_equal(json_integer_value(json_object_get(n, "dropped_bad_mac")), 0);
	assert_int_equal(json_integer_value(json_object_get(n, "dropped_replay")), 0);
	assert_int_equal(json_integer_value(json_object_get(n, "dropped_other")), 0);
	json_decref(res);
}

/* Two nodes, two networks, pulse 50 ms, timeout 250 ms. */
static void
two_nodes(void **state)
{
	struct peer_state ps;
	struct counter_at_least ca;
	struct hb_info info = {
		.state = 1, .readiness = 1, .flags = HB_F_HANDOVER, .handover_seq = 42
	};
	uint8_t buf[HB_WIRE_BYTES], wrong_key[TEST_KEY_LEN];
	size_t n_hbs = 2;
	uint64_t t0;
	struct rt *rt = *state;
	int one = 1, two = 2, peer_before;

	if (!private_netns())
		skip();
	rt_init(rt, n_hbs, 50, 250);
	rt_start(rt, 0, 3); /* n1: PRIM */
	rt_start(rt, 1, 4); /* n2: SECOND */

	/* each hears the other, with the right state, on both networks */
	assert_true(wait_for(rt, both_heard, NULL, 3000));
	assert_true(wait_for(rt, all_nets_up, &n_hbs, 3000));
	assert_int_equal(rt->nodes[0].peer.state, 4);
	assert_int_equal(rt->nodes[1].peer.state, 3);
	assert_true(rt->nodes[0].peer.uptodate);
	assert_int_equal(rt->nodes[0].n_lost, 0);
	assert_true(hb_peer_alive(rt->nodes[0].hb));
	assert_true(hb_peer_alive(rt->nodes[1].hb));
	status_shape(rt->nodes[0].hb);

	/* a change reaches the peer quickly */
	t0 = mr_now_ms();
	hb_set_local(rt->nodes[1].hb, &info);
	ps = (struct peer_state){ .node = 0, .state = 1 };
	assert_true(wait_for(rt, sees_state, &ps, 5000));
	assert_true(mr_now_ms() - t0 < 5000);
	assert_int_equal(rt->nodes[0].peer.flags, HB_F_HANDOVER);
	assert_true(rt->nodes[0].peer.handover_seq == 42);
	assert_false(rt->nodes[0].peer.uptodate);

	/* on_peer keeps coming while heard (at least once per second) */
	peer_before = rt->nodes[0].n_peer;
	ps.state = 99; /* never true: just run the loop for 1.2 s */
	(void)wait_for(rt, sees_state, &ps, 1200);
	assert_true(rt->nodes[0].n_peer > peer_before);

	/* forged datagrams from n2's address: wrong key, then the right key
	 * with an old epoch; and one from an address that is not n2's */
	memcpy(wrong_key, test_key, sizeof(wrong_key));
	wrong_key[0] ^= 0x20;
	forge(buf, wrong_key, sizeof(wrong_key), UINT64_MAX, 1);
	send_from("127.0.0.2", buf, sizeof(buf));
	ca = (struct counter_at_least){ "dropped_bad_mac", 1 };
	assert_true(wait_for(rt, n1_counter, &ca, 2000));
	forge(buf, test_key, TEST_KEY_LEN, 1, 1);
	send_from("127.0.0.2", buf, sizeof(buf));
	ca = (struct counter_at_least){ "dropped_replay", 1 };
	assert_true(wait_for(rt, n1_counter, &ca, 2000));
	forge(buf, test_key, TEST_KEY_LEN, UINT64_MAX, 1);
	send_from("127.0.0.3", buf, sizeof(buf));
	ca = (struct counter_at_least){ "dropped_other", 1 };
	assert_true(wait_for(rt, n1_counter, &ca, 2000));
	assert_int_equal(status_counter(rt->nodes[0].hb, "dropped_bad_mac"), 1);
	assert_int_equal(status_counter(rt->nodes[0].hb, "dropped_replay"), 1);
	assert_int_equal(status_counter(rt->nodes[0].hb, "dropped_other"), 1);
	assert_int_equal(rt->nodes[0].peer.state, 1); /* nothing forged got through */
	assert_int_equal(rt->nodes[0].n_lost, 0);

	/* n2 stops: n1 sees both networks go down, then the loss, after about
	 * the timeout */
	hb_stop(rt->nodes[1].hb);
	rt->nodes[1].hb = NULL;
	t0 = mr_now_ms();
	assert_true(wait_for(rt, n1_lost, &one, 3000));
	assert_true(rt->nodes[0].lost_ms - t0 >= 150);
	assert_true(rt->nodes[0].lost_ms - t0 < 10000);
	assert_false(rt->nodes[0].net_up[0]);
	assert_false(rt->nodes[0].net_up[1]);
	assert_true(rt->nodes[0].last_down_ev < rt->nodes[0].lost_ev);
	assert_false(hb_peer_alive(rt->nodes[0].hb));
	assert_int_equal(status_counter(rt->nodes[0].hb, "up"), 0);
	(void)wait_for(rt, n1_lost, &two, 500); /* once per loss */
	assert_int_equal(rt->nodes[0].n_lost, 1);

	/* n2 comes back: a new epoch is accepted, on_peer again */
	peer_before = rt->nodes[0].n_peer;
	rt_start(rt, 1, 4);
	ps.state = 4;
	assert_true(wait_for(rt, sees_state, &ps, 3000));
	assert_true(rt->nodes[0].n_peer > peer_before);
	assert_true(wait_for(rt, all_nets_up, &n_hbs, 3000));
	assert_true(hb_peer_alive(rt->nodes[0].hb));
	assert_int_equal(rt->nodes[0].n_lost, 1);
}

/* With a 1 s pulse, hb_set_local() must not wait for the next pulse. */
static void
set_local_sends_at_once(void **state)
{
	struct hb_info info = { .state = 2 };
	struct peer_state ps = { .node = 1, .state = 2 };
	size_t n_hbs = 1;
	uint64_t t0;
	struct rt *rt = *state;

	if (!private_netns())
		skip();
	/* a 10 s pulse: arriving well within it proves the immediate send, with
	 * room for a loaded machine */
	rt_init(rt, n_hbs, 10000, 30000);
	rt_start(rt, 0, 3);
	rt_start(rt, 1, 4);
	/* node 0's first datagram may precede node 1's socket: up to one pulse */
	assert_true(wait_for(rt, both_heard, NULL, 25000));
	assert_true(wait_for(rt, all_nets_up, &n_hbs, 25000));
	t0 = mr_now_ms();
	hb_set_local(rt->nodes[0].hb, &info);
	assert_true(wait_for(rt, sees_state, &ps, 5000));
	assert_true(mr_now_ms() - t0 < 5000);
}

/* A peer never heard is reported lost once, after the first timeout. */
static void
lost_when_never_heard(void **state)
{
	size_t n_hbs = 1;
	uint64_t t0;
	struct rt *rt = *state;
	int one = 1, two = 2;

	if (!private_netns())
		skip();
	rt_init(rt, n_hbs, 50, 250);
	t0 = mr_now_ms();
	rt_start(rt, 0, 1);
	assert_true(wait_for(rt, n1_lost, &one, 3000));
	assert_true(rt->nodes[0].lost_ms - t0 >= 200);
	(void)wait_for(rt, n1_lost, &two, 400);
	assert_int_equal(rt->nodes[0].n_lost, 1);
	assert_int_equal(rt->nodes[0].n_peer, 0);
	assert_int_equal(rt->nodes[0].n_net_changes, 0);
	assert_false(hb_peer_alive(rt->nodes[0].hb));
	/* sending to a node that is not there is no error for UDP */
	assert_int_equal(status_counter(rt->nodes[0].hb, "tx_errors"), 0);
	assert_true(status_counter(rt->nodes[0].hb, "tx") > 0);
}

/* The address of another network's peer is not the peer of this one, and a
 * port already taken makes hb_start() fail with the address in err. */
static void
bind_error_named(void **state)
{
	struct hb_info info = { 0 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9200) };
	struct hb *h = NULL;
	char err[256] = "";
	struct rt *rt = *state;
	int fd;

	if (!private_netns())
		skip();
	rt_init(rt, 1, 50, 250);
	/* 127.0.0.1:9200 held by a socket without SO_REUSEADDR */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &a.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(hb_start(&rt->loop, &rt->conf, 0, "web", rt->key_path, &info, &test_cbs,
	                          &rt->nodes[0], &h, err, sizeof(err)),
	                 -EADDRINUSE);
	assert_null(h);
	assert_non_null(strstr(err, "bind 127.0.0.1:9200: "));
	(void)close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(every_field),
		cmocka_unit_test(encode_refuses_bad_arguments),
		cmocka_unit_test(corruption_is_refused),
		cmocka_unit_test(wrong_key_is_refused),
		cmocka_unit_test(wrong_size_is_refused),
		cmocka_unit_test(malformed_but_authentic_is_refused),
		cmocka_unit_test(golden_bytes),
		cmocka_unit_test(replay_rules),
		cmocka_unit_test(key_file_size_checked),
		cmocka_unit_test_setup_teardown(two_nodes, rt_alloc, rt_done),
		cmocka_unit_test_setup_teardown(set_local_sends_at_once, rt_alloc, rt_done),
		cmocka_unit_test_setup_teardown(lost_when_never_heard, rt_alloc, rt_done),
		cmocka_unit_test_setup_teardown(bind_error_named, rt_alloc, rt_done),
	};

	/* hb.c's warnings (drops, send errors) help when a runtime test fails */
	log_init("test_hb", LOG_LVL_INFO, true, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
