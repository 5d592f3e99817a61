/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * peer.c - the replication link between the two mirrord of a module: TCP
 * connect/accept with libuv, TLS 1.3 through tls.c's byte-in/byte-out engine,
 * frame reassembly with proto.c, the HELLO/REFUSE handshake, keepalive.
 *
 * Does NOT interpret OP/ACK frames (the engine does, through peer_cbs) and
 * does not decide roles. Loop thread only.
 *
 * Invariants: at most one link (p->link) at a time; every struct peer_conn
 * embeds its uv_tcp_t and keepalive timer and is freed only from the last
 * close callback; struct peer is freed once peer_stop() was called, its own
 * handles are closed and no connection object is left. on_down() is called
 * exactly once for each on_up().
 */
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "conf.h"
#include "err.h"
#include "log.h"
#include "mrd.h"
#include "tls.h"
#include "util.h"

/*
 * Life of one connection (struct peer_conn), both roles:
 *
 *   CONNECTING --tcp connected--> TLS --handshake done, HELLO sent--> HELLO
 *   HELLO --peer HELLO accepted: on_up()--> UP
 *   any state --error, EOF, silence, REFUSE, peer_drop(), peer_stop()--> dropped
 *
 * Accepted sockets start in TLS. "dropped" is not a state of its own: the
 * connection stops being p->link (on_down() if it was UP, reconnect timer
 * on the connecting side), and its handles are closed, at once or, after we
 * sent a REFUSE, once that frame has left (finishing, at most
 * PEER_FINISH_MS). Before UP only HELLO and REFUSE frames are accepted.
 * The keepalive tick runs in every state: nothing received for PEER_DEAD_MS
 * (TCP connect and TLS handshake included) drops the connection, and an UP
 * link sends a PING when it sent nothing for PEER_PING_MS.
 */

#define PEER_BACKOFF_MIN_MS 100u
#define PEER_BACKOFF_MAX_MS 5000u
#define PEER_PING_MS        1000u
#define PEER_TICK_MS        250u
#define PEER_FINISH_MS      2000u  /* how long a REFUSE may take to leave */
#define PEER_FAIL_LOG_MS    10000u /* same failure logged at most this often */
#define PEER_READ_CHUNK     16384u
#define PEER_SPLIT_MIN      16384u /* op data at least this big is not copied into the frame */
#define PEER_BIG_FRAME      (256u << 10) /* frames this big are read into a block of their own */
#define PEER_COALESCE_MAX   (256u << 10) /* small frames share one write up to this */
#define PEER_DATA_ALIGN     4096u
#define PEER_RBUF_MAX       (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD + PEER_READ_CHUNK)
#define PEER_ADDR_LEN       64

enum conn_state {
	CONN_CONNECTING = 0, /* client: TCP connect in progress */
	CONN_TLS,            /* TLS handshake */
	CONN_HELLO,          /* our HELLO sent, waiting for the peer's */
	CONN_UP,             /* both HELLOs accepted; on_up() called */
};

struct peer_conn {
	struct peer *p; /* borrowed: the owner */
	struct peer_conn *next;
	uv_tcp_t tcp;
	uv_timer_t tick;
	uv_connect_t creq;
	struct tls_conn tls;
	enum conn_state state;
	char addr[PEER_ADDR_LEN];    /* remote "ip:port" */
	char who[PEER_ADDR_LEN + 8]; /* "peer=ip:port", for fail_log() */
	uint8_t *rbuf;               /* decrypted bytes not yet parsed into frames */
	size_t rlen;
	size_t rcap;
	uint8_t *big;       /* owned, or NULL: the block a large frame is read into */
	uint8_t *big_frame; /* where in big the frame (header first) starts */
	size_t big_len;     /* the whole frame */
	size_t big_have;
	size_t queued_bytes; /* handed to uv_write, completion not yet reported */
	unsigned pending_writes;
	uint64_t last_rx_ms;
	uint64_t last_tx_ms;
	uint64_t finish_ms;
	uint64_t ping_token;
	int pending_closes;
	bool flush_due; /* TLS output left for flush_cb() */
	bool dropped;   /* no longer p->link; on_down() done if it was up */
	bool logged;    /* why it ends was already logged (else conn_drop() says it) */
	bool finishing; /* dropped, closing once the queued writes are out */
	bool closing;   /* uv_close() called on both handles */
};

struct peer_wreq {
	uv_write_t req;
	struct peer_conn *c;
	size_t len;
	uint8_t *data; /* owned: records taken over from the TLS engine */
};

struct peer {
	struct mrd *m; /* borrowed */
	const struct peer_cbs *cbs;
	void *ctx;
	SSL_CTX *ssl_ctx;               /* owned */
	bool client;                    /* nodes[0]: we connect */
	const char *peer_name;          /* borrowed: owned by conf */
	struct sockaddr_storage local;  /* server: listen address; client: source */
	struct sockaddr_storage remote; /* client: where to connect; server: expected peer */
	char local_str[PEER_ADDR_LEN];
	char remote_str[PEER_ADDR_LEN];
	uv_tcp_t listener; /* server only */
	uv_timer_t retry;  /* client only: next connect attempt */
	uv_prepare_t flush; /* writes what conn_send() left, before the loop polls */
	bool listener_init;
	bool retry_init;
	bool flush_init;
	struct peer_conn *link;  /* the connection being set up or up, or NULL */
	struct peer_conn *conns; /* every connection object still allocated */
	uint32_t backoff_ms;
	bool above_high; /* queued bytes went past PEER_HIGH_WATER */
	bool stopping;
	int pending_closes; /* listener, retry, flush */
	void *cur_block;    /* the block of the frame in on_msg, for peer_take_frame() */
	uint8_t *scratch;   /* frame encoding buffer */
	size_t scratch_cap;
	char inbuf[262144]; /* libuv reads here; consumed at once (fewer syscalls for bulk) */
	struct {
		char key[512]; /* "what|reason" */
		struct log_rl rl;
	} fails[4]; /* recent distinct failures, for fail_log() */
};

