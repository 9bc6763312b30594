#!/usr/bin/env bash
# What tracing costs per request when the collector is down: usher tracing every request
# (`sample: 1.0`) to a collector port nobody listens on, against the same usher without tracing,
# same backends, same load, interleaved rounds.
#
#   bash bench/tracing.sh                 # 64 connections, 3 rounds of 10 s each
#   CONNS=64 ROUNDS=3 DUR=5 bash bench/tracing.sh
#
# Targets (each `usher run -c`, one worker, no access log, an admin listener):
#   plain   a listener and a default route to the pool of three backends;
#   traced  the same plus `tracing: { otlp: http://127.0.0.1:PORT/v1/traces, sample: 1.0 }`, PORT
#           closed: every request starts a sampled trace (wrk sends no traceparent), its backend
#           gets a traceparent, and a server span and a client span go to the worker's ring, from
#           which the exporter thread drops them (it tries the collector once a second);
#   direct  the first backend without a proxy (for the system's cost, below).
# Placement is "one core" (everything on CPU 0, see docs/benchmarks.md), so the exporter thread's
# work is counted too: usher's CPU per request is its /proc/PID/stat time (all threads) over the
# round divided by wrk's requests. Rounds alternate which usher goes first; the per-round ratio
# traced / plain is the figure to read. At the end the traced usher's span counters (admin
# /metrics) show that spans were made and dropped.
# With CALLGRIND=SECONDS, each usher then runs again under valgrind's callgrind and its
# instructions per request over SECONDS of wrk -c4 are counted (every thread; a count the rest of
# the machine does not move).
# Env: CONNS (64), ROUNDS (3), DUR (10 s), IO (io_uring), CALLGRIND (0: off), CPU (0), BODY (13
# bytes), USHER (an already built usher: then nothing is built; bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
IO=${IO:-io_uring}
. bench/lib.sh

start_backends
COLLECTOR=$(free_port)  # nothing listens there

# usher_conf PORT ADMIN_PORT [traced]
usher_conf() {
  local tracing=""
  [ -z "${3:-}" ] || tracing="tracing: { otlp: \"http://127.0.0.1:$COLLECTOR/v1/traces\", sample: 1.0 }"
  cat <<CONF
workers: 1
io_backend: $IO
access_log: off
admin: { listen: 127.0.0.1:$2 }
$tracing
listeners:
  - name: web
    listen: 127.0.0.1:$1
    routes:
      - pool: web
$(usher_pool)
CONF
}
PLAIN=$(free_port); TRACED=$(free_port); PLAIN_ADMIN=$(free_port); TRACED_ADMIN=$(free_port)
usher_conf "$PLAIN" "$PLAIN_ADMIN" >"$RUN/plain.yaml"
usher_conf "$TRACED" "$TRACED_ADMIN" traced >"$RUN/traced.yaml"
for c in plain traced; do "$USHER" check -c "$RUN/$c.yaml" >/dev/null; done
USHER_IO_BACKEND=$IO start "$USHER" run -c "$RUN/plain.yaml"; PLAIN_PID=$LAST
USHER_IO_BACKEND=$IO start "$USHER" run -c "$RUN/traced.yaml"; TRACED_PID=$LAST
for p in $PLAIN $TRACED $PLAIN_ADMIN $TRACED_ADMIN; do wait_port "$p"; done

