/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * err.h - project error codes. Functions return 0 (or a count) on success and
 * -errno on failure; project-specific failures are the negative MR_E* values
 * below -4095 so they never collide with errno or libuv's UV_E*.
 */
#ifndef MR_ERR_H
#define MR_ERR_H

enum mr_err {
	MR_ECONFIG = -5000,      /* configuration invalid; details in a conf_errs list */
	MR_EPROTO = -5001,       /* malformed frame or message */
	MR_ETOOBIG = -5002,      /* frame larger than the protocol allows */
	MR_ELOCKED = -5003,      /* another mirrord holds the module lock */
	MR_EPERM_PEER = -5004,   /* control client is not root */
	MR_EUNKNOWN_CMD = -5005, /* control command not known to the daemon */
};

/* Message for a negative errno, UV_E* or MR_E* code. Never NULL. Any thread. */
const char *mr_strerror(int r);

#endif
