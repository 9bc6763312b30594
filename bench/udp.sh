#!/usr/bin/env bash
# UDP datagrams per second through a udp listener: usher (io_uring and epoll, one worker) against
# nginx `stream` (`listen ... udp`, one worker), both in front of the same UDP echo backend, same
# load, interleaved rounds; and the backend direct, for what the rest of the system costs.
#
#   bash bench/udp.sh                       # 16 clients x 16 in flight, 64-byte datagrams, 3 x 10 s
#   ROUNDS=1 DUR=3 USHER=build/src/app/usher bash bench/udp.sh
#
# The load and the backend are bench/udp_load.cc: $SOCKETS client sockets (a session each at the
# proxy), each keeping $WINDOW datagrams of $SIZE bytes in flight, sent with sendmmsg and read back
# with recvmmsg; the backend echoes with recvmmsg/sendmmsg. Each round is bounded by DUR seconds
# and MAX datagrams. Placement is "one core" (everything on CPU $CPU, docs/benchmarks.md): the
# datagrams a second are then the whole system's, and 1/rate less the direct round's is what the
# proxy adds. Each proxy's own CPU per datagram is its /proc/PID/stat time over the round (for
# nginx, its worker) divided by the replies. A round that lost datagrams says so (lost > 0).
# Env: SOCKETS (16), WINDOW (16), SIZE (64), DUR (10), ROUNDS (3), MAX (50 000 000), CPU (0),
# USHER (an already built usher: then nothing is built; bench/lib.sh), LOAD (build/bench/udp_load).
set -euo pipefail
cd "$(dirname "$0")/.."
SOCKETS=${SOCKETS:-16}
WINDOW=${WINDOW:-16}
SIZE=${SIZE:-64}
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
MAX=${MAX:-50000000}
LOAD=${LOAD:-build/bench/udp_load}
. bench/lib.sh
[ -x "$LOAD" ] || cmake --build build --target udp_load >/dev/null

free_udp_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(type=socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_udp PORT: returns once something answers a datagram on PORT (tried every 50 ms, 10 s).
wait_udp() {
  /usr/bin/python3 - "$1" <<'PY' || { echo "bench: nothing answers on udp port $1" >&2; exit 1; }
import socket, sys, time
s = socket.socket(type=socket.SOCK_DGRAM)
s.settimeout(0.05)
for _ in range(200):
    s.sendto(b"probe", ("127.0.0.1", int(sys.argv[1])))
    try:
        s.recvfrom(2048)
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

ECHO=$(free_udp_port); NP=$(free_udp_port); UP=$(free_udp_port); EP=$(free_udp_port)
UA=$(free_port); EA=$(free_port)
start "$LOAD" echo "$ECHO"

cat >"$RUN/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1; worker_rlimit_nofile 20000; pid $RUN/nginx.pid; error_log $RUN/nginx.err crit; daemon off;
events { worker_connections 4096; }
stream { server { listen 127.0.0.1:$NP udp; proxy_pass 127.0.0.1:$ECHO; proxy_timeout 30s; } }
CONF
start nginx -p "$RUN" -c "$RUN/nginx.conf"; NGINX_PID=$LAST

usher_conf() {  # PORT ADMIN_PORT IO
  cat <<CONF
workers: 1
io_backend: $3
access_log: off
admin: { listen: 127.0.0.1:$2 }
listeners:
  - { name: udp, listen: 127.0.0.1:$1, protocol: udp, pool: echo, session_idle: 30s }
pools:
  - name: echo
    backends: [127.0.0.1:$ECHO]
CONF
}
usher_conf "$UP" "$UA" io_uring >"$RUN/usher.yaml"
usher_conf "$EP" "$EA" epoll >"$RUN/usher-epoll.yaml"
"$USHER" check -c "$RUN/usher.yaml" >/dev/null
start "$USHER" run -c "$RUN/usher.yaml"; USHER_PID=$LAST
start "$USHER" run -c "$RUN/usher-epoll.yaml"; EPOLL_PID=$LAST
for p in $ECHO $NP $UP $EP; do wait_udp "$p"; done
# nginx's master forks the worker that does the work: measure the worker.
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)

# round TARGET ROUND PORT PID -> appends "target round datagrams_per_second lost cpu_us_per_datagram"
round() {
  local target=$1 r=$2 port=$3 pid=$4 before after out
  before=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  out=$(taskset -c "$CPU" "$LOAD" send "$port" "$SOCKETS" "$WINDOW" "$DUR" "$MAX" "$SIZE" 0)
  after=$([ "$pid" = - ] && echo 0 || cpu_ticks "$pid")
  echo "$target $r $out" >>"$RUN/load.log"
  echo "$out" | awk -v t="$target" -v r="$r" -v ticks=$((after - before)) -v hz="$HZ" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    printf "%s %s %s %s %.3f\n", t, r, v["datagrams_per_second"], v["lost"],
      v["replies"] ? ticks / hz * 1e6 / v["replies"] : 0 }' | tee -a "$RUN/results"
}

echo "# placement: everything on CPU $CPU; $SOCKETS sockets x $WINDOW in flight, $SIZE-byte datagrams;" \
  "${DUR}s rounds x $ROUNDS"
echo "# target round datagrams_per_second lost proxy_cpu_us_per_datagram"
for p in $UP $EP $NP $ECHO; do
  taskset -c "$CPU" "$LOAD" send "$p" "$SOCKETS" "$WINDOW" 2 "$MAX" "$SIZE" 0 >/dev/null
done
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    round usher "$r" "$UP" "$USHER_PID"; round nginx "$r" "$NP" "$NGINX_WORKER"
    round usher-epoll "$r" "$EP" "$EPOLL_PID"
  else
    round nginx "$r" "$NP" "$NGINX_WORKER"; round usher-epoll "$r" "$EP" "$EPOLL_PID"
    round usher "$r" "$UP" "$USHER_PID"
  fi
  round direct "$r" "$ECHO" -
done
echo "# usher's counters:" $(curl -s --max-time 5 "http://127.0.0.1:$UA/metrics" |
  grep -E '^usher_udp_(sessions|datagrams|dropped)_total' | grep -v ' 0$' | tr '\n' ' ')

/usr/bin/python3 - "$RUN/results" <<'PY'
import statistics as st, sys
by = {}
for t, r, rate, lost, cpu in (l.split() for l in open(sys.argv[1])):
    by.setdefault(t, []).append((float(rate), int(lost), float(cpu)))
print()
print("| target | datagrams/s | lost | proxy CPU µs/datagram | system µs/datagram over direct |")
print("|---|---|---|---|---|")
direct = st.median(x[0] for x in by["direct"])
for t in ("usher", "usher-epoll", "nginx", "direct"):
    rate = st.median(x[0] for x in by[t])
    cpu = "-" if t == "direct" else f"{st.median(x[2] for x in by[t]):.2f}"
    over = "-" if t == "direct" else f"{1e6 / rate - 1e6 / direct:.2f}"
    print(f"| {t} | {rate:.0f} | {sum(x[1] for x in by[t])} | {cpu} | {over} |")
print()
for t in ("usher", "usher-epoll"):
    ratios = [u[0] / n[0] for u, n in zip(by[t], by["nginx"])]
    cpu = [n[2] / u[2] for u, n in zip(by[t], by["nginx"])]
    print(f"{t}/nginx datagrams/s, round by round: " + " ".join(f"{x:.2f}" for x in ratios) +
          f"; median {st.median(ratios):.2f}; nginx/{t} proxy CPU per datagram: median {st.median(cpu):.2f}")
PY
