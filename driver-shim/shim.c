/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * shim.c - lifecycle of the interception layer: checks, "mount over self",
 * the multithreaded FUSE loop, unmount.
 *
 * The real directory is opened (O_PATH) BEFORE the FUSE file system is mounted
 * on the same path; from then on every real I/O goes through that fd and the
 * O_PATH fds derived from it, so the application's paths are unchanged and
 * the real files stay reachable underneath. This file never touches the mount
 * point by path after mounting (that would call into ourselves).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "log.h"
#include "shim_int.h"
#include "util.h"

#define SHIM_DEFAULT_THREADS 16u
#define SHIM_TABLE_BUCKETS   (1u << 16)
#define SHIM_SUBTYPE         "hamirror"

extern const struct fuse_lowlevel_ops shim_ll_ops;

/* Is the mount on top of path one of our FUSE mounts? Reads
 * /proc/self/mountinfo: field 5 is the mount point (octal escapes for blanks),
 * the fs type follows " - "; of several mounts on one point, the later line is
 * the one on top. Only the top one counts: it is the one that umount2() and
 * every path lookup reach. */
static bool
mounted_by_us(const char *path, unsigned *conn_id)
{
	char line[8192], mnt[PATH_MAX], esc[PATH_MAX];
	unsigned major, minor, top_minor = 0;
	bool top_ours = false;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *sep = strstr(line, " - ");
		size_t i, j;

		if (sep == NULL ||
		    sscanf(line, "%*s %*s %u:%u %*s %4095s", &major, &minor, esc) != 3)
			continue;
		for (i = 0, j = 0; esc[i] != '\0' && j < sizeof(mnt) - 1; j++) {
			if (esc[i] == '\\' && esc[i + 1] >= '0' && esc[i + 1] <= '3') {
				mnt[j] = (char)((esc[i + 1] - '0') * 64 + (esc[i + 2] - '0') * 8 +
				                (esc[i + 3] - '0'));
				i += 4;
			} else {
				mnt[j] = esc[i++];
			}
		}
		mnt[j] = '\0';
		if (strcmp(mnt, path) != 0)
			continue;
		top_ours = strncmp(sep + 3, "fuse." SHIM_SUBTYPE " ", 14) == 0;
		top_minor = minor; /* /sys/fs/fuse/connections/<minor> */
	}
	(void)fclose(f);
	if (top_ours && conn_id != NULL)
		*conn_id = top_minor;
	return top_ours;
}

/* Is this shim's own mount still on top of its directory? Only then may it be
 * unmounted by path: once it is gone (detached already, by us or by an admin's
 * umount), the same umount2() would take down whatever is underneath, such as
 * the file system that holds the replicated directory, and the next open of
 * the directory would find the empty mount point below it. */
static bool
still_mounted(const struct shim *s)
{
	unsigned id = 0;

	return s->mounted && mounted_by_us(s->dir, &id) && (s->conn_id == 0 || id == s->conn_id);
}

/* Detach our mount if it is still the one on top (still_mounted); either way
 * nothing of ours is mounted after. Returns false if it was gone already. */
static bool
unmount_ours(struct shim *s)
{
	bool ours = still_mounted(s);

	if (ours)
		(void)umount2(s->dir, MNT_DETACH);
	s->mounted = false;
	return ours;
}

/* The FUSE mount of a daemon that was killed (SIGKILL, crash) answers
 * ENOTCONN: detach it so the directory can be mounted again. statfs always
 * reaches the daemon; stat may be answered from the attribute cache. */
void
shim_clear_dead_mount(const char *path)
{
	struct statfs probe;

	if (mounted_by_us(path, NULL) && statfs(path, &probe) == -1 &&
	    (errno == ENOTCONN || errno == ECONNABORTED) && umount2(path, MNT_DETACH) == 0)
		log_notice("shim: cleared a dead FUSE mount dir=%s", path);
}

static void
shim_destroy(struct shim *s)
{
	if (s->se != NULL) {
		(void)unmount_ours(s);
		fuse_session_destroy(s->se); /* closes the device */
	}
	shim_handles_free_all(s);
	pthread_mutex_destroy(&s->handles_lock);
	if (s->buckets != NULL)
		shim_table_done(s);
	if (s->root.fd >= 0)
		(void)close(s->root.fd);
	if (s->proc_fd >= 0)
		(void)close(s->proc_fd);
	if (s->mount_fd >= 0)
		(void)close(s->mount_fd);
	pthread_mutex_destroy(&s->root.lock);
	pthread_mutex_destroy(&s->ns_lock);
	free(s->dir);
	free(s);
}

