/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hb.c - heartbeats: the HMAC-authenticated UDP datagrams of hb.h, sent every
 * pulse on every <heartbeat> network and checked on arrival, and the per
 * network and per peer liveness derived from them.
 *
 * Does NOT decide anything about roles (fsm does, from on_peer/on_net/on_lost)
 * and does not touch the replication link. The pure codec (hb_encode,
 * hb_decode, hb_replay_accept) runs on any thread. Sockets, timers and
 * receive checks run on one dedicated thread ("hb thread", all signals
 * blocked, poll() over the sockets and an eventfd, timeout computed from the
 * next deadline), so a busy or blocked loop thread never delays a heartbeat.
 * Results reach the loop thread through a uv_async and one mutex-protected
 * event record; the loop thread never waits on the hb thread except in
 * hb_stop() (join after a wake-up).
 *
 * Invariants: h->lock is never held across a syscall, a log line or a
 * callback; the fields of struct hb are each written by one thread only (see
 * the struct); struct hb is freed only from the uv_async's close callback.
 */
#include "hb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "err.h"
#include "log.h"
#include "util.h"

/*
 * Wire format (version 2), HB_WIRE_BYTES = 160 bytes, integers big-endian:
 *
 *   off  len  field
 *     0    4  magic "HMHB"
 *     4    1  version (1)
 *     5    1  node_idx      sender's index in cluster_conf.nodes
 *     6    1  net_idx       index of the <heartbeat> network it was sent on
 *     7   32  module        module name, NUL padded (32 chars: no NUL)
 *    39    8  epoch         sender's start, CLOCK_REALTIME microseconds
 *    47    8  seq           per-sender datagram counter, 1 first in an epoch
 *    55    1  state         enum mrd_state
 *    56    1  readiness     enum mrd_readiness
 *    57    1  uptodate      0 or 1
 *    58    1  flags         HB_F_*
 *    59    8  gen_seq
 *    67    8  gen_id
 *    75    8  handover_seq
 *    83   16  config_hash
 *    99    4  changed_files files in the sender's dirty set (version 2)
 *   103   25  reserved, zero (a receiver refuses anything else)
 *   128   32  HMAC-SHA256(key, bytes 0..127)
 *
 * Any change of layout or meaning bumps the version; test_hb.c pins the
 * bytes of one datagram so the format cannot change by accident.
 *
 * Sequence numbers and replay protection
 * --------------------------------------
 * A sender has one seq counter for its epoch, incremented for every datagram
 * it sends, whatever the network: a pulse on three networks uses three seq
 * numbers, so every datagram a sender ever emits has a unique (epoch, seq).
 * The receiver keeps one struct hb_replay per network and accepts a datagram
 * on network i only if its (epoch, seq) is strictly above the last one
 * accepted on network i. A shared window for all networks would not do: the
 * networks have different latencies, so a datagram on a slow network
 * routinely arrives after a later one on a fast network, would be dropped
 * as a replay, and the slow network would look down although it works.
 *
 * Per-network windows are still replay-proof because net_idx is under the
 * MAC and must equal the network the datagram arrived on (both nodes load
 * the same userconfig.xml, so the indices agree; a mismatch is dropped as
 * reason=wrong-net): a datagram recorded on network A is refused on A by A's
 * window and on B because it says A. What an attacker on the path can still
 * do is what every window allows: delay a datagram and deliver it once. To
 * keep such a late datagram from bringing back stale peer info, the peer's
 * info is taken only from a datagram that is the newest (epoch, seq) over all
 * networks (h->newest); a late one only counts for its network's liveness.
 *
 * Epoch: a higher epoch is a restart of the peer (its seq starts again at 1)
 * and is accepted; a lower one is refused as a replay, forever, and logged
 * as reason=old-epoch. So if a node's realtime clock is stepped back across
 * a restart of its daemon, its peer refuses it until the peer's daemon
 * restarts too: the log line names both epochs.
 *
 * Known limit: windows start empty at our hb_start(), so right after our own
 * restart an attacker holding datagrams recorded from an earlier epoch of
 * the peer can replay them, in order, and fake a live peer until the real
 * one speaks (whose higher epoch then wins). Closing that needs freshness
 * from us, e.g. the peer echoing our epoch in a field taken from the
 * reserved bytes (and a version bump).
 *
 * Liveness
 * --------
 * A network is up while a datagram was accepted on it less than its
 * timeout_ms ago. The peer goes ALIVE with the first newest datagram
 * (on_peer), and LOST when no network is up any more (on_lost); it also goes
 * LOST once if nothing was heard within the longest network timeout after
 * hb_start(). While ALIVE, on_peer is repeated every HB_PEER_REPEAT_MS and
 * sent at once whenever a field of the peer's info changes.
 */

#define HB_OFF_MAGIC     0
#define HB_OFF_VERSION   4
#define HB_OFF_NODE      5
#define HB_OFF_NET       6
#define HB_OFF_MODULE    7
#define HB_MODULE_BYTES  32
#define HB_OFF_EPOCH     39
#define HB_OFF_SEQ       47
#define HB_OFF_STATE     55
#define HB_OFF_READINESS 56
#define HB_OFF_UPTODATE  57
#define HB_OFF_FLAGS     58
#define HB_OFF_GEN_SEQ   59
#define HB_OFF_GEN_ID    67
#define HB_OFF_HANDOVER  75
#define HB_OFF_HASH      83
#define HB_OFF_CHANGED   99
#define HB_OFF_RESERVED  103
#define HB_OFF_MAC       HB_BODY_BYTES

