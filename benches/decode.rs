//! Criterion benchmarks of the decoder: Synthea Observation NDJSON -> Arrow RecordBatches
//! (no Parquet), on one thread and on all threads, beside simd-json's bare tape parse.
//!
//! Needs ../shared/data/synthea-small (skips with a message where it is absent).
//! Run: `cargo bench --bench decode`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fhirlake::decode::{DecodeOptions, Decoder};
use fhirlake::model::Model;
use std::io::Read;
use std::path::PathBuf;

/// The allocator the `fhirlake` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How many Observation lines to decode per iteration (about 40 MB).
const LINES: usize = 40_000;
const BATCH_ROWS: usize = 4096;

fn observation_lines() -> Option<Vec<Vec<u8>>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/synthea-small/ndjson/Observation.ndjson.gz");
    let file = std::fs::File::open(&path).ok()?;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut text)
        .ok()?;
    Some(
        text.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .take(LINES)
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

fn bench_decode(c: &mut Criterion) {
    let Some(lines) = observation_lines() else {
        eprintln!("SKIPPED decode benchmark: needs ../shared/data/synthea-small");
        return;
    };
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let decoder = Decoder::new(Model::r4(), "Observation", DecodeOptions::default()).unwrap();
    let mut group = c.benchmark_group("synthea_observation");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);

    group.bench_function("simd_json_tape_parse_1_thread", |b| {
        let mut scratch = Vec::new();
        let mut buffers = simd_json::Buffers::new(4096);
        b.iter(|| {
            let mut nodes = 0;
            for l in &lines {
                scratch.clear();
                scratch.extend_from_slice(l);
                let tape = simd_json::to_tape_with_buffers(&mut scratch, &mut buffers).unwrap();
                nodes += tape.0.len();
            }
            nodes
        })
    });
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        group.bench_function(format!("decode_{threads}_thread"), |b| {
            b.iter(|| {
                pool.install(|| {
                    let out = decoder.decode_parallel(&lines, BATCH_ROWS);
                    assert!(out.iter().all(|d| d.rejected.is_empty()));
                    out.iter().map(|d| d.batch.num_rows()).sum::<usize>()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
