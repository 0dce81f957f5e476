#!/usr/bin/env bash
# Durable puts/s and p99 with group commit against one fsync per put, for 1 to 1,024
# rooms writing at once on 2 threads (shards), plus reads/s; RUNS runs per case, the
# variants interleaved so machine noise hits both alike. Prints one JSON line per run to
# stdout and a median summary to stderr. docs/benchmarks.md records the results.
#
#   bench/scripts/storage.sh                # ROOMS="1 16 256 1024" RUNS=3 SECONDS_EACH=5
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p partyline-bench --bin storage-bench
ROOMS=${ROOMS:-"1 16 256 1024"}
RUNS=${RUNS:-3}
SECONDS_EACH=${SECONDS_EACH:-5}
OUT=$(mktemp -d)
for rooms in $ROOMS; do
  for run in $(seq "$RUNS"); do
    for group in 1024 1; do
      target/release/storage-bench --rooms "$rooms" --seconds "$SECONDS_EACH" \
        --group-commit-max "$group" --dir target/storage-bench | tee -a "$OUT/runs.jsonl"
    done
  done
done
python3 - "$OUT/runs.jsonl" >&2 <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
cases = sorted({(r["rooms"], r["group_commit_max"]) for r in runs}, key=lambda c: (c[0], -c[1]))
print("rooms group  puts/s  p50_us  p99_us  writes/fsync  reads/s  cached_reads/s")
for rooms, group in cases:
    rs = [r for r in runs if r["rooms"] == rooms and r["group_commit_max"] == group]
    med = lambda f: statistics.median(f(r) for r in rs)
    print(f"{rooms:5} {group:5} {med(lambda r: r['puts']['per_s']):7.0f} {med(lambda r: r['puts']['p50_us']):7.0f} "
          f"{med(lambda r: r['puts']['p99_us']):7.0f} {med(lambda r: r['writes_per_fsync']):13.1f} "
          f"{med(lambda r: r['reads']['per_s']):8.0f} {med(lambda r: r['cached_reads']['per_s']):9.0f}")
PY
