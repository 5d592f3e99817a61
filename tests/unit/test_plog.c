/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test_plog - the pre-write log: what plog_need() appends and what it finds
 * covered already, what a reopen reads back, checkpoints and epochs, PLOG_ALL,
 * torn tails and damaged headers, group commit from many threads, and what
 * happens when the log cannot be written. Each test gets its own temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "plog.h"
#include "util.h"

#define N_THREADS    8
#define N_PER_THREAD 500

struct fx {
	char dir[64];
	char log[96];
};

/* Everything the plog_open() callback reported. */
struct seen_ent {
	unsigned kind;
	uint8_t dir;
	char *path;
};

struct seen {
	struct seen_ent *v;
	size_t n, cap;
};

static void
collect(void *arg, unsigned kind, uint8_t dir, const char *path)
{
	struct seen *s = arg;

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		assert_non_null(s->v);
	}
	s->v[s->n].kind = kind;
	s->v[s->n].dir = dir;
	s->v[s->n].path = strdup(path);
	assert_non_null(s->v[s->n].path);
	s->n++;
}

static void
seen_clear(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].path);
	free(s->v);
	*s = (struct seen){ 0 };
}

/* The kinds reported for (dir, path), OR'ed over every callback; 0: none. */
static unsigned
seen_kind(const struct seen *s, uint8_t dir, const char *path)
{
	unsigned kind = 0;

	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].dir == dir && strcmp(s->v[i].path, path) == 0)
			kind |= s->v[i].kind;
	return kind;
}

/* How many distinct (dir, path) names the callbacks reported. */
static size_t
seen_names(const struct seen *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++) {
		size_t j;

		for (j = 0; j < i; j++)
			if (s->v[j].dir == s->v[i].dir && strcmp(s->v[j].path, s->v[i].path) == 0)
				break;
		n += j == i;
	}
	return n;
}

static struct plog_stats
stats(struct plog *p)
{
	struct plog_stats st;

	plog_stats(p, &st);
	return st;
}

/* Close p (as a crash would leave it: every need() returned, so durable) and
 * open the same file again; what it reads goes to *s and *ld. */
static struct plog *
reopen(const struct fx *fx, struct plog *p, struct seen *s, struct plog_loaded *ld)
{
	plog_free(p);
	seen_clear(s);
	p = plog_open(fx->log, collect, s, ld);
	assert_non_null(p);
	return p;
}

static off_t
file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return -errno;
	return st.st_size;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	(void)snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_plog.XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	(void)snprintf(fx->log, sizeof(fx->log), "%s/m.plog", fx->dir);
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx *fx = *state;
	int r;

	r = nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return r;
}

/* ---- reading back ----------------------------------------------------------- */

