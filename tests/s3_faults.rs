//! S3 reads survive real-world faults without losing or duplicating a line: a small HTTP
//! proxy between fhirlake and a real S3 server (moto on 127.0.0.1) answers some object
//! reads with 503 SlowDown or 500, cuts others off mid-body, and trickles others slowly.
//! The result must equal a clean run's, and the report must reconcile exactly.

mod common;

use fhirlake::decode::line::canonical_json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{root, start_moto};

/// Faults injected so far, by kind.
#[derive(Default)]
struct Faults {
    requests: AtomicUsize,
    slow_down: AtomicUsize,
    internal: AtomicUsize,
    cut: AtomicUsize,
    trickle: AtomicUsize,
}

/// Read one HTTP request (headers and Content-Length body) from a client.
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut byte).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&byte[..n]);
            }
            return Some(buf);
        }
        let n = s.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    }
}

/// Serve one connection: forward each request to S3 on its own connection, then fault it.
fn serve(mut client: TcpStream, upstream: u16, faults: Arc<Faults>) {
    // One request per connection: every answer says `Connection: close`.
    if let Some(req) = read_request(&mut client) {
        let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&req[..head_end]).to_string();
        let is_object_read = head.starts_with("GET ") && head.to_lowercase().contains("\r\nrange:");
        // Ask upstream to close after its answer, so the whole response is read to EOF.
        let mut forwarded = head
            .lines()
            .filter(|l| !l.to_lowercase().starts_with("connection:"))
            .collect::<Vec<_>>()
            .join("\r\n");
        forwarded.push_str("\r\nConnection: close\r\n\r\n");
        let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        up.write_all(forwarded.as_bytes()).unwrap();
        up.write_all(&req[head_end + 4..]).unwrap();
        let mut resp = Vec::new();
        up.read_to_end(&mut resp).unwrap();
        let n = faults.requests.fetch_add(1, Ordering::SeqCst);
        if is_object_read {
            match n % 5 {
                0 => {
                    faults.slow_down.fetch_add(1, Ordering::SeqCst);
                    let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                    let _ = write!(client, "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    return;
                }
                1 => {
                    faults.internal.fetch_add(1, Ordering::SeqCst);
                    let body = "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>";
                    let _ = write!(client, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    return;
                }
                2 => {
                    // Headers promise the whole body; the connection drops half-way.
                    let body_at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let cut = body_at + (resp.len() - body_at) / 2;
                    if cut > body_at {
                        faults.cut.fetch_add(1, Ordering::SeqCst);
                        let _ = client.write_all(&resp[..cut]);
                        let _ = client.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                }
                3 => {
                    faults.trickle.fetch_add(1, Ordering::SeqCst);
                    for piece in resp.chunks(resp.len().div_ceil(8).max(1)) {
                        if client.write_all(piece).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(30));
                    }
                    return;
                }
                _ => {}
            }
        }
        let _ = client.write_all(&resp);
    }
}

fn start_proxy(upstream: u16, faults: Arc<Faults>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let f = faults.clone();
            std::thread::spawn(move || serve(conn, upstream, f));
        }
    });
    port
}

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
    let dir = tmp.path().join("export/Patient");
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
    let up = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/py/s3_put.py"))
        .args([&format!("http://127.0.0.1:{}", moto.port), "faulty", "exp/"])
        .arg(tmp.path().join("export"))
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

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

    let faults = Arc::new(Faults::default());
    let proxy = start_proxy(moto.port, faults.clone());
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
        proxy,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (s, i, c, t) = (
        faults.slow_down.load(Ordering::SeqCst),
        faults.internal.load(Ordering::SeqCst),
        faults.cut.load(Ordering::SeqCst),
        faults.trickle.load(Ordering::SeqCst),
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
