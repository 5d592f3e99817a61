/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cluster.c - the state machine's executor (see cluster.h and fsm.h).
 *
 * One transition at a time. An event selects a row of fsm_table; the module
 * shows the row's next state as Transient while its actions run in order
 * (some complete at once, scripts, VIP, witness, drain and handover later);
 * then it takes the row's readiness. A failed action skips the rest and feeds
 * FSM_EV_FAILED (or FSM_EV_VIP_BUSY). Events arriving during a transition are
 * queued (peer updates coalesced) and run afterwards, except forcestop, which
 * kills the running script and goes first.
 *
 * Heartbeats carry this node's state, readiness, uptodate, generation and
 * flags; they are refreshed on every change (hb_set_local sends at once).
 * The persistent metadata is updated under meta_mu: the primary's engine may
 * start a new generation from a FUSE thread (cluster__diverged).
 *
 * Does not: decide anything itself (fsm.c does), touch data (mirror.c).
 */
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dirty.h"
#include "err.h"
#include "hb.h"
#include "log.h"
#include "meta.h"
#include "mirror.h"
#include "monitor.h"
#include "mrd.h"
#include "peer.h"
#include "plog.h"
#include "script.h"
#include "util.h"
#include "vip.h"
#include "witness.h"

#define CLUSTER_QUEUE_MAX      32
#define CLUSTER_POLL_MS        10u
#define CLUSTER_REJOIN_MS      10000u /* a failed secondary's first automatic rejoin */
#define CLUSTER_CHECK_MS       500u
#define CLUSTER_DRAIN_MS       30000u
#define CLUSTER_HANDOVER_MS    30000u
#define CLUSTER_WAIT_LINK_MS   5000u
#define CLUSTER_WITNESS_MS     1000u

struct script_step {
	const char *name;
	bool force;
	bool must_succeed;
	unsigned timeout_ms;
};

struct cluster {
	struct mrd *m; /* borrowed: owner */
	pthread_mutex_t meta_mu;
	struct meta meta; /* under meta_mu */
	char meta_path[4096];
	char dirty_path[4096];
	char plog_path[4096];
	bool exact; /* our copy is exactly meta.gen as mirrored (HB_F_EXACT) */
	/* our dirty set lists every change of our copy since its base (a clean
	 * stop, or a crash in this boot with the pre-write log read back) */
	bool listable;
	bool sb_policy_done; /* splitbrain_policy gave our changes up once */
	size_t published_changed; /* dirty count in our heartbeat */
	bool published_trusted;
	char scripts_dir[4096];
	struct hb *hb;
	struct vip *vip;
	struct script_runner *scripts;

	/* what the heartbeats say about the peer */
	bool peer_heard;
	struct hb_info peer;
	bool peer_handover_seen; /* edge detection of HB_F_HANDOVER */
	bool *net_up;
	size_t n_nets;
	bool intf_ok;
	bool res_ok;         /* no resource of a wait rule is down (monitor.c) */
	bool rejoin_blocked; /* applying failed: no rejoin until rejoin_timer or the admin */
	unsigned rejoins;    /* automatic rejoins since the last admin command (backoff) */
	struct monitor *mon; /* <errd> and <check>: tcp, custom */
	char cgroup_dir[4200];   /* the scripts run in this cgroup v2 ("": none) */
	char cgroup_procs[4300];
	char **mon_env;
	uint64_t *loops;     /* maxloop: when each restart/stopstart/wait happened */
	size_t n_loops;

	/* the running transition */
	const struct fsm_row *row;
	enum fsm_event row_event;
	enum mrd_state from_state;
	size_t act_idx;
	bool running;
	struct script_step steps[3];
	size_t n_steps, step_idx;
	uint64_t poll_deadline_ms;
	enum fsm_action polling; /* FSM_A_DRAIN, _HANDOVER, _WAIT_LINK or NONE */
	bool handover;           /* HB_F_HANDOVER set */
	uint64_t handover_seq;

	char fail_detail[256]; /* why the last action failed, for the FAILED row's message */
	enum fsm_event queue[CLUSTER_QUEUE_MAX];
	size_t qn;

	/* last transition, for status */
	char last_from[48], last_to[48], last_event[24], last_reason[256];
	uint64_t last_time_ms; /* realtime */
	char witness_detail[256];
	bool witness_reached;
	bool witness_checked;
	bool witness_pending; /* a check runs on the thread pool (not cancellable) */

	uv_timer_t start_timer;
	uv_timer_t poll_timer;
	uv_timer_t check_timer;
	uv_timer_t rejoin_timer;  /* a failed secondary's automatic rejoin */
	uv_async_t publish_async; /* cluster__diverged (any thread) -> publish (loop) */
	int pending_closes;
	bool stopping;
};

static void run_event(struct cluster *c, enum fsm_event ev);
static void step(struct cluster *c);

static struct cluster *
cl(struct mrd *m)
{
	return m->cluster;
}

static uint64_t
realtime_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool
is_primary(enum mrd_state s)
{
	return s == MRD_PRIM || s == MRD_ALONE;
}

/* ---- metadata and heartbeat info ------------------------------------------------- */

/* Save the metadata; meta_mu held. A failure is logged: the node goes on,
 * but the next start may have to ask the admin. */
static void
meta_persist(struct cluster *c)
{
	char err[512];

	if (meta_save(c->meta_path, &c->meta, err, sizeof(err)) < 0)
		log_err("meta: cannot save the module metadata err=\"%s\"", err);
}

static void
publish(struct cluster *c)
{
	struct mrd *m = c->m;
	struct hb_info info = { 0 };
	bool failover;

	if (c->hb == NULL)
		return;
	pthread_mutex_lock(&c->meta_mu);
	info.gen_seq = c->meta.gen.seq;
	info.gen_id = c->meta.gen.id;
	failover = c->meta.failover >= 0 ? c->meta.failover == 1 : m->conf->service.failover;
	if (c->meta.last_role == META_ROLE_PRIMARY)
		info.flags |= HB_F_LASTPRIM;
	if (c->exact)
		info.flags |= HB_F_EXACT;
	pthread_mutex_unlock(&c->meta_mu);
	info.state = (uint8_t)m->state;
	info.readiness = (uint8_t)m->readiness;
	info.uptodate = m->uptodate;
	if (failover)
		info.flags |= HB_F_FAILOVER;
	if (c->handover) {
		info.flags |= HB_F_HANDOVER;
		info.handover_seq = c->handover_seq;
	}
	if (c->peer_heard) {
		struct meta_gen pg = { c->peer.gen_seq, c->peer.gen_id };

		pthread_mutex_lock(&c->meta_mu);
		if (meta_gen_cmp(&c->meta, &pg) == META_DIVERGED)
			info.flags |= HB_F_SPLITBRAIN;
		pthread_mutex_unlock(&c->meta_mu);
	}
	memcpy(info.config_hash, m->conf->hash, sizeof(info.config_hash));
	{
		bool trusted;
		size_t n = dirty_count(m->dirty, &trusted);

		info.changed_files = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
		if (trusted)
			info.flags |= HB_F_COUNTED;
		c->published_changed = n;
		c->published_trusted = trusted;
	}
	hb_set_local(c->hb, &info);
}

/* This node's copy is no longer the latest (persisted). Loop thread. */
static void
mark_stale(struct cluster *c)
{
	pthread_mutex_lock(&c->meta_mu);
	if (c->meta.uptodate) {
		c->meta.uptodate = false;
		meta_persist(c);
	}
	pthread_mutex_unlock(&c->meta_mu);
	c->m->uptodate = false;
}

void
cluster__diverged(struct mrd *m)
{
	struct cluster *c = cl(m);

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->meta_mu);
	meta_new_generation(&c->meta);
	c->meta.uptodate = true;
	meta_persist(c);
	log_notice("meta: new data generation gen=%" PRIu64 ":%016" PRIx64
	           " reason=\"first change without the peer\"",
	           c->meta.gen.seq, c->meta.gen.id);
	pthread_mutex_unlock(&c->meta_mu);
	(void)uv_async_send(&c->publish_async); /* the heartbeat says so from the loop */
}

static void
publish_async_cb(uv_async_t *a)
{
	publish(a->data);
}

static bool
failover_on(struct cluster *c)
{
	bool on;

	pthread_mutex_lock(&c->meta_mu);
	on = c->meta.failover >= 0 ? c->meta.failover == 1 : c->m->conf->service.failover;
	pthread_mutex_unlock(&c->meta_mu);
	return on;
}

static void
fill_view(struct cluster *c, struct fsm_view *v)
{
	struct mrd *m = c->m;
	const struct conf_service *svc = &m->conf->service;
	struct meta_gen pg = { c->peer.gen_seq, c->peer.gen_id };
	bool me_last, peer_last;

	*v = (struct fsm_view){ 0 };
	pthread_mutex_lock(&c->meta_mu);
	v->uptodate = c->meta.uptodate;
	v->has_history = c->meta.gen.seq > 0;
	v->knows_newest = c->meta.alone_at_stop && c->meta.uptodate;
	v->gen_cmp = c->peer_heard ? (int)meta_gen_cmp(&c->meta, &pg) : META_EQUAL;
	me_last = c->meta.last_role == META_ROLE_PRIMARY;
	pthread_mutex_unlock(&c->meta_mu);
	v->failover = failover_on(c);
	v->intf_ok = c->intf_ok && c->res_ok; /* SafeKit: interface_failure and wait rules */
	v->rejoin_blocked = c->rejoin_blocked;
	v->has_witness = m->conf->splitbrain.present && m->conf->splitbrain.n_witnesses > 0;
	v->peer_heard = c->peer_heard;
	if (c->peer_heard) {
		v->peer_state = (enum mrd_state)c->peer.state;
		v->peer_readiness = (enum mrd_readiness)c->peer.readiness;
		v->peer_uptodate = c->peer.uptodate;
		v->peer_splitbrain = (c->peer.flags & HB_F_SPLITBRAIN) != 0;
	}
	/* equal data: defaultprim=<node>, then the last primary, then node order;
	 * both sides compute the same answer from the same two inputs */
	peer_last = (c->peer.flags & HB_F_LASTPRIM) != 0;
	if (svc->defaultprim == CONF_DEFAULTPRIM_SERVER)
		v->prefer_me = strcmp(svc->defaultprim_server, m->node->name) == 0;
	else if (me_last != peer_last)
		v->prefer_me = me_last;
	else
		v->prefer_me = m->self_idx == 0;
	if (c->peer_heard && (c->peer.flags & HB_F_HANDOVER) != 0) {
		struct mirror_seqs sq;

		mirror_seqs(m, &sq);
		v->handover_ok = mirror_current_role(m) == MIRROR_SECONDARY && !sq.failed &&
		                 sq.last_seq == c->peer.handover_seq &&
		                 sq.applied_seq == c->peer.handover_seq;
		if (!v->handover_ok)
			log_warn("fsm: handover refused peer_seq=%" PRIu64 " received_seq=%" PRIu64
			         " applied_seq=%" PRIu64,
			         c->peer.handover_seq, sq.last_seq, sq.applied_seq);
	}
}

