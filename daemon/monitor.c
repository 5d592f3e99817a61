/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * monitor.c - the process monitor and the tcp / custom checkers (see
 * monitor.h). Everything runs on the loop thread: one timer polls /proc for
 * every <proc>, each tcp checker has its own timer and connects with libuv,
 * each custom checker is a child process reporting through mirrorctl.
 */
#include "monitor.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "script.h"
#include "util.h"
#include "witness.h"

#define RESPAWN_MS 1000u /* a custom checker program that ended is started again */

enum phase {
	PH_PRE = 0,
	PH_PRIM,
	PH_SECOND,
	PH_BOTH, /* prim or second */
};

enum res_state {
	ST_INIT = 0,
	ST_UP,
	ST_DOWN,
};

static const char *const state_names[] = { "init", "up", "down" };

enum res_kind {
	K_PROC = 0,
	K_TCP,
	K_CUSTOM,
	K_PING,
};

struct tcp_try;

struct res {
	struct monitor *mo;
	enum res_kind kind;
	char name[CONF_NAME_MAX + 8];
	char action[CONF_NAME_MAX];
	enum phase phase;
	enum res_state st;
	unsigned fails;
	bool active;
	uint64_t since_ms; /* active since */
	/* proc */
	const struct conf_proc *proc;
	regex_t name_re, arg_re;
	bool has_name_re, has_arg_re;
	int count;    /* this poll's matches in our network namespace */
	int count_cg; /* ... that the scripts started (in their cgroup) */
	bool tracked; /* seen in the scripts' cgroup: count only those from now on */
	/* tcp */
	const struct conf_check *check;
	uv_timer_t timer; /* tcp rounds; custom respawn */
	bool timer_init;
	unsigned round_left, round_bad;
	unsigned round_gen; /* a new round after reactivation ignores older attempts */
	/* custom */
	uv_process_t child;
	bool child_running;
	/* ping: the targets, probed like split-brain witnesses (ICMP echo) */
	struct conf_splitbrain ping;
	bool ping_pending;
};

struct tcp_try {
	struct monitor *mo;
	struct res *r;
	uv_tcp_t tcp;
	uv_connect_t req;
	uv_timer_t timer;
	int closes;
	bool done;
	unsigned gen;
};

struct monitor {
	uv_loop_t *loop;
	const struct cluster_conf *conf;
	char dir[4096];
	char *const *env;
	monitor_action_fn fn;
	void *ctx;
	struct res *res;
	size_t n_res;
	uv_timer_t poll;
	bool checkers_on, errd_on;
	bool ph[4];
	char cgroup_procs[4200]; /* the scripts' cgroup ("": none) */
	char cg_mount[4096];     /* where cgroup v2 is mounted ("": nowhere) */
	bool freeing;
	int closes;   /* handles (and tcp attempts) to close before the free */
	int n_tries;  /* tcp attempts in flight */
};

static void
release(struct monitor *mo)
{
	for (size_t i = 0; i < mo->n_res; i++)
		free(mo->res[i].ping.witnesses);
	free(mo->res);
	free(mo);
}

/* One handle (or attempt) of a monitor being freed is closed. */
static void
closed_one(struct monitor *mo)
{
	if (mo->freeing && --mo->closes == 0)
		release(mo);
}

static bool
phase_on(const struct monitor *mo, enum phase p)
{
	return p == PH_BOTH ? mo->ph[PH_PRIM] || mo->ph[PH_SECOND] : mo->ph[p];
}

static enum phase
phase_of(const char *s)
{
	return strcmp(s, "pre") == 0      ? PH_PRE
	       : strcmp(s, "second") == 0 ? PH_SECOND
	       : strcmp(s, "both") == 0   ? PH_BOTH
	                                  : PH_PRIM;
}

static bool
is_wait(const struct res *r)
{
	return strcmp(r->action, "wait") == 0;
}

