#!/usr/bin/env bash
# test.sh - install what is missing, build with ASan+UBSan and -Werror, run every
# test (unit and integration). Exits non-zero on any failure; its last line is
# ctest's summary. Integration tests need root (they skip, exit 77, without it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

build=${MR_BUILD_DIR:-build-test}
rm -rf "$build"
echo "test.sh: configuring $build (Debug, ASan+UBSan, -Werror)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DMR_WERROR=ON -DMR_ASAN=ON -DMR_UBSAN=ON \
	>"$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
rm -f "$build.configure.log"
echo "test.sh: building"
if ! cmake --build "$build" -j"$(nproc)" >"$build.build.log" 2>&1; then
	cat "$build.build.log"
	echo "test.sh: build failed" >&2
	exit 1
fi
rm -f "$build.build.log"

# ThreadSanitizer pass: the FUSE-worker / engine boundary and the pure code.
# Runs first so that the last line of this script is the main run's summary.
tsan="$build-tsan"
rm -rf "$tsan"
echo "test.sh: configuring and building $tsan (ThreadSanitizer)"
if ! { cmake -S . -B "$tsan" -DCMAKE_BUILD_TYPE=Debug -DMR_WERROR=ON -DMR_TSAN=ON &&
	cmake --build "$tsan" -j"$(nproc)"; } >"$tsan.build.log" 2>&1; then
	cat "$tsan.build.log"
	echo "test.sh: ThreadSanitizer build failed" >&2
	exit 1
fi
rm -f "$tsan.build.log"
echo "test.sh: unit, shim, replication, failover, resync and open-file resync tests under ThreadSanitizer"
if ! TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp" \
	ctest --test-dir "$tsan" --output-on-failure --timeout 600 \
	-R '^unit\.|^integration\.(shim_(api|stress)|replication|failover|resync|resync_open_files)$' >"$tsan.ctest.log" 2>&1; then
	cat "$tsan.ctest.log"
	echo "test.sh: ThreadSanitizer run failed" >&2
	exit 1
fi
grep -E 'tests passed|tests failed' "$tsan.ctest.log" | sed 's/^/test.sh: tsan: /'
rm -f "$tsan.ctest.log"

# libFuzzer smoke pass over the wire decoders (needs clang; skipped without it).
if command -v clang >/dev/null 2>&1; then
	fuzz="$build-fuzz"
	rm -rf "$fuzz"
	echo "test.sh: fuzzing the protocol decoders for ${MR_FUZZ_SECONDS:-60} s"
	if ! { CC=clang cmake -S . -B "$fuzz" -DCMAKE_BUILD_TYPE=Debug -DMR_FUZZ=ON \
		-DMR_FUZZ_SECONDS="${MR_FUZZ_SECONDS:-60}" &&
		cmake --build "$fuzz" -j"$(nproc)" --target fuzz_proto fuzz_ctl &&
		ctest --test-dir "$fuzz" -L fuzz -j2 --output-on-failure; } >"$fuzz.log" 2>&1; then
		cat "$fuzz.log"
		echo "test.sh: fuzzing failed" >&2
		exit 1
	fi
	grep -E 'tests passed|tests failed' "$fuzz.log" | sed 's/^/test.sh: fuzz: /'
	rm -f "$fuzz.log"
else
	echo "test.sh: clang not found: fuzz smoke pass skipped"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
exec ctest --output-on-failure --timeout 900
