/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * log.h - the module log (one human file per module), syslog/journald and,
 * in the foreground, stderr.
 *
 * Lines are "TIMESTAMP LEVEL message" with key=value words so tests and admins
 * can grep them. Any thread: each line is one write(2) to an O_APPEND fd.
 */
#ifndef MR_LOG_H
#define MR_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_NOTICE,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/* Set up logging: ident for syslog, minimum level, whether to copy to stderr
 * and whether to use syslog. Call once from main() before any thread starts. */
void log_init(const char *ident, enum log_level level, bool to_stderr, bool to_syslog);

/* Open (or re-open, after rotation: SIGHUP) the module log file. The path is
 * copied. Returns 0 or -errno; on failure the previous file stays in use. */
int log_open_file(const char *path);
int log_reopen(void);
void log_close(void);

/* Parse "err|warn|notice|info|debug". Returns the level or -EINVAL. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...) MR_PRINTF(2, 3);

#define log_err(...)    log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_get_level() >= LOG_LVL_DEBUG)                                              \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                       \
	} while (0)

/* Per-call-site rate limit: at most one line per interval_ms from this site;
 * the next line that passes says how many were suppressed. */
struct log_rl {
	uint64_t last_ms;
	uint32_t suppressed;
};
bool log_rl_allow(struct log_rl *rl, uint32_t interval_ms, uint32_t *suppressed);

#define log_ratelimited(level, interval_ms, fmt, ...)                                              \
	do {                                                                                       \
		static struct log_rl rl__;                                                         \
		uint32_t sup__;                                                                    \
		if (log_rl_allow(&rl__, (interval_ms), &sup__))                                    \
			log_msg((level), fmt " (suppressed=%u)", ##__VA_ARGS__, sup__);            \
	} while (0)

#endif
