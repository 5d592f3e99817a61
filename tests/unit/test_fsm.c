/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_fsm - the state machine table: every row is reachable (some view and
 * readiness select it), and the rules admins rely on hold row by row:
 * election, failover, witness, handover, refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fsm.h"
#include "meta.h"

/* A healthy pair: both up to date, equal generations, everything on. */
static struct fsm_view
healthy(void)
{
	return (struct fsm_view){
		.uptodate = true,
		.has_history = true,
		.failover = true,
		.intf_ok = true,
		.peer_heard = true,
		.peer_state = MRD_PRIM,
		.peer_readiness = MRD_READY,
		.peer_uptodate = true,
		.gen_cmp = META_EQUAL,
	};
}

static const struct fsm_row *
look(enum mrd_state st, enum mrd_readiness rd, enum fsm_event ev, const struct fsm_view *v)
{
	return fsm_lookup(st, rd, ev, v);
}

static bool
has_action(const struct fsm_row *r, enum fsm_action a)
{
	for (size_t i = 0; i < FSM_MAX_ACTIONS && r->actions[i] != FSM_A_NONE; i++)
		if (r->actions[i] == a)
			return true;
	return false;
}

/* Index of action a in row r, or -1. */
static int
action_pos(const struct fsm_row *r, enum fsm_action a)
{
	for (int i = 0; i < FSM_MAX_ACTIONS && r->actions[i] != FSM_A_NONE; i++)
		if (r->actions[i] == a)
			return i;
	return -1;
}

/* Every row is selected by at least one (view, readiness): no dead rows. The
 * views enumerate every combination of the fields the guards read. */
static void
every_row_is_reachable(void **state)
{
	static const enum mrd_state peer_states[] = { MRD_STOP, MRD_WAIT, MRD_ALONE, MRD_PRIM,
		                                      MRD_SECOND };
	bool *found = calloc(fsm_table_len, sizeof(*found));
	size_t n_found = 0;

	(void)state;
	assert_non_null(found);
	for (unsigned bits = 0; bits < (1u << 12) && n_found < fsm_table_len; bits++) {
		for (size_t ps = 0; ps < 5; ps++) {
			for (int pr = 0; pr < 3; pr++) {
				for (int gc = 0; gc < 4; gc++) {
					struct fsm_view v = {
						.uptodate = bits & 1,
						.has_history = (bits >> 1) & 1,
						.knows_newest = (bits >> 2) & 1,
						.failover = (bits >> 3) & 1,
						.intf_ok = (bits >> 4) & 1,
						.has_witness = (bits >> 5) & 1,
						.peer_heard = (bits >> 6) & 1,
						.peer_uptodate = (bits >> 7) & 1,
						.peer_splitbrain = (bits >> 8) & 1,
						.prefer_me = (bits >> 9) & 1,
						.handover_ok = (bits >> 10) & 1,
						.rejoin_blocked = (bits >> 11) & 1,
						.peer_state = peer_states[ps],
						.peer_readiness = (enum mrd_readiness)pr,
						.gen_cmp = gc,
					};

					for (size_t i = 0; i < fsm_table_len; i++) {
						const struct fsm_row *r = &fsm_table[i];

						if (found[i])
							continue;
						for (int rd = 0; rd < 3; rd++) {
							if ((r->ready_mask & (1u << rd)) &&
							    look(r->state, (enum mrd_readiness)rd,
							         r->event, &v) == r) {
								found[i] = true;
								n_found++;
								break;
							}
						}
					}
				}
			}
		}
	}
	for (size_t i = 0; i < fsm_table_len; i++)
		if (!found[i])
			fprintf(stderr, "row %zu (%s, event %s) is unreachable\n", i,
			        mrd_state_name(fsm_table[i].state),
			        fsm_event_name(fsm_table[i].event));
	assert_int_equal(n_found, fsm_table_len);
	free(found);
}

