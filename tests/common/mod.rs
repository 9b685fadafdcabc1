//! Shared test helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `../shared/data`, the team's data folder, when it is there. Tests that need it call
/// [`shared_data`] and skip, saying so, where it is absent (a fresh clone elsewhere).
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("FHIRLAKE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if dir.join("fhir-r4").is_dir() {
        Some(dir)
    } else {
        // Shown by scripts/test (cargo test -- --show-output) and counted in its summary.
        println!("SKIPPED {test}: needs ../shared/data (or FHIRLAKE_SHARED_DATA), absent here");
        None
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Lines of an NDJSON file, without terminators (CR stripped), blank lines skipped.
pub fn read_lines(path: &std::path::Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    };
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The project's root folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A real S3-compatible server (moto, from the project's venv) on a free port of
/// 127.0.0.1, stopped on drop.
pub struct Moto {
    child: std::process::Child,
    pub port: u16,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start moto, or `None` (SKIPPED printed) with FHIRLAKE_SKIP_ENGINES=1. Panics when the
/// venv is missing: the S3 tests are part of the suite (run ./scripts/test).
pub fn start_moto(test: &str) -> Option<Moto> {
    use std::time::{Duration, Instant};
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
    // A port taken between picking and binding, or a slow start: try again on another.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let mut moto = Moto {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if matches!(moto.child.try_wait(), Ok(Some(_))) {
                break; // it exited: the port was taken
            }
            if http_ok(port) {
                return Some(moto);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{test}: moto_server did not start");
}

/// Does an HTTP server answer on this port (not just accept the connection)?
fn http_ok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 9 && buf.starts_with(b"HTTP/1."))
}

/// Upload a folder to `s3://bucket/prefix` on a local S3 server (creating the bucket).
pub fn s3_put(endpoint: &str, bucket: &str, prefix: &str, dir: &Path) {
    let out = std::process::Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/py/s3_put.py"))
        .args([endpoint, bucket, prefix])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `fhirlake ARGS` with static test credentials and nothing from the user's AWS setup;
/// with an endpoint, pointed at it path-style.
pub fn fhirlake_s3(args: &[&str], endpoint: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fhirlake"));
    cmd.args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    if let Some(e) = endpoint {
        cmd.args(["--endpoint-url", e, "--s3-path-style"]);
    }
    cmd.output().unwrap()
}
