# Helpers shared by bench/run.sh, bench/tls.sh and bench/protect.sh: sourced (`. bench/lib.sh`)
# from the repository's root after the script has read its own settings.
#
# Sourcing it installs what is missing (scripts/setup.sh), builds usher unless USHER names a binary
# already built (then nothing is built: `USHER=/path/to/usher bash bench/run.sh`), raises the
# descriptor limit to the hard one, and sets:
#   USHER  the usher binary;        RUN   a temporary directory, removed at exit unless KEEP_RUN is set;
#   CPU    the one core (0);        BODY  the backends' response bytes (13);
#   PIDS   what start() started, stopped at exit by stop_all;  HZ  clock ticks per second.
# Everything runs on CPU $CPU ("one core", docs/benchmarks.md says why).

bash scripts/setup.sh
if [ -z "${USHER:-}" ]; then
  scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  USHER=build/src/app/usher
fi
ulimit -n "$(ulimit -Hn)"  # 10 000 idle connections need more than the usual 1024

CPU=${CPU:-0}
BODY=${BODY:-13}
HZ=$(getconf CLK_TCK)
RUN=$(mktemp -d)
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'stop_all; [ -n "${KEEP_RUN:-}" ] || rm -rf "$RUN"' EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_port PORT [TRIES]: returns once PORT accepts connections, tried every 50 ms (200 times).
wait_port() {
  for _ in $(seq 1 "${2:-200}"); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: port $1 did not open" >&2; exit 1
}
# start COMMAND...: runs it on CPU $CPU in the background, output to $RUN/servers.log; LAST is its PID.
start() { taskset -c "$CPU" "$@" >>"$RUN/servers.log" 2>&1 & PIDS+=($!); LAST=$!; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
# cpu_ticks PID: the process's user + system time so far, in clock ticks (HZ a second).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# backend_conf PORT: an nginx with one worker answering a fixed $BODY-byte body, kept alive.
backend_conf() {
  local body
  body=$(head -c "$BODY" /dev/zero | tr '\0' 'x')
  cat <<CONF
worker_processes 1; worker_rlimit_nofile 20000; pid $RUN/backend-$1.pid; error_log $RUN/backend.err crit; daemon off;
events { worker_connections 30000; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 120s;
  server { listen 127.0.0.1:$1 backlog=4096; location / { default_type text/plain; return 200 "$body"; } } }
CONF
}
# start_backends: the pool every bench proxies to, three servers, each its own nginx worker; sets
# B1, B2 and B3 to their ports and returns once all three listen.
start_backends() {
  B1=$(free_port); B2=$(free_port); B3=$(free_port)
  local port
  for port in $B1 $B2 $B3; do backend_conf "$port" >"$RUN/backend-$port.conf"; start nginx -c "$RUN/backend-$port.conf"; done
  for port in $B1 $B2 $B3; do wait_port "$port"; done
}

# usher_pool: the `pools:` section of an usher configuration naming the three backends of
# start_backends as pool `web`, round-robin.
usher_pool() {
  cat <<CONF
pools:
  - name: web
    balance: round-robin
    backends:
      - { address: 127.0.0.1:$B1 }
      - { address: 127.0.0.1:$B2 }
      - { address: 127.0.0.1:$B3 }
CONF
}

# wrk_row LABEL1 LABEL2 TICKS_BEFORE TICKS_AFTER < WRK_OUTPUT: one line
# "LABEL1 LABEL2 rps p50_ms p99_ms errors cpu_us_per_request", where errors counts wrk's socket
# errors and non-2xx/3xx responses, and the CPU is the ticks' difference over the requests done.
wrk_row() {
  /usr/bin/python3 -c '
import re, sys
text = sys.stdin.read()
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
def percentile(p):
    value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M).groups()
    return float(value) * UNIT[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors += int(m.group(1)) if m else 0
cpu_s = (int(sys.argv[4]) - int(sys.argv[3])) / int(sys.argv[5])
print(sys.argv[1], sys.argv[2], f"{rps:.0f}", f"{percentile(50):.3f}", f"{percentile(99):.3f}", errors,
      f"{cpu_s * 1e6 / max(total, 1):.2f}")
' "$1" "$2" "$3" "$4" "$HZ"
}
