#!/usr/bin/env bash
# Two server builds side by side on bench/scripts/engine-quick.sh: the runs alternate
# (A, B, A, B, ...) so both see the same machine, and the medians print next to each other
# with B/A. Usage: bench/scripts/compare-quick.sh BASELINE_BIN [CANDIDATE_BIN]
#   (CANDIDATE_BIN defaults to target/release/partyline; RUNS=3 pairs; OUT=target/bench-compare)
set -euo pipefail
cd "$(dirname "$0")/../.."
A=${1:?usage: compare-quick.sh BASELINE_BIN [CANDIDATE_BIN]}
B=${2:-target/release/partyline}
RUNS=${RUNS:-3}
OUT=${OUT:-target/bench-compare}
rm -rf "$OUT"
mkdir -p "$OUT"
for run in $(seq 1 "$RUNS"); do
  for side in a b; do
    bin=$A; [ "$side" = b ] && bin=$B
    echo "run $run: $side ($bin)" >&2
    SERVER_BIN=$bin RUNS=1 OUT="$OUT/$side/$run" bash bench/scripts/engine-quick.sh > "$OUT/$side-$run.txt"
  done
done
python3 - "$OUT" "$RUNS" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def load(side, name):
    return [json.load(open(f"{out}/{side}/{r}/{name}-1.json"))["results"] for r in range(1, runs + 1)]
rows = [
    ("echo RTT p50 (us)", "echo", lambda x: x["rtt"]["p50_us"], False),
    ("echo RTT p99 (us)", "echo", lambda x: x["rtt"]["p99_us"], False),
    ("echo round trips/s", "echo", lambda x: x["round_trips_per_s"], True),
]
for rate in (1000, 4000):
    rows += [
        (f"fanout 1000 x {rate}/s: deliveries per server CPU-s", f"fanout-{rate}", lambda x: x["deliveries_per_server_cpu_s"] or 0, True),
        (f"fanout 1000 x {rate}/s: latency p50 (us)", f"fanout-{rate}", lambda x: x["latency"]["p50_us"], False),
        (f"fanout 1000 x {rate}/s: latency p99 (us)", f"fanout-{rate}", lambda x: x["latency"]["p99_us"], False),
        (f"fanout 1000 x {rate}/s: server CPU s per 5 s", f"fanout-{rate}", lambda x: x["cpu"]["server_cpu_s"], False),
    ]
print("| metric | A (baseline) | B (candidate) | B/A |")
print("| --- | ---: | ---: | ---: |")
for title, name, f, _ in rows:
    a = [f(x) for x in load("a", name)]
    b = [f(x) for x in load("b", name)]
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"| {title} | {ma:,.1f} | {mb:,.1f} | {mb / ma if ma else float('nan'):.2f} |")
print()
for title, name, f, _ in rows:
    print(f"- {title}: A {[f(x) for x in load('a', name)]}, B {[f(x) for x in load('b', name)]}")
PY