static void conn_pump(struct peer_conn *c);
static int conn_flush(struct peer_conn *c);

/* ---- small helpers --------------------------------------------------------- */

static void
hex16(const uint8_t h[16], char out[33])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 16; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 15];
	}
	out[32] = '\0';
}

static bool
str_eq(const struct proto_str *s, const char *c)
{
	size_t len = strlen(c);

	return s->len == len && (len == 0 || memcmp(s->p, c, len) == 0);
}

/* Failures that repeat on every reconnect or that a remote host can trigger
 * at will: a new reason is always logged, the same one at most every
 * PEER_FAIL_LOG_MS (with the count of lines suppressed). Logs
 * "peer: WHAT WHO reason="..."", WHO being key=value words. */
static void fail_log(struct peer *p, enum log_level level, const char *what, const char *who,
                     const char *fmt, ...) MR_PRINTF(5, 6);

static void
fail_log(struct peer *p, enum log_level level, const char *what, const char *who, const char *fmt,
         ...)
{
	char reason[400], key[sizeof(p->fails[0].key)];
	size_t i, slot = 0;
	uint32_t sup = 0;
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	(void)snprintf(key, sizeof(key), "%s|%s", what, reason);
	for (i = 0; i < ARRAY_SIZE(p->fails); i++) {
		if (strcmp(p->fails[i].key, key) == 0)
			break;
		if (p->fails[i].rl.last_ms < p->fails[slot].rl.last_ms)
			slot = i;
	}
	if (i == ARRAY_SIZE(p->fails)) {
		/* new reason: always logged; takes the least recently used slot */
		(void)mr_strlcpy(p->fails[slot].key, key, sizeof(p->fails[slot].key));
		p->fails[slot].rl = (struct log_rl){ .last_ms = mr_now_ms() };
	} else if (!log_rl_allow(&p->fails[i].rl, PEER_FAIL_LOG_MS, &sup)) {
		return;
	}
	if (sup > 0)
		log_msg(level, "peer: %s %s reason=\"%s\" (suppressed=%u)", what, who, reason, sup);
	else
		log_msg(level, "peer: %s %s reason=\"%s\"", what, who, reason);
}

/* ---- freeing ---------------------------------------------------------------- */

static void
peer_maybe_free(struct peer *p)
{
	if (!p->stopping || p->pending_closes > 0 || p->conns != NULL)
		return;
	SSL_CTX_free(p->ssl_ctx);
	mr_free(&p->scratch);
	free(p);
}

static void
peer_handle_close_cb(uv_handle_t *h)
{
	struct peer *p = h->data;

	p->pending_closes--;
	peer_maybe_free(p);
}

static void
conn_close_cb(uv_handle_t *h)
{
	struct peer_conn *c = h->data;
	struct peer *p = c->p;
	struct peer_conn **pp;

	if (--c->pending_closes > 0)
		return;
	for (pp = &p->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	tls_conn_done(&c->tls);
	mr_free(&c->rbuf);
	mr_free(&c->big);
	free(c);
	peer_maybe_free(p);
}

/* Close both handles; the object goes away in the last close callback.
 * Pending writes and a pending connect complete with UV_ECANCELED first. */
static void
conn_close(struct peer_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->pending_closes = 2;
	uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
	uv_close((uv_handle_t *)&c->tick, conn_close_cb);
}

/* ---- reconnecting ----------------------------------------------------------- */

static void client_connect(struct peer *p);

static void
retry_cb(uv_timer_t *t)
{
	client_connect(t->data);
}

static void
schedule_retry(struct peer *p)
{
	if (p->stopping || !p->client)
		return;
	uv_timer_stop(&p->retry);
	MR_BUG_ON(uv_timer_start(&p->retry, retry_cb, p->backoff_ms, 0) != 0);
	p->backoff_ms =
	        p->backoff_ms * 2 > PEER_BACKOFF_MAX_MS ? PEER_BACKOFF_MAX_MS : p->backoff_ms * 2;
}

/* The connection stops being the link: log, on_down() if it was up, plan a
 * reconnect. graceful: close only once queued writes (a REFUSE) are out. */
static void
conn_drop(struct peer_conn *c, const char *reason, bool graceful)
{
	struct peer *p = c->p;
	bool was_up = c->state == CONN_UP;

	if (c->dropped)
		return;
	if (c->flush_due)
		(void)conn_flush(c); /* what was sent last still leaves, as far as it can */
	c->dropped = true;
	(void)uv_read_stop((uv_stream_t *)&c->tcp);
	if (graceful && c->pending_writes > 0 && !c->closing) {
		c->finishing = true;
		c->finish_ms = mr_now_ms();
	} else {
		conn_close(c);
	}
	if (p->link != c)
		return;
	p->link = NULL;
	p->above_high = false;
	if (was_up)
		log_notice("peer: link down peer=%s addr=%s reason=\"%s\"", p->peer_name, c->addr,
		           reason);
	else if (c->state == CONN_CONNECTING)
		log_debug("peer: connect attempt ended addr=%s reason=\"%s\"", c->addr, reason);
	else if (!c->logged)
		fail_log(p, LOG_LVL_INFO, "connection closed before link up", c->who, "%s", reason);
	schedule_retry(p);
	if (was_up && p->cbs->on_down != NULL)
		p->cbs->on_down(p->ctx, reason);
}

/* ---- writing ---------------------------------------------------------------- */

static void
write_cb(uv_write_t *req, int status)
{
	struct peer_wreq *w = (struct peer_wreq *)req;
	struct peer_conn *c = w->c;
	struct peer *p = c->p;
	char why[128];

	c->queued_bytes -= w->len;
	c->pending_writes--;
	free(w->data);
	free(w);
	if (status < 0) {
		if (!c->closing) {
			(void)snprintf(why, sizeof(why), "write error: %s", mr_strerror(status));
			conn_drop(c, why, false);
			conn_close(c);
		}
		return;
	}
	if (c->finishing && c->pending_writes == 0) {
		conn_close(c);
		return;
	}
	if (p->link == c && p->above_high && c->queued_bytes < PEER_LOW_WATER) {
		p->above_high = false;
		if (p->cbs->on_writable != NULL)
			p->cbs->on_writable(p->ctx);
	}
}

/* Hand what TLS produced to one uv_write request: the request takes the
 * engine's buffer over, nothing is copied. */
static int
conn_flush(struct peer_conn *c)
{
	struct peer_wreq *w;
	uv_buf_t buf;
	int r;

	c->flush_due = false;
	if (tls_out_pending(&c->tls) == 0 || c->closing)
		return 0;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	w->c = c;
	w->data = tls_out_detach(&c->tls, &w->len);
	buf = uv_buf_init((char *)w->data, (unsigned)w->len);
	r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, write_cb);
	if (r < 0) {
		free(w->data);
		free(w);
		return r;
	}
	c->queued_bytes += w->len;
	c->pending_writes++;
	if (c->queued_bytes >= PEER_HIGH_WATER && c->p->link == c)
		c->p->above_high = true;
	return 0;
}

