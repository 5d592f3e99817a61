/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * shim.h - the write-interception layer: a FUSE low-level passthrough mounted
 * over the directory it protects ("mount over self").
 *
 * shim_new() opens the real directory first, then mounts a FUSE file system on
 * the same path, so applications keep their paths and every real I/O is done
 * relative to the directory fd opened before the mount.
 *
 * Every mutating request is executed on the real file system by a FUSE worker
 * thread; when it succeeds, the worker builds a struct shim_op (with a copy of
 * the data) and hands it to the engine through the submit callback, WITHOUT
 * replying to the kernel. The application's system call returns only when the
 * engine calls shim_op_complete(), from any thread. In local mode (no submit
 * callback) the op completes at once. Failed operations are answered with
 * their errno at once and produce no op.
 *
 * Ordering: ops are submitted in the order their effects happened on the real
 * file system for every pair that could conflict: namespace ops (create, mkdir,
 * unlink, rename, link...) are serialised by one namespace lock, data ops on a
 * file by that file's lock, both held across "do locally + submit".
 *
 * Threads: shim_new()/shim_run()/shim_free() from the owner's thread; the
 * submit callback runs on FUSE worker threads (it must not block for long
 * and must not call back into the shim except shim_op_complete()).
 */
#ifndef MR_SHIM_H
#define MR_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

enum shim_op_type {
	/* a file opened for writing: binds file_id to path; flags: the access
	 * mode and O_TRUNC, O_APPEND, O_SYNC, O_DSYNC as the application gave them */
	SHIM_OP_OPEN = 1,
	SHIM_OP_CREATE,  /* regular file created (and opened): path, mode, uid, gid */
	SHIM_OP_MKNOD,   /* FIFO, socket or device node: path, mode, rdev, uid, gid */
	SHIM_OP_MKDIR,   /* path, mode, uid, gid */
	SHIM_OP_SYMLINK, /* path = the new link, path2 = its target (verbatim), uid, gid */
	SHIM_OP_LINK,    /* hard link: path = new name, path2 = an existing name of file_id */
	SHIM_OP_UNLINK,  /* path */
	SHIM_OP_RMDIR,   /* path */
	SHIM_OP_RENAME,  /* path -> path2, flags = RENAME_NOREPLACE | RENAME_EXCHANGE */
	SHIM_OP_SETATTR, /* file_id (+ path): valid = SHIM_SET_* mask, mode/uid/gid/size/atime/mtime */
	SHIM_OP_WRITE,     /* file_id, off, data/len */
	SHIM_OP_FALLOCATE, /* file_id, flags = fallocate mode, off, len */
	SHIM_OP_SETXATTR, /* file_id (+ path), name, data/len = value, flags = XATTR_CREATE|XATTR_REPLACE */
	SHIM_OP_REMOVEXATTR, /* file_id (+ path), name */
	SHIM_OP_FSYNC,       /* file_id, flags = 1 for fdatasync; also for directories */
	SHIM_OP_FLUSH,       /* file_id: close() of one descriptor */
	SHIM_OP_RELEASE,     /* file_id: last close of an open file */
};

/* SHIM_OP_SETATTR valid mask (what changed). */
#define SHIM_SET_MODE    (1u << 0)
#define SHIM_SET_UID     (1u << 1)
#define SHIM_SET_GID     (1u << 2)
#define SHIM_SET_SIZE    (1u << 3)
#define SHIM_SET_ATIME   (1u << 4) /* atime holds the time, or tv_nsec UTIME_NOW */
#define SHIM_SET_MTIME   (1u << 5)
#define SHIM_SET_PMTIME  (1u << 6) /* namespace ops: pmtime = the parent's new mtime */
#define SHIM_SET_PMTIME2 (1u << 7) /* RENAME: pmtime2 = the new parent's new mtime */

struct shim;

/*
 * One intercepted mutation. Built by a FUSE worker, owned by the engine from
 * submit until shim_op_complete(), which replies to the kernel and frees it.
 *
 * file_id: a stable id of the object, assigned by the shim when it first sees
 * the object (by dev+inode) and kept while the kernel references it: it
 * survives renames and stays valid for a file unlinked while open. Namespace
 * ops carry paths relative to the replicated root ("a/b.txt", never leading
 * '/', never ".." components); path is NULL when it cannot be known (for
 * example a data op on a file already unlinked): the engine then relies on
 * file_id alone, which an earlier SHIM_OP_OPEN/CREATE bound to a path.
 */
struct shim_op {
	enum shim_op_type type;
	uint64_t file_id;
	/* OPEN and CREATE: the file's device and inode in the real directory,
	 * so that the engine can find an open file again by another of its
	 * names (0, 0: not known) */
	uint64_t obj_dev;
	uint64_t obj_ino;
	char *path;
	char *path2;
	uint32_t flags;
	uint32_t valid; /* SHIM_OP_SETATTR */
	mode_t mode;    /* full st_mode (type bits included) for creations */
	uid_t uid;
	gid_t gid;
	dev_t rdev;
	uint64_t off;
	uint64_t size; /* SHIM_SET_SIZE / fallocate length */
	struct timespec atime;
	struct timespec mtime;
	struct timespec pmtime; /* see SHIM_SET_PMTIME */
	struct timespec pmtime2;
	/* UNLINK, and RENAME without RENAME_EXCHANGE: the file whose name went
	 * away (unlinked, or replaced by the rename), 0 when there was none or
	 * the shim never saw it (then it cannot be open); victim_last: that was
	 * its last name, so it lives on only while open. */
	uint64_t victim_id;
	bool victim_last;
	char *name; /* xattr name */
	void *data; /* write data or xattr value (a private copy) */
	size_t len;
	/* Set by an engine that returns false from submit to make the op fail
	 * with this errno instead of succeeding (a handover froze the engine:
	 * the change took effect here but will never reach the peer, so the
	 * application must not be told it succeeded). 0: complete normally. */
	int refuse_err;
	/* The shim allocates each op inside a larger private struct that holds
	 * the deferred reply; never allocate or copy a struct shim_op yourself. */
};

