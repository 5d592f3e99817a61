/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * out.c - what mirrorctl prints: usage generated from the command table,
 * the human `status` block, config summaries and --json output.
 *
 * Human output is for people and may change; scripts use --json (the daemon's
 * result object as is, keys sorted) or the exit codes. JSON is built with
 * jansson, never with printf. Main thread of mirrorctl.
 */
#include "out.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OUT_LABEL_WIDTH 8  /* "message:" */
#define OUT_COL         30 /* usage: where the help text starts */

/* One usage row; a long left column pushes the help text to the next line. */
static void
row(FILE *f, const char *left, const char *help)
{
	if (strlen(left) >= OUT_COL)
		fprintf(f, "  %s\n  %-*s %s\n", left, OUT_COL, "", help);
	else
		fprintf(f, "  %-*s %s\n", OUT_COL, left, help);
}

static void
state_exit_note(FILE *f)
{
	fprintf(f, "'state' exits with the state: STOP 0, WAIT 1, ALONE 2, PRIM 3, SECOND 4,\n"
	           "and with 5 (not 3) when the state cannot be obtained (daemon unreachable,\n"
	           "error reply), so that a dead daemon is never mistaken for a primary.\n");
}

/* Generated from cmd_table so usage never lists a verb that does not exist. */
void
out_usage(FILE *f)
{
	const struct cmd_def *c, *s;
	const struct cmd_opt *o;
	char left[80];

	fprintf(f, "usage: mirrorctl [-m MODULE] [-n NODE_INI] [-s SOCKET] [--json] [-h] [-V] "
	           "COMMAND [ARGS]\n\n");
	fprintf(f, "Commands (a unique prefix is enough: 'conf ch' is 'config check'):\n");
	for (c = cmd_table; c->name != NULL; c++) {
		if (c->subs == NULL) {
			snprintf(left, sizeof(left), "%s %s", c->name, c->synopsis);
			row(f, left, c->help);
			continue;
		}
		for (s = c->subs; s->name != NULL; s++) {
			snprintf(left, sizeof(left), "%s %s %s", c->name, s->name, s->synopsis);
			row(f, left, s->help);
		}
	}
	fprintf(f, "\nOptions:\n");
	for (o = cmd_global_opts; o->id != CMD_OPT_END; o++) {
		if (o->short_name != 0)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->long_name,
			         o->metavar ? " " : "", o->metavar ? o->metavar : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->long_name,
			         o->metavar ? " " : "", o->metavar ? o->metavar : "");
		row(f, left, o->help);
	}
	fprintf(f, "\nThe socket is RUN_DIR/MODULE.sock and the log LOG_DIR/MODULE.log, with\n"
	           "RUN_DIR and LOG_DIR from node.ini.\n");
	fprintf(f, "\nExit codes: 0 ok, 1 failed, 2 usage, 3 daemon unreachable.\n");
	state_exit_note(f);
}

/* `mirrorctl help CMD` and `CMD -h`: synopsis, one-line help, options. */

void
out_cmd_usage(FILE *f, const struct cmd_def *parent, const struct cmd_def *c)
{
	const struct cmd_def *s;
	const struct cmd_opt *o;
	char left[80];

	if (c->subs != NULL) {
		fprintf(f, "usage: mirrorctl [OPTIONS] %s COMMAND ...\n\n", c->name);
		for (s = c->subs; s->name != NULL; s++) {
			snprintf(left, sizeof(left), "%s %s %s", c->name, s->name, s->synopsis);
			row(f, left, s->help);
		}
		return;
	}
	fprintf(f, "usage: mirrorctl [OPTIONS] %s%s%s%s%s\n\n%s\n", parent ? parent->name : "",
	        parent ? " " : "", c->name, c->synopsis[0] ? " " : "", c->synopsis, c->help);
	if (c->opts != NULL)
		fprintf(f, "\nOptions:\n");
	for (o = c->opts; o != NULL && o->id != CMD_OPT_END; o++) {
		if (o->short_name != 0)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->long_name,
			         o->metavar ? " " : "", o->metavar ? o->metavar : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->long_name,
			         o->metavar ? " " : "", o->metavar ? o->metavar : "");
		row(f, left, o->help);
	}
	if (c->flags & CMD_F_STATE_EXIT) {
		fputc('\n', f);
		state_exit_note(f);
	}
}

