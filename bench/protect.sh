#!/usr/bin/env bash
# What protection costs per request: usher with allow/deny lists and rate limits on every request
# against the same usher without them, same backends, same load, interleaved rounds.
#
#   bash bench/protect.sh                 # 64 connections, 3 rounds of 10 s each
#   ROUNDS=1 DUR=3 bash bench/protect.sh
#
# Targets (each `usher run -c`, one worker, no access log, an admin listener):
#   plain      a listener and a default route to the pool of three backends;
#   protected  the same plus, on the listener, an `allow` list of $PREFIXES random IPv4 prefixes and
#              127.0.0.0/8, a `deny` list of $PREFIXES others and `rate_limit: { key: client-ip }`;
#              on the route, the same two lists and `rate_limit: { key: "header:X-Api-Key" }`.
#              Both limits are 1000000/s with a burst of 1000000 (the most the config allows): every
#              request is checked against both, none is refused;
#   direct     the first backend without a proxy (for the system's cost, below).
# A listener's lists are checked once per connection (at accept), a route's once per request, so
# with keep-alive the route's lists are the ones every request pays for. All IPv4, so the client's
# lookups search the largest table. wrk sends every target the same requests: a Lua script cycles
# through $KEYS X-Api-Key values, formatted once.
# Before the rounds, a third usher with the protected config but a route limit of 1/s checks that
# the limit is on and keyed by the header (200, then 429 for the same key, 200 for another).
# Placement is "one core" (everything on CPU 0, see docs/benchmarks.md). usher's own CPU per
# request is its /proc/PID/stat time over the round divided by wrk's requests; the system's is
# 1/rps less the direct round's. Rounds alternate which usher goes first; the per-round ratio
# protected / plain is the figure to read. wrk's non-2xx count must be 0 (no 429, no 403), and
# the protected usher's refusal counters (admin /metrics) are printed at the end.
# Env: CONNS (64), ROUNDS (3), DUR (10 s), PREFIXES (10000 per list), KEYS (4), IO (io_uring),
# CPU (0), BODY (13 bytes), USHER (an already built usher: then nothing is built; bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
PREFIXES=${PREFIXES:-10000}
KEYS=${KEYS:-4}
IO=${IO:-io_uring}
. bench/lib.sh

start_backends

# The lists, as YAML flow sequences: random IPv4 prefixes from /16 to /32 outside 127.0.0.0/8
# (fixed seeds, host bits cleared); the allow list also admits the client, 127.0.0.1.
prefixes() {
  /usr/bin/python3 - "$1" "$PREFIXES" <<'PY'
import ipaddress, random, sys
rng, n = random.Random(int(sys.argv[1])), int(sys.argv[2])
out = []
while len(out) < n:
    length = rng.randint(16, 32)
    address = rng.getrandbits(32)
    if address >> 24 in (0, 127) or address >> 28 >= 14:  # this network, loopback, multicast, reserved
        continue
    out.append(str(ipaddress.ip_network((address, length), strict=False)))
print(", ".join(out))
PY
}
ALLOW="[127.0.0.0/8, $(prefixes 1)]"
DENY="[$(prefixes 2)]"

