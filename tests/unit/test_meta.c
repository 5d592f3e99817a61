/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test_meta - persistent module metadata: generations, comparison, encoding,
 * atomic save and load, and refusal of damaged files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "meta.h"

static void
generations(void **state)
{
	struct meta a, b;
	struct meta_gen g0;

	(void)state;
	meta_init(&a);
	assert_int_equal(a.gen.seq, 0);
	assert_int_equal(a.failover, -1);
	b = a;
	assert_int_equal(meta_gen_cmp(&a, &b.gen), META_EQUAL);
	meta_new_generation(&a);
	assert_int_equal(a.gen.seq, 1);
	assert_int_equal(a.n_history, 0);
	assert_int_equal(meta_gen_cmp(&a, &b.gen), META_AHEAD);
	assert_int_equal(meta_gen_cmp(&b, &a.gen), META_BEHIND);
	/* b mirrors a: same generation */
	b = a;
	g0 = a.gen;
	meta_new_generation(&a); /* a wrote alone */
	assert_int_equal(a.n_history, 1);
	assert_int_equal(a.history[0].id, g0.id);
	assert_int_equal(meta_gen_cmp(&a, &b.gen), META_AHEAD);
	/* b wrote alone too: split brain seen from both sides */
	meta_new_generation(&b);
	assert_int_equal(meta_gen_cmp(&a, &b.gen), META_DIVERGED);
	assert_int_equal(meta_gen_cmp(&b, &a.gen), META_DIVERGED);
	/* a two generations ahead of b's copy, and b diverged from an older one */
	meta_new_generation(&a);
	assert_int_equal(meta_gen_cmp(&a, &b.gen), META_DIVERGED);
	assert_int_equal(meta_gen_cmp(&b, &a.gen), META_BEHIND); /* b cannot tell */
	/* the history is bounded */
	for (int i = 0; i < 3 * META_HISTORY_MAX; i++)
		meta_new_generation(&a);
	assert_int_equal(a.n_history, META_HISTORY_MAX);
	assert_int_equal(a.history[0].seq + 1, a.gen.seq);
	assert_string_equal(meta_cmp_name(META_DIVERGED), "diverged");
}

static void
encode_decode(void **state)
{
	struct meta a, b;
	char err[256], *text;

	(void)state;
	meta_init(&a);
	meta_new_generation(&a);
	meta_new_generation(&a);
	a.uptodate = true;
	a.clean_stop = true;
	a.alone_at_stop = true;
	a.last_role = META_ROLE_SECOND;
	a.failover = 0;
	a.last_seq = 123456789012ull;
	text = meta_encode(&a);
	assert_non_null(text);
	assert_int_equal(meta_decode(text, &b, err, sizeof(err)), 0);
	assert_memory_equal(&a.gen, &b.gen, sizeof(a.gen));
	assert_int_equal(b.n_history, 1);
	assert_int_equal(b.history[0].id, a.history[0].id);
	assert_true(b.uptodate && b.clean_stop && b.alone_at_stop);
	assert_int_equal(b.last_role, META_ROLE_SECOND);
	assert_int_equal(b.failover, 0);
	assert_int_equal(b.last_seq, a.last_seq);
	free(text);

	assert_int_equal(meta_decode("{", &b, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "not JSON"));
	assert_int_equal(meta_decode("{\"version\":1}", &b, err, sizeof(err)), -EBADMSG);
	assert_int_equal(meta_decode("{\"version\":2,\"generation\":{\"seq\":1,\"id\":"
	                             "\"0000000000000001\"},\"history\":[],\"uptodate\":true,"
	                             "\"clean_stop\":true,\"alone_at_stop\":false,\"last_role\":"
	                             "\"none\",\"failover\":-1,\"last_seq\":0}",
	                             &b, err, sizeof(err)),
	                 -EBADMSG);
	assert_non_null(strstr(err, "version 2"));
	assert_int_equal(meta_decode("{\"version\":1,\"generation\":{\"seq\":1,\"id\":\"xyz\"},"
	                             "\"history\":[],\"uptodate\":true,\"clean_stop\":true,"
	                             "\"alone_at_stop\":false,\"last_role\":\"none\",\"failover\":"
	                             "-1,\"last_seq\":0}",
	                             &b, err, sizeof(err)),
	                 -EBADMSG);
}

static void
save_load(void **state)
{
	char dir[] = "/tmp/test_meta.XXXXXX", path[256], err[512];
	struct meta a, b;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/m.meta", dir);
	assert_int_equal(meta_load(path, &b, err, sizeof(err)), -ENOENT);
	assert_int_equal(b.gen.seq, 0);
	meta_init(&a);
	meta_new_generation(&a);
	a.uptodate = true;
	assert_int_equal(meta_save(path, &a, err, sizeof(err)), 0);
	assert_int_equal(meta_load(path, &b, err, sizeof(err)), 0);
	assert_int_equal(b.gen.id, a.gen.id);
	assert_true(b.uptodate);
	/* no temp file left behind */
	(void)snprintf(err, sizeof(err), "%.300s.tmp", path);
	assert_int_equal(access(err, F_OK), -1);
	/* a damaged file is refused with its name */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"version\":1,", f);
	fclose(f);
	assert_int_equal(meta_load(path, &b, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, path));
	/* a missing directory is an error naming it */
	(void)snprintf(path, sizeof(path), "%s/nope/m.meta", dir);
	assert_int_equal(meta_save(path, &a, err, sizeof(err)), -ENOENT);
	(void)snprintf(path, sizeof(path), "%s/m.meta", dir);
	(void)unlink(path);
	(void)rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(generations),
		cmocka_unit_test(encode_decode),
		cmocka_unit_test(save_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