/* Pretty and key-sorted so the output is stable for diffs and tests. */
int
out_json(FILE *f, const json_t *j)
{
	if (json_dumpf(j, f, JSON_INDENT(2) | JSON_SORT_KEYS) == -1 || fputc('\n', f) == EOF)
		return -EIO;
	return 0;
}

/* The string at key, or dflt when missing or not a string. */
static const char *
str_at(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : dflt;
}

/* "checkers on, errd on, maxloop N/M" and a newline. */
static void
print_switches(FILE *f, const json_t *r)
{
	const json_t *ml = json_object_get(r, "maxloop");

	fprintf(f, "checkers %s, errd %s", str_at(r, "checkers", "?"), str_at(r, "errd", "?"));
	if (json_is_object(ml))
		fprintf(f, ", maxloop %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
		        json_integer_value(json_object_get(ml, "count")),
		        json_integer_value(json_object_get(ml, "max")));
	fprintf(f, "\n");
}

/* Two most significant units only: an uptime needs no more precision. */
const char *
out_duration(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = ms / 1000u;
	uint64_t d = s / 86400u, h = s / 3600u % 24u, m = s / 60u % 60u;

	s %= 60u;
	if (d > 0)
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", d, h);
	else if (h > 0)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", h, m, s);
	else if (m > 0)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", m, s);
	else
		snprintf(buf, len, "%" PRIu64 "s", s);
	return buf;
}

static void
label(FILE *f, const char *name)
{
	fprintf(f, "%-*s ", OUT_LABEL_WIDTH, name);
}

