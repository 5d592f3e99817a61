/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * apply.c - applies the primary's op records on the secondary (see apply.h).
 *
 * The loop thread validates and copies each received op (apply_push) onto a
 * queue; one apply thread takes them in order, performs each on the real
 * directory and publishes the last applied sequence number, which the loop
 * thread acknowledges (uv_async). The file-id map (file id -> open fd) belongs
 * to the apply thread alone. Memory is bounded by the primary's in-flight
 * ceiling: it never sends more than that unacknowledged.
 */
#include "apply.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include "dio.h"
#include "err.h"
#include "log.h"
#include "shim.h"
#include "util.h"

#define APPLY_MAP_MIN    1024u
#define APPLY_INLINE_MAX (64u * 1024u) /* larger writes go to the apply thread */

struct apply_rec {
	struct apply_rec *next;
	void *frame;        /* owned, or NULL: the received frame op.data lies in */
	struct proto_op op; /* strings point into buf; data into buf or frame */
	char buf[];
};

static void
rec_free(struct apply_rec *rec)
{
	free(rec->frame);
	free(rec);
}

/* Block hashes answering one RS_HASHREQ (apply thread -> loop thread). */
struct apply_hashes {
	struct apply_hashes *next;
	uint64_t req_seq;
	uint32_t block_size;
	uint32_t n;
	uint8_t hashes[]; /* n * PROTO_HASH_LEN */
};

struct fmap_ent {
	uint64_t key; /* 0 = empty */
	int fd;
	unsigned refs; /* OPEN/CREATE minus RELEASE of this file id */
};

/* Large aligned RS_DATA chunks go through the page cache or with O_DIRECT,
 * whichever dio.h picks from what each was measured to cost. */
#define DIO_ALIGN   4096u
#define DIO_MIN     65536u

/* A hash request of at least this many bytes is hashed by two threads. */
#define APPLY_HASH_SPLIT (16u << 20)

struct apply {
	uv_loop_t *loop;
	const int *roots; /* borrowed */
	size_t n_dirs;
	long ncpu; /* online CPUs at start */
	enum conf_async async;
	apply_ack_fn ack_cb;
	apply_fail_fn fail_cb;
	void *ctx;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct apply_rec *head; /* queue, mu */
	struct apply_rec *tail;
	atomic_uint_fast64_t queued_bytes; /* data bytes of the queued records (changed under mu) */
	bool stopping;      /* mu */
	bool busy;          /* mu: an op is being applied (its applier owns the map) */
	char fail_why[256]; /* mu: set once */

	atomic_uint_fast64_t applied_seq;
	atomic_bool failed;
	uint64_t received_seq; /* loop thread */
	uint64_t acked_seq;    /* loop thread */
	bool fail_reported;    /* loop thread */
	uv_async_t wake;

	apply_rs_fn rs_cb;     /* loop thread */
	apply_hashes_fn hashes_cb;          /* loop thread */
	struct apply_hashes *hashes_head;   /* mu: computed, waiting for the loop */
	struct apply_hashes *hashes_tail;
	bool rs_pending;       /* mu: an RS_END result waits for the loop */
	uint64_t rs_end_seq;   /* mu */
	uint64_t rs_result;    /* mu: failures of that pass */

	/* apply thread only */
	bool rs_active;       /* between RS_BEGIN and RS_END */
	uint64_t rs_failures; /* live ops that found stale paths during the pass */
	int rs_fd;            /* RS_DATA: the file written last, kept open between chunks */
	bool rs_replaced;     /* a resync record removed a name of a regular file */
	Bytef *zbuf;          /* RS_DATA with PROTO_RS_DATA_ZLIB: PROTO_MAX_DATA bytes */
	int rs_dfd;           /* the RS_DATA file opened O_DIRECT, or -1 */
	bool rs_dfd_tried;
	void *dbuf;           /* PROTO_MAX_DATA bytes aligned for O_DIRECT */
	struct dio_choice dio;
	bool dio_logged[2];   /* the choice of each way was logged */
	uint8_t rs_fd_dir;
	char rs_fd_path[PROTO_MAX_STR];
	struct fmap_ent *map;
	size_t map_cap;
	size_t map_n;
};

/* ---- file id -> fd map (apply thread) ------------------------------------ */

static uint64_t
fkey(uint8_t dir, uint64_t file_id)
{
	return (file_id << 8 | dir) + 1; /* never 0 */
}

static size_t
fslot(const struct apply *a, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (a->map_cap - 1);
}

static int
map_get(const struct apply *a, uint64_t key)
{
	size_t i;

	for (i = fslot(a, key);; i = (i + 1) & (a->map_cap - 1)) {
		if (a->map[i].key == 0)
			return -1;
		if (a->map[i].key == key)
			return a->map[i].fd;
	}
}

static void map_put(struct apply *a, uint64_t key, int fd, unsigned refs);

/* The fd of a file bound with no name (PROTO_OPEN_REBIND without a path):
 * it has none on the primary either, so what is done through it changes no
 * file here. */
#define FD_NAMELESS (-2)

static void
fd_close(int fd)
{
	if (fd >= 0)
		(void)close(fd);
}

static void
map_grow(struct apply *a)
{
	struct fmap_ent *old = a->map;
	size_t old_cap = a->map_cap, i;

	a->map_cap = old_cap ? old_cap * 2 : APPLY_MAP_MIN;
	a->map = mr_xcalloc(a->map_cap, sizeof(*a->map));
	a->map_n = 0;
	for (i = 0; i < old_cap; i++)
		if (old[i].key != 0)
			map_put(a, old[i].key, old[i].fd, old[i].refs);
	free(old);
}

/* Bind key to fd with refs references. If the key is bound already, the
 * existing fd stays (it is the same file) and fd is closed. */
static void
map_put(struct apply *a, uint64_t key, int fd, unsigned refs)
{
	size_t i;

	if ((a->map_n + 1) * 2 > a->map_cap)
		map_grow(a);
	for (i = fslot(a, key);; i = (i + 1) & (a->map_cap - 1)) {
		if (a->map[i].key == key) {
			fd_close(fd);
			a->map[i].refs += refs;
			return;
		}
		if (a->map[i].key == 0) {
			a->map[i].key = key;
			a->map[i].fd = fd;
			a->map[i].refs = refs;
			a->map_n++;
			return;
		}
	}
}

/* Drop one reference; at zero unbind and close (linear probing: back-shift). */
static void
map_unref(struct apply *a, uint64_t key)
{
	size_t i, j;

	for (i = fslot(a, key);; i = (i + 1) & (a->map_cap - 1)) {
		if (a->map[i].key == 0)
			return;
		if (a->map[i].key == key)
			break;
	}
	if (--a->map[i].refs > 0)
		return;
	fd_close(a->map[i].fd);
	a->map[i].key = 0;
	a->map_n--;
	for (j = (i + 1) & (a->map_cap - 1); a->map[j].key != 0; j = (j + 1) & (a->map_cap - 1)) {
		struct fmap_ent e = a->map[j];

		a->map[j].key = 0;
		a->map_n--;
		map_put(a, e.key, e.fd, e.refs);
	}
}

/* Bind key to fd with exactly refs references, in place of any binding. */
static void
map_set(struct apply *a, uint64_t key, int fd, unsigned refs)
{
	for (size_t i = fslot(a, key); a->map_cap > 0; i = (i + 1) & (a->map_cap - 1)) {
		if (a->map[i].key == 0)
			break;
		if (a->map[i].key == key) {
			if (a->map[i].fd != fd)
				fd_close(a->map[i].fd);
			a->map[i].fd = fd;
			a->map[i].refs = refs;
			return;
		}
	}
	map_put(a, key, fd, refs);
}