/* Before the loop polls: write the TLS output conn_send() left pending. */
static void
flush_cb(uv_prepare_t *h)
{
	struct peer *p = h->data;
	struct peer_conn *c, *next;
	char why[96];
	int r;

	uv_prepare_stop(h);
	for (c = p->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->flush_due)
			continue;
		c->flush_due = false;
		r = conn_flush(c);
		if (r < 0 && !c->dropped) {
			(void)snprintf(why, sizeof(why), "write error: %s", mr_strerror(r));
			conn_drop(c, why, false);
		}
	}
}

/* Encode, encrypt and queue one frame. An op's bulk data is encrypted from
 * where it lies, not copied into the frame first. Returns 0, -ENOMEM, or
 * MR_EPROTO / MR_ETOOBIG when msg cannot be encoded, or the TLS / uv_write
 * error. */
static int
conn_send(struct peer_conn *c, const struct proto_msg *msg)
{
	struct peer *p = c->p;
	size_t len = proto_encoded_len(msg), tail_len;
	const uint8_t *tail;
	char why[160];
	long n;
	int r;

	if (c->closing || c->dropped)
		return -ENOTCONN;
	if (len == 0)
		return MR_EPROTO;
	if (len > p->scratch_cap) {
		uint8_t *nb = realloc(p->scratch, len);

		if (nb == NULL)
			return -ENOMEM;
		p->scratch = nb;
		p->scratch_cap = len;
	}
	n = proto_encode_split(msg, p->scratch, p->scratch_cap, PEER_SPLIT_MIN, &tail, &tail_len);
	if (n < 0)
		return (int)n;
	/* a large frame starts a buffer of its own (no regrowing copy) */
	if (tls_out_pending(&c->tls) + len > PEER_COALESCE_MAX && (r = conn_flush(c)) < 0)
		return r;
	r = tls_out_reserve(&c->tls, len);
	if (r == 0)
		r = tls_write(&c->tls, p->scratch, (size_t)n, why, sizeof(why));
	if (r == 0 && tail_len > 0)
		r = tls_write(&c->tls, tail, tail_len, why, sizeof(why));
	if (r < 0) {
		log_warn("peer: TLS write failed addr=%s reason=\"%s\"", c->addr,
		         r == -ENOMEM ? "out of memory" : why);
		return r;
	}
	/* what peer_queued_bytes() tells the sender: past the high mark, it
	 * waits for on_writable(), which write_cb() calls below the low mark */
	if (c->queued_bytes + tls_out_pending(&c->tls) >= PEER_HIGH_WATER && p->link == c)
		p->above_high = true;
	if ((msg->type != PROTO_OP && msg->type != PROTO_ACK) ||
	    tls_out_pending(&c->tls) >= PEER_COALESCE_MAX) {
		/* hashes, results, PONG... leave at once: the other side waits
		 * for them, and this loop may stay busy reading for a while */
		r = conn_flush(c);
		if (r < 0)
			return r;
	} else if (!c->flush_due) {
		/* the ops and acks of this loop iteration go out in one write */
		c->flush_due = true;
		if (p->flush_init)
			MR_BUG_ON(uv_prepare_start(&p->flush, flush_cb) != 0);
	}
	c->last_tx_ms = mr_now_ms();
	return 0;
}

/* How a REFUSE is logged on both sides: PROTO_REFUSE_RESYNC is part of the
 * normal course (the next pairing resyncs), every other code needs the admin. */
