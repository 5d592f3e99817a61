/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mirrorctl.c - the admin CLI: parse the command line (cmd.c), locate the
 * module's control socket and log from node.ini, run the command and turn the
 * outcome into a stable exit code (0 ok, 1 failed, 2 usage, 3 unreachable;
 * `state` exits with the state and uses 5 for "could not tell").
 *
 * One request per process (`status -w`: one per interval): connect to
 * RUN_DIR/MODULE.sock, send one frame, read exactly one reply, all under one
 * CTL_TIMEOUT_MS deadline. It never changes HA state itself. `config` and
 * `log` work without a daemon. Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "conf.h"
#include "ctl_proto.h"
#include "err.h"
#include "out.h"
#include "util.h"

#define CTL_TIMEOUT_MS       10000
#define CTL_NODE_INI_DEFAULT "/etc/hamirror/node.ini"
#define LOG_POLL_MS          200
#define WATCH_TICK_MS        200 /* longest sleep between checks for SIGINT */
#define TTY_CLEAR            "\033[H\033[2J"
#define TTY_CURSOR_HIDE      "\033[?25l"
#define TTY_CURSOR_SHOW      "\033[?25h"

struct ctx {
	struct cmd_line cl;
	const char *module; /* -m or $MIRROR_MODULE; NULL with -s alone */
	char sock_path[PATH_MAX];
	char log_path[PATH_MAX];
};

typedef int (*run_fn)(struct ctx *x);

/* Set by SIGINT/SIGTERM in `log -f` and `status -w`; also cuts short a
 * request that is waiting for the daemon. */
static volatile sig_atomic_t stop_requested;

static void
on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SIGINT and SIGTERM set stop_requested instead of killing mirrorctl. No
 * SA_RESTART: a blocked poll() or nanosleep() returns at once. */
static void
catch_stop_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };

	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
}

/* ---- locating the module ------------------------------------------------ */

