#!/usr/bin/env bash
# Where usher's CPU goes: one usher worker in front of an nginx backend under wrk, all on one CPU
# (docs/benchmarks.md), profiled with `perf stat` (counters per request) and `perf record`
# (hottest symbols, kernel included). Valgrind's callgrind works the same way with TOOL=callgrind
# (slow: instructions per request of usher's own code, no kernel).
#
#   bash bench/profile.sh                       # io_uring, 64 connections, 5 s
#   BACKEND=epoll CONNS=1000 bash bench/profile.sh
#   TOOL=callgrind bash bench/profile.sh        # then: callgrind_annotate $OUT/callgrind.out
#   USHER_ARGS="--access-log /tmp/access.log" bash bench/profile.sh   # with more of usher on
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

BACKEND=${BACKEND:-io_uring}
CONNS=${CONNS:-64}
DUR=${DUR:-5}
CPU=${CPU:-0}
TOOL=${TOOL:-perf}
OUT=${OUT:-build/profile}
mkdir -p "$OUT"
RUN=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$RUN"' EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "profile: port $1 did not open" >&2; exit 1
}

B=$(free_port); P=$(free_port)
cat >"$RUN/backend.conf" <<CONF
worker_processes 1; pid $RUN/backend.pid; error_log $RUN/backend.err crit; daemon off;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000;
  server { listen 127.0.0.1:$B; location / { return 200 "hello, world\n"; } } }
CONF
taskset -c "$CPU" nginx -c "$RUN/backend.conf" & PIDS+=($!)
wait_port "$B"
usher=(build/src/app/usher proxy --listen "127.0.0.1:$P" --workers 1 --to "127.0.0.1:$B" ${USHER_ARGS:-})
if [ "$TOOL" = callgrind ]; then
  USHER_IO_BACKEND=$BACKEND taskset -c "$CPU" valgrind --tool=callgrind \
    --callgrind-out-file="$OUT/callgrind.out" "${usher[@]}" >"$OUT/usher.log" 2>&1 &
else
  USHER_IO_BACKEND=$BACKEND taskset -c "$CPU" "${usher[@]}" >"$OUT/usher.log" 2>&1 &
fi
USHER=$!; PIDS+=($USHER)
wait_port "$P"
taskset -c "$CPU" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$P/" >/dev/null  # warm up

if [ "$TOOL" = callgrind ]; then
  taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$P/" | tee "$OUT/wrk.txt"
  kill "$USHER"; wait "$USHER" 2>/dev/null || true
  echo "callgrind: $OUT/callgrind.out (callgrind_annotate $OUT/callgrind.out | head -40)"
  callgrind_annotate "$OUT/callgrind.out" 2>/dev/null | head -40
  exit 0
fi
perf stat -e task-clock,context-switches,cycles,instructions -p "$USHER" -o "$OUT/stat.txt" -- sleep "$DUR" &
STAT=$!
perf record -g -p "$USHER" -o "$OUT/perf.data" -- sleep "$DUR" >/dev/null 2>&1 &
RECORD=$!
taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$P/" | tee "$OUT/wrk.txt"
wait "$STAT" "$RECORD"
requests=$(awk '/requests in/ { print $1 }' "$OUT/wrk.txt")
cat "$OUT/stat.txt"
# Counters a VM does not expose read "<not supported>" and are skipped.
awk -v n="$requests" '{ gsub(",", "", $1) } $1 !~ /^[0-9.]+$/ { next }
  /task-clock/ { printf "usher CPU per request: %.2f us\n", $1 * 1000 / n }
  /instructions/ { printf "instructions per request: %.0f\n", $1 / n }
  /context-switches/ { printf "context switches per request: %.3f\n", $1 / n }' "$OUT/stat.txt"
echo "CPU by binary (perf report --sort dso):"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -4
echo "CPU by thread (perf report --sort comm):"
perf report -i "$OUT/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | head -6
echo "hottest symbols (perf report --no-children, $OUT/perf.data):"
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
  grep -E '^ +[0-9.]+%' | head -25
