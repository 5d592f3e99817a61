/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conf_cluster.c - userconfig.xml (SafeKit vocabulary) -> struct cluster_conf.
 *
 * Steps: parse with libxml2 (no network, no DTD loading, no entity substitution;
 * any DTD declaration, entity or external DTD is refused) -> expand %MACRO% in
 * attribute values -> validate against the embedded conf/userconfig.xsd -> fill
 * the struct with defaults applied and check what the schema cannot (see the
 * comment at the top of the XSD) -> canonical text -> XXH3-128 hash.
 * Every problem found is appended to a conf_errs as "FILE:LINE: <element>
 * @attribute: what is wrong, what was expected"; nothing is logged.
 * Pure apart from libxml2's process-wide external entity loader, which is set
 * once to refuse everything. Any thread.
 */
#include "conf.h"
#include "err.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>
#include <xxhash.h>

extern const char conf_userconfig_xsd[];
extern const size_t conf_userconfig_xsd_len;

#if LIBXML_VERSION >= 21200
#define XMLERR const xmlError
#else
#define XMLERR xmlError
#endif

#define MS_S 1000u
#define MS_M (60u * MS_S)
#define MS_H (60u * MS_M)
#define KIB  1024ull
#define MIB  (1024ull * KIB)
#define GIB  (1024ull * MIB)

#define CONF_FILE_MAX_BYTES (1u << 20) /* a userconfig.xml is a few KB */
#define CONF_WITNESSES_MAX  8

/* An element (attr "") or one of its attributes already reported by the
 * schema validator: the semantic checks stay quiet about it. */
struct flag {
	const xmlNode *node;
	char attr[64];
};

/* Parse state shared by the libxml2 callbacks and the fill/check functions. */
struct pctx {
	const char *file;
	struct conf_errs *errs;
	struct cluster_conf *c;
	struct flag *flagged; /* what the schema already complained about */
	size_t n_flagged;
	size_t cap_flagged;
	int first_hb_line;
};

/* ---- libxml2 plumbing ----------------------------------------------------- */

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static xmlParserInputPtr
refuse_entity_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
	(void)url;
	(void)id;
	(void)ctxt;
	return NULL; /* never read a file or URL named by a document */
}

static void
xml_init(void)
{
	xmlInitParser();
	xmlSetExternalEntityLoader(refuse_entity_loader);
}

static void
flag_node(struct pctx *p, const xmlNode *n, const char *attr)
{
	if (n == NULL)
		return;
	if (p->n_flagged == p->cap_flagged) {
		size_t cap = p->cap_flagged ? p->cap_flagged * 2 : 16;
		struct flag *f = mr_xcalloc(cap, sizeof(*f));

		if (p->n_flagged)
			memcpy(f, p->flagged, p->n_flagged * sizeof(*f));
		free(p->flagged);
		p->flagged = f;
		p->cap_flagged = cap;
	}
	p->flagged[p->n_flagged].node = n;
	(void)mr_strlcpy(p->flagged[p->n_flagged].attr, attr ? attr : "",
	                 sizeof(p->flagged[0].attr));
	p->n_flagged++;
}

static bool
is_flagged(const struct pctx *p, const xmlNode *n, const char *attr)
{
	for (size_t i = 0; i < p->n_flagged; i++)
		if (p->flagged[i].node == n && strcmp(p->flagged[i].attr, attr ? attr : "") == 0)
			return true;
	return false;
}

/* What the XSD's patterns mean, for messages. */
static const struct {
	const char *pattern;
	const char *meaning;
} pattern_meanings[] = {
	{ "[0-9]{1,10}(ms|s|m|h)?",
	  "a duration: an integer with unit ms, s, m or h (e.g. \"500ms\", \"30s\")" },
	{ "[0-9]{1,19}[KMGkmg]?", "a size: bytes with an optional suffix K, M or G" },
	{ "[A-Za-z0-9._\\-]{1,63}", "a name: 1..63 characters of [A-Za-z0-9._-]" },
	{ "[A-Za-z_][A-Za-z0-9_]{0,62}",
	  "a variable name: [A-Za-z_][A-Za-z0-9_]*, 1..63 characters" },
};

/* Rewrite libxml2's "Element 'x', attribute 'y': text" as "<x> @y: text", and
 * pattern failures as what the value should have been. */
static void
schema_msg(const char *msg, char *out, size_t len, char *attr_out, size_t attr_len)
{
	static const char pat_val[] = "[facet 'pattern'] The value '";
	static const char pat_mid[] = "' is not accepted by the pattern '";
	char elem[64] = "", attr[64] = "";
	const char *rest = msg, *q;
	int n = 0;

	if (sscanf(msg, "Element '%63[^']', attribute '%63[^']': %n", elem, attr, &n) == 2 &&
	    n > 0) {
		rest = msg + n;
	} else {
		attr[0] = '\0';
		n = 0;
		if (sscanf(msg, "Element '%63[^']': %n", elem, &n) == 1 && n > 0)
			rest = msg + n;
		else
			elem[0] = '\0';
	}

	(void)mr_strlcpy(attr_out, attr, attr_len);
	if (attr[0] == '\0' &&
	    sscanf(rest, "The attribute '%63[^']' is required but missing", attr) == 1)
		(void)mr_strlcpy(attr_out, attr, attr_len);
	if (strncmp(rest, "[facet '", 8) == 0 && strncmp(rest, pat_val, sizeof(pat_val) - 1) != 0 &&
	    (q = strstr(rest, "] ")) != NULL)
		rest = q + 2; /* the facet's name adds nothing for the reader */
	if (strncmp(rest, pat_val, sizeof(pat_val) - 1) == 0 &&
	    (q = strstr(rest, pat_mid)) != NULL) {
		const char *value = rest + sizeof(pat_val) - 1;
		const char *pattern = q + sizeof(pat_mid) - 1;
		size_t plen = strlen(pattern);
		const char *meaning = NULL;

		if (plen >= 2 && strcmp(pattern + plen - 2, "'.") == 0)
			plen -= 2;
		for (size_t i = 0; i < ARRAY_SIZE(pattern_meanings); i++)
			if (strlen(pattern_meanings[i].pattern) == plen &&
			    strncmp(pattern_meanings[i].pattern, pattern, plen) == 0)
				meaning = pattern_meanings[i].meaning;
		if (meaning != NULL) {
			(void)snprintf(out, len, "<%s>%s%s: \"%.*s\" is not valid; expected %s",
			               elem, attr[0] ? " @" : "", attr, (int)(q - value), value,
			               meaning);
			return;
		}
	}
	if (elem[0])
		(void)snprintf(out, len, "<%s>%s%s: %s", elem, attr[0] ? " @" : "", attr, rest);
	else
		(void)snprintf(out, len, "%s", rest);
}

/* Record one libxml2 error (parser, schema parser or schema validator). */
static void
record_xml_error(struct pctx *p, XMLERR *e)
{
	const xmlNode *node = e->node;
	char msg[512];
	size_t len;
	int line = e->line;

	if (e->level < XML_ERR_ERROR)
		return; /* warnings do not make a configuration invalid */
	(void)mr_strlcpy(msg, e->message ? e->message : "unknown error", sizeof(msg));
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
	if (node != NULL && node->type == XML_ATTRIBUTE_NODE)
		node = node->parent;
	if (line <= 0 && node != NULL)
		line = (int)xmlGetLineNo(node);

	switch (e->domain) {
	case XML_FROM_SCHEMASV: {
		char nice[768], attr[64];

		schema_msg(msg, nice, sizeof(nice), attr, sizeof(attr));
		flag_node(p, node, attr);
		conf_errs_add(p->errs, p->file, line, "%s", nice);
		break;
	}
	case XML_FROM_SCHEMASP:
		conf_errs_add(p->errs, p->file, 0, "internal error: embedded userconfig.xsd: %s",
		              msg);
		break;
	default:
		conf_errs_add(p->errs, p->file, line, "not well-formed XML: %s", msg);
		break;
	}
}

/* Parser errors: libxml2 passes the parser context (ctxt->userData). */
static void
parser_serror(void *data, XMLERR *e)
{
	xmlParserCtxtPtr ctxt = data;

	record_xml_error(ctxt->_private, e);
}

/* Schema and fallback errors: libxml2 passes our pctx. */
static void
pctx_serror(void *data, XMLERR *e)
{
	record_xml_error(data, e);
}

static void
silent_generic_error(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static int
sax_line(void *ctx)
{
	xmlParserCtxtPtr ctxt = ctx;

	return ctxt->input ? ctxt->input->line : 0;
}

/* <!DOCTYPE safe> alone is fine (SafeKit examples write it); a public or system
 * identifier would name an external DTD: refused. */
static void
sax_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id, const xmlChar *sys_id)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct pctx *p = ctxt->_private;

	if (ext_id != NULL || sys_id != NULL)
		conf_errs_add(
		        p->errs, p->file, sax_line(ctx),
		        "<!DOCTYPE %s>: external DTD \"%s\" is not allowed; write <!DOCTYPE %s> "
		        "or no DOCTYPE at all",
		        (const char *)name, sys_id ? (const char *)sys_id : (const char *)ext_id,
		        (const char *)name);
	xmlSAX2InternalSubset(ctx, name, NULL, NULL);
}

static void
refuse_decl(void *ctx, const char *what, const xmlChar *name)
{
	xmlParserCtxtPtr ctxt = ctx;
	struct pctx *p = ctxt->_private;

	conf_errs_add(p->errs, p->file, sax_line(ctx),
	              "<!%s %s>: DTD declarations are not allowed in userconfig.xml "
	              "(entities are never expanded or loaded)",
	              what, name ? (const char *)name : "");
}

static void
sax_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                const xmlChar *system_id, xmlChar *content)
{
	(void)type;
	(void)public_id;
	(void)system_id;
	(void)content;
	refuse_decl(ctx, "ENTITY", name); /* not registered: references stay undefined */
}

static void
sax_unparsed_entity_decl(void *ctx, const xmlChar *name, const xmlChar *public_id,
                         const xmlChar *system_id, const xmlChar *notation)
{
	(void)public_id;
	(void)system_id;
	(void)notation;
	refuse_decl(ctx, "ENTITY", name);
}

static void
sax_notation_decl(void *ctx, const xmlChar *name, const xmlChar *public_id,
                  const xmlChar *system_id)
{
	(void)public_id;
	(void)system_id;
	refuse_decl(ctx, "NOTATION", name);
}

