/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dirty.c - the dirty set (see dirty.h).
 *
 * Two hash tables with chaining: the files of the set, keyed by (dir, path),
 * and the names of open files, keyed by (dir, file id), because writes name
 * only the file id that an OPEN or CREATE bound to a path. A rename updates
 * both (the renamed name, and for a directory every name below it).
 */
#include "dirty.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "shim.h"
#include "util.h"

#define DIRTY_VERSION   1
#define DIRTY_MAX_FILES 4000000u  /* beyond: not trusted (memory) */
#define DIRTY_MAX_WORDS (1u << 20) /* a bitmap covers 256 GiB; beyond: checksums */

/* What an open file's path is, at the present point of the op stream. */
enum open_name_state {
	OPEN_NAMED,    /* path names it */
	OPEN_NAMELESS, /* its last name is gone: it lives only while open */
	OPEN_LOST,     /* the name it was opened by is gone, another may remain
	                * (dirty_open_found() names it again) */
};

struct dent {
	struct dent *next;
	uint64_t hash;
	uint8_t dir;
	char *path;
	/* a file of the set */
	uint32_t flags;
	uint64_t trunc_from;
	uint64_t *bits;
	size_t n_words;
	/* an open file */
	uint64_t file_id;
	unsigned refs;  /* opens whose RELEASE is not completed */
	unsigned srefs; /* opens whose RELEASE is not taken: at this point of the stream */
	enum open_name_state name_state;
	uint64_t obj_dev, obj_ino; /* the file in the real directory (0, 0: not known) */
};

struct table {
	struct dent **b;
	size_t n_b; /* a power of two */
	size_t n;
};

struct dirty {
	pthread_mutex_t mu;
	uint32_t block;
	struct table files; /* by (dir, path) */
	struct table open;  /* by (dir, file id) */
	atomic_size_t n_lost; /* open entries OPEN_LOST; written under mu */
	bool trusted;
	uint64_t base_seq, base_id;
	const int *roots;
	size_t n_roots;
};

static uint64_t
path_hash(uint8_t dir, const char *path)
{
	return XXH3_64bits_withSeed(path, strlen(path), dir);
}

static uint64_t
id_hash(uint8_t dir, uint64_t id)
{
	return XXH3_64bits_withSeed(&id, sizeof(id), dir);
}

static void
dent_free(struct dent *e)
{
	free(e->path);
	free(e->bits);
	free(e);
}

static void
table_clear(struct table *t)
{
	for (size_t i = 0; i < t->n_b; i++) {
		struct dent *e = t->b[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			dent_free(e);
		}
		t->b[i] = NULL;
	}
	t->n = 0;
}

static bool
table_grow(struct table *t)
{
	size_t n_b = t->n_b == 0 ? 256 : t->n_b * 2;
	struct dent **b = calloc(n_b, sizeof(*b));

	if (b == NULL)
		return false;
	for (size_t i = 0; i < t->n_b; i++) {
		struct dent *e = t->b[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			e->next = b[e->hash & (n_b - 1)];
			b[e->hash & (n_b - 1)] = e;
		}
	}
	free(t->b);
	t->b = b;
	t->n_b = n_b;
	return true;
}

static bool
table_add(struct table *t, struct dent *e)
{
	if (t->n >= t->n_b && !table_grow(t))
		return false;
	e->next = t->b[e->hash & (t->n_b - 1)];
	t->b[e->hash & (t->n_b - 1)] = e;
	t->n++;
	return true;
}

