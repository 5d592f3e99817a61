/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * repl.c - the primary's replication engine (see repl.h).
 *
 * Sequence numbers and backlog
 * ----------------------------
 * repl_submit() runs on a FUSE worker with the shim's ordering lock held, so
 * the order in which it takes r->mu is the order in which conflicting ops
 * took effect locally. It assigns seq = ++last_seq under r->mu and appends
 * the record to `incoming`. The loop thread (woken by uv_async) moves
 * incoming -> unsent, sends while the TLS queue is under its high water mark
 * (unsent -> inflight), and completes inflight records up to each cumulative
 * ACK. inflight_bytes counts every record taken and not yet completed;
 * submitters wait on r->room while adding one would pass the ceiling (a
 * lone record is always admitted, so one 1 MiB write never deadlocks).
 *
 * Link loss: every record still queued or in flight is completed locally
 * (the application sees latency, never an error) and the engine is marked
 * diverged: until the resync issue lands, such a primary refuses to re-pair
 * (repl_check_pairing) rather than silently leave the secondary stale.
 */
#include "repl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dirty.h"
#include "err.h"
#include "log.h"
#include "peer.h"
#include "proto.h"
#include "util.h"

#define REPL_TIMER_MS     100u
#define REPL_REC_OVERHEAD 160u /* header + fixed fields, for the byte budget */
#define REPL_RS_CHUNK_BUDGET (REPL_REC_OVERHEAD + 1024u * 1024u) /* one resync chunk */

struct repl_rec {
	struct repl_rec *next;
	struct shim_op *op;   /* owned until completed (live op), or NULL */
	struct proto_op *rs;  /* a resync record (owned, freed when completed), or NULL */
	bool rs_pooled;       /* rs is a data area's buffer (back to the pool) */
	uint64_t seq;
	size_t bytes;
	uint64_t t_ms; /* when queued (loop thread) */
	uint8_t dir;
};

struct repl_dir {
	struct repl *r;
	uint8_t idx;
};

struct rec_list {
	struct repl_rec *head;
	struct repl_rec *tail;
	size_t n;
};

struct repl {
	uv_loop_t *loop;   /* borrowed */
	struct peer *peer; /* borrowed */
	enum conf_async async;
	uint64_t limit_bytes; /* maxinflight, or asynclag in async mode */
	uint32_t sendtimeout_ms;
	struct repl_dir *dirs;
	size_t n_dirs;

	pthread_mutex_t mu; /* protects the fields up to `room` */
	pthread_cond_t room;
	struct rec_list incoming;
	bool link_up;
	bool stopping;
	bool frozen; /* handover: nothing more is sent (repl_freeze) */
	bool diverged;
	uint64_t last_seq;
	uint64_t inflight_bytes;
	uint64_t inflight_ops;
	uint64_t alone_ops;
	struct dirty *dirty; /* borrowed, or NULL */
	repl_diverge_fn diverge_cb;
	void *diverge_ctx;
	uint64_t ns_changes; /* renames and links taken (a resync pass must run again) */
	uint64_t ns_ops;     /* any op that can change which inode a name leads to */
	uint64_t live_ops;   /* live ops given a seq (repl_rs_live_ops) */
	uint64_t rebinds;    /* open files bound again (repl_rebind_locked) */
	/* resync data areas (repl_rs_data_area): free buffers, kept while the
	 * engine runs so that the pages are not faulted in again for each chunk */
	pthread_mutex_t pool_mu;
	struct pool_buf *pool;
	unsigned pool_n;

	/* loop thread only */
	struct rec_list unsent;
	struct rec_list inflight;
	uint64_t acked_seq;
	uint64_t last_ack_ms;
	uv_async_t wake;
	uv_timer_t timer;
	int pending_closes;
};

/* A resync data area's buffer: the record, then the data, then the paths. */
#define POOL_DATA_OFF  sizeof(struct proto_op)
#define POOL_BUF_SIZE  (POOL_DATA_OFF + PROTO_MAX_DATA + 2u * (PROTO_MAX_STR + 1u))
#define POOL_MAX       96u /* 96 MiB kept at most (the in-flight ceiling is 64 MiB) */

