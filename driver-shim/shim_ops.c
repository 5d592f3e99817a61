/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * shim_ops.c - the fuse_lowlevel_ops of the interception layer.
 *
 * FUSE worker threads run every function here. Each handler performs the
 * operation on the real file system through the O_PATH fds of the inode table
 * (never through paths of the mount, which the FUSE mount now covers), then,
 * for a successful mutation, builds an op record and submits it WITHOUT
 * replying: the reply is stored in the record and sent by shim_op_complete().
 *
 * Permission checks are the kernel's (mount option default_permissions, and
 * POSIX ACLs when the kernel offers FUSE_CAP_POSIX_ACL): the daemon acts as
 * root and gives new objects to the caller (uid, gid unless the parent is
 * setgid). The caller's umask is applied per worker thread (unshare(CLONE_FS))
 * so that default ACLs of the real file system work as on the raw directory.
 * Locks (flock, fcntl) are left to the kernel: every process sees the files
 * only through this mount, so local locking is exact.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "log.h"
#include "shim_int.h"
#include "util.h"

#define SHIM_CACHE_TIMEOUT_S 86400.0 /* every change passes through us */
#define SHIM_DIO_ALIGN       4096u
#define SHIM_WRITEBEHIND_MIN (256u * 1024u) /* write-behind for large writes */

enum reply_kind {
	R_ERR = 0, /* fuse_reply_err(err), 0 for success */
	R_ENTRY,
	R_CREATE,
	R_ATTR,
	R_WRITE,
	R_OPEN,
};

/* An op record plus its deferred reply. */
struct op_full {
	struct shim_op op;
	struct shim *s;
	fuse_req_t req;
	enum reply_kind kind;
	int err;
	struct fuse_entry_param e;
	struct fuse_file_info fi;
	struct shim_inode *in; /* R_ENTRY/R_CREATE: reference to drop if the reply fails */
	struct shim_fh *fh;    /* R_CREATE/R_OPEN: handle to close if the reply fails */
	size_t count;
	bool replied;     /* shim_op_reply() was called */
	bool entered;     /* counted in s->mutating until submitted (ro_enter) */
	bool ep_in;       /* counted in s->epoch_busy[ep & 1] until submitted */
	uint64_t ep;      /* the pre-write log's epoch of the change */
	atomic_int holds; /* 0, or parties that must finish before the reply (fsync) */
};

static void send_reply(struct op_full *o);
static void op_fail(struct op_full *o, int err);
struct shim_fh;
static void fh_free(struct shim *s, struct shim_fh *fh);

/* An open file. Every handle is on the shim's list so that handles the
 * kernel never released (unmounted while open) are freed with the shim. */
struct shim_fh {
	struct shim_fh *prev;
	struct shim_fh *next;
	int fd;
	int flags; /* open flags as the application gave them */
	bool writable;
};

/* An open directory (listed like files). */
struct shim_dir {
	struct shim_dir *prev;
	struct shim_dir *next;
	DIR *dp;
	off_t offset;
	struct dirent *entry;
};

static struct shim *
req_shim(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct shim_fh *
fh_of(const struct fuse_file_info *fi)
{
	struct shim_fh *fh = (struct shim_fh *)(uintptr_t)fi->fh;

	SHIM_HB_ACQUIRE(fh);
	return fh;
}

/* A copy of an open file's handle. Once a handler has replied, the kernel
 * may send RELEASE, which closes the fd and frees the handle; so a handler
 * calls fh_done() after its last use of the handle or its fd and before its
 * reply (only ThreadSanitizer needs to be told: see SHIM_HB_*). */
static struct shim_fh
fh_get(const struct fuse_file_info *fi)
{
	const struct shim_fh *fh = fh_of(fi);

	/* not the list links: other handles' open/release change those */
	return (struct shim_fh){ .fd = fh->fd, .flags = fh->flags, .writable = fh->writable };
}

static void
fh_done(const struct fuse_file_info *fi)
{
	if (fi != NULL)
		SHIM_HB_RELEASE((void *)(uintptr_t)fi->fh);
}

static double
cache_timeout(const struct shim *s)
{
	/* A read-only (secondary) tree changes underneath us: no caching. */
	return atomic_load(&s->read_only) ? 0.0 : SHIM_CACHE_TIMEOUT_S;
}

static bool
is_ro(const struct shim *s)
{
	return atomic_load(&s->read_only);
}

/* Begin a change: counted in s->mutating from before the read-only check
 * until the op is submitted (or dropped), so that a handover that made the
 * tree read-only can wait until every change that got past the check has
 * reached the engine. False (not counted): read-only. */
static bool
ro_enter(struct shim *s)
{
	atomic_fetch_add(&s->mutating, 1);
	if (!is_ro(s))
		return true;
	atomic_fetch_sub(&s->mutating, 1);
	return false;
}

static void
ro_leave(struct shim *s)
{
	atomic_fetch_sub(&s->mutating, 1);
}

int
shim_mutating(struct shim *s)
{
	return atomic_load(&s->mutating);
}

/* Count the change in its epoch from its first log call until it is
 * submitted, so that a checkpoint can wait for every change of an epoch
 * to reach the engine (shim_epoch_busy). */
static uint64_t
ep_enter(struct shim *s, struct op_full *o)
{
	while (!o->ep_in) {
		uint64_t e = atomic_load(&s->epoch);

		atomic_fetch_add(&s->epoch_busy[e & 1], 1);
		if (atomic_load(&s->epoch) == e) {
			o->ep = e;
			o->ep_in = true;
		} else {
			atomic_fetch_sub(&s->epoch_busy[e & 1], 1);
		}
	}
	return o->ep;
}

static void
ep_leave(struct shim *s, struct op_full *o)
{
	if (o->ep_in) {
		atomic_fetch_sub(&s->epoch_busy[o->ep & 1], 1);
		o->ep_in = false;
	}
}

static void
mark_epoch(_Atomic uint64_t *mark, uint64_t e)
{
	uint64_t old = atomic_load(mark);

	while (old < e && !atomic_compare_exchange_weak(mark, &old, e))
		;
}

/* An object with no name left (unlinked while open): nothing to log. */
static bool
is_unlinked(struct shim *s, struct shim_inode *in)
{
	struct stat st;
	int fd = shim_fd(s, in);

	return fd >= 0 && fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
	       st.st_nlink == 0;
}

/*
 * Before changing `in` (kind SHIM_PRELOG_*; in unused for ALL): have the
 * engine's durable log cover the change. A name logged in the current
 * epoch costs one atomic load. 0 or -errno (the change must not be made).
 */
static int
prelog(struct shim *s, struct op_full *o, struct shim_inode *in, unsigned kind)
{
	_Atomic uint64_t *mark;
	uint64_t e;
	char *path;
	int r;

	if (s->prelog == NULL)
		return 0;
	e = ep_enter(s, o);
	if (kind == SHIM_PRELOG_ALL)
		return s->prelog(s->prelog_ctx, e, NULL, kind);
	mark = kind == SHIM_PRELOG_DIR ? &in->plog_dir : &in->plog_file;
	if (atomic_load(mark) >= e)
		return 0;
	path = shim_rel_path(s, in, NULL);
	if (path == NULL && is_unlinked(s, in))
		return 0;
	r = s->prelog(s->prelog_ctx, e, path, path != NULL ? kind : SHIM_PRELOG_ALL);
	free(path);
	if (r == 0)
		mark_epoch(mark, e);
	return r;
}

/* A file or directory just created in a directory logged for this change
 * (SHIM_PRELOG_DIR): the log covers its data in this epoch too. */
static void
prelog_created(struct shim *s, struct op_full *o, struct shim_inode *in)
{
	if (s->prelog != NULL && o->ep_in && in != NULL)
		mark_epoch(&in->plog_file, o->ep);
}

/* Running out of descriptors breaks the application in confusing ways: say
 * so clearly (each O_PATH inode and open file costs one fd). */
static int
fd_error(int e)
{
	if (e == EMFILE || e == ENFILE)
		log_ratelimited(LOG_LVL_ERR, 10000,
		                "shim: out of file descriptors err=%s (raise LimitNOFILE / "
		                "fs.file-max; each cached inode and open file uses one)",
		                e == EMFILE ? "EMFILE" : "ENFILE");
	return e;
}

static void
proc_path(int fd, char *buf, size_t len)
{
	(void)snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* Pin the object's fd and name it by its /proc path (for the calls that have
 * no *at form taking an O_PATH fd: xattrs). */
static int
pin_proc_path(struct shim *s, struct shim_inode *in, char *buf, size_t len)
{
	int fd = shim_fd(s, in);

	if (fd < 0)
		return fd;
	proc_path(fd, buf, len);
	return 0;
}

char *
shim_rel_path(struct shim *s, struct shim_inode *dir, const char *name)
{
	char proc[40], buf[PATH_MAX + 1];
	const char *base = "";
	struct stat st;
	ssize_t n;
	char *out;
	if (dir != &s->root) {
		int fd = shim_fd(s, dir);

		if (fd < 0)
			return NULL;
		proc_path(fd, proc, sizeof(proc));
		n = readlink(proc, buf, sizeof(buf) - 1);
		if (n == -1)
			return NULL;
		buf[n] = '\0';
		if (n > 10 && strcmp(buf + n - 10, " (deleted)") == 0 &&
		    fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_nlink == 0)
			return NULL;
		if (strncmp(buf, s->dir, s->dir_len) != 0 || buf[s->dir_len] != '/')
			return NULL; /* outside the root: moved away or another mount */
		base = buf + s->dir_len + 1;
	}
	if (name == NULL)
		return strdup(base);
	if (base[0] == '\0')
		return strdup(name);
	if (asprintf(&out, "%s/%s", base, name) == -1)
		return NULL;
	return out;
}

/* A new object (create, mkdir, mknod, symlink): what it is, from the lookup
 * after creating it, with its exact times for the secondary to copy. */
static void
record_created(struct op_full *o)
{
	o->op.mode = o->e.attr.st_mode;
	o->op.uid = o->e.attr.st_uid;
	o->op.gid = o->e.attr.st_gid;
	o->op.rdev = o->e.attr.st_rdev;
	o->op.atime = o->e.attr.st_atim;
	o->op.mtime = o->e.attr.st_mtim;
	o->op.valid = SHIM_SET_ATIME | SHIM_SET_MTIME;
}

/* Namespace ops change their parent directories' mtimes: record them so the
 * secondary can copy them (only with an engine; one fstat per parent). */
static void
record_pmtime(struct shim *s, struct op_full *o, int dfd, int ndfd)
{
	struct stat st;

	if (s->submit == NULL)
		return;
	if (fstatat(dfd, "", &st, AT_EMPTY_PATH) == 0) {
		o->op.pmtime = st.st_mtim;
		o->op.valid |= SHIM_SET_PMTIME;
	}
	if (ndfd >= 0 && fstatat(ndfd, "", &st, AT_EMPTY_PATH) == 0) {
		o->op.pmtime2 = st.st_mtim;
		o->op.valid |= SHIM_SET_PMTIME2;
	}
}

/* Data ops change the file's mtime: record the exact value so the secondary
 * can set the same (only with an engine; one fstat). */
static void
record_mtime(struct op_full *o, int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0) {
		o->op.mtime = st.st_mtim;
		o->op.valid |= SHIM_SET_MTIME;
	}
}

