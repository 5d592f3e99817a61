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

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
exec ctest --output-on-failure --timeout 900
