/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * meta.c - persistent module metadata (see meta.h). The encoding is JSON
 * (jansson) with 64-bit ids written as 16 hex digits, so the file stays
 * readable by an admin. No logging: callers log with the error text.
 */
#include "meta.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define META_VERSION 1

void
meta_init(struct meta *m)
{
	*m = (struct meta){ .failover = -1 };
}

void
meta_set_generation(struct meta *m, const struct meta_gen *g)
{
	if (m->gen.seq > 0 && (m->gen.seq != g->seq || m->gen.id != g->id)) {
		size_t n = m->n_history < META_HISTORY_MAX ? m->n_history : META_HISTORY_MAX - 1;

		memmove(&m->history[1], &m->history[0], n * sizeof(m->history[0]));
		m->history[0] = m->gen;
		m->n_history = n + 1;
	}
	m->gen = *g;
}

void
meta_new_generation(struct meta *m)
{
	struct meta_gen g;
	uint64_t id = 0;

	while (id == 0) {
		if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
			id = mr_now_ms() ^ ((uint64_t)getpid() << 32);
	}
	g = (struct meta_gen){ m->gen.seq + 1, id };
	meta_set_generation(m, &g);
}

enum meta_cmp
meta_gen_cmp(const struct meta *m, const struct meta_gen *peer)
{
	size_t i;

	if (m->gen.seq == peer->seq)
		return m->gen.id == peer->id ? META_EQUAL : META_DIVERGED;
	if (peer->seq > m->gen.seq)
		return META_BEHIND; /* the peer, holding the history, tells a split */
	if (peer->seq == 0)
		return META_AHEAD;
	for (i = 0; i < m->n_history; i++)
		if (m->history[i].seq == peer->seq)
			return m->history[i].id == peer->id ? META_AHEAD : META_DIVERGED;
	/* older than our history reaches: assume it is an ancestor */
	return META_AHEAD;
}

const char *
meta_cmp_name(enum meta_cmp c)
{
	switch (c) {
	case META_EQUAL:
		return "equal";
	case META_AHEAD:
		return "ahead";
	case META_BEHIND:
		return "behind";
	case META_DIVERGED:
		return "diverged";
	}
	return "?";
}

static const char *const role_names[] = { "none", "primary", "secondary" };

static json_t *
gen_json(const struct meta_gen *g)
{
	char id[17];

	(void)snprintf(id, sizeof(id), "%016" PRIx64, g->id);
	return json_pack("{s:I,s:s}", "seq", (json_int_t)g->seq, "id", id);
}

char *
meta_encode(const struct meta *m)
{
	json_t *o, *h;
	char *s;
	size_t i;

	h = json_array();
	for (i = 0; i < m->n_history; i++)
		json_array_append_new(h, gen_json(&m->history[i]));
	o = json_pack("{s:i,s:o,s:o,s:b,s:b,s:b,s:s,s:i,s:I}", "version", META_VERSION,
	              "generation", gen_json(&m->gen), "history", h, "uptodate", m->uptodate,
	              "clean_stop", m->clean_stop, "alone_at_stop", m->alone_at_stop,
	              "last_role", role_names[m->last_role], "failover", m->failover,
	              "last_seq", (json_int_t)m->last_seq);
	if (o == NULL)
		return NULL;
	if (m->boot_id[0] != '\0')
		json_object_set_new(o, "boot_id", json_string(m->boot_id));
	if (m->checkers_off)
		json_object_set_new(o, "checkers", json_string("off"));
	if (m->errd_off)
		json_object_set_new(o, "errd", json_string("off"));
	s = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	return s;
}

static int
gen_from_json(json_t *j, struct meta_gen *g)
{
	json_int_t seq;
	const char *id;
	char *end;

	if (json_unpack(j, "{s:I,s:s}", "seq", &seq, "id", &id) != 0 || seq < 0)
		return -EBADMSG;
	if (strlen(id) != 16)
		return -EBADMSG;
	errno = 0;
	g->id = strtoull(id, &end, 16);
	if (errno != 0 || *end != '\0')
		return -EBADMSG;
	g->seq = (uint64_t)seq;
	return 0;
}

