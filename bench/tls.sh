#!/usr/bin/env bash
# HTTPS termination: usher (io_uring and epoll) against HAProxy and nginx, same backends, same
# certificate (ECDSA P-256, made here by `openssl req`), same TLS settings, interleaved rounds.
#
#   bash bench/tls.sh                     # 64 connections, 3 rounds of 10 s each
#   CONNS=64 ROUNDS=1 DUR=5 bash bench/tls.sh
#
# Three loads, each a wrk run against every proxy in turn:
#   keepalive  HTTPS requests on kept-alive connections (one handshake per connection, at start);
#   full       a new connection per request (`Connection: close`), every handshake a full one;
#   resumed    the same, with the proxies' default session tickets: wrk keeps the session of its
#              last connection (SSL_shutdown + SSL_clear on one SSL object) and resumes it.
# For `full`, each proxy runs a second instance whose OpenSSL issues no TLS 1.3 ticket
# (OPENSSL_CONF with `NumTickets = 0`, the same file for all three), and the script checks what
# wrk does: against an nginx that logs $ssl_session_reused, with and without that file.
# Placement is "one core" (everything on CPU 0, see docs/benchmarks.md); each proxy's own CPU per
# request (or handshake) comes from its /proc/PID/stat times over the round. `openssl speed` on the
# same CPU gives the cost of the handshake's public-key operations, the floor for CPU per handshake.
# Env: CONNS (64), ROUNDS (3), DUR (10 s), CPU (0), BODY (13 bytes), LOADS ("keepalive full resumed"),
# BASELINE (another usher binary, e.g. a build of an earlier commit: measured as the target
# usher-baseline on io_uring in the same rounds, for a before/after comparison), USHER (the usher
# binary to measure, already built: then nothing is built; helpers in bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
LOADS=${LOADS:-"keepalive full resumed"}
. bench/lib.sh

# The certificate: ECDSA P-256, self-signed for 127.0.0.1; HAProxy reads certificate and key from one file.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$RUN/tls.key" -out "$RUN/tls.crt" 2>/dev/null
cat "$RUN/tls.crt" "$RUN/tls.key" >"$RUN/tls.pem"
# The same OpenSSL settings as the system's, less TLS 1.3 session tickets: no resumption.
cat >"$RUN/no-tickets.cnf" <<CONF
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = system
[system]
NumTickets = 0
CONF