/* Structural rules, row by row. */
static void
every_row_is_well_formed(void **state)
{
	(void)state;
	for (size_t i = 0; i < fsm_table_len; i++) {
		const struct fsm_row *r = &fsm_table[i];
		bool primary_next = r->next == MRD_ALONE || r->next == MRD_PRIM;
		int take = action_pos(r, FSM_A_VIP_TAKE), start = action_pos(r, FSM_A_START_PRIM);
		int stop = action_pos(r, FSM_A_STOP_PRIM), drain = action_pos(r, FSM_A_DRAIN);
		int rel = action_pos(r, FSM_A_VIP_RELEASE), ho = action_pos(r, FSM_A_HANDOVER);

		assert_non_null(r->message);
		/* the application starts only after the VIP was taken (probe first) */
		if (start >= 0 && r->state != MRD_ALONE && r->state != MRD_PRIM)
			assert_true(take >= 0 && take < start);
		/* a row that makes a non-primary primary takes the VIP */
		if (primary_next && r->state != MRD_ALONE && r->state != MRD_PRIM)
			assert_true(take >= 0);
		/* a row that leaves the primary role releases the VIP */
		if ((r->state == MRD_ALONE || r->state == MRD_PRIM) && !primary_next &&
		    r->event != FSM_EV_VIP_BUSY) /* a failed take holds nothing */
			assert_true(rel >= 0);
		/* a handover: application stopped, stream drained, VIP released, then handover */
		if (drain >= 0) {
			assert_true(stop >= 0 && stop < drain);
			assert_true(rel > drain && ho > rel);
		}
		/* every row ends with a real state; Transient only for waits */
		assert_true(r->next <= MRD_SECOND);
	}
}

static void
start_and_election(void **state)
{
	struct fsm_view v = healthy();
	const struct fsm_row *r;
	const char *why;

	(void)state;
	r = look(MRD_STOP, MRD_NOTREADY, FSM_EV_START, &v);
	assert_non_null(r);
	assert_int_equal(r->next, MRD_WAIT);
	assert_true(has_action(r, FSM_A_PRESTART));
	assert_true(has_action(r, FSM_A_ARM_START));

	/* the peer is primary: join as SECOND (Transient until paired) */
	r = look(MRD_WAIT, MRD_TRANSIENT, FSM_EV_PEER, &v);
	assert_int_equal(r->next, MRD_SECOND);
	assert_int_equal(r->next_ready, MRD_TRANSIENT);
	assert_true(has_action(r, FSM_A_MOUNT_SECOND));
	r = look(MRD_SECOND, MRD_TRANSIENT, FSM_EV_LINK_UP, &v);
	assert_int_equal(r->next, MRD_SECOND);
	assert_int_equal(r->next_ready, MRD_READY);

	/* a node whose apply failed does not rejoin while blocked (until the
	 * cluster's rejoin timer, bounded by maxloop); `second` does */
	v.rejoin_blocked = true;
	assert_null(look(MRD_WAIT, MRD_NOTREADY, FSM_EV_PEER, &v));
	assert_int_equal(look(MRD_WAIT, MRD_NOTREADY, FSM_EV_SECOND, &v)->next, MRD_SECOND);
	v.rejoin_blocked = false;

	/* both waiting, this node ahead and up to date: elected */
	v.peer_state = MRD_WAIT;
	v.peer_readiness = MRD_TRANSIENT;
	v.gen_cmp = META_AHEAD;
	assert_int_equal(fsm_elect(&v, &why), FSM_G_ELECT_ME);
	r = look(MRD_WAIT, MRD_TRANSIENT, FSM_EV_PEER, &v);
	assert_int_equal(r->next, MRD_ALONE);
	/* behind: wait for the peer */
	v.gen_cmp = META_BEHIND;
	r = look(MRD_WAIT, MRD_TRANSIENT, FSM_EV_PEER, &v);
	assert_int_equal(r->next, MRD_WAIT);
	assert_int_equal(r->next_ready, MRD_TRANSIENT);
	/* ahead but not up to date (stopped mid-resync): nobody decides alone */
	v.gen_cmp = META_AHEAD;
	v.uptodate = false;
	r = look(MRD_WAIT, MRD_TRANSIENT, FSM_EV_PEER, &v);
	assert_int_equal(r->next, MRD_WAIT);
	assert_int_equal(r->next_ready, MRD_NOTREADY);
	/* first start: no history on either side */
	v = healthy();
	v.peer_state = MRD_WAIT;
	v.has_history = false;
	v.uptodate = v.peer_uptodate = false;
	assert_int_equal(fsm_elect(&v, &why), FSM_G_ELECT_ADMIN);
	assert_non_null(strstr(why, "first start"));
	r = look(MRD_WAIT, MRD_TRANSIENT, FSM_EV_PEER, &v);
	assert_int_equal(r->next_ready, MRD_NOTREADY);
	assert_non_null(strstr(r->message, "mirrorctl prim"));
	/* ...until prim on one node, which starts a generation */
	r = look(MRD_WAIT, MRD_NOTREADY, FSM_EV_PRIM, &v);
	assert_int_equal(r->next, MRD_ALONE);
	assert_true(has_action(r, FSM_A_NEW_GEN));
	/* equal data: the preferred node wins, deterministically on both sides */
	v = healthy();
	v.peer_state = MRD_WAIT;
	v.prefer_me = true;
	assert_int_equal(fsm_elect(&v, NULL), FSM_G_ELECT_ME);
	v.prefer_me = false;
	assert_int_equal(fsm_elect(&v, NULL), FSM_G_ELECT_PEER);
	/* split brain: nobody moves */
	v.gen_cmp = META_DIVERGED;
	r = look(MRD_WAIT, MRD_TRANSIENT, FSM_EV_PEER, &v);
	assert_int_equal(r->next_ready, MRD_NOTREADY);
	assert_non_null(strstr(r->message, "SPLIT BRAIN"));
	/* the peer says split brain although generations look ordered */
	v.gen_cmp = META_BEHIND;
	v.peer_splitbrain = true;
	r = look(MRD_WAIT, MRD_TRANSIENT, FSM_EV_PEER, &v);
	assert_non_null(strstr(r->message, "SPLIT BRAIN"));
}

