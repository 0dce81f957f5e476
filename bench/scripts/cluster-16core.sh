#!/usr/bin/env bash
# For a 16-core machine, in under 10 minutes: (1) fan-out scaling, one process with 1, 2,
# 4, 8 and 16 shards, one room of 16,000 connections at a fixed rate and at saturation;
# (2) one room as large as the machine holds: NODES partyline processes (a cluster, one
# shard each; 13 x 19,500 = 253,500 connections by default, each process under the
# 20,000 open-files cap), driven by as many load-tester processes, at two fixed rates.
# Usage: bench/scripts/cluster-16core.sh   (after `cargo build --release`, or with BIN and
#   LT pointing at carried binaries)   NODES=13 PER_NODE=19500 OUT=target/bench-16core
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/partyline}
LT=${LT:-target/release/partyline-loadtest}
OUT=${OUT:-target/bench-16core}
NODES=${NODES:-13}
PER_NODE=${PER_NODE:-19500}
BASE=${BASE:-20000}
rm -rf "$OUT"
mkdir -p "$OUT"
ulimit -n 20000 2>/dev/null || true
nproc > "$OUT/cores"

wait_log() {
  for _ in $(seq 1 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  return 1
}

# (1) Shard scaling on one process.
for shards in 1 2 4 8 16; do
  NO_COLOR=1 "$BIN" serve --listen "127.0.0.1:$BASE" --shards "$shards" --admin off \
    --data "$OUT/data-scale-$shards" > "$OUT/scale-$shards.log" 2>&1 &
  pid=$!
  wait_log "$OUT/scale-$shards.log" "partyline listening"
  for rate in 50 400; do
    "$LT" --target "127.0.0.1:$BASE" --workers 4 --server-pid "$pid" \
      --json "$OUT/scale-$shards-$rate.json" fanout --receivers 15999 --senders 1 --rate "$rate" \
      --warmup-s 2 --duration-s 6 --room "scale-$rate" > /dev/null
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

# (2) One room over NODES processes.
{
  echo "[limits]"
  echo "connections_per_room_max = $((NODES * PER_NODE + 100))"
  echo "[cluster]"
  echo "nodes = ["
  for i in $(seq 0 $((NODES - 1))); do
    echo "  { id = \"n$i\", peer = \"127.0.0.1:$((BASE + 200 + i))\" },"
  done
  echo "]"
} > "$OUT/cluster.toml"
pids=() targets=()
for i in $(seq 0 $((NODES - 1))); do
  NO_COLOR=1 "$BIN" serve --config "$OUT/cluster.toml" --node "n$i" \
    --listen "127.0.0.1:$((BASE + 100 + i))" --shards 1 --admin off \
    --data "$OUT/data-n$i" > "$OUT/n$i.log" 2>&1 &
  pids+=($!)
  targets+=("127.0.0.1:$((BASE + 100 + i))")
done
for i in $(seq 0 $((NODES - 1))); do wait_log "$OUT/n$i.log" "partyline listening"; done
sleep 2 # links
target_list=$(IFS=,; echo "${targets[*]}")
pid_list=$(IFS=,; echo "${pids[*]}")
for rate in 2 8; do
  "$LT" --target "$target_list" --processes "$NODES" --workers 1 --server-pid "$pid_list" \
    --connect-concurrency 512 --json "$OUT/big-$rate.json" \
    fanout --receivers $((NODES * PER_NODE - 1)) --senders 1 --rate "$rate" --warmup-s 3 \
    --duration-s 10 --room "big-$rate" > /dev/null
done
kill "${pids[@]}"; wait 2>/dev/null || true

python3 - "$OUT" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
print(f"cores: {open(os.path.join(out, 'cores')).read().strip()}")
print("| run | connections | rate (msg/s) | p50 (us) | p99 (us) | max (us) | received per s | per server CPU-s | lost | reordered | connect failures |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for path in sorted(glob.glob(f"{out}/*.json"), key=lambda p: (len(p), p)):
    x = json.load(open(path)); r = x["results"]; p = x["params"]
    print(f"| {os.path.basename(path)[:-5]} | {p['receivers'] + p['senders']:,} | {p['rate']:g} | "
          f"{r['latency']['p50_us']:,} | {r['latency']['p99_us']:,} | {r['latency']['max_us']:,} | "
          f"{r['received_in_window_per_s']:,.0f} | {r['received_in_window_per_server_cpu_s'] or 0:,.0f} | "
          f"{r['undelivered_at_stop']} | {r['reordered']} | {r['connect_failures']} |")
PY
