/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_tls.c - the TLS engine of tls.c with two connections joined in memory,
 * certificates made by scripts/gen-certs.sh: a mutual-authentication
 * handshake, then data both ways delivered in fragments of random sizes
 * (1 byte to 300 KiB) with partial reads, tls_feed_end() keeping whatever the
 * engine did not read (the spill), and records taken over whole with
 * tls_out_detach(). Needs root (tls_ctx_new() wants a key owned by root) and
 * the openssl command; skipped otherwise.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "tls.h"

struct wire {
	uint8_t *buf; /* bytes sent by one side, not yet delivered to the other */
	size_t len;
	size_t off;
};

struct side {
	struct tls_conn t;
	struct wire in; /* what the other side sent */
	uint8_t *got;   /* plaintext received */
	size_t got_len;
	size_t got_cap;
	int done; /* handshake result */
};

struct fixture {
	char dir[64];
	SSL_CTX *ctx[2];
	struct side s[2]; /* [0] server n1, [1] client n2 */
	uint32_t rnd;
};

static uint32_t
rnd_next(struct fixture *f)
{
	f->rnd = f->rnd * 1103515245u + 12345u;
	return f->rnd >> 8;
}

static int
ctx_for(struct fixture *f, const char *name, SSL_CTX **out)
{
	char ca[128], cert[128], key[128], err[512];
	struct node_conf node = { .tls_ca = ca, .tls_cert = cert, .tls_key = key };
	int r;

	(void)snprintf(ca, sizeof(ca), "%s/ca.crt", f->dir);
	(void)snprintf(cert, sizeof(cert), "%s/%s.crt", f->dir, name);
	(void)snprintf(key, sizeof(key), "%s/%s.key", f->dir, name);
	(void)snprintf(node.name, sizeof(node.name), "%s", name);
	r = tls_ctx_new(&node, name, out, err, sizeof(err));
	if (r != 0)
		print_error("tls_ctx_new(%s): %s\n", name, err);
	return r;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char cmd[512];

	if (f == NULL)
		return -1;
	*state = f;
	if (geteuid() != 0)
		return 0; /* the tests skip */
	(void)snprintf(f->dir, sizeof(f->dir), "/tmp/mr-test-tls-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	(void)snprintf(cmd, sizeof(cmd), "'%s/scripts/gen-certs.sh' '%s' n1 n2 >/dev/null 2>&1",
	               MR_SOURCE_DIR, f->dir);
	if (system(cmd) != 0) {
		f->dir[0] = '\0'; /* no openssl: skip */
		return 0;
	}
	if (ctx_for(f, "n1", &f->ctx[0]) != 0 || ctx_for(f, "n2", &f->ctx[1]) != 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	int i;

	for (i = 0; i < 2; i++) {
		SSL_CTX_free(f->ctx[i]);
		tls_conn_done(&f->s[i].t);
		free(f->s[i].in.buf);
		free(f->s[i].got);
	}
	if (f->dir[0] != '\0') {
		(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
		if (system(cmd) != 0)
			print_error("could not remove %s\n", f->dir);
	}
	free(f);
	return 0;
}

/* Start a fresh pair of connections: n2 connects to n1. */
static void
pair_init(struct fixture *f)
{
	assert_int_equal(tls_conn_init(&f->s[0].t, f->ctx[0], true, "n2"), 0);
	assert_int_equal(tls_conn_init(&f->s[1].t, f->ctx[1], false, "n1"), 0);
}

/* Move what side i produced onto the other side's wire, taking the records
 * over whole. */
static void
send_out(struct fixture *f, int i)
{
	struct wire *w = &f->s[1 - i].in;
	size_t n;
	uint8_t *b;

	b = tls_out_detach(&f->s[i].t, &n);
	assert_int_equal(tls_out_pending(&f->s[i].t), 0);
	if (b == NULL) {
		assert_int_equal(n, 0);
		return;
	}
	w->buf = realloc(w->buf, w->len + n);
	assert_non_null(w->buf);
	memcpy(w->buf + w->len, b, n);
	w->len += n;
	free(b);
}

/* Decrypt everything side i can, in reads of random sizes. */
static void
read_all(struct fixture *f, struct side *s)
{
	char err[256];

	for (;;) {
		size_t cap = 1 + rnd_next(f) % 70000;
		long n;

		if (s->got_len + cap > s->got_cap) {
			s->got_cap = (s->got_len + cap) * 2;
			s->got = realloc(s->got, s->got_cap);
			assert_non_null(s->got);
		}
		n = tls_read(&s->t, s->got + s->got_len, cap, err, sizeof(err));
		if (n == 0)
			return;
		if (n < 0)
			fail_msg("tls_read: %ld %s", n, err);
		s->got_len += (size_t)n;
	}
}

/* Deliver side i's wire in one fragment of random size (at most max);
 * sometimes spill it unread and read it with the next fragment. */
static void
deliver(struct fixture *f, int i, size_t max)
{
	struct side *s = &f->s[i];
	size_t left = s->in.len - s->in.off;
	size_t n = left == 0 ? 0 : 1 + rnd_next(f) % (left < max ? left : max);
	bool spill = rnd_next(f) % 4 == 0;
	char err[256];

	tls_feed(&s->t, n > 0 ? s->in.buf + s->in.off : NULL, n);
	s->in.off += n;
	if (!spill) {
		if (s->done != 1) {
			s->done = tls_handshake(&s->t, err, sizeof(err));
			if (s->done < 0)
				fail_msg("handshake on side %d: %s", i, err);
		}
		if (s->done == 1)
			read_all(f, s);
	}
	assert_int_equal(tls_feed_end(&s->t), 0);
	if (s->in.off == s->in.len)
		s->in.off = s->in.len = 0;
}

static void
handshake(struct fixture *f, size_t max)
{
	char err[256];
	int round;

	f->s[1].done = tls_handshake(&f->s[1].t, err, sizeof(err)); /* ClientHello */
	assert_int_equal(f->s[1].done, 0);
	for (round = 0; round < 100000 && (f->s[0].done != 1 || f->s[1].done != 1); round++) {
		send_out(f, 0);
		send_out(f, 1);
		deliver(f, 0, max);
		deliver(f, 1, max);
	}
	assert_int_equal(f->s[0].done, 1);
	assert_int_equal(f->s[1].done, 1);
	assert_string_equal(tls_version(&f->s[0].t), "TLSv1.3");
}

static void
fill(uint8_t *p, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = (uint8_t)(seed >> 24);
	}
}

/* Send len bytes each way in writes of random sizes, delivered in fragments
 * of at most max bytes, and check both sides got exactly them. */
static void
exchange(struct fixture *f, size_t len, size_t max)
{
	uint8_t *data[2];
	size_t sent[2] = { 0, 0 };
	char err[256];
	int i, round;

	for (i = 0; i < 2; i++) {
		data[i] = malloc(len);
		assert_non_null(data[i]);
		fill(data[i], len, 7u + (uint32_t)i);
		f->s[1 - i].got_len = 0;
	}
	for (round = 0; round < 1000000; round++) {
		bool idle = true;

		for (i = 0; i < 2; i++) {
			if (sent[i] < len) {
				size_t n = 1 + rnd_next(f) % 300000;

				n = n < len - sent[i] ? n : len - sent[i];
				if (rnd_next(f) % 2 == 0)
					assert_int_equal(tls_out_reserve(&f->s[i].t, n), 0);
				assert_int_equal(tls_write(&f->s[i].t, data[i] + sent[i], n, err,
				                           sizeof(err)),
				                 0);
				sent[i] += n;
			}
			send_out(f, i);
		}
		for (i = 0; i < 2; i++) {
			if (f->s[i].in.len > f->s[i].in.off)
				idle = false;
			deliver(f, i, max);
		}
		if (idle && sent[0] == len && sent[1] == len) {
			/* what a spill kept still has to be read */
			for (i = 0; i < 2; i++)
				deliver(f, i, max);
			if (f->s[0].got_len == len && f->s[1].got_len == len)
				break;
		}
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(f->s[1 - i].got_len, len);
		assert_memory_equal(f->s[1 - i].got, data[i], len);
		free(data[i]);
	}
}

static bool
usable(struct fixture *f)
{
	return geteuid() == 0 && f->dir[0] != '\0';
}

static void
small_fragments(void **state)
{
	struct fixture *f = *state;

	if (!usable(f))
		skip();
	f->rnd = 1;
	pair_init(f);
	handshake(f, 7);
	exchange(f, 200000, 1000);
}

static void
large_fragments(void **state)
{
	struct fixture *f = *state;

	if (!usable(f))
		skip();
	f->rnd = 2;
	pair_init(f);
	handshake(f, 300000);
	exchange(f, 3u << 20, 300000);
}

/* A frame reserved whole and then written in two parts (the header, then
 * the bulk data from where it lies) lands in the reserved buffer: regrowing
 * it would copy the whole frame again. Also with small frames queued before
 * it, and for every split point around the record boundaries. */
static void
reserve_holds_a_split_frame(void **state)
{
	struct fixture *f = *state;
	static const size_t heads[] = { 1, 135, 16383, 16384, 16385, 40000 };
	static const size_t bulks[] = { 1, 16384, 65536, 1u << 20, (1u << 20) + 7 };
	uint8_t *data;
	char err[256];
	size_t h, b, before, len;

	if (!usable(f))
		skip();
	f->rnd = 4;
	pair_init(f);
	handshake(f, 300000);
	data = malloc((1u << 20) + 40000 + 7);
	assert_non_null(data);
	fill(data, (1u << 20) + 40000 + 7, 9);
	for (h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
		for (b = 0; b < sizeof(bulks) / sizeof(bulks[0]); b++) {
			const uint8_t *kept;

			/* a queued ack first, on every other frame */
			if ((h + b) % 2 == 0)
				assert_int_equal(tls_write(&f->s[0].t, data, 20, err, sizeof(err)),
				                 0);
			before = tls_out_pending(&f->s[0].t);
			len = heads[h] + bulks[b];
			assert_int_equal(tls_out_reserve(&f->s[0].t, len), 0);
			kept = f->s[0].t.out;
			assert_int_equal(tls_write(&f->s[0].t, data, heads[h], err, sizeof(err)),
			                 0);
			assert_int_equal(
			        tls_write(&f->s[0].t, data + heads[h], bulks[b], err, sizeof(err)),
			        0);
			assert_ptr_equal(f->s[0].t.out, kept);
			assert_true(tls_out_pending(&f->s[0].t) > before + len);
			send_out(f, 0);
		}
	}
	free(data);
}

/* The engine never reads bytes that were not fed, and a peer closing the
 * link is reported as such. */
static void
close_notify(void **state)
{
	struct fixture *f = *state;
	char err[256], buf[64];

	if (!usable(f))
		skip();
	f->rnd = 3;
	pair_init(f);
	handshake(f, 4096);
	tls_feed(&f->s[0].t, NULL, 0);
	assert_int_equal(tls_read(&f->s[0].t, buf, sizeof(buf), err, sizeof(err)), 0);
	assert_int_equal(tls_feed_end(&f->s[0].t), 0);
	tls_shutdown(&f->s[1].t);
	send_out(f, 1);
	tls_feed(&f->s[0].t, f->s[0].in.buf + f->s[0].in.off, f->s[0].in.len - f->s[0].in.off);
	assert_int_equal(tls_read(&f->s[0].t, buf, sizeof(buf), err, sizeof(err)), -ESHUTDOWN);
	assert_int_equal(tls_feed_end(&f->s[0].t), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(small_fragments, setup, teardown),
		cmocka_unit_test_setup_teardown(large_fragments, setup, teardown),
		cmocka_unit_test_setup_teardown(close_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(reserve_holds_a_split_frame, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