_Static_assert(HB_OFF_RESERVED <= HB_BODY_BYTES, "heartbeat fields overflow the body");
_Static_assert(HB_OFF_MAC + HB_MAC_BYTES == HB_WIRE_BYTES, "MAC must be the last bytes");

#define HB_PEER_REPEAT_MS 1000u  /* on_peer at least this often while heard */
#define HB_LOG_MS         10000u /* rate limit of drop and send-error lines */
#define HB_RX_BURST       64     /* datagrams read per socket per round */
#define HB_ADDR_LEN       (INET6_ADDRSTRLEN + 8)
#define HB_TOS            0xc0 /* DSCP CS6, network control */

enum hb_seen {
	HB_SEEN_NEVER = 0, /* not heard since hb_start(), first timeout not over */
	HB_SEEN_ALIVE,
	HB_SEEN_LOST,
};

enum hb_drop {
	HB_DROP_BAD_MAC = 0,
	HB_DROP_REPLAY,
	HB_DROP_OTHER,
};

struct hb_net {
	/* set by hb_start(), then read-only */
	const struct conf_heartbeat *conf; /* borrowed: owned by conf */
	size_t idx;
	int fd;
	struct sockaddr_storage local; /* with port */
	struct sockaddr_storage peer;  /* with port */
	char local_str[HB_ADDR_LEN];
	char peer_str[HB_ADDR_LEN];
	uint32_t pulse_ms;
	uint32_t timeout_ms;

	/* hb thread only */
	uint64_t next_tx_ms;
	struct hb_replay replay;
	struct log_rl rl_drop[3]; /* enum hb_drop */
	struct log_rl rl_tx;
	struct log_rl rl_rx;
	bool up_logged; /* "network up" was logged, "down" not yet */

	/* written by the hb thread under h->lock; read by it freely, by others
	 * under h->lock */
	bool up;
	bool heard; /* last_rx_ms is valid */
	uint64_t last_rx_ms;
	uint64_t rx;
	uint64_t tx;
	uint64_t tx_errors;
	uint64_t dropped[3]; /* enum hb_drop */

	/* loop thread only */
	bool up_seen;     /* copied from up in async_cb */
	bool up_reported; /* last value given to on_net */
};

/* Pending events for the loop thread, coalesced. */
struct hb_ev {
	bool peer_set; /* peer holds info newer than any on_peer so far */
	bool lost;
	bool peer_after_lost; /* the peer came back after the pending loss */
	struct hb_info peer;
};

struct hb {
	/* set by hb_start(), then read-only */
	uv_loop_t *loop; /* borrowed */
	struct hb_cbs cbs;
	void *ctx;
	int self_idx;
	int peer_idx;
	char module[HB_MODULE_BYTES + 1];
	uint8_t key[HB_KEY_MAX_BYTES];
	size_t key_len;
	uint64_t epoch;
	uint32_t pulse_ms; /* <heart> values, for hb_status() */
	uint32_t timeout_ms;
	uint32_t first_timeout_ms; /* longest network timeout */
	struct hb_net *nets;       /* owned */
	size_t n_nets;
	int wake_fd; /* eventfd: hb_set_local(), hb_stop() */
	pthread_t thread;
	pthread_mutex_t lock;

	uv_async_t async; /* embedded: h is freed from its close callback */

	/* under lock */
	struct hb_info local;
	bool send_now;
	bool stop;
	bool peer_alive;
	struct hb_ev ev;

	/* hb thread only (peer_info and seen: written under lock too) */
	struct pollfd *pfds; /* owned: wake_fd, then one per network */
	uint64_t seq;
	uint64_t start_ms;
	uint64_t peer_posted_ms;
	enum hb_seen seen;
	struct hb_replay newest;
	struct hb_info peer_info;
	struct log_rl rl_poll;
	bool rx_post; /* a burst being read has something for the loop */

	/* loop thread only */
	bool stopping;
};

/* ---- codec ----------------------------------------------------------------- */

static void
put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static bool
key_ok(const uint8_t *key, size_t key_len)
{
	return key != NULL && key_len >= HB_KEY_MIN_BYTES && key_len <= HB_KEY_MAX_BYTES;
}

/* HMAC-SHA256 of the body. 0, or -ENOMEM when OpenSSL fails (it only fails
 * on allocation here: the digest and key are valid). */
static int
mac_body(const uint8_t *buf, const uint8_t *key, size_t key_len, uint8_t mac[HB_MAC_BYTES])
{
	unsigned int mac_len = 0;

	if (HMAC(EVP_sha256(), key, (int)key_len, buf, HB_BODY_BYTES, mac, &mac_len) == NULL ||
	    mac_len != HB_MAC_BYTES)
		return -ENOMEM;
	return 0;
}