/* Unlink e from t (not freed). */
static void
table_del(struct table *t, struct dent *e)
{
	struct dent **pp = &t->b[e->hash & (t->n_b - 1)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	t->n--;
}

static struct dent *
file_find(struct dirty *d, uint8_t dir, const char *path)
{
	uint64_t h = path_hash(dir, path);

	if (d->files.n_b == 0)
		return NULL;
	for (struct dent *e = d->files.b[h & (d->files.n_b - 1)]; e != NULL; e = e->next)
		if (e->hash == h && e->dir == dir && strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

static struct dent *
open_find(struct dirty *d, uint8_t dir, uint64_t id)
{
	uint64_t h = id_hash(dir, id);

	if (d->open.n_b == 0)
		return NULL;
	for (struct dent *e = d->open.b[h & (d->open.n_b - 1)]; e != NULL; e = e->next)
		if (e->hash == h && e->dir == dir && e->file_id == id)
			return e;
	return NULL;
}

static void
distrust_locked(struct dirty *d, const char *why)
{
	if (d->trusted)
		log_info("dirty: the set of changed files is not trusted until the next resync "
		         "reason=\"%s\"",
		         why);
	d->trusted = false;
}

/* The set's entry for path, created if needed (NULL: out of memory, and
 * the set is not trusted any more). */
static struct dent *
file_get(struct dirty *d, uint8_t dir, const char *path)
{
	struct dent *e = file_find(d, dir, path);

	if (e != NULL)
		return e;
	if (d->files.n >= DIRTY_MAX_FILES) {
		distrust_locked(d, "too many changed files to list");
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (e != NULL)
		e->path = strdup(path);
	if (e == NULL || e->path == NULL || (e->hash = path_hash(dir, path), e->dir = dir,
	                                     !table_add(&d->files, e))) {
		if (e != NULL)
			dent_free(e);
		distrust_locked(d, "out of memory");
		return NULL;
	}
	return e;
}

/* Mark blocks covering [off, off + len). */
static void
mark_range(struct dirty *d, struct dent *e, uint64_t off, uint64_t len)
{
	uint64_t first, last;
	size_t need;

	if (len == 0)
		return;
	first = off / d->block;
	last = (off + len - 1) / d->block;
	need = (size_t)(last / 64 + 1);
	if (need > DIRTY_MAX_WORDS) {
		e->flags |= DIRTY_F_CHECKSUM; /* a huge offset: compare instead */
		return;
	}
	if (need > e->n_words) {
		size_t n = need < 2 * e->n_words ? 2 * e->n_words : need;
		uint64_t *nb = realloc(e->bits, n * sizeof(*nb));

		if (nb == NULL) {
			e->flags |= DIRTY_F_CHECKSUM; /* the blocks are not known: compare */
			return;
		}
		memset(nb + e->n_words, 0, (n - e->n_words) * sizeof(*nb));
		e->bits = nb;
		e->n_words = n;
	}
	for (uint64_t i = first; i <= last; i++)
		e->bits[i / 64] |= 1ull << (i % 64);
}

static void
mark_trunc(struct dent *e, uint64_t size)
{
	if (!(e->flags & DIRTY_F_TRUNC) || size < e->trunc_from)
		e->trunc_from = size;
	e->flags |= DIRTY_F_TRUNC;
}

/* Every change of an open entry's name_state goes through here (n_lost). */
static void
open_state(struct dirty *d, struct dent *o, enum open_name_state st)
{
	if (o->name_state == OPEN_LOST && st != OPEN_LOST)
		atomic_fetch_sub(&d->n_lost, 1);
	else if (o->name_state != OPEN_LOST && st == OPEN_LOST)
		atomic_fetch_add(&d->n_lost, 1);
	o->name_state = st;
}

static void
open_clear(struct dirty *d)
{
	table_clear(&d->open);
	atomic_store(&d->n_lost, 0);
}

/* The name of open file (dir, id), or NULL. */
static const char *
open_name(struct dirty *d, uint8_t dir, uint64_t id)
{
	struct dent *o = open_find(d, dir, id);

	return o != NULL && o->name_state == OPEN_NAMED ? o->path : NULL;
}

/* An OPEN or CREATE of op->file_id by op->path, or by no name (through /proc). */
static void
open_bind(struct dirty *d, uint8_t dir, const struct shim_op *op)
{
	uint64_t id = op->file_id;
	const char *path = op->path;
	struct dent *o = open_find(d, dir, id);

	if (o != NULL) {
		char *p;

		o->refs++;
		o->srefs++;
		if (path != NULL && (o->path == NULL || strcmp(o->path, path) != 0) &&
		    (p = strdup(path)) != NULL) {
			free(o->path);
			o->path = p;
		}
		if (path != NULL)
			open_state(d, o, OPEN_NAMED);
		return;
	}
	o = calloc(1, sizeof(*o));
	if (o != NULL && path != NULL)
		o->path = strdup(path);
	if (o == NULL || (path != NULL && o->path == NULL) ||
	    (o->hash = id_hash(dir, id), o->dir = dir, o->file_id = id, o->refs = 1, o->srefs = 1,
	     o->obj_dev = op->obj_dev, o->obj_ino = op->obj_ino, !table_add(&d->open, o))) {
		if (o != NULL)
			dent_free(o);
		/* a later write to it could not be placed */
		distrust_locked(d, "out of memory");
		return;
	}
	o->name_state = OPEN_NAMED;
	if (path == NULL)
		open_state(d, o, OPEN_LOST);
}

static void
open_release(struct dirty *d, uint8_t dir, uint64_t id)
{
	struct dent *o = open_find(d, dir, id);

	if (o != NULL && --o->refs == 0) {
		open_state(d, o, OPEN_NAMED); /* (n_lost) */
		table_del(&d->open, o);
		dent_free(o);
	}
}

/* path is from, or below it: the same name under to (caller frees), else NULL */
static char *
renamed(const char *path, const char *from, const char *to)
{
	size_t fl = strlen(from);
	char *out;

	if (strncmp(path, from, fl) != 0 || (path[fl] != '\0' && path[fl] != '/'))
		return NULL;
	if (asprintf(&out, "%s%s", to, path + fl) == -1)
		return NULL;
	return out;
}

/* A name of open file (dir, id) went away (op: UNLINK or a RENAME over it):
 * gone is that name. */
static void
open_victim(struct dirty *d, uint8_t dir, const struct shim_op *op, const char *gone)
{
	struct dent *o;

	if (op->victim_id == 0 || (o = open_find(d, dir, op->victim_id)) == NULL ||
	    o->name_state == OPEN_NAMELESS)
		return;
	if (op->victim_last) {
		open_state(d, o, OPEN_NAMELESS);
	} else if (o->name_state == OPEN_NAMED && o->path != NULL && strcmp(o->path, gone) == 0) {
		/* still linked under a name this set never saw */
		open_state(d, o, OPEN_LOST);
		distrust_locked(d, "an open file lost the name it was opened by");
	}
}

/* Open files keep their names across renames (of them or of a directory
 * above them); RENAME_EXCHANGE swaps the two. */
static void
open_rename(struct dirty *d, uint8_t dir, const char *from, const char *to, bool exchange)
{
	for (size_t i = 0; i < d->open.n_b; i++)
		for (struct dent *o = d->open.b[i]; o != NULL; o = o->next) {
			char *p;

			if (o->dir != dir || o->name_state != OPEN_NAMED)
				continue;
			p = renamed(o->path, from, to);
			if (p == NULL && exchange)
				p = renamed(o->path, to, from);
			if (p == NULL)
				continue;
			free(o->path);
			o->path = p;
		}
}

static bool
is_dir_at(struct dirty *d, uint8_t dir, const char *path)
{
	struct stat st;

	if (d->roots == NULL || dir >= d->n_roots)
		return true; /* cannot tell: assume the worst */
	return fstatat(d->roots[dir], path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static void
mark_op(struct dirty *d, uint8_t dir, const struct shim_op *op)
{
	const char *path = op->path;
	struct dent *e;

	if (path == NULL && op->file_id != 0) {
		struct dent *o = open_find(d, dir, op->file_id);

		if (o != NULL && o->name_state == OPEN_NAMELESS)
			return; /* its changes reach no name, here or on the peer */
		path = open_name(d, dir, op->file_id);
	}
	switch (op->type) {
	case SHIM_OP_OPEN:
	case SHIM_OP_FSYNC:
	case SHIM_OP_FLUSH:
	case SHIM_OP_RELEASE:
		return;
	case SHIM_OP_LINK:
		distrust_locked(d, "a hard link was made");
		return;
	case SHIM_OP_RENAME:
		if (op->path2 == NULL || op->path == NULL) {
			distrust_locked(d, "a rename without names");
			return;
		}
		if (is_dir_at(d, dir, op->path2) || is_dir_at(d, dir, op->path)) {
			distrust_locked(d, "a directory was renamed");
			return;
		}
		/* both names: the old one is gone, the new one holds data the peer
		 * has under another name (or not at all) */
		if ((e = file_get(d, dir, op->path)) != NULL)
			e->flags |= DIRTY_F_CHECKSUM;
		if ((e = file_get(d, dir, op->path2)) != NULL)
			e->flags |= DIRTY_F_CHECKSUM;
		return;
	default:
		break;
	}
	if (path == NULL) {
		distrust_locked(d, "a change to a file whose name is not known");
		return;
	}
	e = file_get(d, dir, path);
	if (e == NULL)
		return;
	switch (op->type) {
	case SHIM_OP_CREATE:
		mark_trunc(e, 0); /* new: all of it */
		break;
	case SHIM_OP_WRITE:
		mark_range(d, e, op->off, op->len);
		break;
	case SHIM_OP_FALLOCATE:
		mark_range(d, e, op->off, op->size);
		break;
	case SHIM_OP_SETATTR:
		if (op->valid & SHIM_SET_SIZE)
			mark_trunc(e, op->size);
		break;
	default:
		break; /* namespace and metadata: the entry alone says "look" */
	}
}

void
dirty_op(struct dirty *d, uint8_t dir, const struct shim_op *op, bool mark)
{
	if (d == NULL)
		return;
	if (mark)
		dirty_mark(d, dir, op);
	if (op->type != SHIM_OP_OPEN && op->type != SHIM_OP_CREATE && op->type != SHIM_OP_RENAME &&
	    op->type != SHIM_OP_UNLINK && op->type != SHIM_OP_RELEASE)
		return; /* (every write of a linked pair passes here: no lock for nothing) */
	pthread_mutex_lock(&d->mu);
	if ((op->type == SHIM_OP_OPEN || op->type == SHIM_OP_CREATE) && op->file_id != 0) {
		open_bind(d, dir, op);
	} else if (op->type == SHIM_OP_RELEASE) {
		struct dent *o = open_find(d, dir, op->file_id);

		if (o != NULL && o->srefs > 0)
			o->srefs--;
	} else if (op->type == SHIM_OP_UNLINK && op->path != NULL) {
		open_victim(d, dir, op, op->path);
	} else if (op->type == SHIM_OP_RENAME && op->path != NULL && op->path2 != NULL) {
		if (!(op->flags & RENAME_EXCHANGE))
			open_victim(d, dir, op, op->path2);
		open_rename(d, dir, op->path, op->path2, (op->flags & RENAME_EXCHANGE) != 0);
	}
	pthread_mutex_unlock(&d->mu);
}

void
dirty_mark(struct dirty *d, uint8_t dir, const struct shim_op *op)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	mark_op(d, dir, op);
	if (op->type == SHIM_OP_OPEN && (op->flags & O_TRUNC) != 0 && op->path != NULL) {
		struct dent *e = file_get(d, dir, op->path);

		if (e != NULL)
			mark_trunc(e, 0);
	}
	pthread_mutex_unlock(&d->mu);
}

void
dirty_done(struct dirty *d, uint8_t dir, const struct shim_op *op)
{
	if (d == NULL || op->type != SHIM_OP_RELEASE)
		return;
	pthread_mutex_lock(&d->mu);
	open_release(d, dir, op->file_id);
	pthread_mutex_unlock(&d->mu);
}

struct dirty *
dirty_new(uint32_t block_size)
{
	struct dirty *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	MR_BUG_ON(pthread_mutex_init(&d->mu, NULL) != 0);
	d->block = block_size;
	d->trusted = false; /* until reset, or loaded after a clean stop */
	return d;
}

void
dirty_free(struct dirty *d)
{
	if (d == NULL)
		return;
	table_clear(&d->files);
	table_clear(&d->open);
	free(d->files.b);
	free(d->open.b);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

uint32_t
dirty_block_size(const struct dirty *d)
{
	return d->block;
}

void
dirty_set_roots(struct dirty *d, const int *root_fds, size_t n)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	d->roots = root_fds;
	d->n_roots = n;
	if (root_fds == NULL) /* unmounted: no file is open any more */
		open_clear(d);
	pthread_mutex_unlock(&d->mu);
}

void
dirty_reset(struct dirty *d, uint64_t base_seq, uint64_t base_id)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	table_clear(&d->files);
	d->trusted = true;
	d->base_seq = base_seq;
	d->base_id = base_id;
	pthread_mutex_unlock(&d->mu);
}

void
dirty_distrust(struct dirty *d, const char *why)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	distrust_locked(d, why);
	pthread_mutex_unlock(&d->mu);
}

bool
dirty_trusted_for(struct dirty *d, uint64_t seq, uint64_t id)
{
	bool t;

	if (d == NULL)
		return false;
	pthread_mutex_lock(&d->mu);
	t = d->trusted && d->base_seq == seq && d->base_id == id && seq != 0;
	pthread_mutex_unlock(&d->mu);
	return t;
}

size_t
dirty_count(struct dirty *d, bool *trusted)
{
	size_t n;

	if (d == NULL) {
		*trusted = false;
		return 0;
	}
	pthread_mutex_lock(&d->mu);
	n = d->files.n;
	*trusted = d->trusted;
	pthread_mutex_unlock(&d->mu);
	return n;
}

bool
dirty_get(struct dirty *d, uint8_t dir, const char *path, struct dirty_file *out)
{
	struct dent *e;
	bool found = false;

	*out = (struct dirty_file){ 0 };
	pthread_mutex_lock(&d->mu);
	e = file_find(d, dir, path);
	if (e != NULL) {
		found = true;
		out->flags = e->flags;
		out->trunc_from = e->trunc_from;
		if (e->n_words > 0) {
			out->bits = malloc(e->n_words * sizeof(*out->bits));
			if (out->bits != NULL) {
				memcpy(out->bits, e->bits, e->n_words * sizeof(*out->bits));
				out->n_words = e->n_words;
			} else {
				out->flags |= DIRTY_F_CHECKSUM;
			}
		}
	}
	pthread_mutex_unlock(&d->mu);
	return found;
}

void
dirty_add(struct dirty *d, uint8_t dir, const char *path, uint32_t flags)
{
	struct dent *e;

	pthread_mutex_lock(&d->mu);
	e = file_get(d, dir, path);
	if (e != NULL)
		e->flags |= flags;
	pthread_mutex_unlock(&d->mu);
}

bool
dirty_in_changed_dir(struct dirty *d, uint8_t dir, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash != NULL ? (size_t)(slash - path) : 0;
	char *parent = strndup(path, n);
	struct dent *e;
	bool in;

	if (parent == NULL)
		return true; /* cannot tell: compare */
	pthread_mutex_lock(&d->mu);
	e = file_find(d, dir, parent);
	in = e != NULL && (e->flags & DIRTY_F_CHILDREN);
	pthread_mutex_unlock(&d->mu);
	free(parent);
	return in;
}

bool
dirty_open_lost(struct dirty *d, uint64_t dev, uint64_t ino)
{
	bool found = false;

	if (d == NULL || atomic_load(&d->n_lost) == 0)
		return false;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->open.n_b && !found; i++)
		for (struct dent *o = d->open.b[i]; o != NULL && !found; o = o->next)
			found = o->name_state == OPEN_LOST && o->srefs > 0 &&
			        (ino == 0 || (o->obj_ino == ino && o->obj_dev == dev));
	pthread_mutex_unlock(&d->mu);
	return found;
}

unsigned
dirty_open_found(struct dirty *d, uint8_t dir, uint64_t dev, uint64_t ino, const char *path)
{
	unsigned n = 0;

	if (d == NULL || atomic_load(&d->n_lost) == 0 || ino == 0)
		return 0;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->open.n_b; i++)
		for (struct dent *o = d->open.b[i]; o != NULL; o = o->next) {
			char *p;

			if (o->dir != dir || o->name_state != OPEN_LOST || o->obj_ino != ino ||
			    o->obj_dev != dev || (p = strdup(path)) == NULL)
				continue;
			free(o->path);
			o->path = p;
			open_state(d, o, OPEN_NAMED);
			n++;
		}
	pthread_mutex_unlock(&d->mu);
	return n;
}

void
dirty_each_open(struct dirty *d, dirty_open_fn fn, void *arg)
{
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->open.n_b; i++)
		for (struct dent *o = d->open.b[i]; o != NULL; o = o->next)
			if (o->srefs > 0 && o->name_state != OPEN_LOST)
				fn(arg, o->dir, o->file_id,
				   o->name_state == OPEN_NAMED ? o->path : NULL, o->srefs);
	pthread_mutex_unlock(&d->mu);
}

