/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_ctl_cmd.c - unit tests for mirrorctl's command table and parser
 * (ctl/cmd.c): unique-prefix lookup, the messages that list valid words,
 * option parsing and its errors, and the `state` exit codes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cmd.h"

/* argv from literals; the parser never writes to argv, so dropping const is safe */
#define ARGV(...)           ((char **)(const char *[]){ "mirrorctl", __VA_ARGS__, NULL })
#define ARGC(...)           ((int)(sizeof((const char *[]){ "mirrorctl", __VA_ARGS__ }) / sizeof(char *)))
/* Parse a literal command line into cl; err holds the message. */
#define PARSE(cl, err, ...) cmd_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), cl, err, sizeof(err))

static const struct cmd_def *
top(const char *word)
{
	const struct cmd_def *c;
	char err[256];

	assert_int_equal(cmd_lookup(cmd_table, NULL, word, &c, err, sizeof(err)), 0);
	return c;
}

static void
lookup_exact_match_wins(void **state)
{
	(void)state;
	assert_string_equal(top("status")->name, "status");
	assert_string_equal(top("state")->name, "state");
	assert_string_equal(top("log")->name, "log");
}

static void
lookup_unique_prefix(void **state)
{
	(void)state;
	assert_string_equal(top("statu")->name, "status");
	assert_string_equal(top("conf")->name, "config");
	assert_string_equal(top("co")->name, "config");
	assert_string_equal(top("ch")->name, "checker");
	assert_string_equal(top("er")->name, "errd");
	assert_string_equal(top("set")->name, "set");
	assert_string_equal(top("l")->name, "log");
	assert_string_equal(top("he")->name, "help");
	assert_string_equal(top("vers")->name, "version");
	assert_string_equal(top("veri")->name, "verify");
	assert_string_equal(top("d")->name, "diff");
}

static void
lookup_ambiguous_lists_candidates(void **state)
{
	const struct cmd_def *c = (const struct cmd_def *)1;
	char err[256];

	(void)state;
	assert_int_equal(cmd_lookup(cmd_table, NULL, "st", &c, err, sizeof(err)), -ENOTUNIQ);
	assert_null(c);
	assert_string_equal(err, "ambiguous command 'st': status, state, start, stop, stopstart");
	assert_int_equal(cmd_lookup(cmd_table, NULL, "stat", &c, err, sizeof(err)), -ENOTUNIQ);
	assert_string_equal(err, "ambiguous command 'stat': status, state");
}

static void
lookup_unknown_lists_valid_commands(void **state)
{
	const struct cmd_def *c;
	char err[256];

	(void)state;
	assert_int_equal(cmd_lookup(cmd_table, NULL, "frob", &c, err, sizeof(err)), -ENOENT);
	assert_null(c);
	assert_string_equal(err, "unknown command 'frob'; valid commands: status, state, start, "
	                         "stop, restart, stopstart, forcestop, swap, prim, second, "
	                         "failover, set, checker, errd, resync, verify, diff, config, log, help, version");
	/* a longer word is not a prefix match */
	assert_int_equal(cmd_lookup(cmd_table, NULL, "statusx", &c, err, sizeof(err)), -ENOENT);
	/* the empty word is a prefix of everything but matches nothing */
	assert_int_equal(cmd_lookup(cmd_table, NULL, "", &c, err, sizeof(err)), -ENOENT);
}

static void
lookup_message_truncates_safely(void **state)
{
	const struct cmd_def *c;
	char err[20];

	(void)state;
	assert_int_equal(cmd_lookup(cmd_table, NULL, "frob", &c, err, sizeof(err)), -ENOENT);
	assert_int_equal(strlen(err), sizeof(err) - 1);
}

static void
parse_subcommand_prefix(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "conf", "ch", "a.xml", "b.xml"), 0);
	assert_string_equal(cl.parent->name, "config");
	assert_string_equal(cl.cmd->name, "check");
	assert_int_equal(cl.cmd->run, CMD_RUN_CONFIG_CHECK);
	assert_int_equal(cl.n_args, 2);
	assert_string_equal(cl.args[0], "a.xml");
	assert_string_equal(cl.args[1], "b.xml");
	cmd_full_name(&cl, err, sizeof(err));
	assert_string_equal(err, "config check");
	cmd_line_done(&cl);

	assert_int_equal(PARSE(&cl, err, "config", "s", "a.xml"), 0);
	assert_string_equal(cl.cmd->name, "show");
	cmd_line_done(&cl);
}

static void
parse_subcommand_unknown_and_missing(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "config", "frob"), -EINVAL);
	assert_string_equal(err, "unknown config command 'frob'; valid config commands: check, "
	                         "show");
	assert_null(cl.args);
	assert_int_equal(PARSE(&cl, err, "config"), -EINVAL);
	assert_string_equal(err, "'config' needs a sub-command: check, show");
	assert_int_equal(PARSE(&cl, err, "config", "--json"), -EINVAL);
	assert_string_equal(err, "'config' needs a sub-command: check, show");
}