static void
reads_back_entries_and_base(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	struct plog_stats st;

	/* nothing there yet */
	assert_non_null(p);
	assert_false(ld.found);
	assert_false(ld.all);
	assert_int_equal(ld.entries, 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(plog_epoch(p), 1);
	assert_int_equal(plog_checkpoint(p, 0, 7, 0x8000000000000009ull, true), 0);

	assert_int_equal(plog_need(p, 1, 0, "a/f", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 1, "a/f", PLOG_FILE), 0); /* another root */
	assert_int_equal(plog_need(p, 1, 1, "a", PLOG_DIR), 0);
	assert_int_equal(plog_need(p, 1, 255, "x y/z", PLOG_FILE), 0);
	st = stats(p);
	assert_int_equal(st.appended, 4);
	assert_int_equal(st.entries, 4);
	assert_true(st.syncs >= 1 && st.syncs <= 4);
	assert_int_equal(st.checkpoints, 1);
	assert_false(st.all);
	assert_false(st.failed);

	/* twice: once from the appended records, once from the rewrite at open */
	for (int round = 0; round < 2; round++) {
		p = reopen(fx, p, &s, &ld);
		assert_true(ld.found);
		assert_false(ld.all);
		assert_int_equal(ld.base_seq, 7);
		assert_int_equal(ld.base_id, 0x8000000000000009ull);
		assert_int_equal(ld.entries, 4);
		assert_int_equal(seen_names(&s), 4);
		assert_int_equal(seen_kind(&s, 0, "a/f"), PLOG_FILE);
		assert_int_equal(seen_kind(&s, 1, "a/f"), PLOG_FILE);
		assert_int_equal(seen_kind(&s, 1, "a"), PLOG_DIR);
		assert_int_equal(seen_kind(&s, 255, "x y/z"), PLOG_FILE);
		assert_int_equal(seen_kind(&s, 0, "a"), 0);
		/* what was read is logged already */
		st = stats(p);
		assert_int_equal(st.entries, 4);
		assert_int_equal(plog_need(p, 1, 0, "a/f", PLOG_FILE), 0);
		assert_int_equal(stats(p).appended, 0);
	}

	/* a NULL callback is fine */
	plog_free(p);
	p = plog_open(fx->log, NULL, NULL, &ld);
	assert_true(ld.found);
	assert_int_equal(ld.entries, 4);
	plog_free(p);
	plog_free(NULL);
	seen_clear(&s);
}

static void
logged_name_costs_nothing(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	struct plog_stats a, b;
	off_t size;

	assert_int_equal(plog_need(p, 1, 0, "f", PLOG_FILE), 0);
	a = stats(p);
	assert_int_equal(a.appended, 1);
	assert_int_equal(a.syncs, 1);
	size = file_size(fx->log);

	assert_int_equal(plog_need(p, 1, 0, "f", PLOG_FILE), 0);
	assert_int_equal(plog_next_epoch(p), 2);
	assert_int_equal(plog_epoch(p), 2);
	assert_int_equal(plog_need(p, 2, 0, "f", PLOG_FILE), 0); /* a later epoch too */
	b = stats(p);
	assert_int_equal(b.appended, a.appended);
	assert_int_equal(b.syncs, a.syncs);
	assert_int_equal(b.epoch, 2);
	assert_int_equal(file_size(fx->log), size);

	/* another kind of the same name is a new record */
	assert_int_equal(plog_need(p, 2, 0, "f", PLOG_DIR), 0);
	b = stats(p);
	assert_int_equal(b.appended, 2);
	assert_int_equal(b.syncs, 2);
	assert_int_equal(b.entries, 1);
	assert_int_equal(plog_need(p, 2, 0, "f", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 2, 0, "f", PLOG_DIR), 0);
	assert_int_equal(plog_need(p, 2, 0, "f/child", PLOG_FILE), 0); /* covered by f */
	a = stats(p);
	assert_int_equal(a.appended, 2);
	assert_int_equal(a.syncs, 2);

	p = reopen(fx, p, &s, &ld);
	assert_int_equal(seen_kind(&s, 0, "f"), PLOG_FILE | PLOG_DIR);
	assert_int_equal(seen_names(&s), 1);
	plog_free(p);
	seen_clear(&s);
}

/* A name logged both as a file and as a directory is one entry with both
 * kinds; the rewrite at open (or a checkpoint) stores it as one record, and
 * every record after it must still be read. */
static void
file_and_dir_of_one_name(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	char name[32];

	assert_int_equal(plog_need(p, 1, 3, "both", PLOG_FILE), 0);
	for (int i = 0; i < 40; i++) {
		(void)snprintf(name, sizeof(name), "other%02d", i);
		assert_int_equal(plog_need(p, 1, 3, name, PLOG_FILE), 0);
	}
	assert_int_equal(plog_need(p, 1, 3, "both", PLOG_DIR), 0);
	assert_int_equal(stats(p).entries, 41);

	for (int round = 0; round < 3; round++) {
		if (round == 2)
			assert_int_equal(plog_checkpoint(p, 0, 1, 2, true), 0);
		p = reopen(fx, p, &s, &ld);
		assert_true(ld.found);
		assert_false(ld.all);
		assert_int_equal(seen_kind(&s, 3, "both"), PLOG_FILE | PLOG_DIR);
		assert_int_equal(seen_names(&s), 41);
		for (int i = 0; i < 40; i++) {
			(void)snprintf(name, sizeof(name), "other%02d", i);
			assert_int_equal(seen_kind(&s, 3, name), PLOG_FILE);
		}
		assert_int_equal(stats(p).entries, 41);
	}
	plog_free(p);
	seen_clear(&s);
}

/* ---- epochs and checkpoints -------------------------------------------------- */

static void
dir_covers_children_in_same_epoch(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);

	assert_int_equal(plog_need(p, 1, 0, "d", PLOG_DIR), 0);
	assert_int_equal(stats(p).appended, 1);
	/* direct children of d, same epoch and root: covered */
	assert_int_equal(plog_need(p, 1, 0, "d/a", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, "d/b", PLOG_FILE), 0);
	assert_int_equal(stats(p).appended, 1);
	/* not children of d (in this root): appended */
	assert_int_equal(plog_need(p, 1, 0, "e/a", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 1, "d/c", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, "d/sub/x", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, "dd/x", PLOG_FILE), 0);
	assert_int_equal(stats(p).appended, 5);
	/* a directory is not covered by its parent's entry */
	assert_int_equal(plog_need(p, 1, 0, "d/sub", PLOG_DIR), 0);
	assert_int_equal(stats(p).appended, 6);

	/* the next epoch: d's entry is from epoch 1, so it no longer covers */
	assert_int_equal(plog_next_epoch(p), 2);
	assert_int_equal(plog_need(p, 2, 0, "d/a", PLOG_FILE), 0);
	assert_int_equal(stats(p).appended, 7);
	/* ... until d is needed in epoch 2 (no append: d is logged) */
	assert_int_equal(plog_need(p, 2, 0, "d", PLOG_DIR), 0);
	assert_int_equal(plog_need(p, 2, 0, "d/b", PLOG_FILE), 0);
	assert_int_equal(stats(p).appended, 7);
	/* an op that read epoch 1 before the switch is covered by d too */
	assert_int_equal(plog_need(p, 1, 0, "d/z", PLOG_FILE), 0);
	assert_int_equal(stats(p).appended, 7);

	p = reopen(fx, p, &s, &ld);
	assert_int_equal(seen_names(&s), 7);
	assert_int_equal(seen_kind(&s, 0, "d"), PLOG_DIR);
	assert_int_equal(seen_kind(&s, 0, "d/a"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "d/b"), 0);
	assert_int_equal(seen_kind(&s, 0, "d/z"), 0);
	assert_int_equal(seen_kind(&s, 0, "e/a"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 1, "d/c"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "d/sub/x"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "d/sub"), PLOG_DIR);
	assert_int_equal(seen_kind(&s, 0, "dd/x"), PLOG_FILE);
	plog_free(p);
	seen_clear(&s);
}

