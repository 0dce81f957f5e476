#!/usr/bin/env bash
# Hibernation (issue 11): memory per idle connection in a sleeping vs an awake `relay`
# room, the time a sleeping room takes to wake, and what a sleep/wake cycle costs.
# Each measurement starts a fresh `partyline serve --shards 1` (RSS only means something on
# a fresh process) and the variants alternate run by run, so all see the same machine.
#
#   memory:  loadtest `idle` with N connections (default 5000 and 15000) in one relay room,
#            RSS sampled mid-hold; variants: awake (hibernate_after_ms huge), asleep
#            (2 s; the room sleeps about 2 s into the 24 s hold), asleep with
#            allocator_purge_delay_ms = 0.
#   wake:    loadtest `wake` (a message to the sleeping room until its first delivery) with
#            1,000 and 10,000 connections, and the server's own wake-duration histogram
#            from the admin listener's /metrics; the same with the room kept awake
#            (hibernate_after_ms huge, same quiet) gives the cost of the delivery alone.
# Usage: bench/scripts/hibernation.sh   (after `cargo build --release`)
#   RUNS=3 SIZES="5000 15000" WAKE_SIZES="1000 10000" ROUNDS=100 OUT=target/bench-hibernation
#   PARTS="idle wake" (a subset re-runs only that part; the report reads what is in OUT)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-3}
SIZES=${SIZES:-5000 15000}
WAKE_SIZES=${WAKE_SIZES:-1000 10000}
ROUNDS=${ROUNDS:-100}
OUT=${OUT:-target/bench-hibernation}
PORT=${PORT:-19190}
ADMIN=${ADMIN:-19191}
PARTS=${PARTS:-idle wake}
mkdir -p "$OUT"
printf 'hibernate_after_ms = 100000000\n' > "$OUT/awake.toml"
printf 'hibernate_after_ms = 2000\n' > "$OUT/asleep.toml"
printf 'hibernate_after_ms = 2000\nallocator_purge_delay_ms = 0\n' > "$OUT/asleep-purge0.toml"
printf 'hibernate_after_ms = 100\n' > "$OUT/wake.toml"

start_server() { # config file
  rm -rf "$OUT/data"
  target/release/partyline serve --listen "127.0.0.1:$PORT" --admin "127.0.0.1:$ADMIN" \
    --shards 1 --data "$OUT/data" --config "$1" > "$OUT/server.log" 2>&1 &
  SERVER=$!
  sleep 1
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }

for run in $(seq 1 "$RUNS"); do
  [[ " $PARTS " == *" idle "* ]] || break
  for n in $SIZES; do
    for variant in awake asleep asleep-purge0; do
      echo "run $run: idle $n $variant" >&2
      start_server "$OUT/$variant.toml"
      target/release/partyline-loadtest --target "127.0.0.1:$PORT" --workers 1 \
        --server-pid "$SERVER" --json "$OUT/idle-$n-$variant-$run.json" \
        idle --connections "$n" --hold-s 24 > /dev/null
      stop_server
    done
  done
done
for n in $WAKE_SIZES; do
  [[ " $PARTS " == *" wake "* ]] || break
  for variant in asleep awake; do
    echo "wake $n $variant" >&2
    config="$OUT/wake.toml"; [ "$variant" = awake ] && config="$OUT/awake.toml"
    start_server "$config"
    target/release/partyline-loadtest --target "127.0.0.1:$PORT" --workers 1 \
      --server-pid "$SERVER" --json "$OUT/wake-$n-$variant.json" \
      wake --connections "$n" --rounds "$ROUNDS" --quiet-ms 600 > /dev/null
    sleep 0.5 # the gauges are published five times a second
    curl -s "127.0.0.1:$ADMIN/metrics" > "$OUT/wake-$n-$variant.metrics"
    stop_server
  done
done

python3 - "$OUT" "$RUNS" "$SIZES" "$WAKE_SIZES" <<'PY'
import json, re, statistics, sys
out, runs, sizes, wake_sizes = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
m = statistics.median
print("| idle connections in one relay room | awake | asleep | asleep, allocator_purge_delay_ms = 0 |")
print("| ---: | ---: | ---: | ---: |")
# RSS as a whole (what the goal is stated in), then its anonymous part alone (heap and
# stacks: steadier between builds, whose binaries map differently).
for key, unit in (("server_bytes_per_connection", "B"), ("server_anon_bytes_per_connection", "B anon")):
    for n in sizes:
        row = []
        for v in ("awake", "asleep", "asleep-purge0"):
            xs = [json.load(open(f"{out}/idle-{n}-{v}-{r}.json"))["results"].get(key) for r in range(1, runs + 1)]
            xs = [x for x in xs if x is not None]
            row.append(f"{m(xs):.0f} {unit} ({', '.join(f'{x:.0f}' for x in xs)})" if xs else "-")
        print(f"| {n} | " + " | ".join(row) + " |")
print()

def server_wake(path):
    text = open(path).read()
    buckets = [(float(le), int(v)) for le, v in re.findall(r'partyline_room_wake_duration_seconds_bucket\{party="relay",le="([0-9.e+-]+)"\} (\d+)', text)]
    count = int(re.search(r'partyline_room_wake_duration_seconds_count\{party="relay"\} (\d+)', text).group(1))
    total = float(re.search(r'partyline_room_wake_duration_seconds_sum\{party="relay"\} ([0-9.e+-]+)', text).group(1))
    def q(p):
        for le, c in buckets:
            if c >= p * count:
                return f"<= {le * 1e6:.0f} us"
        return "> 1 s"
    return count, (total / count * 1e6 if count else 0), q(0.5), q(0.99)

print("| connections | message to first delivery, asleep: p50 / p99 / max | same, room awake: p50 / p99 | server wake (archive read, on_start): mean, p50, p99 | server CPU per round, asleep vs awake |")
print("| ---: | ---: | ---: | ---: | ---: |")
for n in wake_sizes:
    a = json.load(open(f"{out}/wake-{n}-asleep.json"))["results"]
    w = json.load(open(f"{out}/wake-{n}-awake.json"))["results"]
    la, lw = a["wake_to_first_delivery"], w["wake_to_first_delivery"]
    count, mean, p50, p99 = server_wake(f"{out}/wake-{n}-asleep.metrics")
    print(f"| {n} | {la['p50_us']} / {la['p99_us']} / {la['max_us']} us ({a['rounds']} rounds) | {lw['p50_us']} / {lw['p99_us']} us | "
          f"{mean:.0f} us, {p50}, {p99} ({count} wakes) | {a['server_cpu_ms_per_round']:.1f} vs {w['server_cpu_ms_per_round']:.1f} ms |")
PY
