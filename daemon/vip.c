/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vip.c - the VIP policy: when to probe, add, announce and remove the
 * module's virtual addresses. The rtnetlink messages are nl.c's, the
 * ARP / ND frames garp.c's.
 *
 * Part: VIP takeover and release. An "event" module: it logs what it did
 * (vip: added / removed / not taking ...). The public functions and every
 * callback run on the loop thread; the blocking steps (probe, netlink) run on
 * the libuv thread pool, one operation at a time.
 *
 * Invariants: at most one operation (struct vip_op) is on the thread pool,
 * always the head of v->ops; the worker reads only what vip_new() fixed
 * (addresses, interface names) and writes only its own struct vip_op; the
 * announcement timer is embedded and struct vip is freed from its close
 * callback or, when an operation was still on the pool, from that
 * operation's completion, whichever comes last.
 */
#include "vip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "garp.h"
#include "log.h"
#include "nl.h"
#include "util.h"

/*
 * The order of a takeover (keepalived's, plus the probe):
 *
 *   1. worker: re-resolve each interface by name (it may have been re-created
 *      since vip_new(), with a new index);
 *   2. worker: probe every address (garp_probe(): 3 ARP probes / DAD
 *      solicitations 30 ms apart, ~100 ms listening). If any host answers for
 *      any address, stop here: nothing is added, result -EADDRINUSE naming
 *      the address and the MAC. Two nodes must never both answer for a VIP;
 *      refusing is always safe, the FSM decides what to do next;
 *   3. worker: add every address (RTM_NEWADDR, "already there" is success).
 *      IPv4: the prefix length is the configured one; when the interface
 *      already holds that subnet the kernel makes the VIP a secondary address,
 *      which adds no second prefix route. IPv6: IFA_F_NODAD (step 2 was the
 *      DAD), plus IFA_F_NOPREFIXROUTE when the subnet is already there, so
 *      that removing the VIP later cannot take the shared route with it.
 *      If one add fails, the addresses this take added are removed again;
 *   4. loop: log, mark held, call back, announce: gratuitous ARP / unsolicited
 *      NA at 0, 200, 400, 600 and 800 ms, and once more at 5 s, so that
 *      caches that missed the burst (a switch port still coming up) learn
 *      the new MAC too.
 *
 * Release: stop announcing, then (worker) remove every address that is
 * present ("already gone" is success); errors do not stop the other removals.
 */

#define VIP_WHY_LEN 256

static const unsigned ann_at_ms[] = { 0, 200, 400, 600, 800, 5000 };

struct vip_ent {
	struct sockaddr_storage addr;
	uint8_t prefixlen;
	bool addr_check;
	bool intf_check;
	char ifname[IF_NAMESIZE];
	char addr_str[INET6_ADDRSTRLEN];
	int ifindex; /* loop thread's view; refreshed by every take */
};

enum vip_op_kind {
	VIP_OP_TAKE = 0,
	VIP_OP_RELEASE,
};

/* Per-address result of an operation, written by the worker. */
struct vip_res {
	int ifindex;
	bool was_present;
	int r;
};

struct vip_op {
	struct vip_op *next;
	struct vip *v; /* borrowed: the owner */
	enum vip_op_kind kind;
	vip_done_fn cb;
	void *ctx;
	uv_work_t work;
	int r;           /* result of the operation */
	size_t fail_idx; /* the address r is about (r != 0) */
	unsigned probe_ms;
	char mac[GARP_MAC_STR_LEN];
	char why[VIP_WHY_LEN];
	struct vip_res res[]; /* one per v->ents */
};

struct vip {
	uv_loop_t *loop; /* borrowed */
	struct vip_ent *ents;
	size_t n_ents;
	bool held;
	struct vip_op *ops_head; /* the running operation, then the queued ones */
	struct vip_op *ops_tail;
	bool op_running;
	uv_timer_t ann_timer;
	unsigned ann_step; /* index in ann_at_ms of the next announcement */
	unsigned pending_closes;
	bool freeing;
	unsigned probe_ms; /* how long a take probes for another holder */
};

