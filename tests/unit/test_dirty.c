/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test_dirty - the dirty set: what marks which file and block, names of
 * open files across renames, what makes the set untrusted, save and load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dirty.h"
#include "shim.h"

#define BS 4096u

static struct shim_op
op(enum shim_op_type type, uint64_t fid, const char *path, const char *path2)
{
	return (struct shim_op){ .type = type, .file_id = fid, .path = (char *)path,
		                 .path2 = (char *)path2 };
}

static void
marks_blocks_through_file_ids(void **state)
{
	struct dirty *d = dirty_new(BS);
	struct shim_op o;
	struct dirty_file f;
	bool trusted;

	(void)state;
	assert_false(dirty_trusted_for(d, 1, 7)); /* never reset: not trusted */
	dirty_reset(d, 1, 7);
	assert_true(dirty_trusted_for(d, 1, 7));
	assert_false(dirty_trusted_for(d, 2, 7));
	/* opened while the peer was there: only the name is followed */
	o = op(SHIM_OP_OPEN, 11, "a/f", NULL);
	dirty_op(d, 0, &o, false);
	o = op(SHIM_OP_WRITE, 11, NULL, NULL);
	o.off = 0, o.len = 100;
	dirty_op(d, 0, &o, false);
	assert_int_equal(dirty_count(d, &trusted), 0);
	/* then alone: a write spanning blocks 2 and 3 */
	o.off = 3 * BS - 10, o.len = 20;
	dirty_op(d, 0, &o, true);
	assert_int_equal(dirty_count(d, &trusted), 1);
	assert_true(trusted);
	assert_true(dirty_get(d, 0, "a/f", &f));
	assert_false(dirty_file_block(&f, 1));
	assert_true(dirty_file_block(&f, 2));
	assert_true(dirty_file_block(&f, 3));
	assert_false(dirty_file_block(&f, 4));
	assert_false(dirty_file_block(&f, 100000));
	assert_int_equal(f.flags, 0);
	dirty_file_done(&f);
	/* the same name in another replicated directory is another file */
	assert_false(dirty_get(d, 1, "a/f", &f));
	/* truncates keep the lowest size */
	o = op(SHIM_OP_SETATTR, 11, NULL, NULL);
	o.valid = SHIM_SET_SIZE, o.size = 9000;
	dirty_op(d, 0, &o, true);
	o.size = 5000;
	dirty_op(d, 0, &o, true);
	o.size = 7000;
	dirty_op(d, 0, &o, true);
	assert_true(dirty_get(d, 0, "a/f", &f));
	assert_true(f.flags & DIRTY_F_TRUNC);
	assert_int_equal(f.trunc_from, 5000);
	dirty_file_done(&f);
	/* a created file: all of it */
	o = op(SHIM_OP_CREATE, 12, "new", NULL);
	dirty_op(d, 0, &o, true);
	assert_true(dirty_get(d, 0, "new", &f));
	assert_true(f.flags & DIRTY_F_TRUNC);
	assert_int_equal(f.trunc_from, 0);
	dirty_file_done(&f);
	/* the last release forgets the name: a later write is not placeable */
	o = op(SHIM_OP_RELEASE, 11, NULL, NULL);
	dirty_op(d, 0, &o, false);
	/* not before it completes: ops in flight before it still find the name */
	o = op(SHIM_OP_WRITE, 11, NULL, NULL);
	o.len = 1;
	dirty_mark(d, 0, &o);
	assert_true(dirty_trusted_for(d, 1, 7));
	o = op(SHIM_OP_RELEASE, 11, NULL, NULL);
	dirty_done(d, 0, &o);
	o = op(SHIM_OP_WRITE, 11, NULL, NULL);
	o.len = 1;
	dirty_op(d, 0, &o, true);
	assert_false(dirty_trusted_for(d, 1, 7));
	/* a reset empties and trusts again */
	dirty_reset(d, 2, 9);
	assert_int_equal(dirty_count(d, &trusted), 0);
	assert_true(dirty_trusted_for(d, 2, 9));
	dirty_free(d);
}

/* What dirty_each_open() lists: "dir:id:path-or-(none):opens;" sorted by id. */
struct opens {
	char buf[512];
	uint64_t ids[16];
	char rows[16][64];
	size_t n;
};

static void
collect_open(void *arg, uint8_t dir, uint64_t id, const char *path, unsigned n)
{
	struct opens *o = arg;

	assert_true(o->n < 16);
	o->ids[o->n] = id;
	(void)snprintf(o->rows[o->n], sizeof(o->rows[0]), "%u:%llu:%s:%u;", dir,
	               (unsigned long long)id, path != NULL ? path : "(none)", n);
	o->n++;
}

