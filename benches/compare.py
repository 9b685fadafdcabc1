#!/usr/bin/env python3
"""End-to-end comparison of fhirlake with other NDJSON -> Parquet pipelines.

Usage:
  benches/compare.py CORPUS [--runs 3] [--only fhirlake,duckdb-1t,...] [--markdown FILE]

CORPUS is a gen-corpus output folder (its plain/ layout is used) or any folder of .ndjson
files. Each round runs every contender once, in turn (round-robin), under
/usr/bin/time -v, with its output in a fresh temp folder that is measured and deleted.
Prints a Markdown table (medians over the rounds; peak RSS is the max).

The DuckDB and pyarrow contenders run this same script as a worker
(`compare.py --worker duckdb|pyarrow ...`) with the Python that has duckdb and pyarrow
(--python, default: this interpreter).
"""

import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ALL = [
    "fhirlake",
    "fhirlake-1t",
    "fhirlake-1core",
    "duckdb-1t",
    "duckdb-2t",
    "pyarrow",
    "naive-arrow-json",
    "parse-ceiling-1t",
    "parse-ceiling",
]


def ndjson_files(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".ndjson"):
                out.append(os.path.join(d, f))
    return out


def tree_bytes(root):
    total = 0
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


# ---------------------------------------------------------------- workers


def worker(args):
    """Convert each .ndjson file under args.input to args.output/<rel>.parquet."""
    files = ndjson_files(args.input)
    ok = failed = retried = 0
    bytes_total = bytes_converted = 0
    started = time.monotonic()
    if args.worker == "duckdb":
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads={int(args.threads)}")
    else:
        import pyarrow.json as pj
        import pyarrow.parquet as pq
    for f in files:
        size = os.path.getsize(f)
        bytes_total += size
        rel = os.path.relpath(f, args.input)
        dest = os.path.join(args.output, rel[: -len(".ndjson")] + ".parquet")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        error = None
        for attempt in range(2):
            try:
                if args.worker == "duckdb":
                    src = f.replace("'", "''")
                    dst = dest.replace("'", "''")
                    opts = ", sample_size=-1" if attempt else ""
                    con.execute(
                        f"COPY (SELECT * FROM read_ndjson_auto('{src}'{opts})) "
                        f"TO '{dst}' (FORMAT parquet, COMPRESSION zstd)"
                    )
                else:
                    # A second try reads the file as one block, so the schema is inferred
                    # from all of it (the analogue of DuckDB's sample_size=-1).
                    ro = pj.ReadOptions(block_size=size + 1) if attempt else None
                    table = pj.read_json(f, read_options=ro)
                    pq.write_table(table, dest, compression="zstd")
                    del table
                error = None
                break
            except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
                error = " ".join(str(e).split())[:300]
                if os.path.exists(dest):
                    os.remove(dest)
                if attempt == 0:
                    retried += 1
        if error is None:
            ok += 1
            bytes_converted += size
        else:
            failed += 1
            print(f"{f}: failed: {error}", flush=True)
    secs = time.monotonic() - started
    print(
        f"{args.worker}: files={len(files)} ok={ok} failed={failed} retried={retried} "
        f"bytes_total={bytes_total} bytes_converted={bytes_converted} seconds={secs:.3f}",
        flush=True,
    )


# ---------------------------------------------------------------- harness


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")


def commands(name, plain, out, a):
    release = os.path.join(a.target_dir, "release")
    fhirlake = [a.fhirlake or os.path.join(release, "fhirlake"), "convert", plain, "--out", out, "--quiet"]
    me = [a.python, os.path.abspath(__file__)]
    return {
        "fhirlake": fhirlake,
        "fhirlake-1t": fhirlake + ["--threads", "1"],
        # One decoding thread still leaves reading and writing on threads of their own
        # (about 1.5 cores busy): pinned to one CPU, every thread shares that core, which is
        # what "per core" and scaling are measured against.
        "fhirlake-1core": ["taskset", "-c", str(min(os.sched_getaffinity(0)))] + fhirlake + ["--threads", "1"],
        "duckdb-1t": me + ["--worker", "duckdb", "--threads", "1", plain, out],
        "duckdb-2t": me + ["--worker", "duckdb", "--threads", "2", plain, out],
        "pyarrow": me + ["--worker", "pyarrow", plain, out],
        "naive-arrow-json": [os.path.join(release, "examples", "naive-arrow-json"), plain, out],
        "parse-ceiling-1t": [os.path.join(release, "examples", "parse-ceiling"), plain, "--threads", "1"],
        "parse-ceiling": [os.path.join(release, "examples", "parse-ceiling"), plain],
    }[name]


