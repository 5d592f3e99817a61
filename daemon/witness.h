/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * witness.h - the split-brain witness check (<splitbrain arg="...">): can this
 * node reach at least one witness? ICMP echo for "IP" witnesses (raw socket,
 * identifier and payload checked on the reply), TCP connect for "IP:PORT"
 * ones (a refused connection also proves the witness is reachable). All
 * witnesses are tried in parallel, each up to 3 times within timeout_ms; the
 * first answer ends the check. Runs on the libuv thread pool.
 */
#ifndef MR_WITNESS_H
#define MR_WITNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "conf.h"

/* reached: some witness answered; detail e.g. "198.18.0.254 answered in 0.4 ms"
 * or "no answer from 198.18.0.254, 198.18.0.253 within 500 ms". Loop thread. */
typedef void (*witness_done_fn)(void *ctx, bool reached, const char *detail);

/* Start a check. Returns 0 (cb will be called exactly once), -EINVAL without
 * witnesses, -ENOMEM. Loop thread. */
int witness_check(uv_loop_t *loop, const struct conf_splitbrain *sb, unsigned timeout_ms,
                  witness_done_fn cb, void *ctx);

/* Blocking form, for tests and the worker: same semantics. Any thread. */
bool witness_probe(const struct sockaddr_storage *addrs, size_t n, unsigned timeout_ms,
                   char *detail, size_t detail_len);

#endif