struct pool_buf {
	struct pool_buf *next;
};

static void *
pool_get(struct repl *r)
{
	struct pool_buf *b;

	pthread_mutex_lock(&r->pool_mu);
	b = r->pool;
	if (b != NULL) {
		r->pool = b->next;
		r->pool_n--;
	}
	pthread_mutex_unlock(&r->pool_mu);
	return b != NULL ? (void *)b : malloc(POOL_BUF_SIZE);
}

static void
pool_put(struct repl *r, void *p)
{
	struct pool_buf *b = p;

	pthread_mutex_lock(&r->pool_mu);
	if (r->pool_n < POOL_MAX) {
		b->next = r->pool;
		r->pool = b;
		r->pool_n++;
		b = NULL;
	}
	pthread_mutex_unlock(&r->pool_mu);
	free(b);
}

static void
pool_free(struct repl *r)
{
	while (r->pool != NULL) {
		struct pool_buf *b = r->pool;

		r->pool = b->next;
		free(b);
	}
	r->pool_n = 0;
}

void *
repl_rs_data_area(struct repl *r)
{
	char *b = pool_get(r);

	return b != NULL ? b + POOL_DATA_OFF : NULL;
}

void
repl_rs_data_area_free(struct repl *r, void *area)
{
	if (area != NULL)
		pool_put(r, (char *)area - POOL_DATA_OFF);
}

static void
list_append(struct rec_list *l, struct repl_rec *rec)
{
	rec->next = NULL;
	if (l->tail != NULL)
		l->tail->next = rec;
	else
		l->head = rec;
	l->tail = rec;
	l->n++;
}

static void
list_splice(struct rec_list *dst, struct rec_list *src)
{
	if (src->head == NULL)
		return;
	if (dst->tail != NULL)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	dst->n += src->n;
	*src = (struct rec_list){ 0 };
}

static struct repl_rec *
list_pop(struct rec_list *l)
{
	struct repl_rec *rec = l->head;

	if (rec == NULL)
		return NULL;
	l->head = rec->next;
	if (l->head == NULL)
		l->tail = NULL;
	l->n--;
	return rec;
}

static size_t
rec_bytes(const struct shim_op *op)
{
	size_t n = REPL_REC_OVERHEAD + op->len;

	n += op->path != NULL ? strlen(op->path) : 0;
	n += op->path2 != NULL ? strlen(op->path2) : 0;
	n += op->name != NULL ? strlen(op->name) : 0;
	return n;
}

/* Hook for the resync issue: an op took effect here but not on the peer.
 * Called with r->mu held (any thread). */
/* Does completing op without the peer leave the two copies different? Opens,
 * closes and fsyncs do not change data. */
static bool
changes_data(const struct shim_op *op)
{
	switch (op->type) {
	case SHIM_OP_OPEN:
	case SHIM_OP_FSYNC:
	case SHIM_OP_FLUSH:
	case SHIM_OP_RELEASE:
		return false;
	default:
		return true;
	}
}

static void
repl__diverged(struct repl *r, const struct shim_op *op)
{
	if (!changes_data(op))
		return;
	if (!r->diverged && r->diverge_cb != NULL)
		r->diverge_cb(r->diverge_ctx);
	r->diverged = true;
	r->alone_ops++;
}

void
repl_rs_lock(struct repl *r)
{
	pthread_mutex_lock(&r->mu);
	while (r->link_up && !r->stopping && r->inflight_ops > 0 &&
	       r->inflight_bytes + REPL_RS_CHUNK_BUDGET > r->limit_bytes)
		pthread_cond_wait(&r->room, &r->mu);
}

void
repl_rs_unlock(struct repl *r)
{
	pthread_mutex_unlock(&r->mu);
}