static enum log_level
refuse_level(uint16_t code)
{
	return code == PROTO_REFUSE_RESYNC ? LOG_LVL_NOTICE : LOG_LVL_ERR;
}

/* Send REFUSE (logged here; the peer logs its text) and drop. */
static void
conn_refuse(struct peer_conn *c, uint16_t code, const char *text)
{
	struct proto_msg msg = { .type = PROTO_REFUSE };
	size_t len = strlen(text);
	char why[320], who[160];

	(void)snprintf(who, sizeof(who), "peer=%s addr=%s code=%u", c->p->peer_name, c->addr,
	               (unsigned)code);
	c->logged = true;
	fail_log(c->p, refuse_level(code), "refusing link", who, "%s", text);
	msg.u.refuse.code = code;
	msg.u.refuse.text.p = text;
	msg.u.refuse.text.len = (uint16_t)(len < PROTO_MAX_STR - 1 ? len : PROTO_MAX_STR - 1);
	(void)conn_send(c, &msg);
	tls_shutdown(&c->tls);
	(void)conn_flush(c);
	(void)snprintf(why, sizeof(why), "refused: %s", text);
	conn_drop(c, why, true);
}

/* ---- the handshake ------------------------------------------------------------ */

static void
send_hello(struct peer_conn *c)
{
	struct peer *p = c->p;
	struct proto_msg msg = { .type = PROTO_HELLO };
	char why[128];
	int r;

	p->cbs->make_hello(p->ctx, &msg.u.hello);
	r = conn_send(c, &msg);
	if (r < 0) {
		(void)snprintf(why, sizeof(why), "cannot send HELLO: %s", mr_strerror(r));
		c->logged = true;
		log_err("peer: %s addr=%s", why, c->addr);
		conn_drop(c, why, false);
	}
}

static void
tls_established(struct peer_conn *c)
{
	log_debug("peer: TLS established addr=%s tls=%s cipher=%s", c->addr, tls_version(&c->tls),
	          tls_cipher(&c->tls));
	c->state = CONN_HELLO;
	send_hello(c);
}

/* The peer's HELLO, in state CONN_HELLO. */
static void
on_hello(struct peer_conn *c, const uint8_t *payload, uint32_t len)
{
	struct peer *p = c->p;
	struct mrd *m = p->m;
	struct proto_msg msg;
	const struct proto_hello *h = &msg.u.hello;
	char err[128], text[512], lh[33], ph[33];
	uint16_t version;
	int r;

	if (proto_hello_version(payload, len, &version) < 0) {
		conn_drop(c, "malformed HELLO: too short", false);
		return;
	}
	if (version != PROTO_VERSION) {
		(void)snprintf(text, sizeof(text),
		               "protocol version %u unsupported (this node speaks version %u)",
		               (unsigned)version, (unsigned)PROTO_VERSION);
		conn_refuse(c, PROTO_REFUSE_VERSION, text);
		return;
	}
	r = proto_decode(PROTO_HELLO, payload, len, &msg, err, sizeof(err));
	if (r < 0) {
		(void)snprintf(text, sizeof(text), "malformed HELLO: %s", err);
		c->logged = true;
		log_err("peer: %s addr=%s", text, c->addr);
		conn_drop(c, text, false);
		return;
	}
	if (!str_eq(&h->module, m->module)) {
		(void)snprintf(text, sizeof(text), "module differs: local %s peer %.*s", m->module,
		               (int)h->module.len, h->module.p);
		conn_refuse(c, PROTO_REFUSE_MODULE, text);
		return;
	}
	if (!str_eq(&h->node, p->peer_name)) {
		(void)snprintf(text, sizeof(text), "unexpected node %.*s (expected %s)",
		               (int)h->node.len, h->node.p, p->peer_name);
		conn_refuse(c, PROTO_REFUSE_NODE, text);
		return;
	}
	if (memcmp(h->config_hash, m->conf->hash, sizeof(h->config_hash)) != 0) {
		hex16(m->conf->hash, lh);
		hex16(h->config_hash, ph);
		(void)snprintf(text, sizeof(text),
		               "config hash differs: local %s (%s) peer %s; compare with "
		               "'mirrorctl config show %s' on both nodes",
		               lh, m->config_path, ph, m->config_path);
		conn_refuse(c, PROTO_REFUSE_CONFIG, text);
		return;
	}
	text[0] = '\0';
	r = p->cbs->check_hello != NULL ? p->cbs->check_hello(p->ctx, h, text, sizeof(text)) : 0;
	if (r != 0) {
		if (text[0] == '\0')
			(void)snprintf(text, sizeof(text), "refused by the replication engine");
		conn_refuse(c, (uint16_t)r, text);
		return;
	}
	c->state = CONN_UP;
	p->backoff_ms = PEER_BACKOFF_MIN_MS;
	memset(p->fails, 0, sizeof(p->fails));
	log_notice("peer: link up peer=%s addr=%s tls=%s cipher=%s side=%s", p->peer_name, c->addr,
	           tls_version(&c->tls), tls_cipher(&c->tls), p->client ? "client" : "server");
	if (p->cbs->on_up != NULL)
		p->cbs->on_up(p->ctx, h);
}

