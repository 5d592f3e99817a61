/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * shim_main.c - mirror-shim: mount the interception layer over a directory in
 * local mode (no replication), for tests and benchmarks.
 *
 * Unmount with `fusermount3 -u DIR`, `umount DIR`, or SIGTERM/SIGINT to the
 * process; DIR then shows exactly the underlying files.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "shim.h"
#include "util.h"

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

static const char usage_text[] =
        "Usage: mirror-shim [--read-only] [-f] [-d] [-t THREADS] DIR\n"
        "\n"
        "Mount hamirror's write-interception layer over DIR, in local mode: every\n"
        "operation is done on the real files under DIR, nothing is replicated.\n"
        "\n"
        "  -r, --read-only   every change fails with EROFS (as on a secondary)\n"
        "  -f, --foreground  do not detach (without it, the first process exits 0\n"
        "                    once the mount is live)\n"
        "  -d, --debug       libfuse debug output (implies -f)\n"
        "  -t, --threads N   maximum FUSE worker threads (default 16)\n"
        "  -h, --help        this help\n"
        "\n"
        "Unmount: fusermount3 -u DIR, or SIGTERM/SIGINT to this process.\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "read-only", no_argument, NULL, 'r' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct shim_config cfg = { 0 };
	bool foreground = false;
	struct shim *s;
	char err[512];
	int opt, r;

	while ((opt = getopt_long(argc, argv, "rfdt:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'r':
			cfg.read_only = true;
			break;
		case 'f':
			foreground = true;
			break;
		case 'd':
			cfg.debug = true;
			foreground = true;
			break;
		case 't':
			cfg.max_threads = (unsigned)strtoul(optarg, NULL, 10);
			if (cfg.max_threads == 0 || cfg.max_threads > 1024) {
				fprintf(stderr, "mirror-shim: --threads takes 1 to 1024\n");
				return 2;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(usage_text, stderr);
		return 2;
	}
	cfg.dir = argv[optind];

	log_init("mirror-shim", LOG_LVL_NOTICE, true, !foreground);
	r = mr_raise_nofile();
	if (r < 0)
		fprintf(stderr, "mirror-shim: warning: cannot raise RLIMIT_NOFILE: %s\n",
		        strerror(-r));
	r = shim_new(&cfg, &s, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "mirror-shim: %s\n", err);
		return 1;
	}
	if (fuse_daemonize(foreground) != 0) {
		fprintf(stderr, "mirror-shim: cannot detach\n");
		shim_free(s);
		return 1;
	}
	if (shim_set_signal_handlers(s) < 0) {
		fprintf(stderr, "mirror-shim: cannot install signal handlers\n");
		shim_free(s);
		return 1;
	}
	r = shim_run(s);
	shim_free(s);
	if (r < 0) {
		fprintf(stderr, "mirror-shim: the FUSE loop failed: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