/* Give resync record o (bytes of strings and data) the next seq and queue it. */
static uint64_t
rs_append_locked(struct repl *r, struct repl_rec *rec, struct proto_op *o, uint8_t dir,
                 size_t bytes)
{
	rec->rs = o;
	rec->dir = dir;
	rec->bytes = REPL_REC_OVERHEAD + bytes;
	rec->seq = ++r->last_seq;
	o->seq = rec->seq;
	r->inflight_bytes += rec->bytes;
	r->inflight_ops++;
	list_append(&r->incoming, rec);
	(void)uv_async_send(&r->wake);
	return rec->seq;
}

uint64_t
repl_rs_queue_locked(struct repl *r, uint8_t dir, const struct proto_op *op)
{
	size_t plen = op->path.len, p2len = op->path2.len, dlen = op->data_len;
	struct repl_rec *rec;
	struct proto_op *o;
	char *buf;

	if (!r->link_up || r->stopping)
		return 0;
	rec = calloc(1, sizeof(*rec));
	o = malloc(sizeof(*o) + plen + 1 + p2len + 1 + dlen); /* *o is set whole below */
	if (rec == NULL || o == NULL) {
		free(rec);
		free(o);
		return 0;
	}
	*o = *op;
	buf = (char *)(o + 1);
	if (plen > 0)
		memcpy(buf, op->path.p, plen);
	buf[plen] = '\0';
	o->path.p = buf;
	buf += plen + 1;
	if (p2len > 0)
		memcpy(buf, op->path2.p, p2len);
	buf[p2len] = '\0';
	o->path2.p = buf;
	buf += p2len + 1;
	if (dlen > 0)
		memcpy(buf, op->data, dlen);
	o->data = dlen > 0 ? buf : NULL;
	o->name = (struct proto_str){ "", 0 };
	return rs_append_locked(r, rec, o, dir, plen + p2len + dlen);
}

uint64_t
repl_rs_queue_area_locked(struct repl *r, uint8_t dir, const struct proto_op *op)
{
	char *b = (char *)op->data - POOL_DATA_OFF;
	struct proto_op *o = (struct proto_op *)(void *)b;
	char *paths = b + POOL_DATA_OFF + PROTO_MAX_DATA;
	size_t plen = op->path.len;
	struct repl_rec *rec;

	MR_BUG_ON(op->data_len > PROTO_MAX_DATA || plen > PROTO_MAX_STR || op->path2.len > 0);
	if (!r->link_up || r->stopping || (rec = calloc(1, sizeof(*rec))) == NULL) {
		pool_put(r, b);
		return 0;
	}
	*o = *op;
	if (plen > 0)
		memcpy(paths, op->path.p, plen);
	paths[plen] = '\0';
	o->path.p = paths;
	o->path2 = (struct proto_str){ "", 0 };
	o->name = (struct proto_str){ "", 0 };
	rec->rs_pooled = true;
	/* the in-flight budget counts the whole area it holds, not only its data */
	return rs_append_locked(r, rec, o, dir, POOL_BUF_SIZE);
}

static void
rebind_one(void *arg, uint8_t dir, uint64_t file_id, const char *path, unsigned opens)
{
	struct repl *r = arg;
	struct proto_op o = {
		.type = SHIM_OP_OPEN,
		.flags = O_RDWR,
		.valid = PROTO_OPEN_REBIND,
		.file_id = file_id,
		.size = opens,
	};

	if (path != NULL) {
		o.path.p = path;
		o.path.len = (uint16_t)strlen(path);
	}
	if (repl_rs_queue_locked(r, dir, &o) != 0)
		r->rebinds++;
}

void
repl_rebind_locked(struct repl *r)
{
	dirty_each_open(r->dirty, rebind_one, r);
}

bool
repl_open_lost(struct repl *r, uint64_t dev, uint64_t ino)
{
	return dirty_open_lost(r->dirty, dev, ino);
}

void
repl_open_found_locked(struct repl *r, uint8_t dir, uint64_t dev, uint64_t ino, const char *path)
{
	if (dirty_open_found(r->dirty, dir, dev, ino, path) > 0)
		repl_rebind_locked(r);
}

