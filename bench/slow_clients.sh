#!/usr/bin/env bash
# Slow-client attacks: slowhttptest holds 1000 slowloris connections (a
# request head that never ends, a header line a second) and 500 slow-body connections (a POST body
# of at most 34 bytes a second) against usher (io_uring and epoll), HAProxy and nginx in turn,
# while a normal client makes paced requests; its p50/p99 without and with the attack, per proxy.
#
#   bash bench/slow_clients.sh                           # 2 rounds: 15 s unloaded + 15 s attacked each
#   ROUNDS=1 USHER_BIN=/path/to/usher bash bench/slow_clients.sh   # a given binary, no build
#
# Placement is "one core" (everything on CPU 0, see docs/benchmarks.md): the proxy, the backend,
# the normal client and both slowhttptest processes share it, as in bench/run.sh. The attack tool
# itself then takes much of that core (it polls its 1000 sockets); ATTACK_CPU=1 moves it to the
# other core, which shows what is left of the p99's growth when only the proxy's own work competes.
# The goal: under this attack, usher's p99 stays within 2x of its unloaded p99, and
# every normal request succeeds.
#
# Comparable settings, each proxy with what it has:
#   usher    timeouts { client_header: 3s, client_body: 10s }, limits.min_body_rate 1KiB/s over 2s,
#            buffer_request: 16KiB (as HAProxy's http-buffer-request and nginx's buffering, a
#            slow body holds no backend connection; USHER_BUFFER=0 streams bodies instead);
#   HAProxy  timeout http-request 3s + option http-buffer-request (the deadline then covers the
#            body too), timeout client 10s;
#   nginx    client_header_timeout 3s, client_body_timeout 10s (an inactivity timeout: nginx has
#            no minimum body rate, so a trickle a second keeps its connection), request buffering on.
# The normal client: one GET every 10 ms, each on a fresh connection (the attack is on connection
# slots and head parsing, which a kept-alive connection would skip), for UNLOADED seconds, then
# for ATTACK seconds with the attack on. slowhttptest never reopens a connection the server closed,
# so against a proxy that closes them one run ends within seconds; it is started again at once
# until the window ends, which keeps the attack at full strength for every proxy.
# Env: ROUNDS (2), UNLOADED (= ATTACK), ATTACK (15 s), CPU (0), ATTACK_CPU (= CPU), LORIS (1000),
# BODIES (500), RATE (500 connections a second), TARGETS ("usher usher-epoll haproxy nginx"),
# USHER_BIN (an usher binary to use as it is; without it the script builds build/src/app/usher),
# USHER_BUFFER (1: usher buffers bodies up to 16 KiB; 0: streams them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${USHER_BIN:-}" ]; then
  scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  USHER_BIN=build/src/app/usher
fi
ulimit -n "$(ulimit -Hn)"  # 1500 attack connections, and as many to the backend for usher's slow bodies

ROUNDS=${ROUNDS:-2}
ATTACK=${ATTACK:-15}
UNLOADED=${UNLOADED:-$ATTACK}  # as many samples for each p99: a 1 % tail is a handful of requests
CPU=${CPU:-0}
ATTACK_CPU=${ATTACK_CPU:-$CPU}
LORIS=${LORIS:-1000}
BODIES=${BODIES:-500}
RATE=${RATE:-500}
TARGETS=${TARGETS:-"usher usher-epoll haproxy nginx"}
RUN=$(mktemp -d)
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'stop_all; [ -n "${KEEP_RUN:-}" ] || rm -rf "$RUN"' EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "bench: port $1 did not open" >&2; exit 1
}
start() { taskset -c "$CPU" "$@" >>"$RUN/servers.log" 2>&1 & PIDS+=($!); LAST=$!; }

B=$(free_port); PORT_haproxy=$(free_port); PORT_nginx=$(free_port)
PORT_usher=$(free_port); PORT_usher_epoll=$(free_port)

# The backend: one nginx worker answering a fixed 13-byte body, as bench/run.sh's.
cat >"$RUN/backend.conf" <<CONF
worker_processes 1; worker_rlimit_nofile 20000; pid $RUN/backend.pid; error_log $RUN/backend.err crit; daemon off;
events { worker_connections 19000; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 120s;
  server { listen 127.0.0.1:$B backlog=4096; location / { default_type text/plain; return 200 "xxxxxxxxxxxxx"; } } }
