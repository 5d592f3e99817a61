/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conf.h - the configuration model: the per-module userconfig.xml (identical on
 * both nodes, struct cluster_conf) and the per-node node.ini (struct node_conf).
 *
 * Parsers are pure: they never log; they return 0 or MR_ECONFIG and append every
 * problem found (not only the first) to a struct conf_errs, each message of the
 * form "FILE:LINE: <element> [@attribute]: what is wrong, what was expected".
 * Any thread; no global state except libxml2's (initialised once).
 */
#ifndef MR_CONF_H
#define MR_CONF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util.h"

#define CONF_NAME_MAX 64 /* node names, idents, var names */
#define CONF_ADDR_MAX 64 /* textual addresses */
#define CONF_NODES    2  /* a mirror module has exactly two nodes */

/* ---- error list ---------------------------------------------------------- */

struct conf_errs {
	char **msgs; /* owned; each "file:line: element: message" */
	size_t n;
	size_t cap;
};

/* Append one formatted message, prefixed "file:line: " ("file: " when line <= 0,
 * nothing when file is NULL). Aborts on ENOMEM (control plane only). */
void conf_errs_add(struct conf_errs *e, const char *file, int line, const char *fmt, ...)
        MR_PRINTF(4, 5);
/* Free every message; the list may be reused afterwards. Accepts an empty list. */
void conf_errs_done(struct conf_errs *e);

/* ---- shared value parsers (pure; used by both parsers and by tests) ------- */

/* Parse a duration: an integer with a unit suffix "ms", "s", "m" or "h"; a bare
 * integer means milliseconds (SafeKit's attributes write "700ms", "30s", "24h").
 * Returns 0 and sets *out_ms, or -EINVAL (syntax) / -ERANGE (over ~49 days). */
int conf_parse_duration_ms(const char *s, uint32_t *out_ms);

/* Parse "on"/"off" (also "yes"/"no", "true"/"false", "1"/"0"). 0 or -EINVAL. */
int conf_parse_bool(const char *s, bool *out);

/* Parse a numeric IPv4 or IPv6 address (no names). Returns AF_INET/AF_INET6, or -EINVAL. */
int conf_parse_ip(const char *s, struct sockaddr_storage *out);

/* "IP" (port 0) or "IP:PORT" / "[IPv6]:PORT". Returns AF_INET/AF_INET6, or -EINVAL. */
int conf_parse_ip_port(const char *s, struct sockaddr_storage *out);

/* Port of an AF_INET/AF_INET6 address (host order), set it, and its length. */
uint16_t conf_sa_port(const struct sockaddr_storage *ss);
void conf_sa_set_port(struct sockaddr_storage *ss, uint16_t port);
socklen_t conf_sa_len(const struct sockaddr_storage *ss);

/* "198.18.0.1" / "fd00::1" (the address alone), and "IP" when the port is 0, else
 * "IP:PORT" or "[IPv6]:PORT". "?" for anything else. */
void conf_sa_ip_str(const struct sockaddr_storage *ss, char *buf, size_t len);
void conf_sa_str(const struct sockaddr_storage *ss, char *buf, size_t len);

/* Do a and b hold the same IP address (ports ignored)? */
bool conf_ip_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Parse a byte size: an integer with an optional suffix "K", "M" or "G"
 * (powers of 1024; lower case accepted). Returns 0 and sets *out_bytes, or
 * -EINVAL (syntax) / -ERANGE (does not fit in 64 bits). */
int conf_parse_size_bytes(const char *s, uint64_t *out_bytes);

/* ---- userconfig.xml -------------------------------------------------------- */

enum conf_async {
	CONF_ASYNC_SECOND = 0, /* default: acked when applied by the secondary */
	CONF_ASYNC_NONE,       /* strict: fsync also durable on the secondary */
	CONF_ASYNC_ASYNC,      /* acked locally; bounded lag */
};

enum conf_defaultprim {
	CONF_DEFAULTPRIM_ALONE = 0,
	CONF_DEFAULTPRIM_LASTPRIM,
	CONF_DEFAULTPRIM_SERVER, /* service.defaultprim_server names the node */
};

enum conf_boot {
	CONF_BOOT_IGNORE = 0,
	CONF_BOOT_ON,
	CONF_BOOT_OFF,
	CONF_BOOT_AUTO,
};

struct conf_service {
	enum conf_boot boot;
	bool failover; /* default on */
	enum conf_defaultprim defaultprim;
	char defaultprim_server[CONF_NAME_MAX];
	uint32_t maxloop;          /* default 3 */
	uint32_t loop_interval_ms; /* default 24h; 0 disables */
	uint32_t boot_delay_ms;
};

