/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_script.c - the script runner against real /bin/sh scripts.
 *
 * A mkdtemp() directory holds bin/ (the scripts, 0755), log/ (per-script logs)
 * and module.log (the module log, to check the key=value lines). Scripts
 * report what they saw by writing to $OUTFILE (a <var>). Every wait runs the
 * loop with UV_RUN_ONCE and a wake-up timer until a condition or a deadline.
 * "Gone" means kill(pid, 0) fails with ESRCH, or the process is a zombie
 * waiting for a reaper that is not us (orphans go to PID 1, which may not
 * reap in a container).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "script.h"
#include "util.h"

static char tmpdir[] = "/tmp/test_script.XXXXXX";
static char bindir[PATH_MAX];
static char logdir[PATH_MAX];
static char outfile[PATH_MAX];
static char outfile_pid[PATH_MAX + 8];
static char outfile_bg[PATH_MAX + 8];
static char modlog[PATH_MAX];

struct fx {
	uv_loop_t loop;
	uv_timer_t wake;
	struct conf_var vars[3];
	struct conf_user user;
	struct script_env env;
	struct script_runner *s;
	int calls;
	enum script_result res;
	int status;
	char detail[PATH_MAX + 256];
	uint64_t start_ms;
	uint64_t done_ms;
	/* for the chaining test */
	bool chain;
	int other_handles;
};

/* ---- helpers ------------------------------------------------------------ */