void
dirty_each(struct dirty *d, dirty_each_fn fn, void *arg)
{
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->files.n_b; i++)
		for (struct dent *e = d->files.b[i]; e != NULL; e = e->next)
			fn(arg, e->dir, e->path, e->flags);
	pthread_mutex_unlock(&d->mu);
}

void
dirty_set_base(struct dirty *d, uint64_t base_seq, uint64_t base_id, bool trusted)
{
	pthread_mutex_lock(&d->mu);
	d->base_seq = base_seq;
	d->base_id = base_id;
	d->trusted = trusted && d->trusted;
	pthread_mutex_unlock(&d->mu);
}

void
dirty_base(struct dirty *d, uint64_t *seq, uint64_t *id, bool *trusted)
{
	pthread_mutex_lock(&d->mu);
	*seq = d->base_seq;
	*id = d->base_id;
	*trusted = d->trusted;
	pthread_mutex_unlock(&d->mu);
}

void
dirty_file_done(struct dirty_file *f)
{
	free(f->bits);
	*f = (struct dirty_file){ 0 };
}

bool
dirty_file_block(const struct dirty_file *f, uint64_t i)
{
	return i / 64 < f->n_words && (f->bits[i / 64] >> (i % 64) & 1u) != 0;
}

/* ---- persistence: JSON, bitmaps in hex ----------------------------------------- */

