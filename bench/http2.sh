#!/usr/bin/env bash
# HTTP/2 toward clients: usher against HAProxy and nginx, same HTTP/1.1 backends (kept alive), same
# certificate (ECDSA P-256, made here by `openssl req`), interleaved rounds, over two transports:
#   tls  h2 negotiated by ALPN (offered: h2, http/1.1) on a TLS listener, TLS 1.2 and 1.3 allowed;
#   h2c  h2c with prior knowledge on a plain listener.
#
#   bash bench/http2.sh                   # h2load -c50 -m20, 3 rounds of 10 s per transport and target
#   ROUNDS=1 DUR=3 bash bench/http2.sh
#
# Each proxy is one process with both listeners, one worker (thread):
#   usher    `usher run -c`, `workers: 1`, io_backend $IO, no access log; the TLS listener has
#            `alpn: [h2, http/1.1]`, the plain one speaks h2c to a client that opens with the preface;
#   HAProxy  `nbthread 1`, `bind ... ssl crt ... alpn h2,http/1.1` and `bind ... proto h2`,
#            `http-reuse always` to the backends;
#   nginx    1 worker, `listen ... ssl http2` and `listen ... http2` (1.22's spelling), upstream
#            keepalive 1024, HTTP/1.1 to the backends.
# Every stream becomes an HTTP/1.1 request to the pool of three nginx backends of bench/lib.sh.
# Before the rounds, a short h2load against every listener prints what was negotiated and fails
# the script unless every answer was a 2xx over h2 (tls) or h2c. In each round every target gets
# one h2load run, which one goes first turning with the rounds; the per-round ratios usher/HAProxy
# and usher/nginx are printed with their medians and the goal (usher at least 1.3x HAProxy).
# Placement is "one core" (everything on CPU 0, h2load -t1 included; see docs/benchmarks.md); each
# proxy's own CPU per request comes from its /proc/PID/stat times over the round (for nginx, its
# worker's). h2load reports no percentiles: p50 and p99 come from its --log-file of every request.
# With PERF=SECONDS, usher then runs SECONDS of the same load per transport under `perf record -g`,
# and its CPU by binary and hottest symbols are printed. With CALLGRIND=REQUESTS, a second usher
# then runs under valgrind's callgrind, and its userspace instructions per request over REQUESTS
# requests are counted per transport, by library or source folder and by function (a count that
# what else runs on the machine does not move).
# Env: CONNS (50 clients), STREAMS (20 concurrent streams each), ROUNDS (3), DUR (10 s),
# TRANSPORTS ("tls h2c"), IO (io_uring), PERF (0: off), CALLGRIND (0: off), CPU (0), BODY (13
# bytes), USHER (an already built usher: then nothing is built; bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-50}
STREAMS=${STREAMS:-20}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
TRANSPORTS=${TRANSPORTS:-"tls h2c"}
IO=${IO:-io_uring}
PERF=${PERF:-0}
CALLGRIND=${CALLGRIND:-0}
. bench/lib.sh

# The certificate: ECDSA P-256, self-signed for 127.0.0.1; HAProxy reads certificate and key from one file.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$RUN/tls.key" -out "$RUN/tls.crt" 2>/dev/null
cat "$RUN/tls.crt" "$RUN/tls.key" >"$RUN/tls.pem"

start_backends
declare -A PORT PID
for t in haproxy nginx usher; do PORT[$t-tls]=$(free_port); PORT[$t-h2c]=$(free_port); done

cat >"$RUN/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 9900
  ulimit-n 20000
defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend tls
  bind 127.0.0.1:${PORT[haproxy-tls]} ssl crt $RUN/tls.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2
  default_backend b