static void start_next(struct vip *v);

/* ---- vip_new ------------------------------------------------------------- */

static int
resolve_ent(struct nl *nl, const char *intf_name, struct vip_ent *e, char *err, size_t err_len)
{
	int idx;

	if (intf_name[0] != '\0') {
		idx = (int)if_nametoindex(intf_name);
		if (idx == 0) {
			snprintf(err, err_len, "vip %s: no interface %s", e->addr_str, intf_name);
			return -ENODEV;
		}
		(void)mr_strlcpy(e->ifname, intf_name, sizeof(e->ifname));
		e->ifindex = idx;
		return 0;
	}
	if (nl->fd < 0) {
		int r = nl_open(nl);

		if (r < 0) {
			snprintf(err, err_len, "vip %s: netlink: %s", e->addr_str, mr_strerror(r));
			return r;
		}
	}
	idx = nl_subnet_ifindex(nl, &e->addr, e->prefixlen);
	if (idx < 0) {
		if (idx == -ENODEV)
			snprintf(err, err_len,
			         "vip %s/%u: no interface holds an address of its subnet; "
			         "name one with <interface name=\"...\">",
			         e->addr_str, e->prefixlen);
		else
			snprintf(err, err_len, "vip %s: netlink: %s", e->addr_str,
			         mr_strerror(idx));
		return idx;
	}
	if (if_indextoname((unsigned)idx, e->ifname) == NULL) {
		snprintf(err, err_len, "vip %s: interface %d vanished", e->addr_str, idx);
		return -ENODEV;
	}
	e->ifindex = idx;
	return 0;
}

static void
addr_to_str(const struct sockaddr_storage *ss, char *out, size_t out_len)
{
	const void *a = ss->ss_family == AF_INET
	                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
	                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

	if (inet_ntop(ss->ss_family, a, out, (socklen_t)out_len) == NULL)
		(void)mr_strlcpy(out, "?", out_len);
}

/* Loop thread. Resolves interfaces once (subnet match through one netlink dump);
 * a take re-resolves them by name. conf is copied, not kept. */
int
vip_new(uv_loop_t *loop, const struct conf_vip *conf, struct vip **out, char *err, size_t err_len)
{
	struct nl nl = { .fd = -1 };
	struct vip *v;
	size_t n = 0, k = 0;
	int r;

	if (err_len > 0)
		err[0] = '\0';
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	v->loop = loop;
	v->probe_ms = GARP_PROBE_LISTEN_MS;
	if (conf != NULL && conf->present)
		for (size_t i = 0; i < conf->n_intfs; i++)
			n += conf->intfs[i].n_addrs;
	if (n > 0) {
		v->ents = calloc(n, sizeof(*v->ents));
		if (v->ents == NULL) {
			r = -ENOMEM;
			goto err_free;
		}
	}
	for (size_t i = 0; n > 0 && i < conf->n_intfs; i++) {
		const struct conf_vip_intf *in = &conf->intfs[i];

		for (size_t j = 0; j < in->n_addrs; j++) {
			struct vip_ent *e = &v->ents[k++];

			e->addr = in->addrs[j].addr;
			e->prefixlen = in->addrs[j].prefixlen;
			e->addr_check = in->addrs[j].check;
			e->intf_check = in->check;
			addr_to_str(&e->addr, e->addr_str, sizeof(e->addr_str));
			if (e->addr.ss_family != AF_INET && e->addr.ss_family != AF_INET6) {
				snprintf(err, err_len, "vip %s: not an IP address",
				         in->addrs[j].addr_str);
				r = -EINVAL;
				goto err_free;
			}
			r = resolve_ent(&nl, in->name, e, err, err_len);
			if (r < 0)
				goto err_free;
		}
	}
	nl_close(&nl);
	v->n_ents = k;
	r = uv_timer_init(loop, &v->ann_timer);
	if (r < 0)
		goto err_free;
	v->ann_timer.data = v;
	*out = v;
	return 0;

err_free:
	nl_close(&nl);
	free(v->ents);
	free(v);
	return r;
}

