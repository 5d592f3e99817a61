/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * resync.c - the primary's side of a resync (see resync.h).
 *
 * The algorithm
 * -------------
 * The secondary's copy is made to match while the application keeps writing,
 * in the same ordered stream as the live ops. A pass walks the real
 * replicated directories (not the FUSE mount) and, for each object, takes the
 * replication engine's order lock (repl_rs_lock: live ops wait), reads what
 * it needs from the real directory and queues a record (RS_DIR, RS_FILE,
 * RS_DATA in 256 KiB chunks, RS_SYMLINK, RS_NODE, RS_META), then lets go.
 * A live op that changed the object before the read is in the data read, and
 * is applied before the record on the secondary (its sequence number is
 * lower): the record, written over it, gives the same bytes. A live op after
 * the read is applied after the record, as on the primary. So at the end of
 * a pass every object the pass visited matches, whatever the application did.
 *
 * What a single pass cannot promise: a live op the secondary could not apply
 * (its path was not reconciled yet), and a rename or link during the pass (a
 * directory moved into a part already walked escapes the walk). The
 * secondary counts the first kind and answers RS_END with the count
 * (PROTO_RS_RESULT); the engine counts the second. A pass with neither is
 * clean: the secondary is up to date from its RS_END on. Otherwise another
 * pass runs, up to RESYNC_MAX_PASSES.
 *
 * A file whose name now points to another inode (unlinked and created again
 * during the pass) is left alone: the new file's whole history is in the
 * stream after its creation. A regular file with several names is synced
 * under the first name a pass meets; each later name becomes RS_LINK to it.
 * Extended attributes travel in RS_META (the whole set, not for symlinks).
 *
 * Two ways to decide what data to send (resync_start): with a dirty set that
 * is trusted for the target's generation (dirty.h), only the files of the set
 * are looked at and only their marked blocks sent, without checksums; without
 * one, the target hashes each 4 KiB block of its copy (RS_HASHREQ, answered
 * in stream order) and only the blocks that differ are sent. Files are hashed
 * up to `ahead_max` ahead of the one being sent, so the stream does not drain
 * at file boundaries. `mirrorctl verify` walks the same way but only compares.
 */
#include "resync.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "dirty.h"
#include "log.h"
#include "proto.h"
#include "repl.h"
#include "shim.h"
#include "util.h"

#include <xxhash.h>
#include <zlib.h>

#define RESYNC_CHUNK      (1024u * 1024u)
#define RESYNC_ZCHUNK     (256u * 1024u) /* when compressing (zlib runs under the lock) */
#define RESYNC_ZSKIP      16u /* chunks sent plain after one that did not compress */
#define RESYNC_AREA_MIN   (256u * 1024u) /* read straight into a record from this size */
#define RESYNC_SHARE_MIN  (8u << 20)     /* a range shared by two readers from this size */
#define RESYNC_MAX_PASSES 10u
#define RESYNC_AHEAD      64u /* most files hashed ahead of the one being sent */
#define RESYNC_NO_PRUNE   1u /* RS_DIR flag: the list was too long; keep extras */
#define VERIFY_RANGE      (8u << 20) /* bytes hashed under the lock at a time */
#define VERIFY_LIST_MAX   1000u      /* differing files listed */

/* A file with more than one name, met in this pass under path. */
struct rs_linked {
	dev_t dev;
	ino_t ino;
	uint8_t dir;
	char *path;
};

/* The target's answer to one RS_HASHREQ. */
struct rs_answer {
	struct rs_answer *next;
	uint64_t req;
	uint32_t n; /* hashes (0: the target has no such block) */
	uint8_t hashes[];
};

/* A file whose RS_FILE and first RS_HASHREQ are queued, its data not yet
 * compared: up to RESYNC_AHEAD of them, so that the target hashes the next
 * files while this side reads and sends the current one (the stream never
 * drains at a file boundary). */
struct rs_pending {
	char path[PROTO_MAX_STR + 1];
	uint8_t dir;
	int fd;
	struct stat st;
	uint64_t req; /* the RS_HASHREQ of [0, len) */
	uint64_t len;
	uint64_t ns_ops; /* repl's namespace op count when the name was last checked */
};


struct resync {
	uv_loop_t *loop;
	struct repl *r;       /* borrowed */
	const int *roots;     /* borrowed */
	size_t n_dirs;
	resync_done_fn done;
	void *ctx;
	struct dirty *dirty; /* borrowed: trusted set, or NULL (compare everything) */
	unsigned ahead_max;  /* files hashed ahead, 1..RESYNC_AHEAD */
	bool verify;         /* compare only (`mirrorctl verify`) */
	void (*ns_hold)(void *ctx, uint8_t dir, bool hold); /* see resync_opts */
	void *ns_ctx;
	json_t *differ;      /* verify: [ {dir, path, blocks}... ] (mu) */
	atomic_uint_fast64_t differ_files;
	atomic_uint_fast64_t differ_bytes;
	uint64_t bw;         /* bytes per second, or 0 */
	uint32_t block;      /* the unit compared by hash (<rfs reiblocksize>) */
	uint8_t zero_hash[PROTO_HASH_LEN]; /* of a block of zeros */
	enum resync_compress compress;
	uint64_t z_rate;     /* resync thread: zlib level 1 measured, bytes/s (0: not yet) */
	unsigned z_skip;     /* resync thread: chunks to send plain before trying again */
	Bytef *zbuf;         /* resync thread: compressBound(RESYNC_CHUNK) bytes */
	atomic_uint_fast64_t z_in, z_out; /* bytes compressed, and what they became */
	pthread_t thread;
	uv_async_t async;
	uint64_t start_ms;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;         /* mu */
	bool have_result;  /* mu */
	uint64_t res_seq;  /* mu */
	uint64_t res_fail; /* mu */
	struct rs_answer *ans_head; /* mu: RS_HASHES received, in stream order */
	struct rs_answer *ans_tail; /* mu */
	bool finished;     /* mu: the thread is done */
	bool ok;           /* mu */
	char why[160];     /* mu */

	atomic_uint_fast64_t files;
	atomic_uint_fast64_t skipped; /* files not in the trusted dirty set */
	atomic_uint_fast64_t bytes;
	atomic_uint_fast64_t total_bytes;
	atomic_uint_fast64_t sent_bytes;
	atomic_uint pass;
	/* files and bytes when the current pass began: status shows the pass's
	 * progress against the tree's size (a second pass reads it again) */
	atomic_uint_fast64_t pass_files0;
	atomic_uint_fast64_t pass_bytes0;
	bool reported; /* loop thread */
	uint64_t end_ms; /* loop thread: when a verify finished */

	struct rs_pending ahead[RESYNC_AHEAD]; /* resync thread: a ring */
	unsigned ahead_first, ahead_n;
	char *buf;       /* resync thread: RESYNC_CHUNK bytes */
	char *buf2;      /* the second reader's (send_range), or NULL: one CPU */
	char *xattr_buf; /* resync thread: PROTO_MAX_DATA bytes */
	struct rs_linked *links; /* resync thread: files with st_nlink > 1 met this pass */
	size_t n_links, cap_links;
};

/* Bytes whose hashes fit one RS_HASHES frame. */
static uint64_t
rs_range(const struct resync *rs)
{
	return (uint64_t)(PROTO_MAX_DATA / PROTO_HASH_LEN) * rs->block;
}

/* Should the next chunk be compressed? With "auto", only when the link is
 * known to be slower than zlib: a bandwidth cap (<rfs reiallowedbw>) below
 * the compressor's measured rate. On an uncapped LAN link TLS moves
 * 0.5-0.9 GB/s and zlib level 1 deflates 70-130 MB/s per core: never. */
static bool
want_zlib(struct resync *rs)
{
	if (rs->compress == RESYNC_COMPRESS_OFF || rs->zbuf == NULL)
		return false;
	if (rs->z_skip > 0) {
		rs->z_skip--;
		return false;
	}
	if (rs->compress == RESYNC_COMPRESS_ON)
		return true;
	return rs->bw > 0 && (rs->z_rate == 0 || rs->z_rate > rs->bw + rs->bw / 4);
}

