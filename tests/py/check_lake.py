#!/usr/bin/env python3
"""Check that real query engines (DuckDB and pyarrow) read a lake written by fhirlake.

    check_lake.py LAKE INPUT REPORT [--sample N] [--full-below N] [--show-values]

LAKE is the destination of one `fhirlake convert` (one export: tables are read through
globs over all partitions, `LAKE/<Type>/*/*.parquet`, as a user would), INPUT the folder
(or file) it converted, REPORT the run report (LAKE/_runs/<id>.json). Every check
compares what an engine reads with what the input NDJSON says, computed here in Python
independently of fhirlake:

1. row counts per table: DuckDB count(*), pyarrow dataset rows and Parquet footers all
   equal the report's rows and the input's line count (no rejected lines allowed); the
   report's files and sizes are the files on disk; the `export` hive partition column
   holds the export id; the ids of every table are exactly the input's ids;
2. values: for every row of small tables, and a sample of bigger ones, the whole row as
   DuckDB and as pyarrow return it is compared with the input JSON, element by element
   (text of strings and decimals, integers, booleans, lists, contained resources), and
   each `__x_numeric`, `__x_start`, `__x_end` annotation with the value computed here
   from the text; plus readable SQL over Patient, Observation, Encounter, Condition
   (`code.coding[1].code`, `valueQuantity.value`, `effectiveDateTime`, `birthDate`, ...);
3. a join of Observation to Patient on subject.reference = 'Patient/' || id, in SQL and
   in pyarrow (Acero), against the count computed from the input;
4. filters on `__value_numeric` (decimal) and `__effectiveDateTime_start`/`_end`
   (timestamp) in SQL WHERE clauses and pyarrow dataset filters, against the same filter
   computed from the input;
5. Parquet physical types of every annotation column in every file: INT64
   TIMESTAMP(MILLIS, isAdjustedToUTC) for `__x_start`/`__x_end`, FIXED_LEN_BYTE_ARRAY
   DECIMAL(38,6) for `__x_numeric`; lists use the item field `element`.

Failure messages name the table, the resource id, the element path and counts, never a
value from the data (unless --show-values is given, for local debugging). Exits 1 when
any check fails, 2 on usage errors.
"""
import argparse
import datetime as dt
import decimal
import functools
import glob
import gzip
import json
import os
import random
import re
import sys
from collections import Counter, defaultdict
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

UTC = dt.timezone.utc
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
DEC_CTX = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_UP)
SCALE = Decimal("0.000001")


# ---------------------------------------------------------------- FHIR rules, re-done here


class Num(str):
    """A JSON number, kept as its exact text."""


def numeric(text):
    """A decimal's text as Decimal(38,6), rounded half away from zero; None if too big."""
    try:
        d = DEC_CTX.create_decimal(str(text))
    except decimal.InvalidOperation:
        return None
    if not d.is_finite() or d.adjusted() >= 32:
        return None
    q = d.quantize(SCALE, context=DEC_CTX)
    if abs(q) >= Decimal(10) ** 32:
        return None
    return q


DATE_RE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def ms_of(t):
    return (t - EPOCH) // dt.timedelta(milliseconds=1)


@functools.lru_cache(maxsize=1 << 16)
def date_range(text):
    """(start, end) in ms since the epoch, UTC, that a FHIR date/dateTime spans; None if invalid."""
    if not isinstance(text, str):
        return None
    m = DATE_RE.match(text)
    if not m:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        y = int(y)
        if mo is None:
            start = dt.datetime(y, 1, 1, tzinfo=UTC)
            return ms_of(start), ms_of(dt.datetime(y + 1, 1, 1, tzinfo=UTC)) - 1
        if d is None:
            start = dt.datetime(y, int(mo), 1, tzinfo=UTC)
            nxt = dt.datetime(y + int(mo) // 12, int(mo) % 12 + 1, 1, tzinfo=UTC)
            return ms_of(start), ms_of(nxt) - 1
        day = dt.datetime(y, int(mo), int(d), tzinfo=UTC)
        if hh is None:
            return ms_of(day), ms_of(day + dt.timedelta(days=1)) - 1
        h, mi = int(hh), int(mi)
        if h > 23 or mi > 59:
            return None
        offset = 0
        if tz and tz != "Z":
            oh, om = int(tz[1:3]), int(tz[4:6])
            if oh > 14 or om > 59:
                return None
            offset = (oh * 60 + om) * 60_000 * (1 if tz[0] == "+" else -1)
        base = ms_of(day) + (h * 3600 + mi * 60) * 1000 - offset
        if ss is None:
            return base, base + 60_000 - 1
        sec = int(ss)
        if sec > 60:
            return None
        base += min(sec, 59) * 1000
        if frac is None:
            return base, base + 999
        unit = 10 ** len(frac)  # the value spans [frac, frac + 1) / unit seconds
        start = base + int(frac) * 1000 // unit
        end = base - (-(int(frac) + 1) * 1000 // unit) - 1  # ceil(...) - 1
        return start, end
    except ValueError:
        return None


# ---------------------------------------------------------------- the input


def input_files(path):
    if os.path.isfile(path):
        return [path]
    out = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, f) for f in sorted(files) if f.endswith(NDJSON_SUFFIXES)]
    return out


