#!/usr/bin/env python3
"""Check that Spark (PySpark 3.5, as Glue 4/5 runs it) reads a fhirlake lake exactly as
pyarrow does.

    spark_check.py LAKE [LAKE ...]

For every table of every LAKE, Spark reads the table's folder as a Glue job would
(`spark.read.option("mergeSchema", "true").parquet("LAKE/<Type>")`, hive partitions
discovered), and pyarrow reads each Parquet file on its own. Every row must be the same
in both, element by element, matched on `id`: strings, integers, booleans, decimals
(`__x_numeric`), timestamps (`__x_start`/`__x_end`, compared as UTC milliseconds), lists
and nested structs. Fields a row does not have (null, or absent from a file's schema) are
left out on both sides. check_lake.py already compares pyarrow's reading with the input
NDJSON, so together they show Spark reads what was exported.

It also checks that Spark reads the Parquet encodings fhirlake chooses per column
(DELTA_LENGTH_BYTE_ARRAY ids, DELTA_BINARY_PACKED timestamps): the lake must contain
them, so a reader that lacked them would fail here.

Failure messages name the table, the resource id and the element path, never a value.
Exits 1 when any check fails, 2 on usage errors.
"""
import datetime as dt
import decimal
import glob
import os
import sys
import time

os.environ["TZ"] = "UTC"  # PySpark turns timestamps into naive datetimes in local time
time.tzset()

import pyarrow.parquet as pq  # noqa: E402

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def normal(v):
    """A value as plain Python, comparable across the two readers."""
    if v is None:
        return None
    if hasattr(v, "asDict"):
        v = v.asDict(recursive=False)
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            x = normal(x)
            if x is not None:
                out[k] = x
        return out or None
    if isinstance(v, (list, tuple)):
        return [normal(x) for x in v]
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return ("ts", (v - EPOCH) // dt.timedelta(milliseconds=1))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(v))
    if isinstance(v, decimal.Decimal):
        return ("dec", v.normalize())
    if isinstance(v, float):
        return ("float", v)
    return v


def first_difference(a, b, path):
    """The element path of the first difference between two normal values, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = first_difference(a.get(k), b.get(k), f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (lists of {len(a)} and {len(b)} items)"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if a != b:
        return f"{path} ({type(a).__name__} vs {type(b).__name__})"
    return None


def encodings_in(files):
    seen = set()
    for f in files:
        md = pq.ParquetFile(f).metadata
        for rg in range(md.num_row_groups):
            for c in range(md.num_columns):
                seen.update(md.row_group(rg).column(c).encodings)
    return seen


def main():
    lakes = sys.argv[1:]
    if not lakes or any(not os.path.isdir(p) for p in lakes):
        print("usage: spark_check.py LAKE [LAKE ...] (folders written by fhirlake convert)", file=sys.stderr)
        return 2
    from pyspark.sql import SparkSession

    t0 = time.time()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("fhirlake-spark-check")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    print(f"spark_check: Spark {spark.version} started in {time.time() - t0:.1f} s")
    failures = []
    tables = rows = 0
    encodings = set()
    for lake in lakes:
        for table_dir in sorted(glob.glob(os.path.join(lake, "[A-Z]*"))):
            table = os.path.basename(table_dir)
            files = sorted(glob.glob(os.path.join(table_dir, "**", "*.parquet"), recursive=True))
            if not files:
                continue
            encodings |= encodings_in(files)
            want = {}
            for f in files:
                for r in pq.read_table(f).to_pylist():
                    want[r["id"]] = normal(r)
            df = spark.read.option("mergeSchema", "true").parquet(table_dir)
            partition_columns = [c for c in df.columns if c == "export"]
            got = {}
            for r in df.drop(*partition_columns).collect():
                got[r["id"]] = normal(r)
            tables += 1
            rows += len(got)
            if set(got) != set(want):
                failures.append(
                    f"{lake}:{table}: Spark read {len(got)} ids, pyarrow {len(want)}; "
                    f"{len(set(want) - set(got))} missing in Spark, {len(set(got) - set(want))} extra"
                )
                continue
            for rid in sorted(want):
                d = first_difference(got[rid], want[rid], table)
                if d:
                    failures.append(f"{lake}:{table}: id {rid}: Spark and pyarrow differ at {d}")
                    break
    names = {str(e).rsplit(".", 1)[-1] for e in encodings}
    for needed in ("DELTA_LENGTH_BYTE_ARRAY", "DELTA_BINARY_PACKED", "RLE_DICTIONARY"):
        if needed not in names:
            failures.append(f"no column of the lakes uses {needed}, so Spark's reading of it is untested")
    spark.stop()
    for f in failures:
        print("FAIL", f)
    if failures or tables == 0:
        print(f"spark_check: {len(failures)} failures ({tables} tables)")
        return 1
    print(f"spark_check: OK, {tables} tables, {rows} rows read alike by Spark and pyarrow "
          f"({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
