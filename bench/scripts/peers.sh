#!/usr/bin/env bash
# Side-by-side benchmarks (issue 4): the same partyline-loadtest scenarios against
# partyline (1 shard and one shard per core), uWebSockets.js, Node ws and `partykit dev`,
# each server fresh for every run and alone in its own network namespace (`unshare -n`
# with lo up; partykit dev binds 0.0.0.0), with the load tester in the same namespace.
#
# Usage: cargo build --release && bench/scripts/peers.sh
#   RUNS=3 (runs per server), SERVERS="partyline-1 partyline-all uws ws partykit" (also:
#   uws-batched, uWS.js publishing once per event-loop turn; partyline-base, a baseline
#   build of partyline at BASE_BIN with 1 shard, for before/after figures),
#   OUT=target/bench-peers, SCENARIOS="idle echo fanout-fixed fanout-max connect" (a subset
#   re-runs only those), REPORT_ONLY=1 (just print the table and write the page from $OUT).
#   Prints a markdown table of medians and ratios; raw JSON in $OUT; and writes
#   $OUT/report.html, the servers side by side (one section per scenario, each server's
#   median run of it: see below), with `partyline-loadtest compare`.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${RUNS:-3}
OUT=${OUT:-$ROOT/target/bench-peers}
SERVERS=${SERVERS:-"partyline-1 partyline-all uws ws partykit"}
# Overload (fanout-max) last: a server still draining its backlog would distort what follows.
SCENARIOS=${SCENARIOS:-"idle connect echo fanout-fixed fanout-max"}
REPORT_ONLY=${REPORT_ONLY:-0}
PORT=19300
LT="$ROOT/target/release/partyline-loadtest --target 127.0.0.1:$PORT --workers 1"

if [ "${1:-}" = "--inside" ]; then
  # One server, one run, inside a fresh network namespace.
  server=$2 run=$3 dir="$OUT/$2/$3"
  mkdir -p "$dir"
  ip link set lo up
  case $server in
    partyline-1) "$ROOT/target/release/partyline" serve --listen "127.0.0.1:$PORT" --shards 1 --data "$dir/data" > "$dir/server.log" 2>&1 & ;;
    partyline-all) "$ROOT/target/release/partyline" serve --listen "127.0.0.1:$PORT" --data "$dir/data" > "$dir/server.log" 2>&1 & ;;
    partyline-base) "${BASE_BIN:?set BASE_BIN to the baseline partyline binary}" serve --listen "127.0.0.1:$PORT" --shards 1 --data "$dir/data" > "$dir/server.log" 2>&1 & ;;
    uws) PORT=$PORT node "$ROOT/bench/peers/uws-server.mjs" > "$dir/server.log" 2>&1 & ;;
    uws-batched) PORT=$PORT node "$ROOT/bench/peers/uws-batched-server.mjs" > "$dir/server.log" 2>&1 & ;;
    ws) PORT=$PORT node "$ROOT/bench/peers/ws-server.mjs" > "$dir/server.log" 2>&1 & ;;
    partykit) (cd "$ROOT/bench/peers/partykit" && exec ../node_modules/.bin/partykit dev --port "$PORT") > "$dir/server.log" 2>&1 & ;;
    *) echo "unknown server $server" >&2; exit 2 ;;
  esac
  launcher=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
    sleep 0.2
  done
  # The process that does the work: workerd under partykit dev, else the one started.
  pid=$launcher
  if [ "$server" = partykit ]; then pid=$(pgrep -n workerd); fi
  for scenario in $SCENARIOS; do
    case $scenario in
      idle) $LT --server-pid "$pid" --json "$dir/idle.json" idle --connections 5000 --hold-s 16 > /dev/null ;;
      echo) $LT --server-pid "$pid" --json "$dir/echo.json" echo --clients 1 --round-trips 5000 > /dev/null ;;
      fanout-fixed) $LT --server-pid "$pid" --json "$dir/fanout-fixed.json" fanout --receivers 500 --rate 200 \
                      --warmup-s 1 --duration-s 5 --room fixed > /dev/null ;;
      fanout-max) $LT --server-pid "$pid" --json "$dir/fanout-max.json" fanout --receivers 500 --rate 4000 \
                    --warmup-s 1 --duration-s 5 --room max > /dev/null ;;
      connect) $LT --server-pid "$pid" --json "$dir/connect.json" connect --connections 3000 --party main \
                 --room-prefix c > /dev/null ;;
    esac
  done
  kill "$launcher" 2>/dev/null || true
  pkill -P "$launcher" 2>/dev/null || true
  wait 2>/dev/null || true
  exit 0
fi

case " $SERVERS " in
  *" uws "*|*" uws-batched "*|*" ws "*|*" partykit "*)
    (cd bench/peers && [ -d node_modules/partykit ] || npm ci --ignore-scripts --no-audit --no-fund) ;;
