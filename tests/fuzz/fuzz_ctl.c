/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz_ctl.c - libFuzzer target for the control-socket protocol
 * (daemon/ctl_proto.c).
 *
 * The input is the byte stream a client sends. It is fed to a struct ctl_rd
 * in chunks whose sizes come from a PRNG seeded with a hash of the input (so
 * the same input always splits the same way), draining whole messages after
 * every chunk the way ctl_srv.c does, until the stream ends or the reader
 * reports an error (the daemon would then close the connection). Each
 * message goes through ctl_request_check(); messages that re-encode within
 * the frame limit must parse back to an equal JSON value.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_ctl: check failed at line %d: %s\n", __LINE__,       \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static uint64_t
hash(const uint8_t *data, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	size_t i;

	for (i = 0; i < size; i++) {
		h ^= data[i];
		h *= 0x100000001b3ull;
	}
	return h | 1;
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Chunk sizes: mostly tiny (split headers and UTF-8), sometimes large. */
static size_t
chunk_len(uint64_t *s, size_t left)
{
	uint64_t r = xorshift(s);
	size_t n;

	switch (r & 3) {
	case 0:
		n = 1;
		break;
	case 1:
		n = (size_t)(r >> 8) % 8 + 1;
		break;
	case 2:
		n = (size_t)(r >> 8) % 512 + 1;
		break;
	default:
		n = left;
		break;
	}
	return n < left ? n : left;
}

static void
check_message(json_t *msg)
{
	const json_t *args;
	const char *cmd;
	char err[256] = "", *frame;
	size_t len;
	int r;

	r = ctl_request_check(msg, &cmd, &args, err, sizeof(err));
	if (r == 0) {
		CHECK(cmd != NULL && cmd[0] != '\0');
		CHECK(args == NULL || json_is_array(args));
	} else {
		CHECK(r == MR_EPROTO && err[0] != '\0');
	}

	/* Re-encode and read back in one piece. */
	r = ctl_frame_encode(msg, &frame, &len);
	if (r == 0) {
		struct ctl_rd rd;
		json_t *back = NULL;

		ctl_rd_init(&rd);
		CHECK(ctl_rd_feed(&rd, frame, len) == 0);
		CHECK(ctl_rd_next(&rd, &back, err, sizeof(err)) == 1);
		CHECK(json_equal(msg, back));
		CHECK(rd.len == 0);
		json_decref(back);
		ctl_rd_done(&rd);
		free(frame);
	} else {
		CHECK(r == MR_ETOOBIG || r == -ENOMEM);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t seed = hash(data, size);
	struct ctl_rd rd;
	size_t pos = 0;
	int r = 0;

	ctl_rd_init(&rd);
	while (pos < size && r >= 0) {
		size_t n = chunk_len(&seed, size - pos);

		r = ctl_rd_feed(&rd, data + pos, n);
		pos += n;
		CHECK(rd.len <= rd.cap);
		while (r >= 0) {
			char err[256] = "";
			json_t *msg = NULL;

			r = ctl_rd_next(&rd, &msg, err, sizeof(err));
			if (r <= 0) {
				CHECK(msg == NULL);
				if (r < 0)
					CHECK(err[0] != '\0');
				if (r == 0)
					break;
				continue; /* r < 0 ends both loops */
			}
			CHECK(msg != NULL && json_is_object(msg));
			check_message(msg);
			json_decref(msg);
		}
	}
	ctl_rd_done(&rd);
	return 0;
}
