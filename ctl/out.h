/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * out.h - mirrorctl's output: usage text, the human renderings of daemon
 * replies and config summaries, and --json output (pretty, sorted keys).
 *
 * Rendering only: these functions never decide exit codes and never talk to
 * the daemon. Main thread of mirrorctl.
 */
#ifndef MR_CTL_OUT_H
#define MR_CTL_OUT_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "cmd.h"
#include "conf.h"

/* Full usage: synopsis, every command, global options, exit codes. */
void out_usage(FILE *f);

/* Usage of one command (c is a leaf or a command with sub-commands; parent
 * is its top-level command or NULL). */
void out_cmd_usage(FILE *f, const struct cmd_def *parent, const struct cmd_def *c);

/* Print j indented by 2 with sorted keys and a final newline. Returns 0 or
 * -EIO when the stream failed. */
int out_json(FILE *f, const json_t *j);

/* Human rendering of a `status` result object (see mirrorctl(8)); keys that
 * are missing print as "?" rather than failing. */
void out_status(FILE *f, const json_t *result);

/* "STOP (NotReady)" plus a newline. */
void out_state(FILE *f, const json_t *result);
/* `state -v`: one line per resource (errd, checkers), then the switches. */
void out_resources(FILE *f, const json_t *result);

/* "FILE: valid, module config hash H, nodes A B, N replicated dirs, VIP X". */
void out_cluster_summary(FILE *f, const char *file, const struct cluster_conf *c);
/* The same facts as an object for `config check --json` (new reference, or
 * NULL on ENOMEM). */
json_t *out_cluster_json(const char *file, const struct cluster_conf *c);

/* "FILE: valid node config, node N, run_dir D, log_dir L". */
void out_node_summary(FILE *f, const char *file, const struct node_conf *n);
/* As out_cluster_json() for a node.ini. */
json_t *out_node_json(const char *file, const struct node_conf *n);

/* Format a duration as "2d03h", "1h02m03s", "3m12s" or "12s" into buf. */
const char *out_duration(uint64_t ms, char *buf, size_t len);

#endif
