/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * err.c - mr_strerror(): one place that turns any error code into text.
 * Pure, any thread (strerror_r into a thread-local buffer).
 */
#include "err.h"

#include <string.h>

const char *
mr_strerror(int r)
{
	static _Thread_local char buf[128];

	switch (r) {
	case MR_ECONFIG:
		return "invalid configuration";
	case MR_EPROTO:
		return "malformed message";
	case MR_ETOOBIG:
		return "message too large";
	case MR_ELOCKED:
		return "module already running (lock held by another mirrord)";
	case MR_EPERM_PEER:
		return "control socket is root-only";
	case MR_EUNKNOWN_CMD:
		return "unknown command";
	default:
		break;
	}
	if (r < 0 && r > -4096)
		return strerror_r(-r, buf, sizeof(buf));
	return "unknown error";
}