static char *
hex_of(const uint64_t *w, size_t n)
{
	static const char dig[] = "0123456789abcdef";
	char *s = malloc(n * 16 + 1);

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < 16; k++)
			s[i * 16 + (size_t)k] = dig[(w[i] >> (60 - 4 * k)) & 0xf];
	s[n * 16] = '\0';
	return s;
}

static int
hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static uint64_t *
words_of(const char *s, size_t *n)
{
	size_t len = strlen(s);
	uint64_t *w;

	if (len % 16 != 0)
		return NULL;
	*n = len / 16;
	w = calloc(*n > 0 ? *n : 1, sizeof(*w));
	for (size_t i = 0; w != NULL && i < len; i++) {
		int v = hex_val(s[i]);

		if (v < 0) {
			free(w);
			return NULL;
		}
		w[i / 16] = w[i / 16] << 4 | (uint64_t)v;
	}
	return w;
}

int
dirty_save(struct dirty *d, const char *path, char *err, size_t err_len)
{
	json_t *root, *files;
	char *text;
	int r;

	files = json_array();
	pthread_mutex_lock(&d->mu);
	root = json_pack("{s:i,s:b,s:I,s:I,s:I,s:o}", "version", DIRTY_VERSION, "trusted",
	                 d->trusted, "base_seq", (json_int_t)d->base_seq, "base_id",
	                 (json_int_t)d->base_id, "block", (json_int_t)d->block, "files", files);
	for (size_t i = 0; root != NULL && i < d->files.n_b; i++)
		for (struct dent *e = d->files.b[i]; e != NULL; e = e->next) {
			char *bits = hex_of(e->bits, e->n_words);

			if (bits == NULL ||
			    json_array_append_new(files, json_pack("{s:i,s:s,s:i,s:I,s:s}", "dir",
			                                           e->dir, "path", e->path, "flags",
			                                           (int)e->flags, "trunc",
			                                           (json_int_t)e->trunc_from, "bits",
			                                           bits)) != 0) {
				free(bits);
				json_decref(root);
				root = NULL;
				break;
			}
			free(bits);
		}
	pthread_mutex_unlock(&d->mu);
	text = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (text == NULL) {
		mr_set_err(err, err_len, "%s: out of memory", path);
		return -ENOMEM;
	}
	r = mr_write_file_atomic(path, text, strlen(text), err, err_len);
	free(text);
	return r;
}