static void
sax_attribute_decl(void *ctx, const xmlChar *elem, const xmlChar *fullname, int type, int def,
                   const xmlChar *default_value, xmlEnumerationPtr tree)
{
	(void)fullname;
	(void)type;
	(void)def;
	(void)default_value;
	if (tree != NULL)
		xmlFreeEnumeration(tree); /* the callback owns it */
	refuse_decl(ctx, "ATTLIST", elem);
}

static void
sax_element_decl(void *ctx, const xmlChar *name, int type, xmlElementContentPtr content)
{
	(void)type;
	(void)content;
	refuse_decl(ctx, "ELEMENT", name);
}

/* ---- tree helpers ----------------------------------------------------------- */

static bool
is_elem(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *
first_child(const xmlNode *n, const char *name)
{
	for (const xmlNode *x = n->children; x; x = x->next)
		if (is_elem(x, name))
			return x;
	return NULL;
}

static size_t
count_children(const xmlNode *n, const char *name)
{
	size_t k = 0;

	for (const xmlNode *x = n->children; x; x = x->next)
		if (is_elem(x, name))
			k++;
	return k;
}

static int
line_of(const xmlNode *n)
{
	return n ? (int)xmlGetLineNo(n) : 0;
}

/* Value of an attribute without namespace, or NULL. normalise_attrs() made
 * every attribute a single text node. Borrowed from the document. */
static const char *
attr_get(const xmlNode *n, const char *name)
{
	for (const xmlAttr *a = n->properties; a; a = a->next) {
		if (a->ns != NULL || strcmp((const char *)a->name, name) != 0)
			continue;
		if (a->children == NULL || a->children->content == NULL)
			return "";
		return (const char *)a->children->content;
	}
	return NULL;
}

static void err_at(struct pctx *p, const xmlNode *n, const char *attr, const char *fmt, ...)
        MR_PRINTF(4, 5);

static void
err_at(struct pctx *p, const xmlNode *n, const char *attr, const char *fmt, ...)
{
	char *body = NULL;
	va_list ap;
	int r;

	if (is_flagged(p, n, attr))
		return;
	va_start(ap, fmt);
	r = vasprintf(&body, fmt, ap);
	va_end(ap);
	MR_BUG_ON(r == -1);
	conf_errs_add(p->errs, p->file, line_of(n), "<%s>%s%s: %s", (const char *)n->name,
	              attr ? " @" : "", attr ? attr : "", body);
	free(body);
}

/* Text of a duration for messages: the largest unit that is exact. */
static const char *
dur_str(uint32_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % MS_H == 0)
		(void)snprintf(buf, len, "%uh", ms / MS_H);
	else if (ms != 0 && ms % MS_M == 0)
		(void)snprintf(buf, len, "%um", ms / MS_M);
	else if (ms != 0 && ms % MS_S == 0)
		(void)snprintf(buf, len, "%us", ms / MS_S);
	else
		(void)snprintf(buf, len, "%ums", ms);
	return buf;
}

static const char *
size_str(uint64_t b, char *buf, size_t len)
{
	if (b != 0 && b % GIB == 0)
		(void)snprintf(buf, len, "%lluG", (unsigned long long)(b / GIB));
	else if (b != 0 && b % MIB == 0)
		(void)snprintf(buf, len, "%lluM", (unsigned long long)(b / MIB));
	else if (b != 0 && b % KIB == 0)
		(void)snprintf(buf, len, "%lluK", (unsigned long long)(b / KIB));
	else
		(void)snprintf(buf, len, "%llu", (unsigned long long)b);
	return buf;
}

/* ---- typed attribute getters: default when absent, error + false when bad ---- */

static bool
get_dur(struct pctx *p, const xmlNode *n, const char *attr, uint32_t def, uint32_t min,
        uint32_t max, uint32_t *out)
{
	const char *v = attr_get(n, attr);
	char a[32], b[32];
	uint32_t ms;
	int r;

	*out = def;
	if (v == NULL)
		return true;
	r = conf_parse_duration_ms(v, &ms);
	if (r < 0) {
		err_at(p, n, attr,
		       "\"%s\" is not a duration; expected an integer with unit ms, s, m or h "
		       "(e.g. \"500ms\", \"30s\")",
		       v);
		return false;
	}
	if (ms < min || ms > max) {
		err_at(p, n, attr, "%s is out of range; expected %s .. %s", v,
		       dur_str(min, a, sizeof(a)), dur_str(max, b, sizeof(b)));
		return false;
	}
	*out = ms;
	return true;
}

static bool
get_int(struct pctx *p, const xmlNode *n, const char *attr, int64_t def, int64_t min, int64_t max,
        int64_t *out)
{
	const char *v = attr_get(n, attr);
	char *end = NULL;
	long long x;

	*out = def;
	if (v == NULL)
		return true;
	errno = 0;
	x = strtoll(v, &end, 10);
	if (*v == '\0' || *end != '\0' || errno != 0 || (*v != '-' && (*v < '0' || *v > '9'))) {
		err_at(p, n, attr, "\"%s\" is not an integer", v);
		return false;
	}
	if (x < min || x > max) {
		err_at(p, n, attr, "%s is out of range; expected %lld .. %lld", v, (long long)min,
		       (long long)max);
		return false;
	}
	*out = x;
	return true;
}

static bool
get_u32(struct pctx *p, const xmlNode *n, const char *attr, uint32_t def, uint32_t min,
        uint32_t max, uint32_t *out)
{
	int64_t v;
	bool ok = get_int(p, n, attr, def, min, max, &v);

	*out = ok ? (uint32_t)v : def;
	return ok;
}

static bool
get_port(struct pctx *p, const xmlNode *n, const char *attr, uint16_t def, uint16_t *out)
{
	int64_t v;
	bool ok = get_int(p, n, attr, def, 1, 65535, &v);

	*out = ok ? (uint16_t)v : def;
	return ok;
}

static bool
get_bool(struct pctx *p, const xmlNode *n, const char *attr, bool def, bool *out)
{
	const char *v = attr_get(n, attr);

	*out = def;
	if (v == NULL)
		return true;
	if (conf_parse_bool(v, out) < 0) {
		*out = def;
		err_at(p, n, attr, "\"%s\" is not a boolean; expected \"on\" or \"off\"", v);
		return false;
	}
	return true;
}

static bool
get_size(struct pctx *p, const xmlNode *n, const char *attr, uint64_t def, uint64_t min,
         uint64_t max, uint64_t *out)
{
	const char *v = attr_get(n, attr);
	char a[32], b[32];
	uint64_t x;

	*out = def;
	if (v == NULL)
		return true;
	if (conf_parse_size_bytes(v, &x) < 0) {
		err_at(p, n, attr,
		       "\"%s\" is not a size; expected bytes with an optional suffix K, M or G", v);
		return false;
	}
	if (x < min || x > max) {
		err_at(p, n, attr, "%s is out of range; expected %s .. %s", v,
		       size_str(min, a, sizeof(a)), size_str(max, b, sizeof(b)));
		return false;
	}
	*out = x;
	return true;
}

/* Index of v in words[], def when absent, -1 (reported) when unknown. */
static int
get_enum(struct pctx *p, const xmlNode *n, const char *attr, const char *const *words,
         size_t n_words, int def)
{
	const char *v = attr_get(n, attr);
	char list[256] = "";

	if (v == NULL)
		return def;
	for (size_t i = 0; i < n_words; i++)
		if (strcmp(v, words[i]) == 0)
			return (int)i;
	for (size_t i = 0; i < n_words; i++) {
		(void)strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
		(void)strncat(list, words[i], sizeof(list) - strlen(list) - 1);
	}
	err_at(p, n, attr, "\"%s\" is not valid; expected one of: %s", v, list);
	return -1;
}

static bool
valid_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len >= CONF_NAME_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			return false;
	return true;
}

/* A name/ident attribute: [A-Za-z0-9._-]{1,63}. Missing and required -> error. */
static bool
get_name(struct pctx *p, const xmlNode *n, const char *attr, const char *def, char *buf, size_t len)
{
	const char *v = attr_get(n, attr);

	if (v == NULL) {
		(void)mr_strlcpy(buf, def ? def : "", len);
		if (def == NULL) {
			err_at(p, n, attr, "missing (mandatory)");
			return false;
		}
		return true;
	}
	if (!valid_name(v) || strlen(v) >= len) {
		err_at(p, n, attr,
		       "\"%s\" is not a valid name; expected 1..%zu characters of "
		       "[A-Za-z0-9._-]",
		       v, len - 1);
		(void)mr_strlcpy(buf, "", len);
		return false;
	}
	(void)mr_strlcpy(buf, v, len);
	return true;
}

/* A numeric address attribute; str receives the text as written. Returns the
 * family, or 0 when absent and optional, or -EINVAL (reported). */
static int
get_ip(struct pctx *p, const xmlNode *n, const char *attr, bool required, char *str,
       struct sockaddr_storage *ss)
{
	const char *v = attr_get(n, attr);
	int fam;

	if (str)
		str[0] = '\0';
	if (v == NULL) {
		if (!required)
			return 0;
		err_at(p, n, attr, "missing (mandatory)");
		return -EINVAL;
	}
	fam = conf_parse_ip(v, ss);
	if (fam < 0 || strlen(v) >= CONF_ADDR_MAX) {
		err_at(p, n, attr,
		       "\"%s\" is not a numeric IPv4 or IPv6 address (host names are not "
		       "accepted)",
		       v);
		return -EINVAL;
	}
	if (str)
		(void)mr_strlcpy(str, v, CONF_ADDR_MAX);
	return fam;
}

static const char *
addr_ntop(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *src = ss->ss_family == AF_INET6
	                          ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
	                          : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6) {
		(void)mr_strlcpy(buf, "-", len);
		return buf;
	}
	if (inet_ntop(ss->ss_family, src, buf, (socklen_t)len) == NULL)
		(void)mr_strlcpy(buf, "?", len);
	return buf;
}

static bool
regex_ok(struct pctx *p, const xmlNode *n, const char *attr, const char *re, bool allow_bang)
{
	char why[128];
	regex_t rx;
	int r;

	if (allow_bang && re[0] == '!')
		re++;
	r = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
	if (r != 0) {
		(void)regerror(r, &rx, why, sizeof(why));
		err_at(p, n, attr, "\"%s\" is not a valid POSIX extended regular expression: %s",
		       re, why);
		return false;
	}
	regfree(&rx);
	return true;
}

/* ---- macros ------------------------------------------------------------------ */

struct macro {
	const char *name; /* borrowed from the document */
	const char *value;
	int line;
};