# The traced usher traces: its backend gets a sampled traceparent.
got=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TRACED/")
[ "$got" = 200 ] || { echo "bench: the traced usher answered $got" >&2; exit 1; }
spans() { curl -s --max-time 5 "http://127.0.0.1:$TRACED_ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# round TARGET ROUND PORT PID -> appends
# "target round rps p50_ms p99_ms errors cpu_us_per_req user_share" (user_share: usher's user
# time over its user + system time in the round)
user_ticks() { [ "$1" = - ] && echo 0 || awk '{ print $14 }' "/proc/$1/stat"; }
round() {
  local target=$1 r=$2 port=$3 pid=$4 before after user out
  before=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid"); user=$(user_ticks "$pid")
  out=$(taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:$port/" 2>&1)
  after=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid"); user=$(( $(user_ticks "$pid") - user ))
  echo "$out" >>"$RUN/wrk.log"
  echo "$(echo "$out" | wrk_row "$target" "$r" "$before" "$after")" \
    "$(awk -v u="$user" -v t=$((after - before)) 'BEGIN { printf "%.3f", t ? u / t : 0 }')" | tee -a "$RUN/results"
}

echo "# placement: everything on CPU $CPU; wrk -t1 -c$CONNS; ${DUR}s rounds x $ROUNDS; body ${BODY} bytes;" \
  "usher io $IO; traced: sample 1.0, collector down"
echo "# target round rps p50_ms p99_ms errors usher_cpu_us_per_request usher_user_share"
for p in $PLAIN $TRACED $B1; do taskset -c "$CPU" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$p/" >/dev/null 2>&1; done
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    round plain "$r" "$PLAIN" "$PLAIN_PID"; round traced "$r" "$TRACED" "$TRACED_PID"
  else
    round traced "$r" "$TRACED" "$TRACED_PID"; round plain "$r" "$PLAIN" "$PLAIN_PID"
  fi
  round direct "$r" "$B1" -
done
sleep 1.5  # the exporter takes what the last round left
echo "# traced usher: spans dropped $(spans usher_trace_spans_dropped_total), exported" \
  "$(spans usher_trace_spans_exported_total), export failures $(spans usher_trace_export_failures_total)"

# callgrind_ir NAME: NAME's config under callgrind; after a warm-up, the counters are zeroed, wrk
# runs $CALLGRIND seconds and they are dumped -> "NAME requests instructions_per_request".
callgrind_ir() {
  local port admin pid requests ir
  port=$(free_port); admin=$(free_port)
  sed "s/^    listen: 127.0.0.1:.*/    listen: 127.0.0.1:$port/; s/^admin: .*/admin: { listen: 127.0.0.1:$admin }/" \
    "$RUN/$1.yaml" >"$RUN/callgrind-$1.yaml"
  USHER_IO_BACKEND=$IO start valgrind --tool=callgrind --callgrind-out-file="$RUN/callgrind.$1" \
    "$USHER" run -c "$RUN/callgrind-$1.yaml"
  pid=$LAST
  wait_port "$port" 1200
  taskset -c "$CPU" wrk -t1 -c4 -d2s "http://127.0.0.1:$port/" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  requests=$(taskset -c "$CPU" wrk -t1 -c4 -d"${CALLGRIND}s" "http://127.0.0.1:$port/" | awk '/requests in/ { print $1 }')
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  ir=$(cat "$RUN"/callgrind."$1".* | awk '/^summary:/ { s += $2 } END { print s }')
  echo "$1 $requests $((ir / requests))"
}
if [ "${CALLGRIND:-0}" != 0 ]; then
  stop "$PLAIN_PID"; stop "$TRACED_PID"
  echo "# callgrind, wrk -t1 -c4 for ${CALLGRIND}s: target requests usher_instructions_per_request"
  for t in plain traced; do callgrind_ir "$t" | tee -a "$RUN/callgrind"; done
fi

/usr/bin/python3 - "$RUN/results" "$RUN/callgrind" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for t, r, rps, p50, p99, err, cpu, user in rows:
    by.setdefault(t, []).append((float(rps), float(p50), float(p99), int(err), float(cpu), float(user)))
print()
print("| target | req/s | p50 ms | p99 ms | errors | usher CPU µs/req | usher user share |")
print("|---|---|---|---|---|---|---|")
for t in ("plain", "traced", "direct"):
    m = [st.median(x[i] for x in by[t]) for i in range(6)]
    cpu, user = ("-", "-") if t == "direct" else (f"{m[4]:.2f}", f"{m[5]:.2f}")
    print(f"| {t} | {m[0]:.0f} | {m[1]:.2f} | {m[2]:.2f} | {sum(x[3] for x in by[t])} | {cpu} | {user} |")
print()
rounds = list(zip(by["traced"], by["plain"], by["direct"]))
cpu = [p[4] / q[4] for p, q, _ in rounds]
rps = [p[0] / q[0] for p, q, _ in rounds]
system = [(1e6 / p[0] - 1e6 / d[0]) / (1e6 / q[0] - 1e6 / d[0]) for p, q, d in rounds]
print("traced / plain, round by round: usher CPU per request " + " ".join(f"{x:.3f}" for x in cpu) +
      "; req/s " + " ".join(f"{x:.3f}" for x in rps) + "; system µs per request over direct's " +
      " ".join(f"{x:.3f}" for x in system))
print(f"traced / plain, median of {len(rounds)} rounds: usher CPU per request {st.median(cpu):.3f}, "
      f"req/s {st.median(rps):.3f}, system {st.median(system):.3f}")
errors = sum(x[3] for t in ("plain", "traced") for x in by[t])
verdict = "met" if st.median(cpu) < 1.03 and errors == 0 else "NOT met"
print(f"target (usher CPU per request within 3 % of plain, no errors): {verdict}")
try:
    ir = {t: int(i) for t, _, i in (l.split() for l in open(sys.argv[2]))}
    share = st.median(x[5] for x in by["plain"])
    more = ir["traced"] / ir["plain"] - 1
    print(f"callgrind: usher instructions per request, traced / plain: {ir['traced'] / ir['plain']:.3f} "
          f"({ir['traced']} / {ir['plain']}); user time is {share:.2f} of plain usher's CPU, so at the "
          f"same instructions per cycle its CPU per request grows by about {more * share * 100:.1f} %")
except FileNotFoundError:
    pass
PY