int
meta_decode(const char *text, struct meta *out, char *err, size_t err_len)
{
	json_error_t je;
	json_t *o, *gen, *hist, *v;
	const char *role;
	int version, uptodate, clean, alone, failover;
	json_int_t last_seq;
	size_t i;
	int r = -EBADMSG;

	meta_init(out);
	o = json_loads(text, 0, &je);
	if (o == NULL) {
		(void)snprintf(err, err_len, "not JSON: line %d: %s", je.line, je.text);
		return -EBADMSG;
	}
	if (json_unpack_ex(o, &je, 0, "{s:i,s:o,s:o,s:b,s:b,s:b,s:s,s:i,s:I}", "version", &version,
	                   "generation", &gen, "history", &hist, "uptodate", &uptodate,
	                   "clean_stop", &clean, "alone_at_stop", &alone, "last_role", &role,
	                   "failover", &failover, "last_seq", &last_seq) != 0) {
		(void)snprintf(err, err_len, "%s", je.text);
		goto out;
	}
	if (version != META_VERSION) {
		(void)snprintf(err, err_len, "version %d, expected %d", version, META_VERSION);
		goto out;
	}
	if (gen_from_json(gen, &out->gen) < 0 || !json_is_array(hist) ||
	    json_array_size(hist) > META_HISTORY_MAX) {
		(void)snprintf(err, err_len, "bad generation or history");
		goto out;
	}
	json_array_foreach (hist, i, v) {
		if (gen_from_json(v, &out->history[i]) < 0) {
			(void)snprintf(err, err_len, "bad history entry %zu", i);
			goto out;
		}
	}
	out->n_history = json_array_size(hist);
	for (i = 0; i < ARRAY_SIZE(role_names); i++)
		if (strcmp(role, role_names[i]) == 0)
			break;
	if (i == ARRAY_SIZE(role_names) || failover < -1 || failover > 1 || last_seq < 0) {
		(void)snprintf(err, err_len, "bad last_role, failover or last_seq");
		goto out;
	}
	out->last_role = (enum meta_role)i;
	out->uptodate = uptodate;
	out->clean_stop = clean;
	out->alone_at_stop = alone;
	out->failover = failover;
	out->last_seq = (uint64_t)last_seq;
	v = json_object_get(o, "boot_id"); /* optional */
	if (json_is_string(v))
		(void)snprintf(out->boot_id, sizeof(out->boot_id), "%s", json_string_value(v));
	v = json_object_get(o, "checkers"); /* optional: absent = on */
	out->checkers_off = json_is_string(v) && strcmp(json_string_value(v), "off") == 0;
	v = json_object_get(o, "errd");
	out->errd_off = json_is_string(v) && strcmp(json_string_value(v), "off") == 0;
	r = 0;
out:
	json_decref(o);
	if (r < 0)
		meta_init(out);
	return r;
}

int
meta_load(const char *path, struct meta *out, char *err, size_t err_len)
{
	char buf[16384], why[200];
	ssize_t n;
	int fd, r;

	meta_init(out);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		r = -errno;
		(void)snprintf(err, err_len, "%s: %s", path, strerror(-r));
		return r;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	r = n == -1 ? -errno : 0;
	(void)close(fd);
	if (r < 0) {
		(void)snprintf(err, err_len, "%s: %s", path, strerror(-r));
		return r;
	}
	buf[n] = '\0';
	r = meta_decode(buf, out, why, sizeof(why));
	if (r < 0)
		(void)snprintf(err, err_len, "%s: %s", path, why);
	return r;
}

int
meta_save(const char *path, const struct meta *m, char *err, size_t err_len)
{
	char *text = meta_encode(m);
	int r;

	if (text == NULL) {
		(void)snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	r = mr_write_file_atomic(path, text, strlen(text), err, err_len);
	free(text);
	return r;
}
