/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mirror.c - joins the shims, the engines and the peer link for one module
 * (see mirror.h). Loop thread; each shim runs its FUSE loop on its own thread
 * (with every signal blocked, so libuv keeps receiving them).
 *
 * The state machine (cluster.c) decides the role and owns the module state;
 * this file reports link and apply events to it.
 */
#include "mirror.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "cluster.h"
#include "dirty.h"
#include "err.h"
#include "log.h"
#include "mrd.h"
#include "plog.h"
#include "repl.h"
#include "resync.h"
#include "shim.h"
#include "util.h"

struct mirror_dir {
	struct shim *shim;
	pthread_t thread;
	bool running;
	int root_fd; /* secondary: the real directory, opened before mounting */
	struct mrd *m;
	uint8_t idx;
};

#define CHECKPOINT_MS 2000u /* pre-write log checkpoints while paired */

/* A checkpoint of the pre-write log (primary, paired): a new epoch, then
 * every change of the old one submitted (drain), then acknowledged (ack),
 * then the log rewritten without the names only the old epoch needed. */
enum ck_phase {
	CK_IDLE = 0,
	CK_DRAIN,
	CK_ACK,
};

struct mirror {
	enum mirror_role role;
	struct mirror_dir *dirs;
	int *root_fds;
	size_t n_dirs;
	struct repl *repl;   /* primary */
	struct apply *apply; /* secondary */
	struct resync *resync; /* primary: a resync of the peer runs */
	struct resync *verify; /* primary: the last `mirrorctl verify` (kept for status) */
	bool need_resync;      /* decided from the HELLOs of the current link */
	bool resyncing;        /* secondary: until a clean RS_END */
	bool link_up;
	uint64_t link_gen;     /* links brought up so far */
	uint8_t peer_gen[16];  /* the generation in the peer's HELLO of the current link */
	/* primary, before a resync: the target's list of its own changes */
	bool wait_list;
	bool list_all;
	uint64_t list_files;
	/* the pre-write log's checkpoint */
	enum ck_phase ck_phase;
	uint64_t ck_old;      /* the epoch being retired */
	uint64_t ck_target;   /* its last seq */
	uint64_t ck_link_gen; /* the link it runs on */
	uint64_t ck_next_ms;  /* the next periodic one */
};

int
mirror_role_parse(const char *s)
{
	if (strcmp(s, "primary") == 0)
		return MIRROR_PRIMARY;
	if (strcmp(s, "secondary") == 0)
		return MIRROR_SECONDARY;
	return -EINVAL;
}

static const char *
role_name(enum mirror_role r)
{
	return r == MIRROR_PRIMARY ? "primary" : r == MIRROR_SECONDARY ? "secondary" : "none";
}

static void *
shim_thread(void *arg)
{
	struct mirror_dir *d = arg;
	int r;

	/* before the loop starts its workers: they inherit the name */
	(void)pthread_setname_np(pthread_self(), "mr-shim");
	r = shim_run(d->shim);
	if (r < 0)
		log_err("mirror: FUSE loop ended err=\"%s\"", mr_strerror(r));
	return NULL;
}

/* A FUSE worker, before a change: the pre-write log must cover it. */
static int
prelog_cb(void *ctx, uint64_t epoch, const char *path, unsigned kind)
{
	struct mirror_dir *d = ctx;

	return plog_need(d->m->plog, epoch, d->idx, path, kind);
}

static int
start_shim(struct mirror_dir *d, const char *dir, bool read_only, shim_submit_fn submit, void *ctx,
           bool fsync_overlap)
{
	struct shim_config cfg = {
		.dir = dir,
		.read_only = read_only,
		.submit = submit,
		.submit_ctx = ctx,
		.fsync_overlap = fsync_overlap,
		.prelog = d->m->plog != NULL ? prelog_cb : NULL,
		.prelog_ctx = d,
		.epoch = d->m->plog != NULL ? plog_epoch(d->m->plog) : 1,
	};
	sigset_t all, old;
	char err[512];
	int r;

	r = shim_new(&cfg, &d->shim, err, sizeof(err));
	if (r < 0) {
		log_err("mirror: cannot mount over dir=%s reason=\"%s\"", dir, err);
		return r;
	}
	(void)sigfillset(&all);
	(void)pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&d->thread, NULL, shim_thread, d);
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		shim_free(d->shim);
		d->shim = NULL;
		return r;
	}
	d->running = true;
	log_notice("mirror: mounted dir=%s mode=%s", dir, read_only ? "read-only" : "read-write");
	return 0;
}

