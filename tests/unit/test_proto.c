/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_proto.c - unit tests for the replication protocol codec
 * (daemon/proto.c): round trips of every message with boundary values,
 * golden bytes, header and payload decode errors (every truncation point of
 * an OP, in exactly-sized buffers so ASan sees any overread), encoder limits
 * and the proto_path_check() table.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "proto.h"
#include "util.h"

#define STR_MAX (PROTO_MAX_STR - 1u)

static struct proto_str
S(const char *s) {
	return (struct proto_str){ .p = s, .len = (uint16_t)strlen(s) };
}

/* A heap string of n copies of c (not NUL-terminated on purpose: exactly n
 * bytes, so ASan catches any read past the counted length). */
static char *
filled(size_t n, char c)
{
	char *p = malloc(n > 0 ? n : 1);

	assert_non_null(p);
	memset(p, c, n);
	return p;
}

/* Encode msg into an exactly-sized heap buffer; checks proto_encoded_len(). */
static uint8_t *
encode(const struct proto_msg *msg, size_t *len)
{
	size_t need = proto_encoded_len(msg);
	uint8_t *buf;
	long n;

	assert_true(need >= PROTO_HDR_LEN);
	buf = malloc(need);
	assert_non_null(buf);
	n = proto_encode(msg, buf, need);
	assert_int_equal(n, (long)need);
	*len = need;
	return buf;
}

/* Decode a whole frame (header + payload). The payload is copied into an
 * exactly-sized buffer *payload that the caller frees after using *msg. */
static int
decode_frame(const uint8_t *frame, size_t len, struct proto_msg *msg, uint8_t **payload)
{
	char err[128] = "";
	uint32_t plen;
	uint16_t type;
	int r;

	assert_true(len >= PROTO_HDR_LEN);
	r = proto_hdr_decode(frame, &type, &plen, err, sizeof(err));
	assert_int_equal(r, 0);
	assert_int_equal(plen, len - PROTO_HDR_LEN);
	*payload = malloc(plen > 0 ? plen : 1);
	assert_non_null(*payload);
	memcpy(*payload, frame + PROTO_HDR_LEN, plen);
	r = proto_decode(type, *payload, plen, msg, err, sizeof(err));
	if (r == 0)
		assert_string_equal(err, "");
	return r;
}

static void
assert_str_equal(const struct proto_str *a, const struct proto_str *b)
{
	assert_int_equal(a->len, b->len);
	assert_non_null(b->p);
	if (a->len > 0)
		assert_memory_equal(a->p, b->p, a->len);
}

static void
assert_msg_equal(const struct proto_msg *a, const struct proto_msg *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case PROTO_HELLO:
		assert_int_equal(a->u.hello.version, b->u.hello.version);
		assert_int_equal(a->u.hello.role, b->u.hello.role);
		assert_str_equal(&a->u.hello.node, &b->u.hello.node);
		assert_str_equal(&a->u.hello.module, &b->u.hello.module);
		assert_memory_equal(a->u.hello.config_hash, b->u.hello.config_hash, 16);
		assert_memory_equal(a->u.hello.generation, b->u.hello.generation, 16);
		assert_true(a->u.hello.last_seq == b->u.hello.last_seq);
		break;
	case PROTO_REFUSE:
		assert_int_equal(a->u.refuse.code, b->u.refuse.code);
		assert_str_equal(&a->u.refuse.text, &b->u.refuse.text);
		break;
	case PROTO_OP:
		assert_true(a->u.op.seq == b->u.op.seq);
		assert_int_equal(a->u.op.type, b->u.op.type);
		assert_int_equal(a->u.op.flags, b->u.op.flags);
		assert_int_equal(a->u.op.valid, b->u.op.valid);
		assert_true(a->u.op.file_id == b->u.op.file_id);
		assert_int_equal(a->u.op.mode, b->u.op.mode);
		assert_int_equal(a->u.op.uid, b->u.op.uid);
		assert_int_equal(a->u.op.gid, b->u.op.gid);
		assert_true(a->u.op.rdev == b->u.op.rdev);
		assert_true(a->u.op.off == b->u.op.off);
		assert_true(a->u.op.size == b->u.op.size);
		assert_true(a->u.op.atime_sec == b->u.op.atime_sec);
		assert_int_equal(a->u.op.atime_nsec, b->u.op.atime_nsec);
		assert_true(a->u.op.mtime_sec == b->u.op.mtime_sec);
		assert_int_equal(a->u.op.mtime_nsec, b->u.op.mtime_nsec);
		assert_str_equal(&a->u.op.path, &b->u.op.path);
		assert_str_equal(&a->u.op.path2, &b->u.op.path2);
		assert_str_equal(&a->u.op.name, &b->u.op.name);
		assert_int_equal(a->u.op.data_len, b->u.op.data_len);
		assert_non_null(b->u.op.data);
		if (a->u.op.data_len > 0)
			assert_memory_equal(a->u.op.data, b->u.op.data, a->u.op.data_len);
		break;
	case PROTO_ACK:
		assert_true(a->u.ack.seq == b->u.ack.seq);
		assert_true(a->u.ack.durable_seq == b->u.ack.durable_seq);
		break;
	case PROTO_PING:
	case PROTO_PONG:
		assert_true(a->u.ping.token == b->u.ping.token);
		break;
	default:
		fail_msg("unexpected type %d", a->type);
	}
}

/* Encode, decode, compare, and check that decoded pointers lie inside the
 * payload buffer (no allocation on decode). */
static void
round_trip(const struct proto_msg *in)
{
	struct proto_msg out;
	uint8_t *frame, *payload;
	size_t len;

	frame = encode(in, &len);
	assert_int_equal(decode_frame(frame, len, &out, &payload), 0);
	assert_msg_equal(in, &out);
	free(payload);
	free(frame);
}