/* ---- states ------------------------------------------------------------------------ */

/* The module stopped with nothing mounted: the dirty set is complete. Save
 * it, then say so in the metadata (the set is trusted after a restart only
 * with clean_stop, which the next start clears before anything is written). */
static void
save_clean_stop(struct cluster *c)
{
	char err[512];
	bool trusted;
	size_t n = dirty_count(c->m->dirty, &trusted);

	if (dirty_save(c->m->dirty, c->dirty_path, err, sizeof(err)) < 0) {
		log_err("dirty: cannot save the set of changed files err=\"%s\"; the next "
		        "resync compares every file",
		        err);
		return;
	}
	pthread_mutex_lock(&c->meta_mu);
	c->meta.clean_stop = true;
	meta_persist(c);
	pthread_mutex_unlock(&c->meta_mu);
	log_info("dirty: saved files=%zu trusted=%s", n, trusted ? "yes" : "no");
}

static void
plog_entry(void *arg, unsigned kind, uint8_t dir, const char *path)
{
	struct cluster *c = arg;

	if (kind & PLOG_FILE)
		dirty_add(c->m->dirty, dir, path, DIRTY_F_CHECKSUM);
	if (kind & PLOG_DIR)
		dirty_add(c->m->dirty, dir, path, DIRTY_F_CHILDREN);
}

/*
 * Open the pre-write log. After a crash in this boot (the page cache kept
 * every change the log announced), the names it holds are the files that
 * may differ from the peer: they become the dirty set, compared by
 * checksums. After a reboot, the page cache may have lost writes to any
 * file: the set stays untrusted. The log then restarts relative to the
 * set's base, with "everything" if the set is not trusted.
 */
static void
load_plog(struct cluster *c, bool clean, bool same_boot)
{
	struct mrd *m = c->m;
	bool read_back = !clean && same_boot, trusted;
	struct plog_loaded pl;
	uint64_t seq, id;

	if (read_back)
		dirty_reset(m->dirty, 0, 0); /* entries first, base below */
	m->plog = plog_open(c->plog_path, read_back ? plog_entry : NULL, c, &pl);
	if (read_back && pl.found) {
		dirty_set_base(m->dirty, pl.base_seq, pl.base_id, !pl.all);
		log_notice("plog: read back names=%zu all=%s base_gen=%" PRIu64
		           " (files changed before the crash are compared by checksums)",
		           pl.entries, pl.all ? "yes" : "no", pl.base_seq);
	} else if (read_back) {
		dirty_distrust(m->dirty, "no pre-write log after a crash");
	}
	c->listable = clean || (read_back && pl.found && !pl.all);
	dirty_base(m->dirty, &seq, &id, &trusted);
	(void)plog_checkpoint(m->plog, 1, seq, id, trusted);
}

/* At start: take the saved dirty set if the last stop was clean, decide
 * whether our copy is exact, and clear clean_stop (persisted) before anything
 * can change the data. */
static void
load_dirty(struct cluster *c)
{
	char err[512], boot[40] = "";
	bool clean = c->meta.clean_stop, same_boot, trusted;
	size_t n;
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	if (f != NULL) {
		if (fgets(boot, sizeof(boot), f) == NULL)
			boot[0] = '\0';
		boot[strcspn(boot, "\n")] = '\0';
		(void)fclose(f);
	}
	same_boot = boot[0] != '\0' && strcmp(boot, c->meta.boot_id) == 0;
	if (clean) {
		int r = dirty_load(c->m->dirty, c->dirty_path, err, sizeof(err));

		if (r < 0 && r != -ENOENT)
			log_warn("dirty: cannot load the saved set err=\"%s\"; the next resync "
			         "compares every file",
			         err);
	}
	load_plog(c, clean, same_boot);
	/* A SECOND applies the primary's ops in order and has none of its own:
	 * after a crash its copy is still exact if the kernel kept its page cache
	 * (same boot); a clean stop synced everything. */
	c->exact = c->meta.gen.seq > 0 &&
	           (clean || (c->meta.last_role == META_ROLE_SECOND && same_boot));
	c->meta.clean_stop = false;
	(void)snprintf(c->meta.boot_id, sizeof(c->meta.boot_id), "%s", boot);
	meta_persist(c);
	n = dirty_count(c->m->dirty, &trusted);
	log_notice("dirty: files=%zu trusted=%s exact_copy=%s (clean_stop=%s same_boot=%s)",
	           n, trusted ? "yes" : "no",
	           c->exact ? "yes" : "no", clean ? "yes" : "no", same_boot ? "yes" : "no");
}

static void
set_state(struct cluster *c, enum mrd_state st, enum mrd_readiness rd, const char *message)
{
	struct mrd *m = c->m;
	bool changed = m->state != st || m->readiness != rd, empty_log = false;
	enum mrd_state was = m->state;
	uint64_t gseq = 0, gid = 0;

	m->state = st;
	m->readiness = rd;
	if (message != NULL)
		(void)snprintf(m->message, sizeof(m->message), "%s", message);
	pthread_mutex_lock(&c->meta_mu);
	if (rd == MRD_READY && (is_primary(st) || st == MRD_SECOND)) {
		bool save = !c->meta.uptodate || c->meta.alone_at_stop || c->meta.clean_stop ||
		            c->meta.last_role != (is_primary(st) ? META_ROLE_PRIMARY
		                                                 : META_ROLE_SECOND);

		c->meta.uptodate = true;
		c->meta.alone_at_stop = false;
		c->meta.clean_stop = false;
		c->meta.last_role = is_primary(st) ? META_ROLE_PRIMARY : META_ROLE_SECOND;
		if (save)
			meta_persist(c);
	}
	m->uptodate = c->meta.uptodate && (is_primary(st) || (st == MRD_SECOND && rd == MRD_READY));
	if (is_primary(st)) {
		c->exact = false; /* it writes: its changes are in its dirty set */
	} else if (st == MRD_SECOND && rd == MRD_READY && changed) {
		/* a copy of the primary's generation, nothing of its own */
		c->exact = true;
		c->listable = true;
		dirty_reset(m->dirty, c->meta.gen.seq, c->meta.gen.id);
		gseq = c->meta.gen.seq;
		gid = c->meta.gen.id;
		empty_log = true;
	}
	pthread_mutex_unlock(&c->meta_mu);
	if (empty_log && m->plog != NULL)
		(void)plog_checkpoint(m->plog, UINT64_MAX, gseq, gid, true);
	if (st == MRD_STOP && rd == MRD_NOTREADY && was != MRD_STOP &&
	    mirror_current_role(m) == MIRROR_NONE)
		save_clean_stop(c); /* a stop from a running state, nothing mounted */
	monitor_set_phase(c->mon, st != MRD_STOP, is_primary(st) && rd == MRD_READY,
	                  st == MRD_SECOND && rd == MRD_READY);
	/* a wait rule's resource just started (init) holds the module in WAIT */
	if (c->mon != NULL && was == MRD_STOP && st != MRD_STOP) {
		char why[160];

		c->res_ok = monitor_wait_ok(c->mon, why, sizeof(why));
		if (!c->res_ok)
			log_info("check: waiting for the first check reason=\"%s\"", why);
	}
	if (changed)
		publish(c);
}

/* ---- the event queue ----------------------------------------------------------------- */

static void
enqueue(struct cluster *c, enum fsm_event ev)
{
	size_t i;

	if (ev == FSM_EV_PEER)
		for (i = 0; i < c->qn; i++)
			if (c->queue[i] == FSM_EV_PEER)
				return;
	if (c->qn == CLUSTER_QUEUE_MAX) {
		log_warn("fsm: event queue full, dropping event=%s", fsm_event_name(ev));
		return;
	}
	c->queue[c->qn++] = ev;
}

static void
drain_queue(struct cluster *c)
{
	while (!c->running && c->qn > 0 && !c->stopping) {
		enum fsm_event ev = c->queue[0];

		memmove(&c->queue[0], &c->queue[1], (c->qn - 1) * sizeof(c->queue[0]));
		c->qn--;
		run_event(c, ev);
	}
}

/* defaultprim="<node>": once that node, our peer, is an up-to-date SECOND
 * (Ready), the application moves back to it with a planned swap (SafeKit's
 * "Transition SWAP from defaultprim"). */
static void
maybe_swap_back(struct cluster *c)
{
	struct mrd *m = c->m;
	const struct conf_service *svc = &m->conf->service;

	if (svc->defaultprim != CONF_DEFAULTPRIM_SERVER ||
	    strcmp(svc->defaultprim_server, m->conf->nodes[m->peer_idx]) != 0)
		return;
	if (c->running || c->stopping || m->state != MRD_PRIM || m->readiness != MRD_READY ||
	    !c->peer_heard || c->peer.state != MRD_SECOND || c->peer.readiness != MRD_READY ||
	    !c->peer.uptodate)
		return;
	log_notice("fsm: defaultprim=%s is an up-to-date secondary: swapping back to it",
	           svc->defaultprim_server);
	run_event(c, FSM_EV_SWAP);
}

/* <rfs splitbrain_policy>: in a split brain, the side the policy names gives
 * its changes up by itself, exactly as `mirrorctl second` would. Both sides
 * compute the same answer from the same two counts; a tie, or a count that is
 * not exact (a dirty set not trusted), leaves it to the admin. */
static void
maybe_apply_sb_policy(struct cluster *c)
{
	struct mrd *m = c->m;
	enum conf_sb_policy pol = m->conf->rfs.sb_policy;
	struct meta_gen pg = { c->peer.gen_seq, c->peer.gen_id };
	bool mine_ok, diverged, lose;
	size_t mine;
	uint32_t theirs = c->peer.changed_files;
	char msg[256];

	if (pol == CONF_SB_DISCONNECT || c->running || c->stopping || !c->peer_heard ||
	    c->sb_policy_done)
		return;
	pthread_mutex_lock(&c->meta_mu);
	diverged = meta_gen_cmp(&c->meta, &pg) == META_DIVERGED;
	pthread_mutex_unlock(&c->meta_mu);
	if (!diverged)
		return;
	mine = dirty_count(m->dirty, &mine_ok);
	if (!mine_ok || (c->peer.flags & HB_F_COUNTED) == 0) {
		log_ratelimited(LOG_LVL_WARN, 60000,
		                "fsm: split brain: splitbrain_policy cannot decide (a count of "
		                "changed files is not exact); the admin chooses");
		return;
	}
	if (pol == CONF_SB_DISCARD_ZERO)
		lose = mine == 0 && theirs > 0;
	else
		lose = mine < theirs || (mine == theirs && mine == 0 && m->self_idx == 1);
	if (!lose)
		return;
	c->sb_policy_done = true;
	log_warn("fsm: split brain resolved by splitbrain_policy=%s: this node changed %zu "
	         "files, the peer %u; this node's changes are given up",
	         pol == CONF_SB_DISCARD_ZERO ? "discard-zero-changes" : "discard-least-changes",
	         mine, theirs);
	if (cluster_command(m, FSM_EV_SECOND, msg, sizeof(msg)) < 0)
		log_warn("fsm: splitbrain_policy could not make this node secondary: %s", msg);
}