static bool
is_keyword(const char *action)
{
	static const char *const words[] = { "restart", "stop", "stopstart", "wait", "noaction" };

	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (strcmp(action, words[i]) == 0)
			return true;
	return false;
}

static void run_handler(struct res *r, const char *reason);

/* The resource's state changes; report what its rule says. */
static void
set_state(struct res *r, enum res_state st, const char *reason)
{
	enum res_state was = r->st;

	if (was == st)
		return;
	r->st = st;
	log_info("check: resource=%s %s -> %s reason=\"%s\"", r->name, state_names[was],
	         state_names[st], reason);
	if (st == ST_DOWN && !is_keyword(r->action))
		run_handler(r, reason);
	else if (st == ST_DOWN)
		r->mo->fn(r->mo->ctx, r->name, r->action, reason);
	else if (st == ST_UP && is_wait(r)) /* (from init too: SafeKit waits for it) */
		r->mo->fn(r->mo->ctx, r->name, "wakeup", reason);
}

/* ---- <errd><proc> ---------------------------------------------------------------- */

static bool
proc_matches(const struct res *r, const char *comm, const char *cmdline)
{
	if (r->has_name_re) {
		if (regexec(&r->name_re, comm, 0, NULL, 0) != 0)
			return false;
	} else if (strncmp(comm, r->proc->name, 15) != 0) {
		return false; /* the kernel keeps 15 characters of a command name */
	}
	return !r->has_arg_re || regexec(&r->arg_re, cmdline, 0, NULL, 0) == 0;
}

static ssize_t
read_small(int dfd, const char *name, char *buf, size_t len)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	(void)close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Is process directory pfd in our network namespace? A process of another
 * one (another node on the same kernel, a container) is not this node's
 * application. */
static bool
same_netns(int pfd, const char *mine)
{
	char ns[64];
	ssize_t n = readlinkat(pfd, "ns/net", ns, sizeof(ns) - 1);

	if (n < 0)
		return false;
	ns[n] = '\0';
	return strcmp(ns, mine) == 0;
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* The pids in the scripts' cgroup, sorted (NULL and 0 without one). */
static int *
cgroup_pids(const struct monitor *mo, size_t *n)
{
	FILE *f = mo->cgroup_procs[0] ? fopen(mo->cgroup_procs, "re") : NULL;
	int *v = NULL, pid;
	size_t cap = 0;

	*n = 0;
	if (f == NULL)
		return NULL;
	while (fscanf(f, "%d", &pid) == 1) {
		if (*n == cap) {
			int *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));

			if (nv == NULL)
				break;
			v = nv;
		}
		v[(*n)++] = pid;
	}
	(void)fclose(f);
	if (v != NULL)
		qsort(v, *n, sizeof(*v), cmp_int);
	return v;
}

/* <proc service="yes">: the processes of systemd unit `name` (".service"
 * added without a suffix), from its cgroup under system.slice, that live
 * in our network namespace. */
static int
count_unit(const struct monitor *mo, const struct res *r, const char *mine)
{
	char path[8400], pidname[24];
	const char *name = r->proc->name;
	int pid, n = 0;
	FILE *f;

	if (mo->cg_mount[0] == '\0')
		return 0;
	(void)snprintf(path, sizeof(path), "%s/system.slice/%s%s/cgroup.procs", mo->cg_mount, name,
	               strchr(name, '.') != NULL ? "" : ".service");
	f = fopen(path, "re");
	if (f == NULL)
		return 0; /* no such unit running */
	while (fscanf(f, "%d", &pid) == 1) {
		int pfd;

		(void)snprintf(pidname, sizeof(pidname), "/proc/%d", pid);
		pfd = open(pidname, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0)
			continue;
		if (same_netns(pfd, mine))
			n++;
		(void)close(pfd);
	}
	(void)fclose(f);
	return n;
}

