//! `reverse(decode(line)) == line` as JSON, for every resource of the R4 examples and the
//! SMART bulk sample, directly and through Parquet.

mod common;

use fhirlake::decode::{line::canonical_json, DecodeOptions, Decoder};
use fhirlake::encode;
use fhirlake::model::Model;
use std::path::Path;

fn resource_type_of(path: &Path) -> String {
    path.file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string()
}

/// Round-trips every line of every NDJSON file in `dir`; returns (files, lines).
fn roundtrip_dir(dir: &Path, via_parquet: bool) -> (usize, usize) {
    let model = Model::r4();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(".ndjson") && !p.ends_with("log.ndjson"))
        .collect();
    files.sort();
    let mut total = 0;
    let mut failures = Vec::new();
    for path in &files {
        let rt = resource_type_of(path);
        let lines = common::read_lines(path);
        let decoder = Decoder::new(model.clone(), &rt, DecodeOptions::default()).unwrap();
        let decoded = decoder.decode(&lines);
        for r in &decoded.rejected {
            failures.push(format!(
                "{}:{} rejected: {}",
                path.display(),
                r.index + 1,
                r.reason
            ));
        }
        let batch = if via_parquet {
            fhirlake_test_parquet(&decoded.batch)
        } else {
            decoded.batch
        };
        let out = encode::to_json_lines(&model, &batch).unwrap();
        let accepted: Vec<_> = (0..lines.len())
            .filter(|i| !decoded.rejected.iter().any(|r| r.index == *i))
            .collect();
        assert_eq!(out.len(), accepted.len());
        for (line_no, regenerated) in accepted.iter().zip(&out) {
            let want = canonical_json(&lines[*line_no]).unwrap();
            let got = canonical_json(regenerated.as_bytes()).unwrap();
            if want != got {
                let at = want
                    .bytes()
                    .zip(got.bytes())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                failures.push(format!(
                    "{}:{} differs at byte {at}: want …{}… got …{}…",
                    path.display(),
                    line_no + 1,
                    &want[at.saturating_sub(60)..(at + 60).min(want.len())],
                    &got[at.saturating_sub(60)..(at + 60).min(got.len())]
                ));
            }
        }
        total += lines.len();
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
    (files.len(), total)
}

fn fhirlake_test_parquet(batch: &arrow_array::RecordBatch) -> arrow_array::RecordBatch {
    use parquet::arrow::{arrow_reader::ParquetRecordBatchReaderBuilder, ArrowWriter};
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(buf))
        .unwrap()
        .with_batch_size(usize::MAX)
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    assert!(batches.len() <= 1);
    batches
        .into_iter()
        .next()
        .unwrap_or_else(|| arrow_array::RecordBatch::new_empty(batch.schema()))
}

#[test]
fn r4_examples_roundtrip() {
    let Some(data) = common::shared_data("r4_examples_roundtrip") else {
        return;
    };
    let (files, lines) = roundtrip_dir(&data.join("r4-examples/ndjson"), false);
    println!("round-tripped {lines} resources of {files} types (R4 examples)");
    assert_eq!(lines, 5293);
}

#[test]
fn smart_bulk_roundtrip() {
    let Some(data) = common::shared_data("smart_bulk_roundtrip") else {
        return;
    };
    let (files, lines) = roundtrip_dir(&data.join("smart-bulk-10-patients"), false);
    println!("round-tripped {lines} resources of {files} types (SMART bulk 10 patients)");
    assert_eq!(lines, 7160);
}

#[test]
fn r4_examples_roundtrip_through_parquet() {
    let Some(data) = common::shared_data("r4_examples_roundtrip_through_parquet") else {
        return;
    };
    let (files, lines) = roundtrip_dir(&data.join("r4-examples/ndjson"), true);
    println!("round-tripped {lines} resources of {files} types through Parquet (R4 examples)");
    assert_eq!(lines, 5293);
}

#[test]
fn smart_bulk_roundtrip_through_parquet() {
    let Some(data) = common::shared_data("smart_bulk_roundtrip_through_parquet") else {
        return;
    };
    let (files, lines) = roundtrip_dir(&data.join("smart-bulk-10-patients"), true);
    println!("round-tripped {lines} resources of {files} types through Parquet (SMART bulk)");
    assert_eq!(lines, 7160);
}

/// The committed fixtures: runs everywhere, with or without ../shared/data.
#[test]
fn fixtures_roundtrip_directly_and_through_parquet() {
    for via_parquet in [false, true] {
        let (files, lines) = roundtrip_dir(&common::fixtures().join("r4-examples"), via_parquet);
        println!("round-tripped {lines} resources of {files} types (fixtures/r4-examples, via Parquet: {via_parquet})");
        assert_eq!((files, lines), (17, 222));
        let (files, lines) = roundtrip_dir(&common::fixtures().join("smart-bulk"), via_parquet);
        println!("round-tripped {lines} resources of {files} types (fixtures/smart-bulk, via Parquet: {via_parquet})");
        assert_eq!((files, lines), (13, 240));
    }
}