/* A small but complete OP used by several tests. */
static struct proto_msg
sample_op(void)
{
	return (struct proto_msg){
		.type = PROTO_OP,
		.u.op = {
			.seq = 42, .type = 11, .flags = 0x8001, .valid = 0x3f, .file_id = 7,
			.mode = 0100644, .uid = 1000, .gid = 100, .rdev = 0x0801, .off = 4096,
			.size = 8192, .atime_sec = -5, .atime_nsec = 999999999,
			.mtime_sec = 1700000000, .mtime_nsec = 1,
			.path = S("dir/file.txt"), .path2 = S("other"), .name = S("user.x"),
			.data = "hello", .data_len = 5,
		},
	};
}

/* ---- header ---------------------------------------------------------------- */

static void
hdr_decode_ok(void **state)
{
	const uint8_t h[PROTO_HDR_LEN] = { 0x00, 0x00, 0x00, 0x10, 0x00, 0x04, 0x00, 0x00 };
	uint32_t len = 0;
	uint16_t type = 0;
	char err[64];

	(void)state;
	assert_int_equal(proto_hdr_decode(h, &type, &len, err, sizeof(err)), 0);
	assert_int_equal(type, PROTO_ACK);
	assert_int_equal(len, 16);
}

static void
hdr_flags_nonzero(void **state)
{
	uint8_t h[PROTO_HDR_LEN] = { 0, 0, 0, 8, 0, PROTO_PING, 0, 0 };
	uint32_t len;
	uint16_t type;
	char err[64] = "";
	int bit;

	(void)state;
	for (bit = 0; bit < 16; bit++) {
		h[6] = (uint8_t)((1u << bit) >> 8);
		h[7] = (uint8_t)(1u << bit);
		assert_int_equal(proto_hdr_decode(h, &type, &len, err, sizeof(err)), MR_EPROTO);
		assert_non_null(strstr(err, "flags"));
	}
}

static void
hdr_unknown_type(void **state)
{
	const uint16_t bad[] = { 0, 10, 11, 0x0100, 0xffff };
	uint8_t h[PROTO_HDR_LEN] = { 0, 0, 0, 0, 0, 0, 0, 0 };
	uint32_t len;
	uint16_t type;
	char err[64] = "";
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		h[4] = (uint8_t)(bad[i] >> 8);
		h[5] = (uint8_t)bad[i];
		assert_int_equal(proto_hdr_decode(h, &type, &len, err, sizeof(err)), MR_EPROTO);
		assert_non_null(strstr(err, "unknown"));
		assert_int_equal(
		        proto_decode(bad[i], h, 0, &(struct proto_msg){ 0 }, err, sizeof(err)),
		        MR_EPROTO);
	}
}

static void
put_hdr(uint8_t h[PROTO_HDR_LEN], uint32_t len, uint16_t type)
{
	h[0] = (uint8_t)(len >> 24);
	h[1] = (uint8_t)(len >> 16);
	h[2] = (uint8_t)(len >> 8);
	h[3] = (uint8_t)len;
	h[4] = (uint8_t)(type >> 8);
	h[5] = (uint8_t)type;
	h[6] = h[7] = 0;
}

static void
hdr_len_too_big(void **state)
{
	uint8_t h[PROTO_HDR_LEN];
	uint32_t len;
	uint16_t type;
	char err[96] = "";
	uint16_t t;

	(void)state;
	for (t = PROTO_HELLO; t <= PROTO_PONG; t++) {
		put_hdr(h, PROTO_MAX_PAYLOAD + 1u, t);
		assert_int_equal(proto_hdr_decode(h, &type, &len, err, sizeof(err)), MR_ETOOBIG);
		put_hdr(h, 0xffffffffu, t);
		assert_int_equal(proto_hdr_decode(h, &type, &len, err, sizeof(err)), MR_ETOOBIG);
	}
	/* Per-type limits: fixed-size messages cannot be longer than their size. */
	put_hdr(h, 17, PROTO_ACK);
	assert_int_equal(proto_hdr_decode(h, &type, &len, err, sizeof(err)), MR_ETOOBIG);
	put_hdr(h, 9, PROTO_PING);
	assert_int_equal(proto_hdr_decode(h, &type, &len, err, sizeof(err)), MR_ETOOBIG);
	/* The largest OP is accepted, one more byte is not. */
	put_hdr(h, 120u + 3u * STR_MAX + PROTO_MAX_DATA, PROTO_OP);
	assert_int_equal(proto_hdr_decode(h, &type, &len, err, sizeof(err)), 0);
	assert_int_equal(len, 120u + 3u * STR_MAX + PROTO_MAX_DATA);
	put_hdr(h, 121u + 3u * STR_MAX + PROTO_MAX_DATA, PROTO_OP);
	assert_int_equal(proto_hdr_decode(h, &type, &len, err, sizeof(err)), MR_ETOOBIG);
	assert_true(121u + 3u * STR_MAX + PROTO_MAX_DATA <= PROTO_MAX_PAYLOAD);
}

/* ---- round trips -------------------------------------------------------------- */

static void
hello_round_trip_max(void **state)
{
	char *node = filled(STR_MAX, 'n'), *module = filled(STR_MAX, 'm');
	struct proto_msg m = { .type = PROTO_HELLO };
	uint8_t role;
	int i;

	(void)state;
	m.u.hello.node = (struct proto_str){ node, STR_MAX };
	m.u.hello.module = (struct proto_str){ module, STR_MAX };
	for (i = 0; i < 16; i++) {
		m.u.hello.config_hash[i] = (uint8_t)(0xff - i);
		m.u.hello.generation[i] = (uint8_t)(i * 17);
	}
	m.u.hello.last_seq = UINT64_MAX;
	m.u.hello.version = 0xffff; /* decodable: the peer logic refuses it */
	for (role = PROTO_ROLE_NONE; role <= PROTO_ROLE_SECONDARY; role++) {
		m.u.hello.role = role;
		round_trip(&m);
	}
	free(node);
	free(module);
}