/* One pass over /proc for every active <proc>. */
static void
poll_procs(struct monitor *mo)
{
	char comm[64], cmdline[4096], mine[64];
	ssize_t mn = readlink("/proc/self/ns/net", mine, sizeof(mine) - 1);
	size_t n_cg;
	int *cg = cgroup_pids(mo, &n_cg);
	bool need_args = false;
	struct dirent *e;
	DIR *d;

	mine[mn > 0 ? mn : 0] = '\0';
	for (size_t i = 0; i < mo->n_res; i++) {
		mo->res[i].count = mo->res[i].count_cg = 0;
		if (mo->res[i].kind == K_PROC && mo->res[i].active && mo->res[i].proc->service)
			mo->res[i].count = count_unit(mo, &mo->res[i], mine);
		need_args |= mo->res[i].kind == K_PROC && mo->res[i].active &&
		             mo->res[i].has_arg_re;
	}
	d = opendir("/proc");
	if (d == NULL) {
		free(cg);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		int pfd;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pfd = openat(dirfd(d), e->d_name, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0)
			continue;
		if (read_small(pfd, "comm", comm, sizeof(comm)) > 0) {
			comm[strcspn(comm, "\n")] = '\0';
			cmdline[0] = '\0';
			if (need_args) {
				ssize_t n = read_small(pfd, "cmdline", cmdline, sizeof(cmdline));

				for (ssize_t k = 0; k + 1 < n; k++)
					if (cmdline[k] == '\0')
						cmdline[k] = ' ';
			}
			bool here = false, checked = false;

			for (size_t i = 0; i < mo->n_res; i++) {
				struct res *r = &mo->res[i];

				if (r->kind != K_PROC || !r->active || r->proc->service ||
				    !proc_matches(r, comm, cmdline))
					continue;
				if (!checked) {
					here = same_netns(pfd, mine);
					checked = true;
				}
				if (!here)
					continue;
				r->count++;
				if (cg != NULL) {
					int pid = atoi(e->d_name);

					if (bsearch(&pid, cg, n_cg, sizeof(*cg), cmp_int) != NULL)
						r->count_cg++;
				}
			}
		}
		(void)close(pfd);
	}
	(void)closedir(d);
	free(cg);
}

static void
poll_cb(uv_timer_t *t)
{
	struct monitor *mo = t->data;
	uint64_t now = mr_now_ms();
	char why[160];

	poll_procs(mo);
	for (size_t i = 0; i < mo->n_res; i++) {
		struct res *r = &mo->res[i];
		const struct conf_proc *p = r->proc;
		bool bad;

		if (r->kind != K_PROC || !r->active)
			continue;
		/* Once a matching process started by the scripts was seen, only those
		 * count: another process of the same name is not the application. An
		 * application the scripts only ask another manager to start (systemctl)
		 * is never in their cgroup: every match in the namespace counts. */
		if (r->count_cg > 0 && !r->tracked) {
			r->tracked = true;
			log_info("check: resource=%s follows the processes the scripts started",
			         r->name);
		}
		if (r->tracked)
			r->count = r->count_cg;
		/* start_after="n": watched from the n-th poll after it became active */
		if (p->start_after > 1 &&
		    now - r->since_ms < (uint64_t)(p->start_after - 1) * mo->conf->errd.polltimer_ms)
			continue;
		bad = (p->atleast >= 0 && r->count < p->atleast) ||
		      (p->atmax >= 0 && r->count > p->atmax);
		if (!bad) {
			r->fails = 0;
			(void)snprintf(why, sizeof(why), "%d running", r->count);
			set_state(r, ST_UP, why);
			continue;
		}
		if (++r->fails < 2)
			continue; /* must hold for one more poll */
		if (p->atleast >= 0 && r->count < p->atleast)
			(void)snprintf(why, sizeof(why), "%d running, at least %d expected",
			               r->count, p->atleast);
		else
			(void)snprintf(why, sizeof(why), "%d running, at most %d expected", r->count,
			               p->atmax);
		set_state(r, ST_DOWN, why);
	}
}

