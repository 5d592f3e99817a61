/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * resync.h - the primary's side of a resync: makes the secondary's copy match
 * this node's while the application keeps writing (see resync.c for the
 * algorithm). One thread per resync; events reach the loop thread.
 */
#ifndef MR_RESYNC_H
#define MR_RESYNC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct repl;
struct resync;

/* Loop thread: the resync finished (ok: the secondary reported a clean pass;
 * otherwise it stopped: the link went down or the passes did not converge). */
typedef void (*resync_done_fn)(void *ctx, bool ok, const char *why);

/* Start passes over the real directories (root_fds: O_PATH|O_DIRECTORY fds on
 * the replicated directories, opened before the shims were mounted; borrowed,
 * must outlive the resync). With dirty (borrowed, trusted for the target's
 * generation: see dirty.h), only the files of the set are looked at and only
 * their marked blocks sent; without, every file is compared by block
 * checksums. Returns 0 or -errno. Loop thread. */
struct dirty;
/* <rfs reicompress>: zlib level 1 for RS_DATA. */
enum resync_compress {
	RESYNC_COMPRESS_AUTO = 0, /* when the link is slower than zlib (a bandwidth cap) */
	RESYNC_COMPRESS_OFF,
	RESYNC_COMPRESS_ON, /* whenever a chunk shrinks by 10% or more */
};

struct resync_opts {
	unsigned ahead;       /* files hashed ahead of the one sent (<rfs nbrei>), >= 1 */
	uint32_t block;       /* bytes per checksum (<rfs reiblocksize>): a power of two,
	                       * 4 KiB .. 1 MiB; other values: 4 KiB */
	enum resync_compress compress;
	uint64_t bw_kbytes_s; /* cap on resync data sent, KB/s (<rfs reiallowedbw>); 0: none */
	bool verify;          /* `mirrorctl verify`: compare only, change nothing (see
	                       * resync.c), results in resync_status() under "verify" */
	/* Hold or let go of the name lock of directory dir's shim (shim_ns_hold),
	 * from the resync thread; NULL: open files whose name was lost are not
	 * looked for (see rename_lost() in resync.c). */
	void (*ns_hold)(void *ctx, uint8_t dir, bool hold);
	void *ns_ctx;
};
int resync_start(uv_loop_t *loop, struct repl *r, const int *root_fds, size_t n_dirs,
                 struct dirty *dirty, const struct resync_opts *opts, resync_done_fn done,
                 void *ctx, struct resync **out);

/* The secondary answered an RS_HASHREQ (PROTO_RS_HASHES). Loop thread. */
struct proto_rs_hashes;
void resync_on_hashes(struct resync *rs, const struct proto_rs_hashes *h);

/* The secondary answered an RS_END (PROTO_RS_RESULT). Loop thread. */
void resync_on_result(struct resync *rs, uint64_t end_seq, uint64_t failures);

/* Has the thread finished (the result is kept until resync_stop)? */
bool resync_finished(struct resync *rs);

/* Add "resync": { "pass", "files", "bytes", "total_bytes", "rate_bps",
 * "eta_s", "state" } to result. Loop thread. */
void resync_status(struct resync *rs, json_t *result);

/* Stop the thread (the current pass is abandoned); frees once closed.
 * Accepts NULL. Loop thread. */
void resync_stop(struct resync *rs);

#endif
