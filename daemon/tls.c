/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tls.c - OpenSSL 3 glue for the replication link: the SSL_CTX (TLS 1.3
 * only, mutual authentication against the cluster CA) and a per-connection
 * engine over two BIOs of our own, so libuv keeps owning the socket:
 *   - the input BIO reads straight from the caller's receive buffer (no
 *     copy into a memory BIO); tls_feed_end() keeps what SSL left unread;
 *   - the output BIO appends records to one heap buffer that the caller
 *     takes over whole with tls_out_detach() (no copy out of a memory BIO).
 * Bulk data is copied once on each side between the socket and SSL.
 *
 * Does NOT do I/O, timers or logging (peer.c does); every failure comes back
 * as a code plus a reason string for peer.c's log line. Loop thread only:
 * OpenSSL's error queue is per thread and is cleared before each call.
 * Invariant: a tls_conn's rbio is never at EOF (an empty rbio means "want
 * read"), so SSL_ERROR_SYSCALL cannot come from the BIOs.
 */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "err.h"

/* Highest non-GREASE version in the ClientHello's supported_versions
 * extension, or its legacy_version when the extension is absent (a client
 * limited to TLS 1.2 or below). Only used to explain a refusal. */
static int
client_hello_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_conn *t = SSL_get_app_data(ssl);
	const unsigned char *ext;
	size_t len, i;
	int best = 0;

	(void)alert;
	(void)arg;
	if (t == NULL)
		return SSL_CLIENT_HELLO_SUCCESS;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &ext, &len) == 1 &&
	    len >= 1) {
		for (i = 1; i + 1 < len && i + 1 <= (size_t)ext[0]; i += 2) {
			int v = (ext[i] << 8) | ext[i + 1];

			if (v >= SSL3_VERSION && v <= TLS1_3_VERSION && v > best)
				best = v;
		}
	} else {
		best = (int)SSL_client_hello_get0_legacy_version(ssl);
	}
	t->peer_max_version = best;
	return SSL_CLIENT_HELLO_SUCCESS;
}

const char *
tls_version_name(int version)
{
	switch (version) {
	case SSL3_VERSION:
		return "SSLv3";
	case TLS1_VERSION:
		return "TLSv1.0";
	case TLS1_1_VERSION:
		return "TLSv1.1";
	case TLS1_2_VERSION:
		return "TLSv1.2";
	case TLS1_3_VERSION:
		return "TLSv1.3";
	default:
		return "unknown";
	}
}

/* The most useful words from OpenSSL's error queue (then emptied). */
static void
ssl_reason(const struct tls_conn *t, int ssl_err, char *err, size_t err_len)
{
	unsigned long e = ERR_peek_error();
	const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;
	long vr = t->ssl != NULL ? SSL_get_verify_result(t->ssl) : X509_V_OK;
	char code[64];
	int n;

	if (e != 0 && why == NULL) {
		ERR_error_string_n(e, code, sizeof(code));
		why = code;
	}
	if (why == NULL)
		why = ssl_err == SSL_ERROR_SYSCALL ? "unexpected end of stream" : "TLS failure";
	if (e != 0 && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK)
		n = snprintf(err, err_len, "%s: %s", why, X509_verify_cert_error_string(vr));
	else
		n = snprintf(err, err_len, "%s", why);
	if (t->server && t->peer_max_version != 0 && t->peer_max_version < TLS1_3_VERSION &&
	    n >= 0 && (size_t)n < err_len)
		(void)snprintf(err + n, err_len - (size_t)n,
		               ": peer offers at most %s, TLSv1.3 is required",
		               tls_version_name(t->peer_max_version));
	ERR_clear_error();
}

/* Never prompt on a terminal for an encrypted key: a daemon cannot answer.
 * Such a key then fails to load with a clear error. */
static int
no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

/* The OpenSSL error queue as "what: reason" for configuration messages. */
static int
ctx_fail(char *err, size_t err_len, const char *what, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	const char *why = e != 0 ? ERR_reason_error_string(e) : NULL;

	(void)snprintf(err, err_len, "%s %s: %s", what, path, why != NULL ? why : "unknown error");
	ERR_clear_error();
	return MR_ECONFIG;
}

