/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * meta.h - the module's small persistent metadata on this node: the data
 * generation (and the history of earlier ones), whether this node's data is
 * up to date, how it last stopped, the runtime failover switch. One JSON file,
 * STATE_DIR/<module>.meta, replaced atomically (temp file, fsync, rename,
 * fsync of the directory) on every change. Pure except meta_load/meta_save;
 * callers serialise access.
 *
 * Generations: (seq, id). seq counts generations (0 = no history: this node
 * never held data as primary nor mirrored any), id is random. A node starts a
 * new generation when it first writes without its peer, and when an admin
 * makes it primary with `mirrorctl prim`. Two nodes mirroring each other share
 * their generation. Comparing (meta_gen_cmp): equal, one ahead (higher seq, or
 * the peer's current generation is in this node's history), or both changed
 * since their common one: a split brain.
 */
#ifndef MR_META_H
#define MR_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define META_HISTORY_MAX 32

struct meta_gen {
	uint64_t seq;
	uint64_t id;
};

enum meta_role {
	META_ROLE_NONE = 0, /* never ran, or stopped from WAIT */
	META_ROLE_PRIMARY,  /* last ran as PRIM or ALONE */
	META_ROLE_SECOND,   /* last ran as SECOND */
};

struct meta {
	struct meta_gen gen;
	struct meta_gen history[META_HISTORY_MAX]; /* earlier generations, newest first */
	size_t n_history;
	bool uptodate;        /* this node's data is the latest it knows of */
	bool clean_stop;      /* the last stop was a clean `mirrorctl stop` */
	bool alone_at_stop;   /* ...and this node was primary without a peer then */
	enum meta_role last_role;
	int failover;         /* -1: from userconfig.xml; 0 off; 1 on (mirrorctl failover) */
	uint64_t last_seq;    /* last replication seq applied or sent */
	char boot_id[40];     /* the kernel boot this node's daemon last ran in ("": unknown) */
	bool checkers_off;    /* `mirrorctl checker off` (kept across restarts) */
	bool errd_off;        /* `mirrorctl errd off` */
};

enum meta_cmp {
	META_EQUAL = 0,
	META_AHEAD,      /* this node's generation is newer */
	META_BEHIND,     /* the peer's is newer */
	META_DIVERGED,   /* both changed: split brain */
};

/* A fresh node: no history, not up to date, failover from the config. */
void meta_init(struct meta *m);

/* Start a new generation: the current one goes to the history (oldest
 * dropped beyond META_HISTORY_MAX), seq + 1, a random id. */
void meta_new_generation(struct meta *m);

/* Take generation g (the current one goes to the history unless it is g or
 * empty): a SECOND adopting its primary's, a node giving its changes up. */
void meta_set_generation(struct meta *m, const struct meta_gen *g);

/* Compare this node's metadata with the peer's current generation. Pure. */
enum meta_cmp meta_gen_cmp(const struct meta *m, const struct meta_gen *peer);
const char *meta_cmp_name(enum meta_cmp c);

/* Encode to JSON text (caller frees) / decode. decode returns 0 or
 * -EBADMSG with the reason in err. Pure. */
char *meta_encode(const struct meta *m);
int meta_decode(const char *text, struct meta *out, char *err, size_t err_len);

/* Load path; -ENOENT when it does not exist (out is meta_init'ed), -EBADMSG
 * or -errno with the reason in err. */
int meta_load(const char *path, struct meta *out, char *err, size_t err_len);

/* Replace path atomically. 0 or -errno with the reason in err. */
int meta_save(const char *path, const struct meta *m, char *err, size_t err_len);

#endif