static struct op_full *
op_new(struct shim *s, fuse_req_t req, enum shim_op_type type, struct shim_inode *in)
{
	struct op_full *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	o->s = s;
	o->req = req;
	o->op.type = type;
	o->op.file_id = in != NULL ? in->file_id : 0;
	return o;
}

/*
 * The common start of a mutation: refuse on a read-only tree, pin the fds of
 * up to two objects (a and b, NULL for none) and allocate the op record. On
 * failure the request has been answered and NULL is returned.
 */
static struct op_full *
mutation_begin(fuse_req_t req, enum shim_op_type type, struct shim_inode *in, struct shim_inode *a,
               int *afd, struct shim_inode *b, int *bfd)
{
	struct shim *s = req_shim(req);
	struct op_full *o;
	int r;

	if (!ro_enter(s)) {
		fuse_reply_err(req, EROFS);
		return NULL;
	}
	if (a != NULL && (r = *afd = shim_fd(s, a)) < 0)
		goto fail;
	if (b != NULL && (r = *bfd = shim_fd(s, b)) < 0)
		goto fail;
	o = op_new(s, req, type, in);
	if (o != NULL) {
		o->entered = true;
		return o;
	}
	r = -ENOMEM;
fail:
	ro_leave(s);
	fuse_reply_err(req, -r);
	return NULL;
}

static void
op_free(struct op_full *o);

/* The pre-write log refused the change: drop it, answer err. */
static void
op_refuse(struct op_full *o, int err)
{
	fuse_req_t req = o->req;

	op_free(o);
	fuse_reply_err(req, err);
}

static void
op_free(struct op_full *o)
{
	if (o->entered)
		ro_leave(o->s);
	ep_leave(o->s, o);
	free(o->op.path);
	free(o->op.path2);
	free(o->op.name);
	free(o->op.data);
	free(o);
}

/* Hand the op to the engine, then release the ordering lock `held`. The
 * engine is called with the lock held, so ops reach it in the order their
 * effects happened. An op the engine did not take (local mode, no peer) is
 * completed here once the lock is dropped: no lock is held across
 * fuse_reply_*(). */
static void
op_submit_unlock(struct shim *s, struct op_full *o, pthread_mutex_t *held)
{
	bool taken, entered = o->entered, ep_in = o->ep_in;
	uint64_t ep = o->ep;

	atomic_fetch_add_explicit(&s->st_ops, 1, memory_order_relaxed);
	o->entered = false; /* (o may be completed and freed once submitted) */
	o->ep_in = false;
	taken = s->submit != NULL && s->submit(s->submit_ctx, &o->op);
	if (entered)
		ro_leave(s);
	if (ep_in)
		atomic_fetch_sub(&s->epoch_busy[ep & 1], 1);
	pthread_mutex_unlock(held);
	if (!taken && o->op.refuse_err != 0)
		op_fail(o, o->op.refuse_err);
	else if (!taken)
		shim_op_complete(&o->op);
}

/* The local operation failed: release `held`, drop the op, answer err. */
static void
op_abort_unlock(struct op_full *o, pthread_mutex_t *held, int err)
{
	fuse_req_t req = o->req;

	pthread_mutex_unlock(held);
	op_free(o);
	fuse_reply_err(req, err);
}

static struct op_full *
full_of(struct shim_op *op)
{
	return (struct op_full *)(void *)((char *)op - offsetof(struct op_full, op));
}

void
shim_op_reply(struct shim_op *op)
{
	struct op_full *o = full_of(op);

	MR_BUG_ON(o->replied);
	send_reply(o);
	o->replied = true;
}

