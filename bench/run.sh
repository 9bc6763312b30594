#!/usr/bin/env bash
# usher (on each of its event-loop backends, epoll and io_uring) against HAProxy and nginx, same
# backends, same run, interleaved rounds; and usher with its access log on (both backends) against
# usher without.
#
#   bash bench/run.sh                     # 64 and 1000 connections, 3 rounds of 10 s each
#   CONNS="64" ROUNDS=1 DUR=5 bash bench/run.sh
#
# Placement is "one core" (everything on CPU 0, see docs/benchmarks.md): on a 2-core machine it
# is the stable one, and 1/rps is then the whole system's CPU time per request. Each proxy's own
# CPU per request is also measured directly from its /proc/PID/stat times over each round.
# Env: CONNS ("64 1000"), ROUNDS (3), DUR (10 s), CPU (0), BODY (13 bytes), IDLE_CONNS (10000),
# PLOT (build/bench.png: req/s and proxy CPU per request against connections, gnuplot),
# BASELINE (another usher binary, e.g. a build of an earlier commit: measured as the target
# usher-baseline on io_uring in the same rounds, for a before/after comparison), USHER (the usher
# binary to measure, already built: then nothing is built; helpers in bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-"64 1000"}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
IDLE_CONNS=${IDLE_CONNS:-10000}
. bench/lib.sh

HP=$(free_port); NP=$(free_port); UP=$(free_port); EP=$(free_port); LP=$(free_port); ELP=$(free_port)
BP=$(free_port)

# The backends: a pool of three servers, each its own nginx worker answering a fixed body.
start_backends
cat >"$RUN/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 9900      # the most this machine's 20 000-descriptor hard limit allows
  ulimit-n 20000
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$HP
  default_backend b
backend b
  balance roundrobin
  server s1 127.0.0.1:$B1
  server s2 127.0.0.1:$B2
  server s3 127.0.0.1:$B3
