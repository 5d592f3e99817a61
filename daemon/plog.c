/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * plog.c - the pre-write log (see plog.h).
 *
 * Memory: a hash table of the logged names, each with its kinds, the last
 * epoch it was needed in and the commit batch its record went into. Records
 * wait in `buf` for the next group commit; `synced` is the last batch on
 * stable storage. The first worker that finds no commit running does it for
 * everyone (write + fdatasync without the lock), the others wait.
 */
#include "plog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "util.h"

#define PLOG_MAGIC       "MRPLOG01"
#define PLOG_HDR_LEN     28u       /* magic, base seq, base id, XXH32 */
#define PLOG_MAX_ENTRIES 1000000u  /* beyond: PLOG_ALL (memory) */
#define PLOG_PATH_MAX    4096u

struct pent {
	struct pent *next;
	uint64_t hash;
	uint64_t ep;    /* last epoch it was needed in */
	uint64_t batch; /* its record's commit batch */
	unsigned kind;  /* PLOG_FILE | PLOG_DIR */
	uint8_t dir;
	char path[];
};

struct plog {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char *path;
	int fd; /* -1: no file (failed) */
	uint64_t off;
	struct pent **b;
	size_t n_b, n;
	bool all;
	uint64_t all_ep;
	uint64_t all_batch;
	uint64_t epoch;
	uint8_t *buf; /* records of batch `batch`, not yet written */
	size_t len, cap;
	uint64_t batch;  /* the batch being filled */
	uint64_t synced; /* every batch <= synced is durable */
	bool syncing;
	bool failed;  /* a write failed: disabled until a checkpoint succeeds */
	bool removed; /* ... and the file is gone (a crash compares everything) */
	uint64_t st_syncs, st_appended, st_checkpoints;
};

static uint64_t
key_hash(uint8_t dir, const char *path)
{
	return XXH3_64bits_withSeed(path, strlen(path), dir);
}