# haproxy_conf PORT NAME: one thread, TLS 1.2 and 1.3, ALPN http/1.1, no OCSP, no log.
haproxy_conf() {
  cat <<CONF
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
frontend f
  bind 127.0.0.1:$1 ssl crt $RUN/tls.pem alpn http/1.1 ssl-min-ver TLSv1.2
  default_backend b
backend b
  balance roundrobin
  server s1 127.0.0.1:$B1
  server s2 127.0.0.1:$B2
  server s3 127.0.0.1:$B3
CONF
}
# nginx_conf PORT NAME: one worker, TLS 1.2 and 1.3 (1.22's default stops at 1.2), ALPN http/1.1.
nginx_conf() {
  cat <<CONF
worker_processes 1; worker_rlimit_nofile 20000; pid $RUN/$2.pid; error_log $RUN/$2.err crit; daemon off;
events { worker_connections 30000; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 120s;
  upstream be { server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; keepalive 1024; keepalive_requests 100000000; }
  server { listen 127.0.0.1:$1 ssl backlog=4096;
           ssl_protocols TLSv1.2 TLSv1.3; ssl_certificate $RUN/tls.crt; ssl_certificate_key $RUN/tls.key;
           location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
}

# The backends, as bench/run.sh has them: three servers, each its own nginx worker with a fixed body.
start_backends

# start_proxies SUFFIX [OPENSSL_CONF]: HAProxy, nginx, usher (io_uring) and usher (epoll); sets
# PORT_<target><SUFFIX> and PID_<target><SUFFIX> (for nginx, its worker's).
start_proxies() {
  local suffix=$1 conf=${2:-} env=() port
  [ -z "$conf" ] || env=(OPENSSL_CONF="$conf")
  port=$(free_port); haproxy_conf "$port" >"$RUN/haproxy$suffix.cfg"
  start env "${env[@]}" haproxy -db -f "$RUN/haproxy$suffix.cfg"
  printf -v "PORT_haproxy$suffix" %s "$port"; printf -v "PID_haproxy$suffix" %s "$LAST"
  port=$(free_port); nginx_conf "$port" "nginx$suffix" >"$RUN/nginx$suffix.conf"
  start env "${env[@]}" nginx -c "$RUN/nginx$suffix.conf"
  printf -v "PORT_nginx$suffix" %s "$port"; printf -v "PID_nginx$suffix" %s "$LAST"
  for name in usher usher_epoll ${BASELINE:+usher_baseline}; do
    local io=io_uring binary=$USHER
    [ $name != usher_epoll ] || io=epoll
    [ $name != usher_baseline ] || binary=$BASELINE
    port=$(free_port)
    start env "${env[@]}" USHER_IO_BACKEND=$io "$binary" proxy --listen "127.0.0.1:$port" --workers 1 \
      --to "127.0.0.1:$B1" --to "127.0.0.1:$B2" --to "127.0.0.1:$B3" --tls-cert "$RUN/tls.crt" --tls-key "$RUN/tls.key"
    printf -v "PORT_$name$suffix" %s "$port"; printf -v "PID_$name$suffix" %s "$LAST"
  done
}
start_proxies ""
start_proxies _full "$RUN/no-tickets.cnf"
TARGETS="haproxy nginx usher usher_epoll${BASELINE:+ usher_baseline}"
for t in $TARGETS; do for s in "" _full; do p="PORT_$t$s"; wait_port "${!p}"; done; done
# nginx's master forks the worker that does the work: measure the worker.
sleep 0.3
for s in "" _full; do p="PID_nginx$s"; printf -v "PID_nginx$s" %s "$(pgrep -P "${!p}" | head -1)"; done

# resumes PORT: "yes" if a second connection resumes the first one's TLS session (openssl s_client).
resumes() {
  rm -f "$RUN/session.pem"
  sleep 0.3 | openssl s_client -connect "127.0.0.1:$1" -sess_out "$RUN/session.pem" >/dev/null 2>&1 || true
  [ -s "$RUN/session.pem" ] || { echo no; return; }
  echo | openssl s_client -connect "127.0.0.1:$1" -sess_in "$RUN/session.pem" 2>/dev/null | grep -q '^Reused,' &&
    echo yes || echo no
}
# wrk_resumes [OPENSSL_CONF]: how many of wrk's `Connection: close` handshakes resume, counted
# by an nginx that logs $ssl_protocol and $ssl_session_reused.
wrk_resumes() {
  local port pid env=()
  [ -z "${1:-}" ] || env=(OPENSSL_CONF="$1")
  port=$(free_port)
  nginx_conf "$port" nginx-log | sed "s|access_log off;|log_format tls '\$ssl_protocol \$ssl_session_reused'; access_log $RUN/tls.log tls;|" \
    >"$RUN/nginx-log.conf"
  rm -f "$RUN/tls.log"
  start env "${env[@]}" nginx -c "$RUN/nginx-log.conf"; pid=$LAST
  wait_port "$port"
  taskset -c "$CPU" wrk -t1 -c4 -d1s -H "Connection: close" "https://127.0.0.1:$port/" >/dev/null 2>&1
  stop "$pid"
  awk '{ n[$1]++; if ($2 == "r") r[$1]++ } END { for (v in n) printf "%s: %d of %d resumed; ", v, r[v], n[v] }' "$RUN/tls.log"
}
echo "# wrk -H 'Connection: close', default tickets: $(wrk_resumes)"
echo "# wrk -H 'Connection: close', NumTickets = 0: $(wrk_resumes "$RUN/no-tickets.cnf")"
for t in $TARGETS; do
  p="PORT_$t"; pf="PORT_${t}_full"
  echo "# $t: s_client resumes a session: $(resumes "${!p}") (default), $(resumes "${!pf}") (NumTickets = 0);" \
    "$(echo | openssl s_client -connect "127.0.0.1:${!p}" -alpn http/1.1 2>/dev/null | grep -E '^New,|^ALPN' | tr '\n' ' ')"
done

# round LOAD TARGET -> appends "load target rps p50_ms p99_ms errors cpu_us_per_request"
round() {
  local load=$1 target=$2 suffix="" hdr=() before after out port pid
  [ "$load" = keepalive ] || hdr=(-H "Connection: close")
  [ "$load" != full ] || suffix=_full
  port="PORT_$target$suffix"; pid="PID_$target$suffix"
  before=$(cpu_ticks "${!pid}")
  out=$(taskset -c "$CPU" wrk -t1 -c"$CONNS" -d"${DUR}s" --latency "${hdr[@]}" "https://127.0.0.1:${!port}/" 2>&1)
  after=$(cpu_ticks "${!pid}")
  echo "$out" >>"$RUN/wrk.log"
  echo "$out" | wrk_row "$load" "${target/_/-}" "$before" "$after" | tee -a "$RUN/results"
}

# The public-key operations of a full TLS 1.3 handshake, on the same CPU: the server signs once
# (ECDSA P-256) and makes and uses one X25519 key; the client verifies once and does the same X25519.
taskset -c "$CPU" openssl speed -seconds 3 ecdsap256 ecdhx25519 2>/dev/null >"$RUN/speed"
SIGN=$(awk '/ecdsa \(nistp256\)/ { print $(NF-1) }' "$RUN/speed")
VERIFY=$(awk '/ecdsa \(nistp256\)/ { print $NF }' "$RUN/speed")
X25519=$(awk '/ecdh \(X25519\)/ { print $NF }' "$RUN/speed")
echo "# openssl speed on CPU $CPU: ECDSA P-256 sign/s $SIGN, verify/s $VERIFY; X25519 op/s $X25519"

echo "# placement: everything on CPU $CPU; wrk -t1 -c$CONNS; ${DUR}s rounds x $ROUNDS; body ${BODY} bytes"
echo "# load target rps p50_ms p99_ms errors proxy_cpu_us_per_request"
for load in $LOADS; do
  hdr=(); [ "$load" = keepalive ] || hdr=(-H "Connection: close")
  for t in $TARGETS; do
    s=""; [ "$load" != full ] || s=_full; p="PORT_$t$s"
    taskset -c "$CPU" wrk -t1 -c"$CONNS" -d2s "${hdr[@]}" "https://127.0.0.1:${!p}/" >/dev/null 2>&1
  done
  for _ in $(seq 1 "$ROUNDS"); do
    for t in $TARGETS; do round "$load" "$t"; done
  done
done

/usr/bin/python3 - "$RUN/results" "$SIGN" "$VERIFY" "$X25519" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
sign, verify, x25519 = (float(x) for x in sys.argv[2:5])
by = {}
for load, t, rps, p50, p99, err, cpu in rows:
    by.setdefault((load, t), []).append((float(rps), float(p50), float(p99), int(err), float(cpu)))
loads = [l for l in ("keepalive", "full", "resumed") if any(k[0] == l for k in by)]
print()
print("| load | target | req/s | p50 ms | p99 ms | errors | proxy CPU µs/req |")
print("|---|---|---|---|---|---|---|")
med = {}
for load in loads:
    for t in ("haproxy", "nginx", "usher", "usher-epoll", "usher-baseline"):
        if (load, t) not in by:
            continue
        v = by[(load, t)]
        m = tuple(st.median(x[i] for x in v) for i in range(5))
        med[(load, t)] = m
        print(f"| {load} | {t} | {m[0]:.0f} | {m[1]:.2f} | {m[2]:.2f} | {sum(x[3] for x in v)} | {m[4]:.1f} |")
print()
# Targets of one round ran back to back: the median of each round's ratio.
for load in loads:
    for name in ("usher", "usher-epoll"):
        parts = []
        for other in ("haproxy", "nginx"):
            rounds = list(zip(by[(load, name)], by[(load, other)]))
            ratio = lambda i: st.median(u[i] / o[i] for u, o in rounds)
            parts.append(f"/{other} rps {ratio(0):.2f} p99 {ratio(2):.2f} cpu {ratio(4):.2f}")
        print(f"{load}: {name} per-round ratios, median of {len(rounds)}: " + "; ".join(parts))
    if (load, "usher-baseline") in by:
        rounds = list(zip(by[(load, "usher")], by[(load, "usher-baseline")]))
        ratio = lambda i: st.median(u[i] / b[i] for u, b in rounds)
        print(f"{load}: usher / usher-baseline, per-round median of {len(rounds)}: "
              f"rps {ratio(0):.3f} p99 {ratio(2):.3f} cpu {ratio(4):.3f}")
server = 1e6 / sign + 2e6 / x25519
client = 1e6 / verify + 2e6 / x25519
print()
print(f"full handshake's public-key operations (openssl speed, one core): server {server:.1f} µs "
      f"(1 sign + 2 X25519), client {client:.1f} µs; one core's ceiling for the server's side "
      f"alone {1e6 / server:.0f}/s, for both sides {1e6 / (server + client):.0f}/s")
if "full" in loads:
    for t in ("haproxy", "nginx", "usher", "usher-epoll"):
        rps, cpu = med[("full", t)][0], med[("full", t)][4]
        print(f"full: {t} {rps:.0f} handshakes/s = {rps * (server + client) / 1e6:.2f} of the both-sides "
              f"ceiling; {cpu:.1f} µs CPU per handshake = {server / cpu:.2f} in the server's public-key "
              f"operations, {cpu - server:.1f} µs besides")
PY
