#!/usr/bin/env bash
# Runs every check usher has: formatting, the HTTP/1, TLS and layer-4 fuzzers, and the whole test
# suite under AddressSanitizer + UndefinedBehaviorSanitizer and in the release build.
#   FUZZ_SECONDS=60 (default) bounds the HTTP/1 fuzzing run,
#   TLS_FUZZ_SECONDS=30 (default) the TLS one,
#   L4_FUZZ_SECONDS=20 (default) the PROXY protocol and ClientHello one,
#   H2_FUZZ_SECONDS=15 (default) the HTTP/2 translation one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

step() { printf '\n== %s (at %ss)\n' "$*" "$SECONDS"; }

step "setup is complete (every command and library from setup.sh's packages)"
bash scripts/check-setup.sh

# Warnings are errors in every build here (users' builds only warn: CMakeLists.txt says why).
WERROR=-DUSHER_WERROR=ON

step "format (clang-format --dry-run)"
# find, not git ls-files: the sources may come as an archive, without git or a repository.
find src tests fuzz bench examples -name node_modules -prune -o \( -name '*.cc' -o -name '*.h' \) \
  -print0 | xargs -0 clang-format --dry-run --Werror

# A fuzzer run from its committed seeds plus what it finds, in a corpus thrown away afterwards.
fuzz() {
  local target=$1 seconds=$2 seeds=$3 corpus log
  corpus=$(mktemp -d)
  log=$(mktemp)
  if ! "build-fuzz/fuzz/$target" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
      "$corpus" "$seeds" >"$log" 2>&1; then
    cat "$log"
    echo "fuzzing $target found a failure (reproducer above)" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units)' "$log"
  rm -rf "$corpus" "$log"
}

step "fuzz the HTTP/1 codec for ${FUZZ_SECONDS:-60}s (clang libFuzzer, ASan+UBSan)"
CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DUSHER_FUZZ=ON -DUSHER_SANITIZE=ON -DUSHER_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "$WERROR" >/dev/null
cmake --build build-fuzz --target http1_fuzz
fuzz http1_fuzz "${FUZZ_SECONDS:-60}" fuzz/corpus/http1

step "fuzz TLS termination for ${TLS_FUZZ_SECONDS:-30}s (clang libFuzzer, ASan+UBSan)"
cmake --build build-fuzz --target tls_fuzz
fuzz tls_fuzz "${TLS_FUZZ_SECONDS:-30}" fuzz/corpus/tls

step "fuzz the PROXY protocol and ClientHello codecs for ${L4_FUZZ_SECONDS:-20}s (ASan+UBSan)"
cmake --build build-fuzz --target l4_fuzz
fuzz l4_fuzz "${L4_FUZZ_SECONDS:-20}" fuzz/corpus/l4

step "fuzz the HTTP/2 translation for ${H2_FUZZ_SECONDS:-15}s (ASan+UBSan)"
cmake --build build-fuzz --target http2_fuzz
fuzz http2_fuzz "${H2_FUZZ_SECONDS:-15}" fuzz/corpus/http2

step "tests under AddressSanitizer + UndefinedBehaviorSanitizer (integration suites on io_uring)"
# -O1 -g1 (line tables only): what the sanitizers need for reports, built in half the time of -O2 -g.
scripts/build.sh build-asan -DUSHER_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "$WERROR" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"
# Every suite runs on both event-loop backends in the release build below; under the sanitizers
# once, on io_uring, to keep CI within its half hour. The epoll reactor is still exercised under
# them by the unit tests (both backends) and by the suites that start the health checker and the
# admin listener, which always run on epoll.
USHER_SANITIZED=1 ctest --test-dir build-asan --output-on-failure -LE '^epoll$'


step "tests (release build)"
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo "$WERROR"
ctest --test-dir build --output-on-failure
echo "all checks passed in ${SECONDS}s"
