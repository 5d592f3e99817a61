/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * link_stub.c - TEMPORARY stand-in for the replication engine: the peer_cbs
 * mirrord passes to peer_start() so the link can be brought up and tested
 * (tests/integration/test_link_security.py). It only logs; it sends nothing
 * but the HELLO (role NONE, zero generation, last_seq 0) and accepts every
 * peer HELLO that peer.c accepted. Loop thread only. To be replaced by repl.c.
 */
#include "link_stub.h"

#include <string.h>

#include "log.h"
#include "mrd.h"

/* Fill our HELLO from struct mrd (strings borrowed from m, which outlives the link). */
void
link_stub_make_hello(void *ctx, struct proto_hello *h)
{
	struct mrd *m = ctx;

	*h = (struct proto_hello){ .version = PROTO_VERSION, .role = PROTO_ROLE_NONE };
	h->node.p = m->node->name;
	h->node.len = (uint16_t)strlen(m->node->name);
	h->module.p = m->module;
	h->module.len = (uint16_t)strlen(m->module);
	memcpy(h->config_hash, m->conf->hash, sizeof(h->config_hash));
}

/* Accept: peer.c already checked version, module, node and config hash. */
int
link_stub_check_hello(void *ctx, const struct proto_hello *h, char *why, size_t why_len)
{
	(void)ctx;
	(void)h;
	(void)why;
	(void)why_len;
	return 0;
}

/* Log only. */
void
link_stub_on_up(void *ctx, const struct proto_hello *peer_hello)
{
	(void)ctx;
	log_info("link: peer up node=%.*s role=%u last_seq=%llu", (int)peer_hello->node.len,
	         peer_hello->node.p, (unsigned)peer_hello->role,
	         (unsigned long long)peer_hello->last_seq);
}

/* Log only. */
void
link_stub_on_msg(void *ctx, const struct proto_msg *msg)
{
	(void)ctx;
	log_info("link: message ignored type=%s", proto_type_name((uint16_t)msg->type));
}

/* Log only. */
void
link_stub_on_down(void *ctx, const char *reason)
{
	(void)ctx;
	log_info("link: peer down reason=\"%s\"", reason);
}

/* Nothing is ever queued by the stub. */
void
link_stub_on_writable(void *ctx)
{
	(void)ctx;
}
