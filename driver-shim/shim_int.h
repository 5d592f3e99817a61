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

/*
 * The kernel orders some of our accesses for us (a handle is used only after
 * the reply that created it, RELEASE comes after every request on the file
 * was answered, an inode number is used only after its LOOKUP reply), but
 * ThreadSanitizer cannot see through /dev/fuse. These annotations tell it.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define SHIM_HB_ACQUIRE(p) __tsan_acquire((void *)(p))
#define SHIM_HB_RELEASE(p) __tsan_release((void *)(p))
#else
#define SHIM_HB_ACQUIRE(p) ((void)(p))
#define SHIM_HB_RELEASE(p) ((void)(p))
#endif

/*
 * One object of the real file system, keyed by (dev, ino).
 *
 * It is reached through an O_PATH fd, which keeps working after renames and
 * unlinks. Keeping one fd per object the kernel remembers would run into
 * RLIMIT_NOFILE on big trees, so objects also keep a file handle
 * (name_to_handle_at) and their fd is a cache entry: at most fd_cache_max
 * fds stay open, the least recently used unpinned ones are closed and
 * reopened on demand with open_by_handle_at(). A handler pins the fds it
 * uses (shim_fd()); pins are released when the handler returns.
 * Objects on a file system without handles keep their fd for life.
 */
struct shim_inode {
	struct shim_inode *next;     /* hash chain; table lock */
	struct shim_inode *lru_prev; /* fd cache LRU; table lock */
	struct shim_inode *lru_next;
	int fd;                     /* O_PATH | O_NOFOLLOW, or -1 (not cached); table lock */
	unsigned pins;              /* handlers using fd now; table lock */
	bool dead;                  /* forgotten while pinned: the last unpin frees it */
	bool fd_forever;            /* no handle: the fd is never evicted */
	struct file_handle *handle; /* NULL if fd_forever */
	dev_t dev;
	ino_t ino;
	mode_t type;          /* S_IFMT bits */
	uint64_t nlookup;     /* kernel references; table lock */
	uint64_t file_id;     /* stable id for op records */
	/* the last epoch whose pre-write log covers a change of the object's
	 * data (as a file) / of its entries (as a directory); 0: none */
	_Atomic uint64_t plog_file;
	_Atomic uint64_t plog_dir;
	pthread_mutex_t lock; /* orders data ops on this object */
};

struct shim {
	struct fuse_session *se;
	char *dir; /* canonical absolute path */
	size_t dir_len;
	int proc_fd;  /* /proc/self/fd, O_PATH; opened by shim_run() (after any fork) */
	int mount_fd; /* the root, O_RDONLY: open_by_handle_at() refuses O_PATH fds */
	struct shim_inode root;
	atomic_bool read_only;
	/* changes between their read-only check and their submission to the
	 * engine (shim_mutating: a handover's drain waits for none) */
	atomic_int mutating;
	/* the pre-write log: its callback, the current epoch, and per epoch
	 * parity the changes between their first log call and submission */
	shim_prelog_fn prelog;
	void *prelog_ctx;
	_Atomic uint64_t epoch;
	atomic_int epoch_busy[2];
	bool mounted;
	bool signals;         /* libfuse signal handlers installed */
	atomic_bool stopping; /* shim_stop() called */
	unsigned conn_id;     /* /sys/fs/fuse/connections/<id> */
	bool debug;
	unsigned max_threads;
	shim_submit_fn submit;
	bool fsync_overlap;
	void *submit_ctx;
	double timeout_s; /* entry/attr cache timeout */

	pthread_mutex_t table_lock;
	struct shim_inode **buckets;
	size_t n_buckets;
	size_t n_inodes;
	uint64_t next_file_id;
	struct shim_inode *lru_head; /* most recently used cached fd */
	struct shim_inode *lru_tail;
	size_t n_cached_fds;
	size_t fd_cache_max;

	pthread_mutex_t ns_lock; /* serialises namespace ops + submit */

	pthread_mutex_t handles_lock; /* the two lists below */
	struct shim_fh *fhs;          /* open files */
	struct shim_dir *dirs;        /* open directories */

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
/* The object's O_PATH fd, pinned until shim_pins_release() (which the ops
 * table wrappers call when each handler returns). -errno on failure. */
int shim_fd(struct shim *s, struct shim_inode *in);
/* dfd/name is about to lose a link (unlink, rename over it): if we know the
 * object, keep its fd for life, since a file handle cannot reopen an
 * unlinked file that is still open. Called with ns_lock held. Returns the
 * object's file_id (0 when the shim does not know it) and in *last whether
 * this is its last name. */
uint64_t shim_inode_keep(struct shim *s, int dfd, const char *name, bool *last);
/* Release every pin taken by this thread. */
void shim_pins_release(void);

/* shim_ops.c: free handles the kernel never released (shim teardown). */
void shim_handles_free_all(struct shim *s);

/* shim_ops.c */
char *shim_rel_path(struct shim *s, struct shim_inode *dir, const char *name);

#endif