/* Unbind key whatever its references. */
static void
map_drop(struct apply *a, uint64_t key)
{
	if (map_get(a, key) == -1)
		return;
	map_set(a, key, FD_NAMELESS, 1);
	map_unref(a, key);
}

/* ---- path resolution beneath the root (apply thread) --------------------- */

static int
openat2_beneath(int root, const char *path, uint64_t flags)
{
	struct open_how how = {
		.flags = flags | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
		           RESOLVE_NO_XDEV,
	};
	long fd = syscall(SYS_openat2, root, path, &how, sizeof(how));

	return fd == -1 ? -errno : (int)fd;
}

/* Split path into its parent (opened beneath the root) and last component.
 * *dfd is root itself when the path has one component (do not close it). */
static int
open_parent(const struct apply *a, uint8_t dir, const char *path, int *dfd, const char **base)
{
	const char *slash = strrchr(path, '/');
	char parent[PROTO_MAX_STR];

	if (slash == NULL) {
		*dfd = a->roots[dir];
		*base = path;
		return 0;
	}
	memcpy(parent, path, (size_t)(slash - path));
	parent[slash - path] = '\0';
	*base = slash + 1;
	*dfd = openat2_beneath(a->roots[dir], parent, O_PATH | O_DIRECTORY);
	return *dfd < 0 ? *dfd : 0;
}

static void
close_parent(const struct apply *a, uint8_t dir, int dfd)
{
	if (dfd >= 0 && dfd != a->roots[dir])
		(void)close(dfd);
}

/* The object an op is about: its bound open file if any (borrowed, *owned
 * false; FD_NAMELESS for a file with no name), else its path opened
 * O_PATH | O_NOFOLLOW beneath the root. */
static int
open_object(struct apply *a, const struct proto_op *op, bool *owned)
{
	int fd = map_get(a, fkey(op->dir, op->file_id));

	*owned = false;
	if (fd >= 0 || fd == FD_NAMELESS)
		return fd;
	if (op->path.len == 0 && op->file_id == 1)
		return a->roots[op->dir]; /* the root itself */
	if (op->path.len == 0)
		return -ESTALE; /* no name and no open file: cannot be found */
	fd = openat2_beneath(a->roots[op->dir], op->path.p, O_PATH | O_NOFOLLOW);
	*owned = fd >= 0;
	return fd;
}

static void
proc_path(int fd, char *buf, size_t len)
{
	(void)snprintf(buf, len, "/proc/self/fd/%d", fd);
}

static int
own_new(int dfd, const char *base, const struct proto_op *op, bool is_link)
{
	if (fchownat(dfd, base, op->uid, op->gid, AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	if (!is_link && fchmodat(dfd, base, op->mode & 07777, 0) == -1)
		return -errno;
	return 0;
}

static int
apply_setattr_op(int fd, const struct proto_op *op, bool is_link)
{
	char proc[40];

	proc_path(fd, proc, sizeof(proc));
	/* owner first: chown clears set-id bits that the mode then restores */
	if ((op->valid & (SHIM_SET_UID | SHIM_SET_GID)) &&
	    fchownat(fd, "", (op->valid & SHIM_SET_UID) ? op->uid : (uid_t)-1,
	             (op->valid & SHIM_SET_GID) ? op->gid : (gid_t)-1,
	             AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	if ((op->valid & SHIM_SET_MODE) && !is_link && chmod(proc, op->mode & 07777) == -1)
		return -errno;
	if ((op->valid & SHIM_SET_SIZE) && truncate(proc, (off_t)op->size) == -1)
		return -errno;
	if (op->valid & (SHIM_SET_ATIME | SHIM_SET_MTIME)) {
		struct timespec tv[2] = {
			{ .tv_sec = op->atime_sec, .tv_nsec = op->atime_nsec },
			{ .tv_sec = op->mtime_sec, .tv_nsec = op->mtime_nsec },
		};

		if (!(op->valid & SHIM_SET_ATIME))
			tv[0].tv_nsec = UTIME_OMIT;
		if (!(op->valid & SHIM_SET_MTIME))
			tv[1].tv_nsec = UTIME_OMIT;
		if ((is_link ? utimensat(fd, "", tv, AT_EMPTY_PATH)
		             : utimensat(AT_FDCWD, proc, tv, 0)) == -1)
			return -errno;
	}
	return 0;
}

/* Set the mtime of the directory dfd (an O_PATH fd), atime untouched. */
static int
set_mtime(int dfd, int64_t sec, uint32_t nsec)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = sec, .tv_nsec = nsec } };

	return utimensat(dfd, "", tv, AT_EMPTY_PATH) == -1 ? -errno : 0;
}

/* The times the primary's object got (op->valid ATIME/MTIME), on dfd/base
 * or, with base NULL, on the open file dfd. */
static int
copy_times(int dfd, const char *base, const struct proto_op *op)
{
	struct timespec tv[2] = {
		{ .tv_sec = op->atime_sec, .tv_nsec = op->atime_nsec },
		{ .tv_sec = op->mtime_sec, .tv_nsec = op->mtime_nsec },
	};

	if (!(op->valid & (SHIM_SET_ATIME | SHIM_SET_MTIME)))
		return 0;
	if (!(op->valid & SHIM_SET_ATIME))
		tv[0].tv_nsec = UTIME_OMIT;
	if (!(op->valid & SHIM_SET_MTIME))
		tv[1].tv_nsec = UTIME_OMIT;
	if ((base == NULL ? futimens(dfd, tv) : utimensat(dfd, base, tv, AT_SYMLINK_NOFOLLOW)) ==
	    -1)
		return -errno;
	return 0;
}

static int
pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* ---- resync records (apply thread) ---------------------------------------- */

/* Remove name in dfd, whatever it is (a directory with everything below it).
 * Never follows symlinks; ENOENT is success. */
static int
rm_rf_at(int dfd, const char *name, unsigned depth)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int fd, r = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) == -1 && errno != ENOENT ? -errno : 0;
	if (depth > 4096)
		return -ELOOP;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		r = -errno;
		(void)close(fd);
		return r;
	}
	while (r == 0 && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		r = rm_rf_at(dirfd(d), e->d_name, depth + 1);
	}
	(void)closedir(d);
	if (r == 0 && unlinkat(dfd, name, AT_REMOVEDIR) == -1 && errno != ENOENT)
		r = -errno;
	return r;
}

/* Is name one of the NUL-terminated names in list? */
static bool
in_name_list(const char *name, const char *list, size_t len)
{
	size_t n = strlen(name);
	const char *p = list, *end = list + len;

	while (p < end) {
		size_t l = strnlen(p, (size_t)(end - p));

		if (l == n && memcmp(p, name, n) == 0)
			return true;
		p += l + 1;
	}
	return false;
}

/* Make dfd/base an object of type fmt (S_IFDIR, S_IFREG...): anything else of
 * that name goes first. Returns 1 if it exists with that type, 0 if it does
 * not exist (any more), or -errno. */
static int
rs_prepare(struct apply *a, int dfd, const char *base, mode_t fmt)
{
	struct stat st;

	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 : -errno;
	if ((st.st_mode & S_IFMT) == fmt)
		return 1;
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
		a->rs_replaced = true; /* a file bound to it (or below it) is gone */
	return rm_rf_at(dfd, base, 0);
}

