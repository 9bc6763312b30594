#!/usr/bin/env bash
# Layer-4 bulk transfer: 1 GiB from a client through a TCP proxy to a sink, and the sink's
# byte count back. usher's splice relay (bench/relay_proxy, both backends) against HAProxy
# `mode tcp` (with and without its splice option) and nginx `stream`, same run, interleaved.
#
#   bash bench/relay.sh                 # 1 GiB, 3 rounds
#   BYTES=$((256<<20)) ROUNDS=1 bash bench/relay.sh
#
# Placement: everything on one CPU (docs/benchmarks.md). Reported per target: wall time of the
# transfer (median), GiB/s, and the proxy's own CPU seconds per GiB (from /proc/PID/stat).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

BYTES=${BYTES:-$((1 << 30))}
ROUNDS=${ROUNDS:-3}
CPU=${CPU:-0}
RUN=$(mktemp -d)
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'stop_all; rm -rf "$RUN"' EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: port $1 did not open" >&2; exit 1
}
start() { taskset -c "$CPU" "$@" >>"$RUN/servers.log" 2>&1 & PIDS+=($!); LAST=$!; }

SINK=$(free_port); HP=$(free_port); HS=$(free_port); NP=$(free_port); EP=$(free_port); UP=$(free_port)
truncate -s "$BYTES" "$RUN/source.bin"  # sparse: sendfile reads zeros from the page cache

# The sink: counts bytes until EOF, then answers with the count (so the reply crosses the proxy).
cat >"$RUN/sink.py" <<'PY'
import socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
buffer = bytearray(1 << 20)
while True:
    conn, _ = server.accept()
    total = 0
    try:
        while (n := conn.recv_into(buffer)) > 0:
            total += n
        conn.sendall(f"{total}\n".encode())
    except OSError:  # a port probe that left at once
        pass
    conn.close()
PY
# The source: sendfile of the whole file, half-close, wait for the count. Prints seconds.
cat >"$RUN/source.py" <<'PY'
import os, socket, sys, time
port, path, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
with open(path, "rb") as f, socket.create_connection(("127.0.0.1", port)) as s:
    started = time.monotonic()
    s.sendfile(f)
    s.shutdown(socket.SHUT_WR)
    reply = s.makefile().readline().strip()
    elapsed = time.monotonic() - started
if int(reply or 0) != size:
    sys.exit(f"sink received {reply} bytes, expected {size}")
print(f"{elapsed:.4f}")
PY

haproxy_cfg() {  # PORT EXTRA
  cat <<CONF
global
  nbthread 1
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  $2
frontend f
  bind 127.0.0.1:$1
  default_backend b
backend b
  server s1 127.0.0.1:$SINK
CONF
}
haproxy_cfg "$HP" "" >"$RUN/haproxy.cfg"
haproxy_cfg "$HS" "option splice-auto" >"$RUN/haproxy-splice.cfg"
cat >"$RUN/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1; pid $RUN/nginx.pid; error_log $RUN/nginx.err crit; daemon off;
events { worker_connections 1024; }
stream { server { listen 127.0.0.1:$NP; proxy_pass 127.0.0.1:$SINK; proxy_half_close on; } }
CONF

start /usr/bin/python3 "$RUN/sink.py" "$SINK"
wait_port "$SINK"
start haproxy -db -f "$RUN/haproxy.cfg"; HAPROXY_PID=$LAST
start haproxy -db -f "$RUN/haproxy-splice.cfg"; HAPROXY_SPLICE_PID=$LAST
start nginx -c "$RUN/nginx.conf"; NGINX_PID=$LAST
start build/bench/relay_proxy "127.0.0.1:$EP" "127.0.0.1:$SINK" epoll; EPOLL_PID=$LAST
start build/bench/relay_proxy "127.0.0.1:$UP" "127.0.0.1:$SINK" io_uring; URING_PID=$LAST
for p in $HP $HS $NP $EP $UP; do wait_port "$p"; done
sleep 0.3
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

transfer() {  # TARGET PORT PID
  local before after seconds
  before=$([ "$3" = - ] && echo 0 || cpu_ticks "$3")
  seconds=$(taskset -c "$CPU" /usr/bin/python3 "$RUN/source.py" "$2" "$RUN/source.bin" "$BYTES")
  after=$([ "$3" = - ] && echo 0 || cpu_ticks "$3")
  echo "$1 $seconds $(( after - before ))" | tee -a "$RUN/results"
}

echo "# placement: everything on CPU $CPU; $BYTES bytes per transfer; $ROUNDS rounds"
echo "# target seconds proxy_cpu_ticks(1/$HZ s)"
for r in $(seq 1 "$ROUNDS"); do
  transfer direct "$SINK" -
  transfer haproxy "$HP" "$HAPROXY_PID"
  transfer haproxy-splice "$HS" "$HAPROXY_SPLICE_PID"
  transfer nginx-stream "$NP" "$NGINX_WORKER"
  transfer usher-relay-epoll "$EP" "$EPOLL_PID"
  transfer usher-relay-io_uring "$UP" "$URING_PID"
done

/usr/bin/python3 - "$RUN/results" "$BYTES" "$HZ" <<'PY'
import statistics as st, sys
bytes_, hz = int(sys.argv[2]), int(sys.argv[3])
by = {}
for line in open(sys.argv[1]):
    target, seconds, ticks = line.split()
    by.setdefault(target, []).append((float(seconds), int(ticks) / hz))
gib = bytes_ / (1 << 30)
print()
print("| target | seconds | GiB/s | proxy CPU s/GiB |")
print("|---|---|---|---|")
med = {}
for target, v in by.items():
    seconds, cpu = st.median(x[0] for x in v), st.median(x[1] for x in v)
    med[target] = (seconds, cpu)
    cpu_text = "-" if target == "direct" else f"{cpu / gib:.3f}"
    print(f"| {target} | {seconds:.3f} | {gib / seconds:.2f} | {cpu_text} |")
print()
for name in ("usher-relay-epoll", "usher-relay-io_uring"):
    u = med[name]
    for ref in ("haproxy", "haproxy-splice", "nginx-stream"):
        r = med[ref]
        print(f"{name}/{ref}: time {u[0] / r[0]:.2f}, cpu {u[1] / max(r[1], 1e-9):.2f}")
PY