static struct pent *
find(struct plog *p, uint8_t dir, const char *path)
{
	uint64_t h = key_hash(dir, path);

	if (p->n_b == 0)
		return NULL;
	for (struct pent *e = p->b[h & (p->n_b - 1)]; e != NULL; e = e->next)
		if (e->hash == h && e->dir == dir && strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

static bool
grow(struct plog *p)
{
	size_t n_b = p->n_b == 0 ? 256 : p->n_b * 2;
	struct pent **b = calloc(n_b, sizeof(*b));

	if (b == NULL)
		return false;
	for (size_t i = 0; i < p->n_b; i++) {
		struct pent *e = p->b[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (n_b - 1)];
			b[e->hash & (n_b - 1)] = e;
		}
	}
	free(p->b);
	p->b = b;
	p->n_b = n_b;
	return true;
}

/* A new entry (not yet logged), or NULL (memory). */
static struct pent *
add(struct plog *p, uint8_t dir, const char *path)
{
	size_t len = strlen(path);
	struct pent *e;

	if (p->n >= PLOG_MAX_ENTRIES || (p->n >= p->n_b && !grow(p)))
		return NULL;
	e = calloc(1, sizeof(*e) + len + 1);
	if (e == NULL)
		return NULL;
	memcpy(e->path, path, len + 1);
	e->dir = dir;
	e->hash = key_hash(dir, path);
	e->next = p->b[e->hash & (p->n_b - 1)];
	p->b[e->hash & (p->n_b - 1)] = e;
	p->n++;
	return e;
}

/* Remove and free e. */
static void
del(struct plog *p, struct pent *e)
{
	struct pent **pp = &p->b[e->hash & (p->n_b - 1)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	p->n--;
	free(e);
}

static void
clear(struct plog *p)
{
	for (size_t i = 0; i < p->n_b; i++) {
		struct pent *e = p->b[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
		p->b[i] = NULL;
	}
	p->n = 0;
}

/* ---- records ------------------------------------------------------------------- */

static bool
reserve(uint8_t **buf, size_t *cap, size_t len, size_t more)
{
	size_t n = *cap ? *cap : 4096;
	uint8_t *nb;

	if (len + more <= *cap)
		return true;
	while (n < len + more)
		n *= 2;
	nb = realloc(*buf, n);
	if (nb == NULL)
		return false;
	*buf = nb;
	*cap = n;
	return true;
}

static bool
put_record(uint8_t **buf, size_t *len, size_t *cap, unsigned kind, uint8_t dir, const char *path)
{
	size_t n = strlen(path);
	uint8_t *r;

	if (n > PLOG_PATH_MAX || !reserve(buf, cap, *len, 8 + n))
		return false;
	r = *buf + *len;
	r[0] = (uint8_t)kind;
	r[1] = dir;
	mr_put_be16(r + 2, (uint16_t)n);
	memcpy(r + 4, path, n);
	mr_put_be32(r + 4 + n, XXH32(r, 4 + n, 0));
	*len += 8 + n;
	return true;
}

static bool
put_header(uint8_t **buf, size_t *len, size_t *cap, uint64_t base_seq, uint64_t base_id)
{
	uint8_t *h;

	if (!reserve(buf, cap, *len, PLOG_HDR_LEN))
		return false;
	h = *buf + *len;
	memcpy(h, PLOG_MAGIC, 8);
	mr_put_be64(h + 8, base_seq);
	mr_put_be64(h + 16, base_id);
	mr_put_be32(h + 24, XXH32(h, 24, 0));
	*len += PLOG_HDR_LEN;
	return true;
}

/* Parse a whole log image; entries to fn. False: no valid header. */
static bool
parse(const uint8_t *d, size_t len, plog_each_fn fn, void *arg, struct plog_loaded *out)
{
	size_t off = PLOG_HDR_LEN;
	char path[PLOG_PATH_MAX + 1];

	if (len < PLOG_HDR_LEN || memcmp(d, PLOG_MAGIC, 8) != 0 ||
	    mr_get_be32(d + 24) != XXH32(d, 24, 0))
		return false;
	out->found = true;
	out->base_seq = mr_get_be64(d + 8);
	out->base_id = mr_get_be64(d + 16);
	while (off + 8 <= len) {
		const uint8_t *r = d + off;
		size_t n = mr_get_be16(r + 2);

		if (n > PLOG_PATH_MAX || off + 8 + n > len ||
		    mr_get_be32(r + 4 + n) != XXH32(r, 4 + n, 0) ||
		    (r[0] != PLOG_FILE && r[0] != PLOG_DIR && r[0] != (PLOG_FILE | PLOG_DIR) &&
		     r[0] != PLOG_ALL) ||
		    memchr(r + 4, '\0', n) != NULL)
			break; /* a torn tail: that change was never made */
		if (r[0] == PLOG_ALL) {
			out->all = true;
		} else {
			memcpy(path, r + 4, n);
			path[n] = '\0';
			out->entries++;
			if (fn != NULL)
				fn(arg, r[0], r[1], path);
		}
		off += 8 + n;
	}
	return true;
}

/* ---- files --------------------------------------------------------------------- */

/* Write image as the new log (temp file, fsync, rename, fsync dir); the new
 * fd for appends in *fd_out. 0 or -errno. */
static int
replace_file(const char *path, const uint8_t *img, size_t len, int *fd_out)
{
	char tmp[4096];
	int fd, r = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		return -errno;
	errno = 0;
	if (pwrite(fd, img, len, 0) != (ssize_t)len)
		r = errno != 0 ? -errno : -EIO;
	if (r == 0 && fsync(fd) == -1)
		r = -errno;
	if (r == 0 && rename(tmp, path) == -1)
		r = -errno;
	if (r == 0)
		r = mr_fsync_parent(path);
	if (r < 0) {
		(void)close(fd);
		(void)unlink(tmp);
		return r;
	}
	*fd_out = fd;
	return 0;
}

/* Build and install a log of the entries needed since keep_from. Called
 * with mu held and no commit running. */
static int
rewrite_locked(struct plog *p, uint64_t keep_from, uint64_t base_seq, uint64_t base_id,
               bool trusted)
{
	uint8_t *img = NULL;
	size_t len = 0, cap = 0;
	bool all = !trusted || (p->all && p->all_ep >= keep_from);
	int fd = -1, r;

	if (!put_header(&img, &len, &cap, base_seq, base_id) ||
	    (all && !put_record(&img, &len, &cap, PLOG_ALL, 0, "")))
		goto nomem;
	for (size_t i = 0; i < p->n_b; i++)
		for (struct pent *e = p->b[i]; e != NULL; e = e->next)
			if (e->ep >= keep_from && !put_record(&img, &len, &cap, e->kind, e->dir, e->path))
				goto nomem;
	r = replace_file(p->path, img, len, &fd);
	free(img);
	if (r < 0)
		return r;
	if (p->fd != -1)
		(void)close(p->fd);
	p->fd = fd;
	p->off = len;
	/* drop what the new file does not hold; everything kept is durable */
	for (size_t i = 0; i < p->n_b; i++) {
		struct pent **pp = &p->b[i];

		while (*pp != NULL) {
			struct pent *e = *pp;

			if (e->ep < keep_from) {
				*pp = e->next;
				free(e);
				p->n--;
			} else {
				pp = &e->next;
			}
		}
	}
	p->all = all;
	p->all_ep = all ? p->epoch : 0;
	p->len = 0;
	p->synced = p->batch;
	p->batch++;
	p->failed = false;
	p->removed = false;
	pthread_cond_broadcast(&p->cv);
	return 0;
nomem:
	free(img);
	return -ENOMEM;
}

/* ---- api ----------------------------------------------------------------------- */

struct open_ctx {
	struct plog *p;
	plog_each_fn fn;
	void *arg;
};

static void
open_each(void *arg, unsigned kind, uint8_t dir, const char *path)
{
	struct open_ctx *o = arg;
	struct pent *e = find(o->p, dir, path);

	if (e == NULL)
		e = add(o->p, dir, path);
	if (e == NULL) {
		o->p->all = true; /* cannot hold it: compare everything */
		return;
	}
	e->kind |= kind;
	e->ep = o->p->epoch;
	if (o->fn != NULL)
		o->fn(o->arg, kind, dir, path);
}

static uint8_t *
read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rbe");
	uint8_t *d = NULL;
	size_t cap = 0, n;

	*len = 0;
	if (f == NULL)
		return NULL;
	for (;;) {
		if (!reserve(&d, &cap, *len, 65536))
			break;
		n = fread(d + *len, 1, cap - *len, f);
		*len += n;
		if (n == 0)
			break;
	}
	(void)fclose(f);
	return d;
}

struct plog *
plog_open(const char *path, plog_each_fn fn, void *arg, struct plog_loaded *out)
{
	struct plog *p = mr_xcalloc(1, sizeof(*p));
	struct open_ctx o = { p, fn, arg };
	size_t len;
	uint8_t *img;
	int r;

	*out = (struct plog_loaded){ 0 };
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->path = mr_xstrdup(path);
	p->fd = -1;
	p->epoch = 1;
	p->batch = 1;
	img = read_all(path, &len);
	if (img != NULL && !parse(img, len, open_each, &o, out))
		log_warn("plog: %s is not a pre-write log; ignored", path);
	free(img);
	if (out->all)
		p->all = true;
	else if (p->all)
		out->all = true; /* an entry could not be kept (open_each) */
	p->all_ep = p->all ? p->epoch : 0;
	pthread_mutex_lock(&p->mu);
	r = rewrite_locked(p, 1, out->base_seq, out->base_id, !p->all);
	pthread_mutex_unlock(&p->mu);
	if (r < 0) {
		log_err("plog: cannot write %s err=\"%s\"; changes are not logged before they "
		        "are made (after a crash the next resync compares every file)",
		        path, strerror(-r));
		(void)unlink(path);
		p->failed = true;
		p->removed = true;
	}
	return p;
}

void
plog_free(struct plog *p)
{
	if (p == NULL)
		return;
	clear(p);
	free(p->b);
	free(p->buf);
	if (p->fd != -1)
		(void)close(p->fd);
	free(p->path);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

uint64_t
plog_epoch(struct plog *p)
{
	uint64_t e;

	pthread_mutex_lock(&p->mu);
	e = p->epoch;
	pthread_mutex_unlock(&p->mu);
	return e;
}

uint64_t
plog_next_epoch(struct plog *p)
{
	uint64_t e;

	pthread_mutex_lock(&p->mu);
	e = ++p->epoch;
	pthread_mutex_unlock(&p->mu);
	return e;
}

/* A write failed: remove the file (a crash then finds no log and compares
 * everything) and stop logging until a checkpoint writes a new one. Waits
 * for a commit running in another thread (it uses the fd without the lock). */
static void
fail_locked(struct plog *p, int err)
{
	while (p->syncing)
		pthread_cond_wait(&p->cv, &p->mu);
	if (!p->failed)
		log_err("plog: cannot append to %s err=\"%s\"; the log is removed and changes "
		        "are no longer logged before they are made (after a crash the next "
		        "resync compares every file)",
		        p->path, strerror(-err));
	p->failed = true;
	if (!p->removed && (unlink(p->path) == 0 || errno == ENOENT) && mr_fsync_parent(p->path) == 0)
		p->removed = true;
	if (p->fd != -1) {
		(void)close(p->fd);
		p->fd = -1;
	}
	p->len = 0;
	p->all = true;
	p->all_ep = p->epoch;
	p->synced = p->batch;
	p->batch++;
	pthread_cond_broadcast(&p->cv);
}

/* Wait until batch is durable, committing it ourselves if nobody is. */
static int
wait_durable(struct plog *p, uint64_t batch)
{
	while (p->synced < batch && !p->failed) {
		uint8_t *buf;
		size_t len;
		uint64_t b, off;
		int fd, r = 0;

		if (p->syncing) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		/* commit the batch being filled, for everyone in it */
		p->syncing = true;
		buf = p->buf;
		len = p->len;
		b = p->batch;
		off = p->off;
		fd = p->fd;
		p->buf = NULL;
		p->len = p->cap = 0;
		p->batch++;
		p->off += len;
		pthread_mutex_unlock(&p->mu);
		errno = 0;
		if (len > 0 && pwrite(fd, buf, len, (off_t)off) != (ssize_t)len)
			r = errno != 0 ? -errno : -ENOSPC;
		if (r == 0 && fdatasync(fd) == -1)
			r = -errno;
		free(buf);
		pthread_mutex_lock(&p->mu);
		p->syncing = false;
		p->st_syncs++;
		if (r < 0) {
			fail_locked(p, r);
		} else {
			p->synced = b;
			pthread_cond_broadcast(&p->cv);
		}
	}
	if (p->failed)
		return p->removed ? 0 : -EIO;
	return 0;
}

static bool
parent_covers(struct plog *p, uint64_t epoch, uint8_t dir, const char *path, uint64_t *batch)
{
	char parent[PLOG_PATH_MAX + 1];
	const char *slash = strrchr(path, '/');
	size_t n = slash != NULL ? (size_t)(slash - path) : 0;
	struct pent *e;

	if (n > PLOG_PATH_MAX)
		return false;
	memcpy(parent, path, n);
	parent[n] = '\0';
	e = find(p, dir, parent);
	if (e == NULL || !(e->kind & PLOG_DIR) || e->ep < epoch)
		return false;
	*batch = e->batch;
	return true;
}

int
plog_need(struct plog *p, uint64_t epoch, uint8_t dir, const char *path, unsigned kind)
{
	struct pent *e;
	uint64_t batch = 0;
	int r;

	pthread_mutex_lock(&p->mu);
	if (p->failed) {
		p->all = true;
		if (p->all_ep < epoch)
			p->all_ep = epoch;
		r = p->removed ? 0 : -EIO;
		pthread_mutex_unlock(&p->mu);
		return r;
	}
	if (p->all) {
		if (p->all_ep < epoch)
			p->all_ep = epoch;
		batch = p->all_batch;
	} else if (kind == PLOG_ALL || path == NULL) {
		if (!put_record(&p->buf, &p->len, &p->cap, PLOG_ALL, 0, "")) {
			fail_locked(p, -ENOMEM);
			r = p->removed ? 0 : -EIO;
			pthread_mutex_unlock(&p->mu);
			return r;
		}
		p->all = true;
		p->all_ep = epoch;
		batch = p->all_batch = p->batch;
		p->st_appended++;
	} else if ((e = find(p, dir, path)) != NULL && (e->kind & kind) == kind) {
		if (e->ep < epoch)
			e->ep = epoch; /* logged already: kept by the next checkpoint */
		batch = e->batch;
	} else if (kind == PLOG_FILE && e == NULL && parent_covers(p, epoch, dir, path, &batch)) {
		/* created in a directory logged in this epoch */
	} else {
		if (e == NULL && strlen(path) <= PLOG_PATH_MAX)
			e = add(p, dir, path); /* not for a name no record can hold */
		if (e != NULL && !put_record(&p->buf, &p->len, &p->cap, kind, dir, path)) {
			if (e->kind == 0)
				del(p, e); /* no memory for its record: not an entry */
			e = NULL;
		}
		if (e == NULL) {
			/* too many names or no memory: say "everything" instead */
			pthread_mutex_unlock(&p->mu);
			return plog_need(p, epoch, dir, NULL, PLOG_ALL);
		}
		e->kind |= kind;
		if (e->ep < epoch)
			e->ep = epoch;
		batch = e->batch = p->batch;
		p->st_appended++;
	}
	r = wait_durable(p, batch);
	pthread_mutex_unlock(&p->mu);
	return r;
}

int
plog_checkpoint(struct plog *p, uint64_t keep_from, uint64_t base_seq, uint64_t base_id,
                bool trusted)
{
	int r;

	pthread_mutex_lock(&p->mu);
	while (p->syncing)
		pthread_cond_wait(&p->cv, &p->mu);
	r = rewrite_locked(p, keep_from, base_seq, base_id, trusted);
	if (r == 0)
		p->st_checkpoints++;
	pthread_mutex_unlock(&p->mu);
	if (r < 0)
		log_warn("plog: checkpoint of %s failed err=\"%s\"; the old log stays", p->path,
		         strerror(-r));
	return r;
}

void
plog_stats(struct plog *p, struct plog_stats *out)
{
	pthread_mutex_lock(&p->mu);
	*out = (struct plog_stats){ .epoch = p->epoch,
		                    .entries = p->n,
		                    .all = p->all,
		                    .failed = p->failed,
		                    .syncs = p->st_syncs,
		                    .appended = p->st_appended,
		                    .checkpoints = p->st_checkpoints };
	pthread_mutex_unlock(&p->mu);
}