static const char *
list_open(struct dirty *d, struct opens *o)
{
	memset(o, 0, sizeof(*o));
	dirty_each_open(d, collect_open, o);
	for (size_t i = 0; i < o->n; i++) /* by id (the table's order is a hash's) */
		for (size_t j = i + 1; j < o->n; j++)
			if (o->ids[j] < o->ids[i]) {
				char t[64];
				uint64_t id = o->ids[i];

				o->ids[i] = o->ids[j], o->ids[j] = id;
				memcpy(t, o->rows[i], sizeof(t));
				memcpy(o->rows[i], o->rows[j], sizeof(t));
				memcpy(o->rows[j], t, sizeof(t));
			}
	for (size_t i = 0; i < o->n; i++)
		strcat(o->buf, o->rows[i]);
	return o->buf;
}

static void
open_files_for_rebinding(void **state)
{
	struct dirty *d = dirty_new(BS);
	struct shim_op o;
	struct opens l;
	bool trusted;

	(void)state;
	dirty_reset(d, 1, 7);
	for (uint64_t id = 1; id <= 6; id++) {
		char path[16];

		(void)snprintf(path, sizeof(path), "f%llu", (unsigned long long)id);
		o = op(SHIM_OP_CREATE, id, path, NULL);
		dirty_op(d, 0, &o, false);
	}
	o = op(SHIM_OP_OPEN, 1, "f1", NULL); /* a second descriptor */
	dirty_op(d, 0, &o, false);
	assert_string_equal(list_open(d, &l),
	                    "0:1:f1:2;0:2:f2:1;0:3:f3:1;0:4:f4:1;0:5:f5:1;0:6:f6:1;");
	/* a RELEASE counts at once for the stream, and is forgotten when done */
	o = op(SHIM_OP_RELEASE, 1, NULL, NULL);
	dirty_op(d, 0, &o, false);
	assert_string_equal(list_open(d, &l),
	                    "0:1:f1:1;0:2:f2:1;0:3:f3:1;0:4:f4:1;0:5:f5:1;0:6:f6:1;");
	dirty_done(d, 0, &o);
	/* renamed; exchanged */
	o = op(SHIM_OP_RENAME, 0, "f2", "g2");
	dirty_op(d, 0, &o, false);
	o = op(SHIM_OP_RENAME, 0, "f3", "f4");
	o.flags = RENAME_EXCHANGE;
	dirty_op(d, 0, &o, false);
	/* the last name unlinked: open with no name */
	o = op(SHIM_OP_UNLINK, 0, "f5", NULL);
	o.victim_id = 5, o.victim_last = true;
	dirty_op(d, 0, &o, false);
	/* replaced by a rename: no name either (and the renamed one's name is kept) */
	o = op(SHIM_OP_RENAME, 0, "g2", "f6");
	o.victim_id = 6, o.victim_last = true;
	dirty_op(d, 0, &o, false);
	assert_string_equal(list_open(d, &l),
	                    "0:1:f1:1;0:2:f6:1;0:3:f4:1;0:4:f3:1;0:5:(none):1;0:6:(none):1;");
	/* nothing marks a file by the name a nameless one had */
	o = op(SHIM_OP_WRITE, 5, NULL, NULL);
	o.off = 0, o.len = 10;
	dirty_op(d, 0, &o, true);
	assert_int_equal(dirty_count(d, &trusted), 0);
	assert_true(trusted);
	/* a new file under the old name is another entry */
	o = op(SHIM_OP_CREATE, 7, "f5", NULL);
	dirty_op(d, 0, &o, false);
	o = op(SHIM_OP_RENAME, 0, "f5", "h5"); /* the nameless one does not follow */
	dirty_op(d, 0, &o, false);
	assert_string_equal(list_open(d, &l), "0:1:f1:1;0:2:f6:1;0:3:f4:1;0:4:f3:1;"
	                                      "0:5:(none):1;0:6:(none):1;0:7:h5:1;");
	/* one of two names unlinked, the one it was opened by: its other name is not
	 * known, so it is not listed and the set is not trusted */
	o = op(SHIM_OP_UNLINK, 0, "f1", NULL);
	o.victim_id = 1, o.victim_last = false;
	dirty_op(d, 0, &o, false);
	(void)dirty_count(d, &trusted);
	assert_false(trusted);
	assert_string_equal(list_open(d, &l), "0:2:f6:1;0:3:f4:1;0:4:f3:1;"
	                                      "0:5:(none):1;0:6:(none):1;0:7:h5:1;");
	/* opened again by a name: known again */
	o = op(SHIM_OP_OPEN, 1, "other", NULL);
	dirty_op(d, 0, &o, false);
	assert_string_equal(list_open(d, &l), "0:1:other:2;0:2:f6:1;0:3:f4:1;0:4:f3:1;"
	                                      "0:5:(none):1;0:6:(none):1;0:7:h5:1;");
	dirty_free(d);
}

