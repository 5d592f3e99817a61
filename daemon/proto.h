/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * proto.h - the replication protocol between the two mirrord of a module
 * (docs/PROTOCOL.md is the prose version). Pure encode/decode: no I/O, no
 * logging, no allocation on the decode path (decoded strings and data point
 * into the caller's frame buffer). Any thread. Fuzzed (tests/fuzz/).
 *
 * A frame is an 8-byte header followed by `len` bytes of payload, all
 * integers big-endian:
 *
 *   u32 len     payload length, at most PROTO_MAX_PAYLOAD
 *   u16 type    enum proto_type
 *   u16 flags   0 (reserved; a frame with other bits set is refused)
 *
 * The link runs inside TLS 1.3; the first frame each side sends is HELLO, and
 * nothing else is accepted before both HELLOs were checked.
 */
#ifndef MR_PROTO_H
#define MR_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION     2 /* 2: PROTO_OPEN_REBIND */
#define PROTO_HDR_LEN     8u
#define PROTO_MAX_DATA    (1u << 20) /* largest write / xattr value carried */
#define PROTO_MAX_STR     4096u      /* paths, names: bytes, no NUL */
#define PROTO_MAX_PAYLOAD (PROTO_MAX_DATA + 3u * PROTO_MAX_STR + 256u)

/* Range of struct proto_op.type: enum shim_op_type from SHIM_OP_OPEN to
 * SHIM_OP_RELEASE (proto.c checks this against driver-shim/shim.h). */
#define PROTO_OP_MIN 1u
#define PROTO_OP_MAX 17u

/* Resync records, carried in OP frames in the same ordered stream as the live
 * ops (see resync.c for the algorithm): the target makes its copy match. */
enum proto_rs_type {
	PROTO_RS_BEGIN = 32,   /* a resync pass starts: tolerate live ops on stale paths */
	PROTO_RS_DIR = 33,     /* path is a directory (mode, uid, gid); data: its children's
	                          names, NUL-terminated each; anything else there goes */
	PROTO_RS_META = 34,    /* path's mode, uid, gid, atime, mtime (valid: SHIM_SET_*) */
	PROTO_RS_FILE = 35,    /* path is a regular file of size bytes (mode, uid, gid) */
	PROTO_RS_DATA = 36,    /* path: data at off */
	PROTO_RS_SYMLINK = 37, /* path is a symlink to path2 (uid, gid) */
	PROTO_RS_NODE = 38,    /* path is a FIFO, socket or device node (mode, rdev) */
	PROTO_RS_END = 39,     /* the pass ends; the target answers RS_RESULT */
	PROTO_RS_HASHREQ = 40, /* path: the target answers RS_HASHES with the XXH3-128 of
	                          each rdev-byte block of [off, off + size) of its copy */
	PROTO_RS_LINK = 41,    /* path is another name (hard link) of path2, met earlier */
};
/* RS_META flags: data holds the object's complete extended attributes, each
 * "name\0" then a u32 (big-endian) value length and the value; the target
 * makes its set exactly that (not sent for symlinks). */
#define PROTO_RS_META_XATTRS 1u
/* RS_DATA flags: data is zlib (RFC 1950) of `size` bytes (<= PROTO_MAX_DATA) */
#define PROTO_RS_DATA_ZLIB 1u

/* OPEN valid bit: a re-binding, sent for each file still open when a link or
 * a resync pass starts (the peer's map of open files is new, or was made
 * against a copy the pass since changed): file_id is now whatever path
 * names, opened `size` times; no path: the file has no name left, and the
 * ops through it change no name's data. */
#define PROTO_OPEN_REBIND (1u << 31)

#define PROTO_RS_MIN PROTO_RS_BEGIN
#define PROTO_RS_MAX PROTO_RS_LINK

/* Is t an op type the wire may carry (live op or resync record)? */
#define PROTO_OP_TYPE_OK(t)                                                                        \
	(((t) >= PROTO_OP_MIN && (t) <= PROTO_OP_MAX) || ((t) >= PROTO_RS_MIN && (t) <= PROTO_RS_MAX))

enum proto_type {
	PROTO_HELLO = 1,  /* first frame, both ways */
	PROTO_REFUSE = 2, /* pairing refused: code + text; the sender then closes */
	PROTO_OP = 3,     /* one op record, primary -> secondary */
	PROTO_ACK = 4,    /* cumulative ack, secondary -> primary */
	PROTO_PING = 5,   /* keepalive, either way; answered by PONG */
	PROTO_PONG = 6,
	PROTO_RS_RESULT = 7, /* resync pass result, secondary -> primary */
	PROTO_RS_HASHES = 8, /* block hashes answering an RS_HASHREQ, secondary -> primary */
	PROTO_RS_LIST = 9,   /* before a resync, secondary -> primary: what the target's
	                      * copy may have of its own (struct proto_rs_list) */
};

enum proto_role {
	PROTO_ROLE_NONE = 0,
	PROTO_ROLE_PRIMARY = 1,
	PROTO_ROLE_SECONDARY = 2,
};

enum proto_refuse_code {
	PROTO_REFUSE_VERSION = 1, /* unsupported protocol version */
	PROTO_REFUSE_MODULE = 2,  /* different module name */
	PROTO_REFUSE_CONFIG = 3,  /* configuration hash differs */
	PROTO_REFUSE_NODE = 4,    /* unexpected node name */
	PROTO_REFUSE_ROLE = 5,    /* roles do not fit (two primaries...) */
	PROTO_REFUSE_DATA = 6,    /* data generations do not allow pairing */
	PROTO_REFUSE_RESYNC = 7,  /* not an error: the next pairing must resync (the
	                           * sender made sure it will); pair again now */
};

/* A counted string inside a frame: not NUL-terminated. */
struct proto_str {
	const char *p; /* borrowed: points into the frame */
	uint16_t len;
};

struct proto_hello {
	uint16_t version;      /* PROTO_VERSION */
	uint8_t role;          /* enum proto_role */
	struct proto_str node; /* sender's node name */
	struct proto_str module;
	uint8_t config_hash[16];
	uint8_t generation[16]; /* current data generation id */
	uint64_t last_seq;      /* secondary: last applied seq; primary: next seq - 1 */
};

struct proto_refuse {
	uint16_t code;         /* enum proto_refuse_code */
	struct proto_str text; /* for the admin, e.g. both hashes */
};

/* An op record: the wire form of struct shim_op (driver-shim/shim.h) plus
 * its sequence number. Fields an op type does not use are zero / empty. */
struct proto_op {
	uint64_t seq; /* 1, 2, 3...: one total order */
	uint8_t type; /* enum shim_op_type */
	uint8_t dir;  /* index of the <replicated> directory (document order) */
	uint32_t flags;
	uint32_t valid;
	uint64_t file_id;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint64_t rdev;
	uint64_t off;
	uint64_t size;
	int64_t atime_sec;
	uint32_t atime_nsec;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	int64_t pmtime_sec; /* namespace ops: the parent directory's new mtime */
	uint32_t pmtime_nsec;
	int64_t pmtime2_sec; /* RENAME/LINK: the second parent's */
	uint32_t pmtime2_nsec;
	struct proto_str path; /* relative to the replicated root; may be empty */
	struct proto_str path2;
	struct proto_str name; /* xattr name */
	const void *data;      /* borrowed */
	uint32_t data_len;     /* <= PROTO_MAX_DATA */
};

struct proto_ack {
	uint64_t seq;         /* every op <= seq is applied */
	uint64_t durable_seq; /* every op <= durable_seq is on stable storage */
};

struct proto_ping {
	uint64_t token; /* echoed in PONG */
};

#define PROTO_HASH_LEN 16u /* XXH3-128, canonical (big-endian) form */

struct proto_rs_hashes {
	uint64_t req_seq;    /* the RS_HASHREQ answered */
	uint32_t block_size;
	uint32_t n;            /* blocks; 0 when the target has no such file */
	const uint8_t *hashes; /* borrowed: n * PROTO_HASH_LEN bytes */
};

struct proto_rs_result {
	uint64_t end_seq;  /* the RS_END it answers */
	uint64_t failures; /* live ops that could not be applied during the pass */
};

/* RS_LIST: the files where the target's copy may differ from its generation
 * (changes it made without its peer, read back from its pre-write log).
 * Entries: {kind u8, dir u8, len u16 BE, path} with kind PROTO_LIST_FILE or
 * PROTO_LIST_DIR. Frames follow each other; the last one has END. ALL: the
 * target cannot say (compare everything). END and no entry: an exact copy. */
#define PROTO_LIST_END  1u
#define PROTO_LIST_ALL  2u
#define PROTO_LIST_FILE 1u /* the file's data or metadata */
#define PROTO_LIST_DIR  2u /* the directory's entries and its children's data */

struct proto_rs_list {
	uint32_t flags;
	uint32_t n;             /* entries */
	const uint8_t *entries; /* borrowed, validated by proto_decode() */
	uint32_t len;           /* bytes; <= PROTO_MAX_DATA */
};

/* Append an entry to an RS_LIST buffer of cap bytes holding *len; false
 * (nothing written) when it does not fit or path is too long. */
bool proto_rs_list_put(uint8_t *buf, size_t cap, uint32_t *len, uint8_t kind, uint8_t dir,
                       const char *path);

/* The entry at *off of a decoded list (then *off moves past it); false at
 * the end. path points into the frame. */
bool proto_rs_list_next(const struct proto_rs_list *l, uint32_t *off, uint8_t *kind,
                        uint8_t *dir, struct proto_str *path);

struct proto_msg {
	enum proto_type type;
	union {
		struct proto_hello hello;
		struct proto_refuse refuse;
		struct proto_op op;
		struct proto_ack ack;
		struct proto_ping ping; /* PING and PONG */
		struct proto_rs_result rs_result;
		struct proto_rs_hashes rs_hashes;
		struct proto_rs_list rs_list;
	} u;
};

/* Parse a frame header. Returns 0 and sets *type / *payload_len, or MR_EPROTO
 * (nonzero flags, unknown type) / MR_ETOOBIG (len over PROTO_MAX_PAYLOAD, or
 * over the largest valid payload of that type, e.g. 16 for ACK).
 * err gets a short reason. */
int proto_hdr_decode(const uint8_t hdr[PROTO_HDR_LEN], uint16_t *type, uint32_t *payload_len,
                     char *err, size_t err_len);

/* Decode one payload of the given type. Strings and data in *msg point into
 * payload (which must outlive *msg). Every length is checked against the
 * payload; strings must not contain NUL bytes; op types must be known;
 * trailing bytes are an error. Returns 0 or MR_EPROTO with a reason in err. */
int proto_decode(uint16_t type, const uint8_t *payload, uint32_t payload_len, struct proto_msg *msg,
                 char *err, size_t err_len);

/* Size of the whole frame (header included) that proto_encode() would write,
 * or 0 if msg cannot be encoded (proto_encode() then says why). */
size_t proto_encoded_len(const struct proto_msg *msg);

/* Encode msg as one frame (header + payload) into buf. Returns the number of
 * bytes written, or -ENOSPC if cap is too small, or MR_ETOOBIG / MR_EPROTO if
 * msg cannot be represented (string or data too long). */
long proto_encode(const struct proto_msg *msg, uint8_t *buf, size_t cap);

/* The same frame in two parts, so bulk data need not be copied: buf gets
 * everything before an OP's data (the return value counts it), *tail and
 * *tail_len the data itself, to be sent right after. Frames other than OPs,
 * and OPs with less than min_tail bytes of data, are encoded whole into buf
 * (*tail_len = 0). Errors as proto_encode(). */
long proto_encode_split(const struct proto_msg *msg, uint8_t *buf, size_t cap, size_t min_tail,
                        const uint8_t **tail, size_t *tail_len);

/* Where an OP payload's data starts, from the first have bytes of the
 * payload: the offset, or 0 when more bytes are needed. Decodes only the
 * lengths before the data, checks nothing else (proto_decode() does). */
size_t proto_op_data_off(const uint8_t *payload, size_t have);

/* Read only the version (the first field) of a HELLO payload, so a peer whose
 * HELLO does not decode can still be refused with "version N unsupported".
 * Returns 0 or MR_EPROTO (payload shorter than 2 bytes). */
int proto_hello_version(const uint8_t *payload, uint32_t payload_len, uint16_t *version);

/* Check a path received from the peer before it is used: relative, non-empty
 * unless allow_empty (the root itself), at most PROTO_MAX_STR - 1 bytes, no NUL,
 * no empty, "." or ".." components, no leading or trailing '/'.
 * Returns 0 or MR_EPROTO with a reason in err. */
int proto_path_check(const struct proto_str *path, bool allow_empty, char *err, size_t err_len);

/* Name of a message type, for logs. */
const char *proto_type_name(uint16_t type);

#endif
