/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conf_common.c - pieces shared by the two configuration parsers: the error
 * list, the value parsers (durations, booleans, IP addresses, byte sizes) and
 * small socket-address helpers.
 *
 * Pure code, any thread, never logs. The value parsers are strict: no leading
 * or trailing blanks, no sign, no host names, so that what the admin wrote is
 * exactly what the daemon uses (and what both nodes hash).
 */
#include "conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grows the list by doubling; the message is formatted once and owned by the
 * list. Any thread (the list itself is not shared). Aborts on ENOMEM. */
void
conf_errs_add(struct conf_errs *e, const char *file, int line, const char *fmt, ...)
{
	char *body = NULL, *msg = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	MR_BUG_ON(n == -1);

	if (file == NULL)
		n = asprintf(&msg, "%s", body);
	else if (line <= 0)
		n = asprintf(&msg, "%s: %s", file, body);
	else
		n = asprintf(&msg, "%s:%d: %s", file, line, body);
	MR_BUG_ON(n == -1);
	free(body);

	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		char **msgs = mr_xcalloc(cap, sizeof(*msgs));

		if (e->n)
			memcpy(msgs, e->msgs, e->n * sizeof(*msgs));
		free(e->msgs);
		e->msgs = msgs;
		e->cap = cap;
	}
	e->msgs[e->n++] = msg;
}

/* Frees every message and the array; the list is empty and reusable after. */
void
conf_errs_done(struct conf_errs *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msgs[i]);
	mr_free(&e->msgs);
	e->n = 0;
	e->cap = 0;
}

/* Leading decimal digits of s as a uint64_t; *end points past them.
 * -EINVAL when there is no digit, -ERANGE on overflow. */
static int
parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return 0;
}

/* Strict: digits then an optional unit, nothing else (no blanks, no sign).
 * Returns 0, -EINVAL or -ERANGE (over UINT32_MAX ms, about 49.7 days). */
int
conf_parse_duration_ms(const char *s, uint32_t *out_ms)
{
	const char *unit;
	uint64_t v, mult;
	int r;

	if (s == NULL)
		return -EINVAL;
	r = parse_digits(s, &v, &unit);
	if (r < 0)
		return r;
	if (*unit == '\0' || strcmp(unit, "ms") == 0)
		mult = 1;
	else if (strcmp(unit, "s") == 0)
		mult = 1000;
	else if (strcmp(unit, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(unit, "h") == 0)
		mult = 3600 * 1000;
	else
		return -EINVAL;
	if (v > UINT32_MAX / mult)
		return -ERANGE;
	*out_ms = (uint32_t)(v * mult);
	return 0;
}

/* Exact, case-sensitive words only. Returns 0 or -EINVAL. */
int
conf_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	if (s == NULL)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* inet_pton() only: no host names, no scope ids. *out is zeroed, port 0.
 * Returns AF_INET, AF_INET6 or -EINVAL. */
int
conf_parse_ip(const char *s, struct sockaddr_storage *out)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)out;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
	struct in6_addr a6;
	struct in_addr a4;

	if (s == NULL)
		return -EINVAL;
	if (inet_pton(AF_INET, s, &a4) == 1) {
		memset(out, 0, sizeof(*out));
		sin->sin_family = AF_INET;
		sin->sin_addr = a4;
		return AF_INET;
	}
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		memset(out, 0, sizeof(*out));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = a6;
		return AF_INET6;
	}
	return -EINVAL;
}

/* Digits then an optional K/M/G (x1024^n). Returns 0, -EINVAL or -ERANGE. */
int
conf_parse_size_bytes(const char *s, uint64_t *out_bytes)
{
	const char *suffix;
	unsigned shift;
	uint64_t v;
	int r;

	if (s == NULL)
		return -EINVAL;
	r = parse_digits(s, &v, &suffix);
	if (r < 0)
		return r;
	switch (*suffix) {
	case '\0':
		shift = 0;
		break;
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (shift && suffix[1] != '\0')
		return -EINVAL;
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out_bytes = v << shift;
	return 0;
}

bool
conf_ip_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		              &((const struct sockaddr_in6 *)b)->sin6_addr,
		              sizeof(struct in6_addr)) == 0;
	return false;
}

int
conf_parse_ip_port(const char *s, struct sockaddr_storage *out)
{
	char host[CONF_ADDR_MAX];
	const char *colon = strrchr(s, ':');
	unsigned long port;
	char *end;
	size_t hl;
	int af;

	af = conf_parse_ip(s, out);
	if (af >= 0)
		return af;
	if (colon == NULL || colon[1] == '\0')
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return -EINVAL;
		s++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port == 0 || port > 65535)
		return -EINVAL;
	af = conf_parse_ip(host, out);
	if (af < 0)
		return -EINVAL;
	conf_sa_set_port(out, (uint16_t)port);
	return af;
}

uint16_t
conf_sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

void
conf_sa_set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

socklen_t
conf_sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

void
conf_sa_ip_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *a = NULL;

	if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (a == NULL || inet_ntop(ss->ss_family, a, buf, (socklen_t)len) == NULL)
		(void)snprintf(buf, len, "?");
}

void
conf_sa_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	uint16_t port = conf_sa_port(ss);

	conf_sa_ip_str(ss, ip, sizeof(ip));
	if (port == 0 || ip[0] == '?')
		(void)snprintf(buf, len, "%s", ip);
	else if (ss->ss_family == AF_INET6)
		(void)snprintf(buf, len, "[%s]:%u", ip, port);
	else
		(void)snprintf(buf, len, "%s:%u", ip, port);
}
