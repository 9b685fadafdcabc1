//! S3 input against a real S3-compatible server on 127.0.0.1 (moto_server from the
//! project's venv, started and stopped by the test): the HealthLake sample read from S3
//! through each input form must give exactly what the local run gives, and large objects
//! read as many ranged GETs must come out whole and in order.
//!
//! Without the venv these tests fail (run `./scripts/test`), unless
//! `FHIRLAKE_SKIP_ENGINES=1`, where they say SKIPPED and pass.

mod common;

use fhirlake::decode::line::canonical_json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A moto S3 server on a free port of 127.0.0.1, stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto(test: &str) -> Option<Moto> {
    if std::env::var("FHIRLAKE_SKIP_ENGINES").is_ok_and(|v| v == "1") {
        println!("SKIPPED {test}: FHIRLAKE_SKIP_ENGINES=1");
        return None;
    }
    let bin = root().join(".venv/bin/moto_server");
    assert!(
        bin.is_file(),
        "{test}: {} is missing; run ./scripts/test, which installs it",
        bin.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start moto_server");
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "moto_server did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

fn put(moto: &Moto, bucket: &str, prefix: &str, dir: &Path) {
    let out = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/py/s3_put.py"))
        .args([&moto.endpoint, bucket, prefix])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fhirlake(args: &[&str], moto: Option<&Moto>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhirlake"));
    cmd.args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    if let Some(m) = moto {
        cmd.args(["--endpoint-url", &m.endpoint, "--s3-path-style"]);
    }
    cmd.output().unwrap()
}

/// Resources per type, as sorted canonical JSON lines, regenerated from a lake.
fn lake_resources(lake: &Path) -> BTreeMap<String, Vec<String>> {
    let out_dir = lake.join("../regenerated").join(lake.file_name().unwrap());
    let o = fhirlake(
        &[
            "to-ndjson",
            lake.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut map = BTreeMap::new();
    for e in std::fs::read_dir(&out_dir).unwrap() {
        let p = e.unwrap().path();
        let rt = p.file_stem().unwrap().to_str().unwrap().to_string();
        let mut lines: Vec<String> = common::read_lines(&p)
            .iter()
            .map(|l| canonical_json(l).unwrap())
            .collect();
        lines.sort();
        map.insert(rt, lines);
    }
    map
}

fn report(lake: &Path) -> serde_json::Value {
    let dir = lake.join("_runs");
    let p = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn healthlake_sample_from_s3_equals_the_local_run() {
    let Some(moto) = start_moto("healthlake_sample_from_s3_equals_the_local_run") else {
        return;
    };
    let sample = common::fixtures().join("healthlake-sample");
    put(&moto, "example-bucket", "healthlake-output/", &sample);
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    let o = fhirlake(
        &[
            "convert",
            sample.join("export-status.json").to_str().unwrap(),
            "--out",
            local.to_str().unwrap(),
            "-q",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = lake_resources(&local);
    assert_eq!(want.values().map(Vec::len).sum::<usize>(), 369);

    let job = "s3://example-bucket/healthlake-output/e3551377288a7ec4bcda3a5e33e18867-FHIR_EXPORT-5df064e0e44777861f7a6c2ddf0d5f1b";
    let inputs = [
        (
            "status",
            "s3://example-bucket/healthlake-output/export-status.json".to_string(),
            "healthlake-export-status",
        ),
        (
            "describe",
            "s3://example-bucket/healthlake-output/describe-fhir-export-job.json".to_string(),
            "healthlake-describe-job",
        ),
        ("prefix", job.to_string(), "folder"),
    ];
    for (name, input, kind) in inputs {
        let lake = tmp.path().join(name);
        // Small parts: every object larger than 4 KiB is read as several ranged GETs.
        let o = fhirlake(
            &[
                "convert",
                &input,
                "--out",
                lake.to_str().unwrap(),
                "-q",
                "--s3-part-size",
                "4KiB",
                "--s3-parts-in-flight",
                "3",
            ],
            Some(&moto),
        );
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r = report(&lake);
        assert_eq!(r["exportId"], "5df064e0e44777861f7a6c2ddf0d5f1b", "{name}");
        assert_eq!(r["inputKind"], kind, "{name}");
        assert_eq!(r["reconciled"], true, "{name}");
        assert_eq!(r["totals"]["rows"], 369, "{name}");
        let first = r["files"][0]["name"].as_str().unwrap();
        assert!(
            first.starts_with(&format!("{job}/")),
            "{name}: files are named by their S3 URL: {first}"
        );
        assert_eq!(
            lake_resources(&lake),
            want,
            "{name}: S3 run differs from the local run"
        );
    }
}

#[test]
fn large_objects_are_read_whole_and_in_order_through_ranged_gets() {
    let Some(moto) = start_moto("large_objects_are_read_whole_and_in_order_through_ranged_gets")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("export");
    std::fs::create_dir_all(dir.join("Patient")).unwrap();
    // ~3 MB of lines of varying length, so part boundaries fall mid-line everywhere.
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!(
            r#"{{"resourceType":"Patient","id":"p{i}","name":[{{"family":"{}"}}],"active":{}}}"#,
            "x".repeat(i % 173),
            i % 2 == 0
        ));
        text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
    }
    std::fs::write(dir.join("Patient/Patient-1.ndjson"), &text).unwrap();
    put(&moto, "big", "exports/job-1/", &dir);
    let lake = tmp.path().join("lake");
    let o = fhirlake(
        &[
            "convert",
            "s3://big/exports/job-1/",
            "--out",
            lake.to_str().unwrap(),
            "-q",
            "--s3-part-size",
            "64KiB",
            "--s3-parts-in-flight",
            "6",
        ],
        Some(&moto),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&lake);
    assert_eq!(r["exportId"], "job-1");
    assert_eq!(r["totals"]["lines"], 20_000);
    assert_eq!(r["totals"]["rows"], 20_000);
    assert_eq!(r["files"][0]["ndjsonBytes"], text.len());
    let got = lake_resources(&lake);
    let mut want: Vec<String> = text
        .lines()
        .map(|l| canonical_json(l.trim_end().as_bytes()).unwrap())
        .collect();
    want.sort();
    assert_eq!(got["Patient"], want);
}

#[test]
fn s3_errors_are_one_line_with_what_to_do() {
    let Some(moto) = start_moto("s3_errors_are_one_line_with_what_to_do") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let lake = lake.to_str().unwrap();
    let cases = [
        ("s3://no-such-bucket/export/status.json", "no such object"),
        ("s3://no-such-bucket/export/", "no such bucket"),
    ];
    for (input, want) in cases {
        let o = fhirlake(&["convert", input, "--out", lake, "-q"], Some(&moto));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{input}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{input}: {err}");
        assert!(err.contains(want) && err.contains(input), "{input}: {err}");
    }
    // No credentials anywhere.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fhirlake"));
    let o = cmd
        .args([
            "convert",
            "s3://b/k/status.json",
            "--out",
            lake,
            "-q",
            "--endpoint-url",
            &moto.endpoint,
            "--s3-path-style",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no AWS credentials") && err.contains("--profile"),
        "{err}"
    );
    // S3 output is not there yet, and says so.
    let o = fhirlake(
        &["convert", "s3://b/k/", "--out", "s3://b/lake/", "-q"],
        Some(&moto),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not supported yet"));
}
