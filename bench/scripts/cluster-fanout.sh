#!/usr/bin/env bash
# One room of 32,000 connections spread over a cluster of two partyline processes on this
# machine (nodes a and b, one shard each, linked on loopback; the room lives on one of
# them, the other's sockets reach it over the node link), with a fan-out at a fixed rate;
# then, in the same round, the same room on one process (two shards) with 16,000
# connections. Each round starts fresh servers; medians over the rounds.
# Usage: bench/scripts/cluster-fanout.sh   (after `cargo build --release`)
#   ROUNDS=3 RATE=10 RECEIVERS=31999 DURATION=10 OUT=target/bench-cluster-fanout
# RECEIVERS plus the one sender is the room's size: 32,000, connections_per_room_max.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-10}
RECEIVERS=${RECEIVERS:-31999}
DURATION=${DURATION:-10}
OUT=${OUT:-target/bench-cluster-fanout}
BASE=${BASE:-19300}
BIN=target/release/partyline
LT=target/release/partyline-loadtest
A=$BASE B=$((BASE + 1)) PEER_A=$((BASE + 11)) PEER_B=$((BASE + 12)) ONE=$((BASE + 20))
rm -rf "$OUT"
mkdir -p "$OUT"
cat > "$OUT/cluster.toml" <<TOML
[cluster]
nodes = [
  { id = "a", peer = "127.0.0.1:$PEER_A" },
  { id = "b", peer = "127.0.0.1:$PEER_B" },
]
TOML

# Waits until the log $1 says $2 (10 s at most).
wait_log() {
  for _ in $(seq 1 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  return 1
}

for round in $(seq 1 "$ROUNDS"); do
  dir="$OUT/$round"
  mkdir -p "$dir"
  echo "round $round: two nodes, $RECEIVERS receivers" >&2
  for node in a b; do
    port=$A; [ "$node" = b ] && port=$B
    NO_COLOR=1 "$BIN" serve --config "$OUT/cluster.toml" --node "$node" --listen "127.0.0.1:$port" \
      --shards 1 --no-pin --admin off --data "$dir/data-$node" > "$dir/$node.log" 2>&1 &
    eval "pid_$node=$!"
  done
  wait_log "$dir/a.log" "node linked"
  wait_log "$dir/b.log" "node linked"
  # shellcheck disable=SC2154 # pid_a and pid_b are set by the eval above.
  "$LT" --target "127.0.0.1:$A,127.0.0.1:$B" --processes 2 --workers 1 \
    --server-pid "$pid_a,$pid_b" --json "$dir/cluster.json" \
    fanout --receivers "$RECEIVERS" --senders 1 --rate "$RATE" --warmup-s 2 \
    --duration-s "$DURATION" --room cluster-fanout > /dev/null
  kill "$pid_a" "$pid_b"
  wait "$pid_a" "$pid_b" 2>/dev/null || true

  echo "round $round: one process, $(((RECEIVERS + 1) / 2 - 1)) receivers" >&2
  NO_COLOR=1 "$BIN" serve --listen "127.0.0.1:$ONE" --shards 2 --no-pin --admin off \
    --data "$dir/data-one" > "$dir/one.log" 2>&1 &
  pid_one=$!
  wait_log "$dir/one.log" "partyline listening"
  "$LT" --target "127.0.0.1:$ONE" --processes 1 --workers 1 --server-pid "$pid_one" \
    --json "$dir/one.json" fanout --receivers "$(((RECEIVERS + 1) / 2 - 1))" --senders 1 --rate "$RATE" \
    --warmup-s 2 --duration-s "$DURATION" --room cluster-fanout > /dev/null
  kill "$pid_one"
  wait "$pid_one" 2>/dev/null || true
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
fails = lambda f: sum(v for v in f.values() if isinstance(v, (int, float))) if isinstance(f, dict) else (f or 0)
print("| setup | connections in the room | latency p50 (us) | p99 (us) | max (us) | deliveries per server CPU-s | lost | reordered | connect failures | p50 runs |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for name, label in (("cluster", "2 nodes x 1 shard"), ("one", "1 process x 2 shards")):
    xs = [json.load(open(f"{out}/{r}/{name}.json")) for r in range(1, rounds + 1)]
    rs = [x["results"] for x in xs]
    med = lambda f: statistics.median(f(r) for r in rs)
    receivers = xs[0]["params"]["receivers"] + xs[0]["params"]["senders"]
    print(f"| {label} | {receivers:,} | {med(lambda r: r['latency']['p50_us']):,.0f} | "
          f"{med(lambda r: r['latency']['p99_us']):,.0f} | {med(lambda r: r['latency']['max_us']):,.0f} | "
          f"{med(lambda r: r['deliveries_per_server_cpu_s'] or 0):,.0f} | "
          f"{max(r['undelivered_at_stop'] for r in rs)} | {max(r['reordered'] for r in rs)} | "
          f"{max(fails(r['connect_failures']) for r in rs)} | {[r['latency']['p50_us'] for r in rs]} |")
PY
