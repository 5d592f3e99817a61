// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * shim_stress.c - concurrent file system workload for the shim (and raw dirs).
 *
 * N threads (default 8) each own a subtree DIR/t<N>/ and keep an exact in-memory model
 * of it: file contents, sizes, hard links, symlinks, xattrs and the directory listing.
 * Every read, stat and readdir is checked against the model, so any lost, reordered or
 * misplaced write is a failure. All threads also work in DIR/shared/ with a small pool
 * of names, where races are expected: ENOENT/EEXIST there are fine, but every file
 * that can be opened must hold a complete self-checking record (written to a private
 * temp name, then renamed in).
 *
 * Exit status 0 when every check passed, 1 on any unexpected errno or data mismatch,
 * 2 on usage errors. Prints per-operation counts. Runs until SECONDS elapse or MAX_OPS
 * operations were done, then verifies every live file once more.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define ST_SLOTS        24
#define ST_EMPTY_DIRS   6
#define ST_MAX_FILE     (192 * 1024)
#define ST_MAX_IO       (24 * 1024)
#define ST_SHARED_NAMES 16
#define ST_SHARED_DIRS  6
#define ST_REC_MAGIC    0x53484d5354524553ULL /* "SHMSTRES" */
#define ST_MAX_THREADS  64

enum st_op {
	OP_CREATE,
	OP_WRITE,
	OP_VERIFY,
	OP_RENAME,
	OP_UNLINK,
	OP_MKDIR,
	OP_RMDIR,
	OP_TRUNCATE,
	OP_FSYNC,
	OP_LINK,
	OP_SYMLINK,
	OP_XATTR,
	OP_STAT,
	OP_READDIR,
	OP_SH_CREATE,
	OP_SH_READ,
	OP_SH_UNLINK,
	OP_SH_RENAME,
	OP_SH_LINK,
	OP_SH_DIR,
	OP_SH_STAT,
	OP_SH_READDIR,
	OP__COUNT
};

static const char *const st_op_names[OP__COUNT] = {
	"create",  "write",          "verify",    "rename",     "unlink",    "mkdir",
	"rmdir",   "truncate",       "fsync",     "link",       "symlink",   "xattr",
	"stat",    "readdir",        "sh_create", "sh_read",    "sh_unlink", "sh_rename",
	"sh_link", "sh_mkdir_rmdir", "sh_stat",   "sh_readdir",
};

struct st_file {
	int live;
	unsigned int gen;   /* name is f<slot>_<gen> */
	int in_sub;         /* in t<N>/sub/ instead of t<N>/ */
	int fd;             /* -1 or an O_RDWR fd that follows renames */
	int has_alias;      /* hard link t<N>/a<slot> */
	int has_sym;        /* symlink t<N>/s<slot> -> the file */
	uint64_t xattr_val; /* 0: no user.seq */
	size_t size;
	unsigned char *data; /* ST_MAX_FILE bytes, the expected content */
};

struct st_thread {
	pthread_t tid;
	int idx;
	char dir[PATH_MAX];
	uint64_t rng;
	struct st_file files[ST_SLOTS];
	int empty_dirs[ST_EMPTY_DIRS];
	unsigned int next_gen;
	uint64_t counts[OP__COUNT];
	int failed;
	unsigned char *buf; /* ST_MAX_FILE + ST_MAX_IO scratch */
};

static const char *st_root;
static atomic_int st_stop;
static atomic_int st_failures;
static atomic_uint_fast64_t st_ops_done;
static uint64_t st_max_ops = UINT64_MAX;
static double st_deadline;

static double
now_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
rnd(struct st_thread *t)
{
	/* xorshift64* */
	t->rng ^= t->rng >> 12;
	t->rng ^= t->rng << 25;
	t->rng ^= t->rng >> 27;
	return t->rng * 2685821657736338717ULL;
}

static size_t
rnd_below(struct st_thread *t, size_t n)
{
	return n ? (size_t)(rnd(t) % n) : 0;
}

static void
fill(struct st_thread *t, unsigned char *p, size_t n)
{
	size_t i;
	uint64_t v = 0;

	for (i = 0; i < n; i++) {
		if (i % 8 == 0)
			v = rnd(t);
		p[i] = (unsigned char)(v >> (8 * (i % 8)));
	}
}

__attribute__((format(printf, 3, 4))) static void
fail(struct st_thread *t, const char *op, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "shim_stress: thread %d: %s: %s\n", t ? t->idx : -1, op, msg);
	if (t)
		t->failed = 1;
	atomic_fetch_add(&st_failures, 1);
	atomic_store(&st_stop, 1);
}