/* Mount the FUSE file system over dir ourselves and hand libfuse the device
 * as "/dev/fd/N" (libfuse then mounts nothing and, above all, never unmounts
 * anything: its fuse_session_unmount() unmounts by path whatever is on top
 * unless the device already reports the connection gone). The unmount is
 * ours alone, and only while our mount is the one on top (still_mounted). */
static int
mount_fuse(struct shim *s, const char *dir, const struct stat *st, char *err, size_t err_len)
{
	char opts[160], dev[32];
	int fd, r;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd == -1) {
		r = -errno;
		snprintf(err, err_len, "cannot open /dev/fuse: %s", strerror(-r));
		return r;
	}
	/* suid,dev: the replicated directory behaves as it did before the mount */
	(void)snprintf(opts, sizeof(opts),
	               "fd=%d,rootmode=%o,user_id=%u,group_id=%u,allow_other,default_permissions",
	               fd, (unsigned)(st->st_mode & S_IFMT), (unsigned)getuid(),
	               (unsigned)getgid());
	if (mount("hamirror", dir, "fuse." SHIM_SUBTYPE, 0, opts) == -1) {
		r = -errno;
		(void)close(fd);
		snprintf(err, err_len, "cannot mount over %s: %s", dir, strerror(-r));
		return r;
	}
	s->mounted = true;
	(void)snprintf(dev, sizeof(dev), "/dev/fd/%d", fd);
	if (fuse_session_mount(s->se, dev) != 0) { /* takes fd: closed by destroy */
		(void)close(fd);
		snprintf(err, err_len, "libfuse refused the FUSE device of %s", dir);
		return -EIO;
	}
	return 0;
}

int
shim_new(const struct shim_config *cfg, struct shim **out, char *err, size_t err_len)
{
	char real[PATH_MAX];
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct shim *s;
	struct stat st;
	int r;

	*out = NULL;
	if (geteuid() != 0) {
		snprintf(err, err_len,
		         "must run as root: it mounts over %s with allow_other and "
		         "serves every user",
		         cfg->dir);
		return -EPERM;
	}
	if (access("/dev/fuse", R_OK | W_OK) == -1) {
		r = -errno;
		snprintf(err, err_len, "cannot use /dev/fuse: %s (is the fuse module loaded?)",
		         strerror(-r));
		return r;
	}
	shim_clear_dead_mount(cfg->dir);
	if (realpath(cfg->dir, real) == NULL) {
		r = -errno;
		snprintf(err, err_len, "%s: %s", cfg->dir, strerror(-r));
		return r;
	}
	if (stat(real, &st) == -1 || !S_ISDIR(st.st_mode)) {
		snprintf(err, err_len, "%s: not a directory", cfg->dir);
		return -ENOTDIR;
	}
	if (strcmp(real, "/") == 0) {
		snprintf(err, err_len, "the root directory cannot be replicated");
		return -EINVAL;
	}
	shim_clear_dead_mount(real);
	if (mounted_by_us(real, NULL)) {
		snprintf(err, err_len, "%s is already mounted by hamirror", real);
		return -EBUSY;
	}

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->dir = strdup(real);
	s->dir_len = strlen(real);
	s->root.fd = -1;
	s->proc_fd = -1;
	s->mount_fd = -1;
	s->submit = cfg->submit;
	s->submit_ctx = cfg->submit_ctx;
	s->fsync_overlap = cfg->fsync_overlap && cfg->submit != NULL;
	s->prelog = cfg->submit != NULL ? cfg->prelog : NULL;
	s->prelog_ctx = cfg->prelog_ctx;
	atomic_store(&s->epoch, cfg->epoch > 0 ? cfg->epoch : 1);
	s->debug = cfg->debug;
	s->max_threads = cfg->max_threads ? cfg->max_threads : SHIM_DEFAULT_THREADS;
	atomic_init(&s->read_only, cfg->read_only);
	MR_BUG_ON(pthread_mutex_init(&s->ns_lock, NULL) != 0);
	MR_BUG_ON(pthread_mutex_init(&s->root.lock, NULL) != 0);
	MR_BUG_ON(pthread_mutex_init(&s->handles_lock, NULL) != 0);
	if (s->dir == NULL) {
		r = -ENOMEM;
		goto err;
	}

	/* Open the real directory before the mount hides it. */
	s->root.fd = open(real, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->root.fd == -1 || fstat(s->root.fd, &st) == -1) {
		r = -errno;
		snprintf(err, err_len, "cannot open %s: %s", real, strerror(-r));
		goto err;
	}
	s->mount_fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->mount_fd == -1) {
		r = -errno;
		snprintf(err, err_len, "cannot open %s: %s", real, strerror(-r));
		goto err;
	}
	s->root.dev = st.st_dev;
	s->root.ino = st.st_ino;
	s->root.type = S_IFDIR;
	s->root.fd_forever = true;
	s->root.nlookup = 1;
	s->root.file_id = 1;
	r = shim_table_init(s, SHIM_TABLE_BUCKETS);
	if (r < 0) {
		snprintf(err, err_len, "out of memory");
		goto err;
	}

	if (fuse_opt_add_arg(&args, "mirror-shim") != 0 ||
	    (cfg->debug &&
	     (fuse_opt_add_arg(&args, "-o") != 0 || fuse_opt_add_arg(&args, "debug") != 0))) {
		fuse_opt_free_args(&args);
		r = -ENOMEM;
		snprintf(err, err_len, "out of memory");
		goto err;
	}
	s->se = fuse_session_new(&args, &shim_ll_ops, sizeof(shim_ll_ops), s);
	fuse_opt_free_args(&args);
	if (s->se == NULL) {
		r = -EINVAL;
		snprintf(err, err_len, "cannot create the FUSE session");
		goto err;
	}
	r = mount_fuse(s, real, &st, err, err_len);
	if (r < 0)
		goto err;
	(void)mounted_by_us(real, &s->conn_id);
	*out = s;
	return 0;

