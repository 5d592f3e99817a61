/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hb.h - heartbeats: authenticated UDP datagrams exchanged by the two nodes on
 * every <heartbeat> network, every pulse, on a thread of their own so that
 * they never wait behind replication traffic, disk I/O or the loop thread.
 *
 * Each datagram carries the sender's node index, module state, readiness,
 * uptodate, data generation, config hash and flags, plus (epoch, seq) for
 * replay protection, authenticated by HMAC-SHA256 under the [heartbeat]
 * key_file. A datagram with a bad MAC, from an unknown address, for another
 * module, or with (epoch, seq) not above the last accepted one is dropped and
 * counted (and logged, rate-limited).
 *
 * The peer is "lost" when no valid heartbeat arrived on any network for the
 * timeout (per network: <heartbeat timeout>, default <heart timeout>). Events
 * reach the loop thread through a uv_async: on_peer (peer info changed or
 * first heard), on_net (one network went up/down), on_lost (all networks
 * silent for timeout). Everything else: any thread (hb_set_local takes a lock).
 */
#ifndef MR_HB_H
#define MR_HB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "conf.h"

#define HB_KEY_MIN_BYTES 16
#define HB_KEY_MAX_BYTES 256
#define HB_MAC_BYTES     32
/* Fixed size of a heartbeat datagram: 128 bytes of header and body (the
 * fields take 99, the rest is zero) followed by the 32-byte MAC. The layout
 * is in the block comment at the top of hb.c. (Was 128 in total, which could
 * not hold the 99 bytes of fields plus the MAC.) */
#define HB_WIRE_BYTES    160
#define HB_BODY_BYTES    (HB_WIRE_BYTES - HB_MAC_BYTES) /* what the MAC covers */
#define HB_VERSION       2
#define HB_MAGIC         "HMHB" /* 4 bytes on the wire, no NUL */

/* Flags carried in a heartbeat. */
#define HB_F_FAILOVER   0x01u /* failover is on at the sender */
#define HB_F_HANDOVER   0x04u /* the sender asks the peer to take over (swap/stop) */
#define HB_F_SPLITBRAIN 0x10u /* the sender sees a split brain */
#define HB_F_LASTPRIM   0x20u /* the sender was primary last (election tie-break) */
#define HB_F_EXACT      0x40u /* the sender's copy is exactly its generation as
                               * mirrored: no change of its own (see dirty.h) */
#define HB_F_COUNTED    0x80u /* changed_files is exact (the dirty set is trusted) */

/* What a node says about itself. */
struct hb_info {
	uint8_t state;     /* enum mrd_state */
	uint8_t readiness; /* enum mrd_readiness */
	bool uptodate;
	uint8_t flags;         /* HB_F_* */
	uint64_t gen_seq;      /* data generation: count of generations (0 = no history) */
	uint64_t gen_id;       /* data generation: random id of the current one */
	uint64_t handover_seq; /* with HB_F_HANDOVER: the last replicated seq */
	uint8_t config_hash[16];
	uint32_t changed_files; /* files in the dirty set (split-brain policy, status) */
};

/* One decoded and verified heartbeat (pure codec, for tests and fuzzing). */
struct hb_msg {
	uint8_t node_idx; /* 0 or 1: index in cluster_conf.nodes */
	uint8_t net_idx;  /* index of the <heartbeat> network it was sent on */
	char module[33];
	uint64_t epoch; /* sender's start time, CLOCK_REALTIME in microseconds */
	uint64_t seq;   /* per-sender counter, starts at 1 for each epoch */
	struct hb_info info;
};

/* Encode m into buf (HB_WIRE_BYTES) and MAC it with key. Returns HB_WIRE_BYTES
 * or -EINVAL (module name too long, key too short). Pure. */
int hb_encode(const struct hb_msg *m, const uint8_t *key, size_t key_len, uint8_t *buf,
              size_t buf_len);

/* Verify and decode. Returns 0, -EBADMSG (wrong size, magic or version, or
 * an authenticated datagram whose reserved bytes, uptodate or module padding
 * are not as hb_encode() writes them), -EPERM (bad MAC), -EINVAL (key
 * shorter than HB_KEY_MIN_BYTES or longer than HB_KEY_MAX_BYTES).
 * Constant-time MAC compare. Pure. */
int hb_decode(const uint8_t *buf, size_t len, const uint8_t *key, size_t key_len,
              struct hb_msg *out);

/* Replay window: accept only (epoch, seq) strictly above the last accepted
 * pair, lexicographically. Returns true (and records it) or false. Pure. */
struct hb_replay {
	uint64_t epoch;
	uint64_t seq;
};
bool hb_replay_accept(struct hb_replay *r, uint64_t epoch, uint64_t seq);

struct hb_cbs {
	/* The peer's info, when first heard, whenever any field changes, and at
	 * least once per second while heard. */
	void (*on_peer)(void *ctx, const struct hb_info *peer);
	/* Network net_idx changed: up = a valid heartbeat within its timeout. */
	void (*on_net)(void *ctx, size_t net_idx, bool up);
	/* No valid heartbeat on any network for the timeout: the peer is lost.
	 * Called once per loss; on_peer is called again when it returns. Also
	 * called once when the peer was never heard in the first timeout after
	 * hb_start() (the longest network timeout), so a starting node need
	 * not keep a timer of its own to stop waiting for its peer. */
	void (*on_lost)(void *ctx);
};

struct hb;

/* Read the key file (raw bytes; HB_KEY_MIN_BYTES..HB_KEY_MAX_BYTES; trailing
 * newline kept as is), open one UDP socket per <heartbeat> network bound to
 * this node's address and <heart port>, and start the thread. The first
 * datagrams carry info. Returns 0 and *out, or -errno / MR_ECONFIG with the
 * reason in err (e.g. "key file /x: 8 bytes, at least 16 needed",
 * "bind 198.18.0.1:9200: Address already in use"). Loop thread. */
int hb_start(uv_loop_t *loop, const struct cluster_conf *conf, int self_idx, const char *module,
             const char *key_file, const struct hb_info *info, const struct hb_cbs *cbs, void *ctx,
             struct hb **out, char *err, size_t err_len);

/* Replace what this node says; sent at once on every network (a state change
 * reaches the peer without waiting for the next pulse), then every pulse.
 * Any thread. */
void hb_set_local(struct hb *h, const struct hb_info *info);

/* Is the peer currently heard on any network? Any thread. */
bool hb_peer_alive(struct hb *h);

/* Add "heartbeat": { "pulse_ms", "timeout_ms", "peer_alive", "networks": [ {
 * "name", "ident", "local", "peer", "up", "last_rx_ms_ago" (or null), "rx",
 * "tx", "tx_errors", "dropped_bad_mac", "dropped_replay", "dropped_other" } ] }
 * to result. "local" and "peer" are "ip:port" ("[ip6]:port").
 * Loop thread. */
void hb_status(struct hb *h, json_t *result);

/* Stop the thread, close sockets; frees itself once the libuv handles are
 * closed. Accepts NULL. Loop thread. */
void hb_stop(struct hb *h);

#endif