/* Drop one hold; true when the op may now be answered and freed. */
static bool
op_release(struct op_full *o)
{
	return atomic_load(&o->holds) == 0 || atomic_fetch_sub(&o->holds, 1) == 1;
}

static void
op_final(struct op_full *o)
{
	if (!o->replied)
		send_reply(o);
	op_free(o);
}

/* Answer err instead of the success prepared (releasing what a successful
 * reply would have handed to the kernel), then complete. */
static void
op_fail(struct op_full *o, int err)
{
	if (!o->replied) {
		switch (o->kind) {
		case R_ENTRY:
			if (o->in != NULL)
				shim_inode_unref(o->s, o->in, 1);
			break;
		case R_CREATE:
			shim_inode_unref(o->s, o->in, 1);
			(void)close(o->fh->fd);
			fh_free(o->s, o->fh);
			break;
		case R_OPEN:
			(void)close(o->fh->fd);
			fh_free(o->s, o->fh);
			break;
		case R_ERR:
		case R_ATTR:
		case R_WRITE:
			break;
		}
		o->kind = R_ERR;
		o->err = err;
	}
	shim_op_complete(&o->op);
}

void
shim_op_complete(struct shim_op *op)
{
	struct op_full *o = full_of(op);

	if (op_release(o))
		op_final(o);
}

static void
send_reply(struct op_full *o)
{
	switch (o->kind) {
	case R_ERR:
		fuse_reply_err(o->req, o->err);
		break;
	case R_ENTRY:
		if (fuse_reply_entry(o->req, &o->e) != 0 && o->in != NULL)
			shim_inode_unref(o->s, o->in, 1);
		break;
	case R_CREATE:
		if (fuse_reply_create(o->req, &o->e, &o->fi) != 0) {
			shim_inode_unref(o->s, o->in, 1);
			(void)close(o->fh->fd);
			fh_free(o->s, o->fh);
		}
		break;
	case R_ATTR:
		fuse_reply_attr(o->req, &o->e.attr, o->e.attr_timeout);
		break;
	case R_WRITE:
		fuse_reply_write(o->req, o->count);
		break;
	case R_OPEN:
		if (fuse_reply_open(o->req, &o->fi) != 0) {
			(void)close(o->fh->fd);
			fh_free(o->s, o->fh);
		}
		break;
	}
}

const char *
shim_op_name(enum shim_op_type t)
{
	static const char *const names[] = {
		[SHIM_OP_OPEN] = "open",         [SHIM_OP_CREATE] = "create",
		[SHIM_OP_MKNOD] = "mknod",       [SHIM_OP_MKDIR] = "mkdir",
		[SHIM_OP_SYMLINK] = "symlink",   [SHIM_OP_LINK] = "link",
		[SHIM_OP_UNLINK] = "unlink",     [SHIM_OP_RMDIR] = "rmdir",
		[SHIM_OP_RENAME] = "rename",     [SHIM_OP_SETATTR] = "setattr",
		[SHIM_OP_WRITE] = "write",       [SHIM_OP_FALLOCATE] = "fallocate",
		[SHIM_OP_SETXATTR] = "setxattr", [SHIM_OP_REMOVEXATTR] = "removexattr",
		[SHIM_OP_FSYNC] = "fsync",       [SHIM_OP_FLUSH] = "flush",
		[SHIM_OP_RELEASE] = "release",
	};

	if ((unsigned)t < ARRAY_SIZE(names) && names[t] != NULL)
		return names[t];
	return "?";
}

/* ---- helpers -------------------------------------------------------------- */

static int
do_lookup(struct shim *s, struct shim_inode *dir, const char *name, struct fuse_entry_param *e,
          struct shim_inode **out)
{
	struct shim_inode *in;
	int dfd, fd, r;

	memset(e, 0, sizeof(*e));
	dfd = shim_fd(s, dir);
	if (dfd < 0)
		return dfd;
	fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return -fd_error(errno);
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1) {
		r = -errno;
		(void)close(fd);
		return r;
	}
	in = shim_inode_get(s, fd, &e->attr);
	if (in == NULL)
		return -ENOMEM;
	e->ino = in == &s->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
	e->attr_timeout = cache_timeout(s);
	e->entry_timeout = cache_timeout(s);
	if (out != NULL)
		*out = in;
	return 0;
}

/* Apply the caller's umask in this worker thread (its fs_struct is private:
 * unshared on first use), so creation modes match the raw file system,
 * default ACLs included. */
static void
apply_umask(fuse_req_t req)
{
	static _Thread_local bool unshared;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (!unshared) {
		if (unshare(CLONE_FS) == -1)
			return; /* keep the process umask (0 for the daemon) */
		unshared = true;
	}
	(void)umask(ctx->umask);
}

/* Give a new object to the caller, as the kernel would have: the caller's
 * uid, and its gid unless the parent directory is setgid. chown clears the
 * set-id bits of non-directories, so they are put back. */
static int
give_to_caller(fuse_req_t req, int dfd, const char *name, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	uid_t uid = ctx->uid;
	gid_t gid = ctx->gid;
	struct stat pst;

	if (uid == geteuid() && gid == getegid())
		return 0; /* already ours; a setgid parent gave its group */
	if (fstatat(dfd, "", &pst, AT_EMPTY_PATH) == 0 && (pst.st_mode & S_ISGID))
		gid = (gid_t)-1;
	if (uid == geteuid() && gid == (gid_t)-1)
		return 0;
	if (fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	if (!S_ISDIR(mode) && !S_ISLNK(mode) && (mode & (S_ISUID | S_ISGID)) &&
	    fchmodat(dfd, name, mode & 07777, 0) == -1)
		return -errno;
	return 0;
}

/* ---- the operations ------------------------------------------------------- */

static void
sh_init(void *userdata, struct fuse_conn_info *conn)
{
	struct shim *s = userdata;

	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if ((conn->capable & FUSE_CAP_CACHE_SYMLINKS) && !is_ro(s))
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* write-through: a write returns only once the engine completed it */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* locks stay in the kernel (see the file comment) */
	conn->want &= ~(unsigned)(FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS);
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
}

static void
sh_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct shim *s = req_shim(req);
	struct fuse_entry_param e;
	struct shim_inode *in;
	int r;

	r = do_lookup(s, shim_inode_of(s, parent), name, &e, &in);
	if (r == -ENOENT) {
		memset(&e, 0, sizeof(e));
		e.entry_timeout = cache_timeout(s); /* negative entry */
		fuse_reply_entry(req, &e);
		return;
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	if (fuse_reply_entry(req, &e) != 0)
		shim_inode_unref(s, in, 1);
}

static void
sh_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct shim *s = req_shim(req);

	shim_inode_unref(s, shim_inode_of(s, ino), nlookup);
	fuse_reply_none(req);
}

static void
sh_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct shim *s = req_shim(req);
	size_t i;

	for (i = 0; i < count; i++)
		shim_inode_unref(s, shim_inode_of(s, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void
sh_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino);
	struct stat st;
	int r;
	if (fi != NULL) {
		r = fstat(fh_get(fi).fd, &st);
		fh_done(fi);
	} else {
		int fd = shim_fd(s, in);

		if (fd < 0) {
			fuse_reply_err(req, -fd);
			return;
		}
		r = fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	}
	if (r == -1) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_attr(req, &st, cache_timeout(s));
}

/* The setattr steps, in the order the kernel expects them. Stops at the first
 * failure; *done gets the SHIM_SET_* bits that took effect. */