/* Bytes read under the lock at a time (a multiple of the block). */
static size_t
rs_chunk(const struct resync *rs)
{
	size_t c = rs->compress != RESYNC_COMPRESS_OFF && rs->zbuf != NULL &&
	                           (rs->compress == RESYNC_COMPRESS_ON || rs->bw > 0)
	                   ? RESYNC_ZCHUNK
	                   : RESYNC_CHUNK;

	return c < rs->block ? rs->block : c;
}

/* Under the lock: does p's name still lead to the inode read? Checked again
 * only after a namespace op. */
static bool
same_inode_locked(struct resync *rs, struct rs_pending *p)
{
	uint64_t ns = repl_rs_ns_ops_locked(rs->r);
	struct stat now;

	if (ns == p->ns_ops)
		return true;
	if (fstatat(rs->roots[p->dir], p->path, &now, AT_SYMLINK_NOFOLLOW) == -1 ||
	    now.st_ino != p->st.st_ino || now.st_dev != p->st.st_dev)
		return false;
	p->ns_ops = ns;
	return true;
}

/* Open path (relative, "" = the root) beneath root one component at a time
 * with O_NOFOLLOW, so that a directory swapped for a symlink during the walk
 * cannot lead outside the replicated directory. (Plain openat, unlike openat2
 * through syscall(), is also seen by ThreadSanitizer's fd tracking.) */
static int
open_beneath(int root, const char *path, int flags)
{
	char comp[PROTO_MAX_STR + 1];
	const char *p = path, *slash;
	int dfd = root, fd;

	for (;;) {
		size_t len;
		bool last;

		slash = strchr(p, '/');
		last = slash == NULL;
		len = last ? strlen(p) : (size_t)(slash - p);
		if (len >= sizeof(comp) || (len == 2 && p[0] == '.' && p[1] == '.'))
			fd = -1, errno = EINVAL;
		else {
			memcpy(comp, p, len);
			comp[len] = '\0';
			fd = openat(dfd, len == 0 ? "." : comp,
			            (last ? flags : O_PATH | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
		}
		if (dfd != root)
			(void)close(dfd);
		if (fd == -1)
			return -errno;
		if (last)
			return fd;
		dfd = fd;
		p = slash + 1;
	}
}

/* <rfs reiallowedbw>: before each chunk (no lock held), wait while more was
 * sent than the cap allows since the start. */
static void
throttle(struct resync *rs)
{
	uint64_t ms, allowed, sent, wait_ms;
	struct timespec ts;

	if (rs->bw == 0)
		return;
	ms = mr_now_ms() - rs->start_ms;
	allowed = rs->bw * ms / 1000u;
	sent = atomic_load(&rs->sent_bytes);
	if (sent <= allowed)
		return;
	wait_ms = (sent - allowed) * 1000u / rs->bw;
	if (wait_ms > 1000u)
		wait_ms = 1000u;
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(wait_ms / 1000u);
	ts.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rs->mu);
	if (!rs->stop)
		(void)pthread_cond_timedwait(&rs->cond, &rs->mu, &ts);
	pthread_mutex_unlock(&rs->mu);
}

static bool
stopping(struct resync *rs)
{
	bool s;

	pthread_mutex_lock(&rs->mu);
	s = rs->stop;
	pthread_mutex_unlock(&rs->mu);
	return s;
}

static void
fill_meta(struct proto_op *o, const struct stat *st)
{
	o->mode = st->st_mode;
	o->uid = st->st_uid;
	o->gid = st->st_gid;
	o->atime_sec = st->st_atim.tv_sec;
	o->atime_nsec = (uint32_t)st->st_atim.tv_nsec;
	o->mtime_sec = st->st_mtim.tv_sec;
	o->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
}

static void
set_path(struct proto_op *o, const char *path)
{
	o->path = (struct proto_str){ path, (uint16_t)strlen(path) };
}

/* The extended attributes of path (not a symlink) in the RS_META form, into
 * buf (xattr_buf bytes). Returns the length, or -1 when they do not fit or
 * cannot be read (then the target's are left alone). */
static ssize_t
read_xattrs(struct resync *rs, uint8_t dir, const char *path, char *buf, size_t cap)
{
	char proc[40], names[PROTO_MAX_STR * 4];
	ssize_t nl, len = 0;
	int fd;

	fd = path[0] != '\0' ? open_beneath(rs->roots[dir], path, O_PATH) : -1;
	if (path[0] != '\0' && fd < 0)
		return -1;
	(void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd >= 0 ? fd : rs->roots[dir]);
	nl = listxattr(proc, names, sizeof(names));
	for (ssize_t i = 0; nl > 0 && i < nl;) {
		size_t n = strlen(names + i) + 1;
		ssize_t v;

		if ((size_t)len + n + 4 > cap) {
			len = -1;
			break;
		}
		memcpy(buf + len, names + i, n);
		v = getxattr(proc, names + i, buf + len + n + 4, cap - ((size_t)len + n + 4));
		if (v < 0) {
			if (errno == ENODATA) { /* removed meanwhile */
				i += (ssize_t)n;
				continue;
			}
			len = -1;
			break;
		}
		mr_put_be32((uint8_t *)buf + len + n, (uint32_t)v);
		len += (ssize_t)n + 4 + v;
		i += (ssize_t)n;
	}
	if (fd >= 0)
		(void)close(fd);
	return nl < 0 && errno != ENOTSUP ? -1 : len;
}

/* Queue the times (and owner, mode, extended attributes) of path, as they
 * are now. Lock held. */
static int
queue_meta_locked(struct resync *rs, uint8_t dir, const char *path)
{
	struct proto_op o = { .type = PROTO_RS_META };
	struct stat st;
	ssize_t xl = -1;

	if (fstatat(rs->roots[dir], path[0] != '\0' ? path : ".", &st,
	            AT_SYMLINK_NOFOLLOW | (path[0] == '\0' ? AT_EMPTY_PATH : 0)) == -1)
		return errno == ENOENT ? 0 : -errno;
	fill_meta(&o, &st);
	o.valid = SHIM_SET_UID | SHIM_SET_GID | SHIM_SET_ATIME | SHIM_SET_MTIME |
	          (S_ISLNK(st.st_mode) ? 0 : SHIM_SET_MODE);
	if (!S_ISLNK(st.st_mode) && rs->xattr_buf != NULL)
		xl = read_xattrs(rs, dir, path, rs->xattr_buf, PROTO_MAX_DATA);
	if (xl >= 0) {
		o.flags = PROTO_RS_META_XATTRS;
		o.data = rs->xattr_buf;
		o.data_len = (uint32_t)xl;
	}
	set_path(&o, path);
	return repl_rs_queue_locked(rs->r, dir, &o) != 0 ? 0 : -ENOTCONN;
}

/* Wait for the answer to RS_HASHREQ req (answers come in stream order;
 * older ones, of requests given up, are dropped). Returns it (caller frees),
 * or NULL when stopping. */
static struct rs_answer *
wait_hashes(struct resync *rs, uint64_t req)
{
	struct rs_answer *a = NULL;

	pthread_mutex_lock(&rs->mu);
	while (!rs->stop) {
		a = rs->ans_head;
		if (a != NULL) {
			rs->ans_head = a->next;
			if (rs->ans_head == NULL)
				rs->ans_tail = NULL;
			if (a->req == req)
				break;
			free(a);
			a = NULL;
			continue;
		}
		pthread_cond_wait(&rs->cond, &rs->mu);
	}
	if (rs->stop) {
		free(a);
		a = NULL;
	}
	pthread_mutex_unlock(&rs->mu);
	return a;
}

/* Queue RS_DATA for [off, off + len) of buf. Lock held. */
static int
queue_data_locked(struct resync *rs, uint8_t dir, const char *path, uint64_t off,
                  const char *buf, size_t len)
{
	struct proto_op o = { .type = PROTO_RS_DATA, .off = off, .data = buf,
		              .data_len = (uint32_t)len };

	set_path(&o, path);
	if (len >= 1024 && want_zlib(rs)) {
		uLongf zlen = compressBound((uLong)len);
		struct timespec t0, t1;
		uint64_t us;

		(void)clock_gettime(CLOCK_MONOTONIC, &t0);

		if (compress2(rs->zbuf, &zlen, (const Bytef *)buf, (uLong)len, 1) == Z_OK &&
		    zlen < len - len / 10) {
			(void)clock_gettime(CLOCK_MONOTONIC, &t1);
			us = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000L +
			                (t1.tv_nsec - t0.tv_nsec) / 1000L) + 1;
			rs->z_rate = rs->z_rate == 0 ? len * 1000000u / us
			                             : (rs->z_rate * 3 + len * 1000000u / us) / 4;
			o.flags = PROTO_RS_DATA_ZLIB;
			o.size = len;
			o.data = (const char *)rs->zbuf;
			o.data_len = (uint32_t)zlen;
			atomic_fetch_add(&rs->z_in, len);
			atomic_fetch_add(&rs->z_out, zlen);
		} else {
			rs->z_skip = RESYNC_ZSKIP; /* does not compress: plain for a while */
		}
	}
	atomic_fetch_add(&rs->sent_bytes, o.data_len);
	return repl_rs_queue_locked(rs->r, dir, &o) != 0 ? 0 : -ENOTCONN;
}

