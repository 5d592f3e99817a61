#!/usr/bin/env bash
# bench.sh - hamirror benchmarks. Root only (it mounts file systems and drops caches).
#
# usage: scripts/bench.sh [--runs N] [--quick] [--no-build] [--section NAME]... [--dir DIR]
#
# Sections (run in this order; --section picks some, default all):
#   interception   each workload on raw ext4 and through mirror-shim (local mode, no
#                  replication), alternating raw/shim, N runs each; prints the medians,
#                  the ratio shim/raw and the target next to it ("ok"/"below target").
#   replication    two mirrord over veth + TLS: seq write and 4K fdatasync latency,
#                  async=second and none vs the same primary alone, and the TCP RTT.
#   failover       crash of the primary -> the client served by the peer (failover_bench.py).
#   resync         delta and full resync vs rsync to an rsync daemon (resync_bench.py).
#   application    the application killed -> restarted locally (errd), hung -> failed over
#                  (tcp checker), default settings (appfail_bench.py).
# Sizes can be overridden through the environment (for hosts with a low RLIMIT_NOFILE
# hard limit, for instance): BENCH_SEQ_MIB (1024), BENCH_LAT_OPS (5000),
# BENCH_CREATE_FILES (20000), BENCH_TREE_DIRS (100) x BENCH_TREE_FILES (1000).
# Later issues add sections (e.g. "replication": hamirror vs rsync) as section_<name>
# functions registered in SECTIONS below; they share the helpers (mounts, medians, table).
#
# Never fails because a figure is below target: the exit status is non-zero only when a
# workload could not run (its figures print as "nan" and the other workloads go on).
# Every mount it makes is undone and its work dir removed on exit, error or Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
SRC=$PWD

RUNS=3
QUICK=0
BUILD=1
BASE=/var/tmp
SELECTED=()
SECTIONS=(interception replication failover resync application)

usage() {
	sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
	--runs=*) RUNS=${1#--runs=}; shift ;;
	--quick) QUICK=1; shift ;;
	--no-build) BUILD=0; shift ;;
	--section) SELECTED+=("${2:?--section needs a name}"); shift 2 ;;
	--dir) BASE=${2:?--dir needs a directory}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac
done
case "$RUNS" in
'' | *[!0-9]* | 0) echo "bench.sh: --runs must be a positive integer" >&2; exit 2 ;;
esac
[ ${#SELECTED[@]} -gt 0 ] || SELECTED=("${SECTIONS[@]}")
for s in "${SELECTED[@]}"; do
	case " ${SECTIONS[*]} " in
	*" $s "*) ;;
	*) echo "bench.sh: unknown section '$s' (known: ${SECTIONS[*]})" >&2; exit 2 ;;
	esac
done

if [ "$(id -u)" -ne 0 ]; then
	echo "bench.sh: must run as root (it mounts mirror-shim and drops the page cache)" >&2
	exit 1
fi

# ---------------------------------------------------------------------------------------
# Build

if [ "$BUILD" -eq 1 ]; then
	scripts/install-deps.sh
	echo "bench.sh: building (Release) in build/"
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build -j"$(nproc)" >/dev/null
fi
SHIM=${MR_SHIM_BIN:-$SRC/build/bin/mirror-shim}
if [ ! -x "$SHIM" ]; then
	echo "bench.sh: $SHIM not found (build first, or drop --no-build)" >&2
	exit 1
fi

# ---------------------------------------------------------------------------------------
# Work dir, mounts and cleanup

WORK=$(mktemp -d "$BASE/hamirror-bench.XXXXXX")
chmod 755 "$WORK"
MOUNT_PIDS=()
MOUNT_DIRS=()

fuse_mounted() { # DIR -> 0 if a FUSE mount sits exactly at DIR
	awk -v d="$1" '$5 == d { for (i = 6; i <= NF; i++) if ($i == "-") { if ($(i + 1) ~ /^fuse/) found = 1; break } }
		END { exit !found }' /proc/self/mountinfo
}