def loads(raw):
    """A resource with its numbers as their exact text."""
    return json.loads(raw, parse_float=Num, parse_int=Num)


class Input:
    """The input NDJSON: raw lines by type and id (parsed again when compared), and the few
    facts the join and filter checks need, taken from every line."""

    def __init__(self, path):
        self.raw = defaultdict(dict)  # type -> {id: line}
        self.file_lines = {}  # path -> non-blank lines
        self.problems = []
        self.obs = {}  # Observation id -> (subject.reference, value text, effectiveDateTime, [component value texts])
        self.birth = {}  # Patient id -> birthDate
        for f in input_files(path):
            opener = gzip.open if f.endswith(".gz") else open
            n = 0
            with opener(f, "rb") as fh:
                for lineno, line in enumerate(fh, 1):
                    line = line.rstrip(b"\r\n")
                    if not line.strip():
                        continue
                    n += 1
                    r = loads(line)
                    rt, rid = r.get("resourceType"), r.get("id")
                    if rid in self.raw[rt]:
                        self.problems.append(f"input {os.path.basename(f)} line {lineno}: duplicate {rt} id {rid}")
                    self.raw[rt][rid] = line
                    if rt == "Observation":
                        self.obs[rid] = (
                            get(r, "subject", "reference"),
                            get(r, "valueQuantity", "value"),
                            r.get("effectiveDateTime"),
                            [get(x, "valueQuantity", "value") for x in r.get("component", [])],
                        )
                    elif rt == "Patient":
                        self.birth[rid] = r.get("birthDate")
            self.file_lines[f] = n

    def __getitem__(self, rt):
        return self.raw[rt]

    def __contains__(self, rt):
        return rt in self.raw

    def __iter__(self):
        return iter(self.raw)

    def resource(self, rt, rid):
        return loads(self.raw[rt][rid])


# ---------------------------------------------------------------- checks


