/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_proto.c - libFuzzer target for the replication protocol codec
 * (daemon/proto.c).
 *
 * The input is read two ways: as a stream of frames (header, payload,
 * header, payload...) stopping at the first bad or incomplete frame, and as a
 * bare payload of each of the six message types. Every message that decodes
 * must re-encode to exactly the bytes it came from (the encoding is
 * canonical), decode again to an equal message, and encode to -ENOSPC one
 * byte short. Decoded paths go through proto_path_check(). Any mismatch
 * aborts, so libFuzzer records the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_proto: check failed at line %d: %s\n", __LINE__,     \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static int
str_eq(const struct proto_str *a, const struct proto_str *b)
{
	return a->len == b->len && a->p != NULL && b->p != NULL &&
	       (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* A decoded string must point inside the payload (or be the empty string). */
static void
check_inside(const struct proto_str *s, const uint8_t *payload, uint32_t len)
{
	const char *lo = (const char *)payload;

	CHECK(s->p != NULL);
	if (s->len > 0)
		CHECK(s->p >= lo && s->p + s->len <= lo + len);
	CHECK(s->len < PROTO_MAX_STR);
	CHECK(memchr(s->p, '\0', s->len) == NULL);
}

static int
msg_eq(const struct proto_msg *a, const struct proto_msg *b)
{
	const struct proto_op *x = &a->u.op, *y = &b->u.op;

	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case PROTO_HELLO:
		return a->u.hello.version == b->u.hello.version &&
		       a->u.hello.role == b->u.hello.role &&
		       str_eq(&a->u.hello.node, &b->u.hello.node) &&
		       str_eq(&a->u.hello.module, &b->u.hello.module) &&
		       memcmp(a->u.hello.config_hash, b->u.hello.config_hash, 16) == 0 &&
		       memcmp(a->u.hello.generation, b->u.hello.generation, 16) == 0 &&
		       a->u.hello.last_seq == b->u.hello.last_seq;
	case PROTO_REFUSE:
		return a->u.refuse.code == b->u.refuse.code &&
		       str_eq(&a->u.refuse.text, &b->u.refuse.text);
	case PROTO_OP:
		return x->seq == y->seq && x->type == y->type && x->flags == y->flags &&
		       x->valid == y->valid && x->file_id == y->file_id && x->mode == y->mode &&
		       x->uid == y->uid && x->gid == y->gid && x->rdev == y->rdev &&
		       x->off == y->off && x->size == y->size && x->atime_sec == y->atime_sec &&
		       x->atime_nsec == y->atime_nsec && x->mtime_sec == y->mtime_sec &&
		       x->mtime_nsec == y->mtime_nsec && str_eq(&x->path, &y->path) &&
		       str_eq(&x->path2, &y->path2) && str_eq(&x->name, &y->name) &&
		       x->data_len == y->data_len && x->data != NULL && y->data != NULL &&
		       (x->data_len == 0 || memcmp(x->data, y->data, x->data_len) == 0);
	case PROTO_ACK:
		return a->u.ack.seq == b->u.ack.seq && a->u.ack.durable_seq == b->u.ack.durable_seq;
	case PROTO_PING:
	case PROTO_PONG:
		return a->u.ping.token == b->u.ping.token;
	case PROTO_RS_RESULT:
		return a->u.rs_result.end_seq == b->u.rs_result.end_seq &&
		       a->u.rs_result.failures == b->u.rs_result.failures;
	case PROTO_RS_HASHES:
		return a->u.rs_hashes.req_seq == b->u.rs_hashes.req_seq &&
		       a->u.rs_hashes.block_size == b->u.rs_hashes.block_size &&
		       a->u.rs_hashes.n == b->u.rs_hashes.n &&
		       (a->u.rs_hashes.n == 0 ||
		        memcmp(a->u.rs_hashes.hashes, b->u.rs_hashes.hashes,
		               (size_t)a->u.rs_hashes.n * PROTO_HASH_LEN) == 0);
	case PROTO_RS_LIST:
		return a->u.rs_list.flags == b->u.rs_list.flags && a->u.rs_list.n == b->u.rs_list.n &&
		       a->u.rs_list.len == b->u.rs_list.len &&
		       (a->u.rs_list.len == 0 ||
		        memcmp(a->u.rs_list.entries, b->u.rs_list.entries, a->u.rs_list.len) == 0);
	}
	return 0;
}

static void
paths(const struct proto_msg *m)
{
	char err[128];

	if (m->type != PROTO_OP)
		return;
	(void)proto_path_check(&m->u.op.path, false, err, sizeof(err));
	(void)proto_path_check(&m->u.op.path, true, err, sizeof(err));
	(void)proto_path_check(&m->u.op.path2, false, NULL, 0);
	(void)proto_path_check(&m->u.op.name, true, err, 1);
}

/* m was decoded from payload[0..len) of the given type: check the codec's
 * properties on it. */
static void
recheck(uint16_t type, const uint8_t *payload, uint32_t len, const struct proto_msg *m)
{
	struct proto_msg again;
	uint8_t *buf;
	size_t need;
	long n;
	char err[128];

	CHECK(m->type == type);
	switch (m->type) {
	case PROTO_HELLO:
		check_inside(&m->u.hello.node, payload, len);
		check_inside(&m->u.hello.module, payload, len);
		CHECK(m->u.hello.role <= PROTO_ROLE_SECONDARY);
		break;
	case PROTO_REFUSE:
		check_inside(&m->u.refuse.text, payload, len);
		break;
	case PROTO_OP:
		check_inside(&m->u.op.path, payload, len);
		check_inside(&m->u.op.path2, payload, len);
		check_inside(&m->u.op.name, payload, len);
		CHECK(PROTO_OP_TYPE_OK(m->u.op.type));
		CHECK(m->u.op.atime_nsec < 1000000000u && m->u.op.mtime_nsec < 1000000000u);
		CHECK(m->u.op.data_len <= PROTO_MAX_DATA);
		break;
	case PROTO_RS_LIST: {
		uint32_t off = 0, k = 0;
		uint8_t kind, dir;
		struct proto_str path;

		while (proto_rs_list_next(&m->u.rs_list, &off, &kind, &dir, &path)) {
			check_inside(&path, payload, len);
			k++;
		}
		CHECK(k == m->u.rs_list.n && off == m->u.rs_list.len);
		break;
	}
	default:
		break;
	}
	paths(m);

	need = proto_encoded_len(m);
	CHECK(need == PROTO_HDR_LEN + len);
	buf = malloc(need);
	CHECK(buf != NULL);
	CHECK(proto_encode(m, buf, need - 1) == -ENOSPC);
	n = proto_encode(m, buf, need);
	CHECK(n == (long)need);
	CHECK(memcmp(buf + PROTO_HDR_LEN, payload, len) == 0); /* canonical */
	{
		uint32_t plen;
		uint16_t t;

		CHECK(proto_hdr_decode(buf, &t, &plen, err, sizeof(err)) == 0);
		CHECK(t == type && plen == len);
	}
	CHECK(proto_decode(type, buf + PROTO_HDR_LEN, len, &again, err, sizeof(err)) == 0);
	CHECK(msg_eq(m, &again));
	free(buf);
}

/* Decode from an exactly-sized copy so ASan sees any read past the end. */
static void
one_payload(uint16_t type, const uint8_t *src, uint32_t len)
{
	uint8_t *payload = malloc(len > 0 ? len : 1);
	struct proto_msg m;
	char err[128];

	CHECK(payload != NULL);
	if (len > 0)
		memcpy(payload, src, len);
	if (proto_decode(type, payload, len, &m, err, sizeof(err)) == 0)
		recheck(type, payload, len, &m);
	else
		CHECK(err[0] != '\0');
	free(payload);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t pos = 0;
	uint16_t t;

	/* A stream of frames, as peer.c would read them. */
	while (size - pos >= PROTO_HDR_LEN) {
		uint32_t len;
		uint16_t type;
		char err[128];

		if (proto_hdr_decode(data + pos, &type, &len, err, sizeof(err)) != 0)
			break;
		CHECK(len <= PROTO_MAX_PAYLOAD);
		pos += PROTO_HDR_LEN;
		if (len > size - pos)
			break;
		one_payload(type, data + pos, len);
		pos += len;
	}

	/* The whole input as a payload of each type. */
	if (size <= PROTO_MAX_PAYLOAD)
		for (t = 0; t <= PROTO_RS_LIST + 1; t++)
			one_payload(t, data, (uint32_t)size);
	if (size >= 2) {
		uint16_t v;

		CHECK(proto_hello_version(data, (uint32_t)size, &v) == 0);
	}
	return 0;
}