/* ---- worker side (thread pool) ------------------------------------------- */

/* Step 1 and 2 of a takeover; 0 or -errno with op->why / op->fail_idx set. */
static int
take_resolve_probe(struct vip_op *op)
{
	struct vip *v = op->v;

	for (size_t i = 0; i < v->n_ents; i++) {
		const struct vip_ent *e = &v->ents[i];
		int idx = (int)if_nametoindex(e->ifname);

		if (idx == 0) {
			op->fail_idx = i;
			snprintf(op->why, sizeof(op->why), "%s: interface %s is gone", e->addr_str,
			         e->ifname);
			return -ENODEV;
		}
		op->res[i].ifindex = idx;
	}
	for (size_t i = 0; i < v->n_ents; i++) {
		const struct vip_ent *e = &v->ents[i];
		uint8_t mac[GARP_MAC_LEN];
		int r = garp_probe_ms(op->res[i].ifindex, &e->addr, op->probe_ms, mac);

		if (r == 1) {
			op->fail_idx = i;
			garp_mac_str(mac, op->mac);
			snprintf(op->why, sizeof(op->why), "%s is answered by MAC %s on %s",
			         e->addr_str, op->mac, e->ifname);
			return -EADDRINUSE;
		}
		if (r < 0) {
			op->fail_idx = i;
			snprintf(op->why, sizeof(op->why), "%s: probe on %s: %s", e->addr_str,
			         e->ifname, mr_strerror(r));
			return r;
		}
	}
	return 0;
}

static void
fill_nl_addr(struct nl_addr *a, const struct vip_ent *e, int ifindex)
{
	memset(a, 0, sizeof(*a));
	a->ifindex = ifindex;
	a->family = e->addr.ss_family;
	a->prefixlen = e->prefixlen;
	a->addr = e->addr;
}

static void
take_work(uv_work_t *w)
{
	struct vip_op *op = w->data;
	struct vip *v = op->v;
	struct nl nl = { .fd = -1 };
	size_t i;
	int r;

	r = take_resolve_probe(op);
	if (r < 0)
		goto out;
	r = nl_open(&nl);
	if (r < 0) {
		snprintf(op->why, sizeof(op->why), "netlink: %s", mr_strerror(r));
		goto out;
	}
	for (i = 0; i < v->n_ents; i++) {
		const struct vip_ent *e = &v->ents[i];
		struct vip_res *res = &op->res[i];
		struct nl_addr a;

		fill_nl_addr(&a, e, res->ifindex);
		r = nl_addr_present(&nl, res->ifindex, &e->addr);
		if (r >= 0) {
			res->was_present = r == 1;
			r = 0;
		}
		if (r == 0 && e->addr.ss_family == AF_INET) {
			(void)mr_strlcpy(a.label, e->ifname, sizeof(a.label));
		} else if (r == 0) {
			a.flags = IFA_F_NODAD;
			r = nl_subnet_on_if(&nl, res->ifindex, &e->addr, e->prefixlen);
			if (r == 1)
				a.flags |= IFA_F_NOPREFIXROUTE;
			r = r < 0 ? r : 0;
		}
		if (r == 0)
			r = nl_addr_change(&nl, NL_ADD, &a);
		if (r < 0) {
			op->fail_idx = i;
			snprintf(op->why, sizeof(op->why), "%s: add on %s: %s", e->addr_str,
			         e->ifname, mr_strerror(r));
			break;
		}
	}
	if (r < 0) {
		/* roll back what this take added; what was there stays */
		while (i-- > 0) {
			struct nl_addr a;

			if (op->res[i].was_present)
				continue;
			fill_nl_addr(&a, &v->ents[i], op->res[i].ifindex);
			(void)nl_addr_change(&nl, NL_DEL, &a);
		}
	}
out:
	nl_close(&nl);
	op->r = r;
}

