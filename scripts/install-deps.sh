#!/usr/bin/env bash
# install-deps.sh - install every Debian 12 package hamirror's build, tests and demo need.
# Idempotent: quiet and quick when everything is already present.
set -euo pipefail

PKGS=(
	# build
	build-essential cmake pkg-config
	# libraries
	libuv1-dev libssl-dev libxxhash-dev libinih-dev zlib1g-dev libfuse3-dev fuse3
	libxml2-dev libxml2-utils libjansson-dev libcmocka-dev
	# tools used by scripts and tests
	openssl iproute2 util-linux procps python3 psmisc acl
	# benchmarks: the resync section compares with rsync
	rsync
	# fuzzing (libFuzzer)
	clang libclang-rt-14-dev
)

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
