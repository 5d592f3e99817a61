/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * monitor.h - application monitoring (SafeKit's <errd> and <check>): the
 * process monitor and the tcp and custom checkers, each a resource whose
 * state is init, up or down. Loop thread only.
 *
 * Resources:
 *   proc.<name>     <errd><proc>: the number of matching processes is within
 *                   [atleast, atmax] (checked every polltimer, 1 s by default);
 *   tcp.<ident>     <check><tcp>: a TCP connection to each <to> succeeds within
 *                   its timeout (every interval, 2 s by default);
 *   ping.<ident>    <check><ping>: an ICMP echo to one of its <to> is answered
 *                   within the timeout (witness.c's probe);
 *   custom.<ident>  <check><custom>: set by the admin's long-running program
 *                   (`mirrorctl set custom.<ident> up|down`), which the monitor
 *                   starts while the checker is active and stops after.
 *
 * A proc or tcp failure must hold for one more poll/interval before the
 * resource goes down (so one lost SYN does not fail an application over);
 * a custom resource goes down when its program says so. On going down, the
 * resource's action is reported (monitor_action_fn): restart, stop,
 * stopstart, wait, noaction, or a handler program for <proc>. A resource of
 * a wait rule that comes up (from down, or from init at start) reports
 * "wakeup": as in SafeKit, a module whose wait resources are not all up yet
 * stays in WAIT.
 *
 * Which resources run follows the module (monitor_set_phase): when="pre"
 * (and class="pre") while the module is started, "prim" on a primary
 * (PRIM/ALONE Ready), "second" on a secondary (SECOND Ready). Leaving a
 * phase sets its resources back to init.
 */
#ifndef MR_MONITOR_H
#define MR_MONITOR_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "conf.h"

struct monitor;

/* A resource went down (action = its rule) or a wait resource came back
 * ("wakeup"). reason says what was seen. */
typedef void (*monitor_action_fn)(void *ctx, const char *resource, const char *action,
                                  const char *reason);

/* env: the environment for custom checker programs (NULL-terminated, kept);
 * dir: where relative exec names are found (the scripts directory);
 * cgroup_procs: the cgroup.procs of the cgroup the scripts run in, or NULL.
 * A <proc> for which a process of that cgroup was seen counts only those
 * from then on (the application the scripts started, not a namesake). */
struct monitor *monitor_new(uv_loop_t *loop, const struct cluster_conf *conf, const char *dir,
                            char *const *env, const char *cgroup_procs, monitor_action_fn fn,
                            void *ctx);
/* Stop everything (custom programs are killed) and free once the handles
 * are closed. */
void monitor_free(struct monitor *mo);

void monitor_set_phase(struct monitor *mo, bool pre, bool prim, bool second);

/* `mirrorctl checker on|off`, `errd on|off`: off = nothing runs, every
 * resource is init and no action is reported. */
void monitor_enable(struct monitor *mo, bool checkers, bool errd);

/* `mirrorctl set custom.<ident> up|down`. 0, or -errno with msg. */
int monitor_set(struct monitor *mo, const char *resource, const char *value, char *msg,
                size_t msg_len);

/* Are all resources of wait rules up (init counts as not up)? If not, the
 * first one that is not, in why. */
bool monitor_wait_ok(struct monitor *mo, char *why, size_t why_len);

/* "resources": { name: "init"|"up"|"down" }, "checkers"/"errd": "on"|"off". */
void monitor_status(struct monitor *mo, json_t *out);

#endif /* MR_MONITOR_H */
