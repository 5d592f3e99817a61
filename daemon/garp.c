/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * garp.c - gratuitous ARP / unsolicited NA announcements and the "is this
 * address already in use?" probe, on AF_PACKET sockets.
 *
 * Part: link-layer announcements for the VIP. Pure module: never logs, no
 * global state; vip.c decides when to send and logs what happened. Frames are
 * built byte by byte in network order (no struct casts), so the builders are
 * checked against hand-written golden frames. Any thread; garp_probe() blocks
 * for GARP_PROBE_LISTEN_MS, so vip.c runs it on the libuv thread pool.
 *
 * Why a probe before adding: a VIP that already answers elsewhere (the peer
 * still holds it after a partition, a misconfigured host) must never be taken
 * twice. An ARP probe has sender IP 0.0.0.0 so that it pollutes no ARP cache
 * (RFC 5227 2.1.1); a holder answers with an ARP reply whose sender IP is the
 * address. IPv6 does the same with a DAD solicitation from :: and the
 * holder's neighbour advertisement to ff02::1 (RFC 4862 5.4).
 */
#include "garp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

#define ETH_HDR_LEN   14
#define IP6_HDR_LEN   40
#define ND_MSG_LEN    24 /* NS / NA without options */
#define ND_OPT_TLLA   2  /* target link-layer address option */
#define ICMP6_NS      135
#define ICMP6_NA      136
#define NA_F_OVERRIDE 0x20 /* first byte of the NA flags word: R S O */
#define ARP_REQUEST   1
#define ARP_REPLY     2

static const uint8_t eth_bcast[GARP_MAC_LEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t mac_all_nodes[GARP_MAC_LEN] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 };
static const struct in6_addr ip6_all_nodes = { .s6_addr = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	                                                    0, 0, 0, 0, 0x01 } };

/* Ethernet header; returns the offset of the payload. */
static size_t
put_eth(uint8_t *p, const uint8_t dst[GARP_MAC_LEN], const uint8_t src[GARP_MAC_LEN], uint16_t type)
{
	memcpy(p, dst, GARP_MAC_LEN);
	memcpy(p + 6, src, GARP_MAC_LEN);
	mr_put_be16(p + 12, type);
	return ETH_HDR_LEN;
}

static int
build_arp(uint8_t *buf, size_t buf_len, const uint8_t mac[GARP_MAC_LEN], const struct in_addr *spa,
          const struct in_addr *tpa)
{
	uint8_t *p = buf;

	if (buf_len < GARP_ARP_LEN)
		return -ENOBUFS;
	p += put_eth(p, eth_bcast, mac, ETHERTYPE_ARP);
	mr_put_be16(p, ARPHRD_ETHER);
	mr_put_be16(p + 2, ETHERTYPE_IP);
	p[4] = GARP_MAC_LEN;
	p[5] = 4;
	mr_put_be16(p + 6, ARP_REQUEST);
	memcpy(p + 8, mac, GARP_MAC_LEN);
	memcpy(p + 14, spa, 4);
	memset(p + 18, 0, GARP_MAC_LEN); /* target MAC: unknown, "SHOULD be zero" */
	memcpy(p + 24, tpa, 4);
	return GARP_ARP_LEN;
}

/* Pure, any thread. */
int
garp_build_arp_announce(uint8_t *buf, size_t buf_len, const uint8_t mac[GARP_MAC_LEN],
                        const struct in_addr *ip)
{
	return build_arp(buf, buf_len, mac, ip, ip);
}

/* Pure, any thread. */
int
garp_build_arp_probe(uint8_t *buf, size_t buf_len, const uint8_t mac[GARP_MAC_LEN],
                     const struct in_addr *ip)
{
	const struct in_addr any = { .s_addr = 0 };

	return build_arp(buf, buf_len, mac, &any, ip);
}

