#!/usr/bin/env bash
# usher's `protocol: tcp` listener (its default `relay: auto`, which copies through the worker's
# buffers until a direction streams and then splices; `relay: copy`; `relay: splice`) against HAProxy 2.6 `mode tcp` and nginx 1.22 `stream`, same backends, same run, interleaved rounds, all in the one-core placement
# (everything on CPU 0, docs/benchmarks.md says why):
#
#   1. small requests: wrk's keep-alive HTTP/1.1 GETs (13-byte answers from the three nginx
#      backends of bench/lib.sh) through each layer-4 proxy: req/s, p50/p99, the proxy's CPU per
#      request, and each proxy's req/s over HAProxy's. Goal: usher >= 1.4x HAProxy.
#   2. bulk: zeros streamed through each proxy by build/bench/tcp_stream (bench/tcp_stream.cc) on
#      1 and on 100 connections, both ways: "up" from the client to a sink that counts them,
#      "down" from a source to the client. GB/s (10^9 bytes) and the proxy's CPU seconds per GB.
#      Goal: usher ahead of both in GB/s and in CPU per GB. On 100 downloads, the connections that
#      got nothing in the window are printed per target (starvation).
#
#   bash bench/tcp.sh                          # 3 rounds: 10 s of wrk, 5 s per transfer
#   ROUNDS=1 DUR=3 BULK_DUR=2 bash bench/tcp.sh
#   STRACE=3 PERF=5 bash bench/tcp.sh          # then syscalls per request, and a profile of usher
#
# Targets, one worker or thread each, logs off, run as the current user, each listening for the
# three streams (HTTP backends, sink, source):
#   haproxy         `nbthread 1`, `mode tcp`, round-robin over the HTTP backends;
#   haproxy-splice  the same with `option splice-auto` (bulk only: HAProxy's best for bulk);
#   nginx           `worker_processes 1`, `stream` with `proxy_half_close on` (its default off cuts a
#                   stream short after the client's half-close); its worker's CPU is measured;
#   usher           `usher run -c`, `workers: 1`, `protocol: tcp` listeners, io_uring, the default
#                   `relay: auto` (copies, and splices a direction once it streams);
#   usher-copy      the same with `relay: copy` on each listener (through the worker's buffers);
#   usher-splice    the same with `relay: splice` on each listener (splice(2) both ways);
#   usher-epoll     usher on epoll, `relay: auto`;
#   direct          the first backend, the sink or the source without a proxy.
# The order of the targets turns by one each round. A proxy's CPU is its /proc/PID/stat user +
# system time over the round.
# Before measuring, the script waits for the machine to be quiet: the 1-minute load average below
# QUIET_LOAD (0.7), checked every 60 s for up to QUIET_WAIT seconds (1200); then it measures anyway
# and says so.
# RELAYS=1: two more targets, bench/relay_proxy on io_uring (the smallest layer-4 proxy on usher's
# reactor, one process per stream): relay-splice relays with splice(2) as `relay: splice` does,
# relay-copy through a 16 KiB buffer with the reactor's read and write; each way of relaying
# without the listener around it (off by default: usher and usher-splice measure both ways).
# STRACE=SECONDS: afterwards, `strace -c -f` on each proxy for SECONDS of wrk at $CONNS: syscalls
# per request (strace slows the proxy down; the counts, not the rates, are the figure).
# PERF=SECONDS: afterwards, for each proxy over SECONDS of wrk at $CONNS, `perf stat` per request
# (CPU, context switches, voluntary and involuntary from /proc/PID/status), and `perf record -g`
# on HAProxy and usher (io_uring): time by binary and by system call (inclusive), and usher's
# hottest symbols.
# Env: ROUNDS (3), DUR (10 s), CONNS (64), BULK_DUR (5 s), BULK_CONNS ("1 100"), DIRECTIONS
# ("up down"), QUIET_LOAD, QUIET_WAIT, RELAYS (0), STRACE (0), PERF (0), CPU (0), BODY (13 bytes), USHER (an
# already built usher: then nothing is built but build/bench/tcp_stream, if missing; bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
CONNS=${CONNS:-64}
BULK_DUR=${BULK_DUR:-5}
BULK_CONNS=${BULK_CONNS:-"1 100"}
DIRECTIONS=${DIRECTIONS:-"up down"}
QUIET_LOAD=${QUIET_LOAD:-0.7}
QUIET_WAIT=${QUIET_WAIT:-1200}
STRACE=${STRACE:-0}
PERF=${PERF:-0}
RELAYS=${RELAYS:-0}
. bench/lib.sh
STREAM=build/bench/tcp_stream
RELAY=build/bench/relay_proxy
[ -x "$STREAM" ] || cmake --build build --target tcp_stream >/dev/null
[ "$RELAYS" = 0 ] || [ -x "$RELAY" ] || cmake --build build --target relay_proxy >/dev/null