/* stat() the key before OpenSSL reads it: root-owned, no group/other bits. */
static int
key_file_check(const char *path, char *err, size_t err_len)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		(void)snprintf(err, err_len, "cannot stat TLS key file %s: %s", path,
		               strerror(errno));
		return MR_ECONFIG;
	}
	if (!S_ISREG(st.st_mode)) {
		(void)snprintf(err, err_len, "TLS key file %s is not a regular file", path);
		return MR_ECONFIG;
	}
	if (st.st_uid != 0) {
		(void)snprintf(err, err_len,
		               "TLS key file %s is owned by uid %u; it must be owned by root "
		               "(chown root:root %s)",
		               path, (unsigned)st.st_uid, path);
		return MR_ECONFIG;
	}
	if ((st.st_mode & 077) != 0) {
		(void)snprintf(err, err_len,
		               "TLS key file %s has mode %04o; group and others must have no "
		               "access (chmod 600 %s)",
		               path, (unsigned)(st.st_mode & 07777), path);
		return MR_ECONFIG;
	}
	return 0;
}

/* See tls.h. self_name is only used to describe a certificate/key mismatch. */
int
tls_ctx_new(const struct node_conf *node, const char *self_name, SSL_CTX **out, char *err,
            size_t err_len)
{
	STACK_OF(X509_NAME) * cas;
	SSL_CTX *ctx;
	int r;

	*out = NULL;
	r = key_file_check(node->tls_key, err, err_len);
	if (r < 0)
		return r;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_method());
	if (ctx == NULL) {
		ERR_clear_error();
		return -ENOMEM;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		r = ctx_fail(err, err_len, "cannot restrict to", "TLSv1.3");
		goto err_free;
	}
	if (SSL_CTX_load_verify_locations(ctx, node->tls_ca, NULL) != 1) {
		r = ctx_fail(err, err_len, "cannot load TLS CA file", node->tls_ca);
		goto err_free;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, node->tls_cert) != 1) {
		r = ctx_fail(err, err_len, "cannot load TLS certificate file", node->tls_cert);
		goto err_free;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase_cb);
	if (SSL_CTX_use_PrivateKey_file(ctx, node->tls_key, SSL_FILETYPE_PEM) != 1) {
		r = ctx_fail(err, err_len, "cannot load TLS key file", node->tls_key);
		goto err_free;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		(void)snprintf(err, err_len,
		               "TLS key file %s does not match certificate %s (node %s)",
		               node->tls_key, node->tls_cert, self_name);
		ERR_clear_error();
		r = MR_ECONFIG;
		goto err_free;
	}
	/* Tell clients which CA we accept (helps `openssl s_client` users). */
	cas = SSL_load_client_CA_file(node->tls_ca);
	if (cas != NULL)
		SSL_CTX_set_client_CA_list(ctx, cas);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* One long-lived link: no resumption, so no tickets to send or store. */
	(void)SSL_CTX_set_num_tickets(ctx, 0);
	(void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, NULL);
	ERR_clear_error();
	*out = ctx;
	return 0;

err_free:
	SSL_CTX_free(ctx);
	return r;
}

/* ---- the two BIOs ------------------------------------------------------------ */

/* Bytes a TLS 1.3 record adds to at most TLS_REC_MAX bytes of data: header 5,
 * content type 1, AEAD tag 16. */
#define TLS_REC_MAX      16384
#define TLS_REC_OVERHEAD 22
#define TLS_OUT_MIN      16384

/* The records of len bytes written in `parts` SSL_write() calls: each call
 * may end in a short record of its own. */
static size_t
rec_bytes(size_t len, size_t parts)
{
	return len + (len / TLS_REC_MAX + parts) * TLS_REC_OVERHEAD;
}

static BIO_METHOD *in_method;
static BIO_METHOD *out_method;
static pthread_once_t methods_once = PTHREAD_ONCE_INIT;

