//! End-to-end tests of `fhirlake convert` and `fhirlake to-ndjson`: the real binary, run on
//! temporary folders, checked through the files it writes (Parquet tables, quarantine, run
//! report) and through the NDJSON regenerated from its Parquet.

mod common;

use base64::Engine as _;
use fhirlake::decode::line::canonical_json;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const JOB_ID: &str = "5df064e0e44777861f7a6c2ddf0d5f1b";
const JOB_FOLDER: &str =
    "e3551377288a7ec4bcda3a5e33e18867-FHIR_EXPORT-5df064e0e44777861f7a6c2ddf0d5f1b";
/// A value planted in rejected lines; it must never appear in a reason, a report or a log.
const SECRET: &str = "SECRET-93417-zq";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fhirlake"));
    // A panic would print a backtrace: the usage-error tests look for one.
    c.env("RUST_BACKTRACE", "1");
    c.env_remove("RUST_LOG");
    c
}

fn run_cli<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = bin()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run fhirlake");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `fhirlake convert INPUT --out OUT -q EXTRA...`
fn convert(input: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("convert"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("-q"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    run_cli(args)
}

fn convert_ok(input: &Path, out: &Path, extra: &[&str]) -> Run {
    let r = convert(input, out, extra);
    assert_eq!(r.code, 0, "convert {} failed: {r:?}", input.display());
    r
}

fn report(out: &Path, export_id: &str) -> Value {
    let p = out.join("_runs").join(format!("{export_id}.json"));
    let text = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_slice(&text).unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a count, found {v}"))
}

/// The report's own bookkeeping is consistent, and the output files it lists exist with
/// the sizes and row counts it states.
fn check_report_consistency(out: &Path, rep: &Value) {
    assert_eq!(rep["reconciled"], Value::Bool(true), "not reconciled");
    let files = rep["files"].as_array().unwrap();
    let (mut lines, mut rows, mut rejected) = (0, 0, 0);
    for f in files {
        assert_eq!(
            u(&f["lines"]),
            u(&f["rows"]) + u(&f["rejected"]),
            "file {} does not reconcile",
            f["name"]
        );
        lines += u(&f["lines"]);
        rows += u(&f["rows"]);
        rejected += u(&f["rejected"]);
    }
    let t = &rep["totals"];
    assert_eq!(u(&t["inputFiles"]), files.len() as u64);
    assert_eq!(u(&t["lines"]), lines);
    assert_eq!(u(&t["rows"]), rows);
    assert_eq!(u(&t["rejected"]), rejected);
    let (mut out_files, mut out_bytes, mut table_rows) = (0, 0, 0);
    for (folder, tb) in rep["tables"].as_object().unwrap() {
        let dir = out.join(tb["path"].as_str().unwrap());
        let mut sum = 0;
        for of in tb["outputFiles"].as_array().unwrap() {
            let p = dir.join(of["name"].as_str().unwrap());
            let meta = std::fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{folder}: listed output {} missing: {e}", p.display()));
            assert_eq!(meta.len(), u(&of["bytes"]), "{}", p.display());
            assert_eq!(parquet_rows(&p), u(&of["rows"]), "{}", p.display());
            sum += u(&of["rows"]);
            out_files += 1;
            out_bytes += u(&of["bytes"]);
        }
        assert_eq!(sum, u(&tb["rows"]), "{folder}: rows of its files");
        assert_eq!(
            u(&tb["lines"]),
            u(&tb["rows"]) + u(&tb["rejected"]),
            "{folder}"
        );
        // The published folder holds exactly the files the report lists.
        let listed: BTreeSet<String> = tb["outputFiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect();
        let on_disk: BTreeSet<String> = parquet_files_in(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(listed, on_disk, "{folder}: files on disk vs report");
        table_rows += u(&tb["rows"]);
    }
    assert_eq!(table_rows, rows, "rows of tables vs rows of files");
    assert_eq!(u(&t["outputFiles"]), out_files);
    assert_eq!(u(&t["outputBytes"]), out_bytes);
}

fn parquet_reader(
    p: &Path,
) -> parquet::file::serialized_reader::SerializedFileReader<std::fs::File> {
    let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    parquet::file::serialized_reader::SerializedFileReader::new(f)
        .unwrap_or_else(|e| panic!("{} is not Parquet: {e}", p.display()))
}

fn parquet_rows(p: &Path) -> u64 {
    use parquet::file::reader::FileReader;
    parquet_reader(p).metadata().file_metadata().num_rows() as u64
}

/// `.parquet` files directly in `dir` (not hidden), sorted.
fn parquet_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                !n.starts_with('.') && n.ends_with(".parquet") && p.is_file()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every path under `dir`, at any depth.
fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Parquet files a query engine would see: no hidden (`.`) component below `dest`.
fn visible_parquet(dest: &Path) -> Vec<PathBuf> {
    walk_all(dest)
        .into_iter()
        .filter(|p| {
            p.extension() == Some(OsStr::new("parquet"))
                && p.strip_prefix(dest)
                    .unwrap()
                    .components()
                    .all(|c| !c.as_os_str().to_string_lossy().starts_with('.'))
        })
        .collect()
}

/// Paths under `dest` whose own name is hidden (staging folders, temp files).
fn hidden_entries(dest: &Path) -> Vec<PathBuf> {
    walk_all(dest)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

fn canonical(line: &[u8]) -> String {
    canonical_json(line).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        )
    })
}

fn canonical_sorted<L: AsRef<[u8]>>(lines: &[L]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| canonical(l.as_ref())).collect();
    v.sort();
    v
}

/// Run `to-ndjson INPUT --out OUT` and return, per resource type, the sorted canonical
/// lines it wrote.
fn regenerate(input: &Path, out: &Path) -> BTreeMap<String, Vec<String>> {
    let r = run_cli([
        OsStr::new("to-ndjson"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "to-ndjson {}: {r:?}", input.display());
    let mut by_type = BTreeMap::new();
    for e in std::fs::read_dir(out).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(rt) = name.strip_suffix(".ndjson") else {
            continue;
        };
        let bytes = std::fs::read(&p).unwrap();
        let lines: Vec<&[u8]> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        by_type.insert(rt.to_string(), canonical_sorted(&lines));
    }
    by_type
}

/// Compare regenerated lines with the input's, type by type, with a readable failure.
fn assert_same_resources(
    what: &str,
    expected: &BTreeMap<String, Vec<String>>,
    actual: &BTreeMap<String, Vec<String>>,
) {
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "{what}: resource types regenerated"
    );
    for (rt, exp) in expected {
        let act = &actual[rt];
        assert_eq!(exp.len(), act.len(), "{what}: {rt}: number of resources");
        if exp != act {
            let first = exp
                .iter()
                .zip(act)
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("\nexpected {}\nactual   {}", trunc(a), trunc(b)))
                .unwrap_or_default();
            panic!("{what}: {rt}: regenerated resources differ from the input{first}");
        }
    }
}

