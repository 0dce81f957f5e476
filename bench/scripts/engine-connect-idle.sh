#!/usr/bin/env bash
# Connect rate and idle memory per connection (issue 4 goals: >= 20k connections/s per
# server core; <= 1 KiB of server user memory per idle connection). Each run starts a
# fresh `partyline serve --shards 1` (RSS only means something on a fresh process: memory
# freed by an earlier run stays with the allocator), runs the scenario, and stops it.
# Usage: bench/scripts/engine-connect-idle.sh   (after `cargo build --release`)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
OUT=${OUT:-target/bench-connect-idle}
PORT=${PORT:-19120}
N=${N:-15000}
mkdir -p "$OUT"
run_server() {
  # SERVER_ARGS: extra flags, e.g. "--config variant.toml" for side-by-side variants.
  # shellcheck disable=SC2086
  target/release/partyline serve --listen "127.0.0.1:$PORT" --shards 1 --data "$OUT/data" ${SERVER_ARGS:-} > "$OUT/server.log" 2>&1 &
  SERVER=$!
  sleep 1
}
for run in $(seq 1 "$RUNS"); do
  run_server
  target/release/partyline-loadtest --target "127.0.0.1:$PORT" --workers 1 --server-pid "$SERVER" \
    --json "$OUT/connect-$run.json" connect --connections 10000 --party main --room-prefix "c$run" > /dev/null
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  run_server
  target/release/partyline-loadtest --target "127.0.0.1:$PORT" --workers 1 --server-pid "$SERVER" \
    --json "$OUT/idle-$run.json" idle --connections "$N" --hold-s "${HOLD_S:-16}" --room-prefix "i$run" > /dev/null
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
done
python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
c = [json.load(open(f"{out}/connect-{r}.json"))["results"] for r in range(1, runs + 1)]
i = [json.load(open(f"{out}/idle-{r}.json"))["results"] for r in range(1, runs + 1)]
m = statistics.median
print(f"connect 10000 into one main room: {m([x['connections_per_s'] for x in c]):.0f} connections/s, "
      f"101 p50 {m([x['upgrade']['p50_us'] for x in c])} us p99 {m([x['upgrade']['p99_us'] for x in c])} us, "
      f"first message p50 {m([x['first_message']['p50_us'] for x in c])} us p99 {m([x['first_message']['p99_us'] for x in c])} us, "
      f"{m([x['connections_per_server_cpu_s'] or 0 for x in c]):.0f} per server CPU-s, "
      f"failures {[x['connect_failures'] for x in c]}  (runs: {[round(x['connections_per_s']) for x in c]})")
print(f"idle {i[0]['connected']} connections: {m([x['server_bytes_per_connection'] for x in i]):.0f} server bytes per connection "
      f"(runs: {[round(x['server_bytes_per_connection']) for x in i]}), closed during hold {[x['closed_during_hold'] for x in i]}")
PY
