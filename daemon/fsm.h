/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fsm.h - the module's state machine as a table: (state, readiness, event,
 * guard) -> (actions, next state, next readiness). Pure: no I/O, no logging;
 * cluster.c feeds it events, runs the actions in order and logs every
 * transition. Every row is unit-tested (tests/unit/test_fsm.c).
 *
 * While the actions of a row run, the module shows the next state as
 * Transient; when they all succeed it takes the row's readiness. When one
 * fails, the remaining ones are skipped and FSM_EV_FAILED is fed in the next
 * state (Transient). Rows are matched in order; the first whose state,
 * readiness mask, event and guard fit wins. No row: the event is ignored in
 * that state (peer info) or refused (admin commands, with a reason).
 */
#ifndef MR_FSM_H
#define MR_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mrd.h"

enum fsm_event {
	FSM_EV_START = 0,    /* mirrorctl start (or mirrord started) */
	FSM_EV_STOP,         /* mirrorctl stop: planned */
	FSM_EV_FORCESTOP,    /* mirrorctl forcestop: no handover, force scripts */
	FSM_EV_RESTART,      /* mirrorctl restart: stop_prim + start_prim here */
	FSM_EV_STOPSTART,    /* mirrorctl stopstart, or the ip checker */
	FSM_EV_SWAP,         /* mirrorctl swap, or defaultprim=<server> */
	FSM_EV_PRIM,         /* mirrorctl prim */
	FSM_EV_PRIM_FORCE,   /* mirrorctl prim --force */
	FSM_EV_SECOND,       /* mirrorctl second */
	FSM_EV_PEER,         /* peer heard, or its heartbeat info changed */
	FSM_EV_PEER_LOST,    /* no heartbeat on any network for the timeout */
	FSM_EV_START_TIMEOUT, /* started and the peer was not heard in time */
	FSM_EV_WITNESS_OK,
	FSM_EV_WITNESS_FAIL,
	FSM_EV_LINK_UP,      /* replication link paired */
	FSM_EV_LINK_DOWN,
	FSM_EV_HANDOVER,     /* the primary peer drained and asks this node to take over */
	FSM_EV_INTF_DOWN,    /* intf checker: the VIP's interface is down */
	FSM_EV_INTF_UP,
	FSM_EV_VIP_LOST,     /* ip checker: the held VIP vanished */
	FSM_EV_VIP_BUSY,     /* taking the VIP: another host answers for it */
	FSM_EV_FAILED,       /* an action of the running transition failed */
	FSM_EV__COUNT
};

enum fsm_action {
	FSM_A_NONE = 0,
	FSM_A_PRESTART,      /* script prestart */
	FSM_A_POSTSTOP,      /* scripts stop_both (+force), poststop */
	FSM_A_TRANSITION,    /* script transition */
	FSM_A_ARM_START,     /* start timer: FSM_EV_START_TIMEOUT unless the peer is heard */
	FSM_A_NEW_GEN,       /* start a new data generation (prim by admin) */
	FSM_A_MOUNT_PRIM,    /* shims read-write + replication engine */
	FSM_A_MOUNT_SECOND,  /* shims read-only + apply engine */
	FSM_A_UNMOUNT,       /* engines stopped, shims unmounted */
	FSM_A_DROP_LINK,     /* drop the replication link now (ops complete locally) */
	FSM_A_WITNESS,       /* split-brain check: then WITNESS_OK or _FAIL */
	FSM_A_VIP_TAKE,      /* probe, add, announce (fails if another host has it) */
	FSM_A_VIP_RELEASE,
	FSM_A_START_PRIM,    /* scripts start_both, start_prim */
	FSM_A_STOP_PRIM,     /* scripts stop_prim, then stop_prim force */
	FSM_A_START_SECOND,  /* scripts start_both, start_second */
	FSM_A_STOP_SECOND,   /* scripts stop_second, then stop_second force */
	FSM_A_DRAIN,         /* application stopped: wait for every op acknowledged */
	FSM_A_HANDOVER,      /* tell the peer to take over; wait until it is primary */
	FSM_A_WAIT_LINK,     /* if the peer is becoming SECOND: wait for the link (bounded) */
	FSM_A_MARK_STALE,    /* this node's data is no longer up to date (persisted) */
	FSM_A__COUNT
};

