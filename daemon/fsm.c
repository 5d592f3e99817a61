/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fsm.c - the module state machine table (see fsm.h). Pure.
 *
 * The rules, in words
 * -------------------
 * Start: STOP -> WAIT (prestart). In WAIT the node listens to heartbeats:
 *  - the peer is PRIM/ALONE: join as SECOND (Transient until the replication
 *    link pairs, then Ready and up to date);
 *  - the peer is WAIT or STOP too: election (fsm_elect) on data generations:
 *    the node with the newer generation becomes primary if it is up to date;
 *    equal data: defaultprim, then the last primary, then node order; no
 *    history on either side, or a split brain: nobody moves until an admin
 *    runs `mirrorctl prim` on the node holding the good data;
 *  - the peer is not heard within the start timeout: ALONE only if this node
 *    knows its data is the newest (its last stop was clean while primary
 *    without a peer); otherwise WAIT NotReady, naming `mirrorctl prim`.
 * Peer lost (no heartbeat on any network for the timeout):
 *  - PRIM: the replication link is dropped at once (ops waiting for the
 *    peer complete locally: the application stalls at most one heartbeat
 *    timeout), then the witness is checked: reached -> ALONE; not reached ->
 *    the application is stopped, the VIP released: WAIT NotReady;
 *  - SECOND up to date with failover on and its interface up: the witness
 *    is checked (when configured); reached -> the takeover: VIP probe and
 *    add, start_prim -> ALONE. Not reached, failover off, not up to date:
 *    WAIT NotReady. A VIP that another host still answers for is never
 *    taken: WAIT NotReady.
 * Planned moves (swap, stop of the primary, interface down on the primary):
 *  stop the application, drain the replication stream (every op
 *  acknowledged), release the VIP, then hand over: the heartbeat says so with
 *  the last sequence number, and the secondary, having applied exactly that
 *  much, takes the VIP and starts the application. Nothing acknowledged is
 *  lost and the VIP is never on two nodes.
 */
#include "fsm.h"

#include "meta.h"
#include "util.h"

#define R_ANY FSM_R_ANY
#define R_NR  FSM_R_NOTREADY
#define R_TR  FSM_R_TRANSIENT
#define R_RD  FSM_R_READY
#define R_TRD (FSM_R_TRANSIENT | FSM_R_READY)

#define A(...) { __VA_ARGS__, FSM_A_NONE }
#define NOACT  { FSM_A_NONE }

/* Becoming primary from WAIT: VIP first (never take an address another host
 * answers for), then the mount, then the application. */
#define BECOME_PRIM FSM_A_MOUNT_PRIM, FSM_A_VIP_TAKE, FSM_A_TRANSITION, FSM_A_START_PRIM
/* Failover of a SECOND. */
#define TAKEOVER                                                                                   \
	FSM_A_STOP_SECOND, FSM_A_UNMOUNT, FSM_A_MOUNT_PRIM, FSM_A_VIP_TAKE, FSM_A_TRANSITION,      \
	        FSM_A_START_PRIM
/* Leaving the primary role without a handover. */
#define LEAVE_PRIM FSM_A_STOP_PRIM, FSM_A_VIP_RELEASE, FSM_A_UNMOUNT, FSM_A_TRANSITION
/* Leaving the primary role with a handover to an up-to-date SECOND. */
#define HAND_OVER                                                                                  \
	FSM_A_STOP_PRIM, FSM_A_DRAIN, FSM_A_VIP_RELEASE, FSM_A_HANDOVER, FSM_A_UNMOUNT,            \
	        FSM_A_MARK_STALE, FSM_A_TRANSITION
#define JOIN_SECOND FSM_A_MOUNT_SECOND, FSM_A_TRANSITION, FSM_A_START_SECOND

