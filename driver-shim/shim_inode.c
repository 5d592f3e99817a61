/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * shim_inode.c - the shim's inode table: (dev, ino) -> struct shim_inode,
 * and the bounded cache of O_PATH fds behind it (see shim_int.h).
 *
 * FUSE inode numbers handed to the kernel are the objects' addresses. Objects
 * die when FORGET brings their lookup count to zero; the kernel never forgets
 * an object while one of its requests is being served, so a handler may use
 * the objects of its request without further references. Any FUSE worker
 * thread; all table and cache state is under table_lock. Paths are never the
 * identity: hard links resolve to one object, renames do not change it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "shim_int.h"
#include "util.h"

#define SHIM_PINS_MAX 8

/* The fds this thread pinned during the current handler. */
static _Thread_local struct {
	struct shim *s;
	struct shim_inode *in;
} pins[SHIM_PINS_MAX];
static _Thread_local unsigned n_pins;

static size_t
bucket_of(const struct shim *s, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;

	return (size_t)(h >> 17) % s->n_buckets;
}

int
shim_table_init(struct shim *s, size_t n_buckets)
{
	struct rlimit rl;

	s->buckets = calloc(n_buckets, sizeof(*s->buckets));
	if (s->buckets == NULL)
		return -ENOMEM;
	s->n_buckets = n_buckets;
	s->next_file_id = 2; /* 1 is the root */
	/* Half the descriptors for cached objects, the rest for open files. */
	s->fd_cache_max = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 2 > s->fd_cache_max)
		s->fd_cache_max = (size_t)(rl.rlim_cur / 2);
	MR_BUG_ON(pthread_mutex_init(&s->table_lock, NULL) != 0);
	return 0;
}

static void
inode_free(struct shim_inode *in)
{
	if (in->fd >= 0)
		(void)close(in->fd);
	free(in->handle);
	pthread_mutex_destroy(&in->lock);
	free(in);
}

void
shim_table_done(struct shim *s)
{
	size_t i;

	for (i = 0; i < s->n_buckets; i++) {
		struct shim_inode *in = s->buckets[i], *next;

		for (; in != NULL; in = next) {
			next = in->next;
			inode_free(in);
		}
	}
	mr_free(&s->buckets);
	pthread_mutex_destroy(&s->table_lock);
}

struct shim_inode *
shim_inode_of(struct shim *s, fuse_ino_t ino)
{
	struct shim_inode *in;

	if (ino == FUSE_ROOT_ID)
		return &s->root;
	in = (struct shim_inode *)(uintptr_t)ino;
	SHIM_HB_ACQUIRE(in);
	return in;
}

/* ---- the fd cache (table lock held) ---------------------------------------- */

static void
lru_unlink(struct shim *s, struct shim_inode *in)
{
	if (in->lru_prev != NULL)
		in->lru_prev->lru_next = in->lru_next;
	else if (s->lru_head == in)
		s->lru_head = in->lru_next;
	if (in->lru_next != NULL)
		in->lru_next->lru_prev = in->lru_prev;
	else if (s->lru_tail == in)
		s->lru_tail = in->lru_prev;
	in->lru_prev = in->lru_next = NULL;
}

static void
lru_push_head(struct shim *s, struct shim_inode *in)
{
	in->lru_prev = NULL;
	in->lru_next = s->lru_head;
	if (s->lru_head != NULL)
		s->lru_head->lru_prev = in;
	s->lru_head = in;
	if (s->lru_tail == NULL)
		s->lru_tail = in;
}

/* Close least recently used, unpinned, reopenable fds over the budget.
 * Returns the fds to close once the lock is dropped (at most max). */
static size_t
evict(struct shim *s, int *out, size_t max)
{
	struct shim_inode *in = s->lru_tail, *prev;
	size_t n = 0;

	for (; in != NULL && s->n_cached_fds > s->fd_cache_max && n < max; in = prev) {
		prev = in->lru_prev;
		if (in->pins > 0)
			continue;
		lru_unlink(s, in);
		out[n++] = in->fd;
		in->fd = -1;
		s->n_cached_fds--;
	}
	return n;
}

static void
close_all(const int *fds, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		(void)close(fds[i]);
}

/* Record the fd of an object (new, or reopened) in the cache. */
static void
cache_fd(struct shim *s, struct shim_inode *in, int fd)
{
	in->fd = fd;
	if (!in->fd_forever) {
		s->n_cached_fds++;
		lru_push_head(s, in);
	}
}

int
shim_fd(struct shim *s, struct shim_inode *in)
{
	int victims[8], fd, mount_fd;
	size_t n_victims = 0;
	unsigned i;

	for (i = 0; i < n_pins; i++)
		if (pins[i].in == in)
			return in->fd; /* already pinned by this handler */
	MR_BUG_ON(n_pins == SHIM_PINS_MAX);

	pthread_mutex_lock(&s->table_lock);
	if (in->fd < 0) {
		pthread_mutex_unlock(&s->table_lock);
		mount_fd = s->mount_fd;
		fd = open_by_handle_at(mount_fd, in->handle, O_PATH | O_CLOEXEC);
		if (fd == -1)
			return -errno;
		pthread_mutex_lock(&s->table_lock);
		if (in->fd < 0)
			cache_fd(s, in, fd);
		else
			victims[n_victims++] = fd; /* another thread was faster */
	} else if (!in->fd_forever) {
		lru_unlink(s, in);
		lru_push_head(s, in);
	}
	in->pins++;
	n_victims += evict(s, victims + n_victims, ARRAY_SIZE(victims) - n_victims);
	fd = in->fd;
	pthread_mutex_unlock(&s->table_lock);
	close_all(victims, n_victims);
	pins[n_pins].s = s;
	pins[n_pins].in = in;
	n_pins++;
	return fd;
}