static char *
expand_macros(const char *v, const struct macro *m, size_t n_m)
{
	size_t cap = strlen(v) + 1, len = 0;
	char *out = mr_xcalloc(cap, 1);
	const char *s = v;

	while (*s) {
		const char *end = s[0] == '%' ? strchr(s + 1, '%') : NULL;
		const char *add = s;
		size_t add_len = 1, skip = 1;

		if (end != NULL) {
			for (size_t i = 0; i < n_m; i++) {
				if (strlen(m[i].name) == (size_t)(end - s - 1) &&
				    strncmp(m[i].name, s + 1, (size_t)(end - s - 1)) == 0) {
					add = m[i].value;
					add_len = strlen(add);
					skip = (size_t)(end - s) + 1;
					break;
				}
			}
		}
		if (len + add_len + 1 > cap) {
			char *bigger;

			cap = (len + add_len + 1) * 2;
			bigger = mr_xcalloc(cap, 1);
			memcpy(bigger, out, len);
			free(out);
			out = bigger;
		}
		memcpy(out + len, add, add_len);
		len += add_len;
		s += skip;
	}
	out[len] = '\0';
	return out;
}

/* Make every attribute a single text node, so that attr_get() can borrow its
 * value: entity and character references were already decoded by the parser. */
static void
normalise_attrs(xmlDoc *doc, xmlNode *n)
{
	for (; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE)
			continue;
		for (xmlAttr *a = n->properties; a; a = a->next) {
			xmlChar *v;

			if (a->children == NULL ||
			    (a->children->type == XML_TEXT_NODE && a->children->next == NULL))
				continue;
			v = xmlNodeListGetString(doc, a->children, 1);
			MR_BUG_ON(xmlSetNsProp(n, a->ns, a->name, v ? v : BAD_CAST "") == NULL);
			xmlFree(v);
		}
		normalise_attrs(doc, n->children);
	}
}

/* Replace %NAME% by the macro's value in every attribute, except in the <macro>
 * elements themselves (whose values m[] borrows). One pass, no recursion. */
static void
expand_attrs(xmlNode *n, const struct macro *m, size_t n_m)
{
	for (; n; n = n->next) {
		if (n->type != XML_ELEMENT_NODE || is_elem(n, "macro"))
			continue;
		for (xmlAttr *a = n->properties; a; a = a->next) {
			const char *v = a->children ? (const char *)a->children->content : NULL;
			char *e;

			if (v == NULL || strchr(v, '%') == NULL)
				continue;
			e = expand_macros(v, m, n_m);
			MR_BUG_ON(xmlSetNsProp(n, a->ns, a->name, BAD_CAST e) == NULL);
			free(e);
		}
		expand_attrs(n->children, m, n_m);
	}
}

static void
apply_macros(struct pctx *p, xmlDoc *doc)
{
	xmlNode *root = xmlDocGetRootElement(doc);
	struct macro *m;
	size_t n_m = 0;

	if (root == NULL)
		return;
	normalise_attrs(doc, root);
	m = mr_xcalloc(count_children(root, "macro"), sizeof(*m));
	for (const xmlNode *x = root->children; x; x = x->next) {
		const char *name, *value;
		bool dup = false;

		if (!is_elem(x, "macro"))
			continue;
		name = attr_get(x, "name");
		value = attr_get(x, "value");
		if (name == NULL || value == NULL)
			continue; /* the schema reports it */
		for (size_t i = 0; i < n_m && !dup; i++) {
			if (strcmp(m[i].name, name) == 0) {
				err_at(p, x, "name",
				       "macro \"%s\" is already defined at line %d; define each "
				       "macro once",
				       name, m[i].line);
				dup = true;
			}
		}
		if (dup)
			continue;
		m[n_m].name = name;
		m[n_m].value = value;
		m[n_m].line = line_of(x);
		n_m++;
	}
	if (n_m > 0)
		expand_attrs(root, m, n_m);
	free(m);
}

/* ---- <service> ---------------------------------------------------------------- */

static void
fill_service(struct pctx *p, const xmlNode *n)
{
	static const char *const boots[] = { "ignore", "on", "off", "auto" };
	struct conf_service *s = &p->c->service;
	const char *mode = attr_get(n, "mode");
	const char *dp = attr_get(n, "defaultprim");
	int64_t maxloop;
	int v;

	if (mode == NULL)
		err_at(p, n, "mode", "missing; expected mode=\"mirror\"");
	else if (strcmp(mode, "mirror") != 0)
		err_at(p, n, "mode",
		       "\"%s\" is not supported; hamirror implements mode=\"mirror\" only", mode);
	v = get_enum(p, n, "boot", boots, ARRAY_SIZE(boots), CONF_BOOT_IGNORE);
	s->boot = v < 0 ? CONF_BOOT_IGNORE : (enum conf_boot)v;
	(void)get_bool(p, n, "failover", true, &s->failover);
	(void)get_int(p, n, "maxloop", 3, 0, 1000, &maxloop);
	s->maxloop = (uint32_t)maxloop;
	(void)get_dur(p, n, "loop_interval", 24 * MS_H, 0, 7 * 24 * MS_H, &s->loop_interval_ms);
	(void)get_dur(p, n, "boot_delay", 0, 0, MS_H, &s->boot_delay_ms);

	s->defaultprim = CONF_DEFAULTPRIM_ALONE;
	if (dp == NULL || strcmp(dp, "alone") == 0)
		return;
	if (strcmp(dp, "lastprim") == 0) {
		s->defaultprim = CONF_DEFAULTPRIM_LASTPRIM;
		return;
	}
	s->defaultprim = CONF_DEFAULTPRIM_SERVER;
	(void)get_name(p, n, "defaultprim", NULL, s->defaultprim_server,
	               sizeof(s->defaultprim_server));
	/* checked against the node names once <heart> is read */
}

/* ---- <heart> ------------------------------------------------------------------ */

/* Parse one <server>; false when unusable (reported). */
static bool
fill_server(struct pctx *p, const xmlNode *n, struct conf_server *srv)
{
	bool ok = get_name(p, n, "name", NULL, srv->name, sizeof(srv->name));

	if (get_ip(p, n, "addr", true, srv->addr_str, &srv->addr) < 0)
		ok = false;
	srv->line = line_of(n);
	return ok;
}

static void
fill_heartbeat(struct pctx *p, const xmlNode *n, struct conf_heartbeat *hb, size_t idx)
{
	struct cluster_conf *c = p->c;
	struct conf_server srv[CONF_NODES];
	const xmlNode *sn[CONF_NODES] = { NULL, NULL };
	size_t n_srv = count_children(n, "server"), k = 0;
	bool ok = true;
	char a[32], b[32];

	(void)get_name(p, n, "name", NULL, hb->name, sizeof(hb->name));
	(void)get_name(p, n, "ident", hb->name, hb->ident, sizeof(hb->ident));
	if (get_dur(p, n, "pulse", c->heart.pulse_ms, 50, 10 * MS_S, &hb->pulse_ms) &&
	    get_dur(p, n, "timeout", c->heart.timeout_ms, 250, 10 * MS_M, &hb->timeout_ms) &&
	    (attr_get(n, "pulse") || attr_get(n, "timeout")) &&
	    (uint64_t)hb->timeout_ms < 3 * (uint64_t)hb->pulse_ms)
		err_at(p, n, attr_get(n, "timeout") ? "timeout" : "pulse",
		       "timeout %s is less than 3 x pulse %s; a peer would be declared dead "
		       "after fewer than 3 missed heartbeats",
		       dur_str(hb->timeout_ms, a, sizeof(a)), dur_str(hb->pulse_ms, b, sizeof(b)));

	if (n_srv != CONF_NODES) {
		err_at(p, n, NULL,
		       "has %zu <server> element%s; expected exactly 2, one per node "
		       "(a mirror module has two nodes)",
		       n_srv, n_srv == 1 ? "" : "s");
		ok = false;
	}
	memset(srv, 0, sizeof(srv));
	for (const xmlNode *x = n->children; x; x = x->next) {
		struct conf_server tmp = { 0 };

		if (!is_elem(x, "server"))
			continue;
		if (!fill_server(p, x, k < CONF_NODES ? &srv[k] : &tmp))
			ok = false;
		if (k < CONF_NODES)
			sn[k] = x;
		k++;
	}
	if (!ok)
		return;

	if (strcmp(srv[0].name, srv[1].name) == 0) {
		err_at(p, sn[1], "name",
		       "node \"%s\" is already named at line %d; the two <server> of a heartbeat "
		       "must name two different nodes",
		       srv[1].name, srv[0].line);
		return;
	}
	if (conf_ip_equal(&srv[0].addr, &srv[1].addr)) {
		err_at(p, sn[1], "addr",
		       "%s is also the address of node \"%s\" (line %d); each node needs its own "
		       "address",
		       srv[1].addr_str, srv[0].name, srv[0].line);
		return;
	}
	if (srv[0].addr.ss_family != srv[1].addr.ss_family) {
		err_at(p, sn[1], "addr",
		       "%s and %s (line %d) are of different address families; both ends of a "
		       "heartbeat must be IPv4 or both IPv6",
		       srv[1].addr_str, srv[0].addr_str, srv[0].line);
		return;
	}

	if (idx == 0) {
		for (size_t i = 0; i < CONF_NODES; i++) {
			(void)mr_strlcpy(c->nodes[i], srv[i].name, CONF_NAME_MAX);
			hb->servers[i] = srv[i];
		}
		return;
	}
	if (c->nodes[0][0] == '\0')
		return; /* the first heartbeat was unusable (reported) */
	for (size_t i = 0; i < CONF_NODES; i++) {
		int j = conf_cluster_node_index(c, srv[i].name);

		if (j < 0) {
			err_at(p, sn[i], "name",
			       "node \"%s\" is not one of the two nodes \"%s\" and \"%s\" named by the "
			       "first heartbeat (line %d); every heartbeat must list the same two "
			       "nodes",
			       srv[i].name, c->nodes[0], c->nodes[1], p->first_hb_line);
			continue;
		}
		hb->servers[j] = srv[i];
	}
}

