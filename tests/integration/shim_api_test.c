/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * shim_api_test.c - the interception API seen from an engine: mounts the shim
 * over a temporary directory with a submit callback that parks every op until
 * the test releases it, then checks that replies are deferred and that op
 * records carry the right type, file id, paths, offsets and data.
 *
 * Needs root and /dev/fuse (exit 77 otherwise). The FUSE loop runs in its own
 * thread; this process is also the application using the mount.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "shim.h"

#define MAX_OPS 4096

/* What the fake engine saw, in submission order. */
struct seen {
	enum shim_op_type type;
	uint64_t file_id;
	char path[256];
	char path2[256];
	uint32_t flags;
	uint32_t valid;
	mode_t mode;
	uint64_t off;
	uint64_t size;
	size_t len;
	uint64_t data_sum;
	char name[64];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct shim_op *pending[MAX_OPS]; /* parked, not completed */
	size_t n_pending;
	bool hold; /* park ops instead of completing */
	struct seen seen[MAX_OPS];
	size_t n_seen;
} eng = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static struct shim *g_shim;
static pthread_t g_loop;
static char g_tmp[64], g_dir[128];

static uint64_t
sum(const void *p, size_t len)
{
	const unsigned char *c = p;
	uint64_t h = 1469598103934665603ull;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ c[i]) * 1099511628211ull;
	return h;
}

static void
record(const struct shim_op *op)
{
	struct seen *x;

	if (eng.n_seen == MAX_OPS)
		return;
	x = &eng.seen[eng.n_seen++];
	memset(x, 0, sizeof(*x));
	x->type = op->type;
	x->file_id = op->file_id;
	if (op->path != NULL)
		snprintf(x->path, sizeof(x->path), "%s", op->path);
	else
		snprintf(x->path, sizeof(x->path), "(null)");
	if (op->path2 != NULL)
		snprintf(x->path2, sizeof(x->path2), "%s", op->path2);
	x->flags = op->flags;
	x->valid = op->valid;
	x->mode = op->mode;
	x->off = op->off;
	x->size = op->size;
	x->len = op->len;
	x->data_sum = op->data != NULL ? sum(op->data, op->len) : 0;
	if (op->name != NULL)
		snprintf(x->name, sizeof(x->name), "%s", op->name);
}

/* The submit callback: FUSE worker thread, ordering lock held. */
static bool
submit(void *ctx, struct shim_op *op)
{
	(void)ctx;
	pthread_mutex_lock(&eng.lock);
	record(op);
	if (eng.hold) {
		eng.pending[eng.n_pending++] = op;
		pthread_cond_broadcast(&eng.cond);
		pthread_mutex_unlock(&eng.lock);
		return true; /* taken: completed later by release_all() */
	}
	pthread_mutex_unlock(&eng.lock);
	return false; /* not taken: the shim completes it itself */
}

static void
release_all(void)
{
	struct shim_op *ops[MAX_OPS];
	size_t n, i;

	pthread_mutex_lock(&eng.lock);
	n = eng.n_pending;
	memcpy(ops, eng.pending, n * sizeof(ops[0]));
	eng.n_pending = 0;
	eng.hold = false;
	pthread_mutex_unlock(&eng.lock);
	for (i = 0; i < n; i++)
		shim_op_complete(ops[i]);
}

static size_t
mark(void)
{
	size_t n;

	pthread_mutex_lock(&eng.lock);
	n = eng.n_seen;
	pthread_mutex_unlock(&eng.lock);
	return n;
}

/* The first op of type at or after index from, or NULL. */
static const struct seen *
find(size_t from, enum shim_op_type type)
{
	const struct seen *r = NULL;
	size_t i;

	pthread_mutex_lock(&eng.lock);
	for (i = from; i < eng.n_seen; i++) {
		if (eng.seen[i].type == type) {
			r = &eng.seen[i];
			break;
		}
	}
	pthread_mutex_unlock(&eng.lock);
	return r;
}

/* As find(), but the op must be there. */
static const struct seen *
need(size_t from, enum shim_op_type type)
{
	const struct seen *r = find(from, type);

	if (r == NULL) {
		fail_msg("no %s op recorded", shim_op_name(type));
		abort();
	}
	return r;
}

/* Wait up to timeout_ms for a RELEASE of file_id at or after index from. */
static bool
wait_release(size_t from, uint64_t file_id, int timeout_ms)
{
	const struct seen *x;
	int waited;

	for (waited = 0; waited <= timeout_ms; waited += 10) {
		for (x = find(from, SHIM_OP_RELEASE); x != NULL;
		     x = find((size_t)(x - eng.seen) + 1, SHIM_OP_RELEASE))
			if (x->file_id == file_id)
				return true;
		usleep(10000);
	}
	return false;
}

static const char *
P(const char *rel)
{
	static _Thread_local char buf[4][256];
	static _Thread_local int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", g_dir, rel);
	return buf[k];
}

static void *
loop_main(void *arg)
{
	(void)arg;
	(void)shim_run(g_shim);
	return NULL;
}