void
shim_pins_release(void)
{
	unsigned i;

	for (i = 0; i < n_pins; i++) {
		struct shim *s = pins[i].s;
		struct shim_inode *in = pins[i].in;
		bool free_it;

		pthread_mutex_lock(&s->table_lock);
		in->pins--;
		free_it = in->dead && in->pins == 0;
		pthread_mutex_unlock(&s->table_lock);
		if (free_it)
			inode_free(in);
	}
	n_pins = 0;
}

uint64_t
shim_inode_keep(struct shim *s, int dfd, const char *name, bool *last)
{
	struct shim_inode *in;
	struct stat st;
	uint64_t id;
	int fd;

	*last = false;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return 0;
	*last = st.st_nlink <= 1;
	pthread_mutex_lock(&s->table_lock);
	for (in = s->buckets[bucket_of(s, st.st_dev, st.st_ino)]; in != NULL; in = in->next)
		if (in->ino == st.st_ino && in->dev == st.st_dev)
			break;
	id = in != NULL ? in->file_id : 0;
	if (in == NULL || in->fd_forever) {
		pthread_mutex_unlock(&s->table_lock);
		return id;
	}
	if (in->fd >= 0) {
		lru_unlink(s, in);
		s->n_cached_fds--;
		in->fd_forever = true;
		pthread_mutex_unlock(&s->table_lock);
		return id;
	}
	pthread_mutex_unlock(&s->table_lock);
	/* still named: the handle opens it; the table lock is not held across
	 * the syscall, so re-check who won afterwards */
	fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return id;
	pthread_mutex_lock(&s->table_lock);
	if (in->fd < 0) {
		in->fd = fd;
		fd = -1;
	} else if (!in->fd_forever) {
		lru_unlink(s, in);
		s->n_cached_fds--;
	}
	in->fd_forever = true;
	pthread_mutex_unlock(&s->table_lock);
	if (fd >= 0)
		(void)close(fd);
	return id;
}

struct shim_inode *
shim_inode_get(struct shim *s, int fd, const struct stat *st)
{
	struct file_handle *h;
	struct shim_inode *in;
	int mount_id, victims[8];
	size_t b, n_victims;

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
			if (in->fd < 0) {
				cache_fd(s, in, fd); /* reuse the fresh fd */
				fd = -1;
			}
			pthread_mutex_unlock(&s->table_lock);
			if (fd >= 0)
				(void)close(fd);
			return in;
		}
	}
	pthread_mutex_unlock(&s->table_lock);

	in = calloc(1, sizeof(*in));
	h = calloc(1, sizeof(*h) + MAX_HANDLE_SZ);
	if (in == NULL || h == NULL) {
		free(in);
		free(h);
		(void)close(fd);
		return NULL;
	}
	h->handle_bytes = MAX_HANDLE_SZ;
	/* Objects on other mounts (handles would need their mount's fd) and
	 * file systems without handles keep their fd for life. */
	if (st->st_dev == s->root.dev &&
	    name_to_handle_at(fd, "", h, &mount_id, AT_EMPTY_PATH) == 0) {
		in->handle = h;
	} else {
		free(h);
		in->fd_forever = true;
	}
	in->fd = -1;
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->type = st->st_mode & S_IFMT;
	in->nlookup = 1;
	MR_BUG_ON(pthread_mutex_init(&in->lock, NULL) != 0);

	pthread_mutex_lock(&s->table_lock);
	{
		/* a concurrent lookup of the same object may have won */
		struct shim_inode *other;

		for (other = s->buckets[b]; other != NULL; other = other->next) {
			if (other->ino == st->st_ino && other->dev == st->st_dev) {
				other->nlookup++;
				pthread_mutex_unlock(&s->table_lock);
				(void)close(fd);
				in->fd = -1;
				inode_free(in);
				return other;
			}
		}
	}
	in->file_id = s->next_file_id++;
	cache_fd(s, in, fd);
	in->next = s->buckets[b];
	s->buckets[b] = in;
	s->n_inodes++;
	n_victims = evict(s, victims, ARRAY_SIZE(victims));
	SHIM_HB_RELEASE(in);
	pthread_mutex_unlock(&s->table_lock);
	close_all(victims, n_victims);
	return in;
}

void
shim_inode_unref(struct shim *s, struct shim_inode *in, uint64_t n)
{
	struct shim_inode **pp;
	bool dead;

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
	if (in->fd >= 0 && !in->fd_forever) {
		lru_unlink(s, in);
		s->n_cached_fds--;
	}
	s->n_inodes--;
	/* A handler that already replied may still hold a pin (pins are dropped
	 * when it returns, and the kernel may forget the object as soon as it
	 * has the reply): the last unpin frees it then. */
	dead = in->dead = in->pins > 0;
	pthread_mutex_unlock(&s->table_lock);
	if (!dead)
		inode_free(in); /* (never read in->dead here: the pin holder may free it) */
}
