/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * script.c - run the module's restart scripts (start_prim, stop_prim, ...).
 *
 * One struct script_runner runs at most one script at a time, in a new session
 * (UV_PROCESS_DETACHED: process group id == pid), with stdin on /dev/null and
 * stdout/stderr appended to LOG_DIR/<module>.<script>.log between a header and
 * a footer line that we write ourselves. It does NOT decide which script to
 * run or what a failure means (that is the fsm's job), and it never reads the
 * script's output: exit is detected by libuv's SIGCHLD handling, so children a
 * script leaves behind (the application started by start_prim) do not delay it.
 * Loop thread only.
 *
 * Invariants:
 *  - the result callback is called exactly once per accepted script_run(),
 *    always from the loop (never from inside script_run()), and after the
 *    process handle has been closed, so the callback may start the next script;
 *  - signals go to the script's process group (kill(-pid)) and only after a
 *    successful spawn (pid > 0): kill(0) would hit mirrord's own group;
 *  - the runner is freed only from the last close callback (timer, process).
 */
#include "script.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "util.h"

#define SCRIPT_KILL_GRACE_MS 1000u /* SIGTERM -> SIGKILL */
#define SCRIPT_DEFAULT_PATH  "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
#define SCRIPT_NAME_MAX      64
#define SCRIPT_DETAIL_MAX    (PATH_MAX + 128)
#define SCRIPT_ARGS_TEXT_MAX 512

/*
 * Life of one run, driven by script_run(), the timer and the process handle:
 *
 *   IDLE --script_run--> DELIVER --timer(0)--> IDLE + cb        (absent, refused)
 *   IDLE --script_run--> RUNNING --exit--> CLOSING --close_cb--> IDLE + cb
 *                        RUNNING --timer(timeout)--> TERM (SIGTERM to the group)
 *                        TERM --timer(1 s)--> KILLED (SIGKILL to the group)
 *                        TERM/KILLED --exit--> CLOSING
 *
 * After a timeout, the exit of the main process is not the end: if other
 * members of its group survived SIGTERM, we wait for the grace period and
 * SIGKILL them before reporting (the admin asked for the script to be gone).
 * A spawn failure goes straight to CLOSING (the handle must still be closed).
 */
enum run_phase {
	PH_IDLE = 0,
	PH_DELIVER,
	PH_RUNNING,
	PH_TERM,
	PH_KILLED,
	PH_CLOSING,
};

struct script_runner {
	uv_loop_t *loop; /* borrowed */
	char *dir;
	char *log_dir; /* NULL: no per-script logs */
	char *module;
	char *node;
	char *peer;
	char *path_env; /* "PATH=..." */
	char *cgroup_procs; /* NULL: scripts run in mirrord's cgroup */
	char **vars;    /* "NAME=value", owned */
	size_t n_vars;
	bool logging;

	uv_timer_t timer;  /* immediate delivery, timeout, kill grace */
	uv_process_t proc; /* valid while proc_open */
	bool proc_open;    /* uv_spawn() called and handle not yet closed */
	int pending_closes;
	bool freeing;

	/* The current run. */
	enum run_phase phase;
	char name[SCRIPT_NAME_MAX];
	script_done_fn cb;
	void *ctx;
	unsigned timeout_ms;
	int log_fd; /* per-script log, -1 when none */
	uint64_t start_ms;
	bool timed_out;
	bool exited;
	int64_t exit_status;
	int term_signal;
	enum script_result res;
	int status;
	char detail[SCRIPT_DETAIL_MAX];
};

/* Names a <var> may not take: ours would be shadowed, or shadow it. */
static const char *const reserved_vars[] = {
	"HAMIRROR_MODULE", "HAMIRROR_NODE", "HAMIRROR_PEER",
	"HAMIRROR_ROLE",   "SAFEMODULE",    "SAFEUSERBIN",
};

static const char *const result_names[] = {
	[SCRIPT_OK] = "ok",
	[SCRIPT_FAILED] = "failed",
	[SCRIPT_TIMEOUT] = "timeout",
	[SCRIPT_ERROR] = "error",
};

static void
runner_release(struct script_runner *s)
{
	size_t i;

	if (--s->pending_closes > 0)
		return;
	for (i = 0; i < s->n_vars; i++)
		free(s->vars[i]);
	free(s->vars);
	free(s->dir);
	free(s->cgroup_procs);
	free(s->log_dir);
	free(s->module);
	free(s->node);
	free(s->peer);
	free(s->path_env);
	free(s);
}

static char *
env_str(const char *name, const char *value)
{
	char *e;

	if (asprintf(&e, "%s=%s", name, value != NULL ? value : "") == -1)
		return NULL;
	return e;
}

static bool
var_reserved(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(reserved_vars); i++)
		if (strcmp(name, reserved_vars[i]) == 0)
			return true;
	return false;
}

