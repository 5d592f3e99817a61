/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cmd.h - mirrorctl's command table and command-line parser.
 *
 * The table (cmd_table[]) is static data: each entry names a verb, its
 * options, how many positional arguments it takes and which runner executes
 * it (enum cmd_run; mirrorctl.c maps runners to handlers). Words match by
 * unique prefix; an exact match always wins. Parsing is pure: no I/O, no
 * global state, messages go to a caller-supplied buffer. Any thread.
 *
 * Adding a daemon verb that only sends {"cmd": NAME, "args": [...]} and prints
 * the reply is one table line with CMD_RUN_DAEMON and CMD_F_DAEMON, e.g.
 *   { "swap", "", "swap the roles", CMD_RUN_DAEMON, CMD_F_DAEMON, NULL, 0, 0, NULL },
 * A verb with its own output needs one table line plus a runner value and its
 * handler in mirrorctl.c. mirrorctl locates the socket before running any
 * CMD_F_DAEMON verb, so handlers never deal with node.ini.
 */
#ifndef MR_CTL_CMD_H
#define MR_CTL_CMD_H

#include <stdbool.h>
#include <stddef.h>

/* Process exit codes (stable, documented in mirrorctl(8)). */
enum cmd_exit {
	CMD_EXIT_OK = 0,
	CMD_EXIT_FAILED = 1, /* the daemon said no, or a local check failed */
	CMD_EXIT_USAGE = 2,
	CMD_EXIT_UNREACHABLE = 3, /* no daemon, no reply within the timeout */
	/* `state` exits with the state (0..4; 3 is PRIM), so an unreachable
	 * daemon must use a code no state uses. */
	CMD_EXIT_STATE_UNREACHABLE = 5,
};

/* What executes a command; mirrorctl.c holds one handler per value. */
enum cmd_run {
	CMD_RUN_NONE = 0, /* has sub-commands only */
	CMD_RUN_DAEMON,   /* generic: send NAME + args, print the result */
	CMD_RUN_STATUS,
	CMD_RUN_STATE,
	CMD_RUN_CONFIG_CHECK,
	CMD_RUN_CONFIG_SHOW,
	CMD_RUN_LOG,
	CMD_RUN_HELP,
	CMD_RUN_VERSION,
	CMD_RUN_VERIFY,
	CMD_RUN_DIFF,
	CMD_RUN__COUNT,
};

enum cmd_flag {
	CMD_F_DAEMON = 1u << 0,     /* talks to mirrord over the control socket */
	CMD_F_MODULE = 1u << 1,     /* needs the module and node.ini (not the socket) */
	CMD_F_JSON = 1u << 2,       /* has --json output */
	CMD_F_STATE_EXIT = 1u << 3, /* exit code is the state; unreachable is 5 */
};

enum cmd_opt_id {
	CMD_OPT_END = 0,
	/* global */
	CMD_OPT_MODULE,
	CMD_OPT_NODE_INI,
	CMD_OPT_SOCKET,
	CMD_OPT_JSON,
	CMD_OPT_HELP,
	CMD_OPT_VERSION,
	/* per command */
	CMD_OPT_FOLLOW,
	CMD_OPT_LINES,
	CMD_OPT_NODE_FILE,
	CMD_OPT_FORCE,
	CMD_OPT_WATCH,
	CMD_OPT_FULL,
	CMD_OPT_RESOURCE,
	CMD_OPT_VALUE,
	CMD_OPT_VERBOSE,
};

/* One option; arrays of them end with an entry whose id is CMD_OPT_END. */
struct cmd_opt {
	enum cmd_opt_id id;
	char short_name; /* 0 = long form only */
	const char *long_name;
	/* NULL = flag without a value; "[X]" = optional value, taken from the
	 * next word only when that word looks like a number (status -w 0.5) */
	const char *metavar;
	const char *help;
};

