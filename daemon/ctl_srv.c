/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl_srv.c - control socket for mirrorctl.
 *
 * Owns the listening AF_UNIX socket and one struct ctl_conn per client.
 * Loop thread only. Each request frame is answered exactly once; a malformed
 * or oversized frame is answered with an error and the connection is then
 * closed. Clients whose SO_PEERCRED uid is not 0 are refused (the socket is
 * also 0660 root:root: two locks on one door). Commands never change HA state
 * directly; later they are turned into fsm events.
 *
 * Lifetime: a connection embeds two libuv handles (pipe, idle timer) and is
 * freed from the last close callback, never right after uv_close().
 */
#include "ctl_srv.h"

#include "cluster.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl_proto.h"
#include "err.h"
#include "log.h"
#include "mirror.h"
#include "mrd.h"
#include "util.h"

#define CTL_IDLE_TIMEOUT_MS 30000u
#define CTL_MAX_CONNS       64u

struct ctl_srv {
	struct mrd *m; /* borrowed */
	uv_pipe_t listener;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl_conn *conns; /* list of live connections */
	unsigned n_conns;
	int pending_closes;
	bool stopping;
};

struct ctl_conn {
	struct ctl_srv *srv; /* borrowed */
	struct ctl_conn *next;
	uv_pipe_t pipe;
	uv_timer_t idle;
	struct ctl_rd rd;
	uid_t uid;
	pid_t pid;
	int pending_closes;
	int pending_writes;
	bool closing; /* no more reads; close when writes drain */
};

struct ctl_wreq {
	uv_write_t req;
	struct ctl_conn *c;
	char *frame;
};

typedef json_t *(*ctl_handler_fn)(struct ctl_srv *s, const char *cmd, const json_t *args);

static json_t *cmd_status(struct ctl_srv *s, const char *cmd, const json_t *args);
static json_t *cmd_fsm(struct ctl_srv *s, const char *cmd, const json_t *args);
static json_t *cmd_failover(struct ctl_srv *s, const char *cmd, const json_t *args);
static json_t *cmd_data(struct ctl_srv *s, const char *cmd, const json_t *args);
static json_t *cmd_monitor(struct ctl_srv *s, const char *cmd, const json_t *args);

/* The dispatch table: one line per command the daemon understands. */
static const struct {
	const char *name;
	ctl_handler_fn handler;
} ctl_cmds[] = {
	{ "status", cmd_status },
	{ "start", cmd_fsm },
	{ "stop", cmd_fsm },
	{ "restart", cmd_fsm },
	{ "stopstart", cmd_fsm },
	{ "forcestop", cmd_fsm },
	{ "swap", cmd_fsm },
	{ "prim", cmd_fsm },
	{ "second", cmd_fsm },
	{ "failover", cmd_failover },
	{ "resync", cmd_data },
	{ "verify", cmd_data },
	{ "diff", cmd_data },
	{ "set", cmd_monitor },
	{ "checker", cmd_monitor },
	{ "errd", cmd_monitor },
};

int
ctl_listen(const char *path, mode_t mode, int backlog)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int fd, r;

	if (len >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, len + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (unlink(path) == -1 && errno != ENOENT) {
		r = -errno;
		goto err_close;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		r = -errno;
		goto err_close;
	}
	if (chmod(path, mode) == -1 || listen(fd, backlog) == -1) {
		r = -errno;
		goto err_unlink;
	}
	return fd;

err_unlink:
	(void)unlink(path);
err_close:
	(void)close(fd);
	return r;
}

static void
srv_maybe_free(struct ctl_srv *s)
{
	if (s->stopping && s->pending_closes == 0 && s->conns == NULL)
		free(s);
}