static void
start_without_peer(void **state)
{
	struct fsm_view v = healthy();
	const struct fsm_row *r;

	(void)state;
	v.peer_heard = false;
	v.knows_newest = true;
	r = look(MRD_WAIT, MRD_TRANSIENT, FSM_EV_START_TIMEOUT, &v);
	assert_int_equal(r->next, MRD_ALONE);
	v.knows_newest = false;
	r = look(MRD_WAIT, MRD_TRANSIENT, FSM_EV_START_TIMEOUT, &v);
	assert_int_equal(r->next, MRD_WAIT);
	assert_int_equal(r->next_ready, MRD_NOTREADY);
	assert_non_null(strstr(r->message, "mirrorctl prim"));
	/* not up to date: prim refused, prim --force accepted */
	v.uptodate = false;
	assert_null(look(MRD_WAIT, MRD_NOTREADY, FSM_EV_PRIM, &v));
	assert_non_null(strstr(fsm_refusal(MRD_WAIT, FSM_EV_PRIM, &v), "--force"));
	r = look(MRD_WAIT, MRD_NOTREADY, FSM_EV_PRIM_FORCE, &v);
	assert_int_equal(r->next, MRD_ALONE);
	/* prim refused while the peer is primary, even forced */
	v.peer_heard = true;
	v.peer_state = MRD_ALONE;
	assert_null(look(MRD_WAIT, MRD_NOTREADY, FSM_EV_PRIM_FORCE, &v));
	assert_null(look(MRD_STOP, MRD_NOTREADY, FSM_EV_PRIM, &v));
}

