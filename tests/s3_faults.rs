//! S3 survives real-world faults without losing or duplicating a line: a small HTTP
//! proxy (tests/common/proxy.rs) between fhirlake and a real S3 server (moto on 127.0.0.1)
//! answers some object reads with 503 SlowDown or 500, cuts others off mid-body, and
//! trickles others slowly. The result must equal a clean run's, and the report must
//! reconcile exactly. Faults that persist fail the run with a report naming the object and
//! offset, and leave no multipart upload behind.

mod common;

use common::proxy::{Fault, Proxy};
use common::start_moto;
use fhirlake::decode::line::canonical_json;
use std::path::Path;
use std::process::{Command, Output};

fn fhirlake(args: &[&str], port: u16) -> Output {
    common::fhirlake_s3(args, Some(&format!("http://127.0.0.1:{port}")))
}

fn regenerate(lake: &Path, out: &Path) -> Vec<String> {
    let o = Command::new(env!("CARGO_BIN_EXE_fhirlake"))
        .args([
            "to-ndjson",
            lake.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut lines: Vec<String> = common::read_lines(&out.join("Patient.ndjson"))
        .iter()
        .map(|l| canonical_json(l).unwrap())
        .collect();
    lines.sort();
    lines
}

#[test]
fn faulty_s3_gives_the_same_result_as_a_clean_run() {
    let Some(moto) = start_moto("faulty_s3_gives_the_same_result_as_a_clean_run") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let text = put_patients(&moto.endpoint, tmp.path());

    let clean = tmp.path().join("clean");
    let o = fhirlake(
        &[
            "convert",
            "s3://faulty/exp/",
            "--out",
            clean.to_str().unwrap(),
            "-q",
            "--s3-part-size",
            "32KiB",
        ],
        moto.port,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Object reads in turn: 503, 500, cut mid-body, trickled, clean.
    let proxy = Proxy::start(moto.port, |r| {
        if !r.is_ranged_get() {
            return Fault::Pass;
        }
        match r.n % 5 {
            0 => Fault::SlowDown,
            1 => Fault::Internal,
            2 => Fault::Cut,
            3 => Fault::Trickle,
            _ => Fault::Pass,
        }
    });
    let faulty = tmp.path().join("faulty");
    let o = fhirlake(
        &[
            "convert",
            "s3://faulty/exp/",
            "--out",
            faulty.to_str().unwrap(),
            "-q",
            "--s3-part-size",
            "32KiB",
            "--s3-parts-in-flight",
            "4",
        ],
        proxy.port,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (s, i, c, t) = (
        proxy.injected(Fault::SlowDown),
        proxy.injected(Fault::Internal),
        proxy.injected(Fault::Cut),
        proxy.injected(Fault::Trickle),
    );
    println!("injected: {s} SlowDown, {i} InternalError, {c} cut bodies, {t} trickles");
    assert!(
        s >= 3 && i >= 3 && c >= 3 && t >= 3,
        "too few faults injected: {s} {i} {c} {t}"
    );

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(faulty.join("_runs/exp.json")).unwrap()).unwrap();
    assert_eq!(report["reconciled"], true);
    assert_eq!(report["totals"]["lines"], 6_000);
    assert_eq!(report["totals"]["rows"], 6_000);
    assert_eq!(report["totals"]["rejected"], 0);
    assert_eq!(report["files"][0]["ndjsonBytes"], text.len());
    assert_eq!(
        regenerate(&faulty, &tmp.path().join("r1")),
        regenerate(&clean, &tmp.path().join("r2"))
    );
}

/// 6,000 Patients (about 400 KB) uploaded to s3://faulty/exp/Patient/Patient-1.ndjson.
fn put_patients(endpoint: &str, tmp: &Path) -> String {
    let dir = tmp.join("export/Patient");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for i in 0..6_000 {
        text.push_str(&format!(
            r#"{{"resourceType":"Patient","id":"f{i}","name":[{{"family":"{}"}}],"birthDate":"19{:02}-01-02"}}"#,
            "y".repeat(i % 97),
            i % 100
        ));
        text.push('\n');
    }
    std::fs::write(dir.join("Patient-1.ndjson"), &text).unwrap();
    common::s3_put(endpoint, "faulty", "exp/", &tmp.join("export"));
    text
}

#[test]
fn reads_that_keep_failing_stop_the_run_with_the_object_and_offset() {
    let Some(moto) = start_moto("reads_that_keep_failing_stop_the_run_with_the_object_and_offset")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    put_patients(&moto.endpoint, tmp.path());
    let lake = tmp.path().join("lake");
    let args = |attempts: &'static str| {
        vec![
            "convert".to_string(),
            "s3://faulty/exp/".into(),
            "--out".into(),
            lake.to_str().unwrap().into(),
            "-q".into(),
            "--s3-part-size".into(),
            "32KiB".into(),
            "--s3-attempts".into(),
            attempts.into(),
        ]
    };
    let run = |args: &[String], port: u16| {
        fhirlake(&args.iter().map(String::as_str).collect::<Vec<_>>(), port)
    };
    // A committed run first: a failed run must leave it as it was.
    let o = run(&args("3"), moto.port);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let committed = std::fs::read(lake.join("_runs/exp.json")).unwrap();

    // The first part's first answer is cut half-way (16 KiB of its 32 KiB); every later
    // read of the object fails with 503 SlowDown.
    let proxy = Proxy::start(moto.port, |r| {
        if !r.is_ranged_get() {
            Fault::Pass
        } else if r.header("range") == Some("bytes=0-32767") {
            Fault::Cut
        } else {
            Fault::SlowDown
        }
    });
    let o = run(&args("3"), proxy.port);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("s3://faulty/exp/Patient/Patient-1.ndjson")
            && err.contains("at byte 16384 after 3 attempts")
            && err.contains("SlowDown")
            && err.contains("exp.failed.json"),
        "{err}"
    );
    let failed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lake.join("_runs/exp.failed.json")).unwrap())
            .unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["committed"], false);
    assert_eq!(
        failed["readFailure"]["object"],
        "s3://faulty/exp/Patient/Patient-1.ndjson"
    );
    assert_eq!(failed["readFailure"]["offset"], 16384);
    assert_eq!(failed["readFailure"]["attempts"], 3);
    assert_eq!(
        std::fs::read(lake.join("_runs/exp.json")).unwrap(),
        committed,
        "the committed run is untouched"
    );
    // Three attempts for the first part: the cut one and two 503s (no SDK retries on top).
    let first_part = proxy
        .heads()
        .iter()
        .filter(|h| h.starts_with("GET ") && h.to_lowercase().contains("range: bytes=0-32767"))
        .count()
        + proxy
            .heads()
            .iter()
            .filter(|h| {
                h.starts_with("GET ") && h.to_lowercase().contains("range: bytes=16384-32767")
            })
            .count();
    assert_eq!(first_part, 3);

    // The next successful run removes the failure report.
    let o = run(&args("3"), moto.port);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!lake.join("_runs/exp.failed.json").exists());
}