static void
conn_close_cb(uv_handle_t *h)
{
	struct ctl_conn *c = h->data;
	struct ctl_srv *s = c->srv;
	struct ctl_conn **pp;

	if (--c->pending_closes > 0)
		return;
	for (pp = &s->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	s->n_conns--;
	ctl_rd_done(&c->rd);
	free(c);
	srv_maybe_free(s);
}

static void
conn_close(struct ctl_conn *c)
{
	if (c->pending_closes > 0)
		return;
	c->pending_closes = 2;
	uv_close((uv_handle_t *)&c->pipe, conn_close_cb);
	uv_close((uv_handle_t *)&c->idle, conn_close_cb);
}

/* Stop reading; close as soon as queued replies are written. */
static void
conn_finish(struct ctl_conn *c)
{
	c->closing = true;
	(void)uv_read_stop((uv_stream_t *)&c->pipe);
	if (c->pending_writes == 0)
		conn_close(c);
}

static void
write_cb(uv_write_t *req, int status)
{
	struct ctl_wreq *w = (struct ctl_wreq *)req;
	struct ctl_conn *c = w->c;

	free(w->frame);
	free(w);
	c->pending_writes--;
	if (status < 0) {
		log_ratelimited(LOG_LVL_INFO, 5000, "ctl: reply not delivered pid=%d err=\"%s\"",
		                (int)c->pid, mr_strerror(status));
		conn_close(c);
		return;
	}
	if (c->closing && c->pending_writes == 0)
		conn_close(c);
}

/* Send one reply (reference stolen). On failure the connection is closed. */
static void
conn_reply(struct ctl_conn *c, json_t *reply)
{
	struct ctl_wreq *w;
	uv_buf_t buf;
	size_t len;
	int r;

	if (reply == NULL) {
		conn_close(c);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		json_decref(reply);
		conn_close(c);
		return;
	}
	r = ctl_frame_encode(reply, &w->frame, &len);
	json_decref(reply);
	if (r < 0) {
		log_warn("ctl: cannot encode reply err=\"%s\"", mr_strerror(r));
		free(w);
		conn_close(c);
		return;
	}
	w->c = c;
	buf = uv_buf_init(w->frame, (unsigned)len);
	r = uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, write_cb);
	if (r < 0) {
		free(w->frame);
		free(w);
		conn_close(c);
		return;
	}
	c->pending_writes++;
}

static void
dispatch(struct ctl_conn *c, const json_t *req)
{
	const json_t *args;
	const char *cmd;
	char err[160];
	size_t i;

	if (ctl_request_check(req, &cmd, &args, err, sizeof(err)) < 0) {
		log_info("ctl: malformed request pid=%d reason=\"%s\"", (int)c->pid, err);
		conn_reply(c, ctl_reply_err(MR_EPROTO, "malformed request: %s", err));
		conn_finish(c);
		return;
	}
	for (i = 0; i < ARRAY_SIZE(ctl_cmds); i++) {
		if (strcmp(cmd, ctl_cmds[i].name) == 0) {
			log_debug("ctl: request cmd=%s pid=%d", cmd, (int)c->pid);
			conn_reply(c, ctl_cmds[i].handler(c->srv, cmd, args));
			return;
		}
	}
	conn_reply(c, ctl_reply_err(MR_EUNKNOWN_CMD,
	                            "unknown command '%.64s' (this mirrord %s supports: status)",
	                            cmd, MR_VERSION));
}

static void
alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	if (suggested > 16384)
		suggested = 16384;
	buf->base = malloc(suggested);
	buf->len = buf->base != NULL ? suggested : 0;
}

static void
read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct ctl_conn *c = stream->data;
	char err[160];
	json_t *msg;
	int r;

	if (nread < 0) {
		free(buf->base);
		if (nread != UV_EOF)
			log_debug("ctl: read error pid=%d err=\"%s\"", (int)c->pid,
			          mr_strerror((int)nread));
		conn_finish(c);
		return;
	}
	if (nread == 0 || c->closing) {
		free(buf->base);
		return;
	}
	(void)uv_timer_again(&c->idle);
	r = ctl_rd_feed(&c->rd, buf->base, (size_t)nread);
	free(buf->base);
	if (r == MR_ETOOBIG) {
		log_info("ctl: oversized request refused pid=%d limit=%u", (int)c->pid,
		         CTL_MAX_FRAME);
		conn_reply(c, ctl_reply_err(MR_ETOOBIG, "request larger than %u bytes refused",
		                            CTL_MAX_FRAME));
		conn_finish(c);
		return;
	}
	if (r < 0) {
		conn_finish(c);
		return;
	}
	while (!c->closing) {
		r = ctl_rd_next(&c->rd, &msg, err, sizeof(err));
		if (r == 0)
			break;
		if (r < 0) {
			log_info("ctl: malformed request pid=%d reason=\"%s\"", (int)c->pid, err);
			conn_reply(c, ctl_reply_err(r, "malformed request: %s", err));
			conn_finish(c);
			break;
		}
		dispatch(c, msg);
		json_decref(msg);
	}
}

static void
idle_cb(uv_timer_t *t)
{
	struct ctl_conn *c = t->data;

	log_debug("ctl: idle client closed pid=%d", (int)c->pid);
	conn_finish(c);
}