wait_until() { # TIMEOUT_S CMD...: poll CMD every 50 ms until it succeeds or time is up
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

shim_mount() { # DIR: mirror-shim -f DIR in the background, wait until it is mounted
	local dir=$1 pid
	"$SHIM" -f "$dir" >>"$WORK/mirror-shim.log" 2>&1 &
	pid=$!
	MOUNT_PIDS+=("$pid")
	MOUNT_DIRS+=("$dir")
	if ! wait_until 15 fuse_mounted "$dir"; then
		echo "bench.sh: mirror-shim did not mount $dir within 15 s:" >&2
		tail -n 20 "$WORK/mirror-shim.log" >&2
		return 1
	fi
}

shim_umount_all() {
	local i pid dir
	for i in "${!MOUNT_PIDS[@]}"; do
		pid=${MOUNT_PIDS[$i]}
		dir=${MOUNT_DIRS[$i]}
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			if ! wait_until 30 eval "! kill -0 $pid 2>/dev/null"; then
				echo "bench.sh: mirror-shim $pid ignored SIGTERM; killing it" >&2
				kill -KILL "$pid" 2>/dev/null || true
			fi
			wait "$pid" 2>/dev/null || true
		fi
		if fuse_mounted "$dir"; then
			fusermount3 -u -z "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null || true
		fi
	done
	MOUNT_PIDS=()
	MOUNT_DIRS=()
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	shim_umount_all
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------------------------------
# Helpers: compile, medians, table

CC=${CC:-cc}
CFLAGS_BENCH=(-std=c11 -O2 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra)
"$CC" "${CFLAGS_BENCH[@]}" -o "$WORK/lat" scripts/bench/lat.c
"$CC" "${CFLAGS_BENCH[@]}" -o "$WORK/fsops" scripts/bench/fsops.c
LAT=$WORK/lat
FSOPS=$WORK/fsops

median() { # numbers on stdin -> their median ("nan" when none; failed runs are "nan")
	{ grep -E '^[0-9]+([.][0-9]+)?$' || true; } | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

run() { # a workload step with a deadline; its stdout is the figure, "nan" if it failed
	local out
	if out=$(timeout 1800 "$@"); then
		printf '%s\n' "$out"
	else
		echo "bench.sh: workload failed: $*" >&2
		: >"$WORK/failed"
		echo nan
	fi
}

TABLE=()
table_row() { # LABEL RAW SHIM UNIT RATIO TARGET_OP TARGET
	local verdict
	if [ "$5" = nan ]; then
		verdict=failed
	elif awk -v r="$5" -v t="$7" -v op="$6" 'BEGIN { exit !((op == ">=") ? (r >= t) : (r <= t)) }'; then
		verdict=ok
	else
		verdict="below target"
	fi
	TABLE+=("$(printf '%-38s %12s %12s %-8s %7.2f   %s %-5s %s' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$verdict")")
}

table_info() { # LABEL RAW SHIM UNIT RATIO: a row without a target
	TABLE+=("$(printf '%-38s %12s %12s %-8s %7.2f   (info)' "$1" "$2" "$3" "$4" "$5")")
}

print_table() { # TITLE
	echo
	echo "== $1 =="
	printf '%-38s %12s %12s %-8s %7s   %s\n' workload raw shim unit ratio "target"
	printf '%s\n' "${TABLE[@]}"
	TABLE=()
}

ratio() { # A B -> A/B, or "nan" when either is not a number
	awk -v a="$1" -v b="$2" 'BEGIN { n = "^[0-9]+([.][0-9]+)?$"
		if (a !~ n || b !~ n || b == 0) print "nan"; else printf "%.4f", a / b }'
}

# ---------------------------------------------------------------------------------------
# Section: interception overhead (mirror-shim local mode vs raw ext4)

section_interception() {
	local seq_mib=1024 lat_ops=5000 lat_mib=64 ncreate=20000 tree_dirs=100 tree_files=1000
	if [ "$QUICK" -eq 1 ]; then
		seq_mib=64 lat_ops=500 lat_mib=16 ncreate=2000 tree_dirs=10 tree_files=200
	fi
	seq_mib=${BENCH_SEQ_MIB:-$seq_mib} lat_ops=${BENCH_LAT_OPS:-$lat_ops}
	ncreate=${BENCH_CREATE_FILES:-$ncreate}
	tree_dirs=${BENCH_TREE_DIRS:-$tree_dirs} tree_files=${BENCH_TREE_FILES:-$tree_files}
	local raw=$WORK/raw shim=$WORK/shim side r i
	mkdir -p "$raw" "$shim"

	echo "bench.sh: interception: preparing trees ($((tree_dirs * tree_files)) files each) and read files (${seq_mib} MiB)"
	for side in "$raw" "$shim"; do
		"$FSOPS" mktree "$side/tree" "$tree_dirs" "$tree_files"
		"$FSOPS" seqwrite "$side/readfile" "$seq_mib" >/dev/null
	done
	sync
	shim_mount "$shim"

	local -A res=()
	for ((r = 1; r <= RUNS; r++)); do
		# Alternate which side goes first so slow drift hits both equally.
		local order=("$raw" "$shim")
		[ $((r % 2)) -eq 0 ] && order=("$shim" "$raw")
		for side in "${order[@]}"; do
			local k=raw
			[ "$side" = "$shim" ] && k=shim
			echo "bench.sh: interception: run $r/$RUNS on $k"
			# (a) sequential write + fdatasync
			rm -f "$side/seq"
			res[a_$k]+="$(run "$FSOPS" seqwrite "$side/seq" "$seq_mib") "
			rm -f "$side/seq"
			# (b) 4 KiB overwrite + fdatasync latency
			local l
			l=$(run "$LAT" "$side/lat" "$lat_ops" "$lat_mib")
			res[b50_$k]+="$(echo "$l" | awk '{ print $1 }') "
			res[b99_$k]+="$(echo "$l" | awk '{ print ($2 == "" ? "nan" : $2) }') "
			rm -f "$side/lat"
			# (c) create + write 4 KiB + close
			rm -rf "$side/create" || echo "bench.sh: could not remove $side/create" >&2
			mkdir "$side/create"
			res[c_$k]+="$(run "$FSOPS" create "$side/create" "$ncreate") "
			rm -rf "$side/create" || echo "bench.sh: could not remove $side/create" >&2
			# (d) stat every entry of the tree, warm: run twice, keep the second
			run "$FSOPS" stattree "$side/tree" >/dev/null
			res[d_$k]+="$(run "$FSOPS" stattree "$side/tree" | awk '{ print ($2 == "" ? "nan" : $2) }') "
			# (e) sequential read after dropping caches
			drop_caches
			res[e_$k]+="$(run "$FSOPS" seqread "$side/readfile") "
		done
	done

	local key
	local -A med=()
	for key in "${!res[@]}"; do
		med[$key]=$(tr ' ' '\n' <<<"${res[$key]}" | grep . | median)
	done
	table_row "(a) seq write ${seq_mib} MiB bs=1M + fdatasync" "${med[a_raw]}" "${med[a_shim]}" MB/s \
		"$(ratio "${med[a_shim]}" "${med[a_raw]}")" ">=" 0.80
	table_row "(b) 4K write+fdatasync p50 (${lat_ops} ops)" "${med[b50_raw]}" "${med[b50_shim]}" us \
		"$(ratio "${med[b50_shim]}" "${med[b50_raw]}")" "<=" 1.30
	table_info "    4K write+fdatasync p99" "${med[b99_raw]}" "${med[b99_shim]}" us \
		"$(ratio "${med[b99_shim]}" "${med[b99_raw]}")"
	table_row "(c) create+4K+close x ${ncreate}" "${med[c_raw]}" "${med[c_shim]}" files/s \
		"$(ratio "${med[c_shim]}" "${med[c_raw]}")" ">=" 0.5
	table_row "(d) stat $((tree_dirs * tree_files + tree_dirs)) entries, warm" "${med[d_raw]}" "${med[d_shim]}" entries/s \
		"$(ratio "${med[d_shim]}" "${med[d_raw]}")" ">=" 0.5
	table_row "(e) seq read ${seq_mib} MiB, cold cache" "${med[e_raw]}" "${med[e_shim]}" MB/s \
		"$(ratio "${med[e_shim]}" "${med[e_raw]}")" ">=" 0.8
	print_table "interception overhead: mirror-shim (local mode) vs raw ext4, medians of $RUNS runs"
	echo "ratio = shim/raw (for latency, lower is better); all runs:"
	for key in $(printf '%s\n' "${!res[@]}" | sort); do
		printf '  %-8s %s\n' "$key" "${res[$key]}"
	done

	shim_umount_all
	rm -rf "$raw" "$shim"
}

# ---------------------------------------------------------------------------------------
# Section: replication (two mirrord in network namespaces over veth + TLS 1.3; the
# local baseline is the same primary with no secondary). See scripts/bench/repl_bench.py.

section_replication() {
	local args=(--runs "$RUNS")
	if [ "$QUICK" -eq 1 ]; then
		args+=(--seq-mib 64 --lat-ops 500)
	fi
	[ -n "${BENCH_SEQ_MIB:-}" ] && args+=(--seq-mib "$BENCH_SEQ_MIB")
	[ -n "${BENCH_LAT_OPS:-}" ] && args+=(--lat-ops "$BENCH_LAT_OPS")
	if ! MR_BIN_DIR="$(dirname "$SHIM")" /usr/bin/python3 scripts/bench/repl_bench.py "$LAT" "${args[@]}"; then
		echo "bench.sh: replication section failed" >&2
		: >"$WORK/failed"
	fi
}

# ---------------------------------------------------------------------------------------
# Section: failover (hard crash of the primary -> the client's first answer through the
# VIP; default and aggressive heartbeat settings). See scripts/bench/failover_bench.py.

section_failover() {
	if ! MR_BIN_DIR="$(dirname "$SHIM")" /usr/bin/python3 scripts/bench/failover_bench.py \
		--runs "$([ "$QUICK" -eq 1 ] && echo 2 || echo 5)" \
		--soak-s "$([ "$QUICK" -eq 1 ] && echo 10 || echo 60)"; then
		echo "bench.sh: failover section failed" >&2
		: >"$WORK/failed"
	fi
}

# ---------------------------------------------------------------------------------------
# Section: application (issue 7): the application killed -> restarted locally by errd, and
# hung -> failed over by a tcp checker, with the default settings. See
# scripts/bench/appfail_bench.py.

section_application() {
	if ! MR_BIN_DIR="$(dirname "$SHIM")" /usr/bin/python3 scripts/bench/appfail_bench.py \
		--runs "$([ "$QUICK" -eq 1 ] && echo 1 || echo 3)"; then
		echo "bench.sh: application section failed" >&2
		: >"$WORK/failed"
	fi
}

# ---------------------------------------------------------------------------------------
# Section: resync (hamirror's delta and full resync against rsync to an rsync daemon on
# the other node, same data, same link). See scripts/bench/resync_bench.py.

section_resync() {
	if ! MR_BIN_DIR="$(dirname "$SHIM")" /usr/bin/python3 scripts/bench/resync_bench.py \
		--mib "$([ "$QUICK" -eq 1 ] && echo 256 || echo 2048)"; then
		echo "bench.sh: resync section failed" >&2
		: >"$WORK/failed"
	fi
}

# ---------------------------------------------------------------------------------------

echo "bench.sh: $(uname -r), $(nproc) CPUs, work dir $WORK ($(df -T "$WORK" | awk 'NR == 2 { print $2 }')), runs=$RUNS quick=$QUICK"
for s in "${SELECTED[@]}"; do
	"section_$s"
done
if [ -e "$WORK/failed" ]; then
	echo "bench.sh: some workloads failed (see the messages above; their figures are nan)" >&2
	exit 1
fi