frontend h2c
  bind 127.0.0.1:${PORT[haproxy-h2c]} proto h2
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
  server { listen 127.0.0.1:${PORT[nginx-tls]} ssl http2 backlog=4096;
           ssl_protocols TLSv1.2 TLSv1.3; ssl_certificate $RUN/tls.crt; ssl_certificate_key $RUN/tls.key;
           location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:${PORT[nginx-h2c]} http2 backlog=4096;
           location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
# usher_conf TLS_PORT H2C_PORT: one worker, no access log, both listeners to the pool of three.
usher_conf() {
  cat <<CONF
workers: 1
io_backend: $IO
access_log: off
listeners:
  - name: tls
    listen: 127.0.0.1:$1
    protocol: http
    tls: { certificates: [{ cert: $RUN/tls.crt, key: $RUN/tls.key }], alpn: [h2, http/1.1] }
    pool: web
  - name: h2c
    listen: 127.0.0.1:$2
    protocol: http
    pool: web
$(usher_pool)
CONF
}
usher_conf "${PORT[usher-tls]}" "${PORT[usher-h2c]}" >"$RUN/usher.yaml"
"$USHER" check -c "$RUN/usher.yaml" >/dev/null

start haproxy -db -f "$RUN/haproxy.cfg"; PID[haproxy]=$LAST
start nginx -c "$RUN/nginx.conf"; PID[nginx]=$LAST
USHER_IO_BACKEND=$IO start "$USHER" run -c "$RUN/usher.yaml"; PID[usher]=$LAST
for p in "${PORT[@]}"; do wait_port "$p"; done
# nginx's master forks the worker that does the work: measure the worker.
sleep 0.3
PID[nginx]=$(pgrep -P "${PID[nginx]}" | head -1)
TARGETS="haproxy nginx usher"

url() {
  [ "$1" = tls ] && echo "https://127.0.0.1:${PORT[$2-tls]}/" || echo "http://127.0.0.1:${PORT[$2-h2c]}/"
}
# h2load_run TRANSPORT TARGET ARGS...: h2load on CPU $CPU, bounded in time, its output on stdout.
h2load_run() {
  local transport=$1 target=$2
  shift 2
  timeout $((DUR + 30)) taskset -c "$CPU" h2load -t1 "$@" "$(url "$transport" "$target")" 2>&1 || true
}

# What each listener negotiates, and that all of a short load's answers are 2xx over HTTP/2.
for transport in $TRANSPORTS; do
  for t in $TARGETS; do
    out=$(h2load_run "$transport" "$t" -n 1000 -c 10 -m 10)
    want=h2; [ "$transport" = tls ] || want=h2c
    echo "# $transport $t: $(echo "$out" | grep -E '^(TLS Protocol|Cipher|Server Temp Key|Application protocol):' |
      tr '\n' ' ')$(echo "$out" | grep -E '^status codes:')"
    grep -q "^Application protocol: $want\$" <<<"$out" && grep -q '^status codes: 1000 2xx,' <<<"$out" ||
      { echo "$out" >&2; echo "bench: $t over $transport did not answer 1000 requests over $want" >&2; exit 1; }
  done
done

# h2load_row TRANSPORT TARGET TICKS_BEFORE TICKS_AFTER LOG < H2LOAD_OUTPUT: one line
# "transport target rps p50_ms p99_ms errors cpu_us_per_request"; errors counts h2load's failed,
# errored and timed-out requests and the non-2xx answers; p50 and p99 come from its request log.
h2load_row() {
  /usr/bin/python3 -c '
import re, sys
text = sys.stdin.read()
transport, target, before, after, log, hz = sys.argv[1:7]
done = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
counts = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                   r"(\d+) errored, (\d+) timeout", text)
codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
if not (done and counts and codes):  # h2load failed or was stopped by timeout
    print(transport, target, 0, 0, 0, 1, 0)
    sys.exit()
requests = int(counts.group(2))
errors = sum(int(counts.group(i)) for i in (4, 5, 6)) + sum(int(codes.group(i)) for i in (2, 3, 4))
times = sorted(int(line.split("\t")[2]) for line in open(log) if line.count("\t") == 2)
pct = lambda p: times[min(len(times) - 1, int(p * len(times)))] / 1e3 if times else 0
cpu_s = (int(after) - int(before)) / int(hz)
print(transport, target, f"{float(done.group(1)):.0f}", f"{pct(0.50):.3f}", f"{pct(0.99):.3f}", errors,
      f"{cpu_s * 1e6 / max(requests, 1):.2f}")
' "$1" "$2" "$3" "$4" "$5" "$HZ"
}

# round TRANSPORT TARGET -> appends "transport target rps p50_ms p99_ms errors cpu_us_per_request"
round() {
  local transport=$1 target=$2 before after out
  before=$(cpu_ticks "${PID[$target]}")
  out=$(h2load_run "$transport" "$target" -c "$CONNS" -m "$STREAMS" -D "$DUR" --log-file "$RUN/requests.log")
  after=$(cpu_ticks "${PID[$target]}")
  echo "$out" >>"$RUN/h2load.log"
  echo "$out" | h2load_row "$transport" "$target" "$before" "$after" "$RUN/requests.log" | tee -a "$RUN/results"
  rm -f "$RUN/requests.log"
}