int
dirty_load(struct dirty *d, const char *path, char *err, size_t err_len)
{
	json_error_t je;
	json_t *root, *files, *f;
	json_int_t base_seq, base_id, block;
	int version, trusted;
	size_t i;

	root = json_load_file(path, 0, &je);
	if (root == NULL) {
		if (access(path, F_OK) != 0) {
			mr_set_err(err, err_len, "%s: %s", path, strerror(errno));
			return -ENOENT;
		}
		mr_set_err(err, err_len, "%s:%d: %s", path, je.line, je.text);
		return -EBADMSG;
	}
	if (json_unpack_ex(root, &je, 0, "{s:i,s:b,s:I,s:I,s:I,s:o}", "version", &version,
	                   "trusted", &trusted, "base_seq", &base_seq, "base_id", &base_id,
	                   "block", &block, "files", &files) != 0 ||
	    version != DIRTY_VERSION || !json_is_array(files) || block != (json_int_t)d->block) {
		mr_set_err(err, err_len, "%s: not a dirty set of version %d and block %u", path,
		           DIRTY_VERSION, d->block);
		json_decref(root);
		return -EBADMSG;
	}
	pthread_mutex_lock(&d->mu);
	table_clear(&d->files);
	d->trusted = trusted != 0;
	d->base_seq = (uint64_t)base_seq;
	d->base_id = (uint64_t)base_id;
	json_array_foreach (files, i, f) {
		const char *p, *bits;
		int dir, flags;
		json_int_t trunc;
		struct dent *e;

		if (json_unpack(f, "{s:i,s:s,s:i,s:I,s:s}", "dir", &dir, "path", &p, "flags",
		                &flags, "trunc", &trunc, "bits", &bits) != 0 ||
		    dir < 0 || dir > 255 || (e = file_get(d, (uint8_t)dir, p)) == NULL) {
			distrust_locked(d, "a damaged entry in the saved set");
			break;
		}
		e->flags = (uint32_t)flags;
		e->trunc_from = (uint64_t)trunc;
		e->bits = words_of(bits, &e->n_words);
		if (e->bits == NULL) {
			e->n_words = 0;
			e->flags |= DIRTY_F_CHECKSUM;
		}
	}
	pthread_mutex_unlock(&d->mu);
	json_decref(root);
	return 0;
}

void
dirty_stats(struct dirty *d, struct dirty_stats *out)
{
	*out = (struct dirty_stats){ 0 };
	if (d == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	out->trusted = d->trusted;
	out->base_seq = d->base_seq;
	out->files = d->files.n;
	for (size_t i = 0; i < d->files.n_b; i++)
		for (struct dent *e = d->files.b[i]; e != NULL; e = e->next) {
			if (e->flags & (DIRTY_F_CHECKSUM | DIRTY_F_TRUNC))
				out->whole_files++;
			for (size_t w = 0; w < e->n_words; w++)
				out->blocks += (uint64_t)__builtin_popcountll(e->bits[w]);
		}
	pthread_mutex_unlock(&d->mu);
}