static void
fill_heart(struct pctx *p, const xmlNode *n)
{
	struct conf_heart *h = &p->c->heart;
	size_t n_hbs = count_children(n, "heartbeat"), i = 0;
	char a[32], b[32];

	(void)get_port(p, n, "port", CONF_DEFAULT_HEART_PORT, &h->port);
	if (get_dur(p, n, "pulse", 200, 50, 10 * MS_S, &h->pulse_ms) &&
	    get_dur(p, n, "timeout", 1500, 250, 10 * MS_M, &h->timeout_ms) &&
	    (uint64_t)h->timeout_ms < 3 * (uint64_t)h->pulse_ms)
		err_at(p, n, attr_get(n, "timeout") ? "timeout" : "pulse",
		       "timeout %s is less than 3 x pulse %s; a peer would be declared dead "
		       "after fewer than 3 missed heartbeats",
		       dur_str(h->timeout_ms, a, sizeof(a)), dur_str(h->pulse_ms, b, sizeof(b)));

	h->hbs = mr_xcalloc(n_hbs, sizeof(*h->hbs));
	for (const xmlNode *x = n->children; x; x = x->next) {
		if (!is_elem(x, "heartbeat"))
			continue;
		if (i == 0)
			p->first_hb_line = line_of(x);
		fill_heartbeat(p, x, &h->hbs[i], i);
		i++;
	}
	h->n_hbs = i;
	if (i == 0)
		err_at(p, n, NULL, "has no <heartbeat>; expected at least one");

	/* Unique names and idents (resources are named heartbeat.<ident>). */
	i = 0;
	for (const xmlNode *x = n->children; x; x = x->next) {
		const xmlNode *y;
		size_t j = 0;

		if (!is_elem(x, "heartbeat"))
			continue;
		for (y = n->children; y != x; y = y->next) {
			if (!is_elem(y, "heartbeat"))
				continue;
			if (h->hbs[i].name[0] && strcmp(h->hbs[i].name, h->hbs[j].name) == 0)
				err_at(p, x, "name",
				       "heartbeat name \"%s\" is already used at line %d; each "
				       "heartbeat is on its own network",
				       h->hbs[i].name, line_of(y));
			else if (h->hbs[i].ident[0] &&
			         strcmp(h->hbs[i].ident, h->hbs[j].ident) == 0)
				err_at(p, x, "ident",
				       "heartbeat ident \"%s\" is already used at line %d; idents "
				       "must be unique",
				       h->hbs[i].ident, line_of(y));
			j++;
		}
		i++;
	}
}

/* ---- <vip> ---------------------------------------------------------------------- */

static int
netmask_prefixlen(const struct sockaddr_storage *ss)
{
	uint32_t m = ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr);
	uint32_t inv = ~m;

	if (m == 0 || (inv & (inv + 1)) != 0)
		return -EINVAL; /* zero or not contiguous */
	return __builtin_popcount(m);
}

static void
fill_vaddr(struct pctx *p, const xmlNode *n, struct conf_vip_addr *va)
{
	static const char *const wheres[] = { "one_side_alias", "one_side" };
	const char *nm = attr_get(n, "netmask");
	int fam, w;

	fam = get_ip(p, n, "addr", true, va->addr_str, &va->addr);
	(void)get_bool(p, n, "check", true, &va->check);
	w = get_enum(p, n, "where", wheres, ARRAY_SIZE(wheres), 0);
	(void)mr_strlcpy(va->where, wheres[w < 0 ? 0 : w], sizeof(va->where));
	va->prefixlen = fam == AF_INET6 ? 128 : 32;
	if (fam <= 0)
		return;
	if (nm != NULL && attr_get(n, "prefixlen") != NULL) {
		err_at(p, n, "netmask", "give either netmask or prefixlen, not both");
		return;
	}
	if (nm != NULL) {
		struct sockaddr_storage m;
		int len;

		if (fam != AF_INET) {
			err_at(p, n, "netmask", "applies to IPv4 only; use prefixlen for %s",
			       va->addr_str);
			return;
		}
		if (conf_parse_ip(nm, &m) != AF_INET || (len = netmask_prefixlen(&m)) < 0) {
			err_at(p, n, "netmask",
			       "\"%s\" is not a valid IPv4 netmask; expected contiguous ones, "
			       "e.g. 255.255.255.0",
			       nm);
			return;
		}
		va->prefixlen = (uint8_t)len;
	} else {
		int64_t pl;

		if (get_int(p, n, "prefixlen", va->prefixlen, 1, fam == AF_INET6 ? 128 : 32, &pl))
			va->prefixlen = (uint8_t)pl;
	}
}

static void
fill_vip(struct pctx *p, const xmlNode *n)
{
	struct conf_vip *v = &p->c->vip;
	const xmlNode *list = first_child(n, "interface_list");
	size_t i = 0;

	v->present = true;
	(void)get_bool(p, n, "tcpreset", true, &v->tcpreset);
	if (list == NULL)
		return; /* schema */
	v->intfs = mr_xcalloc(count_children(list, "interface"), sizeof(*v->intfs));
	for (const xmlNode *x = list->children; x; x = x->next) {
		struct conf_vip_intf *it;
		const xmlNode *real;
		const char *name;
		size_t k = 0;

		if (!is_elem(x, "interface"))
			continue;
		it = &v->intfs[i++];
		name = attr_get(x, "name");
		if (name != NULL &&
		    (name[0] == '\0' || mr_strlcpy(it->name, name, sizeof(it->name)) < 0))
			err_at(p, x, "name", "\"%s\" is not an interface name (1..15 characters)",
			       name);
		(void)get_bool(p, x, "check", true, &it->check);
		(void)get_bool(p, x, "arpreroute", false, &it->arpreroute);
		(void)get_dur(p, x, "arpinterval", 60 * MS_S, MS_S, MS_H, &it->arpinterval_ms);
		(void)get_dur(p, x, "arpelapse", 1200 * MS_S, 0, 24 * MS_H, &it->arpelapse_ms);
		real = first_child(x, "real_interface");
		if (real == NULL)
			continue;
		it->addrs = mr_xcalloc(count_children(real, "virtual_addr"), sizeof(*it->addrs));
		for (const xmlNode *y = real->children; y; y = y->next)
			if (is_elem(y, "virtual_addr"))
				fill_vaddr(p, y, &it->addrs[k++]);
		it->n_addrs = k;
	}
	v->n_intfs = i;
}

/* A VIP must not be a node address, nor be listed twice. */
static void
check_vip_addrs(struct pctx *p, const xmlNode *vip)
{
	const struct cluster_conf *c = p->c;
	const xmlNode *list = first_child(vip, "interface_list");
	size_t i = 0;
	struct seen {
		const struct sockaddr_storage *a;
		int line;
	} * seen;
	size_t n_seen = 0, total = 0;

	if (list == NULL)
		return;
	for (size_t k = 0; k < c->vip.n_intfs; k++)
		total += c->vip.intfs[k].n_addrs;
	seen = mr_xcalloc(total, sizeof(*seen));
	for (const xmlNode *x = list->children; x; x = x->next) {
		const xmlNode *real;
		size_t k = 0;

		if (!is_elem(x, "interface"))
			continue;
		real = first_child(x, "real_interface");
		for (const xmlNode *y = real ? real->children : NULL; y; y = y->next) {
			const struct conf_vip_addr *va;
			bool bad = false;

			if (!is_elem(y, "virtual_addr"))
				continue;
			va = &c->vip.intfs[i].addrs[k++];
			if (va->addr_str[0] == '\0')
				continue;
			for (size_t h = 0; h < c->heart.n_hbs && !bad; h++) {
				for (size_t s = 0; s < CONF_NODES && !bad; s++) {
					const struct conf_server *srv = &c->heart.hbs[h].servers[s];

					if (srv->name[0] && conf_ip_equal(&va->addr, &srv->addr)) {
						err_at(p, y, "addr",
						       "VIP %s is also the address of node \"%s\" "
						       "(<server> line %d); a VIP must be an address "
						       "of its own",
						       va->addr_str, srv->name, srv->line);
						bad = true;
					}
				}
			}
			for (size_t s = 0; s < n_seen && !bad; s++) {
				if (conf_ip_equal(&va->addr, seen[s].a)) {
					err_at(p, y, "addr", "VIP %s is already listed at line %d",
					       va->addr_str, seen[s].line);
					bad = true;
				}
			}
			seen[n_seen].a = &va->addr;
			seen[n_seen].line = line_of(y);
			n_seen++;
		}
		i++;
	}
	free(seen);
}

/* ---- <rfs> ------------------------------------------------------------------------ */