static void
hello_round_trip_empty(void **state)
{
	struct proto_msg m = { .type = PROTO_HELLO };

	(void)state;
	m.u.hello.version = PROTO_VERSION;
	assert_int_equal(proto_encoded_len(&m), PROTO_HDR_LEN + 2 + 1 + 2 + 2 + 16 + 16 + 8);
	round_trip(&m); /* NULL pointers with len 0 are fine; decoded ones are "" */
}

static void
refuse_round_trip(void **state)
{
	char *text = filled(STR_MAX, 't');
	struct proto_msg m = { .type = PROTO_REFUSE };

	(void)state;
	m.u.refuse.code = PROTO_REFUSE_CONFIG;
	m.u.refuse.text = S("config hash 00 != 11: run mirrorctl config show");
	round_trip(&m);
	m.u.refuse.text = (struct proto_str){ text, STR_MAX };
	m.u.refuse.code = 0xffff; /* unknown codes decode: the text explains */
	round_trip(&m);
	m.u.refuse.text = (struct proto_str){ NULL, 0 };
	m.u.refuse.code = 0;
	round_trip(&m);
	free(text);
}

static void
op_round_trip_max(void **state)
{
	char *p1 = filled(STR_MAX, 'a'), *p2 = filled(STR_MAX, 'b'), *nm = filled(STR_MAX, 'c');
	uint8_t *data = malloc(PROTO_MAX_DATA);
	struct proto_msg m = { .type = PROTO_OP };
	size_t i;

	(void)state;
	assert_non_null(data);
	for (i = 0; i < PROTO_MAX_DATA; i++)
		data[i] = (uint8_t)(i * 31 + 7);
	m.u.op = (struct proto_op){
		.seq = UINT64_MAX,
		.type = PROTO_OP_MAX,
		.flags = UINT32_MAX,
		.valid = UINT32_MAX,
		.file_id = UINT64_MAX,
		.mode = UINT32_MAX,
		.uid = UINT32_MAX,
		.gid = UINT32_MAX,
		.rdev = UINT64_MAX,
		.off = UINT64_MAX,
		.size = UINT64_MAX,
		.atime_sec = INT64_MIN,
		.atime_nsec = 999999999,
		.mtime_sec = INT64_MAX,
		.mtime_nsec = 999999999,
		.path = { p1, STR_MAX },
		.path2 = { p2, STR_MAX },
		.name = { nm, STR_MAX },
		.data = data,
		.data_len = PROTO_MAX_DATA,
	};
	assert_int_equal(proto_encoded_len(&m), PROTO_HDR_LEN + 120 + 3 * STR_MAX + PROTO_MAX_DATA);
	round_trip(&m);
	free(data);
	free(p1);
	free(p2);
	free(nm);
}

static void
op_round_trip_zero_and_negative(void **state)
{
	struct proto_msg m = { .type = PROTO_OP };

	(void)state;
	m.u.op.type = PROTO_OP_MIN;
	round_trip(&m); /* all zero, empty strings, no data */
	m.u.op.atime_sec = -1;
	m.u.op.mtime_sec = -1234567890123LL;
	m.u.op.atime_nsec = 0;
	m.u.op.mtime_nsec = 500000000;
	round_trip(&m);
}

static void
op_round_trip_every_type(void **state)
{
	struct proto_msg m = sample_op();
	unsigned t;

	(void)state;
	for (t = PROTO_OP_MIN; t <= PROTO_OP_MAX; t++) {
		m.u.op.type = (uint8_t)t;
		m.u.op.seq = t;
		round_trip(&m);
	}
}

static void
ack_ping_pong_round_trip(void **state)
{
	const uint64_t vals[] = { 0, 1, 0x0102030405060708ull, UINT64_MAX };
	struct proto_msg m;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		m = (struct proto_msg){ .type = PROTO_ACK,
			                .u.ack = { .seq = vals[i], .durable_seq = ~vals[i] } };
		assert_int_equal(proto_encoded_len(&m), PROTO_HDR_LEN + 16);
		round_trip(&m);
		m = (struct proto_msg){ .type = PROTO_PING, .u.ping.token = vals[i] };
		assert_int_equal(proto_encoded_len(&m), PROTO_HDR_LEN + 8);
		round_trip(&m);
		m.type = PROTO_PONG;
		round_trip(&m);
	}
}

/* ---- golden bytes (computed by hand from docs/PROTOCOL.md) --------------------- */

static const uint8_t golden_hello[] = {
	0x00, 0x00, 0x00, 0x34,                         /* len 52 */
	0x00, 0x01,                                     /* HELLO */
	0x00, 0x00,                                     /* flags */
	0x00, 0x01,                                     /* version 1 */
	0x01,                                           /* role primary */
	0x00, 0x02, 'n',  '1',                          /* node */
	0x00, 0x03, 'w',  'e',  'b',                    /* module */
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, /* config_hash */
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, /* generation */
	0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* last_seq */
};

static void
golden_hello_bytes(void **state)
{
	struct proto_msg m = { .type = PROTO_HELLO }, out;
	uint8_t *frame, *payload;
	size_t len;
	int i;

	(void)state;
	m.u.hello.version = 1;
	m.u.hello.role = PROTO_ROLE_PRIMARY;
	m.u.hello.node = S("n1");
	m.u.hello.module = S("web");
	for (i = 0; i < 16; i++) {
		m.u.hello.config_hash[i] = (uint8_t)i;
		m.u.hello.generation[i] = (uint8_t)(0xa0 + i);
	}
	m.u.hello.last_seq = 0x0102030405060708ull;
	frame = encode(&m, &len);
	assert_int_equal(len, sizeof(golden_hello));
	assert_memory_equal(frame, golden_hello, sizeof(golden_hello));
	assert_int_equal(decode_frame(golden_hello, sizeof(golden_hello), &out, &payload), 0);
	assert_msg_equal(&m, &out);
	free(payload);
	free(frame);
}