/* An open file that lost the name it was opened by (one of its hard links)
 * is found again by its inode under another name, and only by it. */
static void
open_file_found_by_its_inode(void **state)
{
	struct dirty *d = dirty_new(BS);
	struct shim_op o;
	struct opens l;

	(void)state;
	dirty_reset(d, 1, 7);
	o = op(SHIM_OP_OPEN, 1, "a", NULL);
	o.obj_dev = 8, o.obj_ino = 100;
	dirty_op(d, 0, &o, false);
	o = op(SHIM_OP_OPEN, 2, "c", NULL);
	o.obj_dev = 8, o.obj_ino = 200;
	dirty_op(d, 0, &o, false);
	assert_false(dirty_open_lost(d, 8, 100)); /* named: nothing to look for */
	assert_false(dirty_open_lost(d, 0, 0));
	o = op(SHIM_OP_UNLINK, 0, "a", NULL); /* "b" remains, unknown to the set */
	o.victim_id = 1, o.victim_last = false;
	dirty_op(d, 0, &o, false);
	assert_string_equal(list_open(d, &l), "0:2:c:1;");
	assert_true(dirty_open_lost(d, 8, 100));
	assert_true(dirty_open_lost(d, 0, 0));
	assert_false(dirty_open_lost(d, 8, 200));
	assert_false(dirty_open_lost(d, 9, 100)); /* same inode number, another fs */
	assert_int_equal(dirty_open_found(d, 1, 8, 100, "b"), 0); /* another directory */
	assert_int_equal(dirty_open_found(d, 0, 8, 200, "b"), 0);
	assert_int_equal(dirty_open_found(d, 0, 8, 100, "b"), 1);
	assert_string_equal(list_open(d, &l), "0:1:b:1;0:2:c:1;");
	assert_false(dirty_open_lost(d, 8, 100));
	/* lost again, then its last name goes: open with no name, nothing to find */
	o = op(SHIM_OP_RENAME, 0, "x", "b");
	o.victim_id = 1, o.victim_last = false;
	dirty_op(d, 0, &o, false);
	assert_true(dirty_open_lost(d, 8, 100));
	o = op(SHIM_OP_UNLINK, 0, "y", NULL);
	o.victim_id = 1, o.victim_last = true;
	dirty_op(d, 0, &o, false);
	assert_false(dirty_open_lost(d, 8, 100));
	assert_string_equal(list_open(d, &l), "0:1:(none):1;0:2:c:1;");
	/* closed while lost: forgotten */
	o = op(SHIM_OP_RENAME, 0, "z", "c");
	o.victim_id = 2, o.victim_last = false;
	dirty_op(d, 0, &o, false);
	assert_true(dirty_open_lost(d, 8, 200));
	o = op(SHIM_OP_RELEASE, 2, NULL, NULL);
	dirty_op(d, 0, &o, false);
	dirty_done(d, 0, &o);
	assert_false(dirty_open_lost(d, 8, 200));
	assert_int_equal(dirty_open_found(d, 0, 8, 200, "z"), 0);
	dirty_free(d);
}

