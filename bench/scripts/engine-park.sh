#!/usr/bin/env bash
# Parking (issue 4): what the first message after a quiet spell costs. One client's echo
# round trips, each after a 6 s pause (longer than the 5 s park delay), against a fresh
# `partyline serve --shards 1` with parking on (the default) and off (ws_park_after_ms =
# 0), alternating, RUNS times; plus 5,000 round trips back to back on the same servers.
# Usage: bench/scripts/engine-park.sh   (after `cargo build --release`)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
OUT=${OUT:-target/bench-park}
PORT=${PORT:-19140}
mkdir -p "$OUT"
printf '[limits]\nws_park_after_ms = 0\n' > "$OUT/off.toml"
printf '' > "$OUT/on.toml"
for run in $(seq 1 "$RUNS"); do
  for variant in on off; do
    target/release/partyline serve --listen "127.0.0.1:$PORT" --shards 1 --data "$OUT/data" \
      --config "$OUT/$variant.toml" > "$OUT/server.log" 2>&1 &
    SERVER=$!
    sleep 1
    LT="target/release/partyline-loadtest --target 127.0.0.1:$PORT --workers 1 --server-pid $SERVER"
    $LT --json "$OUT/pause-$variant-$run.json" echo --clients 1 --round-trips 4 --pause-ms 6000 > /dev/null
    $LT --json "$OUT/busy-$variant-$run.json" echo --clients 1 --round-trips 5000 > /dev/null
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  done
done
python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
m = statistics.median
for kind, what in (("pause", "after 6 s of silence"), ("busy", "back to back")):
    for v in ("on", "off"):
        r = [json.load(open(f"{out}/{kind}-{v}-{i}.json"))["results"] for i in range(1, runs + 1)]
        print(f"parking {v:3}, round trips {what}: p50 {m([x['rtt']['p50_us'] for x in r])} us, "
              f"p99 {m([x['rtt']['p99_us'] for x in r])} us, max {m([x['rtt']['max_us'] for x in r])} us, "
              f"errors {sum(x['errors'] for x in r)}  (p50 runs: {[x['rtt']['p50_us'] for x in r]})")
PY