static void
finish(struct cluster *c)
{
	const struct fsm_row *row = c->row;

	c->running = false;
	c->row = NULL;
	set_state(c, row->next, row->next_ready, NULL);
	log_notice("fsm: %s (%s) event=%s done", mrd_state_name(row->next),
	           mrd_readiness_name(row->next_ready), fsm_event_name(c->row_event));
	if (row->next == MRD_WAIT && c->peer_heard)
		enqueue(c, FSM_EV_PEER);
	drain_queue(c);
	maybe_swap_back(c);
	maybe_apply_sb_policy(c);
}

static void
action_done(struct cluster *c, int result, enum fsm_event fail_ev)
{
	if (c->stopping || !c->running)
		return;
	if (result < 0) {
		const struct fsm_row *row = c->row;

		log_warn("fsm: action=%s failed in %s: %s", fsm_action_name(row->actions[c->act_idx]),
		         mrd_state_name(row->next), fsm_event_name(fail_ev));
		(void)snprintf(c->fail_detail, sizeof(c->fail_detail), "%s", c->m->message);
		c->running = false;
		c->row = NULL;
		c->polling = FSM_A_NONE;
		c->handover = false;
		set_state(c, row->next, MRD_TRANSIENT, NULL);
		/* the failure goes before whatever was queued */
		if (c->qn < CLUSTER_QUEUE_MAX) {
			memmove(&c->queue[1], &c->queue[0], c->qn * sizeof(c->queue[0]));
			c->queue[0] = fail_ev;
			c->qn++;
		}
		drain_queue(c);
		return;
	}
	c->act_idx++;
	step(c);
}

/* ---- scripts --------------------------------------------------------------------- */

static void run_next_script(struct cluster *c);

static void
script_done(void *ctx, enum script_result res, int status, const char *detail)
{
	struct cluster *c = ctx;
	const struct script_step *s = &c->steps[c->step_idx];

	(void)status;
	if (res != SCRIPT_OK && s->must_succeed) {
		log_err("fsm: script %s failed detail=\"%s\"", s->name, detail);
		(void)snprintf(c->m->message, sizeof(c->m->message), "script %s failed: %s",
		               s->name, detail);
		action_done(c, -EIO, FSM_EV_FAILED);
		return;
	}
	c->step_idx++;
	run_next_script(c);
}

static void
run_next_script(struct cluster *c)
{
	const struct script_step *s;
	const char *args[5];
	const char *role;
	size_t n = 0;
	int r;

	if (c->step_idx >= c->n_steps) {
		action_done(c, 0, FSM_EV__COUNT);
		return;
	}
	s = &c->steps[c->step_idx];
	if (s->force)
		args[n++] = "force";
	args[n++] = mrd_state_name(c->from_state);
	args[n++] = mrd_state_name(c->row->next);
	args[n++] = c->row_event == FSM_EV_STOPSTART || c->row_event == FSM_EV_VIP_LOST
	                    ? "stopstart"
	            : c->row->next == MRD_STOP                                         ? "stop"
	            : c->row->next == MRD_WAIT && c->row->next_ready == MRD_NOTREADY ? "stopwait"
	                                                                             : "start";
	args[n] = NULL;
	role = is_primary(c->row->next) ? "primary" : c->row->next == MRD_SECOND ? "secondary" : "none";
	r = script_run(c->scripts, s->name, args, role, s->timeout_ms, script_done, c);
	if (r < 0) {
		log_err("fsm: cannot run script %s err=\"%s\"", s->name, mr_strerror(r));
		if (s->must_succeed) {
			action_done(c, r, FSM_EV_FAILED);
			return;
		}
		c->step_idx++;
		run_next_script(c);
	}
}

/* The scripts of a script action, in order (SafeKit's: start_both before
 * start_prim/start_second, whose failure fails the action; stop scripts
 * graceful then "force", failures only logged). Returns how many. */
static size_t
script_steps(enum fsm_action a, const struct conf_user *u, struct script_step out[3])
{
	const char *name = NULL;
	bool start = false;

	switch (a) {
	case FSM_A_PRESTART:
		out[0] = (struct script_step){ "prestart", false, false, u->starttimeout_ms };
		return 1;
	case FSM_A_TRANSITION:
		out[0] = (struct script_step){ "transition", false, false, u->starttimeout_ms };
		return 1;
	case FSM_A_POSTSTOP:
		out[0] = (struct script_step){ "stop_both", false, false, u->nicestoptimeout_ms };
		out[1] = (struct script_step){ "stop_both", true, false, u->forcestoptimeout_ms };
		out[2] = (struct script_step){ "poststop", false, false, u->nicestoptimeout_ms };
		return 3;
	case FSM_A_START_PRIM:
	case FSM_A_START_SECOND:
		start = true;
		name = a == FSM_A_START_PRIM ? "start_prim" : "start_second";
		break;
	case FSM_A_STOP_PRIM:
	case FSM_A_STOP_SECOND:
		name = a == FSM_A_STOP_PRIM ? "stop_prim" : "stop_second";
		break;
	default:
		return 0;
	}
	if (start) {
		out[0] = (struct script_step){ "start_both", false, true, u->starttimeout_ms };
		out[1] = (struct script_step){ name, false, true, u->starttimeout_ms };
	} else {
		out[0] = (struct script_step){ name, false, false, u->nicestoptimeout_ms };
		out[1] = (struct script_step){ name, true, false, u->forcestoptimeout_ms };
	}
	return 2;
}

static void
run_scripts(struct cluster *c, const struct script_step *steps, size_t n)
{
	if (c->scripts == NULL) { /* no <user>: no scripts */
		action_done(c, 0, FSM_EV__COUNT);
		return;
	}
	memcpy(c->steps, steps, n * sizeof(*steps));
	c->n_steps = n;
	c->step_idx = 0;
	run_next_script(c);
}

/* ---- asynchronous actions ------------------------------------------------------------- */

static void
vip_done(void *ctx, int result, const char *why)
{
	struct cluster *c = ctx;

	if (result == -EADDRINUSE) {
		log_warn("fsm: not taking the virtual IP reason=\"%s\"", why);
		(void)snprintf(c->m->message, sizeof(c->m->message),
		               "another host answers for the virtual IP: %s", why);
		action_done(c, result, FSM_EV_VIP_BUSY);
		return;
	}
	if (result < 0 && c->row != NULL && c->row->actions[c->act_idx] == FSM_A_VIP_TAKE) {
		log_err("fsm: cannot take the virtual IP err=\"%s\" reason=\"%s\"",
		        mr_strerror(result), why);
		action_done(c, result, FSM_EV_FAILED);
		return;
	}
	if (result < 0)
		log_warn("fsm: releasing the virtual IP failed err=\"%s\" reason=\"%s\"",
		         mr_strerror(result), why);
	action_done(c, 0, FSM_EV__COUNT);
}

static void
witness_done(void *ctx, bool reached, const char *detail)
{
	struct cluster *c = ctx;

	if (c->stopping) { /* cluster_stop kept c alive for this callback */
		if (--c->pending_closes == 0) {
			pthread_mutex_destroy(&c->meta_mu);
			free(c->net_up);
			free(c);
		}
		return;
	}
	c->witness_pending = false;
	c->witness_checked = true;
	c->witness_reached = reached;
	(void)snprintf(c->witness_detail, sizeof(c->witness_detail), "%s", detail);
	log_notice("fsm: split-brain witness %s detail=\"%s\"", reached ? "reached" : "unreachable",
	           detail);
	enqueue(c, reached ? FSM_EV_WITNESS_OK : FSM_EV_WITNESS_FAIL);
	action_done(c, 0, FSM_EV__COUNT);
}

static void
poll_cb(uv_timer_t *t)
{
	struct cluster *c = t->data;
	struct mrd *m = c->m;
	struct mirror_seqs sq;
	bool done = false;

	if (c->polling == FSM_A_NONE || !c->running)
		return;
	switch (c->polling) {
	case FSM_A_DRAIN:
		mirror_seqs(m, &sq);
		/* every change that got past the read-only check is submitted, and
		 * acknowledged: nothing can be added any more */
		done = sq.inflight_ops == 0 && sq.mutating == 0;
		if (done) {
			mirror_freeze_engine(m);
			c->handover_seq = sq.last_seq;
			log_notice("fsm: replication drained seq=%" PRIu64 "%s", sq.last_seq,
			           sq.diverged ? " (some ops completed without the peer)" : "");
			if (sq.diverged) { /* the peer missed something: no handover */
				c->polling = FSM_A_NONE;
				(void)uv_timer_stop(&c->poll_timer);
				action_done(c, -EPIPE, FSM_EV_FAILED);
				return;
			}
		}
		break;
	case FSM_A_HANDOVER:
		done = c->peer_heard && is_primary((enum mrd_state)c->peer.state);
		break;
	case FSM_A_WAIT_LINK:
		done = mirror_link_up(m) || !c->peer_heard ||
		       (enum mrd_state)c->peer.state != MRD_SECOND;
		break;
	default:
		break;
	}
	if (!done && mr_now_ms() < c->poll_deadline_ms)
		return;
	c->polling = FSM_A_NONE;
	(void)uv_timer_stop(&c->poll_timer);
	if (!done && c->row->actions[c->act_idx] != FSM_A_WAIT_LINK) {
		log_err("fsm: action=%s timed out", fsm_action_name(c->row->actions[c->act_idx]));
		c->handover = false;
		action_done(c, -ETIMEDOUT, FSM_EV_FAILED);
		return;
	}
	if (c->row->actions[c->act_idx] == FSM_A_HANDOVER) {
		c->handover = false;
		publish(c);
	}
	action_done(c, 0, FSM_EV__COUNT);
}

static void
start_poll(struct cluster *c, enum fsm_action a, unsigned limit_ms)
{
	c->polling = a;
	c->poll_deadline_ms = mr_now_ms() + limit_ms;
	(void)uv_timer_start(&c->poll_timer, poll_cb, 0, CLUSTER_POLL_MS);
}

