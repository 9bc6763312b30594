#!/usr/bin/env bash
# Installs what usher needs to build, test, benchmark and demo on Debian 12, from a minimal root
# (debootstrap --variant=minbase) up. Idempotent: only missing packages are installed, and nothing
# is fetched when all are present. Packages come without their recommendations, so whatever the
# build needs from a recommendation is named here itself. scripts/check-setup.sh proves the list
# complete. `setup.sh --list` prints the list and installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # build
  cmake ninja-build g++ clang clang-format pkg-config
  libclang-rt-14-dev  # clang's sanitizer and libFuzzer runtimes: only recommended by clang
  libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libbenchmark-dev libre2-dev libxxhash-dev nlohmann-json3-dev
  libhiredis-dev liburing-dev libssl-dev
  libsystemd-dev  # sd_notify: Type=notify under systemd (dist/usher.service)
  libc-ares-dev   # discovery by DNS names (src/discovery/dns_watch.cc)
  libmaxminddb-dev  # GeoIP route matches (src/geo)
  libnghttp2-dev    # HTTP/2 (src/codec/http2, src/proxy/h2)
  # tests, demo and benchmarks: real peers started on loopback
  time  # peak memory in bench/replay.sh
  bc python3 python3-yaml curl openssl haproxy nginx libnginx-mod-stream wrk procps gnuplot-nox prometheus
  redis-server linux-perf valgrind iproute2
  keepalived  # VRRP for the floating address: examples/ha/, tests/integration/test_failover.py
  systemd  # systemd-analyze verify of dist/usher.service (tests/integration/test_service.py)
  python3-dnspython  # the DNS server of tests/integration/test_dns_discovery.py
  libmaxmind-db-writer-perl  # small GeoIP databases made by the tests (tests/helpers/make_mmdb.pl)
  nghttp2-client  # h2load: HTTP/2 load in the tests and bench/http2.sh
  python3-h2 python3-hyperframe  # raw HTTP/2 frames: tests/integration/test_h2_conformance.py
  python3-grpcio  # gRPC client and servers of tests/integration/test_grpc.py
  slowhttptest  # slowloris and slow-body attacks: tests/integration/test_slow_clients.py, bench/slow_clients.sh
  debhelper help2man  # the Debian package (debian/): tests/integration/test_package.py builds it
  # the dashboard's browser test: Debian's Chromium, driven by playwright-core (npm)
  chromium
)
# Node.js may come from elsewhere (NodeSource bundles npm); Debian's packages only if absent.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi

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

# npm packages for the browser tests, pinned by tests/browser/package-lock.json.
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "setup: installing the browser tests' npm packages"
  npm ci --prefix tests/browser --no-audit --no-fund >/dev/null
fi
