#!/usr/bin/env bash
# The demo: the seed system on loopback. redis-server holds the sessions, three session-app
# servers (alpha, beta, gamma) keep none of their own, and usher balances them with health checks
# and its dashboard. Prints what to open and a two-minute walk-through; Ctrl-C (or SIGTERM) stops
# everything it started, by PID.
#   PORT=8080 ADMIN_PORT=9900 REDIS_PORT=6390 APP_PORTS="9101 9102 9103" bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

PORT=${PORT:-8080}
ADMIN_PORT=${ADMIN_PORT:-9900}
REDIS_PORT=${REDIS_PORT:-6390}
APP_PORTS=${APP_PORTS:-"9101 9102 9103"}
USHER=build/src/app/usher
APP=build/examples/session-app/session-app
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
  echo "demo: port $1 did not open (in use by another program?)" >&2
  return 1
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$run" --save "60 1" \
  --logfile "$run/redis.log" &
pids+=($!)
wait_port "$REDIS_PORT"

names=(alpha beta gamma)
declare -A app_pid
i=0
for p in $APP_PORTS; do
  "$APP" --listen "127.0.0.1:$p" --name "${names[$i]}" --store redis \
    --redis "127.0.0.1:$REDIS_PORT" >"$run/${names[$i]}.log" 2>&1 &
  pids+=($!)
  app_pid[${names[$i]}]=$!
  i=$((i + 1))
done
for p in $APP_PORTS; do wait_port "$p"; done

{
  printf 'admin: { listen: 127.0.0.1:%s }\n' "$ADMIN_PORT"
  printf 'listeners:\n  - name: web\n    listen: 127.0.0.1:%s\n    pool: app\n' "$PORT"
  printf 'pools:\n  - name: app\n    balance: round-robin\n'
  printf '    health: { type: http, path: /health, interval: 1s, timeout: 500ms, rise: 2, fall: 2 }\n'
  printf '    backends:\n'
  i=0
  for p in $APP_PORTS; do printf '      - { address: 127.0.0.1:%s, name: %s }\n' "$p" "${names[$i]}"; i=$((i + 1)); done
} >"$run/usher.yaml"
"$USHER" check -c "$run/usher.yaml" >/dev/null
"$USHER" run -c "$run/usher.yaml" >"$run/usher.log" 2>&1 &
pids+=($!)
wait_port "$PORT"

url=http://127.0.0.1:$PORT
cat <<MSG

The seed system is up: one entry point, three servers, one shared state layer.
  usher        $url/             (the only address a client uses)
  dashboard    http://127.0.0.1:$ADMIN_PORT/    (health, rates, latency; Drain/Disable buttons)
  servers      alpha, beta, gamma on ports $APP_PORTS (session-app, sessions in Redis)
  redis        127.0.0.1:$REDIS_PORT

Walk-through (two minutes; docs/seed-system.md explains each step):
 1. Open $url/ and log in as alice. The page asks "who am I" every second: the answering
    server changes each time (round-robin) and you stay logged in; the visit counter climbs by one.
 2. The same with curl:
      curl -s -c $run/jar -d user=alice $url/login
      for i in 1 2 3 4 5 6; do curl -s -b $run/jar $url/me; done
 3. Kill a server for real:   kill ${app_pid[beta]}     (beta's PID)
    or press Disable on beta in the dashboard. You stay logged in, no request fails; the
    dashboard shows beta DOWN within about two seconds.
 4. Stop Redis for a moment:  kill -STOP ${pids[0]}; sleep 3; kill -CONT ${pids[0]}
    Meanwhile the servers answer 503 "session store unavailable" within a second (250 ms per
    attempt, usher retries a 503 twice elsewhere); then all is back, nobody logged out.
Logs are in $run. Stop everything with Ctrl-C (or: kill $$).
MSG
wait "${pids[-1]}"
