#!/usr/bin/env bash
# Quick engine figures (issue 3): echo round trips and one-room fan-out against a release
# `partyline serve --shards 1`, with the load tester on the same machine. Each scenario
# runs RUNS times (default 3); reports land in $OUT (default target/bench-quick).
# Usage: bench/scripts/engine-quick.sh   (after `cargo build --release`)
#   SERVER_BIN=path/to/partyline runs another build of the server (bench/scripts/compare-quick.sh
#   uses it to run two builds side by side).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
OUT=${OUT:-target/bench-quick}
PORT=${PORT:-19100}
mkdir -p "$OUT"
# SERVER_ARGS: extra flags, e.g. "--config variant.toml" for side-by-side variants.
# shellcheck disable=SC2086
${SERVER_BIN:-target/release/partyline} serve --listen "127.0.0.1:$PORT" --shards 1 --data "$OUT/data" ${SERVER_ARGS:-} > "$OUT/server.log" 2>&1 &
SERVER=$!
# Wait for it to exit: the next run's server refuses a port still in use.
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
sleep 1
LT="target/release/partyline-loadtest --target 127.0.0.1:$PORT --workers 1 --server-pid $SERVER"
for run in $(seq 1 "$RUNS"); do
  $LT --json "$OUT/echo-$run.json" echo --clients 1 --round-trips 20000 --payload 32 > /dev/null
  for rate in 1000 4000; do
    $LT --json "$OUT/fanout-$rate-$run.json" fanout --receivers 1000 --senders 1 --rate "$rate" \
      --warmup-s 1 --duration-s 5 --payload 64 --room "quick-$rate-$run" > /dev/null
  done
done
python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def med(xs): return statistics.median(xs)
e = [json.load(open(f"{out}/echo-{r}.json"))["results"] for r in range(1, runs + 1)]
print(f"echo rtt (1 client): p50 {med([x['rtt']['p50_us'] for x in e])} us, p99 {med([x['rtt']['p99_us'] for x in e])} us, "
      f"{med([x['round_trips_per_s'] for x in e]):.0f} round trips/s  (runs: {[x['rtt']['p50_us'] for x in e]})")
for rate in (1000, 4000):
    f = [json.load(open(f"{out}/fanout-{rate}-{r}.json"))["results"] for r in range(1, runs + 1)]
    print(f"fanout 1000 receivers @ {rate} msg/s: {med([x['deliveries_per_s'] for x in f]):.0f} deliveries/s, "
          f"{med([x['deliveries_per_server_cpu_s'] or 0 for x in f]):.0f} per server CPU-s, "
          f"p50 {med([x['latency']['p50_us'] for x in f])} us, p99 {med([x['latency']['p99_us'] for x in f])} us, "
          f"undelivered {sum(x['undelivered_at_stop'] for x in f)}, reordered {sum(x['reordered'] for x in f)}, "
          f"server CPU {med([x['cpu']['server_cpu_s'] for x in f]):.2f} s / loadtest CPU {med([x['cpu']['loadtest_cpu_s'] for x in f]):.2f} s per 5 s")
PY