/* One whole frame. Returns with c->dropped set if the link must end. */
static void
dispatch(struct peer_conn *c, uint16_t type, const uint8_t *payload, uint32_t len)
{
	struct peer *p = c->p;
	struct proto_msg msg, reply = { .type = PROTO_PONG };
	char err[128], why[320], who[160];

	if (c->state != CONN_UP) {
		if (type == PROTO_HELLO) {
			on_hello(c, payload, len);
			return;
		}
		if (type != PROTO_REFUSE) {
			(void)snprintf(why, sizeof(why), "unexpected %s frame before HELLO",
			               proto_type_name(type));
			c->logged = true;
			log_err("peer: %s addr=%s", why, c->addr);
			conn_drop(c, why, false);
			return;
		}
	} else if (type == PROTO_HELLO) {
		log_err("peer: unexpected hello frame on an established link peer=%s",
		        p->peer_name);
		conn_drop(c, "unexpected hello frame on an established link", false);
		return;
	}
	if (proto_decode(type, payload, len, &msg, err, sizeof(err)) < 0) {
		(void)snprintf(why, sizeof(why), "malformed %s frame: %s", proto_type_name(type),
		               err);
		c->logged = true;
		log_err("peer: %s peer=%s addr=%s", why, p->peer_name, c->addr);
		conn_drop(c, why, false);
		return;
	}
	switch (type) {
	case PROTO_REFUSE:
		(void)snprintf(why, sizeof(why), "refused by peer: %.*s",
		               (int)msg.u.refuse.text.len, msg.u.refuse.text.p);
		(void)snprintf(who, sizeof(who), "peer=%s addr=%s code=%u", p->peer_name, c->addr,
		               (unsigned)msg.u.refuse.code);
		c->logged = true;
		fail_log(p, refuse_level(msg.u.refuse.code), "refused by peer", who, "%.*s",
		         (int)msg.u.refuse.text.len, msg.u.refuse.text.p);
		if (c->state == CONN_UP && p->cbs->on_msg != NULL)
			p->cbs->on_msg(p->ctx, &msg);
		conn_drop(c, why, false);
		return;
	case PROTO_PING:
		reply.u.ping.token = msg.u.ping.token;
		if (conn_send(c, &reply) < 0)
			conn_drop(c, "cannot answer PING", false);
		return;
	case PROTO_PONG:
		return;
	default:
		if (p->cbs->on_msg != NULL)
			p->cbs->on_msg(p->ctx, &msg);
		return;
	}
}

/* Deliver one frame that lies in its own block, which the receiver may
 * take over with peer_take_frame(); else it is freed here. */
static void
dispatch_block(struct peer_conn *c, uint16_t type, const uint8_t *payload, uint32_t len,
               void *block)
{
	struct peer *p = c->p;

	p->cur_block = block;
	dispatch(c, type, payload, len);
	free(p->cur_block);
	p->cur_block = NULL;
}

/* A large frame starts at rbuf + off with only part of it received: move
 * it to a block of its own and read the rest straight into it (one copy
 * less for the receiver, and for an op its data on a 4 KiB boundary).
 * Returns false (nothing changed) when the op's data offset is not known
 * yet or memory is short: the frame is then assembled in rbuf. */
static bool
big_start(struct peer_conn *c, size_t off, uint16_t type, uint32_t len)
{
	size_t have = c->rlen - off, doff = 0, pad;
	void *block;

	if (type == PROTO_OP) {
		doff = proto_op_data_off(c->rbuf + off + PROTO_HDR_LEN, have - PROTO_HDR_LEN);
		if (doff == 0)
			return false;
		if (doff > len)
			doff = 0; /* garbage: proto_decode() will say so */
	}
	pad = (PEER_DATA_ALIGN - (PROTO_HDR_LEN + doff) % PEER_DATA_ALIGN) % PEER_DATA_ALIGN;
	if (posix_memalign(&block, PEER_DATA_ALIGN, pad + PROTO_HDR_LEN + (size_t)len) != 0)
		return false;
	c->big = block;
	c->big_frame = c->big + pad;
	c->big_len = PROTO_HDR_LEN + (size_t)len;
	c->big_have = have;
	memcpy(c->big_frame, c->rbuf + off, have);
	c->rlen = off;
	return true;
}

/* Cut c->rbuf into frames and dispatch them. Stops when the link ends. */
static void
parse_frames(struct peer_conn *c)
{
	size_t off = 0;
	uint32_t len;
	uint16_t type;
	char err[128], why[200];

	while (!c->dropped && c->rlen - off >= PROTO_HDR_LEN) {
		if (proto_hdr_decode(c->rbuf + off, &type, &len, err, sizeof(err)) < 0) {
			(void)snprintf(why, sizeof(why), "malformed frame: %s", err);
			c->logged = true;
			log_err("peer: %s peer=%s addr=%s", why, c->p->peer_name, c->addr);
			conn_drop(c, why, false);
			return;
		}
		if (c->rlen - off - PROTO_HDR_LEN < len) {
			if (len >= PEER_BIG_FRAME && c->state == CONN_UP)
				(void)big_start(c, off, type, len); /* then c->rlen = off */
			break;
		}
		c->last_rx_ms = mr_now_ms();
		dispatch(c, type, c->rbuf + off + PROTO_HDR_LEN, len);
		off += PROTO_HDR_LEN + len;
	}
	if (c->dropped)
		return;
	if (off > 0) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
}

/* Read into the large frame's block; deliver it once complete. Returns the
 * byte count read, 0 when TLS needs more input, or < 0 as tls_read(). */