uint64_t
repl_rs_ns_changes(struct repl *r)
{
	uint64_t n;

	pthread_mutex_lock(&r->mu);
	n = r->ns_changes;
	pthread_mutex_unlock(&r->mu);
	return n;
}

uint64_t
repl_rs_ns_ops_locked(struct repl *r)
{
	return r->ns_ops;
}

uint64_t
repl_rs_live_ops(struct repl *r)
{
	uint64_t n;

	pthread_mutex_lock(&r->mu);
	n = r->live_ops;
	pthread_mutex_unlock(&r->mu);
	return n;
}

uint64_t
repl_rs_live_ops_locked(struct repl *r)
{
	return r->live_ops;
}

void
repl_resynced(struct repl *r)
{
	pthread_mutex_lock(&r->mu);
	r->diverged = false;
	r->alone_ops = 0;
	pthread_mutex_unlock(&r->mu);
}

void
repl_freeze(struct repl *r)
{
	pthread_mutex_lock(&r->mu);
	r->frozen = true;
	pthread_cond_broadcast(&r->room);
	pthread_mutex_unlock(&r->mu);
}

void
repl_set_diverge_cb(struct repl *r, repl_diverge_fn fn, void *ctx)
{
	pthread_mutex_lock(&r->mu);
	r->diverge_cb = fn;
	r->diverge_ctx = ctx;
	pthread_mutex_unlock(&r->mu);
}

bool
repl_submit(void *ctx, struct shim_op *op)
{
	struct repl_dir *d = ctx;
	struct repl *r = d->r;
	struct repl_rec *rec;
	size_t bytes = rec_bytes(op);

	rec = calloc(1, sizeof(*rec));
	pthread_mutex_lock(&r->mu);
	while (rec != NULL && r->link_up && !r->stopping && r->inflight_ops > 0 &&
	       r->inflight_bytes + bytes > r->limit_bytes)
		pthread_cond_wait(&r->room, &r->mu);
	if (rec == NULL || !r->link_up || r->stopping || r->frozen) {
		/* Frozen for a handover: this change (it passed the read-only check
		 * just before the freeze) will never reach the peer, which takes over
		 * with exactly what was drained. The application gets EROFS, as it
		 * would a moment later; the local copy is resynced from the peer. */
		if (r->frozen && !r->stopping && changes_data(op))
			op->refuse_err = EROFS;
		repl__diverged(r, op);
		dirty_op(r->dirty, d->idx, op, changes_data(op));
		dirty_done(r->dirty, d->idx, op); /* the shim completes it now */
		pthread_mutex_unlock(&r->mu);
		free(rec);
		return false;
	}
	dirty_op(r->dirty, d->idx, op, false);
	rec->op = op;
	rec->bytes = bytes;
	rec->dir = d->idx;
	rec->seq = ++r->last_seq;
	r->live_ops++;
	if (op->type == SHIM_OP_RENAME || op->type == SHIM_OP_LINK)
		r->ns_changes++;
	if (op->type == SHIM_OP_RENAME || op->type == SHIM_OP_LINK ||
	    op->type == SHIM_OP_UNLINK || op->type == SHIM_OP_CREATE ||
	    op->type == SHIM_OP_MKNOD || op->type == SHIM_OP_SYMLINK ||
	    op->type == SHIM_OP_MKDIR || op->type == SHIM_OP_RMDIR)
		r->ns_ops++;
	r->inflight_bytes += bytes;
	r->inflight_ops++;
	list_append(&r->incoming, rec);
	/* under mu: repl_stop() sets stopping before it closes the handle */
	(void)uv_async_send(&r->wake);
	pthread_mutex_unlock(&r->mu);
	return true;
}

static void
to_str(struct proto_str *s, const char *p)
{
	s->p = p != NULL ? p : "";
	s->len = (uint16_t)(p != NULL ? strlen(p) : 0);
}