/* One verb. Tables end with an entry whose name is NULL. */
struct cmd_def {
	const char *name;
	const char *synopsis; /* arguments for the usage line ("" if none) */
	const char *help;     /* one line */
	enum cmd_run run;
	unsigned flags;             /* enum cmd_flag */
	const struct cmd_opt *opts; /* command options or NULL */
	int min_args;
	int max_args;               /* -1 = no limit */
	const struct cmd_def *subs; /* sub-command table or NULL */
};

#define CMD_LINES_DEFAULT 50u
#define CMD_LINES_MAX     1000000u
#define CMD_MODULE_MAX    32 /* as mirrord */

/* status -w SECONDS, kept in ms */
#define CMD_WATCH_DEFAULT_MS 1000u
#define CMD_WATCH_MIN_MS     200u
#define CMD_WATCH_MAX_MS     86400000u

/* The result of cmd_parse(). String pointers are borrowed from argv. */
struct cmd_line {
	const char *module;   /* -m; NULL = use $MIRROR_MODULE */
	const char *node_ini; /* -n (before the command); NULL = default */
	const char *socket;   /* -s */
	bool json;
	bool help;                    /* -h/--help anywhere */
	bool version;                 /* -V/--version */
	const struct cmd_def *cmd;    /* leaf command; NULL with -h/-V alone */
	const struct cmd_def *parent; /* top-level entry when cmd is a sub-command */
	bool follow;                  /* log -f */
	unsigned lines;               /* log -n; CMD_LINES_DEFAULT */
	bool node_file;               /* config check --node */
	bool force;                   /* prim --force */
	bool full;                    /* resync --full */
	const char *resource;         /* set -r */
	const char *value;            /* set -v */
	bool verbose;                 /* state -v */
	unsigned watch_ms;            /* status -w; 0 = no watch */
	const char **args;            /* positional arguments; owned array */
	int n_args;
};

/* The top-level command table, in the order usage lists it. */
extern const struct cmd_def cmd_table[];
/* The global options, in the order usage lists them. */
extern const struct cmd_opt cmd_global_opts[];

/* Find word in tab (NULL-name terminated) by exact name, else by unique
 * prefix. parent is the enclosing command for sub-command tables (used in
 * messages) or NULL. Returns 0 and *out, -ENOENT (unknown: err lists the valid
 * words) or -ENOTUNIQ (ambiguous: err lists the candidates). Pure. */
int cmd_lookup(const struct cmd_def *tab, const struct cmd_def *parent, const char *word,
               const struct cmd_def **out, char *err, size_t err_len);

/* Parse a whole command line (argv[0] is skipped). Global options come before
 * the command and may also follow it unless the command has an option with
 * the same letter (log -n). Returns 0 (cl filled; release with
 * cmd_line_done()), -EINVAL for a usage error with the reason in err, or
 * -ENOMEM. Pure. */
int cmd_parse(int argc, char **argv, struct cmd_line *cl, char *err, size_t err_len);

/* Free what cmd_parse() allocated; cl may be zeroed or parsed. */
void cmd_line_done(struct cmd_line *cl);

/* Write the full command name ("status", "config check") into buf. */
void cmd_full_name(const struct cmd_line *cl, char *buf, size_t len);

/* Exit code of `mirrorctl state` for a daemon state name: STOP 0, WAIT 1,
 * ALONE 2, PRIM 3, SECOND 4 (SafeKit's codes). -EINVAL for any other name. */
int cmd_state_exit(const char *state);

/* Exit code when the daemon cannot be reached for command c (NULL allowed):
 * CMD_EXIT_STATE_UNREACHABLE for `state`, CMD_EXIT_UNREACHABLE otherwise. */
int cmd_unreachable_exit(const struct cmd_def *c);

/* True when name can be a module name, by mirrord's rule: 1..CMD_MODULE_MAX
 * characters from [A-Za-z0-9_-], not starting with '-' (it becomes a file
 * name and must not look like an option). */
bool cmd_module_valid(const char *name);

#endif