static void
stop_shims(struct mirror *mi)
{
	size_t i;

	for (i = 0; i < mi->n_dirs; i++) {
		struct mirror_dir *d = &mi->dirs[i];

		if (d->running) {
			shim_stop(d->shim);
			pthread_join(d->thread, NULL);
			d->running = false;
		}
		shim_free(d->shim);
		d->shim = NULL;
	}
}

/* ---- engine callbacks (loop thread) ---------------------------------------- */

static void
ack_cb(void *ctx, uint64_t seq)
{
	struct mrd *m = ctx;
	struct proto_msg msg = { .type = PROTO_ACK, .u.ack = { .seq = seq, .durable_seq = seq } };

#ifdef MR_TESTING
	/* Test knob: a secondary that applies but never acknowledges (the link
	 * stays alive through PING/PONG), to exercise the primary's sendtimeout. */
	if (getenv("MR_TEST_WITHHOLD_ACKS") != NULL)
		return;
#endif
	if (m->peer != NULL && peer_is_up(m->peer))
		(void)peer_send(m->peer, &msg);
}

static void
fail_cb(void *ctx, const char *why)
{
	struct mrd *m = ctx;

	log_err("apply: this copy no longer matches the primary reason=\"%s\"", why);
	if (m->peer != NULL)
		peer_drop(m->peer, why);
	cluster_apply_failed(m, why);
}

/* Secondary: a resync pass ended; tell the primary, and be up to date after a
 * clean one. */
static void
rs_result_cb(void *ctx, uint64_t end_seq, uint64_t failures)
{
	struct mrd *m = ctx;
	struct mirror *mi = m->mirror;
	struct proto_msg msg = { .type = PROTO_RS_RESULT,
		                 .u.rs_result = { .end_seq = end_seq, .failures = failures } };

	log_notice("resync: pass ended seq=%" PRIu64 " stale_ops=%" PRIu64 "%s", end_seq, failures,
	           failures == 0 ? " (clean)" : "");
	if (m->peer != NULL && peer_is_up(m->peer))
		(void)peer_send(m->peer, &msg);
	if (mi != NULL && failures == 0 && mi->resyncing) {
		mi->resyncing = false;
		cluster_link(m, true); /* now the copy matches: SECOND (Ready) */
	}
}

/* Secondary: block hashes for the primary's resync. */
static void
rs_hashes_cb(void *ctx, uint64_t req_seq, uint32_t block_size, uint32_t n, const uint8_t *hashes)
{
	struct mrd *m = ctx;
	struct proto_msg msg = { .type = PROTO_RS_HASHES,
		                 .u.rs_hashes = { .req_seq = req_seq,
		                                  .block_size = block_size,
		                                  .n = n,
		                                  .hashes = hashes } };

	if (m->peer != NULL && peer_is_up(m->peer))
		(void)peer_send(m->peer, &msg);
}

/* Resync thread: the name lock of directory dir's shim (resync_opts). The
 * shims outlive the resync (mirror_stop joins it first). */
static void
resync_ns_hold(void *ctx, uint8_t dir, bool hold)
{
	struct mirror *mi = ctx;

	if (dir < mi->n_dirs && mi->dirs[dir].shim != NULL)
		shim_ns_hold(mi->dirs[dir].shim, hold);
}

/* Primary: the resync thread finished. */
static void
resync_done_cb(void *ctx, bool ok, const char *why)
{
	struct mrd *m = ctx;
	struct mirror *mi = m->mirror;

	if (mi == NULL || mi->repl == NULL)
		return;
	if (ok) {
		repl_resynced(mi->repl);
		cluster_dirty_reset(m);
		mi->need_resync = false;
		mi->ck_next_ms = 0; /* the log's old names are settled: checkpoint */
		log_notice("resync: the secondary's copy matches (%s)", why);
	} else if (m->peer != NULL && peer_is_up(m->peer)) {
		log_warn("resync: stopped reason=\"%s\"; pairing again", why);
		peer_drop(m->peer, "resync did not finish");
	}
}

static void
verify_done_cb(void *ctx, bool ok, const char *why)
{
	(void)ctx;
	(void)ok;
	(void)why; /* logged by resync.c; the result stays for `status` */
}

