/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * witness.c - the split-brain witness check: can this node reach at least
 * one witness? ICMP echo for "IP" witnesses, TCP connect for "IP:PORT" ones.
 *
 * Part: split-brain witness reachability. Pure module: never logs; the
 * caller (the FSM) logs the verdict and the detail string. witness_probe()
 * blocks for at most timeout_ms and runs on any thread; witness_check() runs
 * it on the libuv thread pool and calls back on the loop thread.
 *
 * What counts as "reached": an ICMP echo reply from the witness's address
 * carrying our identifier, one of our sequence numbers and our random
 * payload (raw sockets see every echo reply of the host, also the replies to
 * other processes' pings and to our own earlier checks); or a TCP connection
 * that completes or is refused (a RST also proves the witness is up and
 * reachable). No answer, host/network unreachable and timeouts do not count.
 *
 * Schedule: every witness gets try k (k = 0, 1, 2) at k * timeout_ms / 3, all
 * in one poll() loop; earlier tries stay open (a late reply to try 0 still
 * counts) until the first answer or timeout_ms.
 */
#include "witness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "util.h"

#ifndef ICMP_FILTER
#define ICMP_FILTER 1 /* SOL_RAW option of IPv4 raw ICMP sockets (linux/icmp.h) */
#endif

#define WITNESS_TRIES       3
#define WITNESS_PAYLOAD_LEN 16 /* "hamirror" + 8 random bytes */
#define WITNESS_STR_LEN     (INET6_ADDRSTRLEN + 8)
#define WITNESS_DETAIL_LEN  512
#define ICMP4_ECHO_REQUEST  8
#define ICMP4_ECHO_REPLY    0

struct wit {
	const struct sockaddr_storage *addr; /* borrowed: the caller's array */
	bool tcp;
	char str[WITNESS_STR_LEN];
	int icmp_fd;                     /* ICMP: one raw socket for all tries */
	int tcp_fd[WITNESS_TRIES];       /* TCP: one connection per try */
	uint64_t sent_us[WITNESS_TRIES]; /* when try k left */
	unsigned tries;                  /* tries made so far */
	int err;                         /* last local error (send, connect), for detail */
};

struct probe {
	struct wit *w;
	size_t n;
	uint16_t ident;    /* ICMP identifier */
	uint16_t seq_base; /* try k uses seq_base + k */
	uint8_t payload[WITNESS_PAYLOAD_LEN];
};

static uint16_t
inet_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += mr_get_be16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void
fill_random(void *buf, size_t len)
{
	if (getrandom(buf, len, GRND_NONBLOCK) == (ssize_t)len)
		return;
	/* no entropy yet (early boot): uniqueness is all we need */
	uint64_t x = mr_clock_us(CLOCK_MONOTONIC) ^ ((uint64_t)getpid() << 32);
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		x = x * 6364136223846793005u + 1442695040888963407u;
		p[i] = (uint8_t)(x >> 56);
	}
}

/* A raw ICMP socket that only sees echo replies. Returns the fd or -errno. */
static int
icmp_open(int family)
{
	int fd;

	if (family == AF_INET) {
		uint32_t filter = ~(1u << ICMP4_ECHO_REPLY); /* set bits are dropped */

		fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
		if (fd == -1)
			return -errno;
		(void)setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter));
	} else {
		struct icmp6_filter f;

		fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
		if (fd == -1)
			return -errno;
		ICMP6_FILTER_SETBLOCKALL(&f);
		ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
		(void)setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
	}
	return fd;
}

/* Send echo request k (the kernel fills the ICMPv6 checksum itself). */
static int
icmp_send(const struct probe *pr, struct wit *w, unsigned k)
{
	uint8_t msg[8 + WITNESS_PAYLOAD_LEN];
	ssize_t n;

	msg[0] = w->addr->ss_family == AF_INET ? ICMP4_ECHO_REQUEST : ICMP6_ECHO_REQUEST;
	msg[1] = 0;
	mr_put_be16(msg + 2, 0);
	mr_put_be16(msg + 4, pr->ident);
	mr_put_be16(msg + 6, (uint16_t)(pr->seq_base + k));
	memcpy(msg + 8, pr->payload, WITNESS_PAYLOAD_LEN);
	if (w->addr->ss_family == AF_INET)
		mr_put_be16(msg + 2, inet_csum(msg, sizeof(msg)));
	do {
		n = sendto(w->icmp_fd, msg, sizeof(msg), 0, (const struct sockaddr *)w->addr,
		           conf_sa_len(w->addr));
	} while (n == -1 && errno == EINTR);
	return n == -1 ? -errno : 0;
}

