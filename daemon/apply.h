/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * apply.h - the secondary's side of replication: op records received from the
 * primary are applied to the real replicated directories, strictly in
 * sequence order, by one apply thread (so disk I/O never blocks the loop and
 * its heartbeats), and acknowledged cumulatively.
 *
 * Peer input is untrusted: every path is checked (proto_path_check) and
 * resolved beneath its replicated root with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV); the last
 * component is never followed. A bad path or a sequence gap is a protocol
 * error (apply_push fails: the caller drops the link). An op that fails to
 * apply (ENOSPC, EIO, an unexpected EEXIST...) means this copy is no longer
 * the primary's: the apply thread stops, reports it once through fail_cb and
 * the node is no longer up to date.
 *
 * async="none": fsync/fdatasync records and writes to O_SYNC/O_DSYNC files
 * are made durable before they are acknowledged. Otherwise ops are applied
 * to the page cache ("received and applied").
 */
#ifndef MR_APPLY_H
#define MR_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "proto.h"

struct apply;

/* Loop thread: every op <= seq is applied. */
typedef void (*apply_ack_fn)(void *ctx, uint64_t seq);
/* Loop thread: applying failed; this copy diverged (reason for the log). */
typedef void (*apply_fail_fn)(void *ctx, const char *why);
/* Loop thread: a resync pass ended (RS_END seq end_seq applied); failures is
 * the number of live ops that met stale paths during it (0: the copy matches). */
typedef void (*apply_rs_fn)(void *ctx, uint64_t end_seq, uint64_t failures);

/* A resync starts from the primary's sequence number seq: continue from it.
 * Loop thread, with nothing queued (the link just came up). */
void apply_rebase(struct apply *a, uint64_t seq);

/* Loop thread: the block hashes an RS_HASHREQ asked for (hashes borrowed for
 * the call: n * PROTO_HASH_LEN bytes). */
typedef void (*apply_hashes_fn)(void *ctx, uint64_t req_seq, uint32_t block_size, uint32_t n,
                                const uint8_t *hashes);

/* Set the resync callbacks (loop thread, before records arrive). */
struct apply;
void apply_set_rs_cb(struct apply *a, apply_rs_fn fn, apply_hashes_fn hashes_fn);

/* root_fds[i]: an fd (O_PATH | O_DIRECTORY) on replicated directory i, opened
 * before anything was mounted over it; borrowed, must outlive the engine. */
int apply_new(uv_loop_t *loop, const int *root_fds, size_t n_dirs, enum conf_async async,
              uint64_t start_seq, apply_ack_fn ack_cb, apply_fail_fn fail_cb, void *ctx,
              struct apply **out);

/* Queue one received op (loop thread). The op is copied, except its data when
 * frame is not NULL: then op->data lies in that heap block, which the engine
 * takes over (and frees, also on error). Returns 0, or MR_EPROTO with the
 * reason in err (sequence gap, bad path, bad dir index). */
int apply_push(struct apply *a, const struct proto_op *op, void *frame, char *err, size_t err_len);

/* Last sequence number received (queued); what the HELLO announces. */
uint64_t apply_last_seq(const struct apply *a);

/* Last sequence number applied (any thread). */
uint64_t apply_applied_seq(const struct apply *a);

/* Has applying failed (this copy diverged)? */
bool apply_failed(const struct apply *a);

/* Stop the thread (after the ops already queued), close handles; frees
 * itself once libuv is done. */
void apply_stop(struct apply *a);

#endif
