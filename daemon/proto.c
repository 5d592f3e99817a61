/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * proto.c - encode/decode of the replication protocol (see proto.h and
 * docs/PROTOCOL.md for the byte layouts).
 *
 * Pure: no I/O, no logging, no allocation. Any thread. It does NOT decide
 * anything about the link (handshake checks, seq order, acks): that is peer.c
 * and repl.c. Invariants: decoding never reads outside [payload, payload+len),
 * every decoded string/data points into the payload, and the encoding is
 * canonical: a frame that decodes re-encodes to the very same bytes (the
 * fuzzer checks this).
 */
#include "proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../driver-shim/shim.h"
#include "err.h"
#include "util.h"

_Static_assert(PROTO_OP_MIN == SHIM_OP_OPEN, "PROTO_OP_MIN must match enum shim_op_type");
_Static_assert(PROTO_OP_MAX == SHIM_OP_RELEASE, "PROTO_OP_MAX must match enum shim_op_type");

#define NSEC_PER_SEC 1000000000u

/* Fixed parts of the payloads (see docs/PROTOCOL.md). */
#define HELLO_FIXED  (2u + 1u + 2u + 2u + 16u + 16u + 8u)
#define REFUSE_FIXED (2u + 2u)
#define OP_FIXED     (8u + 1u + 1u + 4u * 2 + 8u + 4u * 3 + 8u * 3 + (8u + 4u) * 4 + 2u * 3 + 4u)
#define ACK_LEN      16u
#define PING_LEN     8u
#define HASHES_FIXED 16u
#define LIST_FIXED   8u
#define STR_MAX_LEN  (PROTO_MAX_STR - 1u)

_Static_assert(OP_FIXED + 3u * STR_MAX_LEN + PROTO_MAX_DATA <= PROTO_MAX_PAYLOAD,
               "largest OP must fit PROTO_MAX_PAYLOAD");
_Static_assert(HELLO_FIXED + 2u * STR_MAX_LEN <= PROTO_MAX_PAYLOAD, "HELLO must fit");

static const char empty[1] = "";

/* Largest valid payload of each type, so a reader can refuse an oversized
 * frame from its header alone, before buffering it. */
static uint32_t
type_max_payload(uint16_t type)
{
	switch (type) {
	case PROTO_HELLO:
		return HELLO_FIXED + 2u * STR_MAX_LEN;
	case PROTO_REFUSE:
		return REFUSE_FIXED + STR_MAX_LEN;
	case PROTO_OP:
		return OP_FIXED + 3u * STR_MAX_LEN + PROTO_MAX_DATA;
	case PROTO_ACK:
	case PROTO_RS_RESULT:
		return ACK_LEN;
	case PROTO_PING:
	case PROTO_PONG:
		return PING_LEN;
	case PROTO_RS_HASHES:
		return HASHES_FIXED + PROTO_MAX_DATA;
	case PROTO_RS_LIST:
		return LIST_FIXED + PROTO_MAX_DATA;
	default:
		return 0;
	}
}

const char *
proto_type_name(uint16_t type)
{
	switch (type) {
	case PROTO_HELLO:
		return "hello";
	case PROTO_REFUSE:
		return "refuse";
	case PROTO_OP:
		return "op";
	case PROTO_ACK:
		return "ack";
	case PROTO_PING:
		return "ping";
	case PROTO_PONG:
		return "pong";
	case PROTO_RS_RESULT:
		return "rs_result";
	case PROTO_RS_HASHES:
		return "rs_hashes";
	case PROTO_RS_LIST:
		return "rs_list";
	default:
		return "unknown";
	}
}

/* ---- big-endian primitives ---------------------------------------------- */

/* Two's complement without implementation-defined conversions. */
static int64_t
u64_to_i64(uint64_t u)
{
	if (u <= (uint64_t)INT64_MAX)
		return (int64_t)u;
	return -(int64_t)(~u) - 1;
}

/* ---- decoding ------------------------------------------------------------ */

/* A cursor over one payload. The first failure is remembered with the field
 * it happened in; later reads are no-ops returning zero. */
struct rd {
	const uint8_t *p;
	size_t left;
	const char *what; /* first failure: "truncated" / "string too long"... */
	const char *field;
};

