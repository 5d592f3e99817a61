/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * garp.h - the link-layer packets of a VIP takeover: gratuitous ARP and ARP
 * probe (IPv4, RFC 5227), unsolicited neighbour advertisement and DAD
 * neighbour solicitation (IPv6, RFC 4861 / 4862), sent on an AF_PACKET socket.
 *
 * Pure module: never logs. The builders and the parser touch no socket (unit
 * tested against golden bytes); garp_announce() and garp_probe() block (the
 * probe for about GARP_PROBE_LISTEN_MS). Any thread.
 */
#ifndef MR_GARP_H
#define MR_GARP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GARP_MAC_LEN   6
#define GARP_ARP_LEN   42 /* Ethernet 14 + ARP 28 */
#define GARP_NA_LEN    86 /* Ethernet 14 + IPv6 40 + NA 24 + target link-layer option 8 */
#define GARP_NS_LEN    78 /* Ethernet 14 + IPv6 40 + NS 24 (no option: the source is ::) */
#define GARP_FRAME_MAX 128

#define GARP_PROBES          3   /* probes sent by garp_probe() ... */
#define GARP_PROBE_GAP_MS    30  /* ... this far apart ... */
#define GARP_PROBE_LISTEN_MS 100 /* ... listening this long in all */

#define GARP_MAC_STR_LEN 18 /* "aa:bb:cc:dd:ee:ff" + NUL */

/* ---- pure builders and parser -------------------------------------------- */

/* Gratuitous ARP (an RFC 5227 announcement): broadcast ARP request from mac
 * with sender IP = target IP = ip, target MAC zero. Writes GARP_ARP_LEN bytes;
 * returns that or -ENOBUFS. */
int garp_build_arp_announce(uint8_t *buf, size_t buf_len, const uint8_t mac[GARP_MAC_LEN],
                            const struct in_addr *ip);

/* ARP probe (RFC 5227): broadcast ARP request from mac, sender IP 0.0.0.0,
 * target IP ip. Writes GARP_ARP_LEN bytes; returns that or -ENOBUFS. */
int garp_build_arp_probe(uint8_t *buf, size_t buf_len, const uint8_t mac[GARP_MAC_LEN],
                         const struct in_addr *ip);

/* Unsolicited neighbour advertisement for ip from ip to ff02::1 (Ethernet
 * 33:33:00:00:00:01), hop limit 255, override flag set (not router, not
 * solicited), target link-layer address option = mac. Writes GARP_NA_LEN
 * bytes; returns that or -ENOBUFS. */
int garp_build_na(uint8_t *buf, size_t buf_len, const uint8_t mac[GARP_MAC_LEN],
                  const struct in6_addr *ip);

/* DAD neighbour solicitation for ip: from :: to the solicited-node group
 * ff02::1:ffXX:XXXX (Ethernet 33:33:ff:XX:XX:XX), hop limit 255, no option.
 * Writes GARP_NS_LEN bytes; returns that or -ENOBUFS. */
int garp_build_dad_ns(uint8_t *buf, size_t buf_len, const uint8_t mac[GARP_MAC_LEN],
                      const struct in6_addr *ip);

/* ICMPv6 checksum (RFC 4443 2.3) of the message icmp[0..len) between src and
 * dst; the checksum field (bytes 2-3) must be zero. Returns the value to
 * store big-endian in that field. */
uint16_t garp_icmp6_csum(const struct in6_addr *src, const struct in6_addr *dst, const void *icmp,
                         size_t len);

/* Does the Ethernet frame claim ip for a MAC other than own_mac? For IPv4 an
 * ARP reply or request whose sender IP is ip; for IPv6 a neighbour
 * advertisement whose target is ip. Returns 1 and the claiming MAC in mac_out
 * (the link-layer option's for an NA that has one, else the sender's), or 0. */
int garp_parse_claim(const uint8_t *frame, size_t len, const struct sockaddr_storage *ip,
                     const uint8_t own_mac[GARP_MAC_LEN], uint8_t mac_out[GARP_MAC_LEN]);

/* "aa:bb:cc:dd:ee:ff" into out (GARP_MAC_STR_LEN bytes). Returns out. */
char *garp_mac_str(const uint8_t mac[GARP_MAC_LEN], char *out);

/* ---- sending -------------------------------------------------------------- */

/* The hardware address of interface ifindex (SIOCGIFHWADDR). 0 or -errno
 * (-EAFNOSUPPORT when it is not an Ethernet-like interface). */
int garp_if_mac(int ifindex, uint8_t mac[GARP_MAC_LEN]);

/* Send one announcement for ip on ifindex: a gratuitous ARP (AF_INET) or an
 * unsolicited NA (AF_INET6). Returns 0 or -errno. */
int garp_announce(int ifindex, const struct sockaddr_storage *ip);

/* Is ip in use by another host on ifindex's link? Sends GARP_PROBES probes
 * (ARP probe / DAD NS) GARP_PROBE_GAP_MS apart and listens GARP_PROBE_LISTEN_MS
 * in all for a claim (see garp_parse_claim()). Returns 1 with the MAC that
 * answered in mac_out, 0 when nobody answered, or -errno. Blocks. */
int garp_probe(int ifindex, const struct sockaddr_storage *ip, uint8_t mac_out[GARP_MAC_LEN]);

/* The same, listening listen_ms in all (probes spaced in proportion). */
int garp_probe_ms(int ifindex, const struct sockaddr_storage *ip, unsigned listen_ms,
                  uint8_t mac_out[GARP_MAC_LEN]);

#endif
