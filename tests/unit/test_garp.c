/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_garp.c - unit tests for the VIP's packet builders: the rtnetlink
 * messages of daemon/nl.c and the ARP / neighbour-discovery frames of
 * daemon/garp.c, against golden bytes written field by field from the
 * layouts (RFC 826 / 5227 for ARP, RFC 4861 and 8200 for IPv6 ND,
 * rtnetlink(7) for netlink), plus the parsers (ACK, address dump, claims)
 * and the ICMPv6 checksum on known vectors.
 *
 * The IPv6 golden frames are also what the Linux kernel itself sends for
 * the same address and MAC (captured from a veth pair: a DAD solicitation
 * from "ip addr add", an unsolicited NA from ndisc_notify=1), so their
 * checksums are known-good values, not ours.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "garp.h"
#include "nl.h"

/* Netlink is host-endian: spell multi-byte fields in host order. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define H16(v) (uint8_t)((v)&0xff), (uint8_t)(((v) >> 8) & 0xff)
#define H32(v)                                                                                     \
	(uint8_t)((v)&0xff), (uint8_t)(((v) >> 8) & 0xff), (uint8_t)(((v) >> 16) & 0xff),          \
	        (uint8_t)(((v) >> 24) & 0xff)
#else
#define H16(v) (uint8_t)(((v) >> 8) & 0xff), (uint8_t)((v)&0xff)
#define H32(v)                                                                                     \
	(uint8_t)(((v) >> 24) & 0xff), (uint8_t)(((v) >> 16) & 0xff),                              \
	        (uint8_t)(((v) >> 8) & 0xff), (uint8_t)((v)&0xff)
#endif

static const uint8_t MAC[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t OTHER_MAC[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };

static struct sockaddr_storage
ip(const char *s)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, s, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		return ss;
	}
	assert_int_equal(inet_pton(AF_INET6, s, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
	ss.ss_family = AF_INET6;
	return ss;
}

static struct in_addr
ip4(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

static struct in6_addr
ip6(const char *s)
{
	struct in6_addr a;

	assert_int_equal(inet_pton(AF_INET6, s, &a), 1);
	return a;
}

/* Compare with a readable first difference. */
static void
assert_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
	for (size_t i = 0; i < got_len && i < want_len; i++) {
		if (got[i] != want[i]) {
			print_error("first difference at byte %zu: got 0x%02x, want 0x%02x\n", i,
			            got[i], want[i]);
			fail();
		}
	}
	assert_int_equal(got_len, want_len);
}

/* ---- ARP ------------------------------------------------------------------ */

static void
arp_announce_golden(void **state)
{
	/* clang-format off */
	static const uint8_t want[] = {
		/* Ethernet: broadcast, from MAC, ARP */
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
		/* htype Ethernet, ptype IPv4, hlen 6, plen 4, op request */
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
		/* sender MAC, sender IP 198.18.0.100 */
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 198, 18, 0, 100,
		/* target MAC zero, target IP = sender IP */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 100,
	};
	/* clang-format on */
	struct in_addr a = ip4("198.18.0.100");
	uint8_t buf[GARP_FRAME_MAX];

	(void)state;
	assert_int_equal(garp_build_arp_announce(buf, sizeof(buf), MAC, &a), GARP_ARP_LEN);
	assert_bytes(buf, GARP_ARP_LEN, want, sizeof(want));
	assert_int_equal(garp_build_arp_announce(buf, GARP_ARP_LEN - 1, MAC, &a), -ENOBUFS);
}

