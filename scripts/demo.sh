#!/usr/bin/env bash
# The demo: builds usher, starts three demo backends and usher in front of them on loopback,
# and prints what to try. Ctrl-C (or SIGTERM) stops everything it started.
#   PORT=8080 BACKEND_PORTS="9101 9102 9103" bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

PORT=${PORT:-8080}
ADMIN_PORT=${ADMIN_PORT:-9900}
BACKEND_PORTS=${BACKEND_PORTS:-"9101 9102 9103"}
run=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "demo: port $1 did not open" >&2
  return 1
}

names=(alpha beta gamma)
i=0
for p in $BACKEND_PORTS; do
  /usr/bin/python3 tests/integration/backend.py "$p" "${names[$i]}" >"$run/backend-$p.log" 2>&1 &
  pids+=($!)
  i=$((i + 1))
done
for p in $BACKEND_PORTS; do wait_port "$p"; done

{
  printf 'admin:\n  listen: 127.0.0.1:%s\n' "$ADMIN_PORT"
  printf 'listeners:\n  - name: demo\n    listen: 127.0.0.1:%s\n    pool: demo\n' "$PORT"
  printf 'pools:\n  - name: demo\n    balance: round-robin\n'
  printf '    health: { type: http, path: /health, interval: 1s, timeout: 500ms, rise: 2, fall: 2 }\n'
  printf '    backends:\n'
  i=0
  for p in $BACKEND_PORTS; do printf '      - { address: 127.0.0.1:%s, name: %s }\n' "$p" "${names[$i]}"; i=$((i + 1)); done
} >"$run/usher.yaml"
build/src/app/usher check -c "$run/usher.yaml"
build/src/app/usher run -c "$run/usher.yaml" &
pids+=($!)
wait_port "$PORT"

cat <<MSG

usher is running at http://127.0.0.1:$PORT/ in front of three backends (${names[*]}).
Dashboard: http://127.0.0.1:$ADMIN_PORT/   (live health, rates, latency; drain/enable buttons)
Try:
  for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:$PORT/; echo; done   # round-robin
  curl -s http://127.0.0.1:$PORT/echo                                  # what a backend receives
  curl -s -X POST --data-binary @/etc/os-release http://127.0.0.1:$PORT/upload
  curl -s http://127.0.0.1:$ADMIN_PORT/api/v1/pools                    # backends: healthy, draining, active
  build/src/app/usher ctl --admin 127.0.0.1:$ADMIN_PORT drain demo alpha    # then: enable demo alpha
  curl -s http://127.0.0.1:$ADMIN_PORT/metrics | grep usher_backend_requests_total
  usher simulate --scenario varying-durations --recommend   # as build/src/app/usher
Health checks run every second: stop a backend (its PID is in 'ps') and watch usher's log.
Stop with Ctrl-C (or: kill $$).
MSG
for _ in 1 2 3; do curl -s "http://127.0.0.1:$PORT/"; echo; done
wait "${pids[-1]}"
