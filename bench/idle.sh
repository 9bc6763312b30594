#!/usr/bin/env bash
# Many idle keep-alive connections: each client connection makes one request through usher and
# then stays open doing nothing. Reports usher's total RSS and its growth per connection.
#
#   bash bench/idle.sh                      # 100 000 connections, io_uring
#   CONNS=20000 BACKEND=epoll bash bench/idle.sh
#
# One process may hold at most `ulimit -Hn` descriptors. Where that hard limit is below the run's
# size and cannot be raised, the run spreads over several usher processes that share the
# listening port (SO_REUSEPORT, as usher's own workers do) and several client processes; the
# figure reported is the sum over all usher processes. Clients bind to 127.0.0.2-127.0.0.17 so
# that source ports do not run out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

CONNS=${CONNS:-100000}
BACKEND=${BACKEND:-io_uring}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
LIMIT=$(ulimit -n)
# Room for SO_REUSEPORT's uneven spread, listeners and upstream connections.
PER_PROCESS=$(( LIMIT * 6 / 10 ))
PROCS=$(( (CONNS + PER_PROCESS - 1) / PER_PROCESS ))
RUN=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$RUN"' EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "idle: port $1 did not open" >&2; exit 1
}

B=$(free_port); P=$(free_port)
cat >"$RUN/backend.conf" <<CONF
worker_processes 1; worker_rlimit_nofile $LIMIT; pid $RUN/backend.pid; error_log $RUN/backend.err crit; daemon off;
events { worker_connections $LIMIT; }
http { access_log off; keepalive_requests 100000000;
  server { listen 127.0.0.1:$B; location / { return 200 "x"; } } }
CONF
nginx -c "$RUN/backend.conf" & PIDS+=($!)
wait_port "$B"
cat >"$RUN/usher.yaml" <<CONF
workers: 1
io_backend: $BACKEND
timeouts: { client_idle: 10m }  # the waves take longer than the default minute
listeners:
  - { name: idle, listen: 127.0.0.1:$P, pool: app }
pools:
  - { name: app, backends: [127.0.0.1:$B] }
CONF
USHERS=()
for _ in $(seq 1 "$PROCS"); do
  build/src/app/usher run -c "$RUN/usher.yaml" >>"$RUN/usher.log" 2>&1 & PIDS+=($!); USHERS+=($!)
done
wait_port "$P"
sleep 0.5

rss_total() { local t=0; for p in "${USHERS[@]}"; do t=$(( t + $(awk '/VmRSS/ { print $2 }' "/proc/$p/status") )); done; echo "$t"; }

# One client process per usher process's share: connect, one request, its answer, hold.
cat >"$RUN/client.py" <<'PY'
import socket, struct, sys, time
port, count, first_ip, hold = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks, answered = [], 0
# One request at a time, each answered before the next connection opens: a burst of them all at
# once would need as many upstream connections, more than the backend's descriptor limit.
for i in range(count):
    s = socket.socket()
    s.bind((f"127.0.0.{2 + (first_ip + i) % 16}", 0))
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n")
        answered += 1 if s.recv(4096).startswith(b"HTTP/1.1 200") else 0
    except OSError:
        pass
    socks.append(s)
print(answered, flush=True)
time.sleep(hold)
for s in socks:  # reset, not FIN: no TIME_WAIT left holding the next wave's ports
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
PY
share=$(( (CONNS + PROCS - 1) / PROCS ))
wave() {  # HOLD_SECONDS: every client process connects its share; prints the answered total
  rm -f "$RUN"/client-*.out
  for i in $(seq 0 $(( PROCS - 1 ))); do
    n=$(( CONNS - i * share < share ? CONNS - i * share : share ))
    /usr/bin/python3 "$RUN/client.py" "$P" "$n" "$i" "$1" >"$RUN/client-$i.out" 2>&1 & PIDS+=($!)
  done
  for i in $(seq 0 $(( PROCS - 1 ))); do
    for _ in $(seq 1 1200); do [ -s "$RUN/client-$i.out" ] && break; sleep 0.1; done
  done
  cat "$RUN"/client-*.out | awk '{ s += $1 } END { print s }'
  grep -hv '^[0-9]*$' "$RUN"/client-*.out >&2 || true  # a client that failed says why
}
# A first wave warms usher's pools up to this load and leaves; the second is measured.
wave 0 >/dev/null
sleep 4
base=$(rss_total)
answered=$(wave 60)
sleep 3  # idle: usher trims what the burst left
open=$(ss -Htn state established "( sport = :$P )" | wc -l)
client_side=$(ss -Htn state established "( dport = :$P )" | wc -l)
echo "client side established: $client_side; per usher: $(for p in "${USHERS[@]}"; do ls /proc/$p/fd | wc -l; done | tr "\n" " ")"
total=$(rss_total)
echo "# $CONNS connections, io_backend $BACKEND, $PROCS usher process(es) (descriptor limit $LIMIT each)"
echo "answered $answered, established at usher $open"
echo "usher RSS: $(( base / 1024 )) MiB before, $(( total / 1024 )) MiB with the connections"
awk -v b="$base" -v t="$total" -v n="$open" 'BEGIN { printf "growth per idle connection: %.2f KiB\n", (t - b) / n }'