/* ---- tcp -------------------------------------------------------------------------- */

static void tcp_round(uv_timer_t *t);

static void
try_closed(uv_handle_t *h)
{
	struct tcp_try *tt = h->data;
	struct monitor *mo = tt->mo;

	if (--tt->closes > 0)
		return;
	free(tt);
	mo->n_tries--;
	closed_one(mo);
}

/* One target answered (ok) or not: count it; the round ends with the last. */
static void
try_end(struct tcp_try *tt, bool ok, const char *why)
{
	struct res *r = tt->r;

	if (tt->done)
		return;
	tt->done = true;
	(void)uv_timer_stop(&tt->timer);
	uv_close((uv_handle_t *)&tt->timer, try_closed);
	uv_close((uv_handle_t *)&tt->tcp, try_closed);
	if (tt->mo->freeing || !r->active || tt->gen != r->round_gen)
		return;
	if (!ok) {
		r->round_bad++;
		log_debug("check: resource=%s connect failed: %s", r->name, why);
	}
	if (--r->round_left > 0)
		return;
	if (r->round_bad == 0) {
		r->fails = 0;
		set_state(r, ST_UP, "connected");
	} else if (++r->fails >= 2) {
		set_state(r, ST_DOWN, why);
	}
}

static void
connect_cb(uv_connect_t *req, int status)
{
	struct tcp_try *tt = req->data;
	char why[128];

	(void)snprintf(why, sizeof(why), "connect: %s", status == 0 ? "ok" : uv_strerror(status));
	try_end(tt, status == 0, why);
}

static void
try_timeout_cb(uv_timer_t *t)
{
	struct tcp_try *tt = t->data;

	try_end(tt, false, "no connection within the timeout");
}

static void
tcp_round(uv_timer_t *t)
{
	struct res *r = t->data;
	struct monitor *mo = r->mo;

	if (!r->active || r->round_left > 0 || mo->freeing)
		return; /* the previous round is still running */
	r->round_left = (unsigned)r->check->n_to;
	r->round_bad = 0;
	for (size_t i = 0; i < r->check->n_to; i++) {
		const struct conf_check_to *to = &r->check->to[i];
		struct sockaddr_storage sa = to->addr;
		struct tcp_try *tt = calloc(1, sizeof(*tt));
		int e;

		if (tt == NULL) {
			r->round_left--;
			r->round_bad++;
			continue;
		}
		if (sa.ss_family == AF_INET)
			((struct sockaddr_in *)&sa)->sin_port = htons(to->port);
		else
			((struct sockaddr_in6 *)&sa)->sin6_port = htons(to->port);
		tt->mo = mo;
		tt->r = r;
		tt->gen = r->round_gen;
		tt->closes = 2;
		mo->n_tries++;
		tt->tcp.data = tt->timer.data = tt->req.data = tt;
		MR_BUG_ON(uv_tcp_init(mo->loop, &tt->tcp) != 0);
		MR_BUG_ON(uv_timer_init(mo->loop, &tt->timer) != 0);
		(void)uv_timer_start(&tt->timer, try_timeout_cb, to->timeout_ms, 0);
		e = uv_tcp_connect(&tt->req, &tt->tcp, (const struct sockaddr *)&sa, connect_cb);
		if (e < 0) {
			char why[128];

			(void)snprintf(why, sizeof(why), "connect: %s", uv_strerror(e));
			try_end(tt, false, why);
		}
	}
}

/* ---- ping ------------------------------------------------------------------------- */

static void
ping_done(void *ctx, bool reached, const char *detail)
{
	struct res *r = ctx;
	struct monitor *mo = r->mo;

	r->ping_pending = false;
	mo->n_tries--;
	if (mo->freeing) {
		closed_one(mo);
		return;
	}
	if (!r->active)
		return;
	if (reached) {
		r->fails = 0;
		set_state(r, ST_UP, detail);
	} else if (++r->fails >= 2) {
		set_state(r, ST_DOWN, detail);
	}
}

