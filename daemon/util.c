/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * util.c - invariants, the monotonic clock, bounded copies, resource limits.
 *
 * Pure helpers, any thread, no logging except the fatal mr_bug().
 */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <syslog.h>
#include <time.h>

void
mr_bug(const char *file, int line, const char *cond)
{
	fprintf(stderr, "BUG at %s:%d: %s\n", file, line, cond);
	syslog(LOG_CRIT, "BUG at %s:%d: %s", file, line, cond);
	abort();
}

uint64_t
mr_now_ms(void)
{
	struct timespec ts;

	MR_BUG_ON(clock_gettime(CLOCK_MONOTONIC, &ts) == -1);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
mr_clock_us(clockid_t clk)
{
	struct timespec ts;

	MR_BUG_ON(clock_gettime(clk, &ts) == -1);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int
mr_strlcpy(char *dst, const char *src, size_t dst_len)
{
	size_t len = strlen(src);

	MR_BUG_ON(dst_len == 0);
	if (len >= dst_len) {
		memcpy(dst, src, dst_len - 1);
		dst[dst_len - 1] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

void *
mr_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	MR_BUG_ON(p == NULL);
	return p;
}

char *
mr_xstrdup(const char *s)
{
	char *p = strdup(s);

	MR_BUG_ON(p == NULL);
	return p;
}

int
mr_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -errno;
	if (rl.rlim_cur >= rl.rlim_max)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -errno;
	return 0;
}

void
mr_set_err(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err_len == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

int
mr_fsync_parent(const char *path)
{
	char dir[4096];
	int fd, r = 0;

	(void)snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || fsync(fd) == -1)
		r = -errno;
	if (fd != -1)
		(void)close(fd);
	return r;
}

int
mr_write_file_atomic(const char *path, const char *data, size_t len, char *err, size_t err_len)
{
	char tmp[4096];
	int fd, r = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		mr_set_err(err, err_len, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		r = -errno;
		goto out;
	}
	errno = 0;
	if (write(fd, data, len) != (ssize_t)len || write(fd, "\n", 1) != 1)
		r = errno != 0 ? -errno : -EIO;
	if (r == 0 && fsync(fd) == -1)
		r = -errno;
	if (close(fd) == -1 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) == -1)
		r = -errno;
	if (r == 0)
		r = mr_fsync_parent(path);
out:
	if (r < 0) {
		(void)unlink(tmp);
		mr_set_err(err, err_len, "%s: %s", path, strerror(-r));
	}
	return r;
}

void
mr_cgroup2_mount(char *out, size_t len)
{
	char line[4096], mnt[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");

	out[0] = '\0';
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, " - cgroup2 ") != NULL &&
		    sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1) {
			(void)snprintf(out, len, "%s", mnt);
			break;
		}
	if (f != NULL)
		(void)fclose(f);
}
