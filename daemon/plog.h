/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * plog.h - the pre-write log: on disk, before a primary changes a file, the
 * names that may differ from the peer (DESIGN.md section 4, "dirty log").
 *
 * The dirty set (dirty.h) is exact but lives in memory; this log is what
 * survives a crash. A FUSE worker calls plog_need() before the local change;
 * it returns once the entry covering the change is on stable storage. Entries
 * are group-committed: one fdatasync covers every worker waiting at that
 * moment, and a name already logged costs no I/O at all. So after a crash of
 * the primary (connected or ALONE), the files whose content may differ from
 * the peer's are known: exactly the logged names.
 *
 * Three kinds of entry:
 *   PLOG_FILE  the file's data or metadata may differ;
 *   PLOG_DIR   the directory's entries may differ, and so may the data of any
 *              of its direct children (one entry covers a burst of creates);
 *   PLOG_ALL   anything may differ (an op the log cannot name: a directory
 *              renamed, a hard link...): the next resync compares everything.
 *
 * Checkpoints. Entries carry the epoch in which they were last needed. While
 * the peer acknowledges everything, the engine starts a new epoch, waits
 * until every op of the old epoch is acknowledged, and rewrites the log with
 * only the entries needed since (plog_checkpoint): the log holds the files
 * with unacknowledged changes plus the recently written ones. Without the
 * peer there are no checkpoints, so the log keeps every file changed since
 * the peer's generation (its base).
 *
 * File: "MRPLOG01", base seq and id (u64 BE), a header checksum, then
 * records {kind u8, dir u8, len u16 BE, path, XXH32 u32 BE}. A torn last
 * record (a crash during an append) ends the log: its op never ran.
 *
 * Thread-safe: FUSE workers call plog_need(), the loop thread the rest.
 */
#ifndef MR_PLOG_H
#define MR_PLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLOG_FILE 1u
#define PLOG_DIR  2u
#define PLOG_ALL  4u

struct plog;

/* One entry read back (plog_open): kind is PLOG_FILE, PLOG_DIR or both. */
typedef void (*plog_each_fn)(void *arg, unsigned kind, uint8_t dir, const char *path);

struct plog_loaded {
	bool found;    /* a log was there and its header was whole */
	bool all;      /* it held PLOG_ALL */
	uint64_t base_seq, base_id;
	size_t entries;
};

/*
 * Open the log at path: read what the last run left (each entry to fn, if
 * not NULL, and kept as needed in the first epoch), then rewrite it at once
 * relative to (base_seq, base_id) — with PLOG_ALL if !trusted, or if the
 * old log said so — so that appends go to a fresh, whole file. Returns the
 * log (never NULL: on an I/O error it works in memory and plog_need()
 * reports the failure) and what was read in *out.
 */
struct plog *plog_open(const char *path, plog_each_fn fn, void *arg, struct plog_loaded *out);
void plog_free(struct plog *p);

/* The current epoch (1, 2, ...): a FUSE worker reads it before its change. */
uint64_t plog_epoch(struct plog *p);

/*
 * Make sure the log covers a change of kind (PLOG_FILE, PLOG_DIR, PLOG_ALL;
 * path NULL for PLOG_ALL) made in epoch, and return when that is durable.
 * A PLOG_FILE is covered by a PLOG_DIR entry of its parent needed in the
 * same epoch. Returns 0, or -errno when the log could not be written and the
 * file could not be removed either (a crash would then trust an incomplete
 * log: the change must not be made). On a write error the log file is
 * removed (after a crash: no log, compare everything) and the log stays
 * disabled until the next successful checkpoint.
 */
int plog_need(struct plog *p, uint64_t epoch, uint8_t dir, const char *path, unsigned kind);

/* Start a new epoch; returns it. */
uint64_t plog_next_epoch(struct plog *p);

/*
 * Rewrite the log with only the entries needed in epoch >= keep_from (0:
 * every entry; UINT64_MAX: none), relative to (base_seq, base_id); with PLOG_ALL if !trusted. Atomic
 * (temp file, fsync, rename, fsync of the directory). 0 or -errno.
 */
int plog_checkpoint(struct plog *p, uint64_t keep_from, uint64_t base_seq, uint64_t base_id,
                    bool trusted);

struct plog_stats {
	uint64_t epoch;
	size_t entries;
	bool all;
	bool failed; /* disabled after a write error */
	uint64_t syncs;      /* group commits */
	uint64_t appended;   /* entries written by them */
	uint64_t checkpoints;
};
void plog_stats(struct plog *p, struct plog_stats *out);

#endif /* MR_PLOG_H */