static void
checkpoint_keeps_recent_entries(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	struct plog_stats st;

	assert_int_equal(plog_need(p, 1, 0, "old", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, "again", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, "olddir", PLOG_DIR), 0);
	assert_int_equal(plog_next_epoch(p), 2);
	assert_int_equal(plog_need(p, 2, 0, "again", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 2, 0, "new", PLOG_FILE), 0);
	assert_int_equal(stats(p).appended, 4);

	/* every op of epoch 1 acknowledged: keep epoch 2 on */
	assert_int_equal(plog_checkpoint(p, 2, 100, 200, true), 0);
	st = stats(p);
	assert_int_equal(st.checkpoints, 1);
	assert_int_equal(st.entries, 2);
	assert_false(st.all);
	assert_false(st.failed);
	/* kept entries are still logged; dropped ones are appended again */
	assert_int_equal(plog_need(p, 2, 0, "again", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 2, 0, "new", PLOG_FILE), 0);
	assert_int_equal(stats(p).appended, 4);
	assert_int_equal(plog_need(p, 2, 0, "olddir/x", PLOG_FILE), 0); /* olddir was dropped */
	assert_int_equal(stats(p).appended, 5);

	p = reopen(fx, p, &s, &ld);
	assert_true(ld.found);
	assert_false(ld.all);
	assert_int_equal(ld.base_seq, 100);
	assert_int_equal(ld.base_id, 200);
	assert_int_equal(ld.entries, 3);
	assert_int_equal(seen_names(&s), 3);
	assert_int_equal(seen_kind(&s, 0, "again"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "new"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "olddir/x"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "old"), 0);
	assert_int_equal(seen_kind(&s, 0, "olddir"), 0);

	/* keep_from 0 keeps everything, whatever its epoch */
	assert_int_equal(plog_need(p, 1, 0, "e1", PLOG_FILE), 0);
	assert_int_equal(plog_next_epoch(p), 2);
	assert_int_equal(plog_need(p, 2, 0, "e2", PLOG_FILE), 0);
	assert_int_equal(plog_next_epoch(p), 3);
	assert_int_equal(plog_checkpoint(p, 0, 101, 201, true), 0);
	assert_int_equal(stats(p).entries, 5);
	p = reopen(fx, p, &s, &ld);
	assert_false(ld.all);
	assert_int_equal(ld.base_seq, 101);
	assert_int_equal(ld.base_id, 201);
	assert_int_equal(seen_names(&s), 5);
	assert_int_equal(seen_kind(&s, 0, "e1"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "e2"), PLOG_FILE);

	/* an untrusted checkpoint: the next open must compare everything */
	assert_int_equal(plog_checkpoint(p, 0, 102, 202, false), 0);
	assert_true(stats(p).all);
	p = reopen(fx, p, &s, &ld);
	assert_true(ld.found);
	assert_true(ld.all);
	assert_int_equal(ld.base_seq, 102);
	assert_int_equal(seen_names(&s), 5); /* the names are still there */
	assert_true(stats(p).all);
	/* and it stays so across opens until a trusted checkpoint drops it */
	p = reopen(fx, p, &s, &ld);
	assert_true(ld.all);
	assert_int_equal(plog_next_epoch(p), 2);
	assert_int_equal(plog_checkpoint(p, 2, 103, 203, true), 0);
	assert_false(stats(p).all);
	assert_int_equal(stats(p).entries, 0);
	p = reopen(fx, p, &s, &ld);
	assert_false(ld.all);
	assert_int_equal(ld.entries, 0);
	assert_int_equal(ld.base_seq, 103);
	plog_free(p);
	seen_clear(&s);
}