static const uint8_t golden_op[] = {
	0x00, 0x00, 0x00, 0x7d,                         /* len 125 */
	0x00, 0x03,                                     /* OP */
	0x00, 0x00,                                     /* flags */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, /* seq 42 */
	0x0a,                                           /* type 10 = SHIM_OP_SETATTR */
	0x02,                                           /* dir 2 */
	0x00, 0x00, 0x00, 0x00,                         /* flags */
	0x00, 0x00, 0x00, 0x30,                         /* valid ATIME|MTIME */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, /* file_id 7 */
	0x00, 0x00, 0x81, 0xa4,                         /* mode 0100644 */
	0x00, 0x00, 0x03, 0xe8,                         /* uid 1000 */
	0x00, 0x00, 0x03, 0xe9,                         /* gid 1001 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* rdev */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* off */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, /* size 4096 */
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* atime_sec -1 */
	0x3b, 0x9a, 0xc9, 0xff,                         /* atime_nsec 999999999 */
	0x00, 0x00, 0x00, 0x00, 0x5f, 0x5e, 0x10, 0x00, /* mtime_sec 1600000000 */
	0x00, 0x00, 0x00, 0x01,                         /* mtime_nsec 1 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* pmtime_sec */
	0x00, 0x00, 0x00, 0x00,                         /* pmtime_nsec */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* pmtime2_sec */
	0x00, 0x00, 0x00, 0x00,                         /* pmtime2_nsec */
	0x00, 0x03, 'a',  '/',  'b',                    /* path */
	0x00, 0x00,                                     /* path2 "" */
	0x00, 0x00,                                     /* name "" */
	0x00, 0x00, 0x00, 0x02, 'x',  'y',              /* data */
};

static void
golden_op_bytes(void **state)
{
	struct proto_msg m = { .type = PROTO_OP }, out;
	uint8_t *frame, *payload;
	size_t len;

	(void)state;
	m.u.op = (struct proto_op){
		.seq = 42,
		.type = 10,
		.dir = 2,
		.valid = 0x30,
		.file_id = 7,
		.mode = 0100644,
		.uid = 1000,
		.gid = 1001,
		.size = 4096,
		.atime_sec = -1,
		.atime_nsec = 999999999,
		.mtime_sec = 1600000000,
		.mtime_nsec = 1,
		.path = S("a/b"),
		.data = "xy",
		.data_len = 2,
	};
	frame = encode(&m, &len);
	assert_int_equal(len, sizeof(golden_op));
	assert_memory_equal(frame, golden_op, sizeof(golden_op));
	assert_int_equal(decode_frame(golden_op, sizeof(golden_op), &out, &payload), 0);
	assert_msg_equal(&m, &out);
	assert_true(out.u.op.atime_sec == -1);
	free(payload);
	free(frame);
}

/* ---- payload decode errors ------------------------------------------------------ */

/* Decode payload bytes (copied into an exactly-sized buffer); returns the
 * result and the reason in err. */
static int
decode_raw(uint16_t type, const uint8_t *bytes, size_t len, char *err, size_t err_len)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	struct proto_msg m;
	int r;

	assert_non_null(copy);
	memcpy(copy, bytes, len);
	r = proto_decode(type, len > 0 ? copy : NULL, (uint32_t)len, &m, err, err_len);
	free(copy);
	return r;
}

static void
truncations_fail(const struct proto_msg *m)
{
	uint8_t *frame;
	size_t len, n;
	char err[128];

	frame = encode(m, &len);
	for (n = 0; n < len - PROTO_HDR_LEN; n++) {
		err[0] = '\0';
		assert_int_equal(
		        decode_raw((uint16_t)m->type, frame + PROTO_HDR_LEN, n, err, sizeof(err)),
		        MR_EPROTO);
		assert_non_null(strstr(err, "truncated"));
	}
	assert_int_equal(decode_raw((uint16_t)m->type, frame + PROTO_HDR_LEN, n, err, sizeof(err)),
	                 0);
	free(frame);
}

static void
op_every_truncation(void **state)
{
	struct proto_msg m = sample_op();

	(void)state;
	truncations_fail(&m);
}

static void
other_types_every_truncation(void **state)
{
	struct proto_msg m = { .type = PROTO_HELLO };

	(void)state;
	m.u.hello.node = S("node-a");
	m.u.hello.module = S("mod");
	truncations_fail(&m);
	m = (struct proto_msg){ .type = PROTO_REFUSE, .u.refuse = { 3, S("text") } };
	truncations_fail(&m);
	m = (struct proto_msg){ .type = PROTO_ACK, .u.ack = { 5, 4 } };
	truncations_fail(&m);
	m = (struct proto_msg){ .type = PROTO_PING, .u.ping.token = 9 };
	truncations_fail(&m);
	m.type = PROTO_PONG;
	truncations_fail(&m);
}

/* Offsets inside the sample OP's payload (see docs/PROTOCOL.md). */
#define OP_OFF_TYPE       8
#define OP_OFF_ATIME_NSEC 70
#define OP_OFF_MTIME_NSEC 82
#define OP_OFF_PATH       110

static uint8_t *
sample_op_payload(size_t *len)
{
	struct proto_msg m = sample_op();
	uint8_t *frame = encode(&m, len);

	*len -= PROTO_HDR_LEN;
	memmove(frame, frame + PROTO_HDR_LEN, *len);
	return frame;
}

static void
nul_inside_string(void **state)
{
	uint8_t hello[10 + 40] = { 0, 1, 1, 0, 3, 'a', 0, 'b', 0, 0 /* module "" */ };
	uint8_t refuse[] = { 0, 1, 0, 2, 'x', 0 };
	uint8_t *op;
	size_t len;
	char err[128] = "";

	(void)state;
	assert_int_equal(decode_raw(PROTO_HELLO, hello, sizeof(hello), err, sizeof(err)),
	                 MR_EPROTO);
	assert_non_null(strstr(err, "NUL"));
	assert_int_equal(decode_raw(PROTO_REFUSE, refuse, sizeof(refuse), err, sizeof(err)),
	                 MR_EPROTO);
	op = sample_op_payload(&len);
	op[OP_OFF_PATH + 2 + 3] = '\0'; /* "dir\0file.txt" */
	assert_int_equal(decode_raw(PROTO_OP, op, len, err, sizeof(err)), MR_EPROTO);
	assert_non_null(strstr(err, "path"));
	free(op);
}