/* Pure, any thread. RFC 1071 one's complement sum over the pseudo-header and message. */
uint16_t
garp_icmp6_csum(const struct in6_addr *src, const struct in6_addr *dst, const void *icmp,
                size_t len)
{
	const uint8_t *m = icmp;
	uint32_t sum = 0;

	/* pseudo-header: source, destination, upper-layer length, next header */
	for (size_t i = 0; i < 16; i += 2)
		sum += mr_get_be16(&src->s6_addr[i]) + mr_get_be16(&dst->s6_addr[i]);
	sum += (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff);
	sum += IPPROTO_ICMPV6;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += mr_get_be16(m + i);
	if (len & 1)
		sum += (uint32_t)m[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* IPv6 header + ICMPv6 checksum around an ND message of icmp_len bytes that is
 * already at buf + ETH_HDR_LEN + IP6_HDR_LEN. */
static void
put_ip6_nd(uint8_t *buf, const struct in6_addr *src, const struct in6_addr *dst, size_t icmp_len)
{
	uint8_t *ip6 = buf + ETH_HDR_LEN, *icmp = ip6 + IP6_HDR_LEN;

	memset(ip6, 0, 4);
	ip6[0] = 0x60; /* version 6, traffic class 0, flow label 0 */
	mr_put_be16(ip6 + 4, (uint16_t)icmp_len);
	ip6[6] = IPPROTO_ICMPV6;
	ip6[7] = 255; /* hop limit: ND messages must arrive with 255 */
	memcpy(ip6 + 8, src, 16);
	memcpy(ip6 + 24, dst, 16);
	mr_put_be16(icmp + 2, 0);
	mr_put_be16(icmp + 2, garp_icmp6_csum(src, dst, icmp, icmp_len));
}

/* Pure, any thread. */
int
garp_build_na(uint8_t *buf, size_t buf_len, const uint8_t mac[GARP_MAC_LEN],
              const struct in6_addr *ip)
{
	uint8_t *icmp = buf + ETH_HDR_LEN + IP6_HDR_LEN;

	if (buf_len < GARP_NA_LEN)
		return -ENOBUFS;
	(void)put_eth(buf, mac_all_nodes, mac, ETHERTYPE_IPV6);
	memset(icmp, 0, ND_MSG_LEN + 8);
	icmp[0] = ICMP6_NA;
	icmp[4] = NA_F_OVERRIDE;
	memcpy(icmp + 8, ip, 16);
	icmp[24] = ND_OPT_TLLA;
	icmp[25] = 1; /* option length in units of 8 bytes */
	memcpy(icmp + 26, mac, GARP_MAC_LEN);
	put_ip6_nd(buf, ip, &ip6_all_nodes, ND_MSG_LEN + 8);
	return GARP_NA_LEN;
}

/* Pure, any thread. */
int
garp_build_dad_ns(uint8_t *buf, size_t buf_len, const uint8_t mac[GARP_MAC_LEN],
                  const struct in6_addr *ip)
{
	struct in6_addr snm = { .s6_addr = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff } };
	const struct in6_addr any = { .s6_addr = { 0 } };
	uint8_t dst_mac[GARP_MAC_LEN] = { 0x33, 0x33, 0xff };
	uint8_t *icmp = buf + ETH_HDR_LEN + IP6_HDR_LEN;

	if (buf_len < GARP_NS_LEN)
		return -ENOBUFS;
	/* solicited-node group: ff02::1:ff00:0/104 + the low 24 bits of ip */
	memcpy(&snm.s6_addr[13], &ip->s6_addr[13], 3);
	memcpy(&dst_mac[3], &ip->s6_addr[13], 3);
	(void)put_eth(buf, dst_mac, mac, ETHERTYPE_IPV6);
	memset(icmp, 0, ND_MSG_LEN);
	icmp[0] = ICMP6_NS;
	memcpy(icmp + 8, ip, 16);
	put_ip6_nd(buf, &any, &snm, ND_MSG_LEN);
	return GARP_NS_LEN;
}

static int
claim_arp(const uint8_t *f, size_t len, const struct in_addr *ip, const uint8_t own[GARP_MAC_LEN],
          uint8_t mac_out[GARP_MAC_LEN])
{
	const uint8_t *a = f + ETH_HDR_LEN;
	uint16_t op;

	if (len < GARP_ARP_LEN || mr_get_be16(f + 12) != ETHERTYPE_ARP || mr_get_be16(a) != ARPHRD_ETHER ||
	    mr_get_be16(a + 2) != ETHERTYPE_IP || a[4] != GARP_MAC_LEN || a[5] != 4)
		return 0;
	op = mr_get_be16(a + 6);
	if (op != ARP_REQUEST && op != ARP_REPLY)
		return 0;
	if (memcmp(a + 14, ip, 4) != 0 || memcmp(a + 8, own, GARP_MAC_LEN) == 0)
		return 0;
	memcpy(mac_out, a + 8, GARP_MAC_LEN);
	return 1;
}

static int
claim_na(const uint8_t *f, size_t len, const struct in6_addr *ip, const uint8_t own[GARP_MAC_LEN],
         uint8_t mac_out[GARP_MAC_LEN])
{
	const uint8_t *ip6 = f + ETH_HDR_LEN, *icmp = ip6 + IP6_HDR_LEN;
	const uint8_t *mac = f + 6;
	size_t icmp_len, off;

	if (len < ETH_HDR_LEN + IP6_HDR_LEN + ND_MSG_LEN || mr_get_be16(f + 12) != ETHERTYPE_IPV6 ||
	    (ip6[0] >> 4) != 6 || ip6[6] != IPPROTO_ICMPV6 || ip6[7] != 255)
		return 0;
	icmp_len = mr_get_be16(ip6 + 4);
	if (icmp_len < ND_MSG_LEN || icmp_len > len - ETH_HDR_LEN - IP6_HDR_LEN)
		return 0;
	if (icmp[0] != ICMP6_NA || icmp[1] != 0 || memcmp(icmp + 8, ip, 16) != 0)
		return 0;
	for (off = ND_MSG_LEN; off + 8 <= icmp_len && icmp[off + 1] != 0;
	     off += icmp[off + 1] * 8u) {
		if (icmp[off] == ND_OPT_TLLA && icmp[off + 1] == 1) {
			mac = icmp + off + 2;
			break;
		}
	}
	if (memcmp(f + 6, own, GARP_MAC_LEN) == 0 || memcmp(mac, own, GARP_MAC_LEN) == 0)
		return 0;
	memcpy(mac_out, mac, GARP_MAC_LEN);
	return 1;
}

/* Pure, any thread. Only Ethernet frames as an AF_PACKET SOCK_RAW socket reads them. */
int
garp_parse_claim(const uint8_t *frame, size_t len, const struct sockaddr_storage *ip,
                 const uint8_t own_mac[GARP_MAC_LEN], uint8_t mac_out[GARP_MAC_LEN])
{
	if (len < ETH_HDR_LEN)
		return 0;
	if (ip->ss_family == AF_INET)
		return claim_arp(frame, len, &((const struct sockaddr_in *)ip)->sin_addr, own_mac,
		                 mac_out);
	if (ip->ss_family == AF_INET6)
		return claim_na(frame, len, &((const struct sockaddr_in6 *)ip)->sin6_addr, own_mac,
		                mac_out);
	return 0;
}

/* Pure, any thread. */
char *
garp_mac_str(const uint8_t mac[GARP_MAC_LEN], char *out)
{
	snprintf(out, GARP_MAC_STR_LEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
	         mac[3], mac[4], mac[5]);
	return out;
}

/* ---- sockets -------------------------------------------------------------- */

/* Any thread. */
int
garp_if_mac(int ifindex, uint8_t mac[GARP_MAC_LEN])
{
	struct ifreq ifr;
	int fd, r = 0;

	memset(&ifr, 0, sizeof(ifr));
	if (if_indextoname((unsigned)ifindex, ifr.ifr_name) == NULL)
		return -errno;
	fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) == -1)
		r = -errno;
	else if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		r = -EAFNOSUPPORT;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, GARP_MAC_LEN);
	(void)close(fd);
	return r;
}

