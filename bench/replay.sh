#!/usr/bin/env bash
# How `usher simulate --replay` copes with a large access log: time and peak memory for every
# algorithm over a generated log (1000 MB unless MB says otherwise).
#   bash bench/replay.sh            MB=200 bash bench/replay.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${USHER:-}" ]; then
  scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  USHER=build/src/app/usher
fi
MB=${MB:-1000}
LOG=$(mktemp --suffix=.log)
trap 'rm -f "$LOG"' EXIT
/usr/bin/python3 bench/replay_log.py "$LOG" "$MB"
printf 'log: %s MB, %s lines\n' "$(( $(stat -c %s "$LOG") / 1000000 ))" "$(wc -l <"$LOG")"
/usr/bin/time -f 'replay: %e s wall, %U s user, peak RSS %M KiB' \
  "$USHER" simulate --replay "$LOG" --concurrency 16 --recommend