static int
send_rec(struct repl *r, const struct repl_rec *rec)
{
	const struct shim_op *op = rec->op;
	struct proto_msg m = { .type = PROTO_OP };
	struct proto_op *o = &m.u.op;

	if (rec->rs != NULL) {
		*o = *rec->rs;
		o->seq = rec->seq;
		o->dir = rec->dir;
		return peer_send(r->peer, &m);
	}
	o->seq = rec->seq;
	o->dir = rec->dir;
	o->type = (uint8_t)op->type;
	o->flags = op->flags;
	o->valid = op->valid;
	o->file_id = op->file_id;
	o->mode = (uint32_t)op->mode;
	o->uid = (uint32_t)op->uid;
	o->gid = (uint32_t)op->gid;
	o->rdev = (uint64_t)op->rdev;
	o->off = op->off;
	o->size = op->size;
	o->atime_sec = op->atime.tv_sec;
	o->atime_nsec = (uint32_t)op->atime.tv_nsec;
	o->mtime_sec = op->mtime.tv_sec;
	o->mtime_nsec = (uint32_t)op->mtime.tv_nsec;
	o->pmtime_sec = op->pmtime.tv_sec;
	o->pmtime_nsec = (uint32_t)op->pmtime.tv_nsec;
	o->pmtime2_sec = op->pmtime2.tv_sec;
	o->pmtime2_nsec = (uint32_t)op->pmtime2.tv_nsec;
	to_str(&o->path, op->path);
	to_str(&o->path2, op->path2);
	to_str(&o->name, op->name);
	o->data = op->data;
	o->data_len = (uint32_t)op->len;
	return peer_send(r->peer, &m);
}

/* Release records' budget and wake blocked submitters. */
static void
release_budget(struct repl *r, uint64_t bytes, uint64_t ops)
{
	pthread_mutex_lock(&r->mu);
	r->inflight_bytes -= bytes;
	r->inflight_ops -= ops;
	pthread_cond_broadcast(&r->room);
	pthread_mutex_unlock(&r->mu);
}

static void
complete_list(struct repl *r, struct rec_list *l)
{
	uint64_t bytes = 0, ops = 0;
	struct repl_rec *rec;

	while ((rec = list_pop(l)) != NULL) {
		bytes += rec->bytes;
		ops++;
		if (rec->rs != NULL && rec->rs_pooled) {
			pool_put(r, rec->rs);
		} else if (rec->rs != NULL) {
			free(rec->rs);
		} else {
			dirty_done(r->dirty, rec->dir, rec->op);
			shim_op_complete(rec->op);
		}
		free(rec);
	}
	if (ops > 0)
		release_budget(r, bytes, ops);
}

/* Send what the TLS queue can take now. */
static void
pump(struct repl *r)
{
	struct repl_rec *rec;
	uint64_t now = mr_now_ms();

	while (r->unsent.head != NULL && r->peer != NULL && peer_is_up(r->peer) &&
	       peer_queued_bytes(r->peer) < PEER_HIGH_WATER) {
		int e;

		rec = list_pop(&r->unsent);
		if (rec == NULL)
			break;
		e = send_rec(r, rec);
		if (e < 0) {
			/* the link is going down: on_down will complete it */
			list_append(&r->inflight, rec);
			log_ratelimited(LOG_LVL_WARN, 5000,
			                "repl: send failed seq=%" PRIu64 " err=\"%s\"", rec->seq,
			                mr_strerror(e));
			break;
		}
		if (r->inflight.head == NULL)
			r->last_ack_ms = now; /* the stall clock starts now */
		rec->t_ms = now;
		list_append(&r->inflight, rec);
	}
}

static void
wake_cb(uv_async_t *h)
{
	struct repl *r = h->data;
	struct rec_list batch = { 0 };
	struct repl_rec *rec;

	pthread_mutex_lock(&r->mu);
	list_splice(&batch, &r->incoming);
	pthread_mutex_unlock(&r->mu);
	if (r->async == CONF_ASYNC_ASYNC) {
		/* the application goes on now; the record still has to be sent */
		for (rec = batch.head; rec != NULL; rec = rec->next)
			if (rec->op != NULL)
				shim_op_reply(rec->op);
	}
	list_splice(&r->unsent, &batch);
	pump(r);
}