class Checks:
    def __init__(self, show_values):
        self.passed = 0
        self.failed = 0
        self.kinds = Counter()  # failures by kind: the first few of each kind are printed
        self.show_values = show_values

    def ok(self, cond, message, kind=None):
        if cond:
            self.passed += 1
            return True
        self.failed += 1
        kind = kind or message
        self.kinds[kind] += 1
        if self.kinds[kind] <= 3:
            print(f"FAIL: {message}", flush=True)
        elif self.kinds[kind] == 4:
            print(f"FAIL: ... more failures like the above are counted, not shown: {kind}", flush=True)
        return False

    def equal(self, got, want, message, kind=None):
        """Compare; the message never carries the values unless --show-values."""
        good = got == want
        if not good and self.show_values:
            message += f" (got {got!r}, want {want!r})"
        return self.ok(good, message, kind)

    def section(self, name, fn, *args):
        """Run a group of checks; an exception (an engine that cannot read a file) fails it."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - reported as a failure, with its type
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            self.ok(False, f"{name}: raised {type(e).__name__}: {first[:300]}")
            return None


def table_dirs(lake):
    return sorted(
        d for d in os.listdir(lake) if not d.startswith(("_", ".")) and os.path.isdir(os.path.join(lake, d))
    )


class Lake:
    def __init__(self, lake, report):
        self.lake = lake
        self.report = report
        self.export_id = report["exportId"]
        self.hive = report.get("options", {}).get("partition", "export") == "export"
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self._datasets = {}

    def glob(self, rt):
        if self.hive:
            return os.path.join(self.lake, rt, "*", "*.parquet")
        return os.path.join(self.lake, rt, "*.parquet")

    def files(self, rt):
        return sorted(glob.glob(self.glob(rt)))

    def duck_view(self, rt):
        """A DuckDB view named after the table, as a user would define it."""
        src = "read_parquet('{}', hive_partitioning={}, union_by_name=true)".format(
            self.glob(rt).replace("'", "''"), "true" if self.hive else "false"
        )
        self.con.execute(f'CREATE OR REPLACE VIEW "{rt}" AS SELECT * FROM {src}')
        return f'"{rt}"'

    def dataset(self, rt):
        """A pyarrow dataset over the table; files may have different (sparse) schemas."""
        if rt not in self._datasets:
            files = self.files(rt)
            schemas = [pq.read_schema(f) for f in files]
            schema = pa.unify_schemas(schemas, promote_options="permissive")
            if self.hive:
                schema = schema.append(pa.field("export", pa.string()))
                part = ds.partitioning(pa.schema([("export", pa.string())]), flavor="hive")
                self._datasets[rt] = ds.dataset(
                    files, schema=schema, format="parquet", partitioning=part,
                    partition_base_dir=os.path.join(self.lake, rt),
                )
            else:
                self._datasets[rt] = ds.dataset(files, schema=schema, format="parquet")
        return self._datasets[rt]


def check_counts(c, lake, inp, file_lines, rt):
    """Row counts, files, partition column and ids of one table."""
    rep = lake.report["tables"].get(rt)
    n_in = len(inp[rt])
    if not c.ok(rep is not None, f"{rt}: not in the report's tables"):
        return
    c.equal(rep["lines"], n_in, f"{rt}: report lines {rep['lines']} != input lines {n_in}")
    c.equal(rep["rejected"], 0, f"{rt}: report says {rep['rejected']} lines rejected (the input is valid)")
    c.equal(rep["rows"], n_in, f"{rt}: report rows {rep['rows']} != input lines {n_in}")
    files = lake.files(rt)
    paths = {os.path.basename(f): f for f in files}
    c.equal(len(paths), len(files), f"{rt}: the same file name in two partitions (one export per lake, please)")
    listed = {o["name"]: o for o in rep["outputFiles"]}
    c.equal(sorted(paths), sorted(listed), f"{rt}: files on disk differ from the report's outputFiles")
    for name, path in paths.items():
        if name in listed:
            c.equal(os.path.getsize(path), listed[name]["bytes"], f"{rt}/{name}: size on disk != report bytes")
            footer_rows = pq.ParquetFile(path).metadata.num_rows
            c.equal(footer_rows, listed[name]["rows"], f"{rt}/{name}: Parquet footer rows {footer_rows} != report rows")
    view = lake.duck_view(rt)
    n_duck = lake.con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
    c.equal(n_duck, n_in, f"{rt}: DuckDB count(*) {n_duck} != input lines {n_in}")
    n_arrow = lake.dataset(rt).count_rows()
    c.equal(n_arrow, n_in, f"{rt}: pyarrow dataset rows {n_arrow} != input lines {n_in}")
    bad_rt = lake.con.execute(f"SELECT count(*) FROM {view} WHERE resourceType IS DISTINCT FROM ?", [rt]).fetchone()[0]
    c.equal(bad_rt, 0, f"{rt}: {bad_rt} rows whose resourceType column is not {rt}")
    if lake.hive:
        exports = lake.con.execute(f"SELECT DISTINCT CAST(export AS VARCHAR) FROM {view}").fetchall()
        c.equal(exports, [(lake.export_id,)], f"{rt}: DuckDB hive column `export` is not the export id")
        col = lake.dataset(rt).to_table(columns=["export"]).column("export").unique().to_pylist()
        c.equal(col, [lake.export_id], f"{rt}: pyarrow hive column `export` is not the export id")
    # ids, by both engines
    want = Counter(inp[rt].keys())
    duck_ids = Counter(r[0] for r in lake.con.execute(f"SELECT id FROM {view}").fetchall())
    arrow_ids = Counter(lake.dataset(rt).to_table(columns=["id"]).column("id").to_pylist())
    for engine, got in (("DuckDB", duck_ids), ("pyarrow", arrow_ids)):
        missing, extra = want - got, got - want
        c.ok(not missing and not extra,
             f"{rt}: {engine} ids differ from the input: {sum(missing.values())} missing "
             f"(e.g. {sorted(missing)[:3]}), {sum(extra.values())} extra (e.g. {sorted(extra)[:3]})")


INDEX_RE = re.compile(r"\[\d+\]")


class RowCompare:
    """A row as an engine returns it (nested dicts and lists) against the input JSON."""

    def __init__(self, c, engine, rt, rid):
        self.c, self.engine, self.rt, self.where = c, engine, rt, f"{rt} id={rid}"
        self.compared = 0

    def fail(self, path, what, got=None, want=None):
        msg = f"{self.where}: {self.engine} {path}: {what}"
        if self.c.show_values and (got is not None or want is not None):
            msg += f" (got {got!r}, want {want!r})"
        kind = f"{self.engine} {INDEX_RE.sub('[]', path)}: {what}"
        self.c.ok(False, msg, kind)

    def obj(self, js, row, path):
        if not isinstance(row, dict):
            return self.fail(path, f"expected a struct, found {type(row).__name__}")
        seen = set()
        for k, v in js.items():
            if k not in row:
                self.fail(f"{path}.{k}", "no such column")
                continue
            seen.add(k)
            self.value(v, row[k], f"{path}.{k}")
            if k.startswith("_"):
                continue
            ann = f"__{k}_numeric"
            if ann in row:
                seen.add(ann)
                self.annotation(v, row[ann], f"{path}.{ann}", numeric, lambda x: x)
            s, e = f"__{k}_start", f"__{k}_end"
            if s in row or e in row:
                seen.update((s, e))
                self.annotation(v, row.get(s), f"{path}.{s}", date_range, lambda r: r[0])
                self.annotation(v, row.get(e), f"{path}.{e}", date_range, lambda r: r[1])
        for k, v in row.items():
            if k not in seen and v is not None:
                self.fail(f"{path}.{k}", "set, but the input has no such element")

    def annotation(self, text, got, path, compute, pick):
        if isinstance(text, list):
            if not isinstance(got, list) or len(got) != len(text):
                return self.fail(path, "list length differs from its element's")
            for i, (t, g) in enumerate(zip(text, got)):
                self.annotation(t, g, f"{path}[{i}]", compute, pick)
            return
        want = compute(text) if text is not None else None
        if want is not None:
            want = pick(want)
        if isinstance(got, dt.datetime):
            if got.tzinfo is None:
                return self.fail(path, "timestamp read without a time zone (expected UTC-adjusted)")
            got = ms_of(got)
        self.compared += 1
        if got != want:
            self.fail(path, "annotation differs from the value computed from the input text", got, want)

    def value(self, v, r, path):
        self.compared += 1
        if isinstance(v, dict):
            # A resource (contained, Bundle.entry.resource) is a struct of one field per type;
            # other objects may have a `resourceType` element too (ExampleScenario.instance).
            if "resourceType" in v and not (isinstance(r, dict) and "resourceType" in r):
                rt = v["resourceType"]
                if not isinstance(r, dict) or r.get(rt) is None:
                    return self.fail(path, f"no {rt} member in the resource struct")
                others = [k for k, x in r.items() if k != rt and x is not None]
                if others:
                    self.fail(path, f"{len(others)} other resource members set besides {rt}")
                return self.obj({k: x for k, x in v.items() if k != "resourceType"}, r[rt], f"{path}.{rt}")
            return self.obj(v, r, path)
        if isinstance(v, list):
            if not isinstance(r, list) or len(r) != len(v):
                return self.fail(path, f"list of {len(v)} read as {type(r).__name__} of {len(r) if isinstance(r, list) else '-'}")
            for i, (a, b) in enumerate(zip(v, r)):
                self.value(a, b, f"{path}[{i}]")
            return
        if v is None:
            if r is not None:
                self.fail(path, "null in the input, set in the table")
            return
        if isinstance(v, bool):
            if r is not v:
                self.fail(path, "boolean differs", r, v)
            return
        if isinstance(v, Num):
            if isinstance(r, str):  # decimal: the exact text
                if r != v:
                    self.fail(path, "decimal text differs from the input's", r, v)
            elif isinstance(r, int) and not isinstance(r, bool):
                if str(r) != v:
                    self.fail(path, "integer differs", r, v)
            else:
                self.fail(path, f"number read as {type(r).__name__}")
            return
        if isinstance(v, str):
            if r != v:
                self.fail(path, "string differs", r, v)
            return
        self.fail(path, f"unexpected input value type {type(v).__name__}")


def pick_sample(ids, n_full, n_sample, seed):
    ids = sorted(ids)
    if len(ids) <= n_full:
        return ids
    return sorted(random.Random(f"{seed}").sample(ids, n_sample))


def check_rows(c, lake, inp, rt, sample):
    """Whole rows by both engines against the input."""
    if not sample:
        return 0
    view = lake.duck_view(rt)
    cur = lake.con.execute(f"SELECT * FROM {view} WHERE id IN (SELECT unnest(?::VARCHAR[]))", [sample])
    names = [d[0] for d in cur.description]
    duck_rows = {}
    for tup in cur.fetchall():
        row = dict(zip(names, tup))
        duck_rows[row["id"]] = row
    arrow_rows = {
        row["id"]: row
        for row in lake.dataset(rt).to_table(filter=pc.field("id").isin(sample)).to_pylist()
    }
    compared = 0
    for engine, rows in (("DuckDB", duck_rows), ("pyarrow", arrow_rows)):
        c.equal(len(rows), len(sample), f"{rt}: {engine} found {len(rows)} of {len(sample)} sampled ids")
        for rid in sample:
            row = rows.get(rid)
            if row is None:
                continue
            row = dict(row)
            if lake.hive:
                c.equal(str(row.pop("export", None)), lake.export_id, f"{rt} id={rid}: {engine} export column",
                        kind=f"{rt}: {engine} export column")
            cmpr = RowCompare(c, engine, rt, rid)
            before = c.failed
            cmpr.obj(inp.resource(rt, rid), row, rt)
            compared += cmpr.compared
            if c.failed == before:
                c.passed += 1
    return compared


def get(obj, *path):
    for p in path:
        if obj is None:
            return None
        if isinstance(p, int):
            obj = obj[p] if isinstance(obj, list) and len(obj) > p else None
        else:
            obj = obj.get(p) if isinstance(obj, dict) else None
    return obj


def rng(text, i):
    r = date_range(text) if text is not None else None
    return None if r is None else r[i]


# Readable SQL, as an analyst writes it, per type: (SQL expression, expected from the input).
SQL_COLUMNS = {
    "Patient": [
        ("gender", lambda r: r.get("gender")),
        ("birthDate", lambda r: r.get("birthDate")),
        ("epoch_ms(__birthDate_start)", lambda r: rng(r.get("birthDate"), 0)),
        ("epoch_ms(__birthDate_end)", lambda r: rng(r.get("birthDate"), 1)),
        ("deceasedDateTime", lambda r: r.get("deceasedDateTime")),
        ("epoch_ms(__deceasedDateTime_start)", lambda r: rng(r.get("deceasedDateTime"), 0)),
        ("name[1].family", lambda r: get(r, "name", 0, "family")),
        ("address[1].extension[1].extension[1].__valueDecimal_numeric",
         lambda r: (lambda t: numeric(t) if t is not None else None)(
             get(r, "address", 0, "extension", 0, "extension", 0, "valueDecimal"))),
    ],
    "Observation": [
        ("status", lambda r: r.get("status")),
        ("code.coding[1].code", lambda r: get(r, "code", "coding", 0, "code")),
        ("subject.reference", lambda r: get(r, "subject", "reference")),
        ("valueQuantity.value", lambda r: get(r, "valueQuantity", "value")),
        ("valueQuantity.__value_numeric",
         lambda r: (lambda t: numeric(t) if t is not None else None)(get(r, "valueQuantity", "value"))),
        ("valueQuantity.unit", lambda r: get(r, "valueQuantity", "unit")),
        ("effectiveDateTime", lambda r: r.get("effectiveDateTime")),
        ("epoch_ms(__effectiveDateTime_start)", lambda r: rng(r.get("effectiveDateTime"), 0)),
        ("epoch_ms(__effectiveDateTime_end)", lambda r: rng(r.get("effectiveDateTime"), 1)),
        ("len(component)", lambda r: len(r["component"]) if "component" in r else None),
        ("component[1].valueQuantity.value", lambda r: get(r, "component", 0, "valueQuantity", "value")),
    ],
    "Encounter": [
        ('"class".code', lambda r: get(r, "class", "code")),
        ("period.start", lambda r: get(r, "period", "start")),
        ("epoch_ms(period.__start_start)", lambda r: rng(get(r, "period", "start"), 0)),
        ('period."end"', lambda r: get(r, "period", "end")),
        ("epoch_ms(period.__end_end)", lambda r: rng(get(r, "period", "end"), 1)),
        ("subject.reference", lambda r: get(r, "subject", "reference")),
    ],
    "Condition": [
        ("code.coding[1].code", lambda r: get(r, "code", "coding", 0, "code")),
        ("clinicalStatus.coding[1].code", lambda r: get(r, "clinicalStatus", "coding", 0, "code")),
        ("onsetDateTime", lambda r: r.get("onsetDateTime")),
        ("epoch_ms(__onsetDateTime_start)", lambda r: rng(r.get("onsetDateTime"), 0)),
        ("subject.reference", lambda r: get(r, "subject", "reference")),
    ],
}


def check_sql_values(c, lake, inp, rt, sample):
    cols = SQL_COLUMNS.get(rt)
    if not cols or not sample:
        return 0
    view = lake.duck_view(rt)
    # A column whose struct path does not occur in this table's data is skipped (sparse schemas).
    usable = []
    for expr, fn in cols:
        try:
            lake.con.execute(f"SELECT {expr} FROM {view} LIMIT 0")
            usable.append((expr, fn))
        except duckdb.Error:
            c.ok(all(fn(inp.resource(rt, i)) is None for i in sample),
                 f"{rt}: SQL `{expr}` fails although the input has such values")
    sql = "SELECT id, {} FROM {} WHERE id IN (SELECT unnest(?::VARCHAR[]))".format(
        ", ".join(e for e, _ in usable), view)
    n = 0
    for row in lake.con.execute(sql, [sample]).fetchall():
        rid, vals = row[0], row[1:]
        for (expr, fn), got in zip(usable, vals):
            want = fn(inp.resource(rt, rid))
            if isinstance(want, Num):
                want = str(want)
            c.equal(got, want, f"{rt} id={rid}: SQL `{expr}` differs from the input",
                    kind=f"{rt}: SQL `{expr}` differs from the input")
            n += 1
    return n


def check_contained(c, lake, inp, rt):
    """`contained` read as a list of structs with one field per resource type, in SQL."""
    want = Counter()
    for raw in inp[rt].values():
        if b'"contained"' in raw:
            for x in loads(raw).get("contained", []):
                if isinstance(x, dict):
                    want[x.get("resourceType")] += 1
    if not want:
        return 0
    view = lake.duck_view(rt)
    total = lake.con.execute(f"SELECT count(*) FROM {view} r CROSS JOIN UNNEST(r.contained) AS t(c)").fetchone()[0]
    c.equal(total, sum(want.values()), f"{rt}: DuckDB UNNEST(contained) gives {total} rows, input {sum(want.values())}")
    for ctype, n in sorted(want.items()):
        got = lake.con.execute(
            f'SELECT count(*) FROM {view} r CROSS JOIN UNNEST(r.contained) AS t(c) WHERE c."{ctype}" IS NOT NULL'
        ).fetchone()[0]
        c.equal(got, n, f"{rt}: DuckDB finds {got} contained {ctype}, input {n}")
    col = lake.dataset(rt).to_table(columns=["contained"]).column("contained")
    n_arrow = len(pc.list_flatten(col))
    c.equal(n_arrow, sum(want.values()), f"{rt}: pyarrow flattens {n_arrow} contained, input {sum(want.values())}")
    return sum(want.values())


def check_join(c, lake, inp):
    if "Observation" not in inp or "Patient" not in inp:
        return
    obs, pat = lake.duck_view("Observation"), lake.duck_view("Patient")
    want = Counter()
    for ref, _, _, _ in inp.obs.values():
        if ref and ref.startswith("Patient/") and ref[len("Patient/"):] in inp["Patient"]:
            want[ref[len("Patient/"):]] += 1
    total = sum(want.values())
    c.ok(total > 0, "join: no Observation references a Patient of the input (fixture too small?)")
    got = dict(lake.con.execute(
        f"SELECT p.id, count(*) FROM {obs} o JOIN {pat} p ON o.subject.reference = 'Patient/' || p.id GROUP BY p.id"
    ).fetchall())
    c.equal(sum(got.values()), total, f"join: DuckDB Observation JOIN Patient gives {sum(got.values())} rows, input {total}")
    c.equal(got, dict(want), "join: DuckDB Observation count per Patient differs from the input")
    # pyarrow (Acero) hash join on the same key
    o = lake.dataset("Observation").to_table(columns={"ref": pc.field("subject", "reference")})
    p = lake.dataset("Patient").to_table(columns=["id"])
    p = p.append_column("ref", pc.binary_join_element_wise("Patient/", p.column("id"), ""))
    j = o.join(p, keys="ref", join_type="inner")
    c.equal(j.num_rows, total, f"join: pyarrow Observation join Patient gives {j.num_rows} rows, input {total}")
    per = Counter(j.column("id").to_pylist())
    c.equal(dict(per), dict(want), "join: pyarrow Observation count per Patient differs from the input")
    print(f"join: {total} Observations joined to {len(want)} Patients by DuckDB and pyarrow")


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def ts_literal(ms):
    t = EPOCH + dt.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}+00"


def check_filters(c, lake, inp):
    """SQL WHERE / pyarrow filters on annotations against the same filter in Python."""
    if "Observation" not in inp:
        return
    obs = lake.duck_view("Observation")
    dset = lake.dataset("Observation")
    rows = inp.obs
    val = {i: numeric(v) for i, (_, v, _, _) in rows.items() if v is not None}
    eff = {i: date_range(e) for i, (_, _, e, _) in rows.items() if e is not None}
    eff = {i: x for i, x in eff.items() if x is not None}
    n_all = len(rows)

    def compare(label, sql_where, arrow_filter, want_ids):
        want_ids = set(want_ids)
        before = c.failed
        c.ok(0 < len(want_ids) < n_all, f"filter {label}: selects {len(want_ids)} of {n_all}; the check needs a proper subset")
        got = {r[0] for r in lake.con.execute(f"SELECT id FROM {obs} WHERE {sql_where}").fetchall()}
        c.equal(len(got), len(want_ids), f"filter {label}: DuckDB selects {len(got)} rows, input {len(want_ids)}")
        c.ok(got == want_ids, f"filter {label}: DuckDB selects other ids than the input "
             f"({len(got - want_ids)} extra, {len(want_ids - got)} missing)")
        if arrow_filter is not None:
            at = c.section(f"filter {label}: pyarrow", lambda: set(
                dset.to_table(columns=["id"], filter=arrow_filter).column("id").to_pylist()))
            if at is not None:
                c.ok(at == want_ids, f"filter {label}: pyarrow selects {len(at)} rows, input {len(want_ids)} "
                     f"({len(at - want_ids)} extra, {len(want_ids - at)} missing)")
        if c.failed == before:
            print(f"filter {label}: {len(want_ids)} of {n_all} Observations, DuckDB and pyarrow agree with the input")

    dec = pa.decimal128(38, 6)
    tsz = pa.timestamp("ms", tz="UTC")
    if val:
        t = quantile([v for v in val.values() if v is not None], 0.5)
        compare(
            "valueQuantity.__value_numeric > median",
            f"valueQuantity.__value_numeric > CAST('{t}' AS DECIMAL(38,6))",
            ds.field("valueQuantity", "__value_numeric") > pa.scalar(t, dec),
            [i for i, v in val.items() if v is not None and v > t],
        )
        # Equality on an exact decimal: a value that occurs in the data, written as text.
        common = Counter(v for v in val.values() if v is not None).most_common(1)[0][0]
        compare(
            "valueQuantity.__value_numeric = a frequent value",
            f"valueQuantity.__value_numeric = {common.normalize():f}",
            ds.field("valueQuantity", "__value_numeric") == pa.scalar(common, dec),
            [i for i, v in val.items() if v == common],
        )
    if eff:
        a = quantile([s for s, _ in eff.values()], 0.25)
        b = quantile([e for _, e in eff.values()], 0.75)
        compare(
            "__effectiveDateTime_start >= q25 AND __effectiveDateTime_end < q75",
            f"__effectiveDateTime_start >= TIMESTAMPTZ '{ts_literal(a)}' "
            f"AND __effectiveDateTime_end < TIMESTAMPTZ '{ts_literal(b)}'",
            (ds.field("__effectiveDateTime_start") >= pa.scalar(EPOCH + dt.timedelta(milliseconds=a), tsz))
            & (ds.field("__effectiveDateTime_end") < pa.scalar(EPOCH + dt.timedelta(milliseconds=b), tsz)),
            [i for i, (s, e) in eff.items() if s >= a and e < b],
        )
        y = (EPOCH + dt.timedelta(milliseconds=quantile([s for s, _ in eff.values()], 0.5))).year
        compare(
            f"year(__effectiveDateTime_start) = {y}",
            f"year(__effectiveDateTime_start) = {y}",
            None,
            [i for i, (s, _) in eff.items() if (EPOCH + dt.timedelta(milliseconds=s)).year == y],
        )
    if val and eff:
        t = quantile([v for v in val.values() if v is not None], 0.5)
        a = quantile([s for s, _ in eff.values()], 0.5)
        compare(
            "decimal AND timestamp",
            f"valueQuantity.__value_numeric <= {t:f} AND __effectiveDateTime_start < TIMESTAMPTZ '{ts_literal(a)}'",
            (ds.field("valueQuantity", "__value_numeric") <= pa.scalar(t, dec))
            & (ds.field("__effectiveDateTime_start") < pa.scalar(EPOCH + dt.timedelta(milliseconds=a), tsz)),
            [i for i in val if val[i] is not None and val[i] <= t and i in eff and eff[i][0] < a],
        )
    # Nested: component values (blood pressure) through UNNEST.
    comp = [numeric(v) for (_, _, _, values) in rows.values() for v in values if v is not None]
    comp = [v for v in comp if v is not None]
    if comp:
        t = quantile(comp, 0.5)
        want = sum(1 for v in comp if v is not None and v > t)
        got = lake.con.execute(
            f"SELECT count(*) FROM (SELECT unnest(component) AS c FROM {obs}) "
            f"WHERE c.valueQuantity.__value_numeric > {t:f}"
        ).fetchone()[0]
        c.equal(got, want, f"filter component[].valueQuantity.__value_numeric: DuckDB {got}, input {want}")
        col = dset.to_table(columns=["component"]).column("component")
        flat = pc.list_flatten(col)
        nums = pc.struct_field(pc.struct_field(flat, "valueQuantity"), "__value_numeric")
        ag = pc.sum(pc.greater(nums, pa.scalar(t, dec))).as_py() or 0
        c.equal(ag, want, f"filter component[].valueQuantity.__value_numeric: pyarrow {ag}, input {want}")
        print(f"filter component[].valueQuantity.__value_numeric > median: {want} of {len(comp)}, both engines agree")
    # Patients born before the median birth date, on the date annotation.
    if "Patient" in inp:
        pat = lake.duck_view("Patient")
        births = {i: date_range(b) for i, b in inp.birth.items()}
        births = {i: x for i, x in births.items() if x is not None}
        if births:
            m = quantile([s for s, _ in births.values()], 0.5)
            want = {i for i, (s, _) in births.items() if s < m}
            got = {r[0] for r in lake.con.execute(
                f"SELECT id FROM {pat} WHERE __birthDate_start < TIMESTAMPTZ '{ts_literal(m)}'").fetchall()}
            c.ok(got == want, f"filter Patient.__birthDate_start: DuckDB {len(got)} ids, input {len(want)}")
    # The types the engines see.
    types = dict(lake.con.execute(
        f"SELECT 'n', typeof(valueQuantity.__value_numeric) FROM {obs} LIMIT 1 "
    ).fetchall() + lake.con.execute(f"SELECT 't', typeof(__effectiveDateTime_start) FROM {obs} LIMIT 1").fetchall())
    c.equal(types.get("n"), "DECIMAL(38,6)", "DuckDB reads __value_numeric as DECIMAL(38,6)")
    c.equal(types.get("t"), "TIMESTAMP WITH TIME ZONE", "DuckDB reads __effectiveDateTime_start as TIMESTAMP WITH TIME ZONE")
    c.equal(str(dset.schema.field("__effectiveDateTime_start").type), "timestamp[ms, tz=UTC]",
            "pyarrow reads __effectiveDateTime_start as timestamp[ms, tz=UTC]")


def check_physical(c, lake, rt):
    """Parquet physical and logical types of annotations, in every file of the table."""
    counts = Counter()
    for f in lake.files(rt):
        schema = pq.ParquetFile(f).schema
        for i in range(len(schema)):
            col = schema.column(i)
            parts = col.path.split(".")
            for k, p in enumerate(parts):
                if p == "list":
                    c.ok(k + 1 < len(parts) and parts[k + 1] == "element",
                         f"{rt}: list column {col.path} has no item field `element`")
            name = parts[-1]
            if not name.startswith("__"):
                continue
            logical = json.loads(col.logical_type.to_json())
            where = f"{rt}/{os.path.basename(f)} column {col.path}"
            if name.endswith("_numeric"):
                counts["numeric"] += 1
                c.ok(col.physical_type == "FIXED_LEN_BYTE_ARRAY" and logical.get("Type") == "Decimal"
                     and logical.get("precision") == 38 and logical.get("scale") == 6,
                     f"{where}: {col.physical_type} {logical}, expected FIXED_LEN_BYTE_ARRAY DECIMAL(38,6)")
            elif name.endswith(("_start", "_end")):
                counts["timestamp"] += 1
                c.ok(col.physical_type == "INT64" and logical.get("Type") == "Timestamp"
                     and logical.get("timeUnit") == "milliseconds" and logical.get("isAdjustedToUTC") is True,
                     f"{where}: {col.physical_type} {logical}, expected INT64 TIMESTAMP(MILLIS, UTC)")
            else:
                c.ok(False, f"{where}: annotation column with an unknown suffix")
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lake")
    ap.add_argument("input")
    ap.add_argument("report")
    ap.add_argument("--full-below", type=int, default=2000,
                    help="tables with at most this many rows are compared row by row in full (default 2000)")
    ap.add_argument("--sample", type=int, default=300, help="rows compared per bigger table (default 300)")
    ap.add_argument("--seed", default="fhirlake")
    ap.add_argument("--show-values", action="store_true",
                    help="print the differing values in failure messages (resource contents!)")
    args = ap.parse_args()
    for p in (args.lake, args.input, args.report):
        if not os.path.exists(p):
            print(f"check_lake: {p} does not exist", file=sys.stderr)
            return 2
    print(f"check_lake: duckdb {duckdb.__version__}, pyarrow {pa.__version__}")
    c = Checks(args.show_values)
    with open(args.report) as fh:
        report = json.load(fh)
    inp = Input(args.input)
    file_lines = inp.file_lines
    for p in inp.problems:
        c.ok(False, p)
    lake = Lake(args.lake, report)
    c.ok(report.get("reconciled") is True, "report: reconciled is not true")
    c.equal(report["totals"]["lines"], sum(file_lines.values()),
            f"report: totals.lines {report['totals']['lines']} != input lines {sum(file_lines.values())}")
    c.equal(report["totals"]["rejected"], 0, f"report: totals.rejected is {report['totals']['rejected']}")
    by_name = Counter(os.path.basename(f["name"]) for f in report["files"])
    for f in report["files"]:
        base = os.path.basename(f["name"])
        mine = [n for path, n in file_lines.items() if os.path.basename(path) == base]
        if by_name[base] == 1 and len(mine) == 1:
            c.equal(f["lines"], mine[0], f"report: file {base} lines {f['lines']} != {mine[0]} in the input")
    tables = table_dirs(args.lake)
    c.equal(tables, sorted(inp), f"lake tables {tables} != input resource types {sorted(inp)}")
    c.equal(sorted(report["tables"]), sorted(inp), "report tables != input resource types")
    compared = sql_values = contained = 0
    physical = Counter()
    for rt in sorted(inp):
        if rt not in tables:
            continue
        c.section(f"{rt}: counts", check_counts, c, lake, inp, file_lines, rt)
        sample = pick_sample(inp[rt].keys(), args.full_below, args.sample, args.seed)
        compared += c.section(f"{rt}: rows", check_rows, c, lake, inp, rt, sample) or 0
        sql_values += c.section(f"{rt}: SQL values", check_sql_values, c, lake, inp, rt, sample) or 0
        physical += c.section(f"{rt}: physical types", check_physical, c, lake, rt) or Counter()
        contained += c.section(f"{rt}: contained", check_contained, c, lake, inp, rt) or 0
        print(f"{rt}: {len(inp[rt])} rows; {len(sample)} rows compared in full by DuckDB and pyarrow")
    if contained:
        print(f"contained: {contained} contained resources found by UNNEST in DuckDB and by pyarrow")
    c.ok(physical["numeric"] > 0, "no __x_numeric annotation column anywhere: the check proves nothing")
    c.ok(physical["timestamp"] > 0, "no __x_start/__x_end annotation column anywhere: the check proves nothing")
    print(f"physical types: {physical['numeric']} decimal and {physical['timestamp']} timestamp annotation columns checked")
    c.section("join", check_join, c, lake, inp)
    c.section("filters", check_filters, c, lake, inp)
    print(f"values: {compared} elements and annotations compared across both engines; {sql_values} SQL values")
    if c.failed:
        print(f"check_lake: FAILED, {c.failed} of {c.passed + c.failed} checks; by kind:")
        for kind, n in c.kinds.most_common():
            print(f"  {n:>7}  {kind}")
        return 1
    print(f"check_lake: OK, {c.passed} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
