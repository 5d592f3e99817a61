/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl_proto.c - framing and validation for the control socket (see ctl_proto.h).
 *
 * Pure: no I/O and no logging; used by mirrord (ctl_srv.c), mirrorctl and the
 * unit tests. Any thread.
 */
#include "ctl_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"

int
ctl_frame_encode(const json_t *msg, char **out, size_t *out_len)
{
	char *body, *frame;
	size_t len;

	body = json_dumps(msg, JSON_COMPACT);
	if (body == NULL)
		return -ENOMEM;
	len = strlen(body);
	if (len > CTL_MAX_FRAME) {
		free(body);
		return MR_ETOOBIG;
	}
	frame = calloc(1, CTL_HDR_LEN + len);
	if (frame == NULL) {
		free(body);
		return -ENOMEM;
	}
	frame[0] = (char)((len >> 24) & 0xff);
	frame[1] = (char)((len >> 16) & 0xff);
	frame[2] = (char)((len >> 8) & 0xff);
	frame[3] = (char)(len & 0xff);
	memcpy(frame + CTL_HDR_LEN, body, len);
	free(body);
	*out = frame;
	*out_len = CTL_HDR_LEN + len;
	return 0;
}

void
ctl_rd_init(struct ctl_rd *rd)
{
	*rd = (struct ctl_rd){ 0 };
}

void
ctl_rd_done(struct ctl_rd *rd)
{
	mr_free(&rd->buf);
	rd->len = rd->cap = 0;
}

static uint32_t
frame_len(const struct ctl_rd *rd)
{
	const unsigned char *p = (const unsigned char *)rd->buf;

	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int
ctl_rd_feed(struct ctl_rd *rd, const void *data, size_t len)
{
	if (len > CTL_HDR_LEN + CTL_MAX_FRAME || rd->len + len > 2 * (CTL_HDR_LEN + CTL_MAX_FRAME))
		return MR_ETOOBIG;
	if (rd->len + len > rd->cap) {
		size_t cap = rd->cap ? rd->cap : 4096;
		char *p;

		while (cap < rd->len + len)
			cap *= 2;
		p = realloc(rd->buf, cap);
		if (p == NULL)
			return -ENOMEM;
		rd->buf = p;
		rd->cap = cap;
	}
	memcpy(rd->buf + rd->len, data, len);
	rd->len += len;
	if (rd->len >= CTL_HDR_LEN && frame_len(rd) > CTL_MAX_FRAME)
		return MR_ETOOBIG;
	return 0;
}

int
ctl_rd_next(struct ctl_rd *rd, json_t **msg, char *err, size_t err_len)
{
	json_error_t jerr;
	uint32_t len;
	json_t *j;

	*msg = NULL;
	if (rd->len < CTL_HDR_LEN)
		return 0;
	len = frame_len(rd);
	if (len > CTL_MAX_FRAME) {
		snprintf(err, err_len, "frame of %u bytes exceeds the %u-byte limit", len,
		         CTL_MAX_FRAME);
		return MR_ETOOBIG;
	}
	if (rd->len < CTL_HDR_LEN + len)
		return 0;
	j = json_loadb(rd->buf + CTL_HDR_LEN, len, JSON_REJECT_DUPLICATES, &jerr);
	memmove(rd->buf, rd->buf + CTL_HDR_LEN + len, rd->len - CTL_HDR_LEN - len);
	rd->len -= CTL_HDR_LEN + len;
	if (j == NULL) {
		snprintf(err, err_len, "invalid JSON at byte %d: %s", jerr.position, jerr.text);
		return MR_EPROTO;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, err_len, "frame is not a JSON object");
		return MR_EPROTO;
	}
	*msg = j;
	return 1;
}

int
ctl_request_check(const json_t *req, const char **cmd, const json_t **args, char *err,
                  size_t err_len)
{
	const char *key;
	json_t *v;
	size_t i;

	*cmd = NULL;
	*args = NULL;
	json_object_foreach((json_t *)req, key, v) {
		if (strcmp(key, "cmd") == 0) {
			if (!json_is_string(v) || json_string_length(v) == 0 ||
			    json_string_length(v) > 64) {
				snprintf(err, err_len, "\"cmd\" must be a non-empty string");
				return MR_EPROTO;
			}
			*cmd = json_string_value(v);
		} else if (strcmp(key, "args") == 0) {
			json_t *a;

			if (!json_is_array(v)) {
				snprintf(err, err_len, "\"args\" must be an array of strings");
				return MR_EPROTO;
			}
			json_array_foreach(v, i, a) {
				if (!json_is_string(a)) {
					snprintf(err, err_len, "\"args\"[%zu] is not a string", i);
					return MR_EPROTO;
				}
			}
			*args = v;
		} else {
			snprintf(err, err_len, "unexpected key \"%.32s\" in request", key);
			return MR_EPROTO;
		}
	}
	if (*cmd == NULL) {
		snprintf(err, err_len, "request has no \"cmd\"");
		return MR_EPROTO;
	}
	return 0;
}

json_t *
ctl_reply_ok(json_t *result)
{
	json_t *r = json_object();

	if (r == NULL) {
		json_decref(result);
		return NULL;
	}
	json_object_set_new(r, "ok", json_true());
	if (result != NULL)
		json_object_set_new(r, "result", result);
	return r;
}

json_t *
ctl_reply_err(int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	r = json_pack("{s:b, s:s, s:i}", "ok", 0, "error", msg, "code", code);
	return r;
}