const struct fsm_row fsm_table[] = {
	/* ---- STOP ---- */
	{ MRD_STOP, R_ANY, FSM_EV_START, FSM_G_ANY, A(FSM_A_PRESTART, FSM_A_TRANSITION, FSM_A_ARM_START),
	  MRD_WAIT, MRD_TRANSIENT, "started: waiting for the peer's heartbeat" },
	{ MRD_STOP, R_ANY, FSM_EV_PRIM, FSM_G_PRIM_ALLOWED,
	  A(FSM_A_PRESTART, FSM_A_NEW_GEN, BECOME_PRIM), MRD_ALONE, MRD_READY,
	  "primary by `mirrorctl prim`" },
	{ MRD_STOP, R_ANY, FSM_EV_PRIM_FORCE, FSM_G_PEER_NOT_PRIMARY,
	  A(FSM_A_PRESTART, FSM_A_NEW_GEN, BECOME_PRIM), MRD_ALONE, MRD_READY,
	  "primary by `mirrorctl prim --force`: this data is now the reference" },
	{ MRD_STOP, R_ANY, FSM_EV_SECOND, FSM_G_PEER_PRIMARY, A(FSM_A_PRESTART, JOIN_SECOND),
	  MRD_SECOND, MRD_TRANSIENT, "secondary by `mirrorctl second`: pairing with the primary" },
	{ MRD_STOP, R_ANY, FSM_EV_FAILED, FSM_G_ANY, NOACT, MRD_STOP, MRD_NOTREADY,
	  "stopped after a failure" },

	/* ---- WAIT ---- */
	{ MRD_WAIT, R_ANY, FSM_EV_PEER, FSM_G_SPLITBRAIN, NOACT, MRD_WAIT, MRD_NOTREADY,
	  "SPLIT BRAIN: both nodes changed data apart; run `mirrorctl prim` on the node to keep" },
	{ MRD_WAIT, R_TRD, FSM_EV_PEER, FSM_G_REJOIN, A(JOIN_SECOND), MRD_SECOND,
	  MRD_TRANSIENT, "joining the primary as secondary" },
	{ MRD_WAIT, R_NR, FSM_EV_PEER, FSM_G_REJOIN, A(JOIN_SECOND), MRD_SECOND,
	  MRD_TRANSIENT, "heartbeats back: joining the primary as secondary" },
	{ MRD_WAIT, R_TR, FSM_EV_PEER, FSM_G_ELECT_ME, A(BECOME_PRIM), MRD_ALONE, MRD_READY,
	  "elected primary: newest data" },
	{ MRD_WAIT, R_TR, FSM_EV_PEER, FSM_G_ELECT_PEER, NOACT, MRD_WAIT, MRD_TRANSIENT,
	  "waiting for the peer to become primary (it holds the newest data)" },
	{ MRD_WAIT, R_TR, FSM_EV_PEER, FSM_G_ELECT_ADMIN, NOACT, MRD_WAIT, MRD_NOTREADY,
	  "neither node may become primary on its own: run `mirrorctl prim` on the node "
	  "holding the good data" },
	{ MRD_WAIT, R_TR, FSM_EV_START_TIMEOUT, FSM_G_KNOWS_NEWEST, A(BECOME_PRIM), MRD_ALONE,
	  MRD_READY, "peer not heard; this node stopped last as primary: ALONE" },
	{ MRD_WAIT, R_TR, FSM_EV_START_TIMEOUT, FSM_G_ANY, NOACT, MRD_WAIT, MRD_NOTREADY,
	  "peer not heard and this node cannot tell its data is the newest: start the peer, "
	  "or run `mirrorctl prim` if this node holds the good data" },
	{ MRD_WAIT, R_ANY, FSM_EV_PEER_LOST, FSM_G_ANY, NOACT, MRD_WAIT, MRD_NOTREADY,
	  "peer lost while waiting" },
	{ MRD_WAIT, R_ANY, FSM_EV_PRIM, FSM_G_PRIM_ALLOWED, A(FSM_A_NEW_GEN, BECOME_PRIM), MRD_ALONE,
	  MRD_READY, "primary by `mirrorctl prim`" },
	{ MRD_WAIT, R_ANY, FSM_EV_PRIM_FORCE, FSM_G_PEER_NOT_PRIMARY, A(FSM_A_NEW_GEN, BECOME_PRIM),
	  MRD_ALONE, MRD_READY, "primary by `mirrorctl prim --force`: this data is now the reference" },
	{ MRD_WAIT, R_ANY, FSM_EV_SECOND, FSM_G_PEER_PRIMARY, A(JOIN_SECOND), MRD_SECOND,
	  MRD_TRANSIENT, "secondary by `mirrorctl second`: pairing with the primary" },
	{ MRD_WAIT, R_NR, FSM_EV_INTF_UP, FSM_G_ANY, A(FSM_A_ARM_START), MRD_WAIT, MRD_TRANSIENT,
	  "interface up again: starting over" },
	{ MRD_WAIT, R_ANY, FSM_EV_INTF_DOWN, FSM_G_ANY, NOACT, MRD_WAIT, MRD_NOTREADY,
	  "interface down: waiting for it" },
	{ MRD_WAIT, R_ANY, FSM_EV_STOP, FSM_G_ANY,
	  A(FSM_A_UNMOUNT, FSM_A_POSTSTOP, FSM_A_TRANSITION), MRD_STOP, MRD_NOTREADY,
	  "stopped by `mirrorctl stop`" },
	{ MRD_WAIT, R_ANY, FSM_EV_VIP_BUSY, FSM_G_ANY, A(FSM_A_UNMOUNT), MRD_WAIT, MRD_NOTREADY,
	  "another host answers for the virtual IP: not taking over" },
	{ MRD_WAIT, R_ANY, FSM_EV_FAILED, FSM_G_ANY, A(FSM_A_UNMOUNT), MRD_WAIT, MRD_NOTREADY,
	  "a step failed (see the log)" },

	/* ---- SECOND ---- */
	{ MRD_SECOND, R_TR, FSM_EV_LINK_UP, FSM_G_ANY, NOACT, MRD_SECOND, MRD_READY,
	  "secondary: up to date, applying the primary's changes" },
	{ MRD_SECOND, R_RD, FSM_EV_LINK_DOWN, FSM_G_ANY, NOACT, MRD_SECOND, MRD_TRANSIENT,
	  "replication link down: waiting for it" },
	{ MRD_SECOND, R_ANY, FSM_EV_PEER_LOST, FSM_G_CAN_FAILOVER_WITNESS, A(FSM_A_WITNESS),
	  MRD_SECOND, MRD_TRANSIENT, "peer lost: checking the split-brain witness" },
	{ MRD_SECOND, R_ANY, FSM_EV_PEER_LOST, FSM_G_CAN_FAILOVER, A(TAKEOVER), MRD_ALONE, MRD_READY,
	  "failover: the primary was lost" },
	{ MRD_SECOND, R_ANY, FSM_EV_PEER_LOST, FSM_G_ANY,
	  A(FSM_A_STOP_SECOND, FSM_A_UNMOUNT, FSM_A_TRANSITION), MRD_WAIT, MRD_NOTREADY,
	  "peer lost and this node may not take over (failover off, not up to date or "
	  "interface down)" },
	{ MRD_SECOND, R_TR, FSM_EV_WITNESS_OK, FSM_G_ANY, A(TAKEOVER), MRD_ALONE, MRD_READY,
	  "failover: the primary was lost, witness reached" },
	{ MRD_SECOND, R_TR, FSM_EV_WITNESS_FAIL, FSM_G_ANY,
	  A(FSM_A_STOP_SECOND, FSM_A_UNMOUNT, FSM_A_TRANSITION), MRD_WAIT, MRD_NOTREADY,
	  "peer lost and the split-brain witness unreachable: not taking over; waiting for "
	  "heartbeats or `mirrorctl prim`" },
	{ MRD_SECOND, R_ANY, FSM_EV_HANDOVER, FSM_G_HANDOVER_OK, A(FSM_A_STOP_SECOND, FSM_A_UNMOUNT,
	  FSM_A_MOUNT_PRIM, FSM_A_VIP_TAKE, FSM_A_WAIT_LINK, FSM_A_TRANSITION, FSM_A_START_PRIM),
	  MRD_ALONE, MRD_READY, "planned switch-over: taking over from the peer" },
	{ MRD_SECOND, R_ANY, FSM_EV_HANDOVER, FSM_G_ANY,
	  A(FSM_A_STOP_SECOND, FSM_A_UNMOUNT, FSM_A_TRANSITION), MRD_WAIT, MRD_NOTREADY,
	  "the peer handed over but this node did not apply all it sent: not taking over" },
	{ MRD_SECOND, R_ANY, FSM_EV_PEER, FSM_G_PEER_ALIVE_NOT_PRIMARY, A(TAKEOVER), MRD_ALONE,
	  MRD_READY, "failover: the primary stopped" },
	{ MRD_SECOND, R_ANY, FSM_EV_PRIM, FSM_G_PEER_NOT_PRIMARY, A(FSM_A_NEW_GEN, TAKEOVER),
	  MRD_ALONE, MRD_READY, "primary by `mirrorctl prim`" },
	{ MRD_SECOND, R_ANY, FSM_EV_PRIM_FORCE, FSM_G_PEER_NOT_PRIMARY, A(FSM_A_NEW_GEN, TAKEOVER),
	  MRD_ALONE, MRD_READY, "primary by `mirrorctl prim --force`" },
	{ MRD_SECOND, R_ANY, FSM_EV_STOP, FSM_G_ANY,
	  A(FSM_A_STOP_SECOND, FSM_A_UNMOUNT, FSM_A_MARK_STALE, FSM_A_POSTSTOP, FSM_A_TRANSITION),
	  MRD_STOP, MRD_NOTREADY, "stopped by `mirrorctl stop`" },
	{ MRD_SECOND, R_ANY, FSM_EV_STOPSTART, FSM_G_ANY,
	  A(FSM_A_STOP_SECOND, FSM_A_UNMOUNT, FSM_A_TRANSITION, FSM_A_ARM_START), MRD_WAIT,
	  MRD_TRANSIENT, "stopstart: starting over" },
	{ MRD_SECOND, R_ANY, FSM_EV_FAILED, FSM_G_ANY,
	  A(FSM_A_STOP_SECOND, FSM_A_UNMOUNT, FSM_A_TRANSITION), MRD_WAIT, MRD_NOTREADY,
	  "secondary failed (see the log): `mirrorctl second` resyncs it from the primary" },

	/* ---- ALONE ---- */
	{ MRD_ALONE, R_ANY, FSM_EV_LINK_UP, FSM_G_ANY, A(FSM_A_TRANSITION), MRD_PRIM, MRD_READY,
	  "primary: mirroring to the secondary" },
	{ MRD_ALONE, R_ANY, FSM_EV_PEER_LOST, FSM_G_HAS_WITNESS, A(FSM_A_WITNESS), MRD_ALONE,
	  MRD_TRANSIENT, "peer lost: checking the split-brain witness" },
	{ MRD_ALONE, R_TR, FSM_EV_WITNESS_OK, FSM_G_ANY, NOACT, MRD_ALONE, MRD_READY,
	  "primary without secondary: witness reached" },
	{ MRD_ALONE, R_TR, FSM_EV_WITNESS_FAIL, FSM_G_ANY, A(LEAVE_PRIM), MRD_WAIT, MRD_NOTREADY,
	  "peer lost and the split-brain witness unreachable: application stopped, VIP "
	  "released; waiting for heartbeats or `mirrorctl prim`" },
	{ MRD_ALONE, R_ANY, FSM_EV_PEER, FSM_G_PEER_PRIMARY, NOACT, MRD_ALONE, MRD_NOTREADY,
	  "SPLIT BRAIN: the peer is primary too; choose with `mirrorctl second` on one node" },
	{ MRD_ALONE, R_NR, FSM_EV_PEER, FSM_G_PEER_NOT_PRIMARY, NOACT, MRD_ALONE, MRD_READY,
	  "primary without secondary: the peer is not primary any more" },
	{ MRD_ALONE, R_ANY, FSM_EV_SECOND, FSM_G_PEER_PRIMARY,
	  A(FSM_A_STOP_PRIM, FSM_A_VIP_RELEASE, FSM_A_UNMOUNT, FSM_A_MARK_STALE, JOIN_SECOND),
	  MRD_SECOND, MRD_TRANSIENT, "secondary by `mirrorctl second`: this node's changes are "
	  "given up" },
	{ MRD_ALONE, R_ANY, FSM_EV_FAILED, FSM_G_ANY, A(LEAVE_PRIM), MRD_STOP, MRD_NOTREADY,
	  "start as primary failed (see the log): stopped here" },
	{ MRD_ALONE, R_TR, FSM_EV_VIP_BUSY, FSM_G_ANY, A(FSM_A_UNMOUNT, FSM_A_TRANSITION), MRD_WAIT,
	  MRD_NOTREADY, "another host answers for the virtual IP: not taking over" },

	/* ---- PRIM ---- */
	{ MRD_PRIM, R_ANY, FSM_EV_LINK_DOWN, FSM_G_ANY, A(FSM_A_TRANSITION), MRD_ALONE, MRD_READY,
	  "primary without secondary: replication link lost" },
	{ MRD_PRIM, R_ANY, FSM_EV_PEER_LOST, FSM_G_HAS_WITNESS, A(FSM_A_DROP_LINK, FSM_A_WITNESS),
	  MRD_ALONE, MRD_TRANSIENT, "peer lost: checking the split-brain witness" },
	{ MRD_PRIM, R_ANY, FSM_EV_PEER_LOST, FSM_G_ANY, A(FSM_A_DROP_LINK, FSM_A_TRANSITION),
	  MRD_ALONE, MRD_READY, "primary without secondary: peer lost" },
	{ MRD_PRIM, R_ANY, FSM_EV_SWAP, FSM_G_PEER_SECOND,
	  A(FSM_A_STOP_PRIM, FSM_A_DRAIN, FSM_A_VIP_RELEASE, FSM_A_UNMOUNT, FSM_A_MOUNT_SECOND,
	    FSM_A_HANDOVER, FSM_A_TRANSITION, FSM_A_START_SECOND),
	  MRD_SECOND, MRD_TRANSIENT, "swap: the peer is primary now" },
	{ MRD_PRIM, R_ANY, FSM_EV_INTF_DOWN, FSM_G_PEER_SECOND, A(HAND_OVER), MRD_WAIT,
	  MRD_NOTREADY, "interface down: handed over to the peer" },
	{ MRD_PRIM, R_ANY, FSM_EV_STOP, FSM_G_PEER_SECOND, A(HAND_OVER, FSM_A_POSTSTOP), MRD_STOP,
	  MRD_NOTREADY, "stopped by `mirrorctl stop`: handed over to the peer" },
	{ MRD_PRIM, R_ANY, FSM_EV_STOPSTART, FSM_G_PEER_SECOND, A(HAND_OVER, FSM_A_ARM_START),
	  MRD_WAIT, MRD_TRANSIENT, "stopstart: handed over to the peer, starting over" },
	{ MRD_PRIM, R_ANY, FSM_EV_VIP_LOST, FSM_G_PEER_SECOND, A(HAND_OVER, FSM_A_ARM_START),
	  MRD_WAIT, MRD_TRANSIENT, "the virtual IP vanished: stopstart, handed over to the peer" },
	{ MRD_PRIM, R_ANY, FSM_EV_PEER, FSM_G_PEER_PRIMARY, NOACT, MRD_PRIM, MRD_NOTREADY,
	  "SPLIT BRAIN: the peer is primary too" },
	{ MRD_PRIM, R_NR, FSM_EV_PEER, FSM_G_PEER_NOT_PRIMARY, NOACT, MRD_PRIM, MRD_READY,
	  "primary: the peer is not primary any more" },
	{ MRD_PRIM, R_ANY, FSM_EV_FAILED, FSM_G_ANY, A(LEAVE_PRIM), MRD_STOP, MRD_NOTREADY,
	  "a step failed as primary (see the log): stopped here" },

	/* ---- both primary states (ALONE rows also serve PRIM) ---- */
	{ MRD_ALONE, R_ANY, FSM_EV_RESTART, FSM_G_ANY, A(FSM_A_STOP_PRIM, FSM_A_START_PRIM),
	  MRD_ALONE, MRD_READY, "restarted the application (`mirrorctl restart`)" },
	{ MRD_PRIM, R_ANY, FSM_EV_RESTART, FSM_G_ANY, A(FSM_A_STOP_PRIM, FSM_A_START_PRIM),
	  MRD_PRIM, MRD_READY, "restarted the application (`mirrorctl restart`)" },
	{ MRD_ALONE, R_ANY, FSM_EV_INTF_DOWN, FSM_G_ANY, A(LEAVE_PRIM), MRD_WAIT, MRD_NOTREADY,
	  "interface down: application stopped, VIP released" },
	{ MRD_PRIM, R_ANY, FSM_EV_INTF_DOWN, FSM_G_ANY, A(LEAVE_PRIM), MRD_WAIT, MRD_NOTREADY,
	  "interface down: application stopped, VIP released" },
	{ MRD_ALONE, R_ANY, FSM_EV_STOP, FSM_G_ANY, A(LEAVE_PRIM, FSM_A_POSTSTOP), MRD_STOP,
	  MRD_NOTREADY, "stopped by `mirrorctl stop`" },
	{ MRD_PRIM, R_ANY, FSM_EV_STOP, FSM_G_ANY, A(LEAVE_PRIM, FSM_A_POSTSTOP), MRD_STOP,
	  MRD_NOTREADY, "stopped by `mirrorctl stop`" },
	{ MRD_ALONE, R_ANY, FSM_EV_STOPSTART, FSM_G_ANY, A(LEAVE_PRIM, FSM_A_ARM_START), MRD_WAIT,
	  MRD_TRANSIENT, "stopstart: starting over" },
	{ MRD_PRIM, R_ANY, FSM_EV_STOPSTART, FSM_G_ANY, A(LEAVE_PRIM, FSM_A_ARM_START), MRD_WAIT,
	  MRD_TRANSIENT, "stopstart: starting over" },
	{ MRD_ALONE, R_RD, FSM_EV_VIP_LOST, FSM_G_ANY, A(LEAVE_PRIM, FSM_A_ARM_START), MRD_WAIT,
	  MRD_TRANSIENT, "the virtual IP vanished: stopstart" },
	{ MRD_PRIM, R_ANY, FSM_EV_VIP_LOST, FSM_G_ANY, A(LEAVE_PRIM, FSM_A_ARM_START), MRD_WAIT,
	  MRD_TRANSIENT, "the virtual IP vanished: stopstart" },
};
const size_t fsm_table_len = ARRAY_SIZE(fsm_table);

