/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_ctl_proto.c - unit tests for the control-socket protocol
 * (daemon/ctl_proto.c): framing round trips, incremental feeding, size
 * limits, malformed frames, request validation and the reply builders.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_proto.h"
#include "err.h"

/* A raw frame: 4-byte big-endian length then body (which need not be JSON). */
static size_t
raw_frame(char *out, size_t cap, const char *body)
{
	size_t len = strlen(body);

	assert_true(CTL_HDR_LEN + len <= cap);
	out[0] = (char)(len >> 24);
	out[1] = (char)(len >> 16);
	out[2] = (char)(len >> 8);
	out[3] = (char)len;
	memcpy(out + CTL_HDR_LEN, body, len);
	return CTL_HDR_LEN + len;
}

static json_t *
load(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	assert_non_null(j);
	return j;
}

static void
frame_round_trip(void **state)
{
	json_t *in = load("{\"cmd\":\"status\",\"args\":[\"--full\",\"\\u00e9\"]}"), *out;
	struct ctl_rd rd;
	char *frame, err[128];
	size_t len;

	(void)state;
	assert_int_equal(ctl_frame_encode(in, &frame, &len), 0);
	assert_true(len > CTL_HDR_LEN);
	assert_int_equal(((unsigned char)frame[2] << 8 | (unsigned char)frame[3]),
	                 len - CTL_HDR_LEN);
	assert_int_equal(frame[0], 0);
	ctl_rd_init(&rd);
	assert_int_equal(ctl_rd_feed(&rd, frame, len), 0);
	assert_int_equal(ctl_rd_next(&rd, &out, err, sizeof(err)), 1);
	assert_true(json_equal(in, out));
	json_decref(out);
	assert_int_equal(rd.len, 0);
	assert_int_equal(ctl_rd_next(&rd, &out, err, sizeof(err)), 0);
	assert_null(out);
	ctl_rd_done(&rd);
	free(frame);
	json_decref(in);
}

static void
frame_fed_byte_by_byte(void **state)
{
	json_t *in = load("{\"ok\":true,\"result\":{\"state\":\"PRIM\"}}"), *out = NULL;
	struct ctl_rd rd;
	char *frame, err[128];
	size_t len, i;

	(void)state;
	assert_int_equal(ctl_frame_encode(in, &frame, &len), 0);
	ctl_rd_init(&rd);
	for (i = 0; i < len; i++) {
		assert_int_equal(ctl_rd_next(&rd, &out, err, sizeof(err)), 0);
		assert_int_equal(ctl_rd_feed(&rd, frame + i, 1), 0);
	}
	assert_int_equal(ctl_rd_next(&rd, &out, err, sizeof(err)), 1);
	assert_true(json_equal(in, out));
	json_decref(out);
	ctl_rd_done(&rd);
	free(frame);
	json_decref(in);
}

static void
two_frames_in_one_feed(void **state)
{
	char buf[256], err[128];
	struct ctl_rd rd;
	json_t *m;
	size_t n;

	(void)state;
	n = raw_frame(buf, sizeof(buf), "{\"cmd\":\"status\"}");
	n += raw_frame(buf + n, sizeof(buf) - n, "{\"cmd\":\"state\"}");
	/* and the first bytes of a third one */
	n += raw_frame(buf + n, sizeof(buf) - n, "{\"cmd\":\"log\"}") - 5;
	ctl_rd_init(&rd);
	assert_int_equal(ctl_rd_feed(&rd, buf, n), 0);
	assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), 1);
	assert_string_equal(json_string_value(json_object_get(m, "cmd")), "status");
	json_decref(m);
	assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), 1);
	assert_string_equal(json_string_value(json_object_get(m, "cmd")), "state");
	json_decref(m);
	assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), 0);
	assert_int_equal(ctl_rd_feed(&rd, "og\"}", 4), 0);
	assert_int_equal(ctl_rd_feed(&rd, "", 0), 0);
	assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), 0);
	ctl_rd_done(&rd);
}

static void
oversized_announced_length(void **state)
{
	const unsigned char hdr[4] = { 0x00, 0x01, 0x00, 0x01 }; /* 65537 */
	const unsigned char huge[4] = { 0xff, 0xff, 0xff, 0xff };
	struct ctl_rd rd;
	char err[128] = "";
	json_t *m;

	(void)state;
	ctl_rd_init(&rd);
	assert_int_equal(ctl_rd_feed(&rd, hdr, 2), 0); /* not known yet */
	assert_int_equal(ctl_rd_feed(&rd, hdr + 2, 2), MR_ETOOBIG);
	assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), MR_ETOOBIG);
	assert_null(m);
	assert_non_null(strstr(err, "exceeds"));
	ctl_rd_done(&rd);

	ctl_rd_init(&rd);
	assert_int_equal(ctl_rd_feed(&rd, huge, sizeof(huge)), MR_ETOOBIG);
	ctl_rd_done(&rd);
}