/* x->sock_path and x->log_path from node.ini's directories. 0 or -ENAMETOOLONG. */
static int
set_paths(struct ctx *x, const char *ini, const char *run_dir, const char *log_dir)
{
	if (snprintf(x->sock_path, sizeof(x->sock_path), "%s/%s.sock", run_dir, x->module) >=
	            (int)sizeof(x->sock_path) ||
	    snprintf(x->log_path, sizeof(x->log_path), "%s/%s.log", log_dir, x->module) >=
	            (int)sizeof(x->log_path)) {
		fprintf(stderr, "mirrorctl: run_dir or log_dir in %s is too long\n", ini);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Fill x->module, x->sock_path and x->log_path from -m/$MIRROR_MODULE, -s and
 * node.ini. Returns CMD_EXIT_OK to go on, or the exit code to stop with
 * (the reason is printed). */
static int
locate(struct ctx *x, bool need_socket)
{
	const char *ini = x->cl.node_ini ? x->cl.node_ini : CTL_NODE_INI_DEFAULT;
	int fail = need_socket ? cmd_unreachable_exit(x->cl.cmd) : CMD_EXIT_FAILED;
	struct conf_errs errs = { 0 };
	struct node_conf *n = NULL;
	size_t i;
	int r;

	x->module = x->cl.module;
	if (x->module == NULL) {
		x->module = getenv("MIRROR_MODULE");
		if (x->module != NULL && x->module[0] == '\0')
			x->module = NULL;
		if (x->module != NULL && !cmd_module_valid(x->module)) {
			fprintf(stderr, "mirrorctl: invalid module name '%s' in $MIRROR_MODULE\n",
			        x->module);
			return CMD_EXIT_USAGE;
		}
	}
	/* $MIRROR_SOCKET: set by mirrord for the programs it starts (custom checkers) */
	if (need_socket && x->cl.socket == NULL && x->cl.module == NULL &&
	    getenv("MIRROR_SOCKET") != NULL && getenv("MIRROR_SOCKET")[0] != '\0')
		x->cl.socket = getenv("MIRROR_SOCKET");
	if (need_socket && x->cl.socket != NULL) {
		if (mr_strlcpy(x->sock_path, x->cl.socket, sizeof(x->sock_path)) < 0) {
			fprintf(stderr, "mirrorctl: socket path too long: %s\n", x->cl.socket);
			return CMD_EXIT_USAGE;
		}
		return CMD_EXIT_OK;
	}
	if (x->module == NULL) {
		fprintf(stderr,
		        "mirrorctl: no module given: use -m MODULE or set MIRROR_MODULE%s\n",
		        need_socket ? " (or give the socket with -s PATH)" : "");
		return CMD_EXIT_USAGE;
	}

	r = conf_node_load(ini, &n, &errs);
	if (r < 0) {
		char *run_dir = NULL, *log_dir = NULL;

		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		conf_errs_done(&errs);
		/* The daemon may still be running with the file as it was: reach it
		 * through run_dir/log_dir alone, but say that the file is broken. */
		if (r == MR_ECONFIG && conf_node_peek_dirs(ini, &run_dir, &log_dir) == 0) {
			fprintf(stderr,
			        "mirrorctl: warning: %s has errors (mirrord would refuse to "
			        "start with it); using its run_dir and log_dir anyway\n",
			        ini);
			r = set_paths(x, ini, run_dir, log_dir);
			free(run_dir);
			free(log_dir);
			return r < 0 ? fail : CMD_EXIT_OK;
		}
		fprintf(stderr, "mirrorctl: cannot use node config %s: %s%s\n", ini, mr_strerror(r),
		        x->cl.node_ini ? "" : " (give another with -n FILE)");
		return fail;
	}
	conf_errs_done(&errs);
	if (n->run_dir == NULL || n->log_dir == NULL) {
		fprintf(stderr, "mirrorctl: %s sets no run_dir or no log_dir\n", ini);
		conf_node_free(n);
		return fail;
	}
	r = set_paths(x, ini, n->run_dir, n->log_dir);
	conf_node_free(n);
	return r < 0 ? fail : CMD_EXIT_OK;
}

/* ---- one request, one reply ---------------------------------------------- */

static int
remaining_ms(uint64_t deadline_ms)
{
	uint64_t now = mr_now_ms();

	return now >= deadline_ms ? 0 : (int)(deadline_ms - now);
}

/* Wait for events on fd until the deadline. 0 when ready, -ETIMEDOUT,
 * -EINTR once a stop was requested, -errno. */
static int
wait_fd(int fd, short events, uint64_t deadline_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	for (;;) {
		n = poll(&p, 1, remaining_ms(deadline_ms));
		if (n == -1 && errno == EINTR && !stop_requested)
			continue;
		if (n == -1)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		return 0;
	}
}

/* Connect to path before the deadline. Returns the fd or -errno. */
static int
sock_connect(const char *path, uint64_t deadline_ms)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t elen = sizeof(int);
	int fd, r, soerr = 0;

	if (mr_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) < 0)
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	/* A full backlog gives EAGAIN on a non-blocking AF_UNIX connect: retry. */
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == EINTR)
			continue;
		if (errno == EINPROGRESS) {
			r = wait_fd(fd, POLLOUT, deadline_ms);
			if (r < 0)
				goto err_close;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) == -1) {
				r = -errno;
				goto err_close;
			}
			if (soerr != 0) {
				r = -soerr;
				goto err_close;
			}
			return fd;
		}
		if (errno != EAGAIN) {
			r = -errno;
			goto err_close;
		}
		if (remaining_ms(deadline_ms) == 0) {
			r = -ETIMEDOUT;
			goto err_close;
		}
		if (stop_requested) {
			r = -EINTR;
			goto err_close;
		}
		(void)nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000000L }, NULL);
	}
	return fd;

err_close:
	(void)close(fd);
	return r;
}

static int
send_all(int fd, const char *buf, size_t len, uint64_t deadline_ms)
{
	ssize_t n;
	int r;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			r = wait_fd(fd, POLLOUT, deadline_ms);
			if (r < 0)
				return r;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read until one whole reply frame arrived. Returns 0 and *msg, -ECONNRESET
 * when the daemon closed first, -ETIMEDOUT, MR_EPROTO/MR_ETOOBIG (reason in
 * err) or -errno. */
static int
recv_reply(int fd, uint64_t deadline_ms, json_t **msg, char *err, size_t err_len)
{
	struct ctl_rd rd;
	char buf[4096];
	ssize_t n;
	int r;

	ctl_rd_init(&rd);
	for (;;) {
		r = ctl_rd_next(&rd, msg, err, err_len);
		if (r != 0)
			break;
		r = wait_fd(fd, POLLIN, deadline_ms);
		if (r < 0)
			break;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1) {
			r = errno == EPIPE ? -ECONNRESET : -errno;
			break;
		}
		if (n == 0) {
			r = -ECONNRESET;
			break;
		}
		r = ctl_rd_feed(&rd, buf, (size_t)n);
		if (r == MR_ETOOBIG)
			snprintf(err, err_len, "reply frame exceeds the %u-byte limit",
			         CTL_MAX_FRAME);
		if (r < 0)
			break;
	}
	ctl_rd_done(&rd);
	return r == 1 ? 0 : r;
}