/* A pooled area to read a chunk of want bytes straight into its record, or
 * NULL: only for big chunks (a run of a few marked blocks would hold a whole
 * area until acknowledged) and never when compressing (rs_chunk() is then
 * smaller). */
static char *
chunk_area(struct resync *rs, size_t chunk, size_t want)
{
	return chunk == RESYNC_CHUNK && want >= RESYNC_AREA_MIN ? repl_rs_data_area(rs->r) : NULL;
}

/* Queue RS_DATA for [off, off + len) whose bytes were read into *area: the
 * area becomes the record (no copy), and *area is NULL after. Lock held. */
static int
queue_area_locked(struct resync *rs, uint8_t dir, const char *path, uint64_t off, char **area,
                  size_t len)
{
	struct proto_op o = {
		.type = PROTO_RS_DATA, .off = off, .data = *area, .data_len = (uint32_t)len
	};

	set_path(&o, path);
	atomic_fetch_add(&rs->sent_bytes, (uint64_t)len);
	*area = NULL; /* the record's now */
	return repl_rs_queue_area_locked(rs->r, dir, &o) != 0 ? 0 : -ENOTCONN;
}

/* Is every byte of p[0, n) zero? Stops at the first one that is not. */
static bool
all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Mark in diff[] each block of buf (len bytes read at off) whose hash is not
 * the target's (th: n hashes of the range that starts at range). Returns how
 * many differ. No lock needed: see reader_run(). */
static size_t
mark_differing(struct resync *rs, uint64_t range, const uint8_t *th, uint32_t n, uint64_t off,
               const char *buf, size_t len, uint8_t *diff)
{
	size_t bo, b, count = 0;

	for (bo = 0, b = 0; bo < len; bo += rs->block, b++) {
		size_t bl = len - bo < rs->block ? len - bo : rs->block;
		uint64_t idx = (off - range + bo) / rs->block;
		bool same = false;

		if (idx < n && bl == rs->block &&
		    memcmp(th + idx * PROTO_HASH_LEN, rs->zero_hash, PROTO_HASH_LEN) == 0) {
			/* zeros there (the hole of a copy RS_FILE has just made): ours
			 * are the same only if zeros too, which the first byte that is
			 * not tells without hashing the block */
			same = all_zero(buf + bo, bl);
		} else if (idx < n) {
			XXH128_canonical_t can;

			XXH128_canonicalFromHash(&can, XXH3_128bits(buf + bo, bl));
			same = memcmp(&can, th + idx * PROTO_HASH_LEN, PROTO_HASH_LEN) == 0;
		}
		diff[b] = !same;
		count += !same;
	}
	return count;
}

/* Queue RS_DATA for each run of blocks marked in diff[] of buf (len bytes
 * read at off). With reread, each run is read again first: its record must
 * carry the bytes of this point of the stream. When the one run is the whole
 * chunk and buf is a pooled area (*area: a copy into an empty file), the
 * area itself becomes the record (no copy); *area is then NULL. Lock held. */
static int
queue_runs_locked(struct resync *rs, struct rs_pending *p, uint64_t off, char *buf, size_t len,
                  const uint8_t *diff, bool reread, char **area)
{
	size_t nb = (len + rs->block - 1) / rs->block, b, run = SIZE_MAX;
	int r = 0;

	for (b = 0; r == 0 && b <= nb; b++) {
		bool d = b < nb && diff[b];
		size_t ro, rl;

		if (d && run == SIZE_MAX)
			run = b;
		if (d || run == SIZE_MAX)
			continue;
		ro = run * rs->block;
		rl = (b * rs->block < len ? b * rs->block : len) - ro;
		run = SIZE_MAX;
		if (reread) {
			ssize_t got = pread(p->fd, buf + ro, rl, (off_t)(off + ro));

			if (got <= 0)
				break; /* shrunk meanwhile: the stream has the truncate */
			rl = (size_t)got;
		}
		if (ro == 0 && rl == len && *area != NULL)
			r = queue_area_locked(rs, p->dir, p->path, off, area, len);
		else
			r = queue_data_locked(rs, p->dir, p->path, off + ro, buf + ro, rl);
	}
	return r;
}

/* Queue RS_HASHREQ for [off, off + len) of path. Returns its seq, 0 if the
 * link is gone. */
static uint64_t
queue_hashreq(struct resync *rs, uint8_t dir, const char *path, uint64_t off, uint64_t len)
{
	struct proto_op o = { .type = PROTO_RS_HASHREQ, .off = off, .size = len,
		              .rdev = rs->block };
	uint64_t req;

	set_path(&o, path);
	repl_rs_lock(rs->r);
	req = repl_rs_queue_locked(rs->r, dir, &o);
	repl_rs_unlock(rs->r);
	return req;
}

static int send_plain(struct resync *rs, struct rs_pending *p, uint64_t off, uint64_t len);

/* One reader of the chunks of a range (send_range): the resync thread, and a
 * helper thread when the machine has more than one CPU. */
struct rs_reader {
	struct resync *rs;
	struct rs_pending *p;
	const struct rs_answer *a;
	uint64_t range, end;
	atomic_uint_fast64_t *next; /* the offset of the next chunk to take */
	char *buf;                  /* RESYNC_CHUNK bytes of this reader */
	int r;                      /* 0, -errno, or 1: the name leads elsewhere */
};

/* Take chunks of the range until none is left: read and compare each
 * WITHOUT the lock, then queue the blocks that differ under it.
 *
 * Why comparing without the lock is safe: the target hashed its copy at the
 * point of the stream of the range's RS_HASHREQ, which was queued before
 * this read. A live op whose local effect this read missed is submitted
 * after the read (the shim changes the file first, then submits), so it is
 * in the stream after the RS_HASHREQ and the target applies it after its
 * hashes: a block found the same is made the same by the stream.
 *
 * What must be read under the lock is what a record carries: a live op
 * submitted between this read and the record's queueing would be applied
 * before the record, and the record's older bytes over it. So the runs are
 * read again under the lock, unless no live op at all was submitted since
 * just before the read (repl_rs_live_ops): then the bytes read are those of
 * this point of the stream, and go as they are. */