static int
setup(void **state)
{
	struct shim_config cfg = { .submit = submit };
	char err[256];

	(void)state;
	snprintf(g_tmp, sizeof(g_tmp), "/tmp/hm-shimapi-XXXXXX");
	if (mkdtemp(g_tmp) == NULL)
		return -1;
	snprintf(g_dir, sizeof(g_dir), "%s/d", g_tmp);
	if (mkdir(g_dir, 0755) == -1)
		return -1;
	cfg.dir = g_dir;
	if (shim_new(&cfg, &g_shim, err, sizeof(err)) < 0) {
		fprintf(stderr, "shim_new: %s\n", err);
		return -1;
	}
	return pthread_create(&g_loop, NULL, loop_main, NULL) == 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[160];

	(void)state;
	release_all();
	shim_stop(g_shim);
	pthread_join(g_loop, NULL);
	shim_free(g_shim);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
	return system(cmd) == 0 ? 0 : -1;
}

struct writer {
	int fd;
	volatile int done;
	ssize_t r;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;

	w->r = write(w->fd, "deferred", 8);
	__atomic_store_n(&w->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* write() does not return before the engine completes the op. */
static void
reply_waits_for_completion(void **state)
{
	struct writer w = { 0 };
	struct timespec ts;
	pthread_t t;
	size_t m;
	int i;

	(void)state;
	w.fd = open(P("deferred"), O_CREAT | O_WRONLY, 0644);
	assert_true(w.fd >= 0);
	m = mark();
	pthread_mutex_lock(&eng.lock);
	eng.hold = true;
	pthread_mutex_unlock(&eng.lock);
	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);

	/* wait (bounded) until the write is parked in the engine */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&eng.lock);
	while (eng.n_pending == 0)
		if (pthread_cond_timedwait(&eng.cond, &eng.lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&eng.lock);
	assert_non_null(find(m, SHIM_OP_WRITE));
	/* parked: the application must still be inside write() */
	for (i = 0; i < 20; i++) {
		assert_int_equal(__atomic_load_n(&w.done, __ATOMIC_SEQ_CST), 0);
		usleep(10000);
	}
	release_all();
	pthread_join(t, NULL);
	assert_int_equal(w.r, 8);
	close(w.fd);
}

/* The file id is the object's, through renames and after unlink. */
static void
file_id_survives_rename_and_unlink(void **state)
{
	const struct seen *c, *wr, *rn;
	char buf[16] = { 0 };
	size_t m;
	int fd;

	(void)state;
	m = mark();
	fd = open(P("f"), O_CREAT | O_RDWR, 0640);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "abc", 3, 0), 3);
	assert_int_equal(rename(P("f"), P("g")), 0);
	assert_int_equal(pwrite(fd, "def", 3, 3), 3);
	assert_int_equal(unlink(P("g")), 0);
	assert_int_equal(pwrite(fd, "ghi", 3, 6), 3);
	assert_int_equal(pread(fd, buf, 9, 0), 9);
	assert_string_equal(buf, "abcdefghi");
	close(fd);

	c = need(m, SHIM_OP_CREATE);
	assert_non_null(c);
	assert_string_equal(c->path, "f");
	assert_int_equal(c->mode & 07777, 0640 & ~022u & 0640);
	rn = need(m, SHIM_OP_RENAME);
	assert_non_null(rn);
	assert_string_equal(rn->path, "f");
	assert_string_equal(rn->path2, "g");
	for (wr = find(m, SHIM_OP_WRITE); wr != NULL;
	     wr = find((size_t)(wr - eng.seen) + 1, SHIM_OP_WRITE)) {
		assert_int_equal(wr->file_id, c->file_id);
		assert_int_equal(wr->len, 3);
		if (wr->off == 6)
			assert_int_equal(wr->data_sum, sum("ghi", 3));
	}
	assert_string_equal(need(m, SHIM_OP_UNLINK)->path, "g");
	/* RELEASE is asynchronous (close() does not wait for it): poll, bounded */
	assert_true(wait_release(m, c->file_id, 10000));
}