/* Is icmp[0..len) the echo reply to one of our tries? Returns the try or -1. */
static int
icmp_match(const struct probe *pr, const struct wit *w, const uint8_t *icmp, size_t len)
{
	uint8_t want = w->addr->ss_family == AF_INET ? ICMP4_ECHO_REPLY : ICMP6_ECHO_REPLY;
	unsigned k;

	if (len != 8 + WITNESS_PAYLOAD_LEN || icmp[0] != want || icmp[1] != 0 ||
	    mr_get_be16(icmp + 4) != pr->ident)
		return -1;
	k = (uint16_t)(mr_get_be16(icmp + 6) - pr->seq_base);
	if (k >= w->tries || memcmp(icmp + 8, pr->payload, WITNESS_PAYLOAD_LEN) != 0)
		return -1;
	return (int)k;
}

/* Read every queued reply on w's raw socket; the matching try or -1. */
static int
icmp_recv(const struct probe *pr, const struct wit *w)
{
	uint8_t buf[1500];

	for (;;) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n =
		        recvfrom(w->icmp_fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		const uint8_t *icmp = buf;
		size_t len;
		int k;

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		len = (size_t)n;
		if (from.ss_family != w->addr->ss_family)
			continue;
		if (w->addr->ss_family == AF_INET) {
			/* IPv4 raw sockets hand us the IP header too */
			size_t ihl = (size_t)(buf[0] & 0x0f) * 4;

			if (len < 20 || (buf[0] >> 4) != 4 || ihl < 20 || ihl > len)
				continue;
			if (memcmp(buf + 12, &((const struct sockaddr_in *)w->addr)->sin_addr, 4) !=
			    0)
				continue;
			icmp += ihl;
			len -= ihl;
		} else if (memcmp(&((const struct sockaddr_in6 *)&from)->sin6_addr,
		                  &((const struct sockaddr_in6 *)w->addr)->sin6_addr, 16) != 0) {
			continue;
		}
		k = icmp_match(pr, w, icmp, len);
		if (k >= 0)
			return k;
	}
}