static void
all_until_checkpoint(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	struct plog_stats st;

	assert_int_equal(plog_need(p, 1, 0, "a", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, NULL, PLOG_ALL), 0);
	st = stats(p);
	assert_true(st.all);
	assert_int_equal(st.appended, 2);
	/* everything is covered now */
	assert_int_equal(plog_need(p, 1, 0, "b", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, NULL, PLOG_ALL), 0);
	assert_int_equal(stats(p).appended, 2);

	p = reopen(fx, p, &s, &ld);
	assert_true(ld.found);
	assert_true(ld.all);
	assert_int_equal(seen_kind(&s, 0, "a"), PLOG_FILE);
	assert_true(stats(p).all);

	/* a change of epoch 2 covered only by ALL: a checkpoint from 2 keeps ALL */
	assert_int_equal(plog_next_epoch(p), 2);
	assert_int_equal(plog_need(p, 2, 0, "c", PLOG_FILE), 0);
	assert_int_equal(plog_checkpoint(p, 2, 5, 6, true), 0);
	assert_true(stats(p).all);
	/* once epoch 2 is acknowledged too, ALL goes */
	assert_int_equal(plog_next_epoch(p), 3);
	assert_int_equal(plog_checkpoint(p, 3, 5, 6, true), 0);
	st = stats(p);
	assert_false(st.all);
	assert_int_equal(st.entries, 0);
	p = reopen(fx, p, &s, &ld);
	assert_true(ld.found);
	assert_false(ld.all);
	assert_int_equal(ld.entries, 0);

	/* path NULL means ALL, whatever the kind; ALL with a path too */
	assert_int_equal(plog_need(p, 1, 0, NULL, PLOG_FILE), 0);
	assert_true(stats(p).all);
	p = reopen(fx, p, &s, &ld);
	assert_true(ld.all);
	assert_int_equal(plog_next_epoch(p), 2);
	assert_int_equal(plog_checkpoint(p, 2, 5, 6, true), 0);
	assert_false(stats(p).all);
	assert_int_equal(plog_need(p, 2, 0, "ignored", PLOG_ALL), 0);
	assert_true(stats(p).all);
	p = reopen(fx, p, &s, &ld);
	assert_true(ld.all);
	assert_int_equal(seen_kind(&s, 0, "ignored"), 0);
	plog_free(p);
	seen_clear(&s);
}

/* ---- damage ------------------------------------------------------------------ */