static void
print_unreachable(const struct ctx *x, int r)
{
	if (r == -EACCES || r == -EPERM) {
		fprintf(stderr,
		        "mirrorctl: permission denied on %s: the control socket is root-only (run "
		        "mirrorctl as root)\n",
		        x->sock_path);
	} else if (x->module != NULL) {
		fprintf(stderr,
		        "mirrorctl: cannot reach mirrord for module %s at %s: %s (is mirrord "
		        "running? start it with: mirrord -m %s)\n",
		        x->module, x->sock_path, mr_strerror(r), x->module);
	} else {
		fprintf(stderr, "mirrorctl: cannot reach mirrord at %s: %s (is mirrord running?)\n",
		        x->sock_path, mr_strerror(r));
	}
}

/* Exit code for a failure after the daemon was reached. */
static int
failed_exit(const struct ctx *x)
{
	/* for `state`, 1 would read as WAIT */
	return x->cl.cmd->flags & CMD_F_STATE_EXIT ? CMD_EXIT_STATE_UNREACHABLE : CMD_EXIT_FAILED;
}

/*
 * Send {"cmd": cmd, "args": args} and wait for the reply. Returns CMD_EXIT_OK
 * with *result (borrowed from *reply, which the caller decrefs; the result
 * may be NULL), or the exit code after printing why:
 *   unreachable (connect failed, timeout)             -> 3 (5 for state)
 *   closed without a reply, malformed reply, ok=false -> 1 (5 for state)
 *   SIGINT/SIGTERM while waiting (status -w)          -> 1, silently
 */
static int
request(struct ctx *x, const char *cmd, json_t *args, json_t **reply, json_t **result)
{
	uint64_t deadline_ms = mr_now_ms() + CTL_TIMEOUT_MS;
	char *frame = NULL, err[256] = "";
	json_t *req, *msg = NULL, *ok;
	size_t frame_len = 0;
	int fd, r, ex;

	*reply = *result = NULL;
	req = json_pack("{s:s}", "cmd", cmd);
	if (req == NULL || (args != NULL && json_object_set(req, "args", args) == -1)) {
		json_decref(req);
		fprintf(stderr, "mirrorctl: out of memory\n");
		return failed_exit(x);
	}
	r = ctl_frame_encode(req, &frame, &frame_len);
	json_decref(req);
	if (r < 0) {
		fprintf(stderr, "mirrorctl: cannot encode the request: %s\n", mr_strerror(r));
		return failed_exit(x);
	}

	fd = sock_connect(x->sock_path, deadline_ms);
	if (fd < 0) {
		if (fd == -ETIMEDOUT)
			fprintf(stderr, "mirrorctl: mirrord at %s did not accept within %d s\n",
			        x->sock_path, CTL_TIMEOUT_MS / 1000);
		else if (fd != -EINTR) /* -EINTR: stop requested, nothing to say */
			print_unreachable(x, fd);
		ex = cmd_unreachable_exit(x->cl.cmd);
		goto out_free;
	}
	r = send_all(fd, frame, frame_len, deadline_ms);
	if (r == 0)
		r = recv_reply(fd, deadline_ms, &msg, err, sizeof(err));
	(void)close(fd);

	if (r == -EINTR) { /* stop requested */
		ex = failed_exit(x);
		goto out_free;
	}
	if (r == -ETIMEDOUT) {
		fprintf(stderr,
		        "mirrorctl: no reply from mirrord at %s within %d s (see 'mirrorctl log')\n",
		        x->sock_path, CTL_TIMEOUT_MS / 1000);
		ex = cmd_unreachable_exit(x->cl.cmd);
		goto out_free;
	}
	if (r == -ECONNRESET || r == -EPIPE) {
		if (geteuid() != 0)
			fprintf(stderr,
			        "mirrorctl: mirrord at %s closed the connection without a reply: "
			        "the control socket is root-only (run mirrorctl as root)\n",
			        x->sock_path);
		else
			fprintf(stderr,
			        "mirrorctl: mirrord at %s closed the connection without a reply "
			        "(see 'mirrorctl log')\n",
			        x->sock_path);
		ex = failed_exit(x);
		goto out_free;
	}
	if (r < 0) {
		fprintf(stderr, "mirrorctl: bad reply from mirrord at %s: %s\n", x->sock_path,
		        err[0] ? err : mr_strerror(r));
		ex = failed_exit(x);
		goto out_free;
	}

	ok = json_object_get(msg, "ok");
	if (!json_is_boolean(ok)) {
		fprintf(stderr, "mirrorctl: bad reply from mirrord: no boolean \"ok\"\n");
		ex = failed_exit(x);
		goto out_decref;
	}
	if (json_is_false(ok)) {
		const char *e = json_string_value(json_object_get(msg, "error"));
		json_t *code = json_object_get(msg, "code");

		fprintf(stderr, "mirrorctl: %s\n", e ? e : "mirrord refused the request");
		if (json_is_integer(code) && json_integer_value(code) == MR_EPERM_PEER &&
		    (e == NULL || strstr(e, "root") == NULL))
			fprintf(stderr, "mirrorctl: the control socket is root-only (run mirrorctl "
			                "as root)\n");
		ex = failed_exit(x);
		goto out_decref;
	}
	*reply = msg;
	*result = json_object_get(msg, "result");
	free(frame);
	return CMD_EXIT_OK;

out_decref:
	json_decref(msg);
out_free:
	free(frame);
	return ex;
}

