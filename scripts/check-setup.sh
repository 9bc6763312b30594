#!/usr/bin/env bash
# Proves scripts/setup.sh complete: every command and library that the build, the tests, the
# benchmarks and the demo use must be on this machine and come from a package that setup.sh
# installs (one of its list, or a dependency of one), or from a minimal Debian root
# (debootstrap --variant=minbase: the Essential and Priority: required packages). A machine
# where something was installed by hand passes the build but not this check, which is how a
# missing package is found before a fresh machine finds it (git, libclang-rt-14-dev were).
# Takes about two seconds; scripts/test.sh runs it right after setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Commands, looked up in the system directories (not $PATH: a pyenv python3 or a hand-built
# cmake in /usr/local must not hide a missing package).
COMMANDS=(
  # build
  cmake ninja g++ gcc clang++ clang clang-format pkg-config ld
  # scripts/test.sh and the tests
  find xargs python3 node npm chromium promtool redis-server haproxy nginx curl timeout openssl
  slowhttptest systemd-analyze dpkg-buildpackage dpkg-checkbuilddeps dh help2man keepalived ip
  # bench/ and scripts/demo.sh
  wrk h2load taskset pgrep ps awk ss bc gnuplot perf valgrind callgrind_annotate time script perl
)
# Node.js may come from elsewhere (NodeSource, nvm): setup.sh installs Debian's only when absent.
ELSEWHERE_OK=" node npm "

# Files the build and the tests read: headers, CMake and pkg-config files, runtimes.
clang_rt=$(clang++ -print-resource-dir 2>/dev/null || echo /nonexistent)/lib/linux
FILES=(
  /usr/include/yaml-cpp/yaml.h /usr/include/CLI/CLI.hpp /usr/include/spdlog/spdlog.h
  /usr/include/fmt/format.h /usr/include/gtest/gtest.h /usr/include/benchmark/benchmark.h
  /usr/include/re2/re2.h /usr/include/xxhash.h /usr/include/nlohmann/json.hpp
  /usr/include/hiredis/hiredis.h /usr/include/liburing.h /usr/include/openssl/ssl.h
  /usr/include/systemd/sd-daemon.h /usr/lib/x86_64-linux-gnu/pkgconfig/libsystemd.pc
  /usr/include/ares.h /usr/lib/x86_64-linux-gnu/pkgconfig/libcares.pc
  /usr/include/nghttp2/nghttp2.h /usr/lib/x86_64-linux-gnu/pkgconfig/libnghttp2.pc
  /usr/lib/python3/dist-packages/h2/__init__.py /usr/lib/python3/dist-packages/hyperframe/__init__.py
  /usr/lib/python3/dist-packages/grpc/__init__.py
  /usr/include/x86_64-linux-gnu/maxminddb.h /usr/lib/x86_64-linux-gnu/pkgconfig/libmaxminddb.pc
  /usr/lib/x86_64-linux-gnu/perl5/5.36/MaxMind/DB/Writer/Tree.pm
  /usr/lib/python3/dist-packages/dns/__init__.py
  /usr/lib/x86_64-linux-gnu/pkgconfig/re2.pc /usr/lib/x86_64-linux-gnu/pkgconfig/hiredis.pc
  /usr/lib/x86_64-linux-gnu/pkgconfig/liburing.pc /usr/lib/x86_64-linux-gnu/pkgconfig/libssl.pc
  "$clang_rt/libclang_rt.asan_static-x86_64.a" "$clang_rt/libclang_rt.fuzzer-x86_64.a"
  "$clang_rt/libclang_rt.ubsan_standalone-x86_64.a"
  "$(g++ -print-file-name=libasan.so 2>/dev/null)" "$(g++ -print-file-name=libubsan.so 2>/dev/null)"
  /usr/lib/python3/dist-packages/yaml/__init__.py
  /usr/lib/nginx/modules/ngx_stream_module.so
)

problems=()

# What setup.sh installs: its list and everything that list depends on (not recommends).
mapfile -t listed < <(bash scripts/setup.sh --list)
declare -A allowed=()
while read -r pkg; do allowed[$pkg]=1; done < <(
  apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances "${listed[@]}" 2>/dev/null | grep -v '^ '
  dpkg-query -W -f='${Package} ${Essential} ${Priority}\n' | awk '$2 == "yes" || $3 == "required" { print $1 }')

# Everything to check, as "what|path".
items=()
for cmd in "${COMMANDS[@]}"; do
  if [[ $ELSEWHERE_OK == *" $cmd "* ]] && command -v "$cmd" >/dev/null; then continue; fi
  found=""
  for dir in /usr/bin /bin /usr/sbin /sbin; do
    if [ -x "$dir/$cmd" ]; then found=$dir/$cmd && break; fi
  done
  if [ -z "$found" ]; then
    problems+=("command $cmd is missing: scripts/setup.sh must install the package that has it")
  else
    items+=("command $cmd|$found")
  fi
done
for file in "${FILES[@]}"; do
  if [ -z "$file" ] || [ ! -e "$file" ]; then
    problems+=("${file:-a compiler runtime} is missing: scripts/setup.sh must install the package that has it")
  else
    items+=("file|$file")
  fi
done

# Which package owns each path, asked once for all (dpkg-query is slow per call). A path is
# tried as given, as its symlink target, and as the merged-/usr alias (dpkg records /bin/ps
# where the file is also reachable as /usr/bin/ps).
candidates() { local real; real=$(readlink -f "$1"); printf '%s\n' "$1" "$real" "${real#/usr}"; }
declare -A owner=()
mapfile -t paths < <(for item in "${items[@]}"; do candidates "${item#*|}"; done | sort -u)
while IFS= read -r line; do
  [[ $line == diversion* ]] && continue
  pkgs=${line%%: /*}
  owner[${line#*: }]=${pkgs%%,*}
done < <(dpkg-query -S "${paths[@]}" 2>/dev/null || true)

for item in "${items[@]}"; do
  what=${item%%|*} path=${item#*|} pkg=""
  while read -r p; do
    pkg=${owner[$p]:-} && [ -n "$pkg" ] && break
  done < <(candidates "$path")
  pkg=${pkg%%:*}  # architecture qualifier
  if [ -z "$pkg" ]; then
    problems+=("$what ($path) belongs to no Debian package")
  elif [ -z "${allowed[$pkg]:-}" ]; then
    problems+=("$what ($path) comes from $pkg, which scripts/setup.sh does not install: add $pkg to its PACKAGES")
  fi
done

if [ ${#problems[@]} -gt 0 ]; then
  printf 'check-setup: %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "check-setup: ${#COMMANDS[@]} commands and ${#FILES[@]} files, all from setup.sh's packages"