static int
apply_setattr(struct shim_inode *in, int ifd, struct shim_fh *fh, const struct stat *attr,
              int valid, uint32_t *done)
{
	char proc[40];
	int r;

	proc_path(ifd, proc, sizeof(proc));
	*done = 0;
	if (valid & FUSE_SET_ATTR_MODE) {
		r = fh != NULL ? fchmod(fh->fd, attr->st_mode)
		               : fchmodat(AT_FDCWD, proc, attr->st_mode, 0);
		if (r == -1)
			return -errno;
		*done |= SHIM_SET_MODE;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(ifd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
			return -errno;
		*done |= (valid & FUSE_SET_ATTR_UID ? SHIM_SET_UID : 0) |
		         (valid & FUSE_SET_ATTR_GID ? SHIM_SET_GID : 0);
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		r = fh != NULL ? ftruncate(fh->fd, attr->st_size) : truncate(proc, attr->st_size);
		if (r == -1)
			return -errno;
		*done |= SHIM_SET_SIZE;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (fh != NULL)
			r = futimens(fh->fd, tv);
		else if (S_ISLNK(in->type))
			r = utimensat(ifd, "", tv, AT_EMPTY_PATH);
		else
			r = utimensat(AT_FDCWD, proc, tv, 0);
		if (r == -1)
			return -errno;
		*done |= (valid & FUSE_SET_ATTR_ATIME ? SHIM_SET_ATIME : 0) |
		         (valid & FUSE_SET_ATTR_MTIME ? SHIM_SET_MTIME : 0);
	}
	return 0;
}

static void
sh_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid, struct fuse_file_info *fi)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino);
	struct shim_fh fh_copy = fi != NULL ? fh_get(fi) : (struct shim_fh){ .fd = -1 };
	struct shim_fh *fh = fi != NULL ? &fh_copy : NULL;
	struct op_full *o;
	uint32_t done;
	int ifd = -1, r;

	if (fi != NULL)
		fh_done(fi); /* for the early replies below; again after the fd is used */
	o = mutation_begin(req, SHIM_OP_SETATTR, in, in, &ifd, NULL, NULL);
	if (o == NULL)
		return;
	if ((r = prelog(s, o, in, SHIM_PRELOG_FILE)) < 0) {
		op_refuse(o, -r);
		return;
	}
	pthread_mutex_lock(&in->lock);
	r = apply_setattr(in, ifd, fh, attr, valid, &done);
	fh_done(fi);
	if (done == 0) {
		/* nothing changed: an error, or only bits we need not act on */
		pthread_mutex_unlock(&in->lock);
		op_free(o);
		if (r < 0)
			fuse_reply_err(req, -r);
		else
			sh_getattr(req, ino, fi);
		return;
	}
	/* Record what the object now is (exact times even for UTIME_NOW). */
	if (fstatat(ifd, "", &o->e.attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1 && r == 0)
		r = -errno;
	/* the resulting mtime too (a truncate changes it): copied exactly */
	o->op.valid = done | SHIM_SET_MTIME;
	o->op.mode = o->e.attr.st_mode;
	o->op.uid = o->e.attr.st_uid;
	o->op.gid = o->e.attr.st_gid;
	o->op.size = (uint64_t)o->e.attr.st_size;
	o->op.atime = o->e.attr.st_atim;
	o->op.mtime = o->e.attr.st_mtim;
	o->op.path = shim_rel_path(s, in, NULL);
	if (r < 0) {
		o->kind = R_ERR;
		o->err = -r;
	} else {
		o->kind = R_ATTR;
		o->e.attr_timeout = cache_timeout(s);
	}
	op_submit_unlock(s, o, &in->lock);
}

static void
sh_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct shim *s = req_shim(req);
	char buf[PATH_MAX + 1];
	ssize_t n;
	int fd;

	fd = shim_fd(s, shim_inode_of(s, ino));
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	n = readlinkat(fd, "", buf, sizeof(buf));
	if (n == -1) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((size_t)n >= sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/* mknod, mkdir and symlink: create, give to the caller, look up, record. */
static void
make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev,
          const char *link)
{
	struct shim *s = req_shim(req);
	struct shim_inode *dir = shim_inode_of(s, parent), *in = NULL;
	enum shim_op_type type;
	struct op_full *o;
	int dfd = -1, r;

	type = link != NULL ? SHIM_OP_SYMLINK : S_ISDIR(mode) ? SHIM_OP_MKDIR : SHIM_OP_MKNOD;
	o = mutation_begin(req, type, NULL, dir, &dfd, NULL, NULL);
	if (o == NULL)
		return;
	if ((r = prelog(s, o, dir, SHIM_PRELOG_DIR)) < 0) {
		op_refuse(o, -r);
		return;
	}
	pthread_mutex_lock(&s->ns_lock);
	apply_umask(req);
	if (link != NULL)
		r = symlinkat(link, dfd, name);
	else if (S_ISDIR(mode))
		r = mkdirat(dfd, name, mode);
	else
		r = mknodat(dfd, name, mode, rdev);
	r = r == -1 ? -errno : 0;
	if (r == 0) {
		r = give_to_caller(req, dfd, name, link != NULL ? S_IFLNK : mode);
		if (r < 0)
			(void)unlinkat(dfd, name, S_ISDIR(mode) ? AT_REMOVEDIR : 0);
	}
	if (r == 0)
		r = do_lookup(s, dir, name, &o->e, &in);
	if (r < 0) {
		op_abort_unlock(o, &s->ns_lock, -r);
		return;
	}
	o->kind = R_ENTRY;
	o->in = in;
	prelog_created(s, o, in);
	o->op.file_id = in->file_id;
	o->op.path = shim_rel_path(s, dir, name);
	o->op.path2 = link != NULL ? strdup(link) : NULL;
	record_created(o);
	record_pmtime(s, o, dfd, -1);
	op_submit_unlock(s, o, &s->ns_lock);
}

static void
sh_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_node(req, parent, name, mode, rdev, NULL);
}

static void
sh_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, S_IFDIR | mode, 0, NULL);
}

static void
sh_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_node(req, parent, name, S_IFLNK | 0777, 0, link);
}

static void
sh_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino), *dir = shim_inode_of(s, newparent), *got;
	struct op_full *o;
	int ifd = -1, dfd = -1, r;

	o = mutation_begin(req, SHIM_OP_LINK, in, in, &ifd, dir, &dfd);
	if (o == NULL)
		return;
	/* a second name of an inode: the log cannot follow it */
	if ((r = prelog(s, o, NULL, SHIM_PRELOG_ALL)) < 0) {
		op_refuse(o, -r);
		return;
	}
	pthread_mutex_lock(&s->ns_lock);
	o->op.path2 = shim_rel_path(s, in, NULL); /* an existing name, before */
	r = linkat(ifd, "", dfd, newname, AT_EMPTY_PATH) == -1 ? -errno : 0;
	if (r == 0)
		r = do_lookup(s, dir, newname, &o->e, &got);
	if (r < 0) {
		op_abort_unlock(o, &s->ns_lock, -r);
		return;
	}
	o->kind = R_ENTRY;
	o->in = got;
	o->op.path = shim_rel_path(s, dir, newname);
	record_pmtime(s, o, dfd, -1);
	op_submit_unlock(s, o, &s->ns_lock);
}

