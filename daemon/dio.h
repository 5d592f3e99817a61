/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dio.h - how the secondary writes large resync chunks: through the page
 * cache or with O_DIRECT, chosen from what each way was measured to cost.
 * Pure logic (no I/O, no clock): the apply thread times its writes and
 * reports them with dio_account(). One struct per apply thread.
 *
 * Both ways are tried first (DIO_PROBE chunks each), then one chunk in
 * DIO_EXPLORE goes the other way so that both figures stay current. While the
 * writer keeps up with the stream (fewer than DIO_BACKLOG chunks queued behind
 * it), it takes the way that costs less CPU per byte, even when each write
 * takes longer: on a machine whose cores also carry the link's TLS, the CPU
 * the writes save goes to the stream. The page cache's cost is counted
 * DIO_CACHE_COST times the writer's own CPU time: its pages are written back
 * and reclaimed later by other threads, and each copy goes through the CPU
 * caches the TLS work uses (measured below: the page cache always took 1.1
 * CPU-s more of the target's threads for 2 GiB, where its writes' own CPU time
 * accounted for about 0.6 s). Once chunks pile up behind it (a disk
 * slower than the link, O_DIRECT waiting on every write), it takes the way
 * with more bytes per second of wall time.
 *
 * Measured on the 2-core VM of docs/BENCHMARKS.md, 2 GiB full copy with both
 * nodes on the same cores: O_DIRECT always 2.41-2.95 s (1.5-2.1 CPU-s on the
 * target), the page cache always 3.00-3.37 s (2.7-3.2 CPU-s), the former rule
 * (the quicker write by wall time: the page cache often is) 2.4-3.5 s.
 */
#ifndef MR_DIO_H
#define MR_DIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIO_PROBE   4u  /* chunks written each way before choosing */
#define DIO_EXPLORE 64u /* one chunk in this many goes the other way */
#define DIO_BACKLOG 32u /* chunks queued behind the writer: it lags the stream */
#define DIO_CACHE_COST 2u /* the page cache's CPU cost per byte, in multiples of the writer's */

enum dio_why {
	DIO_PROBING,   /* still measuring both ways */
	DIO_CHEAPER,   /* keeping up: the way with less CPU per byte */
	DIO_FASTER,    /* lagging: the way with more bytes per wall second */
	DIO_EXPLORING, /* the other way, to keep its figures current */
};

struct dio_choice {
	uint64_t n;           /* chunks picked so far */
	uint64_t rate[2];     /* bytes per wall ms: [0] page cache, [1] O_DIRECT; 0 = none yet */
	uint64_t cpu_rate[2]; /* bytes per ms of the writer's CPU time, the same */
	unsigned probes[2];   /* writes accounted each way */
};

/* The way for the next chunk of len bytes with queued bytes waiting behind
 * the writer: true = O_DIRECT. *why (if not NULL) says why. */
bool dio_pick(struct dio_choice *d, size_t len, uint64_t queued, enum dio_why *why);

/* One write of len bytes that took wall_us of wall time and cpu_us of the
 * writer's CPU time (moving averages, 1/8 weight for the newest). */
void dio_account(struct dio_choice *d, bool direct, size_t len, uint64_t wall_us,
                 uint64_t cpu_us);

#endif