static void
renames(void **state)
{
	char tmpl[] = "/tmp/test_dirty.XXXXXX";
	char *root = mkdtemp(tmpl), p[300];
	struct dirty *d = dirty_new(BS);
	struct shim_op o;
	struct dirty_file f;
	int rfd;

	(void)state;
	assert_non_null(root);
	(void)snprintf(p, sizeof(p), "%s/sub", root);
	assert_int_equal(mkdir(p, 0755), 0);
	(void)snprintf(p, sizeof(p), "%s/g", root);
	assert_true(close(open(p, O_CREAT | O_WRONLY, 0644)) == 0);
	rfd = open(root, O_RDONLY | O_DIRECTORY);
	assert_true(rfd >= 0);
	dirty_set_roots(d, &rfd, 1);
	dirty_reset(d, 1, 1);
	/* a file open under a directory renamed while the peer was there keeps
	 * its (new) name; its later write marks that name */
	o = op(SHIM_OP_OPEN, 5, "old/x", NULL);
	dirty_op(d, 0, &o, false);
	o = op(SHIM_OP_RENAME, 0, "old", "sub");
	dirty_op(d, 0, &o, false);
	o = op(SHIM_OP_WRITE, 5, NULL, NULL);
	o.len = 10;
	dirty_op(d, 0, &o, true);
	assert_true(dirty_get(d, 0, "sub/x", &f));
	dirty_file_done(&f);
	assert_false(dirty_get(d, 0, "old/x", &f));
	/* a file renamed alone: both names, compared by checksum */
	o = op(SHIM_OP_RENAME, 0, "f", "g");
	dirty_op(d, 0, &o, true);
	assert_true(dirty_get(d, 0, "g", &f));
	assert_true(f.flags & DIRTY_F_CHECKSUM);
	dirty_file_done(&f);
	assert_true(dirty_get(d, 0, "f", &f));
	dirty_file_done(&f);
	assert_true(dirty_trusted_for(d, 1, 1));
	/* a directory renamed alone: its files are not listed one by one */
	o = op(SHIM_OP_RENAME, 0, "old2", "sub");
	dirty_op(d, 0, &o, true);
	assert_false(dirty_trusted_for(d, 1, 1));
	/* so is a hard link */
	dirty_reset(d, 1, 1);
	o = op(SHIM_OP_LINK, 5, "h", "sub/x");
	dirty_op(d, 0, &o, true);
	assert_false(dirty_trusted_for(d, 1, 1));
	dirty_set_roots(d, NULL, 0);
	dirty_free(d);
	(void)close(rfd);
	(void)snprintf(p, sizeof(p), "rm -rf %s", root);
	assert_int_equal(system(p), 0);
}

static void
save_and_load(void **state)
{
	char tmpl[] = "/tmp/test_dirty.XXXXXX";
	char *root = mkdtemp(tmpl), p[300], err[512];
	struct dirty *d = dirty_new(BS), *e = dirty_new(BS), *g = dirty_new(8192);
	struct shim_op o;
	struct dirty_file f;
	bool trusted;
	FILE *fp;

	(void)state;
	assert_non_null(root);
	(void)snprintf(p, sizeof(p), "%s/m.dirty", root);
	dirty_reset(d, 3, 0xfeedfacecafebeefull & INT64_MAX);
	o = op(SHIM_OP_CREATE, 1, "dir/file \"quoted\"", NULL);
	dirty_op(d, 2, &o, true);
	o = op(SHIM_OP_WRITE, 1, NULL, NULL);
	o.off = 64 * BS * 3 + 5, o.len = 1; /* block 192: the fourth word */
	dirty_op(d, 2, &o, true);
	assert_int_equal(dirty_save(d, p, err, sizeof(err)), 0);
	assert_int_equal(dirty_load(e, p, err, sizeof(err)), 0);
	assert_true(dirty_trusted_for(e, 3, 0xfeedfacecafebeefull & INT64_MAX));
	assert_int_equal(dirty_count(e, &trusted), 1);
	assert_true(dirty_get(e, 2, "dir/file \"quoted\"", &f));
	assert_true(dirty_file_block(&f, 192));
	assert_false(dirty_file_block(&f, 191));
	assert_int_equal(f.trunc_from, 0);
	dirty_file_done(&f);
	/* another block size: refused */
	assert_int_equal(dirty_load(g, p, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "block"));
	/* an untrusted set stays untrusted */
	dirty_distrust(d, "test");
	assert_int_equal(dirty_save(d, p, err, sizeof(err)), 0);
	assert_int_equal(dirty_load(e, p, err, sizeof(err)), 0);
	assert_false(dirty_trusted_for(e, 3, 0xfeedfacecafebeefull & INT64_MAX));
	/* damaged */
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs("{\"version\":1,", fp);
	fclose(fp);
	assert_int_equal(dirty_load(e, p, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "m.dirty"));
	(void)unlink(p);
	assert_int_equal(dirty_load(e, p, err, sizeof(err)), -ENOENT);
	dirty_free(d);
	dirty_free(e);
	dirty_free(g);
	assert_int_equal(rmdir(root), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(marks_blocks_through_file_ids),
		cmocka_unit_test(renames),
		cmocka_unit_test(open_files_for_rebinding),
		cmocka_unit_test(open_file_found_by_its_inode),
		cmocka_unit_test(save_and_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