/* See hb.h. Pure; any thread. */
int
hb_encode(const struct hb_msg *m, const uint8_t *key, size_t key_len, uint8_t *buf, size_t buf_len)
{
	size_t mlen = strnlen(m->module, sizeof(m->module));
	int r;

	if (mlen > HB_MODULE_BYTES || !key_ok(key, key_len) || buf_len < HB_WIRE_BYTES)
		return -EINVAL;
	memset(buf, 0, HB_WIRE_BYTES);
	memcpy(buf + HB_OFF_MAGIC, HB_MAGIC, 4);
	buf[HB_OFF_VERSION] = HB_VERSION;
	buf[HB_OFF_NODE] = m->node_idx;
	buf[HB_OFF_NET] = m->net_idx;
	memcpy(buf + HB_OFF_MODULE, m->module, mlen);
	put_be64(buf + HB_OFF_EPOCH, m->epoch);
	put_be64(buf + HB_OFF_SEQ, m->seq);
	buf[HB_OFF_STATE] = m->info.state;
	buf[HB_OFF_READINESS] = m->info.readiness;
	buf[HB_OFF_UPTODATE] = m->info.uptodate ? 1 : 0;
	buf[HB_OFF_FLAGS] = m->info.flags;
	put_be64(buf + HB_OFF_GEN_SEQ, m->info.gen_seq);
	put_be64(buf + HB_OFF_GEN_ID, m->info.gen_id);
	put_be64(buf + HB_OFF_HANDOVER, m->info.handover_seq);
	memcpy(buf + HB_OFF_HASH, m->info.config_hash, sizeof(m->info.config_hash));
	mr_put_be32(buf + HB_OFF_CHANGED, m->info.changed_files);
	r = mac_body(buf, key, key_len, buf + HB_OFF_MAC);
	if (r < 0)
		return r;
	return HB_WIRE_BYTES;
}

/* See hb.h. Size, magic and version are checked before the MAC (they are not
 * secret and a wrong one is not an attack); everything else only once the
 * MAC matched. Pure; any thread. */
int
hb_decode(const uint8_t *buf, size_t len, const uint8_t *key, size_t key_len, struct hb_msg *out)
{
	uint8_t mac[HB_MAC_BYTES];
	size_t i, mlen;
	int r;

	if (!key_ok(key, key_len))
		return -EINVAL;
	if (buf == NULL || len != HB_WIRE_BYTES)
		return -EBADMSG;
	if (memcmp(buf + HB_OFF_MAGIC, HB_MAGIC, 4) != 0 || buf[HB_OFF_VERSION] != HB_VERSION)
		return -EBADMSG;
	r = mac_body(buf, key, key_len, mac);
	if (r < 0)
		return r;
	if (CRYPTO_memcmp(mac, buf + HB_OFF_MAC, HB_MAC_BYTES) != 0)
		return -EPERM;

	for (i = HB_OFF_RESERVED; i < HB_OFF_MAC; i++)
		if (buf[i] != 0)
			return -EBADMSG;
	if (buf[HB_OFF_UPTODATE] > 1)
		return -EBADMSG;
	mlen = strnlen((const char *)buf + HB_OFF_MODULE, HB_MODULE_BYTES);
	for (i = mlen; i < HB_MODULE_BYTES; i++)
		if (buf[HB_OFF_MODULE + i] != 0)
			return -EBADMSG;

	*out = (struct hb_msg){
		.node_idx = buf[HB_OFF_NODE],
		.net_idx = buf[HB_OFF_NET],
		.epoch = get_be64(buf + HB_OFF_EPOCH),
		.seq = get_be64(buf + HB_OFF_SEQ),
		.info.state = buf[HB_OFF_STATE],
		.info.readiness = buf[HB_OFF_READINESS],
		.info.uptodate = buf[HB_OFF_UPTODATE] != 0,
		.info.flags = buf[HB_OFF_FLAGS],
		.info.gen_seq = get_be64(buf + HB_OFF_GEN_SEQ),
		.info.gen_id = get_be64(buf + HB_OFF_GEN_ID),
		.info.handover_seq = get_be64(buf + HB_OFF_HANDOVER),
		.info.changed_files = mr_get_be32(buf + HB_OFF_CHANGED),
	};
	memcpy(out->module, buf + HB_OFF_MODULE, mlen);
	out->module[mlen] = '\0';
	memcpy(out->info.config_hash, buf + HB_OFF_HASH, sizeof(out->info.config_hash));
	return 0;
}

/* See hb.h and "Sequence numbers and replay protection" above. A fresh
 * (zeroed) window accepts anything but (0, 0). Pure; any thread. */
bool
hb_replay_accept(struct hb_replay *r, uint64_t epoch, uint64_t seq)
{
	if (epoch < r->epoch || (epoch == r->epoch && seq <= r->seq))
		return false;
	r->epoch = epoch;
	r->seq = seq;
	return true;
}

/* ---- small helpers ------------------------------------------------------------ */

static bool
info_equal(const struct hb_info *a, const struct hb_info *b)
{
	return a->state == b->state && a->readiness == b->readiness && a->uptodate == b->uptodate &&
	       a->flags == b->flags && a->gen_seq == b->gen_seq && a->gen_id == b->gen_id &&
	       a->handover_seq == b->handover_seq &&
	       memcmp(a->config_hash, b->config_hash, sizeof(a->config_hash)) == 0;
}

static void
wake(struct hb *h)
{
	uint64_t one = 1;
	ssize_t n;

	/* EAGAIN means the counter is already non-zero: the thread will wake */
	n = write(h->wake_fd, &one, sizeof(one));
	(void)n;
}

