/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * main.c - mirrord: argv, configuration, the module lock, signals, the loop.
 *
 * One mirrord runs per module per node. main() validates both configuration
 * files (reporting every error), takes run_dir/MODULE.lock, opens the module
 * log, starts the control socket and runs the libuv loop until SIGTERM/SIGINT.
 * Nothing else lives here: each capability is its own module.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "cluster.h"
#include "ctl_srv.h"
#include "err.h"
#include "mirror.h"
#include "log.h"
#include "mrd.h"
#include "peer.h"
#include "util.h"

#define MRD_DEFAULT_NODE_INI "/etc/hamirror/node.ini"
#define MRD_DEFAULT_CONF_FMT "/etc/hamirror/modules/%s/userconfig.xml"

static const char usage_text[] =
        "Usage: mirrord -m MODULE [-c USERCONFIG] [-n NODE_INI] [-f] [-l LEVEL]\n"
        "\n"
        "hamirror daemon: one process per module per node. It owns the module's\n"
        "state machine, heartbeats, replication link, virtual IP, restart scripts,\n"
        "checkers and the control socket used by mirrorctl.\n"
        "\n"
        "Options:\n"
        "  -m, --module NAME      module name (letters, digits, '_' and '-'; max 32)\n"
        "  -c, --config FILE      module configuration\n"
        "                         (default /etc/hamirror/modules/NAME/userconfig.xml)\n"
        "  -n, --node FILE        per-node configuration (default /etc/hamirror/node.ini)\n"
        "  -f, --foreground       stay in the foreground and also log to stderr\n"
        "  -l, --log-level LEVEL  err, warn, notice, info (default) or debug\n"
        "      --no-syslog        do not copy log lines to syslog/journald\n"
        "  -t, --check            validate both files, print a summary and exit\n"
        "      --stopped          do not start the module (STOP until `mirrorctl start`)\n"
        "      --role ROLE        bootstrap shortcut: \"primary\" starts the module with\n"
        "                         `mirrorctl prim --force`, \"secondary\" with a plain\n"
        "                         start (it joins the primary); without it the module\n"
        "                         starts and the nodes elect the primary\n"
        "  -V, --version          print the version and exit\n"
        "  -h, --help             print this help and exit\n"
        "\n"
        "Files (from node.ini): log_dir/MODULE.log (module log), run_dir/MODULE.sock\n"
        "(control socket, root only), run_dir/MODULE.lock (one daemon per module).\n"
        "Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reopens the log file.\n"
        "Exit status: 0 clean stop, 1 error (configuration, lock, socket), 2 usage.\n";