err:
	shim_destroy(s);
	return r;
}

int
shim_set_signal_handlers(struct shim *s)
{
	if (fuse_set_signal_handlers(s->se) != 0)
		return -EIO;
	s->signals = true;
	return 0;
}

int
shim_run(struct shim *s)
{
	struct fuse_loop_config *lc;
	int r;

	/* /proc/self is resolved now: after any fork (daemonizing) */
	if (s->proc_fd < 0) {
		s->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (s->proc_fd == -1)
			return -errno;
	}
	lc = fuse_loop_cfg_create();
	if (lc == NULL)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_max_threads(lc, s->max_threads);
	r = fuse_session_loop_mt(s->se, lc);
	fuse_loop_cfg_destroy(lc);
	/* libfuse returns the signal number when its handlers ended the loop,
	 * and -ENODEV when shim_stop() aborted the connection */
	if (r > 0 || (r == -ENODEV && atomic_load(&s->stopping)))
		return 0;
	return r;
}

void
shim_exit(struct shim *s)
{
	fuse_session_exit(s->se);
}

void
shim_stop(struct shim *s)
{
	char path[64];
	int fd;

	atomic_store(&s->stopping, true);
	fuse_session_exit(s->se);
	if (s->mounted && !unmount_ours(s))
		log_notice("shim: the mount on dir=%s is gone already (unmounted from outside?)",
		           s->dir);
	if (s->conn_id == 0)
		return;
	/* Files still open keep a detached mount alive; abort the connection so
	 * the workers' reads fail and shim_run() returns. */
	(void)snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort", s->conn_id);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd != -1) {
		(void)!write(fd, "1", 1);
		(void)close(fd);
	}
}

void
shim_set_read_only(struct shim *s, bool read_only)
{
	atomic_store(&s->read_only, read_only);
}

void
shim_ns_hold(struct shim *s, bool hold)
{
	if (hold)
		pthread_mutex_lock(&s->ns_lock);
	else
		pthread_mutex_unlock(&s->ns_lock);
}

void
shim_set_epoch(struct shim *s, uint64_t epoch)
{
	if (epoch > atomic_load(&s->epoch))
		atomic_store(&s->epoch, epoch);
}

int
shim_epoch_busy(struct shim *s, uint64_t epoch)
{
	return atomic_load(&s->epoch_busy[epoch & 1]);
}

void
shim_free(struct shim *s)
{
	if (s == NULL)
		return;
	if (s->signals)
		fuse_remove_signal_handlers(s->se);
	shim_destroy(s);
}

void
shim_get_stats(struct shim *s, struct shim_stats *st)
{
	st->ops_submitted = atomic_load_explicit(&s->st_ops, memory_order_relaxed);
	st->bytes_written = atomic_load_explicit(&s->st_bytes, memory_order_relaxed);
	pthread_mutex_lock(&s->table_lock);
	st->inodes = s->n_inodes;
	pthread_mutex_unlock(&s->table_lock);
}