/* ---- events to the loop thread ---------------------------------------------- */

/* Under h->lock. */
static void
ev_peer_locked(struct hb *h, const struct hb_info *info)
{
	h->ev.peer = *info;
	h->ev.peer_set = true;
	if (h->ev.lost)
		h->ev.peer_after_lost = true;
}

/* Under h->lock. A loss after a pending return cancels that return: the loop
 * thread never saw the peer back, so one on_lost says it all. */
static void
ev_lost_locked(struct hb *h)
{
	if (h->ev.lost && h->ev.peer_after_lost) {
		h->ev.peer_set = false;
		h->ev.peer_after_lost = false;
		return;
	}
	h->ev.lost = true;
	h->ev.peer_after_lost = false;
}

/* Loop thread: deliver what the hb thread recorded, in the order network
 * changes, peer info, loss (or loss then peer info when the peer came back
 * after the loss). A callback may call hb_stop(): nothing is delivered after. */
static void
async_cb(uv_async_t *a)
{
	struct hb *h = a->data;
	struct hb_ev ev;
	size_t i;

	if (h->stopping)
		return;
	MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
	for (i = 0; i < h->n_nets; i++)
		h->nets[i].up_seen = h->nets[i].up;
	ev = h->ev;
	h->ev = (struct hb_ev){ .peer_set = false };
	MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);

	for (i = 0; i < h->n_nets && !h->stopping; i++) {
		struct hb_net *n = &h->nets[i];

		if (n->up_seen == n->up_reported)
			continue;
		n->up_reported = n->up_seen;
		if (h->cbs.on_net != NULL)
			h->cbs.on_net(h->ctx, i, n->up_seen);
	}
	if (ev.lost && ev.peer_after_lost) {
		if (!h->stopping && h->cbs.on_lost != NULL)
			h->cbs.on_lost(h->ctx);
		if (!h->stopping && h->cbs.on_peer != NULL)
			h->cbs.on_peer(h->ctx, &ev.peer);
		return;
	}
	if (ev.peer_set && !h->stopping && h->cbs.on_peer != NULL)
		h->cbs.on_peer(h->ctx, &ev.peer);
	if (ev.lost && !h->stopping && h->cbs.on_lost != NULL)
		h->cbs.on_lost(h->ctx);
}

/* ---- hb thread ----------------------------------------------------------------- */

static void
drop(struct hb *h, struct hb_net *n, enum hb_drop kind, const struct sockaddr_storage *from,
     const char *reason, const char *extra)
{
	char ip[INET6_ADDRSTRLEN];
	uint32_t sup = 0;

	MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
	n->dropped[kind]++;
	MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);
	/* A rate limit per network and kind of drop, rather than
	 * log_ratelimited()'s one static per call site: that one would be
	 * shared, unlocked, by the threads of every struct hb (a test runs
	 * two), and a flood of one kind would hide the others. Same format. */
	if (!log_rl_allow(&n->rl_drop[kind], HB_LOG_MS, &sup))
		return;
	conf_sa_ip_str(from, ip, sizeof(ip));
	log_warn("hb: dropped heartbeat net=%s from=%s reason=%s%s (suppressed=%u)", n->conf->name,
	         ip, reason, extra, sup);
}

static void
send_one(struct hb *h, struct hb_net *n, const struct hb_info *info)
{
	struct hb_msg m = {
		.node_idx = (uint8_t)h->self_idx,
		.net_idx = (uint8_t)n->idx,
		.epoch = h->epoch,
		.seq = ++h->seq,
		.info = *info,
	};
	uint8_t buf[HB_WIRE_BYTES];
	uint32_t sup = 0;
	ssize_t sent;
	int r;

	memcpy(m.module, h->module, sizeof(m.module));
	r = hb_encode(&m, h->key, h->key_len, buf, sizeof(buf));
	if (r >= 0) {
		do
			sent = sendto(n->fd, buf, sizeof(buf), MSG_NOSIGNAL,
			              (const struct sockaddr *)&n->peer, conf_sa_len(&n->peer));
		while (sent == -1 && errno == EINTR);
		r = sent == -1 ? -errno : 0;
	}
	MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
	if (r == 0)
		n->tx++;
	else
		n->tx_errors++;
	MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);
	if (r < 0 && log_rl_allow(&n->rl_tx, HB_LOG_MS, &sup))
		log_warn("hb: cannot send heartbeat net=%s to=%s err=\"%s\" (suppressed=%u)",
		         n->conf->name, n->peer_str, mr_strerror(r), sup);
}

/* A datagram passed every check on network n. */
static void
rx_valid(struct hb *h, struct hb_net *n, const struct hb_msg *m, uint64_t now)
{
	bool newest = hb_replay_accept(&h->newest, m->epoch, m->seq);
	bool net_up = false, found = false, post = false;

	MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
	n->rx++;
	n->heard = true;
	n->last_rx_ms = now;
	if (!n->up) {
		n->up = true;
		net_up = true;
		post = true;
	}
	if (newest && (h->seen != HB_SEEN_ALIVE || !info_equal(&h->peer_info, &m->info) ||
	               now - h->peer_posted_ms >= HB_PEER_REPEAT_MS)) {
		found = h->seen != HB_SEEN_ALIVE;
		h->seen = HB_SEEN_ALIVE;
		h->peer_alive = true;
		h->peer_info = m->info;
		h->peer_posted_ms = now;
		ev_peer_locked(h, &m->info);
		post = true;
	}
	MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);
	if (post)
		h->rx_post = true; /* posted once per burst (rx_net): only the newest counts */
	if (net_up) {
		n->up_logged = true;
		log_debug("hb: network up net=%s peer=%s", n->conf->name, n->peer_str);
	}
	if (found)
		log_debug("hb: peer heard node=%d epoch=%" PRIu64 " state=%u", h->peer_idx,
		          m->epoch, m->info.state);
}

