/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nl.c - rtnetlink by hand: RTM_NEWADDR / RTM_DELADDR with ACK, RTM_GETADDR
 * dumps, and SIOCGIFFLAGS.
 *
 * Part: NETLINK interface address manipulation for the VIP. Pure module: it
 * never logs and holds no global state; vip.c decides and logs. It does not
 * subscribe to netlink groups (no events, so no ENOBUFS overruns to replay).
 * Any thread; a struct nl belongs to one thread at a time.
 *
 * Messages are built and parsed through memcpy() into local headers, never by
 * casting a byte pointer, so buffers need no particular alignment and the
 * builders can be compared byte for byte with hand-written golden messages.
 * Netlink is in host byte order.
 */
#include "nl.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

#define NL_RCVBUF_BYTES 32768 /* a dump part is at most 32 KiB (kernel default) */

/* The raw bytes of the address in ss and their count (4 or 16); NULL for
 * another family. */
static const uint8_t *
addr_bytes(const struct sockaddr_storage *ss, size_t *len)
{
	if (ss->ss_family == AF_INET) {
		*len = 4;
		return (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
	}
	if (ss->ss_family == AF_INET6) {
		*len = 16;
		return (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
	}
	*len = 0;
	return NULL;
}

/* Append one attribute at *off (aligned), zero-filling the padding. */
static int
put_attr(uint8_t *buf, size_t buf_len, size_t *off, unsigned short type, const void *data,
         size_t len)
{
	struct rtattr rta = { .rta_len = (unsigned short)RTA_LENGTH(len), .rta_type = type };
	size_t total = RTA_SPACE(len);

	if (*off > buf_len || buf_len - *off < total)
		return -ENOBUFS;
	memset(buf + *off, 0, total);
	memcpy(buf + *off, &rta, sizeof(rta));
	memcpy(buf + *off + RTA_LENGTH(0), data, len);
	*off += total;
	return 0;
}

/* Pure, any thread. See nl.h for the attributes; the buffer may be unaligned. */
int
nl_build_addr(void *buf, size_t buf_len, enum nl_cmd cmd, uint32_t seq, const struct nl_addr *a)
{
	struct nlmsghdr nh = {
		.nlmsg_type = cmd == NL_ADD ? RTM_NEWADDR : RTM_DELADDR,
		.nlmsg_flags =
		        NLM_F_REQUEST | NLM_F_ACK | (cmd == NL_ADD ? NLM_F_CREATE | NLM_F_EXCL : 0),
		.nlmsg_seq = seq,
	};
	struct ifaddrmsg ifa = {
		.ifa_family = (unsigned char)a->family,
		.ifa_prefixlen = a->prefixlen,
		.ifa_flags = cmd == NL_ADD ? (unsigned char)(a->flags & 0xff) : 0,
		.ifa_scope = a->scope,
		.ifa_index = (unsigned)a->ifindex,
	};
	uint8_t *p = buf;
	const uint8_t *ab;
	size_t alen, off;
	int r;

	ab = addr_bytes(&a->addr, &alen);
	if (ab == NULL || a->family != a->addr.ss_family || a->ifindex <= 0 ||
	    a->prefixlen > alen * 8)
		return -EINVAL;
	off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifa));
	if (buf_len < off)
		return -ENOBUFS;
	memset(p, 0, off);
	memcpy(p + NLMSG_HDRLEN, &ifa, sizeof(ifa));

	r = put_attr(p, buf_len, &off, IFA_LOCAL, ab, alen);
	if (r == 0 && cmd == NL_ADD)
		r = put_attr(p, buf_len, &off, IFA_ADDRESS, ab, alen);
	if (r == 0 && cmd == NL_ADD && a->label[0] != '\0')
		r = put_attr(p, buf_len, &off, IFA_LABEL, a->label,
		             strnlen(a->label, sizeof(a->label) - 1) + 1);
	if (r == 0 && cmd == NL_ADD && a->flags != 0)
		r = put_attr(p, buf_len, &off, IFA_FLAGS, &a->flags, sizeof(a->flags));
	if (r < 0)
		return r;

	nh.nlmsg_len = (uint32_t)off;
	memcpy(p, &nh, sizeof(nh));
	return (int)off;
}

