#!/usr/bin/env bash
# Installs what usher needs to build, test, benchmark and demo on Debian 12. Idempotent: only
# missing packages are installed, and nothing is fetched when all are present.
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build g++ clang clang-format pkg-config
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libbenchmark-dev libre2-dev libxxhash-dev nlohmann-json3-dev
  # tests, demo and benchmarks: real peers started on loopback
  bc python3 python3-yaml curl haproxy nginx libnginx-mod-stream wrk procps gnuplot-nox prometheus
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
