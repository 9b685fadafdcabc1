//! Benchmark corpus generator: replicates a Synthea NDJSON export (`<Type>.ndjson[.gz]`,
//! UUID ids) up to a size, as plain files and as a HealthLake export over the same bytes.
//!
//! ```text
//! cargo run --release --example gen-corpus -- \
//!     --from ../shared/data/synthea-small/ndjson --size 5GiB --out /tmp/corpus
//! ```
//!
//! Copy `c` of the source has every UUID's first 8 hex digits XOR-ed with
//! `(c * 0x9E3779B1) & 0xFFFFFFFF` (copy 0 is the source as is), which rewrites ids and
//! references alike, so every resource stays unique (the recipe of
//! `shared/data/FHIR-DATA-README.md`). With `S` the source's bytes and `T` the size asked
//! for, each type gets `floor(T / S)` whole copies, then the first lines of one more copy
//! until that type's share of the remainder is reached (`T mod S` times its share of `S`),
//! so the corpus is `T` plus less than one line per type. Blank lines are dropped, CRLF
//! becomes LF, every line ends with `\n`.
//!
//! Writes, deterministically (same arguments, same bytes; nothing comes from the clock):
//! - `OUT/plain/<Type>/<Type>-NNNN.ndjson`, a new file every `--lines-per-file` lines;
//! - `OUT/healthlake/<ds>-FHIR_EXPORT-<job>/<Type>/<Type>-<n19>-<k>-0.ndjson`, hard links to
//!   the same files (copies where links fail), and `OUT/healthlake/export-status.json`, a
//!   HealthLake export status naming them by `s3://fhirlake-bench/healthlake-output/...`;
//! - `OUT/corpus.json`, written last: what was asked and what was written.

use anyhow::{bail, Context, Result};
use clap::Parser;
use rayon::prelude::*;
use serde_json::json;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Generate a benchmark corpus by replicating a Synthea NDJSON export")]
struct Args {
    /// Folder of `<Type>.ndjson` or `<Type>.ndjson.gz` files whose ids are UUIDs.
    #[arg(long)]
    from: PathBuf,
    /// Size of NDJSON to write: bytes, or with a unit (500MB, 1GiB, 5GiB; KB/MB/GB/TB are
    /// powers of 1000, KiB/MiB/GiB/TiB powers of 1024).
    #[arg(long)]
    size: String,
    /// Output folder (its plain/, healthlake/ and corpus.json are replaced).
    #[arg(long)]
    out: PathBuf,
    /// Lines per output file.
    #[arg(long, default_value_t = 50_000)]
    lines_per_file: u64,
}

fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let at = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(at);
    let num: f64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        u => bail!("bad size unit {u:?} in {s:?}"),
    };
    let bytes = (num * mult).round() as u64;
    if bytes == 0 {
        bail!("size must be more than 0");
    }
    Ok(bytes)
}

/// One resource type of the source, normalised: LF-terminated non-blank lines.
struct Source {
    rtype: String,
    data: Vec<u8>,
    /// Offset just past each line's `\n`.
    line_ends: Vec<usize>,
    /// Where each UUID starts, and its first 8 hex digits.
    uuids: Vec<(usize, u32)>,
}

fn read_source(path: &Path, rtype: String) -> Result<Source> {
    let mut raw = Vec::new();
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    if path.to_string_lossy().ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, file))
            .read_to_end(&mut raw)
    } else {
        std::io::BufReader::new(file).read_to_end(&mut raw)
    }
    .with_context(|| format!("read {}", path.display()))?;
    let mut data = Vec::with_capacity(raw.len() + 1);
    let mut line_ends = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        data.extend_from_slice(line);
        data.push(b'\n');
        line_ends.push(data.len());
    }
    drop(raw);
    let uuids = find_uuids(&data);
    Ok(Source {
        rtype,
        data,
        line_ends,
        uuids,
    })
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn hex_val(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => (b - b'0') as u32,
        _ => (b - b'a' + 10) as u32,
    }
}

/// Lower-case UUIDs between word boundaries (the recipe's
/// `\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`), leftmost first,
/// not overlapping, found from the dash after their first 8 digits.
fn find_uuids(data: &[u8]) -> Vec<(usize, u32)> {
    const GROUPS: [(usize, usize); 5] = [(0, 8), (9, 13), (14, 18), (19, 23), (24, 36)];
    let mut out = Vec::new();
    let mut from = 8; // a UUID's first dash is at least 8 bytes in
    while from < data.len() {
        let Some(d) = memchr::memchr(b'-', &data[from..]) else {
            break;
        };
        let dash = from + d;
        from = dash + 1;
        let p = dash - 8;
        let end = p + 36;
        if end > data.len() {
            break;
        }
        let u = &data[p..end];
        let shaped = u[8] == b'-'
            && u[13] == b'-'
            && u[18] == b'-'
            && u[23] == b'-'
            && GROUPS
                .iter()
                .all(|&(a, b)| u[a..b].iter().all(|&c| is_hex(c)));
        let bounded =
            (p == 0 || !is_word(data[p - 1])) && (end == data.len() || !is_word(data[end]));
        if shaped && bounded {
            let v = u[..8].iter().fold(0u32, |acc, &c| acc << 4 | hex_val(c));
            out.push((p, v));
            from = end;
        }
    }
    out
}