static void
bad_nsec(void **state)
{
	const uint32_t bad[] = { 1000000000u, 1000000001u, 0x3fffffffu /* UTIME_NOW */,
		                 0xffffffffu };
	size_t len, i, k;
	const size_t offs[] = { OP_OFF_ATIME_NSEC, OP_OFF_MTIME_NSEC };
	char err[128] = "";

	(void)state;
	for (k = 0; k < 2; k++) {
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			uint8_t *op = sample_op_payload(&len);

			op[offs[k]] = (uint8_t)(bad[i] >> 24);
			op[offs[k] + 1] = (uint8_t)(bad[i] >> 16);
			op[offs[k] + 2] = (uint8_t)(bad[i] >> 8);
			op[offs[k] + 3] = (uint8_t)bad[i];
			assert_int_equal(decode_raw(PROTO_OP, op, len, err, sizeof(err)),
			                 MR_EPROTO);
			assert_non_null(strstr(err, "nanoseconds"));
			free(op);
		}
	}
}

static void
unknown_op_type(void **state)
{
	const uint8_t bad[] = { 0, PROTO_OP_MAX + 1, 0x80, 0xff };
	size_t len, i;
	char err[128] = "";

	(void)state;
	for (i = 0; i < sizeof(bad); i++) {
		uint8_t *op = sample_op_payload(&len);

		op[OP_OFF_TYPE] = bad[i];
		assert_int_equal(decode_raw(PROTO_OP, op, len, err, sizeof(err)), MR_EPROTO);
		assert_non_null(strstr(err, "unknown op type"));
		free(op);
	}
}

static void
bad_role(void **state)
{
	uint8_t hello[2 + 1 + 2 + 2 + 16 + 16 + 8] = { 0, 1, 3 };
	char err[128] = "";

	(void)state;
	assert_int_equal(decode_raw(PROTO_HELLO, hello, sizeof(hello), err, sizeof(err)),
	                 MR_EPROTO);
	assert_non_null(strstr(err, "role"));
	hello[2] = 2;
	assert_int_equal(decode_raw(PROTO_HELLO, hello, sizeof(hello), err, sizeof(err)), 0);
}

static void
trailing_byte(void **state)
{
	struct proto_msg msgs[] = {
		{ .type = PROTO_HELLO, .u.hello = { .node = S("a"), .module = S("b") } },
		{ .type = PROTO_REFUSE, .u.refuse = { 1, S("no") } },
		sample_op(),
		{ .type = PROTO_ACK, .u.ack = { 1, 1 } },
		{ .type = PROTO_PING, .u.ping.token = 1 },
		{ .type = PROTO_PONG, .u.ping.token = 1 },
	};
	size_t i, len;
	char err[128] = "";

	(void)state;
	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		uint8_t *frame = encode(&msgs[i], &len), *p;

		p = malloc(len - PROTO_HDR_LEN + 1);
		assert_non_null(p);
		memcpy(p, frame + PROTO_HDR_LEN, len - PROTO_HDR_LEN);
		p[len - PROTO_HDR_LEN] = 0;
		assert_int_equal(decode_raw((uint16_t)msgs[i].type, p, len - PROTO_HDR_LEN + 1, err,
		                            sizeof(err)),
		                 MR_EPROTO);
		assert_non_null(strstr(err, "trailing"));
		free(p);
		free(frame);
	}
}

static void
wire_lengths_over_limits(void **state)
{
	uint8_t refuse[4 + PROTO_MAX_STR];
	uint8_t *op;
	size_t len;
	char err[128] = "";

	(void)state;
	/* A string length of PROTO_MAX_STR is refused even if the bytes are there. */
	memset(refuse, 'x', sizeof(refuse));
	refuse[0] = 0;
	refuse[1] = 1;
	refuse[2] = (uint8_t)(PROTO_MAX_STR >> 8);
	refuse[3] = (uint8_t)PROTO_MAX_STR;
	assert_int_equal(decode_raw(PROTO_REFUSE, refuse, sizeof(refuse), err, sizeof(err)),
	                 MR_EPROTO);
	assert_non_null(strstr(err, "too long"));
	/* A length longer than what is left. */
	refuse[2] = 0;
	refuse[3] = 200;
	assert_int_equal(decode_raw(PROTO_REFUSE, refuse, 4 + 199, err, sizeof(err)), MR_EPROTO);
	/* data_len over PROTO_MAX_DATA. */
	op = sample_op_payload(&len);
	op[len - 5 - 4] = (uint8_t)((PROTO_MAX_DATA + 1) >> 24);
	op[len - 5 - 3] = (uint8_t)((PROTO_MAX_DATA + 1) >> 16);
	op[len - 5 - 2] = (uint8_t)((PROTO_MAX_DATA + 1) >> 8);
	op[len - 5 - 1] = (uint8_t)(PROTO_MAX_DATA + 1);
	assert_int_equal(decode_raw(PROTO_OP, op, len, err, sizeof(err)), MR_EPROTO);
	assert_non_null(strstr(err, "data"));
	/* data_len pointing far past the end. */
	op[len - 5 - 4] = 0;
	op[len - 5 - 3] = 0;
	op[len - 5 - 2] = 0;
	op[len - 5 - 1] = 6;
	assert_int_equal(decode_raw(PROTO_OP, op, len, err, sizeof(err)), MR_EPROTO);
	free(op);
}

static void
decode_error_resets_msg(void **state)
{
	struct proto_msg m;
	uint8_t *op;
	size_t len;

	(void)state;
	op = sample_op_payload(&len);
	memset(&m, 0x5a, sizeof(m));
	assert_int_equal(proto_decode(PROTO_OP, op, (uint32_t)(len - 1), &m, NULL, 0), MR_EPROTO);
	assert_int_equal(m.type, PROTO_OP);
	assert_null(m.u.op.path.p);
	assert_int_equal(m.u.op.seq, 0);
	free(op);
}

