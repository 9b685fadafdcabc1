//! Real query engines read what `fhirlake convert` writes.
//!
//! Each test converts an export with the built binary, then runs
//! `tests/py/check_lake.py` in the project's venv (`.venv`, made by `./scripts/test` from
//! `tests/py/requirements.txt`). The script reads the lake with DuckDB and pyarrow and
//! checks row counts, values against the input JSON, a join of Observation to Patient,
//! SQL filters on the `__*_numeric` and `__*_start` annotations, and the Parquet physical
//! types of the annotations. See the script's docstring for the full list. One more test
//! reads two lakes with PySpark 3.5 (`tests/py/spark_check.py`) and compares every row with
//! pyarrow's reading.
//!
//! Without the venv these tests fail (run `./scripts/test`), unless
//! `FHIRLAKE_SKIP_ENGINES=1`, where they say SKIPPED and pass.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python, or `None` (with SKIPPED printed) when FHIRLAKE_SKIP_ENGINES=1.
/// Panics when the venv is missing: the engine checks are part of the suite.
fn python(test: &str) -> Option<PathBuf> {
    if std::env::var("FHIRLAKE_SKIP_ENGINES").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED {test}: FHIRLAKE_SKIP_ENGINES=1");
        println!("SKIPPED {test}: FHIRLAKE_SKIP_ENGINES=1");
        return None;
    }
    let py = root().join(".venv/bin/python");
    assert!(
        py.is_file(),
        "{test}: {} is missing. Run ./scripts/test, which creates the venv with DuckDB and \
         pyarrow from tests/py/requirements.txt (or set FHIRLAKE_SKIP_ENGINES=1 to skip).",
        py.display()
    );
    Some(py)
}

/// `fhirlake convert INPUT --out LAKE [extra]`; returns the run report's path.
fn convert(input: &Path, lake: &Path, export_id: &str, extra: &[&str]) -> PathBuf {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_fhirlake"))
        .current_dir(root())
        .arg("convert")
        .arg(input)
        .arg("--out")
        .arg(lake)
        .args(["--export-id", export_id, "--quiet"])
        .args(extra)
        .output()
        .expect("run fhirlake");
    // fhirlake's stderr holds counts and reasons only, never resource contents.
    assert!(
        out.status.success(),
        "fhirlake convert {} failed ({}):\n{}",
        input.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "converted {} in {:.1} s",
        input.display(),
        t0.elapsed().as_secs_f64()
    );
    let report = lake.join("_runs").join(format!("{export_id}.json"));
    assert!(report.is_file(), "no run report at {}", report.display());
    report
}

/// Runs check_lake.py and asserts it passed; its output names ids and counts only.
fn check_lake(py: &Path, lake: &Path, input: &Path, report: &Path, extra: &[&str]) {
    let t0 = Instant::now();
    let out = Command::new(py)
        .current_dir(root())
        .arg(root().join("tests/py/check_lake.py"))
        .arg(lake)
        .arg(input)
        .arg(report)
        .args(extra)
        .output()
        .expect("run check_lake.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    if !stderr.trim().is_empty() {
        eprintln!("{stderr}");
    }
    assert!(
        out.status.success(),
        "check_lake.py found problems reading {} with DuckDB and pyarrow ({}); \
         the FAIL lines are in its output above; by kind:\n{}\n{}",
        lake.display(),
        out.status,
        stdout
            .lines()
            .filter(|l| l.starts_with("check_lake") || l.starts_with("  "))
            .collect::<Vec<_>>()
            .join("\n"),
        stderr
    );
    assert!(
        stdout.contains("check_lake: OK"),
        "check_lake.py exited 0 without saying OK"
    );
    println!("checked in {:.1} s", t0.elapsed().as_secs_f64());
}

/// The committed fixture: three Synthea patients with every resource they reference.
#[test]
fn engines_read_synthea_mini() {
    let Some(py) = python("engines_read_synthea_mini") else {
        return;
    };
    let input = common::fixtures().join("synthea-mini");
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let report = convert(&input, &lake, "synthea-mini", &[]);
    // Every row of every table is compared (the biggest has 566 rows).
    check_lake(&py, &lake, &input, &report, &["--full-below", "1000"]);
}

/// R4 spec examples: contained resources, extensions at every level, primitive extensions
/// (`_birthDate`), Bundle entries, recursion (Questionnaire.item.item), exponent decimals.
#[test]
fn engines_read_r4_examples() {
    let Some(py) = python("engines_read_r4_examples") else {
        return;
    };
    let input = common::fixtures().join("r4-examples");
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let report = convert(&input, &lake, "r4-examples", &[]);
    check_lake(&py, &lake, &input, &report, &["--full-below", "1000"]);
}

/// Spark (PySpark 3.5, the engine of Glue 4 and 5) reads every table of two lakes as a
/// Glue job would, with `mergeSchema`, and gets exactly the rows pyarrow reads (which the
/// tests above compare with the input): the R4 examples (contained resources,
/// extensions, recursion, decimals) and the Synthea fixture (timestamps, references).
#[test]
fn spark_reads_what_pyarrow_reads() {
    let Some(py) = python("spark_reads_what_pyarrow_reads") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut lakes = Vec::new();
    for (fixture, id) in [("r4-examples", "r4"), ("synthea-mini", "synthea")] {
        let lake = tmp.path().join(fixture);
        convert(&common::fixtures().join(fixture), &lake, id, &[]);
        lakes.push(lake);
    }
    let t0 = Instant::now();
    let out = Command::new(&py)
        .current_dir(root())
        .arg(root().join("tests/py/spark_check.py"))
        .args(&lakes)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .output()
        .expect("run spark_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("spark_check: OK"),
        "Spark did not read the lakes as pyarrow does ({}); is a Java 17 runtime installed \
         (./scripts/test installs one)?\n{stdout}\n{}",
        out.status,
        stderr
            .lines()
            .filter(|l| !l.contains(" WARN "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("Spark checked in {:.1} s", t0.elapsed().as_secs_f64());
}

/// The team's 300-patient Synthea export (608 MB of gzip NDJSON), all 25 types.
/// Small Parquet files make several parts per big table, as a large export has.
#[test]
fn engines_read_synthea_small() {
    let Some(shared) = common::shared_data("engines_read_synthea_small") else {
        return;
    };
    let input = shared.join("synthea-small/ndjson");
    if !input.is_dir() {
        println!(
            "SKIPPED engines_read_synthea_small: {} absent",
            input.display()
        );
        return;
    }
    let Some(py) = python("engines_read_synthea_small") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let report = convert(
        &input,
        &lake,
        "synthea-small",
        &["--target-file-size", "4MiB"],
    );
    check_lake(&py, &lake, &input, &report, &["--sample", "300"]);
}
