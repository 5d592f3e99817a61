/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * log.c - module log file, syslog and stderr.
 *
 * Each line is formatted into a stack buffer and written with one write(2) to
 * an O_APPEND descriptor, so lines from different threads never interleave.
 * The file descriptor is swapped atomically on reopen (SIGHUP, logrotate).
 * It does not rotate files itself (logrotate's copytruncate or SIGHUP does).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_fd = -1;
static char log_path[4096];
static enum log_level log_level = LOG_LVL_INFO;
static bool log_stderr;
static bool log_syslog;

static const char *const level_names[] = {
	[LOG_LVL_ERR] = "err",   [LOG_LVL_WARN] = "warn",   [LOG_LVL_NOTICE] = "notice",
	[LOG_LVL_INFO] = "info", [LOG_LVL_DEBUG] = "debug",
};

static const int level_syslog[] = {
	[LOG_LVL_ERR] = LOG_ERR,   [LOG_LVL_WARN] = LOG_WARNING, [LOG_LVL_NOTICE] = LOG_NOTICE,
	[LOG_LVL_INFO] = LOG_INFO, [LOG_LVL_DEBUG] = LOG_DEBUG,
};

void
log_init(const char *ident, enum log_level level, bool to_stderr, bool to_syslog)
{
	log_level = level;
	log_stderr = to_stderr;
	log_syslog = to_syslog;
	if (to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

int
log_open_file(const char *path)
{
	int fd, old;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1)
		return -errno;
	if (path != log_path)
		(void)mr_strlcpy(log_path, path, sizeof(log_path));
	old = atomic_exchange(&log_fd, fd);
	if (old != -1)
		(void)close(old);
	return 0;
}

int
log_reopen(void)
{
	if (log_path[0] == '\0')
		return 0;
	return log_open_file(log_path);
}

void
log_close(void)
{
	int old = atomic_exchange(&log_fd, -1);

	if (old != -1)
		(void)close(old);
	if (log_syslog)
		closelog();
}

int
log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "error") == 0)
		return LOG_LVL_ERR;
	if (strcasecmp(s, "warning") == 0)
		return LOG_LVL_WARN;
	return -EINVAL;
}

const char *
log_level_name(enum log_level level)
{
	return (unsigned)level < ARRAY_SIZE(level_names) ? level_names[level] : "?";
}

enum log_level
log_get_level(void)
{
	return log_level;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t hdr, len;
	va_list ap;
	int n, fd;

	if (level > log_level)
		return;
	(void)clock_gettime(CLOCK_REALTIME, &ts);
	(void)gmtime_r(&ts.tv_sec, &tm);
	hdr = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line + hdr, sizeof(line) - hdr, ".%03ldZ %-6s ", ts.tv_nsec / 1000000L,
	             log_level_name(level));
	hdr += (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(line + hdr, sizeof(line) - hdr - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	len = hdr + (size_t)n;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	line[len] = '\0';

	fd = atomic_load(&log_fd);
	if (fd != -1)
		(void)!write(fd, line, len);
	if (log_stderr)
		(void)!write(STDERR_FILENO, line, len);
	if (log_syslog)
		syslog(level_syslog[level], "%.*s", (int)(len - hdr - 1), line + hdr);
}

bool
log_rl_allow(struct log_rl *rl, uint32_t interval_ms, uint32_t *suppressed)
{
	uint64_t now = mr_now_ms();

	if (rl->last_ms != 0 && now - rl->last_ms < interval_ms) {
		rl->suppressed++;
		return false;
	}
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	rl->last_ms = now;
	return true;
}