CONF
cat >"$RUN/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 9900
  ulimit-n 20000
defaults
  mode http
  option http-keep-alive
  option http-buffer-request  # so that timeout http-request covers the body too
  timeout http-request 3s
  timeout connect 5s
  timeout client 10s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$PORT_haproxy
  default_backend b
backend b
  server s1 127.0.0.1:$B
CONF
cat >"$RUN/nginx.conf" <<CONF
worker_processes 1; worker_rlimit_nofile 20000; pid $RUN/nginx.pid; error_log $RUN/nginx.err crit; daemon off;
events { worker_connections 19000; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 120s;
  client_header_timeout 3s; client_body_timeout 10s;
  upstream be { server 127.0.0.1:$B; keepalive 1024; keepalive_requests 100000000; }
  server { listen 127.0.0.1:$PORT_nginx backlog=4096;
           location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
usher_conf() {  # PORT ACCESS_LOG
  cat <<CONF
workers: 1
access_log: $2
timeouts: { client_header: 3s, client_body: 10s }
limits: { min_body_rate: { bytes_per_second: 1KiB, window: 2s } }
listeners:
  - name: web
    listen: 127.0.0.1:$1
    pool: web
pools:
  - name: web
    backends: [127.0.0.1:$B]
$([ "${USHER_BUFFER:-1}" = 0 ] || echo "    buffer_request: 16KiB")
CONF
}
usher_conf "$PORT_usher" "$RUN/usher.log" >"$RUN/usher.yaml"
usher_conf "$PORT_usher_epoll" "$RUN/usher-epoll.log" >"$RUN/usher-epoll.yaml"

start nginx -c "$RUN/backend.conf"
wait_port "$B"
start haproxy -db -f "$RUN/haproxy.cfg"; PID_haproxy=$LAST
start nginx -c "$RUN/nginx.conf"; NGINX_MASTER=$LAST
USHER_IO_BACKEND=io_uring start "$USHER_BIN" run -c "$RUN/usher.yaml"; PID_usher=$LAST
USHER_IO_BACKEND=epoll start "$USHER_BIN" run -c "$RUN/usher-epoll.yaml"; PID_usher_epoll=$LAST
for t in $TARGETS; do p="PORT_${t/-/_}"; wait_port "${!p}"; done
sleep 0.3
PID_nginx=$(pgrep -P "$NGINX_MASTER" | head -1)  # the worker does the work

# One round against one target: the normal client alone, then beside the attack. Prints
# "target ok failed u_p50 u_p99 a_p50 a_p99 loris_waves loris_held body_waves body_held cpu_s
# attacker_cpu_s guards", and each request's latency to $RUN/TARGET-ROUND-latencies.
# The attack runs in a process of its own, started on the attack's CPU: with ATTACK_CPU=1 nothing of
# it (not even the fork and exec of each slowhttptest wave) takes the core the normal client measures
# on, and no attack thread holds the normal client's interpreter lock. It prints one JSON line:
# per mode, each wave's exit status and CSV rows, and the CPU seconds of all its slowhttptest runs.
cat >"$RUN/attack.py" <<'PY'
import json, os, re, resource, subprocess, sys, threading, time
port, seconds, loris, bodies, rate, prefix = sys.argv[1:7]
until = time.monotonic() + float(seconds)
ANSI = re.compile(r"\x1b\[[0-9;]*m")

class Attack(threading.Thread):
    """slowhttptest in one mode, started again whenever a run ends, until the window ends."""
    def __init__(self, name, args):
        super().__init__(daemon=True)
        self.name, self.args, self.waves = name, args, []
    def run(self):
        while (left := until - time.monotonic()) >= 2:
            out_prefix = f"{prefix}-{self.name}-{len(self.waves)}"
            try:
                out = subprocess.run(["slowhttptest", *self.args, "-l", str(int(left) - 1), "-g", "-o", out_prefix,
                                      "-u", f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
                rows = []
                if os.path.exists(out_prefix + ".csv"):
                    rows = [[int(x) for x in l.split(",")] for l in open(out_prefix + ".csv").read().splitlines()[1:] if l]
                status = re.search(r"Exit status:\s*(.+)", ANSI.sub("", out))
                self.waves.append((status.group(1).strip() if status else "?", rows))
            except Exception as e:  # the wave counts, with what went wrong as its status
                self.waves.append((f"failed: {e!r}", []))
                time.sleep(1)

attacks = [Attack("loris", ["-H", "-c", loris, "-r", rate, "-i", "1", "-x", "16", "-p", "3"]),
           Attack("body", ["-B", "-c", bodies, "-r", rate, "-i", "1", "-x", "16", "-s", "8192", "-p", "3"])]
for a in attacks:
    a.start()
for a in attacks:
    a.join()
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"waves": {a.name: a.waves for a in attacks}, "cpu": children.ru_utime + children.ru_stime}))
PY
cat >"$RUN/round.py" <<'PY'
import json, os, re, socket, statistics, subprocess, sys, time
target, port, pid, unloaded, attack, loris, bodies, rate, run, log, attack_cpu, round_ = sys.argv[1:13]
port, unloaded, attack = int(port), float(unloaded), float(attack)
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"

def get():
    """Seconds for one GET on a fresh connection, or raises; a status other than 200 raises."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(REQUEST)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {data[:60]!r}")
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                if len(body) >= length:
                    break
    if not data.startswith(b"HTTP/1.1 200"):
        raise ValueError(data[:60])
    return time.monotonic() - started

def normal_client(seconds, phase, trace):
    """A GET every 10 ms for `seconds`: the latencies of those that succeeded, and the failures;
    each request's start and latency go to `trace` (to see what a slow one coincided with)."""
    latencies, failures, started = [], [], time.monotonic()
    while time.monotonic() < started + seconds:
        at = time.monotonic() - started
        try:
            latencies.append(get())
            trace.write(f"{phase} {at:.3f} {latencies[-1] * 1000:.3f}\n")
        except Exception as e:
            failures.append(repr(e))
            trace.write(f"{phase} {at:.3f} failed {e!r}\n")
        time.sleep(0.01)
    return latencies, failures

def held(waves):
    """Connections the attack held open, averaged over its seconds (CSV column Connected)."""
    counts = [r[3] for _, rows in waves for r in rows]
    return statistics.mean(counts) if counts else 0

def cpu_seconds():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def p(latencies, q):
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")

trace = open(os.path.join(run, f"{target}-{round_}-latencies"), "w")
quiet, quiet_failures = normal_client(unloaded, "unloaded", trace)
before = cpu_seconds()
attacker = subprocess.Popen(["taskset", "-c", attack_cpu, "/usr/bin/python3", os.path.join(run, "attack.py"), str(port),
                             str(attack), loris, bodies, rate, os.path.join(run, f"{target}-{round_}")],
                            stdout=subprocess.PIPE, text=True)
loaded, failures = normal_client(attack, "attack", trace)
try:
    report = json.loads(attacker.communicate(timeout=attack + 60)[0])
except (subprocess.TimeoutExpired, ValueError) as e:
    attacker.kill()
    print(f"# {target}: the attack process failed ({e!r}, exit {attacker.poll()})")  # on the terminal
    sys.exit(1)
trace.close()
cpu = cpu_seconds() - before
waves, attacker_cpu = report["waves"], report["cpu"]  # both slowhttptest processes, all waves
guards = "-"
if log != "-":
    time.sleep(1.5)  # the access log's writer catches up
    text = open(log).read()
    header, body = (text.count('"guard":"%s"' % g) for g in ("header_timeout", "body_rate"))
    guards = f"{header}/{body}"
    open(log, "w").close()
for f in quiet_failures + failures:
    print(f"# {target}: failed: {f}", file=sys.stderr)
print(target, len(quiet) + len(loaded), len(quiet_failures) + len(failures),
      f"{p(quiet, 0.5):.2f} {p(quiet, 0.99):.2f} {p(loaded, 0.5):.2f} {p(loaded, 0.99):.2f}",
      len(waves["loris"]), f"{held(waves['loris']):.0f}", len(waves["body"]), f"{held(waves['body']):.0f}",
      f"{cpu:.2f}", f"{attacker_cpu:.2f}", guards)
print(f"# {target}: " + "; ".join(f"{name} waves " + ", ".join(f"{s} (peak {max((r[3] for r in rows), default=0)})"
      for s, rows in runs) for name, runs in waves.items()), file=sys.stderr)
PY

echo "# placement: everything on CPU $CPU, slowhttptest on CPU $ATTACK_CPU; normal client: a GET every 10 ms on a fresh connection,"
echo "# ${UNLOADED}s alone then ${ATTACK}s beside slowhttptest -H -c $LORIS and -B -c $BODIES (-r $RATE -i 1 -x 16); $ROUNDS round(s)"
echo "# target ok failed unloaded_p50_ms unloaded_p99_ms attack_p50_ms attack_p99_ms loris_waves loris_held body_waves body_held proxy_cpu_s attacker_cpu_s guards(header_timeout/body_rate)"
for r in $(seq 1 "$ROUNDS"); do
  for t in $TARGETS; do
    p="PORT_${t/-/_}"; pid="PID_${t/-/_}"; log=-
    [[ $t != usher* ]] || log="$RUN/$t.log"
    taskset -c "$CPU" /usr/bin/python3 "$RUN/round.py" "$t" "${!p}" "${!pid}" "$UNLOADED" "$ATTACK" \
      "$LORIS" "$BODIES" "$RATE" "$RUN" "$log" "$ATTACK_CPU" "$r" 2>>"$RUN/rounds.log" | tee -a "$RUN/results"
    sleep 3  # the last wave's connections end before the next target's unloaded measurement
  done
done
grep '^#' "$RUN/rounds.log" || true

/usr/bin/python3 - "$RUN/results" "$RUN" <<'PY'
import glob, os, statistics as st, sys
by = {}
for line in open(sys.argv[1]):
    t, ok, failed, u50, u99, a50, a99, lw, lh, bw, bh, cpu, acpu, guards = line.split()
    by.setdefault(t, []).append((int(ok), int(failed), float(u50), float(u99), float(a50), float(a99),
                                 int(lw), float(lh), int(bw), float(bh), float(cpu), guards, float(acpu)))
print()
print("| target | requests ok | failed | unloaded p50 ms | unloaded p99 ms | attack p50 ms | attack p99 ms "
      "| p99 attack/unloaded | slowloris held (waves) | slow bodies held (waves) | proxy CPU s in attack "
      "| slowhttptest CPU s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for t, v in by.items():
    med = lambda i: st.median(x[i] for x in v)
    # Unloaded and attacked ran back to back: the median of each round's ratio.
    ratio = st.median(x[5] / x[3] for x in v)
    print(f"| {t} | {sum(x[0] for x in v)} | {sum(x[1] for x in v)} | {med(2):.2f} | {med(3):.2f} | {med(4):.2f} "
          f"| {med(5):.2f} | {ratio:.2f} | {med(7):.0f} ({med(6):.0f}) | {med(9):.0f} ({med(8):.0f}) | {med(10):.2f} "
          f"| {med(12):.2f} |")
print("(held: connections the attack had open, averaged over its seconds; waves: slowhttptest runs"
      " in the window, one more each time the proxy closed all of a run's connections)")
print()
for t, v in by.items():
    ratios = ", ".join(f"{x[5] / x[3]:.2f}" for x in v)
    guards = ", ".join(x[11] for x in v)
    print(f"{t}: p99 attack/unloaded per round {ratios}" + ("" if guards.startswith("-") else
          f"; access log guards header_timeout/body_rate per round {guards}"))

def pooled_p99(target, phase):
    """The p99 of every round's requests of one phase together: a 1 % tail of a few thousand
    requests, where one round's is of about 14 (one round's unloaded p99 moved 0.49-1.13 ms with
    nothing changed)."""
    ms = sorted(float(f[2]) for path in glob.glob(os.path.join(sys.argv[2], f"{target}-[0-9]*-latencies"))
                for f in map(str.split, open(path)) if f[0] == phase and f[2] != "failed")
    return ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan")

print()
pooled = {}
for t in by:
    u, a = pooled_p99(t, "unloaded"), pooled_p99(t, "attack")
    pooled[t] = a / u
    print(f"{t}: all rounds together: unloaded p99 {u:.2f} ms, attack p99 {a:.2f} ms, ratio {a / u:.2f}")
if "usher" in by:
    worst = max(x[5] / x[3] for x in by["usher"])
    failed = sum(x[1] for x in by["usher"])
    print(f"goal (usher, io_uring): p99 within 2x of unloaded: all rounds together "
          f"{'met' if pooled['usher'] <= 2 else 'NOT met'} ({pooled['usher']:.2f}); in every round "
          f"{'met' if worst <= 2 else 'NOT met'} (worst {worst:.2f}); failed requests {failed}")
PY