static void *
reader_run(void *arg)
{
	struct rs_reader *rd = arg;
	struct resync *rs = rd->rs;
	size_t chunk = rs_chunk(rs);
	uint8_t diff[RESYNC_CHUNK / DIRTY_BLOCK];

	while (rd->r == 0 && !stopping(rs)) {
		uint64_t off = atomic_fetch_add(rd->next, chunk), ops;
		size_t want;
		char *area;
		ssize_t got;

		if (off >= rd->end)
			break;
		want = rd->end - off < chunk ? (size_t)(rd->end - off) : chunk;
		/* read into a pooled area: the whole chunk may go as one record */
		area = chunk_area(rs, chunk, want);
		throttle(rs);
		ops = repl_rs_live_ops(rs->r);
		got = pread(rd->p->fd, area != NULL ? area : rd->buf, want, (off_t)off);
		if (got <= 0) {
			repl_rs_data_area_free(rs->r, area);
			break; /* shrunk meanwhile: the stream has the truncate */
		}
		if (mark_differing(rs, rd->range, rd->a->hashes, rd->a->n, off,
		                   area != NULL ? area : rd->buf, (size_t)got, diff) > 0) {
			repl_rs_lock(rs->r);
			/* the name must still be this inode, or the data would land elsewhere */
			if (!same_inode_locked(rs, rd->p))
				rd->r = 1;
			else
				rd->r = queue_runs_locked(
				        rs, rd->p, off, area != NULL ? area : rd->buf, (size_t)got,
				        diff, repl_rs_live_ops_locked(rs->r) != ops, &area);
			repl_rs_unlock(rs->r);
		}
		repl_rs_data_area_free(rs->r, area);
		atomic_fetch_add(&rs->bytes, (uint64_t)got);
	}
	if (rd->r != 0)
		atomic_store(rd->next, rd->end); /* the other reader stops too */
	return NULL;
}

/* Compare and send [range, range + len) of the pending file p against the
 * answer a, by two readers when there is a second buffer (a second CPU) and
 * the range is long enough to share. Returns 0, -errno, or 1 when the name no
 * longer leads to the inode read (the stream has that story). */
static int
send_range(struct resync *rs, struct rs_pending *p, uint64_t range, uint64_t len,
           const struct rs_answer *a)
{
	atomic_uint_fast64_t next = range;
	struct rs_reader rd[2] = { {
		.rs = rs,
		.p = p,
		.a = a,
		.range = range,
		.end = range + len,
		.next = &next,
		.buf = rs->buf,
	} };
	pthread_t helper;
	bool two;

	rd[1] = rd[0];
	rd[1].buf = rs->buf2;
	if (a->n == 0)
		return send_plain(rs, p, range, len); /* nothing there: no block to compare */
	two = rs->buf2 != NULL && len >= RESYNC_SHARE_MIN &&
	      pthread_create(&helper, NULL, reader_run, &rd[1]) == 0;
	if (two)
		(void)pthread_setname_np(helper, "mr-resync-rd");
	(void)reader_run(&rd[0]);
	if (two)
		pthread_join(helper, NULL);
	if (rd[0].r < 0 || rd[1].r < 0)
		return rd[0].r < 0 ? rd[0].r : rd[1].r;
	return rd[0].r != 0 ? rd[0].r : rd[1].r;
}

/* Finish the oldest pending file: its first range against the answer, then
 * each further range of up to rs_range() bytes (RS_HASHREQ, the answer,
 * RS_DATA for the blocks that differ), then the times. */
static int
file_finish(struct resync *rs)
{
	struct rs_pending *p = &rs->ahead[rs->ahead_first];
	uint64_t range = 0, len = p->len, size = (uint64_t)p->st.st_size, req = p->req;
	int r = 0;

	rs->ahead_first = (rs->ahead_first + 1) % RESYNC_AHEAD;
	rs->ahead_n--;
	while (r == 0 && req != 0 && !stopping(rs)) {
		struct rs_answer *a = wait_hashes(rs, req);

		if (a == NULL)
			break;
		r = send_range(rs, p, range, len, a);
		free(a);
		range += len;
		if (r != 0 || range >= size)
			break;
		len = size - range < rs_range(rs) ? size - range : rs_range(rs);
		req = queue_hashreq(rs, p->dir, p->path, range, len);
		if (req == 0)
			r = -ENOTCONN;
	}
	if (r == 1)
		r = 0;
	if (r == 0 && !stopping(rs)) {
		repl_rs_lock(rs->r);
		r = queue_meta_locked(rs, p->dir, p->path);
		repl_rs_unlock(rs->r);
	}
	(void)close(p->fd);
	atomic_fetch_add(&rs->files, 1);
	return r;
}

/* Finish every pending file. */
static int
files_flush(struct resync *rs)
{
	int r = 0;

	while (rs->ahead_n > 0) {
		int e = file_finish(rs);

		if (r == 0)
			r = e;
	}
	return r;
}

/* One regular file: RS_FILE (the target truncates or extends its copy to the
 * size) and the RS_HASHREQ of its first range now; the comparison when it is
 * the oldest of RESYNC_AHEAD pending files (file_finish). */
static int
pass_file(struct resync *rs, uint8_t dir, const char *path)
{
	struct proto_op o = { .type = PROTO_RS_FILE };
	struct rs_pending *p;
	int fd, r = 0;

	if (rs->ahead_n >= rs->ahead_max && (r = file_finish(rs)) < 0)
		return r;
	p = &rs->ahead[(rs->ahead_first + rs->ahead_n) % RESYNC_AHEAD];
	repl_rs_lock(rs->r);
	fd = open_beneath(rs->roots[dir], path, O_RDONLY);
	if (fd < 0 || fstat(fd, &p->st) == -1 || !S_ISREG(p->st.st_mode)) {
		repl_rs_unlock(rs->r);
		if (fd >= 0)
			(void)close(fd);
		return 0; /* gone or replaced: the stream has its story */
	}
	fill_meta(&o, &p->st);
	p->ns_ops = repl_rs_ns_ops_locked(rs->r);
	o.size = (uint64_t)p->st.st_size;
	set_path(&o, path);
	if (repl_rs_queue_locked(rs->r, dir, &o) == 0)
		r = -ENOTCONN;
	repl_rs_unlock(rs->r);
	if (r < 0) {
		(void)close(fd);
		return r;
	}
	(void)snprintf(p->path, sizeof(p->path), "%s", path);
	p->dir = dir;
	p->fd = fd;
	p->len = o.size < rs_range(rs) ? o.size : rs_range(rs);
	p->req = 0;
	if (o.size > 0 && (p->req = queue_hashreq(rs, dir, path, 0, p->len)) == 0)
		r = -ENOTCONN;
	rs->ahead_n++;
	return r;
}

/* Queue RS_DATA for [off, off + len) of p as it is now, without comparing.
 * Uncompressed chunks are read straight into their record (no copy). */
static int
send_plain(struct resync *rs, struct rs_pending *p, uint64_t off, uint64_t len)
{
	int r = 0;

	while (r == 0 && len > 0 && !stopping(rs)) {
		size_t want = len < rs_chunk(rs) ? (size_t)len : rs_chunk(rs);
		char *area = chunk_area(rs, rs_chunk(rs), want);
		ssize_t got;

		throttle(rs);
		repl_rs_lock(rs->r);
		if (!same_inode_locked(rs, p)) {
			repl_rs_unlock(rs->r);
			repl_rs_data_area_free(rs->r, area);
			return 1; /* another file has the name now: the stream has its story */
		}
		got = pread(p->fd, area != NULL ? area : rs->buf, want, (off_t)off);
		if (got > 0 && area != NULL)
			r = queue_area_locked(rs, p->dir, p->path, off, &area, (size_t)got);
		else if (got > 0)
			r = queue_data_locked(rs, p->dir, p->path, off, rs->buf, (size_t)got);
		repl_rs_unlock(rs->r);
		repl_rs_data_area_free(rs->r, area);
		if (got <= 0)
			break; /* shrunk meanwhile: the stream has the truncate */
		off += (uint64_t)got;
		len -= (uint64_t)got;
		atomic_fetch_add(&rs->bytes, (uint64_t)got);
	}
	return r;
}

/* A file of the trusted dirty set whose changed blocks are known: RS_FILE
 * (size), RS_DATA for the marked blocks and everything past the lowest
 * truncation, the times. No checksums: the set says the rest is the same. */