static void
failover_rules(void **state)
{
	struct fsm_view v = healthy();
	const struct fsm_row *r;

	(void)state;
	v.peer_heard = false;
	/* no witness configured: take over at once */
	r = look(MRD_SECOND, MRD_READY, FSM_EV_PEER_LOST, &v);
	assert_int_equal(r->next, MRD_ALONE);
	assert_true(has_action(r, FSM_A_VIP_TAKE));
	assert_true(action_pos(r, FSM_A_VIP_TAKE) < action_pos(r, FSM_A_START_PRIM));
	/* a witness: check it first */
	v.has_witness = true;
	r = look(MRD_SECOND, MRD_READY, FSM_EV_PEER_LOST, &v);
	assert_int_equal(r->next, MRD_SECOND);
	assert_true(has_action(r, FSM_A_WITNESS));
	r = look(MRD_SECOND, MRD_TRANSIENT, FSM_EV_WITNESS_OK, &v);
	assert_int_equal(r->next, MRD_ALONE);
	r = look(MRD_SECOND, MRD_TRANSIENT, FSM_EV_WITNESS_FAIL, &v);
	assert_int_equal(r->next, MRD_WAIT);
	assert_int_equal(r->next_ready, MRD_NOTREADY);
	/* failover off, not up to date, interface down, behind: WAIT */
	v.has_witness = false;
	v.failover = false;
	assert_int_equal(look(MRD_SECOND, MRD_READY, FSM_EV_PEER_LOST, &v)->next, MRD_WAIT);
	v.failover = true;
	v.uptodate = false;
	assert_int_equal(look(MRD_SECOND, MRD_READY, FSM_EV_PEER_LOST, &v)->next, MRD_WAIT);
	v.uptodate = true;
	v.intf_ok = false;
	assert_int_equal(look(MRD_SECOND, MRD_READY, FSM_EV_PEER_LOST, &v)->next, MRD_WAIT);
	v.intf_ok = true;
	v.gen_cmp = META_BEHIND;
	assert_int_equal(look(MRD_SECOND, MRD_READY, FSM_EV_PEER_LOST, &v)->next, MRD_WAIT);
	v.gen_cmp = META_EQUAL;
	/* the VIP answered by another host: never taken */
	r = look(MRD_ALONE, MRD_TRANSIENT, FSM_EV_VIP_BUSY, &v);
	assert_int_equal(r->next, MRD_WAIT);
	assert_false(has_action(r, FSM_A_START_PRIM));
	/* a primary losing the peer drops the link at once, then checks the witness */
	v.has_witness = true;
	r = look(MRD_PRIM, MRD_READY, FSM_EV_PEER_LOST, &v);
	assert_int_equal(action_pos(r, FSM_A_DROP_LINK), 0);
	assert_true(has_action(r, FSM_A_WITNESS));
	r = look(MRD_ALONE, MRD_TRANSIENT, FSM_EV_WITNESS_FAIL, &v);
	assert_int_equal(r->next, MRD_WAIT);
	assert_true(has_action(r, FSM_A_STOP_PRIM));
	assert_true(has_action(r, FSM_A_VIP_RELEASE));
	r = look(MRD_ALONE, MRD_TRANSIENT, FSM_EV_WITNESS_OK, &v);
	assert_int_equal(r->next, MRD_ALONE);
	assert_int_equal(r->next_ready, MRD_READY);
	/* a primary that saw the peer as primary too recovers when it no longer is */
	v = healthy();
	v.peer_state = MRD_ALONE;
	assert_int_equal(look(MRD_ALONE, MRD_READY, FSM_EV_PEER, &v)->next_ready, MRD_NOTREADY);
	v.peer_state = MRD_SECOND;
	assert_int_equal(look(MRD_ALONE, MRD_NOTREADY, FSM_EV_PEER, &v)->next_ready, MRD_READY);
	assert_int_equal(look(MRD_ALONE, MRD_NOTREADY, FSM_EV_LINK_UP, &v)->next, MRD_PRIM);
	/* the primary stopped (not transient, no handover): the SECOND takes over */
	v = healthy();
	v.peer_state = MRD_STOP;
	v.peer_readiness = MRD_NOTREADY;
	assert_int_equal(look(MRD_SECOND, MRD_READY, FSM_EV_PEER, &v)->next, MRD_ALONE);
	/* ...but not while the peer is still in a transition (a handover is coming) */
	v.peer_readiness = MRD_TRANSIENT;
	assert_null(look(MRD_SECOND, MRD_READY, FSM_EV_PEER, &v));
}