static void
start_timer_cb(uv_timer_t *t)
{
	struct cluster *c = t->data;

	if (!c->peer_heard && c->m->state == MRD_WAIT)
		run_event(c, FSM_EV_START_TIMEOUT);
}

/* ---- the actions ------------------------------------------------------------------- */

static uint64_t
seq_to_keep(struct cluster *c)
{
	struct mirror_seqs sq;

	mirror_seqs(c->m, &sq);
	return sq.last_seq;
}

static int
do_mount(struct cluster *c, enum mirror_role role)
{
	struct mrd *m = c->m;
	uint64_t seq;
	int r;

	if (!m->conf->rfs.present)
		return 0;
	if (mirror_current_role(m) == role)
		return 0;
	if (mirror_current_role(m) != MIRROR_NONE)
		mirror_stop(m);
	pthread_mutex_lock(&c->meta_mu);
	seq = c->meta.last_seq;
	pthread_mutex_unlock(&c->meta_mu);
	r = mirror_start(m, role, seq);
	/* the link pairs again with the new role in the HELLO */
	if (m->peer != NULL && peer_is_up(m->peer))
		peer_drop(m->peer, "role change");
	return r;
}

static void
do_unmount(struct cluster *c)
{
	struct mrd *m = c->m;

	if (mirror_current_role(m) == MIRROR_NONE)
		return;
	uint64_t seq = seq_to_keep(c); /* engine lock before meta_mu, never inside */

	pthread_mutex_lock(&c->meta_mu);
	c->meta.last_seq = seq;
	meta_persist(c);
	pthread_mutex_unlock(&c->meta_mu);
	mirror_stop(m);
	if (m->peer != NULL && peer_is_up(m->peer))
		peer_drop(m->peer, "role change");
}

static void
step(struct cluster *c)
{
	struct mrd *m = c->m;
	const struct conf_user *u = &m->conf->user;
	enum fsm_action a;
	int r;

	if (c->stopping)
		return;
	a = c->row->actions[c->act_idx];
	if (c->act_idx >= FSM_MAX_ACTIONS || a == FSM_A_NONE) {
		finish(c);
		return;
	}
	log_info("fsm: action=%s state=%s", fsm_action_name(a), mrd_state_name(c->row->next));
	switch (a) {
	case FSM_A_PRESTART:
	case FSM_A_POSTSTOP:
	case FSM_A_TRANSITION:
	case FSM_A_START_PRIM:
	case FSM_A_STOP_PRIM:
	case FSM_A_START_SECOND:
	case FSM_A_STOP_SECOND: {
		struct script_step s[3];

		run_scripts(c, s, script_steps(a, u, s));
		return;
	}
	case FSM_A_ARM_START: {
		uint64_t ms = 2ull * m->conf->heart.timeout_ms + m->conf->heart.pulse_ms;

		for (size_t i = 0; i < m->conf->heart.n_hbs; i++)
			if (2ull * m->conf->heart.hbs[i].timeout_ms > ms)
				ms = 2ull * m->conf->heart.hbs[i].timeout_ms;
		(void)uv_timer_start(&c->start_timer, start_timer_cb, ms, 0);
		break;
	}
	case FSM_A_NEW_GEN: {
		struct meta_gen pg = { c->peer.gen_seq, c->peer.gen_id };

		pthread_mutex_lock(&c->meta_mu);
		/* equal data with a heard peer: keep the generation, so the peer
		 * can mirror again without a resync */
		if (!(c->peer_heard && c->meta.gen.seq > 0 &&
		      meta_gen_cmp(&c->meta, &pg) == META_EQUAL)) {
			meta_new_generation(&c->meta);
			log_notice("meta: new data generation gen=%" PRIu64 ":%016" PRIx64
			           " reason=\"made primary by the admin\"",
			           c->meta.gen.seq, c->meta.gen.id);
		}
		c->meta.uptodate = true;
		meta_persist(c);
		pthread_mutex_unlock(&c->meta_mu);
		publish(c);
		break;
	}
	case FSM_A_MOUNT_PRIM:
	case FSM_A_MOUNT_SECOND:
		r = do_mount(c, a == FSM_A_MOUNT_PRIM ? MIRROR_PRIMARY : MIRROR_SECONDARY);
		if (r < 0) {
			(void)snprintf(m->message, sizeof(m->message), "cannot mount: %s",
			               mr_strerror(r));
			action_done(c, r, FSM_EV_FAILED);
			return;
		}
		break;
	case FSM_A_UNMOUNT:
		do_unmount(c);
		break;
	case FSM_A_DROP_LINK:
		if (m->peer != NULL && peer_is_up(m->peer))
			peer_drop(m->peer, "peer lost: no heartbeat");
		break;
	case FSM_A_WITNESS:
		r = witness_check(m->loop, &m->conf->splitbrain, CLUSTER_WITNESS_MS, witness_done, c);
		if (r == 0)
			c->witness_pending = true;
		if (r < 0) {
			c->witness_checked = true;
			c->witness_reached = false;
			(void)snprintf(c->witness_detail, sizeof(c->witness_detail),
			               "cannot check: %s", mr_strerror(r));
			enqueue(c, FSM_EV_WITNESS_FAIL);
			break;
		}
		return;
	case FSM_A_VIP_TAKE:
		vip_take(c->vip, vip_done, c);
		return;
	case FSM_A_VIP_RELEASE:
		vip_release(c->vip, vip_done, c);
		return;
	case FSM_A_DRAIN:
		if (mirror_current_role(m) != MIRROR_PRIMARY)
			break;
		mirror_freeze(m); /* the application is stopped: nothing new from here */
		start_poll(c, FSM_A_DRAIN, CLUSTER_DRAIN_MS);
		return;
	case FSM_A_HANDOVER:
		if (mirror_current_role(m) == MIRROR_PRIMARY)
			c->handover_seq = seq_to_keep(c);
		else {
			pthread_mutex_lock(&c->meta_mu);
			c->handover_seq = c->meta.last_seq;
			pthread_mutex_unlock(&c->meta_mu);
		}
		c->handover = true;
		log_notice("fsm: handing over to the peer seq=%" PRIu64, c->handover_seq);
		publish(c);
		start_poll(c, FSM_A_HANDOVER, CLUSTER_HANDOVER_MS);
		return;
	case FSM_A_WAIT_LINK:
		start_poll(c, FSM_A_WAIT_LINK, CLUSTER_WAIT_LINK_MS);
		return;
	case FSM_A_MARK_STALE:
		mark_stale(c);
		break;
	case FSM_A_NONE:
	case FSM_A__COUNT:
		break;
	}
	c->act_idx++;
	step(c);
}

/* ---- events ---------------------------------------------------------------------- */

static void
record_last(struct cluster *c, enum mrd_state from, enum mrd_readiness from_rd,
            const struct fsm_row *row, enum fsm_event ev)
{
	(void)snprintf(c->last_from, sizeof(c->last_from), "%s (%s)", mrd_state_name(from),
	               mrd_readiness_name(from_rd));
	(void)snprintf(c->last_to, sizeof(c->last_to), "%s (%s)", mrd_state_name(row->next),
	               mrd_readiness_name(row->next_ready));
	(void)snprintf(c->last_event, sizeof(c->last_event), "%s", fsm_event_name(ev));
	(void)snprintf(c->last_reason, sizeof(c->last_reason), "%s", row->message);
	c->last_time_ms = realtime_ms();
}

static void
run_event(struct cluster *c, enum fsm_event ev)
{
	struct mrd *m = c->m;
	const struct fsm_row *row;
	struct fsm_view v;
	enum mrd_state from = m->state;
	enum mrd_readiness from_rd = m->readiness;

	if (c->stopping)
		return;
	if (c->running) {
		enqueue(c, ev);
		return;
	}
	fill_view(c, &v);
	row = fsm_lookup(m->state, m->readiness, ev, &v);
	if (row == NULL) {
		log_debug("fsm: event=%s ignored in %s (%s)", fsm_event_name(ev),
		          mrd_state_name(m->state), mrd_readiness_name(m->readiness));
		return;
	}
	if (row->actions[0] == FSM_A_NONE && row->next == from && row->next_ready == from_rd) {
		(void)snprintf(m->message, sizeof(m->message), "%s", row->message);
		return;
	}
	if (ev == FSM_EV_PEER && row->next == MRD_WAIT && row->actions[0] == FSM_A_NONE) {
		const char *why = "";

		(void)fsm_elect(&v, &why);
		log_notice("fsm: election result=%s reason=\"%s\"",
		           row->next_ready == MRD_NOTREADY ? "admin" : "peer", why);
	}
	log_notice("fsm: %s (%s) -> %s (%s) event=%s reason=\"%s\"", mrd_state_name(from),
	           mrd_readiness_name(from_rd), mrd_state_name(row->next),
	           mrd_readiness_name(row->next_ready), fsm_event_name(ev), row->message);
	record_last(c, from, from_rd, row, ev);
	if (ev != FSM_EV_START_TIMEOUT)
		(void)uv_timer_stop(&c->start_timer);
	c->row = row;
	c->row_event = ev;
	c->from_state = from;
	c->act_idx = 0;
	c->running = true;
	set_state(c, row->next, row->actions[0] == FSM_A_NONE ? row->next_ready : MRD_TRANSIENT,
	          row->message);
	if (ev == FSM_EV_FAILED && c->fail_detail[0] != '\0')
		(void)snprintf(m->message, sizeof(m->message), "%.120s: %.120s", row->message,
		               c->fail_detail);
	c->fail_detail[0] = '\0';
	step(c);
}

/* ---- heartbeat callbacks ----------------------------------------------------------- */

/* A SECOND paired with its primary (replication link up, every op applied in
 * order) holds the primary's data: it takes the primary's generation, so a
 * later failover or election compares equal. meta_mu held. Returns true when
 * that applies (whether or not the generation changed).
 *
 * Only the generation the primary named in its HELLO of this link: while a
 * link is up the primary keeps it, and a new one means it moved on without
 * us, and the link is about to end (it wrote ALONE while we were stalled, or
 * `mirrorctl resync --full` made one to resync us). Its heartbeat can reach us
 * before the link's end does; taking its generation then made us "up to date"
 * with data we never had, the next pairing found both equal, and nothing was
 * resynced. */