static void
arp_probe_golden(void **state)
{
	/* clang-format off */
	static const uint8_t want[] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
		/* sender MAC, sender IP 0.0.0.0 (RFC 5227 probe) */
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 0,
		/* target MAC zero, target IP: the address probed */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 198, 18, 0, 100,
	};
	/* clang-format on */
	struct in_addr a = ip4("198.18.0.100");
	uint8_t buf[GARP_ARP_LEN];

	(void)state;
	assert_int_equal(garp_build_arp_probe(buf, sizeof(buf), MAC, &a), GARP_ARP_LEN);
	assert_bytes(buf, GARP_ARP_LEN, want, sizeof(want));
	assert_int_equal(garp_build_arp_probe(buf, 10, MAC, &a), -ENOBUFS);
}

/* ---- IPv6 ND ---------------------------------------------------------------- */

/* Unsolicited NA for 2001:db8::1 from 02:00:00:00:00:01 (byte-identical to
 * the kernel's ndisc_send_unsol_na()). */
/* clang-format off */
static const uint8_t na_golden[] = {
	/* Ethernet: 33:33:00:00:00:01 (ff02::1), from MAC, IPv6 */
	0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
	/* IPv6: version 6, tc 0, flow 0; payload 32; next header 58; hop limit 255 */
	0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff,
	/* source 2001:db8::1 */
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	/* destination ff02::1 */
	0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	/* ICMPv6 type 136 code 0, checksum 0xf92a */
	0x88, 0x00, 0xf9, 0x2a,
	/* flags R=0 S=0 O=1, reserved */
	0x20, 0x00, 0x00, 0x00,
	/* target 2001:db8::1 */
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	/* option: target link-layer address (2), length 1 (8 bytes), MAC */
	0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
};
/* clang-format on */

/* DAD NS for 2001:db8::1 (byte-identical to the kernel's, enhanced_dad=0). */
/* clang-format off */
static const uint8_t ns_golden[] = {
	/* Ethernet: 33:33:ff:00:00:01 (solicited-node group), from MAC, IPv6 */
	0x33, 0x33, 0xff, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd,
	/* IPv6: payload 24, next header 58, hop limit 255 */
	0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3a, 0xff,
	/* source :: */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* destination ff02::1:ff00:1 */
	0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0x00, 0x00, 0x01,
	/* ICMPv6 type 135 code 0, checksum 0x4ced, reserved */
	0x87, 0x00, 0x4c, 0xed, 0x00, 0x00, 0x00, 0x00,
	/* target 2001:db8::1; no option (the source is ::) */
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
};
/* clang-format on */

static void
na_golden_bytes(void **state)
{
	struct in6_addr a = ip6("2001:db8::1");
	uint8_t buf[GARP_FRAME_MAX];

	(void)state;
	assert_int_equal(sizeof(na_golden), GARP_NA_LEN);
	assert_int_equal(garp_build_na(buf, sizeof(buf), MAC, &a), GARP_NA_LEN);
	assert_bytes(buf, GARP_NA_LEN, na_golden, sizeof(na_golden));
	assert_int_equal(garp_build_na(buf, GARP_NA_LEN - 1, MAC, &a), -ENOBUFS);
}

static void
dad_ns_golden_bytes(void **state)
{
	struct in6_addr a = ip6("2001:db8::1");
	uint8_t buf[GARP_FRAME_MAX];

	(void)state;
	assert_int_equal(sizeof(ns_golden), GARP_NS_LEN);
	assert_int_equal(garp_build_dad_ns(buf, sizeof(buf), MAC, &a), GARP_NS_LEN);
	assert_bytes(buf, GARP_NS_LEN, ns_golden, sizeof(ns_golden));
	assert_int_equal(garp_build_dad_ns(buf, GARP_NS_LEN - 1, MAC, &a), -ENOBUFS);
}