/* ---- commands ------------------------------------------------------------ */

/* `status` and `state` share the request; this returns the result object. */
static int
query_status(struct ctx *x, json_t **reply, json_t **result)
{
	int ex;

	ex = request(x, "status", NULL, reply, result);
	if (ex != CMD_EXIT_OK)
		return ex;
	if (!json_is_object(*result)) {
		fprintf(stderr, "mirrorctl: bad reply from mirrord: \"result\" is not an object\n");
		json_decref(*reply);
		*reply = NULL;
		return failed_exit(x);
	}
	return CMD_EXIT_OK;
}

/* Sleep until deadline_ms or a stop request, in WATCH_TICK_MS steps: a
 * signal that lands just before nanosleep() delays the exit by one step. */
static void
sleep_until(uint64_t deadline_ms)
{
	int ms;

	for (;;) {
		ms = remaining_ms(deadline_ms);
		if (stop_requested || ms == 0)
			return;
		if (ms > WATCH_TICK_MS)
			ms = WATCH_TICK_MS;
		(void)nanosleep(&(struct timespec){ .tv_nsec = ms * 1000000L }, NULL);
	}
}

/* Clear the terminal and print the header of one `status -w` screen, as
 * watch(1) does: "Every 0.5s: mirrorctl status -m db    2024-05-01 12:00:00". */
static void
watch_header(const struct ctx *x)
{
	time_t now = time(NULL);
	char when[32] = "?";
	struct tm tm;

	if (localtime_r(&now, &tm) != NULL)
		(void)strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	printf(TTY_CLEAR "Every %gs: mirrorctl status %s %s    %s\n\n",
	       (double)x->cl.watch_ms / 1000.0, x->cl.socket ? "-s" : "-m",
	       x->cl.socket ? x->sock_path : x->module, when);
}

/*
 * `status -w`: redraw the human status every cl.watch_ms until SIGINT or
 * SIGTERM, then exit 0. On a terminal each screen is cleared and starts with
 * a header, and the cursor is hidden meanwhile; otherwise the snapshots are
 * separated by a blank line (logs, tests). A failed request prints its error
 * and is retried at the next interval: the admin may be watching a restart.
 */
static int
watch_status(struct ctx *x)
{
	bool tty = isatty(STDOUT_FILENO), first = true;
	json_t *reply, *result;
	uint64_t next_ms;

	catch_stop_signals();
	if (tty)
		(void)fputs(TTY_CURSOR_HIDE, stdout);
	while (!stop_requested) {
		next_ms = mr_now_ms() + x->cl.watch_ms;
		if (tty)
			watch_header(x);
		else if (!first)
			(void)putchar('\n');
		first = false;
		/* before the request: its errors go to stderr, unbuffered */
		if (fflush(stdout) == EOF)
			goto err_write;
		if (query_status(x, &reply, &result) == CMD_EXIT_OK) {
			out_status(stdout, result);
			json_decref(reply);
		}
		if (fflush(stdout) == EOF)
			goto err_write;
		sleep_until(next_ms);
	}
	if (tty) /* the newline ends the line where the terminal echoed ^C */
		(void)fputs(TTY_CURSOR_SHOW "\n", stdout);
	return CMD_EXIT_OK; /* main() reports a failed final flush */

err_write:
	fprintf(stderr, "mirrorctl: writing output: %s\n", strerror(errno));
	if (tty)
		(void)fputs(TTY_CURSOR_SHOW, stdout);
	return CMD_EXIT_FAILED;
}