/* Read from the spill first (older), then from the lent buffer. */
static int
in_read(BIO *b, char *buf, size_t cap, size_t *got)
{
	struct tls_conn *t = BIO_get_data(b);
	size_t n = 0;

	BIO_clear_retry_flags(b);
	if (t->spill_len > t->spill_off) {
		n = t->spill_len - t->spill_off;
		n = n < cap ? n : cap;
		memcpy(buf, t->spill + t->spill_off, n);
		t->spill_off += n;
		if (t->spill_off == t->spill_len)
			t->spill_off = t->spill_len = 0;
	} else if (t->in_len > 0) {
		n = t->in_len < cap ? t->in_len : cap;
		memcpy(buf, t->in, n);
		t->in += n;
		t->in_len -= n;
	}
	if (n == 0) {
		BIO_set_retry_read(b); /* "want read", never EOF */
		return 0;
	}
	*got = n;
	return 1;
}

/* Grow t->out to hold more bytes after out_len. Returns false on ENOMEM. */
static bool
out_reserve(struct tls_conn *t, size_t more)
{
	size_t want = t->out_len + more, cap = t->out_cap;
	uint8_t *nb;

	if (want <= cap)
		return true;
	if (cap < TLS_OUT_MIN)
		cap = TLS_OUT_MIN;
	while (cap < want)
		cap = cap * 2 > want ? cap * 2 : want;
	nb = realloc(t->out, cap);
	if (nb == NULL)
		return false;
	t->out = nb;
	t->out_cap = cap;
	return true;
}

static int
out_write(BIO *b, const char *data, size_t len, size_t *done)
{
	struct tls_conn *t = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (!out_reserve(t, len))
		return 0; /* SSL_write fails: tls_write() reports it */
	memcpy(t->out + t->out_len, data, len);
	t->out_len += len;
	*done = len;
	return 1;
}

static long
bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_conn *t = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING: /* bytes readable from the input BIO */
		return t == NULL || b != t->rbio
		               ? 0
		               : (long)(t->in_len + (t->spill_len - t->spill_off));
	case BIO_CTRL_WPENDING:
		return t == NULL || b != t->wbio ? 0 : (long)t->out_len;
	default:
		return 0;
	}
}

static int
bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void
methods_init(void)
{
	int in_type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;
	int out_type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;

	in_method = BIO_meth_new(in_type, "hamirror tls input");
	out_method = BIO_meth_new(out_type, "hamirror tls output");
	if (in_method == NULL || out_method == NULL ||
	    BIO_meth_set_read_ex(in_method, in_read) != 1 ||
	    BIO_meth_set_ctrl(in_method, bio_ctrl) != 1 ||
	    BIO_meth_set_create(in_method, bio_create) != 1 ||
	    BIO_meth_set_write_ex(out_method, out_write) != 1 ||
	    BIO_meth_set_ctrl(out_method, bio_ctrl) != 1 ||
	    BIO_meth_set_create(out_method, bio_create) != 1) {
		BIO_meth_free(in_method);
		BIO_meth_free(out_method);
		in_method = out_method = NULL;
	}
}

/* See tls.h. The conn's address is stored in the SSL (app data) for the
 * ClientHello callback and in both BIOs, so t must not move while the SSL
 * lives. */
int
tls_conn_init(struct tls_conn *t, SSL_CTX *ctx, bool server, const char *peer_name)
{
	X509_VERIFY_PARAM *param;

	*t = (struct tls_conn){ .server = server };
	ERR_clear_error();
	(void)pthread_once(&methods_once, methods_init);
	if (in_method == NULL || out_method == NULL)
		goto err_nomem;
	t->ssl = SSL_new(ctx);
	if (t->ssl == NULL)
		goto err_nomem;
	t->rbio = BIO_new(in_method);
	t->wbio = BIO_new(out_method);
	if (t->rbio == NULL || t->wbio == NULL) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		t->rbio = t->wbio = NULL;
		goto err_nomem;
	}
	BIO_set_data(t->rbio, t);
	BIO_set_data(t->wbio, t);
	SSL_set_bio(t->ssl, t->rbio, t->wbio); /* ownership of both moves to ssl */
	SSL_set_app_data(t->ssl, t);
	if (server) {
		param = SSL_get0_param(t->ssl);
		X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (X509_VERIFY_PARAM_set1_host(param, peer_name, 0) != 1)
			goto err_nomem;
		SSL_set_accept_state(t->ssl);
	} else {
		SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(t->ssl, peer_name) != 1 ||
		    SSL_set_tlsext_host_name(t->ssl, peer_name) != 1)
			goto err_nomem;
		SSL_set_connect_state(t->ssl);
	}
	return 0;