#[test]
fn a_failing_upload_is_aborted_and_leaves_no_incomplete_upload() {
    let Some(moto) = start_moto("a_failing_upload_is_aborted_and_leaves_no_incomplete_upload")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("export");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Binary.ndjson"),
        common::incompressible_binaries(120),
    )
    .unwrap();
    common::s3_put(&moto.endpoint, "lake", "input/", &dir); // creates the bucket
                                                            // The second part of every multipart upload fails, however often it is retried.
    let proxy = Proxy::start(moto.port, |r| {
        let line = r.head.lines().next().unwrap_or("");
        if line.starts_with("PUT ")
            && (line.contains("partNumber=2&") || line.contains("partNumber=2 "))
        {
            Fault::Internal
        } else {
            Fault::Pass
        }
    });
    let o = fhirlake(
        &[
            "convert",
            dir.to_str().unwrap(),
            "--out",
            "s3://lake/big",
            "-q",
            "--compression",
            "none",
            "--s3-upload-part-size",
            "5MiB",
            "--s3-attempts",
            "2",
        ],
        proxy.port,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("s3://lake/big/Binary/"), "{err}");
    let heads = proxy.heads();
    let count = |pred: &dyn Fn(&str) -> bool| heads.iter().filter(|h| pred(h)).count();
    assert_eq!(
        count(&|h| h.starts_with("POST ") && h.contains("?uploads")),
        1
    );
    assert_eq!(
        count(&|h| h.starts_with("PUT ") && h.contains("partNumber=1")),
        1
    );
    assert_eq!(proxy.injected(Fault::Internal), 2, "two attempts at part 2");
    assert_eq!(
        count(&|h| h.starts_with("DELETE ") && h.contains("uploadId=")),
        1,
        "the upload is aborted"
    );
    let listing = common::s3_inspect(&moto.endpoint, "lake", "big/", None);
    assert!(
        listing["uploads"].as_array().unwrap().is_empty(),
        "{listing}"
    );
    let parquet = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["key"].as_str().unwrap().ends_with(".parquet"))
        .count();
    assert_eq!(parquet, 0, "{listing}");
}