static void
parse_unknown_and_ambiguous_command(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "st"), -EINVAL);
	assert_string_equal(err, "ambiguous command 'st': status, state, start, stop, stopstart");
	assert_int_equal(PARSE(&cl, err, "-m", "db", "x"), -EINVAL);
	assert_non_null(strstr(err, "unknown command 'x'; valid commands: status, state"));
}

static void
parse_global_options(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "-m", "db", "-n", "/etc/n.ini", "-s", "/run/x.sock",
	                       "status", "--json"),
	                 0);
	assert_string_equal(cl.module, "db");
	assert_string_equal(cl.node_ini, "/etc/n.ini");
	assert_string_equal(cl.socket, "/run/x.sock");
	assert_true(cl.json);
	assert_false(cl.help);
	assert_string_equal(cl.cmd->name, "status");
	assert_null(cl.parent);
	assert_int_equal(cl.n_args, 0);
	cmd_line_done(&cl);
}

static void
parse_option_value_forms(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "--module=db", "--socket", "/s", "state"), 0);
	assert_string_equal(cl.module, "db");
	assert_string_equal(cl.socket, "/s");
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "-mweb", "--json", "state"), 0);
	assert_string_equal(cl.module, "web");
	assert_true(cl.json);
	cmd_line_done(&cl);
	/* global options may follow the command */
	assert_int_equal(PARSE(&cl, err, "status", "-m", "db", "-s", "/s"), 0);
	assert_string_equal(cl.module, "db");
	assert_string_equal(cl.socket, "/s");
	cmd_line_done(&cl);
}

static void
parse_option_errors(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "-m"), -EINVAL);
	assert_string_equal(err, "option '-m' needs a value (NAME)");
	assert_int_equal(PARSE(&cl, err, "status", "--socket"), -EINVAL);
	assert_string_equal(err, "option '--socket' needs a value (PATH)");
	assert_int_equal(PARSE(&cl, err, "-x", "status"), -EINVAL);
	assert_non_null(strstr(err, "unknown option '-x'; valid options: -m, --module, "));
	assert_int_equal(PARSE(&cl, err, "status", "--frob"), -EINVAL);
	assert_non_null(strstr(err, "unknown option '--frob' for 'status'; valid options: "
	                            "--json, -w, --watch, -m, --module"));
	assert_int_equal(PARSE(&cl, err, "--json=yes", "status"), -EINVAL);
	assert_string_equal(err, "option '--json' takes no value");
	assert_int_equal(PARSE(&cl, err, "-hV"), -EINVAL);
	assert_non_null(strstr(err, "options are not combined"));
}

static void
parse_invalid_module_names(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "-m", "../etc", "status"), -EINVAL);
	assert_non_null(strstr(err, "invalid module name '../etc'"));
	assert_int_equal(PARSE(&cl, err, "-m", "a/b", "status"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "-m", "", "status"), -EINVAL);
	assert_true(cmd_module_valid("db"));
	assert_true(cmd_module_valid("my_db-2"));
	assert_true(cmd_module_valid("abcdefghijklmnopqrstuvwxyz012345")); /* 32 */
	assert_false(cmd_module_valid("abcdefghijklmnopqrstuvwxyz0123456"));
	assert_false(cmd_module_valid(".hidden"));
	assert_false(cmd_module_valid("a.b"));
	assert_false(cmd_module_valid("-m"));
	assert_false(cmd_module_valid("a b"));
}

static void
parse_log_options(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "-n", "/etc/n.ini", "log"), 0);
	assert_string_equal(cl.node_ini, "/etc/n.ini");
	assert_int_equal(cl.lines, CMD_LINES_DEFAULT);
	assert_false(cl.follow);
	cmd_line_done(&cl);
	/* after `log`, -n is the line count, not node.ini */
	assert_int_equal(PARSE(&cl, err, "log", "-f", "-n", "20"), 0);
	assert_null(cl.node_ini);
	assert_int_equal(cl.lines, 20);
	assert_true(cl.follow);
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "log", "--lines=0", "--follow"), 0);
	assert_int_equal(cl.lines, 0);
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "log", "-n", "ten"), -EINVAL);
	assert_string_equal(err, "invalid line count 'ten' (expected 0..1000000)");
	assert_int_equal(PARSE(&cl, err, "log", "-n", "-5"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "log", "-n", "2000000"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "log", "-n", "5x"), -EINVAL);
}