err_nomem:
	ERR_clear_error();
	return -ENOMEM;
}

/* See tls.h. Accepts a zeroed or half-initialised struct. */
void
tls_conn_done(struct tls_conn *t)
{
	SSL_free(t->ssl); /* frees both BIOs */
	t->ssl = NULL;
	t->rbio = t->wbio = NULL;
	free(t->out);
	free(t->spill);
	t->out = t->spill = NULL;
	t->out_len = t->out_cap = 0;
	t->spill_len = t->spill_off = t->spill_cap = 0;
	t->in = NULL;
	t->in_len = 0;
}

/* See tls.h. */
void
tls_feed(struct tls_conn *t, const void *buf, size_t len)
{
	t->in = buf;
	t->in_len = len;
}

/* See tls.h. */
int
tls_feed_end(struct tls_conn *t)
{
	size_t left = t->in_len, keep = t->spill_len - t->spill_off;

	t->in_len = 0;
	if (left == 0 || t->ssl == NULL)
		return 0;
	if (t->spill_off > 0) {
		memmove(t->spill, t->spill + t->spill_off, keep);
		t->spill_off = 0;
		t->spill_len = keep;
	}
	if (keep + left > t->spill_cap) {
		uint8_t *nb = realloc(t->spill, keep + left);

		if (nb == NULL)
			return -ENOMEM;
		t->spill = nb;
		t->spill_cap = keep + left;
	}
	memcpy(t->spill + keep, t->in, left);
	t->spill_len = keep + left;
	t->in = NULL;
	return 0;
}

/* See tls.h. */
int
tls_handshake(struct tls_conn *t, char *err, size_t err_len)
{
	int r, e;

	if (t->handshake_done)
		return 1;
	ERR_clear_error();
	r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		t->handshake_done = true;
		return 1;
	}
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	ssl_reason(t, e, err, err_len);
	return -EPROTO;
}

/* See tls.h. */
long
tls_read(struct tls_conn *t, void *buf, size_t cap, char *err, size_t err_len)
{
	int r, e;

	ERR_clear_error();
	r = SSL_read(t->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
	if (r > 0)
		return r;
	e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return -ESHUTDOWN;
	}
	ssl_reason(t, e, err, err_len);
	return -EPROTO;
}

/* See tls.h. The output BIO never fills up, so SSL_write takes it all; the
 * buffer is grown once for the records to come. */
int
tls_write(struct tls_conn *t, const void *buf, size_t len, char *err, size_t err_len)
{
	int r;

	if (len == 0)
		return 0;
	if (len > INT_MAX)
		return -EMSGSIZE;
	if (!out_reserve(t, rec_bytes(len, 1))) {
		(void)snprintf(err, err_len, "out of memory for %zu bytes of records", len);
		return -ENOMEM;
	}
	ERR_clear_error();
	r = SSL_write(t->ssl, buf, (int)len);
	if (r == (int)len)
		return 0;
	ssl_reason(t, SSL_get_error(t->ssl, r), err, err_len);
	return -EPROTO;
}

/* See tls.h. */
int
tls_out_reserve(struct tls_conn *t, size_t plain_len)
{
	return out_reserve(t, rec_bytes(plain_len, TLS_OUT_PARTS)) ? 0 : -ENOMEM;
}

/* See tls.h. */
void
tls_shutdown(struct tls_conn *t)
{
	if (t->ssl == NULL || !t->handshake_done)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
}

/* See tls.h. */
size_t
tls_out_pending(const struct tls_conn *t)
{
	return t->out_len;
}

/* See tls.h. */
uint8_t *
tls_out_detach(struct tls_conn *t, size_t *len)
{
	uint8_t *b = t->out;

	*len = t->out_len;
	if (t->out_len == 0)
		return NULL;
	t->out = NULL;
	t->out_len = t->out_cap = 0;
	return b;
}

/* See tls.h. */
const char *
tls_version(const struct tls_conn *t)
{
	return SSL_get_version(t->ssl);
}

/* See tls.h. */
const char *
tls_cipher(const struct tls_conn *t)
{
	const char *c = SSL_get_cipher_name(t->ssl);

	return c != NULL ? c : "none";
}