static long
big_read(struct peer_conn *c, char *why, size_t why_len)
{
	long n = tls_read(&c->tls, c->big_frame + c->big_have, c->big_len - c->big_have, why,
	                  why_len);
	uint32_t len;
	uint16_t type;
	void *block;

	if (n <= 0)
		return n;
	c->big_have += (size_t)n;
	if (c->big_have == c->big_len) {
		block = c->big;
		c->big = NULL;
		MR_BUG_ON(proto_hdr_decode(c->big_frame, &type, &len, why, why_len) < 0);
		c->last_rx_ms = mr_now_ms();
		dispatch_block(c, type, c->big_frame + PROTO_HDR_LEN, len, block);
	}
	return n;
}

static int
rbuf_reserve(struct peer_conn *c, size_t more)
{
	size_t want = c->rlen + more, cap;
	uint8_t *nb;

	if (want <= c->rcap)
		return 0;
	if (want > PEER_RBUF_MAX)
		return MR_ETOOBIG; /* cannot happen: headers are checked first */
	cap = c->rcap < 65536 ? 65536 : c->rcap;
	while (cap < want)
		cap *= 2;
	if (cap > PEER_RBUF_MAX)
		cap = PEER_RBUF_MAX;
	nb = realloc(c->rbuf, cap);
	if (nb == NULL)
		return -ENOMEM;
	c->rbuf = nb;
	c->rcap = cap;
	return 0;
}

/* Run TLS on what was fed: handshake, then decrypt and parse frames. */
static void
conn_pump(struct peer_conn *c)
{
	char why[256];
	long n;
	int r;

	if (c->state == CONN_TLS) {
		r = tls_handshake(&c->tls, why, sizeof(why));
		(void)conn_flush(c); /* our handshake messages, or the alert */
		if (r < 0) {
			c->logged = true;
			fail_log(c->p, LOG_LVL_ERR, "TLS handshake failed", c->who, "%s", why);
			conn_drop(c, why, true);
			return;
		}
		if (r == 0)
			return;
		tls_established(c);
	}
	while (!c->dropped) {
		bool from_big = c->big != NULL;

		if (from_big) {
			n = big_read(c, why, sizeof(why));
		} else {
			r = rbuf_reserve(c, PEER_READ_CHUNK);
			if (r < 0) {
				conn_drop(c, "out of memory for the receive buffer", false);
				return;
			}
			n = tls_read(&c->tls, c->rbuf + c->rlen, PEER_READ_CHUNK, why, sizeof(why));
		}
		if (n == 0)
			break;
		if (n == -ESHUTDOWN) {
			conn_drop(c, "peer closed the link (close_notify)", false);
			return;
		}
		if (n < 0) {
			/* Before the peer's HELLO this is the peer rejecting our
			 * certificate (TLS 1.3 clients learn it only now). */
			c->logged = true;
			if (c->state != CONN_UP)
				fail_log(c->p, LOG_LVL_ERR, "TLS handshake failed", c->who, "%s",
				         why);
			else
				log_err("peer: TLS error peer=%s addr=%s reason=\"%s\"",
				        c->p->peer_name, c->addr, why);
			(void)conn_flush(c);
			conn_drop(c, why, true);
			return;
		}
		c->last_rx_ms = mr_now_ms(); /* a big frame in progress is not silence */
		if (!from_big) {
			c->rlen += (size_t)n;
			parse_frames(c);
		}
	}
	if (!c->dropped)
		(void)conn_flush(c); /* key updates and other post-handshake output */
}

/* ---- libuv callbacks ------------------------------------------------------------ */

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct peer_conn *c = h->data;

	(void)suggested;
	*buf = uv_buf_init(c->p->inbuf, sizeof(c->p->inbuf));
}

static void
read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct peer_conn *c = s->data;
	char why[128];

	if (nread == 0 || c->dropped)
		return;
	if (nread < 0) {
		if (nread == UV_EOF)
			(void)snprintf(why, sizeof(why), "peer closed the connection");
		else
			(void)snprintf(why, sizeof(why), "read error: %s", mr_strerror((int)nread));
		if (c->state == CONN_TLS)
			c->logged = true;
		fail_log(c->p, LOG_LVL_WARN, "TLS handshake failed", c->who, "%s", why);
		conn_drop(c, why, false);
		return;
	}
	tls_feed(&c->tls, buf->base, (size_t)nread);
	conn_pump(c);
	if (tls_feed_end(&c->tls) < 0) /* before inbuf is read into again */
		conn_drop(c, "out of memory", false);
}

static void
tick_cb(uv_timer_t *t)
{
	struct peer_conn *c = t->data;
	struct proto_msg ping = { .type = PROTO_PING };
	uint64_t now = mr_now_ms();
	char why[96];

	if (c->finishing) {
		if (now - c->finish_ms >= PEER_FINISH_MS)
			conn_close(c);
		return;
	}
	if (c->dropped)
		return;
	if (now - c->last_rx_ms >= PEER_DEAD_MS) {
		if (c->state == CONN_CONNECTING)
			(void)snprintf(why, sizeof(why), "connect timed out after %u ms",
			               PEER_DEAD_MS);
		else if (c->state == CONN_TLS)
			(void)snprintf(why, sizeof(why), "TLS handshake not done within %u ms",
			               PEER_DEAD_MS);
		else
			(void)snprintf(why, sizeof(why), "peer silent for %u ms", PEER_DEAD_MS);
		if (c->state == CONN_UP)
			log_warn("peer: %s peer=%s addr=%s", why, c->p->peer_name, c->addr);
		conn_drop(c, why, false);
		return;
	}
	if (c->state == CONN_UP && now - c->last_tx_ms >= PEER_PING_MS) {
		ping.u.ping.token = ++c->ping_token;
		if (conn_send(c, &ping) < 0)
			conn_drop(c, "cannot send PING", false);
	}
}