static int
run_status(struct ctx *x)
{
	json_t *reply, *result;
	int ex;

	if (x->cl.watch_ms != 0)
		return watch_status(x);

	ex = query_status(x, &reply, &result);
	if (ex != CMD_EXIT_OK)
		return ex;
	if (x->cl.json)
		(void)out_json(stdout, result);
	else
		out_status(stdout, result);
	json_decref(reply);
	return CMD_EXIT_OK;
}

static int
run_state(struct ctx *x)
{
	json_t *reply, *result, *j;
	const char *state;
	int ex;

	ex = query_status(x, &reply, &result);
	if (ex != CMD_EXIT_OK)
		return ex;
	state = json_string_value(json_object_get(result, "state"));
	ex = cmd_state_exit(state);
	if (ex < 0) {
		fprintf(stderr, "mirrorctl: mirrord reported an unknown state '%s'\n",
		        state ? state : "(none)");
		json_decref(reply);
		return CMD_EXIT_STATE_UNREACHABLE;
	}
	if (x->cl.json) {
		j = json_pack("{s:O?, s:O?, s:O?}", "state", json_object_get(result, "state"),
		              "readiness", json_object_get(result, "readiness"), "uptodate",
		              json_object_get(result, "uptodate"));
		if (j != NULL && x->cl.verbose && json_object_get(result, "resources") != NULL)
			json_object_set(j, "resources", json_object_get(result, "resources"));
		if (j != NULL)
			(void)out_json(stdout, j);
		json_decref(j);
	} else {
		out_state(stdout, result);
		if (x->cl.verbose)
			out_resources(stdout, result);
	}
	json_decref(reply);
	return ex;
}

/* Generic daemon verb: {"cmd": NAME, "args": [SUB, ARGS...]}; prints the
 * result's "message" (or the result as JSON with --json). */
static int
run_daemon(struct ctx *x)
{
	const char *name = x->cl.parent ? x->cl.parent->name : x->cl.cmd->name;
	json_t *args, *reply, *result;
	const char *msg;
	int i, ex;

	args = json_array();
	if (args == NULL)
		goto err_nomem;
	if (x->cl.parent != NULL && json_array_append_new(args, json_string(x->cl.cmd->name)))
		goto err_nomem;
	for (i = 0; i < x->cl.n_args; i++)
		if (json_array_append_new(args, json_string(x->cl.args[i])) == -1)
			goto err_nomem;
	if (x->cl.force && json_array_append_new(args, json_string("--force")) == -1)
		goto err_nomem;
	if (x->cl.full && json_array_append_new(args, json_string("--full")) == -1)
		goto err_nomem;
	if (x->cl.resource != NULL &&
	    json_array_append_new(args, json_string(x->cl.resource)) == -1)
		goto err_nomem;
	if (x->cl.value != NULL && json_array_append_new(args, json_string(x->cl.value)) == -1)
		goto err_nomem;
	ex = request(x, name, json_array_size(args) ? args : NULL, &reply, &result);
	json_decref(args);
	if (ex != CMD_EXIT_OK)
		return ex;
	if (x->cl.json) {
		if (result != NULL)
			(void)out_json(stdout, result);
		else
			printf("{}\n");
	} else {
		msg = json_string_value(
		        json_is_string(result) ? result : json_object_get(result, "message"));
		if (msg != NULL && msg[0] != '\0')
			printf("%s\n", msg);
	}
	json_decref(reply);
	return CMD_EXIT_OK;

err_nomem:
	json_decref(args);
	fprintf(stderr, "mirrorctl: out of memory\n");
	return failed_exit(x);
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static void
print_errs(const char *file, const struct conf_errs *errs, int r)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		fprintf(stderr, "%s\n", errs->msgs[i]);
	if (errs->n == 0)
		fprintf(stderr, "%s: %s\n", file, mr_strerror(r));
}

static json_t *
errs_json(const char *file, bool node, const struct conf_errs *errs, int r)
{
	json_t *o, *a;
	size_t i;

	o = json_pack("{s:s, s:s, s:b, s:[]}", "file", file, "kind", node ? "node" : "cluster",
	              "valid", 0, "errors");
	if (o == NULL)
		return NULL;
	a = json_object_get(o, "errors");
	for (i = 0; i < errs->n; i++)
		(void)json_array_append_new(a, json_string(errs->msgs[i]));
	if (errs->n == 0)
		(void)json_array_append_new(a, json_string(mr_strerror(r)));
	return o;
}