/* Namespace ops carry paths relative to the replicated root. */
static void
namespace_paths(void **state)
{
	const struct seen *x;
	size_t m;
	int fd;

	(void)state;
	m = mark();
	assert_int_equal(mkdir(P("sub"), 0750), 0);
	assert_int_equal(mkdir(P("sub/deeper"), 0700), 0);
	fd = open(P("sub/deeper/x"), O_CREAT | O_WRONLY | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(symlink("../target", P("sub/ln")), 0);
	assert_int_equal(link(P("sub/deeper/x"), P("sub/hard")), 0);
	assert_int_equal(mkfifo(P("sub/fifo"), 0644), 0);
	assert_int_equal(syscall(SYS_renameat2, AT_FDCWD, P("sub/hard"), AT_FDCWD, P("sub/ln"),
	                         RENAME_EXCHANGE),
	                 0);
	assert_int_equal(rmdir(P("sub/deeper/x")), -1); /* ENOTDIR: no record */
	assert_int_equal(unlink(P("sub/fifo")), 0);

	x = need(m, SHIM_OP_MKDIR);
	assert_string_equal(x->path, "sub");
	assert_true(S_ISDIR(x->mode));
	x = need((size_t)(x - eng.seen) + 1, SHIM_OP_MKDIR);
	assert_string_equal(x->path, "sub/deeper");
	x = need(m, SHIM_OP_CREATE);
	assert_string_equal(x->path, "sub/deeper/x");
	assert_true(x->flags & O_EXCL);
	x = need(m, SHIM_OP_SYMLINK);
	assert_string_equal(x->path, "sub/ln");
	assert_string_equal(x->path2, "../target");
	x = need(m, SHIM_OP_LINK);
	assert_string_equal(x->path, "sub/hard");
	assert_string_equal(x->path2, "sub/deeper/x");
	assert_int_equal(x->file_id, need(m, SHIM_OP_CREATE)->file_id);
	x = need(m, SHIM_OP_MKNOD);
	assert_string_equal(x->path, "sub/fifo");
	assert_true(S_ISFIFO(x->mode));
	x = need(m, SHIM_OP_RENAME);
	assert_int_equal(x->flags, RENAME_EXCHANGE);
	assert_null(find(m, SHIM_OP_RMDIR));
	assert_string_equal(need(m, SHIM_OP_UNLINK)->path, "sub/fifo");
}

/* A failed operation produces no record. */
static void
failures_make_no_record(void **state)
{
	size_t m;

	(void)state;
	assert_int_equal(mkdir(P("dup"), 0755), 0);
	m = mark();
	assert_int_equal(mkdir(P("dup"), 0755), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(unlink(P("nothing-here")), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(mark(), m);
}

/* Data ops: setattr, truncate, fallocate, xattrs, fsync, O_TRUNC. */
static void
data_op_records(void **state)
{
	const struct seen *x;
	size_t m;
	int fd;

	(void)state;
	fd = open(P("data"), O_CREAT | O_RDWR, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "0123456789", 10, 0), 10);
	m = mark();
	assert_int_equal(fchmod(fd, 0600), 0);
	assert_int_equal(ftruncate(fd, 8192), 0);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096), 0);
	assert_int_equal(fsetxattr(fd, "user.k", "v1", 2, XATTR_CREATE), 0);
	assert_int_equal(fremovexattr(fd, "user.k"), 0);
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	fd = open(P("data"), O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	close(fd);

	x = need(m, SHIM_OP_SETATTR);
	assert_true(x->valid & SHIM_SET_MODE);
	assert_int_equal(x->mode & 07777, 0600);
	x = need((size_t)(x - eng.seen) + 1, SHIM_OP_SETATTR);
	assert_true(x->valid & SHIM_SET_SIZE);
	assert_int_equal(x->size, 8192);
	x = need(m, SHIM_OP_FALLOCATE);
	assert_int_equal(x->flags, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	assert_int_equal(x->off, 0);
	assert_int_equal(x->size, 4096);
	x = need(m, SHIM_OP_SETXATTR);
	assert_string_equal(x->name, "user.k");
	assert_int_equal(x->len, 2);
	assert_int_equal(x->flags, XATTR_CREATE);
	assert_string_equal(x->path, "data");
	x = need(m, SHIM_OP_REMOVEXATTR);
	assert_string_equal(x->name, "user.k");
	x = need(m, SHIM_OP_FSYNC);
	assert_int_equal(x->flags, 1); /* fdatasync first */
	x = need((size_t)(x - eng.seen) + 1, SHIM_OP_FSYNC);
	assert_int_equal(x->flags, 0);
	x = need(m, SHIM_OP_OPEN);
	assert_non_null(x);
	assert_true(x->flags & O_TRUNC);
	assert_string_equal(x->path, "data");
}

/* Large writes arrive whole (max_write 1 MiB) with an exact copy. */
static void
large_write_copy(void **state)
{
	const size_t len = 1u << 20;
	const struct seen *x;
	char *buf;
	size_t m, i;
	int fd;

	(void)state;
	buf = malloc(len);
	assert_non_null(buf);
	for (i = 0; i < len; i++)
		buf[i] = (char)(i * 7 + 3);
	fd = open(P("big"), O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	m = mark();
	assert_int_equal(pwrite(fd, buf, len, 1u << 20), (ssize_t)len);
	close(fd);
	x = need(m, SHIM_OP_WRITE);
	assert_non_null(x);
	assert_int_equal(x->off, 1u << 20);
	assert_int_equal(x->len, len);
	assert_int_equal(x->data_sum, sum(buf, len));
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reply_waits_for_completion),
		cmocka_unit_test(file_id_survives_rename_and_unlink),
		cmocka_unit_test(namespace_paths),
		cmocka_unit_test(failures_make_no_record),
		cmocka_unit_test(data_op_records),
		cmocka_unit_test(large_write_copy),
	};

	if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
		printf("SKIP: needs root and /dev/fuse\n");
		return 77;
	}
	umask(022);
	return cmocka_run_group_tests(tests, setup, teardown);
}
