#!/usr/bin/env bash
# End-to-end benchmark of `fhirlake convert` on ../shared/data/synthea-small, uncompressed
# (about 608 MB of NDJSON, 623,364 resources, 25 types), with zstd output.
#
# Usage: benches/convert_e2e.sh [RUNS] [extra convert flags...]
# Prints wall time, MB/s of input NDJSON, CPU time and peak RSS per run (from
# /usr/bin/time -v), with the machine it ran on.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}; shift || true
SRC=${FHIRLAKE_SHARED_DATA:-../shared/data}/synthea-small/ndjson
WORK=${BENCH_WORK:-/tmp/fhirlake-bench}
[ -d "$SRC" ] || { echo "SKIPPED: needs $SRC"; exit 0; }
mkdir -p "$WORK/input"
for f in "$SRC"/*.ndjson.gz; do
  out="$WORK/input/$(basename "$f" .gz)"
  [ -s "$out" ] || gunzip -c "$f" > "$out"
done
BYTES=$(cat "$WORK"/input/*.ndjson | wc -c)
cargo build --release --quiet
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "input: $BYTES bytes in $(ls "$WORK"/input | wc -l) files"
for i in $(seq 1 "$RUNS"); do
  rm -rf "$WORK/out"
  /usr/bin/time -v target/release/fhirlake convert "$WORK/input" --out "$WORK/out" --quiet "$@" 2> "$WORK/time.txt"
  wall=$(grep 'Elapsed (wall' "$WORK/time.txt" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  user=$(grep 'User time' "$WORK/time.txt" | awk '{print $NF}')
  sys=$(grep 'System time' "$WORK/time.txt" | awk '{print $NF}')
  rss=$(grep 'Maximum resident' "$WORK/time.txt" | awk '{print $NF}')
  outb=$(du -sb "$WORK/out" | cut -f1)
  awk -v b="$BYTES" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v o="$outb" -v i="$i" 'BEGIN {
    printf "run %d: %.2f s wall, %.0f MB/s, cpu %.1f s, peak RSS %.0f MiB, output %.1f MB\n", i, w, b/1e6/w, u+s, r/1024, o/1e6 }'
done