static bool
adopt_generation(struct cluster *c)
{
	struct mrd *m = c->m;
	uint8_t lg[16];

	if (m->state != MRD_SECOND || m->readiness != MRD_READY ||
	    !mirror_link_generation(m, lg) || !c->peer_heard ||
	    !is_primary((enum mrd_state)c->peer.state) || mr_get_be64(lg) != c->peer.gen_seq ||
	    mr_get_be64(lg + 8) != c->peer.gen_id)
		return false;
	if (c->meta.gen.seq != c->peer.gen_seq || c->meta.gen.id != c->peer.gen_id) {
		struct meta_gen pg = { c->peer.gen_seq, c->peer.gen_id };

		meta_set_generation(&c->meta, &pg);
		c->meta.uptodate = true;
		meta_persist(c);
		log_notice("meta: mirroring the primary's generation gen=%" PRIu64 ":%016" PRIx64,
		           c->meta.gen.seq, c->meta.gen.id);
		/* our copy is exactly this generation now: our sets are relative to it
		 * (SECOND Ready may have reset them before the heartbeat said it) */
		dirty_reset(m->dirty, c->meta.gen.seq, c->meta.gen.id);
		if (m->plog != NULL)
			(void)plog_checkpoint(m->plog, UINT64_MAX, c->meta.gen.seq, c->meta.gen.id,
			                      true);
	}
	return true;
}

static void
hb_on_peer(void *ctx, const struct hb_info *peer)
{
	struct cluster *c = ctx;
	struct mrd *m = c->m;
	bool first = !c->peer_heard;
	bool handover = (peer->flags & HB_F_HANDOVER) != 0;
	struct meta_gen pg = { peer->gen_seq, peer->gen_id };

	if (memcmp(peer->config_hash, m->conf->hash, sizeof(peer->config_hash)) != 0) {
		log_ratelimited(LOG_LVL_ERR, 10000,
		                "fsm: the peer's userconfig.xml differs from this node's (config "
		                "hash); ignoring its heartbeats until both are the same");
		return;
	}
	if (first || peer->state != c->peer.state || peer->readiness != c->peer.readiness)
		log_notice("fsm: peer state=%s (%s) uptodate=%s gen=%" PRIu64 "%s",
		           mrd_state_name((enum mrd_state)peer->state),
		           mrd_readiness_name((enum mrd_readiness)peer->readiness),
		           peer->uptodate ? "yes" : "no", peer->gen_seq,
		           handover ? " handover" : "");
	if ((first || peer->state != c->peer.state) && peer->state != MRD_STOP)
		peer_kick(m->peer); /* it may listen now: no need to wait for the backoff */
	c->peer = *peer;
	c->peer_heard = true;
	pthread_mutex_lock(&c->meta_mu);
	if (adopt_generation(c)) {
		/* paired with the primary: its generation is ours */
	} else if (c->meta.uptodate && !is_primary(m->state) &&
	           meta_gen_cmp(&c->meta, &pg) == META_BEHIND) {
		/* the peer wrote without us: our copy is no longer the latest */
		c->meta.uptodate = false;
		meta_persist(c);
		m->uptodate = false;
		log_notice("meta: not up to date any more reason=\"the peer has a newer generation "
		           "gen=%" PRIu64 "\"",
		           peer->gen_seq);
	}
	pthread_mutex_unlock(&c->meta_mu);
	if (first)
		publish(c); /* our split-brain flag may depend on the peer */
	if (handover && !c->peer_handover_seen) {
		c->peer_handover_seen = true;
		run_event(c, FSM_EV_HANDOVER);
		return;
	}
	if (!handover)
		c->peer_handover_seen = false;
	run_event(c, FSM_EV_PEER);
	maybe_swap_back(c);
	maybe_apply_sb_policy(c);
}

static void
hb_on_net(void *ctx, size_t net_idx, bool up)
{
	struct cluster *c = ctx;

	if (net_idx < c->n_nets)
		c->net_up[net_idx] = up;
	log_notice("hb: network %s net=%s", up ? "up" : "down",
	           c->m->conf->heart.hbs[net_idx].name);
	if (up && c->vip != NULL && vip_held(c->vip))
		vip_announce(c->vip); /* the link healed: tell the switches again */
}

static void
hb_on_lost(void *ctx)
{
	struct cluster *c = ctx;

	if (!c->peer_heard)
		return; /* never heard since start: the start timer decides */
	log_notice("fsm: peer lost: no heartbeat on any network");
	c->peer_heard = false;
	c->peer_handover_seen = false;
	run_event(c, FSM_EV_PEER_LOST);
}

/* ---- checkers: interface and VIP ------------------------------------------------------ */

static void
check_cb(uv_timer_t *t)
{
	struct cluster *c = t->data;
	char why[256] = "";
	bool trusted;
	size_t n;
	int r;

	if (c->stopping)
		return;
	mirror_tick(c->m);
	/* the heartbeat's count of changed files follows the writes done alone */
	n = dirty_count(c->m->dirty, &trusted);
	if (n != c->published_changed || trusted != c->published_trusted)
		publish(c);
	if (c->vip == NULL)
		return;
	r = vip_check(c->vip, why, sizeof(why));
	if (r == -ENETDOWN) {
		if (c->intf_ok) {
			bool was = c->res_ok;

			c->intf_ok = false;
			log_warn("fsm: interface checker: down reason=\"%s\"", why);
			if (was)
				run_event(c, FSM_EV_INTF_DOWN);
		}
		return;
	}
	if (!c->intf_ok) {
		c->intf_ok = true;
		log_notice("fsm: interface checker: up again");
		if (c->res_ok)
			run_event(c, FSM_EV_INTF_UP);
	}
	if (r == -EADDRNOTAVAIL && !c->running && is_primary(c->m->state) &&
	    c->m->readiness == MRD_READY) {
		log_warn("fsm: ip checker: the virtual IP vanished reason=\"%s\"", why);
		run_event(c, FSM_EV_VIP_LOST);
	}
}

/* ---- application monitoring (monitor.c) --------------------------------------------- */

/* maxloop: one more restart/stopstart/wait; true when the module must stop
 * (more than maxloop of them within loop_interval). */
static bool
loop_count(struct cluster *c)
{
	const struct conf_service *sv = &c->m->conf->service;
	uint64_t now = mr_now_ms();
	size_t k = 0;

	if (sv->loop_interval_ms == 0)
		return false;
	for (size_t i = 0; i < c->n_loops; i++)
		if (now - c->loops[i] < sv->loop_interval_ms)
			c->loops[k++] = c->loops[i];
	c->n_loops = k;
	if (c->n_loops < (size_t)sv->maxloop + 1)
		c->loops[c->n_loops++] = now;
	return c->n_loops > sv->maxloop;
}

static void
mon_action(void *ctx, const char *res, const char *action, const char *reason)
{
	struct cluster *c = ctx;
	char why[160];
	bool was;

	if (strcmp(action, "wakeup") == 0) {
		was = c->res_ok;
		c->res_ok = monitor_wait_ok(c->mon, why, sizeof(why));
		if (was || !c->res_ok)
			return;
		log_notice("check: resource=%s up again; starting again", res);
		if (c->intf_ok) {
			run_event(c, FSM_EV_INTF_UP); /* WAIT (NotReady): start over */
			run_event(c, FSM_EV_PEER);    /* WAIT (Transient): the election */
		}
		return;
	}
	log_warn("check: action=%s resource=%s reason=\"%s\"", action, res, reason);
	if (strcmp(action, "noaction") == 0)
		return;
	if ((strcmp(action, "restart") == 0 || strcmp(action, "stopstart") == 0 ||
	     strcmp(action, "wait") == 0) &&
	    loop_count(c)) {
		log_warn("fsm: action stop called by maxloop (%zu restart/stopstart/wait actions "
		         "within loop_interval, maxloop=%u) resource=%s",
		         c->n_loops, c->m->conf->service.maxloop, res);
		(void)snprintf(c->m->message, sizeof(c->m->message),
		               "stopped by maxloop after %s went down again", res);
		c->n_loops = 0;
		run_event(c, FSM_EV_STOP);
		return;
	}
	if (strcmp(action, "restart") == 0) {
		run_event(c, FSM_EV_RESTART);
	} else if (strcmp(action, "stopstart") == 0) {
		run_event(c, FSM_EV_STOPSTART);
	} else if (strcmp(action, "stop") == 0) {
		run_event(c, FSM_EV_STOP);
	} else if (strcmp(action, "wait") == 0) {
		was = c->res_ok;
		c->res_ok = false;
		if (was && c->intf_ok)
			run_event(c, FSM_EV_INTF_DOWN);
	}
}

/*
 * The scripts' cgroup: a child "hamirror-NODE-MODULE" of mirrord's own cgroup
 * v2, so that every process a script starts (daemonised or not) stays
 * known to the process monitor. Not used when our cgroup delegates
 * controllers (a process may not live in it and in a child), or without
 * cgroup v2: errd then counts every matching process of the namespace.
 */
static void
setup_cgroup(struct cluster *c)
{
	char line[4096], mnt[4096], rel[4096] = "", path[8400];
	FILE *f;
	bool root;

	mr_cgroup2_mount(mnt, sizeof(mnt));
	f = fopen("/proc/self/cgroup", "re");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			(void)snprintf(rel, sizeof(rel), "%s", line + 3);
		}
	if (f != NULL)
		(void)fclose(f);
	if (mnt[0] == '\0' || rel[0] != '/')
		return;
	root = strcmp(rel, "/") == 0;
	(void)snprintf(path, sizeof(path), "%s%s/cgroup.subtree_control", mnt, root ? "" : rel);
	f = root ? NULL : fopen(path, "re");
	if (f != NULL) {
		bool delegating = fgets(line, sizeof(line), f) != NULL && line[0] != '\n';

		(void)fclose(f);
		if (delegating)
			return;
	}
	if ((size_t)snprintf(c->cgroup_dir, sizeof(c->cgroup_dir), "%s%s/hamirror-%s-%s", mnt,
	                     root ? "" : rel, c->m->node->name,
	                     c->m->module) >= sizeof(c->cgroup_dir)) {
		c->cgroup_dir[0] = '\0';
		return; /* (a path that long is not a cgroup we could use) */
	}
	if (mkdir(c->cgroup_dir, 0755) == -1 && errno != EEXIST) {
		log_info("script: no cgroup for the scripts dir=%s err=\"%s\"", c->cgroup_dir,
		         strerror(errno));
		c->cgroup_dir[0] = '\0';
		return;
	}
	if ((size_t)snprintf(c->cgroup_procs, sizeof(c->cgroup_procs), "%s/cgroup.procs",
	                     c->cgroup_dir) >= sizeof(c->cgroup_procs)) {
		c->cgroup_dir[0] = c->cgroup_procs[0] = '\0';
		return;
	}
	log_info("script: scripts run in cgroup %s", c->cgroup_dir);
}

/* The environment of custom checker and handler programs: the <user> vars,
 * and enough to call mirrorctl. */