static char *
dup_or_null(const char *s, bool *failed)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*failed = true;
	return d;
}

/*
 * Copy env (strings and vars; user->vars are turned into "NAME=value" now).
 * A <var name="PATH"> replaces the inherited PATH; a var named like one of
 * ours is dropped so the script always sees the daemon's values.
 */
struct script_runner *
script_runner_new(uv_loop_t *loop, const struct script_env *env)
{
	struct script_runner *s;
	const char *path = getenv("PATH");
	bool failed = false;
	size_t i;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->loop = loop;
	s->log_fd = -1;
	s->pending_closes = 1; /* the timer */
	s->dir = dup_or_null(env->dir != NULL ? env->dir : "/", &failed);
	s->log_dir = dup_or_null(env->log_dir, &failed);
	s->module = dup_or_null(env->module != NULL ? env->module : "", &failed);
	s->node = dup_or_null(env->node != NULL ? env->node : "", &failed);
	s->peer = dup_or_null(env->peer != NULL ? env->peer : "", &failed);
	s->cgroup_procs = dup_or_null(env->cgroup_procs, &failed);
	s->logging = env->user == NULL || env->user->logging;
	if (path != NULL && path[0] != '\0')
		s->path_env = env_str("PATH", path);
	else
		s->path_env = strdup(SCRIPT_DEFAULT_PATH);
	if (s->path_env == NULL)
		failed = true;
	if (env->user != NULL && env->user->n_vars > 0 && !failed) {
		s->vars = calloc(env->user->n_vars, sizeof(*s->vars));
		if (s->vars == NULL)
			failed = true;
		for (i = 0; s->vars != NULL && i < env->user->n_vars; i++) {
			const struct conf_var *v = &env->user->vars[i];
			char *e;

			if (var_reserved(v->name)) {
				log_debug("script: var name=%s ignored (reserved)", v->name);
				continue;
			}
			e = env_str(v->name, v->value);
			if (e == NULL) {
				failed = true;
				break;
			}
			if (strcmp(v->name, "PATH") == 0) {
				free(s->path_env);
				s->path_env = e;
				continue;
			}
			s->vars[s->n_vars++] = e;
		}
	}
	if (failed || uv_timer_init(loop, &s->timer) != 0) {
		runner_release(s);
		return NULL;
	}
	s->timer.data = s;
	s->proc.data = s;
	return s;
}

const char *
script_running(const struct script_runner *s)
{
	return s != NULL && s->phase != PH_IDLE ? s->name : NULL;
}

/* Signal the script's process group; never without a pid (kill(0) = us). */
static void
group_kill(struct script_runner *s, int sig)
{
	if (!s->proc_open || s->proc.pid <= 0)
		return;
	if (kill(-s->proc.pid, sig) == -1 && errno != ESRCH)
		log_warn("script: kill name=%s pgid=%d signal=%d: %s", s->name, s->proc.pid, sig,
		         mr_strerror(-errno));
}

static bool
group_alive(const struct script_runner *s)
{
	if (s->proc.pid <= 0)
		return false;
	return kill(-s->proc.pid, 0) == 0 || errno != ESRCH;
}

static void log_line(int fd, const char *fmt, ...) MR_PRINTF(2, 3);

/* One line into the per-script log (best effort: a full disk must not stop a
 * failover). */