start_backends
SINK=$(free_port); SOURCE=$(free_port)
start "$STREAM" sink "$SINK"
start "$STREAM" source "$SOURCE"
wait_port "$SINK"; wait_port "$SOURCE"

# Each proxy listens on three ports: HTTP[t] (to the three backends), UP[t] (to the sink) and
# DOWN[t] (to the source); PID[t] is the process whose CPU is measured (PID_UP[t] and PID_DOWN[t]
# where the streams have their own processes).
PROXIES=(haproxy haproxy-splice nginx usher usher-copy usher-splice usher-epoll)
[ "$RELAYS" = 0 ] || PROXIES+=(relay-splice relay-copy)
declare -A HTTP UP DOWN PID PID_UP PID_DOWN
for t in "${PROXIES[@]}"; do
  HTTP[$t]=$(free_port); UP[$t]=$(free_port); DOWN[$t]=$(free_port)
done
HTTP[direct]=$B1; UP[direct]=$SINK; DOWN[direct]=$SOURCE; PID[direct]=-

haproxy_cfg() {  # TARGET EXTRA
  cat <<CONF
global
  nbthread 1
  maxconn 4000
  ulimit-n 20000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  $2
frontend http
  bind 127.0.0.1:${HTTP[$1]}
  default_backend http
backend http
  balance roundrobin
  server s1 127.0.0.1:$B1
  server s2 127.0.0.1:$B2
  server s3 127.0.0.1:$B3
frontend up
  bind 127.0.0.1:${UP[$1]}
  default_backend sink
backend sink
  server sink 127.0.0.1:$SINK
frontend down
  bind 127.0.0.1:${DOWN[$1]}
  default_backend source
backend source
  server source 127.0.0.1:$SOURCE
CONF
}
haproxy_cfg haproxy "" >"$RUN/haproxy.cfg"
haproxy_cfg haproxy-splice "option splice-auto" >"$RUN/haproxy-splice.cfg"

# As root, nginx's workers would run as nobody: keep them the current user's.
NGINX_USER=""
[ "$(id -u)" != 0 ] || NGINX_USER="user $(id -un) $(id -gn);"
cat >"$RUN/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
$NGINX_USER
worker_processes 1; worker_rlimit_nofile 20000; pid $RUN/nginx.pid; error_log $RUN/nginx.err crit; daemon off;
events { worker_connections 10000; }
stream {
  upstream http { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; }
  server { listen 127.0.0.1:${HTTP[nginx]} backlog=4096; proxy_pass http; proxy_half_close on; }
  server { listen 127.0.0.1:${UP[nginx]}; proxy_pass 127.0.0.1:$SINK; proxy_half_close on; }
  server { listen 127.0.0.1:${DOWN[nginx]}; proxy_pass 127.0.0.1:$SOURCE; proxy_half_close on; }
}
CONF

usher_conf() {  # TARGET IO_BACKEND RELAY
  cat <<CONF
workers: 1
io_backend: $2
access_log: off
listeners:
  - { name: http, listen: "127.0.0.1:${HTTP[$1]}", protocol: tcp, pool: http, relay: $3 }
  - { name: up, listen: "127.0.0.1:${UP[$1]}", protocol: tcp, pool: sink, relay: $3 }
  - { name: down, listen: "127.0.0.1:${DOWN[$1]}", protocol: tcp, pool: source, relay: $3 }
pools:
  - name: http
    balance: round-robin
    backends: [127.0.0.1:$B1, 127.0.0.1:$B2, 127.0.0.1:$B3]
  - { name: sink, backends: [127.0.0.1:$SINK] }
  - { name: source, backends: [127.0.0.1:$SOURCE] }
CONF
}
usher_conf usher io_uring auto >"$RUN/usher.yaml"
usher_conf usher-copy io_uring copy >"$RUN/usher-copy.yaml"
usher_conf usher-splice io_uring splice >"$RUN/usher-splice.yaml"
usher_conf usher-epoll epoll auto >"$RUN/usher-epoll.yaml"
for c in usher usher-copy usher-splice usher-epoll; do "$USHER" check -c "$RUN/$c.yaml" >/dev/null; done

