//! S3 in and out against s3s-fs, an S3 server that checks SigV4 signatures (moto does
//! not): the HealthLake sample read from S3 through its describe-job output and written
//! back to S3 with SSE-KMS, a table large enough for a multipart upload, and wrong
//! credentials. A recording proxy (tests/common/proxy.rs) checks the headers of every
//! write; s3s-fs keeps objects as plain files, so the lake is read back from its folder.

mod common;

use common::proxy::{Fault, Proxy};
use common::{fhirlake_s3_as, fixtures, lake_resources, start_s3s_fs};
use std::path::Path;

const KEY_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555";

/// Copy a folder's files under `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            copy_dir(&p, &to.join(p.file_name().unwrap()));
        } else {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn signed_round_trip_with_sse_kms_on_every_write() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    let Some(s3) = start_s3s_fs("signed_round_trip_with_sse_kms_on_every_write", &root) else {
        return;
    };
    let creds = (s3.access_key, s3.secret_key);
    // The sample export where its describe-job output says it is.
    copy_dir(
        &fixtures().join("healthlake-sample"),
        &root.join("example-bucket/healthlake-output"),
    );
    std::fs::create_dir_all(root.join("lake")).unwrap();
    let proxy = Proxy::start(s3.port, |_| Fault::Pass);
    let endpoint = proxy.endpoint();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-q", "--sse-kms-key-id", KEY_ARN]);
        fhirlake_s3_as(&all, Some(&endpoint), creds)
    };

    let o = run(&[
        "convert",
        "s3://example-bucket/healthlake-output/describe-fhir-export-job.json",
        "--out",
        "s3://lake/hl",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A table of ~12 MB of incompressible data: a multipart upload of 5 MiB parts.
    let big = tmp.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(
        big.join("Binary.ndjson"),
        common::incompressible_binaries(120),
    )
    .unwrap();
    let o = run(&[
        "convert",
        big.to_str().unwrap(),
        "--out",
        "s3://lake/big",
        "--compression",
        "none",
        "--s3-upload-part-size",
        "5MiB",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Every object written carries the SSE-KMS headers: each PutObject and each
    // CreateMultipartUpload (UploadPart inherits the upload's encryption).
    let heads = proxy.heads();
    let request_line = |h: &str| h.lines().next().unwrap_or("").to_string();
    let creates: Vec<&String> = heads
        .iter()
        .filter(|h| {
            let line = request_line(h);
            (line.starts_with("PUT ") && !line.contains("partNumber="))
                || (line.starts_with("POST ") && line.contains("?uploads"))
        })
        .collect();
    let header = |h: &str, name: &str| {
        h.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    // 13 tables and a report, then one table and a report.
    assert!(creates.len() >= 16, "{} writes", creates.len());
    for h in &creates {
        assert_eq!(
            header(h, "x-amz-server-side-encryption").as_deref(),
            Some("aws:kms"),
            "{}",
            request_line(h)
        );
        assert_eq!(
            header(h, "x-amz-server-side-encryption-aws-kms-key-id").as_deref(),
            Some(KEY_ARN),
            "{}",
            request_line(h)
        );
        assert!(header(h, "authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")));
    }
    let parts = heads
        .iter()
        .filter(|h| request_line(h).starts_with("PUT ") && request_line(h).contains("partNumber="))
        .count();
    assert!(parts >= 3, "{parts} parts uploaded");

    // s3s-fs keeps objects as files: the lake read back from its folder equals a local
    // run on the same export.
    let local = tmp.path().join("local");
    let o = fhirlake_s3_as(
        &[
            "convert",
            fixtures()
                .join("healthlake-sample/export-status.json")
                .to_str()
                .unwrap(),
            "--out",
            local.to_str().unwrap(),
            "-q",
        ],
        None,
        creds,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let from_s3 = lake_resources(&root.join("lake/hl"), &tmp.path().join("r1"));
    let from_disk = lake_resources(&local, &tmp.path().join("r2"));
    assert_eq!(from_s3.len(), 13);
    assert_eq!(from_s3, from_disk);
    let binaries = lake_resources(&root.join("lake/big"), &tmp.path().join("r3"));
    assert_eq!(binaries["Binary"].len(), 120);
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("lake/hl/_runs/5df064e0e44777861f7a6c2ddf0d5f1b.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["reconciled"], true);
    assert_eq!(report["totals"]["rows"], 369);
}

#[test]
fn wrong_credentials_are_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    let Some(s3) = start_s3s_fs("wrong_credentials_are_one_line_and_exit_2", &root) else {
        return;
    };
    copy_dir(
        &fixtures().join("healthlake-sample"),
        &root.join("example-bucket/healthlake-output"),
    );
    std::fs::create_dir_all(root.join("lake")).unwrap();
    let wrong = (s3.access_key, "not-the-secret");

    // Reading.
    let o = fhirlake_s3_as(
        &[
            "convert",
            "s3://example-bucket/healthlake-output/describe-fhir-export-job.json",
            "--out",
            tmp.path().join("out").to_str().unwrap(),
            "-q",
        ],
        Some(&s3.endpoint),
        wrong,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("access denied to s3://example-bucket/healthlake-output/")
            && err.contains("check the credentials")
            && err.contains("s3:GetObject"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret"), "{err}");

    // Writing.
    let o = fhirlake_s3_as(
        &[
            "convert",
            fixtures()
                .join("healthlake-sample/export-status.json")
                .to_str()
                .unwrap(),
            "--out",
            "s3://lake/denied",
            "-q",
        ],
        Some(&s3.endpoint),
        wrong,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("access denied to s3://lake/denied/") && err.contains("s3:PutObject"),
        "{err}"
    );
    assert!(!err.contains("not-the-secret"), "{err}");
    assert!(!root.join("lake/denied").exists(), "nothing written");
}