int
mirror_verify(struct mrd *m, char *msg, size_t msg_len)
{
	struct mirror *mi = m->mirror;
	struct resync_opts o = { .ahead = 1, .verify = true, .block = m->conf->rfs.reiblocksize };
	int r;

	if (mi == NULL || mi->role != MIRROR_PRIMARY) {
		(void)snprintf(msg, msg_len, "verify runs on the primary (PRIM with its secondary)");
		return -EINVAL;
	}
	if (!mi->link_up || mi->need_resync || (mi->resync != NULL && !resync_finished(mi->resync))) {
		(void)snprintf(msg, msg_len, "%s", !mi->link_up ? "the secondary is not connected"
		                                                : "a resync is running: verify "
		                                                  "when the secondary is up to date");
		return -EAGAIN;
	}
	if (mi->verify != NULL) {
		if (!resync_finished(mi->verify)) {
			(void)snprintf(msg, msg_len, "a verify is already running");
			return -EBUSY;
		}
		resync_stop(mi->verify);
		mi->verify = NULL;
	}
	resync_stop(mi->resync); /* a finished one: the hash answers are the verify's now */
	mi->resync = NULL;
	r = resync_start(m->loop, mi->repl, mi->root_fds, mi->n_dirs, NULL, &o, verify_done_cb, m,
	                 &mi->verify);
	if (r < 0) {
		(void)snprintf(msg, msg_len, "cannot start: %s", mr_strerror(r));
		return r;
	}
	(void)snprintf(msg, msg_len, "verify started: both copies are compared block by block, "
	                             "nothing is changed");
	return 0;
}

static void
diverge_cb(void *ctx)
{
	cluster__diverged(ctx);
}

