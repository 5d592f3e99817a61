/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cmd.c - mirrorctl's command table, unique-prefix lookup and argv parser.
 *
 * Pure: nothing here does I/O or reads the environment; every error is a
 * return code plus a one-line message for the admin that names the valid
 * words (relayctl style). Executing a command is mirrorctl.c's job.
 * Any thread; the tables are read-only.
 */
#include "cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct cmd_opt cmd_global_opts[] = {
	{ CMD_OPT_MODULE, 'm', "module", "NAME", "module (default: $MIRROR_MODULE)" },
	{ CMD_OPT_NODE_INI, 'n', "node", "FILE",
	  "node.ini locating the socket and log (default /etc/hamirror/node.ini)" },
	{ CMD_OPT_SOCKET, 's', "socket", "PATH", "control socket (overrides -n/-m)" },
	{ CMD_OPT_JSON, 0, "json", NULL, "machine-readable output (read commands)" },
	{ CMD_OPT_HELP, 'h', "help", NULL, "show this help" },
	{ CMD_OPT_VERSION, 'V', "version", NULL, "show the version" },
	{ CMD_OPT_END, 0, NULL, NULL, NULL },
};

static const struct cmd_opt json_opts[] = {
	{ CMD_OPT_JSON, 0, "json", NULL, "print the daemon's reply as JSON" },
	{ CMD_OPT_END, 0, NULL, NULL, NULL },
};

static const struct cmd_opt status_opts[] = {
	{ CMD_OPT_JSON, 0, "json", NULL, "print the daemon's reply as JSON" },
	{ CMD_OPT_WATCH, 'w', "watch", "[SECONDS]",
	  "redraw every SECONDS (default 1, at least 0.2) until interrupted" },
	{ CMD_OPT_END, 0, NULL, NULL, NULL },
};

static const struct cmd_opt log_opts[] = {
	{ CMD_OPT_FOLLOW, 'f', "follow", NULL, "keep printing lines as they are added" },
	{ CMD_OPT_LINES, 'n', "lines", "LINES", "print the last LINES lines (default 50)" },
	{ CMD_OPT_END, 0, NULL, NULL, NULL },
};

static const struct cmd_opt check_opts[] = {
	{ CMD_OPT_NODE_FILE, 0, "node", NULL, "the files are node.ini files" },
	{ CMD_OPT_JSON, 0, "json", NULL, "one JSON object per file, in an array" },
	{ CMD_OPT_END, 0, NULL, NULL, NULL },
};

static const struct cmd_opt set_opts[] = {
	{ CMD_OPT_RESOURCE, 'r', "resource", "RESOURCE", "the resource (SafeKit's form)" },
	{ CMD_OPT_VALUE, 'v', "value", "VALUE", "up or down" },
	{ CMD_OPT_END, 0, NULL, NULL, NULL },
};

static const struct cmd_opt state_opts[] = {
	{ CMD_OPT_JSON, 0, "json", NULL, "print the daemon's reply as JSON" },
	{ CMD_OPT_VERBOSE, 'v', "verbose", NULL, "also list the resources and their state" },
	{ CMD_OPT_END, 0, NULL, NULL, NULL },
};

static const struct cmd_opt prim_opts[] = {
	{ CMD_OPT_FORCE, 0, "force", NULL,
	  "even if this node's data is not known to be up to date (it becomes the reference)" },
	{ CMD_OPT_END, 0, NULL, NULL, NULL },
};

static const struct cmd_opt resync_opts[] = {
	{ CMD_OPT_FULL, 0, "full", NULL,
	  "compare every file by block checksums (the only kind an admin can ask for)" },
	{ CMD_OPT_END, 0, NULL, NULL, NULL },
};