static void
rx_one(struct hb *h, struct hb_net *n, const uint8_t *buf, size_t len,
       const struct sockaddr_storage *from, uint64_t now)
{
	struct hb_replay before = n->replay;
	char extra[96];
	struct hb_msg m;
	int r;

	if (!conf_ip_equal(from, &n->peer)) {
		drop(h, n, HB_DROP_OTHER, from, "unknown-source", "");
		return;
	}
	r = hb_decode(buf, len, h->key, h->key_len, &m);
	if (r == -EPERM) {
		drop(h, n, HB_DROP_BAD_MAC, from, "bad-mac", "");
		return;
	}
	if (r < 0) {
		drop(h, n, HB_DROP_OTHER, from, len != HB_WIRE_BYTES ? "bad-size" : "bad-format",
		     "");
		return;
	}
	if (strcmp(m.module, h->module) != 0) {
		drop(h, n, HB_DROP_OTHER, from, "wrong-module", "");
		return;
	}
	if (m.node_idx != (uint8_t)h->peer_idx) {
		drop(h, n, HB_DROP_OTHER, from, "wrong-node", "");
		return;
	}
	if (m.net_idx >= h->n_nets || m.net_idx != n->idx) {
		drop(h, n, HB_DROP_OTHER, from, "wrong-net", "");
		return;
	}
	if (!hb_replay_accept(&n->replay, m.epoch, m.seq)) {
		if (m.epoch < before.epoch) {
			(void)snprintf(extra, sizeof(extra),
			               " epoch=%" PRIu64 " last_epoch=%" PRIu64, m.epoch,
			               before.epoch);
			drop(h, n, HB_DROP_REPLAY, from, "old-epoch", extra);
		} else {
			drop(h, n, HB_DROP_REPLAY, from, "replay", "");
		}
		return;
	}
	rx_valid(h, n, &m, now);
}

static void rx_burst(struct hb *h, struct hb_net *n);

/* Read what is queued on n, then wake the loop once: a burst of datagrams
 * held back while a link was down reaches the state machine as its newest
 * info only, not as a replay of every state the peer went through. */
static void
rx_net(struct hb *h, struct hb_net *n)
{
	rx_burst(h, n);
	if (h->rx_post) {
		h->rx_post = false;
		MR_BUG_ON(uv_async_send(&h->async) != 0);
	}
}

static void
rx_burst(struct hb *h, struct hb_net *n)
{
	uint8_t buf[HB_WIRE_BYTES];
	struct sockaddr_storage from;
	socklen_t flen;
	uint32_t sup = 0;
	ssize_t len;
	int i;

	for (i = 0; i < HB_RX_BURST; i++) {
		flen = sizeof(from);
		memset(&from, 0, sizeof(from));
		/* MSG_TRUNC: the real length of a longer datagram, to refuse it */
		len = recvfrom(n->fd, buf, sizeof(buf), MSG_TRUNC, (struct sockaddr *)&from, &flen);
		if (len == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    log_rl_allow(&n->rl_rx, HB_LOG_MS, &sup))
				log_warn("hb: cannot receive net=%s err=\"%s\" (suppressed=%u)",
				         n->conf->name, mr_strerror(-errno), sup);
			return;
		}
		rx_one(h, n, buf, (size_t)len, &from, mr_now_ms());
	}
}

/* Network timeouts, the loss of the peer, the periodic on_peer. */
static void
check_timers(struct hb *h, uint64_t now)
{
	bool any_up = false, post = false, lost = false, was_alive = h->seen == HB_SEEN_ALIVE;
	size_t i;

	MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
	for (i = 0; i < h->n_nets; i++) {
		struct hb_net *n = &h->nets[i];

		if (n->up && now - n->last_rx_ms >= n->timeout_ms) {
			n->up = false;
			post = true;
		}
		any_up = any_up || n->up;
	}
	if ((h->seen == HB_SEEN_ALIVE && !any_up) ||
	    (h->seen == HB_SEEN_NEVER && now - h->start_ms >= h->first_timeout_ms)) {
		h->seen = HB_SEEN_LOST;
		h->peer_alive = false;
		ev_lost_locked(h);
		lost = true;
		post = true;
	} else if (h->seen == HB_SEEN_ALIVE && now - h->peer_posted_ms >= HB_PEER_REPEAT_MS) {
		h->peer_posted_ms = now;
		ev_peer_locked(h, &h->peer_info);
		post = true;
	}
	MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);
	if (post)
		MR_BUG_ON(uv_async_send(&h->async) != 0);
	for (i = 0; i < h->n_nets; i++) {
		struct hb_net *n = &h->nets[i];

		if (n->up_logged && !n->up) {
			n->up_logged = false;
			log_debug("hb: network down net=%s peer=%s silent_ms=%" PRIu64,
			          n->conf->name, n->peer_str, now - n->last_rx_ms);
		}
	}
	if (lost)
		log_debug("hb: peer lost node=%d reason=%s", h->peer_idx,
		          was_alive ? "timeout" : "never-heard");
}

