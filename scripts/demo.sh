#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# demo.sh - build hamirror and show, end to end, what it does today: a two-node cluster
# (plus a client and a witness) in network namespaces on 198.18.0.0/15, on this machine.
#
# Steps: install dependencies, build, then run tests/integration/demo.py (the same
# harness as the integration tests). Everything the demo creates is removed at the end,
# also on Ctrl-C. Needs root (network and mount namespaces).
#
# Environment: MR_BUILD_DIR  build directory (default: build)
set -euo pipefail

prog=${0##*/}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MR_BUILD_DIR:-build}
py=/usr/bin/python3

usage() {
	cat <<EOF
Usage: $prog [-h]

Build hamirror and run the two-node demo in network namespaces (needs root).
Environment: MR_BUILD_DIR (default: build, relative to the source tree).
EOF
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
"") ;;
*)
	usage >&2
	exit 2
	;;
esac

if [ "$(id -u)" -ne 0 ]; then
	echo "$prog: needs root (it creates network and mount namespaces); try: sudo $0" >&2
	exit 1
fi

cd "$root"

# demo.py runs in the foreground: Ctrl-C reaches it too, and it tears down what it built
# (namespaces, mounts, daemons, temp files) before it exits. This trap then removes
# anything a run that was killed outright left behind (only runs whose owner is gone).
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	"$py" tests/integration/lib/hamirror_test.py cleanup-stale >/dev/null 2>&1 || true
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== Installing dependencies (scripts/install-deps.sh)"
scripts/install-deps.sh

echo "== Building ($build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2

echo "== Running the demo"
MR_BIN_DIR=$root/$build/bin
case "$build" in /*) MR_BIN_DIR=$build/bin ;; esac
export MR_BIN_DIR MR_SOURCE_DIR=$root PYTHONDONTWRITEBYTECODE=1
"$py" tests/integration/demo.py
