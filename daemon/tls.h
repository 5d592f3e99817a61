/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tls.h - TLS 1.3 for the replication link, as a byte-in / byte-out engine
 * over OpenSSL memory BIOs: the caller owns the socket (libuv), feeds what it
 * reads with tls_feed() and sends what tls_out_take() returns. No I/O, no
 * logging: failures come back as codes plus a reason string. Loop thread.
 *
 * Verify policy (both sides): TLS 1.3 only, the peer must present a
 * certificate that chains to [tls] ca and names the expected peer node
 * (SAN DNS, or CN when there is no SAN).
 */
#ifndef MR_TLS_H
#define MR_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct node_conf;

struct tls_conn {
	SSL *ssl;             /* owned */
	BIO *rbio;            /* borrowed: owned by ssl; bytes from the socket */
	BIO *wbio;            /* borrowed: owned by ssl; bytes for the socket */
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

/* Hand bytes read from the socket to the engine. Returns 0 or -ENOMEM. */
int tls_feed(struct tls_conn *t, const void *buf, size_t len);

/* Advance the handshake. Returns 1 once it is complete, 0 when more input
 * is needed (send tls_out_take() first), or -EPROTO with the reason in err
 * (for example "certificate verify failed: self-signed certificate"). */
int tls_handshake(struct tls_conn *t, char *err, size_t err_len);

/* Decrypt into buf. Returns the byte count (> 0), 0 when more input is
 * needed, -ESHUTDOWN when the peer sent close_notify, or -EPROTO with the
 * reason in err. */
long tls_read(struct tls_conn *t, void *buf, size_t cap, char *err, size_t err_len);

/* Encrypt len bytes (all of them) into the outgoing buffer. Returns 0, or
 * -EPROTO / -ENOMEM with the reason in err. */
int tls_write(struct tls_conn *t, const void *buf, size_t len, char *err, size_t err_len);

/* Queue a close_notify alert (best effort). */
void tls_shutdown(struct tls_conn *t);

/* Encrypted bytes waiting to be sent, and taking them (up to cap bytes;
 * returns the count). */
size_t tls_out_pending(const struct tls_conn *t);
size_t tls_out_take(struct tls_conn *t, void *buf, size_t cap);

/* Negotiated protocol and cipher names, for logs ("TLSv1.3", ...). */
const char *tls_version(const struct tls_conn *t);
const char *tls_cipher(const struct tls_conn *t);

/* Name of a protocol version number (TLS1_2_VERSION -> "TLSv1.2"). */
const char *tls_version_name(int version);

#endif