static int
run_config_check(struct ctx *x)
{
	json_t *all = NULL, *one;
	bool failed = false;
	int i, r;

	if (x->cl.json) {
		all = json_array();
		if (all == NULL) {
			fprintf(stderr, "mirrorctl: out of memory\n");
			return CMD_EXIT_FAILED;
		}
	}
	for (i = 0; i < x->cl.n_args; i++) {
		const char *file = x->cl.args[i];
		bool node = x->cl.node_file || ends_with(file, ".ini");
		struct conf_errs errs = { 0 };
		struct cluster_conf *c = NULL;
		struct node_conf *n = NULL;

		if (node)
			r = conf_node_load(file, &n, &errs);
		else
			r = conf_cluster_load(file, &c, &errs);
		if (r < 0) {
			print_errs(file, &errs, r);
			fprintf(stderr, "mirrorctl: %s: invalid (%zu error%s)\n", file,
			        errs.n ? errs.n : 1, errs.n > 1 ? "s" : "");
			one = all ? errs_json(file, node, &errs, r) : NULL;
			failed = true;
		} else if (node) {
			one = all ? out_node_json(file, n) : NULL;
			if (all == NULL)
				out_node_summary(stdout, file, n);
		} else {
			one = all ? out_cluster_json(file, c) : NULL;
			if (all == NULL)
				out_cluster_summary(stdout, file, c);
		}
		if (one != NULL)
			(void)json_array_append_new(all, one);
		conf_errs_done(&errs);
		conf_cluster_free(c);
		conf_node_free(n);
	}
	if (all != NULL) {
		(void)out_json(stdout, all);
		json_decref(all);
	}
	return failed ? CMD_EXIT_FAILED : CMD_EXIT_OK;
}

static int
run_config_show(struct ctx *x)
{
	const char *file = x->cl.args[0];
	struct conf_errs errs = { 0 };
	struct cluster_conf *c = NULL;
	char *text;
	int r;

	r = conf_cluster_load(file, &c, &errs);
	if (r < 0) {
		print_errs(file, &errs, r);
		conf_errs_done(&errs);
		return CMD_EXIT_FAILED;
	}
	conf_errs_done(&errs);
	text = conf_cluster_canonical(c);
	conf_cluster_free(c);
	if (text == NULL) {
		fprintf(stderr, "mirrorctl: out of memory\n");
		return CMD_EXIT_FAILED;
	}
	fputs(text, stdout);
	if (text[0] != '\0' && text[strlen(text) - 1] != '\n')
		fputc('\n', stdout);
	free(text);
	return CMD_EXIT_OK;
}

/* Copy fd from *pos to its current end to stdout. 0 or -errno. */
static int
copy_out(int fd, off_t *pos)
{
	char buf[8192];
	ssize_t n;

	for (;;) {
		n = pread(fd, buf, sizeof(buf), *pos);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -errno;
		if (n == 0)
			break;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
			return -EIO;
		*pos += n;
	}
	return fflush(stdout) == EOF ? -EIO : 0;
}

/* Offset where the last `lines` lines of fd (size bytes) start. A final
 * newline ends the last line rather than starting an empty one. */