/* Pure, any thread. The kernel ignores ifa_index in a plain dump, so callers filter. */
int
nl_build_getaddr(void *buf, size_t buf_len, uint32_t seq, int family)
{
	struct nlmsghdr nh = {
		.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)),
		.nlmsg_type = RTM_GETADDR,
		.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		.nlmsg_seq = seq,
	};
	struct ifaddrmsg ifa = { .ifa_family = (unsigned char)family };
	uint8_t *p = buf;

	if (buf_len < NLMSG_SPACE(sizeof(ifa)))
		return -ENOBUFS;
	memset(p, 0, NLMSG_SPACE(sizeof(ifa)));
	memcpy(p, &nh, sizeof(nh));
	memcpy(p + NLMSG_HDRLEN, &ifa, sizeof(ifa));
	return (int)nh.nlmsg_len;
}

/* Pure, any thread. Unknown attributes are skipped; a truncated one is an error. */
int
nl_parse_addr(const void *msg, size_t len, struct nl_addr *out)
{
	const uint8_t *p = msg;
	struct ifaddrmsg ifa;
	struct nlmsghdr nh;
	bool have_local = false, have_addr = false;
	uint8_t local[16], address[16];
	size_t off, end, alen;

	if (len < NLMSG_HDRLEN + sizeof(ifa))
		return -EINVAL;
	memcpy(&nh, p, sizeof(nh));
	if (nh.nlmsg_type != RTM_NEWADDR || nh.nlmsg_len < NLMSG_HDRLEN + sizeof(ifa) ||
	    nh.nlmsg_len > len)
		return -EINVAL;
	memcpy(&ifa, p + NLMSG_HDRLEN, sizeof(ifa));
	if (ifa.ifa_family == AF_INET)
		alen = 4;
	else if (ifa.ifa_family == AF_INET6)
		alen = 16;
	else
		return -EINVAL;

	memset(out, 0, sizeof(*out));
	out->ifindex = (int)ifa.ifa_index;
	out->family = ifa.ifa_family;
	out->prefixlen = ifa.ifa_prefixlen;
	out->scope = ifa.ifa_scope;
	out->flags = ifa.ifa_flags;

	end = nh.nlmsg_len;
	off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifa));
	while (off + sizeof(struct rtattr) <= end) {
		struct rtattr rta;
		size_t plen;

		memcpy(&rta, p + off, sizeof(rta));
		if (rta.rta_len < sizeof(rta) || rta.rta_len > end - off)
			return -EINVAL;
		plen = rta.rta_len - RTA_LENGTH(0);
		switch (rta.rta_type) {
		case IFA_LOCAL:
			if (plen == alen) {
				memcpy(local, p + off + RTA_LENGTH(0), alen);
				have_local = true;
			}
			break;
		case IFA_ADDRESS:
			if (plen == alen) {
				memcpy(address, p + off + RTA_LENGTH(0), alen);
				have_addr = true;
			}
			break;
		case IFA_LABEL: {
			size_t n = plen < sizeof(out->label) - 1 ? plen : sizeof(out->label) - 1;

			memcpy(out->label, p + off + RTA_LENGTH(0), n);
			out->label[n] = '\0'; /* the kernel's own NUL, if any, is within n */
		} break;
		case IFA_FLAGS:
			if (plen == sizeof(uint32_t))
				memcpy(&out->flags, p + off + RTA_LENGTH(0), sizeof(uint32_t));
			break;
		default:
			break;
		}
		off += RTA_ALIGN(rta.rta_len);
	}
	if (!have_local && !have_addr)
		return -EINVAL;

	out->addr.ss_family = (sa_family_t)ifa.ifa_family;
	if (alen == 4)
		memcpy(&((struct sockaddr_in *)&out->addr)->sin_addr, have_local ? local : address,
		       4);
	else
		memcpy(&((struct sockaddr_in6 *)&out->addr)->sin6_addr,
		       have_local ? local : address, 16);
	return 0;
}

