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
# the limit is on and keyed by the header (200, then 429 for the same key, 200 for another) and
# that wrk's script sends $KEYS keys (about one request a key passes in a second).
# Placement is "one core" (everything on CPU 0, see docs/benchmarks.md). usher's own CPU per
# request is its /proc/PID/stat time over the round divided by wrk's requests; the system's is
# 1/rps less the direct round's. Rounds alternate which usher goes first; the per-round ratio
# protected / plain is the figure to read. wrk's non-2xx count must be 0 (no 429, no 403), and
# the protected usher's refusal counters (admin /metrics) are printed at the end.
# With CALLGRIND=SECONDS, each usher then runs again under valgrind's callgrind, and its
# instructions per request over SECONDS of wrk -c4 are counted (usher's userspace only: a count
# that what else runs on the machine does not move, where the rounds' CPU times move by 10 %).
# Env: CONNS (64), ROUNDS (3), DUR (10 s), PREFIXES (10000 per list), KEYS (4), IO (io_uring),
# CALLGRIND (0: off), CPU (0), BODY (13 bytes), USHER (an already built usher: then nothing is
# built; bench/lib.sh).
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
$(usher_pool)
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

# round TARGET ROUND PORT PID -> appends
# "target round rps p50_ms p99_ms errors cpu_us_per_req non2xx user_share" (user_share: usher's
# user time over its user + system time in the round)
user_ticks() { [ "$1" = - ] && echo 0 || awk '{ print $14 }' "/proc/$1/stat"; }
round() {
  local target=$1 r=$2 port=$3 pid=$4 before after user out row non2xx
  before=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid"); user=$(user_ticks "$pid")
  out=$(taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$RUN/keys.lua" "http://127.0.0.1:$port/" 2>&1)
  after=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid"); user=$(( $(user_ticks "$pid") - user ))
  echo "$out" >>"$RUN/wrk.log"
  row=$(echo "$out" | wrk_row "$target" "$r" "$before" "$after")
  non2xx=$(echo "$out" | sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p' | grep . || echo 0)
  echo "$row $non2xx $(awk -v u="$user" -v t=$((after - before)) 'BEGIN { printf "%.3f", t ? u / t : 0 }')" |
    tee -a "$RUN/results"
}

echo "# placement: everything on CPU $CPU; wrk -t1 -c$CONNS with $KEYS X-Api-Key values; ${DUR}s rounds x $ROUNDS;" \
  "body ${BODY} bytes; usher io $IO; lists of $PREFIXES prefixes"
echo "# target round rps p50_ms p99_ms errors usher_cpu_us_per_request non2xx usher_user_share"
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
  taskset -c "$CPU" wrk -t1 -c4 -d2s -s "$RUN/keys.lua" "http://127.0.0.1:$port/" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  requests=$(taskset -c "$CPU" wrk -t1 -c4 -d"${CALLGRIND}s" -s "$RUN/keys.lua" "http://127.0.0.1:$port/" |
    awk '/requests in/ { print $1 }')
  callgrind_control -d "$pid" >/dev/null 2>&1
  # Under valgrind usher did not always act on SIGTERM; the counts are written already.
  kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  ir=$(awk '/^summary:/ { print $2 }' "$RUN/callgrind.$1.1")
  echo "$1 $requests $((ir / requests))"
}
if [ "${CALLGRIND:-0}" != 0 ]; then
  stop "$PLAIN_PID"; stop "$PROTECTED_PID"
  echo "# callgrind, wrk -t1 -c4 for ${CALLGRIND}s: target requests usher_instructions_per_request"
  for t in plain protected; do callgrind_ir "$t" | tee -a "$RUN/callgrind"; done
fi

/usr/bin/python3 - "$RUN/results" "$RUN/callgrind" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for t, r, rps, p50, p99, err, cpu, non2xx, user in rows:
    by.setdefault(t, []).append((float(rps), float(p50), float(p99), int(err), float(cpu), int(non2xx), float(user)))
print()
print("| target | req/s | p50 ms | p99 ms | non-2xx | errors | usher CPU µs/req | usher user share |")
print("|---|---|---|---|---|---|---|---|")
for t in ("plain", "protected", "direct"):
    v = by[t]
    m = [st.median(x[i] for x in v) for i in range(7)]
    cpu, user = ("-", "-") if t == "direct" else (f"{m[4]:.2f}", f"{m[6]:.2f}")
    print(f"| {t} | {m[0]:.0f} | {m[1]:.2f} | {m[2]:.2f} | {sum(x[5] for x in v)} | {sum(x[3] for x in v)} | {cpu} | {user} |")
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
try:
    ir = {t: int(i) for t, _, i in (l.split() for l in open(sys.argv[2]))}
    share = st.median(x[6] for x in by["plain"])
    more = ir["protected"] / ir["plain"] - 1
    print(f"callgrind: usher instructions per request, protected / plain: {ir['protected'] / ir['plain']:.3f} "
          f"({ir['protected']} / {ir['plain']}); user time is {share:.2f} of plain usher's CPU, so at the "
          f"same instructions per cycle its CPU per request grows by about {more * share * 100:.1f} %")
except FileNotFoundError:
    pass
PY
