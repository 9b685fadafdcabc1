#!/usr/bin/env bash
# `fhirlake convert` reading from a loopback S3 server against the same files on local
# disk (issue 4's performance check), and the raw GET throughput of the servers.
#
# Usage: benches/s3_loopback.sh CORPUS_PLAIN_DIR [RUNS]
#   CORPUS_PLAIN_DIR: a folder of NDJSON, e.g. the plain/ layout of
#   `cargo run --release --example gen-corpus -- --from ../shared/data/synthea-small/ndjson --size 1GiB --out /tmp/corpus1g`
#
# Loopback S3 is not real S3: the servers run on this machine and share its two cores
# with fhirlake, and nothing crosses a network. The figures bound the client's overhead
# (ranged GETs, reassembly, retries), not what AWS S3 would give.
#
# Needs .venv (from ./scripts/test: moto), target/tools/bin/s3s-fs (also from
# ./scripts/test), curl and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:?usage: benches/s3_loopback.sh CORPUS_PLAIN_DIR [RUNS]}
RUNS=${2:-3}
WORK=${BENCH_WORK:-/tmp/fhirlake-s3-bench}
[ -d "$SRC" ] || { echo "SKIPPED: no corpus at $SRC"; exit 0; }
cargo build --release --locked --quiet --bin fhirlake
BIN=target/release/fhirlake
rm -rf "$WORK" && mkdir -p "$WORK/s3s/bench"
BYTES=$(find "$SRC" -type f -name '*.ndjson' -printf '%s\n' | awk '{ s += $1 } END { print s }')

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
.venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
MOTO_PID=$!
S3S_PORT=$(free_port)
# s3s-fs serves a folder: a hard-linked copy of the corpus is its bucket `bench`.
cp -al "$SRC" "$WORK/s3s/bench/plain"
target/tools/bin/s3s-fs --host 127.0.0.1 --port "$S3S_PORT" --access-key bench --secret-key bench-secret "$WORK/s3s" >/dev/null 2>&1 &
S3S_PID=$!
trap 'kill $MOTO_PID $S3S_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/" && break; sleep 0.2; done
# Plain signed PUTs with curl (boto3's multipart uploads to moto are much slower).
SIGN=(--aws-sigv4 "aws:amz:us-east-1:s3" --user test:test -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
curl -sf "${SIGN[@]}" -X PUT "http://127.0.0.1:$MOTO_PORT/bench" >/dev/null
(cd "$SRC" && find . -type f -printf '%P\n') | while read -r key; do
  curl -sf "${SIGN[@]}" -T "$SRC/$key" "http://127.0.0.1:$MOTO_PORT/bench/plain/$key" >/dev/null
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); loopback S3, not real S3"
echo "input: $BYTES bytes of NDJSON in $(find "$SRC" -type f | wc -l) files"

# Raw GET throughput of each server, with curl: the largest object whole, and its first
# 8 MiB as a ranged GET (both servers read the whole object for a ranged GET).
BIG=$(find "$SRC" -type f -printf '%s %P\n' | sort -n | tail -1 | cut -d' ' -f2)
BIG_SIZE=$(stat -c %s "$SRC/$BIG")
get_speed() { # PORT KEY SECRET [RANGE]
  local range=()
  [ -n "${4:-}" ] && range=(-H "Range: bytes=$4")
  curl -sf -o /dev/null -w '%{size_download} %{time_total}' --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$2:$3" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "${range[@]}" \
    "http://127.0.0.1:$1/bench/plain/$BIG"
  echo
}
for server in "moto $MOTO_PORT test test" "s3s-fs $S3S_PORT bench bench-secret"; do
  read -r name port key secret <<< "$server"
  read -r wb wt < <(get_speed "$port" "$key" "$secret")
  read -r rb rt < <(get_speed "$port" "$key" "$secret" 0-8388607)
  awk -v n="$name" -v wb="$wb" -v wt="$wt" -v rb="$rb" -v rt="$rt" 'BEGIN {
    printf "%s GET of a %.0f MB object: whole %.0f MB/s; its first 8 MiB as a ranged GET %.0f ms (%.0f MB/s)\n",
      n, wb/1e6, wb/1e6/wt, rt*1000, rb/1e6/rt }'
done

# CPU seconds a process has used (user + system).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }

run() { # NAME INPUT SERVER_PID "CONVERT FLAGS" [ENV...]
  local name=$1 input=$2 pid=$3 flags=$4 before=0 after=0
  shift 4
  rm -rf "$WORK/out"
  [ "$pid" != - ] && before=$(cpu_of "$pid")
  # shellcheck disable=SC2086
  env "$@" /usr/bin/time -f '%e %U %S %M' "$BIN" convert "$input" --out "$WORK/out" --quiet \
    --export-id bench --s3-path-style $flags 2> "$WORK/time.txt" >/dev/null \
    || { cat "$WORK/time.txt"; exit 1; }
  [ "$pid" != - ] && after=$(cpu_of "$pid")
  read -r wall user sys rss < <(tail -1 "$WORK/time.txt")
  rows=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["rows"])' "$WORK/out/_runs/bench.json")
  awk -v n="$name" -v b="$BYTES" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v rows="$rows" \
    -v sc="$(echo "$after - $before" | bc)" 'BEGIN {
    printf "%-22s %6.2f s  %5.0f MB/s  fhirlake cpu %5.1f s  server cpu %5.1f s  rss %5.0f MiB  %d rows\n",
      n, w, b/1e6/w, u+s, sc, r/1024, rows }'
}
S3ENV=(AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent)
MOTO=("${S3ENV[@]}" AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT")
S3S=("${S3ENV[@]}" AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_ENDPOINT_URL="http://127.0.0.1:$S3S_PORT")
# The defaults (8 MiB ranged GETs, 4 in flight per object, read-ahead within a quarter of
# --memory-limit 1GiB), and fewer, larger GETs (64 MiB parts: one GET for most objects of
# this corpus), which need a larger read-ahead budget.
BIG_PARTS="--s3-part-size 64MiB --memory-limit 4GiB"
for i in $(seq 1 "$RUNS"); do
  echo "round $i"
  run local "$SRC" - ""
  run "moto" "s3://bench/plain/" "$MOTO_PID" "" "${MOTO[@]}"
  run "moto, 64 MiB parts" "s3://bench/plain/" "$MOTO_PID" "$BIG_PARTS" "${MOTO[@]}"
  run "local, --memory-limit 4GiB" "$SRC" - "--memory-limit 4GiB"
  run "s3s-fs" "s3://bench/plain/" "$S3S_PID" "" "${S3S[@]}"
done
