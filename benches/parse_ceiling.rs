//! The parse ceiling: simd-json tape parse of every line of every `.ndjson` file under a
//! folder, with nothing done with the tape and nothing written: how fast a converter that
//! parses each line once could go at best.
//!
//! ```text
//! parse-ceiling <dir> [--threads N]    (default: all cores)
//! ```
//!
//! Each line is copied into a padded scratch buffer and parsed with
//! `simd_json::fill_tape_padded`, reusing the buffers and tape as fhirlake's decoder does
//! (the allocation-free form of `simd_json::to_tape`). Files are spread over a rayon pool,
//! and within a file chunks of about 4 MB of lines. Reading the files is inside the time.
//! Prints `parse-ceiling: threads=N files=N bytes=N lines=N errors=N seconds=S MB/s=X`.

use rayon::prelude::*;
use simd_json::{Buffers, Tape};
use std::fs;
use std::path::PathBuf;
use std::time::Instant;

#[path = "support/files.rs"]
mod files;

/// Parse every line of `chunk`; (lines, errors).
fn parse_lines(chunk: &[u8]) -> (u64, u64) {
    let mut scratch: Vec<u8> = Vec::new();
    let mut buffers = Buffers::new(4096);
    let mut store: Option<Tape<'static>> = Some(Tape::null());
    let (mut lines, mut errors) = (0, 0);
    for line in chunk.split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        lines += 1;
        scratch.clear();
        scratch.extend_from_slice(line);
        scratch.resize(line.len() + simd_json::INPUT_PADDING, 0);
        let mut tape = store.take().unwrap_or_else(Tape::null).reset();
        if simd_json::fill_tape_padded(&mut scratch, line.len(), &mut buffers, &mut tape).is_err() {
            errors += 1;
        }
        store = Some(tape.reset());
    }
    (lines, errors)
}

/// Chunks of about `size` bytes, cut after a newline.
fn chunks(data: &[u8], size: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let mut end = (start + size).min(data.len());
        if end < data.len() {
            end = memchr::memchr(b'\n', &data[end..]).map_or(data.len(), |i| end + i + 1);
        }
        out.push(&data[start..end]);
        start = end;
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut dir = None;
    let mut threads = 0usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--threads" => threads = it.next().and_then(|n| n.parse().ok()).expect("--threads N"),
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => {
                eprintln!("usage: parse-ceiling <dir> [--threads N]");
                std::process::exit(2);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: parse-ceiling <dir> [--threads N]");
        std::process::exit(2);
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let started = Instant::now();
    let files = files::ndjson_files(&dir).expect("list the folder");
    let (bytes, lines, errors) = pool.install(|| {
        files
            .par_iter()
            .map(|f| {
                let data = fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
                let (l, e) = chunks(&data, 4 << 20)
                    .into_par_iter()
                    .map(parse_lines)
                    .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
                (data.len() as u64, l, e)
            })
            .reduce(|| (0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    });
    let secs = started.elapsed().as_secs_f64();
    println!(
        "parse-ceiling: threads={} files={} bytes={bytes} lines={lines} errors={errors} seconds={secs:.3} MB/s={:.1}",
        pool.current_num_threads(),
        files.len(),
        bytes as f64 / 1e6 / secs
    );
}