static void
release_work(uv_work_t *w)
{
	struct vip_op *op = w->data;
	struct vip *v = op->v;
	struct nl nl = { .fd = -1 };
	int r;

	r = nl_open(&nl);
	if (r < 0) {
		snprintf(op->why, sizeof(op->why), "netlink: %s", mr_strerror(r));
		op->r = r;
		return;
	}
	for (size_t i = 0; i < v->n_ents; i++) {
		const struct vip_ent *e = &v->ents[i];
		struct vip_res *res = &op->res[i];
		struct nl_addr a;

		res->ifindex = (int)if_nametoindex(e->ifname);
		if (res->ifindex == 0)
			continue; /* interface gone: so is the address */
		r = nl_addr_present(&nl, res->ifindex, &e->addr);
		if (r == 1) {
			res->was_present = true;
			fill_nl_addr(&a, e, res->ifindex);
			r = nl_addr_change(&nl, NL_DEL, &a);
		}
		if (r < 0) {
			res->r = r;
			if (op->r == 0) {
				op->r = r;
				op->fail_idx = i;
				snprintf(op->why, sizeof(op->why), "%s: remove from %s: %s",
				         e->addr_str, e->ifname, mr_strerror(r));
			}
		}
	}
	nl_close(&nl);
}

static void
work_cb(uv_work_t *w)
{
	struct vip_op *op = w->data;

	if (op->kind == VIP_OP_TAKE)
		take_work(w);
	else
		release_work(w);
}

/* ---- announcements (loop thread) ----------------------------------------- */

static void
announce_all(struct vip *v)
{
	for (size_t i = 0; i < v->n_ents; i++) {
		const struct vip_ent *e = &v->ents[i];
		int r = garp_announce(e->ifindex, &e->addr);

		if (r < 0)
			log_ratelimited(LOG_LVL_WARN, 10000,
			                "vip: announce failed addr=%s dev=%s err=\"%s\"",
			                e->addr_str, e->ifname, mr_strerror(r));
		else
			log_debug("vip: announced addr=%s dev=%s n=%u", e->addr_str, e->ifname,
			          v->ann_step + 1);
	}
}

static void
ann_tick(uv_timer_t *t)
{
	struct vip *v = t->data;

	if (!v->held || v->ann_step >= ARRAY_SIZE(ann_at_ms))
		return;
	announce_all(v);
	v->ann_step++;
	if (v->ann_step < ARRAY_SIZE(ann_at_ms))
		(void)uv_timer_start(&v->ann_timer, ann_tick,
		                     ann_at_ms[v->ann_step] - ann_at_ms[v->ann_step - 1], 0);
}

static void
ann_start(struct vip *v)
{
	(void)uv_timer_stop(&v->ann_timer);
	v->ann_step = 0;
	ann_tick(&v->ann_timer);
}

/* ---- operations queue (loop thread) -------------------------------------- */

static void
maybe_free(struct vip *v)
{
	if (!v->freeing || v->pending_closes > 0 || v->op_running)
		return;
	free(v->ents);
	free(v);
}

static void
finish_take(struct vip *v, struct vip_op *op)
{
	const struct vip_ent *e;

	if (op->r == 0) {
		for (size_t i = 0; i < v->n_ents; i++) {
			v->ents[i].ifindex = op->res[i].ifindex;
			e = &v->ents[i];
			log_notice("vip: added addr=%s/%u dev=%s%s", e->addr_str, e->prefixlen,
			           e->ifname, op->res[i].was_present ? " already=yes" : "");
		}
		v->held = true;
		return;
	}
	if (op->r == UV_ECANCELED || v->n_ents == 0)
		return;
	e = &v->ents[op->fail_idx];
	if (op->r == -EADDRINUSE)
		log_warn("vip: not taking addr=%s dev=%s reason=\"answered by MAC %s\"",
		         e->addr_str, e->ifname, op->mac);
	else
		log_err("vip: take failed addr=%s dev=%s err=\"%s\" why=\"%s\"", e->addr_str,
		        e->ifname, mr_strerror(op->r), op->why);
}