static const struct cmd_def config_cmds[] = {
	{ "check", "[--node] [--json] FILE...", "validate userconfig.xml (or node.ini) files",
	  CMD_RUN_CONFIG_CHECK, CMD_F_JSON, check_opts, 1, -1, NULL },
	{ "show", "FILE", "print the canonical form of a userconfig.xml (what is hashed)",
	  CMD_RUN_CONFIG_SHOW, 0, NULL, 1, 1, NULL },
	{ NULL, NULL, NULL, CMD_RUN_NONE, 0, NULL, 0, 0, NULL },
};

/* Usage lists commands in this order; ambiguity messages too. */
const struct cmd_def cmd_table[] = {
	{ "status", "[--json|-w [SECONDS]]", "show the module's state, peer and configuration",
	  CMD_RUN_STATUS, CMD_F_DAEMON | CMD_F_JSON, status_opts, 0, 0, NULL },
	{ "state", "[--json] [-v]", "print the state; the exit code is the state (see below)",
	  CMD_RUN_STATE, CMD_F_DAEMON | CMD_F_JSON | CMD_F_STATE_EXIT, state_opts, 0, 0, NULL },
	{ "start", "", "start the module on this node (WAIT, then elected or joining)",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, NULL, 0, 0, NULL },
	{ "stop", "", "stop the module here; a primary first hands over to an up-to-date secondary",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, NULL, 0, 0, NULL },
	{ "restart", "", "primary only: stop_prim then start_prim here, no failover",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, NULL, 0, 0, NULL },
	{ "stopstart", "", "stop the module, then start it again (a primary hands over)",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, NULL, 0, 0, NULL },
	{ "forcestop", "", "stop at once: kill the running script, no handover", CMD_RUN_DAEMON,
	  CMD_F_DAEMON, NULL, 0, 0, NULL },
	{ "swap", "", "on the primary: planned switch-over to the secondary, nothing lost",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, NULL, 0, 0, NULL },
	{ "prim", "[--force]", "make this node primary (first start, split brain, or by force)",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, prim_opts, 0, 0, NULL },
	{ "second", "", "make this node secondary of the primary peer", CMD_RUN_DAEMON,
	  CMD_F_DAEMON, NULL, 0, 0, NULL },
	{ "failover", "on|off", "allow (or forbid) this node to take over automatically",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, NULL, 1, 1, NULL },
	{ "set", "RESOURCE up|down | -r RESOURCE -v up|down",
	  "set a custom checker's resource (custom.IDENT)", CMD_RUN_DAEMON, CMD_F_DAEMON,
	  set_opts, 0, 2, NULL },
	{ "checker", "on|off", "run the <check> checkers or not (kept across restarts)",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, NULL, 1, 1, NULL },
	{ "errd", "on|off", "run the <errd> process monitor or not (kept across restarts)",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, NULL, 1, 1, NULL },
	{ "resync", "[--full]", "on the primary: resync the secondary comparing every file",
	  CMD_RUN_DAEMON, CMD_F_DAEMON, resync_opts, 0, 0, NULL },
	{ "verify", "[--json]", "on the primary: compare both copies online, change nothing",
	  CMD_RUN_VERIFY, CMD_F_DAEMON | CMD_F_JSON, json_opts, 0, 0, NULL },
	{ "diff", "[--json]", "what a resync of the peer would send now (changed files, blocks)",
	  CMD_RUN_DIFF, CMD_F_DAEMON | CMD_F_JSON, json_opts, 0, 0, NULL },
	{ "config", "check|show FILE...", "check configuration files (no daemon needed)",
	  CMD_RUN_NONE, 0, NULL, 0, 0, config_cmds },
	{ "log", "[-f] [-n LINES]", "print the module log (no daemon needed)", CMD_RUN_LOG,
	  CMD_F_MODULE, log_opts, 0, 0, NULL },
	{ "help", "[COMMAND]", "show this help, or one command's", CMD_RUN_HELP, 0, NULL, 0, 1,
	  NULL },
	{ "version", "", "show the version", CMD_RUN_VERSION, 0, NULL, 0, 0, NULL },
	{ NULL, NULL, NULL, CMD_RUN_NONE, 0, NULL, 0, 0, NULL },
};

