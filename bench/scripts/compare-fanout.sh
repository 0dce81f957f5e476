#!/usr/bin/env bash
# Several server builds side by side on one-room fan-out: each round runs every build once
# (a fresh `partyline serve --shards 1` each), so all see the same machine; medians per
# build and rate, with the runs. Used to bisect a latency change across commits.
# Usage: bench/scripts/compare-fanout.sh BIN...   (after `cargo build --release` for the
#   load tester; build the others with e.g. `git worktree add /tmp/w <commit>` and
#   `CARGO_TARGET_DIR=/tmp/w-target cargo build --release -p partyline-engine --bin partyline`)
#   ROUNDS=3 RATES="1000 4000" RECEIVERS=1000 OUT=target/bench-compare-fanout
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: compare-fanout.sh BIN..." >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
RATES=${RATES:-1000 4000}
RECEIVERS=${RECEIVERS:-1000}
OUT=${OUT:-target/bench-compare-fanout}
PORT=${PORT:-19200}
rm -rf "$OUT"
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  for i in $(seq 1 $#); do
    bin=${!i}
    dir="$OUT/$i/$round"
    mkdir -p "$dir"
    echo "round $round: $bin" >&2
    "$bin" serve --listen "127.0.0.1:$PORT" --shards 1 --data "$dir/data" > "$dir/server.log" 2>&1 &
    server=$!
    sleep 1
    for rate in $RATES; do
      target/release/partyline-loadtest --target "127.0.0.1:$PORT" --workers 1 --server-pid "$server" \
        --json "$dir/fanout-$rate.json" fanout --receivers "$RECEIVERS" --senders 1 --rate "$rate" \
        --warmup-s 1 --duration-s 5 --payload 64 --room "compare-$rate" > /dev/null
    done
    kill "$server"
    wait "$server" 2>/dev/null || true
  done
done
python3 - "$OUT" "$ROUNDS" "$RATES" "$@" <<'PY'
import json, statistics, sys
out, rounds, rates, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
print("| build | rate | latency p50 (us) | latency p99 (us) | deliveries per server CPU-s | p50 runs |")
print("| --- | ---: | ---: | ---: | ---: | --- |")
for rate in rates:
    for i, b in enumerate(bins, 1):
        xs = [json.load(open(f"{out}/{i}/{r}/fanout-{rate}.json"))["results"] for r in range(1, rounds + 1)]
        p50 = [x["latency"]["p50_us"] for x in xs]
        p99 = [x["latency"]["p99_us"] for x in xs]
        cpu = [x["deliveries_per_server_cpu_s"] or 0 for x in xs]
        print(f"| {b} | {rate} | {statistics.median(p50):,.0f} | {statistics.median(p99):,.0f} | "
              f"{statistics.median(cpu):,.0f} | {p50} |")
PY