static void path_of(const struct st_thread *t, char *out, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void
path_of(const struct st_thread *t, char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	char rel[128];
	int n;

	va_start(ap, fmt);
	(void)vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	n = snprintf(out, len, "%s/%s", t->dir, rel);
	if (n < 0 || (size_t)n >= len)
		out[0] = '\0';
}

static void
file_rel(const struct st_thread *t, int slot, char *out, size_t len)
{
	const struct st_file *f = &t->files[slot];

	(void)snprintf(out, len, "%sf%d_%u", f->in_sub ? "sub/" : "", slot, f->gen);
}

static void
file_path(const struct st_thread *t, int slot, char *out, size_t len)
{
	char rel[64];

	file_rel(t, slot, rel, sizeof(rel));
	path_of(t, out, len, "%s", rel);
}

static int
write_all(int fd, const unsigned char *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

static ssize_t
read_all(int fd, unsigned char *p, size_t cap)
{
	size_t got = 0;

	while (got < cap) {
		ssize_t r = pread(fd, p + got, cap - got, (off_t)got);

		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Compare fd's whole content with the model; cap+1 bytes are read to catch growth. */
static int
check_content(struct st_thread *t, int slot, int fd, const char *op)
{
	struct st_file *f = &t->files[slot];
	ssize_t n = read_all(fd, t->buf, ST_MAX_FILE + 1);
	size_t i;

	if (n < 0) {
		fail(t, op, "read slot %d: %s", slot, strerror((int)-n));
		return -1;
	}
	if ((size_t)n != f->size) {
		fail(t, op, "slot %d: read %zd bytes, expected %zu", slot, n, f->size);
		return -1;
	}
	if (memcmp(t->buf, f->data, f->size) != 0) {
		for (i = 0; i < f->size && t->buf[i] == f->data[i]; i++)
			;
		fail(t, op,
		     "slot %d gen %u: content differs at offset %zu (xxh3 %016" PRIx64
		     " expected %016" PRIx64 ")",
		     slot, f->gen, i, (uint64_t)XXH3_64bits(t->buf, f->size),
		     (uint64_t)XXH3_64bits(f->data, f->size));
		return -1;
	}
	return 0;
}

static int
verify_slot(struct st_thread *t, int slot, const char *op)
{
	char p[PATH_MAX];
	int fd, r;

	file_path(t, slot, p, sizeof(p));
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		fail(t, op, "open %s: %s", p, strerror(errno));
		return -1;
	}
	r = check_content(t, slot, fd, op);
	if (r == 0 && t->files[slot].fd != -1)
		r = check_content(t, slot, t->files[slot].fd, op);
	(void)close(fd);
	return r;
}

static int
pick_live(struct st_thread *t, int want_live)
{
	int start = (int)rnd_below(t, ST_SLOTS), i;

	for (i = 0; i < ST_SLOTS; i++) {
		int s = (start + i) % ST_SLOTS;

		if (t->files[s].live == want_live)
			return s;
	}
	return -1;
}

static void
op_create(struct st_thread *t)
{
	int s = pick_live(t, 0);
	struct st_file *f;
	char p[PATH_MAX];
	int fd, r;

	if (s < 0)
		return;
	f = &t->files[s];
	f->gen = t->next_gen++;
	f->in_sub = (int)rnd_below(t, 4) == 0;
	f->size = rnd_below(t, ST_MAX_IO);
	fill(t, f->data, f->size);
	file_path(t, s, p, sizeof(p));
	fd = open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
	if (fd == -1) {
		fail(t, "create", "%s: %s", p, strerror(errno));
		return;
	}
	r = write_all(fd, f->data, f->size, 0);
	if (r < 0) {
		fail(t, "create", "write %s: %s", p, strerror(-r));
		(void)close(fd);
		return;
	}
	f->live = 1;
	f->has_alias = f->has_sym = 0;
	f->xattr_val = 0;
	if (rnd_below(t, 3) == 0) {
		f->fd = fd; /* keep it: later ops use it across renames */
	} else {
		f->fd = -1;
		if (close(fd) == -1)
			fail(t, "create", "close: %s", strerror(errno));
	}
}

static void
op_write(struct st_thread *t)
{
	int s = pick_live(t, 1), fd, r;
	struct st_file *f;
	size_t len, off;
	char p[PATH_MAX];

	if (s < 0)
		return;
	f = &t->files[s];
	len = 1 + rnd_below(t, ST_MAX_IO);
	off = rnd_below(t, ST_MAX_FILE - len);
	if (rnd_below(t, 2) && f->size + len <= ST_MAX_FILE)
		off = f->size; /* append-like */
	fill(t, t->buf, len);
	fd = f->fd;
	if (fd == -1) {
		file_path(t, s, p, sizeof(p));
		fd = open(p, O_WRONLY | O_CLOEXEC);
		if (fd == -1) {
			fail(t, "write", "open %s: %s", p, strerror(errno));
			return;
		}
	}
	r = write_all(fd, t->buf, len, (off_t)off);
	if (r < 0)
		fail(t, "write", "slot %d off %zu len %zu: %s", s, off, len, strerror(-r));
	if (off > f->size)
		memset(f->data + f->size, 0, off - f->size); /* the hole reads as zeros */
	memcpy(f->data + off, t->buf, len);
	if (off + len > f->size)
		f->size = off + len;
	if (fd != f->fd)
		(void)close(fd);
}

static void
op_rename(struct st_thread *t)
{
	int s = pick_live(t, 1);
	struct st_file *f;
	char from[PATH_MAX], to[PATH_MAX];

	if (s < 0)
		return;
	f = &t->files[s];
	if (f->has_sym) {
		path_of(t, from, sizeof(from), "s%d", s);
		if (unlink(from) == -1)
			fail(t, "rename", "unlink symlink %s: %s", from, strerror(errno));
		f->has_sym = 0;
	}
	file_path(t, s, from, sizeof(from));
	f->gen = t->next_gen++;
	f->in_sub = (int)rnd_below(t, 2);
	file_path(t, s, to, sizeof(to));
	if (rename(from, to) == -1) {
		fail(t, "rename", "%s -> %s: %s", from, to, strerror(errno));
		return;
	}
	if (f->fd != -1 && rnd_below(t, 2)) {
		/* A write through the fd opened before the rename must land in the file. */
		unsigned char b = (unsigned char)rnd(t);
		size_t off = rnd_below(t, f->size < ST_MAX_FILE ? f->size + 1 : f->size);
		int r = write_all(f->fd, &b, 1, (off_t)off);

		if (r < 0) {
			fail(t, "rename", "write via old fd: %s", strerror(-r));
			return;
		}
		if (off == f->size)
			f->size++;
		f->data[off] = b;
		(void)verify_slot(t, s, "rename");
	}
}

static void
op_unlink(struct st_thread *t)
{
	int s = pick_live(t, 1);
	struct st_file *f;
	char p[PATH_MAX];

	if (s < 0)
		return;
	f = &t->files[s];
	if (f->has_sym) {
		path_of(t, p, sizeof(p), "s%d", s);
		if (unlink(p) == -1)
			fail(t, "unlink", "symlink %s: %s", p, strerror(errno));
	}
	if (f->has_alias) {
		path_of(t, p, sizeof(p), "a%d", s);
		if (unlink(p) == -1)
			fail(t, "unlink", "alias %s: %s", p, strerror(errno));
	}
	file_path(t, s, p, sizeof(p));
	if (unlink(p) == -1) {
		fail(t, "unlink", "%s: %s", p, strerror(errno));
		return;
	}
	if (f->fd != -1) {
		/* Still usable after unlink: write, then read back through the same fd. */
		size_t len = 1 + rnd_below(t, 4096), off = rnd_below(t, f->size + 1);
		int r;

		if (off + len > ST_MAX_FILE)
			len = ST_MAX_FILE - off;
		fill(t, t->buf, len);
		r = write_all(f->fd, t->buf, len, (off_t)off);
		if (r < 0) {
			fail(t, "unlink", "write after unlink: %s", strerror(-r));
		} else {
			memcpy(f->data + off, t->buf, len);
			if (off + len > f->size)
				f->size = off + len;
			(void)check_content(t, s, f->fd, "unlink");
		}
		(void)close(f->fd);
		f->fd = -1;
	}
	f->live = 0;
	f->has_sym = f->has_alias = 0;
}

static void
op_mkdir_rmdir(struct st_thread *t, int mk)
{
	int k = (int)rnd_below(t, ST_EMPTY_DIRS);
	char p[PATH_MAX];

	path_of(t, p, sizeof(p), "e%d", k);
	if (mk && !t->empty_dirs[k]) {
		if (mkdir(p, 0755) == -1)
			fail(t, "mkdir", "%s: %s", p, strerror(errno));
		else
			t->empty_dirs[k] = 1;
	} else if (mk) {
		if (mkdir(p, 0755) == 0 || errno != EEXIST)
			fail(t, "mkdir", "%s exists; expected EEXIST, got %s", p, strerror(errno));
	} else if (t->empty_dirs[k]) {
		if (rmdir(p) == -1)
			fail(t, "rmdir", "%s: %s", p, strerror(errno));
		else
			t->empty_dirs[k] = 0;
	} else {
		if (rmdir(p) == 0 || errno != ENOENT)
			fail(t, "rmdir", "%s is gone; expected ENOENT, got %s", p, strerror(errno));
	}
}

static void
op_truncate(struct st_thread *t)
{
	int s = pick_live(t, 1);
	struct st_file *f;
	size_t len;
	char p[PATH_MAX];
	int r;

	if (s < 0)
		return;
	f = &t->files[s];
	len = rnd_below(t, ST_MAX_FILE / 2);
	if (f->fd != -1 && rnd_below(t, 2)) {
		r = ftruncate(f->fd, (off_t)len);
	} else {
		file_path(t, s, p, sizeof(p));
		r = truncate(p, (off_t)len);
	}
	if (r == -1) {
		fail(t, "truncate", "slot %d to %zu: %s", s, len, strerror(errno));
		return;
	}
	if (len > f->size)
		memset(f->data + f->size, 0, len - f->size);
	f->size = len;
}

static void
op_fsync(struct st_thread *t)
{
	int s = pick_live(t, 1), fd, r;
	char p[PATH_MAX];

	if (s < 0)
		return;
	if (rnd_below(t, 4) == 0) {
		fd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else if (t->files[s].fd != -1) {
		fd = dup(t->files[s].fd);
	} else {
		file_path(t, s, p, sizeof(p));
		fd = open(p, O_RDONLY | O_CLOEXEC);
	}
	if (fd == -1) {
		fail(t, "fsync", "open: %s", strerror(errno));
		return;
	}
	r = rnd_below(t, 2) ? fsync(fd) : fdatasync(fd);
	if (r == -1)
		fail(t, "fsync", "slot %d: %s", s, strerror(errno));
	(void)close(fd);
}

static void
op_link(struct st_thread *t)
{
	int s = pick_live(t, 1);
	struct st_file *f;
	char from[PATH_MAX], to[PATH_MAX];
	struct stat a, b;

	if (s < 0)
		return;
	f = &t->files[s];
	file_path(t, s, from, sizeof(from));
	path_of(t, to, sizeof(to), "a%d", s);
	if (f->has_alias) {
		if (unlink(to) == -1)
			fail(t, "link", "unlink alias %s: %s", to, strerror(errno));
		f->has_alias = 0;
		return;
	}
	if (link(from, to) == -1) {
		fail(t, "link", "%s -> %s: %s", from, to, strerror(errno));
		return;
	}
	f->has_alias = 1;
	if (stat(from, &a) == -1 || stat(to, &b) == -1) {
		fail(t, "link", "stat: %s", strerror(errno));
		return;
	}
	if (a.st_ino != b.st_ino || a.st_nlink != 2 || b.st_nlink != 2)
		fail(t, "link", "slot %d: ino %ju/%ju nlink %ju/%ju, expected same ino, nlink 2", s,
		     (uintmax_t)a.st_ino, (uintmax_t)b.st_ino, (uintmax_t)a.st_nlink,
		     (uintmax_t)b.st_nlink);
}

static void
op_symlink(struct st_thread *t)
{
	int s = pick_live(t, 1);
	struct st_file *f;
	char target[64], lp[PATH_MAX], got[128];
	struct stat st;
	ssize_t n;

	if (s < 0)
		return;
	f = &t->files[s];
	path_of(t, lp, sizeof(lp), "s%d", s);
	if (f->has_sym) {
		if (unlink(lp) == -1)
			fail(t, "symlink", "unlink %s: %s", lp, strerror(errno));
		f->has_sym = 0;
		return;
	}
	file_rel(t, s, target, sizeof(target));
	if (symlink(target, lp) == -1) {
		fail(t, "symlink", "%s: %s", lp, strerror(errno));
		return;
	}
	f->has_sym = 1;
	n = readlink(lp, got, sizeof(got) - 1);
	if (n < 0 || (size_t)n != strlen(target) || memcmp(got, target, (size_t)n) != 0) {
		fail(t, "symlink", "readlink %s: got %zd bytes, expected %s", lp, n, target);
		return;
	}
	if (stat(lp, &st) == -1 || (size_t)st.st_size != f->size)
		fail(t, "symlink", "stat through %s: size %jd, expected %zu (%s)", lp,
		     (intmax_t)st.st_size, f->size, strerror(errno));
}

static void
op_xattr(struct st_thread *t)
{
	int s = pick_live(t, 1);
	struct st_file *f;
	char p[PATH_MAX];
	uint64_t v, got = 0;
	ssize_t n;

	if (s < 0)
		return;
	f = &t->files[s];
	file_path(t, s, p, sizeof(p));
	if (f->xattr_val) {
		n = getxattr(p, "user.seq", &got, sizeof(got));
		if (n != (ssize_t)sizeof(got) || got != f->xattr_val) {
			fail(t, "xattr",
			     "get %s: n=%zd value %" PRIu64 " expected %" PRIu64 " (%s)", p, n, got,
			     f->xattr_val, strerror(errno));
			return;
		}
	} else if (getxattr(p, "user.seq", &got, sizeof(got)) != -1 || errno != ENODATA) {
		fail(t, "xattr", "get %s: expected ENODATA, got %s", p, strerror(errno));
		return;
	}
	v = rnd(t) | 1;
	if (setxattr(p, "user.seq", &v, sizeof(v), 0) == -1) {
		fail(t, "xattr", "set %s: %s", p, strerror(errno));
		return;
	}
	f->xattr_val = v;
}

static void
op_stat(struct st_thread *t)
{
	int s = pick_live(t, 1);
	struct st_file *f;
	char p[PATH_MAX];
	struct stat st;
	nlink_t want;

	if (s < 0)
		return;
	f = &t->files[s];
	file_path(t, s, p, sizeof(p));
	if (stat(p, &st) == -1) {
		fail(t, "stat", "%s: %s", p, strerror(errno));
		return;
	}
	want = f->has_alias ? 2 : 1;
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size != f->size || st.st_nlink != want)
		fail(t, "stat", "%s: mode %o size %jd nlink %ju, expected regular, %zu, %ju", p,
		     (unsigned int)st.st_mode, (intmax_t)st.st_size, (uintmax_t)st.st_nlink,
		     f->size, (uintmax_t)want);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List dir (relative "" or "sub") and compare with the names the model expects. */
static void
check_listing(struct st_thread *t, int sub)
{
	char *want[ST_SLOTS * 3 + ST_EMPTY_DIRS + 2], *got[ST_SLOTS * 3 + ST_EMPTY_DIRS + 64];
	size_t nw = 0, ng = 0, i;
	char name[64], p[PATH_MAX];
	struct dirent *de;
	DIR *dp;
	int s, k;

	for (s = 0; s < ST_SLOTS; s++) {
		struct st_file *f = &t->files[s];

		if (!f->live)
			continue;
		if (f->in_sub == sub) {
			(void)snprintf(name, sizeof(name), "f%d_%u", s, f->gen);
			want[nw++] = strdup(name);
		}
		if (!sub && f->has_alias) {
			(void)snprintf(name, sizeof(name), "a%d", s);
			want[nw++] = strdup(name);
		}
		if (!sub && f->has_sym) {
			(void)snprintf(name, sizeof(name), "s%d", s);
			want[nw++] = strdup(name);
		}
	}
	if (!sub) {
		want[nw++] = strdup("sub");
		for (k = 0; k < ST_EMPTY_DIRS; k++) {
			if (t->empty_dirs[k]) {
				(void)snprintf(name, sizeof(name), "e%d", k);
				want[nw++] = strdup(name);
			}
		}
	}
	path_of(t, p, sizeof(p), "%s", sub ? "sub" : ".");
	dp = opendir(p);
	if (dp == NULL) {
		fail(t, "readdir", "opendir %s: %s", p, strerror(errno));
		goto out;
	}
	while ((de = readdir(dp)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (ng == sizeof(got) / sizeof(got[0])) {
			fail(t, "readdir", "%s: too many entries", p);
			break;
		}
		got[ng++] = strdup(de->d_name);
	}
	(void)closedir(dp);
	qsort(want, nw, sizeof(want[0]), cmp_str);
	qsort(got, ng, sizeof(got[0]), cmp_str);
	if (nw != ng) {
		fail(t, "readdir", "%s: %zu entries, expected %zu", p, ng, nw);
	} else {
		for (i = 0; i < nw; i++) {
			if (strcmp(want[i], got[i]) != 0) {
				fail(t, "readdir", "%s: entry %s, expected %s", p, got[i], want[i]);
				break;
			}
		}
	}
	for (i = 0; i < ng; i++)
		free(got[i]);
out:
	for (i = 0; i < nw; i++)
		free(want[i]);
}

/* --- shared directory: races expected, only ENOENT/EEXIST tolerated ----------------- */

struct st_record {
	uint64_t magic;
	uint64_t len;  /* payload bytes */
	uint64_t hash; /* XXH3 of the payload */
	uint64_t writer;
};

static int sh_path(char *out, size_t len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int
sh_path(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	char rel[96];
	int n;

	va_start(ap, fmt);
	(void)vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	n = snprintf(out, len, "%s/shared/%s", st_root, rel);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

static int
tolerated(int e)
{
	return e == ENOENT || e == EEXIST;
}

static void
sh_create(struct st_thread *t)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	struct st_record rec = { .magic = ST_REC_MAGIC, .writer = (uint64_t)t->idx };
	size_t len = rnd_below(t, 32 * 1024);
	int fd, r;

	(void)sh_path(tmp, sizeof(tmp), ".tmp.%d", t->idx);
	(void)sh_path(dst, sizeof(dst), "sf%02d", (int)rnd_below(t, ST_SHARED_NAMES));
	fill(t, t->buf + sizeof(rec), len);
	rec.len = len;
	rec.hash = XXH3_64bits(t->buf + sizeof(rec), len);
	memcpy(t->buf, &rec, sizeof(rec));
	fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	if (fd == -1) {
		fail(t, "sh_create", "open %s: %s", tmp, strerror(errno));
		return;
	}
	r = write_all(fd, t->buf, sizeof(rec) + len, 0);
	if (r == 0 && rnd_below(t, 8) == 0 && fdatasync(fd) == -1)
		r = -errno;
	if (close(fd) == -1 && r == 0)
		r = -errno;
	if (r < 0) {
		fail(t, "sh_create", "write %s: %s", tmp, strerror(-r));
		return;
	}
	if (rename(tmp, dst) == -1)
		fail(t, "sh_create", "rename %s -> %s: %s", tmp, dst, strerror(errno));
}

static void
sh_read(struct st_thread *t)
{
	char p[PATH_MAX];
	struct st_record rec;
	ssize_t n;
	int fd;

	(void)sh_path(p, sizeof(p), "sf%02d", (int)rnd_below(t, ST_SHARED_NAMES));
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		if (!tolerated(errno))
			fail(t, "sh_read", "open %s: %s", p, strerror(errno));
		return;
	}
	n = read_all(fd, t->buf, ST_MAX_FILE);
	(void)close(fd);
	if (n < 0) {
		fail(t, "sh_read", "read %s: %s", p, strerror((int)-n));
		return;
	}
	memcpy(&rec, t->buf, n >= (ssize_t)sizeof(rec) ? sizeof(rec) : 0);
	if (n < (ssize_t)sizeof(rec) || rec.magic != ST_REC_MAGIC ||
	    rec.len != (uint64_t)n - sizeof(rec) ||
	    rec.hash != XXH3_64bits(t->buf + sizeof(rec), (size_t)n - sizeof(rec)))
		fail(t, "sh_read", "%s: torn or corrupt record (%zd bytes)", p, n);
}

static void
sh_misc(struct st_thread *t, enum st_op op)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct stat st;
	int r = 0;

	(void)sh_path(a, sizeof(a), "sf%02d", (int)rnd_below(t, ST_SHARED_NAMES));
	(void)sh_path(b, sizeof(b), "sf%02d", (int)rnd_below(t, ST_SHARED_NAMES));
	switch (op) {
	case OP_SH_UNLINK:
		r = unlink(a);
		break;
	case OP_SH_RENAME:
		r = rename(a, b);
		break;
	case OP_SH_LINK:
		r = link(a, b);
		break;
	case OP_SH_STAT:
		r = stat(a, &st);
		if (r == 0 && !S_ISREG(st.st_mode))
			fail(t, "sh_stat", "%s is not a regular file", a);
		break;
	case OP_SH_DIR:
		(void)sh_path(a, sizeof(a), "sd%02d", (int)rnd_below(t, ST_SHARED_DIRS));
		r = rnd_below(t, 2) ? mkdir(a, 0755) : rmdir(a);
		break;
	default:
		break;
	}
	if (r == -1 && !tolerated(errno))
		fail(t, st_op_names[op], "%s: %s", a, strerror(errno));
}

static void
sh_readdir(struct st_thread *t)
{
	char p[PATH_MAX];
	struct dirent *de;
	DIR *dp;

	(void)sh_path(p, sizeof(p), "%s", ".");
	dp = opendir(p);
	if (dp == NULL) {
		fail(t, "sh_readdir", "opendir %s: %s", p, strerror(errno));
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((strncmp(de->d_name, "sf", 2) != 0 && strncmp(de->d_name, "sd", 2) != 0) ||
		    strlen(de->d_name) != 4)
			fail(t, "sh_readdir", "unexpected entry %s", de->d_name);
	}
	(void)closedir(dp);
}

static void
do_op(struct st_thread *t, enum st_op op)
{
	switch (op) {
	case OP_CREATE:
		op_create(t);
		break;
	case OP_WRITE:
		op_write(t);
		break;
	case OP_VERIFY: {
		int s = pick_live(t, 1);

		if (s >= 0)
			(void)verify_slot(t, s, "verify");
		break;
	}
	case OP_RENAME:
		op_rename(t);
		break;
	case OP_UNLINK:
		op_unlink(t);
		break;
	case OP_MKDIR:
		op_mkdir_rmdir(t, 1);
		break;
	case OP_RMDIR:
		op_mkdir_rmdir(t, 0);
		break;
	case OP_TRUNCATE:
		op_truncate(t);
		break;
	case OP_FSYNC:
		op_fsync(t);
		break;
	case OP_LINK:
		op_link(t);
		break;
	case OP_SYMLINK:
		op_symlink(t);
		break;
	case OP_XATTR:
		op_xattr(t);
		break;
	case OP_STAT:
		op_stat(t);
		break;
	case OP_READDIR:
		check_listing(t, (int)rnd_below(t, 2));
		break;
	case OP_SH_CREATE:
		sh_create(t);
		break;
	case OP_SH_READ:
		sh_read(t);
		break;
	case OP_SH_READDIR:
		sh_readdir(t);
		break;
	default:
		sh_misc(t, op);
		break;
	}
}

/* Relative weights of the operations. */
static const unsigned int st_weights[OP__COUNT] = {
	[OP_CREATE] = 10,   [OP_WRITE] = 30,     [OP_VERIFY] = 12,   [OP_RENAME] = 6,
	[OP_UNLINK] = 6,    [OP_MKDIR] = 3,      [OP_RMDIR] = 3,     [OP_TRUNCATE] = 5,
	[OP_FSYNC] = 3,     [OP_LINK] = 4,       [OP_SYMLINK] = 4,   [OP_XATTR] = 5,
	[OP_STAT] = 8,      [OP_READDIR] = 3,    [OP_SH_CREATE] = 6, [OP_SH_READ] = 8,
	[OP_SH_UNLINK] = 2, [OP_SH_RENAME] = 3,  [OP_SH_LINK] = 2,   [OP_SH_DIR] = 2,
	[OP_SH_STAT] = 4,   [OP_SH_READDIR] = 1,
};

static enum st_op
pick_op(struct st_thread *t)
{
	unsigned int total = 0, x, i;

	for (i = 0; i < OP__COUNT; i++)
		total += st_weights[i];
	x = (unsigned int)rnd_below(t, total);
	for (i = 0; i < OP__COUNT; i++) {
		if (x < st_weights[i])
			return (enum st_op)i;
		x -= st_weights[i];
	}
	return OP_STAT;
}

static void *
worker(void *arg)
{
	struct st_thread *t = arg;
	int s;

	while (!atomic_load(&st_stop)) {
		enum st_op op;

		if (atomic_fetch_add(&st_ops_done, 1) >= st_max_ops || now_s() >= st_deadline)
			break;
		op = pick_op(t);
		do_op(t, op);
		t->counts[op]++;
	}
	/* Final pass: every live file and both listings match the model. */
	for (s = 0; s < ST_SLOTS && !t->failed; s++) {
		if (t->files[s].live)
			(void)verify_slot(t, s, "final-verify");
	}
	if (!t->failed) {
		check_listing(t, 0);
		check_listing(t, 1);
	}
	for (s = 0; s < ST_SLOTS; s++) {
		if (t->files[s].fd != -1 && close(t->files[s].fd) == -1)
			fail(t, "close", "slot %d: %s", s, strerror(errno));
		t->files[s].fd = -1;
	}
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: shim_stress [-s SECONDS] [-n MAX_OPS] [-t THREADS] [-S SEED] DIR\n"
	        "  8 threads of mixed file system operations in DIR/t<N>/ and DIR/shared/,\n"
	        "  every result checked; default 20 s, unlimited ops.\n");
}

int
main(int argc, char **argv)
{
	struct st_thread *th;
	double seconds = 20.0, t0;
	uint64_t totals[OP__COUNT] = { 0 }, sum = 0, seed = (uint64_t)time(NULL);
	int nthreads = 8, c, i, j, r;
	char p[PATH_MAX];

	while ((c = getopt(argc, argv, "s:n:t:S:h")) != -1) {
		switch (c) {
		case 's':
			seconds = strtod(optarg, NULL);
			break;
		case 'n':
			st_max_ops = strtoull(optarg, NULL, 10);
			break;
		case 't':
			nthreads = atoi(optarg);
			break;
		case 'S':
			seed = strtoull(optarg, NULL, 10);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (optind != argc - 1 || seconds <= 0 || nthreads < 1 || nthreads > ST_MAX_THREADS) {
		usage();
		return 2;
	}
	st_root = argv[optind];
	if (snprintf(p, sizeof(p), "%s/shared", st_root) >= (int)sizeof(p) ||
	    (mkdir(p, 0755) == -1 && errno != EEXIST)) {
		fprintf(stderr, "shim_stress: mkdir %s: %s\n", p, strerror(errno));
		return 1;
	}
	th = calloc((size_t)nthreads, sizeof(*th));
	if (th == NULL)
		return 1;
	printf("shim_stress: %d threads, %.0f s, max ops %" PRIu64 ", seed %" PRIu64 ", dir %s\n",
	       nthreads, seconds, st_max_ops, seed, st_root);
	for (i = 0; i < nthreads; i++) {
		struct st_thread *t = &th[i];

		t->idx = i;
		t->rng = (seed + 1) * 0x9e3779b97f4a7c15ULL + (uint64_t)i * 0x2545f4914f6cdd1dULL;
		if (t->rng == 0)
			t->rng = 1;
		(void)snprintf(t->dir, sizeof(t->dir), "%s/t%d", st_root, i);
		t->buf = calloc(1, ST_MAX_FILE + ST_MAX_IO + 64);
		for (j = 0; j < ST_SLOTS; j++) {
			t->files[j].fd = -1;
			t->files[j].data = calloc(1, ST_MAX_FILE);
			if (t->files[j].data == NULL)
				return 1;
		}
		if (t->buf == NULL || mkdir(t->dir, 0755) == -1) {
			fprintf(stderr, "shim_stress: mkdir %s: %s\n", t->dir, strerror(errno));
			return 1;
		}
		path_of(t, p, sizeof(p), "sub");
		if (mkdir(p, 0755) == -1) {
			fprintf(stderr, "shim_stress: mkdir %s: %s\n", p, strerror(errno));
			return 1;
		}
	}
	t0 = now_s();
	st_deadline = t0 + seconds;
	for (i = 0; i < nthreads; i++) {
		r = pthread_create(&th[i].tid, NULL, worker, &th[i]);
		if (r != 0) {
			fprintf(stderr, "shim_stress: pthread_create: %s\n", strerror(r));
			atomic_store(&st_stop, 1);
			nthreads = i;
			atomic_fetch_add(&st_failures, 1);
			break;
		}
	}
	for (i = 0; i < nthreads; i++)
		(void)pthread_join(th[i].tid, NULL);
	for (i = 0; i < nthreads; i++) {
		for (j = 0; j < OP__COUNT; j++)
			totals[j] += th[i].counts[j];
		for (j = 0; j < ST_SLOTS; j++)
			free(th[i].files[j].data);
		free(th[i].buf);
	}
	for (j = 0; j < OP__COUNT; j++) {
		printf("  %-16s %10" PRIu64 "\n", st_op_names[j], totals[j]);
		sum += totals[j];
	}
	printf("shim_stress: %" PRIu64 " ops in %.1f s (%.0f ops/s), %d failures\n", sum,
	       now_s() - t0, (double)sum / (now_s() - t0 + 1e-9), atomic_load(&st_failures));
	free(th);
	if (atomic_load(&st_failures) == 0)
		printf("shim_stress: verification passed\n");
	return atomic_load(&st_failures) ? 1 : 0;
}