static int
tail_start(int fd, off_t size, unsigned lines, off_t *start)
{
	char buf[8192];
	off_t end = size, off;
	unsigned seen = 0;
	ssize_t n, k;

	*start = size;
	if (lines == 0 || size == 0)
		return 0;
	if (pread(fd, buf, 1, size - 1) == 1 && buf[0] == '\n')
		end = size - 1;
	while (end > 0) {
		off = end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0;
		n = pread(fd, buf, (size_t)(end - off), off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -errno;
		if (n == 0)
			break;
		for (k = n - 1; k >= 0; k--) {
			if (buf[k] == '\n' && ++seen == lines) {
				*start = off + k + 1;
				return 0;
			}
		}
		end = off;
	}
	*start = 0;
	return 0;
}

/* Follow path from *pos: print appended data every LOG_POLL_MS, reopen when
 * the file is replaced (rotation), restart at 0 when it shrinks (truncation).
 * Returns at SIGINT/SIGTERM with 0, or -errno. */
static int
follow(const char *path, int *fdp, off_t *pos)
{
	struct stat st_fd, st_path;
	int r, nfd;

	catch_stop_signals();
	while (!stop_requested) {
		(void)nanosleep(&(struct timespec){ .tv_nsec = LOG_POLL_MS * 1000000L }, NULL);
		if (fstat(*fdp, &st_fd) == -1)
			return -errno;
		if (st_fd.st_size < *pos)
			*pos = 0;
		r = copy_out(*fdp, pos);
		if (r < 0)
			return r;
		if (stat(path, &st_path) == -1 || st_path.st_ino == st_fd.st_ino ||
		    st_path.st_dev != st_fd.st_dev)
			continue;
		/* rotated: the old file was drained above; switch to the new one */
		nfd = open(path, O_RDONLY | O_CLOEXEC);
		if (nfd == -1)
			continue;
		(void)close(*fdp);
		*fdp = nfd;
		*pos = 0;
	}
	return 0;
}

static int
run_log(struct ctx *x)
{
	struct stat st;
	off_t pos;
	int fd, r;

	fd = open(x->log_path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		fprintf(stderr, "mirrorctl: cannot open log %s: %s\n", x->log_path,
		        strerror(errno));
		return CMD_EXIT_FAILED;
	}
	if (fstat(fd, &st) == -1) {
		r = -errno;
		goto out;
	}
	r = tail_start(fd, st.st_size, x->cl.lines, &pos);
	if (r == 0)
		r = copy_out(fd, &pos);
	if (r == 0 && x->cl.follow)
		r = follow(x->log_path, &fd, &pos);
out:
	(void)close(fd);
	if (r < 0) {
		fprintf(stderr, "mirrorctl: reading %s: %s\n", x->log_path, mr_strerror(r));
		return CMD_EXIT_FAILED;
	}
	return CMD_EXIT_OK;
}

static int
run_help(struct ctx *x)
{
	const struct cmd_def *c;
	char err[512];

	if (x->cl.n_args == 0) {
		out_usage(stdout);
		return CMD_EXIT_OK;
	}
	if (cmd_lookup(cmd_table, NULL, x->cl.args[0], &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "mirrorctl: %s\n", err);
		return CMD_EXIT_USAGE;
	}
	out_cmd_usage(stdout, NULL, c);
	return CMD_EXIT_OK;
}

static int
run_version(struct ctx *x)
{
	(void)x;
	printf("mirrorctl %s\n", MR_VERSION);
	return CMD_EXIT_OK;
}

/* verify: start it, then follow "replication"."verify" in status until it
 * ends; list the differing files. Exit 0 identical, 1 different or stopped. */
static int
run_verify(struct ctx *x)
{
	json_t *reply, *result, *v = NULL;
	const char *state = NULL;
	bool tty = isatty(STDERR_FILENO) && !x->cl.json;
	int ex;

	ex = request(x, "verify", NULL, &reply, &result);
	if (ex != CMD_EXIT_OK)
		return ex;
	json_decref(reply);
	for (;;) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };

		ex = query_status(x, &reply, &result);
		if (ex != CMD_EXIT_OK)
			return ex;
		v = json_object_get(json_object_get(result, "replication"), "verify");
		state = json_string_value(json_object_get(v, "state"));
		if (v == NULL || state == NULL) {
			fprintf(stderr, "mirrorctl: the verify is gone (the link or the role changed)\n");
			json_decref(reply);
			return CMD_EXIT_FAILED;
		}
		if (strcmp(state, "running") != 0)
			break;
		if (tty)
			fprintf(stderr, "\rverify: %" JSON_INTEGER_FORMAT " files, %.1f MiB compared",
			        json_integer_value(json_object_get(v, "files")),
			        (double)json_integer_value(json_object_get(v, "bytes")) / 1048576.0);
		json_decref(reply);
		(void)nanosleep(&ts, NULL);
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	if (x->cl.json) {
		(void)out_json(stdout, v);
	} else {
		size_t i;
		json_t *e;

		json_array_foreach (json_object_get(v, "differ"), i, e)
			printf("differs: %s%s (%" JSON_INTEGER_FORMAT " blocks)\n",
			       json_string_value(json_object_get(e, "path")),
			       json_is_true(json_object_get(e, "missing")) ? ", missing on the peer"
			                                                   : "",
			       json_integer_value(json_object_get(e, "blocks")));
		printf("verify %s: %" JSON_INTEGER_FORMAT " files, %.1f MiB compared, "
		       "%" JSON_INTEGER_FORMAT " differ (%.1f MiB) in %.1f s%s%s\n",
		       strcmp(state, "finished") == 0 ? "finished" : "stopped",
		       json_integer_value(json_object_get(v, "files")),
		       (double)json_integer_value(json_object_get(v, "bytes")) / 1048576.0,
		       json_integer_value(json_object_get(v, "differing_files")),
		       (double)json_integer_value(json_object_get(v, "differing_bytes")) / 1048576.0,
		       (double)json_integer_value(json_object_get(v, "ms")) / 1000.0,
		       strcmp(state, "finished") == 0 ? "" : ": ",
		       strcmp(state, "finished") == 0
		               ? ""
		               : json_string_value(json_object_get(v, "reason")));
	}
	ex = json_is_true(json_object_get(v, "identical")) ? CMD_EXIT_OK : CMD_EXIT_FAILED;
	json_decref(reply);
	return ex;
}

