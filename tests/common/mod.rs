//! Shared test helpers.
#![allow(dead_code)]

pub mod proxy;

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
    let bin = server_binary(test, root().join(".venv/bin/moto_server"))?;
    let (child, port) = spawn_server(test, "moto_server", |port| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        cmd
    });
    Some(Moto {
        child,
        port,
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}

/// The server binary, or `None` (SKIPPED printed) with FHIRLAKE_SKIP_ENGINES=1; panics
/// when it is missing, as ./scripts/test installs it.
fn server_binary(test: &str, bin: PathBuf) -> Option<PathBuf> {
    if std::env::var("FHIRLAKE_SKIP_ENGINES").is_ok_and(|v| v == "1") {
        println!("SKIPPED {test}: FHIRLAKE_SKIP_ENGINES=1");
        return None;
    }
    assert!(
        bin.is_file(),
        "{test}: {} is missing; run ./scripts/test, which installs it",
        bin.display()
    );
    Some(bin)
}

/// Start a server on a free port of 127.0.0.1 and wait until it answers HTTP. A port taken
/// between picking and binding, or a slow start: tried again on another port.
fn spawn_server(
    test: &str,
    name: &str,
    command: impl Fn(u16) -> std::process::Command,
) -> (std::process::Child, u16) {
    use std::time::{Duration, Instant};
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = command(port)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{test}: cannot start {name}: {e}"));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break; // it exited: the port was taken
            }
            if http_ok(port) {
                return (child, port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{test}: {name} did not start");
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
    fhirlake_s3_as(args, endpoint, ("test", "test"))
}

/// [`fhirlake_s3`] with these static credentials (access key, secret key).
pub fn fhirlake_s3_as(
    args: &[&str],
    endpoint: Option<&str>,
    (key, secret): (&str, &str),
) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fhirlake"));
    cmd.args(args)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
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

/// NDJSON of `n` Binary resources of 100 KB of incompressible base64 each (a
/// deterministic xorshift stream): a Parquet file of several upload parts.
pub fn incompressible_binaries(n: usize) -> String {
    use base64::Engine as _;
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut text = String::new();
    for i in 0..n {
        let mut raw = Vec::with_capacity(75_000);
        for _ in 0..75_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            raw.push((state >> 24) as u8);
        }
        let data = base64::engine::general_purpose::STANDARD.encode(raw);
        text.push_str(&format!(r#"{{"resourceType":"Binary","id":"b{i}","contentType":"application/octet-stream","data":"{data}"}}"#));
        text.push('\n');
    }
    text
}

/// The S3 server crate s3s-fs (which checks SigV4 signatures) on a free port of
/// 127.0.0.1, serving the folder `root` (one sub-folder per bucket); stopped on drop.
pub struct S3sFs {
    child: std::process::Child,
    pub port: u16,
    pub endpoint: String,
    pub root: PathBuf,
    pub access_key: &'static str,
    pub secret_key: &'static str,
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start s3s-fs (installed by ./scripts/test in target/tools), or `None` (SKIPPED printed)
/// with FHIRLAKE_SKIP_ENGINES=1.
pub fn start_s3s_fs(test: &str, root_dir: &Path) -> Option<S3sFs> {
    let bin = std::env::var_os("FHIRLAKE_S3S_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/tools/bin/s3s-fs"));
    let bin = server_binary(test, bin)?;
    let (access_key, secret_key) = ("fhirlake-test", "s3s-fs-secret");
    std::fs::create_dir_all(root_dir).unwrap(); // s3s-fs needs its folder to exist
    let (child, port) = spawn_server(test, "s3s-fs", |port| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", access_key, "--secret-key", secret_key])
            .arg(root_dir);
        cmd
    });
    Some(S3sFs {
        child,
        port,
        endpoint: format!("http://127.0.0.1:{port}"),
        root: root_dir.to_path_buf(),
        access_key,
        secret_key,
    })
}

/// Objects (key, size, etag, encryption) and multipart uploads under way in a bucket of a
/// local S3 server (tests/py/s3_inspect.py); with `download`, the objects are copied there.
pub fn s3_inspect(
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    download: Option<&Path>,
) -> serde_json::Value {
    let mut cmd = std::process::Command::new(root().join(".venv/bin/python"));
    cmd.arg(root().join("tests/py/s3_inspect.py"))
        .args([endpoint, bucket, prefix]);
    if let Some(d) = download {
        cmd.arg(d);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Resources per type, as sorted canonical JSON lines, regenerated from a lake folder by
/// `fhirlake to-ndjson` into `scratch`: lakes compare equal when their resources do,
/// whatever the order of rows and files.
pub fn lake_resources(
    lake: &Path,
    scratch: &Path,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fhirlake"))
        .args(["to-ndjson", lake.to_str().unwrap(), "--out"])
        .arg(scratch)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(scratch).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        let mut lines: Vec<String> = read_lines(&p)
            .iter()
            .map(|l| fhirlake::decode::line::canonical_json(l).unwrap())
            .collect();
        lines.sort();
        out.insert(name, lines);
    }
    out
}
