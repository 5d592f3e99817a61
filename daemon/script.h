/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * script.h - the module's restart scripts (SafeKit names: prestart, start_prim,
 * stop_prim, start_second, stop_second, start_both, stop_both, poststop,
 * transition), run from the scripts directory with arguments
 * "<current> <next> <action>" ("force <current> <next> <action>" for the
 * forced run of a stop script) and an environment with HAMIRROR_MODULE,
 * HAMIRROR_NODE, HAMIRROR_PEER, HAMIRROR_ROLE, SAFEMODULE and every <var>.
 *
 * One script at a time per runner, in a new session, stdin /dev/null, stdout
 * and stderr appended to LOG_DIR/<module>.<script>.log (unless logging="none").
 * A script that outlives its timeout gets SIGTERM, then SIGKILL 1 s later, on
 * its whole process group. A missing script is success (not every module needs
 * every script); a script that exists but is not executable is an error.
 * Loop thread only.
 */
#ifndef MR_SCRIPT_H
#define MR_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "conf.h"

enum script_result {
	SCRIPT_OK = 0,      /* exit 0, or no such script */
	SCRIPT_FAILED,      /* exit != 0 or killed by a signal */
	SCRIPT_TIMEOUT,     /* killed after its timeout */
	SCRIPT_ERROR,       /* could not run (not executable, fork failed...) */
};

struct script_env {
	const char *dir;     /* scripts directory (absolute) */
	const char *log_dir; /* per-script logs; NULL = no logs */
	const char *module;
	const char *node;
	const char *peer;
	const struct conf_user *user; /* vars, logging */
	/* a cgroup's cgroup.procs: each script (and whatever it starts, even
	 * daemonised) runs in that cgroup, so the process monitor knows which
	 * processes the scripts started. NULL: none. */
	const char *cgroup_procs;
};

/* sh -c SCRIPT_CGROUP_JOIN NAME PROCS PROGRAM ARGS...: the shell joins the
 * cgroup whose cgroup.procs is PROCS, then becomes PROGRAM (nothing PROGRAM
 * starts can escape the cgroup, and there is no race with a fork). */
#define SCRIPT_CGROUP_JOIN "echo $$ > \"$1\" 2>/dev/null; shift; exec \"$@\""

struct script_runner;

/* status: exit code, or -signal, or -errno for SCRIPT_ERROR; detail is a short
 * text for the module log ("exit 3", "timed out after 5000 ms", ...). */
typedef void (*script_done_fn)(void *ctx, enum script_result res, int status,
                               const char *detail);

/* The environment is copied. Loop thread. NULL only on ENOMEM. */
struct script_runner *script_runner_new(uv_loop_t *loop, const struct script_env *env);

/* Run dir/name with args (NULL-terminated, argv[1..]), role exported as
 * HAMIRROR_ROLE, bounded by timeout_ms (0 = no limit). Returns 0 and calls cb
 * exactly once later, or -EBUSY while a script runs, -errno. Loop thread. */
int script_run(struct script_runner *s, const char *name, const char *const *args,
               const char *role, unsigned timeout_ms, script_done_fn cb, void *ctx);

/* Is a script running? Its name, else NULL. */
const char *script_running(const struct script_runner *s);

/* Kill a running script's process group (SIGKILL) and free once closed; its
 * cb is not called. Accepts NULL. Loop thread. */
void script_runner_free(struct script_runner *s);

#endif