# usher_conf PORT ADMIN_PORT [ROUTE_RATE ROUTE_BURST]: the plain config, or with a route limit the protected one.
usher_conf() {
  local protect_listener="" protect_route=""
  if [ -n "${3:-}" ]; then
    protect_listener="    allow: $ALLOW
    deny: $DENY
    rate_limit: { key: client-ip, rate: 1000000/s, burst: 1000000 }"
    protect_route="        allow: $ALLOW
        deny: $DENY
        rate_limit: { key: \"header:X-Api-Key\", rate: $3, burst: $4 }"
  fi
  cat <<CONF
workers: 1
io_backend: $IO
access_log: off
admin: { listen: 127.0.0.1:$2 }
listeners:
  - name: web
    listen: 127.0.0.1:$1
    protocol: http
$protect_listener
    routes:
      - pool: web
$protect_route
pools:
  - name: web
    balance: round-robin
    backends:
      - { address: 127.0.0.1:$B1 }
      - { address: 127.0.0.1:$B2 }
      - { address: 127.0.0.1:$B3 }
CONF
}
PLAIN=$(free_port); PROTECTED=$(free_port); CHECK=$(free_port)
PLAIN_ADMIN=$(free_port); PROTECTED_ADMIN=$(free_port); CHECK_ADMIN=$(free_port)
usher_conf "$PLAIN" "$PLAIN_ADMIN" >"$RUN/plain.yaml"
usher_conf "$PROTECTED" "$PROTECTED_ADMIN" 1000000/s 1000000 >"$RUN/protected.yaml"
usher_conf "$CHECK" "$CHECK_ADMIN" 1/s 1 >"$RUN/check.yaml"
for c in plain protected check; do "$USHER" check -c "$RUN/$c.yaml" >/dev/null; done

USHER_IO_BACKEND=$IO start "$USHER" run -c "$RUN/plain.yaml"; PLAIN_PID=$LAST
USHER_IO_BACKEND=$IO start "$USHER" run -c "$RUN/protected.yaml"; PROTECTED_PID=$LAST
USHER_IO_BACKEND=$IO start "$USHER" run -c "$RUN/check.yaml"; CHECK_PID=$LAST
for p in $PLAIN $PROTECTED $CHECK $PLAIN_ADMIN $PROTECTED_ADMIN $CHECK_ADMIN; do wait_port "$p"; done

cat >"$RUN/keys.lua" <<LUA
-- $KEYS X-Api-Key values in turn; each request is formatted once, in init.
local requests, i = {}, 0
function init(args)
  for k = 1, $KEYS do requests[k] = wrk.format("GET", "/", { ["X-Api-Key"] = "key-" .. k }) end
end
function request()
  i = i % $KEYS + 1
  return requests[i]
end
LUA

# The limit is on and keyed by X-Api-Key: 200, then 429 for the same key, 200 for another; and
# wrk's script sends $KEYS keys: in a second at 1/s with a burst of 1, about one request a key passes.
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-Api-Key: $2" "http://127.0.0.1:$1/"; }
got="$(status "$CHECK" a) $(status "$CHECK" a) $(status "$CHECK" b)"
echo "# check: route limit 1/s keyed by X-Api-Key: a a b -> $got"
[ "$got" = "200 429 200" ] || { echo "bench: the rate limit did not act as configured" >&2; exit 1; }
limited() { curl -s --max-time 5 "http://127.0.0.1:$CHECK_ADMIN/metrics" | awk '/^usher_route_rate_limited_total/ { print $2 }'; }
before=$(limited)
total=$(taskset -c "$CPU" wrk -t1 -c4 -d1s -s "$RUN/keys.lua" "http://127.0.0.1:$CHECK/" | awk '/requests in/ { print $1 }')
limited=$(( $(limited) - before ))
echo "# check: wrk's script against it for 1 s: $((total - limited)) of $total requests passed ($KEYS keys)"
[ $((total - limited)) -ge "$KEYS" ] && [ $((total - limited)) -le $((3 * KEYS)) ] ||
  { echo "bench: wrk's requests do not carry $KEYS keys" >&2; exit 1; }
stop "$CHECK_PID"
kept=(); for p in "${PIDS[@]}"; do [ "$p" = "$CHECK_PID" ] || kept+=("$p"); done; PIDS=("${kept[@]}")

# round TARGET ROUND PORT PID -> appends "target round rps p50_ms p99_ms errors cpu_us_per_req non2xx"
round() {
  local target=$1 r=$2 port=$3 pid=$4 before after out row
  before=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  out=$(taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$RUN/keys.lua" "http://127.0.0.1:$port/" 2>&1)
  after=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  echo "$out" >>"$RUN/wrk.log"
  row=$(echo "$out" | wrk_row "$target" "$r" "$before" "$after")
  echo "$row $(echo "$out" | sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p' | grep . || echo 0)" |
    tee -a "$RUN/results"
}

echo "# placement: everything on CPU $CPU; wrk -t1 -c$CONNS with $KEYS X-Api-Key values; ${DUR}s rounds x $ROUNDS;" \
  "body ${BODY} bytes; usher io $IO; lists of $PREFIXES prefixes"
echo "# target round rps p50_ms p99_ms errors usher_cpu_us_per_request non2xx"
for p in $PLAIN $PROTECTED $B1; do
  taskset -c "$CPU" wrk -t1 -c"$CONNS" -d2s -s "$RUN/keys.lua" "http://127.0.0.1:$p/" >/dev/null 2>&1
done
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    round plain "$r" "$PLAIN" "$PLAIN_PID"; round protected "$r" "$PROTECTED" "$PROTECTED_PID"
  else
    round protected "$r" "$PROTECTED" "$PROTECTED_PID"; round plain "$r" "$PLAIN" "$PLAIN_PID"
  fi
  round direct "$r" "$B1" -
done

echo "# protected usher's counters:" $(curl -s --max-time 5 "http://127.0.0.1:$PROTECTED_ADMIN/metrics" |
  grep -E '^usher_(listener_rate_limited|route_rate_limited|route_denied|listener_refused_connections)_total' |
  tr '\n' ' ')

/usr/bin/python3 - "$RUN/results" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for t, r, rps, p50, p99, err, cpu, non2xx in rows:
    by.setdefault(t, []).append((float(rps), float(p50), float(p99), int(err), float(cpu), int(non2xx)))
print()
print("| target | req/s | p50 ms | p99 ms | non-2xx | errors | usher CPU µs/req |")
print("|---|---|---|---|---|---|---|")
for t in ("plain", "protected", "direct"):
    v = by[t]
    m = [st.median(x[i] for x in v) for i in range(5)]
    cpu = "-" if t == "direct" else f"{m[4]:.2f}"
    print(f"| {t} | {m[0]:.0f} | {m[1]:.2f} | {m[2]:.2f} | {sum(x[5] for x in v)} | {sum(x[3] for x in v)} | {cpu} |")
print()
rounds = list(zip(by["protected"], by["plain"], by["direct"]))
cpu = [p[4] / q[4] for p, q, _ in rounds]
rps = [p[0] / q[0] for p, q, _ in rounds]
system = [(1e6 / p[0] - 1e6 / d[0]) / (1e6 / q[0] - 1e6 / d[0]) for p, q, d in rounds]
print("protected / plain, round by round: usher CPU per request " + " ".join(f"{x:.3f}" for x in cpu) +
      "; req/s " + " ".join(f"{x:.3f}" for x in rps) + "; system µs per request over direct's " +
      " ".join(f"{x:.3f}" for x in system))
print(f"protected / plain, median of {len(rounds)} rounds: usher CPU per request {st.median(cpu):.3f}, "
      f"req/s {st.median(rps):.3f}, system {st.median(system):.3f}")
non2xx = sum(x[5] for t in ("plain", "protected") for x in by[t])
verdict = "met" if st.median(cpu) <= 1.10 and non2xx == 0 else "NOT met"
print(f"target (usher CPU per request within 10 % of plain, no non-2xx): {verdict}")
PY