void
repl_on_writable(struct repl *r)
{
	pump(r);
}

void
repl_on_ack(struct repl *r, uint64_t seq)
{
	struct rec_list done = { 0 };

	if (seq <= r->acked_seq)
		return;
	r->acked_seq = seq;
	r->last_ack_ms = mr_now_ms();
	while (r->inflight.head != NULL && r->inflight.head->seq <= seq) {
		struct repl_rec *rec = list_pop(&r->inflight);

		if (rec != NULL)
			list_append(&done, rec);
	}
	complete_list(r, &done);
}

static void
timer_cb(uv_timer_t *t)
{
	struct repl *r = t->data;
	uint64_t now = mr_now_ms(), stalled;

	if (r->inflight.head == NULL || r->peer == NULL || !peer_is_up(r->peer))
		return;
	stalled = now - r->last_ack_ms;
	if (stalled >= r->sendtimeout_ms) {
		char why[160];

		(void)snprintf(why, sizeof(why),
		               "no acknowledgement for %" PRIu64
		               " ms (sendtimeout %u ms), oldest seq=%" PRIu64,
		               stalled, r->sendtimeout_ms, r->inflight.head->seq);
		log_err("repl: peer stalled, dropping the link reason=\"%s\"", why);
		peer_drop(r->peer, why);
	}
}

