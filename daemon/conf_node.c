/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conf_node.c - node.ini (inih) -> struct node_conf: what is per node and
 * secret (node name, state/run/log directories, TLS files, heartbeat key).
 *
 * Two passes: inih collects section/key/value with the line each came from
 * (our own line-counting reader, since this inih's handler gets no line
 * number), then every value is validated. Unknown sections and keys, missing
 * keys, relative paths, missing directories and key files readable by group
 * or others are all errors, every one reported. Nothing is created, nothing is
 * logged. Pure, any thread.
 */
#include "conf.h"
#include "err.h"

#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

enum key_kind {
	KEY_NAME,   /* node name */
	KEY_DIR,    /* existing directory */
	KEY_FILE,   /* existing regular file */
	KEY_SECRET, /* existing regular file, not accessible by group/others */
};

struct key_def {
	const char *section;
	const char *name;
	enum key_kind kind;
	size_t off; /* offset of the char * field in struct node_conf */
};

static const struct key_def keys[] = {
	{ "node", "name", KEY_NAME, 0 },
	{ "node", "state_dir", KEY_DIR, offsetof(struct node_conf, state_dir) },
	{ "node", "run_dir", KEY_DIR, offsetof(struct node_conf, run_dir) },
	{ "node", "log_dir", KEY_DIR, offsetof(struct node_conf, log_dir) },
	{ "tls", "ca", KEY_FILE, offsetof(struct node_conf, tls_ca) },
	{ "tls", "cert", KEY_FILE, offsetof(struct node_conf, tls_cert) },
	{ "tls", "key", KEY_SECRET, offsetof(struct node_conf, tls_key) },
	{ "heartbeat", "key_file", KEY_SECRET, offsetof(struct node_conf, hb_key_file) },
};

#define NODE_LINE_MAX 4096

struct nctx {
	const char *file;
	struct conf_errs *errs;
	FILE *f;
	int lineno;            /* line most recently handed to inih */
	int first_syntax_line; /* first syntax error our reader saw, or 0 */
	char *values[ARRAY_SIZE(keys)];
	int lines[ARRAY_SIZE(keys)];
	char bad_section[64]; /* last unknown section reported */
	int bad_section_line;
};

/* Classify one line the way inih will, to report every syntax error with its
 * line (inih itself only returns the first one). */
static void
check_syntax(struct nctx *x, const char *line)
{
	const char *s = line;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	if (*s == '\0' || *s == ';' || *s == '#')
		return;
	if (s != line && x->lineno > 1)
		return; /* continuation line: inih repeats the key, reported as a duplicate */
	if (*s == '[') {
		if (strchr(s, ']') == NULL)
			goto bad;
		return;
	}
	if (strpbrk(s, "=:") != NULL && *s != '=' && *s != ':')
		return;
bad:
	conf_errs_add(x->errs, x->file, x->lineno,
	              "syntax error: expected \"[section]\", \"key = value\" or a comment");
	if (x->first_syntax_line == 0)
		x->first_syntax_line = x->lineno;
}

/* inih reader: one whole line per call, so our line count matches inih's.
 * inih's line buffer is small (num, 200 bytes in Debian's build): a longer
 * line is an error, except a comment, which is simply cut. */
static char *
line_reader(char *str, int num, void *stream)
{
	struct nctx *x = stream;
	char buf[NODE_LINE_MAX];
	size_t len, max = num > 2 ? (size_t)num - 2 : 0;
	const char *s = buf;
	bool too_long = false;

	if (max > sizeof(buf) - 2)
		max = sizeof(buf) - 2;
	if (fgets(buf, sizeof(buf), x->f) == NULL)
		return NULL;
	x->lineno++;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	else if (len == sizeof(buf) - 1) {
		int ch;

		too_long = true;
		while ((ch = fgetc(x->f)) != EOF && ch != '\n')
			;
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if ((too_long || len > max) && *s != ';' && *s != '#')
		conf_errs_add(x->errs, x->file, x->lineno, "line too long (at most %zu bytes)",
		              max);
	if (len > max)
		len = max;
	buf[len] = '\n';
	buf[len + 1] = '\0';
	check_syntax(x, buf);
	memcpy(str, buf, len + 2);
	return str;
}

static int
on_key(void *user, const char *section, const char *name, const char *value)
{
	struct nctx *x = user;
	bool section_known = false;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (strcmp(keys[i].section, section) != 0)
			continue;
		section_known = true;
		if (strcmp(keys[i].name, name) != 0)
			continue;
		if (x->values[i] != NULL) {
			conf_errs_add(x->errs, x->file, x->lineno,
			              "[%s] %s: already set at line %d; set each key once", section,
			              name, x->lines[i]);
			return 1;
		}
		x->values[i] = mr_xstrdup(value);
		x->lines[i] = x->lineno;
		return 1;
	}
	if (section[0] == '\0') {
		conf_errs_add(x->errs, x->file, x->lineno,
		              "%s: key outside any section; expected it under [node], [tls] or "
		              "[heartbeat]",
		              name);
		return 1;
	}
	if (!section_known) {
		/* One message per unknown section, not one per key in it. */
		if (x->bad_section_line != 0 && strcmp(x->bad_section, section) == 0)
			return 1;
		(void)mr_strlcpy(x->bad_section, section, sizeof(x->bad_section));
		x->bad_section_line = x->lineno;
		conf_errs_add(x->errs, x->file, x->lineno,
		              "[%s]: unknown section; expected [node], [tls] or [heartbeat]",
		              section);
		return 1;
	}
	{
		char list[128] = "";

		for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
			if (strcmp(keys[i].section, section) != 0)
				continue;
			if (list[0])
				(void)strncat(list, ", ", sizeof(list) - strlen(list) - 1);
			(void)strncat(list, keys[i].name, sizeof(list) - strlen(list) - 1);
		}
		conf_errs_add(x->errs, x->file, x->lineno,
		              "[%s] %s: unknown key; expected one of: %s", section, name, list);
	}
	return 1;
}

