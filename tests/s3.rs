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
use std::path::Path;
use std::process::{Command, Output};

use common::{start_moto, Moto};

fn put(moto: &Moto, bucket: &str, prefix: &str, dir: &Path) {
    common::s3_put(&moto.endpoint, bucket, prefix, dir);
}

fn fhirlake(args: &[&str], moto: Option<&Moto>) -> Output {
    common::fhirlake_s3(args, moto.map(|m| m.endpoint.as_str()))
}

/// Resources per type, as sorted canonical JSON lines, regenerated from a lake.
fn lake_resources(lake: &Path) -> BTreeMap<String, Vec<String>> {
    let scratch = lake.join("../regenerated").join(lake.file_name().unwrap());
    common::lake_resources(lake, &scratch)
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
}

/// The objects under `prefix` (and the multipart uploads still open in the bucket),
/// downloading them into `download` when given.
fn inspect(moto: &Moto, bucket: &str, prefix: &str, download: Option<&Path>) -> serde_json::Value {
    common::s3_inspect(&moto.endpoint, bucket, prefix, download)
}

fn keys(listing: &serde_json::Value) -> Vec<String> {
    listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn lake_written_to_s3_with_sse_kms_commits_last_and_reruns_replace() {
    let Some(moto) = start_moto("lake_written_to_s3_with_sse_kms_commits_last_and_reruns_replace")
    else {
        return;
    };
    put(
        &moto,
        "lake",
        "keep/",
        &common::fixtures().join("synthea-mini"),
    ); // unrelated objects stay
    let sample = common::fixtures().join("healthlake-sample");
    let status = sample.join("export-status.json");
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    let o = fhirlake(
        &[
            "convert",
            status.to_str().unwrap(),
            "--out",
            local.to_str().unwrap(),
            "-q",
        ],
        None,
    );
    assert!(o.status.success());
    let want = lake_resources(&local);
    let key = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000";
    let mut previous: Vec<String> = Vec::new();
    for run in 0..2 {
        let o = fhirlake(
            &[
                "convert",
                status.to_str().unwrap(),
                "--out",
                "s3://lake/fhir",
                "-q",
                "--sse-kms-key-id",
                key,
            ],
            Some(&moto),
        );
        assert!(
            o.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let down = tmp.path().join(format!("down{run}"));
        let listing = inspect(&moto, "lake", "fhir/", Some(&down));
        let now = keys(&listing);
        // Every object is encrypted with the key, the report included.
        for obj in listing["objects"].as_array().unwrap() {
            assert_eq!(obj["sse"], "aws:kms", "{obj}");
            assert_eq!(obj["kmsKeyId"], key, "{obj}");
        }
        // Exactly the report's files, plus the report: the earlier run's are gone.
        let report: serde_json::Value = serde_json::from_slice(
            &std::fs::read(down.join("_runs/5df064e0e44777861f7a6c2ddf0d5f1b.json")).unwrap(),
        )
        .unwrap();
        let mut listed: Vec<String> =
            vec!["fhir/_runs/5df064e0e44777861f7a6c2ddf0d5f1b.json".into()];
        for t in report["tables"].as_object().unwrap().values() {
            for f in t["outputFiles"].as_array().unwrap() {
                listed.push(format!(
                    "fhir/{}/{}",
                    t["path"].as_str().unwrap(),
                    f["name"].as_str().unwrap()
                ));
            }
        }
        listed.sort();
        assert_eq!(
            now, listed,
            "run {run}: objects under the lake differ from the report"
        );
        assert!(
            now.iter()
                .all(|k| !previous.contains(k) || k.contains("_runs/")),
            "run {run} reused an earlier object name"
        );
        previous = now;
        assert_eq!(
            lake_resources(&down),
            want,
            "run {run}: the S3 lake differs from the local one"
        );
        assert!(listing["uploads"].as_array().unwrap().is_empty());
    }
    let fixture_files = walk_count(&common::fixtures().join("synthea-mini"));
    assert_eq!(
        keys(&inspect(&moto, "lake", "keep/", None)).len(),
        fixture_files,
        "objects outside the lake are untouched"
    );
}

#[test]
fn large_tables_are_uploaded_in_parts_and_failed_runs_leave_no_upload() {
    let Some(moto) =
        start_moto("large_tables_are_uploaded_in_parts_and_failed_runs_leave_no_upload")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("export");
    std::fs::create_dir_all(&dir).unwrap();
    // ~12 MB of incompressible base64 in Binary resources: a Parquet file of several parts.
    let text = common::incompressible_binaries(120);
    std::fs::write(dir.join("Binary.ndjson"), &text).unwrap();
    put(&moto, "lake", "input/", &dir); // creates the bucket
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
        ],
        Some(&moto),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let down = tmp.path().join("down");
    let listing = inspect(&moto, "lake", "big/", Some(&down));
    let parquet: Vec<&serde_json::Value> = listing["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["key"].as_str().unwrap().ends_with(".parquet"))
        .collect();
    assert_eq!(parquet.len(), 1);
    assert!(parquet[0]["size"].as_u64().unwrap() > 10 << 20);
    // A multipart object's ETag ends in -<parts>.
    let etag = parquet[0]["etag"].as_str().unwrap();
    assert!(
        etag.rsplit_once('-')
            .is_some_and(|(_, n)| n.parse::<u32>().unwrap() >= 2),
        "not multipart: {etag}"
    );
    let got = lake_resources(&down);
    assert_eq!(got["Binary"].len(), 120);
    assert!(listing["uploads"].as_array().unwrap().is_empty());

    // A run that cannot finish (its bucket does not exist) leaves no upload behind.
    let o = fhirlake(
        &[
            "convert",
            dir.to_str().unwrap(),
            "--out",
            "s3://no-such-lake/x",
            "-q",
            "--compression",
            "none",
        ],
        Some(&moto),
    );
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(inspect(&moto, "lake", "", None)["uploads"]
        .as_array()
        .unwrap()
        .is_empty());
}

fn walk_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk_count(&p)
            } else {
                1
            }
        })
        .sum()
}