static void
remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct shim *s = req_shim(req);
	struct shim_inode *dir = shim_inode_of(s, parent);
	struct op_full *o;
	int dfd = -1, r;

	o = mutation_begin(req, flags ? SHIM_OP_RMDIR : SHIM_OP_UNLINK, NULL, dir, &dfd, NULL,
	                   NULL);
	if (o == NULL)
		return;
	if ((r = prelog(s, o, dir, SHIM_PRELOG_DIR)) < 0) {
		op_refuse(o, -r);
		return;
	}
	pthread_mutex_lock(&s->ns_lock);
	if (!flags)
		o->op.victim_id = shim_inode_keep(s, dfd, name, &o->op.victim_last);
	if (unlinkat(dfd, name, flags) == -1) {
		int e = errno;

		op_abort_unlock(o, &s->ns_lock, e);
		return;
	}
	o->kind = R_ERR;
	o->op.path = shim_rel_path(s, dir, name);
	record_pmtime(s, o, dfd, -1);
	op_submit_unlock(s, o, &s->ns_lock);
}

static void
sh_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

static void
sh_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, AT_REMOVEDIR);
}

static void
sh_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
          const char *newname, unsigned int flags)
{
	struct shim *s = req_shim(req);
	struct shim_inode *dir = shim_inode_of(s, parent), *ndir = shim_inode_of(s, newparent);
	struct op_full *o;
	struct stat st;
	int dfd = -1, ndfd = -1, r;

	o = mutation_begin(req, SHIM_OP_RENAME, NULL, dir, &dfd, ndir, &ndfd);
	if (o == NULL)
		return;
	if ((r = prelog(s, o, dir, SHIM_PRELOG_DIR)) < 0 ||
	    (ndir != dir && (r = prelog(s, o, ndir, SHIM_PRELOG_DIR)) < 0)) {
		op_refuse(o, -r);
		return;
	}
	pthread_mutex_lock(&s->ns_lock);
	/* a directory moved renames everything below it: the log cannot
	 * name all that */
	if (s->prelog != NULL &&
	    ((fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) ||
	     ((flags & RENAME_EXCHANGE) &&
	      fstatat(ndfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))) &&
	    (r = prelog(s, o, NULL, SHIM_PRELOG_ALL)) < 0) {
		op_abort_unlock(o, &s->ns_lock, -r);
		return;
	}
	if (!(flags & RENAME_EXCHANGE))
		o->op.victim_id = shim_inode_keep(s, ndfd, newname, /* may be replaced */
		                                  &o->op.victim_last);
	if (syscall(SYS_renameat2, dfd, name, ndfd, newname, flags) == -1) {
		int e = errno;

		op_abort_unlock(o, &s->ns_lock, e);
		return;
	}
	o->kind = R_ERR;
	o->op.flags = flags;
	o->op.path = shim_rel_path(s, dir, name);
	o->op.path2 = shim_rel_path(s, ndir, newname);
	record_pmtime(s, o, dfd, ndfd);
	op_submit_unlock(s, o, &s->ns_lock);
}

static bool
open_writes(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static struct shim_fh *
fh_new(struct shim *s, int fd, int flags)
{
	struct shim_fh *fh = calloc(1, sizeof(*fh));

	if (fh == NULL)
		return NULL;
	fh->fd = fd;
	fh->flags = flags;
	fh->writable = open_writes(flags);
	pthread_mutex_lock(&s->handles_lock);
	fh->next = s->fhs;
	if (s->fhs != NULL)
		s->fhs->prev = fh;
	s->fhs = fh;
	pthread_mutex_unlock(&s->handles_lock);
	return fh;
}

/* Unlist and free a handle; its fd is the caller's business. */
static void
fh_free(struct shim *s, struct shim_fh *fh)
{
	pthread_mutex_lock(&s->handles_lock);
	if (fh->prev != NULL)
		fh->prev->next = fh->next;
	else
		s->fhs = fh->next;
	if (fh->next != NULL)
		fh->next->prev = fh->prev;
	pthread_mutex_unlock(&s->handles_lock);
	free(fh);
}

static void
dir_free(struct shim *s, struct shim_dir *d)
{
	pthread_mutex_lock(&s->handles_lock);
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		s->dirs = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&s->handles_lock);
	(void)closedir(d->dp);
	free(d);
}

void
shim_handles_free_all(struct shim *s)
{
	while (s->fhs != NULL) {
		(void)close(s->fhs->fd);
		fh_free(s, s->fhs);
	}
	while (s->dirs != NULL)
		dir_free(s, s->dirs);
}

static void
set_open_reply(struct shim *s, struct fuse_file_info *fi, struct shim_fh *fh)
{
	fi->fh = (uint64_t)(uintptr_t)fh;
	if (fh->flags & O_DIRECT)
		fi->direct_io = 1; /* no page cache, as O_DIRECT on the real fs */
	else
		fi->keep_cache = !is_ro(s); /* all writes pass through this mount */
	SHIM_HB_RELEASE(fh);                /* published before any reply carries it */
}

static void
sh_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino);
	struct op_full *o = NULL;
	struct shim_fh *fh;
	char name[24];
	int fd, flags, r;

	if (open_writes(fi->flags) && !ro_enter(s)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/* O_APPEND is the kernel's job: it sends the offset of the end. */
	flags = fi->flags & ~(O_NOFOLLOW | O_APPEND | O_CREAT | O_EXCL | O_NOCTTY);
	if (open_writes(fi->flags)) {
		o = op_new(s, req, SHIM_OP_OPEN, in);
		if (o == NULL) {
			ro_leave(s);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		o->entered = true;
		if ((fi->flags & O_TRUNC) && (r = prelog(s, o, in, SHIM_PRELOG_FILE)) < 0) {
			op_refuse(o, -r);
			return;
		}
		pthread_mutex_lock(&in->lock);
	}
	fd = shim_fd(s, in);
	if (fd >= 0) {
		(void)snprintf(name, sizeof(name), "%d", fd);
		fd = openat(s->proc_fd, name, flags | O_CLOEXEC);
	} else {
		errno = -fd;
		fd = -1;
	}
	fh = fd != -1 ? fh_new(s, fd, fi->flags) : NULL;
	if (fh == NULL) {
		int e = fd == -1 ? fd_error(errno) : ENOMEM;

		if (fd != -1)
			(void)close(fd);
		if (o != NULL) {
			pthread_mutex_unlock(&in->lock);
			op_free(o);
		}
		fuse_reply_err(req, e);
		return;
	}
	set_open_reply(s, fi, fh);
	if (o == NULL) {
		if (fuse_reply_open(req, fi) != 0) {
			(void)close(fd);
			fh_free(s, fh);
		}
		return;
	}
	o->kind = R_OPEN;
	o->fi = *fi;
	o->fh = fh;
	o->op.obj_dev = (uint64_t)in->dev;
	o->op.obj_ino = (uint64_t)in->ino;
	o->op.flags = (uint32_t)(fi->flags & (O_ACCMODE | O_TRUNC | O_APPEND | O_SYNC | O_DSYNC));
	o->op.path = shim_rel_path(s, in, NULL);
	op_submit_unlock(s, o, &in->lock);
}

static void
sh_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
          struct fuse_file_info *fi)
{
	struct shim *s = req_shim(req);
	struct shim_inode *dir = shim_inode_of(s, parent), *in = NULL;
	struct op_full *o;
	struct shim_fh *fh = NULL;
	int dfd = -1, fd, r;