CONF
cat >"$RUN/nginx.conf" <<CONF
worker_processes 1; worker_rlimit_nofile 20000; pid $RUN/nginx.pid; error_log $RUN/nginx.err crit; daemon off;
events { worker_connections 30000; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 120s;
  upstream be { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; keepalive 1024; keepalive_requests 100000000; }
  server { listen 127.0.0.1:$NP backlog=4096;
           location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF

start haproxy -db -f "$RUN/haproxy.cfg"; HAPROXY_PID=$LAST
start nginx -c "$RUN/nginx.conf"; NGINX_PID=$LAST
BACKENDS=(--to "127.0.0.1:$B1" --to "127.0.0.1:$B2" --to "127.0.0.1:$B3")
USHER_IO_BACKEND=io_uring start "$USHER" proxy --listen "127.0.0.1:$UP" --workers 1 "${BACKENDS[@]}"
USHER_PID=$LAST
USHER_IO_BACKEND=epoll start "$USHER" proxy --listen "127.0.0.1:$EP" --workers 1 "${BACKENDS[@]}"
USHER_EPOLL_PID=$LAST
# The same with a JSON access log on disk (metrics are always on): what observability costs.
USHER_IO_BACKEND=io_uring start "$USHER" proxy --listen "127.0.0.1:$LP" --workers 1 \
  --access-log "$RUN/access.log" "${BACKENDS[@]}"
USHER_LOG_PID=$LAST
USHER_IO_BACKEND=epoll start "$USHER" proxy --listen "127.0.0.1:$ELP" --workers 1 \
  --access-log "$RUN/access-epoll.log" "${BACKENDS[@]}"
USHER_EPOLL_LOG_PID=$LAST
BASELINE_PID=
if [ -n "${BASELINE:-}" ]; then
  USHER_IO_BACKEND=io_uring start "$BASELINE" proxy --listen "127.0.0.1:$BP" --workers 1 "${BACKENDS[@]}"
  BASELINE_PID=$LAST
  wait_port "$BP"
fi
for p in $HP $NP $UP $EP $LP $ELP; do wait_port "$p"; done
# nginx's master forks the worker that does the work: measure the worker.
sleep 0.3
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)

# round TARGET PORT PID CONNS -> appends "target conns rps p50_ms p99_ms errors cpu_us_per_req"
round() {
  local target=$1 port=$2 pid=$3 conns=$4 before after out
  before=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  out=$(taskset -c "$CPU" wrk -t1 -c"$conns" -d"${DUR}s" --latency "http://127.0.0.1:$port/" 2>&1)
  after=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  echo "$out" >>"$RUN/wrk.log"
  echo "$out" | wrk_row "$target" "$conns" "$before" "$after" | tee -a "$RUN/results"
}

echo "# placement: everything on CPU $CPU; wrk -t1; ${DUR}s rounds x $ROUNDS; body ${BODY} bytes"
echo "# target conns rps p50_ms p99_ms errors proxy_cpu_us_per_request"
for conns in $CONNS; do
  for p in $HP $NP $UP $EP $LP $ELP; do taskset -c "$CPU" wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$p/" >/dev/null 2>&1; done
  for r in $(seq 1 "$ROUNDS"); do
    round haproxy $HP $HAPROXY_PID "$conns"
    round nginx $NP "$NGINX_WORKER" "$conns"
    round usher $UP $USHER_PID "$conns"
    round usher-epoll $EP $USHER_EPOLL_PID "$conns"
    round usher+log $LP $USHER_LOG_PID "$conns"
    round usher-epoll+log $ELP $USHER_EPOLL_LOG_PID "$conns"
    [ -z "$BASELINE_PID" ] || round usher-baseline $BP "$BASELINE_PID" "$conns"
    round direct $B1 - "$conns"
  done
done

# Idle connections: userspace memory each proxy spends per idle keep-alive client connection.
idle_kib() {
  /usr/bin/python3 - "$1" "$2" "$IDLE_CONNS" <<'PY'
import socket, sys, time
port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def open_idle():
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        socks.append(s)
    answered = 0
    for s in socks:
        s.settimeout(5 if answered == 0 else 0.5)  # a proxy at its connection limit leaves some waiting
        try:
            answered += 1 if s.recv(4096) else 0
        except OSError:
            pass
    time.sleep(3)  # lets usher's idle-time trim run (two idle looks a second apart)
    return socks, answered
# The first wave warms every pool and allocator up to this load; the second measures what
# holding the connections costs on top of that.
socks, _ = open_idle()
for s in socks:
    s.close()
time.sleep(3)
base = rss()
socks, answered = open_idle()
print(f"{(rss() - base) / max(answered, 1):.2f} KiB/connection over {answered} connections")
for s in socks:
    s.close()
PY
}
echo "# idle connections: $IDLE_CONNS keep-alive clients, each after one request"
for pair in "haproxy $HP $HAPROXY_PID" "nginx $NP $NGINX_WORKER" "usher $UP $USHER_PID" \
  "usher-epoll $EP $USHER_EPOLL_PID"; do
  set -- $pair
  echo "idle $1 $(idle_kib "$2" "$3")"
done | tee "$RUN/idle"

/usr/bin/python3 - "$RUN/results" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for t, c, rps, p50, p99, err, cpu in rows:
    by.setdefault((int(c), t), []).append((float(rps), float(p50), float(p99), int(err), float(cpu)))
print()
print("| conns | target | req/s | p50 ms | p99 ms | errors | proxy CPU µs/req |")
print("|---|---|---|---|---|---|---|")
med = {}
for (c, t), v in sorted(by.items()):
    m = tuple(st.median(x[i] for x in v) for i in range(5))
    med[(c, t)] = m
    cpu = "-" if t == "direct" else f"{m[4]:.1f}"
    print(f"| {c} | {t} | {m[0]:.0f} | {m[1]:.2f} | {m[2]:.2f} | {sum(x[3] for x in v)} | {cpu} |")
print()
for c in sorted({k[0] for k in med}):
    h, n, d = (med.get((c, t)) for t in ("haproxy", "nginx", "direct"))
    for name in ("usher", "usher-epoll"):
        u = med.get((c, name))
        print(f"conns={c}: {name}/haproxy rps {u[0]/h[0]:.2f}, p99 {u[2]/h[2]:.2f}, cpu {u[4]/h[4]:.2f}; "
              f"{name}/nginx rps {u[0]/n[0]:.2f}, p99 {u[2]/n[2]:.2f}, cpu {u[4]/n[4]:.2f}; {name}/direct rps {u[0]/d[0]:.2f}")
    for name in ("usher", "usher-epoll"):
        u, l = med.get((c, name)), med.get((c, name + "+log"))
        print(f"conns={c}: {name} with access log / without: rps {l[0]/u[0]:.2f}, cpu {l[4]/u[4]:.2f}")
# Targets of one round ran back to back, under the same conditions: the median of each round's
# ratio is steadier than the ratio of medians when the machine's speed drifts between rounds.
print()
for c in sorted({k[0] for k in med}):
    parts = []
    for name in ("usher", "usher+log", "usher-epoll", "usher-epoll+log"):
        rounds = list(zip(by[(c, name)], by[(c, "haproxy")], by[(c, "direct")]))
        ratio = lambda i: st.median(u[i] / h[i] for u, h, _ in rounds)
        # The whole one-core system's time per request, less the direct run's: what the proxy
        # costs including the kernel work it causes outside its own process.
        extra = lambda r, d: 1e6 / r[0] - 1e6 / d[0]
        system = st.median(extra(u, d) / extra(h, d) for u, h, d in rounds)
        parts.append(f"{name} rps {ratio(0):.2f} p99 {ratio(2):.2f} cpu {ratio(4):.2f} system {system:.2f}")
    print(f"conns={c}: per-round ratios to haproxy, median of {len(rounds)}: " + "; ".join(parts))
    if (c, "usher-baseline") in by:
        rounds = list(zip(by[(c, "usher")], by[(c, "usher-baseline")]))
        ratio = lambda i: st.median(u[i] / b[i] for u, b in rounds)
        print(f"conns={c}: usher / usher-baseline, per-round median of {len(rounds)}: "
              f"rps {ratio(0):.3f} p99 {ratio(2):.3f} cpu {ratio(4):.3f}")
print()
for c in sorted({k[0] for k in med}):
    d = med[(c, "direct")][0]
    print(f"conns={c}: system µs/request over direct's: " + ", ".join(
        f"{t} {1e6 / med[(c, t)][0] - 1e6 / d:.1f}" for t in ("haproxy", "nginx", "usher", "usher+log", "usher-epoll", "usher-epoll+log")))
targets = ("usher", "usher-epoll", "haproxy", "nginx")
with open(sys.argv[1] + ".dat", "w") as out:
    for c in sorted({k[0] for k in med}):
        out.write(f"{c} " + " ".join(f"{med[(c, t)][0]:.0f} {med[(c, t)][4]:.2f}" for t in targets) + "\n")
PY

PLOT=${PLOT:-build/bench.png}
gnuplot <<GP
set terminal pngcairo size 1100,420 font "sans,10" noenhanced
set output "$PLOT"
set multiplot layout 1,2 title "one-core placement, keep-alive, ${BODY}-byte responses (bench/run.sh)"
set logscale x 2
set xtics ($(echo "$CONNS" | sed 's/\([0-9]\+\)/"\1" \1/g; s/ "/, "/g'))
set xlabel "connections"
set key bottom left
set grid ytics
set yrange [0:*]
set ylabel "requests per second"
plot for [i=0:3] "$RUN/results.dat" using 1:(column(2+2*i)) with linespoints lw 2 pt 7 \
  title word("usher(io_uring) usher(epoll) HAProxy nginx", i+1)
set ylabel "proxy CPU per request (µs)"
set key top left
plot for [i=0:3] "$RUN/results.dat" using 1:(column(3+2*i)) with linespoints lw 2 pt 7 \
  title word("usher(io_uring) usher(epoll) HAProxy nginx", i+1)
unset multiplot
GP
echo "plot: $PLOT"