static void
log_line(int fd, const char *fmt, ...)
{
	char line[SCRIPT_ARGS_TEXT_MAX + 256];
	va_list ap;
	int n;

	if (fd == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(fd, line, (size_t)n);
}

static void
close_log(struct script_runner *s)
{
	if (s->log_fd != -1)
		(void)close(s->log_fd);
	s->log_fd = -1;
}

/* Report the result of the run and go back to IDLE. The callback may start
 * another script or free the runner: s is not touched after it. */
static void
finish(struct script_runner *s)
{
	char detail[SCRIPT_DETAIL_MAX];
	script_done_fn cb = s->cb;
	void *ctx = s->ctx;
	enum script_result res = s->res;
	int status = s->status;
	uint64_t ms = mr_now_ms() - s->start_ms;

	(void)mr_strlcpy(detail, s->detail, sizeof(detail));
	if (res == SCRIPT_OK)
		log_notice("script: done name=%s result=ok status=%d ms=%" PRIu64 " detail=\"%s\"",
		           s->name, status, ms, detail);
	else
		log_warn("script: done name=%s result=%s status=%d ms=%" PRIu64 " detail=\"%s\"",
		         s->name, result_names[res], status, ms, detail);
	s->phase = PH_IDLE;
	s->name[0] = '\0';
	s->cb = NULL;
	s->ctx = NULL;
	cb(ctx, res, status, detail);
}

static void
timer_close_cb(uv_handle_t *h)
{
	runner_release(h->data);
}

static void
proc_close_cb(uv_handle_t *h)
{
	struct script_runner *s = h->data;

	s->proc_open = false;
	if (s->freeing) {
		runner_release(s);
		return;
	}
	finish(s);
}

/* The script (and, after a timeout, its group) is gone: compute the result,
 * write the footer, close the handle; finish() runs from the close callback. */
static void
complete(struct script_runner *s)
{
	uint64_t ms = mr_now_ms() - s->start_ms;

	(void)uv_timer_stop(&s->timer);
	if (s->term_signal != 0) {
		s->status = -s->term_signal;
		log_line(s->log_fd, "=== signal %d (%" PRIu64 " ms)%s", s->term_signal, ms,
		         s->timed_out ? " timeout" : "");
	} else {
		s->status = (int)s->exit_status;
		log_line(s->log_fd, "=== exit %d (%" PRIu64 " ms)%s", s->status, ms,
		         s->timed_out ? " timeout" : "");
	}
	if (s->timed_out) {
		s->res = SCRIPT_TIMEOUT;
		(void)snprintf(s->detail, sizeof(s->detail), "timed out after %u ms",
		               s->timeout_ms);
	} else if (s->term_signal != 0) {
		s->res = SCRIPT_FAILED;
		(void)snprintf(s->detail, sizeof(s->detail), "killed by signal %d", s->term_signal);
	} else {
		s->res = s->exit_status == 0 ? SCRIPT_OK : SCRIPT_FAILED;
		(void)snprintf(s->detail, sizeof(s->detail), "exit %d", s->status);
	}
	close_log(s);
	s->phase = PH_CLOSING;
	uv_close((uv_handle_t *)&s->proc, proc_close_cb);
}

static void
exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct script_runner *s = p->data;

	s->exited = true;
	s->exit_status = exit_status;
	s->term_signal = term_signal;
	if (s->freeing) {
		close_log(s);
		s->phase = PH_CLOSING;
		uv_close((uv_handle_t *)&s->proc, proc_close_cb);
		return;
	}
	/* Timed out, SIGTERM sent, SIGKILL not yet: leftovers of the group get
	 * the rest of the grace period, then SIGKILL from the timer. */
	if (s->phase == PH_TERM && group_alive(s))
		return;
	complete(s);
}

