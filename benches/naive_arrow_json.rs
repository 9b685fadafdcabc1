//! The naive Rust pipeline fhirlake is compared with: per `.ndjson` file, infer a schema
//! from its first 10,000 lines with arrow-json, read it with that schema, write Parquet
//! (zstd level 1, as fhirlake) with `ArrowWriter`, on one thread.
//!
//! ```text
//! naive-arrow-json <input dir> <output dir> [--strict]
//! ```
//!
//! arrow-json by default ignores fields the inferred schema lacks (they are dropped);
//! `--strict` makes them errors. A file that does not fit its inferred schema is reported as
//! `<file>: failed: <reason>`, its output removed, and the run goes on. The last line sums up:
//! `naive-arrow-json: files=N ok=N failed=N bytes_total=N bytes_converted=N ...`.

use arrow_json::reader::{infer_json_schema_from_seekable, ReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[path = "support/files.rs"]
mod files;

fn convert(input: &Path, output: &Path, strict: bool) -> Result<u64, Box<dyn std::error::Error>> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(input)?);
    let (schema, _) = infer_json_schema_from_seekable(&mut reader, Some(10_000))?;
    let schema = Arc::new(schema);
    let batches = ReaderBuilder::new(schema.clone())
        .with_strict_mode(strict)
        .build(reader)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .build();
    let mut writer = ArrowWriter::try_new(File::create(output)?, schema, Some(props))?;
    let mut rows = 0;
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
    }
    writer.close()?;
    Ok(rows)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let strict = args.iter().any(|a| a == "--strict");
    let paths: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [input, output] = paths[..] else {
        eprintln!("usage: naive-arrow-json <input dir> <output dir> [--strict]");
        std::process::exit(2);
    };
    let (input, output) = (Path::new(input), Path::new(output));
    let started = Instant::now();
    let files = files::ndjson_files(input).expect("list the input folder");
    let (mut ok, mut failed, mut bytes_total, mut bytes_converted, mut rows) =
        (0, 0, 0u64, 0u64, 0u64);
    for f in &files {
        let size = fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        bytes_total += size;
        let rel = f.strip_prefix(input).unwrap_or(f);
        let dest = output.join(rel).with_extension("parquet");
        fs::create_dir_all(dest.parent().unwrap()).expect("create the output folder");
        match convert(f, &dest, strict) {
            Ok(n) => {
                ok += 1;
                rows += n;
                bytes_converted += size;
            }
            Err(e) => {
                failed += 1;
                let _ = fs::remove_file(&dest);
                println!("{}: failed: {e}", f.display());
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "naive-arrow-json: files={} ok={ok} failed={failed} bytes_total={bytes_total} bytes_converted={bytes_converted} rows={rows} seconds={secs:.3} MB/s={:.1}",
        files.len(),
        bytes_converted as f64 / 1e6 / secs
    );
}