start haproxy -db -f "$RUN/haproxy.cfg"; PID[haproxy]=$LAST
start haproxy -db -f "$RUN/haproxy-splice.cfg"; PID[haproxy-splice]=$LAST
start nginx -e "$RUN/nginx.err" -c "$RUN/nginx.conf"; NGINX_PID=$LAST
USHER_IO_BACKEND=io_uring start "$USHER" run -c "$RUN/usher.yaml"; PID[usher]=$LAST
USHER_IO_BACKEND=io_uring start "$USHER" run -c "$RUN/usher-copy.yaml"; PID[usher-copy]=$LAST
USHER_IO_BACKEND=io_uring start "$USHER" run -c "$RUN/usher-splice.yaml"; PID[usher-splice]=$LAST
USHER_IO_BACKEND=epoll start "$USHER" run -c "$RUN/usher-epoll.yaml"; PID[usher-epoll]=$LAST
if [ "$RELAYS" != 0 ]; then
  for mode in splice copy; do
    t=relay-$mode
    start "$RELAY" "127.0.0.1:${HTTP[$t]}" "127.0.0.1:$B1,127.0.0.1:$B2,127.0.0.1:$B3" io_uring $mode
    PID[$t]=$LAST
    start "$RELAY" "127.0.0.1:${UP[$t]}" "127.0.0.1:$SINK" io_uring $mode; PID_UP[$t]=$LAST
    start "$RELAY" "127.0.0.1:${DOWN[$t]}" "127.0.0.1:$SOURCE" io_uring $mode; PID_DOWN[$t]=$LAST
  done
fi
for t in "${PROXIES[@]}"; do
  for p in ${HTTP[$t]} ${UP[$t]} ${DOWN[$t]}; do wait_port "$p"; done
done
# nginx's master forks the worker that does the work: measure the worker.
sleep 0.3
PID[nginx]=$(pgrep -P "$NGINX_PID" | head -1)
for t in direct "${PROXIES[@]}"; do
  PID_UP[$t]=${PID_UP[$t]:-${PID[$t]}}; PID_DOWN[$t]=${PID_DOWN[$t]:-${PID[$t]}}
done

# wait_quiet: returns once the 1-minute load average is below $QUIET_LOAD, or after $QUIET_WAIT s.
load1() { cut -d' ' -f1 /proc/loadavg; }
wait_quiet() {
  local waited=0
  while awk -v l="$(load1)" -v q="$QUIET_LOAD" 'BEGIN { exit !(l >= q) }'; do
    if [ "$waited" -ge "$QUIET_WAIT" ]; then
      echo "# the machine did not get quiet: load average $(load1) after ${waited} s; measuring anyway"
      return
    fi
    echo "# load average $(load1) >= $QUIET_LOAD, waiting 60 s" >&2
    sleep 60; waited=$((waited + 60))
  done
  echo "# quiet: load average $(load1) after ${waited} s of waiting"
}