static void
append_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void
torn_tail_is_ignored(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	/* kind FILE, dir 0, len 5, "abcde", then a wrong XXH32 */
	static const uint8_t bad_sum[] = { 1, 0, 0, 5, 'a', 'b', 'c', 'd', 'e', 0, 0, 0, 0 };
	/* a length beyond the end of the file */
	static const uint8_t too_long[] = { 1, 0, 0x0f, 0xff, 'x', 'y', 'z', 0, 0, 0, 0, 0 };
	static const uint8_t short_tail[] = { 2, 0, 0 };
	off_t size;

	assert_int_equal(plog_need(p, 1, 0, "a", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, "b", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, "ccc", PLOG_FILE), 0);
	plog_free(p);

	/* the last record lost its checksum's last bytes */
	size = file_size(fx->log);
	assert_true(size > 0);
	assert_int_equal(truncate(fx->log, size - 3), 0);
	p = plog_open(fx->log, collect, &s, &ld);
	assert_true(ld.found);
	assert_false(ld.all);
	assert_int_equal(ld.entries, 2);
	assert_int_equal(seen_names(&s), 2);
	assert_int_equal(seen_kind(&s, 0, "a"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "b"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "ccc"), 0);
	/* the reopened log appends after its whole records */
	assert_int_equal(plog_need(p, 1, 0, "d", PLOG_FILE), 0);
	plog_free(p);

	/* garbage after the last record, in three shapes */
	append_bytes(fx->log, bad_sum, sizeof(bad_sum));
	p = reopen(fx, NULL, &s, &ld);
	assert_int_equal(ld.entries, 3);
	assert_int_equal(seen_kind(&s, 0, "d"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "abcde"), 0);
	assert_int_equal(plog_need(p, 1, 0, "e", PLOG_FILE), 0);
	plog_free(p);
	append_bytes(fx->log, too_long, sizeof(too_long));
	p = reopen(fx, NULL, &s, &ld);
	assert_int_equal(ld.entries, 4);
	assert_int_equal(plog_need(p, 1, 0, "f", PLOG_FILE), 0);
	plog_free(p);
	append_bytes(fx->log, short_tail, sizeof(short_tail));
	p = reopen(fx, NULL, &s, &ld);
	assert_true(ld.found);
	assert_false(ld.all);
	assert_int_equal(ld.entries, 5);
	assert_int_equal(seen_names(&s), 5);
	assert_int_equal(seen_kind(&s, 0, "a"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "b"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "d"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "e"), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, "f"), PLOG_FILE);
	plog_free(p);
	seen_clear(&s);
}

static void
damaged_header_is_not_found(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	uint8_t byte;
	int fd;

	assert_int_equal(plog_checkpoint(p, 0, 42, 43, true), 0);
	assert_int_equal(plog_need(p, 1, 0, "a", PLOG_FILE), 0);
	plog_free(p);

	/* one bit of the base seq flipped: the header checksum fails */
	fd = open(fx->log, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, 15), 1);
	byte ^= 0x01;
	assert_int_equal(pwrite(fd, &byte, 1, 15), 1);
	assert_int_equal(close(fd), 0);
	p = plog_open(fx->log, collect, &s, &ld);
	assert_false(ld.found);
	assert_false(ld.all);
	assert_int_equal(ld.entries, 0);
	assert_int_equal(s.n, 0);
	plog_free(p);

	/* not a log at all; an empty file; a header cut short */
	fd = open(fx->log, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "MRPLOG02 not a log, but long enough\n", 36), 36);
	assert_int_equal(close(fd), 0);
	p = reopen(fx, NULL, &s, &ld);
	assert_false(ld.found);
	assert_int_equal(s.n, 0);
	plog_free(p);
	assert_int_equal(truncate(fx->log, 0), 0);
	p = reopen(fx, NULL, &s, &ld);
	assert_false(ld.found);
	plog_free(p);
	/* that open wrote a whole, empty log: cut into its header */
	assert_int_equal(truncate(fx->log, 20), 0);
	p = reopen(fx, NULL, &s, &ld);
	assert_false(ld.found);
	assert_int_equal(ld.entries, 0);
	/* ... and replaced it with a whole one again */
	p = reopen(fx, p, &s, &ld);
	assert_true(ld.found);
	assert_int_equal(ld.entries, 0);
	plog_free(p);
	seen_clear(&s);
}

/* More names than the log keeps in memory (1000000): the open falls back to
 * ALL and must say so, since the callback did not get every name. */