static void
max_size_frame_accepted_one_more_refused(void **state)
{
	/* {"a":"xxx..."} is 8 bytes plus the string */
	size_t n = CTL_MAX_FRAME - 8;
	char *s = calloc(1, n + 2), *frame, err[128];
	struct ctl_rd rd;
	size_t len;
	json_t *j, *out;

	(void)state;
	assert_non_null(s);
	memset(s, 'x', n);
	j = json_pack("{s:s}", "a", s);
	assert_int_equal(ctl_frame_encode(j, &frame, &len), 0);
	assert_int_equal(len, CTL_HDR_LEN + CTL_MAX_FRAME);
	ctl_rd_init(&rd);
	assert_int_equal(ctl_rd_feed(&rd, frame, len), 0);
	assert_int_equal(ctl_rd_next(&rd, &out, err, sizeof(err)), 1);
	assert_true(json_equal(j, out));
	json_decref(out);
	ctl_rd_done(&rd);
	free(frame);
	json_decref(j);

	s[n] = 'x';
	j = json_pack("{s:s}", "a", s);
	frame = NULL;
	assert_int_equal(ctl_frame_encode(j, &frame, &len), MR_ETOOBIG);
	assert_null(frame);
	json_decref(j);
	free(s);
}

static void
invalid_json_is_eproto_and_reader_recovers(void **state)
{
	char buf[128], err[128] = "";
	struct ctl_rd rd;
	json_t *m;
	size_t n;

	(void)state;
	n = raw_frame(buf, sizeof(buf), "{\"cmd\": ");
	n += raw_frame(buf + n, sizeof(buf) - n, "{\"cmd\":\"status\"}");
	ctl_rd_init(&rd);
	assert_int_equal(ctl_rd_feed(&rd, buf, n), 0);
	assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), MR_EPROTO);
	assert_null(m);
	assert_non_null(strstr(err, "invalid JSON"));
	/* the bad frame was consumed; the next one is intact */
	assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), 1);
	json_decref(m);
	ctl_rd_done(&rd);
}

static void
empty_frame_is_eproto(void **state)
{
	const char zero[4] = { 0, 0, 0, 0 };
	char err[128] = "";
	struct ctl_rd rd;
	json_t *m;

	(void)state;
	ctl_rd_init(&rd);
	assert_int_equal(ctl_rd_feed(&rd, zero, sizeof(zero)), 0);
	assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), MR_EPROTO);
	assert_true(err[0] != '\0');
	ctl_rd_done(&rd);
}

static void
non_object_json_is_eproto(void **state)
{
	static const char *const bodies[] = { "[1,2]", "\"status\"", "42", "null" };
	char buf[64], err[128];
	struct ctl_rd rd;
	json_t *m;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		err[0] = '\0';
		n = raw_frame(buf, sizeof(buf), bodies[i]);
		ctl_rd_init(&rd);
		assert_int_equal(ctl_rd_feed(&rd, buf, n), 0);
		assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), MR_EPROTO);
		assert_null(m);
		assert_true(err[0] != '\0');
		ctl_rd_done(&rd);
	}
}

static void
duplicate_keys_are_refused(void **state)
{
	char buf[64], err[128] = "";
	struct ctl_rd rd;
	json_t *m;
	size_t n;

	(void)state;
	n = raw_frame(buf, sizeof(buf), "{\"cmd\":\"a\",\"cmd\":\"b\"}");
	ctl_rd_init(&rd);
	assert_int_equal(ctl_rd_feed(&rd, buf, n), 0);
	assert_int_equal(ctl_rd_next(&rd, &m, err, sizeof(err)), MR_EPROTO);
	ctl_rd_done(&rd);
}

/* Run ctl_request_check on text; returns its code, err holds the reason. */
static int
check(const char *text, const char **cmd, const json_t **args, char *err, size_t err_len)
{
	json_t *req = load(text);
	int r;

	err[0] = '\0';
	r = ctl_request_check(req, cmd, args, err, err_len);
	json_decref(req);
	return r;
}

static void
request_check_accepts_valid(void **state)
{
	json_t *req = load("{\"cmd\":\"prim\",\"args\":[\"--force\"]}");
	const json_t *args;
	const char *cmd;
	char err[128];

	(void)state;
	assert_int_equal(ctl_request_check(req, &cmd, &args, err, sizeof(err)), 0);
	assert_string_equal(cmd, "prim");
	assert_int_equal(json_array_size(args), 1);
	json_decref(req);

	req = load("{\"cmd\":\"status\"}");
	assert_int_equal(ctl_request_check(req, &cmd, &args, err, sizeof(err)), 0);
	assert_string_equal(cmd, "status");
	assert_null(args);
	json_decref(req);
}