static void
hello_version_peek(void **state)
{
	const uint8_t v2[] = { 0x00, 0x02, 0xff };
	uint16_t v = 0;

	(void)state;
	assert_int_equal(proto_hello_version(v2, sizeof(v2), &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(proto_hello_version(v2, 1, &v), MR_EPROTO);
	assert_int_equal(proto_hello_version(golden_hello + PROTO_HDR_LEN, 52, &v), 0);
	assert_int_equal(v, 1);
}

/* ---- encoder ---------------------------------------------------------------------- */

static void
encode_enospc_every_cap(void **state)
{
	struct proto_msg msgs[] = {
		sample_op(),
		{ .type = PROTO_HELLO, .u.hello = { .node = S("n2"), .module = S("m") } },
		{ .type = PROTO_REFUSE, .u.refuse = { 2, S("module differs") } },
		{ .type = PROTO_ACK, .u.ack = { 3, 2 } },
		{ .type = PROTO_PONG, .u.ping.token = 77 },
	};
	size_t i, cap, need;

	(void)state;
	for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		need = proto_encoded_len(&msgs[i]);
		for (cap = 0; cap < need; cap++) {
			uint8_t *buf = malloc(cap > 0 ? cap : 1);

			assert_non_null(buf);
			assert_int_equal(proto_encode(&msgs[i], buf, cap), -ENOSPC);
			free(buf);
		}
	}
}

static void
encode_rejects_unrepresentable(void **state)
{
	char *big = filled(PROTO_MAX_STR, 'x');
	uint8_t buf[512];
	struct proto_msg m;

	(void)state;
	m = sample_op();
	m.u.op.path = (struct proto_str){ big, PROTO_MAX_STR };
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_ETOOBIG);
	assert_int_equal(proto_encoded_len(&m), 0);
	m = sample_op();
	m.u.op.name = (struct proto_str){ "a\0b", 3 };
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_EPROTO);
	m = sample_op();
	m.u.op.path2 = (struct proto_str){ NULL, 2 };
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_EPROTO);
	m = sample_op();
	m.u.op.type = 0;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_EPROTO);
	m.u.op.type = PROTO_OP_MAX + 1;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_EPROTO);
	m = sample_op();
	m.u.op.mtime_nsec = 1000000000u;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_EPROTO);
	m = sample_op();
	m.u.op.data_len = PROTO_MAX_DATA + 1;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_ETOOBIG);
	m = sample_op();
	m.u.op.data = NULL;
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_EPROTO);
	m = (struct proto_msg){ .type = PROTO_HELLO, .u.hello.role = 3 };
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_EPROTO);
	m = (struct proto_msg){ .type = PROTO_HELLO };
	m.u.hello.module = (struct proto_str){ big, PROTO_MAX_STR };
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_ETOOBIG);
	m = (struct proto_msg){ .type = (enum proto_type)10 };
	assert_int_equal(proto_encode(&m, buf, sizeof(buf)), MR_EPROTO);
	assert_int_equal(proto_encoded_len(&m), 0);
	free(big);
}

static void
type_names(void **state)
{
	(void)state;
	assert_string_equal(proto_type_name(PROTO_HELLO), "hello");
	assert_string_equal(proto_type_name(PROTO_REFUSE), "refuse");
	assert_string_equal(proto_type_name(PROTO_OP), "op");
	assert_string_equal(proto_type_name(PROTO_ACK), "ack");
	assert_string_equal(proto_type_name(PROTO_PING), "ping");
	assert_string_equal(proto_type_name(PROTO_PONG), "pong");
	assert_string_equal(proto_type_name(0), "unknown");
	assert_string_equal(proto_type_name(0xffff), "unknown");
}

/* ---- proto_path_check --------------------------------------------------------------- */

static void
path_check_table(void **state)
{
	static const struct {
		const char *p;
		size_t len; /* 0: strlen(p) */
		bool allow_empty;
		int want;
	} t[] = {
		{ "a", 0, false, 0 },
		{ "a/b", 0, false, 0 },
		{ "a/b/c.txt", 0, false, 0 },
		{ "...", 0, false, 0 },
		{ "a..b", 0, false, 0 },
		{ ".hidden", 0, false, 0 },
		{ "..hidden", 0, false, 0 },
		{ "a/.b/..c/...", 0, false, 0 },
		{ "with space/\xc3\xa9t\xc3\xa9", 0, false, 0 },
		{ "a\\..\\b", 0, false, 0 }, /* backslash is an ordinary byte */
		{ "", 0, false, MR_EPROTO },
		{ "", 0, true, 0 },
		{ "/abs", 0, false, MR_EPROTO },
		{ "/", 0, true, MR_EPROTO },
		{ "..", 0, false, MR_EPROTO },
		{ ".", 0, false, MR_EPROTO },
		{ "../a", 0, false, MR_EPROTO },
		{ "a/..", 0, false, MR_EPROTO },
		{ "a/../b", 0, false, MR_EPROTO },
		{ "a/./b", 0, false, MR_EPROTO },
		{ "./a", 0, false, MR_EPROTO },
		{ "a/.", 0, false, MR_EPROTO },
		{ "a//b", 0, false, MR_EPROTO },
		{ "a/", 0, false, MR_EPROTO },
		{ "a\0b", 3, false, MR_EPROTO },
		{ "a\0", 2, false, MR_EPROTO },
		{ "\0", 1, true, MR_EPROTO },
	};
	char err[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct proto_str s = { t[i].p, (uint16_t)(t[i].len ? t[i].len : strlen(t[i].p)) };
		int r;

		err[0] = '\0';
		r = proto_path_check(&s, t[i].allow_empty, err, sizeof(err));
		if (r != t[i].want)
			fail_msg("path #%zu \"%s\": got %d want %d (%s)", i, t[i].p, r, t[i].want,
			         err);
		if (r != 0)
			assert_true(strlen(err) > 0);
	}
}

