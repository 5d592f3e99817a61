/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * mrd.h - struct mrd, the one top-level state object of a mirrord process
 * (one process per module per node). Owned by main.c; every event module gets
 * a pointer to it. Loop thread only, unless a field says otherwise.
 */
#ifndef MR_MRD_H
#define MR_MRD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>
#include <uv.h>

#include "conf.h"

/* SafeKit's module states; the numeric values are `mirrorctl state`'s exit codes. */
enum mrd_state {
	MRD_STOP = 0,
	MRD_WAIT = 1,
	MRD_ALONE = 2,
	MRD_PRIM = 3,
	MRD_SECOND = 4,
};

enum mrd_readiness {
	MRD_NOTREADY = 0,
	MRD_TRANSIENT,
	MRD_READY,
};

struct cluster;
struct ctl_srv;
struct mirror;
struct peer;

struct mrd {
	uv_loop_t *loop; /* borrowed: uv_default_loop() */
	char module[33];
	char *config_path;
	char *node_path;
	struct cluster_conf *conf; /* owned */
	struct node_conf *node;    /* owned */
	int self_idx;              /* index of this node in conf->nodes */
	int peer_idx;

	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char lock_path[4096];
	char log_path[4096];
	int lock_fd;

	uint64_t start_ms; /* mr_now_ms() at start */
	enum mrd_state state;
	enum mrd_readiness readiness;
	bool uptodate;
	char message[256]; /* shown by `mirrorctl status` */

	uv_signal_t sig_term;
	uv_signal_t sig_int;
	uv_signal_t sig_hup;
	struct ctl_srv *ctl;   /* owned */
	struct peer *peer;     /* owned: the replication link (peer.h) */
	struct mirror *mirror; /* owned: shims + engine (mirror.h), or NULL */
	struct dirty *dirty;   /* owned by the cluster: files that may differ (dirty.h) */
	struct plog *plog;     /* owned by the cluster: their durable log (plog.h), or NULL */
	struct cluster *cluster; /* owned: the state machine's executor (cluster.h) */
	bool stopping;
};

const char *mrd_state_name(enum mrd_state s);
const char *mrd_readiness_name(enum mrd_readiness r);

/* Begin a clean stop: close every handle so uv_run() returns. Loop thread. */
void mrd_shutdown(struct mrd *m, const char *why);

#endif
