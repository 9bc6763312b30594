#!/usr/bin/env bash
# Two ushers sharing one floating address, on this machine alone: every part in its own network
# namespace, all of them on one bridge. Redis holds the sessions, three session-app servers
# (alpha, beta, gamma) serve them, usher-a and usher-b both balance the three, and two keepalived
# (VRRPv3) give the floating address to one usher at a time. docs/high-availability.md tells the
# story. Needs root, keepalived, redis-server and iproute2 (bash scripts/setup.sh) and a build.
# Prints what to try; Ctrl-C (or SIGTERM) stops everything it started and removes the namespaces.
#   USHER=build/src/app/usher SESSION_APP=build/examples/session-app/session-app \
#   HA_TAG=ha1 HA_RUN_DIR=/tmp/ha ADVERT_INT=0.1 bash examples/ha/run.sh
# HA_TAG starts every namespace name (default: ha and this shell's PID); HA_RUN_DIR keeps the
# configurations, health files and logs after the stop (default: a temporary folder, removed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

USHER=${USHER:-$root/build/src/app/usher}
SESSION_APP=${SESSION_APP:-$root/build/examples/session-app/session-app}
for binary in "$USHER" "$SESSION_APP"; do
  [ -x "$binary" ] || { echo "ha: $binary not found: build first (scripts/build.sh build)" >&2; exit 1; }
done
# Absolute paths: keepalived recognises usher by its exact command line.
USHER=$(realpath "$USHER")
SESSION_APP=$(realpath "$SESSION_APP")
ADVERT_INT=${ADVERT_INT:-0.1}
tag=${HA_TAG:-ha$$}  # namespace names start with it: one run never meets another
net=10.200.0        # the /24 on the bridge, inside the namespaces only
vip=$net.10
declare -A ip=([usher-a]=$net.11 [usher-b]=$net.12 [alpha]=$net.21 [beta]=$net.22 [gamma]=$net.23
  [redis]=$net.30 [client]=$net.100)
roles=(redis alpha beta gamma usher-a usher-b client)

for tool in ip keepalived redis-server curl; do
  command -v "$tool" >/dev/null || { echo "ha: $tool not found (bash scripts/setup.sh)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "ha: network namespaces need root" >&2; exit 1; }

if [ -n "${HA_RUN_DIR:-}" ]; then
  run=$HA_RUN_DIR keep_run=1
  mkdir -p "$run"
else
  run=$(mktemp -d) keep_run=0
fi
namespaces=()
supervisors=()
idle=""

ns() { echo "$tag-$1"; }
in_ns() { local role=$1; shift; ip netns exec "$(ns "$role")" "$@"; }

# Everything that runs in a namespace of this run is this run's: stopped by PID, then the
# namespaces go. Bounded: 5 s for SIGTERM, then SIGKILL.
cleanup() {
  set +e
  trap - EXIT INT TERM
  local order=(client usher-a usher-b alpha beta gamma redis net) pids=() role pid
  # The supervisors first, or they would start usher again.
  for pid in "${supervisors[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for role in "${order[@]}"; do
    [[ " ${namespaces[*]} " == *" $(ns "$role") "* ]] || continue
    for pid in $(ip netns pids "$(ns "$role")" 2>/dev/null); do
      kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    done
  done
  for _ in $(seq 1 50); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  [ -z "$idle" ] || kill "$idle" 2>/dev/null
  for name in "${namespaces[@]}"; do ip netns del "$name" 2>/dev/null; done
  [ "$keep_run" -eq 1 ] || rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# One namespace per part, each with eth0 on the bridge, which has a namespace of its own: nothing
# of this run is visible in the machine's own network.
ip netns add "$(ns net)"
namespaces+=("$(ns net)")
ip -n "$(ns net)" link add br0 type bridge
ip -n "$(ns net)" link set br0 up
for role in "${roles[@]}"; do
  ip netns add "$(ns "$role")"
  namespaces+=("$(ns "$role")")
  ip -n "$(ns net)" link add "$role" type veth peer name eth0 netns "$(ns "$role")"
  ip -n "$(ns net)" link set "$role" master br0 up
  ip -n "$(ns "$role")" addr add "${ip[$role]}/24" dev eth0
  ip -n "$(ns "$role")" link set eth0 up
  ip -n "$(ns "$role")" link set lo up
done

# Bounded: 200 tries, 10 s (a refused connection fails at once).
wait_port() {
  local role=$1 address=$2 port=$3
  for _ in $(seq 1 200); do
    in_ns "$role" bash -c "exec 3<>/dev/tcp/$address/$port" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "ha: $role did not listen on $address:$port; its log: $run/$role.log" >&2
  return 1
}

in_ns redis redis-server --bind "${ip[redis]}" --port 6379 --protected-mode no --save '' \
  --appendonly no --dir "$run" >"$run/redis.log" 2>&1 &
wait_port redis "${ip[redis]}" 6379

for name in alpha beta gamma; do
  in_ns "$name" "$SESSION_APP" --listen "${ip[$name]}:8000" --name "$name" --store redis \
    --redis "${ip[redis]}:6379" >"$run/$name.log" 2>&1 &
done
for name in alpha beta gamma; do wait_port "$name" "${ip[$name]}" 8000; done

backends=""
for name in alpha beta gamma; do
  backends+="      - { address: ${ip[$name]}:8000, name: $name }\n"
done
fill() {  # fill TEMPLATE NAME: the template with this usher's values
  local name=$1 self peer priority
  case $name in
    usher-a) self=${ip[usher-a]} peer=${ip[usher-b]} priority=254 ;;
    usher-b) self=${ip[usher-b]} peer=${ip[usher-a]} priority=253 ;;
  esac
  sed -e "s|@NAME@|$name|g" -e "s|@HEALTH_FILE@|$run/$name.health|g" -e "s|@USHER@|$USHER|g" \
    -e "s|@USHER_CONFIG@|$run/$name.yaml|g" -e "s|@VRID@|51|g" -e "s|@PRIORITY@|$priority|g" \
    -e "s|@ADVERT_INT@|$ADVERT_INT|g" -e "s|@SELF@|$self|g" -e "s|@PEER@|$peer|g" \
    -e "s|@VIP@|$vip|g" -e "s|@BACKENDS@|${backends%\\n}|g"
}
for name in usher-a usher-b; do
  fill "$name" <"$here/usher.yaml.in" >"$run/$name.yaml"
  fill "$name" <"$here/keepalived.conf.in" >"$run/$name.keepalived.conf"
  "$USHER" check -c "$run/$name.yaml" >/dev/null
