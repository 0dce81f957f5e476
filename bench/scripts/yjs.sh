#!/usr/bin/env bash
# Typing into one Yjs document (issue 14): the loadtest's `yjs` scenario against the
# built-in `yjs` party (`partyline serve --shards 1`, fresh each round): one sender types
# one-character updates at RATES into a room of CONNECTIONS; each update is stored
# durably, applied and sent to every other connection. Prints medians per size and rate:
# update latency, updates/s, deliveries/s, updates per server CPU-s, and how many updates
# a message carried (the party merges updates that queued while it wrote).
# Usage: cargo build --release && bench/scripts/yjs.sh
#   ROUNDS=3 CONNECTIONS="100 1000" RATES="100 1000" OUT=target/bench-yjs
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-100 1000}
RATES=${RATES:-100 1000}
OUT=${OUT:-target/bench-yjs}
PORT=${PORT:-19270}
rm -rf "$OUT"
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  dir="$OUT/$round"
  mkdir -p "$dir"
  echo "round $round" >&2
  target/release/partyline serve --listen "127.0.0.1:$PORT" --admin off --shards 1 \
    --data "$dir/data" > "$dir/server.log" 2>&1 &
  server=$!
  sleep 1
  for n in $CONNECTIONS; do
    for rate in $RATES; do
      target/release/partyline-loadtest --target "127.0.0.1:$PORT" --workers 1 --server-pid "$server" \
        --json "$dir/yjs-$n-$rate.json" yjs --connections "$n" --rate "$rate" --warmup-s 1 \
        --duration-s 5 --room "doc-$n-$rate" > /dev/null
    done
  done
  kill "$server"
  wait "$server" 2>/dev/null || true
done
python3 - "$OUT" "$ROUNDS" "$CONNECTIONS" "$RATES" <<'PY'
import json, statistics, sys
out, rounds, conns, rates = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
print("| connections | rate (updates/s) | latency p50 (ms) | p99 (ms) | updates/s | deliveries/s | updates per server CPU-s | updates per message |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n in conns:
    for rate in rates:
        xs = [json.load(open(f"{out}/{r}/yjs-{n}-{rate}.json"))["results"] for r in range(1, rounds + 1)]
        med = lambda f: statistics.median(f(x) for x in xs)
        print(f"| {n} | {rate} | {med(lambda x: x['latency']['p50_us']) / 1000:.2f} | "
              f"{med(lambda x: x['latency']['p99_us']) / 1000:.2f} | {med(lambda x: x['updates_per_s']):,.0f} | "
              f"{med(lambda x: x['deliveries_per_s']):,.0f} | {med(lambda x: x['updates_per_server_cpu_s'] or 0):,.0f} | "
              f"{med(lambda x: x['updates_received'] / max(x.get('update_messages_received', 0), 1)):.1f} |")
PY
