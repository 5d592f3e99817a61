/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vip.h - the module's virtual IP addresses (<vip>): taken on the primary,
 * released elsewhere. Policy only; the rtnetlink messages are in nl.c and the
 * ARP / neighbour-advertisement packets in garp.c.
 *
 * Take: for every address, probe that no other host answers for it (ARP
 * probe with sender 0.0.0.0 for IPv4, DAD neighbour solicitation for IPv6,
 * about 100 ms in all); if one answers, take nothing and report who. Else add
 * every address with rtnetlink ("already there" is success) on its interface
 * (<interface name>, or the interface holding an address of the VIP's subnet)
 * and announce it: gratuitous ARP / unsolicited NA 5 times 200 ms apart, and
 * once more 5 s later. Release: remove every address ("already gone" is
 * success) and stop announcing. Blocking work (probe, netlink) runs on the
 * libuv thread pool; the callbacks run on the loop thread.
 */
#ifndef MR_VIP_H
#define MR_VIP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "conf.h"

struct vip;

/* result: 0, or -EADDRINUSE (another host answers: why names the address and
 * the MAC that answered), -ENODEV (no interface for the address), -errno. */
typedef void (*vip_done_fn)(void *ctx, int result, const char *why);

/* Resolve interfaces now (each address needs one: -ENODEV and err says which).
 * A module without <vip> gets an object that does nothing and succeeds.
 * Loop thread. */
int vip_new(uv_loop_t *loop, const struct conf_vip *conf, struct vip **out, char *err,
            size_t err_len);

/* Probe, add, announce (see above). cb once, loop thread. One operation at a
 * time: a take or release while another runs is queued behind it. */
void vip_take(struct vip *v, vip_done_fn cb, void *ctx);

/* How long a take probes for another holder of each address (20..100 ms;
 * default 100). The module sets a fifth of its heartbeat timeout: a peer
 * still holding the VIP answers an ARP probe within a millisecond on a LAN. */
void vip_set_probe_ms(struct vip *v, unsigned ms);

/* Remove every address; cb once (may be NULL), loop thread. */
void vip_release(struct vip *v, vip_done_fn cb, void *ctx);

/* One more announcement burst (e.g. the peer link healed). No-op when not held. */
void vip_announce(struct vip *v);

/* Do we hold the addresses (take succeeded and no release since)? */
bool vip_held(const struct vip *v);

/* Checks for the ip/intf checkers, quick (one netlink dump + ioctl), loop
 * thread: 0 all fine; -ENETDOWN an interface with check="on" is down or has no
 * carrier; -EADDRNOTAVAIL a held address with check="on" is no longer on its
 * interface. why says which. */
int vip_check(struct vip *v, char *why, size_t why_len);

/* Add "vip": { "held": bool, "addrs": [ { "addr", "interface", "present" } ] }. */
void vip_status(struct vip *v, json_t *result);

/* Release nothing (the caller releases first if it must), cancel timers, free
 * once handles are closed. Accepts NULL. Loop thread. */
/* (vip.c) Operations still queued are dropped without calling their cb; one
 * already on the thread pool finishes there and its cb is not called either.
 * vip_status() also gives each address its "prefixlen". */
void vip_free(struct vip *v);

#endif