static void
path_check_lengths(void **state)
{
	char *p = filled(PROTO_MAX_STR, 'a');
	struct proto_str s;
	size_t i;

	(void)state;
	/* 4095 bytes made of 2047 "a/" components plus "a": accepted. */
	for (i = 1; i < STR_MAX; i += 2)
		p[i] = '/';
	s = (struct proto_str){ p, STR_MAX };
	assert_int_equal(proto_path_check(&s, false, NULL, 0), 0);
	s.len = PROTO_MAX_STR; /* 4096 bytes: refused */
	assert_int_equal(proto_path_check(&s, false, NULL, 0), MR_EPROTO);
	memset(p, 'b', PROTO_MAX_STR);
	s.len = STR_MAX;
	assert_int_equal(proto_path_check(&s, false, NULL, 0), 0);
	s.len = PROTO_MAX_STR;
	assert_int_equal(proto_path_check(&s, true, NULL, 0), MR_EPROTO);
	s = (struct proto_str){ NULL, 0 };
	assert_int_equal(proto_path_check(&s, true, NULL, 0), 0);
	assert_int_equal(proto_path_check(&s, false, NULL, 0), MR_EPROTO);
	free(p);
}

/* Small error buffers truncate the reason but never overflow. */
static void
small_err_buffers(void **state)
{
	struct proto_str s = S("a/../b");
	char err[4] = "zzz";
	uint8_t *op;
	size_t len;

	(void)state;
	assert_int_equal(proto_path_check(&s, false, err, 1), MR_EPROTO);
	assert_int_equal(err[0], '\0');
	assert_int_equal(err[1], 'z');
	assert_int_equal(proto_path_check(&s, false, err, sizeof(err)), MR_EPROTO);
	assert_int_equal(strlen(err), 3);
	op = sample_op_payload(&len);
	assert_int_equal(proto_decode(PROTO_OP, op, (uint32_t)(len - 3), &(struct proto_msg){ 0 },
	                              err, sizeof(err)),
	                 MR_EPROTO);
	free(op);
}

/* RS_LIST: entries round-trip; a bad kind, a NUL, a count or a length that
 * does not match the payload, or unknown flags are refused. */
static void
rs_list_round_trip(void **state)
{
	uint8_t ent[64], buf[128];
	uint32_t len = 0, off = 0;
	struct proto_msg m = { .type = PROTO_RS_LIST }, out;
	struct proto_str path;
	uint8_t kind, dir;
	char err[128];
	long n;

	(void)state;
	assert_true(proto_rs_list_put(ent, sizeof(ent), &len, PROTO_LIST_FILE, 0, "a/b.db"));
	assert_true(proto_rs_list_put(ent, sizeof(ent), &len, PROTO_LIST_DIR, 2, ""));
	assert_false(proto_rs_list_put(ent, 20, &len, PROTO_LIST_FILE, 0, "too long for 20"));
	m.u.rs_list = (struct proto_rs_list){ .flags = PROTO_LIST_END, .n = 2, .entries = ent,
		                              .len = len };
	n = proto_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, PROTO_HDR_LEN + 8 + len);
	assert_int_equal(proto_decode(PROTO_RS_LIST, buf + PROTO_HDR_LEN, 8 + len, &out, err,
	                              sizeof(err)),
	                 0);
	assert_int_equal(out.u.rs_list.flags, PROTO_LIST_END);
	assert_true(proto_rs_list_next(&out.u.rs_list, &off, &kind, &dir, &path));
	assert_int_equal(kind, PROTO_LIST_FILE);
	assert_int_equal(dir, 0);
	assert_int_equal(path.len, 6);
	assert_memory_equal(path.p, "a/b.db", 6);
	assert_true(proto_rs_list_next(&out.u.rs_list, &off, &kind, &dir, &path));
	assert_int_equal(kind, PROTO_LIST_DIR);
	assert_int_equal(dir, 2);
	assert_int_equal(path.len, 0);
	assert_false(proto_rs_list_next(&out.u.rs_list, &off, &kind, &dir, &path));
	/* the count must match */
	mr_put_be32(buf + PROTO_HDR_LEN + 4, 3);
	assert_int_equal(proto_decode(PROTO_RS_LIST, buf + PROTO_HDR_LEN, 8 + len, &out, err,
	                              sizeof(err)),
	                 MR_EPROTO);
	mr_put_be32(buf + PROTO_HDR_LEN + 4, 2);
	/* a torn entry */
	assert_int_equal(proto_decode(PROTO_RS_LIST, buf + PROTO_HDR_LEN, 8 + len - 1, &out, err,
	                              sizeof(err)),
	                 MR_EPROTO);
	/* an unknown kind */
	buf[PROTO_HDR_LEN + 8] = 7;
	assert_int_equal(proto_decode(PROTO_RS_LIST, buf + PROTO_HDR_LEN, 8 + len, &out, err,
	                              sizeof(err)),
	                 MR_EPROTO);
	buf[PROTO_HDR_LEN + 8] = PROTO_LIST_FILE;
	/* a NUL inside a path */
	buf[PROTO_HDR_LEN + 8 + 4 + 1] = '\0';
	assert_int_equal(proto_decode(PROTO_RS_LIST, buf + PROTO_HDR_LEN, 8 + len, &out, err,
	                              sizeof(err)),
	                 MR_EPROTO);
	buf[PROTO_HDR_LEN + 8 + 4 + 1] = '/';
	/* unknown flags */
	mr_put_be32(buf + PROTO_HDR_LEN, 8);
	assert_int_equal(proto_decode(PROTO_RS_LIST, buf + PROTO_HDR_LEN, 8 + len, &out, err,
	                              sizeof(err)),
	                 MR_EPROTO);
}

