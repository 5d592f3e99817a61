/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * shim_int.h - internals shared by the shim's files (not for the daemon).
 *
 * Locking order: ns_lock (namespace ops) before an inode's data lock before
 * the table lock. No lock is held across fuse_reply_*().
 */
#ifndef MR_SHIM_INT_H
#define MR_SHIM_INT_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "shim.h"

/* One object of the real file system, keyed by (dev, ino). Its O_PATH fd
 * pins it, so it stays usable after renames and unlinks. */
struct shim_inode {
	struct shim_inode *next; /* hash chain; table lock */
	int fd;                  /* O_PATH | O_NOFOLLOW */
	dev_t dev;
	ino_t ino;
	mode_t type;          /* S_IFMT bits */
	uint64_t nlookup;     /* kernel references; table lock */
	uint64_t file_id;     /* stable id for op records */
	pthread_mutex_t lock; /* orders data ops on this object */
};

struct shim {
	struct fuse_session *se;
	char *dir; /* canonical absolute path */
	size_t dir_len;
	int proc_fd; /* /proc/self/fd, O_PATH */
	struct shim_inode root;
	atomic_bool read_only;
	bool mounted;
	bool signals;         /* libfuse signal handlers installed */
	atomic_bool stopping; /* shim_stop() called */
	unsigned conn_id;     /* /sys/fs/fuse/connections/<id> */
	bool debug;
	unsigned max_threads;
	shim_submit_fn submit;
	void *submit_ctx;
	double timeout_s; /* entry/attr cache timeout */

	pthread_mutex_t table_lock;
	struct shim_inode **buckets;
	size_t n_buckets;
	size_t n_inodes;
	uint64_t next_file_id;

	pthread_mutex_t ns_lock; /* serialises namespace ops + submit */

	atomic_uint_fast64_t st_ops;
	atomic_uint_fast64_t st_bytes;
};

/* shim_inode.c */
int shim_table_init(struct shim *s, size_t n_buckets);
void shim_table_done(struct shim *s);
struct shim_inode *shim_inode_of(struct shim *s, fuse_ino_t ino);
/* Find or insert the object of fd (stat in st); takes a lookup reference.
 * Consumes fd (closed if the object was already known). NULL on ENOMEM. */
struct shim_inode *shim_inode_get(struct shim *s, int fd, const struct stat *st);
/* Drop n lookup references; frees the object at zero. */
void shim_inode_unref(struct shim *s, struct shim_inode *in, uint64_t n);

/* shim_path.c helpers (in shim_ops.c) */
char *shim_rel_path(struct shim *s, struct shim_inode *dir, const char *name);

#endif
