/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cluster.h - runs the module's state machine on this node: feeds fsm.c the
 * events from heartbeats (hb.c), the replication link (mirror.c), checkers
 * (vip_check), timers and admin commands, and carries out each row's actions
 * in order: restart scripts (script.c), mounts and engines (mirror.c), the
 * VIP (vip.c), the split-brain witness (witness.c) and the persistent
 * metadata (meta.c). Loop thread, except cluster__diverged (any thread).
 */
#ifndef MR_CLUSTER_H
#define MR_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsm.h"

struct mrd;

/* Load the metadata, start heartbeats, resolve the VIP, then (unless
 * stopped) start the module: STOP -> WAIT. initial: FSM_EV_START, or
 * FSM_EV_PRIM_FORCE (mirrord --role primary), or FSM_EV__COUNT to stay
 * STOPped. Returns 0 or -errno / MR_ECONFIG with the reason logged. */
int cluster_start(struct mrd *m, enum fsm_event initial);

/* An admin command (start, stop, swap, prim...). Returns 0 with what will
 * happen in msg, or -EPERM / -EBUSY with the reason in msg. */
int cluster_command(struct mrd *m, enum fsm_event ev, char *msg, size_t msg_len);

/* mirrorctl failover on|off (persisted). */
int cluster_set_failover(struct mrd *m, bool on, char *msg, size_t msg_len);

/* `mirrorctl set RESOURCE up|down` (custom checkers) and `mirrorctl checker|errd
 * on|off` (persisted). Return 0 or -errno with msg. */
int cluster_set_resource(struct mrd *m, const char *res, const char *value, char *msg,
                         size_t msg_len);
int cluster_set_monitoring(struct mrd *m, bool errd, bool on, char *msg, size_t msg_len);

/* The replication link paired / was lost (mirror.c). */
void cluster_link(struct mrd *m, bool up);

/* The apply engine failed: this copy diverged (mirror.c). */
void cluster_apply_failed(struct mrd *m, const char *why);

/* The primary's engine completed its first op without the peer: start a new
 * data generation (persisted before that op completes) and tell the peer.
 * Any thread (the engine's lock is held). */
void cluster__diverged(struct mrd *m);

/* The generation in the replication HELLO: seq then id, big-endian. */
void cluster_hello_gen(struct mrd *m, uint8_t out[16]);
/* Is the peer's HELLO generation ours? */
bool cluster_hello_gen_equal(struct mrd *m, const uint8_t gen[16]);
/* Do the two generations show a split brain (both changed apart)? Then why
 * says so and the link must be refused. */
bool cluster_hello_split(struct mrd *m, const uint8_t gen[16], char *why, size_t why_len);
/* Secondary: a resync from the primary starts; this copy is not up to date
 * until it ends (then cluster_link(m, true) is called). */
void cluster_resync_begin(struct mrd *m);

/* The peer's generation from its heartbeat, and whether it says its copy is
 * exactly that generation (HB_F_EXACT): false when not heard. */
bool cluster_peer_exact(struct mrd *m, uint64_t *gen_seq, uint64_t *gen_id);

/* Secondary, before a resync: can our dirty set tell the primary where our
 * copy differs from our generation? */
enum cluster_changes {
	CLUSTER_CHANGES_NONE = 0, /* an exact copy of our generation */
	CLUSTER_CHANGES_LISTED,   /* exactly the files of our dirty set */
	CLUSTER_CHANGES_UNKNOWN,  /* anything: compare every file */
};
int cluster_own_changes(struct mrd *m);

/* The two copies are equal now: empty the dirty set, relative to our
 * current generation. */
void cluster_dirty_reset(struct mrd *m);

/* `mirrorctl resync [--full]` on the primary: a new generation, the dirty set
 * distrusted and the link dropped, so the secondary is resynced comparing
 * every file. Returns 0 or -errno with msg set. */
int cluster_force_resync(struct mrd *m, char *msg, size_t msg_len);

/* Primary: a new generation and the dirty set distrusted (why is logged), so
 * that the next pairing resyncs the secondary comparing every file. Loop
 * thread. */
void cluster_new_generation_for_resync(struct mrd *m, const char *why);

/* `mirrorctl diff`: add "diff" (what a resync would send now) to out. */
void cluster_diff(struct mrd *m, json_t *out);

/* Add the cluster view to a status result: peer, heartbeat networks, VIP,
 * witness, generation, last transition. */
void cluster_status(struct mrd *m, json_t *result);

/* Daemon shutdown: stop scripts, release the VIP, stop heartbeats. */
void cluster_stop(struct mrd *m);

#endif