static json_int_t
int_at(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* The "mirror:" line of `status`, when the daemon mirrors (mirror.c):
 *   mirror:  primary, link up, async=second, seq 19 acked 19, in flight 0 B
 *   mirror:  secondary, link up, async=second, received seq 19
 * plus ", diverged (resync needed)" / ", apply failed" when so. */
/* "resync: pass 1, 12 files, 40.0 MiB of 100.0 MiB (40%), 350.2 MiB/s, ETA 1s" and,
 * on a terminal, a bar. */
static void
out_resync(FILE *f, const json_t *rep)
{
	const json_t *rs = json_object_get(rep, "resync");
	double mib = 1024.0 * 1024.0, done, total;
	int pct, i;

	if (!json_is_object(rs)) {
		if (json_is_true(json_object_get(rep, "resyncing"))) {
			label(f, "resync:");
			fprintf(f, "receiving from the primary (not up to date until it ends)\n");
		}
		return;
	}
	done = (double)int_at(rs, "bytes");
	total = (double)int_at(rs, "total_bytes");
	pct = total > 0 ? (int)(done * 100.0 / total) : 100;
	if (pct > 100)
		pct = 100;
	label(f, "resync:");
	fprintf(f, "%s, pass %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
	           " files, %.1f MiB of %.1f MiB (%d%%), %.1f MiB/s, ETA %" JSON_INTEGER_FORMAT
	           "s\n",
	        str_at(rs, "state", "?"), int_at(rs, "pass"), int_at(rs, "files"), done / mib,
	        total / mib, pct, (double)int_at(rs, "rate_bps") / mib, int_at(rs, "eta_s"));
	if (isatty(fileno(f))) {
		label(f, "");
		fputc('[', f);
		for (i = 0; i < 40; i++)
			fputc(i < pct * 40 / 100 ? '#' : '.', f);
		fprintf(f, "] %d%%\n", pct);
	}
}

static void
out_replication(FILE *f, const json_t *rep)
{
	const char *role;

	if (!json_is_object(rep))
		return;
	role = str_at(rep, "role", "?");
	label(f, "mirror:");
	fprintf(f, "%s, link %s, async=%s", role,
	        json_is_true(json_object_get(rep, "link")) ? "up" : "down",
	        str_at(rep, "async", "?"));
	if (strcmp(role, "primary") == 0)
		fprintf(f,
		        ", seq %" JSON_INTEGER_FORMAT " acked %" JSON_INTEGER_FORMAT
		        ", in flight %" JSON_INTEGER_FORMAT " B",
		        int_at(rep, "last_seq"), int_at(rep, "acked_seq"),
		        int_at(rep, "inflight_bytes"));
	else
		fprintf(f, ", received seq %" JSON_INTEGER_FORMAT, int_at(rep, "received_seq"));
	if (json_is_true(json_object_get(rep, "diverged")))
		fprintf(f, ", diverged (resync needed)");
	if (json_is_true(json_object_get(rep, "apply_failed")))
		fprintf(f, ", apply failed (resync needed)");
	fprintf(f, "\n");
	out_resync(f, rep);
}

/*
 * Human `status` block, labels aligned to OUT_LABEL_WIDTH:
 *
 * module:  db, node n1 (mirrord 0.1.0, pid 1234, up 3m12s)
 * state:   STOP (NotReady), not uptodate
 * peer:    n2 (198.18.0.2)
 * config:  /etc/hamirror/db/userconfig.xml, hash 0123456789abcdef0123456789abcdef
 * log:     /var/log/hamirror/db.log
 * mirror:  primary, link up, async=second, seq 19 acked 19, in flight 0 B   (when mirroring)
 * message: text                              (only when non-empty)
 */
static void
out_peer_node(FILE *f, const json_t *p)
{
	if (!json_is_object(p)) {
		fprintf(f, "\n");
		return;
	}
	if (!json_is_true(json_object_get(p, "heard"))) {
		fprintf(f, ": not heard (UNKNOWN)\n");
		return;
	}
	fprintf(f, ": %s (%s), %s, generation %" JSON_INTEGER_FORMAT "%s\n",
	        str_at(p, "state", "?"), str_at(p, "readiness", "?"),
	        json_is_true(json_object_get(p, "uptodate")) ? "uptodate" : "not uptodate",
	        json_integer_value(json_object_get(json_object_get(p, "generation"), "seq")),
	        json_is_true(json_object_get(p, "handover")) ? ", handing over" : "");
}

/* Heartbeat networks, VIP, witness, generation and the last transition. */
static void
out_cluster(FILE *f, const json_t *r)
{
	const json_t *hb = json_object_get(r, "heartbeat"), *vip = json_object_get(r, "vip");
	const json_t *wi = json_object_get(r, "witness"), *lt = json_object_get(r, "last_transition");
	const json_t *gen = json_object_get(r, "generation"), *n, *a;
	size_t i;

	json_array_foreach (json_object_get(hb, "networks"), i, n) {
		const json_t *ago = json_object_get(n, "last_rx_ms_ago");

		label(f, i == 0 ? "heartbeat:" : "");
		fprintf(f, "%s %s -> %s %s", str_at(n, "name", "?"), str_at(n, "local", "?"),
		        str_at(n, "peer", "?"), json_is_true(json_object_get(n, "up")) ? "up" : "DOWN");
		if (json_is_integer(ago))
			fprintf(f, ", last %" JSON_INTEGER_FORMAT " ms ago", json_integer_value(ago));
		fprintf(f, ", rx %" JSON_INTEGER_FORMAT " tx %" JSON_INTEGER_FORMAT
		           ", dropped %" JSON_INTEGER_FORMAT "\n",
		        json_integer_value(json_object_get(n, "rx")),
		        json_integer_value(json_object_get(n, "tx")),
		        json_integer_value(json_object_get(n, "dropped_bad_mac")) +
		                json_integer_value(json_object_get(n, "dropped_replay")) +
		                json_integer_value(json_object_get(n, "dropped_other")));
	}
	if (json_is_object(vip)) {
		label(f, "vip:");
		json_array_foreach (json_object_get(vip, "addrs"), i, a)
			fprintf(f, "%s%s on %s", i ? ", " : "", str_at(a, "addr", "?"),
			        str_at(a, "interface", "?"));
		fprintf(f, ", owner %s\n", str_at(vip, "owner", "none"));
	}
	if (json_is_true(json_object_get(wi, "configured"))) {
		label(f, "witness:");
		if (json_is_true(json_object_get(wi, "checked")))
			fprintf(f, "%s (%s)\n",
			        json_is_true(json_object_get(wi, "reached")) ? "reached" : "UNREACHABLE",
			        str_at(wi, "detail", ""));
		else
			fprintf(f, "not checked yet (only when the peer is lost)\n");
	}
	if (json_is_object(gen)) {
		label(f, "data:");
		fprintf(f, "generation %" JSON_INTEGER_FORMAT " (%s), failover %s\n",
		        json_integer_value(json_object_get(gen, "seq")), str_at(gen, "id", "?"),
		        json_is_true(json_object_get(r, "failover")) ? "on" : "off");
	}
	if (json_is_object(json_object_get(r, "changed"))) {
		const json_t *ch = json_object_get(r, "changed"), *pn = json_object_get(r, "peer_node");

		/* files that may differ from the peer's copy (the dirty set), both sides */
		label(f, "changed:");
		fprintf(f, "%" JSON_INTEGER_FORMAT " files here%s",
		        json_integer_value(json_object_get(ch, "files")),
		        json_is_true(json_object_get(ch, "trusted")) ? "" : " (not exact: compare all)");
		if (json_is_true(json_object_get(pn, "heard")))
			fprintf(f, ", %" JSON_INTEGER_FORMAT " on the peer",
			        json_integer_value(json_object_get(pn, "changed_files")));
		fprintf(f, "\n");
	}
	if (json_is_object(json_object_get(r, "resources")) &&
	    json_object_size(json_object_get(r, "resources")) > 0) {
		const json_t *res = json_object_get(r, "resources");
		const char *k, *sep = "";
		json_t *v;

		/* the application checks (errd, tcp, custom) and their state */
		label(f, "checks:");
		json_object_foreach ((json_t *)res, k, v) {
			fprintf(f, "%s%s %s", sep, k, json_string_value(v) ? json_string_value(v) : "?");
			sep = ", ";
		}
		fprintf(f, "; ");
		print_switches(f, r);
	}
	if (json_is_object(lt) && str_at(lt, "event", "")[0] != '\0') {
		time_t t = (time_t)(json_integer_value(json_object_get(lt, "time_ms")) / 1000);
		struct tm tm;
		char when[32] = "?";

		if (gmtime_r(&t, &tm) != NULL)
			(void)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		label(f, "last:");
		fprintf(f, "%s -> %s on %s at %s: %s\n", str_at(lt, "from", "?"), str_at(lt, "to", "?"),
		        str_at(lt, "event", "?"), when, str_at(lt, "reason", ""));
	}
}

/* "rejoin:  on its own in 8.2 s (automatic rejoin 1)" while one is scheduled. */
static void
out_rejoin(FILE *f, const json_t *rj)
{
	const json_t *in = json_object_get(rj, "in_ms");

	if (!json_is_true(json_object_get(rj, "scheduled")) || !json_is_integer(in))
		return;
	label(f, "rejoin:");
	fprintf(f,
	        "on its own in %.1f s (automatic rejoin %" JSON_INTEGER_FORMAT
	        "; `mirrorctl second` does it now)\n",
	        (double)json_integer_value(in) / 1000.0,
	        json_integer_value(json_object_get(rj, "count")));
}

void
out_status(FILE *f, const json_t *r)
{
	const json_t *up = json_object_get(r, "uptime_ms");
	const json_t *utd = json_object_get(r, "uptodate");
	const char *peer = str_at(r, "peer", ""), *addr = str_at(r, "peer_addr", "");
	const char *msg = str_at(r, "message", "");
	char dur[32];

	label(f, "module:");
	fprintf(f, "%s, node %s (mirrord %s", str_at(r, "module", "?"), str_at(r, "node", "?"),
	        str_at(r, "version", "?"));
	if (json_is_integer(json_object_get(r, "pid")))
		fprintf(f, ", pid %" JSON_INTEGER_FORMAT,
		        json_integer_value(json_object_get(r, "pid")));
	if (json_is_integer(up) && json_integer_value(up) >= 0)
		fprintf(f, ", up %s",
		        out_duration((uint64_t)json_integer_value(up), dur, sizeof(dur)));
	fprintf(f, ")\n");

	label(f, "state:");
	fprintf(f, "%s (%s), %s\n", str_at(r, "state", "?"), str_at(r, "readiness", "?"),
	        json_is_boolean(utd) ? (json_is_true(utd) ? "uptodate" : "not uptodate")
	                             : "uptodate ?");

	label(f, "peer:");
	if (peer[0] == '\0')
		fprintf(f, "none");
	else if (addr[0] == '\0')
		fprintf(f, "%s", peer);
	else
		fprintf(f, "%s (%s)", peer, addr);
	out_peer_node(f, json_object_get(r, "peer_node"));
	out_cluster(f, r);

	label(f, "config:");
	fprintf(f, "%s, hash %s\n", str_at(r, "config", "?"), str_at(r, "config_hash", "?"));

	label(f, "log:");
	fprintf(f, "%s\n", str_at(r, "log", "?"));

	out_replication(f, json_object_get(r, "replication"));

	if (msg[0] != '\0') {
		label(f, "message:");
		fprintf(f, "%s\n", msg);
	}
	out_rejoin(f, json_object_get(r, "rejoin"));
}

/* The one line of `mirrorctl state`; the exit code is the caller's job. */
void
out_state(FILE *f, const json_t *r)
{
	fprintf(f, "%s (%s)\n", str_at(r, "state", "?"), str_at(r, "readiness", "?"));
}

static size_t
n_vips(const struct cluster_conf *c)
{
	size_t i, n = 0;

	if (!c->vip.present)
		return 0;
	for (i = 0; i < c->vip.n_intfs; i++)
		n += c->vip.intfs[i].n_addrs;
	return n;
}

/* One line per valid userconfig.xml for `config check`; see out.h. */
void
out_cluster_summary(FILE *f, const char *file, const struct cluster_conf *c)
{
	size_t i, j, n_repl = c->rfs.present ? c->rfs.n_repl : 0, nv = n_vips(c);
	const char *sep = " ";

	fprintf(f, "%s: valid, module config hash %s, nodes %s %s, ", file, c->hash_hex,
	        c->nodes[0], c->nodes[1]);
	if (n_repl == 0)
		fprintf(f, "no replicated dir");
	else
		fprintf(f, "%zu replicated dir%s", n_repl, n_repl > 1 ? "s" : "");
	if (nv == 0) {
		fprintf(f, ", no VIP\n");
		return;
	}
	fprintf(f, ", VIP%s", nv > 1 ? "s" : "");
	for (i = 0; i < c->vip.n_intfs; i++) {
		for (j = 0; j < c->vip.intfs[i].n_addrs; j++) {
			fprintf(f, "%s%s", sep, c->vip.intfs[i].addrs[j].addr_str);
			sep = ", ";
		}
	}
	fputc('\n', f);
}

/* `config check --json` entry for a valid userconfig.xml. NULL on ENOMEM. */
json_t *
out_cluster_json(const char *file, const struct cluster_conf *c)
{
	json_t *o, *dirs, *vips;
	size_t i, j;

	o = json_pack("{s:s, s:s, s:b, s:s, s:[ss], s:[], s:[]}", "file", file, "kind", "cluster",
	              "valid", 1, "config_hash", c->hash_hex, "nodes", c->nodes[0], c->nodes[1],
	              "replicated_dirs", "vips");
	if (o == NULL)
		return NULL;
	dirs = json_object_get(o, "replicated_dirs");
	vips = json_object_get(o, "vips");
	for (i = 0; c->rfs.present && i < c->rfs.n_repl; i++)
		if (json_array_append_new(dirs, json_string(c->rfs.repl[i].dir)) == -1)
			goto err;
	for (i = 0; c->vip.present && i < c->vip.n_intfs; i++)
		for (j = 0; j < c->vip.intfs[i].n_addrs; j++)
			if (json_array_append_new(
			            vips, json_string(c->vip.intfs[i].addrs[j].addr_str)) == -1)
				goto err;
	return o;

err:
	json_decref(o);
	return NULL;
}

/* One line per valid node.ini for `config check`. */
void
out_node_summary(FILE *f, const char *file, const struct node_conf *n)
{
	fprintf(f, "%s: valid node config, node %s, run_dir %s, log_dir %s\n", file, n->name,
	        n->run_dir ? n->run_dir : "?", n->log_dir ? n->log_dir : "?");
}

/* `config check --json` entry for a valid node.ini. NULL on ENOMEM. */
json_t *
out_node_json(const char *file, const struct node_conf *n)
{
	return json_pack("{s:s, s:s, s:b, s:s, s:s?, s:s?, s:s?}", "file", file, "kind", "node",
	                 "valid", 1, "node", n->name, "run_dir", n->run_dir, "log_dir", n->log_dir,
	                 "state_dir", n->state_dir);
}

void
out_resources(FILE *f, const json_t *r)
{
	const json_t *res = json_object_get(r, "resources");
	const char *k;
	json_t *v;

	json_object_foreach ((json_t *)res, k, v)
		fprintf(f, "  %-32s %s\n", k, json_string_value(v) ? json_string_value(v) : "?");
	fprintf(f, "  ");
	print_switches(f, r);
}