static int
pass_file_marked(struct resync *rs, uint8_t dir, const char *path, const struct dirty_file *f)
{
	struct proto_op o = { .type = PROTO_RS_FILE };
	struct rs_pending p = { .dir = dir };
	uint64_t size, n_blocks, i, run = UINT64_MAX;
	int fd, r = 0;

	repl_rs_lock(rs->r);
	fd = open_beneath(rs->roots[dir], path, O_RDONLY);
	if (fd < 0 || fstat(fd, &p.st) == -1 || !S_ISREG(p.st.st_mode)) {
		repl_rs_unlock(rs->r);
		if (fd >= 0)
			(void)close(fd);
		return 0;
	}
	fill_meta(&o, &p.st);
	p.ns_ops = repl_rs_ns_ops_locked(rs->r);
	o.size = size = (uint64_t)p.st.st_size;
	set_path(&o, path);
	if (repl_rs_queue_locked(rs->r, dir, &o) == 0)
		r = -ENOTCONN;
	repl_rs_unlock(rs->r);
	(void)snprintf(p.path, sizeof(p.path), "%s", path);
	p.fd = fd;
	n_blocks = (size + DIRTY_BLOCK - 1) / DIRTY_BLOCK;
	for (i = 0; r == 0 && i <= n_blocks; i++) {
		bool need = i < n_blocks &&
		            (dirty_file_block(f, i) ||
		             ((f->flags & DIRTY_F_TRUNC) && (i + 1) * DIRTY_BLOCK > f->trunc_from));

		if (need && run == UINT64_MAX)
			run = i;
		else if (!need && run != UINT64_MAX) {
			uint64_t off = run * DIRTY_BLOCK, end = i * DIRTY_BLOCK;

			r = send_plain(rs, &p, off, (end < size ? end : size) - off);
			run = UINT64_MAX;
		}
		if (!need && i < n_blocks && !(f->flags & DIRTY_F_TRUNC) && i % 64 == 0 &&
		    i / 64 >= f->n_words)
			break; /* past the bitmap, nothing truncated: nothing more */
	}
	if (r == 1)
		r = 0;
	if (r == 0 && !stopping(rs)) {
		repl_rs_lock(rs->r);
		r = queue_meta_locked(rs, dir, path);
		repl_rs_unlock(rs->r);
	}
	(void)close(fd);
	atomic_fetch_add(&rs->files, 1);
	return r;
}

/* The XXH3-128 (canonical) of each block of buf, the last one short. */
static void
hash_blocks(const char *buf, size_t len, uint32_t block, uint8_t *out)
{
	for (size_t bo = 0; bo < len; bo += block, out += PROTO_HASH_LEN) {
		size_t bl = len - bo < block ? len - bo : block;
		XXH128_canonical_t can;

		XXH128_canonicalFromHash(&can, XXH3_128bits(buf + bo, bl));
		memcpy(out, &can, PROTO_HASH_LEN);
	}
}

/* `mirrorctl verify`: per range of VERIFY_RANGE bytes, hash this side's
 * blocks and queue RS_HASHREQ under the same lock, so both sides hash the
 * file at the same point of the op stream whatever the application does;
 * then compare with the answer. Nothing is sent that changes the target. */
static int
verify_file(struct resync *rs, uint8_t dir, const char *path)
{
	uint64_t off = 0, size = 0, diff_blocks = 0;
	uint32_t max_n = VERIFY_RANGE / rs->block;
	uint8_t *mine = malloc((size_t)max_n * PROTO_HASH_LEN);
	struct stat st;
	bool missing = false;
	int fd, r = 0;

	if (mine == NULL)
		return -ENOMEM;
	fd = open_beneath(rs->roots[dir], path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) == -1) {
		if (fd >= 0)
			(void)close(fd);
		free(mine);
		return 0; /* gone meanwhile */
	}
	do {
		struct proto_op o = { .type = PROTO_RS_HASHREQ, .off = off, .rdev = rs->block };
		struct rs_answer *a;
		uint32_t n = 0, i;
		uint64_t req;
		ssize_t got;

		repl_rs_lock(rs->r);
		if (fstat(fd, &st) == 0)
			size = (uint64_t)st.st_size;
		o.size = size > off ? (size - off < VERIFY_RANGE ? size - off : VERIFY_RANGE) : 0;
		/* RESYNC_CHUNK (a multiple of the block) at a time: few reads under the lock */
		for (uint64_t at = 0; at < o.size;) {
			size_t want = o.size - at < RESYNC_CHUNK ? (size_t)(o.size - at) : RESYNC_CHUNK;

			got = pread(fd, rs->buf, want, (off_t)(off + at));
			if (got <= 0)
				break;
			hash_blocks(rs->buf, (size_t)got, rs->block, mine + (size_t)n * PROTO_HASH_LEN);
			n += (uint32_t)(((size_t)got + rs->block - 1) / rs->block);
			at += (uint64_t)got;
			if ((size_t)got < want || (size_t)got % rs->block != 0)
				break;
		}
		set_path(&o, path);
		req = repl_rs_queue_locked(rs->r, dir, &o);
		repl_rs_unlock(rs->r);
		if (req == 0) {
			r = -ENOTCONN;
			break;
		}
		a = wait_hashes(rs, req);
		if (a == NULL)
			break;
		if (a->n == 0 && n > 0)
			missing = true;
		for (i = 0; i < n || i < a->n; i++)
			if (i >= n || i >= a->n ||
			    memcmp(mine + (size_t)i * PROTO_HASH_LEN,
			           a->hashes + (size_t)i * PROTO_HASH_LEN, PROTO_HASH_LEN) != 0)
				diff_blocks++;
		free(a);
		atomic_fetch_add(&rs->bytes, o.size);
		off += o.size;
	} while (r == 0 && off < size && !stopping(rs));
	(void)close(fd);
	free(mine);
	atomic_fetch_add(&rs->files, 1);
	if (r == 0 && diff_blocks > 0) {
		atomic_fetch_add(&rs->differ_files, 1);
		atomic_fetch_add(&rs->differ_bytes, diff_blocks * rs->block);
		log_warn("verify: differs dir=%u path=\"%s\" blocks=%" PRIu64 "%s", dir, path,
		         diff_blocks, missing ? " (missing or empty on the peer)" : "");
		pthread_mutex_lock(&rs->mu);
		if (json_array_size(rs->differ) < VERIFY_LIST_MAX)
			json_array_append_new(rs->differ,
			                      json_pack("{s:i,s:s,s:I,s:b}", "dir", (int)dir, "path",
			                                path, "blocks", (json_int_t)diff_blocks,
			                                "missing", missing));
		pthread_mutex_unlock(&rs->mu);
	}
	return r;
}

/* A regular file met by the walk: with a trusted set, nothing if it is not
 * in it, its marked blocks if they are known; otherwise checksums. */
/* Send f's marked blocks again (pass_file_marked), or compare the file by
 * checksums (pass_file)? The first pass sends them. A later pass runs
 * because live ops could not be applied on the target during the one
 * before (a name it did not have yet): the blocks sent are mostly there
 * now, and comparing costs a read and a hash on each side, against reading,
 * encrypting and writing what is sent (about 4.5 GB/s against 0.6 GB/s
 * here: docs/BENCHMARKS.md). Compare unless the marked part is small. */
static bool
resend_marked(struct resync *rs, uint8_t dir, const char *path, const struct dirty_file *f)
{
	uint64_t n_blocks, marked = 0;
	struct stat st;

	if (atomic_load(&rs->pass) <= 1)
		return true;
	if (fstatat(rs->roots[dir], path, &st, AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode))
		return true; /* (it says what it finds) */
	n_blocks = ((uint64_t)st.st_size + DIRTY_BLOCK - 1) / DIRTY_BLOCK;
	for (size_t w = 0; w < f->n_words && w * 64 < n_blocks; w++)
		marked += (uint64_t)__builtin_popcountll(f->bits[w]);
	if ((f->flags & DIRTY_F_TRUNC) && f->trunc_from / DIRTY_BLOCK < n_blocks)
		marked += n_blocks - f->trunc_from / DIRTY_BLOCK;
	return marked * 8 < n_blocks;
}

