/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl_srv.h - the control socket server for mirrorctl (see ctl_proto.h for
 * the wire format). Loop thread only.
 */
#ifndef MR_CTL_SRV_H
#define MR_CTL_SRV_H

#include <sys/types.h>

struct mrd;
struct ctl_srv;

/* Create path (unlinking a stale socket: the caller holds the module lock),
 * chmod it to mode, and listen. Returns 0 and *out, or -errno. */
int ctl_srv_start(struct mrd *m, const char *path, mode_t mode, struct ctl_srv **out);

/* Close the listener and every client, unlink the socket. The object frees
 * itself when its last handle is closed. Accepts NULL. */
void ctl_srv_stop(struct ctl_srv *s);

/* Create a listening AF_UNIX stream socket at path. Returns the fd or -errno. */
int ctl_listen(const char *path, mode_t mode, int backlog);

#endif