echo "# placement: everything on CPU $CPU; h2load -t1 -c$CONNS -m$STREAMS; ${DUR}s rounds x $ROUNDS;" \
  "body ${BODY} bytes; usher io $IO"
echo "# transport target rps p50_ms p99_ms errors proxy_cpu_us_per_request"
for transport in $TRANSPORTS; do
  for t in $TARGETS; do
    h2load_run "$transport" "$t" -c "$CONNS" -m "$STREAMS" -D 2 >/dev/null
  done
  # Which target goes first turns with the rounds: none always follows the same one.
  for r in $(seq 1 "$ROUNDS"); do
    order=($TARGETS)
    for i in 0 1 2; do round "$transport" "${order[$(((i + r) % 3))]}"; done
  done
done

/usr/bin/python3 - "$RUN/results" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for transport, t, rps, p50, p99, err, cpu in rows:
    by.setdefault((transport, t), []).append((float(rps), float(p50), float(p99), int(err), float(cpu)))
transports = [x for x in ("tls", "h2c") if any(k[0] == x for k in by)]
print()
print("| transport | target | req/s | p50 ms | p99 ms | errors | proxy CPU µs/req |")
print("|---|---|---|---|---|---|---|")
for transport in transports:
    for t in ("haproxy", "nginx", "usher"):
        v = by[(transport, t)]
        m = [st.median(x[i] for x in v) for i in range(5)]
        print(f"| {transport} | {t} | {m[0]:.0f} | {m[1]:.2f} | {m[2]:.2f} | {sum(x[3] for x in v)} | {m[4]:.1f} |")
print()
# Targets of one round ran back to back: the median of each round's ratio.
for transport in transports:
    parts = []
    for other in ("haproxy", "nginx"):
        rounds = list(zip(by[(transport, "usher")], by[(transport, other)]))
        each = [u[0] / o[0] if o[0] else 0 for u, o in rounds]
        print(f"{transport}: usher/{other} req/s, round by round: " + " ".join(f"{x:.2f}" for x in each))
        ratio = lambda i: st.median(u[i] / o[i] if o[i] else 0 for u, o in rounds)
        parts.append(f"/{other} rps {ratio(0):.2f} p99 {ratio(2):.2f} cpu {ratio(4):.2f}")
        if other == "haproxy":
            goal = ratio(0)
    print(f"{transport}: usher per-round ratios, median of {len(rounds)}: " + "; ".join(parts))
    verdict = "met" if goal >= 1.3 else "NOT met"
    print(f"{transport}: goal (usher at least 1.3x HAProxy's req/s): {verdict} ({goal:.2f}x)")
PY

# perf record -g on usher over PERF seconds of the same load, per transport.
if [ "$PERF" != 0 ]; then
  for transport in $TRANSPORTS; do
    # perf takes a moment to attach: it starts a second before the load.
    perf record -g -p "${PID[usher]}" -o "$RUN/perf-$transport.data" -- sleep $((PERF + 1)) >/dev/null 2>&1 &
    recording=$!
    sleep 1
    h2load_run "$transport" usher -c "$CONNS" -m "$STREAMS" -D "$PERF" | grep -E '^finished in'
    wait "$recording"
    echo "# usher over $transport, perf record -g, CPU by binary (perf report --sort dso):"
    # sed, not head: head would leave perf and grep writing to a closed pipe (pipefail); || true:
    # grep finds nothing when perf recorded no samples.
    perf report -i "$RUN/perf-$transport.data" --no-children --sort dso --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | sed -E 's/ +$//' | sed -n 1,6p || true
    echo "# usher over $transport, hottest symbols (perf report --no-children):"
    perf report -i "$RUN/perf-$transport.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | sed -E 's/( +-)* *$//' | sed -n 1,30p || true
  done
  [ -z "${KEEP_RUN:-}" ] || echo "perf data: $RUN/perf-*.data"
fi