	o = mutation_begin(req, SHIM_OP_CREATE, NULL, dir, &dfd, NULL, NULL);
	if (o == NULL)
		return;
	if ((r = prelog(s, o, dir, SHIM_PRELOG_DIR)) < 0) {
		op_refuse(o, -r);
		return;
	}
	pthread_mutex_lock(&s->ns_lock);
	apply_umask(req);
	fd = openat(dfd, name,
	            (fi->flags | O_CREAT | O_CLOEXEC) & ~(O_NOFOLLOW | O_APPEND | O_NOCTTY), mode);
	r = fd == -1 ? -fd_error(errno) : 0;
	if (r == 0)
		r = give_to_caller(req, dfd, name, S_IFREG | mode);
	if (r == 0)
		r = do_lookup(s, dir, name, &o->e, &in);
	if (r == 0) {
		fh = fh_new(s, fd, fi->flags);
		if (fh == NULL) {
			shim_inode_unref(s, in, 1);
			r = -ENOMEM;
		}
	}
	if (r < 0 || fh == NULL) {
		pthread_mutex_unlock(&s->ns_lock);
		if (fd != -1)
			(void)close(fd);
		op_free(o);
		fuse_reply_err(req, r < 0 ? -r : ENOMEM);
		return;
	}
	set_open_reply(s, fi, fh);
	o->kind = R_CREATE;
	o->in = in;
	prelog_created(s, o, in);
	o->fh = fh;
	o->fi = *fi;
	o->op.file_id = in->file_id;
	o->op.obj_dev = (uint64_t)in->dev;
	o->op.obj_ino = (uint64_t)in->ino;
	o->op.path = shim_rel_path(s, dir, name);
	o->op.flags = (uint32_t)(fi->flags &
	                         (O_ACCMODE | O_TRUNC | O_EXCL | O_APPEND | O_SYNC | O_DSYNC));
	record_created(o);
	record_pmtime(s, o, dfd, -1);
	op_submit_unlock(s, o, &s->ns_lock);
}

static void
sh_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct shim_fh fh = fh_get(fi);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	void *p;
	ssize_t n;

	(void)ino;
	if (fh.flags & O_DIRECT) {
		/* O_DIRECT needs an aligned buffer; libfuse's is not */
		if (posix_memalign(&p, SHIM_DIO_ALIGN, size ? size : 1) != 0) {
			fh_done(fi);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		n = pread(fh.fd, p, size, off);
		fh_done(fi);
		if (n == -1)
			fuse_reply_err(req, errno);
		else
			fuse_reply_buf(req, p, (size_t)n);
		free(p);
		return;
	}
#if defined(__SANITIZE_THREAD__)
	/* libfuse (not instrumented) would read fh.fd while replying, after the
	 * point where we can tell TSan we are done with it: copy instead. */
	p = malloc(size ? size : 1);
	if (p == NULL) {
		fh_done(fi);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = pread(fh.fd, p, size, off);
	fh_done(fi);
	if (n == -1)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, p, (size_t)n);
	free(p);
	(void)buf;
#else
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fh.fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
#endif
}

/*
 * write: with an engine, or for O_DIRECT, the data is first copied into an
 * aligned private buffer that the op record keeps (the engine sends it after
 * we return; O_DIRECT needs the alignment). In local mode it is written
 * straight from libfuse's buffer. (Splicing /dev/fuse -> file measured no
 * faster here, so there is one path.)
 */
static void
sh_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
         struct fuse_file_info *fi)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino);
	struct shim_fh fh = fh_get(fi);
	struct op_full *o;
	const void *src = buf;
	void *copy = NULL;
	ssize_t n;
	int e;

	if (!ro_enter(s)) {
		fh_done(fi);
		fuse_reply_err(req, EROFS);
		return;
	}
	o = op_new(s, req, SHIM_OP_WRITE, in);
	if (o == NULL) {
		ro_leave(s);
		fh_done(fi);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	o->entered = true;
	if ((e = prelog(s, o, in, SHIM_PRELOG_FILE)) < 0) {
		fh_done(fi);
		op_refuse(o, -e);
		return;
	}
	if (s->submit != NULL || (fh.flags & O_DIRECT)) {
		if (posix_memalign(&copy, SHIM_DIO_ALIGN, size ? size : 1) != 0) {
			fh_done(fi);
			op_free(o);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memcpy(copy, buf, size);
		src = copy;
	}
	pthread_mutex_lock(&in->lock);
	n = pwrite(fh.fd, src, size, off);
	e = n == -1 ? errno : 0;
	if (n >= (ssize_t)SHIM_WRITEBEHIND_MIN) {
		/* Streaming writes: start writeback now (asynchronously) so the disk
		 * works while the next requests cross FUSE, not all at fsync. */
		(void)sync_file_range(fh.fd, off, n, SYNC_FILE_RANGE_WRITE);
	}
	if (n >= 0 && s->submit != NULL)
		record_mtime(o, fh.fd);
	fh_done(fi);
	if (n == -1) {
		pthread_mutex_unlock(&in->lock);
		free(copy);
		op_free(o);
		fuse_reply_err(req, e);
		return;
	}
	atomic_fetch_add_explicit(&s->st_bytes, (uint64_t)n, memory_order_relaxed);
	o->kind = R_WRITE;
	o->count = (size_t)n;
	o->op.off = (uint64_t)off;
	o->op.len = (size_t)n;
	o->op.data = copy;
	op_submit_unlock(s, o, &in->lock);
}

/* fallocate, fsync, flush and release: a data-path op with a plain reply. */
static void
data_op(fuse_req_t req, fuse_ino_t ino, enum shim_op_type type, int fd, const void *hb, int mode,
        off_t off, off_t len, int datasync)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino);
	struct op_full *o;
	int r = 0;

	o = op_new(s, req, type, in);
	if (o == NULL) {
		if (hb != NULL)
			SHIM_HB_RELEASE(hb);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (type == SHIM_OP_FSYNC && s->fsync_overlap) {
		/* The record goes first: the peer makes its copy durable while we
		 * fsync ours. The reply waits for both (two holds) and carries the
		 * local result; ordering only needs the submit under the lock. */
		o->kind = R_ERR;
		o->op.flags = (uint32_t)datasync;
		atomic_store(&o->holds, 2);
		pthread_mutex_lock(&in->lock);
		op_submit_unlock(s, o, &in->lock);
		r = datasync ? fdatasync(fd) : fsync(fd);
		if (r == -1)
			o->err = errno;
		if (hb != NULL)
			SHIM_HB_RELEASE(hb);
		if (op_release(o))
			op_final(o);
		return;
	}
	if (type == SHIM_OP_FALLOCATE && (r = prelog(s, o, in, SHIM_PRELOG_FILE)) < 0) {
		if (hb != NULL)
			SHIM_HB_RELEASE(hb);
		op_refuse(o, -r);
		return;
	}
	pthread_mutex_lock(&in->lock);
	switch (type) {
	case SHIM_OP_FALLOCATE:
		r = fallocate(fd, mode, off, len);
		if (r == 0 && s->submit != NULL)
			record_mtime(o, fd);
		break;
	case SHIM_OP_FSYNC:
		r = datasync ? fdatasync(fd) : fsync(fd);
		break;
	case SHIM_OP_RELEASE:
		r = close(fd);
		if (r == -1 && errno == EINTR)
			r = 0;
		break;
	default:
		break;
	}
	if (hb != NULL)
		SHIM_HB_RELEASE(hb); /* done with the handle's fd (see fh_done) */
	if (r == -1) {
		int e = errno;

		op_abort_unlock(o, &in->lock, e);
		return;
	}
	o->kind = R_ERR;
	o->op.flags = type == SHIM_OP_FALLOCATE ? (uint32_t)mode : (uint32_t)datasync;
	o->op.off = (uint64_t)off;
	o->op.size = (uint64_t)len;
	op_submit_unlock(s, o, &in->lock);
}