done

# What systemd does for usher (dist/usher.service: Restart=on-failure, RestartSec=1s), plus
# the one thing usher cannot do itself: say "1" in its health file the moment the process ends,
# by SIGKILL or a crash too (under systemd: ExecStopPost=). keepalived then gives the address up
# at once, not at its next check of the process.
supervise() {  # at most 100 restarts
  local name=$1 health=$run/$1.health
  for _ in $(seq 1 100); do
    in_ns "$name" "$USHER" run -c "$run/$name.yaml" >>"$run/$name.log" 2>&1 || true
    echo 1 >"$health.exited" && mv "$health.exited" "$health"
    echo "$(date '+%T.%3N') usher ended; its health file says 1; restart in 1 s" >>"$run/$name.log"
    sleep 1
  done
}
# usher first: keepalived holds the address back until usher's health file says 0.
for name in usher-a usher-b; do
  supervise "$name" &
  supervisors+=($!)
done
for name in usher-a usher-b; do wait_port "$name" 127.0.0.1 80; done

holder() {  # which usher has the floating address now, if any
  local name
  for name in usher-a usher-b; do
    ip -n "$(ns "$name")" -4 -o addr show dev eth0 | grep -q " $vip/" && { echo "$name"; return; }
  done
  return 0
}
# usher-a's keepalived first, and usher-b's once usher-a holds the address: with nopreempt the
# first to hold it keeps it, so this makes the higher priority the holder, not the faster start.
# Bounded: 10 s each for usher-a to be healthy and win, then for an answer through the address.
for name in usher-a usher-b; do
  in_ns "$name" keepalived --vrrp --dont-fork --log-console --log-detail --no-syslog \
    --use-file "$run/$name.keepalived.conf" --pid "$run/$name.keepalived.pid" \
    --vrrp_pid "$run/$name.keepalived-vrrp.pid" >"$run/$name.keepalived.log" 2>&1 &
  deadline=$((SECONDS + 10))
  while [ $SECONDS -lt $deadline ] && [ -z "$(holder)" ]; do sleep 0.05; done
done
deadline=$((SECONDS + 10))
while [ $SECONDS -lt $deadline ]; do
  [ -n "$(holder)" ] && in_ns client curl -sf -o /dev/null -m 0.5 "http://$vip/health" && break
  sleep 0.05
done
[ -n "$(holder)" ] || { echo "ha: no usher took $vip; logs in $run" >&2; exit 1; }

pid_of() { pgrep -f -x -- "$USHER run -c $run/$1.yaml" || true; }
cat <<MSG

Two ushers, one floating address: $vip is held by $(holder).
  usher-a     ${ip[usher-a]}   namespace $(ns usher-a)   priority 254   pid $(pid_of usher-a)
  usher-b     ${ip[usher-b]}   namespace $(ns usher-b)   priority 253   pid $(pid_of usher-b)
  servers     alpha, beta, gamma on ${ip[alpha]}, ${ip[beta]}, ${ip[gamma]} port 8000 (sessions in Redis)
  redis       ${ip[redis]}:6379
  client      ${ip[client]}   namespace $(ns client)

Try (docs/high-availability.md explains each step):
 1. Log in through the floating address, then keep asking who you are (Ctrl-C ends the loop):
      ip netns exec $(ns client) curl -s -c $run/jar -d user=alice http://$vip/login
      ip netns exec $(ns client) sh -c 'while sleep 0.2; do curl -s -m 1 -b $run/jar -w "%{http_code} via %header{x-usher}\n" http://$vip/me | paste -sd " "; done'
 2. In another terminal: who holds the address, and what each usher says of itself (0: fit):
      ip -n $(ns usher-a) -4 -br addr show eth0; ip -n $(ns usher-b) -4 -br addr show eth0
      cat $run/usher-a.health $run/usher-b.health
 3. Kill usher-a for real:   kill -9 $(pid_of usher-a)
    usher-b answers from then on; usher-a's supervisor restarts it a second later, and it waits
    as the backup.
 4. Cut usher-b off from the three servers (alive but useless): its health file says 1 and the
    address moves back to usher-a. Then mend it:
      ip -n $(ns usher-b) route add prohibit $net.20/30
      ip -n $(ns usher-b) route del prohibit $net.20/30
Logs and configurations are in $run. Stop everything with Ctrl-C (or: kill $$).
MSG
sleep infinity &
idle=$!
wait $idle