int
mirror_start(struct mrd *m, enum mirror_role role, uint64_t start_seq)
{
	const struct conf_rfs *rfs = &m->conf->rfs;
	struct mirror *mi;
	size_t i;
	int r;

	if (role == MIRROR_NONE)
		return 0;
	if (!rfs->present || rfs->n_repl == 0) {
		log_err("mirror: role %s needs <rfs> with a <replicated> directory",
		        role_name(role));
		return MR_ECONFIG;
	}
	mi = calloc(1, sizeof(*mi));
	if (mi == NULL)
		return -ENOMEM;
	mi->role = role;
	mi->n_dirs = rfs->n_repl;
	mi->dirs = calloc(mi->n_dirs, sizeof(*mi->dirs));
	mi->root_fds = calloc(mi->n_dirs, sizeof(*mi->root_fds));
	if (mi->dirs == NULL || mi->root_fds == NULL) {
		r = -ENOMEM;
		goto err;
	}
	for (i = 0; i < mi->n_dirs; i++) {
		mi->dirs[i].root_fd = mi->root_fds[i] = -1;
		mi->dirs[i].m = m;
		mi->dirs[i].idx = (uint8_t)i;
	}
	m->mirror = mi;

	for (i = 0; i < mi->n_dirs; i++) {
		/* the real directory, before the mount hides it (apply, resync); a
		 * mount left by a killed daemon would answer ENOTCONN: clear it first */
		shim_clear_dead_mount(rfs->repl[i].dir);
		mi->root_fds[i] = open(rfs->repl[i].dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (mi->root_fds[i] == -1) {
			r = -errno;
			log_err("mirror: cannot open dir=%s err=\"%s\"", rfs->repl[i].dir,
			        mr_strerror(r));
			goto err;
		}
	}
	if (role == MIRROR_PRIMARY) {
		r = repl_new(m->loop, rfs, mi->n_dirs, start_seq, &mi->repl);
		if (r < 0)
			goto err;
		repl_set_diverge_cb(mi->repl, diverge_cb, m);
		repl_set_dirty(mi->repl, m->dirty);
		dirty_set_roots(m->dirty, mi->root_fds, mi->n_dirs);
		for (i = 0; i < mi->n_dirs; i++) {
			/* fsync overlaps with the peer's, unless replies come early */
			r = start_shim(&mi->dirs[i], rfs->repl[i].dir, false, repl_submit,
			               repl_dir_ctx(mi->repl, i), rfs->async != CONF_ASYNC_ASYNC);
			if (r < 0)
				goto err;
		}
		return 0;
	}

	for (i = 0; i < mi->n_dirs; i++) {
		r = start_shim(&mi->dirs[i], rfs->repl[i].dir, true, NULL, NULL, false);
		if (r < 0)
			goto err;
	}
	r = apply_new(m->loop, mi->root_fds, mi->n_dirs, rfs->async, start_seq, ack_cb, fail_cb,
	              m, &mi->apply);
	if (r < 0)
		goto err;
	apply_set_rs_cb(mi->apply, rs_result_cb, rs_hashes_cb);
	return 0;

err:
	mirror_stop(m);
	return r;
}

void
mirror_stop(struct mrd *m)
{
	struct mirror *mi = m->mirror;
	size_t i;

	if (mi == NULL)
		return;
	/* primary: complete every pending op first (blocked writers go on), which
	 * also lets a resync thread waiting for room give up */
	repl_stop(mi->repl);
	resync_stop(mi->resync);
	mi->resync = NULL;
	resync_stop(mi->verify);
	mi->verify = NULL;
	mi->repl = NULL;
	stop_shims(mi);
	if (mi->role == MIRROR_PRIMARY)
		dirty_set_roots(m->dirty, NULL, 0);
	apply_stop(mi->apply);
	mi->apply = NULL;
	for (i = 0; i < mi->n_dirs; i++)
		if (mi->root_fds[i] >= 0)
			(void)close(mi->root_fds[i]);
	free(mi->root_fds);
	free(mi->dirs);
	free(mi);
	m->mirror = NULL;
}

void
mirror_freeze(struct mrd *m)
{
	struct mirror *mi = m->mirror;
	size_t i;

	if (mi == NULL || mi->role != MIRROR_PRIMARY)
		return;
	for (i = 0; i < mi->n_dirs; i++)
		if (mi->dirs[i].shim != NULL)
			shim_set_read_only(mi->dirs[i].shim, true);
	log_notice("mirror: replicated directories read-only for the handover");
}

void
mirror_freeze_engine(struct mrd *m)
{
	struct mirror *mi = m->mirror;

	if (mi != NULL && mi->repl != NULL)
		repl_freeze(mi->repl);
}

/* ---- pre-write log checkpoints ------------------------------------------------ */

/* Primary with a peer that has everything but the ops in flight. */
static bool
paired(const struct mirror *mi)
{
	struct repl_stats st;

	if (mi->role != MIRROR_PRIMARY || mi->repl == NULL || !mi->link_up || mi->need_resync ||
	    mi->wait_list || (mi->resync != NULL && !resync_finished(mi->resync)))
		return false;
	repl_get_stats(mi->repl, &st);
	return !st.diverged;
}

void
mirror_tick(struct mrd *m)
{
	struct mirror *mi = m->mirror;
	struct repl_stats st;
	struct plog_stats ps;
	uint64_t now = mr_now_ms(), seq, id;
	bool trusted;
	size_t i;

	if (mi == NULL || m->plog == NULL)
		return;
	if (!paired(mi) || (mi->ck_phase != CK_IDLE && mi->ck_link_gen != mi->link_gen)) {
		mi->ck_phase = CK_IDLE; /* the old names stay in the log */
		return;
	}
	if (mi->ck_phase == CK_IDLE) {
		uint64_t e;

		if (now < mi->ck_next_ms)
			return;
		plog_stats(m->plog, &ps);
		if (ps.entries == 0 && !ps.all)
			return; /* nothing to retire */
		e = plog_next_epoch(m->plog);
		mi->ck_old = e - 1;
		for (i = 0; i < mi->n_dirs; i++)
			if (mi->dirs[i].shim != NULL)
				shim_set_epoch(mi->dirs[i].shim, e);
		mi->ck_link_gen = mi->link_gen;
		mi->ck_phase = CK_DRAIN;
	}
	if (mi->ck_phase == CK_DRAIN) {
		for (i = 0; i < mi->n_dirs; i++)
			if (mi->dirs[i].shim != NULL && shim_epoch_busy(mi->dirs[i].shim, mi->ck_old) > 0)
				return;
		repl_get_stats(mi->repl, &st);
		mi->ck_target = st.last_seq;
		mi->ck_phase = CK_ACK;
	}
	repl_get_stats(mi->repl, &st);
	if (st.acked_seq < mi->ck_target)
		return;
	dirty_base(m->dirty, &seq, &id, &trusted);
	(void)plog_checkpoint(m->plog, mi->ck_old + 1, seq, id, true);
	mi->ck_phase = CK_IDLE;
	mi->ck_next_ms = now + CHECKPOINT_MS;
}

enum mirror_role
mirror_current_role(const struct mrd *m)
{
	return m->mirror != NULL ? m->mirror->role : MIRROR_NONE;
}

bool
mirror_link_up(const struct mrd *m)
{
	return m->mirror != NULL && m->mirror->link_up;
}

bool
mirror_link_generation(const struct mrd *m, uint8_t gen[16])
{
	if (!mirror_link_up(m))
		return false;
	memcpy(gen, m->mirror->peer_gen, 16);
	return true;
}

void
mirror_seqs(const struct mrd *m, struct mirror_seqs *out)
{
	const struct mirror *mi = m->mirror;

	*out = (struct mirror_seqs){ 0 };
	if (mi != NULL && mi->repl != NULL) {
		struct repl_stats st;

		/* first: a change counted here is submitted before it stops being
		 * counted, so none can slip between the two readings */
		for (size_t i = 0; i < mi->n_dirs; i++)
			if (mi->dirs[i].shim != NULL)
				out->mutating += (unsigned)shim_mutating(mi->dirs[i].shim);
		repl_get_stats(mi->repl, &st);
		out->last_seq = st.last_seq;
		out->inflight_ops = st.inflight_ops;
		out->diverged = st.diverged;
	} else if (mi != NULL && mi->apply != NULL) {
		out->last_seq = apply_last_seq(mi->apply);
		out->applied_seq = apply_applied_seq(mi->apply);
		out->failed = apply_failed(mi->apply);
	}
}

void
mirror_status(struct mrd *m, json_t *result)
{
	struct mirror *mi = m->mirror;
	json_t *o;

	if (mi == NULL)
		return;
	o = json_object();
	if (o == NULL)
		return;
	json_object_set_new(o, "role", json_string(role_name(mi->role)));
	json_object_set_new(o, "link", json_boolean(mi->link_up));
	json_object_set_new(o, "async",
	                    json_string(m->conf->rfs.async == CONF_ASYNC_NONE    ? "none"
	                                : m->conf->rfs.async == CONF_ASYNC_ASYNC ? "async"
	                                                                         : "second"));
	if (mi->repl != NULL) {
		struct repl_stats st;

		repl_get_stats(mi->repl, &st);
		json_object_set_new(o, "last_seq", json_integer((json_int_t)st.last_seq));
		json_object_set_new(o, "acked_seq", json_integer((json_int_t)st.acked_seq));
		json_object_set_new(o, "inflight_ops", json_integer((json_int_t)st.inflight_ops));
		json_object_set_new(o, "inflight_bytes",
		                    json_integer((json_int_t)st.inflight_bytes));
		json_object_set_new(o, "diverged", json_boolean(st.diverged));
		json_object_set_new(o, "alone_ops", json_integer((json_int_t)st.alone_ops));
	}
	if (mi->resync != NULL)
		resync_status(mi->resync, o);
	if (mi->verify != NULL)
		resync_status(mi->verify, o);
	json_object_set_new(o, "resyncing", json_boolean(mi->resync != NULL || mi->resyncing));
	if (mi->apply != NULL) {
		json_object_set_new(o, "received_seq",
		                    json_integer((json_int_t)apply_last_seq(mi->apply)));
		json_object_set_new(o, "apply_failed", json_boolean(apply_failed(mi->apply)));
	}
	if (m->plog != NULL && mi->role == MIRROR_PRIMARY) {
		struct plog_stats ps;

		plog_stats(m->plog, &ps);
		json_object_set_new(o, "prelog",
		                    json_pack("{s:I,s:I,s:b,s:b,s:I,s:I,s:I}", "epoch",
		                              (json_int_t)ps.epoch, "names",
		                              (json_int_t)ps.entries, "all", ps.all, "failed",
		                              ps.failed, "syncs", (json_int_t)ps.syncs, "appended",
		                              (json_int_t)ps.appended, "checkpoints",
		                              (json_int_t)ps.checkpoints));
	}
	json_object_set_new(result, "replication", o);
}

/* ---- peer link callbacks ----------------------------------------------------- */

static enum proto_role
wire_role(const struct mirror *mi)
{
	if (mi == NULL)
		return PROTO_ROLE_NONE;
	return mi->role == MIRROR_PRIMARY ? PROTO_ROLE_PRIMARY : PROTO_ROLE_SECONDARY;
}

static void
cb_make_hello(void *ctx, struct proto_hello *h)
{
	struct mrd *m = ctx;
	struct mirror *mi = m->mirror;

	*h = (struct proto_hello){ .version = PROTO_VERSION, .role = (uint8_t)wire_role(mi) };
	h->node.p = m->node->name;
	h->node.len = (uint16_t)strlen(m->node->name);
	h->module.p = m->module;
	h->module.len = (uint16_t)strlen(m->module);
	memcpy(h->config_hash, m->conf->hash, sizeof(h->config_hash));
	cluster_hello_gen(m, h->generation);
	if (mi != NULL && mi->repl != NULL) {
		struct repl_stats st;

		repl_get_stats(mi->repl, &st);
		h->last_seq = st.last_seq;
	} else if (mi != NULL && mi->apply != NULL) {
		h->last_seq = apply_last_seq(mi->apply);
	}
}

static int
cb_check_hello(void *ctx, const struct proto_hello *h, char *why, size_t why_len)
{
	struct mrd *m = ctx;
	struct mirror *mi = m->mirror;
	enum proto_role mine = wire_role(mi);

	if (mine == PROTO_ROLE_NONE)
		return 0; /* nothing to mirror: the link is only a link */
	if ((mine == PROTO_ROLE_PRIMARY && h->role != PROTO_ROLE_SECONDARY) ||
	    (mine == PROTO_ROLE_SECONDARY && h->role != PROTO_ROLE_PRIMARY)) {
		(void)snprintf(why, why_len, "roles do not fit: this node is %s, the peer %s",
		               mine == PROTO_ROLE_PRIMARY ? "primary" : "secondary",
		               h->role == PROTO_ROLE_PRIMARY     ? "primary"
		               : h->role == PROTO_ROLE_SECONDARY ? "secondary"
		                                                 : "without a role");
		return PROTO_REFUSE_ROLE;
	}
	if (cluster_hello_split(m, h->generation, why, why_len))
		return PROTO_REFUSE_DATA;
	/* the same decision on both sides, from the two HELLOs */
	if (mi->repl != NULL) {
		mi->need_resync = repl_check_pairing(mi->repl, h->last_seq, why, why_len) < 0 ||
		                  !cluster_hello_gen_equal(m, h->generation);
		/* Equal data, but the application holds open a file known here only
		 * by a name since removed: nothing could bind it on the peer, and its
		 * next write would fail there. A resync's walk finds its name
		 * (resync.c, rename_lost()): pair again with a new generation. */
		if (!mi->need_resync && repl_open_lost(mi->repl, 0, 0)) {
			cluster_new_generation_for_resync(
			        m, "an open file is known only by a name since removed");
			(void)snprintf(
			        why, why_len,
			        "an open file is known here only by a name since removed: a "
			        "resync must find its other name; pairing again with a resync");
			return PROTO_REFUSE_RESYNC;
		}
	}
	if (mi->apply != NULL) {
		mi->need_resync = apply_failed(mi->apply) || apply_last_seq(mi->apply) != h->last_seq ||
		                  !cluster_hello_gen_equal(m, h->generation);
		if (apply_failed(mi->apply)) {
			(void)snprintf(why, why_len,
			               "this secondary diverged (an op failed to apply): "
			               "`mirrorctl second` on it resyncs it from the primary");
			return PROTO_REFUSE_DATA;
		}
	}
	return 0;
}

/* Primary: the target's list is complete; resync, sending only what may
 * differ if our dirty set is relative to the target's generation and the
 * target could list its own changes, else comparing every file. */
static void
start_resync(struct mrd *m)
{
	struct mirror *mi = m->mirror;
	uint64_t seq = 0, id = 0;
	bool exact = cluster_peer_exact(m, &seq, &id);
	bool trusted = !mi->list_all && dirty_trusted_for(m->dirty, seq, id);
	/* nbrei: SafeKit's parallel reintegration threads; here the files whose
	 * checksums the target computes ahead of the one being sent (x4: a
	 * hash answer is cheap to hold) */
	struct resync_opts o = {
		.ns_hold = resync_ns_hold,
		.ns_ctx = mi,
		.ahead = m->conf->rfs.nbrei * 4u,
		.bw_kbytes_s = m->conf->rfs.reiallowedbw_kbps,
		.block = m->conf->rfs.reiblocksize,
		.compress = m->conf->rfs.reicompress == CONF_COMPRESS_OFF  ? RESYNC_COMPRESS_OFF
		            : m->conf->rfs.reicompress == CONF_COMPRESS_ON ? RESYNC_COMPRESS_ON
		                                                           : RESYNC_COMPRESS_AUTO,
	};
	int r;

	mi->wait_list = false;
	log_notice("resync: %s (peer gen=%" PRIu64 " exact_copy=%s peer_changes=%s)",
	           trusted ? "only the files and blocks changed since the peer left"
	                   : "comparing every file by block checksums",
	           seq, exact ? "yes" : "no",
	           mi->list_all ? "unknown" : mi->list_files == 0 ? "none" : "listed");
	r = resync_start(m->loop, mi->repl, mi->root_fds, mi->n_dirs, trusted ? m->dirty : NULL,
	                 &o, resync_done_cb, m, &mi->resync);
	if (r < 0)
		log_err("resync: cannot start err=\"%s\"", mr_strerror(r));
}

struct list_out {
	struct mrd *m;
	uint8_t *buf;
	uint32_t len, n;
	size_t files;
	bool failed;
};

static void
list_flush(struct list_out *lo, uint32_t flags)
{
	struct proto_msg msg = { .type = PROTO_RS_LIST,
		                 .u.rs_list = { .flags = flags,
		                                .n = lo->n,
		                                .entries = lo->buf,
		                                .len = lo->len } };

	if (lo->m->peer == NULL || peer_send(lo->m->peer, &msg) < 0)
		lo->failed = true;
	lo->len = lo->n = 0;
}

static void
list_each(void *arg, uint8_t dir, const char *path, uint32_t flags)
{
	struct list_out *lo = arg;
	uint8_t kind = (flags & DIRTY_F_CHILDREN) ? PROTO_LIST_DIR : PROTO_LIST_FILE;

	if (lo->failed)
		return;
	if (!proto_rs_list_put(lo->buf, PROTO_MAX_DATA, &lo->len, kind, dir, path)) {
		list_flush(lo, 0);
		if (!proto_rs_list_put(lo->buf, PROTO_MAX_DATA, &lo->len, kind, dir, path)) {
			lo->failed = true; /* cannot happen: a path fits an empty frame */
			return;
		}
	}
	lo->n++;
	lo->files++;
}

/* Secondary, before a resync: tell the primary where our copy may differ
 * from our generation (what we changed without it, read back from our
 * pre-write log), or that we cannot say. */
static void
send_own_list(struct mrd *m)
{
	struct list_out lo = { .m = m };
	int mode = cluster_own_changes(m);

	if (mode == CLUSTER_CHANGES_LISTED)
		lo.buf = malloc(PROTO_MAX_DATA);
	if (mode == CLUSTER_CHANGES_LISTED && lo.buf != NULL)
		dirty_each(m->dirty, list_each, &lo);
	if (mode == CLUSTER_CHANGES_UNKNOWN || (mode == CLUSTER_CHANGES_LISTED && lo.buf == NULL)) {
		lo.files = 0;
		list_flush(&lo, PROTO_LIST_END | PROTO_LIST_ALL);
	} else {
		list_flush(&lo, PROTO_LIST_END | (lo.failed ? PROTO_LIST_ALL : 0));
	}
	log_notice("resync: told the primary our own changes: %s files=%zu",
	           mode == CLUSTER_CHANGES_NONE ? "none (exact copy)"
	           : mode == CLUSTER_CHANGES_LISTED && lo.buf != NULL && !lo.failed
	                   ? "listed"
	                   : "unknown (compare everything)",
	           lo.files);
	free(lo.buf);
}

/* Primary: a frame of the target's list. */
static void
on_list(struct mrd *m, const struct proto_rs_list *l)
{
	struct mirror *mi = m->mirror;
	char path[PROTO_MAX_STR + 1];
	struct proto_str ps;
	uint32_t off = 0;
	uint8_t kind, dir;

	if (!mi->wait_list) {
		peer_drop(m->peer, "an RS_LIST outside a resync start");
		return;
	}
	if (l->flags & PROTO_LIST_ALL)
		mi->list_all = true;
	while (proto_rs_list_next(l, &off, &kind, &dir, &ps)) {
		if (dir >= mi->n_dirs)
			continue; /* no such directory here: nothing to compare */
		memcpy(path, ps.p, ps.len);
		path[ps.len] = '\0';
		dirty_add(m->dirty, dir, path,
		          kind == PROTO_LIST_DIR ? DIRTY_F_CHILDREN : DIRTY_F_CHECKSUM);
		mi->list_files++;
	}
	if (l->flags & PROTO_LIST_END)
		start_resync(m);
}

static void
cb_on_up(void *ctx, const struct proto_hello *peer_hello)
{
	struct mrd *m = ctx;
	struct mirror *mi = m->mirror;

	if (mi == NULL)
		return;
	mi->link_up = true;
	memcpy(mi->peer_gen, peer_hello->generation, sizeof(mi->peer_gen));
	mi->link_gen++;
	if (mi->repl != NULL) {
		repl_set_peer(mi->repl, m->peer);
		repl_link_up(mi->repl);
		if (mi->need_resync) {
			/* first the target's list of its own changes (RS_LIST) */
			mi->wait_list = true;
			mi->list_all = false;
			mi->list_files = 0;
		} else {
			cluster_dirty_reset(m); /* paired with equal data */
			mi->ck_next_ms = 0;     /* and a checkpoint of the log */
		}
	}
	if (mi->apply != NULL && mi->need_resync) {
		send_own_list(m);
		apply_rebase(mi->apply, peer_hello->last_seq);
		mi->resyncing = true;
		cluster_resync_begin(m);
		return;
	}
	cluster_link(m, true);
}

static void
cb_on_msg(void *ctx, const struct proto_msg *msg)
{
	struct mrd *m = ctx;
	struct mirror *mi = m->mirror;
	char err[256];

	if (mi == NULL)
		return;
	if (msg->type == PROTO_ACK && mi->repl != NULL) {
		repl_on_ack(mi->repl, msg->u.ack.seq);
		return;
	}
	if (msg->type == PROTO_RS_HASHES && mi->repl != NULL) {
		resync_on_hashes(mi->resync != NULL ? mi->resync : mi->verify, &msg->u.rs_hashes);
		return;
	}
	if (msg->type == PROTO_RS_LIST && mi->repl != NULL) {
		on_list(m, &msg->u.rs_list);
		return;
	}
	if (msg->type == PROTO_RS_RESULT && mi->repl != NULL) {
		resync_on_result(mi->resync, msg->u.rs_result.end_seq, msg->u.rs_result.failures);
		return;
	}
	if (msg->type == PROTO_OP && mi->apply != NULL) {
		int r = apply_push(mi->apply, &msg->u.op, peer_take_frame(m->peer), err,
		                   sizeof(err));

		if (r < 0) {
			log_err("apply: refused op from the primary seq=%" PRIu64 " reason=\"%s\"",
			        msg->u.op.seq, err);
			peer_drop(m->peer, err);
		}
		return;
	}
	log_warn("mirror: unexpected message type=%s role=%s", proto_type_name((uint16_t)msg->type),
	         role_name(mi->role));
	peer_drop(m->peer, "unexpected message for this role");
}

static void
cb_on_down(void *ctx, const char *reason)
{
	struct mrd *m = ctx;
	struct mirror *mi = m->mirror;

	if (mi == NULL)
		return;
	mi->link_up = false;
	mi->wait_list = false;
	if (mi->repl != NULL)
		repl_link_down(mi->repl, reason);
	resync_stop(mi->resync); /* after repl_link_down: a thread waiting for room gives up */
	mi->resync = NULL;
	resync_stop(mi->verify);
	mi->verify = NULL;
	mi->resyncing = false;
	if (!m->stopping)
		cluster_link(m, false);
}

static void
cb_on_writable(void *ctx)
{
	struct mrd *m = ctx;

	if (m->mirror != NULL && m->mirror->repl != NULL)
		repl_on_writable(m->mirror->repl);
}

const struct peer_cbs mirror_peer_cbs = {
	.make_hello = cb_make_hello,
	.check_hello = cb_check_hello,
	.on_up = cb_on_up,
	.on_msg = cb_on_msg,
	.on_down = cb_on_down,
	.on_writable = cb_on_writable,
};