/* Hand an op to the engine. Return true if the engine took it (it will call
 * shim_op_complete() later, from any thread), false if it did not (no peer:
 * the shim completes the op itself once its locks are released, with the
 * error op->refuse_err if the engine set it). */
typedef bool (*shim_submit_fn)(void *ctx, struct shim_op *op);

/* What a change is about to touch, for the engine's pre-write log. */
#define SHIM_PRELOG_FILE 1u /* path's data or metadata */
#define SHIM_PRELOG_DIR  2u /* the entries of directory path */
#define SHIM_PRELOG_ALL  4u /* something it cannot name (path NULL) */

/* Called by a FUSE worker BEFORE it changes the real tree: return once the
 * engine's durable log covers the change (daemon/plog.h). epoch is the
 * shim's epoch when the change began (shim_set_epoch). 0, or -errno: the
 * change is not made and the application gets that error. */
typedef int (*shim_prelog_fn)(void *ctx, uint64_t epoch, const char *path, unsigned kind);

struct shim_config {
	const char *dir;       /* directory to protect; must exist */
	bool read_only;        /* every mutation fails with EROFS */
	bool debug;            /* libfuse debug output on stderr */
	unsigned max_threads;  /* FUSE worker threads; 0 = default (16) */
	shim_submit_fn submit; /* NULL: local mode, ops complete at once */
	/* fsync: hand the record to the engine before the local fsync, so both
	 * copies are made durable at the same time; the call returns when both
	 * are done. Only for engines that complete an op after the peer has it
	 * (never with early replies: shim_op_reply() is not used for them). */
	bool fsync_overlap;
	void *submit_ctx;
	shim_prelog_fn prelog; /* NULL: no pre-write log */
	void *prelog_ctx;
	uint64_t epoch; /* the first epoch (>= 1) */
};

/*
 * Open cfg->dir, create the FUSE session and mount it over cfg->dir.
 * Returns 0 and *out, or a negative errno with a one-line reason in err
 * (for example: no /dev/fuse, DIR missing, DIR already mounted, not root).
 */
int shim_new(const struct shim_config *cfg, struct shim **out, char *err, size_t err_len);

/* Serve requests until the file system is unmounted or shim_exit() is called
 * (or, with shim_set_signal_handlers(), SIGTERM/SIGINT/SIGHUP arrive).
 * Blocks the calling thread. Returns 0 or -errno. */
int shim_run(struct shim *s);

/* Install libfuse's handlers so SIGTERM/SIGINT/SIGHUP end shim_run(). */
int shim_set_signal_handlers(struct shim *s);

/* Ask shim_run() to return at its next request. Async-signal-safe. */
void shim_exit(struct shim *s);

/* End shim_run() now, from another thread: lazily unmount DIR and abort the
 * FUSE connection (processes still using files under DIR get ENOTCONN; the
 * real files are untouched). Call shim_free() after shim_run() returned. */
void shim_stop(struct shim *s);

/* Switch between read-only (secondary: every mutation fails with EROFS) and
 * read-write. Any thread. Does not affect requests already being served. */
void shim_set_read_only(struct shim *s, bool read_only);

/* Changes past their read-only check and not yet handed to the engine. After
 * shim_set_read_only(s, true), 0 means every change that will ever happen
 * on this mount has been submitted. Any thread. */
int shim_mutating(struct shim *s);

/* Epochs of the pre-write log: changes that begin from now on belong to
 * epoch (which only grows), and shim_epoch_busy() counts the changes of an
 * epoch that logged something and have not reached the engine yet (0: every
 * change of that epoch has been submitted, or dropped). Only the current
 * and the previous epoch are counted. */
void shim_set_epoch(struct shim *s, uint64_t epoch);
int shim_epoch_busy(struct shim *s, uint64_t epoch);

/* Hold (true) or let go of (false) the lock under which the shim changes a
 * name in the real directory and hands the change to the engine: while it is
 * held, every name there is where the op stream says. Not from a FUSE worker;
 * the engine's submit must not wait for the holder. */
void shim_ns_hold(struct shim *s, bool hold);

/* Detach our FUSE mount on path if its daemon died (it answers ENOTCONN), so
 * that the directory under it can be reached and mounted again. Any thread. */
void shim_clear_dead_mount(const char *path);

/* Unmount (lazily, if busy) and free. Accepts NULL. */
void shim_free(struct shim *s);

/* Complete an op: send the deferred reply to the kernel (unless
 * shim_op_reply() already did) and free the op. Any thread; exactly once per
 * op the engine took. */
void shim_op_complete(struct shim_op *op);

/* Send the deferred reply now but keep the op (async mode: the application
 * goes on while the record waits to be sent). At most once per op; the op
 * must still be completed with shim_op_complete(), which then only frees it. */
void shim_op_reply(struct shim_op *op);

/* Name of an op type, for logs ("write", "rename"...). */
const char *shim_op_name(enum shim_op_type t);

/* Statistics (any thread, approximate). */
struct shim_stats {
	uint64_t ops_submitted;
	uint64_t bytes_written;
	uint64_t inodes;
};
void shim_get_stats(struct shim *s, struct shim_stats *st);

#endif