/* Append the names of tab to buf as "a, b, c" (only those with prefix word if
 * word is non-NULL). */
static void
list_words(char *buf, size_t len, const struct cmd_def *tab, const char *word)
{
	size_t used = strlen(buf), wlen = word ? strlen(word) : 0;
	const char *sep = "";
	int n;

	for (; tab->name != NULL; tab++) {
		if (word != NULL && strncmp(tab->name, word, wlen) != 0)
			continue;
		if (used >= len)
			return;
		n = snprintf(buf + used, len - used, "%s%s", sep, tab->name);
		if (n < 0)
			return;
		used += (size_t)n;
		sep = ", ";
	}
}

/* Exact name first, then a unique prefix; see cmd.h. Pure, any thread. */
int
cmd_lookup(const struct cmd_def *tab, const struct cmd_def *parent, const char *word,
           const struct cmd_def **out, char *err, size_t err_len)
{
	const struct cmd_def *c, *found = NULL;
	const char *pname = parent ? parent->name : "";
	const char *psep = parent ? " " : "";
	size_t wlen = strlen(word), n_found = 0;

	*out = NULL;
	for (c = tab; c->name != NULL; c++) {
		if (strcmp(c->name, word) == 0) {
			*out = c;
			return 0;
		}
		if (wlen > 0 && strncmp(c->name, word, wlen) == 0) {
			found = c;
			n_found++;
		}
	}
	if (n_found == 1) {
		*out = found;
		return 0;
	}
	if (n_found > 1) {
		snprintf(err, err_len, "ambiguous %s%scommand '%s': ", pname, psep, word);
		list_words(err, err_len, tab, word);
		return -ENOTUNIQ;
	}
	snprintf(err, err_len, "unknown %s%scommand '%s'; valid %s%scommands: ", pname, psep, word,
	         pname, psep);
	list_words(err, err_len, tab, NULL);
	return -ENOENT;
}

static const struct cmd_opt *
find_short(const struct cmd_opt *opts, char ch)
{
	if (opts == NULL)
		return NULL;
	for (; opts->id != CMD_OPT_END; opts++)
		if (opts->short_name != 0 && opts->short_name == ch)
			return opts;
	return NULL;
}

static const struct cmd_opt *
find_long(const struct cmd_opt *opts, const char *name, size_t len)
{
	if (opts == NULL)
		return NULL;
	for (; opts->id != CMD_OPT_END; opts++)
		if (strlen(opts->long_name) == len && strncmp(opts->long_name, name, len) == 0)
			return opts;
	return NULL;
}

/* Append "-x, --long" for every option to buf. */
static void
list_opts(char *buf, size_t len, const struct cmd_opt *opts)
{
	size_t used = strlen(buf);
	const char *sep = "";
	int n;

	for (; opts != NULL && opts->id != CMD_OPT_END; opts++) {
		if (used >= len)
			return;
		if (opts->short_name != 0)
			n = snprintf(buf + used, len - used, "%s-%c, --%s", sep, opts->short_name,
			             opts->long_name);
		else
			n = snprintf(buf + used, len - used, "%s--%s", sep, opts->long_name);
		if (n < 0)
			return;
		used += (size_t)n;
		sep = ", ";
	}
}

static int
parse_lines(const char *s, unsigned *out, char *err, size_t err_len)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		goto bad;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > CMD_LINES_MAX)
		goto bad;
	*out = (unsigned)v;
	return 0;
bad:
	snprintf(err, err_len, "invalid line count '%s' (expected 0..%u)", s, CMD_LINES_MAX);
	return -EINVAL;
}

/* Seconds as "2", "0.5", ".5" or "2." into ms, rounded to the nearest ms.
 * strtod() alone would also take a sign, exponents, hex, inf and nan: only
 * digits and one '.' get that far. NULL (-w alone) is the default. */