static const char *const state_names[] = {
	[MRD_STOP] = "STOP", [MRD_WAIT] = "WAIT",     [MRD_ALONE] = "ALONE",
	[MRD_PRIM] = "PRIM", [MRD_SECOND] = "SECOND",
};

static const char *const readiness_names[] = {
	[MRD_NOTREADY] = "NotReady",
	[MRD_TRANSIENT] = "Transient",
	[MRD_READY] = "Ready",
};

const char *
mrd_state_name(enum mrd_state s)
{
	return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

const char *
mrd_readiness_name(enum mrd_readiness r)
{
	return (unsigned)r < ARRAY_SIZE(readiness_names) ? readiness_names[r] : "?";
}

static bool
is_primary(enum mrd_state s)
{
	return s == MRD_PRIM || s == MRD_ALONE;
}

enum fsm_guard
fsm_elect(const struct fsm_view *v, const char **why)
{
	const char *dummy;

	if (why == NULL)
		why = &dummy;
	if (!v->peer_heard) {
		*why = "peer not heard";
		return FSM_G_ELECT_ADMIN;
	}
	if (is_primary(v->peer_state)) {
		*why = "the peer is primary";
		return FSM_G_ELECT_PEER;
	}
	if (v->gen_cmp == META_DIVERGED || v->peer_splitbrain) {
		*why = "split brain: both nodes changed data apart";
		return FSM_G_ELECT_ADMIN;
	}
	switch (v->gen_cmp) {
	case META_AHEAD:
		*why = v->uptodate ? "this node has the newer data"
		                   : "this node has the newer data but is not up to date";
		return v->uptodate ? FSM_G_ELECT_ME : FSM_G_ELECT_ADMIN;
	case META_BEHIND:
		if (v->peer_state == MRD_STOP) {
			*why = "the peer has newer data but is stopped: start it";
			return FSM_G_ELECT_ADMIN;
		}
		*why = v->peer_uptodate ? "the peer has the newer data"
		                        : "the peer has newer data but is not up to date";
		return v->peer_uptodate ? FSM_G_ELECT_PEER : FSM_G_ELECT_ADMIN;
	default:
		break;
	}
	/* equal generations */
	if (!v->has_history) {
		*why = "first start: no node has history";
		return FSM_G_ELECT_ADMIN;
	}
	if (v->uptodate && (!v->peer_uptodate || v->peer_state == MRD_STOP)) {
		*why = "only this node is up to date";
		return FSM_G_ELECT_ME;
	}
	if (!v->uptodate && v->peer_uptodate) {
		*why = v->peer_state == MRD_STOP ? "only the peer is up to date, and it is stopped"
		                                 : "only the peer is up to date";
		return v->peer_state == MRD_STOP ? FSM_G_ELECT_ADMIN : FSM_G_ELECT_PEER;
	}
	if (!v->uptodate) {
		*why = "neither node is up to date";
		return FSM_G_ELECT_ADMIN;
	}
	*why = v->prefer_me ? "equal data: this node is preferred (defaultprim, last primary, "
	                      "node order)"
	                    : "equal data: the peer is preferred";
	return v->prefer_me ? FSM_G_ELECT_ME : FSM_G_ELECT_PEER;
}

bool
fsm_guard_holds(enum fsm_guard g, const struct fsm_view *v)
{
	bool peer_prim = v->peer_heard && is_primary(v->peer_state);
	bool can_failover = v->uptodate && v->failover && v->intf_ok && v->gen_cmp == META_EQUAL &&
	                    !v->peer_splitbrain;

	switch (g) {
	case FSM_G_ANY:
		return true;
	case FSM_G_PEER_PRIMARY:
		return peer_prim;
	case FSM_G_REJOIN:
		return peer_prim && !v->rejoin_blocked && v->intf_ok;
	case FSM_G_ELECT_ME:
	case FSM_G_ELECT_PEER:
	case FSM_G_ELECT_ADMIN:
		return !peer_prim && v->peer_heard && fsm_elect(v, NULL) == g;
	case FSM_G_KNOWS_NEWEST:
		return v->knows_newest && v->uptodate && v->intf_ok;
	case FSM_G_CAN_FAILOVER:
		return can_failover;
	case FSM_G_CAN_FAILOVER_WITNESS:
		return can_failover && v->has_witness;
	case FSM_G_PRIM_ALLOWED:
		return !peer_prim && (v->uptodate || !v->has_history || v->gen_cmp == META_DIVERGED ||
		                      v->peer_splitbrain) &&
		       !(v->peer_heard && v->gen_cmp == META_BEHIND);
	case FSM_G_PEER_NOT_PRIMARY:
		return !peer_prim;
	case FSM_G_PEER_SECOND:
		return v->peer_heard && v->peer_state == MRD_SECOND &&
		       v->peer_readiness == MRD_READY && v->peer_uptodate;
	case FSM_G_HAS_WITNESS:
		return v->has_witness;
	case FSM_G_HANDOVER_OK:
		return v->handover_ok && v->intf_ok;
	case FSM_G_PEER_ALIVE_NOT_PRIMARY:
		return v->peer_heard && (v->peer_state == MRD_STOP || v->peer_state == MRD_WAIT) &&
		       v->peer_readiness != MRD_TRANSIENT && can_failover;
	case FSM_G_SPLITBRAIN:
		return v->peer_heard && (v->gen_cmp == META_DIVERGED || v->peer_splitbrain);
	case FSM_G__COUNT:
		break;
	}
	return false;
}

const struct fsm_row *
fsm_lookup(enum mrd_state st, enum mrd_readiness rd, enum fsm_event ev, const struct fsm_view *v)
{
	size_t i;

	for (i = 0; i < fsm_table_len; i++) {
		const struct fsm_row *r = &fsm_table[i];

		if (r->state == st && (r->ready_mask & (1u << rd)) != 0 && r->event == ev &&
		    fsm_guard_holds(r->guard, v))
			return r;
	}
	return NULL;
}

bool
fsm_event_is_command(enum fsm_event ev)
{
	switch (ev) {
	case FSM_EV_START:
	case FSM_EV_STOP:
	case FSM_EV_FORCESTOP:
	case FSM_EV_RESTART:
	case FSM_EV_STOPSTART:
	case FSM_EV_SWAP:
	case FSM_EV_PRIM:
	case FSM_EV_PRIM_FORCE:
	case FSM_EV_SECOND:
		return true;
	default:
		return false;
	}
}

const char *
fsm_refusal(enum mrd_state st, enum fsm_event ev, const struct fsm_view *v)
{
	bool peer_prim = v->peer_heard && is_primary(v->peer_state);

	switch (ev) {
	case FSM_EV_START:
		return "the module is already started";
	case FSM_EV_STOP:
	case FSM_EV_FORCESTOP:
		return "the module is already stopped";
	case FSM_EV_RESTART:
		return "restart only applies to a primary (PRIM or ALONE)";
	case FSM_EV_STOPSTART:
		return "stopstart needs a started module";
	case FSM_EV_SWAP:
		if (st != MRD_PRIM)
			return "swap is run on the primary (PRIM), with the peer SECOND (Ready)";
		return "the peer is not an up-to-date SECOND (Ready)";
	case FSM_EV_PRIM:
		if (is_primary(st))
			return "this node is already primary";
		if (peer_prim)
			return "the peer is primary; run `mirrorctl swap` on it instead";
		return "this node's data is not up to date (the peer has newer data, or a resync "
		       "did not finish); `mirrorctl prim --force` makes it the reference anyway";
	case FSM_EV_PRIM_FORCE:
		if (is_primary(st))
			return "this node is already primary";
		return "the peer is primary; stop it first";
	case FSM_EV_SECOND:
		if (st == MRD_SECOND)
			return "this node is already secondary";
		return "the peer is not primary (PRIM or ALONE)";
	default:
		return "not possible in this state";
	}
}

static const char *const event_names[FSM_EV__COUNT] = {
	[FSM_EV_START] = "start",
	[FSM_EV_STOP] = "stop",
	[FSM_EV_FORCESTOP] = "forcestop",
	[FSM_EV_RESTART] = "restart",
	[FSM_EV_STOPSTART] = "stopstart",
	[FSM_EV_SWAP] = "swap",
	[FSM_EV_PRIM] = "prim",
	[FSM_EV_PRIM_FORCE] = "prim_force",
	[FSM_EV_SECOND] = "second",
	[FSM_EV_PEER] = "peer",
	[FSM_EV_PEER_LOST] = "peer_lost",
	[FSM_EV_START_TIMEOUT] = "start_timeout",
	[FSM_EV_WITNESS_OK] = "witness_ok",
	[FSM_EV_WITNESS_FAIL] = "witness_fail",
	[FSM_EV_LINK_UP] = "link_up",
	[FSM_EV_LINK_DOWN] = "link_down",
	[FSM_EV_HANDOVER] = "handover",
	[FSM_EV_INTF_DOWN] = "intf_down",
	[FSM_EV_INTF_UP] = "intf_up",
	[FSM_EV_VIP_LOST] = "vip_lost",
	[FSM_EV_VIP_BUSY] = "vip_busy",
	[FSM_EV_FAILED] = "failed",
};

static const char *const action_names[FSM_A__COUNT] = {
	[FSM_A_NONE] = "none",
	[FSM_A_PRESTART] = "prestart",
	[FSM_A_POSTSTOP] = "poststop",
	[FSM_A_TRANSITION] = "transition",
	[FSM_A_ARM_START] = "arm_start",
	[FSM_A_NEW_GEN] = "new_gen",
	[FSM_A_MOUNT_PRIM] = "mount_prim",
	[FSM_A_MOUNT_SECOND] = "mount_second",
	[FSM_A_UNMOUNT] = "unmount",
	[FSM_A_DROP_LINK] = "drop_link",
	[FSM_A_WITNESS] = "witness",
	[FSM_A_VIP_TAKE] = "vip_take",
	[FSM_A_VIP_RELEASE] = "vip_release",
	[FSM_A_START_PRIM] = "start_prim",
	[FSM_A_STOP_PRIM] = "stop_prim",
	[FSM_A_START_SECOND] = "start_second",
	[FSM_A_STOP_SECOND] = "stop_second",
	[FSM_A_DRAIN] = "drain",
	[FSM_A_HANDOVER] = "handover",
	[FSM_A_WAIT_LINK] = "wait_link",
	[FSM_A_MARK_STALE] = "mark_stale",
};

const char *
fsm_event_name(enum fsm_event ev)
{
	return (unsigned)ev < FSM_EV__COUNT && event_names[ev] != NULL ? event_names[ev] : "?";
}

const char *
fsm_action_name(enum fsm_action a)
{
	return (unsigned)a < FSM_A__COUNT && action_names[a] != NULL ? action_names[a] : "?";
}
