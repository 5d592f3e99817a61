/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mirror.h - one module's mirroring on this node: the shims mounted over the
 * replicated directories, the replication engine (repl.c, primary) or the
 * apply engine (apply.c, secondary), and the peer link callbacks that join
 * them. Loop thread, except the shims' own FUSE threads.
 *
 * The state machine (cluster.c) calls mirror_start()/mirror_stop() on
 * transitions; this module never changes the module state itself.
 */
#ifndef MR_MIRROR_H
#define MR_MIRROR_H

#include <jansson.h>

#include "peer.h"

struct mrd;

enum mirror_role {
	MIRROR_NONE = 0,
	MIRROR_PRIMARY,
	MIRROR_SECONDARY,
};

/* The peer link callbacks; ctx is the struct mrd. */
extern const struct peer_cbs mirror_peer_cbs;

/* Parse "primary" / "secondary". Returns the role or -EINVAL. */
int mirror_role_parse(const char *s);

/* Mount the shims and start the engine for role (no-op for MIRROR_NONE);
 * sequence numbers continue after start_seq. Returns 0 or -errno with the
 * reason logged. */
int mirror_start(struct mrd *m, enum mirror_role role, uint64_t start_seq);

enum mirror_role mirror_current_role(const struct mrd *m);

/* Primary: refuse new changes (EROFS) so that a drain really ends the stream
 * before a handover. */
void mirror_freeze(struct mrd *m);

/* Primary, once drained (no change in flight, mirror_seqs().mutating 0): the
 * engine takes nothing more; a straggler fails with EROFS. */
void mirror_freeze_engine(struct mrd *m);
bool mirror_link_up(const struct mrd *m);

/* The data generation the peer's HELLO named for the current link (16 bytes,
 * as in struct proto_hello); false when no link is up. */
bool mirror_link_generation(const struct mrd *m, uint8_t gen[16]);

struct mirror_seqs {
	uint64_t last_seq;     /* primary: assigned; secondary: received */
	uint64_t applied_seq;  /* secondary */
	uint64_t inflight_ops; /* primary: not yet acknowledged */
	unsigned mutating;     /* primary: changes past the shims' read-only check, not
	                        * yet submitted */
	bool diverged;         /* primary: completed ops without the peer */
	bool failed;           /* secondary: applying failed */
};
void mirror_seqs(const struct mrd *m, struct mirror_seqs *out);

/* Unmount and stop; completes every pending op first. Accepts a module that
 * never started. */
void mirror_stop(struct mrd *m);

/* `mirrorctl verify` on the primary: compare both copies online, change
 * nothing; the result appears in status ("replication"."verify"). Returns 0
 * or -errno with msg set. */
int mirror_verify(struct mrd *m, char *msg, size_t msg_len);

/* Periodic (the cluster's check timer): advance the pre-write log's
 * checkpoint while the primary is paired (plog.h). */
void mirror_tick(struct mrd *m);

/* Add a "replication" object to a `status` result. */
void mirror_status(struct mrd *m, json_t *result);

#endif