static void
timer_cb(uv_timer_t *t)
{
	struct script_runner *s = t->data;

	switch (s->phase) {
	case PH_DELIVER:
		finish(s);
		break;
	case PH_RUNNING:
		s->timed_out = true;
		log_warn("script: timeout name=%s timeout_ms=%u pgid=%d signal=TERM", s->name,
		         s->timeout_ms, s->proc.pid);
		group_kill(s, SIGTERM);
		s->phase = PH_TERM;
		(void)uv_timer_start(&s->timer, timer_cb, SCRIPT_KILL_GRACE_MS, 0);
		break;
	case PH_TERM:
		log_warn("script: timeout name=%s pgid=%d signal=KILL", s->name, s->proc.pid);
		group_kill(s, SIGKILL);
		s->phase = PH_KILLED;
		if (s->exited)
			complete(s);
		break;
	case PH_IDLE:
	case PH_KILLED:
	case PH_CLOSING:
		break;
	}
}

/* Deliver a result (s->detail already set) without running anything, from
 * the loop: not from inside script_run(), so callers never see their callback
 * re-entered. */
static void
deliver_later(struct script_runner *s, enum script_result res, int status)
{
	s->res = res;
	s->status = status;
	s->phase = PH_DELIVER;
	(void)uv_timer_start(&s->timer, timer_cb, 0, 0);
}

/*
 * mirrord runs scripts as root: a file or directory that someone else could
 * rewrite is a way in. Refuse what is writable by group or others or owned by
 * anyone but root or the daemon's own uid (sshd's StrictModes rule).
 * Returns 0, or -errno with s->detail set.
 */