static uint64_t
next_deadline(const struct hb *h)
{
	uint64_t dl = UINT64_MAX;
	size_t i;

	for (i = 0; i < h->n_nets; i++) {
		const struct hb_net *n = &h->nets[i];

		if (n->next_tx_ms < dl)
			dl = n->next_tx_ms;
		if (n->up && n->last_rx_ms + n->timeout_ms < dl)
			dl = n->last_rx_ms + n->timeout_ms;
	}
	if (h->seen == HB_SEEN_NEVER && h->start_ms + h->first_timeout_ms < dl)
		dl = h->start_ms + h->first_timeout_ms;
	if (h->seen == HB_SEEN_ALIVE && h->peer_posted_ms + HB_PEER_REPEAT_MS < dl)
		dl = h->peer_posted_ms + HB_PEER_REPEAT_MS;
	return dl;
}

/* The hb thread: send what is due, expire what is late, sleep in poll() until
 * the next deadline, a datagram or a wake-up, read what arrived. */
static void *
hb_thread(void *arg)
{
	struct hb *h = arg;
	struct hb_info info;
	uint64_t now, dl;
	bool send_now, stop;
	uint32_t sup = 0;
	size_t i;
	int r, timeout_ms;

	h->start_ms = mr_now_ms();
	for (i = 0; i < h->n_nets; i++)
		h->nets[i].next_tx_ms = h->start_ms; /* the first pulse at once */
	for (;;) {
		MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
		stop = h->stop;
		send_now = h->send_now;
		h->send_now = false;
		info = h->local;
		MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);
		if (stop)
			break;

		now = mr_now_ms();
		for (i = 0; i < h->n_nets; i++) {
			struct hb_net *n = &h->nets[i];

			if (send_now || now >= n->next_tx_ms) {
				send_one(h, n, &info);
				n->next_tx_ms = now + n->pulse_ms;
			}
		}
		check_timers(h, now);

		dl = next_deadline(h);
		now = mr_now_ms();
		if (dl <= now)
			timeout_ms = 0;
		else if (dl - now > INT_MAX)
			timeout_ms = INT_MAX;
		else
			timeout_ms = (int)(dl - now);
		r = poll(h->pfds, h->n_nets + 1, timeout_ms);
		if (r == -1) {
			if (errno != EINTR && log_rl_allow(&h->rl_poll, HB_LOG_MS, &sup))
				log_err("hb: poll failed err=\"%s\" (suppressed=%u)",
				        mr_strerror(-errno), sup);
			continue;
		}
		if (h->pfds[0].revents != 0) {
			uint64_t v;
			ssize_t n = read(h->wake_fd, &v, sizeof(v));

			(void)n; /* EAGAIN: someone else drained it; nothing to do */
		}
		for (i = 0; i < h->n_nets; i++)
			if (h->pfds[i + 1].revents != 0)
				rx_net(h, &h->nets[i]);
	}
	return NULL;
}

/* ---- setup and teardown ---------------------------------------------------------- */

/* Raw bytes of the key file into h->key. 0, MR_ECONFIG (size) or -errno. */
static int
read_key(struct hb *h, const char *path, char *err, size_t err_len)
{
	uint8_t buf[HB_KEY_MAX_BYTES + 1];
	size_t len = 0;
	struct stat st;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		r = -errno;
		mr_set_err(err, err_len, "key file %s: %s", path, mr_strerror(r));
		return r;
	}
	if (fstat(fd, &st) == -1) {
		r = -errno;
		mr_set_err(err, err_len, "key file %s: %s", path, mr_strerror(r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = MR_ECONFIG;
		mr_set_err(err, err_len, "key file %s: not a regular file", path);
		goto out;
	}
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = -errno;
			mr_set_err(err, err_len, "key file %s: %s", path, mr_strerror(r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len < HB_KEY_MIN_BYTES) {
		r = MR_ECONFIG;
		mr_set_err(err, err_len, "key file %s: %zu bytes, at least %d needed", path, len,
		        HB_KEY_MIN_BYTES);
		goto out;
	}
	if (len > HB_KEY_MAX_BYTES) {
		r = MR_ECONFIG;
		mr_set_err(err, err_len, "key file %s: %jd bytes, at most %d allowed", path,
		        (intmax_t)(st.st_size > (off_t)len ? st.st_size : (off_t)len),
		        HB_KEY_MAX_BYTES);
		goto out;
	}
	memcpy(h->key, buf, len);
	h->key_len = len;
	r = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	(void)close(fd);
	return r;
}

/* One UDP socket for network n, bound to our address of that network. */
static int
open_net(struct hb_net *n, char *err, size_t err_len)
{
	int fd, r, on = 1, tos = HB_TOS;
	int family = n->local.ss_family;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd == -1) {
		r = -errno;
		mr_set_err(err, err_len, "socket for %s: %s", n->local_str, mr_strerror(r));
		return r;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1) {
		r = -errno;
		mr_set_err(err, err_len, "SO_REUSEADDR on %s: %s", n->local_str, mr_strerror(r));
		goto err_close;
	}
	if (family == AF_INET6) {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos)) == -1) {
			r = -errno;
			mr_set_err(err, err_len, "IPv6 options on %s: %s", n->local_str,
			        mr_strerror(r));
			goto err_close;
		}
	} else if (setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)) == -1) {
		r = -errno;
		mr_set_err(err, err_len, "IP_TOS on %s: %s", n->local_str, mr_strerror(r));
		goto err_close;
	}
	if (bind(fd, (const struct sockaddr *)&n->local, conf_sa_len(&n->local)) == -1) {
		r = -errno;
		mr_set_err(err, err_len, "bind %s: %s", n->local_str, mr_strerror(r));
		goto err_close;
	}
	n->fd = fd;
	return 0;

