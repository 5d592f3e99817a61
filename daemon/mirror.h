/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mirror.h - one module's mirroring on this node: the shims mounted over the
 * replicated directories, the replication engine (repl.c, primary) or the
 * apply engine (apply.c, secondary), and the peer link callbacks that join
 * them. Loop thread, except the shims' own FUSE threads.
 *
 * Until the state-machine issue lands, the role comes from `mirrord --role
 * primary|secondary` (no role: nothing is mounted and the module stays STOP).
 * The state machine will call mirror_start()/mirror_stop() on transitions.
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

/* Mount the shims and start the engine for role (no-op for MIRROR_NONE).
 * Returns 0 or -errno with the reason logged. */
int mirror_start(struct mrd *m, enum mirror_role role);

/* Unmount and stop; completes every pending op first. Accepts a module that
 * never started. */
void mirror_stop(struct mrd *m);

/* Add a "replication" object to a `status` result. */
void mirror_status(struct mrd *m, json_t *result);

#endif