static void
sh_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
             struct fuse_file_info *fi)
{
	if (is_ro(req_shim(req))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	data_op(req, ino, SHIM_OP_FALLOCATE, fh_get(fi).fd, (void *)(uintptr_t)fi->fh, mode, off,
	        len, 0);
}

static void
sh_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	data_op(req, ino, SHIM_OP_FSYNC, fh_get(fi).fd, (void *)(uintptr_t)fi->fh, 0, 0, 0,
	        datasync);
}

static void
sh_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (!fh_get(fi).writable) {
		fh_done(fi);
		fuse_reply_err(req, 0);
		return;
	}
	data_op(req, ino, SHIM_OP_FLUSH, fh_get(fi).fd, (void *)(uintptr_t)fi->fh, 0, 0, 0, 0);
}

static void
sh_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct shim_fh *fh = fh_of(fi); /* acquires every use published before */
	int fd = fh->fd;
	bool writable = fh->writable;

	fh_free(req_shim(req), fh);
	if (!writable) {
		(void)close(fd);
		fuse_reply_err(req, 0);
		return;
	}
	data_op(req, ino, SHIM_OP_RELEASE, fd, NULL, 0, 0, 0, 0);
}

static void
sh_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	off_t r;

	(void)ino;
	r = lseek(fh_get(fi).fd, off, whence);
	fh_done(fi);
	if (r == -1)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

static void
sh_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct shim *s = req_shim(req);
	struct statvfs sv;
	int fd = shim_fd(s, shim_inode_of(s, ino));

	if (fd < 0)
		fuse_reply_err(req, -fd);
	else if (fstatvfs(fd, &sv) == -1)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- directories ---------------------------------------------------------- */

static void
sh_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct shim *s = req_shim(req);
	struct shim_dir *d;
	int fd;

	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = shim_fd(s, shim_inode_of(s, ino));
	if (fd >= 0) {
		fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		errno = -fd;
		fd = -1;
	}
	if (fd == -1 || (d->dp = fdopendir(fd)) == NULL) {
		int e = fd_error(errno);

		if (fd != -1)
			(void)close(fd);
		free(d);
		fuse_reply_err(req, e);
		return;
	}
	pthread_mutex_lock(&s->handles_lock);
	d->next = s->dirs;
	if (s->dirs != NULL)
		s->dirs->prev = d;
	s->dirs = d;
	pthread_mutex_unlock(&s->handles_lock);
	fi->fh = (uint64_t)(uintptr_t)d;
	SHIM_HB_RELEASE(d);
	fi->cache_readdir = !is_ro(s);
	fi->keep_cache = !is_ro(s);
	if (fuse_reply_open(req, fi) != 0)
		dir_free(s, d);
}

static bool
is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void
do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info *fi,
           bool plus)
{
	struct shim *s = req_shim(req);
	struct shim_dir *d = (struct shim_dir *)(uintptr_t)fi->fh;
	struct shim_inode *dir = shim_inode_of(s, ino);

	SHIM_HB_ACQUIRE(d);
	size_t rem = size;
	char *buf, *p;
	int err = 0;

	buf = calloc(1, size ? size : 1);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	if (offset != d->offset) {
		seekdir(d->dp, offset);
		d->entry = NULL;
		d->offset = offset;
	}
	for (;;) {
		struct fuse_entry_param e;
		struct shim_inode *in = NULL;
		const char *name;
		off_t nextoff;
		size_t entsize;

		if (d->entry == NULL) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (d->entry == NULL) {
				err = errno;
				break;
			}
		}
		nextoff = d->entry->d_off;
		name = d->entry->d_name;
		if (plus && !is_dot_or_dotdot(name)) {
			int r = do_lookup(s, dir, name, &e, &in);

			if (r == -ENOENT) { /* removed since readdir saw it */
				d->entry = NULL;
				d->offset = nextoff;
				continue;
			}
			if (r < 0) {
				err = -r;
				break;
			}
			entsize = fuse_add_direntry_plus(req, p, rem, name, &e, nextoff);
			if (entsize > rem) {
				shim_inode_unref(s, in, 1);
				break;
			}
		} else if (plus) {
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = d->entry->d_ino;
			e.attr.st_mode = (mode_t)d->entry->d_type << 12;
			entsize = fuse_add_direntry_plus(req, p, rem, name, &e, nextoff);
			if (entsize > rem)
				break;
		} else {
			struct stat st = {
				.st_ino = d->entry->d_ino,
				.st_mode = (mode_t)d->entry->d_type << 12,
			};

			entsize = fuse_add_direntry(req, p, rem, name, &st, nextoff);
			if (entsize > rem)
				break;
		}
		p += entsize;
		rem -= entsize;
		d->entry = NULL;
		d->offset = nextoff;
	}
	SHIM_HB_RELEASE(d); /* last use of d before the reply (see fh_get) */
	if (err != 0 && p == buf)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void
sh_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void
sh_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void
sh_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct shim_dir *d = (struct shim_dir *)(uintptr_t)fi->fh;

	(void)ino;
	SHIM_HB_ACQUIRE(d);
	dir_free(req_shim(req), d);
	fuse_reply_err(req, 0);
}

static void
sh_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct shim_dir *d = (struct shim_dir *)(uintptr_t)fi->fh;
	int fd;

	SHIM_HB_ACQUIRE(d);
	fd = dirfd(d->dp);
	data_op(req, ino, SHIM_OP_FSYNC, fd, d, 0, 0, 0, datasync);
}

/* ---- extended attributes -------------------------------------------------- */