static const uint8_t *
rd_take(struct rd *r, size_t n, const char *field)
{
	const uint8_t *p;

	if (r->what != NULL)
		return NULL;
	if (n > r->left) {
		r->what = "truncated";
		r->field = field;
		return NULL;
	}
	p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint8_t
rd_u8(struct rd *r, const char *field)
{
	const uint8_t *p = rd_take(r, 1, field);

	return p != NULL ? p[0] : 0;
}

static uint16_t
rd_u16(struct rd *r, const char *field)
{
	const uint8_t *p = rd_take(r, 2, field);

	return p != NULL ? mr_get_be16(p) : 0;
}

static uint32_t
rd_u32(struct rd *r, const char *field)
{
	const uint8_t *p = rd_take(r, 4, field);

	return p != NULL ? mr_get_be32(p) : 0;
}

static uint64_t
rd_u64(struct rd *r, const char *field)
{
	const uint8_t *p = rd_take(r, 8, field);

	return p != NULL ? mr_get_be64(p) : 0;
}

static void
rd_bytes(struct rd *r, uint8_t *dst, size_t n, const char *field)
{
	const uint8_t *p = rd_take(r, n, field);

	if (p != NULL)
		memcpy(dst, p, n);
	else
		memset(dst, 0, n);
}

static void
rd_fail(struct rd *r, const char *what, const char *field)
{
	if (r->what == NULL) {
		r->what = what;
		r->field = field;
	}
}

static void
rd_str(struct rd *r, struct proto_str *s, const char *field)
{
	uint16_t len = rd_u16(r, field);
	const uint8_t *p;

	s->p = empty;
	s->len = 0;
	if (len > STR_MAX_LEN) {
		rd_fail(r, "string too long", field);
		return;
	}
	p = rd_take(r, len, field);
	if (p == NULL)
		return;
	if (memchr(p, '\0', len) != NULL) {
		rd_fail(r, "NUL byte in string", field);
		return;
	}
	if (len > 0)
		s->p = (const char *)p;
	s->len = len;
}

static void
rd_nsec(struct rd *r, uint32_t *nsec, const char *field)
{
	*nsec = rd_u32(r, field);
	if (*nsec >= NSEC_PER_SEC)
		rd_fail(r, "nanoseconds out of range", field);
}

static void
decode_hello(struct rd *r, struct proto_hello *h)
{
	h->version = rd_u16(r, "version");
	h->role = rd_u8(r, "role");
	if (h->role > PROTO_ROLE_SECONDARY)
		rd_fail(r, "unknown role", "role");
	rd_str(r, &h->node, "node");
	rd_str(r, &h->module, "module");
	rd_bytes(r, h->config_hash, sizeof(h->config_hash), "config_hash");
	rd_bytes(r, h->generation, sizeof(h->generation), "generation");
	h->last_seq = rd_u64(r, "last_seq");
}

static void
decode_refuse(struct rd *r, struct proto_refuse *f)
{
	f->code = rd_u16(r, "code"); /* unknown codes are kept: the text explains */
	rd_str(r, &f->text, "text");
}

static void
decode_op(struct rd *r, struct proto_op *o)
{
	const uint8_t *data;

	o->seq = rd_u64(r, "seq");
	o->type = rd_u8(r, "type");
	if (!PROTO_OP_TYPE_OK(o->type))
		rd_fail(r, "unknown op type", "type");
	o->dir = rd_u8(r, "dir");
	o->flags = rd_u32(r, "flags");
	o->valid = rd_u32(r, "valid");
	o->file_id = rd_u64(r, "file_id");
	o->mode = rd_u32(r, "mode");
	o->uid = rd_u32(r, "uid");
	o->gid = rd_u32(r, "gid");
	o->rdev = rd_u64(r, "rdev");
	o->off = rd_u64(r, "off");
	o->size = rd_u64(r, "size");
	o->atime_sec = u64_to_i64(rd_u64(r, "atime_sec"));
	rd_nsec(r, &o->atime_nsec, "atime_nsec");
	o->mtime_sec = u64_to_i64(rd_u64(r, "mtime_sec"));
	rd_nsec(r, &o->mtime_nsec, "mtime_nsec");
	o->pmtime_sec = u64_to_i64(rd_u64(r, "pmtime_sec"));
	rd_nsec(r, &o->pmtime_nsec, "pmtime_nsec");
	o->pmtime2_sec = u64_to_i64(rd_u64(r, "pmtime2_sec"));
	rd_nsec(r, &o->pmtime2_nsec, "pmtime2_nsec");
	rd_str(r, &o->path, "path");
	rd_str(r, &o->path2, "path2");
	rd_str(r, &o->name, "name");
	o->data = empty;
	o->data_len = rd_u32(r, "data_len");
	if (o->data_len > PROTO_MAX_DATA) {
		rd_fail(r, "data too long", "data_len");
		o->data_len = 0;
		return;
	}
	data = rd_take(r, o->data_len, "data");
	if (data == NULL) {
		o->data_len = 0;
		return;
	}
	if (o->data_len > 0)
		o->data = data;
}

int
proto_hdr_decode(const uint8_t hdr[PROTO_HDR_LEN], uint16_t *type, uint32_t *payload_len, char *err,
                 size_t err_len)
{
	uint32_t len = mr_get_be32(hdr);
	uint16_t t = mr_get_be16(hdr + 4);
	uint16_t flags = mr_get_be16(hdr + 6);

	if (flags != 0) {
		mr_set_err(err, err_len, "reserved flags 0x%04x set in frame header", flags);
		return MR_EPROTO;
	}
	if (type_max_payload(t) == 0) {
		mr_set_err(err, err_len, "unknown frame type %u", t);
		return MR_EPROTO;
	}
	if (len > type_max_payload(t)) {
		mr_set_err(err, err_len, "%s frame of %u bytes exceeds the %u-byte limit",
		        proto_type_name(t), len, type_max_payload(t));
		return MR_ETOOBIG;
	}
	*type = t;
	*payload_len = len;
	return 0;
}

int
proto_decode(uint16_t type, const uint8_t *payload, uint32_t payload_len, struct proto_msg *msg,
             char *err, size_t err_len)
{
	struct rd r = { .p = payload, .left = payload_len };

	*msg = (struct proto_msg){ .type = (enum proto_type)type };
	switch (type) {
	case PROTO_HELLO:
		decode_hello(&r, &msg->u.hello);
		break;
	case PROTO_REFUSE:
		decode_refuse(&r, &msg->u.refuse);
		break;
	case PROTO_OP:
		decode_op(&r, &msg->u.op);
		break;
	case PROTO_ACK:
		msg->u.ack.seq = rd_u64(&r, "seq");
		msg->u.ack.durable_seq = rd_u64(&r, "durable_seq");
		break;
	case PROTO_RS_RESULT:
		msg->u.rs_result.end_seq = rd_u64(&r, "end_seq");
		msg->u.rs_result.failures = rd_u64(&r, "failures");
		break;
	case PROTO_RS_HASHES: {
		struct proto_rs_hashes *h = &msg->u.rs_hashes;

		h->req_seq = rd_u64(&r, "req_seq");
		h->block_size = rd_u32(&r, "block_size");
		h->n = rd_u32(&r, "n");
		if (r.what == NULL && (uint64_t)h->n * PROTO_HASH_LEN != r.left)
			rd_fail(&r, "hash count does not match the payload", "n");
		if (r.what == NULL && h->n > 0 && h->block_size == 0)
			rd_fail(&r, "zero block size", "block_size");
		if (r.what == NULL) {
			h->hashes = r.p;
			r.p += r.left;
			r.left = 0;
		}
		break;
	}
	case PROTO_RS_LIST: {
		struct proto_rs_list *l = &msg->u.rs_list;

		l->flags = rd_u32(&r, "flags");
		l->n = rd_u32(&r, "n");
		if (r.what == NULL && (l->flags & ~(PROTO_LIST_END | PROTO_LIST_ALL)) != 0)
			rd_fail(&r, "unknown flags", "flags");
		if (r.what == NULL && r.left > PROTO_MAX_DATA)
			rd_fail(&r, "list too long", "n");
		if (r.what == NULL) {
			uint32_t off = 0, n = 0;
			uint8_t kind, dir;
			struct proto_str path;

			l->entries = r.p;
			l->len = (uint32_t)r.left;
			while (off < l->len && proto_rs_list_next(l, &off, &kind, &dir, &path))
				n++;
			if (off != l->len || n != l->n)
				rd_fail(&r, "malformed entry", "entries");
			r.p += r.left;
			r.left = 0;
		}
		break;
	}
	case PROTO_PING:
	case PROTO_PONG:
		msg->u.ping.token = rd_u64(&r, "token");
		break;
	default:
		mr_set_err(err, err_len, "unknown message type %u", type);
		return MR_EPROTO;
	}
	if (r.what != NULL) {
		mr_set_err(err, err_len, "%s: %s in field %s", proto_type_name(type), r.what, r.field);
		goto err;
	}
	if (r.left != 0) {
		mr_set_err(err, err_len, "%s: %zu trailing bytes", proto_type_name(type), r.left);
		goto err;
	}
	return 0;

err:
	/* Leave no half-decoded message behind for a careless caller. */
	*msg = (struct proto_msg){ .type = (enum proto_type)type };
	return MR_EPROTO;
}

int
proto_hello_version(const uint8_t *payload, uint32_t payload_len, uint16_t *version)
{
	if (payload_len < 2)
		return MR_EPROTO;
	*version = mr_get_be16(payload);
	return 0;
}

/* ---- encoding ------------------------------------------------------------ */

/* 0 if s can be encoded, else MR_ETOOBIG / MR_EPROTO. */
static int
str_check(const struct proto_str *s)
{
	if (s->len > STR_MAX_LEN)
		return MR_ETOOBIG;
	if (s->len > 0 && (s->p == NULL || memchr(s->p, '\0', s->len) != NULL))
		return MR_EPROTO;
	return 0;
}

/* Validate msg and compute its payload length. Returns 0 or the error that
 * proto_encode() reports. */
static int
payload_len_of(const struct proto_msg *msg, size_t *len)
{
	const struct proto_op *o;
	int r;

	switch (msg->type) {
	case PROTO_HELLO:
		if (msg->u.hello.role > PROTO_ROLE_SECONDARY)
			return MR_EPROTO;
		if ((r = str_check(&msg->u.hello.node)) < 0 ||
		    (r = str_check(&msg->u.hello.module)) < 0)
			return r;
		*len = HELLO_FIXED + msg->u.hello.node.len + msg->u.hello.module.len;
		return 0;
	case PROTO_REFUSE:
		if ((r = str_check(&msg->u.refuse.text)) < 0)
			return r;
		*len = REFUSE_FIXED + msg->u.refuse.text.len;
		return 0;
	case PROTO_OP:
		o = &msg->u.op;
		if (!PROTO_OP_TYPE_OK(o->type))
			return MR_EPROTO;
		if (o->atime_nsec >= NSEC_PER_SEC || o->mtime_nsec >= NSEC_PER_SEC ||
		    o->pmtime_nsec >= NSEC_PER_SEC || o->pmtime2_nsec >= NSEC_PER_SEC)
			return MR_EPROTO;
		if ((r = str_check(&o->path)) < 0 || (r = str_check(&o->path2)) < 0 ||
		    (r = str_check(&o->name)) < 0)
			return r;
		if (o->data_len > PROTO_MAX_DATA)
			return MR_ETOOBIG;
		if (o->data_len > 0 && o->data == NULL)
			return MR_EPROTO;
		*len = OP_FIXED + (size_t)o->path.len + o->path2.len + o->name.len + o->data_len;
		return 0;
	case PROTO_ACK:
	case PROTO_RS_RESULT:
		*len = ACK_LEN;
		return 0;
	case PROTO_RS_HASHES:
		if ((uint64_t)msg->u.rs_hashes.n * PROTO_HASH_LEN > PROTO_MAX_DATA)
			return MR_ETOOBIG;
		if (msg->u.rs_hashes.n > 0 && msg->u.rs_hashes.hashes == NULL)
			return MR_EPROTO;
		*len = HASHES_FIXED + (size_t)msg->u.rs_hashes.n * PROTO_HASH_LEN;
		return 0;
	case PROTO_RS_LIST:
		if (msg->u.rs_list.len > PROTO_MAX_DATA)
			return MR_ETOOBIG;
		if (msg->u.rs_list.len > 0 && msg->u.rs_list.entries == NULL)
			return MR_EPROTO;
		*len = LIST_FIXED + msg->u.rs_list.len;
		return 0;
	case PROTO_PING:
	case PROTO_PONG:
		*len = PING_LEN;
		return 0;
	default:
		return MR_EPROTO;
	}
}

size_t
proto_encoded_len(const struct proto_msg *msg)
{
	size_t len;

	if (payload_len_of(msg, &len) < 0)
		return 0;
	return PROTO_HDR_LEN + len;
}

static uint8_t *
w_str(uint8_t *p, const struct proto_str *s)
{
	mr_put_be16(p, s->len);
	if (s->len > 0)
		memcpy(p + 2, s->p, s->len);
	return p + 2 + s->len;
}

/* The op's fields, and its data unless with_data is false. */
static uint8_t *
w_op(uint8_t *p, const struct proto_op *o, bool with_data)
{
	mr_put_be64(p, o->seq);
	p[8] = o->type;
	p[9] = o->dir;
	mr_put_be32(p + 10, o->flags);
	mr_put_be32(p + 14, o->valid);
	mr_put_be64(p + 18, o->file_id);
	mr_put_be32(p + 26, o->mode);
	mr_put_be32(p + 30, o->uid);
	mr_put_be32(p + 34, o->gid);
	mr_put_be64(p + 38, o->rdev);
	mr_put_be64(p + 46, o->off);
	mr_put_be64(p + 54, o->size);
	mr_put_be64(p + 62, (uint64_t)o->atime_sec);
	mr_put_be32(p + 70, o->atime_nsec);
	mr_put_be64(p + 74, (uint64_t)o->mtime_sec);
	mr_put_be32(p + 82, o->mtime_nsec);
	mr_put_be64(p + 86, (uint64_t)o->pmtime_sec);
	mr_put_be32(p + 94, o->pmtime_nsec);
	mr_put_be64(p + 98, (uint64_t)o->pmtime2_sec);
	mr_put_be32(p + 106, o->pmtime2_nsec);
	p = w_str(p + 110, &o->path);
	p = w_str(p, &o->path2);
	p = w_str(p, &o->name);
	mr_put_be32(p, o->data_len);
	if (!with_data)
		return p + 4;
	if (o->data_len > 0)
		memcpy(p + 4, o->data, o->data_len);
	return p + 4 + o->data_len;
}

/* See proto.h. split: leave an OP's data out of buf (its length is still
 * in the header and the data_len field). */
static long
encode(const struct proto_msg *msg, uint8_t *buf, size_t cap, bool split)
{
	const struct proto_hello *h = &msg->u.hello;
	uint8_t *p = buf + PROTO_HDR_LEN, *end;
	size_t len, tail = split ? msg->u.op.data_len : 0;
	int r;

	r = payload_len_of(msg, &len);
	if (r < 0)
		return r;
	if (cap < PROTO_HDR_LEN + len - tail)
		return -ENOSPC;
	MR_BUG_ON(len > type_max_payload((uint16_t)msg->type));

	mr_put_be32(buf, (uint32_t)len);
	mr_put_be16(buf + 4, (uint16_t)msg->type);
	mr_put_be16(buf + 6, 0);
	switch (msg->type) {
	case PROTO_HELLO:
		mr_put_be16(p, h->version);
		p[2] = h->role;
		p = w_str(p + 3, &h->node);
		p = w_str(p, &h->module);
		memcpy(p, h->config_hash, sizeof(h->config_hash));
		memcpy(p + 16, h->generation, sizeof(h->generation));
		mr_put_be64(p + 32, h->last_seq);
		end = p + 40;
		break;
	case PROTO_REFUSE:
		mr_put_be16(p, msg->u.refuse.code);
		end = w_str(p + 2, &msg->u.refuse.text);
		break;
	case PROTO_OP:
		end = w_op(p, &msg->u.op, !split);
		break;
	case PROTO_ACK:
		mr_put_be64(p, msg->u.ack.seq);
		mr_put_be64(p + 8, msg->u.ack.durable_seq);
		end = p + 16;
		break;
	case PROTO_RS_RESULT:
		mr_put_be64(p, msg->u.rs_result.end_seq);
		mr_put_be64(p + 8, msg->u.rs_result.failures);
		end = p + 16;
		break;
	case PROTO_RS_HASHES:
		mr_put_be64(p, msg->u.rs_hashes.req_seq);
		mr_put_be32(p + 8, msg->u.rs_hashes.block_size);
		mr_put_be32(p + 12, msg->u.rs_hashes.n);
		if (msg->u.rs_hashes.n > 0)
			memcpy(p + 16, msg->u.rs_hashes.hashes,
			       (size_t)msg->u.rs_hashes.n * PROTO_HASH_LEN);
		end = p + 16 + (size_t)msg->u.rs_hashes.n * PROTO_HASH_LEN;
		break;
	case PROTO_RS_LIST:
		mr_put_be32(p, msg->u.rs_list.flags);
		mr_put_be32(p + 4, msg->u.rs_list.n);
		if (msg->u.rs_list.len > 0)
			memcpy(p + 8, msg->u.rs_list.entries, msg->u.rs_list.len);
		end = p + 8 + msg->u.rs_list.len;
		break;
	default: /* PING, PONG: payload_len_of() refused anything else */
		mr_put_be64(p, msg->u.ping.token);
		end = p + 8;
		break;
	}
	MR_BUG_ON((size_t)(end - buf) != PROTO_HDR_LEN + len - tail);
	return (long)(PROTO_HDR_LEN + len - tail);
}

size_t
proto_op_data_off(const uint8_t *payload, size_t have)
{
	size_t off = OP_FIXED - 2u * 3 - 4u; /* the first string's length */
	int i;

	for (i = 0; i < 3; i++) {
		if (have < off + 2)
			return 0;
		off += 2u + mr_get_be16(payload + off);
	}
	return have >= off ? off + 4 : 0;
}

long
proto_encode(const struct proto_msg *msg, uint8_t *buf, size_t cap)
{
	return encode(msg, buf, cap, false);
}

long
proto_encode_split(const struct proto_msg *msg, uint8_t *buf, size_t cap, size_t min_tail,
                   const uint8_t **tail, size_t *tail_len)
{
	bool split =
	        msg->type == PROTO_OP && msg->u.op.data_len > 0 && msg->u.op.data_len >= min_tail;
	long n = encode(msg, buf, cap, split);

	*tail = split && n >= 0 ? msg->u.op.data : NULL;
	*tail_len = split && n >= 0 ? msg->u.op.data_len : 0;
	return n;
}

/* ---- RS_LIST entries ------------------------------------------------------ */

bool
proto_rs_list_put(uint8_t *buf, size_t cap, uint32_t *len, uint8_t kind, uint8_t dir,
                  const char *path)
{
	size_t n = strlen(path);

	if (n > STR_MAX_LEN || *len + 4 + n > cap || *len + 4 + n > PROTO_MAX_DATA)
		return false;
	buf[*len] = kind;
	buf[*len + 1] = dir;
	mr_put_be16(buf + *len + 2, (uint16_t)n);
	memcpy(buf + *len + 4, path, n);
	*len += (uint32_t)(4 + n);
	return true;
}

bool
proto_rs_list_next(const struct proto_rs_list *l, uint32_t *off, uint8_t *kind, uint8_t *dir,
                   struct proto_str *path)
{
	const uint8_t *e = l->entries + *off;
	uint16_t n;

	if (*off + 4 > l->len)
		return false;
	n = mr_get_be16(e + 2);
	if (*off + 4 + n > l->len || n > STR_MAX_LEN ||
	    (e[0] != PROTO_LIST_FILE && e[0] != PROTO_LIST_DIR) || memchr(e + 4, '\0', n) != NULL)
		return false;
	*kind = e[0];
	*dir = e[1];
	path->p = (const char *)e + 4;
	path->len = n;
	*off += 4 + n;
	return true;
}

/* ---- path check ---------------------------------------------------------- */

int
proto_path_check(const struct proto_str *path, bool allow_empty, char *err, size_t err_len)
{
	size_t i, start;

	if (path->len == 0) {
		if (allow_empty)
			return 0;
		mr_set_err(err, err_len, "empty path");
		return MR_EPROTO;
	}
	if (path->p == NULL) {
		mr_set_err(err, err_len, "path has no bytes");
		return MR_EPROTO;
	}
	if (path->len > STR_MAX_LEN) {
		mr_set_err(err, err_len, "path of %u bytes is longer than %u", path->len, STR_MAX_LEN);
		return MR_EPROTO;
	}
	if (memchr(path->p, '\0', path->len) != NULL) {
		mr_set_err(err, err_len, "NUL byte in path");
		return MR_EPROTO;
	}
	if (path->p[0] == '/') {
		mr_set_err(err, err_len, "absolute path");
		return MR_EPROTO;
	}
	if (path->p[path->len - 1] == '/') {
		mr_set_err(err, err_len, "trailing '/' in path");
		return MR_EPROTO;
	}
	/* Components are [start, i): never empty, ".", or "..". */
	for (start = 0, i = 0; i <= path->len; i++) {
		size_t n;

		if (i < path->len && path->p[i] != '/')
			continue;
		n = i - start;
		if (n == 0) {
			mr_set_err(err, err_len, "empty component in path");
			return MR_EPROTO;
		}
		if ((n == 1 && path->p[start] == '.') ||
		    (n == 2 && path->p[start] == '.' && path->p[start + 1] == '.')) {
			mr_set_err(err, err_len, "'%.*s' component in path", (int)n, path->p + start);
			return MR_EPROTO;
		}
		start = i + 1;
	}
	return 0;
}