static bool
valid_node_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len >= CONF_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* Validate one present value; false (and an error) when unusable. */
static bool
check_value(struct nctx *x, const struct key_def *k, const char *v, int line)
{
	struct stat st;

	if (k->kind == KEY_NAME) {
		if (!valid_node_name(v)) {
			conf_errs_add(x->errs, x->file, line,
			              "[%s] %s: \"%s\" is not a valid node name; expected 1..%d "
			              "characters of [A-Za-z0-9._-]",
			              k->section, k->name, v, CONF_NAME_MAX - 1);
			return false;
		}
		return true;
	}
	if (v[0] != '/') {
		conf_errs_add(x->errs, x->file, line,
		              "[%s] %s: \"%s\" is not an absolute path; expected a path starting "
		              "with \"/\"",
		              k->section, k->name, v);
		return false;
	}
	if (stat(v, &st) == -1) {
		int e = errno;

		conf_errs_add(x->errs, x->file, line, "[%s] %s: %s %s%s", k->section, k->name, v,
		              e == ENOENT ? "does not exist" : strerror(e),
		              e == ENOENT && k->kind == KEY_DIR
		                      ? "; create it (mirrord creates no directory itself)"
		                      : "");
		return false;
	}
	if (k->kind == KEY_DIR) {
		if (!S_ISDIR(st.st_mode)) {
			conf_errs_add(x->errs, x->file, line, "[%s] %s: %s is not a directory",
			              k->section, k->name, v);
			return false;
		}
		return true;
	}
	if (!S_ISREG(st.st_mode)) {
		conf_errs_add(x->errs, x->file, line, "[%s] %s: %s is not a regular file",
		              k->section, k->name, v);
		return false;
	}
	if (k->kind == KEY_SECRET && (st.st_mode & 077) != 0) {
		conf_errs_add(x->errs, x->file, line,
		              "[%s] %s: %s is readable by group or others (mode %04o); run chmod "
		              "600 %s",
		              k->section, k->name, v, (unsigned)(st.st_mode & 07777), v);
		return false;
	}
	return true;
}

/* See conf.h. Collects every key with its line, then checks each value: all
 * problems are reported, not only the first. *out is set only on success;
 * -errno when the file cannot be opened or read. */
int
conf_node_load(const char *path, struct node_conf **out, struct conf_errs *errs)
{
	struct nctx x = { .file = path, .errs = errs };
	size_t errs_before = errs->n;
	struct node_conf *n = NULL;
	int r;

	*out = NULL;
	x.f = fopen(path, "re");
	if (x.f == NULL) {
		r = -errno;
		conf_errs_add(errs, path, 0, "cannot open: %s", strerror(-r));
		return r;
	}
	r = ini_parse_stream(line_reader, &x, on_key, &x);
	if (ferror(x.f)) {
		conf_errs_add(errs, path, 0, "cannot read: %s", strerror(EIO));
		r = -EIO;
		goto out;
	}
	if (r == -2) {
		r = -ENOMEM;
		goto out;
	}
	if (r > 0 && r != x.first_syntax_line && errs->n == errs_before)
		conf_errs_add(errs, path, r, "syntax error");

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (x.values[i] == NULL) {
			conf_errs_add(errs, path, 0, "[%s] %s: missing (mandatory)",
			              keys[i].section, keys[i].name);
			continue;
		}
		(void)check_value(&x, &keys[i], x.values[i], x.lines[i]);
	}
	if (errs->n > errs_before) {
		r = MR_ECONFIG;
		goto out;
	}

	n = mr_xcalloc(1, sizeof(*n));
	n->path = mr_xstrdup(path);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (keys[i].kind == KEY_NAME) {
			(void)mr_strlcpy(n->name, x.values[i], sizeof(n->name));
			continue;
		}
		/* ownership of the string moves to the node_conf */
		*(char **)(void *)((char *)n + keys[i].off) = x.values[i];
		x.values[i] = NULL;
	}
	*out = n;
	r = 0;
out:
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		free(x.values[i]);
	(void)fclose(x.f);
	return r;
}

/* Frees n and its strings; accepts NULL. */
void
conf_node_free(struct node_conf *n)
{
	if (n == NULL)
		return;
	free(n->path);
	free(n->state_dir);
	free(n->run_dir);
	free(n->log_dir);
	free(n->tls_ca);
	free(n->tls_cert);
	free(n->tls_key);
	free(n->hb_key_file);
	free(n);
}

struct peek {
	char *run_dir;
	char *log_dir;
};

static int
on_peek(void *user, const char *section, const char *name, const char *value)
{
	struct peek *pk = user;
	char **slot = NULL;

	if (strcmp(section, "node") != 0)
		return 1;
	if (strcmp(name, "run_dir") == 0)
		slot = &pk->run_dir;
	else if (strcmp(name, "log_dir") == 0)
		slot = &pk->log_dir;
	if (slot != NULL) {
		free(*slot);
		*slot = strdup(value);
	}
	return 1; /* syntax errors elsewhere do not matter here */
}

int
conf_node_peek_dirs(const char *path, char **run_dir, char **log_dir)
{
	struct peek pk = { 0 };
	int r = ini_parse(path, on_peek, &pk);

	if (r == -1)
		return -errno ? -errno : -ENOENT;
	if (pk.run_dir == NULL || pk.log_dir == NULL) {
		free(pk.run_dir);
		free(pk.log_dir);
		return -ENOENT;
	}
	*run_dir = pk.run_dir;
	*log_dir = pk.log_dir;
	return 0;
}