static void
sh_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
            int flags)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino);
	struct op_full *o;
	char proc[40];
	int r;

	if (!ro_enter(s)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (S_ISLNK(in->type)) {
		ro_leave(s);
		fuse_reply_err(req, EPERM); /* as the VFS answers for user.* */
		return;
	}
	o = op_new(s, req, SHIM_OP_SETXATTR, in);
	if (o != NULL)
		o->entered = true;
	else
		ro_leave(s);
	if (o == NULL || (o->op.name = strdup(name)) == NULL ||
	    (o->op.data = malloc(size ? size : 1)) == NULL) {
		if (o != NULL)
			op_free(o);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(o->op.data, value, size);
	o->op.len = size;
	o->op.flags = (uint32_t)flags;
	if (pin_proc_path(s, in, proc, sizeof(proc)) < 0) {
		op_free(o);
		fuse_reply_err(req, EBADF);
		return;
	}
	if ((r = prelog(s, o, in, SHIM_PRELOG_FILE)) < 0) {
		op_refuse(o, -r);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if (setxattr(proc, name, value, size, flags) == -1) {
		int e = errno;

		op_abort_unlock(o, &in->lock, e);
		return;
	}
	o->kind = R_ERR;
	o->op.path = shim_rel_path(s, in, NULL);
	op_submit_unlock(s, o, &in->lock);
}

static void
sh_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino);
	char proc[40], *buf = NULL;
	ssize_t n;

	if (S_ISLNK(in->type)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (pin_proc_path(s, in, proc, sizeof(proc)) < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (size == 0) {
		n = getxattr(proc, name, NULL, 0);
		if (n == -1)
			fuse_reply_err(req, errno);
		else
			fuse_reply_xattr(req, (size_t)n);
		return;
	}
	buf = malloc(size);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = getxattr(proc, name, buf, size);
	if (n == -1)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* Drop the names a caller without CAP_SYS_ADMIN may not see (trusted.*), as
 * the raw file system does: we list them as root. Returns the new length. */
static size_t
filter_xattr_names(char *buf, size_t len)
{
	size_t in = 0, out = 0;

	while (in < len) {
		size_t n = strnlen(buf + in, len - in) + 1;

		if (strncmp(buf + in, "trusted.", 8) != 0) {
			memmove(buf + out, buf + in, n);
			out += n;
		}
		in += n;
	}
	return out;
}

static void
sh_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino);
	bool privileged = fuse_req_ctx(req)->uid == 0;
	char proc[40], *buf = NULL;
	ssize_t n, cap;

	if (S_ISLNK(in->type)) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (pin_proc_path(s, in, proc, sizeof(proc)) < 0) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (privileged && size == 0) {
		n = listxattr(proc, NULL, 0);
		if (n == -1)
			fuse_reply_err(req, errno);
		else
			fuse_reply_xattr(req, (size_t)n);
		return;
	}
	/* unprivileged callers: read the whole list to filter it first */
	cap = privileged ? (ssize_t)size : listxattr(proc, NULL, 0);
	if (cap == -1) {
		fuse_reply_err(req, errno);
		return;
	}
	buf = malloc(cap > 0 ? (size_t)cap : 1);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = listxattr(proc, buf, (size_t)cap);
	if (n == -1) {
		fuse_reply_err(req, errno);
	} else {
		if (!privileged)
			n = (ssize_t)filter_xattr_names(buf, (size_t)n);
		if (size == 0)
			fuse_reply_xattr(req, (size_t)n);
		else if ((size_t)n > size)
			fuse_reply_err(req, ERANGE);
		else
			fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void
sh_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct shim *s = req_shim(req);
	struct shim_inode *in = shim_inode_of(s, ino);
	struct op_full *o;
	char proc[40];
	int r;

	if (!ro_enter(s)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (S_ISLNK(in->type)) {
		ro_leave(s);
		fuse_reply_err(req, EPERM);
		return;
	}
	o = op_new(s, req, SHIM_OP_REMOVEXATTR, in);
	if (o != NULL)
		o->entered = true;
	else
		ro_leave(s);
	if (o == NULL || (o->op.name = strdup(name)) == NULL) {
		if (o != NULL)
			op_free(o);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (pin_proc_path(s, in, proc, sizeof(proc)) < 0) {
		op_free(o);
		fuse_reply_err(req, EBADF);
		return;
	}
	if ((r = prelog(s, o, in, SHIM_PRELOG_FILE)) < 0) {
		op_refuse(o, -r);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if (removexattr(proc, name) == -1) {
		int e = errno;

		op_abort_unlock(o, &in->lock, e);
		return;
	}
	o->kind = R_ERR;
	o->op.path = shim_rel_path(s, in, NULL);
	op_submit_unlock(s, o, &in->lock);
}

/*
 * The ops table points at these wrappers: each runs the handler, then drops
 * the fd pins the handler took (shim_fd()).
 */
#define WRAP(op, params, args)                                                                     \
	static void w_##op params                                                                  \
	{                                                                                          \
		sh_##op args;                                                                      \
		shim_pins_release();                                                               \
	}
#define WRAP_FI WRAP

WRAP(lookup, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
WRAP_FI(getattr, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi), (req, i, fi))
WRAP_FI(setattr, (fuse_req_t req, fuse_ino_t i, struct stat *a, int v, struct fuse_file_info *fi),
        (req, i, a, v, fi))
WRAP(readlink, (fuse_req_t req, fuse_ino_t i), (req, i))
WRAP(mknod, (fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d), (req, p, n, m, d))
WRAP(mkdir, (fuse_req_t req, fuse_ino_t p, const char *n, mode_t m), (req, p, n, m))
WRAP(symlink, (fuse_req_t req, const char *l, fuse_ino_t p, const char *n), (req, l, p, n))
WRAP(link, (fuse_req_t req, fuse_ino_t i, fuse_ino_t p, const char *n), (req, i, p, n))
WRAP(unlink, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
WRAP(rmdir, (fuse_req_t req, fuse_ino_t p, const char *n), (req, p, n))
WRAP(rename,
     (fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn, unsigned int f),
     (req, p, n, np, nn, f))
WRAP_FI(open, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi), (req, i, fi))
WRAP_FI(create, (fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *fi),
        (req, p, n, m, fi))
WRAP_FI(read, (fuse_req_t req, fuse_ino_t i, size_t sz, off_t o, struct fuse_file_info *fi),
        (req, i, sz, o, fi))
WRAP_FI(write,
        (fuse_req_t req, fuse_ino_t i, const char *b, size_t sz, off_t o,
         struct fuse_file_info *fi),
        (req, i, b, sz, o, fi))
WRAP_FI(flush, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi), (req, i, fi))
WRAP_FI(fsync, (fuse_req_t req, fuse_ino_t i, int d, struct fuse_file_info *fi), (req, i, d, fi))
WRAP_FI(fallocate,
        (fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l, struct fuse_file_info *fi),
        (req, i, m, o, l, fi))
WRAP_FI(lseek, (fuse_req_t req, fuse_ino_t i, off_t o, int w, struct fuse_file_info *fi),
        (req, i, o, w, fi))
WRAP(statfs, (fuse_req_t req, fuse_ino_t i), (req, i))
WRAP_FI(opendir, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi), (req, i, fi))
WRAP_FI(readdir, (fuse_req_t req, fuse_ino_t i, size_t sz, off_t o, struct fuse_file_info *fi),
        (req, i, sz, o, fi))
WRAP_FI(readdirplus, (fuse_req_t req, fuse_ino_t i, size_t sz, off_t o, struct fuse_file_info *fi),
        (req, i, sz, o, fi))
WRAP_FI(fsyncdir, (fuse_req_t req, fuse_ino_t i, int d, struct fuse_file_info *fi), (req, i, d, fi))
WRAP(setxattr, (fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t sz, int f),
     (req, i, n, v, sz, f))
WRAP(getxattr, (fuse_req_t req, fuse_ino_t i, const char *n, size_t sz), (req, i, n, sz))
WRAP(listxattr, (fuse_req_t req, fuse_ino_t i, size_t sz), (req, i, sz))
WRAP(removexattr, (fuse_req_t req, fuse_ino_t i, const char *n), (req, i, n))

const struct fuse_lowlevel_ops shim_ll_ops = {
	.init = sh_init,
	.lookup = w_lookup,
	.forget = sh_forget,
	.forget_multi = sh_forget_multi,
	.getattr = w_getattr,
	.setattr = w_setattr,
	.readlink = w_readlink,
	.mknod = w_mknod,
	.mkdir = w_mkdir,
	.symlink = w_symlink,
	.link = w_link,
	.unlink = w_unlink,
	.rmdir = w_rmdir,
	.rename = w_rename,
	.open = w_open,
	.create = w_create,
	.read = w_read,
	.write = w_write,
	.flush = w_flush,
	.release = sh_release,
	.fsync = w_fsync,
	.fallocate = w_fallocate,
	.lseek = w_lseek,
	.statfs = w_statfs,
	.opendir = w_opendir,
	.readdir = w_readdir,
	.readdirplus = w_readdirplus,
	.releasedir = sh_releasedir,
	.fsyncdir = w_fsyncdir,
	.setxattr = w_setxattr,
	.getxattr = w_getxattr,
	.listxattr = w_listxattr,
	.removexattr = w_removexattr,
};