/* Start TCP try k. Returns 1 when it already ended in "reached", 0, -errno. */
static int
tcp_start(struct wit *w, unsigned k)
{
	int fd = socket(w->addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int r;

	if (fd == -1)
		return -errno;
	if (connect(fd, (const struct sockaddr *)w->addr, conf_sa_len(w->addr)) == 0 ||
	    errno == ECONNREFUSED) {
		(void)close(fd);
		return 1;
	}
	if (errno == EINPROGRESS) {
		w->tcp_fd[k] = fd;
		return 0;
	}
	r = -errno;
	(void)close(fd);
	return r;
}

/* TCP try k's socket became writable or failed: 1 reached, else -errno. */
static int
tcp_result(struct wit *w, unsigned k)
{
	int err = 0;
	socklen_t el = sizeof(err);

	if (getsockopt(w->tcp_fd[k], SOL_SOCKET, SO_ERROR, &err, &el) == -1)
		err = errno;
	(void)close(w->tcp_fd[k]);
	w->tcp_fd[k] = -1;
	if (err == 0 || err == ECONNREFUSED)
		return 1;
	return -err;
}

/* Append s to the string in buf (size len), truncating. */
static void
append(char *buf, size_t len, const char *s)
{
	size_t used = strnlen(buf, len);

	if (used + 1 < len)
		(void)mr_strlcpy(buf + used, s, len - used);
}

/* Any thread; blocks up to timeout_ms. addrs is only read during the call. */
bool
witness_probe(const struct sockaddr_storage *addrs, size_t n, unsigned timeout_ms, char *detail,
              size_t detail_len)
{
	struct probe pr = { .n = n };
	struct pollfd *pfds = NULL;
	struct {
		size_t wi;
		unsigned k;
	} *map = NULL;
	uint64_t start_us, deadline_us;
	bool reached = false;
	size_t who = 0;
	unsigned who_k = 0;

	if (detail_len > 0)
		detail[0] = '\0';
	if (n == 0) {
		snprintf(detail, detail_len, "no witness configured");
		return false;
	}
	pr.w = calloc(n, sizeof(*pr.w));
	pfds = calloc(n * WITNESS_TRIES, sizeof(*pfds));
	map = calloc(n * WITNESS_TRIES, sizeof(*map));
	if (pr.w == NULL || pfds == NULL || map == NULL) {
		snprintf(detail, detail_len, "witness check: %s", mr_strerror(-ENOMEM));
		goto out;
	}
	fill_random(&pr.ident, sizeof(pr.ident));
	fill_random(&pr.seq_base, sizeof(pr.seq_base));
	memcpy(pr.payload, "hamirror", 8);
	fill_random(pr.payload + 8, WITNESS_PAYLOAD_LEN - 8);

	for (size_t i = 0; i < n; i++) {
		struct wit *w = &pr.w[i];

		w->addr = &addrs[i];
		w->icmp_fd = -1;
		for (unsigned k = 0; k < WITNESS_TRIES; k++)
			w->tcp_fd[k] = -1;
		if (w->addr->ss_family != AF_INET && w->addr->ss_family != AF_INET6) {
			w->err = -EAFNOSUPPORT;
			w->tries = WITNESS_TRIES;
			snprintf(w->str, sizeof(w->str), "?");
			continue;
		}
		conf_sa_str(w->addr, w->str, sizeof(w->str));
		w->tcp = conf_sa_port(w->addr) != 0;
		if (!w->tcp) {
			w->icmp_fd = icmp_open(w->addr->ss_family);
			if (w->icmp_fd < 0) {
				w->err = w->icmp_fd;
				w->tries = WITNESS_TRIES; /* nothing to retry with */
			}
		}
	}

	start_us = mr_clock_us(CLOCK_MONOTONIC);
	deadline_us = start_us + (uint64_t)timeout_ms * 1000u;
	while (!reached) {
		uint64_t now = mr_clock_us(CLOCK_MONOTONIC), next = deadline_us;
		nfds_t nfds = 0;
		int r;

		/* due tries */
		for (size_t i = 0; i < n && !reached; i++) {
			struct wit *w = &pr.w[i];

			while (w->tries < WITNESS_TRIES &&
			       now >= start_us + (uint64_t)timeout_ms * 1000u * w->tries /
			                                 WITNESS_TRIES) {
				unsigned k = w->tries++;

				w->sent_us[k] = now;
				r = w->tcp ? tcp_start(w, k) : icmp_send(&pr, w, k);
				if (r == 1) {
					reached = true;
					who = i;
					who_k = k;
					break;
				}
				if (r < 0)
					w->err = r;
			}
			if (w->tries < WITNESS_TRIES) {
				uint64_t t = start_us + (uint64_t)timeout_ms * 1000u * w->tries /
				                                WITNESS_TRIES;

				if (t < next)
					next = t;
			}
		}
		if (reached || now >= deadline_us)
			break;

		for (size_t i = 0; i < n; i++) {
			struct wit *w = &pr.w[i];

			if (w->icmp_fd >= 0) {
				pfds[nfds] = (struct pollfd){ .fd = w->icmp_fd, .events = POLLIN };
				map[nfds].wi = i;
				map[nfds++].k = WITNESS_TRIES;
			}
			for (unsigned k = 0; k < WITNESS_TRIES; k++) {
				if (w->tcp_fd[k] < 0)
					continue;
				pfds[nfds] =
				        (struct pollfd){ .fd = w->tcp_fd[k], .events = POLLOUT };
				map[nfds].wi = i;
				map[nfds++].k = k;
			}
		}
		{
			/* round up: never spin on a sub-millisecond remainder */
			int wait_ms = (int)((next - now + 999) / 1000);

			r = poll(pfds, nfds, wait_ms);
		}
		if (r == -1 && errno != EINTR) {
			snprintf(detail, detail_len, "witness check: poll: %s",
			         mr_strerror(-errno));
			goto out;
		}
		for (nfds_t j = 0; r > 0 && j < nfds && !reached; j++) {
			struct wit *w = &pr.w[map[j].wi];
			int k;

			if (pfds[j].revents == 0)
				continue;
			if (map[j].k == WITNESS_TRIES) {
				k = icmp_recv(&pr, w);
			} else {
				k = tcp_result(w, map[j].k);
				if (k < 0)
					w->err = k;
				k = k == 1 ? (int)map[j].k : -1;
			}
			if (k >= 0) {
				reached = true;
				who = map[j].wi;
				who_k = (unsigned)k;
			}
		}
	}

	if (reached) {
		double ms = (double)(mr_clock_us(CLOCK_MONOTONIC) - pr.w[who].sent_us[who_k]) / 1000.0;

		snprintf(detail, detail_len, "%s answered in %.1f ms", pr.w[who].str, ms);
	} else {
		const struct wit *failed = NULL;

		snprintf(detail, detail_len, "no answer from ");
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				append(detail, detail_len, ", ");
			append(detail, detail_len, pr.w[i].str);
			if (failed == NULL && pr.w[i].err < 0)
				failed = &pr.w[i];
		}
		{
			char tail[160];

			if (failed != NULL)
				snprintf(tail, sizeof(tail), " within %u ms (%s: %s)", timeout_ms,
				         failed->str, mr_strerror(failed->err));
			else
				snprintf(tail, sizeof(tail), " within %u ms", timeout_ms);
			append(detail, detail_len, tail);
		}
	}

out:
	for (size_t i = 0; pr.w != NULL && i < n; i++) {
		struct wit *w = &pr.w[i];

		if (w->icmp_fd >= 0)
			(void)close(w->icmp_fd);
		for (unsigned k = 0; k < WITNESS_TRIES; k++)
			if (w->tcp_fd[k] >= 0)
				(void)close(w->tcp_fd[k]);
	}
	free(map);
	free(pfds);
	free(pr.w);
	return reached;
}