static void
finish_release(struct vip *v, struct vip_op *op)
{
	for (size_t i = 0; i < v->n_ents && op->r != UV_ECANCELED; i++) {
		const struct vip_ent *e = &v->ents[i];
		const struct vip_res *res = &op->res[i];

		if (res->r < 0)
			log_err("vip: remove failed addr=%s/%u dev=%s err=\"%s\"", e->addr_str,
			        e->prefixlen, e->ifname, mr_strerror(res->r));
		else
			log_notice("vip: removed addr=%s/%u dev=%s%s", e->addr_str, e->prefixlen,
			           e->ifname, res->was_present ? "" : " already_gone=yes");
	}
}

static void
after_work(uv_work_t *w, int status)
{
	struct vip_op *op = w->data;
	struct vip *v = op->v;

	v->op_running = false;
	v->ops_head = op->next;
	if (v->ops_head == NULL)
		v->ops_tail = NULL;
	if (status == UV_ECANCELED) {
		op->r = UV_ECANCELED;
		snprintf(op->why, sizeof(op->why), "cancelled");
	}
	if (!v->freeing) {
		if (op->kind == VIP_OP_TAKE) {
			finish_take(v, op);
			if (op->r == 0)
				ann_start(v);
		} else {
			finish_release(v, op);
		}
		if (op->cb != NULL)
			op->cb(op->ctx, op->r, op->why); /* may queue more, or vip_free(v) */
	}
	free(op);
	if (v->freeing) {
		maybe_free(v);
		return;
	}
	start_next(v);
}

static void
start_next(struct vip *v)
{
	struct vip_op *op = v->ops_head;
	int r;

	if (op == NULL || v->op_running || v->freeing)
		return;
	v->op_running = true;
	if (op->kind == VIP_OP_RELEASE) {
		v->held = false;
		(void)uv_timer_stop(&v->ann_timer);
	}
	op->work.data = op;
	r = uv_queue_work(v->loop, &op->work, work_cb, after_work);
	MR_BUG_ON(r != 0); /* fails only without a work callback */
}

static void
queue_op(struct vip *v, enum vip_op_kind kind, vip_done_fn cb, void *ctx)
{
	struct vip_op *op;

	MR_BUG_ON(v->freeing);
	op = mr_xcalloc(1, sizeof(*op) + v->n_ents * sizeof(op->res[0]));
	op->v = v;
	op->kind = kind;
	op->probe_ms = v->probe_ms;
	op->cb = cb;
	op->ctx = ctx;
	if (v->ops_tail != NULL)
		v->ops_tail->next = op;
	else
		v->ops_head = op;
	v->ops_tail = op;
	start_next(v);
}

/* Loop thread. Queued; cb is called from after_work() on the loop thread. */
void
vip_take(struct vip *v, vip_done_fn cb, void *ctx)
{
	queue_op(v, VIP_OP_TAKE, cb, ctx);
}

/* Loop thread. Queued; the announcements stop when the release starts. */
void
vip_release(struct vip *v, vip_done_fn cb, void *ctx)
{
	queue_op(v, VIP_OP_RELEASE, cb, ctx);
}

/* Loop thread. Restarts the announcement schedule (burst + late one). */
void
vip_announce(struct vip *v)
{
	if (v->held && !v->freeing && v->n_ents > 0)
		ann_start(v);
}

/* Loop thread. */
bool
vip_held(const struct vip *v)
{
	return v->held;
}

/* ---- checks and status (loop thread) ------------------------------------- */

/* Loop thread. One ioctl per checked interface, one netlink dump per
 * checked held address (the kernel answers at once). */