err_close:
	(void)close(fd);
	return r;
}

/* Close the descriptors; the thread is not running. */
static void
close_fds(struct hb *h)
{
	size_t i;

	for (i = 0; i < h->n_nets; i++) {
		if (h->nets[i].fd != -1)
			(void)close(h->nets[i].fd);
		h->nets[i].fd = -1;
	}
	if (h->wake_fd != -1)
		(void)close(h->wake_fd);
	h->wake_fd = -1;
}

/* Free h without its uv_async (never initialised, or closed). */
static void
hb_free(struct hb *h, bool mutex_init)
{
	close_fds(h);
	if (mutex_init)
		MR_BUG_ON(pthread_mutex_destroy(&h->lock) != 0);
	OPENSSL_cleanse(h->key, sizeof(h->key));
	mr_free(&h->nets);
	mr_free(&h->pfds);
	free(h);
}

static void
async_close_cb(uv_handle_t *handle)
{
	hb_free(handle->data, true);
}

/* See hb.h. Loop thread. On failure nothing is left running; when the
 * failure came after the uv_async was set up (thread creation), the memory is
 * freed by its close callback on the next loop iteration. */
int
hb_start(uv_loop_t *loop, const struct cluster_conf *conf, int self_idx, const char *module,
         const char *key_file, const struct hb_info *info, const struct hb_cbs *cbs, void *ctx,
         struct hb **out, char *err, size_t err_len)
{
	sigset_t all, old;
	struct hb *h;
	size_t i;
	int r;

	*out = NULL;
	if (self_idx < 0 || self_idx >= CONF_NODES || conf->heart.n_hbs == 0 ||
	    conf->heart.n_hbs > UINT8_MAX || module == NULL || strlen(module) > HB_MODULE_BYTES) {
		mr_set_err(err, err_len, "heartbeat: invalid arguments (node index %d, %zu networks)",
		        self_idx, conf->heart.n_hbs);
		return -EINVAL;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	h->wake_fd = -1;
	h->loop = loop;
	if (cbs != NULL)
		h->cbs = *cbs;
	h->ctx = ctx;
	h->self_idx = self_idx;
	h->peer_idx = 1 - self_idx;
	(void)mr_strlcpy(h->module, module, sizeof(h->module));
	h->pulse_ms = conf->heart.pulse_ms;
	h->timeout_ms = conf->heart.timeout_ms;
	h->local = *info;
	h->n_nets = conf->heart.n_hbs;
	h->nets = calloc(h->n_nets, sizeof(*h->nets));
	h->pfds = calloc(h->n_nets + 1, sizeof(*h->pfds));
	if (h->nets == NULL || h->pfds == NULL) {
		r = -ENOMEM;
		goto err_free;
	}
	for (i = 0; i < h->n_nets; i++)
		h->nets[i].fd = -1;

	r = read_key(h, key_file, err, err_len);
	if (r < 0)
		goto err_free;

	for (i = 0; i < h->n_nets; i++) {
		const struct conf_heartbeat *c = &conf->heart.hbs[i];
		struct hb_net *n = &h->nets[i];

		n->conf = c;
		n->idx = i;
		n->pulse_ms = c->pulse_ms != 0 ? c->pulse_ms : conf->heart.pulse_ms;
		n->timeout_ms = c->timeout_ms != 0 ? c->timeout_ms : conf->heart.timeout_ms;
		if (n->pulse_ms == 0 || n->timeout_ms == 0) {
			r = MR_ECONFIG;
			mr_set_err(err, err_len, "heartbeat %s: pulse and timeout must be set",
			        c->name);
			goto err_free;
		}
		if (n->timeout_ms > h->first_timeout_ms)
			h->first_timeout_ms = n->timeout_ms;
		n->local = c->servers[h->self_idx].addr;
		n->peer = c->servers[h->peer_idx].addr;
		conf_sa_set_port(&n->local, conf->heart.port);
		conf_sa_set_port(&n->peer, conf->heart.port);
		conf_sa_str(&n->local, n->local_str, sizeof(n->local_str));
		conf_sa_str(&n->peer, n->peer_str, sizeof(n->peer_str));
		if (n->local.ss_family != n->peer.ss_family ||
		    (n->local.ss_family != AF_INET && n->local.ss_family != AF_INET6)) {
			r = MR_ECONFIG;
			mr_set_err(err, err_len, "heartbeat %s: %s and %s are not of one family",
			        c->name, n->local_str, n->peer_str);
			goto err_free;
		}
		r = open_net(n, err, err_len);
		if (r < 0)
			goto err_free;
		h->pfds[i + 1] = (struct pollfd){ .fd = n->fd, .events = POLLIN };
	}

	h->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->wake_fd == -1) {
		r = -errno;
		mr_set_err(err, err_len, "eventfd: %s", mr_strerror(r));
		goto err_free;
	}
	h->pfds[0] = (struct pollfd){ .fd = h->wake_fd, .events = POLLIN };
	r = -pthread_mutex_init(&h->lock, NULL);
	if (r < 0) {
		mr_set_err(err, err_len, "mutex: %s", mr_strerror(r));
		goto err_free;
	}
	r = uv_async_init(loop, &h->async, async_cb);
	if (r < 0) {
		mr_set_err(err, err_len, "uv_async_init: %s", mr_strerror(r));
		hb_free(h, true);
		return r;
	}
	h->async.data = h;
	h->epoch = mr_clock_us(CLOCK_REALTIME);