static void
parse_status_watch(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "status"), 0);
	assert_int_equal(cl.watch_ms, 0);
	cmd_line_done(&cl);
	/* -w alone is the default interval; global options may follow */
	assert_int_equal(PARSE(&cl, err, "status", "-w", "-m", "db"), 0);
	assert_int_equal(cl.watch_ms, CMD_WATCH_DEFAULT_MS);
	assert_int_equal(cl.watch_ms, 1000);
	assert_string_equal(cl.module, "db");
	assert_int_equal(cl.n_args, 0);
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "statu", "--watch"), 0);
	assert_int_equal(cl.watch_ms, 1000);
	cmd_line_done(&cl);
	/* the value in the next word, attached, or after '=' */
	assert_int_equal(PARSE(&cl, err, "status", "-w", "0.5"), 0);
	assert_int_equal(cl.watch_ms, 500);
	assert_int_equal(cl.n_args, 0);
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "status", "-w2"), 0);
	assert_int_equal(cl.watch_ms, 2000);
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "status", "--watch=.25"), 0);
	assert_int_equal(cl.watch_ms, 250);
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "status", "--watch", "3."), 0);
	assert_int_equal(cl.watch_ms, 3000);
	cmd_line_done(&cl);
	/* the bounds */
	assert_int_equal(PARSE(&cl, err, "status", "-w", "0.2"), 0);
	assert_int_equal(cl.watch_ms, CMD_WATCH_MIN_MS);
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "status", "-w", "86400"), 0);
	assert_int_equal(cl.watch_ms, CMD_WATCH_MAX_MS);
	cmd_line_done(&cl);
	/* a word that is not number-like is not taken as the value */
	assert_int_equal(PARSE(&cl, err, "status", "-w", "extra"), -EINVAL);
	assert_string_equal(err, "too many arguments for 'status' (unexpected 'extra')");
	/* only status watches */
	assert_int_equal(PARSE(&cl, err, "state", "-w"), -EINVAL);
	assert_non_null(strstr(err, "unknown option '-w' for 'state'"));
}

static void
parse_status_watch_refused(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "status", "-w", "--json"), -EINVAL);
	assert_string_equal(err, "--watch redraws the human output and cannot be combined with "
	                         "--json (poll 'mirrorctl status --json' instead)");
	assert_null(cl.args);
	assert_int_equal(PARSE(&cl, err, "--json", "status", "--watch=2"), -EINVAL);
	assert_non_null(strstr(err, "cannot be combined with --json"));
	assert_int_equal(PARSE(&cl, err, "status", "-w", "0.1"), -EINVAL);
	assert_string_equal(err, "invalid interval '0.1' (expected seconds, 0.2..86400, e.g. 0.5)");
	assert_int_equal(PARSE(&cl, err, "status", "-w", "0"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "status", "-w", "-1"), -EINVAL);
	assert_string_equal(err, "invalid interval '-1' (expected seconds, 0.2..86400, e.g. 0.5)");
	assert_int_equal(PARSE(&cl, err, "status", "-w", "86400.5"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "status", "-w", "1e3"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "status", "-w", "0x10"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "status", "-w", "1.2.3"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "status", "-w", "."), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "status", "--watch="), -EINVAL);
	assert_string_equal(err, "invalid interval '' (expected seconds, 0.2..86400, e.g. 0.5)");
	assert_int_equal(PARSE(&cl, err, "status", "-wabc"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "status", "--watch=1s"), -EINVAL);
}

static void
parse_prim_force(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "prim", "--force"), 0);
	assert_true(cl.force);
	cmd_line_done(&cl);
}

static void
parse_argument_counts(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "status", "extra"), -EINVAL);
	assert_string_equal(err, "too many arguments for 'status' (unexpected 'extra')");
	assert_int_equal(PARSE(&cl, err, "config", "check"), -EINVAL);
	assert_string_equal(err, "'config check' needs 1 argument (usage: mirrorctl config check "
	                         "[--node] [--json] FILE...)");
	assert_int_equal(PARSE(&cl, err, "config", "show", "a.xml", "b.xml"), -EINVAL);
	assert_int_equal(cmd_parse(1, ARGV(NULL), &cl, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no command given; valid commands: status, state"));
}

static void
parse_json_only_on_read_commands(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "--json", "log"), -EINVAL);
	assert_string_equal(err, "'log' has no --json output");
	assert_int_equal(PARSE(&cl, err, "config", "show", "--json", "a.xml"), -EINVAL);
	assert_int_equal(PARSE(&cl, err, "config", "check", "--json", "--node", "n.ini"), 0);
	assert_true(cl.json);
	assert_true(cl.node_file);
	cmd_line_done(&cl);
}

