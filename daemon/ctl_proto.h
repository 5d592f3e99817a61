/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl_proto.h - the control-socket protocol between mirrorctl and mirrord.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of one
 * UTF-8 JSON object. Frames larger than CTL_MAX_FRAME are refused.
 *
 *   request:  {"cmd": "status", "args": ["--full"]}          (args optional)
 *   reply:    {"ok": true,  "result": {...}}
 *             {"ok": false, "error": "text for the admin", "code": -5005}
 *
 * Every request gets exactly one reply. A malformed or oversized frame gets an
 * error reply and the daemon then closes the connection. Pure code, any thread.
 */
#ifndef MR_CTL_PROTO_H
#define MR_CTL_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_MAX_FRAME (64u * 1024u)
#define CTL_HDR_LEN   4u

/* Serialise msg into a newly allocated frame (header + compact JSON).
 * Returns 0 and sets *out / *out_len (caller frees), MR_ETOOBIG, or -ENOMEM. */
int ctl_frame_encode(const json_t *msg, char **out, size_t *out_len);

/* Incremental frame reader: feed bytes as they arrive, take whole messages. */
struct ctl_rd {
	char *buf; /* owned */
	size_t len;
	size_t cap;
};

void ctl_rd_init(struct ctl_rd *rd);
void ctl_rd_done(struct ctl_rd *rd);
/* Append bytes. Returns 0, -ENOMEM, or MR_ETOOBIG when the buffered data can
 * no longer be a valid frame (announced length over CTL_MAX_FRAME). */
int ctl_rd_feed(struct ctl_rd *rd, const void *data, size_t len);
/* Take the next complete message. Returns 1 and *msg (caller decrefs), 0 when
 * more bytes are needed, MR_ETOOBIG, or MR_EPROTO with a reason in err. */
int ctl_rd_next(struct ctl_rd *rd, json_t **msg, char *err, size_t err_len);

/* Validate a request object: "cmd" a non-empty string, "args" absent or an
 * array of strings, no other keys. Borrowed pointers into req are returned.
 * Returns 0 or MR_EPROTO with a reason in err. */
int ctl_request_check(const json_t *req, const char **cmd, const json_t **args, char *err,
                      size_t err_len);

/* Build replies (new references). */
json_t *ctl_reply_ok(json_t *result /* stolen; may be NULL */);
json_t *ctl_reply_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