	/* The thread inherits a mask with every signal blocked: signals go to
	 * the loop thread (uv_signal) and never interrupt a heartbeat. */
	MR_BUG_ON(sigfillset(&all) == -1);
	MR_BUG_ON(pthread_sigmask(SIG_SETMASK, &all, &old) != 0);
	r = -pthread_create(&h->thread, NULL, hb_thread, h);
	MR_BUG_ON(pthread_sigmask(SIG_SETMASK, &old, NULL) != 0);
	if (r < 0) {
		mr_set_err(err, err_len, "heartbeat thread: %s", mr_strerror(r));
		close_fds(h);
		uv_close((uv_handle_t *)&h->async, async_close_cb);
		return r;
	}
	(void)pthread_setname_np(h->thread, "mr-hb");
	*out = h;
	return 0;

err_free:
	hb_free(h, false);
	return r;
}

/* See hb.h. Any thread. */
void
hb_set_local(struct hb *h, const struct hb_info *info)
{
	MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
	h->local = *info;
	h->send_now = true;
	MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);
	wake(h);
}

/* See hb.h. Any thread. */
bool
hb_peer_alive(struct hb *h)
{
	bool alive;

	MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
	alive = h->peer_alive;
	MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);
	return alive;
}

static json_t *
jint(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* See hb.h. Loop thread (any thread would do: it only takes the lock). */
void
hb_status(struct hb *h, json_t *result)
{
	json_t *o, *nets, *n;
	uint64_t now = mr_now_ms();
	size_t i;

	if (h == NULL || result == NULL)
		return;
	o = json_object();
	nets = json_array();
	if (o == NULL || nets == NULL) {
		json_decref(o);
		json_decref(nets);
		return;
	}
	MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
	(void)json_object_set_new(o, "pulse_ms", jint(h->pulse_ms));
	(void)json_object_set_new(o, "timeout_ms", jint(h->timeout_ms));
	(void)json_object_set_new(o, "peer_alive", json_boolean(h->peer_alive));
	for (i = 0; i < h->n_nets; i++) {
		const struct hb_net *hn = &h->nets[i];

		n = json_object();
		if (n == NULL)
			continue;
		(void)json_object_set_new(n, "name", json_string(hn->conf->name));
		(void)json_object_set_new(n, "ident", json_string(hn->conf->ident));
		(void)json_object_set_new(n, "local", json_string(hn->local_str));
		(void)json_object_set_new(n, "peer", json_string(hn->peer_str));
		(void)json_object_set_new(n, "up", json_boolean(hn->up));
		(void)json_object_set_new(
		        n, "last_rx_ms_ago",
		        hn->heard ? jint(now >= hn->last_rx_ms ? now - hn->last_rx_ms : 0)
		                  : json_null());
		(void)json_object_set_new(n, "rx", jint(hn->rx));
		(void)json_object_set_new(n, "tx", jint(hn->tx));
		(void)json_object_set_new(n, "tx_errors", jint(hn->tx_errors));
		(void)json_object_set_new(n, "dropped_bad_mac", jint(hn->dropped[HB_DROP_BAD_MAC]));
		(void)json_object_set_new(n, "dropped_replay", jint(hn->dropped[HB_DROP_REPLAY]));
		(void)json_object_set_new(n, "dropped_other", jint(hn->dropped[HB_DROP_OTHER]));
		(void)json_array_append_new(nets, n);
	}
	MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);
	(void)json_object_set_new(o, "networks", nets);
	(void)json_object_set_new(result, "heartbeat", o);
}

/* See hb.h. Wakes the thread and joins it (it exits at once: it never blocks
 * but in poll(), which the wake-up ends), closes the sockets, then closes the
 * uv_async; h is freed from its close callback, so the caller keeps running
 * the loop. No callback is called once this was called. Loop thread. */
void
hb_stop(struct hb *h)
{
	if (h == NULL || h->stopping)
		return;
	h->stopping = true;
	MR_BUG_ON(pthread_mutex_lock(&h->lock) != 0);
	h->stop = true;
	MR_BUG_ON(pthread_mutex_unlock(&h->lock) != 0);
	wake(h);
	MR_BUG_ON(pthread_join(h->thread, NULL) != 0);
	close_fds(h);
	uv_close((uv_handle_t *)&h->async, async_close_cb);
}