static void
connection_cb(uv_stream_t *server, int status)
{
	struct ctl_srv *s = server->data;
	struct ucred cred;
	socklen_t cred_len = sizeof(cred);
	struct ctl_conn *c;
	uv_os_fd_t fd;
	int r;

	if (status < 0) {
		log_ratelimited(LOG_LVL_WARN, 5000, "ctl: accept failed err=\"%s\"",
		                mr_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->srv = s;
	ctl_rd_init(&c->rd);
	MR_BUG_ON(uv_pipe_init(s->m->loop, &c->pipe, 0) != 0);
	MR_BUG_ON(uv_timer_init(s->m->loop, &c->idle) != 0);
	c->pipe.data = c;
	c->idle.data = c;
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;

	r = uv_accept(server, (uv_stream_t *)&c->pipe);
	if (r < 0) {
		log_ratelimited(LOG_LVL_WARN, 5000, "ctl: accept failed err=\"%s\"",
		                mr_strerror(r));
		conn_close(c);
		return;
	}
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == -1) {
		log_warn("ctl: cannot read client credentials err=\"%s\"", mr_strerror(-errno));
		conn_close(c);
		return;
	}
	c->uid = cred.uid;
	c->pid = cred.pid;
	if (cred.uid != 0) {
		log_warn("ctl: client refused uid=%u pid=%d reason=not-root", (unsigned)cred.uid,
		         (int)cred.pid);
		conn_reply(c, ctl_reply_err(MR_EPERM_PEER,
		                            "permission denied: the mirrord control socket is "
		                            "root-only (client uid %u)",
		                            (unsigned)cred.uid));
		conn_finish(c);
		return;
	}
	if (s->n_conns > CTL_MAX_CONNS) {
		log_ratelimited(LOG_LVL_WARN, 5000, "ctl: too many clients max=%u", CTL_MAX_CONNS);
		conn_reply(c, ctl_reply_err(-EBUSY, "too many control clients (max %u)",
		                            CTL_MAX_CONNS));
		conn_finish(c);
		return;
	}
	(void)uv_timer_start(&c->idle, idle_cb, CTL_IDLE_TIMEOUT_MS, CTL_IDLE_TIMEOUT_MS);
	r = uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
	if (r < 0)
		conn_close(c);
}

static void
listener_close_cb(uv_handle_t *h)
{
	struct ctl_srv *s = h->data;

	s->pending_closes--;
	srv_maybe_free(s);
}

int
ctl_srv_start(struct mrd *m, const char *path, mode_t mode, struct ctl_srv **out)
{
	struct ctl_srv *s;
	int fd, r;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->m = m;
	if (mr_strlcpy(s->path, path, sizeof(s->path)) < 0) {
		r = -ENAMETOOLONG;
		goto err_free;
	}
	fd = ctl_listen(path, mode, 64);
	if (fd < 0) {
		r = fd;
		goto err_free;
	}
	r = uv_pipe_init(m->loop, &s->listener, 0);
	if (r < 0)
		goto err_close;
	s->listener.data = s;
	r = uv_pipe_open(&s->listener, fd);
	if (r < 0)
		goto err_handle;
	r = uv_listen((uv_stream_t *)&s->listener, 64, connection_cb);
	if (r < 0)
		goto err_handle;
	*out = s;
	return 0;

err_handle:
	/* the handle owns nothing else yet; close it and let the callback free s */
	s->stopping = true;
	s->pending_closes = 1;
	uv_close((uv_handle_t *)&s->listener, listener_close_cb);
	(void)unlink(path);
	return r;
err_close:
	(void)close(fd);
	(void)unlink(path);
err_free:
	free(s);
	return r;
}

void
ctl_srv_stop(struct ctl_srv *s)
{
	struct ctl_conn *c;

	if (s == NULL || s->stopping)
		return;
	s->stopping = true;
	(void)unlink(s->path);
	for (c = s->conns; c != NULL; c = c->next)
		conn_close(c);
	s->pending_closes++;
	uv_close((uv_handle_t *)&s->listener, listener_close_cb);
}

/* ---- command handlers ------------------------------------------------------ */

static json_t *
cmd_status(struct ctl_srv *s, const char *cmd, const json_t *args)
{
	const struct mrd *m = s->m;
	const struct conf_server *peer;
	json_t *res;

	(void)args;
	(void)cmd;
	peer = &m->conf->heart.hbs[0].servers[m->peer_idx];
	res = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:I, s:s, s:I, s:s}",
	                "module", m->module, "node", m->node->name, "peer", peer->name, "peer_addr",
	                peer->addr_str, "state", mrd_state_name(m->state), "readiness",
	                mrd_readiness_name(m->readiness), "uptodate", m->uptodate, "message",
	                m->message, "config", m->config_path, "config_hash", m->conf->hash_hex,
	                "pid", (json_int_t)getpid(), "version", MR_VERSION, "uptime_ms",
	                (json_int_t)(mr_now_ms() - m->start_ms), "log", m->log_path);
	if (res == NULL)
		return ctl_reply_err(-ENOMEM, "out of memory");
	mirror_status(s->m, res);
	cluster_status(s->m, res);
	return ctl_reply_ok(res);
}