# turn N WORDS...: the words rotated left by N.
turn() { local n=$1; shift; local a=("$@"); local k=$((n % ${#a[@]})); echo "${a[@]:k}" "${a[@]:0:k}"; }

# small TARGET ROUND -> appends "target round rps p50_ms p99_ms errors cpu_us_per_request"
small() {
  local t=$1 r=$2 pid=${PID[$1]} before after out
  before=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  out=$(timeout $((DUR + 30)) taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "http://127.0.0.1:${HTTP[$t]}/" 2>&1)
  after=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  echo "$out" >>"$RUN/wrk.log"
  echo "$out" | wrk_row "$t" "$r" "$before" "$after" | tee -a "$RUN/small"
}

# bulk TARGET DIRECTION CONNS ROUND -> appends
# "target direction conns round bytes seconds fairness empty last_first proxy_ticks" (tcp_stream's
# report, bench/tcp_stream.cc: Jain's index of the bytes per connection, the connections that
# moved nothing, and down the seconds until the last connection's first byte)
bulk() {
  local t=$1 dir=$2 conns=$3 r=$4 pid port before after out
  if [ "$dir" = up ]; then port=${UP[$t]} pid=${PID_UP[$t]}; else port=${DOWN[$t]} pid=${PID_DOWN[$t]}; fi
  before=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  out=$(timeout $((BULK_DUR + 60)) taskset -c "$CPU" "$STREAM" "$dir" "$port" "$conns" "$BULK_DUR")
  after=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  echo "$t $dir $conns $r $out $((after - before))" | tee -a "$RUN/bulk"
}

wait_quiet
echo "# placement: everything on CPU $CPU; $ROUNDS rounds; load average at the start $(load1)"
echo "# small requests: wrk -t1 -c$CONNS -d${DUR}s, body $BODY bytes"
echo "# target round rps p50_ms p99_ms errors proxy_cpu_us_per_request"
SMALL_TARGETS=(direct haproxy nginx usher usher-copy usher-splice usher-epoll)
[ "$RELAYS" = 0 ] || SMALL_TARGETS+=(relay-splice relay-copy)
for t in "${SMALL_TARGETS[@]}"; do
  timeout 40 taskset -c "$CPU" wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:${HTTP[$t]}/" >/dev/null 2>&1
done
for r in $(seq 1 "$ROUNDS"); do
  for t in $(turn $((r - 1)) "${SMALL_TARGETS[@]}"); do small "$t" "$r"; done
done
echo "# load average after the small requests $(load1)"

echo "# bulk: build/bench/tcp_stream DIRECTION PORT CONNS $BULK_DUR (directions: $DIRECTIONS)"
echo "# target direction conns round bytes seconds fairness empty last_first_s proxy_ticks(1/$HZ s)"
BULK_TARGETS=(direct haproxy haproxy-splice nginx usher usher-copy usher-splice usher-epoll)
[ "$RELAYS" = 0 ] || BULK_TARGETS+=(relay-splice relay-copy)
for t in "${BULK_TARGETS[@]}"; do
  timeout 60 taskset -c "$CPU" "$STREAM" up "${UP[$t]}" 10 1 >/dev/null
done
for dir in $DIRECTIONS; do
  for conns in $BULK_CONNS; do
    for r in $(seq 1 "$ROUNDS"); do
      for t in $(turn $((r - 1)) "${BULK_TARGETS[@]}"); do bulk "$t" "$dir" "$conns" "$r"; done
    done
  done
done
echo "# load average at the end $(load1)"

/usr/bin/python3 - "$RUN/small" "$RUN/bulk" "$HZ" <<'PY'
import statistics as st, sys
hz = int(sys.argv[3])
med = st.median

small = {}
for line in open(sys.argv[1]):
    t, r, rps, p50, p99, err, cpu = line.split()
    small.setdefault(t, {})[int(r)] = (float(rps), float(p50), float(p99), int(err), float(cpu))
rounds = sorted(small["haproxy"])
print()
print("Small requests (medians of the rounds; ratios: median of each round's ratio):")
print()
print("| target | req/s | p50 ms | p99 ms | errors | proxy CPU µs/req | system µs/req over direct | req/s ÷ HAProxy |")
print("|---|---|---|---|---|---|---|---|")
direct = small["direct"]
ratio = {}
USHERS = ("usher", "usher-copy", "usher-splice", "usher-epoll")
for t in ("direct", "haproxy", "nginx") + USHERS + ("relay-splice", "relay-copy"):
    if t not in small:
        continue
    v = small[t]
    m = [med(v[r][i] for r in rounds) for i in range(5)]
    # a round that served nothing (a stall) costs infinitely much per request
    inv = lambda x: 1e6 / x if x else float("inf")
    extra = "-" if t == "direct" else f"{med(inv(v[r][0]) - inv(direct[r][0]) for r in rounds):.1f}"
    ratio[t] = med(v[r][0] / small["haproxy"][r][0] for r in rounds)
    cpu = "-" if t == "direct" else f"{m[4]:.1f}"
    print(f"| {t} | {m[0]:.0f} | {m[1]:.2f} | {m[2]:.2f} | {sum(v[r][3] for r in rounds)} | {cpu} | {extra} | {ratio[t]:.2f} |")
print()
for t in ("nginx",) + USHERS + ("relay-splice", "relay-copy"):
    if t not in small:
        continue
    print(f"{t}/haproxy req/s by round: " + " ".join(f"{small[t][r][0] / small['haproxy'][r][0]:.2f}" for r in rounds))
for t in USHERS:
    print(f"goal {t} req/s >= 1.4x HAProxy: {'met' if ratio[t] >= 1.4 else 'missed'} ({ratio[t]:.2f}x)")

bulk = {}
for line in open(sys.argv[2]):
    t, d, c, r, nbytes, seconds, fair, empty, first, ticks = line.split()
    gb = int(nbytes) / 1e9
    bulk.setdefault((d, int(c)), {}).setdefault(t, {})[int(r)] = (
        gb / float(seconds), int(ticks) / hz / gb, float(fair), int(empty), float(first))
print()
print("Bulk (GB = 10^9 bytes; medians of the rounds; ratios: median of each round's ratio;")
print("fairness: Jain's index of the bytes per connection, worst round; empty: connections that")
print("moved nothing, most in a round; first byte: seconds until the last connection's first, worst round):")
print()
print("| direction | conns | target | GB/s | proxy CPU s/GB | GB/s ÷ HAProxy | CPU/GB ÷ HAProxy | fairness | empty | last first byte s |")
print("|---|---|---|---|---|---|---|---|---|---|")
goals = []
for (d, c), by in sorted(bulk.items(), key=lambda kv: (kv[0][0] != "up", kv[0][1])):
    rounds = sorted(by["haproxy"])
    h = by["haproxy"]
    for t in ("direct", "haproxy", "haproxy-splice", "nginx") + USHERS + ("relay-splice", "relay-copy"):
        if t not in by:
            continue
        v = by[t]
        gbs, cpu = med(v[r][0] for r in rounds), med(v[r][1] for r in rounds)
        rr = med(v[r][0] / h[r][0] for r in rounds)
        rc = "-" if t == "direct" else f"{med(v[r][1] / h[r][1] for r in rounds):.2f}"
        fair, empty = min(v[r][2] for r in rounds), max(v[r][3] for r in rounds)
        first = "-" if d == "up" else f"{max(v[r][4] for r in rounds):.3f}"
        print(f"| {d} | {c} | {t} | {gbs:.2f} | {'-' if t == 'direct' else f'{cpu:.3f}'} | {rr:.2f} | {rc} "
              f"| {fair:.3f} | {empty} | {first} |")
    others = ("haproxy", "haproxy-splice", "nginx")
    for u in USHERS:
        behind = [t for t in others if med(by[u][r][0] / by[t][r][0] for r in rounds) <= 1.0]
        goals.append(f"goal {u} ahead of all in GB/s, {d} {c} conns: " +
                     ("met" if not behind else "missed (not ahead of " + ", ".join(behind) + ")") +
                     "; per round over the best other: " +
                     " ".join(f"{by[u][r][0] / max(by[t][r][0] for t in others):.2f}" for r in rounds))
        costlier = [t for t in others if med(by[u][r][1] / by[t][r][1] for r in rounds) >= 1.0]
        goals.append(f"goal {u} below all in CPU per GB, {d} {c} conns: " +
                     ("met" if not costlier else "missed (not below " + ", ".join(costlier) + ")") +
                     "; per round over the cheapest other: " +
                     " ".join(f"{by[u][r][1] / min(by[t][r][1] for t in others):.2f}" for r in rounds))
    if d == "down" and c == 100:
        for t in ("haproxy", "haproxy-splice", "nginx") + USHERS + ("relay-splice", "relay-copy"):
            if t in by:
                goals.append(f"starvation {t}, down {c} conns: connections that got nothing in the window by round: " +
                             " ".join(str(by[t][r][3]) for r in rounds))
print()
print("\n".join(goals))
PY

# Syscalls per request: strace -c -f on each proxy (nginx: its worker) over $STRACE s of wrk.
if [ "$STRACE" != 0 ]; then
  echo
  echo "# strace -c -f -p PID over wrk -t1 -c$CONNS -d${STRACE}s: syscalls per request (top 8)"
  STAT_TARGETS=(haproxy nginx usher usher-copy usher-splice usher-epoll)
  [ "$RELAYS" = 0 ] || STAT_TARGETS+=(relay-splice relay-copy)
  for t in "${STAT_TARGETS[@]}"; do
    strace -c -f -o "$RUN/strace-$t" -p "${PID[$t]}" 2>/dev/null & tracer=$!
    sleep 1
    requests=$(timeout $((STRACE + 30)) taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${STRACE}s" "http://127.0.0.1:${HTTP[$t]}/" |
      awk '/requests in/ { print $1 }')
    kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
    awk -v t="$t" -v n="$requests" '
      $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { name = $NF; calls = $4; errs = (NF == 6) ? $5 : 0
        rows[name] = calls; fails[name] = errs; total += calls }
      END { printf "%s: %d requests, %.2f syscalls per request:", t, n, total / n
            k = 0
            while (k < 8) { best = ""; for (s in rows) if (best == "" || rows[s] > rows[best]) best = s
              if (best == "") break
              printf " %s %.2f", best, rows[best] / n; if (fails[best] > 0) printf " (%.2f failed)", fails[best] / n
              delete rows[best]; k++ }
            printf "\n" }' "$RUN/strace-$t"
  done
fi

# Counters per request for every proxy under the small requests (perf stat, and the voluntary
# and involuntary context switches of /proc/PID/status), and a profile of usher (io_uring).
# switches PID -> "voluntary involuntary", summed over the process's threads
switches() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ { v += $2 } /^nonvoluntary_ctxt_switches/ { n += $2 } END { print v, n }'; }
if [ "$PERF" != 0 ]; then
  echo
  echo "# perf stat on each proxy over wrk -t1 -c$CONNS -d${PERF}s; then perf record -g on HAProxy and usher (io_uring)"
  STAT_TARGETS=(haproxy nginx usher usher-copy usher-splice usher-epoll)
  [ "$RELAYS" = 0 ] || STAT_TARGETS+=(relay-splice relay-copy)
  for t in "${STAT_TARGETS[@]}"; do
    pid=${PID[$t]}
    read -r vol0 inv0 < <(switches "$pid")
    perf stat -e task-clock,context-switches,cycles,instructions -p "$pid" -o "$RUN/perf-stat-$t" -- sleep "$PERF" &
    stat_pid=$!
    requests=$(timeout $((PERF + 30)) taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${PERF}s" "http://127.0.0.1:${HTTP[$t]}/" |
      awk '/requests in/ { print $1 }')
    wait $stat_pid
    read -r vol1 inv1 < <(switches "$pid")
    awk -v t="$t" -v n="$requests" -v vol=$((vol1 - vol0)) -v inv=$((inv1 - inv0)) '
      { gsub(",", "", $1) } $1 !~ /^[0-9.]+$/ { next }
      /task-clock/ { cpu = $1 * 1000 / n } /instructions/ { ins = $1 / n } /context-switches/ { cs = $1 / n }
      END { printf "%s: %d requests; CPU per request %.2f us", t, n, cpu
            if (ins) printf "; instructions per request %.0f", ins
            printf "; context switches per request %.3f (voluntary %.3f, involuntary %.3f)\n", cs, vol / n, inv / n }' \
      "$RUN/perf-stat-$t"
  done
  # sed, not head: head would leave perf and grep writing to a closed pipe (pipefail); || true:
  # a listing may come out empty.
  for t in haproxy usher; do
    # perf takes a moment to attach: it starts a second before the load.
    perf record -g -p "${PID[$t]}" -o "$RUN/perf-$t.data" -- sleep $((PERF + 1)) >/dev/null 2>&1 &
    record_pid=$!
    sleep 1
    timeout $((PERF + 30)) taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${PERF}s" "http://127.0.0.1:${HTTP[$t]}/" >/dev/null
    wait $record_pid
    echo "$t by binary:"
    perf report -i "$RUN/perf-$t.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' | sed -n 1,5p || true
    echo "$t by system call, inclusive (perf report --children):"
    perf report -i "$RUN/perf-$t.data" --children --sort symbol --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+% +[0-9.]+% +\[k\] __(x64|do)_sys_' | sed -n 1,8p || true
  done
  echo "usher's hottest symbols (perf report --no-children):"
  perf report -i "$RUN/perf-usher.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | sed -n 1,30p || true
  [ -z "${KEEP_RUN:-}" ] || echo "perf data: $RUN/perf-haproxy.data $RUN/perf-usher.data"
fi