esac
mkdir -p "$OUT"
[ "$REPORT_ONLY" = 1 ] || for run in $(seq 1 "$RUNS"); do
  for server in $SERVERS; do
    echo "run $run: $server" >&2
    unshare -n bash "$0" --inside "$server" "$run" || echo "run $run of $server failed" >&2
  done
done
python3 - "$OUT" "$RUNS" "$SERVERS" <<'PY'
import json, os, statistics, sys
out, runs, servers = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def load(s, r, name):
    p = f"{out}/{s}/{r}/{name}.json"
    return json.load(open(p))["results"] if os.path.exists(p) else None
metrics = [
    ("fan-out deliveries per server CPU-s (500 receivers, 4000 msg/s offered)", "fanout-max", lambda x: x["received_in_window_per_server_cpu_s"], True),
    ("fan-out deliveries/s (same run)", "fanout-max", lambda x: x["received_in_window_per_s"], True),
    ("fan-out p99 latency in that run (us)", "fanout-max", lambda x: x["latency"]["p99_us"] or None, False),
    ("fan-out p99 latency at 200 msg/s x 500 receivers (us)", "fanout-fixed", lambda x: x["latency"]["p99_us"], False),
    ("idle server memory per connection (bytes, 5000 held)", "idle", lambda x: x["server_bytes_per_connection"], False),
    ("connections/s (3000 into one room, first message)", "connect", lambda x: x["connections_per_s"], True),
    ("echo RTT p50 (us)", "echo", lambda x: x["rtt"]["p50_us"], False),
    ("echo RTT p99 (us)", "echo", lambda x: x["rtt"]["p99_us"], False),
]
med = {}
for title, name, f, _ in metrics:
    for s in servers:
        vals = []
        for r in range(1, runs + 1):
            x = load(s, r, name)
            try:
                v = f(x) if x else None
            except (KeyError, TypeError):
                v = None
            if v is not None:
                vals.append(v)
        med[(title, s)] = (statistics.median(vals) if vals else None, vals)
base = servers[0]
print("| metric | " + " | ".join(servers) + " |")
print("| --- | " + " | ".join("---:" for _ in servers) + " |")
for title, name, f, higher in metrics:
    cells = []
    b = med[(title, base)][0]
    for s in servers:
        v = med[(title, s)][0]
        if v is None:
            cells.append("n/a")
            continue
        ratio = "" if s == base or not b or not v else (f" ({b / v:.1f}x)" if higher else f" ({v / b:.1f}x)")
        cells.append(f"{v:,.0f}{ratio}")
    print(f"| {title} | " + " | ".join(cells) + " |")
print()
print("Ratios: how many times better the first column is than that server (higher-is-better")
print("metrics: first/other; lower-is-better metrics: other/first).")
for title, name, f, _ in metrics:
    print(f"- {title}: " + "; ".join(f"{s} {med[(title, s)][1]}" for s in servers))
PY

# The HTML page: for each server and scenario, the median run by the scenario's headline
# figure (for an even count, the lower middle one; a run without the figure is used only
# when no run has it), the first server the baseline of the ratios.
mapfile -t PAGE_ARGS < <(python3 - "$OUT" "$RUNS" "$SERVERS" "$SCENARIOS" <<'PY'
import json, os, sys
out, runs, servers, scenarios = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
headline = {
    "idle": lambda x: x["server_bytes_per_connection"],
    "connect": lambda x: x["connections_per_s"],
    "echo": lambda x: x["rtt"]["p50_us"],
    "fanout-fixed": lambda x: x["latency"]["p99_us"],
    "fanout-max": lambda x: x["received_in_window_per_s"],
}
for s in servers:
    chosen = []
    for name in scenarios:
        runs_with, runs_without = [], []
        for r in range(1, runs + 1):
            p = f"{out}/{s}/{r}/{name}.json"
            if not os.path.exists(p):
                continue
            try:
                v = headline[name](json.load(open(p))["results"])
            except (KeyError, TypeError, ValueError):
                v = None
            (runs_with if v is not None else runs_without).append((v, r, p))
        if runs_with:
            runs_with.sort(key=lambda x: (x[0], x[1]))
            chosen.append(runs_with[(len(runs_with) - 1) // 2][2])
        elif runs_without:
            chosen.append(runs_without[0][2])
    if chosen:
        print("--label")
        print(s)
        print("\n".join(chosen))
PY
)
if [ "${#PAGE_ARGS[@]}" -gt 0 ]; then
  "$ROOT/target/release/partyline-loadtest" compare --report-html "$OUT/report.html" "${PAGE_ARGS[@]}"
  echo "HTML report: $OUT/report.html"
else
  echo "no JSON reports in $OUT: no HTML report" >&2
fi