/* Pure, any thread. Messages for other sequence numbers (stale replies) are skipped. */
int
nl_parse_ack(const void *buf, size_t len, uint32_t seq)
{
	const uint8_t *p = buf;
	size_t off = 0;

	while (len - off >= NLMSG_HDRLEN) {
		struct nlmsghdr nh;

		memcpy(&nh, p + off, sizeof(nh));
		if (nh.nlmsg_len < NLMSG_HDRLEN || nh.nlmsg_len > len - off)
			return -EBADMSG;
		if (nh.nlmsg_seq == seq && nh.nlmsg_type == NLMSG_ERROR) {
			int error;

			if (nh.nlmsg_len < NLMSG_LENGTH(sizeof(int)))
				return -EBADMSG;
			memcpy(&error, p + off + NLMSG_HDRLEN, sizeof(error));
			return error > 0 ? -error : error;
		}
		if (NLMSG_ALIGN(nh.nlmsg_len) >= len - off)
			break;
		off += NLMSG_ALIGN(nh.nlmsg_len);
	}
	return -EAGAIN;
}

/* Pure, any thread. */
bool
nl_same_subnet(const struct sockaddr_storage *a, const struct sockaddr_storage *b,
               unsigned prefixlen)
{
	size_t la, lb, full;
	const uint8_t *pa = addr_bytes(a, &la), *pb = addr_bytes(b, &lb);
	unsigned rest;

	if (pa == NULL || pb == NULL || la != lb || prefixlen > la * 8)
		return false;
	full = prefixlen / 8;
	rest = prefixlen % 8;
	if (memcmp(pa, pb, full) != 0)
		return false;
	if (rest != 0) {
		uint8_t mask = (uint8_t)(0xff00u >> rest);

		if ((pa[full] & mask) != (pb[full] & mask))
			return false;
	}
	return true;
}

/* ---- socket I/O ----------------------------------------------------------- */

/* Any thread. Autobinds (port id chosen by the kernel); no multicast groups. */
int
nl_open(struct nl *nl)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	socklen_t sl = sizeof(sa);
	int fd, r;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	if (fd == -1)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == -1) {
		r = -errno;
		goto err_close;
	}
	nl->fd = fd;
	nl->portid = sa.nl_pid;
	nl->seq = (uint32_t)mr_now_ms(); /* stale replies of an earlier socket never match */
	return 0;

err_close:
	(void)close(fd);
	return r;
}

/* Any thread. */
void
nl_close(struct nl *nl)
{
	if (nl->fd >= 0)
		(void)close(nl->fd);
	nl->fd = -1;
}

/* Send one request to the kernel. */
static int
nl_send(struct nl *nl, const void *msg, size_t len)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	ssize_t n;

	do {
		n = sendto(nl->fd, msg, len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -errno;
	if ((size_t)n != len)
		return -EIO;
	return 0;
}

/* Receive one datagram from the kernel into buf, waiting until deadline_ms.
 * Returns its length, -ETIMEDOUT or -errno. */
static int
nl_recv(struct nl *nl, uint8_t *buf, size_t len, uint64_t deadline_ms)
{
	for (;;) {
		struct sockaddr_nl from;
		socklen_t fl = sizeof(from);
		struct pollfd pfd = { .fd = nl->fd, .events = POLLIN };
		uint64_t now;
		ssize_t n;

		n = recvfrom(nl->fd, buf, len, MSG_TRUNC, (struct sockaddr *)&from, &fl);
		if (n >= 0) {
			if (from.nl_pid != 0)
				continue; /* not from the kernel */
			if ((size_t)n > len)
				return -EMSGSIZE;
			return (int)n;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		now = mr_now_ms();
		if (now >= deadline_ms)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, (int)(deadline_ms - now)) == -1 && errno != EINTR)
			return -errno;
	}
}

/* Send msg and read replies until on_reply says done (> 0) or fails (< 0);
 * 0 means read on. Blocking, bounded by NL_REPLY_TIMEOUT_MS. Returns 0 or -errno. */
static int
nl_request(struct nl *nl, const uint8_t *msg, size_t len,
           int (*on_reply)(void *ctx, const uint8_t *buf, size_t n), void *ctx)
{
	uint64_t deadline_ms = mr_now_ms() + NL_REPLY_TIMEOUT_MS;
	uint8_t *rbuf = calloc(1, NL_RCVBUF_BYTES);
	int r;

	if (rbuf == NULL)
		return -ENOMEM;
	r = nl_send(nl, msg, len);
	while (r == 0) {
		int n = nl_recv(nl, rbuf, NL_RCVBUF_BYTES, deadline_ms);

		r = n < 0 ? n : on_reply(ctx, rbuf, (size_t)n);
	}
	free(rbuf);
	return r < 0 ? r : 0;
}

