//! Criterion benchmarks of each stage of the conversion pipeline on its own, on one
//! thread, with throughput in bytes of input NDJSON (so criterion prints MB/s):
//!
//! 1. `1_split_lines`: [`fhirlake::source::LineReader`] cutting a file on disk into chunks
//!    of whole lines of the tool's default chunk size, plain and gzip (Observation lines,
//!    written once at setup, so the file comes from the page cache; gzip at level 6);
//! 2. `2_parse`: simd-json tape parse of every line (`simd_json::to_tape_with_buffers`);
//! 3. `3_decode`: lines -> Arrow `RecordBatch` with [`fhirlake::decode::Decoder`], one
//!    batch per chunk of the default chunk size, as `convert` does;
//! 4. `4_parquet`: those batches widened to their merged schema and written to Parquet in
//!    memory with the writer properties of `sink::TableWriter`
//!    ([`fhirlake::sink::writer_properties`]; setup checks the bytes against a file
//!    written by `TableWriter`);
//! 5. `5_to_json`: the rows read back from that Parquet (as `to-ndjson` reads them) turned
//!    into FHIR JSON again with [`fhirlake::encode::write_rows`], without file writes.
//!
//! Stages 4 and 5 run on Observation and ExplanationOfBenefit. Defaults (chunk size, row
//! group size) are those of `--memory-limit 1GiB`, the CLI default.
//!
//! Data: up to 24 MB of lines per type from `../shared/data/synthea-small/ndjson`
//! (Patient, Observation, Claim, ExplanationOfBenefit) and the R4 spec's example Bundles
//! from `../shared/data/r4-examples/ndjson/Bundle.ndjson` (lines the decoder rejects are
//! left out). Skips with a message where `../shared/data` is absent.
//!
//! Run: `cargo bench --bench stages` (about 80 s once built, on 2 cores); a quick pass with
//! `cargo bench --bench stages -- --quick`; one stage with e.g.
//! `cargo bench --bench stages -- 3_decode`.

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use fhirlake::convert::ConvertOptions;
use fhirlake::decode::{DecodeOptions, Decoder};
use fhirlake::dest::Dest;
use fhirlake::manifest::{InputFile, Location, Role};
use fhirlake::model::Model;
use fhirlake::sink::{SinkSettings, TableWriter};
use fhirlake::source::LineReader;
use fhirlake::{encode, schema};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::hint::black_box;
use std::io::{BufRead, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The allocator the `fhirlake` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// NDJSON bytes taken per resource type, at most.
const TYPE_BYTES: usize = 24 << 20;
/// Synthea types, from `synthea-small/ndjson/<Type>.ndjson.gz`.
const SYNTHEA: [&str; 4] = ["Patient", "Observation", "Claim", "ExplanationOfBenefit"];
/// Types of stages 4 and 5.
const WRITE_TYPES: [&str; 2] = ["Observation", "ExplanationOfBenefit"];

/// The lines of one resource type.
struct Input {
    name: &'static str,
    lines: Vec<Vec<u8>>,
    /// NDJSON bytes, one line end per line.
    bytes: u64,
}

impl Input {
    fn new(name: &'static str, lines: Vec<Vec<u8>>) -> Input {
        let bytes = lines.iter().map(|l| l.len() as u64 + 1).sum();
        Input { name, lines, bytes }
    }
}

/// Up to `budget` bytes of the non-blank lines of `path` (gzip when named `.gz`).
fn read_lines(path: &Path, budget: usize) -> Option<Vec<Vec<u8>>> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            file,
        )))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let (mut lines, mut total, mut line) = (Vec::new(), 0, Vec::new());
    while total < budget {
        line.clear();
        if reader.read_until(b'\n', &mut line).ok()? == 0 {
            break;
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if !line.is_empty() {
            total += line.len() + 1;
            lines.push(line.clone());
        }
    }
    Some(lines)
}

fn load(data: &Path) -> Option<Vec<Input>> {
    let mut inputs = Vec::new();
    for name in SYNTHEA {
        let path = data.join(format!("synthea-small/ndjson/{name}.ndjson.gz"));
        inputs.push(Input::new(name, read_lines(&path, TYPE_BYTES)?));
    }
    let bundles = read_lines(&data.join("r4-examples/ndjson/Bundle.ndjson"), TYPE_BYTES)?;
    inputs.push(Input::new("Bundle", bundles));
    Some(inputs)
}