/* diff: what a resync of the peer would send now, from the dirty set. */
static int
run_diff(struct ctx *x)
{
	json_t *reply, *result, *d;
	int ex;

	ex = request(x, "diff", NULL, &reply, &result);
	if (ex != CMD_EXIT_OK)
		return ex;
	d = json_object_get(result, "diff");
	if (x->cl.json) {
		(void)out_json(stdout, d != NULL ? d : result);
	} else if (d != NULL) {
		json_int_t files = json_integer_value(json_object_get(d, "files"));
		json_int_t whole = json_integer_value(json_object_get(d, "whole_files"));
		json_int_t blocks = json_integer_value(json_object_get(d, "blocks"));
		json_int_t bs = json_integer_value(json_object_get(d, "block_size"));

		printf("changed since the peer's copy: %" JSON_INTEGER_FORMAT
		       " files, %.1f MiB in changed blocks, %" JSON_INTEGER_FORMAT
		       " files to send whole or compare\n",
		       files, (double)(blocks * bs) / 1048576.0, whole);
		if (json_is_true(json_object_get(d, "changed_only")))
			printf("a resync now sends only these (the peer's copy is exact)\n");
		else
			printf("a resync now compares every file by block checksums (%s)\n",
			       !json_is_true(json_object_get(d, "set_trusted"))
			               ? "this node's set of changed files is not trusted"
			               : "the peer's copy is not known to be exact");
	}
	json_decref(reply);
	return CMD_EXIT_OK;
}

static const run_fn runners[CMD_RUN__COUNT] = {
	[CMD_RUN_DAEMON] = run_daemon,
	[CMD_RUN_STATUS] = run_status,
	[CMD_RUN_STATE] = run_state,
	[CMD_RUN_CONFIG_CHECK] = run_config_check,
	[CMD_RUN_CONFIG_SHOW] = run_config_show,
	[CMD_RUN_LOG] = run_log,
	[CMD_RUN_HELP] = run_help,
	[CMD_RUN_VERSION] = run_version,
	[CMD_RUN_VERIFY] = run_verify,
	[CMD_RUN_DIFF] = run_diff,
};

int
main(int argc, char **argv)
{
	struct ctx x = { 0 };
	char err[512];
	int r, ex;

	r = cmd_parse(argc, argv, &x.cl, err, sizeof(err));
	if (r == -ENOMEM) {
		fprintf(stderr, "mirrorctl: out of memory\n");
		return CMD_EXIT_FAILED;
	}
	if (r < 0) {
		fprintf(stderr, "mirrorctl: %s\nTry 'mirrorctl help'.\n", err);
		return CMD_EXIT_USAGE;
	}
	if (x.cl.help) {
		if (x.cl.cmd != NULL)
			out_cmd_usage(stdout, x.cl.parent, x.cl.cmd);
		else
			out_usage(stdout);
		ex = CMD_EXIT_OK;
	} else if (x.cl.version || x.cl.cmd == NULL) {
		ex = run_version(&x);
	} else {
		MR_BUG_ON(x.cl.cmd->run == CMD_RUN_NONE || runners[x.cl.cmd->run] == NULL);
		ex = CMD_EXIT_OK;
		if (x.cl.cmd->flags & (CMD_F_DAEMON | CMD_F_MODULE))
			ex = locate(&x, x.cl.cmd->flags & CMD_F_DAEMON);
		if (ex == CMD_EXIT_OK)
			ex = runners[x.cl.cmd->run](&x);
	}
	cmd_line_done(&x.cl);
	if (fflush(stdout) == EOF && ex == CMD_EXIT_OK) {
		fprintf(stderr, "mirrorctl: writing output: %s\n", strerror(errno));
		ex = CMD_EXIT_FAILED;
	}
	return ex;
}