static int
ack_reply(void *ctx, const uint8_t *buf, size_t n)
{
	int r = nl_parse_ack(buf, n, *(const uint32_t *)ctx);

	return r == -EAGAIN ? 0 /* a stale reply: read on */ : r == 0 ? 1 : r;
}

/* Blocking (bounded by NL_REPLY_TIMEOUT_MS), the caller's thread. */
int
nl_addr_change(struct nl *nl, enum nl_cmd cmd, const struct nl_addr *a)
{
	uint8_t msg[NL_ADDR_MSG_MAX];
	int len, r;

	len = nl_build_addr(msg, sizeof(msg), cmd, ++nl->seq, a);
	if (len < 0)
		return len;
	r = nl_request(nl, msg, (size_t)len, ack_reply, &nl->seq);

	/* Kernel idempotency made explicit (keepalived does the same): the
	 * address being there already, or gone already, is what we wanted. */
	if (cmd == NL_ADD && r == -EEXIST)
		return 0;
	if (cmd == NL_DEL && (r == -EADDRNOTAVAIL || r == -ENODEV))
		return 0;
	return r;
}

/* Walk one datagram of a dump. Returns 1 at NLMSG_DONE, 0 to read on, -errno. */
static int
dump_chunk(const uint8_t *buf, size_t len, uint32_t seq, nl_addr_fn fn, void *ctx, bool *stopped)
{
	size_t off = 0;

	while (len - off >= NLMSG_HDRLEN) {
		struct nlmsghdr nh;

		memcpy(&nh, buf + off, sizeof(nh));
		if (nh.nlmsg_len < NLMSG_HDRLEN || nh.nlmsg_len > len - off)
			return -EBADMSG;
		if (nh.nlmsg_seq == seq) {
			if (nh.nlmsg_type == NLMSG_DONE)
				return 1;
			if (nh.nlmsg_type == NLMSG_ERROR) {
				int r = nl_parse_ack(buf + off, nh.nlmsg_len, seq);

				return r == 0 ? 1 : r;
			}
			if (nh.nlmsg_type == RTM_NEWADDR && !*stopped) {
				struct nl_addr a;

				if (nl_parse_addr(buf + off, nh.nlmsg_len, &a) == 0 &&
				    fn(ctx, &a) != 0)
					*stopped = true;
			}
		}
		if (NLMSG_ALIGN(nh.nlmsg_len) >= len - off)
			break;
		off += NLMSG_ALIGN(nh.nlmsg_len);
	}
	return 0;
}

struct dump_ctx {
	uint32_t seq;
	nl_addr_fn fn;
	void *ctx;
	bool stopped;
};

static int
dump_reply(void *ctx, const uint8_t *buf, size_t n)
{
	struct dump_ctx *d = ctx;

	return dump_chunk(buf, n, d->seq, d->fn, d->ctx, &d->stopped);
}

/* Blocking (bounded by NL_REPLY_TIMEOUT_MS), the caller's thread. fn runs on it too. */
int
nl_addr_dump(struct nl *nl, int family, nl_addr_fn fn, void *ctx)
{
	uint8_t msg[NLMSG_SPACE(sizeof(struct ifaddrmsg))];
	struct dump_ctx d = { .fn = fn, .ctx = ctx };
	int len;

	len = nl_build_getaddr(msg, sizeof(msg), ++nl->seq, family);
	if (len < 0)
		return len;
	d.seq = nl->seq;
	return nl_request(nl, msg, (size_t)len, dump_reply, &d);
}

struct present_ctx {
	int ifindex;
	const struct sockaddr_storage *addr;
	int found;
};