static void
too_many_names_reads_as_all(void **state)
{
	struct fx *fx = *state;
	const uint32_t n = 1000000 + 3;
	size_t len = 28 + (size_t)n * 15, off = 28;
	uint8_t *img = malloc(len);
	struct plog_loaded ld;
	struct plog *p;
	FILE *f;

	assert_non_null(img);
	memcpy(img, "MRPLOG01", 8);
	mr_put_be64(img + 8, 1);
	mr_put_be64(img + 16, 2);
	mr_put_be32(img + 24, XXH32(img, 24, 0));
	for (uint32_t i = 0; i < n; i++, off += 15) {
		img[off] = PLOG_FILE;
		img[off + 1] = 0;
		mr_put_be16(img + off + 2, 7);
		for (uint32_t j = 0, v = i; j < 7; j++, v /= 10)
			img[off + 10 - j] = (uint8_t)('0' + v % 10);
		mr_put_be32(img + off + 11, XXH32(img + off, 11, 0));
	}
	f = fopen(fx->log, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(img, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	free(img);

	p = plog_open(fx->log, NULL, NULL, &ld);
	assert_true(ld.found);
	assert_int_equal(ld.base_seq, 1);
	assert_true(ld.all);
	assert_true(stats(p).all);
	plog_free(p);
}

/* ---- odd names --------------------------------------------------------------- */

static void
odd_paths(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	static const char *const names[] = {
		"with space/and\nnewline",
		"\n",
		" ",
		"tab\there",
		"caf\xc3\xa9/\xe2\x82\xac",
		"trailing/",
		"a//b",
		"-",
		"\x01\x7f\xff",
	};
	const size_t n_names = sizeof(names) / sizeof(names[0]);
	char *max = malloc(4097), *over = malloc(4098), *deep = malloc(4097);
	struct plog_stats st;

	assert_non_null(max);
	assert_non_null(over);
	assert_non_null(deep);
	memset(max, 'm', 4096);
	max[4096] = '\0';
	memset(over, 'o', 4097);
	over[4097] = '\0';
	for (size_t i = 0; i < 4096; i++)
		deep[i] = i % 2 ? '/' : 'd';
	deep[4095] = 'x';
	deep[4096] = '\0';

	for (size_t i = 0; i < n_names; i++)
		assert_int_equal(plog_need(p, 1, 0, names[i], PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, max, PLOG_FILE), 0); /* 4096 bytes: fine */
	assert_int_equal(plog_need(p, 1, 1, deep, PLOG_DIR), 0);
	st = stats(p);
	assert_false(st.all);
	assert_int_equal(st.appended, n_names + 2);
	assert_int_equal(st.entries, n_names + 2);

	p = reopen(fx, p, &s, &ld);
	assert_false(ld.all);
	assert_int_equal(ld.entries, n_names + 2);
	assert_int_equal(seen_names(&s), n_names + 2);
	for (size_t i = 0; i < n_names; i++)
		assert_int_equal(seen_kind(&s, 0, names[i]), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 0, max), PLOG_FILE);
	assert_int_equal(seen_kind(&s, 1, deep), PLOG_DIR);

	/* 4097 bytes cannot be logged by name: the log says ALL instead */
	assert_int_equal(plog_need(p, 1, 0, over, PLOG_FILE), 0);
	st = stats(p);
	assert_true(st.all);
	assert_false(st.failed);
	assert_int_equal(st.appended, 1);
	assert_int_equal(st.entries, n_names + 2);
	/* and the names stay readable after any rewrite */
	assert_int_equal(plog_checkpoint(p, 0, 1, 1, true), 0);
	p = reopen(fx, p, &s, &ld);
	assert_true(ld.all);
	assert_int_equal(seen_names(&s), n_names + 2);
	assert_int_equal(seen_kind(&s, 0, over), 0);

	/* too long for a directory entry as well */
	assert_int_equal(plog_next_epoch(p), 2);
	assert_int_equal(plog_checkpoint(p, 2, 1, 1, true), 0);
	assert_false(stats(p).all);
	assert_int_equal(plog_need(p, 2, 0, over, PLOG_DIR), 0);
	assert_true(stats(p).all);
	assert_int_equal(stats(p).entries, 0);

	plog_free(p);
	seen_clear(&s);
	free(max);
	free(over);
	free(deep);
}

/* ---- group commit ------------------------------------------------------------ */

struct worker {
	struct plog *p;
	pthread_barrier_t *start;
	unsigned idx;
	bool shared; /* every worker needs the same names */
	int failures;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	char name[64];

	(void)pthread_barrier_wait(w->start);
	for (unsigned i = 0; i < N_PER_THREAD; i++) {
		if (w->shared)
			(void)snprintf(name, sizeof(name), "shared/f%03u", i);
		else
			(void)snprintf(name, sizeof(name), "t%u/f%03u", w->idx, i);
		if (plog_need(w->p, plog_epoch(w->p), (uint8_t)(w->idx % 2), name, PLOG_FILE) != 0)
			w->failures++;
	}
	return NULL;
}

static void
run_workers(struct plog *p, bool shared)
{
	pthread_t th[N_THREADS];
	struct worker w[N_THREADS];
	pthread_barrier_t start;

	assert_int_equal(pthread_barrier_init(&start, NULL, N_THREADS), 0);
	for (unsigned i = 0; i < N_THREADS; i++) {
		w[i] = (struct worker){ .p = p, .start = &start, .idx = i, .shared = shared };
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (unsigned i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (unsigned i = 0; i < N_THREADS; i++)
		assert_int_equal(w[i].failures, 0);
	(void)pthread_barrier_destroy(&start);
}

static void
group_commit_from_threads(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	static unsigned char hit[N_THREADS][N_PER_THREAD];
	const uint64_t total = N_THREADS * N_PER_THREAD;
	struct plog_stats st;

	run_workers(p, false);
	st = stats(p);
	assert_int_equal(st.appended, total);
	assert_int_equal(st.entries, total);
	assert_false(st.failed);
	assert_true(st.syncs >= 1 && st.syncs <= total); /* a commit writes >= 1 record */

	/* the same names again: all logged, no I/O */
	run_workers(p, false);
	assert_int_equal(stats(p).appended, st.appended);
	assert_int_equal(stats(p).syncs, st.syncs);

	/* every thread races for the same new names (odd and even roots) */
	run_workers(p, true);
	assert_int_equal(stats(p).appended, total + 2 * N_PER_THREAD);

	p = reopen(fx, p, &s, &ld);
	assert_true(ld.found);
	assert_false(ld.all);
	assert_int_equal(ld.entries, total + 2 * N_PER_THREAD);
	assert_int_equal(s.n, total + 2 * N_PER_THREAD);
	memset(hit, 0, sizeof(hit));
	for (size_t i = 0; i < s.n; i++) {
		unsigned t, f;

		assert_int_equal(s.v[i].kind, PLOG_FILE);
		if (sscanf(s.v[i].path, "shared/f%u", &f) == 1)
			continue;
		assert_int_equal(sscanf(s.v[i].path, "t%u/f%u", &t, &f), 2);
		assert_true(t < N_THREADS && f < N_PER_THREAD);
		assert_int_equal(s.v[i].dir, t % 2);
		assert_int_equal(hit[t][f], 0);
		hit[t][f] = 1;
	}
	for (unsigned t = 0; t < N_THREADS; t++)
		for (unsigned f = 0; f < N_PER_THREAD; f++)
			assert_int_equal(hit[t][f], 1);
	plog_free(p);
	seen_clear(&s);
}

/* ---- write failures ---------------------------------------------------------- */

/* As root, permissions do not stop a write; RLIMIT_FSIZE does (EFBIG, with
 * SIGXFSZ ignored). Runs one plog_need() with the file size capped at the
 * log's current size, so its append fails. */
static int
need_with_full_disk(struct plog *p, const char *size_of, const char *path)
{
	struct rlimit old, cap;
	void (*old_sig)(int);
	off_t size = file_size(size_of);
	int r;

	assert_true(size > 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	cap = old;
	cap.rlim_cur = (rlim_t)size;
	old_sig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &cap), 0);
	r = plog_need(p, plog_epoch(p), 0, path, PLOG_FILE);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	(void)signal(SIGXFSZ, old_sig);
	return r;
}

static void
append_failure_removes_the_log(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, collect, &s, &ld);
	struct plog_stats st;

	assert_int_equal(plog_need(p, 1, 0, "a", PLOG_FILE), 0);
	/* the append fails; the file can be removed, so the op may go on */
	assert_int_equal(need_with_full_disk(p, fx->log, "b"), 0);
	st = stats(p);
	assert_true(st.failed);
	assert_true(st.all);
	assert_int_equal(file_size(fx->log), -ENOENT);
	/* disabled: no appends, no file */
	assert_int_equal(plog_need(p, 1, 0, "c", PLOG_FILE), 0);
	assert_int_equal(plog_need(p, 1, 0, NULL, PLOG_ALL), 0);
	assert_int_equal(stats(p).appended, st.appended);
	assert_int_equal(file_size(fx->log), -ENOENT);

	/* a checkpoint writes a new log; what happened meanwhile makes it ALL */
	assert_int_equal(plog_checkpoint(p, 1, 9, 9, true), 0);
	st = stats(p);
	assert_false(st.failed);
	assert_true(st.all);
	assert_true(file_size(fx->log) > 0);
	/* once that epoch is acknowledged, the log is trusted again */
	assert_int_equal(plog_next_epoch(p), 2);
	assert_int_equal(plog_checkpoint(p, 2, 9, 10, true), 0);
	assert_false(stats(p).all);
	assert_int_equal(plog_need(p, 2, 0, "d", PLOG_FILE), 0);
	p = reopen(fx, p, &s, &ld);
	assert_true(ld.found);
	assert_false(ld.all);
	assert_int_equal(ld.base_id, 10);
	assert_int_equal(seen_names(&s), 1);
	assert_int_equal(seen_kind(&s, 0, "d"), PLOG_FILE);
	plog_free(p);
	seen_clear(&s);
}

static void
append_failure_without_removal_refuses(void **state)
{
	struct fx *fx = *state;
	struct plog_loaded ld;
	struct plog *p = plog_open(fx->log, NULL, NULL, &ld);
	char moved[128];

	assert_int_equal(plog_need(p, 1, 0, "a", PLOG_FILE), 0);
	/* the log's name now belongs to a directory: unlink() fails (EISDIR)
	 * while appends still go to the open file, now named "moved" */
	(void)snprintf(moved, sizeof(moved), "%s/moved", fx->dir);
	assert_int_equal(rename(fx->log, moved), 0);
	assert_int_equal(mkdir(fx->log, 0700), 0);
	assert_int_equal(need_with_full_disk(p, moved, "b"), -EIO);
	assert_true(stats(p).failed);
	assert_int_equal(plog_need(p, 1, 0, "c", PLOG_FILE), -EIO);
	assert_int_equal(plog_need(p, 1, 0, NULL, PLOG_ALL), -EIO);
	/* the checkpoint cannot replace a directory either: still refused */
	assert_true(plog_checkpoint(p, 1, 0, 0, true) < 0);
	assert_int_equal(plog_need(p, 1, 0, "c", PLOG_FILE), -EIO);
	/* the name is free again: a checkpoint brings the log back */
	assert_int_equal(rmdir(fx->log), 0);
	assert_int_equal(plog_checkpoint(p, 1, 0, 0, true), 0);
	assert_false(stats(p).failed);
	assert_true(stats(p).all);
	assert_int_equal(plog_need(p, 1, 0, "c", PLOG_FILE), 0);
	plog_free(p);
	p = plog_open(fx->log, NULL, NULL, &ld);
	assert_true(ld.found);
	assert_true(ld.all);
	plog_free(p);
}

static void
unwritable_at_open_works_in_memory(void **state)
{
	struct fx *fx = *state;
	struct seen s = { 0 };
	struct plog_loaded ld;
	char sub[128], path[160];
	struct plog *p;

	(void)snprintf(sub, sizeof(sub), "%s/missing", fx->dir);
	(void)snprintf(path, sizeof(path), "%s/m.plog", sub);
	p = plog_open(path, collect, &s, &ld);
	assert_non_null(p);
	assert_false(ld.found);
	assert_true(stats(p).failed);
	/* no file to trust after a crash: ops go on, nothing is appended */
	assert_int_equal(plog_need(p, 1, 0, "x", PLOG_FILE), 0);
	assert_int_equal(stats(p).appended, 0);
	assert_true(stats(p).all);
	assert_true(plog_checkpoint(p, 1, 0, 0, true) < 0);
	assert_true(stats(p).failed);
	/* the directory comes back: the first checkpoint writes a log, and the
	 * change made meanwhile makes it ALL */
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(plog_checkpoint(p, 1, 0, 0, true), 0);
	assert_false(stats(p).failed);
	plog_free(p);
	p = plog_open(path, collect, &s, &ld);
	assert_true(ld.found);
	assert_true(ld.all);
	plog_free(p);

	/* the directory removed under an open log: checkpoints fail, the old
	 * state stays */
	p = plog_open(path, NULL, NULL, &ld);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(sub), 0);
	assert_true(plog_checkpoint(p, 1, 0, 0, true) < 0);
	assert_int_equal(stats(p).checkpoints, 0);
	plog_free(p);
	seen_clear(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/* clang-format off */
		cmocka_unit_test_setup_teardown(reads_back_entries_and_base, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(logged_name_costs_nothing, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(file_and_dir_of_one_name, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(dir_covers_children_in_same_epoch, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(checkpoint_keeps_recent_entries, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(all_until_checkpoint, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(torn_tail_is_ignored, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(damaged_header_is_not_found, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(odd_paths, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(too_many_names_reads_as_all, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(group_commit_from_threads, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(append_failure_removes_the_log, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(append_failure_without_removal_refuses, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(unwritable_at_open_works_in_memory, fx_setup,
						fx_teardown),
		/* clang-format on */
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