static void
ping_round(uv_timer_t *t)
{
	struct res *r = t->data;

	if (!r->active || r->ping_pending || r->mo->freeing)
		return;
	if (witness_check(r->mo->loop, &r->ping, r->check->to[0].timeout_ms, ping_done, r) == 0) {
		r->ping_pending = true;
		r->mo->n_tries++;
	}
}

/* ---- handler programs (<proc action="program">) ----------------------------------- */

struct handler_run {
	uv_process_t p;
	struct res *r;
};

static void
handler_closed(uv_handle_t *h)
{
	struct handler_run *hr = h->data;
	struct monitor *mo = hr->r->mo;

	free(hr);
	mo->n_tries--;
	closed_one(mo);
}

static void
handler_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct handler_run *hr = p->data;
	struct res *r = hr->r;

	if (!r->mo->freeing && (status != 0 || sig != 0)) {
		char why[160];

		(void)snprintf(why, sizeof(why), "handler %s failed (status %lld, signal %d)",
		               r->action, (long long)status, sig);
		r->mo->fn(r->mo->ctx, r->name, "stopstart", why);
	} else if (!r->mo->freeing) {
		log_notice("check: resource=%s handled by %s", r->name, r->action);
	}
	uv_close((uv_handle_t *)p, handler_closed);
}

/* SafeKit: a handler's exit 0 means handled; anything else means stopstart. */
static void
run_handler(struct res *r, const char *reason)
{
	struct monitor *mo = r->mo;
	struct handler_run *hr = calloc(1, sizeof(*hr));
	char path[8200], why[256];
	/* in the scripts' cgroup, like them: what it starts is the application */
	char *wrapped[] = { (char *)"/bin/sh", (char *)"-c",
		            (char *)SCRIPT_CGROUP_JOIN,
		            (char *)"hamirror-handler", mo->cgroup_procs, path, r->name, why, NULL };
	char **args = mo->cgroup_procs[0] ? wrapped : wrapped + 5;
	uv_stdio_container_t io[3] = { { .flags = UV_IGNORE }, { .flags = UV_IGNORE },
		                       { .flags = UV_IGNORE } };
	uv_process_options_t o = { .file = args[0], .args = args, .env = (char **)mo->env,
		                   .cwd = mo->dir, .exit_cb = handler_exit_cb, .stdio = io,
		                   .stdio_count = 3 };
	int e;

	if (r->action[0] == '/')
		(void)snprintf(path, sizeof(path), "%s", r->action);
	else
		(void)snprintf(path, sizeof(path), "%s/%s", mo->dir, r->action);
	(void)snprintf(why, sizeof(why), "%s", reason);
	log_warn("check: action=%s (handler) resource=%s reason=\"%s\"", r->action, r->name,
	         reason);
	if (hr == NULL) {
		mo->fn(mo->ctx, r->name, "stopstart", "out of memory for the handler");
		return;
	}
	hr->r = r;
	hr->p.data = hr;
	e = uv_spawn(mo->loop, &hr->p, &o);
	if (e < 0) {
		(void)snprintf(why, sizeof(why), "handler %s cannot run: %s", r->action,
		               uv_strerror(e));
		mo->n_tries++;
		uv_close((uv_handle_t *)&hr->p, handler_closed);
		mo->fn(mo->ctx, r->name, "stopstart", why);
		return;
	}
	mo->n_tries++;
}

/* ---- custom ----------------------------------------------------------------------- */

static void spawn_custom(struct res *r);

static void
respawn_cb(uv_timer_t *t)
{
	spawn_custom(t->data);
}

static void
child_closed(uv_handle_t *h)
{
	struct res *r = h->data;

	r->child_running = false;
	if (r->mo->freeing) {
		closed_one(r->mo);
		return;
	}
	if (r->active) /* it ended by itself: start it again in a moment */
		(void)uv_timer_start(&r->timer, respawn_cb, RESPAWN_MS, 0);
}