/* Absolute, normalised, existing directory. */
static bool
check_dir(struct pctx *p, const xmlNode *n, const char *dir)
{
	struct stat st;
	size_t len = strlen(dir);

	if (dir[0] != '/') {
		err_at(p, n, "dir", "\"%s\" is not an absolute path; expected e.g. \"/srv/data\"",
		       dir);
		return false;
	}
	if (strcmp(dir, "/") == 0) {
		err_at(p, n, "dir", "the root directory \"/\" cannot be replicated");
		return false;
	}
	if (len >= PATH_MAX) {
		err_at(p, n, "dir", "path is too long (at most %d bytes)", PATH_MAX - 1);
		return false;
	}
	for (const char *c = dir; *c; c++) {
		if (c[0] == '/' &&
		    (c[1] == '/' || c[1] == '\0' ||
		     (c[1] == '.' && (c[2] == '/' || c[2] == '\0')) ||
		     (c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0')))) {
			err_at(p, n, "dir",
			       "\"%s\" is not normalised; expected an absolute path without \"//\", "
			       "\".\" or \"..\" components and without a trailing \"/\"",
			       dir);
			return false;
		}
	}
	if (stat(dir, &st) == -1) {
		int e = errno;

		/* The FUSE mount of a mirrord that was killed (SIGKILL, crash)
		 * answers ENOTCONN; mirrord clears it when it mounts again. */
		if (e == ENOTCONN || e == ECONNABORTED)
			return true;
		err_at(p, n, "dir", "%s %s", dir,
		       e == ENOENT ? "does not exist; create it on both nodes first" : strerror(e));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		err_at(p, n, "dir", "%s is not a directory", dir);
		return false;
	}
	return true;
}

/* notreplicated/@path and tocheck/@path: relative, no ".." component. */
static bool
check_relpath(struct pctx *p, const xmlNode *n, const char *path)
{
	if (path[0] == '\0' || path[0] == '/') {
		err_at(p, n, "path",
		       "\"%s\" is not a relative path; expected a path relative to the "
		       "replicated directory",
		       path);
		return false;
	}
	for (const char *c = path; *c; c++) {
		if ((c == path || c[-1] == '/') && c[0] == '.' && c[1] == '.' &&
		    (c[2] == '/' || c[2] == '\0')) {
			err_at(p, n, "path",
			       "\"%s\" contains a \"..\" component; paths must stay inside the "
			       "replicated directory",
			       path);
			return false;
		}
	}
	return true;
}

static void
fill_replicated(struct pctx *p, const xmlNode *n, struct conf_replicated *r)
{
	const char *dir = attr_get(n, "dir");
	const char *mode = attr_get(n, "mode");
	size_t k_nr = 0, k_tc = 0;

	if (dir == NULL) {
		err_at(p, n, "dir", "missing (mandatory)");
	} else if (check_dir(p, n, dir)) {
		r->dir = mr_xstrdup(dir);
	}
	if (mode != NULL && strcmp(mode, "read_only") != 0)
		err_at(p, n, "mode", "\"%s\" is not valid; expected \"read_only\"", mode);
	r->read_only = mode != NULL && strcmp(mode, "read_only") == 0;

	r->notrepl = mr_xcalloc(count_children(n, "notreplicated"), sizeof(*r->notrepl));
	r->tocheck = mr_xcalloc(count_children(n, "tocheck"), sizeof(*r->tocheck));
	for (const xmlNode *x = n->children; x; x = x->next) {
		if (is_elem(x, "notreplicated")) {
			const char *path = attr_get(x, "path");
			const char *re = attr_get(x, "regexpath");
			struct conf_notrepl *nr = &r->notrepl[k_nr];

			if ((path == NULL) == (re == NULL)) {
				err_at(p, x, NULL, "expected exactly one of @path and @regexpath");
				continue;
			}
			if (path != NULL && check_relpath(p, x, path))
				nr->path = mr_xstrdup(path);
			if (re != NULL && regex_ok(p, x, "regexpath", re, true))
				nr->regexpath = mr_xstrdup(re);
			if (nr->path || nr->regexpath)
				k_nr++;
		} else if (is_elem(x, "tocheck")) {
			const char *path = attr_get(x, "path");

			if (path == NULL)
				err_at(p, x, "path", "missing (mandatory)");
			else if (check_relpath(p, x, path))
				r->tocheck[k_tc++] = mr_xstrdup(path);
		}
	}
	r->n_notrepl = k_nr;
	r->n_tocheck = k_tc;
}

static void
fill_rfs(struct pctx *p, const xmlNode *n)
{
	static const char *const asyncs[] = { "second", "none", "async" };
	static const char *const sbs[] = { "disconnect", "discard-zero-changes",
		                           "discard-least-changes" };
	static const char *const zs[] = { "auto", "off", "on" };
	struct conf_rfs *r = &p->c->rfs;
	uint64_t bs;
	const xmlNode *xs[64];
	int64_t bw;
	size_t i = 0;
	int v;

	r->present = true;
	v = get_enum(p, n, "async", asyncs, ARRAY_SIZE(asyncs), CONF_ASYNC_SECOND);
	r->async = v < 0 ? CONF_ASYNC_SECOND : (enum conf_async)v;
	v = get_enum(p, n, "splitbrain_policy", sbs, ARRAY_SIZE(sbs), CONF_SB_DISCONNECT);
	r->sb_policy = v < 0 ? CONF_SB_DISCONNECT : (enum conf_sb_policy)v;
	(void)get_port(p, n, "port", CONF_DEFAULT_RFS_PORT, &r->port);
	(void)get_dur(p, n, "sendtimeout", 30 * MS_S, MS_S, MS_H, &r->sendtimeout_ms);
	(void)get_dur(p, n, "reitimeout", 150 * MS_S, MS_S, 24 * MS_H, &r->reitimeout_ms);
	(void)get_u32(p, n, "nbrei", 6, 1, 64, &r->nbrei);
	(void)get_int(p, n, "reiallowedbw", 0, 0, INT64_MAX, &bw);
	r->reiallowedbw_kbps = (uint64_t)bw;
	(void)get_size(p, n, "asynclag", 64 * MIB, 64 * KIB, 64 * GIB, &r->asynclag_bytes);
	(void)get_size(p, n, "maxinflight", 64 * MIB, 64 * KIB, 64 * GIB, &r->maxinflight_bytes);
	v = get_enum(p, n, "reicompress", zs, ARRAY_SIZE(zs), CONF_COMPRESS_AUTO);
	r->reicompress = v < 0 ? CONF_COMPRESS_AUTO : (enum conf_compress)v;
	if (get_size(p, n, "reiblocksize", 4 * KIB, 4 * KIB, MIB, &bs) && (bs & (bs - 1)) != 0)
		err_at(p, n, "reiblocksize", "must be a power of two (4K, 8K, ... 1M), not %llu",
		       (unsigned long long)bs);
	r->reiblocksize = (uint32_t)bs;

	r->repl = mr_xcalloc(count_children(n, "replicated"), sizeof(*r->repl));
	for (const xmlNode *x = n->children; x; x = x->next) {
		if (!is_elem(x, "replicated"))
			continue;
		if (i == ARRAY_SIZE(xs)) {
			err_at(p, x, NULL, "too many <replicated> (at most %zu)", ARRAY_SIZE(xs));
			break;
		}
		xs[i] = x;
		fill_replicated(p, x, &r->repl[i]);
		i++;
	}
	r->n_repl = i;

	/* Neither duplicated nor nested. */
	for (size_t j = 1; j < r->n_repl; j++) {
		for (size_t k = 0; k < j; k++) {
			const char *a = r->repl[k].dir, *b = r->repl[j].dir;
			size_t la, lb;

			if (a == NULL || b == NULL)
				continue;
			la = strlen(a);
			lb = strlen(b);
			if (strcmp(a, b) == 0)
				err_at(p, xs[j], "dir", "%s is already replicated (line %d)", b,
				       line_of(xs[k]));
			else if (la < lb && strncmp(a, b, la) == 0 && b[la] == '/')
				err_at(p, xs[j], "dir",
				       "%s is nested inside %s (line %d); replicated directories "
				       "must not overlap",
				       b, a, line_of(xs[k]));
			else if (lb < la && strncmp(a, b, lb) == 0 && a[lb] == '/')
				err_at(p, xs[j], "dir",
				       "%s contains %s (line %d); replicated directories must not "
				       "overlap",
				       b, a, line_of(xs[k]));
		}
	}
}

/* ---- <user>, <errd> ------------------------------------------------------------- */

static void
fill_user(struct pctx *p, const xmlNode *n)
{
	static const char *const logs[] = { "userlog", "none" };
	struct conf_user *u = &p->c->user;
	size_t k = 0;

	u->present = true;
	(void)get_dur(p, n, "nicestoptimeout", 300 * MS_S, MS_S, 24 * MS_H, &u->nicestoptimeout_ms);
	(void)get_dur(p, n, "forcestoptimeout", 300 * MS_S, MS_S, 24 * MS_H,
	              &u->forcestoptimeout_ms);
	(void)get_dur(p, n, "starttimeout", 300 * MS_S, MS_S, 24 * MS_H, &u->starttimeout_ms);
	u->logging = get_enum(p, n, "logging", logs, ARRAY_SIZE(logs), 0) != 1;
	u->vars = mr_xcalloc(count_children(n, "var"), sizeof(*u->vars));
	for (const xmlNode *x = n->children; x; x = x->next) {
		const char *name, *value;
		bool dup = false;

		if (!is_elem(x, "var"))
			continue;
		name = attr_get(x, "name");
		value = attr_get(x, "value");
		if (name == NULL || value == NULL) {
			err_at(p, x, name ? "value" : "name", "missing (mandatory)");
			continue;
		}
		for (size_t i = 0; i < k; i++)
			if (strcmp(u->vars[i].name, name) == 0)
				dup = true;
		if (dup) {
			err_at(p, x, "name", "variable \"%s\" is already defined", name);
			continue;
		}
		if (mr_strlcpy(u->vars[k].name, name, sizeof(u->vars[k].name)) < 0) {
			err_at(p, x, "name", "\"%s\" is too long", name);
			continue;
		}
		u->vars[k].value = mr_xstrdup(value);
		k++;
	}
	u->n_vars = k;
}

static void
fill_errd(struct pctx *p, const xmlNode *n)
{
	static const char *const classes[] = { "prim", "second", "both", "pre" };
	struct conf_errd *e = &p->c->errd;
	size_t k = 0;

	e->present = true;
	/* SafeKit polls every 30 s; a dead application is found within 2 s here */
	(void)get_dur(p, n, "polltimer", MS_S, 200, MS_H, &e->polltimer_ms);
	e->procs = mr_xcalloc(count_children(n, "proc"), sizeof(*e->procs));
	for (const xmlNode *x = n->children; x; x = x->next) {
		struct conf_proc *pr;
		const char *v;
		int64_t i64;
		int cls;

		if (!is_elem(x, "proc"))
			continue;
		pr = &e->procs[k++];
		(void)get_name(p, x, "name", NULL, pr->name, sizeof(pr->name));
		for (size_t i = 0; i + 1 < k; i++)
			if (pr->name[0] && strcmp(e->procs[i].name, pr->name) == 0)
				err_at(p, x, "name",
				       "process \"%s\" is already monitored; names must be unique",
				       pr->name);
		if ((v = attr_get(x, "nameregex")) != NULL && regex_ok(p, x, "nameregex", v, false))
			pr->nameregex = mr_xstrdup(v);
		if ((v = attr_get(x, "argregex")) != NULL && regex_ok(p, x, "argregex", v, false))
			pr->argregex = mr_xstrdup(v);
		(void)get_bool(p, x, "service", false, &pr->service);
		(void)get_int(p, x, "atleast", 1, -1, 1000, &i64);
		pr->atleast = (int32_t)i64;
		(void)get_int(p, x, "atmax", -1, -1, 1000, &i64);
		pr->atmax = (int32_t)i64;
		(void)get_u32(p, x, "start_after", 0, 0, 1000, &pr->start_after);
		cls = get_enum(p, x, "class", classes, ARRAY_SIZE(classes), 0);
		(void)mr_strlcpy(pr->class_, classes[cls < 0 ? 0 : cls], sizeof(pr->class_));
		v = attr_get(x, "action");
		if (v != NULL &&
		    (v[0] == '\0' || mr_strlcpy(pr->action, v, sizeof(pr->action)) < 0))
			err_at(p, x, "action", "\"%s\" is not a valid action or handler name", v);
		if (pr->action[0] == '\0')
			(void)mr_strlcpy(pr->action, "stopstart", sizeof(pr->action));
	}
	e->n_procs = k;
}

/* ---- <check> ------------------------------------------------------------------------ */

static void
fill_to(struct pctx *p, const xmlNode *n, enum conf_check_kind kind, struct conf_check_to *to)
{
	char a[32], b[32];

	/* SafeKit: 10 s and 5 s; a failed check acts after one more interval */
	to->interval_ms = 2 * MS_S;
	to->timeout_ms = MS_S;
	if (kind == CONF_CHECK_INTF) {
		(void)get_ip(p, n, "local_addr", true, to->addr_str, &to->addr);
		return;
	}
	(void)get_ip(p, n, "addr", true, to->addr_str, &to->addr);
	if (kind == CONF_CHECK_TCP) {
		if (attr_get(n, "port") == NULL)
			err_at(p, n, "port", "missing (mandatory for a tcp checker)");
		else
			(void)get_port(p, n, "port", 0, &to->port);
	}
	(void)get_dur(p, n, "interval", 2 * MS_S, 200, MS_H, &to->interval_ms);
	if (kind == CONF_CHECK_IP)
		return;
	if (get_dur(p, n, "timeout", MS_S, 100, MS_H, &to->timeout_ms) &&
	    to->timeout_ms > to->interval_ms)
		err_at(p, n, "timeout",
		       "timeout %s exceeds interval %s; expected timeout <= interval",
		       dur_str(to->timeout_ms, a, sizeof(a)),
		       dur_str(to->interval_ms, b, sizeof(b)));
}


static void
fill_splitbrain(struct pctx *p, const xmlNode *n)
{
	struct conf_splitbrain *sb = &p->c->splitbrain;
	const char *exec = attr_get(n, "exec");
	const char *arg = attr_get(n, "arg");
	char *copy, *save = NULL;
	size_t k = 0, tokens = 0;

	sb->present = true;
	(void)get_name(p, n, "ident", NULL, sb->ident, sizeof(sb->ident));
	if (exec == NULL || strcmp(exec, "ping") != 0)
		err_at(p, n, "exec", "\"%s\" is not supported; expected exec=\"ping\"",
		       exec ? exec : "");
	if (arg == NULL) {
		err_at(p, n, "arg", "missing; expected 1..%d witness IP addresses",
		       CONF_WITNESSES_MAX);
		return;
	}
	sb->witnesses = mr_xcalloc(CONF_WITNESSES_MAX, sizeof(*sb->witnesses));
	sb->witness_strs = mr_xcalloc(CONF_WITNESSES_MAX, sizeof(*sb->witness_strs));
	copy = mr_xstrdup(arg);
	for (char *w = strtok_r(copy, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
		struct sockaddr_storage ss;

		tokens++;
		if (conf_parse_ip_port(w, &ss) < 0) {
			err_at(p, n, "arg",
			       "witness \"%s\" is not valid; expected a numeric IP address (ICMP "
			       "echo) or IP:PORT / [IPv6]:PORT (TCP connect)",
			       w);
			continue;
		}
		if (k == CONF_WITNESSES_MAX) {
			err_at(p, n, "arg", "more than %d witness addresses", CONF_WITNESSES_MAX);
			break;
		}
		sb->witnesses[k] = ss;
		sb->witness_strs[k] = mr_xstrdup(w);
		k++;
	}
	free(copy);
	sb->n_witnesses = k;
	if (tokens == 0)
		err_at(p, n, "arg", "no witness address; expected 1..%d IP addresses",
		       CONF_WITNESSES_MAX);
}

static void
fill_check(struct pctx *p, const xmlNode *n)
{
	static const char *const kinds[] = { "tcp", "ping", "intf", "ip", "custom" };
	static const char *const def_when[] = { "prim", "pre", "pre", "prim", "prim" };
	static const char *const def_action[] = { "restart", "wait", "wait", "stopstart",
		                                  "noaction" };
	struct cluster_conf *c = p->c;
	const xmlNode *sb_node = NULL;
	size_t total = 0, k = 0;

	for (const xmlNode *x = n->children; x; x = x->next)
		if (x->type == XML_ELEMENT_NODE)
			total++;
	c->checks = mr_xcalloc(total, sizeof(*c->checks));
	for (const xmlNode *x = n->children; x; x = x->next) {
		struct conf_check *ck;
		const char *when, *action;
		size_t kind;

		if (x->type != XML_ELEMENT_NODE)
			continue;
		if (is_elem(x, "splitbrain")) {
			if (sb_node != NULL) {
				err_at(p, x, NULL,
				       "only one <splitbrain> is allowed (first at line %d)",
				       line_of(sb_node));
				continue;
			}
			sb_node = x;
			fill_splitbrain(p, x);
			continue;
		}
		for (kind = 0; kind < ARRAY_SIZE(kinds); kind++)
			if (is_elem(x, kinds[kind]))
				break;
		if (kind == ARRAY_SIZE(kinds))
			continue; /* the schema reports unknown elements */

		ck = &c->checks[k++];
		ck->kind = (enum conf_check_kind)kind;
		(void)get_name(p, x, "ident", NULL, ck->ident, sizeof(ck->ident));
		when = attr_get(x, "when");
		if (when == NULL)
			when = def_when[kind];
		if (mr_strlcpy(ck->when, when, sizeof(ck->when)) < 0)
			err_at(p, x, "when", "\"%s\" is not valid", when);
		action = ck->kind == CONF_CHECK_INTF || ck->kind == CONF_CHECK_IP
		                 ? NULL
		                 : attr_get(x, "action");
		if (action == NULL)
			action = def_action[kind];
		(void)mr_strlcpy(ck->action, action, sizeof(ck->action));
		if (attr_get(x, "action") != NULL && ck->kind != CONF_CHECK_INTF &&
		    ck->kind != CONF_CHECK_IP) {
			bool pre = strcmp(ck->when, "pre") == 0;
			bool ok = pre ? (strcmp(action, "wait") == 0 ||
			                 strcmp(action, "noaction") == 0)
			              : strcmp(action, "wait") != 0;

			if (!ok)
				err_at(p, x, "action",
				       "\"%s\" does not fit when=\"%s\"; expected %s", action,
				       ck->when,
				       pre ? "wait or noaction"
				           : "restart, stop, stopstart or noaction");
		}
		if (ck->kind == CONF_CHECK_CUSTOM) {
			const char *exec = attr_get(x, "exec"), *arg = attr_get(x, "arg");

			if (exec == NULL || exec[0] == '\0')
				err_at(p, x, "exec", "missing (mandatory)");
			else
				ck->exec = mr_xstrdup(exec);
			ck->arg = mr_xstrdup(arg ? arg : "");
			continue;
		}
		ck->to = mr_xcalloc(count_children(x, "to"), sizeof(*ck->to));
		for (const xmlNode *y = x->children; y; y = y->next)
			if (is_elem(y, "to"))
				fill_to(p, y, ck->kind, &ck->to[ck->n_to++]);
		if (ck->n_to == 0)
			err_at(p, x, NULL, "has no <to>; expected at least one");
	}
	c->n_checks = k;

	/* Idents unique across all checkers, the splitbrain one included. */
	for (const xmlNode *x = n->children; x; x = x->next) {
		const char *id = attr_get(x, "ident");

		if (x->type != XML_ELEMENT_NODE || id == NULL)
			continue;
		for (const xmlNode *y = n->children; y != x; y = y->next) {
			const char *id2 = attr_get(y, "ident");

			if (y->type == XML_ELEMENT_NODE && id2 && strcmp(id, id2) == 0) {
				err_at(p, x, "ident",
				       "checker ident \"%s\" is already used by <%s> at line %d; "
				       "idents must be unique",
				       id, (const char *)y->name, line_of(y));
				break;
			}
		}
	}
}

/* ---- cross checks --------------------------------------------------------------------- */

static void
check_cross(struct pctx *p, const xmlNode *service, const xmlNode *heart, const xmlNode *rfs)
{
	struct cluster_conf *c = p->c;

	if (c->service.defaultprim == CONF_DEFAULTPRIM_SERVER && c->nodes[0][0] &&
	    c->service.defaultprim_server[0] &&
	    conf_cluster_node_index(c, c->service.defaultprim_server) < 0)
		err_at(p, service, "defaultprim",
		       "\"%s\" is not a node of this module; expected \"alone\", \"lastprim\", "
		       "\"%s\" or \"%s\"",
		       c->service.defaultprim_server, c->nodes[0], c->nodes[1]);

	if (heart != NULL && c->heart.port == c->rfs.port) {
		if (rfs != NULL && attr_get(rfs, "port") != NULL)
			err_at(p, rfs, "port",
			       "%u is also the heartbeat port (<heart> line %d); expected two "
			       "different ports",
			       c->rfs.port, line_of(heart));
		else
			err_at(p, heart, "port",
			       "%u is also the replication port (<rfs> @port, default %u); expected "
			       "two different ports",
			       c->heart.port, CONF_DEFAULT_RFS_PORT);
	}

	if (heart != NULL && rfs == NULL) {
		size_t i = 0;

		for (const xmlNode *x = heart->children; x; x = x->next) {
			if (!is_elem(x, "heartbeat"))
				continue;
			if (i < c->heart.n_hbs && strcmp(c->heart.hbs[i].ident, "flow") == 0)
				err_at(p, x, "ident",
				       "\"flow\" marks the replication network but there is no <rfs>");
			i++;
		}
	}
}

/* ---- canonical text and hash --------------------------------------------------------- */

/* Values are escaped so that no value can forge a line: \\, \n and any byte
 * outside printable ASCII as \xNN. */
static void
put_kv(FILE *f, const char *key, const char *val)
{
	fputs(key, f);
	fputc('=', f);
	for (const unsigned char *s = (const unsigned char *)(val ? val : ""); *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s < 0x20 || *s >= 0x7f)
			fprintf(f, "\\x%02x", *s);
		else
			fputc(*s, f);
	}
	fputc('\n', f);
}

static void put_fmt(FILE *f, const char *key, const char *fmt, ...) MR_PRINTF(3, 4);

static void
put_fmt(FILE *f, const char *key, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	put_kv(f, key, buf);
}

static void
put_addr(FILE *f, const char *key, const struct sockaddr_storage *ss)
{
	char buf[INET6_ADDRSTRLEN];

	put_kv(f, key, addr_ntop(ss, buf, sizeof(buf)));
}

static const char *
onoff(bool b)
{
	return b ? "on" : "off";
}

/* One "key=value" line per effective setting in a fixed order (lists in
 * document order), after defaults and macros, so that equal configurations give
 * equal text whatever their spelling. Returns a string the caller frees, or NULL
 * on ENOMEM. Any thread. */
char *
conf_cluster_canonical(const struct cluster_conf *c)
{
	static const char *const boots[] = { "ignore", "on", "off", "auto" };
	static const char *const dps[] = { "alone", "lastprim", "server" };
	static const char *const asyncs[] = { "second", "none", "async" };
	static const char *const sbs[] = { "disconnect", "discard-zero-changes",
		                           "discard-least-changes" };
	static const char *const zs[] = { "auto", "off", "on" };
	static const char *const kinds[] = { "tcp", "ping", "intf", "ip", "custom" };
	char *buf = NULL;
	size_t len = 0;
	char k[160];
	FILE *f;

	f = open_memstream(&buf, &len);
	if (f == NULL)
		return NULL;
	put_kv(f, "format", "hamirror-userconfig-1");
	put_kv(f, "node.0", c->nodes[0]);
	put_kv(f, "node.1", c->nodes[1]);

	put_kv(f, "service.mode", "mirror");
	put_kv(f, "service.boot", boots[c->service.boot]);
	put_kv(f, "service.failover", onoff(c->service.failover));
	put_kv(f, "service.defaultprim", dps[c->service.defaultprim]);
	if (c->service.defaultprim == CONF_DEFAULTPRIM_SERVER)
		put_kv(f, "service.defaultprim_server", c->service.defaultprim_server);
	put_fmt(f, "service.maxloop", "%u", c->service.maxloop);
	put_fmt(f, "service.loop_interval_ms", "%u", c->service.loop_interval_ms);
	put_fmt(f, "service.boot_delay_ms", "%u", c->service.boot_delay_ms);

	put_fmt(f, "heart.port", "%u", c->heart.port);
	put_fmt(f, "heart.pulse_ms", "%u", c->heart.pulse_ms);
	put_fmt(f, "heart.timeout_ms", "%u", c->heart.timeout_ms);
	put_fmt(f, "heart.n", "%zu", c->heart.n_hbs);
	for (size_t i = 0; i < c->heart.n_hbs; i++) {
		const struct conf_heartbeat *hb = &c->heart.hbs[i];

		snprintf(k, sizeof(k), "heart.%zu.name", i);
		put_kv(f, k, hb->name);
		snprintf(k, sizeof(k), "heart.%zu.ident", i);
		put_kv(f, k, hb->ident);
		snprintf(k, sizeof(k), "heart.%zu.pulse_ms", i);
		put_fmt(f, k, "%u", hb->pulse_ms);
		snprintf(k, sizeof(k), "heart.%zu.timeout_ms", i);
		put_fmt(f, k, "%u", hb->timeout_ms);
		for (size_t s = 0; s < CONF_NODES; s++) {
			snprintf(k, sizeof(k), "heart.%zu.server.%zu.name", i, s);
			put_kv(f, k, hb->servers[s].name);
			snprintf(k, sizeof(k), "heart.%zu.server.%zu.addr", i, s);
			put_addr(f, k, &hb->servers[s].addr);
		}
	}

	put_kv(f, "vip", c->vip.present ? "present" : "absent");
	if (c->vip.present) {
		put_kv(f, "vip.tcpreset", onoff(c->vip.tcpreset));
		put_fmt(f, "vip.n", "%zu", c->vip.n_intfs);
		for (size_t i = 0; i < c->vip.n_intfs; i++) {
			const struct conf_vip_intf *it = &c->vip.intfs[i];

			snprintf(k, sizeof(k), "vip.%zu.name", i);
			put_kv(f, k, it->name);
			snprintf(k, sizeof(k), "vip.%zu.check", i);
			put_kv(f, k, onoff(it->check));
			snprintf(k, sizeof(k), "vip.%zu.arpreroute", i);
			put_kv(f, k, onoff(it->arpreroute));
			snprintf(k, sizeof(k), "vip.%zu.arpinterval_ms", i);
			put_fmt(f, k, "%u", it->arpinterval_ms);
			snprintf(k, sizeof(k), "vip.%zu.arpelapse_ms", i);
			put_fmt(f, k, "%u", it->arpelapse_ms);
			snprintf(k, sizeof(k), "vip.%zu.n", i);
			put_fmt(f, k, "%zu", it->n_addrs);
			for (size_t j = 0; j < it->n_addrs; j++) {
				const struct conf_vip_addr *va = &it->addrs[j];

				snprintf(k, sizeof(k), "vip.%zu.addr.%zu", i, j);
				put_addr(f, k, &va->addr);
				snprintf(k, sizeof(k), "vip.%zu.addr.%zu.prefixlen", i, j);
				put_fmt(f, k, "%u", va->prefixlen);
				snprintf(k, sizeof(k), "vip.%zu.addr.%zu.check", i, j);
				put_kv(f, k, onoff(va->check));
				snprintf(k, sizeof(k), "vip.%zu.addr.%zu.where", i, j);
				put_kv(f, k, va->where);
			}
		}
	}

	put_kv(f, "rfs", c->rfs.present ? "present" : "absent");
	put_fmt(f, "rfs.port", "%u", c->rfs.port);
	if (c->rfs.present) {
		put_kv(f, "rfs.async", asyncs[c->rfs.async]);
		put_fmt(f, "rfs.sendtimeout_ms", "%u", c->rfs.sendtimeout_ms);
		put_fmt(f, "rfs.reitimeout_ms", "%u", c->rfs.reitimeout_ms);
		put_fmt(f, "rfs.nbrei", "%u", c->rfs.nbrei);
		put_fmt(f, "rfs.reiallowedbw_kbps", "%llu",
		        (unsigned long long)c->rfs.reiallowedbw_kbps);
		put_fmt(f, "rfs.asynclag_bytes", "%llu", (unsigned long long)c->rfs.asynclag_bytes);
		put_fmt(f, "rfs.maxinflight_bytes", "%llu",
		        (unsigned long long)c->rfs.maxinflight_bytes);
		put_kv(f, "rfs.splitbrain_policy", sbs[c->rfs.sb_policy]);
		put_fmt(f, "rfs.reiblocksize", "%u", c->rfs.reiblocksize);
		put_kv(f, "rfs.reicompress", zs[c->rfs.reicompress]);
		put_fmt(f, "rfs.n", "%zu", c->rfs.n_repl);
		for (size_t i = 0; i < c->rfs.n_repl; i++) {
			const struct conf_replicated *r = &c->rfs.repl[i];

			snprintf(k, sizeof(k), "rfs.%zu.dir", i);
			put_kv(f, k, r->dir);
			snprintf(k, sizeof(k), "rfs.%zu.read_only", i);
			put_kv(f, k, onoff(r->read_only));
			for (size_t j = 0; j < r->n_notrepl; j++) {
				snprintf(k, sizeof(k), "rfs.%zu.notreplicated.%zu.%s", i, j,
				         r->notrepl[j].path ? "path" : "regexpath");
				put_kv(f, k,
				       r->notrepl[j].path ? r->notrepl[j].path
				                          : r->notrepl[j].regexpath);
			}
			for (size_t j = 0; j < r->n_tocheck; j++) {
				snprintf(k, sizeof(k), "rfs.%zu.tocheck.%zu", i, j);
				put_kv(f, k, r->tocheck[j]);
			}
		}
	}

	put_kv(f, "user", c->user.present ? "present" : "absent");
	if (c->user.present) {
		put_fmt(f, "user.nicestoptimeout_ms", "%u", c->user.nicestoptimeout_ms);
		put_fmt(f, "user.forcestoptimeout_ms", "%u", c->user.forcestoptimeout_ms);
		put_fmt(f, "user.starttimeout_ms", "%u", c->user.starttimeout_ms);
		put_kv(f, "user.logging", c->user.logging ? "userlog" : "none");
		for (size_t i = 0; i < c->user.n_vars; i++) {
			snprintf(k, sizeof(k), "user.var.%zu.%s", i, c->user.vars[i].name);
			put_kv(f, k, c->user.vars[i].value);
		}
	}

	put_kv(f, "errd", c->errd.present ? "present" : "absent");
	if (c->errd.present) {
		put_fmt(f, "errd.polltimer_ms", "%u", c->errd.polltimer_ms);
		for (size_t i = 0; i < c->errd.n_procs; i++) {
			const struct conf_proc *pr = &c->errd.procs[i];

			snprintf(k, sizeof(k), "errd.proc.%zu.name", i);
			put_kv(f, k, pr->name);
			snprintf(k, sizeof(k), "errd.proc.%zu.nameregex", i);
			put_kv(f, k, pr->nameregex);
			snprintf(k, sizeof(k), "errd.proc.%zu.argregex", i);
			put_kv(f, k, pr->argregex);
			snprintf(k, sizeof(k), "errd.proc.%zu.service", i);
			put_kv(f, k, pr->service ? "yes" : "no");
			snprintf(k, sizeof(k), "errd.proc.%zu.atleast", i);
			put_fmt(f, k, "%d", pr->atleast);
			snprintf(k, sizeof(k), "errd.proc.%zu.atmax", i);
			put_fmt(f, k, "%d", pr->atmax);
			snprintf(k, sizeof(k), "errd.proc.%zu.start_after", i);
			put_fmt(f, k, "%u", pr->start_after);
			snprintf(k, sizeof(k), "errd.proc.%zu.class", i);
			put_kv(f, k, pr->class_);
			snprintf(k, sizeof(k), "errd.proc.%zu.action", i);
			put_kv(f, k, pr->action);
		}
	}

	for (size_t i = 0; i < c->n_checks; i++) {
		const struct conf_check *ck = &c->checks[i];

		snprintf(k, sizeof(k), "check.%zu.kind", i);
		put_kv(f, k, kinds[ck->kind]);
		snprintf(k, sizeof(k), "check.%zu.ident", i);
		put_kv(f, k, ck->ident);
		snprintf(k, sizeof(k), "check.%zu.when", i);
		put_kv(f, k, ck->when);
		snprintf(k, sizeof(k), "check.%zu.action", i);
		put_kv(f, k, ck->action);
		if (ck->kind == CONF_CHECK_CUSTOM) {
			snprintf(k, sizeof(k), "check.%zu.exec", i);
			put_kv(f, k, ck->exec);
			snprintf(k, sizeof(k), "check.%zu.arg", i);
			put_kv(f, k, ck->arg);
		}
		for (size_t j = 0; j < ck->n_to; j++) {
			const struct conf_check_to *to = &ck->to[j];

			snprintf(k, sizeof(k), "check.%zu.to.%zu.addr", i, j);
			put_addr(f, k, &to->addr);
			if (ck->kind == CONF_CHECK_TCP) {
				snprintf(k, sizeof(k), "check.%zu.to.%zu.port", i, j);
				put_fmt(f, k, "%u", to->port);
			}
			if (ck->kind != CONF_CHECK_INTF) {
				snprintf(k, sizeof(k), "check.%zu.to.%zu.interval_ms", i, j);
				put_fmt(f, k, "%u", to->interval_ms);
			}
			if (ck->kind == CONF_CHECK_TCP || ck->kind == CONF_CHECK_PING) {
				snprintf(k, sizeof(k), "check.%zu.to.%zu.timeout_ms", i, j);
				put_fmt(f, k, "%u", to->timeout_ms);
			}
		}
	}

	put_kv(f, "splitbrain", c->splitbrain.present ? "present" : "absent");
	if (c->splitbrain.present) {
		put_kv(f, "splitbrain.ident", c->splitbrain.ident);
		for (size_t i = 0; i < c->splitbrain.n_witnesses; i++) {
			const struct sockaddr_storage *w = &c->splitbrain.witnesses[i];
			uint16_t port = conf_sa_port(w);

			snprintf(k, sizeof(k), "splitbrain.witness.%zu", i);
			put_addr(f, k, w);
			snprintf(k, sizeof(k), "splitbrain.witness.%zu.tcp_port", i);
			put_fmt(f, k, "%u", port);
		}
	}

	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int
compute_hash(struct cluster_conf *c)
{
	char *text = conf_cluster_canonical(c);
	XXH128_canonical_t can;

	if (text == NULL)
		return -ENOMEM;
	XXH128_canonicalFromHash(&can, XXH3_128bits(text, strlen(text)));
	free(text);
	memcpy(c->hash, can.digest, sizeof(c->hash));
	for (size_t i = 0; i < sizeof(c->hash); i++)
		(void)snprintf(&c->hash_hex[2 * i], 3, "%02x", c->hash[i]);
	return 0;
}

/* ---- entry points ------------------------------------------------------------------- */

/* Line of a "file:line: ..." message, 0 when it has none. */
static long
msg_line(const char *msg, size_t file_len)
{
	if (strlen(msg) <= file_len || msg[file_len] != ':')
		return 0;
	return strtol(msg + file_len + 1, NULL, 10);
}

/* Schema and semantic checks run in different orders; show errors in file
 * order (stable insertion sort of the messages added by this parse). */
static void
sort_errs_by_line(struct conf_errs *e, size_t from, const char *file)
{
	size_t flen = strlen(file);

	for (size_t i = from + 1; i < e->n; i++) {
		char *m = e->msgs[i];
		long l = msg_line(m, flen);
		size_t j = i;

		while (j > from && msg_line(e->msgs[j - 1], flen) > l) {
			e->msgs[j] = e->msgs[j - 1];
			j--;
		}
		e->msgs[j] = m;
	}
}

static void
fill_all(struct pctx *p, xmlDoc *doc)
{
	const xmlNode *root = xmlDocGetRootElement(doc);
	const xmlNode *service, *heart, *x;

	if (root == NULL || !is_elem(root, "safe"))
		return; /* the schema said so */
	service = first_child(root, "service");
	if (service == NULL)
		return;
	fill_service(p, service);
	heart = first_child(service, "heart");
	if (heart != NULL)
		fill_heart(p, heart);
	if ((x = first_child(service, "vip")) != NULL) {
		fill_vip(p, x);
		check_vip_addrs(p, x);
	}
	p->c->rfs.port = CONF_DEFAULT_RFS_PORT;
	if ((x = first_child(service, "rfs")) != NULL)
		fill_rfs(p, x);
	if ((x = first_child(service, "user")) != NULL)
		fill_user(p, x);
	if ((x = first_child(service, "errd")) != NULL)
		fill_errd(p, x);
	if ((x = first_child(service, "check")) != NULL)
		fill_check(p, x);
	check_cross(p, service, heart, first_child(service, "rfs"));
}

static int
validate(struct pctx *p, xmlDoc *doc)
{
	xmlSchemaParserCtxtPtr sp;
	xmlSchemaValidCtxtPtr vc;
	xmlSchemaPtr schema;
	int r = 0;

	sp = xmlSchemaNewMemParserCtxt(conf_userconfig_xsd, (int)conf_userconfig_xsd_len);
	if (sp == NULL)
		return -ENOMEM;
	xmlSchemaSetParserStructuredErrors(sp, pctx_serror, p);
	schema = xmlSchemaParse(sp);
	xmlSchemaFreeParserCtxt(sp);
	if (schema == NULL) {
		conf_errs_add(p->errs, p->file, 0,
		              "internal error: cannot load the embedded schema");
		return MR_ECONFIG;
	}
	vc = xmlSchemaNewValidCtxt(schema);
	if (vc == NULL) {
		r = -ENOMEM;
		goto out_schema;
	}
	xmlSchemaSetValidStructuredErrors(vc, pctx_serror, p);
	if (xmlSchemaValidateDoc(vc, doc) < 0) {
		conf_errs_add(p->errs, p->file, 0, "internal error while validating the document");
		r = MR_ECONFIG;
	}
	xmlSchemaFreeValidCtxt(vc);
out_schema:
	xmlSchemaFree(schema);
	return r;
}

/* See conf.h. buf need not be NUL-terminated. On MR_ECONFIG every problem found
 * is in errs, sorted by line; *out is set only on success. Any thread: libxml2's
 * per-thread error handlers are saved and restored around the call. */
int
conf_cluster_parse(const char *name, const char *buf, size_t len, struct cluster_conf **out,
                   struct conf_errs *errs)
{
	xmlStructuredErrorFunc old_serror = xmlStructuredError;
	void *old_serror_ctx = xmlStructuredErrorContext;
	xmlGenericErrorFunc old_generic = xmlGenericError;
	void *old_generic_ctx = xmlGenericErrorContext;
	struct pctx p = { .file = name, .errs = errs };
	size_t errs_before = errs->n;
	xmlParserCtxtPtr ctxt;
	xmlDoc *doc = NULL;
	int r;

	*out = NULL;
	if (len > CONF_FILE_MAX_BYTES) {
		conf_errs_add(errs, name, 0, "file is too large (%zu bytes; at most %u)", len,
		              CONF_FILE_MAX_BYTES);
		return MR_ECONFIG;
	}
	(void)pthread_once(&xml_once, xml_init);
	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL)
		return -ENOMEM;
	ctxt->_private = &p;
	ctxt->sax->serror = parser_serror;
	ctxt->sax->internalSubset = sax_internal_subset;
	ctxt->sax->externalSubset = NULL;
	ctxt->sax->entityDecl = sax_entity_decl;
	ctxt->sax->unparsedEntityDecl = sax_unparsed_entity_decl;
	ctxt->sax->notationDecl = sax_notation_decl;
	ctxt->sax->attributeDecl = sax_attribute_decl;
	ctxt->sax->elementDecl = sax_element_decl;
	xmlSetStructuredErrorFunc(&p, pctx_serror);
	xmlSetGenericErrorFunc(NULL, silent_generic_error);

	p.c = mr_xcalloc(1, sizeof(*p.c));
	p.c->path = mr_xstrdup(name);
	/* No NOENT (no substitution), no DTDLOAD/DTDATTR/DTDVALID, no network. */
	doc = xmlCtxtReadMemory(ctxt, buf, (int)len, name, NULL,
	                        XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_BIG_LINES);
	if (doc == NULL || !ctxt->wellFormed || errs->n > errs_before) {
		if (errs->n == errs_before)
			conf_errs_add(errs, name, 0, "not well-formed XML");
		r = MR_ECONFIG;
		goto out;
	}
	apply_macros(&p, doc);
	r = validate(&p, doc);
	if (r == -ENOMEM)
		goto out;
	fill_all(&p, doc);
	sort_errs_by_line(errs, errs_before, name);
	if (errs->n > errs_before) {
		r = MR_ECONFIG;
		goto out;
	}
	r = compute_hash(p.c);
	if (r < 0)
		goto out;
	*out = p.c;
	p.c = NULL;
out:
	xmlSetStructuredErrorFunc(old_serror_ctx, old_serror);
	xmlSetGenericErrorFunc(old_generic_ctx, old_generic);
	conf_cluster_free(p.c);
	free(p.flagged);
	xmlFreeDoc(doc);
	xmlFreeParserCtxt(ctxt);
	return r;
}

/* Reads at most CONF_FILE_MAX_BYTES (+1 to detect larger files) and parses it
 * with the path as the name in messages. -errno when the file cannot be read. */
int
conf_cluster_load(const char *path, struct cluster_conf **out, struct conf_errs *errs)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	*out = NULL;
	f = fopen(path, "re");
	if (f == NULL) {
		r = -errno;
		conf_errs_add(errs, path, 0, "cannot open: %s", strerror(-r));
		return r;
	}
	buf = mr_xcalloc(CONF_FILE_MAX_BYTES + 1, 1);
	len = fread(buf, 1, CONF_FILE_MAX_BYTES + 1, f);
	if (ferror(f)) {
		r = -EIO;
		conf_errs_add(errs, path, 0, "cannot read: %s", strerror(EIO));
		goto out;
	}
	r = conf_cluster_parse(path, buf, len, out, errs);
out:
	(void)fclose(f);
	free(buf);
	return r;
}

/* Position of name in c->nodes (the order of the first heartbeat), or -ENOENT. */
int
conf_cluster_node_index(const struct cluster_conf *c, const char *name)
{
	for (int i = 0; i < CONF_NODES; i++)
		if (c->nodes[i][0] != '\0' && strcmp(c->nodes[i], name) == 0)
			return i;
	return -ENOENT;
}

/* Frees c and everything it owns; accepts NULL and a half-filled struct. */
void
conf_cluster_free(struct cluster_conf *c)
{
	if (c == NULL)
		return;
	free(c->path);
	free(c->heart.hbs);
	for (size_t i = 0; i < c->vip.n_intfs; i++)
		free(c->vip.intfs[i].addrs);
	free(c->vip.intfs);
	for (size_t i = 0; i < c->rfs.n_repl; i++) {
		struct conf_replicated *r = &c->rfs.repl[i];

		free(r->dir);
		for (size_t j = 0; j < r->n_notrepl; j++) {
			free(r->notrepl[j].path);
			free(r->notrepl[j].regexpath);
		}
		free(r->notrepl);
		for (size_t j = 0; j < r->n_tocheck; j++)
			free(r->tocheck[j]);
		free(r->tocheck);
	}
	free(c->rfs.repl);
	for (size_t i = 0; i < c->user.n_vars; i++)
		free(c->user.vars[i].value);
	free(c->user.vars);
	for (size_t i = 0; i < c->errd.n_procs; i++) {
		free(c->errd.procs[i].nameregex);
		free(c->errd.procs[i].argregex);
	}
	free(c->errd.procs);
	for (size_t i = 0; i < c->n_checks; i++) {
		free(c->checks[i].exec);
		free(c->checks[i].arg);
		free(c->checks[i].to);
	}
	free(c->checks);
	for (size_t i = 0; i < c->splitbrain.n_witnesses; i++)
		free(c->splitbrain.witness_strs[i]);
	free(c->splitbrain.witness_strs);
	free(c->splitbrain.witnesses);
	free(c);
}