static int
parse_interval(const char *s, unsigned *out_ms, char *err, size_t err_len)
{
	size_t len;
	double sec;

	if (s == NULL) {
		*out_ms = CMD_WATCH_DEFAULT_MS;
		return 0;
	}
	len = strlen(s);
	if (strspn(s, "0123456789.") != len || strchr(s, '.') != strrchr(s, '.') ||
	    strcspn(s, "0123456789") == len)
		goto bad;
	sec = strtod(s, NULL); /* mirrorctl never calls setlocale(): '.' is the point */
	if (sec > (double)CMD_WATCH_MAX_MS / 1000.0 ||
	    sec * 1000.0 + 0.5 < (double)CMD_WATCH_MIN_MS)
		goto bad;
	*out_ms = (unsigned)(sec * 1000.0 + 0.5);
	return 0;
bad:
	snprintf(err, err_len, "invalid interval '%s' (expected seconds, %u.%u..%u, e.g. 0.5)", s,
	         CMD_WATCH_MIN_MS / 1000u, CMD_WATCH_MIN_MS % 1000u / 100u,
	         CMD_WATCH_MAX_MS / 1000u);
	return -EINVAL;
}

/* See struct cmd_opt: "[X]" marks a value that may be left out. */
static bool
opt_value_optional(const struct cmd_opt *o)
{
	return o->metavar != NULL && o->metavar[0] == '[';
}

/* A word an optional value may be taken from: "5", "0.5", ".5", and "-1"
 * too, so that it is refused as a bad value, not as an unknown option. */
static bool
looks_numeric(const char *s)
{
	if (s[0] == '-')
		s++;
	return (s[0] >= '0' && s[0] <= '9') || s[0] == '.';
}

static int
set_opt(struct cmd_line *cl, const struct cmd_opt *o, const char *val, char *err, size_t err_len)
{
	if (o->metavar != NULL && val == NULL && !opt_value_optional(o)) {
		/* parse_opt() guarantees a value */
		snprintf(err, err_len, "option '--%s' needs a value", o->long_name);
		return -EINVAL;
	}
	switch (o->id) {
	case CMD_OPT_MODULE:
		if (!cmd_module_valid(val)) {
			snprintf(err, err_len,
			         "invalid module name '%s' (1..%d letters, digits, '_' or '-', "
			         "not starting with '-')",
			         val, CMD_MODULE_MAX);
			return -EINVAL;
		}
		cl->module = val;
		return 0;
	case CMD_OPT_NODE_INI:
		cl->node_ini = val;
		return 0;
	case CMD_OPT_SOCKET:
		cl->socket = val;
		return 0;
	case CMD_OPT_JSON:
		cl->json = true;
		return 0;
	case CMD_OPT_HELP:
		cl->help = true;
		return 0;
	case CMD_OPT_VERSION:
		cl->version = true;
		return 0;
	case CMD_OPT_FORCE:
		cl->force = true;
		return 0;
	case CMD_OPT_FULL:
		cl->full = true;
		return 0;
	case CMD_OPT_RESOURCE:
		cl->resource = val;
		return 0;
	case CMD_OPT_VALUE:
		cl->value = val;
		return 0;
	case CMD_OPT_VERBOSE:
		cl->verbose = true;
		return 0;
	case CMD_OPT_FOLLOW:
		cl->follow = true;
		return 0;
	case CMD_OPT_LINES:
		return parse_lines(val, &cl->lines, err, err_len);
	case CMD_OPT_NODE_FILE:
		cl->node_file = true;
		return 0;
	case CMD_OPT_WATCH:
		return parse_interval(val, &cl->watch_ms, err, err_len);
	case CMD_OPT_END:
		break;
	}
	snprintf(err, err_len, "internal error: option without a handler");
	return -EINVAL;
}

