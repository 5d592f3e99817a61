/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dirty.h - the dirty set: which files of this node's copy may differ from
 * the peer's, and which blocks of them (DESIGN.md section 4).
 *
 * The set is relative to a base generation: "a peer whose copy is exactly
 * generation `base` differs from ours only in these files". It is emptied
 * when the two copies are known equal (a clean resync, a pairing with equal
 * data, this node made SECOND Ready) and grows while this node changes data
 * without its peer: every op completed locally only (ALONE, a link lost with
 * ops in flight) marks its file, and for writes, fallocates and truncates the
 * blocks they touched. A resync whose target is exactly `base` then reads and
 * sends only those blocks, and skips every other file's data.
 *
 * The set is exact while this process runs. It is saved at a clean stop
 * (dirty_save) and trusted after a restart only if that stop was clean;
 * after a crash it is not trusted, and the resync compares every file by
 * block checksums (the fallback, always correct). Ops it cannot follow
 * exactly (a directory renamed, a hard link, a write to a file whose name it
 * does not know) also make it untrusted until the next clean resync.
 *
 * Thread-safe: FUSE workers mark, the resync thread reads, the loop resets.
 */
#ifndef MR_DIRTY_H
#define MR_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shim_op;
struct dirty;

#define DIRTY_BLOCK 4096u /* the block of the bitmaps: the resync's unit (resync.c) */

#define DIRTY_F_CHECKSUM 1u /* content unknown to the set: compare by checksums */
#define DIRTY_F_TRUNC    2u /* everything from trunc_from to the end must be sent */
#define DIRTY_F_CHILDREN 4u /* a directory: every direct child compared by checksums */

/* A copy of one file's entry (dirty_get). */
struct dirty_file {
	uint32_t flags;
	uint64_t trunc_from; /* DIRTY_F_TRUNC */
	uint64_t *bits;      /* block i changed: bits[i / 64] & (1 << i % 64) */
	size_t n_words;
};

struct dirty *dirty_new(uint32_t block_size);
void dirty_free(struct dirty *d);

uint32_t dirty_block_size(const struct dirty *d);

/* The replicated directories' real roots (for the type of a renamed entry),
 * or NULL / 0 when unmounted. Borrowed. */
void dirty_set_roots(struct dirty *d, const int *root_fds, size_t n);

/* Follow op as the engine takes it, in order: the names of open files
 * always; with mark, the file(s) and blocks it changed. */
void dirty_op(struct dirty *d, uint8_t dir, const struct shim_op *op, bool mark);

/* Mark what op changed (an op sent but never acknowledged). */
void dirty_mark(struct dirty *d, uint8_t dir, const struct shim_op *op);

/* op is completed: a RELEASE forgets the file's name only now, so that ops
 * still in flight before it can be placed (dirty_mark) if the link fails. */
void dirty_done(struct dirty *d, uint8_t dir, const struct shim_op *op);

/* Empty the set; it is now relative to generation (seq, id) and trusted. */
void dirty_reset(struct dirty *d, uint64_t base_seq, uint64_t base_id);

/* Stop trusting the set (logged once with why) until the next reset. */
void dirty_distrust(struct dirty *d, const char *why);

/* Is the set trusted, relative to generation (seq, id)? */
bool dirty_trusted_for(struct dirty *d, uint64_t seq, uint64_t id);

/* Number of files in the set; whether it is trusted. */
size_t dirty_count(struct dirty *d, bool *trusted);

struct dirty_stats {
	bool trusted;
	uint64_t base_seq;
	size_t files;
	size_t whole_files; /* compared by checksum or sent from a truncation on */
	uint64_t blocks;    /* marked blocks of DIRTY_BLOCK bytes */
};
void dirty_stats(struct dirty *d, struct dirty_stats *out);

/* Add path with flags (DIRTY_F_CHECKSUM or DIRTY_F_CHILDREN): names read
 * back from a pre-write log, or the peer's list of its own changes. */
void dirty_add(struct dirty *d, uint8_t dir, const char *path, uint32_t flags);

/* Is path's parent directory an entry with DIRTY_F_CHILDREN? */
bool dirty_in_changed_dir(struct dirty *d, uint8_t dir, const char *path);

/* Each file of the set: fn(arg, dir, path, flags), under the set's lock
 * (fn must not call back into the set). */
typedef void (*dirty_each_fn)(void *arg, uint8_t dir, const char *path, uint32_t flags);
void dirty_each(struct dirty *d, dirty_each_fn fn, void *arg);

/* Each file open at the present point of the op stream (the engine's lock
 * held: nothing is taken meanwhile): fn(arg, dir, file_id, path, opens),
 * path NULL when the file has no name left (unlinked or replaced while
 * open). Files whose name the set lost track of (one of several hard
 * links removed) are not listed. Under the set's lock. */
typedef void (*dirty_open_fn)(void *arg, uint8_t dir, uint64_t file_id, const char *path,
                              unsigned opens);
void dirty_each_open(struct dirty *d, dirty_open_fn fn, void *arg);

/* Is a file open whose name the set lost track of (see dirty_each_open) the
 * file (dev, ino) of the real directory (ino 0: is there any)? Cheap when
 * there is none: the resync's walk asks it of every regular file. */
bool dirty_open_lost(struct dirty *d, uint64_t dev, uint64_t ino);

/* The walk found file (dev, ino) of the real directory dir under path, at the
 * present point of the op stream (the caller holds the shim's name lock and
 * the engine's): the open files it is become named by path again. Returns
 * how many; they are listed by dirty_each_open() from now on. */
unsigned dirty_open_found(struct dirty *d, uint8_t dir, uint64_t dev, uint64_t ino,
                          const char *path);
/* Set the base and trust of the set without emptying it (a set read back
 * from the pre-write log). */
void dirty_set_base(struct dirty *d, uint64_t base_seq, uint64_t base_id, bool trusted);

/* The generation the set is relative to, and whether it is trusted. */
void dirty_base(struct dirty *d, uint64_t *seq, uint64_t *id, bool *trusted);

/* Copy of path's entry into *out (caller: dirty_file_done); false when the
 * file is not in the set. */
bool dirty_get(struct dirty *d, uint8_t dir, const char *path, struct dirty_file *out);
void dirty_file_done(struct dirty_file *f);

/* Is block i marked? */
bool dirty_file_block(const struct dirty_file *f, uint64_t i);

/* Save to path atomically (temp file, fsync, rename, fsync of the dir) /
 * load it; load leaves the set untrusted unless the file is whole and
 * trusted. Return 0 or -errno with err set. */
int dirty_save(struct dirty *d, const char *path, char *err, size_t err_len);
int dirty_load(struct dirty *d, const char *path, char *err, size_t err_len);

#endif /* MR_DIRTY_H */
