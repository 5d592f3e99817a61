/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * util.h - small helpers shared by every module: invariants, freeing,
 * the monotonic clock and bounded string copies.
 *
 * Pure code, any thread.
 */
#ifndef MR_UTIL_H
#define MR_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Invariant check, always compiled in: logs file:line and aborts. */
#define MR_BUG_ON(cond)                                                                            \
	do {                                                                                       \
		if (__builtin_expect(!!(cond), 0))                                                 \
			mr_bug(__FILE__, __LINE__, #cond);                                         \
	} while (0)

/* Free *pp and set it to NULL so no dangling pointer stays reachable. */
#define mr_free(pp)                                                                                \
	do {                                                                                       \
		free(*(pp));                                                                       \
		*(pp) = NULL;                                                                      \
	} while (0)

#define MR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/* Report a failed MR_BUG_ON() to stderr and syslog, then abort(). */
__attribute__((noreturn)) void mr_bug(const char *file, int line, const char *cond);

/* Monotonic clock in milliseconds (CLOCK_MONOTONIC). */
uint64_t mr_now_ms(void);

/* Clock clk (CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_THREAD_CPUTIME_ID...) in
 * microseconds. */
uint64_t mr_clock_us(clockid_t clk);

/* Copy src into dst of size dst_len, always NUL-terminated.
 * Returns 0, or -ENAMETOOLONG when src did not fit (dst then holds a prefix). */
int mr_strlcpy(char *dst, const char *src, size_t dst_len);

/* calloc() that aborts on ENOMEM: for small control-plane allocations only. */
void *mr_xcalloc(size_t n, size_t size);
/* strdup() that aborts on ENOMEM. */
char *mr_xstrdup(const char *s);

/* Big-endian (network order) loads and stores of wire fields. */
static inline void
mr_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint16_t
mr_get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void
mr_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t
mr_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void
mr_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t
mr_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Format a reason into err (which may be NULL or 0 bytes long). */
void mr_set_err(char *err, size_t err_len, const char *fmt, ...) MR_PRINTF(3, 4);

/* Where cgroup v2 is mounted (from /proc/self/mountinfo) into out; "" when
 * nowhere. */
void mr_cgroup2_mount(char *out, size_t len);

/* fsync the directory holding path (a rename in it is durable). 0 or -errno. */
int mr_fsync_parent(const char *path);

/* Replace path with data and a newline atomically: a temp file, fsync,
 * rename, fsync of the directory. Returns 0 or -errno with err set. */
int mr_write_file_atomic(const char *path, const char *data, size_t len, char *err,
                         size_t err_len);

/* Raise RLIMIT_NOFILE soft limit to the hard limit. Returns 0 or -errno. */
int mr_raise_nofile(void);

#endif