static char **
mon_env(struct mrd *m)
{
	const char *path = getenv("PATH");
	const struct conf_user *u = &m->conf->user;
	char **env = mr_xcalloc(8 + u->n_vars, sizeof(*env));
	size_t n = 0;

	for (size_t i = 0; i < u->n_vars; i++) /* the <user> <var>s, as for the scripts */
		if (asprintf(&env[n], "%s=%s", u->vars[i].name, u->vars[i].value) > 0)
			n++;

	if (asprintf(&env[n], "PATH=%s", path != NULL ? path : "/usr/sbin:/usr/bin:/sbin:/bin") > 0)
		n++;
	if (asprintf(&env[n], "MIRROR_SOCKET=%s", m->sock_path) > 0)
		n++;
	if (asprintf(&env[n], "HAMIRROR_MODULE=%s", m->module) > 0)
		n++;
	if (asprintf(&env[n], "HAMIRROR_NODE=%s", m->node->name) > 0)
		n++;
	if (asprintf(&env[n], "SAFEMODULE=%s", m->module) > 0)
		n++;
	env[n] = NULL;
	return env;
}

static void
mon_env_free(char **env)
{
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/* The intf and ip checkers (vip.c, checked by check_cb) in the same model:
 * intf.<interface> and ip.<address>, init/up/down. */
static void
status_vip_resources(struct cluster *c, json_t *res)
{
	const struct conf_vip *v = &c->m->conf->vip;
	bool prim = is_primary(c->m->state) && c->m->readiness == MRD_READY;
	char k[96];

	if (res == NULL || !v->present)
		return;
	for (size_t i = 0; i < v->n_intfs; i++) {
		const struct conf_vip_intf *it = &v->intfs[i];

		if (it->check) {
			(void)snprintf(k, sizeof(k), "intf.%s", it->name[0] ? it->name : "auto");
			json_object_set_new(res, k, json_string(c->m->state == MRD_STOP ? "init"
			                                        : c->intf_ok          ? "up"
			                                                              : "down"));
		}
		for (size_t j = 0; j < it->n_addrs; j++) {
			if (!it->addrs[j].check)
				continue;
			(void)snprintf(k, sizeof(k), "ip.%s", it->addrs[j].addr_str);
			json_object_set_new(res, k,
			                    json_string(!prim ? "init"
			                                : c->vip != NULL && vip_held(c->vip) ? "up"
			                                                                      : "down"));
		}
	}
}

int
cluster_set_resource(struct mrd *m, const char *res, const char *value, char *msg,
                     size_t msg_len)
{
	struct cluster *c = cl(m);

	if (c == NULL) {
		(void)snprintf(msg, msg_len, "the module is not running");
		return -ENOTCONN;
	}
	return monitor_set(c->mon, res, value, msg, msg_len);
}

int
cluster_set_monitoring(struct mrd *m, bool errd, bool on, char *msg, size_t msg_len)
{
	struct cluster *c = cl(m);

	if (c == NULL) {
		(void)snprintf(msg, msg_len, "the module is not running");
		return -ENOTCONN;
	}
	pthread_mutex_lock(&c->meta_mu);
	if (errd)
		c->meta.errd_off = !on;
	else
		c->meta.checkers_off = !on;
	meta_persist(c);
	monitor_enable(c->mon, !c->meta.checkers_off, !c->meta.errd_off);
	pthread_mutex_unlock(&c->meta_mu);
	if (!on && !errd && !c->res_ok) { /* a wait rule no longer holds the module */
		c->res_ok = true;
		if (c->intf_ok)
			run_event(c, FSM_EV_INTF_UP);
	}
	log_notice("check: %s %s (mirrorctl; kept across restarts)", errd ? "errd" : "checkers",
	           on ? "on" : "off");
	(void)snprintf(msg, msg_len, "%s %s on node %s", errd ? "errd" : "checkers",
	               on ? "on" : "off", m->node->name);
	return 0;
}

/* ---- public ------------------------------------------------------------------------- */

void
cluster_link(struct mrd *m, bool up)
{
	struct cluster *c = cl(m);

	if (c == NULL)
		return;
	if (up && c->vip != NULL && vip_held(c->vip))
		vip_announce(c->vip);
	run_event(c, up ? FSM_EV_LINK_UP : FSM_EV_LINK_DOWN);
	if (up) {
		bool adopted;

		pthread_mutex_lock(&c->meta_mu);
		adopted = adopt_generation(c);
		pthread_mutex_unlock(&c->meta_mu);
		if (adopted)
			publish(c);
	}
}

/* A failed secondary's automatic rejoin is due (cluster_apply_failed). */
static void
rejoin_timer_cb(uv_timer_t *t)
{
	struct cluster *c = t->data;

	if (!c->rejoin_blocked || c->m->state != MRD_WAIT)
		return; /* the admin acted meanwhile */
	c->rejoin_blocked = false;
	log_notice("cluster: rejoining the primary on its own after the failure to apply, with "
	           "a resync from the primary");
	run_event(c, FSM_EV_PEER);
}

void
cluster_apply_failed(struct mrd *m, const char *why)
{
	struct cluster *c = cl(m);
	const struct conf_service *sv;

	if (c == NULL)
		return;
	sv = &m->conf->service;
	mark_stale(c);
	/* our copy no longer follows the primary's ops: nothing known about it */
	c->exact = false;
	c->listable = false;
	dirty_distrust(m->dirty, "an op of the primary failed to apply here");
	c->rejoin_blocked = true;
	if (!loop_count(c)) {
		/* The resync from the primary overwrites what made the op fail here
		 * (a file put in the copy behind our back) or meets the same cause
		 * again (a full disk): rejoin on our own, after a delay that doubles
		 * with each rejoin counted by maxloop, and stop trying past it. */
		uint64_t ms = CLUSTER_REJOIN_MS << (c->rejoins < 5 ? c->rejoins : 5);

		c->rejoins++;
		(void)uv_timer_start(&c->rejoin_timer, rejoin_timer_cb, ms, 0);
		(void)snprintf(c->fail_detail, sizeof(c->fail_detail),
		               "diverged (%.80s); rejoins on its own in %" PRIu64 " s", why,
		               ms / 1000u);
		log_err("cluster: this secondary no longer follows the primary; it rejoins on its "
		        "own in %" PRIu64 " s with a resync from the primary (rejoin %zu of "
		        "maxloop=%u within loop_interval); `mirrorctl second` on it does it now",
		        ms / 1000u, c->n_loops, sv->maxloop);
	} else {
		(void)snprintf(c->fail_detail, sizeof(c->fail_detail),
		               "diverged (%.80s); no automatic rejoin past maxloop", why);
		log_err("cluster: this secondary no longer follows the primary and does not rejoin "
		        "on its own: maxloop=%u automatic rejoins within loop_interval are used up; "
		        "`mirrorctl second` on it resyncs it from the primary",
		        sv->maxloop);
	}
	run_event(c, FSM_EV_FAILED);
}

void
cluster_hello_gen(struct mrd *m, uint8_t out[16])
{
	struct cluster *c = cl(m);

	memset(out, 0, 16);
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->meta_mu);
	mr_put_be64(out, c->meta.gen.seq);
	mr_put_be64(out + 8, c->meta.gen.id);
	pthread_mutex_unlock(&c->meta_mu);
}

bool
cluster_hello_gen_equal(struct mrd *m, const uint8_t gen[16])
{
	uint8_t mine[16];

	cluster_hello_gen(m, mine);
	return memcmp(mine, gen, 16) == 0;
}

bool
cluster_hello_split(struct mrd *m, const uint8_t gen[16], char *why, size_t why_len)
{
	struct cluster *c = cl(m);
	struct meta_gen pg = { mr_get_be64(gen), mr_get_be64(gen + 8) };
	enum meta_cmp r;

	if (c == NULL)
		return false;
	pthread_mutex_lock(&c->meta_mu);
	r = meta_gen_cmp(&c->meta, &pg);
	if (r == META_DIVERGED)
		(void)snprintf(why, why_len,
		               "split brain: both nodes changed data apart (this node generation "
		               "%" PRIu64 ":%016" PRIx64 ", the peer %" PRIu64 ":%016" PRIx64
		               "); run `mirrorctl second` on the node whose changes are to be "
		               "given up",
		               c->meta.gen.seq, c->meta.gen.id, pg.seq, pg.id);
	pthread_mutex_unlock(&c->meta_mu);
	return r == META_DIVERGED;
}

bool
cluster_peer_exact(struct mrd *m, uint64_t *gen_seq, uint64_t *gen_id)
{
	struct cluster *c = cl(m);

	if (c == NULL || !c->peer_heard)
		return false;
	*gen_seq = c->peer.gen_seq;
	*gen_id = c->peer.gen_id;
	return (c->peer.flags & HB_F_EXACT) != 0;
}

int
cluster_own_changes(struct mrd *m)
{
	struct cluster *c = cl(m);
	uint64_t seq, id;
	bool trusted;

	if (c == NULL || m->mirror == NULL)
		return CLUSTER_CHANGES_UNKNOWN;
	if (c->exact)
		return CLUSTER_CHANGES_NONE;
	/* relative to our generation: a copy half resynced has adopted the
	 * primary's generation already, and is not listed */
	dirty_base(m->dirty, &seq, &id, &trusted);
	pthread_mutex_lock(&c->meta_mu);
	trusted = trusted && c->listable && seq != 0 && seq == c->meta.gen.seq &&
	          id == c->meta.gen.id;
	pthread_mutex_unlock(&c->meta_mu);
	return trusted ? CLUSTER_CHANGES_LISTED : CLUSTER_CHANGES_UNKNOWN;
}

void
cluster_dirty_reset(struct mrd *m)
{
	struct cluster *c = cl(m);

	if (c == NULL)
		return;
	pthread_mutex_lock(&c->meta_mu);
	dirty_reset(m->dirty, c->meta.gen.seq, c->meta.gen.id);
	pthread_mutex_unlock(&c->meta_mu);
	publish(c);
}

void
cluster_new_generation_for_resync(struct mrd *m, const char *why)
{
	struct cluster *c = cl(m);
	uint64_t seq;

	if (c == NULL)
		return;
	/* A generation the secondary does not have: on the next pairing it is
	 * behind and is resynced; the dirty set cannot tell what differs from a
	 * copy we suspect, so every file is compared. */
	dirty_distrust(m->dirty, why);
	pthread_mutex_lock(&c->meta_mu);
	meta_new_generation(&c->meta);
	meta_persist(c);
	seq = c->meta.gen.seq;
	pthread_mutex_unlock(&c->meta_mu);
	publish(c);
	log_notice("resync: %s gen=%" PRIu64 "; the secondary is not up to date until it ends", why,
	           seq);
}