static void
request_check_missing_or_bad_cmd(void **state)
{
	const json_t *args;
	const char *cmd;
	char err[128];

	(void)state;
	assert_int_equal(check("{}", &cmd, &args, err, sizeof(err)), MR_EPROTO);
	assert_string_equal(err, "request has no \"cmd\"");
	assert_int_equal(check("{\"args\":[]}", &cmd, &args, err, sizeof(err)), MR_EPROTO);
	assert_int_equal(check("{\"cmd\":\"\"}", &cmd, &args, err, sizeof(err)), MR_EPROTO);
	assert_string_equal(err, "\"cmd\" must be a non-empty string");
	assert_int_equal(check("{\"cmd\":3}", &cmd, &args, err, sizeof(err)), MR_EPROTO);
	assert_int_equal(check("{\"cmd\":null}", &cmd, &args, err, sizeof(err)), MR_EPROTO);
}

static void
request_check_bad_args(void **state)
{
	const json_t *args;
	const char *cmd;
	char err[128];

	(void)state;
	assert_int_equal(check("{\"cmd\":\"x\",\"args\":[\"a\",1]}", &cmd, &args, err, sizeof(err)),
	                 MR_EPROTO);
	assert_string_equal(err, "\"args\"[1] is not a string");
	assert_int_equal(check("{\"cmd\":\"x\",\"args\":\"a\"}", &cmd, &args, err, sizeof(err)),
	                 MR_EPROTO);
	assert_string_equal(err, "\"args\" must be an array of strings");
	assert_int_equal(check("{\"cmd\":\"x\",\"args\":[[]]}", &cmd, &args, err, sizeof(err)),
	                 MR_EPROTO);
}

static void
request_check_unknown_key(void **state)
{
	const json_t *args;
	const char *cmd;
	char err[128];

	(void)state;
	assert_int_equal(
	        check("{\"cmd\":\"status\",\"verbose\":true}", &cmd, &args, err, sizeof(err)),
	        MR_EPROTO);
	assert_string_equal(err, "unexpected key \"verbose\" in request");
}

static void
reply_ok_builder(void **state)
{
	json_t *r, *expect;

	(void)state;
	r = ctl_reply_ok(json_pack("{s:s}", "state", "STOP"));
	expect = load("{\"ok\":true,\"result\":{\"state\":\"STOP\"}}");
	assert_true(json_equal(r, expect));
	json_decref(r);
	json_decref(expect);

	r = ctl_reply_ok(NULL);
	expect = load("{\"ok\":true}");
	assert_true(json_equal(r, expect));
	json_decref(r);
	json_decref(expect);
}

static void
reply_err_builder(void **state)
{
	json_t *r;

	(void)state;
	r = ctl_reply_err(MR_EPERM_PEER, "uid %d is not root", 1000);
	assert_non_null(r);
	assert_true(json_is_false(json_object_get(r, "ok")));
	assert_string_equal(json_string_value(json_object_get(r, "error")), "uid 1000 is not root");
	assert_int_equal(json_integer_value(json_object_get(r, "code")), MR_EPERM_PEER);
	assert_int_equal(json_object_size(r), 3);
	json_decref(r);
}

static void
reply_round_trips_through_frames(void **state)
{
	json_t *r = ctl_reply_err(MR_EUNKNOWN_CMD, "unknown command '%s'", "frob"), *out;
	struct ctl_rd rd;
	char *frame, err[128];
	size_t len;

	(void)state;
	assert_int_equal(ctl_frame_encode(r, &frame, &len), 0);
	ctl_rd_init(&rd);
	assert_int_equal(ctl_rd_feed(&rd, frame, len), 0);
	assert_int_equal(ctl_rd_next(&rd, &out, err, sizeof(err)), 1);
	assert_true(json_equal(r, out));
	json_decref(out);
	ctl_rd_done(&rd);
	free(frame);
	json_decref(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frame_round_trip),
		cmocka_unit_test(frame_fed_byte_by_byte),
		cmocka_unit_test(two_frames_in_one_feed),
		cmocka_unit_test(oversized_announced_length),
		cmocka_unit_test(max_size_frame_accepted_one_more_refused),
		cmocka_unit_test(invalid_json_is_eproto_and_reader_recovers),
		cmocka_unit_test(empty_frame_is_eproto),
		cmocka_unit_test(non_object_json_is_eproto),
		cmocka_unit_test(duplicate_keys_are_refused),
		cmocka_unit_test(request_check_accepts_valid),
		cmocka_unit_test(request_check_missing_or_bad_cmd),
		cmocka_unit_test(request_check_bad_args),
		cmocka_unit_test(request_check_unknown_key),
		cmocka_unit_test(reply_ok_builder),
		cmocka_unit_test(reply_err_builder),
		cmocka_unit_test(reply_round_trips_through_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