/* An AF_PACKET socket bound to ifindex that receives proto (host order; 0 =
 * nothing). Created with protocol 0 and bound afterwards so that it never
 * sees another interface's frames. Returns the fd or -errno. */
static int
packet_open(int ifindex, uint16_t proto)
{
	struct sockaddr_ll sll = {
		.sll_family = AF_PACKET,
		.sll_protocol = htons(proto),
		.sll_ifindex = ifindex,
	};
	int fd, r;

	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == -1) {
		r = -errno;
		(void)close(fd);
		return r;
	}
	return fd;
}

static int
packet_send(int fd, int ifindex, const uint8_t *frame, size_t len)
{
	struct sockaddr_ll to = {
		.sll_family = AF_PACKET,
		.sll_ifindex = ifindex,
		.sll_halen = GARP_MAC_LEN,
	};
	ssize_t n;

	memcpy(to.sll_addr, frame, GARP_MAC_LEN);
	memcpy(&to.sll_protocol, frame + 12, 2); /* already network order */
	do {
		n = sendto(fd, frame, len, 0, (struct sockaddr *)&to, sizeof(to));
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* The probe or announcement frame for ip. Returns its length or -errno. */
static int
build_frame(uint8_t *buf, size_t len, const struct sockaddr_storage *ip,
            const uint8_t mac[GARP_MAC_LEN], bool probe)
{
	if (ip->ss_family == AF_INET) {
		const struct in_addr *a = &((const struct sockaddr_in *)ip)->sin_addr;

		return probe ? garp_build_arp_probe(buf, len, mac, a)
		             : garp_build_arp_announce(buf, len, mac, a);
	}
	if (ip->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ip)->sin6_addr;

		return probe ? garp_build_dad_ns(buf, len, mac, a)
		             : garp_build_na(buf, len, mac, a);
	}
	return -EAFNOSUPPORT;
}

/* Opens, sends on and closes its own packet socket: quick enough for the loop thread. */
int
garp_announce(int ifindex, const struct sockaddr_storage *ip)
{
	uint8_t mac[GARP_MAC_LEN], frame[GARP_FRAME_MAX];
	int fd, len, r;

	r = garp_if_mac(ifindex, mac);
	if (r < 0)
		return r;
	len = build_frame(frame, sizeof(frame), ip, mac, false);
	if (len < 0)
		return len;
	fd = packet_open(ifindex, 0);
	if (fd < 0)
		return fd;
	r = packet_send(fd, ifindex, frame, (size_t)len);
	(void)close(fd);
	return r;
}

/* Read every queued frame; 1 (and mac_out) at the first claim, 0, or -errno. */
static int
drain_claims(int fd, const struct sockaddr_storage *ip, const uint8_t own[GARP_MAC_LEN],
             uint8_t mac_out[GARP_MAC_LEN])
{
	uint8_t frame[1600];

	for (;;) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, frame, sizeof(frame), 0, (struct sockaddr *)&from, &fl);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		}
		if (from.sll_pkttype == PACKET_OUTGOING)
			continue;
		if (garp_parse_claim(frame, (size_t)n, ip, own, mac_out) == 1)
			return 1;
	}
}

