/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * shim_inode.c - the shim's inode table: (dev, ino) -> struct shim_inode.
 *
 * FUSE inode numbers handed to the kernel are the objects' addresses; each
 * object holds an O_PATH fd and a lookup count (the kernel's references).
 * Objects die when FORGET brings the count to zero. Any FUSE worker thread;
 * all table state is under table_lock. Paths are never the identity: hard
 * links resolve to one object, renames do not change it.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "shim_int.h"
#include "util.h"

static size_t
bucket_of(const struct shim *s, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;

	return (size_t)(h >> 17) % s->n_buckets;
}

int
shim_table_init(struct shim *s, size_t n_buckets)
{
	s->buckets = calloc(n_buckets, sizeof(*s->buckets));
	if (s->buckets == NULL)
		return -ENOMEM;
	s->n_buckets = n_buckets;
	s->next_file_id = 2; /* 1 is the root */
	MR_BUG_ON(pthread_mutex_init(&s->table_lock, NULL) != 0);
	return 0;
}

void
shim_table_done(struct shim *s)
{
	size_t i;

	for (i = 0; i < s->n_buckets; i++) {
		struct shim_inode *in = s->buckets[i], *next;

		for (; in != NULL; in = next) {
			next = in->next;
			(void)close(in->fd);
			pthread_mutex_destroy(&in->lock);
			free(in);
		}
	}
	mr_free(&s->buckets);
	pthread_mutex_destroy(&s->table_lock);
}

struct shim_inode *
shim_inode_of(struct shim *s, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &s->root;
	return (struct shim_inode *)(uintptr_t)ino;
}

struct shim_inode *
shim_inode_get(struct shim *s, int fd, const struct stat *st)
{
	struct shim_inode *in;
	size_t b;

	if (st->st_dev == s->root.dev && st->st_ino == s->root.ino) {
		/* the root reached by another way (a bind mount inside?) */
		(void)close(fd);
		pthread_mutex_lock(&s->table_lock);
		s->root.nlookup++;
		pthread_mutex_unlock(&s->table_lock);
		return &s->root;
	}
	pthread_mutex_lock(&s->table_lock);
	b = bucket_of(s, st->st_dev, st->st_ino);
	for (in = s->buckets[b]; in != NULL; in = in->next) {
		if (in->ino == st->st_ino && in->dev == st->st_dev) {
			in->nlookup++;
			pthread_mutex_unlock(&s->table_lock);
			(void)close(fd);
			return in;
		}
	}
	in = calloc(1, sizeof(*in));
	if (in == NULL) {
		pthread_mutex_unlock(&s->table_lock);
		(void)close(fd);
		return NULL;
	}
	in->fd = fd;
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->type = st->st_mode & S_IFMT;
	in->nlookup = 1;
	in->file_id = s->next_file_id++;
	MR_BUG_ON(pthread_mutex_init(&in->lock, NULL) != 0);
	in->next = s->buckets[b];
	s->buckets[b] = in;
	s->n_inodes++;
	pthread_mutex_unlock(&s->table_lock);
	return in;
}

void
shim_inode_unref(struct shim *s, struct shim_inode *in, uint64_t n)
{
	struct shim_inode **pp;

	pthread_mutex_lock(&s->table_lock);
	MR_BUG_ON(n > in->nlookup);
	in->nlookup -= n;
	if (in->nlookup > 0 || in == &s->root) {
		pthread_mutex_unlock(&s->table_lock);
		return;
	}
	for (pp = &s->buckets[bucket_of(s, in->dev, in->ino)]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == in) {
			*pp = in->next;
			break;
		}
	}
	s->n_inodes--;
	pthread_mutex_unlock(&s->table_lock);
	(void)close(in->fd);
	pthread_mutex_destroy(&in->lock);
	free(in);
}