static void
child_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct res *r = p->data;

	log_info("check: resource=%s program ended status=%lld signal=%d", r->name,
	         (long long)status, sig);
	uv_close((uv_handle_t *)p, child_closed);
}

static void
spawn_custom(struct res *r)
{
	struct monitor *mo = r->mo;
	char path[8200], *args[34], *arg = NULL, *save = NULL, *tok;
	uv_process_options_t o = { 0 };
	uv_stdio_container_t io[3] = { { .flags = UV_IGNORE }, { .flags = UV_IGNORE },
		                       { .flags = UV_IGNORE } };
	size_t n = 0;
	int e;

	if (!r->active || r->child_running || mo->freeing)
		return;
	if (r->check->exec[0] == '/')
		(void)snprintf(path, sizeof(path), "%s", r->check->exec);
	else
		(void)snprintf(path, sizeof(path), "%s/%s", mo->dir, r->check->exec);
	args[n++] = path;
	if (r->check->arg != NULL && (arg = strdup(r->check->arg)) != NULL)
		for (tok = strtok_r(arg, " \t", &save); tok != NULL && n < 33;
		     tok = strtok_r(NULL, " \t", &save))
			args[n++] = tok;
	args[n] = NULL;
	o.file = path;
	o.args = args;
	o.env = (char **)mo->env;
	o.cwd = mo->dir;
	o.exit_cb = child_exit_cb;
	o.stdio = io;
	o.stdio_count = 3;
	r->child.data = r;
	e = uv_spawn(mo->loop, &r->child, &o);
	free(arg);
	if (e < 0) {
		log_ratelimited(LOG_LVL_ERR, 60000,
		                "check: resource=%s cannot start program=%s err=\"%s\"", r->name,
		                path, uv_strerror(e));
		uv_close((uv_handle_t *)&r->child, child_closed);
		r->child_running = true; /* until closed */
		return;
	}
	r->child_running = true;
	log_info("check: resource=%s program started pid=%d exec=%s", r->name, r->child.pid,
	         path);
}

/* ---- activity ---------------------------------------------------------------------- */

static bool
enabled(const struct monitor *mo, const struct res *r)
{
	return r->kind == K_PROC ? mo->errd_on : mo->checkers_on;
}

static void
activate(struct res *r, bool on)
{
	if (r->active == on)
		return;
	r->active = on;
	r->fails = 0;
	r->tracked = false;
	r->since_ms = mr_now_ms();
	if (!on)
		r->st = ST_INIT; /* (no report: the phase ended, not the resource) */
	switch (r->kind) {
	case K_PROC:
		break;
	case K_TCP:
		if (on)
			(void)uv_timer_start(&r->timer, tcp_round, 0, r->check->to[0].interval_ms);
		else
			(void)uv_timer_stop(&r->timer);
		r->round_left = 0;
		r->round_gen++;
		break;
	case K_PING:
		if (on)
			(void)uv_timer_start(&r->timer, ping_round, 0, r->check->to[0].interval_ms);
		else
			(void)uv_timer_stop(&r->timer);
		break;
	case K_CUSTOM:
		if (on) {
			spawn_custom(r);
		} else {
			(void)uv_timer_stop(&r->timer);
			if (r->child_running && r->child.pid > 0)
				(void)uv_process_kill(&r->child, SIGTERM);
		}
		break;
	}
}

static void
reconsider(struct monitor *mo)
{
	for (size_t i = 0; i < mo->n_res; i++) {
		struct res *r = &mo->res[i];

		activate(r, enabled(mo, r) && phase_on(mo, r->phase));
	}
}

void
monitor_set_phase(struct monitor *mo, bool pre, bool prim, bool second)
{
	if (mo == NULL)
		return;
	mo->ph[PH_PRE] = pre;
	mo->ph[PH_PRIM] = prim;
	mo->ph[PH_SECOND] = second;
	reconsider(mo);
}