/* Blocks ~GARP_PROBE_LISTEN_MS: thread pool only. */
int
garp_probe(int ifindex, const struct sockaddr_storage *ip, uint8_t mac_out[GARP_MAC_LEN])
{
	return garp_probe_ms(ifindex, ip, GARP_PROBE_LISTEN_MS, mac_out);
}

/* Blocks ~listen_ms: thread pool only. */
int
garp_probe_ms(int ifindex, const struct sockaddr_storage *ip, unsigned listen_ms,
              uint8_t mac_out[GARP_MAC_LEN])
{
	unsigned gap_ms = listen_ms * GARP_PROBE_GAP_MS / GARP_PROBE_LISTEN_MS;
	uint8_t mac[GARP_MAC_LEN], frame[GARP_FRAME_MAX];
	uint64_t start_ms, deadline_ms;
	unsigned sent = 0;
	int fd, len, r;

	r = garp_if_mac(ifindex, mac);
	if (r < 0)
		return r;
	len = build_frame(frame, sizeof(frame), ip, mac, true);
	if (len < 0)
		return len;
	fd = packet_open(ifindex, ip->ss_family == AF_INET ? ETHERTYPE_ARP : ETHERTYPE_IPV6);
	if (fd < 0)
		return fd;
	if (ip->ss_family == AF_INET6) {
		/* The holder answers to ff02::1; make sure the NIC lets that in even
		 * when IPv6 itself has not joined the group. */
		struct packet_mreq mr = {
			.mr_ifindex = ifindex,
			.mr_type = PACKET_MR_MULTICAST,
			.mr_alen = GARP_MAC_LEN,
		};

		memcpy(mr.mr_address, mac_all_nodes, GARP_MAC_LEN);
		(void)setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr));
	}

	start_ms = mr_now_ms();
	deadline_ms = start_ms + listen_ms;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = mr_now_ms(), next;

		if (sent < GARP_PROBES && now >= start_ms + sent * gap_ms) {
			r = packet_send(fd, ifindex, frame, (size_t)len);
			if (r < 0)
				break;
			sent++;
		}
		r = drain_claims(fd, ip, mac, mac_out);
		if (r != 0 || now >= deadline_ms)
			break;
		next = sent < GARP_PROBES ? start_ms + sent * gap_ms : deadline_ms;
		if (next > deadline_ms)
			next = deadline_ms;
		if (next > now && poll(&pfd, 1, (int)(next - now)) == -1 && errno != EINTR) {
			r = -errno;
			break;
		}
	}
	(void)close(fd);
	return r;
}
