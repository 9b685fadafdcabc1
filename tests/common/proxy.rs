//! A small HTTP proxy between fhirlake and a real S3 server on 127.0.0.1 that injects
//! faults chosen by a rule, and records the head of every request it forwards (to check
//! headers such as SSE-KMS on writes).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and return the answer.
    Pass,
    /// 503 SlowDown, without forwarding.
    SlowDown,
    /// 500 InternalError, without forwarding.
    Internal,
    /// Forward it; send the headers and half the body, then drop the connection.
    Cut,
    /// Forward it; send the answer in 8 slow pieces.
    Trickle,
}

/// A request as the rule sees it.
pub struct Request<'a> {
    /// The request line and headers, as sent.
    pub head: &'a str,
    /// Requests seen before this one.
    pub n: usize,
}

impl Request<'_> {
    /// `GET` with a `Range` header: a part of an object being read.
    pub fn is_ranged_get(&self) -> bool {
        self.head.starts_with("GET ") && self.header("range").is_some()
    }

    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

type Rule = dyn Fn(&Request) -> Fault + Send + Sync;

pub struct Proxy {
    pub port: u16,
    rule: Box<Rule>,
    requests: AtomicUsize,
    /// Heads of the requests seen, in order.
    heads: Mutex<Vec<String>>,
    /// Faults injected, by kind.
    injected: Mutex<Vec<Fault>>,
}

impl Proxy {
    /// Start a proxy to the S3 server on `upstream` that treats requests by `rule`.
    pub fn start(
        upstream: u16,
        rule: impl Fn(&Request) -> Fault + Send + Sync + 'static,
    ) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Arc::new(Proxy {
            port: listener.local_addr().unwrap().port(),
            rule: Box::new(rule),
            requests: AtomicUsize::new(0),
            heads: Mutex::new(Vec::new()),
            injected: Mutex::new(Vec::new()),
        });
        let p = proxy.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let p = p.clone();
                std::thread::spawn(move || p.serve(conn, upstream));
            }
        });
        proxy
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// How many faults of this kind were injected.
    pub fn injected(&self, kind: Fault) -> usize {
        self.injected
            .lock()
            .unwrap()
            .iter()
            .filter(|f| **f == kind)
            .count()
    }

    /// Serve one connection: one request, forwarded to S3 on its own connection.
    fn serve(&self, mut client: TcpStream, upstream: u16) {
        let Some(req) = read_request(&mut client) else {
            return;
        };
        let head_end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&req[..head_end]).to_string();
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        self.heads.lock().unwrap().push(head.clone());
        let fault = (self.rule)(&Request { head: &head, n });
        if fault != Fault::Pass {
            self.injected.lock().unwrap().push(fault);
        }
        let error = |status: &str, code: &str| {
            let body = format!(
                "<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            format!("HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        };
        match fault {
            Fault::SlowDown => {
                let _ = client.write_all(error("503 Slow Down", "SlowDown").as_bytes());
                return;
            }
            Fault::Internal => {
                let _ = client
                    .write_all(error("500 Internal Server Error", "InternalError").as_bytes());
                return;
            }
            _ => {}
        }
        // Ask upstream to close after its answer, so the whole response is read to EOF.
        // Every other header is kept as signed (SigV4 signs the Host header too).
        let mut forwarded = head
            .split("\r\n")
            .filter(|l| !l.to_lowercase().starts_with("connection:"))
            .collect::<Vec<_>>()
            .join("\r\n");
        forwarded.push_str("\r\nConnection: close\r\n\r\n");
        let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        up.write_all(forwarded.as_bytes()).unwrap();
        up.write_all(&req[head_end + 4..]).unwrap();
        let mut resp = Vec::new();
        let _ = up.read_to_end(&mut resp);
        match fault {
            Fault::Cut => {
                // Headers promise the whole body; the connection drops half-way.
                let body_at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let cut = body_at + (resp.len() - body_at) / 2;
                let _ = client.write_all(&resp[..cut]);
                let _ = client.shutdown(std::net::Shutdown::Both);
            }
            Fault::Trickle => {
                for piece in resp.chunks(resp.len().div_ceil(8).max(1)) {
                    if client.write_all(piece).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
            _ => {
                let _ = client.write_all(&resp);
            }
        }
    }
}

/// Read one HTTP request (headers and Content-Length body) from a client.
fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 64 << 10];
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
