//! `to-ndjson`: Parquet tables written by fhirlake back to FHIR NDJSON, one file per
//! resource type, for example to re-import into a FHIR server.

use crate::encode;
use crate::model::Model;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ToNdjsonError {
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Parquet files under `input` (a file, or a folder searched at any depth; hidden
/// folders, such as unfinished staging folders, are skipped).
pub fn parquet_files(input: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if name.ends_with(".parquet") {
                out.push(p);
            }
        }
    }
    if input.is_file() {
        return vec![input.to_path_buf()];
    }
    let mut out = Vec::new();
    walk(input, &mut out);
    out
}

/// Write every row of the Parquet files under `input` to `out/<ResourceType>.ndjson`;
/// returns rows written per resource type.
pub fn to_ndjson(input: &Path, out: &Path) -> Result<BTreeMap<String, u64>, ToNdjsonError> {
    let files = parquet_files(input);
    if files.is_empty() {
        return Err(ToNdjsonError::Input {
            path: input.display().to_string(),
            message: "no .parquet files found; give a Parquet file or a table folder written by fhirlake convert".into(),
        });
    }
    std::fs::create_dir_all(out).map_err(|source| ToNdjsonError::Write {
        path: out.display().to_string(),
        source,
    })?;
    let model = Model::r4();
    let mut writers: BTreeMap<String, std::io::BufWriter<std::fs::File>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for path in files {
        let input_err = |message: String| ToNdjsonError::Input {
            path: path.display().to_string(),
            message,
        };
        let file = std::fs::File::open(&path).map_err(|e| input_err(e.to_string()))?;
        let options =
            parquet::arrow::arrow_reader::ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
            .and_then(|b| b.with_batch_size(8192).build())
            .map_err(|e| input_err(format!("not a readable Parquet file: {e}")))?;
        for batch in reader {
            let batch = batch.map_err(|e| input_err(e.to_string()))?;
            let mut failure = None;
            let mut lines: Vec<(String, String)> = Vec::new();
            let rt = batch.column_by_name("resourceType").and_then(|c| {
                arrow_array::cast::AsArray::as_string_opt::<i32>(c.as_ref())
                    .map(|s| s.value(0).to_string())
            });
            encode::write_rows(&model, &batch, |line| {
                if let Some(rt) = &rt {
                    lines.push((rt.clone(), line.to_string()));
                }
            })
            .unwrap_or_else(|e| failure = Some(e));
            if let Some(e) = failure {
                return Err(input_err(e.to_string()));
            }
            for (rt, line) in lines {
                let w = match writers.get_mut(&rt) {
                    Some(w) => w,
                    None => {
                        let p = out.join(format!("{rt}.ndjson"));
                        let f =
                            std::fs::File::create(&p).map_err(|source| ToNdjsonError::Write {
                                path: p.display().to_string(),
                                source,
                            })?;
                        writers
                            .entry(rt.clone())
                            .or_insert(std::io::BufWriter::new(f))
                    }
                };
                w.write_all(line.as_bytes())
                    .and_then(|()| w.write_all(b"\n"))
                    .map_err(|source| ToNdjsonError::Write {
                        path: out.join(format!("{rt}.ndjson")).display().to_string(),
                        source,
                    })?;
                *counts.entry(rt).or_insert(0u64) += 1;
            }
        }
    }
    for (rt, mut w) in writers {
        w.flush().map_err(|source| ToNdjsonError::Write {
            path: out.join(format!("{rt}.ndjson")).display().to_string(),
            source,
        })?;
    }
    Ok(counts)
}