void
monitor_enable(struct monitor *mo, bool checkers, bool errd)
{
	if (mo == NULL)
		return;
	mo->checkers_on = checkers;
	mo->errd_on = errd;
	reconsider(mo);
}

/* ---- setup ------------------------------------------------------------------------- */

static bool
compile(regex_t *re, const char *src, const char *what, const char *name)
{
	if (src == NULL)
		return false;
	if (regcomp(re, src, REG_EXTENDED | REG_NOSUB) != 0) {
		log_err("check: proc=%s %s=\"%s\" does not compile; ignored", name, what, src);
		return false;
	}
	return true;
}

struct monitor *
monitor_new(uv_loop_t *loop, const struct cluster_conf *conf, const char *dir, char *const *env,
            const char *cgroup_procs, monitor_action_fn fn, void *ctx)
{
	struct monitor *mo = mr_xcalloc(1, sizeof(*mo));
	size_t n = 0;

	if (cgroup_procs != NULL)
		(void)snprintf(mo->cgroup_procs, sizeof(mo->cgroup_procs), "%s", cgroup_procs);
	mr_cgroup2_mount(mo->cg_mount, sizeof(mo->cg_mount));
	mo->loop = loop;
	mo->conf = conf;
	(void)snprintf(mo->dir, sizeof(mo->dir), "%s", dir);
	mo->env = env;
	mo->fn = fn;
	mo->ctx = ctx;
	mo->checkers_on = mo->errd_on = true;
	mo->res = mr_xcalloc(conf->errd.n_procs + conf->n_checks + 1, sizeof(*mo->res));
	for (size_t i = 0; conf->errd.present && i < conf->errd.n_procs; i++) {
		struct res *r = &mo->res[n++];
		const struct conf_proc *p = &conf->errd.procs[i];

		r->mo = mo;
		r->kind = K_PROC;
		r->proc = p;
		(void)snprintf(r->name, sizeof(r->name), "proc.%s", p->name);
		(void)snprintf(r->action, sizeof(r->action), "%s", p->action);
		r->phase = phase_of(p->class_);
		r->has_name_re = compile(&r->name_re, p->nameregex, "nameregex", p->name);
		r->has_arg_re = compile(&r->arg_re, p->argregex, "argregex", p->name);
	}
	for (size_t i = 0; i < conf->n_checks; i++) {
		const struct conf_check *ck = &conf->checks[i];
		struct res *r;

		if (ck->kind == CONF_CHECK_INTF || ck->kind == CONF_CHECK_IP)
			continue; /* intf and ip: the cluster's own checks (vip.c) */
		if ((ck->kind == CONF_CHECK_TCP || ck->kind == CONF_CHECK_PING) && ck->n_to == 0)
			continue;
		r = &mo->res[n++];
		r->mo = mo;
		r->kind = ck->kind == CONF_CHECK_TCP    ? K_TCP
		          : ck->kind == CONF_CHECK_PING ? K_PING
		                                        : K_CUSTOM;
		r->check = ck;
		(void)snprintf(r->name, sizeof(r->name), "%s.%s",
		               r->kind == K_TCP ? "tcp" : r->kind == K_PING ? "ping" : "custom",
		               ck->ident);
		if (r->kind == K_PING) {
			r->ping.present = true;
			r->ping.witnesses = mr_xcalloc(ck->n_to, sizeof(*r->ping.witnesses));
			for (size_t k = 0; k < ck->n_to; k++)
				r->ping.witnesses[k] = ck->to[k].addr;
			r->ping.n_witnesses = ck->n_to;
		}
		(void)snprintf(r->action, sizeof(r->action), "%s", ck->action);
		r->phase = phase_of(ck->when);
		MR_BUG_ON(uv_timer_init(loop, &r->timer) != 0);
		r->timer.data = r;
		r->timer_init = true;
	}
	mo->n_res = n;
	MR_BUG_ON(uv_timer_init(loop, &mo->poll) != 0);
	mo->poll.data = mo;
	if (conf->errd.present && conf->errd.n_procs > 0)
		(void)uv_timer_start(&mo->poll, poll_cb, conf->errd.polltimer_ms,
		                     conf->errd.polltimer_ms);
	return mo;
}