def parse_time(text):
    def field(label):
        m = re.search(r"^\s*" + re.escape(label) + r".*?:\s*(\S+)\s*$", text, re.M)
        return m.group(1) if m else None

    wall = field("Elapsed (wall clock) time")
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    return {
        "wall": secs,
        "cpu": float(field("User time (seconds)")) + float(field("System time (seconds)")),
        "rss_kib": int(field("Maximum resident set size (kbytes)")),
    }


def fhirlake_rejected(out):
    """Lines fhirlake rejected, from its run report(s) in OUT/_runs/."""
    total = 0
    runs = os.path.join(out, "_runs")
    for f in os.listdir(runs) if os.path.isdir(runs) else []:
        if f.endswith(".json"):
            try:
                doc = json.load(open(os.path.join(runs, f)))
            except (OSError, ValueError):
                continue
            total += int((doc.get("totals") or {}).get("rejected", 0) or 0)
    return total


def run_one(name, plain, input_bytes, a):
    out = tempfile.mkdtemp(prefix=f"{name}-", dir=a.work)
    tfile = os.path.join(a.work, f".time-{name}.txt")
    cmd = commands(name, plain, out, a)
    if name.startswith("fhirlake"):
        os.rmdir(out)  # fhirlake makes its output folder
    started = time.monotonic()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", "-o", tfile] + cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    wall = time.monotonic() - started
    t = parse_time(open(tfile).read())
    os.remove(tfile)
    # Our own clock: /usr/bin/time's wall has 10 ms steps.
    t["wall"] = max(wall, 1e-6)
    r = dict(t, rc=proc.returncode, out_bytes=tree_bytes(out) if os.path.isdir(out) else 0)
    r["converted"] = input_bytes if proc.returncode == 0 else 0
    r["failures"] = [] if proc.returncode == 0 else [f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"]
    summary = re.search(r"bytes_converted=(\d+)", proc.stdout)
    if summary:
        r["converted"] = int(summary.group(1))
        r["failures"] += [line for line in proc.stdout.splitlines() if ": failed: " in line]
    retried = re.search(r"retried=(\d+)", proc.stdout)
    r["retried"] = int(retried.group(1)) if retried else 0
    if name.startswith("parse-ceiling"):
        m = re.search(r"errors=(\d+)", proc.stdout)
        if m and int(m.group(1)):
            r["failures"].append(f"{m.group(1)} lines did not parse")
    if name.startswith("fhirlake") and proc.returncode == 0:
        rej = fhirlake_rejected(out)
        if rej:
            r["failures"].append(f"{rej} lines rejected")
    shutil.rmtree(out, ignore_errors=True)
    return r


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores (nproc {os.sched_getaffinity(0).__len__()}), {model}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", help="gen-corpus output folder, or a folder of .ndjson files")
    p.add_argument("output", nargs="?", help=argparse.SUPPRESS)  # worker output folder
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", help="comma-separated contenders: " + ",".join(ALL))
    p.add_argument("--markdown", help="also write the report to this file")
    p.add_argument("--python", default=sys.executable, help="Python with duckdb and pyarrow")
    p.add_argument("--fhirlake", help="fhirlake binary (default: TARGET/release/fhirlake)")
    p.add_argument("--target-dir", default=target_dir(), help="cargo target dir of the release build")
    p.add_argument("--work", default=None, help="where the per-run output folders go (default: a temp dir)")
    p.add_argument("--worker", choices=["duckdb", "pyarrow"], help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        a.input = a.corpus
        return worker(a)

    plain = a.corpus
    meta = {}
    if os.path.isfile(os.path.join(a.corpus, "corpus.json")):
        meta = json.load(open(os.path.join(a.corpus, "corpus.json")))
        plain = os.path.join(a.corpus, meta.get("plain", "plain"))
    plain = os.path.abspath(plain)
    names = ALL if not a.only else [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL]
    if unknown:
        p.error(f"unknown contenders {unknown}; known: {','.join(ALL)}")
    files = ndjson_files(plain)
    if not files:
        p.error(f"no .ndjson files under {plain}")
    input_bytes = sum(os.path.getsize(f) for f in files)
    own_work = a.work is None
    a.work = tempfile.mkdtemp(prefix="fhirlake-compare-") if own_work else a.work
    os.makedirs(a.work, exist_ok=True)

    header = [
        f"- machine: {machine()}",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- corpus: {plain}: {input_bytes / 1e6:.1f} MB of NDJSON in {len(files)} files"
        + (f" ({meta.get('copies')} copies of {meta.get('source')})" if meta else ""),
        "- command: "
        + (f"{os.environ['FHIRLAKE_BENCH_COMMAND']} (which ran: " if os.environ.get("FHIRLAKE_BENCH_COMMAND") else "")
        + shlex.join([sys.argv[0]] + sys.argv[1:])
        + (")" if os.environ.get("FHIRLAKE_BENCH_COMMAND") else ""),
        f"- rounds: {a.runs}, contenders run round-robin; medians of wall and CPU, max of peak RSS",
    ]
    print("\n".join(header), flush=True)
    results = {n: [] for n in names}
    try:
        for rnd in range(a.runs):
            for n in names:
                r = run_one(n, plain, input_bytes, a)
                results[n].append(r)
                print(
                    f"round {rnd + 1}/{a.runs} {n}: {r['wall']:.2f} s wall, "
                    f"{input_bytes / 1e6 / r['wall']:.1f} MB/s, cpu {r['cpu']:.1f} s, "
                    f"RSS {r['rss_kib'] / 1024:.0f} MiB, out {r['out_bytes'] / 1e6:.1f} MB"
                    + (f", {len(r['failures'])} failures" if r["failures"] else ""),
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if own_work:
            shutil.rmtree(a.work, ignore_errors=True)

    def med(n, k):
        return statistics.median(r[k] for r in results[n])

    base = med("fhirlake", "wall") if "fhirlake" in results else None
    rows = [
        "| contender | MB/s | wall s | CPU s | peak RSS MiB | output MB | × fhirlake | failures |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for n in names:
        rs = results[n]
        wall = med(n, "wall")
        mbs = input_bytes / 1e6 / wall
        ratio = f"{base / wall:.2f}" if base else "–"
        out_mb = med(n, "out_bytes") / 1e6
        fails = rs[-1]["failures"]
        conv = min(r["converted"] for r in rs)
        if fails:
            fail_txt = f"{len(fails)}; {conv / 1e6:.0f} of {input_bytes / 1e6:.0f} MB converted"
            notes.append(f"{n}: " + "; ".join(fails[:5]) + (f"; … {len(fails) - 5} more" if len(fails) > 5 else ""))
        else:
            fail_txt = "0"
        if rs[-1]["retried"]:
            fail_txt += f" ({rs[-1]['retried']} files retried with a full-file schema sample)"
        rows.append(
            f"| {n} | {mbs:.1f} | {wall:.2f} | {med(n, 'cpu'):.1f} | "
            f"{max(r['rss_kib'] for r in rs) / 1024:.0f} | "
            f"{'–' if n.startswith('parse-ceiling') else f'{out_mb:.1f}'} | {ratio} | {fail_txt} |"
        )
    summary = []
    if "fhirlake" in results:
        summary.append(f"- fhirlake (default threads) peak RSS: {max(r['rss_kib'] for r in results['fhirlake']) / 1024:.0f} MiB (target < 1024)")
        mbs = {n: input_bytes / 1e6 / med(n, "wall") for n in results}
        summary.append(f"- fhirlake (default threads): {mbs['fhirlake']:.1f} MB/s (target ≥ 500)")
        if "fhirlake-1core" in results:
            summary.append(
                f"- per core (fhirlake-1core, all threads pinned to one CPU): {mbs['fhirlake-1core']:.1f} MB/s "
                f"(target ≥ 250); scaling to {os.cpu_count()} cores: "
                f"{mbs['fhirlake'] / mbs['fhirlake-1core']:.2f}× (target ≥ 1.8×)"
            )
        if "fhirlake-1t" in results:
            summary.append(
                f"- fhirlake-1t (`--threads 1`, unpinned: reading and writing overlap decoding): "
                f"{mbs['fhirlake-1t']:.1f} MB/s; default threads are {mbs['fhirlake'] / mbs['fhirlake-1t']:.2f}× that"
            )
        fl_out = med("fhirlake", "out_bytes")
        for d in ("duckdb-1t", "duckdb-2t"):
            if d in results:
                dk = results[d]
                dk_out = med(d, "out_bytes")
                partial = min(r["converted"] for r in dk) < input_bytes
                summary.append(
                    f"- output size, fhirlake / DuckDB ({d}): {fl_out / 1e6:.1f} / {dk_out / 1e6:.1f} MB = "
                    f"{fl_out / dk_out:.3f}× (target ≤ 1.15×)"
                    + (" — DuckDB did not convert every file, so this is not like for like" if partial else "")
                )
                break
    summary.append(
        "- MB/s and × fhirlake are over all the input's bytes (files a contender failed on are still in "
        "its time); output MB is its output folder's size"
    )
    text = "\n".join(header + [""] + rows + [""] + summary + ([""] + [f"- failures: {x}" for x in notes] if notes else []))
    print()
    print("\n".join(rows + [""] + summary + ([""] + [f"- failures: {x}" for x in notes] if notes else [])))
    if a.markdown:
        with open(a.markdown, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