static int
rs_dir(struct apply *a, const struct proto_op *op)
{
	const char *base = NULL, *names = op->data;
	int dfd = -1, fd = -1, r;
	DIR *d;
	struct dirent *e;

	if (op->path.len == 0) {
		fd = openat2_beneath(a->roots[op->dir], ".", O_RDONLY | O_DIRECTORY);
	} else {
		r = open_parent(a, op->dir, op->path.p, &dfd, &base);
		if (r < 0)
			return r;
		r = rs_prepare(a, dfd, base, S_IFDIR);
		if (r == 0 && mkdirat(dfd, base, op->mode & 07777) == -1)
			r = -errno;
		if (r >= 0 && (fchownat(dfd, base, op->uid, op->gid, AT_SYMLINK_NOFOLLOW) == -1 ||
		               fchmodat(dfd, base, op->mode & 07777, 0) == -1))
			r = -errno;
		if (r >= 0)
			fd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close_parent(a, op->dir, dfd);
		if (r < 0)
			return r;
	}
	if (fd < 0)
		return fd == -1 ? -errno : fd;
	if (op->path.len == 0 && (fchown(fd, op->uid, op->gid) == -1 ||
	                          fchmod(fd, op->mode & 07777) == -1)) {
		r = -errno;
		(void)close(fd);
		return r;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		r = -errno;
		(void)close(fd);
		return r;
	}
	r = 0;
	while (r == 0 && !(op->flags & 1u) && (e = readdir(d)) != NULL) {
		/* flags bit 0: the list was too long to send: keep what is there */
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (!in_name_list(e->d_name, names, op->data_len)) {
			r = rm_rf_at(dirfd(d), e->d_name, 0);
			a->rs_replaced = true; /* a file bound to it (or below it) is gone */
		}
	}
	(void)closedir(d);
	return r;
}

static int
rs_file(struct apply *a, const struct proto_op *op)
{
	const char *base;
	int dfd, fd, r;

	r = open_parent(a, op->dir, op->path.p, &dfd, &base);
	if (r < 0)
		return r;
	r = rs_prepare(a, dfd, base, S_IFREG);
	if (r >= 0) {
		fd = openat(dfd, base, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, op->mode & 07777);
		if (fd == -1) {
			r = -errno;
		} else {
			r = 0;
			if (ftruncate(fd, (off_t)op->size) == -1 ||
			    fchown(fd, op->uid, op->gid) == -1 || fchmod(fd, op->mode & 07777) == -1)
				r = -errno;
			(void)close(fd);
		}
	}
	close_parent(a, op->dir, dfd);
	return r;
}

/* Forget the RS_DATA fd: any other record may rename or remove that file. */
static void
rs_fd_drop(struct apply *a)
{
	if (a->rs_fd >= 0)
		(void)close(a->rs_fd);
	a->rs_fd = -1;
	if (a->rs_dfd >= 0)
		(void)close(a->rs_dfd);
	a->rs_dfd = -1;
	a->rs_dfd_tried = false;
}

/* Which way for the next eligible chunk (see dio.h), logged at info the first
 * time each way is chosen on its merits. */
static bool
rs_dio_pick(struct apply *a, size_t len)
{
	struct dio_choice *d = &a->dio;
	enum dio_why why;
	bool pick = dio_pick(d, len, atomic_load(&a->queued_bytes), &why);

	if ((why == DIO_CHEAPER || why == DIO_FASTER) && !a->dio_logged[pick]) {
		a->dio_logged[pick] = true;
		log_info("apply: resync data goes to disk %s (%s; O_DIRECT %" PRIu64
		         " MB/s, %" PRIu64 " MB per CPU-s; the page cache %" PRIu64 " MB/s, %" PRIu64
		         " MB per CPU-s)",
		         pick ? "with O_DIRECT" : "through the page cache",
		         why == DIO_FASTER ? "behind the stream: the faster way" : "the cheaper way",
		         d->rate[1] / 1000u, d->cpu_rate[1] / 1000u, d->rate[0] / 1000u,
		         d->cpu_rate[0] / 1000u);
	}
	return pick;
}

/* Write resync data at off, choosing between the page cache and O_DIRECT
 * for large aligned chunks (see dio.h). */