/* Allocate a connection with both handles initialised (control plane:
 * aborts on ENOMEM, so an accept is never left pending). */
static struct peer_conn *
conn_new(struct peer *p)
{
	struct peer_conn *c = mr_xcalloc(1, sizeof(*c));

	c->p = p;
	MR_BUG_ON(uv_tcp_init(p->m->loop, &c->tcp) != 0);
	MR_BUG_ON(uv_timer_init(p->m->loop, &c->tick) != 0);
	c->tcp.data = c->tick.data = c->creq.data = c;
	c->last_rx_ms = c->last_tx_ms = mr_now_ms();
	c->next = p->conns;
	p->conns = c;
	return c;
}

/* TCP is up: socket options, TLS engine, keepalive tick, reading. */
static void
conn_start(struct peer_conn *c)
{
	struct peer *p = c->p;
	int r;

	(void)uv_tcp_nodelay(&c->tcp, 1);
	(void)uv_tcp_keepalive(&c->tcp, 1, 10);
	c->state = CONN_TLS;
	c->last_rx_ms = c->last_tx_ms = mr_now_ms();
	r = tls_conn_init(&c->tls, p->ssl_ctx, !p->client, p->peer_name);
	if (r == 0)
		r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	if (r < 0) {
		c->logged = true;
		log_err("peer: cannot start connection addr=%s err=\"%s\"", c->addr,
		        mr_strerror(r));
		conn_drop(c, mr_strerror(r), false);
		return;
	}
	conn_pump(c); /* the client sends its ClientHello now */
}

static void
connect_cb(uv_connect_t *req, int status)
{
	struct peer_conn *c = req->data;
	char why[128];

	if (status == UV_ECANCELED || c->dropped)
		return;
	if (status < 0) {
		fail_log(c->p, LOG_LVL_WARN, "cannot connect", c->who, "%s", mr_strerror(status));
		(void)snprintf(why, sizeof(why), "connect: %s", mr_strerror(status));
		conn_drop(c, why, false);
		return;
	}
	conn_start(c);
}

static void
client_connect(struct peer *p)
{
	struct peer_conn *c;
	int r;

	if (p->stopping || p->link != NULL)
		return;
	c = conn_new(p);
	p->link = c;
	c->state = CONN_CONNECTING;
	(void)mr_strlcpy(c->addr, p->remote_str, sizeof(c->addr));
	(void)snprintf(c->who, sizeof(c->who), "peer=%s", c->addr);
	r = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&p->local, 0);
	if (r == 0) {
		r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&p->remote,
		                   connect_cb);
	}
	if (r < 0) {
		fail_log(p, LOG_LVL_WARN, "cannot connect", c->who, "%s (from %s)", mr_strerror(r),
		         p->local_str);
		conn_drop(c, mr_strerror(r), false);
		return;
	}
	MR_BUG_ON(uv_timer_start(&c->tick, tick_cb, PEER_TICK_MS, PEER_TICK_MS) != 0);
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct peer *p = server->data;
	struct sockaddr_storage ss = { 0 };
	int len = (int)sizeof(ss), r;
	struct peer_conn *c;

	if (status < 0) {
		log_ratelimited(LOG_LVL_WARN, 5000, "peer: accept failed err=\"%s\"",
		                mr_strerror(status));
		return;
	}
	if (p->stopping)
		return;
	c = conn_new(p);
	r = uv_accept(server, (uv_stream_t *)&c->tcp);
	if (r == 0)
		r = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
	if (r < 0) {
		log_ratelimited(LOG_LVL_WARN, 5000, "peer: accept failed err=\"%s\"",
		                mr_strerror(r));
		c->dropped = true;
		conn_close(c);
		return;
	}
	conf_sa_str(&ss, c->addr, sizeof(c->addr));
	(void)snprintf(c->who, sizeof(c->who), "peer=%s", c->addr);
	if (!conf_ip_equal(&ss, &p->remote)) {
		fail_log(p, LOG_LVL_WARN, "connection refused", c->who,
		         "not the address of peer %s (%s)", p->peer_name, p->remote_str);
		c->dropped = true;
		conn_close(c);
		return;
	}
	if (p->link != NULL) {
		fail_log(p, LOG_LVL_WARN, "connection refused", c->who,
		         "second connection while a link with %s is %s", p->peer_name,
		         p->link->state == CONN_UP ? "up" : "being set up");
		c->dropped = true;
		conn_close(c);
		return;
	}
	p->link = c;
	log_debug("peer: connection accepted addr=%s", c->addr);
	MR_BUG_ON(uv_timer_start(&c->tick, tick_cb, PEER_TICK_MS, PEER_TICK_MS) != 0);
	conn_start(c);
}

/* ---- API ------------------------------------------------------------------------ */

/* Replication network: the heartbeat with ident "flow", else the first. */
static const struct conf_heartbeat *
flow_hb(const struct cluster_conf *cf)
{
	size_t i;

	for (i = 0; i < cf->heart.n_hbs; i++)
		if (strcmp(cf->heart.hbs[i].ident, "flow") == 0)
			return &cf->heart.hbs[i];
	return &cf->heart.hbs[0];
}

