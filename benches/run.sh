#!/usr/bin/env bash
# The end-to-end benchmark: fhirlake against DuckDB, pyarrow, a naive arrow-json pipeline
# and the simd-json parse ceiling, on a corpus replicated from ../shared/data/synthea-small.
#
# Usage: benches/run.sh [--size 5GiB] [--runs 3] [--work /tmp/fhirlake-bench] [compare.py flags...]
#   e.g. benches/run.sh --size 1GiB --runs 1 --only fhirlake,duckdb-1t --markdown /tmp/r.md
#
# Builds the release binary and examples, generates WORK/corpus-SIZE (kept and reused while
# its corpus.json matches the arguments), makes sure a venv with duckdb and pyarrow exists
# (.venv of scripts/test when there, else WORK/venv), then runs benches/compare.py.
# Says SKIPPED and exits 0 when ../shared/data/synthea-small is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=5GiB RUNS=3 WORK=${BENCH_WORK:-/tmp/fhirlake-bench}
export FHIRLAKE_BENCH_COMMAND="benches/run.sh $*"
EXTRA=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --size) SIZE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) EXTRA+=("$1"); shift ;;
    esac
done
SRC=${FHIRLAKE_SHARED_DATA:-../shared/data}/synthea-small/ndjson
if [[ ! -d $SRC ]]; then
    echo "SKIPPED: benches/run.sh needs $SRC"
    exit 0
fi
[[ -x /usr/bin/time ]] || { echo "benches/run.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
SRC=$(cd "$SRC" && pwd)
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
export CARGO_TARGET_DIR=$TARGET

echo "== build" >&2
cargo build --release --bin fhirlake --examples >&2

CORPUS=$WORK/corpus-$SIZE
echo "== corpus $CORPUS" >&2
mkdir -p "$WORK"
if python3 - "$CORPUS/corpus.json" "$SRC" "$SIZE" <<'PY'
import json, sys
try:
    a = json.load(open(sys.argv[1]))["args"]
except (OSError, ValueError, KeyError):
    sys.exit(1)
sys.exit(0 if (a["from"], a["size"], a["lines_per_file"]) == (sys.argv[2], sys.argv[3], 50000) else 1)
PY
then
    echo "reusing $CORPUS (its corpus.json matches)" >&2
else
    "$TARGET/release/examples/gen-corpus" --from "$SRC" --size "$SIZE" --out "$CORPUS" >&2
fi

echo "== venv" >&2
REQ=tests/py/requirements.txt
if [[ -x .venv/bin/python ]] && .venv/bin/python -c 'import duckdb, pyarrow' 2>/dev/null; then
    PY=$PWD/.venv/bin/python
else
    PY=$WORK/venv/bin/python
    if ! [[ -x $PY ]] || ! "$PY" -c 'import duckdb, pyarrow' 2>/dev/null; then
        rm -rf "$WORK/venv"
        python3 -m venv "$WORK/venv"
        "$PY" -m pip install -q --disable-pip-version-check -r "$REQ"
    fi
fi

echo "== compare" >&2
mkdir -p "$WORK/runs"
exec "$PY" benches/compare.py "$CORPUS" --runs "$RUNS" --python "$PY" --work "$WORK/runs" "${EXTRA[@]}"