int
cluster_force_resync(struct mrd *m, char *msg, size_t msg_len)
{
	struct cluster *c = cl(m);

	if (c == NULL || m->state != MRD_PRIM || m->peer == NULL || !peer_is_up(m->peer)) {
		(void)snprintf(msg, msg_len,
		               "resync runs on the primary while its secondary is "
		               "connected (PRIM)");
		return -EINVAL;
	}
	cluster_new_generation_for_resync(m, "full resync requested by the admin");
#ifdef MR_TESTING
	/* Test knob: hold the link this many ms after the new generation went
	 * out in a heartbeat (they have a thread of their own), so that it
	 * surely reaches the secondary before the link's end does: the race
	 * adopt_generation() must lose. */
	if (getenv("MR_TEST_RESYNC_DROP_DELAY_MS") != NULL)
		(void)usleep((useconds_t)strtoul(getenv("MR_TEST_RESYNC_DROP_DELAY_MS"), NULL, 10) *
		             1000u);
#endif
	peer_drop(m->peer, "full resync requested by the admin");
	(void)snprintf(msg, msg_len, "full resync started: every file is compared by block "
	                             "checksums; follow it with `mirrorctl status`");
	return 0;
}

void
cluster_diff(struct mrd *m, json_t *out)
{
	struct cluster *c = cl(m);
	struct dirty_stats ds;
	uint64_t pseq = 0, pid = 0;
	bool exact = c != NULL && cluster_peer_exact(m, &pseq, &pid);
	bool trusted = exact && dirty_trusted_for(m->dirty, pseq, pid);

	dirty_stats(m->dirty, &ds);
	json_object_set_new(out, "diff",
	                    json_pack("{s:b,s:b,s:b,s:I,s:I,s:I,s:I}", "set_trusted", ds.trusted,
	                              "peer_exact", exact, "changed_only", trusted, "files",
	                              (json_int_t)ds.files, "whole_files",
	                              (json_int_t)ds.whole_files, "blocks",
	                              (json_int_t)ds.blocks, "block_size",
	                              (json_int_t)DIRTY_BLOCK));
}

void
cluster_resync_begin(struct mrd *m)
{
	struct cluster *c = cl(m);

	if (c == NULL)
		return;
	mark_stale(c);
	(void)snprintf(m->message, sizeof(m->message),
	               "resync from the primary in progress: not up to date yet");
	log_notice("fsm: resync from the primary begins; not up to date until it ends");
	publish(c);
}

int
cluster_command(struct mrd *m, enum fsm_event ev, char *msg, size_t msg_len)
{
	struct cluster *c = cl(m);
	const struct fsm_row *row;
	struct fsm_view v;

	if (c == NULL) {
		(void)snprintf(msg, msg_len, "the module is not running");
		return -ENOTCONN;
	}
	if (c->running && ev == FSM_EV_FORCESTOP) {
		/* forcestop does not wait: abandon the transition */
		log_warn("fsm: forcestop abandons the running transition event=%s",
		         fsm_event_name(c->row_event));
		script_runner_free(c->scripts);
		c->scripts = NULL;
		c->running = false;
		c->row = NULL;
		c->polling = FSM_A_NONE;
		c->handover = false;
		(void)uv_timer_stop(&c->poll_timer);
	}
	if (c->running) {
		(void)snprintf(msg, msg_len, "busy: a transition to %s is running (event %s); try again",
		               mrd_state_name(c->row->next), fsm_event_name(c->row_event));
		return -EBUSY;
	}
	if (ev == FSM_EV_FORCESTOP) {
		static const struct fsm_row forcestop = {
			MRD_STOP, FSM_R_ANY, FSM_EV_FORCESTOP, FSM_G_ANY,
			{ FSM_A_VIP_RELEASE, FSM_A_STOP_PRIM, FSM_A_STOP_SECOND, FSM_A_UNMOUNT,
			  FSM_A_NONE },
			MRD_STOP, MRD_NOTREADY, "stopped by `mirrorctl forcestop`"
		};

		if (m->state == MRD_STOP) {
			(void)snprintf(msg, msg_len, "the module is already stopped");
			return -EPERM;
		}
		if (c->scripts == NULL && m->conf->user.present) {
			const struct script_env env = { .dir = c->scripts_dir,
				                        .log_dir = m->node->log_dir,
				                        .module = m->module,
				                        .node = m->node->name,
				                        .peer = m->conf->nodes[m->peer_idx],
				                        .user = &m->conf->user,
				                        .cgroup_procs = c->cgroup_procs[0]
				                                                ? c->cgroup_procs
				                                                : NULL };

			c->scripts = script_runner_new(m->loop, &env);
		}
		log_notice("fsm: %s (%s) -> STOP (NotReady) event=forcestop", mrd_state_name(m->state),
		           mrd_readiness_name(m->readiness));
		record_last(c, m->state, m->readiness, &forcestop, ev);
		c->row = &forcestop;
		c->row_event = ev;
		c->from_state = m->state;
		c->act_idx = 0;
		c->running = true;
		set_state(c, MRD_STOP, MRD_TRANSIENT, forcestop.message);
		step(c);
		(void)snprintf(msg, msg_len, "%s", forcestop.message);
		return 0;
	}
	fill_view(c, &v);
	row = fsm_lookup(m->state, m->readiness, ev, &v);
	if (row == NULL) {
		(void)snprintf(msg, msg_len, "refused in %s (%s): %s", mrd_state_name(m->state),
		               mrd_readiness_name(m->readiness), fsm_refusal(m->state, ev, &v));
		log_notice("fsm: command=%s refused reason=\"%s\"", fsm_event_name(ev), msg);
		return -EPERM;
	}
	if (ev == FSM_EV_PRIM_FORCE)
		log_warn("fsm: prim --force: this node's data becomes the reference whatever the "
		         "peer holds");
	log_notice("fsm: command=%s accepted", fsm_event_name(ev));
	c->n_loops = 0; /* an admin command resets maxloop */
	c->rejoins = 0;
	if (ev == FSM_EV_SECOND || ev == FSM_EV_PRIM || ev == FSM_EV_PRIM_FORCE)
		c->rejoin_blocked = false;
	if (ev == FSM_EV_SECOND && v.peer_heard &&
	    (v.gen_cmp == META_DIVERGED || v.peer_splitbrain)) {
		/* the admin gives this node's changes up: its copy will be overwritten */
		pthread_mutex_lock(&c->meta_mu);
		meta_set_generation(&c->meta, &(struct meta_gen){ 0, 0 });
		c->meta.uptodate = false;
		meta_persist(c);
		pthread_mutex_unlock(&c->meta_mu);
		log_warn("fsm: split brain resolved by `mirrorctl second`: this node's changes "
		         "since the split will be overwritten by the primary's copy");
		publish(c);
	}
	if (ev == FSM_EV_START) {
		pthread_mutex_lock(&c->meta_mu);
		c->meta.clean_stop = false;
		meta_persist(c);
		pthread_mutex_unlock(&c->meta_mu);
	}
	(void)snprintf(msg, msg_len, "%s -> %s: %s", mrd_state_name(m->state),
	               mrd_state_name(row->next), row->message);
	run_event(c, ev);
	return 0;
}

int
cluster_set_failover(struct mrd *m, bool on, char *msg, size_t msg_len)
{
	struct cluster *c = cl(m);

	if (c == NULL) {
		(void)snprintf(msg, msg_len, "the module is not running");
		return -ENOTCONN;
	}
	pthread_mutex_lock(&c->meta_mu);
	c->meta.failover = on ? 1 : 0;
	meta_persist(c);
	pthread_mutex_unlock(&c->meta_mu);
	log_notice("fsm: failover %s (mirrorctl failover)", on ? "on" : "off");
	publish(c);
	(void)snprintf(msg, msg_len, "failover %s on node %s (run it on the peer too)",
	               on ? "on" : "off", m->node->name);
	return 0;
}

void
cluster_status(struct mrd *m, json_t *result)
{
	struct cluster *c = cl(m);
	json_t *o, *p, *meta, *hist;
	char id[17];

	if (c == NULL)
		return;
	monitor_status(c->mon, result);
	status_vip_resources(c, json_object_get(result, "resources"));
	json_object_set_new(result, "maxloop",
	                    json_pack("{s:I,s:i,s:I}", "count", (json_int_t)c->n_loops, "max",
	                              (int)m->conf->service.maxloop, "interval_s",
	                              (json_int_t)(m->conf->service.loop_interval_ms / 1000)));
	/* a failed secondary's automatic rejoin: when, and how many so far */
	json_object_set_new(result, "rejoin",
	                    json_pack("{s:b,s:b,s:I,s:i}", "blocked", c->rejoin_blocked,
	                              "scheduled",
	                              uv_is_active((uv_handle_t *)&c->rejoin_timer) != 0, "in_ms",
	                              (json_int_t)uv_timer_get_due_in(&c->rejoin_timer), "count",
	                              (int)c->rejoins));
	p = json_object();
	json_object_set_new(p, "name", json_string(m->conf->nodes[m->peer_idx]));
	json_object_set_new(p, "heard", json_boolean(c->peer_heard));
	if (c->peer_heard) {
		(void)snprintf(id, sizeof(id), "%016" PRIx64, c->peer.gen_id);
		json_object_set_new(p, "state", json_string(mrd_state_name((enum mrd_state)c->peer.state)));
		json_object_set_new(p, "readiness", json_string(mrd_readiness_name(
		                                            (enum mrd_readiness)c->peer.readiness)));
		json_object_set_new(p, "uptodate", json_boolean(c->peer.uptodate));
		json_object_set_new(p, "generation", json_pack("{s:I,s:s}", "seq",
		                                               (json_int_t)c->peer.gen_seq, "id", id));
		json_object_set_new(p, "failover",
		                    json_boolean((c->peer.flags & HB_F_FAILOVER) != 0));
		json_object_set_new(p, "handover",
		                    json_boolean((c->peer.flags & HB_F_HANDOVER) != 0));
		json_object_set_new(p, "changed_files",
		                    json_integer((json_int_t)c->peer.changed_files));
		json_object_set_new(p, "exact_copy", json_boolean((c->peer.flags & HB_F_EXACT) != 0));
	} else {
		json_object_set_new(p, "state", json_string("UNKNOWN"));
	}
	json_object_set_new(result, "peer_node", p);
	{
		struct dirty_stats ds;

		dirty_stats(m->dirty, &ds);
		json_object_set_new(result, "changed",
		                    json_pack("{s:I,s:b,s:I,s:b}", "files", (json_int_t)ds.files,
		                              "trusted", ds.trusted, "base_seq",
		                              (json_int_t)ds.base_seq, "exact_copy", c->exact));
	}

	meta = json_object();
	hist = json_array();
	pthread_mutex_lock(&c->meta_mu);
	(void)snprintf(id, sizeof(id), "%016" PRIx64, c->meta.gen.id);
	json_object_set_new(meta, "seq", json_integer((json_int_t)c->meta.gen.seq));
	json_object_set_new(meta, "id", json_string(id));
	for (size_t i = 0; i < c->meta.n_history && i < 4; i++)
		json_array_append_new(hist, json_integer((json_int_t)c->meta.history[i].seq));
	json_object_set_new(meta, "history", hist);
	json_object_set_new(result, "failover",
	                    json_boolean(c->meta.failover >= 0 ? c->meta.failover == 1
	                                                       : m->conf->service.failover));
	pthread_mutex_unlock(&c->meta_mu);
	json_object_set_new(result, "generation", meta);

	o = json_object();
	json_object_set_new(o, "from", json_string(c->last_from));
	json_object_set_new(o, "to", json_string(c->last_to));
	json_object_set_new(o, "event", json_string(c->last_event));
	json_object_set_new(o, "reason", json_string(c->last_reason));
	json_object_set_new(o, "time_ms", json_integer((json_int_t)c->last_time_ms));
	if (c->running)
		json_object_set_new(o, "running_action",
		                    json_string(fsm_action_name(c->row->actions[c->act_idx])));
	json_object_set_new(result, "last_transition", o);

	o = json_object();
	json_object_set_new(o, "configured", json_boolean(m->conf->splitbrain.present));
	json_object_set_new(o, "checked", json_boolean(c->witness_checked));
	if (c->witness_checked) {
		json_object_set_new(o, "reached", json_boolean(c->witness_reached));
		json_object_set_new(o, "detail", json_string(c->witness_detail));
	}
	json_object_set_new(result, "witness", o);
	json_object_set_new(result, "interface_ok", json_boolean(c->intf_ok));
	if (c->hb != NULL)
		hb_status(c->hb, result);
	if (c->vip != NULL) {
		vip_status(c->vip, result);
		o = json_object_get(result, "vip");
		if (o != NULL)
			json_object_set_new(o, "owner",
			                    vip_held(c->vip) ? json_string(m->node->name)
			                    : c->peer_heard && is_primary((enum mrd_state)c->peer.state)
			                            ? json_string(m->conf->nodes[m->peer_idx])
			                            : json_null());
	}
}

