/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * link_stub.h - TEMPORARY peer_cbs for mirrord until the replication engine
 * exists: it only logs what the link does. main.c wires these into
 * peer_start(); the lead replaces this file (and that wiring) with repl.c.
 */
#ifndef MR_LINK_STUB_H
#define MR_LINK_STUB_H

#include <stddef.h>

#include "proto.h"

/* All of them: ctx is the struct mrd. Loop thread. */
void link_stub_make_hello(void *ctx, struct proto_hello *h);
int link_stub_check_hello(void *ctx, const struct proto_hello *h, char *why, size_t why_len);
void link_stub_on_up(void *ctx, const struct proto_hello *peer_hello);
void link_stub_on_msg(void *ctx, const struct proto_msg *msg);
void link_stub_on_down(void *ctx, const char *reason);
void link_stub_on_writable(void *ctx);

#endif