struct conf_server {
	char name[CONF_NAME_MAX];
	char addr_str[CONF_ADDR_MAX];
	struct sockaddr_storage addr; /* port 0; family AF_INET or AF_INET6 */
	int line;
};

/* One heartbeat network; servers[i] belongs to node i (same order as
 * cluster_conf.nodes). */
struct conf_heartbeat {
	char name[CONF_NAME_MAX];
	char ident[CONF_NAME_MAX]; /* defaults to name; "flow" = replication net */
	uint32_t pulse_ms;         /* inherited from <heart> when unset */
	uint32_t timeout_ms;
	struct conf_server servers[CONF_NODES];
};

struct conf_heart {
	uint16_t port;       /* UDP; default CONF_DEFAULT_HEART_PORT */
	uint32_t pulse_ms;   /* default 200 ms; at least 50 ms */
	uint32_t timeout_ms; /* default 1500 ms; at least 250 ms */
	struct conf_heartbeat *hbs;
	size_t n_hbs; /* >= 1 */
};

struct conf_vip_addr {
	char addr_str[CONF_ADDR_MAX];
	struct sockaddr_storage addr;
	uint8_t prefixlen; /* from @netmask / @prefixlen; 32 or 128 default */
	bool check;        /* default on */
	char where[32];    /* "one_side_alias" (default) or "one_side" */
};

struct conf_vip_intf {
	char name[16];           /* @name; empty = choose by subnet */
	bool check;              /* default on */
	bool arpreroute;         /* default off */
	uint32_t arpinterval_ms; /* default 60 s */
	uint32_t arpelapse_ms;   /* default 1200 s */
	struct conf_vip_addr *addrs;
	size_t n_addrs;
};

struct conf_vip {
	bool present;
	bool tcpreset; /* default on */
	struct conf_vip_intf *intfs;
	size_t n_intfs;
};

struct conf_notrepl {
	char *path;      /* relative path, or NULL */
	char *regexpath; /* POSIX ERE (leading '!' = only these), or NULL */
};

struct conf_replicated {
	char *dir;      /* absolute, normalised (no trailing '/') */
	bool read_only; /* mode="read_only" */
	struct conf_notrepl *notrepl;
	size_t n_notrepl;
	char **tocheck; /* relative paths */
	size_t n_tocheck;
};

/* <rfs splitbrain_policy>: what a split brain found on reconnection does. */
enum conf_sb_policy {
	CONF_SB_DISCONNECT = 0,   /* nothing: the admin chooses (default) */
	CONF_SB_DISCARD_ZERO,     /* a side that changed no file gives its generation up */
	CONF_SB_DISCARD_LEAST,    /* the side that changed fewer files gives up (tie: admin) */
};

/* <rfs reicompress>: zlib for resync data. */
enum conf_compress {
	CONF_COMPRESS_AUTO = 0, /* only when the link is slower than zlib (a bandwidth cap) */
	CONF_COMPRESS_OFF,
	CONF_COMPRESS_ON,
};

struct conf_rfs {
	bool present;
	enum conf_async async;
	uint16_t port;              /* TCP replication port; default CONF_DEFAULT_RFS_PORT */
	uint32_t sendtimeout_ms;    /* default 30 s */
	uint32_t reitimeout_ms;     /* default 150 s */
	uint32_t nbrei;             /* parallel resync files; default 6 */
	uint64_t reiallowedbw_kbps; /* 0 = unlimited */
	uint64_t asynclag_bytes;    /* async mode queue bound; default 64 MiB */
	uint64_t maxinflight_bytes; /* in-flight ceiling; default 64 MiB */
	enum conf_sb_policy sb_policy; /* splitbrain_policy; default disconnect */
	uint32_t reiblocksize;         /* bytes per resync checksum; default 4096 */
	enum conf_compress reicompress; /* resync data compression; default auto */
	struct conf_replicated *repl;
	size_t n_repl;
};

struct conf_var {
	char name[CONF_NAME_MAX];
	char *value;
};

struct conf_user {
	bool present;                 /* no <user> = no scripts run */
	uint32_t nicestoptimeout_ms;  /* default 300 s */
	uint32_t forcestoptimeout_ms; /* default 300 s */
	uint32_t starttimeout_ms;     /* ours; default 300 s */
	bool logging;                 /* logging="userlog" (default) or "none" */
	struct conf_var *vars;
	size_t n_vars;
};