/*
 * Parse one option word at argv[*i]. The command's own options are tried
 * first, then the global ones (so `log -n 5` means lines, not node.ini).
 * Accepted forms: -x, -xVALUE, -x VALUE, --long, --long=VALUE, --long VALUE;
 * an optional value ("[X]") is taken from the next word only if it looks
 * like a number.
 */
static int
parse_opt(int argc, char **argv, int *i, const struct cmd_opt *cmd_opts, struct cmd_line *cl,
          const char *where, char *err, size_t err_len)
{
	const char *arg = argv[*i], *val = NULL, *eq;
	const struct cmd_opt *o;
	char name[64];

	if (arg[1] == '-') {
		size_t len;

		eq = strchr(arg + 2, '=');
		len = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
		o = find_long(cmd_opts, arg + 2, len);
		if (o == NULL)
			o = find_long(cmd_global_opts, arg + 2, len);
		snprintf(name, sizeof(name), "--%.*s", (int)(len < 40 ? len : 40), arg + 2);
		if (eq != NULL) {
			if (o != NULL && o->metavar == NULL) {
				snprintf(err, err_len, "option '%s' takes no value", name);
				return -EINVAL;
			}
			val = eq + 1;
		}
	} else {
		o = find_short(cmd_opts, arg[1]);
		if (o == NULL)
			o = find_short(cmd_global_opts, arg[1]);
		snprintf(name, sizeof(name), "-%c", arg[1]);
		if (arg[2] != '\0') {
			if (o != NULL && o->metavar == NULL) {
				snprintf(err, err_len,
				         "unknown option '%.40s' (options are not combined)", arg);
				return -EINVAL;
			}
			val = arg + 2;
		}
	}
	if (o == NULL) {
		snprintf(err, err_len, "unknown option '%s'%s; valid options: ", name, where);
		if (cmd_opts != NULL) {
			list_opts(err, err_len, cmd_opts);
			strncat(err, ", ", err_len - strlen(err) - 1);
		}
		list_opts(err, err_len, cmd_global_opts);
		return -EINVAL;
	}
	if (opt_value_optional(o) && val == NULL) {
		if (*i + 1 < argc && looks_numeric(argv[*i + 1]))
			val = argv[++*i];
	} else if (o->metavar != NULL && val == NULL) {
		if (*i + 1 >= argc) {
			snprintf(err, err_len, "option '%s' needs a value (%s)", name, o->metavar);
			return -EINVAL;
		}
		val = argv[++*i];
	}
	return set_opt(cl, o, val, err, err_len);
}

static bool
is_option(const char *arg)
{
	return arg[0] == '-' && arg[1] != '\0';
}

/* Global options, command words, then the command's options and positional
 * arguments; see cmd.h for the contract. Pure, any thread. */