static void
close_cb(uv_handle_t *h)
{
	struct cluster *c = h->data;

	if (--c->pending_closes > 0)
		return;
	pthread_mutex_destroy(&c->meta_mu);
	free(c->net_up);
	free(c);
}

int
cluster_start(struct mrd *m, enum fsm_event initial)
{
	struct cluster *c;
	struct hb_info info = { 0 };
	char err[512], cfg[4096];
	int r;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->m = m;
	c->intf_ok = true;
	MR_BUG_ON(pthread_mutex_init(&c->meta_mu, NULL) != 0);
	c->n_nets = m->conf->heart.n_hbs;
	c->net_up = calloc(c->n_nets, sizeof(*c->net_up));
	(void)snprintf(c->meta_path, sizeof(c->meta_path), "%s/%s.meta", m->node->state_dir,
	               m->module);
	(void)snprintf(cfg, sizeof(cfg), "%s", m->config_path);
	(void)snprintf(c->scripts_dir, sizeof(c->scripts_dir), "%s/scripts", dirname(cfg));
	r = meta_load(c->meta_path, &c->meta, err, sizeof(err));
	if (r == -ENOENT) {
		log_notice("meta: no metadata yet (first start of this module on this node) "
		           "path=%s",
		           c->meta_path);
	} else if (r < 0) {
		log_err("meta: cannot load the module metadata err=\"%s\"; refusing to guess "
		        "(move the file away to start as a node without history)",
		        err);
		goto err;
	} else {
		log_notice("meta: loaded gen=%" PRIu64 ":%016" PRIx64
		           " uptodate=%s clean_stop=%s last_role=%d",
		           c->meta.gen.seq, c->meta.gen.id, c->meta.uptodate ? "yes" : "no",
		           c->meta.clean_stop ? "yes" : "no", (int)c->meta.last_role);
	}
	(void)snprintf(c->dirty_path, sizeof(c->dirty_path), "%s/%s.dirty", m->node->state_dir,
	               m->module);
	(void)snprintf(c->plog_path, sizeof(c->plog_path), "%s/%s.plog", m->node->state_dir,
	               m->module);
	m->dirty = dirty_new(DIRTY_BLOCK);
	if (m->dirty == NULL) {
		r = -ENOMEM;
		goto err;
	}
	load_dirty(c);
	m->cluster = c;
	MR_BUG_ON(uv_timer_init(m->loop, &c->start_timer) != 0);
	MR_BUG_ON(uv_timer_init(m->loop, &c->poll_timer) != 0);
	MR_BUG_ON(uv_timer_init(m->loop, &c->check_timer) != 0);
	MR_BUG_ON(uv_timer_init(m->loop, &c->rejoin_timer) != 0);
	MR_BUG_ON(uv_async_init(m->loop, &c->publish_async, publish_async_cb) != 0);
	c->start_timer.data = c->poll_timer.data = c->check_timer.data = c->rejoin_timer.data = c;
	c->publish_async.data = c;

	r = vip_new(m->loop, &m->conf->vip, &c->vip, err, sizeof(err));
	if (r < 0) {
		log_err("vip: %s", err);
		goto err_handles;
	}
	vip_set_probe_ms(c->vip, m->conf->heart.timeout_ms / 5);
	setup_cgroup(c);
	c->res_ok = true;
	c->loops = mr_xcalloc((size_t)m->conf->service.maxloop + 2, sizeof(*c->loops));
	c->mon_env = mon_env(m);
	c->mon = monitor_new(m->loop, m->conf, c->scripts_dir, c->mon_env,
	                     c->cgroup_procs[0] ? c->cgroup_procs : NULL, mon_action, c);
	monitor_enable(c->mon, !c->meta.checkers_off, !c->meta.errd_off);
	if (m->conf->user.present) {
		const struct script_env env = { .dir = c->scripts_dir,
			                        .log_dir = m->node->log_dir,
			                        .module = m->module,
			                        .node = m->node->name,
			                        .peer = m->conf->nodes[m->peer_idx],
			                        .user = &m->conf->user,
			                        .cgroup_procs = c->cgroup_procs[0] ? c->cgroup_procs
			                                                           : NULL };

		c->scripts = script_runner_new(m->loop, &env);
		if (c->scripts == NULL) {
			r = -ENOMEM;
			goto err_handles;
		}
		log_notice("fsm: restart scripts dir=%s", c->scripts_dir);
	}
	info.state = (uint8_t)m->state;
	info.readiness = (uint8_t)m->readiness;
	info.gen_seq = c->meta.gen.seq;
	info.gen_id = c->meta.gen.id;
	memcpy(info.config_hash, m->conf->hash, sizeof(info.config_hash));
	static const struct hb_cbs cbs = { hb_on_peer, hb_on_net, hb_on_lost };
	r = hb_start(m->loop, m->conf, m->self_idx, m->module, m->node->hb_key_file, &info, &cbs, c,
	             &c->hb, err, sizeof(err));
	if (r < 0) {
		log_err("hb: cannot start heartbeats: %s", err);
		goto err_handles;
	}
	publish(c);
	(void)uv_timer_start(&c->check_timer, check_cb, CLUSTER_CHECK_MS, CLUSTER_CHECK_MS);
	if (initial != FSM_EV__COUNT) {
		char msg[256];

		if (initial == FSM_EV_PRIM_FORCE)
			log_warn("fsm: started with --role primary: prim --force");
		r = cluster_command(m, initial, msg, sizeof(msg));
		if (r < 0)
			log_warn("fsm: initial command=%s refused: %s", fsm_event_name(initial), msg);
	}
	return 0;

err_handles:
	m->cluster = NULL;
	dirty_free(m->dirty);
	m->dirty = NULL;
	plog_free(m->plog);
	m->plog = NULL;
	script_runner_free(c->scripts);
	monitor_free(c->mon);
	c->mon = NULL;
	mon_env_free(c->mon_env);
	c->mon_env = NULL;
	mr_free(&c->loops);
	vip_free(c->vip);
	c->pending_closes = 5;
	uv_close((uv_handle_t *)&c->start_timer, close_cb);
	uv_close((uv_handle_t *)&c->poll_timer, close_cb);
	uv_close((uv_handle_t *)&c->check_timer, close_cb);
	uv_close((uv_handle_t *)&c->rejoin_timer, close_cb);
	uv_close((uv_handle_t *)&c->publish_async, close_cb);
	return r;
err:
	pthread_mutex_destroy(&c->meta_mu);
	free(c->net_up);
	free(c);
	return r;
}

void
cluster_stop(struct mrd *m)
{
	struct cluster *c = cl(m);

	if (c == NULL)
		return;
	c->stopping = true;
	if (mirror_current_role(m) != MIRROR_NONE) {
		uint64_t seq = seq_to_keep(c);

		pthread_mutex_lock(&c->meta_mu);
		c->meta.last_seq = seq;
		meta_persist(c);
		pthread_mutex_unlock(&c->meta_mu);
	}
	/* unmount now, while the engine's divergence hook may still reach us */
	mirror_stop(m);
	dirty_free(m->dirty);
	m->dirty = NULL;
	plog_free(m->plog);
	m->plog = NULL;
	m->cluster = NULL;
	hb_stop(c->hb);
	c->hb = NULL;
	script_runner_free(c->scripts);
	c->scripts = NULL;
	monitor_free(c->mon); /* (its programs are killed; it uses mon_env no more) */
	c->mon = NULL;
	if (c->cgroup_dir[0] != '\0')
		(void)rmdir(c->cgroup_dir); /* (stays while an application runs in it) */
	mon_env_free(c->mon_env);
	c->mon_env = NULL;
	mr_free(&c->loops);
	if (c->vip != NULL && vip_held(c->vip))
		log_notice("vip: daemon stopping while holding the virtual IP: leaving it in place "
		           "until the module is stopped (mirrorctl stop)");
	vip_free(c->vip);
	c->vip = NULL;
	c->pending_closes = 5 + (c->witness_pending ? 1 : 0);
	uv_close((uv_handle_t *)&c->start_timer, close_cb);
	uv_close((uv_handle_t *)&c->poll_timer, close_cb);
	uv_close((uv_handle_t *)&c->check_timer, close_cb);
	uv_close((uv_handle_t *)&c->rejoin_timer, close_cb);
	uv_close((uv_handle_t *)&c->publish_async, close_cb);
}