struct conf_proc {
	char name[CONF_NAME_MAX];
	char *nameregex;
	char *argregex;
	bool service;               /* service="yes": name is a systemd unit */
	int32_t atleast;            /* default 1; -1 disables */
	int32_t atmax;              /* default -1 */
	uint32_t start_after;       /* default 0 */
	char class_[16];            /* default "prim" */
	char action[CONF_NAME_MAX]; /* default "stopstart" */
};

struct conf_errd {
	bool present;
	uint32_t polltimer_ms; /* default 30 s */
	struct conf_proc *procs;
	size_t n_procs;
};

enum conf_check_kind {
	CONF_CHECK_TCP = 0,
	CONF_CHECK_PING,
	CONF_CHECK_INTF,
	CONF_CHECK_IP,
	CONF_CHECK_CUSTOM,
};

struct conf_check_to {
	char addr_str[CONF_ADDR_MAX];
	struct sockaddr_storage addr;
	uint16_t port;        /* tcp only */
	uint32_t interval_ms; /* default 10 s */
	uint32_t timeout_ms;  /* default 5 s */
};

struct conf_check {
	enum conf_check_kind kind;
	char ident[CONF_NAME_MAX];
	char when[16]; /* pre|prim|second|both */
	char action[CONF_NAME_MAX];
	char *exec; /* custom */
	char *arg;  /* custom */
	struct conf_check_to *to;
	size_t n_to;
};

struct conf_splitbrain {
	bool present;
	char ident[CONF_NAME_MAX];
	struct sockaddr_storage *witnesses; /* from @arg, space separated */
	size_t n_witnesses;
	char **witness_strs;
};

#define CONF_DEFAULT_HEART_PORT 9200
#define CONF_DEFAULT_RFS_PORT   9201

struct cluster_conf {
	char *path;                            /* file it was loaded from */
	char nodes[CONF_NODES][CONF_NAME_MAX]; /* node names, document order */
	struct conf_service service;
	struct conf_heart heart;
	struct conf_vip vip;
	struct conf_rfs rfs;
	struct conf_user user;
	struct conf_errd errd;
	struct conf_check *checks;
	size_t n_checks;
	struct conf_splitbrain splitbrain;
	/* XXH3-128 over the canonical form of the effective configuration (defaults
	 * applied, document order of lists kept, whitespace and comments ignored). */
	uint8_t hash[16];
	char hash_hex[33];
};

/* Load, validate against the embedded conf/userconfig.xsd, then check what the
 * schema cannot (two distinct nodes, addresses, directories, ranges...).
 * No network access, no external entities, no DTD loading.
 * On success returns 0 and *out (owned by the caller, free with
 * conf_cluster_free()). On failure returns MR_ECONFIG with every problem in
 * errs, or -errno when the file cannot be read (also described in errs). */
int conf_cluster_load(const char *path, struct cluster_conf **out, struct conf_errs *errs);

/* As conf_cluster_load() but from memory; name is used in messages. */
int conf_cluster_parse(const char *name, const char *buf, size_t len, struct cluster_conf **out,
                       struct conf_errs *errs);

void conf_cluster_free(struct cluster_conf *c);

/* Index (0 or 1) of the node called name, or -ENOENT. */
int conf_cluster_node_index(const struct cluster_conf *c, const char *name);

/* The canonical text that is hashed (for `mirrorctl config check --verbose` and
 * for telling the admin what differs between nodes). Caller frees. */
char *conf_cluster_canonical(const struct cluster_conf *c);

/* ---- node.ini -------------------------------------------------------------- */

struct node_conf {
	char *path;
	char name[CONF_NAME_MAX]; /* [node] name */
	char *state_dir;          /* [node] state_dir (absolute) */
	char *run_dir;            /* [node] run_dir (absolute) */
	char *log_dir;            /* [node] log_dir (absolute) */
	char *tls_ca;             /* [tls] ca */
	char *tls_cert;           /* [tls] cert */
	char *tls_key;            /* [tls] key: refused if group/other may read */
	char *hb_key_file;        /* [heartbeat] key_file: same rule */
};

/* Parse and validate node.ini (inih). Unknown sections/keys are errors, paths
 * must be absolute, directories must exist (or are reported), key files must
 * exist and not be readable by group or others. Same return contract as
 * conf_cluster_load(). */
int conf_node_load(const char *path, struct node_conf **out, struct conf_errs *errs);

void conf_node_free(struct node_conf *n);

/* Read only [node] run_dir and log_dir from a node.ini, without validating
 * anything else (mirrorctl uses it to reach a running daemon even when the
 * file has since gained an unrelated error). Returns 0 and newly allocated
 * strings (caller frees), -ENOENT if either key is missing, or -errno. */
int conf_node_peek_dirs(const char *path, char **run_dir, char **log_dir);

#endif
