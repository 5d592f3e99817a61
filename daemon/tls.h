/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tls.h - TLS 1.3 for the replication link, as a byte-in / byte-out engine:
 * the caller owns the socket (libuv), lends what it reads with tls_feed()
 * and sends the buffers tls_out_detach() hands over. No I/O, no logging:
 * failures come back as codes plus a reason string. Loop thread.
 *
 * Verify policy (both sides): TLS 1.3 only, the peer must present a
 * certificate that chains to [tls] ca and names the expected peer node
 * (SAN DNS, or CN when there is no SAN).
 */
#ifndef MR_TLS_H
#define MR_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct node_conf;

struct tls_conn {
	SSL *ssl;             /* owned */
	BIO *rbio;            /* borrowed: owned by ssl; reads in, then spill */
	BIO *wbio;            /* borrowed: owned by ssl; appends to out */
	const uint8_t *in;    /* borrowed: fed bytes not read by SSL yet */
	size_t in_len;
	uint8_t *spill;   /* owned: fed bytes left over by a tls_feed_end() */
	size_t spill_off; /* read up to here */
	size_t spill_len;
	size_t spill_cap;
	uint8_t *out; /* owned: records for the socket, see tls_out_detach() */
	size_t out_len;
	size_t out_cap;
	int peer_max_version; /* server: highest version the ClientHello offers; 0 unknown */
	bool server;
	bool handshake_done;
};

/* Build the SSL_CTX from node.ini's [tls] files. The key file is checked
 * with stat() first: it must be owned by root and have no group/other bits.
 * Returns 0 and *out (free with SSL_CTX_free), MR_ECONFIG with the reason
 * (naming the file) in err, or -ENOMEM. */
int tls_ctx_new(const struct node_conf *node, const char *self_name, SSL_CTX **out, char *err,
                size_t err_len);

/* Set up one connection on an embedded struct tls_conn: server or client
 * side, expecting the peer certificate to name peer_name. Returns 0 or
 * -ENOMEM. Undo with tls_conn_done() (also after a failed init). */
int tls_conn_init(struct tls_conn *t, SSL_CTX *ctx, bool server, const char *peer_name);
void tls_conn_done(struct tls_conn *t);

/* Lend bytes read from the socket to the engine: tls_handshake() and
 * tls_read() read them from buf itself. Call tls_feed_end() before buf is
 * reused: it copies whatever was not read yet. Returns 0 or -ENOMEM. */
void tls_feed(struct tls_conn *t, const void *buf, size_t len);
int tls_feed_end(struct tls_conn *t);

/* Advance the handshake. Returns 1 once it is complete, 0 when more input
 * is needed (send tls_out_detach()'s bytes first), or -EPROTO with the reason in err
 * (for example "certificate verify failed: self-signed certificate"). */
int tls_handshake(struct tls_conn *t, char *err, size_t err_len);

/* Decrypt into buf. Returns the byte count (> 0), 0 when more input is
 * needed, -ESHUTDOWN when the peer sent close_notify, or -EPROTO with the
 * reason in err. */
long tls_read(struct tls_conn *t, void *buf, size_t cap, char *err, size_t err_len);

/* Encrypt len bytes (all of them) into the outgoing buffer. Returns 0, or
 * -EPROTO / -ENOMEM with the reason in err. */
int tls_write(struct tls_conn *t, const void *buf, size_t len, char *err, size_t err_len);

/* Make room for the records of plain_len more bytes written in at most
 * TLS_OUT_PARTS tls_write() calls, so a frame written in parts lands in one
 * buffer without regrowing (a regrowth copies the whole frame). Returns 0
 * or -ENOMEM. */
#define TLS_OUT_PARTS 2u
int tls_out_reserve(struct tls_conn *t, size_t plain_len);

/* Queue a close_notify alert (best effort). */
void tls_shutdown(struct tls_conn *t);

/* Encrypted bytes waiting to be sent, and taking them over: the returned
 * heap buffer (free() it) holds *len bytes; NULL when there are none. */
size_t tls_out_pending(const struct tls_conn *t);
uint8_t *tls_out_detach(struct tls_conn *t, size_t *len);

/* Negotiated protocol and cipher names, for logs ("TLSv1.3", ...). */
const char *tls_version(const struct tls_conn *t);
const char *tls_cipher(const struct tls_conn *t);

/* Name of a protocol version number (TLS1_2_VERSION -> "TLSv1.2"). */
const char *tls_version_name(int version);

#endif