/* The state machine commands; args: none, or ["--force"] for prim. */
static json_t *
cmd_fsm(struct ctl_srv *s, const char *cmd, const json_t *args)
{
	static const struct {
		const char *name;
		enum fsm_event ev;
	} evs[] = {
		{ "start", FSM_EV_START },         { "stop", FSM_EV_STOP },
		{ "restart", FSM_EV_RESTART },     { "stopstart", FSM_EV_STOPSTART },
		{ "forcestop", FSM_EV_FORCESTOP }, { "swap", FSM_EV_SWAP },
		{ "prim", FSM_EV_PRIM },           { "second", FSM_EV_SECOND },
	};
	const char *name = cmd;
	bool force = false;
	char msg[512];
	size_t i;
	int r;

	for (i = 0; i < json_array_size(args); i++) {
		const char *a = json_string_value(json_array_get(args, i));

		if (strcmp(name, "prim") == 0 && a != NULL && strcmp(a, "--force") == 0)
			force = true;
		else
			return ctl_reply_err(-EINVAL, "%s: unexpected argument \"%s\"", name,
			                     a != NULL ? a : "");
	}
	for (i = 0; name != NULL && i < ARRAY_SIZE(evs); i++) {
		if (strcmp(name, evs[i].name) != 0)
			continue;
		r = cluster_command(s->m, evs[i].ev == FSM_EV_PRIM && force ? FSM_EV_PRIM_FORCE
		                                                            : evs[i].ev,
		                    msg, sizeof(msg));
		if (r < 0)
			return ctl_reply_err(r, "%s", msg);
		return ctl_reply_ok(json_pack("{s:s}", "message", msg));
	}
	return ctl_reply_err(-EINVAL, "unknown command");
}

static json_t *
cmd_failover(struct ctl_srv *s, const char *cmd, const json_t *args)
{
	const char *a = json_string_value(json_array_get(args, 0));
	char msg[256];
	int r;

	(void)cmd;
	if (a == NULL || json_array_size(args) != 1 || (strcmp(a, "on") != 0 && strcmp(a, "off") != 0))
		return ctl_reply_err(-EINVAL, "failover needs one argument: on or off");
	r = cluster_set_failover(s->m, strcmp(a, "on") == 0, msg, sizeof(msg));
	if (r < 0)
		return ctl_reply_err(r, "%s", msg);
	return ctl_reply_ok(json_pack("{s:s}", "message", msg));
}

/* set RESOURCE up|down; checker on|off; errd on|off. */
static json_t *
cmd_monitor(struct ctl_srv *s, const char *cmd, const json_t *args)
{
	const char *a = json_string_value(json_array_get(args, 0));
	const char *b = json_string_value(json_array_get(args, 1));
	char msg[256];
	int r;

	if (strcmp(cmd, "set") == 0) {
		if (json_array_size(args) != 2 || a == NULL || b == NULL)
			return ctl_reply_err(-EINVAL, "set needs two arguments: RESOURCE up|down");
		r = cluster_set_resource(s->m, a, b, msg, sizeof(msg));
	} else {
		if (a == NULL || json_array_size(args) != 1 ||
		    (strcmp(a, "on") != 0 && strcmp(a, "off") != 0))
			return ctl_reply_err(-EINVAL, "%s needs one argument: on or off", cmd);
		r = cluster_set_monitoring(s->m, strcmp(cmd, "errd") == 0, strcmp(a, "on") == 0,
		                           msg, sizeof(msg));
	}
	if (r < 0)
		return ctl_reply_err(r, "%s", msg);
	return ctl_reply_ok(json_pack("{s:s}", "message", msg));
}

/* resync [--full], verify, diff: the data commands of the primary. */
static json_t *
cmd_data(struct ctl_srv *s, const char *cmd, const json_t *args)
{
	char msg[256];
	json_t *o;
	int r;

	if (strcmp(cmd, "diff") == 0) {
		o = json_object();
		cluster_diff(s->m, o);
		return ctl_reply_ok(o);
	}
	if (strcmp(cmd, "resync") == 0) {
		const char *a = json_string_value(json_array_get(args, 0));

		if (json_array_size(args) > 1 || (json_array_size(args) == 1 &&
		                                  (a == NULL || strcmp(a, "--full") != 0)))
			return ctl_reply_err(-EINVAL, "resync takes no argument but --full");
		r = cluster_force_resync(s->m, msg, sizeof(msg));
	} else {
		r = mirror_verify(s->m, msg, sizeof(msg));
	}
	if (r < 0)
		return ctl_reply_err(r, "%s", msg);
	return ctl_reply_ok(json_pack("{s:s}", "message", msg));
}