static void
peer_close_own(struct peer *p)
{
	if (p->flush_init) {
		p->flush_init = false;
		p->pending_closes++;
		uv_close((uv_handle_t *)&p->flush, peer_handle_close_cb);
	}
	if (p->retry_init) {
		p->retry_init = false;
		p->pending_closes++;
		uv_close((uv_handle_t *)&p->retry, peer_handle_close_cb);
	}
	if (p->listener_init) {
		p->listener_init = false;
		p->pending_closes++;
		uv_close((uv_handle_t *)&p->listener, peer_handle_close_cb);
	}
}

/* See peer.h. Loop thread. On failure everything is undone (handles already
 * opened are closed; the object is freed by their close callbacks, so the
 * caller must still run the loop) and the reason is logged. */
int
peer_start(struct mrd *m, const struct peer_cbs *cbs, void *ctx, struct peer **out)
{
	const struct conf_heartbeat *hb = flow_hb(m->conf);
	char err[512];
	struct peer *p;
	int r;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->m = m;
	p->cbs = cbs;
	p->ctx = ctx;
	p->client = m->self_idx == 0;
	p->peer_name = m->conf->nodes[m->peer_idx];
	p->backoff_ms = PEER_BACKOFF_MIN_MS;
	p->local = hb->servers[m->self_idx].addr;
	p->remote = hb->servers[m->peer_idx].addr;
	conf_sa_set_port(&p->local, p->client ? 0 : m->conf->rfs.port);
	conf_sa_set_port(&p->remote, p->client ? m->conf->rfs.port : 0);
	conf_sa_str(&p->local, p->local_str, sizeof(p->local_str));
	conf_sa_str(&p->remote, p->remote_str, sizeof(p->remote_str));

	r = tls_ctx_new(m->node, m->node->name, &p->ssl_ctx, err, sizeof(err));
	if (r < 0) {
		if (r == -ENOMEM)
			log_err("peer: cannot set up TLS err=\"%s\"", mr_strerror(r));
		else
			log_err("peer: %s", err);
		free(p);
		return r;
	}

	MR_BUG_ON(uv_prepare_init(m->loop, &p->flush) != 0);
	p->flush.data = p;
	p->flush_init = true;
	if (p->client) {
		MR_BUG_ON(uv_timer_init(m->loop, &p->retry) != 0);
		p->retry.data = p;
		p->retry_init = true;
		MR_BUG_ON(uv_timer_start(&p->retry, retry_cb, 0, 0) != 0);
		log_notice("peer: connecting peer=%s addr=%s from=%s", p->peer_name, p->remote_str,
		           p->local_str);
	} else {
		MR_BUG_ON(uv_tcp_init(m->loop, &p->listener) != 0);
		p->listener.data = p;
		p->listener_init = true;
		/* libuv sets SO_REUSEADDR on TCP sockets it binds. */
		r = uv_tcp_bind(&p->listener, (const struct sockaddr *)&p->local, 0);
		if (r == 0)
			r = uv_listen((uv_stream_t *)&p->listener, 8, on_connection);
		if (r < 0) {
			log_err("peer: cannot listen addr=%s err=\"%s\"", p->local_str,
			        mr_strerror(r));
			p->stopping = true;
			peer_close_own(p);
			return r;
		}
		log_notice("peer: listening addr=%s peer=%s expected_from=%s", p->local_str,
		           p->peer_name, p->remote_str);
	}
	*out = p;
	return 0;
}

/* See peer.h. Loop thread. */
int
peer_send(struct peer *p, const struct proto_msg *msg)
{
	if (p == NULL || p->link == NULL || p->link->state != CONN_UP || p->stopping)
		return -ENOTCONN;
	if (msg->type == PROTO_HELLO)
		return -EINVAL; /* peer.c owns the handshake */
	return conn_send(p->link, msg);
}

/* See peer.h. Counts encrypted bytes handed to libuv whose write has not
 * completed yet. Loop thread. */
void *
peer_take_frame(struct peer *p)
{
	void *b = p->cur_block;

	p->cur_block = NULL;
	return b;
}

size_t
peer_queued_bytes(const struct peer *p)
{
	return p != NULL && p->link != NULL ? p->link->queued_bytes + tls_out_pending(&p->link->tls)
	                                    : 0;
}

/* See peer.h. Loop thread. */
bool
peer_is_up(const struct peer *p)
{
	return p != NULL && p->link != NULL && p->link->state == CONN_UP;
}

/* See peer.h. Calls on_down() synchronously if the link was up; the
 * connecting side reconnects after the backoff delay. Loop thread. */
void
peer_drop(struct peer *p, const char *reason)
{
	if (p == NULL || p->link == NULL)
		return;
	if (p->link->state == CONN_UP)
		log_warn("peer: dropping link peer=%s reason=\"%s\"", p->peer_name, reason);
	conn_drop(p->link, reason, false);
}

/* See peer.h. Loop thread. */
void
peer_kick(struct peer *p)
{
	if (p == NULL || p->stopping || !p->client || p->link != NULL)
		return;
	uv_timer_stop(&p->retry);
	p->backoff_ms = PEER_BACKOFF_MIN_MS;
	client_connect(p);
}

/* See peer.h. Calls on_down("stopping") if the link was up, then closes
 * every handle; p is freed from the last close callback, so the caller must
 * keep running the loop. Loop thread. */
void
peer_stop(struct peer *p)
{
	struct peer_conn *c;

	if (p == NULL || p->stopping)
		return;
	p->stopping = true;
	if (p->link != NULL)
		conn_drop(p->link, "stopping", false);
	for (c = p->conns; c != NULL; c = c->next) {
		c->dropped = true;
		conn_close(c);
	}
	peer_close_own(p);
	peer_maybe_free(p);
}