static void
planned_moves(void **state)
{
	struct fsm_view v = healthy();
	const struct fsm_row *r;

	(void)state;
	v.peer_state = MRD_SECOND;
	r = look(MRD_PRIM, MRD_READY, FSM_EV_SWAP, &v);
	assert_int_equal(r->next, MRD_SECOND);
	assert_true(action_pos(r, FSM_A_STOP_PRIM) < action_pos(r, FSM_A_DRAIN));
	assert_true(action_pos(r, FSM_A_DRAIN) < action_pos(r, FSM_A_VIP_RELEASE));
	assert_true(action_pos(r, FSM_A_MOUNT_SECOND) < action_pos(r, FSM_A_HANDOVER));
	r = look(MRD_PRIM, MRD_READY, FSM_EV_STOP, &v);
	assert_int_equal(r->next, MRD_STOP);
	assert_true(has_action(r, FSM_A_HANDOVER));
	assert_true(has_action(r, FSM_A_MARK_STALE));
	/* the SECOND takes over only with every op applied */
	v.peer_state = MRD_STOP;
	v.handover_ok = true;
	r = look(MRD_SECOND, MRD_READY, FSM_EV_HANDOVER, &v);
	assert_int_equal(r->next, MRD_ALONE);
	assert_true(action_pos(r, FSM_A_WAIT_LINK) < action_pos(r, FSM_A_START_PRIM));
	v.handover_ok = false;
	r = look(MRD_SECOND, MRD_READY, FSM_EV_HANDOVER, &v);
	assert_int_equal(r->next, MRD_WAIT);
	/* no secondary: swap refused, stop without handover */
	v = healthy();
	v.peer_heard = false;
	assert_null(look(MRD_PRIM, MRD_READY, FSM_EV_SWAP, &v));
	assert_null(look(MRD_ALONE, MRD_READY, FSM_EV_SWAP, &v));
	assert_null(look(MRD_SECOND, MRD_READY, FSM_EV_SWAP, &v));
	assert_non_null(strstr(fsm_refusal(MRD_SECOND, FSM_EV_SWAP, &v), "on the primary"));
	r = look(MRD_ALONE, MRD_READY, FSM_EV_STOP, &v);
	assert_false(has_action(r, FSM_A_HANDOVER));
	assert_true(has_action(r, FSM_A_VIP_RELEASE));
	/* restart: the application only, the state stays */
	r = look(MRD_ALONE, MRD_READY, FSM_EV_RESTART, &v);
	assert_int_equal(r->next, MRD_ALONE);
	assert_null(look(MRD_SECOND, MRD_READY, FSM_EV_RESTART, &v));
	/* a SECOND that stops is no longer up to date */
	assert_true(has_action(look(MRD_SECOND, MRD_READY, FSM_EV_STOP, &v), FSM_A_MARK_STALE));
	/* commands are refused, peer info ignored, where no row exists */
	assert_true(fsm_event_is_command(FSM_EV_SWAP));
	assert_false(fsm_event_is_command(FSM_EV_PEER));
	assert_null(look(MRD_STOP, MRD_NOTREADY, FSM_EV_STOP, &v));
}

static void
names(void **state)
{
	(void)state;
	for (int e = 0; e < FSM_EV__COUNT; e++)
		assert_string_not_equal(fsm_event_name((enum fsm_event)e), "?");
	for (int a = 0; a < FSM_A__COUNT; a++)
		assert_string_not_equal(fsm_action_name((enum fsm_action)a), "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_row_is_reachable),
		cmocka_unit_test(every_row_is_well_formed),
		cmocka_unit_test(start_and_election),
		cmocka_unit_test(start_without_peer),
		cmocka_unit_test(failover_rules),
		cmocka_unit_test(planned_moves),
		cmocka_unit_test(names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