int
vip_check(struct vip *v, char *why, size_t why_len)
{
	struct nl nl = { .fd = -1 };
	int r = 0;

	if (why_len > 0)
		why[0] = '\0';
	for (size_t i = 0; i < v->n_ents; i++) {
		const struct vip_ent *e = &v->ents[i];
		unsigned flags = 0;

		if (!e->intf_check)
			continue;
		r = nl_if_flags(e->ifname, &flags);
		if (r < 0) {
			snprintf(why, why_len, "dev=%s: %s", e->ifname, mr_strerror(r));
			return -ENETDOWN;
		}
		if (!(flags & IFF_UP)) {
			snprintf(why, why_len, "dev=%s is down", e->ifname);
			return -ENETDOWN;
		}
		if (!(flags & IFF_RUNNING)) {
			snprintf(why, why_len, "dev=%s has no carrier", e->ifname);
			return -ENETDOWN;
		}
	}
	if (!v->held)
		return 0;
	for (size_t i = 0; i < v->n_ents && r == 0; i++) {
		const struct vip_ent *e = &v->ents[i];

		if (!e->addr_check)
			continue;
		if (nl.fd < 0) {
			r = nl_open(&nl);
			if (r < 0) {
				snprintf(why, why_len, "netlink: %s", mr_strerror(r));
				break;
			}
		}
		r = nl_addr_present(&nl, e->ifindex, &e->addr);
		if (r == 1) {
			r = 0;
		} else if (r == 0) {
			snprintf(why, why_len, "addr=%s is no longer on dev=%s", e->addr_str,
			         e->ifname);
			r = -EADDRNOTAVAIL;
		} else {
			snprintf(why, why_len, "netlink: %s", mr_strerror(r));
		}
	}
	nl_close(&nl);
	return r;
}

/* Loop thread. "present" is what the kernel says now, held or not. */
void
vip_status(struct vip *v, json_t *result)
{
	json_t *o = json_object(), *addrs = json_array();
	struct nl nl = { .fd = -1 };
	bool nl_ok;

	if (o == NULL || addrs == NULL) {
		json_decref(o);
		json_decref(addrs);
		return;
	}
	nl_ok = v->n_ents > 0 && nl_open(&nl) == 0;
	for (size_t i = 0; i < v->n_ents; i++) {
		const struct vip_ent *e = &v->ents[i];
		int idx = (int)if_nametoindex(e->ifname);
		bool present = nl_ok && idx > 0 && nl_addr_present(&nl, idx, &e->addr) == 1;

		(void)json_array_append_new(addrs,
		                            json_pack("{s:s, s:i, s:s, s:b}", "addr", e->addr_str,
		                                      "prefixlen", (int)e->prefixlen, "interface",
		                                      e->ifname, "present", present));
	}
	nl_close(&nl);
	(void)json_object_set_new(o, "held", json_boolean(v->held));
	(void)json_object_set_new(o, "addrs", addrs);
	(void)json_object_set_new(result, "vip", o);
}

/* ---- teardown ------------------------------------------------------------- */

static void
on_timer_closed(uv_handle_t *h)
{
	struct vip *v = h->data;

	v->pending_closes--;
	maybe_free(v);
}

/* Loop thread. See vip.h for what happens to pending operations. */
void
vip_free(struct vip *v)
{
	struct vip_op *op, *next;

	if (v == NULL || v->freeing)
		return;
	v->freeing = true;
	/* Drop the queued operations (their callbacks are not called); the one
	 * on the thread pool is cancelled if it has not started, else it ends
	 * and after_work() frees it. */
	op = v->op_running ? v->ops_head->next : v->ops_head;
	if (v->op_running) {
		v->ops_head->next = NULL;
		v->ops_tail = v->ops_head;
		(void)uv_cancel((uv_req_t *)&v->ops_head->work);
	} else {
		v->ops_head = v->ops_tail = NULL;
	}
	for (; op != NULL; op = next) {
		next = op->next;
		free(op);
	}
	v->pending_closes++;
	uv_close((uv_handle_t *)&v->ann_timer, on_timer_closed);
}

void
vip_set_probe_ms(struct vip *v, unsigned ms)
{
	if (v != NULL)
		v->probe_ms = ms < 20 ? 20 : ms > GARP_PROBE_LISTEN_MS ? GARP_PROBE_LISTEN_MS : ms;
}