static int
check_owner_mode(struct script_runner *s, const char *what, const char *path, const struct stat *st)
{
	uid_t me = geteuid();

	if (st->st_uid != 0 && st->st_uid != me) {
		(void)snprintf(s->detail, sizeof(s->detail),
		               "%s%s is owned by uid %u, not root or the daemon's uid", what, path,
		               (unsigned)st->st_uid);
		return -EPERM;
	}
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		(void)snprintf(s->detail, sizeof(s->detail),
		               "%s%s is writable by group or others (mode %04o); refused", what,
		               path, (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* Decide whether path may be run. Returns 1 to run it, 0 when it is absent
 * (success), or -errno with s->detail set. */
static int
check_script(struct script_runner *s, const char *path)
{
	struct stat st;
	int r;

	if (stat(path, &st) == -1) {
		r = -errno;
		if (r == -ENOENT)
			return 0;
		(void)snprintf(s->detail, sizeof(s->detail), "cannot stat %s: %s", path,
		               mr_strerror(r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		(void)snprintf(s->detail, sizeof(s->detail), "%s is not a regular file", path);
		return -EINVAL;
	}
	if (faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) == -1) {
		r = -errno;
		(void)snprintf(s->detail, sizeof(s->detail), "%s is not executable", path);
		return r;
	}
	r = check_owner_mode(s, "", path, &st);
	if (r < 0)
		return r;
	if (stat(s->dir, &st) == -1) {
		r = -errno;
		(void)snprintf(s->detail, sizeof(s->detail), "cannot stat %s: %s", s->dir,
		               mr_strerror(r));
		return r;
	}
	r = check_owner_mode(s, "scripts directory ", s->dir, &st);
	if (r < 0)
		return r;
	return 1;
}

static void
join_args(const char *const *args, char *buf, size_t len)
{
	size_t used = 0;
	size_t i;

	buf[0] = '\0';
	for (i = 0; args != NULL && args[i] != NULL; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", i > 0 ? " " : "", args[i]);

		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

/* Open the per-script log (or /dev/null) and write the header. Returns the fd
 * for the script's stdout/stderr or -errno. A log that cannot be opened is
 * not a reason to skip a failover script: warn and use /dev/null. */
static int
open_output(struct script_runner *s, const char *args_text)
{
	char path[PATH_MAX];
	char stamp[64];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int fd;

	if (s->logging && s->log_dir != NULL) {
		if (snprintf(path, sizeof(path), "%s/%s.%s.log", s->log_dir, s->module, s->name) >=
		    (int)sizeof(path)) {
			errno = ENAMETOOLONG;
			fd = -1;
		} else {
			fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
		}
		if (fd != -1) {
			(void)clock_gettime(CLOCK_REALTIME, &ts);
			(void)gmtime_r(&ts.tv_sec, &tm);
			n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
			(void)snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ",
			               ts.tv_nsec / 1000000L);
			log_line(fd, "=== %s %s %s", stamp, s->name, args_text);
			s->log_fd = fd;
			return fd;
		}
		log_warn("script: log name=%s path=%s: %s (output discarded)", s->name, path,
		         mr_strerror(-errno));
	}
	fd = open("/dev/null", O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1)
		return -errno;
	return fd;
}

/* envp for one run; the strings of the fixed entries are freed by free_env. */
#define SCRIPT_ENV_FIXED 6

static void
free_env(char **envp)
{
	size_t i;

	if (envp == NULL)
		return;
	for (i = 0; i < SCRIPT_ENV_FIXED; i++)
		free(envp[i + 1]);
	free(envp);
}

static char **
build_env(struct script_runner *s, const char *role)
{
	char **envp;
	size_t i, n = 0;

	envp = calloc(1 + SCRIPT_ENV_FIXED + s->n_vars + 1, sizeof(*envp));
	if (envp == NULL)
		return NULL;
	envp[n++] = s->path_env;
	envp[n++] = env_str("HAMIRROR_MODULE", s->module);
	envp[n++] = env_str("HAMIRROR_NODE", s->node);
	envp[n++] = env_str("HAMIRROR_PEER", s->peer);
	envp[n++] = env_str("HAMIRROR_ROLE", role);
	envp[n++] = env_str("SAFEMODULE", s->module);
	envp[n++] = env_str("SAFEUSERBIN", s->dir);
	for (i = 1; i < n; i++) {
		if (envp[i] == NULL) {
			free_env(envp);
			return NULL;
		}
	}
	for (i = 0; i < s->n_vars; i++)
		envp[n++] = s->vars[i];
	envp[n] = NULL;
	return envp;
}

static bool
name_valid(const char *name)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strlen(name);
	return len > 0 && len < SCRIPT_NAME_MAX && strchr(name, '/') == NULL &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/*
 * Checks, then spawn. Everything that concerns the script itself (absent,
 * refused, exec failure) is a result for cb; only bad arguments, EBUSY and
 * ENOMEM are returned here.
 */
int
script_run(struct script_runner *s, const char *name, const char *const *args, const char *role,
           unsigned timeout_ms, script_done_fn cb, void *ctx)
{
	char path[PATH_MAX];
	char args_text[SCRIPT_ARGS_TEXT_MAX];
	uv_process_options_t opt = { 0 };
	uv_stdio_container_t stdio[3];
	char **argv = NULL, **envp = NULL;
	size_t i, k = 0, n_args = 0;
	int null_fd = -1, out_fd = -1;
	int r;

	if (s == NULL || cb == NULL || !name_valid(name) || s->freeing)
		return -EINVAL;
	if (s->phase != PH_IDLE)
		return -EBUSY;
	if (snprintf(path, sizeof(path), "%s/%s", s->dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	while (args != NULL && args[n_args] != NULL)
		n_args++;
	join_args(args, args_text, sizeof(args_text));

	/* From here on the run is accepted: cb will be called once. */
	(void)mr_strlcpy(s->name, name, sizeof(s->name));
	s->cb = cb;
	s->ctx = ctx;
	s->timeout_ms = timeout_ms;
	s->start_ms = mr_now_ms();
	s->timed_out = false;
	s->exited = false;
	s->exit_status = 0;
	s->term_signal = 0;
	s->detail[0] = '\0';
	log_info("script: run name=%s args=\"%s\"", name, args_text);

	r = check_script(s, path);
	if (r == 0) {
		(void)mr_strlcpy(s->detail, "absent", sizeof(s->detail));
		deliver_later(s, SCRIPT_OK, 0);
		return 0;
	}
	if (r < 0) {
		deliver_later(s, SCRIPT_ERROR, r);
		return 0;
	}

	argv = calloc(n_args + 7, sizeof(*argv)); /* wrapper (5), script, args, NULL */
	envp = build_env(s, role);
	if (argv == NULL || envp == NULL) {
		r = -ENOMEM;
		goto err_unaccept;
	}
	if (s->cgroup_procs != NULL) {
		/* the shell joins the cgroup, then becomes the script: nothing the
		 * script starts can escape it (no race with a fork) */
		argv[k++] = (char *)"/bin/sh";
		argv[k++] = (char *)"-c";
		argv[k++] = (char *)SCRIPT_CGROUP_JOIN;
		argv[k++] = (char *)"hamirror-script";
		argv[k++] = s->cgroup_procs;
	}
	argv[k++] = path;
	for (i = 0; i < n_args; i++)
		argv[k++] = (char *)args[i];
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (null_fd == -1) {
		r = -errno;
		(void)snprintf(s->detail, sizeof(s->detail), "cannot open /dev/null: %s",
		               mr_strerror(r));
		goto err_deliver;
	}
	out_fd = open_output(s, args_text);
	if (out_fd < 0) {
		r = out_fd;
		(void)snprintf(s->detail, sizeof(s->detail), "cannot open /dev/null: %s",
		               mr_strerror(r));
		goto err_close_null;
	}

	stdio[0].flags = UV_INHERIT_FD;
	stdio[0].data.fd = null_fd;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = out_fd;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = out_fd;
	opt.exit_cb = exit_cb;
	opt.file = argv[0];
	opt.args = argv;
	opt.env = envp;
	opt.cwd = s->dir;
	opt.flags = UV_PROCESS_DETACHED;
	opt.stdio_count = 3;
	opt.stdio = stdio;

	r = uv_spawn(s->loop, &s->proc, &opt);
	s->proc.data = s;
	s->proc_open = true;
	(void)close(null_fd);
	if (out_fd != s->log_fd)
		(void)close(out_fd);
	free(argv);
	free_env(envp);
	if (r < 0) {
		/* The handle was initialised and must be closed; the result is
		 * delivered from proc_close_cb. pid is 0: no signals. */
		(void)snprintf(s->detail, sizeof(s->detail), "cannot run %s: %s", path,
		               mr_strerror(r));
		log_line(s->log_fd, "=== could not run: %s", mr_strerror(r));
		close_log(s);
		s->res = SCRIPT_ERROR;
		s->status = r;
		s->phase = PH_CLOSING;
		uv_close((uv_handle_t *)&s->proc, proc_close_cb);
		return 0;
	}
	s->phase = PH_RUNNING;
	log_debug("script: started name=%s pid=%d timeout_ms=%u", name, s->proc.pid, timeout_ms);
	if (timeout_ms > 0)
		(void)uv_timer_start(&s->timer, timer_cb, timeout_ms, 0);
	return 0;

err_close_null:
	(void)close(null_fd);
err_deliver:
	free(argv);
	free_env(envp);
	deliver_later(s, SCRIPT_ERROR, r);
	return 0;

err_unaccept:
	free(argv);
	free_env(envp);
	s->name[0] = '\0';
	s->cb = NULL;
	s->ctx = NULL;
	return r;
}

/*
 * SIGKILL whatever still runs in the script's group, drop the callback and
 * free from the last close callback. A running script's process handle is
 * closed only after its exit has been seen, so libuv reaps it (no zombie).
 */
void
script_runner_free(struct script_runner *s)
{
	if (s == NULL)
		return;
	MR_BUG_ON(s->freeing);
	s->freeing = true;
	s->cb = NULL;
	s->ctx = NULL;
	if (s->proc_open && s->phase != PH_CLOSING) {
		group_kill(s, SIGKILL);
		s->pending_closes++;
		if (s->exited) {
			/* Timed out, waiting for leftovers: the group has just
			 * been killed, nothing more to wait for. */
			close_log(s);
			s->phase = PH_CLOSING;
			uv_close((uv_handle_t *)&s->proc, proc_close_cb);
		}
		/* else exit_cb closes it */
	} else if (s->proc_open) {
		s->pending_closes++; /* close already requested */
	}
	(void)uv_timer_stop(&s->timer);
	uv_close((uv_handle_t *)&s->timer, timer_close_cb);
}
