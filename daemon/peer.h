/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * peer.h - the replication link: one TLS 1.3 connection per module between the
 * two mirrord, mutually authenticated against the cluster CA, carrying
 * proto.h frames. Loop thread only.
 *
 * Who connects: nodes[0] of userconfig.xml connects to nodes[1], which
 * listens on <rfs port> at its address of the replication network (the
 * heartbeat with ident="flow", else the first one). The connecting side
 * retries with exponential backoff (100 ms doubling to 5 s); the listening
 * side accepts one link at a time (a second is refused while one is up).
 *
 * Link life: TCP connect/accept -> TLS 1.3 handshake (peer certificate must
 * chain to [tls] ca and name the peer node: SAN DNS or CN) -> both sides send
 * HELLO -> check_hello() on the peer's HELLO (a refusal sends REFUSE with the
 * reason and drops the link; the peer logs it) -> on_up() -> frames flow:
 * on_msg() for each decoded message -> on_down() when the link is lost for
 * any reason (then reconnect/accept again, with backoff).
 * Keepalive: a PING every 1 s when idle; no frame received for
 * PEER_DEAD_MS (5 s) drops the link. TCP keepalive and TCP_NODELAY are on.
 * Any malformed frame drops the link with a log line naming why.
 */
#ifndef MR_PEER_H
#define MR_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct mrd;
struct peer;

struct peer_cbs {
	/* Fill the HELLO this node sends (version, role, node, module, hash,
	 * generation, last_seq). Strings must stay valid until on_up/on_down. */
	void (*make_hello)(void *ctx, struct proto_hello *h);
	/* Check the peer's HELLO (version, module, node and config hash are
	 * already checked by peer.c). Return 0 to accept, or an enum
	 * proto_refuse_code with a reason in why. */
	int (*check_hello)(void *ctx, const struct proto_hello *h, char *why, size_t why_len);
	/* The link is up and both HELLOs were accepted. */
	void (*on_up)(void *ctx, const struct proto_hello *peer_hello);
	/* One decoded OP, ACK, REFUSE... (PING/PONG are handled inside). Strings
	 * and data point into a buffer valid only during the call. */
	void (*on_msg)(void *ctx, const struct proto_msg *msg);
	/* The link that was up (on_up was called) is gone; reason for logs. */
	void (*on_down)(void *ctx, const char *reason);
	/* The write queue drained below PEER_LOW_WATER bytes (flow control). */
	void (*on_writable)(void *ctx);
};

#define PEER_HIGH_WATER (8u << 20) /* peer_send() past this: caller should wait */
#define PEER_LOW_WATER  (2u << 20)
#define PEER_DEAD_MS    5000u

/* Create the TLS context from m->node ([tls] ca, cert, key: the key must be
 * owned by root and not readable by group or others) and start listening or
 * connecting. Returns 0 and *out, or -errno / MR_ECONFIG with the reason
 * logged (for example a bad certificate). */
int peer_start(struct mrd *m, const struct peer_cbs *cbs, void *ctx, struct peer **out);

/* Queue one message on the link (encoded into TLS records). Returns 0,
 * -ENOTCONN when the link is not up, or -ENOMEM. Loop thread. */
int peer_send(struct peer *p, const struct proto_msg *msg);

/* In on_msg only: take over the heap block that holds the message being
 * delivered (free() it when done with the message's pointers), or NULL
 * when it lies in the shared receive buffer (then it is valid only during
 * on_msg). Large frames (PEER_BIG_FRAME) get a block of their own, placed
 * so that an op's data starts on a 4 KiB boundary (for O_DIRECT). */
void *peer_take_frame(struct peer *p);

/* Bytes queued but not yet written to the socket. */
size_t peer_queued_bytes(const struct peer *p);

bool peer_is_up(const struct peer *p);

/* Drop the link now (logging reason); it will be re-established later. */
void peer_drop(struct peer *p, const char *reason);

/* The peer's heartbeat says it changed state (it may listen now): the
 * connecting side tries at once instead of after its backoff delay. */
void peer_kick(struct peer *p);

/* Close everything; frees itself once libuv handles are closed. Accepts NULL. */
void peer_stop(struct peer *p);

#endif