fn trunc(s: &str) -> &str {
    let mut end = s.len().min(400);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Join lines with `\n`, with a final newline.
fn ndjson(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn job_dir() -> PathBuf {
    common::fixtures()
        .join("healthlake-sample")
        .join(JOB_FOLDER)
}

/// Per resource type, the lines of every NDJSON file in the sample job folder, and the
/// number of files.
fn sample_by_type() -> BTreeMap<String, (usize, Vec<Vec<u8>>)> {
    let mut by_type: BTreeMap<String, (usize, Vec<Vec<u8>>)> = BTreeMap::new();
    for p in walk_all(&job_dir()) {
        if p.extension() != Some(OsStr::new("ndjson")) {
            continue;
        }
        let rt = p
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let e = by_type.entry(rt).or_default();
        e.0 += 1;
        e.1.extend(common::read_lines(&p));
    }
    assert_eq!(
        by_type.len(),
        13,
        "the committed sample has 13 resource types"
    );
    by_type
}

/// Checks shared by every form of the HealthLake sample: one table per type with one row
/// per input line, nothing rejected, a consistent report, zstd Parquet tagged with its
/// type, and `to-ndjson` giving the input back.
fn check_sample_conversion(
    out: &Path,
    export_id: &str,
    expected: &BTreeMap<String, (usize, Vec<Vec<u8>>)>,
) -> Value {
    use parquet::file::reader::FileReader;
    let rep = report(out, export_id);
    check_report_consistency(out, &rep);
    assert_eq!(rep["exportId"], export_id);
    assert_eq!(rep["status"], "succeeded");
    assert!(rep.get("quarantine").is_none(), "nothing was rejected");
    assert!(!out.join("_quarantine").exists());
    let tables = rep["tables"].as_object().unwrap();
    for (rt, (files, lines)) in expected {
        let tb = tables
            .get(rt)
            .unwrap_or_else(|| panic!("no table {rt} in the report"));
        assert_eq!(tb["resourceType"], rt.as_str());
        assert_eq!(tb["path"], format!("{rt}/export={export_id}"));
        assert_eq!(u(&tb["inputFiles"]), *files as u64, "{rt}: input files");
        assert_eq!(u(&tb["lines"]), lines.len() as u64, "{rt}: lines");
        assert_eq!(u(&tb["rows"]), lines.len() as u64, "{rt}: rows");
        assert_eq!(u(&tb["rejected"]), 0, "{rt}: rejected");
        let dir = out.join(rt).join(format!("export={export_id}"));
        let parts = parquet_files_in(&dir);
        assert!(!parts.is_empty(), "{rt}: no Parquet in {}", dir.display());
        let rows: u64 = parts.iter().map(|p| parquet_rows(p)).sum();
        assert_eq!(rows, lines.len() as u64, "{rt}: rows in Parquet");
        for p in &parts {
            let r = parquet_reader(p);
            let md = r.metadata();
            let kv: BTreeMap<String, Option<String>> = md
                .file_metadata()
                .key_value_metadata()
                .into_iter()
                .flatten()
                .map(|k| (k.key.clone(), k.value.clone()))
                .collect();
            assert_eq!(
                kv.get("fhir.resourceType"),
                Some(&Some(rt.clone())),
                "{}",
                p.display()
            );
            for rg in md.row_groups() {
                for c in rg.columns() {
                    assert!(
                        matches!(c.compression(), parquet::basic::Compression::ZSTD(_)),
                        "{}: default compression is zstd, found {:?}",
                        p.display(),
                        c.compression()
                    );
                }
            }
        }
    }
    let expected_lines: BTreeMap<String, Vec<String>> = expected
        .iter()
        .map(|(rt, (_, l))| (rt.clone(), canonical_sorted(l)))
        .collect();
    let regenerated = regenerate(out, &out.parent().unwrap().join("regenerated"));
    assert_same_resources(export_id, &expected_lines, &regenerated);
    rep
}

fn sample_type_totals(expected: &BTreeMap<String, (usize, Vec<Vec<u8>>)>) -> (usize, usize) {
    (
        expected.values().map(|(f, _)| f).sum(),
        expected.values().map(|(_, l)| l.len()).sum(),
    )
}

// ---------------------------------------------------------------------------------------
// 1. The HealthLake sample, through every kind of input
// ---------------------------------------------------------------------------------------

#[test]
fn healthlake_export_status() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lake");
    let input = common::fixtures().join("healthlake-sample/export-status.json");
    convert_ok(&input, &out, &[]);
    let expected = sample_by_type();
    let rep = check_sample_conversion(&out, JOB_ID, &expected);
    assert_eq!(rep["inputKind"], "healthlake-export-status");
    assert_eq!(rep["jobStatus"], "COMPLETED");
    assert_eq!(rep["transactionTime"], "2024-08-06T18:12:57.000Z");
    let (files, lines) = sample_type_totals(&expected);
    assert_eq!(files, 25);
    assert_eq!(u(&rep["totals"]["inputFiles"]), 25);
    assert_eq!(u(&rep["totals"]["lines"]), lines as u64);
    assert_eq!(rep["tables"].as_object().unwrap().len(), 13);
    // Files are named by their manifest URL, and each one reconciles with its local copy.
    let manifest: Value = serde_json::from_slice(&std::fs::read(&input).unwrap()).unwrap();
    let urls: BTreeSet<&str> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["url"].as_str().unwrap())
        .collect();
    for f in rep["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        assert!(urls.contains(name), "{name} is not a manifest URL");
        assert_eq!(f["role"], "output");
        let local = job_dir().join(
            name.split_once(JOB_FOLDER)
                .unwrap()
                .1
                .trim_start_matches('/'),
        );
        let n = common::read_lines(&local).len() as u64;
        assert_eq!(u(&f["lines"]), n, "{name}");
        assert_eq!(u(&f["rows"]), n, "{name}");
        assert_eq!(u(&f["bytes"]), std::fs::metadata(&local).unwrap().len());
        assert_eq!(f["resourceType"], name.rsplit('/').nth(1).unwrap());
    }
    assert_eq!(rep["deleted"], Value::Array(vec![]));
}

#[test]
fn healthlake_describe_job() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lake");
    let input = common::fixtures().join("healthlake-sample/describe-fhir-export-job.json");
    convert_ok(&input, &out, &[]);
    let expected = sample_by_type();
    let rep = check_sample_conversion(&out, JOB_ID, &expected);
    assert_eq!(rep["inputKind"], "healthlake-describe-job");
    assert_eq!(rep["jobStatus"], "COMPLETED");
    assert_eq!(u(&rep["totals"]["inputFiles"]), 25);
    let prefix = format!("s3://example-bucket/healthlake-output/{JOB_FOLDER}/");
    for f in rep["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        assert!(
            name.starts_with(&prefix),
            "{name} is not named by its S3 URL"
        );
    }
}

#[test]
fn healthlake_bulk_manifest_with_counts_deleted_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lake");
    let sample = common::fixtures().join("healthlake-sample");
    convert_ok(&sample.join("bulk-manifest.json"), &out, &[]);
    let export_id = "2024-08-06T18-12-57.000Z";
    let all = sample_by_type();
    let mut expected: BTreeMap<String, (usize, Vec<Vec<u8>>)> = all
        .into_iter()
        .filter(|(rt, _)| rt == "Condition" || rt == "Patient")
        .collect();
    let errors = common::read_lines(&sample.join("errors/OperationOutcome-1.ndjson"));
    assert_eq!(errors.len(), 1);
    // Checked as a table of its own below; its rows regenerate as OperationOutcome.
    let rep = report(&out, export_id);
    check_report_consistency(&out, &rep);
    assert_eq!(rep["inputKind"], "bulk-data-manifest");
    assert_eq!(rep["transactionTime"], "2024-08-06T18:12:57.000Z");
    let tables: Vec<&String> = rep["tables"].as_object().unwrap().keys().collect();
    assert_eq!(tables, ["Condition", "ExportErrors", "Patient"]);
    let et = &rep["tables"]["ExportErrors"];
    assert_eq!(et["resourceType"], "OperationOutcome");
    assert_eq!(et["path"], format!("ExportErrors/export={export_id}"));
    assert_eq!(u(&et["rows"]), 1);
    let err_dir = out.join("ExportErrors").join(format!("export={export_id}"));
    assert_eq!(
        parquet_files_in(&err_dir)
            .iter()
            .map(|p| parquet_rows(p))
            .sum::<u64>(),
        1
    );
    // Manifest counts are recorded next to what was read, and agree.
    let files = rep["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    let mut counted = 0;
    for f in files {
        let name = f["name"].as_str().unwrap();
        assert!(
            name.starts_with("https://files.example.org/export/"),
            "{name}"
        );
        if f["role"] == "error" {
            assert_eq!(f["resourceType"], "OperationOutcome");
            assert!(name.ends_with("/errors/OperationOutcome-1.ndjson"));
            assert_eq!(u(&f["rows"]), 1);
        } else {
            assert_eq!(f["role"], "output");
            let count = u(&f["manifestCount"]);
            assert_eq!(u(&f["rows"]), count, "{name}: rows vs manifest count");
            assert_eq!(u(&f["lines"]), count, "{name}");
            counted += count;
        }
    }
    assert_eq!(counted, 15 + 15 + 13);
    assert_eq!(
        rep["deleted"],
        serde_json::json!([{
            "url": "https://files.example.org/export/deleted/Bundle-1.ndjson",
            "type": "Bundle"
        }])
    );
    expected.insert("OperationOutcome".into(), (1, errors));
    // Regenerate: Condition, Patient and the OperationOutcome of the error table.
    let regenerated = regenerate(&out, &tmp.path().join("regenerated"));
    let expected_lines: BTreeMap<String, Vec<String>> = expected
        .iter()
        .map(|(rt, (_, l))| (rt.clone(), canonical_sorted(l)))
        .collect();
    assert_same_resources("bulk manifest", &expected_lines, &regenerated);
    for rt in ["Condition", "Patient"] {
        let dir = out.join(rt).join(format!("export={export_id}"));
        let rows: u64 = parquet_files_in(&dir).iter().map(|p| parquet_rows(p)).sum();
        assert_eq!(rows, expected[rt].1.len() as u64, "{rt}");
    }
}

