#!/usr/bin/env bash
# What TLS costs the server in one-room fan-out: the same `partyline serve --shards 1`
# with and without `--tls-cert/--tls-key` (a CA and a `localhost` certificate made with
# openssl for the run), driven by the same fanout scenario (the load tester over TLS with
# --tls-ca), alternating plain and TLS each round so both see the same machine. Prints the
# medians per mode, rate and payload: latency, and deliveries per server CPU-second (the
# server's own CPU, --server-pid).
# Usage: cargo build --release && bench/scripts/tls-fanout.sh
#   ROUNDS=3 RATES="1000 4000" PAYLOADS="64 1024" RECEIVERS=1000 OUT=target/bench-tls-fanout
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
RATES=${RATES:-1000 4000}
PAYLOADS=${PAYLOADS:-64 1024}
RECEIVERS=${RECEIVERS:-1000}
OUT=${OUT:-target/bench-tls-fanout}
PORT=${PORT:-19250}
BIN=target/release/partyline
LT=target/release/partyline-loadtest
rm -rf "$OUT"
mkdir -p "$OUT/pki"
# A throwaway CA and a leaf for localhost (ECDSA P-256, what most sites serve now).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj "/CN=partyline bench CA" -keyout "$OUT/pki/ca.key" -out "$OUT/pki/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
  -keyout "$OUT/pki/key.pem" -out "$OUT/pki/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$OUT/pki/ext.cnf"
openssl x509 -req -in "$OUT/pki/leaf.csr" -CA "$OUT/pki/ca.pem" -CAkey "$OUT/pki/ca.key" \
  -CAcreateserial -days 1 -extfile "$OUT/pki/ext.cnf" -out "$OUT/pki/cert.pem" 2>/dev/null
for round in $(seq 1 "$ROUNDS"); do
  for mode in plain tls; do
    dir="$OUT/$mode/$round"
    mkdir -p "$dir"
    echo "round $round: $mode" >&2
    tls_server=() tls_client=()
    if [ "$mode" = tls ]; then
      tls_server=(--tls-cert "$OUT/pki/cert.pem" --tls-key "$OUT/pki/key.pem")
      tls_client=(--tls-ca "$OUT/pki/ca.pem")
    fi
    "$BIN" serve --listen "127.0.0.1:$PORT" --admin off --shards 1 --data "$dir/data" \
      "${tls_server[@]}" > "$dir/server.log" 2>&1 &
    server=$!
    sleep 1
    for payload in $PAYLOADS; do
      for rate in $RATES; do
        "$LT" --target "127.0.0.1:$PORT" --workers 1 --server-pid "$server" "${tls_client[@]}" \
          --json "$dir/fanout-$payload-$rate.json" fanout --receivers "$RECEIVERS" --senders 1 \
          --rate "$rate" --warmup-s 1 --duration-s 5 --payload "$payload" \
          --room "tls-$payload-$rate" > /dev/null
      done
    done
    kill "$server"
    wait "$server" 2>/dev/null || true
  done
done
python3 - "$OUT" "$ROUNDS" "$RATES" "$PAYLOADS" <<'PY'
import json, statistics, sys
out, rounds, rates, payloads = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
print("| payload (B) | rate (msg/s) | mode | latency p50 (us) | p99 (us) | deliveries per server CPU-s | TLS / plain | per-CPU-s runs |")
print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
for payload in payloads:
    for rate in rates:
        med = {}
        for mode in ["plain", "tls"]:
            xs = [json.load(open(f"{out}/{mode}/{r}/fanout-{payload}-{rate}.json"))["results"]
                  for r in range(1, rounds + 1)]
            cpu = [round(x["deliveries_per_server_cpu_s"] or 0) for x in xs]
            med[mode] = statistics.median(cpu)
            ratio = f"{med['tls'] / med['plain']:.2f}" if mode == "tls" and med["plain"] else ""
            print(f"| {payload} | {rate} | {mode} | {statistics.median(x['latency']['p50_us'] for x in xs):,.0f} | "
                  f"{statistics.median(x['latency']['p99_us'] for x in xs):,.0f} | {med[mode]:,.0f} | {ratio} | {cpu} |")
PY
