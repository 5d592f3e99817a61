/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test_dio - the page cache or O_DIRECT for large resync chunks: both ways
 * probed first, then the cheaper CPU way while the writer keeps up (the page
 * cache counted at DIO_CACHE_COST times its writes' own CPU time), the
 * faster wall-time way once a backlog builds, and one chunk in DIO_EXPLORE
 * the other way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dio.h"

#define CHUNK (1u << 20)

/* Account what each way costs: O_DIRECT 2 ms of wall time but 0.1 ms of CPU
 * for a chunk, the page cache 0.4 ms of both. */
static void
probe_both(struct dio_choice *d)
{
	unsigned i;

	for (i = 0; i < 2 * DIO_PROBE; i++) {
		enum dio_why why;
		bool direct = dio_pick(d, CHUNK, 0, &why);

		assert_int_equal(why, DIO_PROBING);
		/* the page cache first, then O_DIRECT */
		assert_int_equal(direct, i >= DIO_PROBE);
		dio_account(d, direct, CHUNK, direct ? 2000 : 400, direct ? 100 : 400);
	}
}

static void
probes_each_way_first(void **state)
{
	struct dio_choice d = { 0 };

	(void)state;
	probe_both(&d);
	assert_int_equal(d.probes[0], DIO_PROBE);
	assert_int_equal(d.probes[1], DIO_PROBE);
	/* bytes per ms: 1 MiB in 400 us and in 2000 us of wall time */
	assert_true(d.rate[0] > 4 * d.rate[1]);
	assert_true(d.cpu_rate[1] > 3 * d.cpu_rate[0]);
}

static void
cheaper_way_while_keeping_up(void **state)
{
	struct dio_choice d = { 0 };
	enum dio_why why;

	(void)state;
	probe_both(&d);
	/* nothing or a little queued: O_DIRECT costs less CPU, so O_DIRECT,
	 * though each of its writes takes five times longer */
	assert_true(dio_pick(&d, CHUNK, 0, &why));
	assert_int_equal(why, DIO_CHEAPER);
	assert_true(dio_pick(&d, CHUNK, (uint64_t)(DIO_BACKLOG - 1) * CHUNK, &why));
	assert_int_equal(why, DIO_CHEAPER);
}

static void
page_cache_counts_more_than_its_writes(void **state)
{
	struct dio_choice d = { 0 };
	enum dio_why why;
	unsigned i;

	(void)state;
	/* O_DIRECT's writes cost 1.5 times the CPU of the page cache's own: the
	 * write-back and reclaim the page cache leaves to other threads tip it */
	for (i = 0; i < 2 * DIO_PROBE; i++) {
		bool direct = dio_pick(&d, CHUNK, 0, &why);

		dio_account(&d, direct, CHUNK, direct ? 2000 : 400, direct ? 600 : 400);
	}
	assert_true(dio_pick(&d, CHUNK, 0, &why));
	assert_int_equal(why, DIO_CHEAPER);
	/* three times: the page cache */
	for (i = 0; i < 32; i++)
		dio_account(&d, true, CHUNK, 2000, 1200);
	assert_false(dio_pick(&d, CHUNK, 0, &why));
	assert_int_equal(why, DIO_CHEAPER);
}

static void
faster_way_once_lagging(void **state)
{
	struct dio_choice d = { 0 };
	enum dio_why why;

	(void)state;
	probe_both(&d);
	/* DIO_BACKLOG chunks behind: the disk does not keep up with O_DIRECT */
	assert_false(dio_pick(&d, CHUNK, (uint64_t)DIO_BACKLOG * CHUNK, &why));
	assert_int_equal(why, DIO_FASTER);
	/* the backlog is measured in chunks of the size being written */
	assert_false(dio_pick(&d, 64u << 10, (uint64_t)DIO_BACKLOG * CHUNK / 2, &why));
	assert_int_equal(why, DIO_FASTER);
	assert_true(dio_pick(&d, CHUNK, (uint64_t)DIO_BACKLOG * CHUNK / 2, &why));
	assert_int_equal(why, DIO_CHEAPER);
}

static void
other_way_now_and_then(void **state)
{
	struct dio_choice d = { 0 };
	unsigned i, other = 0, n = 4 * DIO_EXPLORE;

	(void)state;
	probe_both(&d);
	for (i = 0; i < n; i++) {
		enum dio_why why;
		bool direct = dio_pick(&d, CHUNK, 0, &why);

		if (why == DIO_EXPLORING) {
			assert_false(direct);
			other++;
		} else {
			assert_int_equal(why, DIO_CHEAPER);
			assert_true(direct);
		}
	}
	assert_int_equal(other, n / DIO_EXPLORE);
}

static void
choice_follows_new_figures(void **state)
{
	struct dio_choice d = { 0 };
	enum dio_why why;
	unsigned i;

	(void)state;
	probe_both(&d);
	assert_true(dio_pick(&d, CHUNK, 0, &why));
	/* O_DIRECT becomes expensive (say, the file system bounces it through
	 * a buffer): the moving average follows within a few writes */
	for (i = 0; i < 32; i++)
		dio_account(&d, true, CHUNK, 3000, 3000);
	assert_false(dio_pick(&d, CHUNK, 0, &why));
	assert_int_equal(why, DIO_CHEAPER);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(probes_each_way_first),
		cmocka_unit_test(cheaper_way_while_keeping_up),
		cmocka_unit_test(page_cache_counts_more_than_its_writes),
		cmocka_unit_test(faster_way_once_lagging),
		cmocka_unit_test(other_way_now_and_then),
		cmocka_unit_test(choice_follows_new_figures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