static int
walk_file(struct resync *rs, uint8_t dir, const char *path)
{
	struct dirty_file f;
	int r;

	if (rs->verify)
		return verify_file(rs, dir, path);
	if (rs->dirty == NULL)
		return pass_file(rs, dir, path);
	if (!dirty_get(rs->dirty, dir, path, &f)) {
		if (dirty_in_changed_dir(rs->dirty, dir, path))
			return pass_file(rs, dir, path); /* its directory's entries changed */
		atomic_fetch_add(&rs->skipped, 1);
		return 0; /* unchanged since the target's generation */
	}
	if ((f.flags & (DIRTY_F_CHECKSUM | DIRTY_F_CHILDREN)) || !resend_marked(rs, dir, path, &f))
		r = pass_file(rs, dir, path);
	else
		r = pass_file_marked(rs, dir, path, &f);
	dirty_file_done(&f);
	return r;
}

/* The application holds a file open that lost the name it was opened by (a
 * hard link removed: dirty.c's OPEN_LOST), and the walk met it under another
 * name. Name it again, under the shim's name lock so that the name is the op
 * stream's, and re-bind it: the ops through its descriptors then reach the
 * target's copy, which the record just queued for this name made. Without
 * this they would fail there, and no pass would end clean while it stays
 * open. */
static void
rename_lost(struct resync *rs, uint8_t dir, const char *path, const struct stat *st)
{
	struct stat now;

	if (rs->ns_hold == NULL)
		return;
	rs->ns_hold(rs->ns_ctx, dir, true);
	repl_rs_lock(rs->r);
	if (fstatat(rs->roots[dir], path, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_ino == st->st_ino && now.st_dev == st->st_dev)
		repl_open_found_locked(rs->r, dir, (uint64_t)now.st_dev, (uint64_t)now.st_ino,
		                       path);
	repl_rs_unlock(rs->r);
	rs->ns_hold(rs->ns_ctx, dir, false);
}

static void
links_clear(struct resync *rs)
{
	for (size_t i = 0; i < rs->n_links; i++)
		free(rs->links[i].path);
	rs->n_links = 0;
}

/* A regular file with several names: the first name met in a pass is synced
 * as a file; each later one becomes RS_LINK to it, so that the target has
 * one inode with the same names. (A linear search: hard links are rare.) */
static int
walk_linked(struct resync *rs, uint8_t dir, const char *path, const struct stat *st)
{
	struct proto_op o = { .type = PROTO_RS_LINK };
	struct stat a, b;
	const char *first = NULL;
	int r = 0;

	for (size_t i = 0; i < rs->n_links; i++)
		if (rs->links[i].dev == st->st_dev && rs->links[i].ino == st->st_ino &&
		    rs->links[i].dir == dir) {
			first = rs->links[i].path;
			break;
		}
	if (first == NULL) {
		if (rs->n_links == rs->cap_links) {
			size_t cap = rs->cap_links ? rs->cap_links * 2 : 64;
			struct rs_linked *nl = realloc(rs->links, cap * sizeof(*nl));

			if (nl == NULL)
				return walk_file(rs, dir, path);
			rs->links = nl;
			rs->cap_links = cap;
		}
		rs->links[rs->n_links].path = strdup(path);
		if (rs->links[rs->n_links].path != NULL) {
			rs->links[rs->n_links].dev = st->st_dev;
			rs->links[rs->n_links].ino = st->st_ino;
			rs->links[rs->n_links].dir = dir;
			rs->n_links++;
		}
		return walk_file(rs, dir, path);
	}
	(void)files_flush(rs); /* the first name's data before the second name */
	repl_rs_lock(rs->r);
	/* both names must still be this inode now */
	if (fstatat(rs->roots[dir], path, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fstatat(rs->roots[dir], first, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == st->st_ino &&
	    b.st_ino == st->st_ino && a.st_dev == b.st_dev) {
		set_path(&o, path);
		o.path2 = (struct proto_str){ first, (uint16_t)strlen(first) };
		if (repl_rs_queue_locked(rs->r, dir, &o) == 0)
			r = -ENOTCONN;
		else /* the target's name may have led to another file, bound to an open one */
			repl_rebind_locked(rs->r);
	}
	repl_rs_unlock(rs->r);
	if (r == 0 && rs->dirty != NULL) {
		struct dirty_file f;

		/* the dirty set may know the file under this name (an op on an
		 * inode names one of its paths): its data and metadata then */
		if (dirty_get(rs->dirty, dir, path, &f)) {
			r = (f.flags & (DIRTY_F_CHECKSUM | DIRTY_F_CHILDREN))
			            ? pass_file(rs, dir, path)
			                                 : pass_file_marked(rs, dir, path, &f);
			dirty_file_done(&f);
			return r;
		}
	}
	atomic_fetch_add(&rs->files, 1);
	return r;
}

/* A symlink or a special file, then its times. */
static int
pass_other(struct resync *rs, uint8_t dir, const char *path)
{
	struct proto_op o = { 0 };
	char target[PROTO_MAX_STR + 1];
	struct stat st;
	int r = 0;

	repl_rs_lock(rs->r);
	if (fstatat(rs->roots[dir], path, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		repl_rs_unlock(rs->r);
		return 0;
	}
	fill_meta(&o, &st);
	set_path(&o, path);
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlinkat(rs->roots[dir], path, target, sizeof(target) - 1);

		if (n < 0) {
			repl_rs_unlock(rs->r);
			return 0;
		}
		target[n] = '\0';
		o.type = PROTO_RS_SYMLINK;
		o.path2 = (struct proto_str){ target, (uint16_t)n };
	} else {
		o.type = PROTO_RS_NODE;
		o.rdev = (uint64_t)st.st_rdev;
	}
	if (repl_rs_queue_locked(rs->r, dir, &o) == 0 || queue_meta_locked(rs, dir, path) < 0)
		r = -ENOTCONN;
	repl_rs_unlock(rs->r);
	atomic_fetch_add(&rs->files, 1);
	return r;
}

/* Read the names of directory fd (consumes fd) into a NUL-separated list. */
static int
read_names(int fd, char **out, size_t *out_len)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;
	size_t len = 0, cap = 4096;
	char *buf;

	if (d == NULL) {
		(void)close(fd);
		return -errno;
	}
	buf = malloc(cap);
	if (buf == NULL) {
		(void)closedir(d);
		return -ENOMEM;
	}
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name) + 1;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (len + n > cap) {
			char *nb = realloc(buf, cap * 2 + n);

			if (nb == NULL) {
				free(buf);
				(void)closedir(d);
				return -ENOMEM;
			}
			buf = nb;
			cap = cap * 2 + n;
		}
		memcpy(buf + len, e->d_name, n);
		len += n;
	}
	(void)closedir(d);
	*out = buf;
	*out_len = len;
	return 0;
}

/* One directory: RS_DIR with the names it holds now, then each child, then
 * the directory's times (after its children changed them). */