fn salt(copy: u64) -> u32 {
    (copy.wrapping_mul(0x9E37_79B1) & 0xFFFF_FFFF) as u32
}

/// Copy `copy` of `src.data[..len]`: the bytes with each UUID's first 8 digits rewritten.
fn make_copy(src: &Source, copy: u64, len: usize, buf: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.clear();
    buf.extend_from_slice(&src.data[..len]);
    let s = salt(copy);
    if s == 0 {
        return;
    }
    for &(p, v) in &src.uuids {
        if p + 36 > len {
            break;
        }
        let x = v ^ s;
        for (i, slot) in buf[p..p + 8].iter_mut().enumerate() {
            *slot = HEX[((x >> (28 - 4 * i)) & 0xF) as usize];
        }
    }
}

/// FNV-1a, for ids derived from the arguments.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.as_bytes().iter().chain(b"\0") {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn hex_id(parts: &[&str]) -> String {
    let a = fnv(parts);
    let b = fnv(&[&format!("{a:016x}"), "2"]);
    format!("{a:016x}{b:016x}")
}

struct TypeResult {
    rtype: String,
    lines: u64,
    bytes: u64,
    files: Vec<PathBuf>,
}

/// Write one type's copies, split every `lines_per_file` lines.
fn write_type(
    src: &Source,
    full_copies: u64,
    partial_lines: usize,
    lines_per_file: u64,
    dir: &Path,
) -> Result<TypeResult> {
    fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    let mut file: Option<File> = None;
    let mut in_file: u64 = 0;
    let mut total_lines: u64 = 0;
    let mut total_bytes: u64 = 0;
    let mut buf = Vec::new();
    let copies = (0..full_copies)
        .map(|c| (c, src.line_ends.len()))
        .chain((partial_lines > 0).then_some((full_copies, partial_lines)));
    for (copy, nlines) in copies {
        let len = if nlines == 0 {
            0
        } else {
            src.line_ends[nlines - 1]
        };
        make_copy(src, copy, len, &mut buf);
        let mut line = 0usize;
        while line < nlines {
            if file.is_none() {
                let path = dir.join(format!("{}-{:04}.ndjson", src.rtype, files.len()));
                file = Some(
                    File::create(&path).with_context(|| format!("create {}", path.display()))?,
                );
                files.push(path);
                in_file = 0;
            }
            let take = ((lines_per_file - in_file) as usize).min(nlines - line);
            let start = if line == 0 {
                0
            } else {
                src.line_ends[line - 1]
            };
            let end = src.line_ends[line + take - 1];
            file.as_mut().unwrap().write_all(&buf[start..end])?;
            total_bytes += (end - start) as u64;
            line += take;
            in_file += take as u64;
            total_lines += take as u64;
            if in_file == lines_per_file {
                file = None;
            }
        }
    }
    Ok(TypeResult {
        rtype: src.rtype.clone(),
        lines: total_lines,
        bytes: total_bytes,
        files,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let target = parse_size(&args.size)?;
    if args.lines_per_file == 0 {
        bail!("--lines-per-file must be more than 0");
    }

    // The source's types, in name order.
    let mut inputs = Vec::new();
    for entry in
        fs::read_dir(&args.from).with_context(|| format!("read {}", args.from.display()))?
    {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = name
            .strip_suffix(".ndjson.gz")
            .or_else(|| name.strip_suffix(".ndjson"))
        {
            let rtype: String = stem
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            inputs.push((rtype, path));
        }
    }
    inputs.sort();
    for w in inputs.windows(2) {
        if w[0].0 == w[1].0 {
            bail!(
                "two source files for {}: {} and {}",
                w[0].0,
                w[0].1.display(),
                w[1].1.display()
            );
        }
    }
    if inputs.is_empty() {
        bail!(
            "no <Type>.ndjson or <Type>.ndjson.gz files in {}",
            args.from.display()
        );
    }
    let sources: Vec<Source> = inputs
        .into_par_iter()
        .map(|(t, p)| read_source(&p, t))
        .collect::<Result<_>>()?;
    let source_bytes: u64 = sources.iter().map(|s| s.data.len() as u64).sum();
    if source_bytes == 0 {
        bail!("the source has no lines");
    }
    let full_copies = target / source_bytes;
    let rest = target % source_bytes;

    // Lay out the output folder anew.
    fs::create_dir_all(&args.out)?;
    let _ = fs::remove_file(args.out.join("corpus.json"));
    for stale in ["plain", "healthlake"] {
        let p = args.out.join(stale);
        if p.exists() {
            fs::remove_dir_all(&p).with_context(|| format!("remove {}", p.display()))?;
        }
    }
    let plain = args.out.join("plain");

    let results: Vec<TypeResult> = sources
        .par_iter()
        .map(|src| {
            // This type's share of the remainder, as whole lines: the first lines of one
            // more copy that reach it.
            let want = (rest as u128 * src.data.len() as u128).div_ceil(source_bytes as u128);
            let partial = src.line_ends.partition_point(|&e| (e as u128) < want);
            let partial = if want == 0 {
                0
            } else {
                (partial + 1).min(src.line_ends.len())
            };
            write_type(
                src,
                full_copies,
                partial,
                args.lines_per_file,
                &plain.join(&src.rtype),
            )
        })
        .collect::<Result<_>>()?;

    // The HealthLake layout: links to the same files, and the export status naming them.
    let size_bytes = target.to_string();
    let lpf = args.lines_per_file.to_string();
    let src_bytes = source_bytes.to_string();
    let datastore = hex_id(&["fhirlake-bench datastore", &src_bytes]);
    let job = hex_id(&["fhirlake-bench job", &src_bytes, &size_bytes, &lpf]);
    let job_folder = format!("{datastore}-FHIR_EXPORT-{job}");
    let s3_job = format!("s3://fhirlake-bench/healthlake-output/{job_folder}/");
    let hl = args.out.join("healthlake");
    let mut output = Vec::new();
    let mut linked = 0usize;
    let mut copied = 0usize;
    for r in &results {
        let dir = hl.join(&job_folder).join(&r.rtype);
        fs::create_dir_all(&dir)?;
        let part = 1_000_000_000_000_000_000 + fnv(&[&job, &r.rtype]) % 8_000_000_000_000_000_000;
        for (k, f) in r.files.iter().enumerate() {
            let name = format!("{}-{part}-{}-0.ndjson", r.rtype, k + 1);
            let dest = dir.join(&name);
            if fs::hard_link(f, &dest).is_ok() {
                linked += 1;
            } else {
                fs::copy(f, &dest).with_context(|| format!("copy to {}", dest.display()))?;
                copied += 1;
            }
            output.push(json!({"type": r.rtype, "url": format!("{s3_job}{}/{name}", r.rtype)}));
        }
    }
    let status = json!({
        "exportJobProperties": {
            "jobId": job,
            "jobName": "fhirlake-bench",
            "jobStatus": "COMPLETED",
            "submitTime": "Jan 1, 2024 12:00:00 AM",
            "endTime": "Jan 1, 2024 12:10:00 AM",
            "datastoreId": datastore,
            "outputDataConfig": {
                "s3Configuration": {
                    "s3Uri": s3_job,
                    "kmsKeyId": "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-000000000000"
                }
            },
            "dataAccessRoleArn": "arn:aws:iam::111122223333:role/healthlake-export-role"
        },
        "transactionTime": "2024-01-01T00:10:00.000Z",
        "request": format!("https://healthlake.us-east-1.amazonaws.com/datastore/{datastore}/r4/$export?_outputFormat=application/fhir+ndjson"),
        "requiresAccessToken": false,
        "output": output,
        "error": []
    });
    fs::write(
        hl.join("export-status.json"),
        serde_json::to_string_pretty(&status)? + "\n",
    )?;

    let bytes_written: u64 = results.iter().map(|r| r.bytes).sum();
    let lines_written: u64 = results.iter().map(|r| r.lines).sum();
    let nfiles: usize = results.iter().map(|r| r.files.len()).sum();
    let mut types = serde_json::Map::new();
    for r in &results {
        types.insert(
            r.rtype.clone(),
            json!({"lines": r.lines, "bytes": r.bytes, "files": r.files.len()}),
        );
    }
    let corpus = json!({
        "generator": "fhirlake gen-corpus 1",
        "args": {
            "from": args.from.display().to_string(),
            "size": args.size,
            "lines_per_file": args.lines_per_file
        },
        "source": args.from.display().to_string(),
        "source_bytes": source_bytes,
        "size_requested": args.size,
        "size_requested_bytes": target,
        "bytes_written": bytes_written,
        "lines_written": lines_written,
        "copies": (bytes_written as f64 / source_bytes as f64 * 1e4).round() / 1e4,
        "full_copies": full_copies,
        "files": nfiles,
        "lines_per_type": results.iter().map(|r| (r.rtype.clone(), json!(r.lines))).collect::<serde_json::Map<_, _>>(),
        "types": types,
        "plain": "plain",
        "healthlake_manifest": "healthlake/export-status.json",
        "healthlake_job_folder": format!("healthlake/{job_folder}"),
    });
    fs::write(
        args.out.join("corpus.json"),
        serde_json::to_string_pretty(&corpus)? + "\n",
    )?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "gen-corpus: {} bytes ({:.2} GiB, {:.4} copies of {} source bytes), {} lines of {} types in {} files{}, into {} in {:.1} s ({:.0} MB/s)",
        bytes_written,
        bytes_written as f64 / (1u64 << 30) as f64,
        bytes_written as f64 / source_bytes as f64,
        source_bytes,
        lines_written,
        results.len(),
        nfiles,
        if copied > 0 { format!(" (healthlake: {linked} linked, {copied} copied)") } else { String::new() },
        args.out.display(),
        secs,
        bytes_written as f64 / 1e6 / secs
    );
    Ok(())
}