# usher_callgrind TRANSPORT: usher alone under valgrind's callgrind (the same config, new ports);
# after a warm-up its counters are zeroed, h2load makes $CALLGRIND requests and they are dumped:
# usher's userspace instructions per request, by library or source folder and by function.
usher_callgrind() {
  local tls_port h2c_port pid port url out
  tls_port=$(free_port); h2c_port=$(free_port)
  usher_conf "$tls_port" "$h2c_port" >"$RUN/callgrind.yaml"
  USHER_IO_BACKEND=$IO start valgrind --tool=callgrind --callgrind-out-file="$RUN/callgrind.$1" \
    "$USHER" run -c "$RUN/callgrind.yaml"
  pid=$LAST
  port=$h2c_port; url="http://127.0.0.1:$port/"
  [ "$1" != tls ] || { port=$tls_port; url="https://127.0.0.1:$port/"; }
  wait_port "$port" 1200
  local load=(taskset -c "$CPU" h2load -t1 -c "$CONNS" -m "$STREAMS")
  timeout 120 "${load[@]}" -n 20000 "$url" >/dev/null 2>&1 || true
  callgrind_control -z "$pid" >/dev/null 2>&1
  # valgrind runs usher at about 2000 requests a second.
  out=$(timeout $((CALLGRIND / 200 + 60)) "${load[@]}" -n "$CALLGRIND" "$url" 2>&1 || true)
  callgrind_control -d "$pid" >/dev/null 2>&1
  # Under valgrind usher did not always act on SIGTERM; the counts are written already.
  kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  grep -q "^status codes: $CALLGRIND 2xx," <<<"$out" ||
    { echo "bench: h2load under callgrind did not get $CALLGRIND 2xx: $out" >&2; return; }
  callgrind_annotate --auto=no --inclusive=no --threshold=100 "$RUN/callgrind.$1.1" \
    >"$RUN/callgrind.$1.txt" 2>/dev/null
  /usr/bin/python3 - "$RUN/callgrind.$1.txt" "$1" "$CALLGRIND" "$CONNS" <<'PY'
import collections, re, sys
transport, requests, conns = sys.argv[2], int(sys.argv[3]), sys.argv[4]
FOLDERS = (("usher::proxy::h2::", "src/proxy/h2"), ("usher::http2::", "src/codec/http2"),
           ("usher::http1::", "src/codec/http1"), ("usher::proxy::l7::", "src/proxy/l7"),
           ("usher::net::", "src/net"))
def group(path, binary, name):
    if "nghttp2" in binary:
        return "libnghttp2"
    if "libssl" in binary or "libcrypto" in binary:
        return "OpenSSL"
    if re.search(r"malloc\.c|arena\.c|allocation_count\.cc|frame_pool\.cc", path):
        return "allocation (malloc, free, operator new, coroutine frames)"
    if binary.startswith("libc"):
        return "libc (memcpy, memcmp, memchr...)"
    return next((f"usher {folder}" for prefix, folder in FOLDERS if name.startswith(prefix)),
                "elsewhere (the rest of usher, libstdc++, fmt)")
groups, functions, total = collections.Counter(), collections.Counter(), 0
for line in open(sys.argv[1]):
    m = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(\S.*?)\s*$", line)
    if not m:
        continue
    ir, share, where = int(m.group(1).replace(",", "")), float(m.group(2)), m.group(3)
    if where == "PROGRAM TOTALS":
        total = ir
        continue
    if share > 99:  # the worker thread's frames, on the stack when the counters were zeroed
        continue
    path, function = where.split(":", 1)
    binary = re.search(r"\[([^\]]*)\]$", function)
    binary = binary.group(1).rsplit("/", 1)[-1] if binary else ""
    name = re.sub(r" \[[^\]]*\]$", "", function).replace("(anonymous namespace)::", "").split("(")[0]
    groups[group(path, binary, name)] += ir
    functions[name + (f" ({binary})" if binary.startswith("lib") else "")] += ir
print(f"# usher over {transport}, callgrind: {total / requests:.0f} instructions per request in "
      f"usher's process ({requests} requests on {conns} new connections)")
for name, ir in groups.most_common():
    print(f"{100 * ir / total:6.1f}% {ir / requests:7.0f}/request  {name}")
print(f"# usher over {transport}, callgrind: functions by their own instructions")
for name, ir in functions.most_common(15):
    print(f"{100 * ir / total:6.1f}% {ir / requests:7.0f}/request  {name[:100]}")
PY
}
if [ "$CALLGRIND" != 0 ]; then
  for transport in $TRANSPORTS; do usher_callgrind "$transport"; done
fi