/* ---- asynchronous form ----------------------------------------------------- */

struct witness_req {
	uv_work_t work;
	struct sockaddr_storage *addrs; /* owned copy */
	size_t n;
	unsigned timeout_ms;
	witness_done_fn cb;
	void *ctx;
	bool reached;
	char detail[WITNESS_DETAIL_LEN];
};

static void
check_work(uv_work_t *w)
{
	struct witness_req *req = w->data;

	req->reached = witness_probe(req->addrs, req->n, req->timeout_ms, req->detail,
	                             sizeof(req->detail));
}

static void
check_done(uv_work_t *w, int status)
{
	struct witness_req *req = w->data;

	if (status == UV_ECANCELED) {
		req->reached = false;
		snprintf(req->detail, sizeof(req->detail), "witness check cancelled");
	}
	req->cb(req->ctx, req->reached, req->detail);
	free(req->addrs);
	free(req);
}

/* Loop thread. The witnesses are copied, so sb may change or go away at once. */
int
witness_check(uv_loop_t *loop, const struct conf_splitbrain *sb, unsigned timeout_ms,
              witness_done_fn cb, void *ctx)
{
	struct witness_req *req;
	int r;

	if (sb == NULL || sb->n_witnesses == 0 || sb->witnesses == NULL)
		return -EINVAL;
	req = calloc(1, sizeof(*req));
	if (req == NULL)
		return -ENOMEM;
	req->addrs = calloc(sb->n_witnesses, sizeof(*req->addrs));
	if (req->addrs == NULL) {
		free(req);
		return -ENOMEM;
	}
	memcpy(req->addrs, sb->witnesses, sb->n_witnesses * sizeof(*req->addrs));
	req->n = sb->n_witnesses;
	req->timeout_ms = timeout_ms;
	req->cb = cb;
	req->ctx = ctx;
	req->work.data = req;
	r = uv_queue_work(loop, &req->work, check_work, check_done);
	if (r < 0) {
		free(req->addrs);
		free(req);
		return r;
	}
	return 0;
}