int
cmd_parse(int argc, char **argv, struct cmd_line *cl, char *err, size_t err_len)
{
	const struct cmd_def *c = NULL, *parent = NULL;
	char where[96], full[64];
	bool opts_done = false;
	int i = 1, r;

	*cl = (struct cmd_line){ .lines = CMD_LINES_DEFAULT };
	err[0] = '\0';
	cl->args = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*cl->args));
	if (cl->args == NULL)
		return -ENOMEM;

	/* global options */
	for (; i < argc && is_option(argv[i]); i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		r = parse_opt(argc, argv, &i, NULL, cl, "", err, err_len);
		if (r < 0)
			goto err;
	}
	if (i >= argc) {
		if (cl->help || cl->version)
			return 0;
		snprintf(err, err_len, "no command given; valid commands: ");
		list_words(err, err_len, cmd_table, NULL);
		r = -EINVAL;
		goto err;
	}

	/* the command word, then sub-command words */
	r = cmd_lookup(cmd_table, NULL, argv[i++], &c, err, err_len);
	if (r < 0)
		goto err;
	while (c->subs != NULL && i < argc && !is_option(argv[i])) {
		parent = c;
		r = cmd_lookup(c->subs, parent, argv[i++], &c, err, err_len);
		if (r < 0)
			goto err;
	}
	cl->cmd = c;
	cl->parent = parent;
	cmd_full_name(cl, full, sizeof(full));
	snprintf(where, sizeof(where), " for '%s'", full);

	/* command options and positional arguments, in any order */
	for (; i < argc; i++) {
		if (!opts_done && strcmp(argv[i], "--") == 0) {
			opts_done = true;
			continue;
		}
		if (!opts_done && is_option(argv[i])) {
			r = parse_opt(argc, argv, &i, c->opts, cl, where, err, err_len);
			if (r < 0)
				goto err;
			continue;
		}
		cl->args[cl->n_args++] = argv[i];
	}
	if (cl->help)
		return 0;
	if (c->subs != NULL) {
		snprintf(err, err_len, "'%s' needs a sub-command: ", c->name);
		list_words(err, err_len, c->subs, NULL);
		r = -EINVAL;
		goto err;
	}
	if (cl->n_args < c->min_args) {
		snprintf(err, err_len, "'%s' needs %d argument%s (usage: mirrorctl %s %s)", full,
		         c->min_args, c->min_args > 1 ? "s" : "", full, c->synopsis);
		r = -EINVAL;
		goto err;
	}
	if (c->max_args >= 0 && cl->n_args > c->max_args) {
		snprintf(err, err_len, "too many arguments for '%s' (unexpected '%s')", full,
		         cl->args[c->max_args]);
		r = -EINVAL;
		goto err;
	}
	if (cl->json && !(c->flags & CMD_F_JSON) && c->run != CMD_RUN_HELP &&
	    c->run != CMD_RUN_VERSION) {
		snprintf(err, err_len, "'%s' has no --json output", full);
		r = -EINVAL;
		goto err;
	}
	if (cl->json && cl->watch_ms != 0) {
		snprintf(err, err_len,
		         "--watch redraws the human output and cannot be combined with --json "
		         "(poll 'mirrorctl %s --json' instead)",
		         full);
		r = -EINVAL;
		goto err;
	}
	return 0;

err:
	cmd_line_done(cl);
	return r == -ENOMEM ? r : -EINVAL;
}

/* Release the positional-argument array; safe on a zeroed struct. */
void
cmd_line_done(struct cmd_line *cl)
{
	free(cl->args);
	cl->args = NULL;
	cl->n_args = 0;
}

/* "status" or "config check", for messages and usage; truncates to len. */
void
cmd_full_name(const struct cmd_line *cl, char *buf, size_t len)
{
	if (cl->cmd == NULL)
		snprintf(buf, len, "%s", cl->parent ? cl->parent->name : "");
	else if (cl->parent != NULL)
		snprintf(buf, len, "%s %s", cl->parent->name, cl->cmd->name);
	else
		snprintf(buf, len, "%s", cl->cmd->name);
}

/* SafeKit's `state` exit codes: the index in this list. Pure. */
int
cmd_state_exit(const char *state)
{
	static const char *const names[] = { "STOP", "WAIT", "ALONE", "PRIM", "SECOND" };
	size_t i;

	if (state == NULL)
		return -EINVAL;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(state, names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

/* 5 for `state` (3 would read as PRIM), 3 for everything else. Pure. */
int
cmd_unreachable_exit(const struct cmd_def *c)
{
	if (c != NULL && (c->flags & CMD_F_STATE_EXIT))
		return CMD_EXIT_STATE_UNREACHABLE;
	return CMD_EXIT_UNREACHABLE;
}

/* The module name becomes RUN_DIR/NAME.sock and LOG_DIR/NAME.log, so it must
 * not contain '/' or '.'; mirrord applies the same rule. Pure. */
bool
cmd_module_valid(const char *name)
{
	size_t i, len = strlen(name);

	if (len == 0 || len > CMD_MODULE_MAX || name[0] == '-')
		return false;
	for (i = 0; i < len; i++) {
		char ch = name[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}