#define FSM_MAX_ACTIONS 10

/* What the guards look at; filled by cluster.c before each event. */
struct fsm_view {
	bool uptodate;      /* local data is the latest this node knows of */
	bool has_history;   /* local generation seq > 0 */
	bool knows_newest;  /* last stop was clean while primary without peer */
	bool failover;      /* effective failover switch */
	bool intf_ok;       /* intf checker */
	bool has_witness;   /* <splitbrain> configured */
	bool peer_heard;
	enum mrd_state peer_state;
	enum mrd_readiness peer_readiness;
	bool peer_uptodate;
	int gen_cmp;        /* enum meta_cmp of local vs peer (when heard) */
	bool peer_splitbrain; /* the peer says we diverged */
	bool prefer_me;     /* equal data: defaultprim / lastprim / node order say this node */
	bool handover_ok;   /* FSM_EV_HANDOVER: peer's handover seq == ours */
	bool rejoin_blocked; /* applying failed here: no automatic rejoin (admin: second) */
};

enum fsm_guard {
	FSM_G_ANY = 0,
	FSM_G_PEER_PRIMARY,  /* peer heard as PRIM or ALONE */
	FSM_G_REJOIN,        /* ...and this node may join it on its own */
	FSM_G_ELECT_ME,      /* election: this node becomes primary */
	FSM_G_ELECT_PEER,    /* election: the peer does; wait for it */
	FSM_G_ELECT_ADMIN,   /* election: nobody may decide alone */
	FSM_G_KNOWS_NEWEST,
	FSM_G_CAN_FAILOVER,  /* uptodate, failover on, interface up */
	FSM_G_CAN_FAILOVER_WITNESS, /* ... and a witness must be checked first */
	FSM_G_PRIM_ALLOWED,  /* admin prim: peer not primary, data not known stale */
	FSM_G_PEER_NOT_PRIMARY,
	FSM_G_PEER_SECOND,   /* peer heard as SECOND */
	FSM_G_HAS_WITNESS,
	FSM_G_HANDOVER_OK,
	FSM_G_PEER_ALIVE_NOT_PRIMARY, /* peer heard, stopped/waiting without handover */
	FSM_G_SPLITBRAIN,    /* peer heard and data diverged */
	FSM_G__COUNT
};

/* Readiness masks for rows. */
#define FSM_R_NOTREADY  (1u << MRD_NOTREADY)
#define FSM_R_TRANSIENT (1u << MRD_TRANSIENT)
#define FSM_R_READY     (1u << MRD_READY)
#define FSM_R_ANY       (FSM_R_NOTREADY | FSM_R_TRANSIENT | FSM_R_READY)

struct fsm_row {
	enum mrd_state state;
	unsigned ready_mask;
	enum fsm_event event;
	enum fsm_guard guard;
	enum fsm_action actions[FSM_MAX_ACTIONS]; /* FSM_A_NONE-terminated */
	enum mrd_state next;
	enum mrd_readiness next_ready;
	const char *message; /* for `mirrorctl status` */
};

/* The table, for tests and documentation. */
extern const struct fsm_row fsm_table[];
extern const size_t fsm_table_len;

/* The first matching row, or NULL. Pure. */
const struct fsm_row *fsm_lookup(enum mrd_state st, enum mrd_readiness rd, enum fsm_event ev,
                                 const struct fsm_view *v);

/* Does guard g hold for view v? Pure. */
bool fsm_guard_holds(enum fsm_guard g, const struct fsm_view *v);

/* Is ev an admin command (a miss is refused rather than ignored)? */
bool fsm_event_is_command(enum fsm_event ev);

/* Why an admin command has no row here (for the refusal message). Pure. */
const char *fsm_refusal(enum mrd_state st, enum fsm_event ev, const struct fsm_view *v);

/* Election between two nodes both in WAIT: FSM_G_ELECT_ME, _PEER or _ADMIN,
 * with a reason. Pure. */
enum fsm_guard fsm_elect(const struct fsm_view *v, const char **why);

const char *fsm_event_name(enum fsm_event ev);
const char *fsm_action_name(enum fsm_action a);

#endif