static void
resync_records_round_trip(void **state)
{
	uint8_t buf[256];
	struct proto_msg m = { .type = PROTO_RS_RESULT, .u.rs_result = { 77, 3 } }, out;
	char err[128];
	long n;

	(void)state;
	n = proto_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, PROTO_HDR_LEN + 16);
	assert_int_equal(proto_decode(PROTO_RS_RESULT, buf + PROTO_HDR_LEN, 16, &out, err,
	                              sizeof(err)),
	                 0);
	assert_int_equal(out.u.rs_result.end_seq, 77);
	assert_int_equal(out.u.rs_result.failures, 3);
	/* every resync record type travels in an OP frame; 31 and 41 do not exist */
	for (unsigned t = PROTO_RS_MIN; t <= PROTO_RS_MAX; t++)
		assert_true(PROTO_OP_TYPE_OK(t));
	assert_false(PROTO_OP_TYPE_OK(PROTO_RS_MIN - 1));
	assert_false(PROTO_OP_TYPE_OK(PROTO_RS_MAX + 1));
	m = (struct proto_msg){ .type = PROTO_OP };
	m.u.op.type = PROTO_RS_DIR;
	m.u.op.seq = 9;
	m.u.op.path = (struct proto_str){ "a/b", 3 };
	m.u.op.data = "x\0yy\0";
	m.u.op.data_len = 5;
	n = proto_encode(&m, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(proto_decode(PROTO_OP, buf + PROTO_HDR_LEN, (uint32_t)n - PROTO_HDR_LEN,
	                              &out, err, sizeof(err)),
	                 0);
	assert_int_equal(out.u.op.type, PROTO_RS_DIR);
	assert_int_equal(out.u.op.data_len, 5);
}

/* ---- split encoding (bulk data sent from where it lies) ---------------------- */

/* Head + tail from proto_encode_split() are byte for byte proto_encode()'s
 * frame; proto_op_data_off() finds the data from any prefix long enough. */
static void
split_encode_matches_whole(void **state)
{
	static uint8_t data[70000];
	struct proto_msg m = sample_op();
	size_t len, tail_len, i, doff;
	const uint8_t *tail;
	uint8_t *whole, *head;
	long n, h;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	m.u.op.data = (const char *)data;
	m.u.op.data_len = sizeof(data);
	len = proto_encoded_len(&m);
	whole = malloc(len);
	head = malloc(len);
	assert_non_null(whole);
	assert_non_null(head);
	n = proto_encode(&m, whole, len);
	assert_int_equal(n, (long)len);

	h = proto_encode_split(&m, head, len, 65536, &tail, &tail_len);
	assert_true(h > 0);
	assert_ptr_equal(tail, data);
	assert_int_equal(tail_len, sizeof(data));
	assert_int_equal((size_t)h + tail_len, len);
	assert_memory_equal(head, whole, (size_t)h);
	assert_memory_equal(whole + h, data, sizeof(data));
	/* the head fits a buffer that could not hold the data */
	assert_int_equal(proto_encode_split(&m, head, (size_t)h, 65536, &tail, &tail_len), h);
	assert_int_equal(proto_encode_split(&m, head, (size_t)h - 1, 65536, &tail, &tail_len),
	                 -ENOSPC);

	/* below min_tail, or not an op: encoded whole */
	assert_int_equal(proto_encode_split(&m, head, len, sizeof(data) + 1, &tail, &tail_len),
	                 (long)len);
	assert_int_equal(tail_len, 0);
	assert_null(tail);
	assert_memory_equal(head, whole, len);

	doff = (size_t)h - PROTO_HDR_LEN;
	for (i = 0; i < doff - 4; i++)
		assert_int_equal(proto_op_data_off(whole + PROTO_HDR_LEN, i), 0);
	for (i = doff - 4; i <= len - PROTO_HDR_LEN; i += 997)
		assert_int_equal(proto_op_data_off(whole + PROTO_HDR_LEN, i), doff);
	free(whole);
	free(head);
}

static void
split_encode_non_op(void **state)
{
	struct proto_msg m = { .type = PROTO_PING, .u.ping.token = 9 };
	uint8_t buf[64], whole[64];
	const uint8_t *tail = (const uint8_t *)"x";
	size_t tail_len = 1;
	long n;

	(void)state;
	n = proto_encode_split(&m, buf, sizeof(buf), 0, &tail, &tail_len);
	assert_int_equal(n, proto_encode(&m, whole, sizeof(whole)));
	assert_memory_equal(buf, whole, (size_t)n);
	assert_null(tail);
	assert_int_equal(tail_len, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(resync_records_round_trip),
		cmocka_unit_test(hdr_decode_ok),
		cmocka_unit_test(hdr_flags_nonzero),
		cmocka_unit_test(hdr_unknown_type),
		cmocka_unit_test(hdr_len_too_big),
		cmocka_unit_test(hello_round_trip_max),
		cmocka_unit_test(hello_round_trip_empty),
		cmocka_unit_test(refuse_round_trip),
		cmocka_unit_test(op_round_trip_max),
		cmocka_unit_test(op_round_trip_zero_and_negative),
		cmocka_unit_test(op_round_trip_every_type),
		cmocka_unit_test(ack_ping_pong_round_trip),
		cmocka_unit_test(golden_hello_bytes),
		cmocka_unit_test(golden_op_bytes),
		cmocka_unit_test(split_encode_matches_whole),
		cmocka_unit_test(split_encode_non_op),
		cmocka_unit_test(op_every_truncation),
		cmocka_unit_test(other_types_every_truncation),
		cmocka_unit_test(nul_inside_string),
		cmocka_unit_test(bad_nsec),
		cmocka_unit_test(unknown_op_type),
		cmocka_unit_test(bad_role),
		cmocka_unit_test(trailing_byte),
		cmocka_unit_test(wire_lengths_over_limits),
		cmocka_unit_test(decode_error_resets_msg),
		cmocka_unit_test(hello_version_peek),
		cmocka_unit_test(encode_enospc_every_cap),
		cmocka_unit_test(encode_rejects_unrepresentable),
		cmocka_unit_test(type_names),
		cmocka_unit_test(rs_list_round_trip),
		cmocka_unit_test(path_check_table),
		cmocka_unit_test(path_check_lengths),
		cmocka_unit_test(small_err_buffers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