/// Consecutive lines of about `chunk_bytes`, as `LineReader` cuts them.
fn chunk_ranges(lines: &[Vec<u8>], chunk_bytes: usize) -> Vec<Range<usize>> {
    let (mut out, mut start, mut bytes) = (Vec::new(), 0, 0);
    for (i, l) in lines.iter().enumerate() {
        bytes += l.len() + 1;
        if bytes >= chunk_bytes {
            out.push(start..i + 1);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < lines.len() {
        out.push(start..lines.len());
    }
    out
}

/// `batches` widened to `schema` and written as one Parquet file in memory.
fn write_parquet(
    batches: &[RecordBatch],
    schema: &Arc<Schema>,
    props: &WriterProperties,
) -> Vec<u8> {
    let options = ArrowWriterOptions::new()
        .with_properties(props.clone())
        .with_skip_arrow_metadata(true);
    let mut writer =
        ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options).unwrap();
    for b in batches {
        writer.write(&schema::widen(b, schema)).unwrap();
    }
    writer.into_inner().unwrap()
}

/// What stages 4 and 5 work on, for one type.
struct Written {
    input: usize,
    batches: Vec<RecordBatch>,
    schema: Arc<Schema>,
    props: WriterProperties,
    /// Batches as `to-ndjson` reads them back from the Parquet.
    read_back: Vec<RecordBatch>,
}

fn bench_stages(c: &mut Criterion) {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let Some(mut inputs) = load(&data) else {
        eprintln!("SKIPPED stages benchmark: needs ../shared/data");
        return;
    };
    let model = Model::r4();
    let opts = ConvertOptions::for_memory(PathBuf::new(), 1 << 30, 1);
    let chunk_bytes = opts.chunk_bytes;
    let decoders: Vec<Decoder> = inputs
        .iter()
        .map(|i| Decoder::new(model.clone(), i.name, DecodeOptions::default()).unwrap())
        .collect();
    for (input, decoder) in inputs.iter_mut().zip(&decoders) {
        let rejected = decoder.decode(&input.lines).rejected;
        if !rejected.is_empty() {
            let drop: std::collections::HashSet<usize> = rejected.iter().map(|r| r.index).collect();
            let lines = std::mem::take(&mut input.lines);
            *input = Input::new(
                input.name,
                lines
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, l)| (!drop.contains(&i)).then_some(l))
                    .collect(),
            );
            eprintln!(
                "{}: left out {} lines the decoder rejects (first: {})",
                input.name,
                rejected.len(),
                rejected[0].reason
            );
        }
        eprintln!(
            "{}: {} lines, {:.1} MB",
            input.name,
            input.lines.len(),
            input.bytes as f64 / 1e6
        );
    }
    let ranges: Vec<Vec<Range<usize>>> = inputs
        .iter()
        .map(|i| chunk_ranges(&i.lines, chunk_bytes))
        .collect();

    // 1. Line splitting, from a file on disk.
    let observation = inputs.iter().position(|i| i.name == "Observation").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("Observation.ndjson");
    let gzip = dir.path().join("Observation.ndjson.gz");
    {
        let mut p = std::io::BufWriter::new(std::fs::File::create(&plain).unwrap());
        let mut g = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(std::fs::File::create(&gzip).unwrap()),
            flate2::Compression::default(),
        );
        for l in &inputs[observation].lines {
            for w in [&mut p as &mut dyn Write, &mut g] {
                w.write_all(l).unwrap();
                w.write_all(b"\n").unwrap();
            }
        }
        p.flush().unwrap();
        g.finish().unwrap().flush().unwrap();
    }
    let s3 = fhirlake::s3::LazyS3::default();
    let mut group = c.benchmark_group("1_split_lines");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(inputs[observation].bytes));
    for (label, path) in [("Observation_plain", &plain), ("Observation_gzip", &gzip)] {
        let file = InputFile {
            location: Location::Local(path.clone()),
            name: path.display().to_string(),
            resource_type: "Observation".into(),
            role: Role::Output,
            count: None,
            bytes: std::fs::metadata(path).unwrap().len(),
        };
        group.bench_function(label, |b| {
            b.iter(|| {
                let mut reader = LineReader::open(0, &file, chunk_bytes, &s3).unwrap();
                let mut lines = 0;
                while let Some(chunk) = reader.next_chunk().unwrap() {
                    lines += black_box(chunk).lines.len();
                }
                assert_eq!(lines, inputs[observation].lines.len());
                lines
            })
        });
    }
    group.finish();

    // 2. simd-json tape parse.
    let mut group = c.benchmark_group("2_parse");
    group.sampling_mode(SamplingMode::Flat);
    for input in &inputs {
        group.throughput(Throughput::Bytes(input.bytes));
        group.bench_function(input.name, |b| {
            let mut scratch = Vec::new();
            let mut buffers = simd_json::Buffers::new(4096);
            b.iter(|| {
                let mut nodes = 0;
                for l in &input.lines {
                    scratch.clear();
                    scratch.extend_from_slice(l);
                    let tape = simd_json::to_tape_with_buffers(&mut scratch, &mut buffers).unwrap();
                    nodes += tape.0.len();
                }
                nodes
            })
        });
    }
    group.finish();

    // 3. Decoding, one batch per chunk.
    let mut group = c.benchmark_group("3_decode");
    group.sampling_mode(SamplingMode::Flat);
    for ((input, decoder), ranges) in inputs.iter().zip(&decoders).zip(&ranges) {
        group.throughput(Throughput::Bytes(input.bytes));
        group.bench_function(input.name, |b| {
            b.iter(|| {
                let mut rows = 0;
                for r in ranges {
                    let d = decoder.decode(&input.lines[r.clone()]);
                    assert!(d.rejected.is_empty());
                    rows += d.batch.num_rows();
                }
                rows
            })
        });
    }
    group.finish();

    // Setup of 4 and 5: the batches, their merged schema, the Parquet and what reads back.
    let written: Vec<Written> = WRITE_TYPES
        .iter()
        .map(|name| {
            let i = inputs.iter().position(|x| x.name == *name).unwrap();
            let batches: Vec<RecordBatch> = ranges[i]
                .iter()
                .map(|r| decoders[i].decode(&inputs[i].lines[r.clone()]).batch)
                .collect();
            let merged = batches.iter().skip(1).fold(batches[0].schema().as_ref().clone(), |m, b| {
                schema::merge(&model, name, &m, &b.schema()).unwrap()
            });
            let schema = Arc::new(merged);
            let props = fhirlake::sink::writer_properties(
                &opts.sink,
                name,
                &model.fhir_version,
                &schema,
            );
            let parquet = write_parquet(&batches, &schema, &props);
            check_against_sink(&model, name, &opts.sink, &batches, &parquet);
            let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
                bytes::Bytes::from(parquet.clone()),
                ArrowReaderOptions::new().with_skip_arrow_metadata(true),
            )
            .and_then(|b| b.with_batch_size(8192).build())
            .unwrap();
            let read_back: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
            let mut json_bytes = 0;
            for b in &read_back {
                encode::write_rows(&model, b, |l| json_bytes += l.len() + 1).unwrap();
            }
            eprintln!(
                "{name}: {} batches, {} columns; Parquet {:.1} MB ({:.1}x smaller than the NDJSON); \
                 JSON written back {:.1} MB",
                batches.len(),
                schema.fields().len(),
                parquet.len() as f64 / 1e6,
                inputs[i].bytes as f64 / parquet.len() as f64,
                json_bytes as f64 / 1e6
            );
            Written {
                input: i,
                batches,
                schema,
                props,
                read_back,
            }
        })
        .collect();

    // 4. Parquet encoding, in memory.
    let mut group = c.benchmark_group("4_parquet");
    group.sampling_mode(SamplingMode::Flat);
    for w in &written {
        group.throughput(Throughput::Bytes(inputs[w.input].bytes));
        group.bench_function(inputs[w.input].name, |b| {
            b.iter(|| write_parquet(&w.batches, &w.schema, &w.props).len())
        });
    }
    group.finish();

    // 5. Arrow rows back to FHIR JSON.
    let mut group = c.benchmark_group("5_to_json");
    group.sampling_mode(SamplingMode::Flat);
    for w in &written {
        group.throughput(Throughput::Bytes(inputs[w.input].bytes));
        group.bench_function(inputs[w.input].name, |b| {
            b.iter(|| {
                let mut bytes = 0;
                for batch in &w.read_back {
                    encode::write_rows(&model, batch, |l| bytes += l.len() + 1).unwrap();
                }
                bytes
            })
        });
    }
    group.finish();
}

/// Writes `batches` with `sink::TableWriter` to a temporary folder and tells whether its
/// file is the bench's Parquet byte for byte (it should be while the properties above
/// match `sink.rs` and the batches fit the writer's buffer).
fn check_against_sink(
    model: &Arc<Model>,
    name: &str,
    settings: &SinkSettings,
    batches: &[RecordBatch],
    parquet: &[u8],
) {
    let dir = tempfile::tempdir().unwrap();
    let dest = Arc::new(Dest::Local(dir.path().to_path_buf()));
    let mut writer = TableWriter::new(dest, "t", "", name, model.clone(), settings.clone());
    for b in batches {
        writer.write(b.clone()).unwrap();
    }
    let files = writer.finish().unwrap();
    let same = files.len() == 1
        && std::fs::read(dir.path().join("t").join(&files[0].name)).unwrap() == parquet;
    eprintln!(
        "{name}: TableWriter wrote {} file(s), {} bytes; the bench's Parquet ({} bytes) is {}",
        files.len(),
        files.iter().map(|f| f.bytes).sum::<u64>(),
        parquet.len(),
        if same { "identical" } else { "DIFFERENT" }
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_stages
}
criterion_main!(benches);