static int
present_cb(void *ctx, const struct nl_addr *a)
{
	struct present_ctx *pc = ctx;
	size_t len;

	if (a->ifindex != pc->ifindex || a->family != pc->addr->ss_family)
		return 0;
	(void)addr_bytes(pc->addr, &len);
	if (nl_same_subnet(&a->addr, pc->addr, (unsigned)len * 8)) {
		pc->found = 1;
		return 1;
	}
	return 0;
}

/* One dump of the family's addresses. Blocking, the caller's thread. */
int
nl_addr_present(struct nl *nl, int ifindex, const struct sockaddr_storage *addr)
{
	struct present_ctx pc = { .ifindex = ifindex, .addr = addr };
	int r;

	r = nl_addr_dump(nl, addr->ss_family, present_cb, &pc);
	return r < 0 ? r : pc.found;
}

struct subnet_ctx {
	int ifindex; /* nl_subnet_on_if(): the interface; nl_subnet_ifindex(): 0 */
	const struct sockaddr_storage *addr;
	uint8_t prefixlen;
	unsigned best_score;
	int best_ifindex;
};

static bool
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	size_t len;

	(void)addr_bytes(a, &len);
	return len > 0 && nl_same_subnet(a, b, (unsigned)len * 8);
}

static int
on_if_cb(void *ctx, const struct nl_addr *a)
{
	struct subnet_ctx *sc = ctx;

	if (a->ifindex != sc->ifindex || a->family != sc->addr->ss_family ||
	    a->prefixlen != sc->prefixlen || same_addr(&a->addr, sc->addr))
		return 0;
	if (nl_same_subnet(&a->addr, sc->addr, sc->prefixlen)) {
		sc->best_ifindex = a->ifindex;
		return 1;
	}
	return 0;
}

/* One dump. Blocking, the caller's thread. */
int
nl_subnet_on_if(struct nl *nl, int ifindex, const struct sockaddr_storage *addr, uint8_t prefixlen)
{
	struct subnet_ctx sc = { .ifindex = ifindex, .addr = addr, .prefixlen = prefixlen };
	int r;

	r = nl_addr_dump(nl, addr->ss_family, on_if_cb, &sc);
	return r < 0 ? r : sc.best_ifindex != 0;
}

static int
subnet_cb(void *ctx, const struct nl_addr *a)
{
	struct subnet_ctx *sc = ctx;
	unsigned m, score;

	if (a->family != sc->addr->ss_family || a->scope == RT_SCOPE_HOST)
		return 0;
	m = a->prefixlen < sc->prefixlen ? a->prefixlen : sc->prefixlen;
	if (m == 0 || !nl_same_subnet(&a->addr, sc->addr, m))
		return 0;
	/* Longest match wins; at equal length another address beats the VIP
	 * itself (left over from an earlier run, possibly on a wrong interface). */
	score = m * 2 + (same_addr(&a->addr, sc->addr) ? 0 : 1);
	if (score > sc->best_score) {
		sc->best_score = score;
		sc->best_ifindex = a->ifindex;
	}
	return 0;
}

/* One dump. Blocking, the caller's thread. */
int
nl_subnet_ifindex(struct nl *nl, const struct sockaddr_storage *addr, uint8_t prefixlen)
{
	struct subnet_ctx sc = { .addr = addr, .prefixlen = prefixlen };
	int r;

	r = nl_addr_dump(nl, addr->ss_family, subnet_cb, &sc);
	if (r < 0)
		return r;
	return sc.best_ifindex > 0 ? sc.best_ifindex : -ENODEV;
}

/* One ioctl on a throw-away socket. Any thread. */
int
nl_if_flags(const char *ifname, unsigned *flags)
{
	static const int families[] = { AF_INET, AF_INET6, AF_UNIX };
	struct ifreq ifr;
	int fd = -1, r = 0;

	if (strlen(ifname) >= sizeof(ifr.ifr_name))
		return -ENODEV;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strlen(ifname) + 1);
	/* Any socket reaches the device ioctls; try the families a kernel may lack. */
	for (size_t i = 0; i < ARRAY_SIZE(families) && fd == -1; i++) {
		fd = socket(families[i], SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd == -1)
			r = -errno;
	}
	if (fd == -1)
		return r;
	r = 0;
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == -1)
		r = -errno;
	else
		*flags = (unsigned short)ifr.ifr_flags;
	(void)close(fd);
	return r;
}