static int
rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_rf(const char *path)
{
	(void)nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void
path_join(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

static void
write_script(const char *name, mode_t mode, const char *body)
{
	char path[PATH_MAX];
	FILE *f;

	path_join(path, bindir, name);
	f = fopen(path, "we");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s", body);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Whole file as a string (caller frees), or NULL if it does not exist. */
static char *
read_text(const char *path)
{
	char *buf;
	FILE *f;
	size_t n;

	f = fopen(path, "re");
	if (f == NULL)
		return NULL;
	buf = calloc(1, 65536);
	assert_non_null(buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	(void)fclose(f);
	return buf;
}

static pid_t
read_pid(const char *suffix)
{
	char path[PATH_MAX];
	char *t;
	long v;

	assert_true(snprintf(path, sizeof(path), "%s%s", outfile, suffix) < (int)sizeof(path));
	t = read_text(path);
	if (t == NULL)
		return 0;
	v = strtol(t, NULL, 10);
	free(t);
	return (pid_t)v;
}

static bool
pid_gone(pid_t pid)
{
	char path[64];
	char *t, *p;
	bool zombie = false;

	if (kill(pid, 0) == -1 && errno == ESRCH)
		return true;
	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	t = read_text(path);
	if (t == NULL)
		return true;
	p = strrchr(t, ')');
	if (p != NULL && (p[2] == 'Z' || p[2] == 'X'))
		zombie = true;
	free(t);
	return zombie;
}

/* Poll until pid is gone; bounded. */
static bool
wait_pid_gone(pid_t pid, unsigned max_ms)
{
	uint64_t end = mr_now_ms() + max_ms;
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	while (!pid_gone(pid)) {
		if (mr_now_ms() >= end)
			return false;
		(void)nanosleep(&ts, NULL);
	}
	return true;
}

static void
wake_cb(uv_timer_t *t)
{
	(void)t;
}

typedef bool (*cond_fn)(struct fx *f);

/* Run the loop until cond(f) or max_ms; the wake timer bounds each turn. */
static bool
run_until(struct fx *f, cond_fn cond, unsigned max_ms)
{
	uint64_t end = mr_now_ms() + max_ms;

	assert_int_equal(uv_timer_start(&f->wake, wake_cb, 10, 10), 0);
	while (!cond(f) && mr_now_ms() < end)
		(void)uv_run(&f->loop, UV_RUN_ONCE);
	(void)uv_timer_stop(&f->wake);
	return cond(f);
}

static bool
is_done(struct fx *f)
{
	return f->calls > 0;
}

static bool
pid_file_written(struct fx *f)
{
	(void)f;
	return read_pid(".pid") > 0;
}

static void
done_cb(void *ctx, enum script_result res, int status, const char *detail)
{
	struct fx *f = ctx;

	f->calls++;
	f->res = res;
	f->status = status;
	f->done_ms = mr_now_ms();
	assert_non_null(detail);
	assert_true(mr_strlcpy(f->detail, detail, sizeof(f->detail)) == 0);
}

/* Run name with args and wait for the result (bounded). */
static void
run_wait(struct fx *f, const char *name, const char *const *args, unsigned timeout_ms,
         unsigned max_ms)
{
	f->calls = 0;
	f->start_ms = mr_now_ms();
	assert_int_equal(script_run(f->s, name, args, "PRIM", timeout_ms, done_cb, f), 0);
	assert_int_equal(f->calls, 0); /* never called from inside script_run() */
	assert_true(run_until(f, is_done, max_ms));
	assert_int_equal(f->calls, 1);
	assert_null(script_running(f->s));
}

static void
new_runner(struct fx *f)
{
	f->s = script_runner_new(&f->loop, &f->env);
	assert_non_null(f->s);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	rm_rf(bindir);
	rm_rf(logdir);
	(void)unlink(modlog);
	assert_int_equal(mkdir(bindir, 0755), 0);
	assert_int_equal(chmod(bindir, 0755), 0); /* whatever the umask */
	assert_int_equal(mkdir(logdir, 0755), 0);
	(void)unlink(outfile);
	(void)unlink(outfile_pid);
	(void)unlink(outfile_bg);
	assert_int_equal(log_open_file(modlog), 0);

	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(uv_timer_init(&f->loop, &f->wake), 0);
	(void)mr_strlcpy(f->vars[0].name, "OUTFILE", sizeof(f->vars[0].name));
	f->vars[0].value = outfile;
	(void)mr_strlcpy(f->vars[1].name, "MYVAR", sizeof(f->vars[1].name));
	f->vars[1].value = (char *)"a b  'c' $HOME \"q\"";
	(void)mr_strlcpy(f->vars[2].name, "HAMIRROR_NODE", sizeof(f->vars[2].name));
	f->vars[2].value = (char *)"evil";
	f->user.present = true;
	f->user.logging = true;
	f->user.vars = f->vars;
	f->user.n_vars = 3;
	f->env.dir = bindir;
	f->env.log_dir = logdir;
	f->env.module = "mod";
	f->env.node = "n1";
	f->env.peer = "n2";
	f->env.user = &f->user;
	new_runner(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	uint64_t end = mr_now_ms() + 5000;
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	script_runner_free(f->s);
	f->s = NULL;
	uv_close((uv_handle_t *)&f->wake, NULL);
	for (;;) {
		(void)uv_run(&f->loop, UV_RUN_NOWAIT);
		if (!uv_loop_alive(&f->loop) || mr_now_ms() >= end)
			break;
		(void)nanosleep(&ts, NULL);
	}
	assert_int_equal(uv_loop_close(&f->loop), 0);
	log_close();
	free(f);
	return 0;
}

static int
group_setup(void **state)
{
	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	path_join(bindir, tmpdir, "bin");
	path_join(logdir, tmpdir, "log");
	path_join(outfile, tmpdir, "out");
	path_join(modlog, tmpdir, "module.log");
	(void)snprintf(outfile_pid, sizeof(outfile_pid), "%s.pid", outfile);
	(void)snprintf(outfile_bg, sizeof(outfile_bg), "%s.bg", outfile);
	log_init("test_script", LOG_LVL_INFO, false, false);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	rm_rf(tmpdir);
	return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void
args_and_env_reach_script(void **state)
{
	struct fx *f = *state;
	const char *const args[] = { "force", "PRIM", "STOP", "stop", NULL };
	char expect[3 * PATH_MAX];
	char *out;

	write_script(
	        "stop_prim", 0755,
	        "out=\"$OUTFILE\"\n"
	        "printf 'argc=%s\\n' \"$#\" > \"$out\"\n"
	        "for a in \"$@\"; do printf 'arg=%s\\n' \"$a\" >> \"$out\"; done\n"
	        "printf 'module=%s\\nnode=%s\\npeer=%s\\nrole=%s\\n' \"$HAMIRROR_MODULE\" "
	        "\"$HAMIRROR_NODE\" \"$HAMIRROR_PEER\" \"$HAMIRROR_ROLE\" >> \"$out\"\n"
	        "printf 'safemodule=%s\\nsafeuserbin=%s\\nmyvar=%s\\npwd=%s\\n' "
	        "\"$SAFEMODULE\" \"$SAFEUSERBIN\" \"$MYVAR\" \"$(pwd)\" >> \"$out\"\n"
	        "[ -n \"$PATH\" ] && echo path=set >> \"$out\"\n"
	        "if read x; then echo stdin=data >> \"$out\"; else echo stdin=eof >> \"$out\"; "
	        "fi\n"
	        "exit 0\n");
	run_wait(f, "stop_prim", args, 5000, 5000);
	assert_int_equal(f->res, SCRIPT_OK);
	assert_int_equal(f->status, 0);
	assert_string_equal(f->detail, "exit 0");

	(void)snprintf(expect, sizeof(expect),
	               "argc=4\narg=force\narg=PRIM\narg=STOP\narg=stop\n"
	               "module=mod\nnode=n1\npeer=n2\nrole=PRIM\n"
	               "safemodule=mod\nsafeuserbin=%s\nmyvar=a b  'c' $HOME \"q\"\npwd=%s\n"
	               "path=set\nstdin=eof\n",
	               bindir, bindir);
	out = read_text(outfile);
	assert_non_null(out);
	assert_string_equal(out, expect);
	free(out);
}

static void
exit_code_is_failed_with_status(void **state)
{
	struct fx *f = *state;
	const char *const args[] = { "PRIM", "STOP", "stop", NULL };
	char *log;

	write_script("stop_prim", 0755, "exit 3\n");
	run_wait(f, "stop_prim", args, 5000, 5000);
	assert_int_equal(f->res, SCRIPT_FAILED);
	assert_int_equal(f->status, 3);
	assert_string_equal(f->detail, "exit 3");

	log = read_text(modlog);
	assert_non_null(log);
	assert_non_null(strstr(log, "script: run name=stop_prim args=\"PRIM STOP stop\""));
	assert_non_null(strstr(log, "script: done name=stop_prim result=failed status=3 ms="));
	assert_non_null(strstr(log, "detail=\"exit 3\""));
	free(log);
}

static void
signal_is_failed_with_negative_signal(void **state)
{
	struct fx *f = *state;

	write_script("start_prim", 0755, "kill -USR1 $$\nsleep 5\n");
	run_wait(f, "start_prim", NULL, 5000, 5000);
	assert_int_equal(f->res, SCRIPT_FAILED);
	assert_int_equal(f->status, -SIGUSR1);
	assert_non_null(strstr(f->detail, "signal"));
}

/* With a cgroup for the scripts, a shell joins it (writes its pid into
 * cgroup.procs, here a plain file) then becomes the script: the same
 * arguments, environment and result. */
static void
cgroup_wrapper_keeps_args(void **state)
{
	struct fx *f = *state;
	const char *const args[] = { "force", "PRIM", "STOP", "stop", NULL };
	char procs[PATH_MAX + 16], *out;

	(void)snprintf(procs, sizeof(procs), "%s.procs", outfile);
	(void)unlink(procs);
	script_runner_free(f->s);
	f->env.cgroup_procs = procs;
	new_runner(f);
	write_script("stop_prim", 0755,
	             "out=\"$OUTFILE\"\n"
	             "printf 'argc=%s\\n' \"$#\" > \"$out\"\n"
	             "for a in \"$@\"; do printf 'arg=%s\\n' \"$a\" >> \"$out\"; done\n"
	             "printf 'node=%s\\n' \"$HAMIRROR_NODE\" >> \"$out\"\n"
	             "exit 3\n");
	run_wait(f, "stop_prim", args, 5000, 5000);
	assert_int_equal(f->res, SCRIPT_FAILED);
	assert_int_equal(f->status, 3);
	out = read_text(outfile);
	assert_non_null(out);
	assert_string_equal(out, "argc=4\narg=force\narg=PRIM\narg=STOP\narg=stop\nnode=n1\n");
	free(out);
	out = read_text(procs);
	assert_non_null(out);
	assert_true(atoi(out) > 1); /* the shell's pid, which became the script's */
	free(out);
	f->env.cgroup_procs = NULL;
}

static void
missing_script_is_ok_absent(void **state)
{
	struct fx *f = *state;
	char *log;

	run_wait(f, "start_second", NULL, 5000, 2000);
	assert_int_equal(f->res, SCRIPT_OK);
	assert_int_equal(f->status, 0);
	assert_string_equal(f->detail, "absent");
	log = read_text(modlog);
	assert_non_null(log);
	assert_non_null(strstr(log, "script: done name=start_second result=ok status=0"));
	free(log);
}

static void
non_executable_is_error(void **state)
{
	struct fx *f = *state;
	char expect[PATH_MAX + 64];

	write_script("start_prim", 0644, "exit 0\n");
	run_wait(f, "start_prim", NULL, 5000, 2000);
	assert_int_equal(f->res, SCRIPT_ERROR);
	assert_int_equal(f->status, -EACCES);
	(void)snprintf(expect, sizeof(expect), "%s/start_prim is not executable", bindir);
	assert_string_equal(f->detail, expect);
}

static void
not_regular_file_is_error(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX];

	path_join(path, bindir, "start_prim");
	assert_int_equal(mkdir(path, 0755), 0);
	run_wait(f, "start_prim", NULL, 5000, 2000);
	assert_int_equal(f->res, SCRIPT_ERROR);
	assert_true(f->status < 0);
	assert_non_null(strstr(f->detail, "is not a regular file"));
}

static void
group_or_other_writable_is_error(void **state)
{
	struct fx *f = *state;
	char *out;

	write_script("start_prim", 0775, "echo ran > \"$OUTFILE\"\n");
	run_wait(f, "start_prim", NULL, 5000, 2000);
	assert_int_equal(f->res, SCRIPT_ERROR);
	assert_int_equal(f->status, -EPERM);
	assert_non_null(strstr(f->detail, "start_prim is writable by group or others"));

	write_script("start_prim", 0757, "echo ran > \"$OUTFILE\"\n");
	run_wait(f, "start_prim", NULL, 5000, 2000);
	assert_int_equal(f->res, SCRIPT_ERROR);
	assert_non_null(strstr(f->detail, "writable by group or others"));

	out = read_text(outfile);
	assert_null(out); /* never ran */
}

static void
writable_scripts_dir_is_error(void **state)
{
	struct fx *f = *state;

	write_script("start_prim", 0755, "exit 0\n");
	assert_int_equal(chmod(bindir, 0775), 0);
	run_wait(f, "start_prim", NULL, 5000, 2000);
	assert_int_equal(chmod(bindir, 0755), 0);
	assert_int_equal(f->res, SCRIPT_ERROR);
	assert_int_equal(f->status, -EPERM);
	assert_non_null(strstr(f->detail, "scripts directory"));
	assert_non_null(strstr(f->detail, "writable by group or others"));
}

static void
timeout_kills_whole_group(void **state)
{
	struct fx *f = *state;
	pid_t main_pid, bg_pid;

	write_script("stop_prim", 0755,
	             "sleep 30 &\n"
	             "echo $! > \"$OUTFILE.bg\"\n"
	             "echo $$ > \"$OUTFILE.pid\"\n"
	             "sleep 30\n");
	run_wait(f, "stop_prim", NULL, 300, 5000);
	assert_int_equal(f->res, SCRIPT_TIMEOUT);
	assert_int_equal(f->status, -SIGTERM);
	assert_string_equal(f->detail, "timed out after 300 ms");
	assert_true(f->done_ms - f->start_ms >= 250);
	assert_true(f->done_ms - f->start_ms < 1500);

	main_pid = read_pid(".pid");
	bg_pid = read_pid(".bg");
	assert_true(main_pid > 0);
	assert_true(bg_pid > 0);
	assert_true(wait_pid_gone(main_pid, 2000));
	assert_true(wait_pid_gone(bg_pid, 2000));
}

static void
sigterm_ignored_gets_sigkill(void **state)
{
	struct fx *f = *state;
	pid_t main_pid;
	uint64_t ms;

	write_script("stop_prim", 0755,
	             "trap '' TERM\n"
	             "echo $$ > \"$OUTFILE.pid\"\n"
	             "sleep 30\n");
	run_wait(f, "stop_prim", NULL, 300, 5000);
	ms = f->done_ms - f->start_ms;
	assert_int_equal(f->res, SCRIPT_TIMEOUT);
	assert_int_equal(f->status, -SIGKILL);
	assert_true(ms >= 1250);
	assert_true(ms < 2500);
	main_pid = read_pid(".pid");
	assert_true(main_pid > 0);
	assert_true(wait_pid_gone(main_pid, 2000));
}

/* The main process dies on SIGTERM but a background member of its group
 * ignores it: the result waits for the grace period and the SIGKILL. */
static void
timeout_leftover_in_group_gets_sigkill(void **state)
{
	struct fx *f = *state;
	pid_t bg_pid;
	uint64_t ms;

	write_script("stop_prim", 0755,
	             "(trap '' TERM; exec sleep 30) &\n"
	             "echo $! > \"$OUTFILE.bg\"\n"
	             "echo $$ > \"$OUTFILE.pid\"\n"
	             "sleep 30\n");
	run_wait(f, "stop_prim", NULL, 300, 5000);
	ms = f->done_ms - f->start_ms;
	assert_int_equal(f->res, SCRIPT_TIMEOUT);
	assert_true(ms >= 1250);
	assert_true(ms < 2500);
	bg_pid = read_pid(".bg");
	assert_true(bg_pid > 0);
	assert_true(wait_pid_gone(bg_pid, 2000));
}

/* A child in its own session (an application started by start_prim) does not
 * delay the result and is not killed. */
static void
detached_child_survives_and_does_not_block(void **state)
{
	struct fx *f = *state;
	pid_t bg_pid;

	write_script("start_prim", 0755,
	             "setsid sleep 30 &\n"
	             "echo $! > \"$OUTFILE.bg\"\n"
	             "exit 0\n");
	run_wait(f, "start_prim", NULL, 5000, 3000);
	assert_int_equal(f->res, SCRIPT_OK);
	assert_true(f->done_ms - f->start_ms < 2000);
	bg_pid = read_pid(".bg");
	assert_true(bg_pid > 0);
	assert_false(pid_gone(bg_pid));
	assert_int_equal(kill(bg_pid, SIGKILL), 0);
	assert_true(wait_pid_gone(bg_pid, 2000));
}

static void
log_file_has_header_output_footer(void **state)
{
	struct fx *f = *state;
	const char *const args1[] = { "SECOND", "PRIM", "start", NULL };
	const char *const args2[] = { "ALONE", "PRIM", "start", NULL };
	char path[PATH_MAX];
	char *log, *hdr, *out, *err, *ftr;

	write_script("start_prim", 0755, "echo hello\necho oops >&2\nexit 0\n");
	run_wait(f, "start_prim", args1, 5000, 5000);
	assert_int_equal(f->res, SCRIPT_OK);
	run_wait(f, "start_prim", args2, 5000, 5000);
	assert_int_equal(f->res, SCRIPT_OK);

	path_join(path, logdir, "mod.start_prim.log");
	log = read_text(path);
	assert_non_null(log);
	assert_true(strncmp(log, "=== ", 4) == 0);
	hdr = strstr(log, " start_prim SECOND PRIM start\n");
	out = strstr(log, "\nhello\n");
	err = strstr(log, "\noops\n");
	ftr = strstr(log, "\n=== exit 0 (");
	assert_non_null(hdr);
	assert_non_null(out);
	assert_non_null(err);
	assert_non_null(ftr);
	assert_true(hdr < out && out < err && err < ftr);
	/* appended, not truncated */
	assert_non_null(strstr(ftr, " start_prim ALONE PRIM start\n"));
	assert_non_null(strstr(ftr + 1, "\n=== exit 0 ("));
	free(log);

	log = read_text(modlog);
	assert_non_null(log);
	assert_non_null(strstr(log, "script: run name=start_prim args=\"SECOND PRIM start\""));
	assert_non_null(strstr(log, "script: done name=start_prim result=ok status=0 ms="));
	free(log);
}

static void
logging_none_writes_no_log(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX];
	char *out;

	script_runner_free(f->s);
	f->user.logging = false;
	new_runner(f);
	write_script("start_prim", 0755, "echo hello\necho ran > \"$OUTFILE\"\n");
	run_wait(f, "start_prim", NULL, 5000, 5000);
	assert_int_equal(f->res, SCRIPT_OK);
	out = read_text(outfile);
	assert_non_null(out);
	assert_string_equal(out, "ran\n");
	free(out);
	path_join(path, logdir, "mod.start_prim.log");
	assert_int_equal(access(path, F_OK), -1);

	/* no log_dir at all: same */
	script_runner_free(f->s);
	f->user.logging = true;
	f->env.log_dir = NULL;
	new_runner(f);
	run_wait(f, "start_prim", NULL, 5000, 5000);
	assert_int_equal(f->res, SCRIPT_OK);
	assert_int_equal(access(path, F_OK), -1);
}

static void
busy_while_running(void **state)
{
	struct fx *f = *state;

	write_script("start_prim", 0755, "sleep 0.3\n");
	f->calls = 0;
	assert_int_equal(script_run(f->s, "start_prim", NULL, "PRIM", 5000, done_cb, f), 0);
	assert_string_equal(script_running(f->s), "start_prim");
	assert_int_equal(script_run(f->s, "stop_prim", NULL, "PRIM", 5000, done_cb, f), -EBUSY);
	assert_true(run_until(f, is_done, 5000));
	assert_int_equal(f->calls, 1);
	assert_int_equal(f->res, SCRIPT_OK);
	assert_null(script_running(f->s));

	/* absent counts as busy until its callback too */
	f->calls = 0;
	assert_int_equal(script_run(f->s, "poststop", NULL, "STOP", 5000, done_cb, f), 0);
	assert_int_equal(script_run(f->s, "poststop", NULL, "STOP", 5000, done_cb, f), -EBUSY);
	assert_true(run_until(f, is_done, 5000));

	/* the runner is reusable after a run */
	run_wait(f, "start_prim", NULL, 0, 5000);
	assert_int_equal(f->res, SCRIPT_OK);
}

static void
bad_arguments(void **state)
{
	struct fx *f = *state;

	assert_int_equal(script_run(f->s, "../x", NULL, "PRIM", 0, done_cb, f), -EINVAL);
	assert_int_equal(script_run(f->s, "", NULL, "PRIM", 0, done_cb, f), -EINVAL);
	assert_int_equal(script_run(f->s, "..", NULL, "PRIM", 0, done_cb, f), -EINVAL);
	assert_int_equal(script_run(f->s, "start_prim", NULL, "PRIM", 0, NULL, f), -EINVAL);
	assert_null(script_running(f->s));
	assert_null(script_running(NULL));
	script_runner_free(NULL);
}

static void
chain_cb(void *ctx, enum script_result res, int status, const char *detail)
{
	struct fx *f = ctx;
	const char *const args[] = { "force", "PRIM", "STOP", "stop", NULL };

	done_cb(ctx, res, status, detail);
	if (f->chain) {
		f->chain = false;
		f->calls = 0;
		assert_int_equal(script_run(f->s, "stop_prim", args, "PRIM", 5000, done_cb, f), 0);
	}
}

static bool
chained(struct fx *f)
{
	return !f->chain;
}

/* Callers chain scripts (graceful stop, then forced): a new run may be
 * started from the result callback. */
static void
run_from_callback(void **state)
{
	struct fx *f = *state;
	const char *const args[] = { "PRIM", "STOP", "stop", NULL };
	char *out;

	write_script("stop_prim", 0755, "echo \"$1\" >> \"$OUTFILE\"\nexit 1\n");
	f->chain = true;
	f->calls = 0;
	assert_int_equal(script_run(f->s, "stop_prim", args, "PRIM", 5000, chain_cb, f), 0);
	assert_true(run_until(f, chained, 5000));
	assert_int_equal(f->calls, 0); /* reset by chain_cb for the second run */
	assert_int_equal(f->res, SCRIPT_FAILED);
	assert_string_equal(script_running(f->s), "stop_prim");
	assert_true(run_until(f, is_done, 5000));
	assert_int_equal(f->calls, 1);
	assert_int_equal(f->res, SCRIPT_FAILED);
	out = read_text(outfile);
	assert_non_null(out);
	assert_string_equal(out, "PRIM\nforce\n");
	free(out);
}

static void
count_cb(uv_handle_t *h, void *arg)
{
	struct fx *f = arg;

	if (h != (uv_handle_t *)&f->wake)
		f->other_handles++;
}

/* Only the wake timer is left: the runner's handles are closed (and it was
 * freed from the last close callback). */
static bool
loop_dead(struct fx *f)
{
	f->other_handles = 0;
	uv_walk(&f->loop, count_cb, f);
	return f->other_handles == 0;
}

static void
free_while_running_kills_without_callback(void **state)
{
	struct fx *f = *state;
	pid_t main_pid;

	write_script("start_prim", 0755,
	             "echo $$ > \"$OUTFILE.pid\"\n"
	             "sleep 30\n");
	f->calls = 0;
	assert_int_equal(script_run(f->s, "start_prim", NULL, "PRIM", 0, done_cb, f), 0);
	assert_true(run_until(f, pid_file_written, 5000));
	main_pid = read_pid(".pid");
	assert_true(main_pid > 0);
	script_runner_free(f->s);
	f->s = NULL;
	assert_true(run_until(f, loop_dead, 5000));
	assert_int_equal(f->calls, 0);
	assert_true(wait_pid_gone(main_pid, 2000));
}

static void
free_with_pending_result_no_callback(void **state)
{
	struct fx *f = *state;

	f->calls = 0;
	assert_int_equal(script_run(f->s, "prestart", NULL, "STOP", 0, done_cb, f), 0);
	script_runner_free(f->s);
	f->s = NULL;
	assert_true(run_until(f, loop_dead, 2000));
	assert_int_equal(f->calls, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(args_and_env_reach_script, setup, teardown),
		cmocka_unit_test_setup_teardown(cgroup_wrapper_keeps_args, setup, teardown),
		cmocka_unit_test_setup_teardown(exit_code_is_failed_with_status, setup, teardown),
		cmocka_unit_test_setup_teardown(signal_is_failed_with_negative_signal, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(missing_script_is_ok_absent, setup, teardown),
		cmocka_unit_test_setup_teardown(non_executable_is_error, setup, teardown),
		cmocka_unit_test_setup_teardown(not_regular_file_is_error, setup, teardown),
		cmocka_unit_test_setup_teardown(group_or_other_writable_is_error, setup, teardown),
		cmocka_unit_test_setup_teardown(writable_scripts_dir_is_error, setup, teardown),
		cmocka_unit_test_setup_teardown(timeout_kills_whole_group, setup, teardown),
		cmocka_unit_test_setup_teardown(sigterm_ignored_gets_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(timeout_leftover_in_group_gets_sigkill, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(detached_child_survives_and_does_not_block, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(log_file_has_header_output_footer, setup, teardown),
		cmocka_unit_test_setup_teardown(logging_none_writes_no_log, setup, teardown),
		cmocka_unit_test_setup_teardown(busy_while_running, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(run_from_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(free_while_running_kills_without_callback, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(free_with_pending_result_no_callback, setup,
		                                teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
