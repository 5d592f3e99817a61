/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * repl.h - the replication engine on the primary: takes op records from the
 * shim (FUSE worker threads), gives them one total order of sequence numbers,
 * sends them over the peer link and completes them (the application's call
 * returns) when the cumulative ACK covers them.
 *
 * Guarantees per <rfs async>: "second" and "none" complete an op once the
 * secondary applied it (for "none" the secondary also made fsync/O_SYNC data
 * durable before acking); "async" completes at once and keeps the record
 * queued, bounded by asynclag bytes. In-flight bytes are bounded by
 * maxinflight: producers block. Without a link, ops complete locally and the
 * divergence is recorded (repl__diverged(): the resync issue will log the
 * files); if the peer stops acking for sendtimeout, the link is dropped and
 * the primary carries on alone.
 *
 * Threads: repl_submit() on FUSE workers; everything else on the loop thread.
 */
#ifndef MR_REPL_H
#define MR_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"
#include "proto.h"
#include "shim.h"

struct repl;
struct peer;

struct repl_stats {
	bool link_up;
	bool diverged;      /* ops completed without the peer */
	uint64_t last_seq;  /* last sequence number assigned */
	uint64_t acked_seq; /* last sequence number the peer applied */
	uint64_t inflight_ops;
	uint64_t inflight_bytes;
	uint64_t alone_ops; /* ops completed locally only */
};

/* Create the engine (loop thread). n_dirs replicated directories; the shim of
 * directory i must be given repl_submit and repl_dir_ctx(r, i). */
int repl_new(uv_loop_t *loop, const struct conf_rfs *rfs, size_t n_dirs, uint64_t start_seq,
             struct repl **out);

/* Called once when the engine first completes an op without the peer (the
 * data diverge from the peer's from here on), with the engine's lock held,
 * on any thread, before that op completes. */
typedef void (*repl_diverge_fn)(void *ctx);

/* Handover: from now on nothing gets a sequence number; ops are completed
 * locally (the shim is read-only by then: only closes arrive, which change
 * no data). Any thread. */
void repl_freeze(struct repl *r);
void repl_set_diverge_cb(struct repl *r, repl_diverge_fn fn, void *ctx);

/* The submit context for replicated directory i. */
void *repl_dir_ctx(struct repl *r, size_t i);

/* shim_submit_fn: FUSE worker thread, shim ordering lock held. May block
 * (backpressure). Returns false when there is no link (the shim completes). */
bool repl_submit(void *ctx, struct shim_op *op);

/* The peer link (borrowed; may be NULL). */
/* The dirty set this engine feeds: every op's open-file names, and what the
 * ops completed without the peer changed. Before the link comes up. */
struct dirty;
void repl_set_dirty(struct repl *r, struct dirty *d);

void repl_set_peer(struct repl *r, struct peer *p);

/* Can the link resume with a secondary that applied up to peer_last_seq?
 * 0, or -1 with the reason in why (nothing missed is the only case now). */
int repl_check_pairing(struct repl *r, uint64_t peer_last_seq, char *why, size_t why_len);

/* ---- resync (resync.c, its own thread) ----
 * repl_rs_lock() takes the engine's order lock (waiting for room under the
 * in-flight ceiling): live ops wait, so what the caller reads from the real
 * directory now is exactly what the records it queues next carry, in their
 * place in the one ordered stream. repl_rs_queue_locked() copies op (path,
 * path2, data), gives it the next sequence number and returns it, or 0 when
 * the link is gone (the pass must stop). */
void repl_rs_lock(struct repl *r);
uint64_t repl_rs_queue_locked(struct repl *r, uint8_t dir, const struct proto_op *op);
void repl_rs_unlock(struct repl *r);
/* RS_DATA without a copy: a data area of PROTO_MAX_DATA bytes (no lock
 * needed; NULL when out of memory) that the caller fills, then queues with
 * repl_rs_queue_area_locked() (op->data = the area, no path2), which owns it
 * from then on whatever it returns; or gives back unused. */
void *repl_rs_data_area(struct repl *r);
uint64_t repl_rs_queue_area_locked(struct repl *r, uint8_t dir, const struct proto_op *op);
void repl_rs_data_area_free(struct repl *r, void *area);
/* Renames and links taken so far (a pass during which some happened must run
 * again: a moved directory may have escaped it). */
uint64_t repl_rs_ns_changes(struct repl *r);

/* Namespace ops taken so far (any that can change which inode a name leads
 * to); with repl_rs_lock held. Unchanged: a name checked earlier still leads
 * to the same inode. */
uint64_t repl_rs_ns_ops_locked(struct repl *r);
/* Live ops given a seq so far (the second with repl_rs_lock held). Unchanged
 * from before a read without the lock to the queueing of its record: no live
 * op came between, so the bytes read are those of the record's point of the
 * stream. */
uint64_t repl_rs_live_ops(struct repl *r);
uint64_t repl_rs_live_ops_locked(struct repl *r);
/* With repl_rs_lock held (or the engine's lock): queue a re-binding of each
 * file the application holds open (PROTO_OPEN_REBIND), so that the ops
 * through its descriptors find it on the peer. At each link-up, and at the
 * start of each resync pass (a name the pass had not yet made can be bound
 * now). */
void repl_rebind_locked(struct repl *r);
/* Is an open file whose name was lost (one of its hard links removed: see
 * dirty_each_open) perhaps the file (dev, ino) (ino 0: is there any)? Any
 * thread, cheap when none. */
bool repl_open_lost(struct repl *r, uint64_t dev, uint64_t ino);
/* With repl_rs_lock and the shim's name lock (shim_ns_hold) held: the file
 * (dev, ino) is named path now. Open files known by a lost name of it are
 * named path again and every open file is re-bound (repl_rebind_locked). */
void repl_open_found_locked(struct repl *r, uint8_t dir, uint64_t dev, uint64_t ino,
                            const char *path);
/* The peer's copy matches again: clear the divergence. */
void repl_resynced(struct repl *r);

void repl_link_up(struct repl *r);
void repl_link_down(struct repl *r, const char *why);
void repl_on_ack(struct repl *r, uint64_t seq);
void repl_on_writable(struct repl *r);

void repl_get_stats(struct repl *r, struct repl_stats *st);

/* Complete everything, close handles; frees itself after the last close. */
void repl_stop(struct repl *r);

#endif