int
repl_check_pairing(struct repl *r, uint64_t peer_last_seq, char *why, size_t why_len)
{
	int rc = 0;

	pthread_mutex_lock(&r->mu);
	if (r->diverged) {
		(void)snprintf(why, why_len,
		               "this node changed %" PRIu64
		               " things while the peer was away; the peer "
		               "needs a resync before it can mirror again",
		               r->alone_ops);
		rc = -1;
	} else if (peer_last_seq != r->last_seq) {
		(void)snprintf(why, why_len,
		               "peer applied up to seq %" PRIu64 " but this node is at seq %" PRIu64
		               "; the peer needs a resync",
		               peer_last_seq, r->last_seq);
		rc = -1;
	}
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void
repl_link_up(struct repl *r)
{
	uint64_t seq, n;

	pthread_mutex_lock(&r->mu);
	r->link_up = true;
	seq = r->last_seq;
	/* the new peer knows no open file: every one still open is bound again
	 * before any op that uses it */
	n = r->rebinds;
	repl_rebind_locked(r);
	n = r->rebinds - n;
	pthread_mutex_unlock(&r->mu);
	r->last_ack_ms = mr_now_ms();
	log_notice("repl: mirroring started async=%s seq=%" PRIu64 " open_files=%" PRIu64,
	           r->async == CONF_ASYNC_NONE    ? "none"
	           : r->async == CONF_ASYNC_ASYNC ? "async"
	                                          : "second",
	           seq, n);
}

void
repl_link_down(struct repl *r, const char *why)
{
	struct rec_list all = { 0 };
	uint64_t last;
	size_t n;

	pthread_mutex_lock(&r->mu);
	r->link_up = false;
	last = r->last_seq;
	list_splice(&all, &r->inflight);
	list_splice(&all, &r->unsent);
	list_splice(&all, &r->incoming);
	n = all.n;
	for (struct repl_rec *rec = all.head; rec != NULL; rec = rec->next) {
		if (rec->op != NULL && changes_data(rec->op)) {
			if (!r->diverged && r->diverge_cb != NULL)
				r->diverge_cb(r->diverge_ctx);
			r->diverged = true;
			dirty_mark(r->dirty, rec->dir, rec->op); /* sent, never acknowledged */
		}
	}
	r->alone_ops += n;
	pthread_cond_broadcast(&r->room);
	pthread_mutex_unlock(&r->mu);
	complete_list(r, &all);
	log_notice("repl: mirroring stopped reason=\"%s\" unacknowledged=%zu acked_seq=%" PRIu64
	           " last_seq=%" PRIu64 "%s",
	           why, n, r->acked_seq, last,
	           n > 0 ? " (completed locally; divergence recorded)" : "");
}

void
repl_get_stats(struct repl *r, struct repl_stats *st)
{
	pthread_mutex_lock(&r->mu);
	st->link_up = r->link_up;
	st->diverged = r->diverged;
	st->last_seq = r->last_seq;
	st->inflight_ops = r->inflight_ops;
	st->inflight_bytes = r->inflight_bytes;
	st->alone_ops = r->alone_ops;
	pthread_mutex_unlock(&r->mu);
	st->acked_seq = r->acked_seq;
}

void
repl_set_dirty(struct repl *r, struct dirty *d)
{
	pthread_mutex_lock(&r->mu);
	r->dirty = d;
	pthread_mutex_unlock(&r->mu);
}

void
repl_set_peer(struct repl *r, struct peer *p)
{
	r->peer = p;
}

void *
repl_dir_ctx(struct repl *r, size_t i)
{
	MR_BUG_ON(i >= r->n_dirs);
	return &r->dirs[i];
}

int
repl_new(uv_loop_t *loop, const struct conf_rfs *rfs, size_t n_dirs, uint64_t start_seq,
         struct repl **out)
{
	struct repl *r;
	size_t i;

	if (n_dirs == 0 || n_dirs > 255)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->dirs = calloc(n_dirs, sizeof(*r->dirs));
	if (r->dirs == NULL) {
		free(r);
		return -ENOMEM;
	}
	r->loop = loop;
	r->n_dirs = n_dirs;
	for (i = 0; i < n_dirs; i++) {
		r->dirs[i].r = r;
		r->dirs[i].idx = (uint8_t)i;
	}
	r->async = rfs->async;
	r->limit_bytes =
	        rfs->async == CONF_ASYNC_ASYNC ? rfs->asynclag_bytes : rfs->maxinflight_bytes;
	r->sendtimeout_ms = rfs->sendtimeout_ms;
	r->last_seq = r->acked_seq = start_seq;
	MR_BUG_ON(pthread_mutex_init(&r->mu, NULL) != 0);
	MR_BUG_ON(pthread_mutex_init(&r->pool_mu, NULL) != 0);
	MR_BUG_ON(pthread_cond_init(&r->room, NULL) != 0);
	MR_BUG_ON(uv_async_init(loop, &r->wake, wake_cb) != 0);
	MR_BUG_ON(uv_timer_init(loop, &r->timer) != 0);
	r->wake.data = r;
	r->timer.data = r;
	MR_BUG_ON(uv_timer_start(&r->timer, timer_cb, REPL_TIMER_MS, REPL_TIMER_MS) != 0);
	*out = r;
	return 0;
}

static void
close_cb(uv_handle_t *h)
{
	struct repl *r = h->data;

	if (--r->pending_closes > 0)
		return;
	pool_free(r);
	pthread_mutex_destroy(&r->pool_mu);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->room);
	free(r->dirs);
	free(r);
}

void
repl_stop(struct repl *r)
{
	struct rec_list all = { 0 };

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = true;
	r->link_up = false;
	list_splice(&all, &r->inflight);
	list_splice(&all, &r->unsent);
	list_splice(&all, &r->incoming);
	for (struct repl_rec *rec = all.head; rec != NULL; rec = rec->next)
		if (rec->op != NULL && changes_data(rec->op))
			dirty_mark(r->dirty, rec->dir, rec->op); /* never acknowledged */
	pthread_cond_broadcast(&r->room);
	pthread_mutex_unlock(&r->mu);
	complete_list(r, &all);
	r->pending_closes = 2;
	uv_close((uv_handle_t *)&r->wake, close_cb);
	uv_close((uv_handle_t *)&r->timer, close_cb);
}
