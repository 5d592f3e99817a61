/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dio.c - the page cache or O_DIRECT for large resync chunks (see dio.h).
 */
#include "dio.h"

/* See dio.h. */
bool
dio_pick(struct dio_choice *d, size_t len, uint64_t queued, enum dio_why *why)
{
	enum dio_why w;
	bool pick;

	d->n++;
	if (d->probes[0] < DIO_PROBE || d->probes[1] < DIO_PROBE) {
		pick = d->probes[0] >= DIO_PROBE;
		w = DIO_PROBING;
	} else if (queued >= (uint64_t)DIO_BACKLOG * len) {
		pick = d->rate[1] > d->rate[0];
		w = DIO_FASTER;
	} else {
		pick = d->cpu_rate[1] * DIO_CACHE_COST > d->cpu_rate[0];
		w = DIO_CHEAPER;
	}
	if (w != DIO_PROBING && d->n % DIO_EXPLORE == 0) {
		pick = !pick;
		w = DIO_EXPLORING;
	}
	if (why != NULL)
		*why = w;
	return pick;
}

static void
avg(uint64_t *a, size_t len, uint64_t us)
{
	uint64_t rate = (uint64_t)len * 1000u / (us + 1);

	*a = *a == 0 ? rate : (*a * 7 + rate) / 8;
}

/* See dio.h. */
void
dio_account(struct dio_choice *d, bool direct, size_t len, uint64_t wall_us, uint64_t cpu_us)
{
	avg(&d->rate[direct], len, wall_us);
	avg(&d->cpu_rate[direct], len, cpu_us);
	d->probes[direct]++;
}