static bool
module_name_ok(const char *s)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > 32)
		return false;
	for (i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static void
print_errs(const struct conf_errs *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		fprintf(stderr, "%s\n", e->msgs[i]);
}

/* Load and cross-check both files. Prints every problem to stderr. */
static int
load_config(struct mrd *m)
{
	struct conf_errs errs = { 0 };
	int r1, r2, idx;

	r1 = conf_cluster_load(m->config_path, &m->conf, &errs);
	r2 = conf_node_load(m->node_path, &m->node, &errs);
	if (r1 < 0 || r2 < 0) {
		print_errs(&errs);
		fprintf(stderr, "mirrord: %zu configuration error%s; not starting\n", errs.n,
		        errs.n == 1 ? "" : "s");
		conf_errs_done(&errs);
		return MR_ECONFIG;
	}
	conf_errs_done(&errs);
	idx = conf_cluster_node_index(m->conf, m->node->name);
	if (idx < 0) {
		fprintf(stderr,
		        "%s: [node] name: '%s' is not a server of module %s in %s "
		        "(servers: %s, %s)\n",
		        m->node_path, m->node->name, m->module, m->config_path, m->conf->nodes[0],
		        m->conf->nodes[1]);
		fprintf(stderr, "mirrord: 1 configuration error; not starting\n");
		return MR_ECONFIG;
	}
	m->self_idx = idx;
	m->peer_idx = 1 - idx;
	return 0;
}

/* Record our pid in the lock file, for the "already running" message. */
static int
write_pid(struct mrd *m)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(m->lock_fd, 0) == -1 || pwrite(m->lock_fd, buf, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

/* Take run_dir/MODULE.lock (flock, held for the life of the process) and
 * write our pid into it. Returns 0, MR_ELOCKED (holder pid in *holder) or -errno. */
static int
take_lock(struct mrd *m, long *holder)
{
	char buf[32];
	ssize_t n;
	int fd, r;

	*holder = 0;
	fd = open(m->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		r = errno == EWOULDBLOCK ? MR_ELOCKED : -errno;
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = '\0';
			*holder = strtol(buf, NULL, 10);
		}
		(void)close(fd);
		return r;
	}
	m->lock_fd = fd;
	return write_pid(m);
}

static void
signal_cb(uv_signal_t *h, int signum)
{
	struct mrd *m = h->data;

	if (signum == SIGHUP) {
		int r = log_reopen();

		if (r < 0)
			log_err("mirrord: cannot reopen log path=%s err=\"%s\"", m->log_path,
			        mr_strerror(r));
		else
			log_notice("mirrord: log reopened signal=SIGHUP");
		return;
	}
	mrd_shutdown(m, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void
mrd_shutdown(struct mrd *m, const char *why)
{
	if (m->stopping)
		return;
	m->stopping = true;
	log_notice("mirrord: stopping module=%s reason=%s", m->module, why);
	ctl_srv_stop(m->ctl);
	m->ctl = NULL;
	cluster_stop(m);
	peer_stop(m->peer);
	m->peer = NULL;
	mirror_stop(m);
	uv_close((uv_handle_t *)&m->sig_term, NULL);
	uv_close((uv_handle_t *)&m->sig_int, NULL);
	uv_close((uv_handle_t *)&m->sig_hup, NULL);
}

/* Classic double fork; the parent waits on a pipe until the child says it is
 * ready (or failed), so `mirrord` returns 0 only once the socket answers. */
static int
daemonize(int *notify_fd)
{
	int p[2], nul;
	pid_t pid;
	char ok;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -errno;
	pid = fork();
	if (pid == -1)
		return -errno;
	if (pid > 0) {
		(void)close(p[1]);
		if (read(p[0], &ok, 1) == 1 && ok == 'R')
			_exit(0);
		_exit(1);
	}
	(void)close(p[0]);
	if (setsid() == -1)
		return -errno;
	pid = fork();
	if (pid == -1)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (chdir("/") == -1)
		return -errno;
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul != -1) {
		(void)dup2(nul, STDIN_FILENO);
		(void)dup2(nul, STDOUT_FILENO);
		(void)dup2(nul, STDERR_FILENO);
		if (nul > STDERR_FILENO)
			(void)close(nul);
	}
	*notify_fd = p[1];
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "module", required_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "no-syslog", no_argument, NULL, 'S' },
		{ "check", no_argument, NULL, 't' },
		{ "role", required_argument, NULL, 'R' },
		{ "stopped", no_argument, NULL, 'P' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mrd m = { .lock_fd = -1 };
	bool foreground = false, check_only = false, use_syslog = true;
	int level = LOG_LVL_INFO, notify_fd = -1, opt, r, role;
	enum fsm_event initial = FSM_EV_START;
	const char *config = NULL, *node = MRD_DEFAULT_NODE_INI;
	char defconf[4096];
	long holder;

	/* Records of 256 KiB to 1 MiB (writes, resync chunks) are allocated and
	 * freed by the thousand per second. Above glibc's default mmap threshold
	 * each one is a fresh mmap: page faults and zeroing on every record, and
	 * the full resync ran 1.6x slower. Keep them in the heap. */
	(void)mallopt(M_MMAP_THRESHOLD, 4 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 128 << 20);

	while ((opt = getopt_long(argc, argv, "m:c:n:fl:tVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			if (!module_name_ok(optarg)) {
				fprintf(stderr,
				        "mirrord: invalid module name '%s': use 1-32 "
				        "letters, digits, '_' or '-'\n",
				        optarg);
				return 2;
			}
			(void)mr_strlcpy(m.module, optarg, sizeof(m.module));
			break;
		case 'c':
			config = optarg;
			break;
		case 'n':
			node = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 'l':
			level = log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr,
				        "mirrord: invalid log level '%s': use err, warn, "
				        "notice, info or debug\n",
				        optarg);
				return 2;
			}
			break;
		case 'S':
			use_syslog = false;
			break;
		case 't':
			check_only = true;
			break;
		case 'R':
			role = mirror_role_parse(optarg);
			if (role < 0) {
				fprintf(stderr,
				        "mirrord: invalid role '%s': use primary or "
				        "secondary\n",
				        optarg);
				return 2;
			}
			initial = role == MIRROR_PRIMARY ? FSM_EV_PRIM_FORCE : FSM_EV_START;
			break;
		case 'P':
			initial = FSM_EV__COUNT;
			break;
		case 'V':
			printf("mirrord %s\n", MR_VERSION);
			return 0;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mirrord: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (m.module[0] == '\0') {
		fprintf(stderr, "mirrord: no module given (-m NAME)\n%s", usage_text);
		return 2;
	}
	if (config == NULL) {
		(void)snprintf(defconf, sizeof(defconf), MRD_DEFAULT_CONF_FMT, m.module);
		config = defconf;
	}
	m.config_path = mr_xstrdup(config);
	m.node_path = mr_xstrdup(node);

	if (load_config(&m) < 0) {
		r = 1;
		goto out;
	}
	if (check_only) {
		printf("module %s: configuration valid, node %s, peer %s, config hash %s\n",
		       m.module, m.node->name, m.conf->nodes[m.peer_idx], m.conf->hash_hex);
		r = 0;
		goto out;
	}
	if (snprintf(m.sock_path, sizeof(m.sock_path), "%s/%s.sock", m.node->run_dir, m.module) >=
	    (int)sizeof(m.sock_path)) {
		fprintf(stderr,
		        "mirrord: control socket path %s/%s.sock is longer than %zu bytes\n",
		        m.node->run_dir, m.module, sizeof(m.sock_path) - 1);
		r = 1;
		goto out;
	}
	(void)snprintf(m.lock_path, sizeof(m.lock_path), "%s/%s.lock", m.node->run_dir, m.module);
	(void)snprintf(m.log_path, sizeof(m.log_path), "%s/%s.log", m.node->log_dir, m.module);

	r = take_lock(&m, &holder);
	if (r == MR_ELOCKED) {
		fprintf(stderr, "mirrord: module %s is already running (pid %ld holds %s)\n",
		        m.module, holder, m.lock_path);
		r = 1;
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "mirrord: cannot lock %s: %s\n", m.lock_path, mr_strerror(r));
		r = 1;
		goto out;
	}

	log_init("mirrord", (enum log_level)level, foreground, use_syslog);
	r = log_open_file(m.log_path);
	if (r < 0) {
		fprintf(stderr, "mirrord: cannot open log %s: %s\n", m.log_path, mr_strerror(r));
		r = 1;
		goto out;
	}
	if (!foreground) {
		/* The lock is an flock on an open file description: it survives fork. */
		r = daemonize(&notify_fd);
		if (r < 0) {
			log_err("mirrord: cannot daemonize err=\"%s\"", mr_strerror(r));
			r = 1;
			goto out;
		}
		/* pid changed: rewrite it in the lock file */
		(void)write_pid(&m);
	}
	(void)signal(SIGPIPE, SIG_IGN);
	r = mr_raise_nofile();
	if (r < 0)
		log_warn("mirrord: cannot raise RLIMIT_NOFILE err=\"%s\"", mr_strerror(r));

	m.loop = uv_default_loop();
	m.start_ms = mr_now_ms();
	m.state = MRD_STOP;
	m.readiness = MRD_NOTREADY;
	m.uptodate = false;
	(void)snprintf(m.message, sizeof(m.message), "module stopped");

	MR_BUG_ON(uv_signal_init(m.loop, &m.sig_term) != 0);
	MR_BUG_ON(uv_signal_init(m.loop, &m.sig_int) != 0);
	MR_BUG_ON(uv_signal_init(m.loop, &m.sig_hup) != 0);
	m.sig_term.data = m.sig_int.data = m.sig_hup.data = &m;
	MR_BUG_ON(uv_signal_start(&m.sig_term, signal_cb, SIGTERM) != 0);
	MR_BUG_ON(uv_signal_start(&m.sig_int, signal_cb, SIGINT) != 0);
	MR_BUG_ON(uv_signal_start(&m.sig_hup, signal_cb, SIGHUP) != 0);

	r = ctl_srv_start(&m, m.sock_path, 0660, &m.ctl);
	if (r < 0) {
		log_err("mirrord: cannot create control socket path=%s err=\"%s\"", m.sock_path,
		        mr_strerror(r));
		mrd_shutdown(&m, "startup-failure");
		(void)uv_run(m.loop, UV_RUN_DEFAULT);
		r = 1;
		goto out_loop;
	}
	/* The replication link first (it carries the HELLO of whatever role the
	 * state machine gives this node), then heartbeats and the state machine. */
	r = peer_start(&m, &mirror_peer_cbs, &m, &m.peer);
	if (r < 0) {
		log_err("mirrord: cannot start the replication link err=\"%s\"", mr_strerror(r));
		mrd_shutdown(&m, "startup-failure");
		(void)uv_run(m.loop, UV_RUN_DEFAULT);
		r = 1;
		goto out_loop;
	}
	r = cluster_start(&m, initial);
	if (r < 0) {
		log_err("mirrord: cannot start the module err=\"%s\"", mr_strerror(r));
		mrd_shutdown(&m, "startup-failure");
		(void)uv_run(m.loop, UV_RUN_DEFAULT);
		r = 1;
		goto out_loop;
	}
	log_notice("mirrord: ready module=%s node=%s peer=%s version=%s pid=%ld socket=%s "
	           "config_hash=%s state=%s",
	           m.module, m.node->name, m.conf->nodes[m.peer_idx], MR_VERSION, (long)getpid(),
	           m.sock_path, m.conf->hash_hex, mrd_state_name(m.state));
	if (notify_fd != -1) {
		(void)!write(notify_fd, "R", 1);
		(void)close(notify_fd);
		notify_fd = -1;
	}

	r = uv_run(m.loop, UV_RUN_DEFAULT);
	log_notice("mirrord: stopped module=%s", m.module);
	r = 0;
out_loop:
	if (uv_loop_close(m.loop) != 0)
		log_warn("mirrord: loop closed with live handles");
out:
	if (notify_fd != -1)
		(void)close(notify_fd);
	/* The lock file is never unlinked: unlinking would let a starting daemon
	 * lock a fresh inode while another still holds the old one. */
	if (m.lock_fd != -1)
		(void)close(m.lock_fd);
	log_close();
	conf_cluster_free(m.conf);
	conf_node_free(m.node);
	free(m.config_path);
	free(m.node_path);
	return r;
}