static void
parse_double_dash_ends_options(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "config", "check", "--", "-odd.xml", "--node"), 0);
	assert_false(cl.node_file);
	assert_int_equal(cl.n_args, 2);
	assert_string_equal(cl.args[0], "-odd.xml");
	assert_string_equal(cl.args[1], "--node");
	cmd_line_done(&cl);
	/* a lone "-" is an argument */
	assert_int_equal(PARSE(&cl, err, "config", "show", "-"), 0);
	assert_string_equal(cl.args[0], "-");
	cmd_line_done(&cl);
}

static void
parse_help_and_version(void **state)
{
	struct cmd_line cl;
	char err[256];

	(void)state;
	assert_int_equal(PARSE(&cl, err, "-h"), 0);
	assert_true(cl.help);
	assert_null(cl.cmd);
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "--version"), 0);
	assert_true(cl.version);
	assert_null(cl.cmd);
	cmd_line_done(&cl);
	/* -h after a command asks for that command's help, even if it is incomplete */
	assert_int_equal(PARSE(&cl, err, "config", "check", "-h"), 0);
	assert_true(cl.help);
	assert_string_equal(cl.cmd->name, "check");
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "config", "-h"), 0);
	assert_true(cl.help);
	assert_string_equal(cl.cmd->name, "config");
	cmd_line_done(&cl);
	assert_int_equal(PARSE(&cl, err, "help", "stat"), 0);
	assert_int_equal(cl.cmd->run, CMD_RUN_HELP);
	assert_int_equal(cl.n_args, 1);
	cmd_line_done(&cl);
}

static void
table_is_consistent(void **state)
{
	const struct cmd_def *c, *s;

	(void)state;
	for (c = cmd_table; c->name != NULL; c++) {
		/* a leaf has a runner; a node has only sub-commands */
		assert_true((c->subs != NULL) == (c->run == CMD_RUN_NONE));
		assert_true(c->run < CMD_RUN__COUNT);
		assert_non_null(c->help);
		assert_non_null(c->synopsis);
		for (s = c->subs; s != NULL && s->name != NULL; s++) {
			assert_true(s->run != CMD_RUN_NONE && s->run < CMD_RUN__COUNT);
			assert_null(s->subs);
		}
	}
}

static void
state_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(cmd_state_exit("STOP"), 0);
	assert_int_equal(cmd_state_exit("WAIT"), 1);
	assert_int_equal(cmd_state_exit("ALONE"), 2);
	assert_int_equal(cmd_state_exit("PRIM"), 3);
	assert_int_equal(cmd_state_exit("SECOND"), 4);
	assert_int_equal(cmd_state_exit("prim"), -EINVAL);
	assert_int_equal(cmd_state_exit(""), -EINVAL);
	assert_int_equal(cmd_state_exit(NULL), -EINVAL);
}

static void
unreachable_exit_codes(void **state)
{
	(void)state;
	/* `state` must never exit 3 (PRIM) for a dead daemon */
	assert_int_equal(cmd_unreachable_exit(top("state")), CMD_EXIT_STATE_UNREACHABLE);
	assert_int_equal(CMD_EXIT_STATE_UNREACHABLE, 5);
	assert_int_equal(cmd_unreachable_exit(top("status")), CMD_EXIT_UNREACHABLE);
	assert_int_equal(CMD_EXIT_UNREACHABLE, 3);
	assert_int_equal(cmd_unreachable_exit(NULL), CMD_EXIT_UNREACHABLE);
	assert_true(top("state")->flags & CMD_F_STATE_EXIT);
	assert_false(top("status")->flags & CMD_F_STATE_EXIT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lookup_exact_match_wins),
		cmocka_unit_test(lookup_unique_prefix),
		cmocka_unit_test(lookup_ambiguous_lists_candidates),
		cmocka_unit_test(lookup_unknown_lists_valid_commands),
		cmocka_unit_test(lookup_message_truncates_safely),
		cmocka_unit_test(parse_subcommand_prefix),
		cmocka_unit_test(parse_subcommand_unknown_and_missing),
		cmocka_unit_test(parse_unknown_and_ambiguous_command),
		cmocka_unit_test(parse_global_options),
		cmocka_unit_test(parse_option_value_forms),
		cmocka_unit_test(parse_option_errors),
		cmocka_unit_test(parse_invalid_module_names),
		cmocka_unit_test(parse_log_options),
		cmocka_unit_test(parse_status_watch),
		cmocka_unit_test(parse_status_watch_refused),
		cmocka_unit_test(parse_prim_force),
		cmocka_unit_test(parse_argument_counts),
		cmocka_unit_test(parse_json_only_on_read_commands),
		cmocka_unit_test(parse_double_dash_ends_options),
		cmocka_unit_test(parse_help_and_version),
		cmocka_unit_test(table_is_consistent),
		cmocka_unit_test(state_exit_codes),
		cmocka_unit_test(unreachable_exit_codes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
