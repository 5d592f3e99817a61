/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * nl.h - rtnetlink by hand (no libmnl): add, delete and list interface
 * addresses, and read interface flags. Used by vip.c.
 *
 * Pure module: never logs. The message builders and parsers touch no socket
 * (unit-tested against golden bytes); the rest does blocking I/O on a
 * NETLINK_ROUTE socket owned by the caller. Any thread, one struct nl per
 * thread.
 */
#ifndef MR_NL_H
#define MR_NL_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NL_REPLY_TIMEOUT_MS 2000 /* the kernel answers at once; this bounds a bug */
#define NL_ADDR_MSG_MAX     128  /* room for any message nl_build_addr() makes */

enum nl_cmd {
	NL_ADD = 0, /* RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL */
	NL_DEL,     /* RTM_DELADDR */
};

/* One NETLINK_ROUTE socket (SOCK_NONBLOCK, waits with poll()). */
struct nl {
	int fd;
	uint32_t seq;    /* last sequence number used */
	uint32_t portid; /* our netlink port id, from getsockname() */
};

/* One interface address, as sent or as found by a dump. */
struct nl_addr {
	int ifindex;
	int family; /* AF_INET or AF_INET6 */
	uint8_t prefixlen;
	uint8_t scope;                /* RT_SCOPE_*; 0 (universe) when sending */
	uint32_t flags;               /* IFA_F_* (IFA_FLAGS when present) */
	struct sockaddr_storage addr; /* IFA_LOCAL, else IFA_ADDRESS; port 0 */
	char label[IF_NAMESIZE];      /* IFA_LABEL (IPv4); "" = none */
};

/* Called for each address of a dump; return non-zero to stop (the rest of the
 * dump is read and dropped). */
typedef int (*nl_addr_fn)(void *ctx, const struct nl_addr *a);

/* ---- pure builders and parsers -------------------------------------------- */

/* Build the RTM_NEWADDR (NL_ADD) or RTM_DELADDR (NL_DEL) request for a into
 * buf, with NLM_F_ACK, sequence seq and port id 0. NL_ADD carries IFA_LOCAL,
 * IFA_ADDRESS, IFA_LABEL when a->label is set, and IFA_FLAGS when a->flags is
 * not 0 (the low 8 bits also go into ifa_flags). NL_DEL carries IFA_LOCAL only,
 * so that an address is found whatever peer or label it was given.
 * Returns the message length, -EINVAL (family, prefixlen, ifindex) or -ENOBUFS. */
int nl_build_addr(void *buf, size_t buf_len, enum nl_cmd cmd, uint32_t seq,
                  const struct nl_addr *a);

/* Build an RTM_GETADDR dump request for family (AF_UNSPEC for all).
 * Returns the message length or -ENOBUFS. */
int nl_build_getaddr(void *buf, size_t buf_len, uint32_t seq, int family);

/* Decode one RTM_NEWADDR message (msg points at its struct nlmsghdr, len is
 * nlmsg_len). Returns 0, -EINVAL when it is not a well-formed IPv4/IPv6 address
 * message. */
int nl_parse_addr(const void *msg, size_t len, struct nl_addr *out);

/* Scan a buffer of replies for the answer to seq: 0 for an ACK, the kernel's
 * -errno for an NLMSG_ERROR, -EAGAIN when the buffer holds no answer for seq,
 * -EBADMSG when it is malformed. */
int nl_parse_ack(const void *buf, size_t len, uint32_t seq);

/* Do a and b (same family) agree on their first prefixlen bits? */
bool nl_same_subnet(const struct sockaddr_storage *a, const struct sockaddr_storage *b,
                    unsigned prefixlen);

/* ---- socket I/O ----------------------------------------------------------- */

/* Open a NETLINK_ROUTE socket. Returns 0 or -errno. */
int nl_open(struct nl *nl);

/* Close it and set fd to -1. Accepts a struct nl that was never opened if its
 * fd is -1. */
void nl_close(struct nl *nl);

/* Add or delete one address and wait for the kernel's answer. Idempotent:
 * EEXIST on add and EADDRNOTAVAIL / ENODEV on delete count as success.
 * Returns 0 or -errno. */
int nl_addr_change(struct nl *nl, enum nl_cmd cmd, const struct nl_addr *a);

/* Dump every address of family (AF_UNSPEC: all) and call fn for each.
 * Returns 0 or -errno. */
int nl_addr_dump(struct nl *nl, int family, nl_addr_fn fn, void *ctx);

/* Is addr (any prefixlen) configured on interface ifindex?
 * Returns 1, 0 or -errno. */
int nl_addr_present(struct nl *nl, int ifindex, const struct sockaddr_storage *addr);

/* Does interface ifindex hold another address with exactly this prefixlen
 * in addr's subnet (so addr would be an IPv4 secondary there)?
 * Returns 1, 0 or -errno. */
int nl_subnet_on_if(struct nl *nl, int ifindex, const struct sockaddr_storage *addr,
                    uint8_t prefixlen);

/* The interface to put addr/prefixlen on: the one holding an address whose
 * subnet and addr's agree on the most bits (the shorter of the two prefix
 * lengths counts; host-scope addresses such as 127.0.0.1 are ignored; addr
 * itself is used only when nothing else matches). Returns the ifindex (> 0),
 * -ENODEV when no interface matches, or -errno. */
int nl_subnet_ifindex(struct nl *nl, const struct sockaddr_storage *addr, uint8_t prefixlen);

/* Interface flags by name (ioctl SIOCGIFFLAGS): IFF_UP is administratively
 * up, IFF_RUNNING means it has carrier. Returns 0 or -errno (-ENODEV: no such
 * interface). */
int nl_if_flags(const char *ifname, unsigned *flags);

#endif