#[test]
fn healthlake_job_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lake");
    convert_ok(&job_dir(), &out, &[]);
    let expected = sample_by_type();
    let rep = check_sample_conversion(&out, JOB_ID, &expected);
    assert_eq!(rep["inputKind"], "folder");
    assert_eq!(u(&rep["totals"]["inputFiles"]), 25);
    assert!(rep.get("jobStatus").is_none());
}

#[test]
fn healthlake_single_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lake");
    let file = job_dir().join("Patient/Patient-1676791340403039662-1-0.ndjson");
    convert_ok(&file, &out, &[]);
    let export_id = "Patient-1676791340403039662-1-0";
    let lines = common::read_lines(&file);
    assert_eq!(lines.len(), 13);
    let expected = BTreeMap::from([("Patient".to_string(), (1, lines))]);
    let rep = check_sample_conversion(&out, export_id, &expected);
    assert_eq!(rep["inputKind"], "file");
    assert_eq!(rep["tables"].as_object().unwrap().len(), 1);
    assert_eq!(u(&rep["totals"]["rows"]), 13);
}

// ---------------------------------------------------------------------------------------
// 2. Synthea bulk data, gzipped
// ---------------------------------------------------------------------------------------

#[test]
fn synthea_small_gzip() {
    let Some(data) = common::shared_data("synthea_small_gzip") else {
        return;
    };
    let input = data.join("synthea-small/ndjson");
    if !input.is_dir() {
        println!("SKIPPED synthea_small_gzip: {} absent", input.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lake");
    let t0 = Instant::now();
    convert_ok(&input, &out, &[]);
    eprintln!(
        "synthea-small: converted in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // What the files hold, counted here (decompressed on as many threads as there are).
    let mut gz: Vec<PathBuf> = std::fs::read_dir(&input)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".ndjson.gz"))
        .collect();
    gz.sort();
    assert_eq!(gz.len(), 25);
    let counts: Vec<(String, u64, u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = gz
            .iter()
            .map(|p| {
                s.spawn(move || {
                    let raw = std::fs::read(p).unwrap();
                    let text = gunzip(&raw);
                    let lines = text
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .count();
                    let rt = p
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .split('.')
                        .next()
                        .unwrap()
                        .to_string();
                    (rt, raw.len() as u64, text.len() as u64, lines as u64)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let rep = report(&out, "ndjson");
    check_report_consistency(&out, &rep);
    assert_eq!(rep["status"], "succeeded");
    let t = &rep["totals"];
    assert_eq!(u(&t["lines"]), 623_364);
    assert_eq!(u(&t["rows"]), 623_364);
    assert_eq!(u(&t["rejected"]), 0);
    assert_eq!(u(&t["inputFiles"]), 25);
    let ndjson_bytes: u64 = counts.iter().map(|c| c.2).sum();
    assert_eq!(u(&t["ndjsonBytes"]), ndjson_bytes);
    assert!(ndjson_bytes > 600_000_000, "{ndjson_bytes}");
    let files = rep["files"].as_array().unwrap();
    let tables = rep["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 25);
    for (rt, bytes, ndjson_bytes, lines) in &counts {
        let f = files
            .iter()
            .find(|f| f["resourceType"] == rt.as_str())
            .unwrap_or_else(|| panic!("{rt} missing from the report"));
        assert_eq!(u(&f["bytes"]), *bytes, "{rt}: bytes on disk");
        assert_eq!(
            u(&f["ndjsonBytes"]),
            *ndjson_bytes,
            "{rt}: bytes decompressed"
        );
        assert_eq!(u(&f["lines"]), *lines, "{rt}: lines");
        assert_eq!(u(&f["rows"]), *lines, "{rt}: rows");
        let dir = out.join(rt).join("export=ndjson");
        let rows: u64 = parquet_files_in(&dir).iter().map(|p| parquet_rows(p)).sum();
        assert_eq!(rows, *lines, "{rt}: rows in Parquet");
        assert_eq!(u(&tables[rt.as_str()]["rows"]), *lines);
    }

    // The small tables regenerate exactly.
    let regen = tmp.path().join("regenerated");
    let mut expected = BTreeMap::new();
    let mut actual = BTreeMap::new();
    for rt in [
        "Patient",
        "Organization",
        "Practitioner",
        "Location",
        "AllergyIntolerance",
        "Goal",
    ] {
        let lines = common::read_lines(&input.join(format!("{rt}.ndjson.gz")));
        expected.insert(rt.to_string(), canonical_sorted(&lines));
        let got = regenerate(&out.join(rt), &regen.join(rt));
        actual.insert(rt.to_string(), got[rt].clone());
    }
    assert_same_resources("synthea", &expected, &actual);
}

// ---------------------------------------------------------------------------------------
// 3. Every R4 example
// ---------------------------------------------------------------------------------------

#[test]
fn r4_examples_every_type() {
    let Some(data) = common::shared_data("r4_examples_every_type") else {
        return;
    };
    let input = data.join("r4-examples/ndjson");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lake");
    convert_ok(&input, &out, &[]);
    let rep = report(&out, "ndjson");
    check_report_consistency(&out, &rep);
    let t = &rep["totals"];
    assert_eq!(u(&t["lines"]), 5_293);
    assert_eq!(u(&t["rows"]), 5_293);
    assert_eq!(u(&t["rejected"]), 0);
    let tables = rep["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 140);
    let mut expected = BTreeMap::new();
    for e in std::fs::read_dir(&input).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let Some(rt) = name.strip_suffix(".ndjson") else {
            continue;
        };
        let lines = common::read_lines(&p);
        let tb = tables
            .get(rt)
            .unwrap_or_else(|| panic!("no table for {name}"));
        assert_eq!(u(&tb["rows"]), lines.len() as u64, "{rt}");
        assert_eq!(u(&tb["rejected"]), 0, "{rt}");
        let dir = out.join(rt).join("export=ndjson");
        let rows: u64 = parquet_files_in(&dir).iter().map(|p| parquet_rows(p)).sum();
        assert_eq!(rows, lines.len() as u64, "{rt}: rows in Parquet");
        expected.insert(rt.to_string(), canonical_sorted(&lines));
    }
    assert_eq!(expected.len(), 140);
    let regenerated = regenerate(&out, &tmp.path().join("regenerated"));
    assert_same_resources("R4 examples", &expected, &regenerated);
}

// ---------------------------------------------------------------------------------------
// 4. Malformed lines: quarantine, reconciliation, --max-rejected
// ---------------------------------------------------------------------------------------

/// A line of a test file: its bytes, and for a bad line the expected reason (a part of
/// it) and resource id in the quarantine.
struct TestLine {
    raw: Vec<u8>,
    bad: Option<(&'static str, Option<&'static str>)>,
}

fn good(raw: String) -> TestLine {
    TestLine {
        raw: raw.into_bytes(),
        bad: None,
    }
}

fn bad(raw: impl Into<Vec<u8>>, reason: &'static str, id: Option<&'static str>) -> TestLine {
    TestLine {
        raw: raw.into(),
        bad: Some((reason, id)),
    }
}

fn patient(id: &str) -> String {
    format!(
        r#"{{"resourceType":"Patient","id":"{id}","active":true,"gender":"female","birthDate":"1970-02-03","name":[{{"family":"Fam{id}","given":["A","B"]}}],"multipleBirthInteger":2}}"#
    )
}

fn observation(id: &str, value: &str) -> String {
    format!(
        r#"{{"resourceType":"Observation","id":"{id}","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"8867-4"}}]}},"subject":{{"reference":"Patient/p1"}},"effectiveDateTime":"2020-01-02T10:00:00+01:00","valueQuantity":{{"value":{value},"unit":"/min"}}}}"#
    )
}

/// Writes the malformed-lines export: returns (folder, files as (name, lines)).
fn malformed_export(root: &Path) -> (PathBuf, Vec<(&'static str, Vec<TestLine>)>) {
    let s = SECRET;
    let mut invalid_utf8 =
        br#"{"resourceType":"Patient","id":"utf","gender":"female","name":[{"family":""#.to_vec();
    invalid_utf8.extend_from_slice(b"\xff\xfe\xc3");
    invalid_utf8.extend_from_slice(s.as_bytes());
    invalid_utf8.extend_from_slice(br#""}]}"#);
    let p1 = vec![
        good(patient("p1")),
        bad(
            format!(r#"{{"resourceType":"Patient","id":"nj","name":[{{"family":"{s}""#),
            "not valid JSON",
            // The id is found by a shallow scan even though the line does not parse.
            Some("nj"),
        ),
        bad(
            format!(r#"["{s}"]"#),
            "not a JSON object (found array)",
            None,
        ),
        bad(
            format!(r#"{{"id":"mr","gender":"{s}"}}"#),
            "missing resourceType",
            Some("mr"),
        ),
        bad(
            format!(r#"{{"resourceType":"Observation","id":"wr","status":"{s}"}}"#),
            "resourceType is Observation, expected Patient",
            Some("wr"),
        ),
        bad(
            format!(r#"{{"resourceType":"Patient","id":"uk","name":[{{"nickname":"{s}"}}]}}"#),
            "Patient.name.nickname: unknown element",
            Some("uk"),
        ),
        bad(
            format!(r#"{{"resourceType":"Patient","id":"wt","active":"{s}"}}"#),
            "Patient.active: expected boolean, found string",
            Some("wt"),
        ),
        bad(
            format!(r#"{{"resourceType":"Patient","id":"nl","gender":null,"birthDate":"{s}"}}"#),
            "Patient.gender: null",
            Some("nl"),
        ),
        bad(
            format!(r#"{{"resourceType":"Patient","id":"ea","name":[],"birthDate":"{s}"}}"#),
            "Patient.name: empty array",
            Some("ea"),
        ),
        bad(
            format!(
                r#"{{"resourceType":"Patient","id":"eo","maritalStatus":{{}},"birthDate":"{s}"}}"#
            ),
            "Patient.maritalStatus: empty object",
            Some("eo"),
        ),
        bad(
            format!(r#"{{"resourceType":"Patient","id":"dk","gender":"{s}","gender":"male"}}"#),
            "Patient.gender: property appears twice",
            Some("dk"),
        ),
        bad("", "empty line", None),
        good(patient("p2")),
        bad(" \t  ", "empty line", None),
        bad(invalid_utf8, "invalid UTF-8", Some("utf")),
        bad(
            format!(
                r#"{{"resourceType":"Patient","id":"wn","multipleBirthInteger":1.5,"gender":"{s}"}}"#
            ),
            "Patient.multipleBirthInteger: expected integer",
            Some("wn"),
        ),
        good(patient("p3")),
    ];
    let p2 = vec![
        good(patient("p4")),
        bad("42", "not a JSON object (found number)", None),
        good(patient("p5")),
        bad(
            format!(r#"{{"resourceType":"Patient","id":"wa","gender":["{s}"]}}"#),
            "Patient.gender: expected string, found array",
            Some("wa"),
        ),
        good(patient("p6")),
    ];
    let o1 = vec![
        good(observation("o1", "6.3000")),
        bad(
            format!(
                r#"{{"resourceType":"Observation","id":"ov","status":"final","code":{{"text":"x"}},"valueQuantity":{{"value":"{s}"}}}}"#
            ),
            "Observation.valueQuantity.value: expected number, found string",
            Some("ov"),
        ),
        good(observation("o2", "1e2")),
        bad(
            format!(r#"{{"resourceType":"{s}","id":"rt"}}"#),
            "resourceType",
            Some("rt"),
        ),
        bad("null", "not a JSON object (found null)", None),
        bad("{}", "missing resourceType", None),
        good(observation("o3", "-0.5")),
    ];
    // A larger file, so that bad lines sit in later chunks (1 MiB chunks with
    // --memory-limit 64MiB) and their numbers must carry across chunk boundaries.
    let mut p3 = Vec::new();
    for i in 1..=30_000u32 {
        match i {
            9_999 | 21_111 => p3.push(bad(
                format!(r#"{{"resourceType":"Patient","id":"deep{i}","birthDate":1970,"name":[{{"text":"{s}"}}]}}"#),
                "Patient.birthDate: expected string, found number",
                if i == 9_999 { Some("deep9999") } else { Some("deep21111") },
            )),
            30_000 => p3.push(bad("{", "not valid JSON", None)),
            _ => p3.push(good(patient(&format!("big{i}")))),
        }
    }
    let dir = root.join("badexport");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    let files = vec![
        ("Patient-1.ndjson", p1),
        ("nested/Patient-2.ndjson.gz", p2),
        ("Observation-1.ndjson", o1),
        ("Patient-3.ndjson", p3),
    ];
    for (name, lines) in &files {
        let raw: Vec<Vec<u8>> = lines.iter().map(|l| l.raw.clone()).collect();
        let mut bytes = ndjson(&raw);
        if name.starts_with("Observation") {
            bytes.pop(); // no final newline
        }
        if name.ends_with(".gz") {
            bytes = gzip(&bytes);
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    (dir, files)
}

fn quarantine_records(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("quarantine line {l}: {e}")))
        .collect()
}

#[test]
fn malformed_lines_are_quarantined_and_reconciled() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, files) = malformed_export(tmp.path());
    let out = tmp.path().join("lake");
    let export_id = "badexport";

    // Default --max-rejected 0: exit 3, but everything is committed. Not quiet, so that
    // the progress and summary output are checked for the secret too.
    let run = run_cli([
        OsStr::new("convert"),
        input.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
        OsStr::new("--memory-limit"),
        OsStr::new("64MiB"),
    ]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "{run:?}"
    );
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    let last = run.stderr.trim_end().lines().last().unwrap_or_default();
    assert!(last.contains("rejected"), "last stderr line: {last}");

    let rep = report(&out, export_id);
    check_report_consistency(&out, &rep);
    let rep_text = std::fs::read_to_string(out.join("_runs/badexport.json")).unwrap();
    assert!(
        !rep_text.contains(SECRET),
        "the run report contains resource data"
    );
    assert_eq!(rep["status"], "rejected-over-threshold");
    assert_eq!(rep["quarantine"], format!("_quarantine/export={export_id}"));

    // Per file: exact lines, rows and rejected.
    let mut expected_rows: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    let mut expected_bad: BTreeSet<(String, u64)> = BTreeSet::new();
    let (mut total_lines, mut total_bad) = (0u64, 0u64);
    for (name, lines) in &files {
        let rt = if name.starts_with("Observation") {
            "Observation"
        } else {
            "Patient"
        };
        let n_bad = lines.iter().filter(|l| l.bad.is_some()).count() as u64;
        let f = rep["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"].as_str().unwrap().ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} missing from the report"));
        assert_eq!(f["resourceType"], rt);
        assert_eq!(u(&f["lines"]), lines.len() as u64, "{name}: lines");
        assert_eq!(u(&f["rejected"]), n_bad, "{name}: rejected");
        assert_eq!(u(&f["rows"]), lines.len() as u64 - n_bad, "{name}: rows");
        total_lines += lines.len() as u64;
        total_bad += n_bad;
        for (i, l) in lines.iter().enumerate() {
            match l.bad {
                None => expected_rows.entry(rt).or_default().push(&l.raw),
                Some(_) => {
                    expected_bad.insert((name.to_string(), i as u64 + 1));
                }
            }
        }
    }
    assert_eq!(u(&rep["totals"]["lines"]), total_lines);
    assert_eq!(u(&rep["totals"]["rejected"]), total_bad);
    assert_eq!(
        (total_lines, total_bad),
        (17 + 5 + 7 + 30_000, 14 + 2 + 4 + 3)
    );

    // Quarantine: one record per bad line, naming file, 1-based line, id and reason, with
    // the raw line as it was.
    let qdir = out.join("_quarantine").join(format!("export={export_id}"));
    let mut seen: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut q_names: Vec<String> = std::fs::read_dir(&qdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    q_names.sort();
    assert_eq!(q_names, ["Observation.ndjson", "Patient.ndjson"]);
    for q in &q_names {
        let text = std::fs::read_to_string(qdir.join(q)).unwrap();
        for rec in quarantine_records(&qdir.join(q)) {
            let file = rec["file"].as_str().unwrap();
            let line = u(&rec["line"]);
            let (name, lines) = files
                .iter()
                .find(|(n, _)| file.ends_with(&format!("/{n}")))
                .unwrap_or_else(|| panic!("quarantine names an unknown file {file}"));
            assert!(line >= 1 && line <= lines.len() as u64, "{file}:{line}");
            let tl = &lines[line as usize - 1];
            let Some((reason_part, id)) = tl.bad else {
                panic!("{name}:{line} is a good line but was quarantined: {rec}");
            };
            let rt = q.strip_suffix(".ndjson").unwrap();
            assert_eq!(rec["resourceType"], rt, "{name}:{line}");
            let reason = rec["reason"].as_str().unwrap();
            assert!(
                reason.contains(reason_part),
                "{name}:{line}: reason `{reason}` should contain `{reason_part}`"
            );
            assert!(
                !reason.contains(SECRET),
                "{name}:{line}: reason leaks data: {reason}"
            );
            match id {
                Some(id) => assert_eq!(rec["id"], id, "{name}:{line}"),
                None => assert!(rec["id"].is_null(), "{name}:{line}: id {}", rec["id"]),
            }
            let raw = match (rec.get("raw"), rec.get("rawBase64")) {
                (Some(r), None) => r.as_str().unwrap().as_bytes().to_vec(),
                (None, Some(b)) => {
                    assert!(
                        std::str::from_utf8(&tl.raw).is_err(),
                        "{name}:{line}: rawBase64 for a UTF-8 line"
                    );
                    base64::engine::general_purpose::STANDARD
                        .decode(b.as_str().unwrap())
                        .unwrap()
                }
                other => panic!("{name}:{line}: raw/rawBase64: {other:?}"),
            };
            assert_eq!(raw, tl.raw, "{name}:{line}: raw text not preserved");
            assert!(seen.insert((name.to_string(), line)), "{name}:{line} twice");
        }
        // Everything but raw is free of the secret (raw is the line itself, by design).
        for rec in quarantine_records(&qdir.join(q)) {
            let mut r = rec.clone();
            r.as_object_mut().unwrap().remove("raw");
            r.as_object_mut().unwrap().remove("rawBase64");
            assert!(!r.to_string().contains(SECRET), "{r}");
        }
        assert!(!text.is_empty());
    }
    assert_eq!(seen, expected_bad, "quarantined lines vs bad lines");

    // The good lines, and only they, are rows, and regenerate exactly.
    let regenerated = regenerate(&out, &tmp.path().join("regenerated"));
    let expected: BTreeMap<String, Vec<String>> = expected_rows
        .iter()
        .map(|(rt, l)| (rt.to_string(), canonical_sorted(l)))
        .collect();
    assert_same_resources("malformed", &expected, &regenerated);

    // Limits: the rejected lines are 23 of 30,029 (0.0766%).
    for (limit, code) in [
        ("100%", 0),
        ("0.08%", 0),
        ("0.07%", 3),
        ("23", 0),
        ("22", 3),
        ("1000000", 0),
    ] {
        let r = convert(&input, &out, &["--max-rejected", limit]);
        assert_eq!(r.code, code, "--max-rejected {limit}: {r:?}");
        let rep = report(&out, export_id);
        check_report_consistency(&out, &rep);
        assert_eq!(
            rep["status"],
            if code == 0 {
                "succeeded"
            } else {
                "rejected-over-threshold"
            },
            "--max-rejected {limit}"
        );
        // Committed either way, quarantine included.
        assert_eq!(u(&rep["totals"]["rejected"]), total_bad);
        assert_eq!(
            quarantine_records(&qdir.join("Patient.ndjson")).len()
                + quarantine_records(&qdir.join("Observation.ndjson")).len(),
            total_bad as usize
        );
        let rows: u64 = parquet_files_in(&out.join("Patient").join("export=badexport"))
            .iter()
            .map(|p| parquet_rows(p))
            .sum();
        assert_eq!(rows, expected_rows["Patient"].len() as u64);
    }

    // Fixed input, same export: the stale quarantine goes away.
    for (name, lines) in &files {
        let raw: Vec<Vec<u8>> = lines
            .iter()
            .filter(|l| l.bad.is_none())
            .map(|l| l.raw.clone())
            .collect();
        let mut bytes = ndjson(&raw);
        if name.ends_with(".gz") {
            bytes = gzip(&bytes);
        }
        std::fs::write(input.join(name), bytes).unwrap();
    }
    convert_ok(&input, &out, &[]);
    let rep = report(&out, export_id);
    check_report_consistency(&out, &rep);
    assert_eq!(u(&rep["totals"]["rejected"]), 0);
    assert!(rep.get("quarantine").is_none());
    assert!(
        !qdir.exists(),
        "stale quarantine left in {}",
        qdir.display()
    );
    assert!(
        hidden_entries(&out).is_empty(),
        "{:?}",
        hidden_entries(&out)
    );
}

#[test]
fn max_rejected_count_is_an_inclusive_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("two");
    std::fs::create_dir_all(&input).unwrap();
    let mut lines: Vec<Vec<u8>> = (0..8)
        .map(|i| patient(&format!("q{i}")).into_bytes())
        .collect();
    lines.insert(3, b"not json".to_vec());
    lines.push(br#"{"resourceType":"Patient","id":"x","foo":1}"#.to_vec());
    std::fs::write(input.join("Patient.ndjson"), ndjson(&lines)).unwrap();
    let out = tmp.path().join("lake");
    // Two rejected lines: allowed by --max-rejected 2, not by 1.
    let r = convert(&input, &out, &["--max-rejected", "2"]);
    assert_eq!(r.code, 0, "2 rejected, --max-rejected 2: {r:?}");
    let rep = report(&out, "two");
    assert_eq!(u(&rep["totals"]["rejected"]), 2);
    assert_eq!(u(&rep["totals"]["rows"]), 8);
    assert_eq!(rep["status"], "succeeded");
    assert_eq!(rep["quarantine"], "_quarantine/export=two");
    assert_eq!(
        quarantine_records(&out.join("_quarantine/export=two/Patient.ndjson")).len(),
        2
    );
    let r = convert(&input, &out, &["--max-rejected", "1"]);
    assert_eq!(r.code, 3, "2 rejected, --max-rejected 1: {r:?}");
    // A third rejected line: over --max-rejected 2.
    lines.push(b"[]".to_vec());
    std::fs::write(input.join("Patient.ndjson"), ndjson(&lines)).unwrap();
    let r = convert(&input, &out, &["--max-rejected", "2"]);
    assert_eq!(r.code, 3, "3 rejected, --max-rejected 2: {r:?}");
    assert!(r.stderr.contains("3 of 11 lines rejected"), "{r:?}");
    let rep = report(&out, "two");
    assert_eq!(rep["status"], "rejected-over-threshold");
    assert_eq!(u(&rep["totals"]["rows"]), 8);
    assert_eq!(
        parquet_files_in(&out.join("Patient/export=two"))
            .iter()
            .map(|p| parquet_rows(p))
            .sum::<u64>(),
        8
    );
    // Exactly at a percentage is within it: 3 of 11 is 27.27…%.
    assert_eq!(convert(&input, &out, &["--max-rejected", "27.3%"]).code, 0);
    assert_eq!(convert(&input, &out, &["--max-rejected", "27.2%"]).code, 3);
}

/// Two JSON values on one line: the reason says so (README: `more than one JSON value on
/// the line`), rather than an internal parser error name.
#[test]
fn two_json_values_on_one_line_have_a_precise_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("trail");
    std::fs::create_dir_all(&input).unwrap();
    let lines = vec![
        patient("a").into_bytes(),
        format!(
            r#"{{"resourceType":"Patient","id":"b"}} {{"resourceType":"Patient","id":"{SECRET}"}}"#
        )
        .into_bytes(),
    ];
    std::fs::write(input.join("Patient.ndjson"), ndjson(&lines)).unwrap();
    let out = tmp.path().join("lake");
    let r = convert(&input, &out, &[]);
    assert_eq!(r.code, 3, "{r:?}");
    let recs = quarantine_records(&out.join("_quarantine/export=trail/Patient.ndjson"));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["line"], 2);
    let reason = recs[0]["reason"].as_str().unwrap();
    assert!(!reason.contains(SECRET));
    assert!(
        reason.contains("more than one JSON value"),
        "imprecise reason for trailing data: `{reason}`"
    );
}

// ---------------------------------------------------------------------------------------
// 5. Edge files: empty, CRLF, no final newline, a huge line, deep nesting
// ---------------------------------------------------------------------------------------

fn ids_in_table(dir: &Path) -> Vec<String> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    let mut ids = Vec::new();
    for p in parquet_files_in(dir) {
        let f = std::fs::File::open(&p).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let col = batch.column_by_name("id").expect("an id column");
            let s = col.as_string::<i32>();
            for i in 0..s.len() {
                ids.push(s.value(i).to_string());
            }
        }
    }
    ids
}

#[test]
fn empty_files_crlf_and_missing_final_newline() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("edges");
    std::fs::create_dir_all(&input).unwrap();
    // 0 bytes, as in a type table and as the only file of a type.
    std::fs::write(input.join("Patient-empty.ndjson"), b"").unwrap();
    std::fs::write(input.join("Encounter-empty.ndjson"), b"").unwrap();
    std::fs::write(input.join("Condition-empty.ndjson.gz"), gzip(b"")).unwrap();
    // CRLF, including a rejected line and a blank CRLF line.
    let crlf = [
        patient("c1"),
        r#"{"resourceType":"Patient","id":"c2","gender":"male"}"#.to_string(),
        r#"{"resourceType":"Patient","id":"cbad","gender":"male","x":1}"#.to_string(),
        String::new(),
        r#"{"resourceType":"Patient","id":"c3","name":[{"text":"end"}]}"#.to_string(),
    ];
    let mut crlf_bytes = crlf.join("\r\n").into_bytes();
    crlf_bytes.extend_from_slice(b"\r\n");
    std::fs::write(input.join("Patient-crlf.ndjson"), &crlf_bytes).unwrap();
    // CRLF without a final line end, gzipped.
    let crlf2 = format!("{}\r\n{}", patient("g1"), patient("g2"));
    std::fs::write(
        input.join("Patient-crlf2.ndjson.gz"),
        gzip(crlf2.as_bytes()),
    )
    .unwrap();
    // LF without a final newline.
    let nofinal = format!("{}\n{}", patient("n1"), patient("n2"));
    std::fs::write(input.join("Patient-nofinal.ndjson"), nofinal.as_bytes()).unwrap();

    let out = tmp.path().join("lake");
    let r = convert(&input, &out, &["--max-rejected", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rep = report(&out, "edges");
    check_report_consistency(&out, &rep);
    let file = |suffix: &str| -> (u64, u64, u64) {
        let f = rep["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} missing"));
        (u(&f["lines"]), u(&f["rows"]), u(&f["rejected"]))
    };
    assert_eq!(file("/Patient-empty.ndjson"), (0, 0, 0));
    assert_eq!(file("/Encounter-empty.ndjson"), (0, 0, 0));
    assert_eq!(file("/Condition-empty.ndjson.gz"), (0, 0, 0));
    assert_eq!(file("/Patient-crlf.ndjson"), (5, 3, 2));
    assert_eq!(file("/Patient-crlf2.ndjson.gz"), (2, 2, 0));
    assert_eq!(file("/Patient-nofinal.ndjson"), (2, 2, 0));
    assert_eq!(u(&rep["tables"]["Encounter"]["rows"]), 0);
    assert_eq!(u(&rep["tables"]["Patient"]["rows"]), 7);

    // Values do not keep the \r: ids as written, and the rows regenerate to the lines.
    let mut ids = ids_in_table(&out.join("Patient/export=edges"));
    ids.sort();
    assert_eq!(ids, ["c1", "c2", "c3", "g1", "g2", "n1", "n2"]);
    let regenerated = regenerate(&out, &tmp.path().join("regenerated"));
    let lines: Vec<String> = vec![
        patient("c1"),
        crlf[1].clone(),
        crlf[4].clone(),
        patient("g1"),
        patient("g2"),
        patient("n1"),
        patient("n2"),
    ];
    let expected = BTreeMap::from([("Patient".to_string(), canonical_sorted(&lines))]);
    assert_same_resources("edges", &expected, &regenerated);
    for text in regenerated["Patient"].iter() {
        assert!(!text.contains('\r'), "{text}");
    }
    // The quarantined CRLF lines: right numbers, raw text without the \r.
    let recs = quarantine_records(&out.join("_quarantine/export=edges/Patient.ndjson"));
    let got: Vec<(u64, String, String)> = recs
        .iter()
        .map(|r| {
            (
                u(&r["line"]),
                r["raw"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].0, got[0].1.as_str()), (3, crlf[2].as_str()));
    assert!(
        got[0].2.contains("Patient.x: unknown element"),
        "{}",
        got[0].2
    );
    assert_eq!(
        (got[1].0, got[1].1.as_str(), got[1].2.as_str()),
        (4, "", "empty line")
    );
}

/// A file holding nothing but a line end (LF or CRLF) holds no resource: it is an empty
/// file, not a rejected line.
#[test]
fn a_file_of_only_a_line_end_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("newline");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("Patient-a.ndjson"),
        format!("{}\n", patient("a")),
    )
    .unwrap();
    std::fs::write(input.join("Patient-lf.ndjson"), b"\n").unwrap();
    std::fs::write(input.join("Patient-crlf.ndjson"), b"\r\n").unwrap();
    let out = tmp.path().join("lake");
    let r = convert(&input, &out, &[]);
    let rep = report(&out, "newline");
    check_report_consistency(&out, &rep);
    assert_eq!(u(&rep["totals"]["rows"]), 1);
    assert_eq!(
        u(&rep["totals"]["rejected"]),
        0,
        "a file of only a line end counted as a rejected empty line: {}",
        rep["files"]
    );
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn a_40_mb_line_converts_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("huge");
    std::fs::create_dir_all(&input).unwrap();
    // 40 MB of base64 that does not compress to nothing.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut data = Vec::with_capacity(40_000_000);
    let mut x: u64 = 0x2545F4914F6CDD1D;
    while data.len() < 40_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push(ALPHABET[(x & 63) as usize]);
    }
    let data = String::from_utf8(data).unwrap();
    let lines = vec![
        r#"{"resourceType":"Binary","id":"before","contentType":"text/plain","data":"QQ=="}"#
            .to_string(),
        format!(
            r#"{{"resourceType":"Binary","id":"huge","contentType":"application/octet-stream","data":"{data}"}}"#
        ),
        r#"{"resourceType":"Binary","id":"after","contentType":"text/plain"}"#.to_string(),
    ];
    std::fs::write(input.join("Binary.ndjson"), lines.join("\n") + "\n").unwrap();
    let out = tmp.path().join("lake");
    // A small memory limit: the line is 40 times the chunk size.
    convert_ok(&input, &out, &["--memory-limit", "64MiB"]);
    let rep = report(&out, "huge");
    check_report_consistency(&out, &rep);
    assert_eq!(u(&rep["tables"]["Binary"]["rows"]), 3);
    assert_eq!(u(&rep["files"][0]["lines"]), 3);
    let regen = tmp.path().join("regenerated");
    let r = run_cli([
        OsStr::new("to-ndjson"),
        out.join("Binary").as_os_str(),
        OsStr::new("--out"),
        regen.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let text = std::fs::read_to_string(regen.join("Binary.ndjson")).unwrap();
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), 3);
    let mut got_c: Vec<String> = got.iter().map(|l| canonical(l.as_bytes())).collect();
    got_c.sort();
    assert!(
        got_c == canonical_sorted(&lines),
        "the 40 MB Binary did not round-trip"
    );
}

fn nested_questionnaire(id: &str, depth: usize) -> String {
    let mut item = r#"{"linkId":"leaf","text":"How?","type":"string"}"#.to_string();
    for d in 0..depth {
        item = format!(r#"{{"linkId":"g{d}","type":"group","item":[{item}]}}"#);
    }
    format!(r#"{{"resourceType":"Questionnaire","id":"{id}","status":"active","item":[{item}]}}"#)
}

/// Converts a Questionnaire nested `depth` groups deep (plus a flat one) with
/// `--max-rejected 1`; the run must complete. Returns (dest, lines, rows).
fn convert_nested(root: &Path, depth: usize) -> (PathBuf, Vec<String>, u64) {
    let input = root.join(format!("deep{depth}"));
    std::fs::create_dir_all(&input).unwrap();
    let lines = vec![
        r#"{"resourceType":"Questionnaire","id":"flat","status":"draft"}"#.to_string(),
        nested_questionnaire("deep", depth),
    ];
    std::fs::write(input.join("Questionnaire.ndjson"), lines.join("\n") + "\n").unwrap();
    let out = root.join(format!("lake{depth}"));
    let r = convert(&input, &out, &["--max-rejected", "1"]);
    assert_eq!(r.code, 0, "depth {depth}: the run must complete: {r:?}");
    let rep = report(&out, &format!("deep{depth}"));
    check_report_consistency(&out, &rep);
    let rows = u(&rep["tables"]["Questionnaire"]["rows"]);
    (out, lines, rows)
}

/// Items nested 31 levels deep (30 groups and a question): converted, and the Parquet
/// regenerates the resource (fhirlake's tables are as deep as their data).
#[test]
fn deeply_nested_questionnaire_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, lines, rows) = convert_nested(tmp.path(), 30);
    assert_eq!(rows, 2);
    let regenerated = regenerate(&out, &tmp.path().join("regenerated"));
    let expected = BTreeMap::from([("Questionnaire".to_string(), canonical_sorted(&lines))]);
    assert_same_resources("depth 30", &expected, &regenerated);
}

/// An extreme depth (150 nested groups) may be converted or rejected with a reason, but
/// must not crash the run.
#[test]
fn extremely_nested_questionnaire_does_not_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, lines, rows) = convert_nested(tmp.path(), 150);
    if rows == 2 {
        let regenerated = regenerate(&out, &tmp.path().join("regenerated"));
        let expected = BTreeMap::from([("Questionnaire".to_string(), canonical_sorted(&lines))]);
        assert_same_resources("depth 150", &expected, &regenerated);
    } else {
        assert_eq!(rows, 1);
        let recs = quarantine_records(&out.join("_quarantine/export=deep150/Questionnaire.ndjson"));
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["line"], 2);
        assert_eq!(recs[0]["id"], "deep");
        assert!(!recs[0]["reason"].as_str().unwrap().is_empty());
    }
}

// ---------------------------------------------------------------------------------------
// 6. Interrupted runs and re-runs
// ---------------------------------------------------------------------------------------

const BIG_OBSERVATIONS: usize = 300_000;
const BIG_PATIENTS: usize = 200_000;

fn write_big_export(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut w =
        std::io::BufWriter::new(std::fs::File::create(dir.join("Observation.ndjson")).unwrap());
    for i in 0..BIG_OBSERVATIONS {
        writeln!(
            w,
            r#"{{"resourceType":"Observation","id":"o{:016x}","status":"final","code":{{"coding":[{{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}}]}},"subject":{{"reference":"Patient/p{}"}},"effectiveDateTime":"2020-01-{:02}T10:00:00Z","valueQuantity":{{"value":{}.5,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}}}"#,
            // Scattered ids, as real exports have (UUIDs): sequential ones compress to
            // almost nothing and the table would fit one 1 MiB file.
            (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            i % 1000,
            i % 28 + 1,
            i % 200
        )
        .unwrap();
    }
    w.flush().unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("Patient.ndjson")).unwrap());
    for i in 0..BIG_PATIENTS {
        writeln!(
            w,
            r#"{{"resourceType":"Patient","id":"p{i}","gender":"female","birthDate":"1970-01-01","name":[{{"family":"F{i}","given":["G"]}}]}}"#
        )
        .unwrap();
    }
    w.flush().unwrap();
}

/// (file name, inode, size) of the visible Parquet files of a partition.
fn partition_files(dir: &Path) -> BTreeSet<(String, u64, u64)> {
    parquet_files_in(dir)
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                m.ino(),
                m.len(),
            )
        })
        .collect()
}

const BIG_ARGS: [&str; 6] = [
    "--threads",
    "1",
    "--memory-limit",
    "64MiB",
    "--target-file-size",
    "1MiB",
];

/// Start a conversion and SIGKILL it once its first table has a Parquet file in its hidden
/// staging folder.
fn start_and_kill(input: &Path, out: &Path) {
    let mut child = bin()
        .arg("convert")
        .arg(input)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(BIG_ARGS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the conversion finished ({status}) before it could be interrupted");
        }
        let staged = walk_all(out).into_iter().any(|p| {
            let s = p.to_string_lossy();
            s.contains("/.export=big.staging-") && s.ends_with(".parquet")
        });
        if staged {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no staging file after 60 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed run reported success");
}

fn table_rows(dir: &Path) -> u64 {
    parquet_files_in(dir).iter().map(|p| parquet_rows(p)).sum()
}

#[test]
fn interrupted_run_leaves_nothing_visible_and_reruns_replace() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("big");
    write_big_export(&input);
    let out = tmp.path().join("lake");
    let obs = out.join("Observation/export=big");
    let pat = out.join("Patient/export=big");

    // 1. Killed with no earlier run: nothing visible, no report.
    start_and_kill(&input, &out);
    assert!(
        !hidden_entries(&out).is_empty(),
        "the killed run left no staging folder: was it killed mid-run?"
    );
    assert_eq!(
        visible_parquet(&out),
        Vec::<PathBuf>::new(),
        "visible files of an unfinished run"
    );
    assert!(!obs.exists() && !pat.exists());
    assert!(
        !out.join("_runs/big.json").exists(),
        "report of an unfinished run"
    );

    // 2. A complete run: exact rows, no duplicates, no leftovers.
    convert_ok(&input, &out, &BIG_ARGS);
    let check_complete = |what: &str| {
        assert_eq!(
            table_rows(&obs),
            BIG_OBSERVATIONS as u64,
            "{what}: Observation rows"
        );
        assert_eq!(
            table_rows(&pat),
            BIG_PATIENTS as u64,
            "{what}: Patient rows"
        );
        let rep = report(&out, "big");
        check_report_consistency(&out, &rep);
        assert_eq!(
            u(&rep["totals"]["rows"]),
            (BIG_OBSERVATIONS + BIG_PATIENTS) as u64
        );
        assert_eq!(
            hidden_entries(&out),
            Vec::<PathBuf>::new(),
            "{what}: leftovers"
        );
        assert_eq!(
            visible_parquet(&out).len(),
            parquet_files_in(&obs).len() + parquet_files_in(&pat).len()
        );
        rep
    };
    let rep1 = check_complete("first complete run");
    let ids: BTreeSet<String> = ids_in_table(&obs).into_iter().collect();
    assert_eq!(
        ids.len(),
        BIG_OBSERVATIONS,
        "duplicate or missing Observation ids"
    );
    assert!(
        parquet_files_in(&obs).len() > 1,
        "expected several part files with --target-file-size 1MiB"
    );
    let files1 = (partition_files(&obs), partition_files(&pat));
    let report1 = std::fs::read(out.join("_runs/big.json")).unwrap();

    // 3. Killed over a complete run: the earlier partition and report are untouched.
    start_and_kill(&input, &out);
    assert_eq!(
        (partition_files(&obs), partition_files(&pat)),
        files1,
        "earlier partition changed"
    );
    assert_eq!(std::fs::read(out.join("_runs/big.json")).unwrap(), report1);
    assert_eq!(visible_parquet(&out).len(), files1.0.len() + files1.1.len());
    assert_eq!(table_rows(&obs), BIG_OBSERVATIONS as u64);

    // 4. Re-run to completion: same rows, leftovers of the killed run removed, files new.
    convert_ok(&input, &out, &BIG_ARGS);
    let rep2 = check_complete("re-run after a kill");
    assert_ne!(rep2["runId"], rep1["runId"]);
    let files2 = (partition_files(&obs), partition_files(&pat));
    let inodes = |f: &BTreeSet<(String, u64, u64)>| f.iter().map(|x| x.1).collect::<BTreeSet<_>>();
    assert!(
        inodes(&files2.0).is_disjoint(&inodes(&files1.0)),
        "Observation files not replaced"
    );
    let ids: BTreeSet<String> = ids_in_table(&obs).into_iter().collect();
    assert_eq!(ids.len(), BIG_OBSERVATIONS);

    // 5. Another re-run replaces the partition again.
    convert_ok(&input, &out, &BIG_ARGS);
    check_complete("second re-run");
    let files3 = (partition_files(&obs), partition_files(&pat));
    assert!(
        inodes(&files3.0).is_disjoint(&inodes(&files2.0)),
        "Observation files not replaced"
    );
    assert!(
        inodes(&files3.1).is_disjoint(&inodes(&files2.1)),
        "Patient files not replaced"
    );
}

// ---------------------------------------------------------------------------------------
// 7. Usage errors
// ---------------------------------------------------------------------------------------

fn assert_usage_error(what: &str, r: &Run, must_mention: &[&str]) {
    assert_eq!(r.code, 2, "{what}: {r:?}");
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{what}: stderr is not one line: {r:?}");
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!r.stderr.contains(bad), "{what}: {r:?}");
    }
    for m in must_mention {
        assert!(
            lines[0].contains(m),
            "{what}: `{}` should mention `{m}`",
            lines[0]
        );
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lake");

    let missing = tmp.path().join("no-such-export");
    let r = convert(&missing, &out, &[]);
    assert_usage_error("nonexistent input", &r, &["no-such-export"]);

    let not_manifest = tmp.path().join("settings.json");
    std::fs::write(&not_manifest, r#"{"hello":"world","items":[1,2]}"#).unwrap();
    let r = convert(&not_manifest, &out, &[]);
    assert_usage_error("JSON that is not a manifest", &r, &["settings.json"]);

    let not_json = tmp.path().join("notes.json");
    std::fs::write(&not_json, "this is not json").unwrap();
    let r = convert(&not_json, &out, &[]);
    assert_usage_error("a file that is not JSON", &r, &["notes.json"]);

    // A copy of the bulk manifest away from its files.
    let alone = tmp.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(
        common::fixtures().join("healthlake-sample/bulk-manifest.json"),
        alone.join("bulk-manifest.json"),
    )
    .unwrap();
    let r = convert(&alone.join("bulk-manifest.json"), &out, &[]);
    assert_usage_error(
        "manifest without local copies",
        &r,
        &["no local copy", "--local-root"],
    );

    // A job that is still running.
    let running = tmp.path().join("running.json");
    std::fs::write(
        &running,
        r#"{"exportJobProperties":{"jobId":"j1","jobStatus":"IN_PROGRESS"},"output":[]}"#,
    )
    .unwrap();
    let r = convert(&running, &out, &[]);
    assert_usage_error("job in progress", &r, &["IN_PROGRESS"]);

    // A folder without NDJSON.
    let empty = tmp.path().join("empty-folder");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("readme.txt"), "x").unwrap();
    let r = convert(&empty, &out, &[]);
    assert_usage_error("folder without NDJSON", &r, &["empty-folder"]);

    assert!(!out.exists(), "a failed run created its destination");
}

#[test]
fn unknown_partition_value_is_a_one_line_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("lake");
    let r = convert(&job_dir(), &out, &["--partition", "daily"]);
    assert_usage_error("--partition daily", &r, &["daily"]);
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------------------
// 8. --partition none, --compression snappy
// ---------------------------------------------------------------------------------------

#[test]
fn partition_none_and_snappy() {
    use parquet::file::reader::FileReader;
    let tmp = tempfile::tempdir().unwrap();
    // The sample job folder plus one Patient file with a rejected line.
    let input = tmp.path().join("flat");
    std::fs::create_dir_all(input.join("extra")).unwrap();
    for p in walk_all(&job_dir()) {
        if p.is_file() {
            let rel = p.strip_prefix(job_dir()).unwrap();
            std::fs::create_dir_all(input.join(rel).parent().unwrap()).unwrap();
            std::fs::copy(&p, input.join(rel)).unwrap();
        }
    }
    std::fs::write(
        input.join("extra/Patient-extra.ndjson"),
        format!(
            "{}\n{{\"resourceType\":\"Patient\",\"id\":\"bad\",\"nope\":true}}\n",
            patient("x1")
        ),
    )
    .unwrap();
    let out = tmp.path().join("lake");
    let args = [
        "--partition",
        "none",
        "--compression",
        "snappy",
        "--max-rejected",
        "1",
    ];
    convert_ok(&input, &out, &args);
    let mut expected = sample_by_type();
    expected
        .get_mut("Patient")
        .unwrap()
        .1
        .push(patient("x1").into_bytes());

    let check = |what: &str| {
        let rep = report(&out, "flat");
        check_report_consistency(&out, &rep);
        assert_eq!(rep["options"]["partition"], "none");
        assert_eq!(rep["options"]["compression"], "snappy");
        assert_eq!(rep["quarantine"], "_quarantine");
        for (rt, (_, lines)) in &expected {
            assert_eq!(rep["tables"][rt]["path"], rt.as_str(), "{what}");
            let dir = out.join(rt);
            assert!(dir.join("part-00000.parquet").is_file(), "{what}: {rt}");
            assert_eq!(table_rows(&dir), lines.len() as u64, "{what}: {rt} rows");
            for p in parquet_files_in(&dir) {
                for rg in parquet_reader(&p).metadata().row_groups() {
                    for c in rg.columns() {
                        assert_eq!(
                            c.compression(),
                            parquet::basic::Compression::SNAPPY,
                            "{}",
                            p.display()
                        );
                    }
                }
            }
        }
        // No export= folders anywhere, nothing hidden left.
        for p in walk_all(&out) {
            assert!(
                !p.to_string_lossy().contains("export="),
                "{what}: {}",
                p.display()
            );
        }
        assert_eq!(hidden_entries(&out), Vec::<PathBuf>::new(), "{what}");
        let recs = quarantine_records(&out.join("_quarantine/Patient.ndjson"));
        assert_eq!(recs.len(), 1);
        assert!(recs[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("/extra/Patient-extra.ndjson"));
        assert_eq!(recs[0]["line"], 2);
        assert_eq!(recs[0]["id"], "bad");
        rep
    };
    check("first run");
    let before = partition_files(&out.join("Patient"));
    // A re-run replaces each table folder, and the tables regenerate the input.
    convert_ok(&input, &out, &args);
    check("re-run");
    let after = partition_files(&out.join("Patient"));
    assert_eq!(before.len(), after.len());
    assert!(
        before
            .iter()
            .map(|x| x.1)
            .collect::<BTreeSet<_>>()
            .is_disjoint(&after.iter().map(|x| x.1).collect()),
        "Patient files not replaced"
    );
    let regenerated = regenerate(&out, &tmp.path().join("regenerated"));
    let expected_lines: BTreeMap<String, Vec<String>> = expected
        .iter()
        .map(|(rt, (_, l))| (rt.clone(), canonical_sorted(l)))
        .collect();
    assert_same_resources("partition none", &expected_lines, &regenerated);
}