static int
rs_write(struct apply *a, const void *data, size_t len, uint64_t off)
{
	uint64_t t0, c0;
	bool direct, aligned;
	int r;

	if (len < DIO_MIN || len % DIO_ALIGN != 0 || off % DIO_ALIGN != 0)
		return pwrite_all(a->rs_fd, data, len, (off_t)off);
	direct = rs_dio_pick(a, len);
	if (direct && a->rs_dfd < 0 && !a->rs_dfd_tried) {
		char proc[40];

		a->rs_dfd_tried = true;
		(void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", a->rs_fd);
		a->rs_dfd = open(proc, O_WRONLY | O_DIRECT | O_CLOEXEC); /* EINVAL: tmpfs... */
	}
	aligned = (uintptr_t)data % DIO_ALIGN == 0;
	if (direct && !aligned && a->dbuf == NULL &&
	    posix_memalign(&a->dbuf, DIO_ALIGN, PROTO_MAX_DATA) != 0)
		a->dbuf = NULL;
	direct = direct && a->rs_dfd >= 0 && (aligned || a->dbuf != NULL);
	t0 = mr_clock_us(CLOCK_MONOTONIC);
	c0 = mr_clock_us(CLOCK_THREAD_CPUTIME_ID);
	if (direct) {
		const void *src = data;

		if (!aligned) {
			memcpy(a->dbuf, data, len);
			src = a->dbuf;
		}
		r = pwrite_all(a->rs_dfd, src, len, (off_t)off);
		if (r == -EINVAL) /* the file system wants another alignment */
			return pwrite_all(a->rs_fd, data, len, (off_t)off);
	} else {
		r = pwrite_all(a->rs_fd, data, len, (off_t)off);
	}
	if (r == 0)
		dio_account(&a->dio, direct, len, mr_clock_us(CLOCK_MONOTONIC) - t0,
		            mr_clock_us(CLOCK_THREAD_CPUTIME_ID) - c0);
	return r;
}

static int
rs_data(struct apply *a, const struct proto_op *op)
{
	if (a->rs_fd < 0 || a->rs_fd_dir != op->dir || strcmp(a->rs_fd_path, op->path.p) != 0) {
		int fd = openat2_beneath(a->roots[op->dir], op->path.p, O_WRONLY | O_NOFOLLOW);

		rs_fd_drop(a);
		if (fd < 0)
			return fd;
		a->rs_fd = fd;
		a->rs_fd_dir = op->dir;
		(void)snprintf(a->rs_fd_path, sizeof(a->rs_fd_path), "%s", op->path.p);
	}
	if (op->flags & PROTO_RS_DATA_ZLIB) {
		uLongf n = (uLongf)op->size;

		/* (size was checked against PROTO_MAX_DATA by apply_push) */
		if (a->zbuf == NULL && (a->zbuf = malloc(PROTO_MAX_DATA)) == NULL)
			return -ENOMEM;
		if (uncompress(a->zbuf, &n, op->data, op->data_len) != Z_OK || n != op->size) {
			log_err("apply: compressed RS_DATA from the primary does not inflate to its "
			        "size path=\"%s\" off=%" PRIu64 " size=%" PRIu64,
			        op->path.p, op->off, op->size);
			return -EBADMSG;
		}
		return rs_write(a, a->zbuf, (size_t)n, op->off);
	}
	return rs_write(a, op->data, op->data_len, op->off);
}

static int
rs_link_or_node(struct apply *a, const struct proto_op *op)
{
	bool link = op->type == PROTO_RS_SYMLINK;
	const char *base;
	char target[PROTO_MAX_STR + 1];
	struct stat st;
	int dfd, r;

	r = open_parent(a, op->dir, op->path.p, &dfd, &base);
	if (r < 0)
		return r;
	r = rs_prepare(a, dfd, base, link ? S_IFLNK : (op->mode & S_IFMT));
	if (r == 1 && link) {
		ssize_t n = readlinkat(dfd, base, target, sizeof(target) - 1);

		if (n < 0 || (size_t)n != op->path2.len || memcmp(target, op->path2.p, (size_t)n))
			r = rm_rf_at(dfd, base, 0);
	} else if (r == 1 && fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	           st.st_rdev != (dev_t)op->rdev) {
		r = rm_rf_at(dfd, base, 0);
	}
	if (r == 0) {
		if (link)
			r = symlinkat(op->path2.p, dfd, base) == -1 ? -errno : 0;
		else
			r = mknodat(dfd, base, op->mode, (dev_t)op->rdev) == -1 ? -errno : 0;
	}
	if (r >= 0)
		r = own_new(dfd, base, op, link);
	close_parent(a, op->dir, dfd);
	return r;
}

/* Is name (NUL-terminated) in the RS_META xattr list? */
static bool
xattr_listed(const char *list, uint32_t len, const char *name)
{
	uint32_t i = 0;

	while (i < len) {
		size_t n = strnlen(list + i, len - i);

		if (n == len - i || i + n + 5 > len)
			return false;
		if (strcmp(list + i, name) == 0)
			return true;
		i += (uint32_t)n + 5 + mr_get_be32((const uint8_t *)list + i + n + 1);
	}
	return false;
}

/* Make fd's extended attributes exactly the list (PROTO_RS_META_XATTRS).
 * Malformed lists are refused as a protocol error. */
static int
rs_xattrs(int fd, const char *list, uint32_t len)
{
	char proc[40], names[PROTO_MAX_STR * 4], cur[256];
	ssize_t nl;
	uint32_t i = 0;

	(void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	nl = listxattr(proc, names, sizeof(names));
	for (ssize_t k = 0; nl > 0 && k < nl; k += (ssize_t)strlen(names + k) + 1)
		if (!xattr_listed(list, len, names + k) && removexattr(proc, names + k) == -1 &&
		    errno != ENODATA)
			return -errno;
	while (i < len) {
		size_t n = strnlen(list + i, len - i);
		uint32_t vl;
		ssize_t have;

		if (n == 0 || n == len - i || i + n + 5 > len)
			return MR_EPROTO;
		vl = mr_get_be32((const uint8_t *)list + i + n + 1);
		if (vl > len - (i + (uint32_t)n + 5))
			return MR_EPROTO;
		have = vl <= sizeof(cur) ? getxattr(proc, list + i, cur, sizeof(cur)) : -1;
		if (have != (ssize_t)vl || memcmp(cur, list + i + n + 5, vl) != 0) {
			if (setxattr(proc, list + i, list + i + n + 5, vl, 0) == -1)
				return -errno;
		}
		i += (uint32_t)n + 5 + vl;
	}
	return 0;
}

/* RS_LINK: path becomes another name of path2's inode (whatever path was). */
static int
rs_link(struct apply *a, const struct proto_op *op)
{
	const char *base, *base2;
	struct stat st, st2;
	int dfd, dfd2, r;

	if (op->path2.len == 0 || proto_path_check(&op->path2, false, NULL, 0) < 0)
		return -EINVAL;
	r = open_parent(a, op->dir, op->path2.p, &dfd2, &base2);
	if (r < 0)
		return r;
	r = open_parent(a, op->dir, op->path.p, &dfd, &base);
	if (r < 0) {
		close_parent(a, op->dir, dfd2);
		return r;
	}
	if (fstatat(dfd2, base2, &st2, AT_SYMLINK_NOFOLLOW) == -1) {
		r = -errno;
	} else if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		r = errno != ENOENT ? -errno
		                    : linkat(dfd2, base2, dfd, base, 0) == -1 ? -errno : 0;
	} else if (st.st_ino == st2.st_ino && st.st_dev == st2.st_dev) {
		r = 0; /* already */
	} else {
		/* Another object had the name: a file bound to it (or below it)
		 * is gone. Only then: an RS_LINK comes every pass for every extra
		 * name, and a file bound after a live op unlinked its last name (a
		 * temporary file) has no name either, legitimately. */
		a->rs_replaced = true;
		if ((r = rm_rf_at(dfd, base, 0)) >= 0)
			r = linkat(dfd2, base2, dfd, base, 0) == -1 ? -errno : 0;
	}
	close_parent(a, op->dir, dfd);
	close_parent(a, op->dir, dfd2);
	return r;
}

static int
rs_meta(struct apply *a, const struct proto_op *op)
{
	bool owned;
	struct stat st;
	int fd, r;

	if (op->path.len == 0)
		fd = a->roots[op->dir], owned = false;
	else {
		fd = openat2_beneath(a->roots[op->dir], op->path.p, O_PATH | O_NOFOLLOW);
		owned = fd >= 0;
	}
	if (fd < 0)
		return fd;
	r = fstat(fd, &st) == -1 ? -errno : apply_setattr_op(fd, op, S_ISLNK(st.st_mode));
	if (r == 0 && (op->flags & PROTO_RS_META_XATTRS) && !S_ISLNK(st.st_mode))
		r = rs_xattrs(fd, op->data, op->data_len);
	if (owned)
		(void)close(fd);
	return r;
}

/* Blocks [first, end) of a hash request: the fd, where the request starts,
 * the block size, the file's size, and where the hashes go. A job hashes
 * them and says how many it did (fewer when the copy ends). */
struct hash_job {
	int fd;
	uint64_t off;
	uint32_t bs;
	uint64_t size;
	uint64_t first;
	uint64_t end;
	uint8_t *hashes; /* the request's, indexed from its first block */
	uint64_t done;   /* blocks hashed from first on */
	int err;
};

/* Holes are not read: a block wholly in a hole hashes as zeros. That matters
 * on a full resync, where RS_FILE has just made an empty copy of the file's
 * size, all hole. Positional I/O only, so two jobs may share the fd. */
static void
hash_blocks(struct hash_job *j)
{
	size_t chunk = j->bs > (1u << 20) ? j->bs : (1u << 20) / j->bs * j->bs;
	uint64_t data = 0, hole = 0; /* [data, hole): the next data extent */
	XXH128_canonical_t zero_can;
	uint8_t *buf = calloc(1, chunk);
	uint64_t i = j->first;

	j->done = 0;
	if (buf == NULL) {
		j->err = -ENOMEM;
		return;
	}
	XXH128_canonicalFromHash(&zero_can, XXH3_128bits(buf, j->bs));
	while (i < j->end) {
		uint64_t pos = j->off + i * j->bs, want;
		ssize_t got;
		size_t bo;

		if (pos >= j->size)
			break; /* end of the copy: the rest is missing */
		if (pos >= hole) {
			off_t d = lseek(j->fd, (off_t)pos, SEEK_DATA), e;

			if (d < 0) {
				/* ENXIO: a hole to the end; otherwise read everything */
				data = errno == ENXIO ? UINT64_MAX : pos;
				hole = UINT64_MAX;
			} else {
				e = lseek(j->fd, d, SEEK_HOLE);
				data = (uint64_t)d;
				hole = e < 0 ? UINT64_MAX : (uint64_t)e;
			}
		}
		if (pos + j->bs <= data && pos + j->bs <= j->size) {
			memcpy(j->hashes + i * PROTO_HASH_LEN, &zero_can, PROTO_HASH_LEN);
			i++;
			continue;
		}
		/* read blocks up to the chunk, the job's end or the hole */
		want = (j->end - i) * j->bs < chunk ? (j->end - i) * j->bs : chunk;
		if (hole > pos && hole - pos < want)
			want = (hole - pos + j->bs - 1) / j->bs * j->bs;
		got = pread(j->fd, buf, (size_t)want, (off_t)pos);
		if (got <= 0)
			break;
		for (bo = 0; bo < (size_t)got; bo += j->bs, i++) {
			size_t bl = (size_t)got - bo < j->bs ? (size_t)got - bo : j->bs;
			XXH128_canonical_t can;

			XXH128_canonicalFromHash(&can, XXH3_128bits(buf + bo, bl));
			memcpy(j->hashes + i * PROTO_HASH_LEN, &can, PROTO_HASH_LEN);
		}
		if ((uint64_t)got < want)
			break; /* end of the copy: the rest is missing */
	}
	j->done = i - j->first;
	free(buf);
}

static void *
hash_thread(void *arg)
{
	hash_blocks(arg);
	return NULL;
}

/* RS_HASHREQ: hash each block of [off, off + size) of the copy (no file: no
 * hashes; the answer stops at its end) and hand the answer to the loop
 * thread. A large request is hashed by two threads, a half each, while the
 * apply thread waits: the answer still reflects exactly the ops before it
 * in the stream, and the target's hashing (the critical path of a resync
 * that compares checksums) uses two cores. */
static int
rs_hashreq(struct apply *a, const struct proto_op *op)
{
	uint32_t bs = (uint32_t)op->rdev;
	uint64_t n_blocks = bs > 0 ? (op->size + bs - 1) / bs : 0;
	struct hash_job job[2];
	struct apply_hashes *h;
	pthread_t helper;
	bool two = false;
	struct stat st;
	int fd;

	if (bs == 0 || bs > (16u << 20) || n_blocks * PROTO_HASH_LEN > PROTO_MAX_DATA)
		return -EINVAL;
	h = calloc(1, sizeof(*h) + (size_t)n_blocks * PROTO_HASH_LEN);
	if (h == NULL)
		return -ENOMEM;
	h->req_seq = op->seq;
	h->block_size = bs;
	fd = openat2_beneath(a->roots[op->dir], op->path.p, O_RDONLY | O_NOFOLLOW);
	if (fd >= 0 && fstat(fd, &st) == 0) {
		job[0] = (struct hash_job){ .fd = fd,
			                    .off = op->off,
			                    .bs = bs,
			                    .size = (uint64_t)st.st_size,
			                    .end = n_blocks,
			                    .hashes = h->hashes };
		if (a->ncpu > 1 && n_blocks * bs >= APPLY_HASH_SPLIT) {
			job[1] = job[0];
			job[0].end = job[1].first = n_blocks / 2;
			two = pthread_create(&helper, NULL, hash_thread, &job[1]) == 0;
			if (two)
				(void)pthread_setname_np(helper, "mr-hash");
			else
				job[0].end = n_blocks;
		}
		hash_blocks(&job[0]);
		if (two)
			MR_BUG_ON(pthread_join(helper, NULL) != 0);
		/* the answer stops where the copy does (a short first half ends it) */
		h->n = (uint32_t)job[0].done;
		if (two && job[0].done == job[0].end)
			h->n += (uint32_t)job[1].done;
	}
	if (fd >= 0)
		(void)close(fd);
	pthread_mutex_lock(&a->mu);
	if (a->hashes_tail != NULL)
		a->hashes_tail->next = h;
	else
		a->hashes_head = h;
	a->hashes_tail = h;
	pthread_mutex_unlock(&a->mu);
	return 0;
}

/* A resync record removed a regular file or a directory (an RS_LINK over a
 * name, a change of type, a name pruned by RS_DIR). An open file bound to
 * it or below it by a re-binding made before the record would take the ops
 * of the name's new file into the old one, silently. Such bindings go: their
 * ops fail until the next pass binds the name again.
 *
 * The ops such a binding already took are lost with the old file too: on the
 * primary they changed the file the name leads to now, and the pass may have
 * read that file before them (a write between the read of `a` and the RS_LINK
 * that makes `b`, bound to the old `b`, a link of `a`). So each binding
 * dropped counts as a failure of the pass: another pass compares again. */
static void
unbind_orphans(struct apply *a)
{
	uint64_t *gone = mr_xcalloc(a->map_n + 1, sizeof(*gone));
	size_t n = 0;
	struct stat st;

	a->rs_replaced = false;
	for (size_t i = 0; i < a->map_cap; i++)
		if (a->map[i].key != 0 && a->map[i].fd >= 0 && fstat(a->map[i].fd, &st) == 0 &&
		    st.st_nlink == 0)
			gone[n++] = a->map[i].key;
	for (size_t i = 0; i < n; i++) /* (not while scanning: unbinding moves entries) */
		map_drop(a, gone[i]);
	free(gone);
	if (n > 0) {
		a->rs_failures += n;
		log_info("apply: resync replaced %zu file(s) held open on the primary; their ops "
		         "since the last binding went to the old file: the pass is not clean",
		         n);
	}
}

static int apply_rs_record(struct apply *a, const struct proto_op *op);

/* A resync record. Returns 0 or -errno. */
static int
apply_rs(struct apply *a, const struct proto_op *op)
{
	int r = apply_rs_record(a, op);

	if (a->rs_replaced)
		unbind_orphans(a);
	return r;
}

static int
apply_rs_record(struct apply *a, const struct proto_op *op)
{
	switch (op->type) {
	case PROTO_RS_BEGIN:
		a->rs_active = true; /* (already, since the rebase) */
		return 0;
	case PROTO_RS_DIR:
		return rs_dir(a, op);
	case PROTO_RS_META:
		return rs_meta(a, op);
	case PROTO_RS_FILE:
		return rs_file(a, op);
	case PROTO_RS_DATA:
		return rs_data(a, op);
	case PROTO_RS_SYMLINK:
	case PROTO_RS_NODE:
		return rs_link_or_node(a, op);
	case PROTO_RS_END:
		/* failures count since the last RS_END (or the rebase): stale live ops
		 * before this pass's RS_BEGIN count too. Tolerant until a clean pass. */
		pthread_mutex_lock(&a->mu);
		a->rs_pending = true;
		a->rs_end_seq = op->seq;
		a->rs_result = a->rs_failures;
		pthread_mutex_unlock(&a->mu);
		a->rs_active = a->rs_failures > 0;
		a->rs_failures = 0;
		return 0;
	case PROTO_RS_HASHREQ:
		return rs_hashreq(a, op);
	case PROTO_RS_LINK:
		rs_fd_drop(a);
		return rs_link(a, op);
	default:
		return -EINVAL;
	}
}

/* During a resync pass, a live op may find its path not yet reconciled: that
 * is expected (the pass reaches the path later, or a next pass does). */
static bool
rs_tolerable(int r)
{
	return r == -ENOENT || r == -EEXIST || r == -ENOTDIR || r == -ENOTEMPTY || r == -ESTALE ||
	       r == -EISDIR || r == -ELOOP || r == -EXDEV;
}

/* PROTO_OPEN_REBIND: key is now the regular file op->path names, or a file
 * with no name when there is no path, opened op->size times. A binding that
 * cannot be made goes: the ops through it then fail (a resync pass tolerates
 * that, and its next pass binds again). */
static int
rebind(struct apply *a, const struct proto_op *op, uint64_t key)
{
	unsigned refs = op->size == 0 ? 1u : op->size > UINT_MAX ? UINT_MAX : (unsigned)op->size;
	struct stat st;
	char proc[40];
	int pfd, fd;

	if (op->path.len == 0) {
		map_set(a, key, FD_NAMELESS, refs);
		return 0;
	}
	/* O_PATH first: opening a device or a FIFO for writing is not harmless */
	pfd = openat2_beneath(a->roots[op->dir], op->path.p, O_PATH | O_NOFOLLOW);
	fd = pfd;
	if (pfd >= 0) {
		if (fstat(pfd, &st) == -1) {
			fd = -errno;
		} else if (!S_ISREG(st.st_mode)) {
			fd = -ESTALE;
		} else {
			proc_path(pfd, proc, sizeof(proc));
			fd = open(proc, O_RDWR | O_CLOEXEC);
			if (fd == -1)
				fd = -errno;
		}
		(void)close(pfd);
	}
	if (fd < 0) {
		map_drop(a, key);
		return fd;
	}
	map_set(a, key, fd, refs);
	return 0;
}

/* Apply one op. Returns 0 or -errno (this copy then diverged). */
static int
apply_one(struct apply *a, const struct proto_op *op)
{
	uint64_t key = fkey(op->dir, op->file_id);
	int dfd = -1, dfd2 = -1, fd = -1, r = 0;
	const char *base = NULL, *base2 = NULL;
	bool owned = false, none = a->async == CONF_ASYNC_NONE;
	char proc[40];

	switch (op->type) {
	case SHIM_OP_OPEN:
	case SHIM_OP_CREATE: {
		int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | ((int)op->flags & O_TRUNC);

		if (op->type == SHIM_OP_OPEN && (op->valid & PROTO_OPEN_REBIND))
			return rebind(a, op, key);

		if (none)
			flags |= (int)op->flags & (O_SYNC | O_DSYNC);
		if (op->type == SHIM_OP_CREATE)
			flags |= O_CREAT | ((int)op->flags & O_EXCL);
		if (op->path.len == 0) {
			/* no name (opened through /proc after unlink): already bound? */
			fd = map_get(a, key);
			if (fd == FD_NAMELESS) {
				map_put(a, key, FD_NAMELESS, 1);
				return 0;
			}
			if (fd < 0)
				return -ESTALE;
			map_put(a, key, dup(fd), 1);
			return (op->flags & O_TRUNC) && ftruncate(fd, 0) == -1 ? -errno : 0;
		}
		r = open_parent(a, op->dir, op->path.p, &dfd, &base);
		if (r < 0)
			return r;
		fd = openat(dfd, base, flags, op->mode & 07777);
		if (fd == -1) {
			r = -errno;
		} else {
			if (op->type == SHIM_OP_CREATE)
				r = own_new(dfd, base, op, false);
			if (r == 0 && op->type == SHIM_OP_CREATE)
				r = copy_times(fd, NULL, op);
			map_put(a, key, fd, 1);
		}
		break;
	}
	case SHIM_OP_MKNOD:
	case SHIM_OP_MKDIR:
	case SHIM_OP_SYMLINK:
		r = open_parent(a, op->dir, op->path.p, &dfd, &base);
		if (r < 0)
			return r;
		if (op->type == SHIM_OP_SYMLINK)
			r = symlinkat(op->path2.p, dfd, base);
		else if (op->type == SHIM_OP_MKDIR)
			r = mkdirat(dfd, base, op->mode & 07777);
		else
			r = mknodat(dfd, base, op->mode, (dev_t)op->rdev);
		r = r == -1 ? -errno : own_new(dfd, base, op, op->type == SHIM_OP_SYMLINK);
		if (r == 0)
			r = copy_times(dfd, base, op);
		break;
	case SHIM_OP_LINK:
		r = open_parent(a, op->dir, op->path.p, &dfd, &base);
		if (r < 0)
			return r;
		fd = map_get(a, key);
		if (op->path2.len > 0) {
			r = open_parent(a, op->dir, op->path2.p, &dfd2, &base2);
			if (r == 0 && linkat(dfd2, base2, dfd, base, 0) == -1)
				r = -errno;
		} else if (fd >= 0) {
			r = linkat(fd, "", dfd, base, AT_EMPTY_PATH) == -1 ? -errno : 0;
		} else {
			r = -ESTALE;
		}
		break;
	case SHIM_OP_UNLINK:
	case SHIM_OP_RMDIR:
		r = open_parent(a, op->dir, op->path.p, &dfd, &base);
		if (r < 0)
			return r;
		if (unlinkat(dfd, base, op->type == SHIM_OP_RMDIR ? AT_REMOVEDIR : 0) == -1)
			r = -errno;
		break;
	case SHIM_OP_RENAME:
		if (op->flags & ~(uint32_t)(RENAME_NOREPLACE | RENAME_EXCHANGE))
			return -EINVAL;
		r = open_parent(a, op->dir, op->path.p, &dfd, &base);
		if (r == 0)
			r = open_parent(a, op->dir, op->path2.p, &dfd2, &base2);
		if (r == 0 && syscall(SYS_renameat2, dfd, base, dfd2, base2, op->flags) == -1)
			r = -errno;
		break;
	case SHIM_OP_SETATTR: {
		struct stat st;

		fd = open_object(a, op, &owned);
		if (fd < 0)
			return fd == FD_NAMELESS ? 0 : fd;
		if (fstat(fd, &st) == -1)
			r = -errno;
		else
			r = apply_setattr_op(fd, op, S_ISLNK(st.st_mode));
		break;
	}
	case SHIM_OP_WRITE:
		fd = map_get(a, key);
		if (fd < 0)
			return fd == FD_NAMELESS ? 0 : -ESTALE;
		r = pwrite_all(fd, op->data, op->data_len, (off_t)op->off);
		if (r == 0)
			r = copy_times(fd, NULL, op);
		break;
	case SHIM_OP_FALLOCATE:
		fd = map_get(a, key);
		if (fd < 0)
			return fd == FD_NAMELESS ? 0 : -ESTALE;
		if (fallocate(fd, (int)op->flags, (off_t)op->off, (off_t)op->size) == -1)
			r = -errno;
		else
			r = copy_times(fd, NULL, op);
		break;
	case SHIM_OP_SETXATTR:
	case SHIM_OP_REMOVEXATTR:
		fd = open_object(a, op, &owned);
		if (fd < 0)
			return fd == FD_NAMELESS ? 0 : fd;
		proc_path(fd, proc, sizeof(proc));
		if (op->type == SHIM_OP_SETXATTR)
			r = setxattr(proc, op->name.p, op->data, op->data_len, (int)op->flags);
		else
			r = removexattr(proc, op->name.p);
		r = r == -1 ? -errno : 0;
		break;
	case SHIM_OP_FSYNC:
		if (!none)
			break; /* "second": applied (page cache) is the promise */
		fd = map_get(a, key);
		if (fd >= 0)
			r = (op->flags ? fdatasync(fd) : fsync(fd)) == -1 ? -errno : 0;
		else if (fd != FD_NAMELESS)
			r = syncfs(a->roots[op->dir]) == -1 ? -errno : 0; /* a directory */
		break;
	case SHIM_OP_FLUSH:
		break;
	case SHIM_OP_RELEASE:
		map_unref(a, key);
		break;
	default:
		r = -EINVAL;
		break;
	}
	/* namespace ops: the parents' mtimes as the primary's got them */
	if (r == 0 && dfd >= 0 && (op->valid & SHIM_SET_PMTIME))
		r = set_mtime(dfd, op->pmtime_sec, op->pmtime_nsec);
	if (r == 0 && dfd2 >= 0 && (op->valid & SHIM_SET_PMTIME2))
		r = set_mtime(dfd2, op->pmtime2_sec, op->pmtime2_nsec);
	if (owned)
		(void)close(fd);
	close_parent(a, op->dir, dfd);
	close_parent(a, op->dir, dfd2);
	return r;
}

/* ---- the apply thread ------------------------------------------------------ */

/* Apply one record (by whoever set a->busy: the apply thread, or the loop
 * thread inline) and publish the result. */
static void
apply_rec_run(struct apply *a, struct apply_rec *rec)
{
	int r;

	if (atomic_load(&a->failed)) {
		rec_free(rec); /* diverged: drain without applying */
		return;
	}
	if (rec->op.type != PROTO_RS_DATA)
		rs_fd_drop(a);
	if (rec->op.type >= PROTO_RS_MIN) {
		r = apply_rs(a, &rec->op);
	} else {
		r = apply_one(a, &rec->op);
		if (r < 0 && a->rs_active && rs_tolerable(r)) {
			a->rs_failures++;
			log_debug("apply: resync pass: seq=%" PRIu64 " %s on a stale path: %s",
			          rec->op.seq, shim_op_name((enum shim_op_type)rec->op.type),
			          mr_strerror(r));
			r = 0;
		}
	}
	if (r < 0) {
		pthread_mutex_lock(&a->mu);
		(void)snprintf(a->fail_why, sizeof(a->fail_why),
		               "cannot apply seq %" PRIu64 " (%s %.*s): %s", rec->op.seq,
		               rec->op.type >= PROTO_RS_MIN
		                       ? "resync record"
		                       : shim_op_name((enum shim_op_type)rec->op.type),
		               (int)rec->op.path.len,
		               rec->op.path.p, mr_strerror(r));
		pthread_mutex_unlock(&a->mu);
		atomic_store(&a->failed, true);
	} else {
		atomic_store(&a->applied_seq, rec->op.seq);
	}
	rec_free(rec);
}

/* Called with mu held: take ownership of the map (busy), apply rec without
 * the lock, give ownership back. Returns with mu released. */
static void
run_busy(struct apply *a, struct apply_rec *rec)
{
	a->busy = true;
	pthread_mutex_unlock(&a->mu);
	apply_rec_run(a, rec);
	pthread_mutex_lock(&a->mu);
	a->busy = false;
	pthread_mutex_unlock(&a->mu);
}

static void *
apply_main(void *arg)
{
	struct apply *a = arg;

	for (;;) {
		struct apply_rec *rec;

		pthread_mutex_lock(&a->mu);
		while (a->head == NULL && !a->stopping)
			pthread_cond_wait(&a->cond, &a->mu);
		rec = a->head;
		if (rec == NULL) {
			pthread_mutex_unlock(&a->mu);
			break;
		}
		a->head = rec->next;
		if (a->head == NULL)
			a->tail = NULL;
		atomic_fetch_sub(&a->queued_bytes, rec->op.data_len);
		run_busy(a, rec);
		(void)uv_async_send(&a->wake);
	}
	return NULL;
}

static void deliver(struct apply *a);

static void
wake_cb(uv_async_t *h)
{
	deliver(h->data);
}

/* Report progress to the loop thread's callbacks: the ack, or the failure. */
static void
deliver(struct apply *a)
{
	uint64_t seq = atomic_load(&a->applied_seq);

	if (atomic_load(&a->failed) && !a->fail_reported) {
		char why[256];

		a->fail_reported = true;
		pthread_mutex_lock(&a->mu);
		memcpy(why, a->fail_why, sizeof(why));
		pthread_mutex_unlock(&a->mu);
		a->fail_cb(a->ctx, why);
		return;
	}
	if (seq > a->acked_seq && !atomic_load(&a->failed)) {
		a->acked_seq = seq;
		a->ack_cb(a->ctx, seq);
	}
	for (;;) {
		struct apply_hashes *h;

		pthread_mutex_lock(&a->mu);
		h = a->hashes_head;
		if (h != NULL) {
			a->hashes_head = h->next;
			if (a->hashes_head == NULL)
				a->hashes_tail = NULL;
		}
		pthread_mutex_unlock(&a->mu);
		if (h == NULL)
			break;
		if (a->hashes_cb != NULL && !atomic_load(&a->failed))
			a->hashes_cb(a->ctx, h->req_seq, h->block_size, h->n, h->hashes);
		free(h);
	}
	if (a->rs_cb != NULL) {
		bool pending;
		uint64_t end_seq, failures;

		pthread_mutex_lock(&a->mu);
		pending = a->rs_pending;
		end_seq = a->rs_end_seq;
		failures = a->rs_result;
		a->rs_pending = false;
		pthread_mutex_unlock(&a->mu);
		if (pending && !atomic_load(&a->failed))
			a->rs_cb(a->ctx, end_seq, failures);
	}
}

void
apply_rebase(struct apply *a, uint64_t seq)
{
	a->received_seq = seq;
	a->acked_seq = seq;
	atomic_store(&a->applied_seq, seq);
	/* live ops arrive before the first RS_BEGIN: tolerant from now on */
	pthread_mutex_lock(&a->mu);
	MR_BUG_ON(a->busy || a->head != NULL);
	a->rs_active = true;
	a->rs_failures = 0;
	/* The open files bound on the last link: some were closed on the primary
	 * without us (the RELEASE completed there alone). The primary binds every
	 * file still open again before any other op of this link. (Under mu: the
	 * apply thread, idle now, takes its next record under it.) */
	for (size_t i = 0; i < a->map_cap; i++)
		if (a->map[i].key != 0) {
			fd_close(a->map[i].fd);
			a->map[i].key = 0;
		}
	a->map_n = 0;
	rs_fd_drop(a);
	pthread_mutex_unlock(&a->mu);
}

void
apply_set_rs_cb(struct apply *a, apply_rs_fn fn, apply_hashes_fn hashes_fn)
{
	a->rs_cb = fn;
	a->hashes_cb = hashes_fn;
}

static size_t
copy_str(char *dst, struct proto_str *s)
{
	memcpy(dst, s->p, s->len);
	dst[s->len] = '\0';
	s->p = dst;
	return (size_t)s->len + 1;
}

/* A record for op, freed with rec_free(). With a frame, the data stays
 * there and only the strings are copied (*data_off = 0: no data). Else its
 * data starts at rec->buf + *data_off, right after the strings, or for
 * resync data that rs_write() may write with O_DIRECT on the next DIO_ALIGN
 * boundary, so it needs no copy into an aligned buffer. */
static struct apply_rec *
rec_alloc(const struct proto_op *op, void *frame, size_t *data_off)
{
	size_t strs = (size_t)op->path.len + op->path2.len + op->name.len + 3;
	size_t head = offsetof(struct apply_rec, buf) + strs;
	void *mem;

	*data_off = strs;
	if (frame != NULL) {
		*data_off = 0;
		return malloc(sizeof(struct apply_rec) + strs);
	}
	if (op->type != PROTO_RS_DATA || (op->flags & PROTO_RS_DATA_ZLIB) ||
	    op->data_len < DIO_MIN || op->data_len % DIO_ALIGN != 0)
		return malloc(sizeof(struct apply_rec) + strs + op->data_len);
	head = (head + DIO_ALIGN - 1) / DIO_ALIGN * DIO_ALIGN;
	*data_off = head - offsetof(struct apply_rec, buf);
	if (posix_memalign(&mem, DIO_ALIGN, head + op->data_len) != 0)
		return NULL;
	return mem;
}

static int push(struct apply *a, const struct proto_op *op, void *frame, char *err, size_t err_len);

/* May this op be applied on the loop thread? */
static bool
inline_ok(const struct apply *a, const struct proto_op *op)
{
	if (a->async == CONF_ASYNC_NONE)
		return false; /* durability work belongs on the apply thread */
	return op->data_len <= APPLY_INLINE_MAX;
}

int
apply_push(struct apply *a, const struct proto_op *op, void *frame, char *err, size_t err_len)
{
	int r;

	if (op->data_len == 0) {
		free(frame);
		frame = NULL;
	}
	r = push(a, op, frame, err, err_len);
	if (r < 0)
		free(frame);
	return r;
}

/* apply_push() with frame NULL or holding op's data; frees nothing. */
static int
push(struct apply *a, const struct proto_op *op, void *frame, char *err, size_t err_len)
{
	bool rs = op->type >= PROTO_RS_MIN;
	bool ns = rs ? (op->type == PROTO_RS_FILE || op->type == PROTO_RS_DATA ||
	                op->type == PROTO_RS_SYMLINK || op->type == PROTO_RS_NODE ||
	                op->type == PROTO_RS_LINK)
	             : (op->type != SHIM_OP_WRITE && op->type != SHIM_OP_FALLOCATE &&
	                op->type != SHIM_OP_FSYNC && op->type != SHIM_OP_FLUSH &&
	                op->type != SHIM_OP_RELEASE && op->type != SHIM_OP_SETATTR &&
	                op->type != SHIM_OP_SETXATTR && op->type != SHIM_OP_REMOVEXATTR &&
	                op->type != SHIM_OP_OPEN);
	struct apply_rec *rec;
	size_t off = 0, data_off;

	if (op->seq != a->received_seq + 1) {
		(void)snprintf(err, err_len, "sequence gap: expected seq %" PRIu64 ", got %" PRIu64,
		               a->received_seq + 1, op->seq);
		return MR_EPROTO;
	}
	if (op->dir >= a->n_dirs) {
		(void)snprintf(err, err_len, "op for replicated directory %u, only %zu configured",
		               op->dir, a->n_dirs);
		return MR_EPROTO;
	}
	/* namespace ops name an entry (never the root); others may name the root */
	if (proto_path_check(&op->path, !ns, err, err_len) < 0)
		return MR_EPROTO;
	if ((op->type == SHIM_OP_RENAME || (op->type == SHIM_OP_LINK && op->path2.len > 0) ||
	     op->type == PROTO_RS_LINK) &&
	    proto_path_check(&op->path2, false, err, err_len) < 0)
		return MR_EPROTO;
	if (op->type == PROTO_RS_DATA && (op->flags & PROTO_RS_DATA_ZLIB) &&
	    (op->size == 0 || op->size > PROTO_MAX_DATA)) {
		(void)snprintf(err, err_len, "compressed resync data of %" PRIu64 " bytes (at most %u)",
		               op->size, PROTO_MAX_DATA);
		return MR_EPROTO;
	}
	if ((op->type == SHIM_OP_SETXATTR || op->type == SHIM_OP_REMOVEXATTR) &&
	    op->name.len == 0) {
		(void)snprintf(err, err_len, "xattr op without a name");
		return MR_EPROTO;
	}
	rec = rec_alloc(op, frame, &data_off);
	if (rec == NULL) {
		(void)snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	rec->next = NULL;
	rec->frame = frame;
	rec->op = *op;
	off += copy_str(rec->buf + off, &rec->op.path);
	off += copy_str(rec->buf + off, &rec->op.path2);
	off += copy_str(rec->buf + off, &rec->op.name);
	if (frame == NULL) {
		if (op->data_len > 0)
			memcpy(rec->buf + data_off, op->data, op->data_len);
		rec->op.data = rec->buf + data_off;
	}
	a->received_seq = op->seq;

	pthread_mutex_lock(&a->mu);
	if (a->head == NULL && !a->busy && inline_ok(a, op)) {
		/* Nothing queued, nothing running: apply it here and save two thread
		 * hand-offs. Only page-cache work that cannot stall (async="second" or
		 * "async": no fsync is done, and the size is bounded) runs on the loop. */
		run_busy(a, rec);
		deliver(a);
		return 0;
	}
	if (a->tail != NULL)
		a->tail->next = rec;
	else
		a->head = rec;
	a->tail = rec;
	atomic_fetch_add(&a->queued_bytes, rec->op.data_len);
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->mu);
	return 0;
}

uint64_t
apply_last_seq(const struct apply *a)
{
	return a->received_seq;
}

uint64_t
apply_applied_seq(const struct apply *a)
{
	return atomic_load(&((struct apply *)a)->applied_seq);
}

bool
apply_failed(const struct apply *a)
{
	return atomic_load(&((struct apply *)a)->failed);
}

int
apply_new(uv_loop_t *loop, const int *root_fds, size_t n_dirs, enum conf_async async,
          uint64_t start_seq, apply_ack_fn ack_cb, apply_fail_fn fail_cb, void *ctx,
          struct apply **out)
{
	struct apply *a = calloc(1, sizeof(*a));
	int r;

	if (a == NULL)
		return -ENOMEM;
	a->loop = loop;
	a->roots = root_fds;
	a->n_dirs = n_dirs;
	a->async = async;
	a->rs_fd = -1;
	a->rs_dfd = -1;
	a->received_seq = a->acked_seq = start_seq;
	atomic_store(&a->applied_seq, start_seq);
	a->ack_cb = ack_cb;
	a->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	a->fail_cb = fail_cb;
	a->ctx = ctx;
	MR_BUG_ON(pthread_mutex_init(&a->mu, NULL) != 0);
	MR_BUG_ON(pthread_cond_init(&a->cond, NULL) != 0);
	MR_BUG_ON(uv_async_init(loop, &a->wake, wake_cb) != 0);
	a->wake.data = a;
	map_grow(a);
	r = pthread_create(&a->thread, NULL, apply_main, a);
	if (r != 0) {
		uv_close((uv_handle_t *)&a->wake, NULL);
		return -r; /* (a leaks until the loop closes the handle: startup only) */
	}
	(void)pthread_setname_np(a->thread, "mr-apply"); /* top -H, perf */
	*out = a;
	return 0;
}

static void
close_cb(uv_handle_t *h)
{
	struct apply *a = h->data;
	size_t i;

	for (i = 0; i < a->map_cap; i++)
		if (a->map[i].key != 0)
			fd_close(a->map[i].fd);
	free(a->map);
	free(a->zbuf);
	free(a->dbuf);
	while (a->hashes_head != NULL) {
		struct apply_hashes *ah = a->hashes_head;

		a->hashes_head = ah->next;
		free(ah);
	}
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cond);
	free(a);
}

void
apply_stop(struct apply *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	rs_fd_drop(a);
	uv_close((uv_handle_t *)&a->wake, close_cb);
}