static void
dad_ns_solicited_node_group(void **state)
{
	/* ff02::1:ff00:0/104 plus the low 24 bits; MAC 33:33 + the group's last 32 bits */
	struct in6_addr a = ip6("fd00:1234::abcd:ef01:2345:6789");
	uint8_t buf[GARP_NS_LEN];
	static const uint8_t want_dst[16] = { 0xff, 0x02, 0, 0,    0,    0,    0,    0,
		                              0,    0,    0, 0x01, 0xff, 0x45, 0x67, 0x89 };
	static const uint8_t want_mac[6] = { 0x33, 0x33, 0xff, 0x45, 0x67, 0x89 };

	(void)state;
	assert_int_equal(garp_build_dad_ns(buf, sizeof(buf), MAC, &a), GARP_NS_LEN);
	assert_memory_equal(buf, want_mac, 6);
	assert_memory_equal(buf + 14 + 24, want_dst, 16);
}

/* Hex string to bytes; returns the count. */
static size_t
unhex(const char *hex, uint8_t *out, size_t out_len)
{
	size_t n = 0;

	for (; hex[0] != '\0' && hex[1] != '\0'; hex += 2) {
		unsigned v;

		assert_true(n < out_len);
		assert_int_equal(sscanf(hex, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
	}
	return n;
}

/* Checksums the kernel computed (frames captured on a veth pair), recomputed
 * over the ICMPv6 message with the checksum field zeroed. */
static void
icmp6_csum_known_vectors(void **state)
{
	struct in6_addr any = ip6("::"), snm = ip6("ff02::1:ff00:1");
	struct in6_addr a1 = ip6("2001:db8::1"), a2 = ip6("2001:db8::2");
	uint8_t m[64];
	size_t n;

	(void)state;
	/* DAD NS with a nonce option (enhanced_dad=1) :: -> ff02::1:ff00:1, sent 0xcbcd */
	n = unhex("87000000"
	          "00000000"
	          "20010db8000000000000000000000001"
	          "0e0156ecb8f96330",
	          m, sizeof(m));
	assert_int_equal(n, 32);
	assert_int_equal(garp_icmp6_csum(&any, &snm, m, n), 0xcbcd);
	/* solicited NA 2001:db8::1 -> 2001:db8::2, S and O set, TLLA, sent 0x8a73 */
	n = unhex("88000000"
	          "60000000"
	          "20010db8000000000000000000000001"
	          "0201020000000001",
	          m, sizeof(m));
	assert_int_equal(garp_icmp6_csum(&a1, &a2, m, n), 0x8a73);
	/* echo reply 2001:db8::1 -> 2001:db8::2, id 0x1234 seq 1, sent 0x1113 */
	n = unhex("8100000012340001", m, sizeof(m));
	assert_int_equal(garp_icmp6_csum(&a1, &a2, m, n), 0x1113);
	/* odd length, by hand: 1 (length) + 58 (next header) + 0x0100 = 0x013b -> ~ 0xfec4 */
	m[0] = 0x01;
	assert_int_equal(garp_icmp6_csum(&any, &any, m, 1), 0xfec4);
}

/* ---- claims (what garp_probe() listens for) ------------------------------- */

static void
claim_arp_reply_from_other_mac(void **state)
{
	/* the holder's answer to our probe: reply, sender = holder + VIP, target = us + 0.0.0.0 */
	/* clang-format off */
	static const uint8_t reply[] = {
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 198,  18,   0,    100,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0,    0,    0,    0,
	};
	/* clang-format on */
	struct sockaddr_storage vip = ip("198.18.0.100"), other = ip("198.18.0.101");
	uint8_t mac[6] = { 0 };

	(void)state;
	assert_int_equal(garp_parse_claim(reply, sizeof(reply), &vip, MAC, mac), 1);
	assert_memory_equal(mac, OTHER_MAC, 6);
	assert_int_equal(garp_parse_claim(reply, sizeof(reply), &other, MAC, mac), 0);
	/* our own MAC never counts */
	assert_int_equal(garp_parse_claim(reply, sizeof(reply), &vip, OTHER_MAC, mac), 0);
	/* truncated */
	assert_int_equal(garp_parse_claim(reply, sizeof(reply) - 1, &vip, MAC, mac), 0);
}

static void
claim_arp_request_and_probe(void **state)
{
	struct sockaddr_storage vip = ip("198.18.0.100");
	struct in_addr a = ip4("198.18.0.100");
	uint8_t f[GARP_ARP_LEN], mac[6];

	(void)state;
	/* someone else's gratuitous ARP claims the address */
	assert_int_equal(garp_build_arp_announce(f, sizeof(f), OTHER_MAC, &a), GARP_ARP_LEN);
	assert_int_equal(garp_parse_claim(f, sizeof(f), &vip, MAC, mac), 1);
	assert_memory_equal(mac, OTHER_MAC, 6);
	/* someone else's probe (sender 0.0.0.0) does not */
	assert_int_equal(garp_build_arp_probe(f, sizeof(f), OTHER_MAC, &a), GARP_ARP_LEN);
	assert_int_equal(garp_parse_claim(f, sizeof(f), &vip, MAC, mac), 0);
	/* an IPv6 address never matches an ARP frame */
	vip = ip("2001:db8::1");
	assert_int_equal(garp_parse_claim(f, sizeof(f), &vip, MAC, mac), 0);
}

static void
claim_na(void **state)
{
	struct sockaddr_storage vip = ip("2001:db8::1"), other = ip("2001:db8::2");
	uint8_t mac[6] = { 0 }, f[sizeof(na_golden)];

	(void)state;
	/* the holder (na_golden is from 02:..:01) answers; we are OTHER_MAC */
	assert_int_equal(garp_parse_claim(na_golden, sizeof(na_golden), &vip, OTHER_MAC, mac), 1);
	assert_memory_equal(mac, MAC, 6);
	assert_int_equal(garp_parse_claim(na_golden, sizeof(na_golden), &vip, MAC, mac), 0);
	assert_int_equal(garp_parse_claim(na_golden, sizeof(na_golden), &other, OTHER_MAC, mac), 0);
	/* a DAD NS for the address is not a claim */
	assert_int_equal(garp_parse_claim(ns_golden, sizeof(ns_golden), &vip, OTHER_MAC, mac), 0);
	/* hop limit below 255: not a valid ND message */
	memcpy(f, na_golden, sizeof(f));
	f[14 + 7] = 64;
	assert_int_equal(garp_parse_claim(f, sizeof(f), &vip, OTHER_MAC, mac), 0);
}

static void
mac_str(void **state)
{
	static const uint8_t m[6] = { 0x0a, 0xbc, 0x00, 0xff, 0x12, 0x9e };
	char s[GARP_MAC_STR_LEN];

	(void)state;
	assert_string_equal(garp_mac_str(m, s), "0a:bc:00:ff:12:9e");
}

/* ---- netlink ---------------------------------------------------------------- */

static struct nl_addr
nla(const char *addr, uint8_t prefixlen, int ifindex, const char *label, uint32_t flags)
{
	struct nl_addr a;

	memset(&a, 0, sizeof(a));
	a.addr = ip(addr);
	a.family = a.addr.ss_family;
	a.prefixlen = prefixlen;
	a.ifindex = ifindex;
	a.flags = flags;
	if (label != NULL)
		strcpy(a.label, label);
	return a;
}

static void
nl_newaddr_ipv4_golden(void **state)
{
	/* clang-format off */
	static const uint8_t want[] = {
		/* nlmsghdr: len 52, RTM_NEWADDR (20), REQUEST|ACK|EXCL|CREATE, seq 7, pid 0 */
		H32(52), H16(20), H16(0x605), H32(7), H32(0),
		/* ifaddrmsg: AF_INET, /24, flags 0, scope universe, ifindex 2 */
		2, 24, 0, 0, H32(2),
		/* IFA_LOCAL (2) 198.18.0.100 */
		H16(8), H16(2), 198, 18, 0, 100,
		/* IFA_ADDRESS (1) 198.18.0.100 */
		H16(8), H16(1), 198, 18, 0, 100,
		/* IFA_LABEL (3) "eth0\0", padded to 4 */
		H16(9), H16(3), 'e', 't', 'h', '0', 0, 0, 0, 0,
	};
	/* clang-format on */
	struct nl_addr a = nla("198.18.0.100", 24, 2, "eth0", 0);
	uint8_t buf[NL_ADDR_MSG_MAX];

	(void)state;
	memset(buf, 0xaa, sizeof(buf)); /* padding must be written, not left over */
	assert_int_equal(nl_build_addr(buf, sizeof(buf), NL_ADD, 7, &a), (int)sizeof(want));
	assert_bytes(buf, sizeof(want), want, sizeof(want));
	assert_int_equal(nl_build_addr(buf, sizeof(want) - 1, NL_ADD, 7, &a), -ENOBUFS);
}

static void
nl_newaddr_ipv6_flags_golden(void **state)
{
	/* clang-format off */
	static const uint8_t want[] = {
		/* nlmsghdr: len 72, RTM_NEWADDR, REQUEST|ACK|EXCL|CREATE, seq 0x01020304 */
		H32(72), H16(20), H16(0x605), H32(0x01020304), H32(0),
		/* ifaddrmsg: AF_INET6 (10), /64, ifa_flags = low byte (NODAD), scope 0, ifindex 3 */
		10, 64, 0x02, 0, H32(3),
		/* IFA_LOCAL 2001:db8::100 */
		H16(20), H16(2), 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
		/* IFA_ADDRESS 2001:db8::100 */
		H16(20), H16(1), 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00,
		/* IFA_FLAGS (8): NODAD | NOPREFIXROUTE */
		H16(8), H16(8), H32(0x202),
	};
	/* clang-format on */
	struct nl_addr a = nla("2001:db8::100", 64, 3, NULL, IFA_F_NODAD | IFA_F_NOPREFIXROUTE);
	uint8_t buf[NL_ADDR_MSG_MAX];

	(void)state;
	assert_int_equal(nl_build_addr(buf, sizeof(buf), NL_ADD, 0x01020304, &a),
	                 (int)sizeof(want));
	assert_bytes(buf, sizeof(want), want, sizeof(want));
}

static void
nl_deladdr_golden(void **state)
{
	/* clang-format off */
	static const uint8_t want[] = {
		/* nlmsghdr: len 32, RTM_DELADDR (21), REQUEST|ACK, seq 9 */
		H32(32), H16(21), H16(0x005), H32(9), H32(0),
		/* ifaddrmsg: AF_INET, /24, ifindex 2 */
		2, 24, 0, 0, H32(2),
		/* IFA_LOCAL only: label and flags are not sent on delete */
		H16(8), H16(2), 198, 18, 0, 100,
	};
	/* clang-format on */
	struct nl_addr a = nla("198.18.0.100", 24, 2, "eth0", IFA_F_NODAD);
	uint8_t buf[NL_ADDR_MSG_MAX];

	(void)state;
	assert_int_equal(nl_build_addr(buf, sizeof(buf), NL_DEL, 9, &a), (int)sizeof(want));
	assert_bytes(buf, sizeof(want), want, sizeof(want));
}

static void
nl_build_addr_rejects(void **state)
{
	uint8_t buf[NL_ADDR_MSG_MAX];
	struct nl_addr a = nla("198.18.0.100", 33, 2, NULL, 0);

	(void)state;
	assert_int_equal(nl_build_addr(buf, sizeof(buf), NL_ADD, 1, &a), -EINVAL);
	a = nla("198.18.0.100", 24, 0, NULL, 0);
	assert_int_equal(nl_build_addr(buf, sizeof(buf), NL_ADD, 1, &a), -EINVAL);
	a = nla("2001:db8::1", 129, 1, NULL, 0);
	assert_int_equal(nl_build_addr(buf, sizeof(buf), NL_ADD, 1, &a), -EINVAL);
	a = nla("2001:db8::1", 64, 1, NULL, 0);
	a.family = AF_INET; /* family and address disagree */
	assert_int_equal(nl_build_addr(buf, sizeof(buf), NL_ADD, 1, &a), -EINVAL);
}

static void
nl_getaddr_golden(void **state)
{
	/* clang-format off */
	static const uint8_t want[] = {
		/* nlmsghdr: len 24, RTM_GETADDR (22), REQUEST|DUMP (0x301), seq 5 */
		H32(24), H16(22), H16(0x301), H32(5), H32(0),
		/* ifaddrmsg: AF_INET, rest zero */
		2, 0, 0, 0, H32(0),
	};
	/* clang-format on */
	uint8_t buf[64];

	(void)state;
	assert_int_equal(nl_build_getaddr(buf, sizeof(buf), 5, AF_INET), (int)sizeof(want));
	assert_bytes(buf, sizeof(want), want, sizeof(want));
	assert_int_equal(nl_build_getaddr(buf, 23, 5, AF_INET), -ENOBUFS);
}

static void
nl_ack_parsing(void **state)
{
	/* NLMSG_ERROR (2) for seq 7: error 0 (ACK), then the request header */
	/* clang-format off */
	static const uint8_t ack[] = {
		H32(36), H16(2), H16(0x100), H32(7), H32(1234), H32(0),
		H32(52), H16(20), H16(0x605), H32(7), H32(0),
	};
	/* clang-format on */
	/* the same with error -EEXIST (-17) */
	/* clang-format off */
	static const uint8_t eexist[] = {
		H32(36), H16(2), H16(0), H32(8), H32(1234), H32(0xffffffef),
		H32(52), H16(20), H16(0x605), H32(8), H32(0),
	};
	/* clang-format on */
	/* a stale answer for seq 6, then ours for seq 8 (-EADDRNOTAVAIL, -99) */
	/* clang-format off */
	static const uint8_t two[] = {
		H32(20), H16(2), H16(0x100), H32(6), H32(1234), H32(0),
		H32(20), H16(2), H16(0x100), H32(8), H32(1234), H32(0xffffff9d),
	};
	/* clang-format on */
	static const uint8_t bad_len[] = { H32(200), H16(2), H16(0), H32(7), H32(0), H32(0) };

	(void)state;
	assert_int_equal(nl_parse_ack(ack, sizeof(ack), 7), 0);
	assert_int_equal(nl_parse_ack(ack, sizeof(ack), 8), -EAGAIN);
	assert_int_equal(nl_parse_ack(eexist, sizeof(eexist), 8), -EEXIST);
	assert_int_equal(nl_parse_ack(two, sizeof(two), 8), -EADDRNOTAVAIL);
	assert_int_equal(nl_parse_ack(two, sizeof(two), 6), 0);
	assert_int_equal(nl_parse_ack(bad_len, sizeof(bad_len), 7), -EBADMSG);
}

static void
nl_addr_parsing(void **state)
{
	/* RTM_NEWADDR as the kernel dumps it: 198.18.0.100/24 secondary on ifindex 2 */
	/* clang-format off */
	static const uint8_t v4[] = {
		H32(72), H16(20), H16(2), H32(1), H32(0),
		2, 24, 0x01, 0, H32(2),
		H16(8), H16(1), 198, 18, 0, 100,   /* IFA_ADDRESS */
		H16(8), H16(2), 198, 18, 0, 100,   /* IFA_LOCAL */
		H16(8), H16(4), 198, 18, 0, 255,   /* IFA_BROADCAST: ignored */
		H16(11), H16(3), 'e', 't', 'h', '0', ':', '1', 0, 0, /* IFA_LABEL, padded */
		H16(8), H16(8), H32(0x81),          /* IFA_FLAGS: SECONDARY | PERMANENT */
		H16(4), H16(99),                    /* an unknown empty attribute */
	};
	/* clang-format on */
	/* IPv6: the address is in IFA_ADDRESS only */
	/* clang-format off */
	static const uint8_t v6[] = {
		H32(44), H16(20), H16(2), H32(1), H32(0),
		10, 64, 0x80, 0, H32(3),
		H16(20), H16(1), 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05,
	};
	/* clang-format on */
	struct sockaddr_storage want4 = ip("198.18.0.100"), want6 = ip("2001:db8::5");
	struct nl_addr a;
	uint8_t broken[sizeof(v4)];

	(void)state;
	assert_int_equal(sizeof(v4), 72);
	assert_int_equal(nl_parse_addr(v4, sizeof(v4), &a), 0);
	assert_int_equal(a.ifindex, 2);
	assert_int_equal(a.family, AF_INET);
	assert_int_equal(a.prefixlen, 24);
	assert_int_equal(a.flags, 0x81);
	assert_string_equal(a.label, "eth0:1");
	assert_true(nl_same_subnet(&a.addr, &want4, 32));

	assert_int_equal(nl_parse_addr(v6, sizeof(v6), &a), 0);
	assert_int_equal(a.family, AF_INET6);
	assert_int_equal(a.ifindex, 3);
	assert_int_equal(a.flags, 0x80);
	assert_true(nl_same_subnet(&a.addr, &want6, 128));

	/* an attribute running past the message */
	memcpy(broken, v4, sizeof(v4));
	broken[24] = 200;
	broken[25] = 0;
	assert_int_equal(nl_parse_addr(broken, sizeof(broken), &a), -EINVAL);
	/* shorter than nlmsg_len says */
	assert_int_equal(nl_parse_addr(v4, sizeof(v4) - 4, &a), -EINVAL);
}

static void
nl_subnets(void **state)
{
	struct sockaddr_storage a = ip("198.18.0.100"), b = ip("198.18.0.1"), c = ip("198.19.0.1");
	struct sockaddr_storage d = ip("198.18.0.129"), e = ip("2001:db8::1"),
	                        f = ip("2001:db8:0:1::1");

	(void)state;
	assert_true(nl_same_subnet(&a, &b, 24));
	assert_false(nl_same_subnet(&a, &b, 32));
	assert_false(nl_same_subnet(&a, &c, 16));
	assert_true(nl_same_subnet(&a, &c, 15));
	assert_true(nl_same_subnet(&a, &d, 24));
	assert_false(nl_same_subnet(&a, &d, 25)); /* .100 is in .0/25, .129 in .128/25 */
	assert_true(nl_same_subnet(&a, &c, 0));
	assert_false(nl_same_subnet(&a, &e, 0)); /* families differ */
	assert_true(nl_same_subnet(&e, &f, 48));
	assert_false(nl_same_subnet(&e, &f, 64));
	assert_false(nl_same_subnet(&a, &b, 33));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(arp_announce_golden),
		cmocka_unit_test(arp_probe_golden),
		cmocka_unit_test(na_golden_bytes),
		cmocka_unit_test(dad_ns_golden_bytes),
		cmocka_unit_test(dad_ns_solicited_node_group),
		cmocka_unit_test(icmp6_csum_known_vectors),
		cmocka_unit_test(claim_arp_reply_from_other_mac),
		cmocka_unit_test(claim_arp_request_and_probe),
		cmocka_unit_test(claim_na),
		cmocka_unit_test(mac_str),
		cmocka_unit_test(nl_newaddr_ipv4_golden),
		cmocka_unit_test(nl_newaddr_ipv6_flags_golden),
		cmocka_unit_test(nl_deladdr_golden),
		cmocka_unit_test(nl_build_addr_rejects),
		cmocka_unit_test(nl_getaddr_golden),
		cmocka_unit_test(nl_ack_parsing),
		cmocka_unit_test(nl_addr_parsing),
		cmocka_unit_test(nl_subnets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