static void
handle_closed(uv_handle_t *h)
{
	closed_one(h->data);
}

void
monitor_free(struct monitor *mo)
{
	if (mo == NULL)
		return;
	mo->freeing = true;
	mo->closes = 1 + mo->n_tries;
	for (size_t i = 0; i < mo->n_res; i++) {
		struct res *r = &mo->res[i];

		r->active = false;
		if (r->kind == K_PROC) {
			if (r->has_name_re)
				regfree(&r->name_re);
			if (r->has_arg_re)
				regfree(&r->arg_re);
		}
		if (r->timer_init) {
			r->timer.data = mo;
			mo->closes++;
			uv_close((uv_handle_t *)&r->timer, handle_closed);
		}
		if (r->child_running && !uv_is_closing((uv_handle_t *)&r->child)) {
			(void)uv_process_kill(&r->child, SIGKILL);
			mo->closes++; /* child_closed() counts it down */
			uv_close((uv_handle_t *)&r->child, child_closed);
		} else if (r->child_running) {
			mo->closes++;
		}
	}
	uv_close((uv_handle_t *)&mo->poll, handle_closed);
	/* (tcp attempts in flight end at their timeout at the latest) */
}

/* ---- admin ------------------------------------------------------------------------- */

int
monitor_set(struct monitor *mo, const char *resource, const char *value, char *msg,
            size_t msg_len)
{
	enum res_state st;

	if (strcmp(value, "up") == 0)
		st = ST_UP;
	else if (strcmp(value, "down") == 0)
		st = ST_DOWN;
	else {
		(void)snprintf(msg, msg_len, "value \"%s\": expected up or down", value);
		return -EINVAL;
	}
	for (size_t i = 0; mo != NULL && i < mo->n_res; i++) {
		struct res *r = &mo->res[i];

		if (strcmp(r->name, resource) != 0)
			continue;
		if (r->kind != K_CUSTOM) {
			(void)snprintf(msg, msg_len, "%s is set by the monitor itself", resource);
			return -EPERM;
		}
		if (!r->active) {
			(void)snprintf(msg, msg_len, "%s is not active now (when=%s)", resource,
			               r->check->when);
			return -EAGAIN;
		}
		set_state(r, st, st == ST_UP ? "set up by its program" : "set down by its program");
		(void)snprintf(msg, msg_len, "%s is %s", resource, value);
		return 0;
	}
	(void)snprintf(msg, msg_len, "no resource %s (custom.<ident> of a <custom> checker)",
	               resource);
	return -ENOENT;
}

bool
monitor_wait_ok(struct monitor *mo, char *why, size_t why_len)
{
	for (size_t i = 0; mo != NULL && i < mo->n_res; i++) {
		const struct res *r = &mo->res[i];

		if (r->active && is_wait(r) && r->st != ST_UP) { /* init holds too */
			(void)snprintf(why, why_len, "resource %s is %s", r->name,
			               state_names[r->st]);
			return false;
		}
	}
	return true;
}

void
monitor_status(struct monitor *mo, json_t *out)
{
	json_t *res = json_object();

	if (mo == NULL || res == NULL) {
		json_decref(res);
		return;
	}
	for (size_t i = 0; i < mo->n_res; i++)
		json_object_set_new(res, mo->res[i].name,
		                    json_string(state_names[mo->res[i].st]));
	json_object_set_new(out, "resources", res);
	json_object_set_new(out, "checkers", json_string(mo->checkers_on ? "on" : "off"));
	json_object_set_new(out, "errd", json_string(mo->errd_on ? "on" : "off"));
}