static int
pass_dir(struct resync *rs, uint8_t dir, const char *path, unsigned depth)
{
	struct proto_op o = { .type = PROTO_RS_DIR };
	struct stat st;
	char *names = NULL, child[PROTO_MAX_STR + 1];
	size_t names_len = 0, i;
	int fd, r;

	if (depth > 256)
		return 0; /* deeper than any real tree: leave it to the stream */
	repl_rs_lock(rs->r);
	fd = open_beneath(rs->roots[dir], path, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || fstat(fd, &st) == -1) {
		repl_rs_unlock(rs->r);
		if (fd >= 0)
			(void)close(fd);
		return 0;
	}
	r = read_names(fd, &names, &names_len);
	if (r < 0) {
		repl_rs_unlock(rs->r);
		return r;
	}
	fill_meta(&o, &st);
	set_path(&o, path);
	if (names_len <= PROTO_MAX_DATA) {
		o.data = names;
		o.data_len = (uint32_t)names_len;
	} else {
		o.flags = RESYNC_NO_PRUNE;
	}
	if (!rs->verify && repl_rs_queue_locked(rs->r, dir, &o) == 0)
		r = -ENOTCONN;
	repl_rs_unlock(rs->r);
	for (i = 0; r == 0 && i < names_len && !stopping(rs);) {
		const char *name = names + i;
		size_t nlen = strlen(name);
		int n;

		i += nlen + 1;
		n = snprintf(child, sizeof(child), "%s%s%s", path, path[0] != '\0' ? "/" : "", name);
		if (n < 0 || (size_t)n >= sizeof(child))
			continue; /* longer than the protocol carries: stream only */
		if (fstatat(rs->roots[dir], child, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (S_ISDIR(st.st_mode))
			r = pass_dir(rs, dir, child, depth + 1);
		else if (S_ISREG(st.st_mode) && st.st_nlink > 1 && !rs->verify)
			r = walk_linked(rs, dir, child, &st);
		else if (S_ISREG(st.st_mode))
			r = walk_file(rs, dir, child);
		else if (!rs->verify)
			r = pass_other(rs, dir, child);
		if (r == 0 && S_ISREG(st.st_mode) && !rs->verify &&
		    repl_open_lost(rs->r, (uint64_t)st.st_dev, (uint64_t)st.st_ino))
			rename_lost(rs, dir, child, &st);
	}
	free(names);
	{
		/* the files' data, then the directory's times */
		int e = files_flush(rs);

		if (r == 0)
			r = e;
	}
	if (r == 0 && !rs->verify) {
		repl_rs_lock(rs->r);
		r = queue_meta_locked(rs, dir, path);
		repl_rs_unlock(rs->r);
	}
	return r;
}

static uint64_t
count_bytes(int dfd, unsigned depth)
{
	DIR *d;
	struct dirent *e;
	uint64_t total = 0;
	struct stat st;

	if (depth > 256)
		return 0;
	d = fdopendir(dfd);
	if (d == NULL) {
		(void)close(dfd);
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (S_ISREG(st.st_mode))
			total += (uint64_t)st.st_size;
		else if (S_ISDIR(st.st_mode)) {
			int fd = openat(dirfd(d), e->d_name,
			                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (fd >= 0)
				total += count_bytes(fd, depth + 1);
		}
	}
	(void)closedir(d);
	return total;
}

/* Queue one whole pass; returns the RS_END's seq, or 0 (link gone, stopped). */
static uint64_t
one_pass(struct resync *rs)
{
	struct proto_op o = { .type = PROTO_RS_BEGIN };
	uint64_t end = 0;
	size_t i;
	int r = 0;

	links_clear(rs);
	repl_rs_lock(rs->r);
	if (repl_rs_queue_locked(rs->r, 0, &o) == 0)
		r = -ENOTCONN;
	else
		repl_rebind_locked(rs->r); /* files this pass's predecessor had not made yet */
	repl_rs_unlock(rs->r);
	for (i = 0; r == 0 && i < rs->n_dirs && !stopping(rs); i++)
		r = pass_dir(rs, (uint8_t)i, "", 0);
	if (r < 0 || stopping(rs))
		return 0;
	o = (struct proto_op){ .type = PROTO_RS_END };
	repl_rs_lock(rs->r);
	end = repl_rs_queue_locked(rs->r, 0, &o);
	repl_rs_unlock(rs->r);
	return end;
}

static void
finish(struct resync *rs, bool ok, const char *why)
{
	pthread_mutex_lock(&rs->mu);
	rs->finished = true;
	rs->ok = ok;
	(void)snprintf(rs->why, sizeof(rs->why), "%s", why);
	pthread_mutex_unlock(&rs->mu);
	(void)uv_async_send(&rs->async);
}

static void *
resync_main(void *arg)
{
	struct resync *rs = arg;
	unsigned pass;
	char why[160];

	rs->buf = malloc(RESYNC_CHUNK > rs->block ? RESYNC_CHUNK : rs->block);
	rs->xattr_buf = malloc(PROTO_MAX_DATA);
	if (!rs->verify && sysconf(_SC_NPROCESSORS_ONLN) > 1)
		rs->buf2 = malloc(RESYNC_CHUNK); /* (none: one reader) */
	if (rs->compress != RESYNC_COMPRESS_OFF)
		rs->zbuf = malloc(compressBound(RESYNC_CHUNK));
	if (rs->buf == NULL || rs->xattr_buf == NULL) {
		finish(rs, false, "out of memory");
		return NULL;
	}

	for (size_t i = 0; i < rs->n_dirs; i++) {
		int fd = open_beneath(rs->roots[i], "", O_RDONLY | O_DIRECTORY);

		if (fd >= 0)
			atomic_fetch_add(&rs->total_bytes, count_bytes(fd, 0));
	}
	if (rs->verify) {
		int r = 0;

		atomic_store(&rs->pass, 1);
		for (size_t i = 0; r == 0 && i < rs->n_dirs && !stopping(rs); i++)
			r = pass_dir(rs, (uint8_t)i, "", 0);
		if (r < 0 || stopping(rs)) {
			finish(rs, false, stopping(rs) ? "stopped" : "the link went down");
			return NULL;
		}
		(void)snprintf(why, sizeof(why), "%" PRIu64 " files differ",
		               (uint64_t)atomic_load(&rs->differ_files));
		finish(rs, true, why);
		return NULL;
	}
	for (pass = 1; pass <= RESYNC_MAX_PASSES; pass++) {
		uint64_t ns0 = repl_rs_ns_changes(rs->r), end, fails;
		bool got;

		atomic_store(&rs->pass_files0, atomic_load(&rs->files));
		atomic_store(&rs->pass_bytes0, atomic_load(&rs->bytes));
		atomic_store(&rs->pass, pass);
		end = one_pass(rs);
		if (end == 0) {
			finish(rs, false, stopping(rs) ? "stopped" : "the link went down");
			return NULL;
		}
		pthread_mutex_lock(&rs->mu);
		while (!rs->stop && !(rs->have_result && rs->res_seq >= end))
			pthread_cond_wait(&rs->cond, &rs->mu);
		got = rs->have_result && rs->res_seq >= end;
		fails = rs->res_fail;
		rs->have_result = false;
		pthread_mutex_unlock(&rs->mu);
		if (!got) {
			finish(rs, false, "stopped");
			return NULL;
		}
		if (fails == 0 && repl_rs_ns_changes(rs->r) == ns0) {
			(void)snprintf(why, sizeof(why), "clean pass %u", pass);
			finish(rs, true, why);
			return NULL;
		}
		log_info("resync: pass %u not clean stale_ops=%" PRIu64 " renames=%" PRIu64
		         "; another pass",
		         pass, fails, repl_rs_ns_changes(rs->r) - ns0);
	}
	finish(rs, false, "did not converge: renames or stale ops in every pass");
	return NULL;
}

static void
async_cb(uv_async_t *a)
{
	struct resync *rs = a->data;
	bool finished, ok;
	char why[160];

	pthread_mutex_lock(&rs->mu);
	finished = rs->finished;
	ok = rs->ok;
	memcpy(why, rs->why, sizeof(why));
	pthread_mutex_unlock(&rs->mu);
	if (!finished || rs->reported)
		return;
	rs->reported = true;
	if (rs->verify) {
		log_notice("verify: %s files=%" PRIu64 " compared_bytes=%" PRIu64
		           " differing_files=%" PRIu64 " differing_bytes=%" PRIu64 " ms=%" PRIu64
		           " reason=\"%s\"",
		           ok ? "done" : "stopped", atomic_load(&rs->files), atomic_load(&rs->bytes),
		           atomic_load(&rs->differ_files), atomic_load(&rs->differ_bytes),
		           mr_now_ms() - rs->start_ms, why);
		rs->end_ms = mr_now_ms();
		rs->done(rs->ctx, ok, why);
		return;
	}
	log_notice("resync: %s passes=%u files=%" PRIu64 " unchanged_files=%" PRIu64
	           " compared_bytes=%" PRIu64 " sent_bytes=%" PRIu64 " zlib_in=%" PRIu64
	           " zlib_out=%" PRIu64 " ms=%" PRIu64 " reason=\"%s\"",
	           ok ? "done" : "stopped", atomic_load(&rs->pass), atomic_load(&rs->files),
	           atomic_load(&rs->skipped), atomic_load(&rs->bytes),
	           atomic_load(&rs->sent_bytes), atomic_load(&rs->z_in), atomic_load(&rs->z_out),
	           mr_now_ms() - rs->start_ms, why);
	rs->done(rs->ctx, ok, why);
}

/* The hash of a block of zeros: what the target answers for a hole. */
static int
zero_hash(uint32_t block, uint8_t *out)
{
	char *zeros = calloc(1, block);
	XXH128_canonical_t can;

	if (zeros == NULL)
		return -ENOMEM;
	XXH128_canonicalFromHash(&can, XXH3_128bits(zeros, block));
	memcpy(out, &can, PROTO_HASH_LEN);
	free(zeros);
	return 0;
}

int
resync_start(uv_loop_t *loop, struct repl *r, const int *root_fds, size_t n_dirs,
             struct dirty *dirty, const struct resync_opts *opts, resync_done_fn done,
             void *ctx, struct resync **out)
{
	struct resync *rs = calloc(1, sizeof(*rs));
	int e;

	if (rs == NULL)
		return -ENOMEM;
	rs->loop = loop;
	rs->r = r;
	rs->roots = root_fds;
	rs->n_dirs = n_dirs;
	rs->done = done;
	rs->ctx = ctx;
	rs->dirty = dirty;
	rs->ahead_max = opts->ahead < 1               ? 1
	                : opts->ahead > RESYNC_AHEAD ? RESYNC_AHEAD
	                                             : opts->ahead;
	rs->bw = opts->bw_kbytes_s * 1024u;
	rs->block = opts->block >= DIRTY_BLOCK && opts->block <= RESYNC_CHUNK &&
	                            (opts->block & (opts->block - 1)) == 0
	                    ? opts->block
	                    : DIRTY_BLOCK;
	if (zero_hash(rs->block, rs->zero_hash) < 0) {
		free(rs);
		return -ENOMEM;
	}
	rs->compress = opts->compress;
	rs->verify = opts->verify;
	rs->ns_hold = opts->ns_hold;
	rs->ns_ctx = opts->ns_ctx;
	rs->differ = json_array();
	rs->start_ms = mr_now_ms();
	MR_BUG_ON(pthread_mutex_init(&rs->mu, NULL) != 0);
	MR_BUG_ON(pthread_cond_init(&rs->cond, NULL) != 0);
	MR_BUG_ON(uv_async_init(loop, &rs->async, async_cb) != 0);
	rs->async.data = rs;
	e = pthread_create(&rs->thread, NULL, resync_main, rs);
	if (e != 0) {
		uv_close((uv_handle_t *)&rs->async, NULL);
		return -e; /* (rs leaks until the loop closes: startup only) */
	}
	(void)pthread_setname_np(rs->thread, rs->verify ? "mr-verify" : "mr-resync");
	log_notice("%s: started dirs=%zu mode=%s ahead=%u cap_kbytes_s=%" PRIu64
	           " block=%u compress=%s",
	           rs->verify ? "verify" : "resync", n_dirs,
	           rs->verify ? "verify" : dirty != NULL ? "changed" : "compare", rs->ahead_max,
	           opts->bw_kbytes_s, rs->block,
	           rs->compress == RESYNC_COMPRESS_OFF  ? "off"
	           : rs->compress == RESYNC_COMPRESS_ON ? "on"
	                                                : "auto");
	*out = rs;
	return 0;
}

void
resync_on_result(struct resync *rs, uint64_t end_seq, uint64_t failures)
{
	if (rs == NULL)
		return;
	pthread_mutex_lock(&rs->mu);
	rs->have_result = true;
	rs->res_seq = end_seq;
	rs->res_fail = failures;
	pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->mu);
}

void
resync_on_hashes(struct resync *rs, const struct proto_rs_hashes *h)
{
	uint32_t n = h->block_size == rs->block ? h->n : 0;
	struct rs_answer *a;

	if (rs == NULL)
		return;
	a = malloc(sizeof(*a) + (size_t)n * PROTO_HASH_LEN);
	if (a == NULL)
		return; /* the thread waits; the link will be dropped on timeout */
	a->next = NULL;
	a->req = h->req_seq;
	a->n = n;
	if (n > 0)
		memcpy(a->hashes, h->hashes, (size_t)n * PROTO_HASH_LEN);
	pthread_mutex_lock(&rs->mu);
	if (rs->ans_tail != NULL)
		rs->ans_tail->next = a;
	else
		rs->ans_head = a;
	rs->ans_tail = a;
	pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->mu);
}

bool
resync_finished(struct resync *rs)
{
	bool f;

	pthread_mutex_lock(&rs->mu);
	f = rs->finished;
	pthread_mutex_unlock(&rs->mu);
	return f;
}

void
resync_status(struct resync *rs, json_t *result)
{
	/* (a pass's start first: files and bytes only grow, so they are not below it) */
	uint64_t files0 = atomic_load(&rs->pass_files0), bytes0 = atomic_load(&rs->pass_bytes0);
	uint64_t files = atomic_load(&rs->files), bytes = atomic_load(&rs->bytes);
	uint64_t total = atomic_load(&rs->total_bytes), ms = mr_now_ms() - rs->start_ms;
	uint64_t rate = ms > 0 ? bytes * 1000u / ms : 0;
	bool finished;

	if (rs->verify) {
		json_t *list;
		bool ok;
		char why[160];

		pthread_mutex_lock(&rs->mu);
		finished = rs->finished;
		ok = rs->ok;
		memcpy(why, rs->why, sizeof(why));
		list = json_deep_copy(rs->differ);
		pthread_mutex_unlock(&rs->mu);
		if (rs->end_ms != 0)
			ms = rs->end_ms - rs->start_ms;
		json_object_set_new(
		        result, "verify",
		        json_pack("{s:s,s:b,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "state",
		                  !finished ? "running" : ok ? "finished" : "stopped", "identical",
		                  finished && ok && atomic_load(&rs->differ_files) == 0, "reason",
		                  finished ? why : "", "files", (json_int_t)files, "bytes",
		                  (json_int_t)bytes, "total_bytes", (json_int_t)total,
		                  "differing_files", (json_int_t)atomic_load(&rs->differ_files),
		                  "differing_bytes", (json_int_t)atomic_load(&rs->differ_bytes),
		                  "ms", (json_int_t)ms, "differ",
		                  list != NULL ? list : json_array()));
		return;
	}
	pthread_mutex_lock(&rs->mu);
	finished = rs->finished;
	pthread_mutex_unlock(&rs->mu);
	/* this pass's part (rate: over the whole resync) */
	files -= files0;
	bytes -= bytes0;
	json_object_set_new(
	        result, "resync",
	        json_pack("{s:s,s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i}", "state",
	                  finished ? "finished" : "running", "mode",
	                  rs->dirty != NULL ? "changed" : "compare", "pass",
	                  (int)atomic_load(&rs->pass), "unchanged_files",
	                  (json_int_t)atomic_load(&rs->skipped),
	                  "files", (json_int_t)files, "bytes", (json_int_t)bytes, "sent_bytes",
	                  (json_int_t)atomic_load(&rs->sent_bytes), "total_bytes",
	                  (json_int_t)total, "rate_bps", (json_int_t)rate, "eta_s",
	                  (json_int_t)(rate > 0 && total > bytes ? (total - bytes) / rate : 0),
	                  "zlib_in", (json_int_t)atomic_load(&rs->z_in), "zlib_out",
	                  (json_int_t)atomic_load(&rs->z_out), "block", (int)rs->block));
}

static void
close_cb(uv_handle_t *h)
{
	struct resync *rs = h->data;

	pthread_mutex_destroy(&rs->mu);
	pthread_cond_destroy(&rs->cond);
	while (rs->ans_head != NULL) {
		struct rs_answer *a = rs->ans_head;

		rs->ans_head = a->next;
		free(a);
	}
	free(rs->buf);
	free(rs->buf2);
	free(rs->xattr_buf);
	free(rs->zbuf);
	links_clear(rs);
	free(rs->links);
	json_decref(rs->differ);
	free(rs);
}

void
resync_stop(struct resync *rs)
{
	if (rs == NULL)
		return;
	pthread_mutex_lock(&rs->mu);
	rs->stop = true;
	pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->mu);
	pthread_join(rs->thread, NULL);
	uv_close((uv_handle_t *)&rs->async, close_cb);
}
