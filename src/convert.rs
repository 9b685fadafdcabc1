//! `convert`: a plan's files to partitioned Parquet, with quarantine and a run report.
//!
//! Per table (resource type), three stages run at once, joined by bounded queues so that
//! memory depends on the settings, not on the input:
//! 1. a reader thread cuts the table's files into chunks of whole lines;
//! 2. windows of chunks are decoded in parallel on rayon (one batch per chunk);
//! 3. a writer thread encodes the batches to Parquet.
//!
//! Layout: `DEST/<Type>/export=<id>/part-NNNNN.parquet` (or `DEST/<Type>/` with
//! `--partition none`), `DEST/_quarantine/export=<id>/<Type>.ndjson`,
//! `DEST/_runs/<id>.json`. Every table is first written to a hidden staging folder
//! (`.export=<id>.staging-<run>`, ignored by Athena, Spark and DuckDB globs); only when all
//! tables are written are the staging folders swapped in for the previous run's, and the
//! run report is written last. A crash or Ctrl-C leaves only hidden folders, which the
//! next run removes; a re-run replaces its partition and never duplicates rows.

use crate::decode::{DecodeOptions, Decoder};
use crate::manifest::{InputFile, Plan, Role};
use crate::model::Model;
use crate::progress::Progress;
use crate::report::{self, FileReport, RunReport, TableReport};
use crate::sink::{SinkSettings, TableWriter};
use crate::source::{Chunk, LineReader};
use base64::Engine as _;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::Instant;

/// Stack of the decoding and writing threads: deep FHIR nesting (Questionnaire.item in
/// item, up to the decoder's depth limit) recurses in the decoder and in the Parquet
/// writer. Virtual memory only; pages are touched as needed.
const WORKER_STACK: usize = 256 << 20;

fn spawn_big_stack<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(f)
        .expect("the system can start a thread")
}

/// The folder name of the table holding a manifest's `error[]` OperationOutcomes.
pub const ERROR_TABLE: &str = "ExportErrors";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Partitioning {
    /// `DEST/<Type>/export=<id>/`: successive exports side by side.
    Export,
    /// `DEST/<Type>/`: one export per destination.
    None,
}

/// When rejected lines make the run fail (exit code 3).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RejectLimit {
    Count(u64),
    Percent(f64),
}

impl std::str::FromStr for RejectLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a count (e.g. 100) or a percentage (e.g. 0.5%)");
        match s.strip_suffix('%') {
            Some(p) => {
                let v: f64 = p.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&v) {
                    return Err(bad());
                }
                Ok(RejectLimit::Percent(v))
            }
            None => s.trim().parse().map(RejectLimit::Count).map_err(|_| bad()),
        }
    }
}

impl RejectLimit {
    pub fn exceeded(&self, rejected: u64, lines: u64) -> bool {
        match *self {
            RejectLimit::Count(n) => rejected > n,
            RejectLimit::Percent(p) => lines > 0 && rejected as f64 * 100.0 / lines as f64 > p,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub out: PathBuf,
    pub partition: Partitioning,
    pub sink: SinkSettings,
    pub max_rejected: RejectLimit,
    /// Rayon threads for decoding.
    pub threads: usize,
    pub keep_unknown: bool,
    /// Target size of a chunk of lines.
    pub chunk_bytes: usize,
    /// Chunks decoded at once (and queued ahead of the decoders).
    pub window: usize,
    pub memory_limit: u64,
    pub quiet: bool,
    /// For files in S3.
    pub s3: crate::s3::LazyS3,
}

impl ConvertOptions {
    /// Settings that keep peak memory near `memory_limit`.
    pub fn for_memory(out: PathBuf, memory_limit: u64, threads: usize) -> ConvertOptions {
        let limit = memory_limit.max(64 << 20) as usize;
        let threads = threads.max(1);
        ConvertOptions {
            out,
            partition: Partitioning::Export,
            sink: SinkSettings {
                codec: crate::sink::Codec::Zstd,
                target_file_bytes: 256 << 20,
                row_group_bytes: (limit / 8).clamp(8 << 20, 128 << 20),
                buffer_bytes: (limit / 16).clamp(4 << 20, 64 << 20),
            },
            max_rejected: RejectLimit::Count(0),
            threads,
            keep_unknown: false,
            chunk_bytes: (limit / 128).clamp(1 << 20, 8 << 20),
            window: threads * 2,
            memory_limit: memory_limit.max(64 << 20),
            quiet: false,
            s3: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Sink(#[from] crate::sink::SinkError),
    #[error("{0}")]
    Setup(String),
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// The outcome of a run.
pub struct Outcome {
    pub report: RunReport,
    /// True when the rejected lines exceed `--max-rejected`.
    pub over_threshold: bool,
}

struct Table<'p> {
    folder: String,
    resource_type: String,
    files: Vec<(usize, &'p InputFile)>,
}

/// Where a table's and the quarantine's files go.
struct Layout {
    out: PathBuf,
    export_id: String,
    run_id: String,
    partition: Partitioning,
}

impl Layout {
    /// The published folder of a table (or `_quarantine`).
    fn final_dir(&self, folder: &str) -> PathBuf {
        match self.partition {
            Partitioning::Export => self
                .out
                .join(folder)
                .join(format!("export={}", self.export_id)),
            Partitioning::None => self.out.join(folder),
        }
    }
    fn rel_final(&self, folder: &str) -> String {
        match self.partition {
            Partitioning::Export => format!("{folder}/export={}", self.export_id),
            Partitioning::None => folder.to_string(),
        }
    }
    /// The hidden folder a table is written to before it is published.
    fn staging_dir(&self, folder: &str) -> PathBuf {
        self.hidden(folder, &format!("staging-{}", self.run_id))
    }
    fn hidden(&self, folder: &str, what: &str) -> PathBuf {
        match self.partition {
            Partitioning::Export => self
                .out
                .join(folder)
                .join(format!(".export={}.{what}", self.export_id)),
            Partitioning::None => self.out.join(format!(".{folder}.{what}")),
        }
    }
    /// Remove hidden folders left by interrupted runs of this export.
    fn clean_leftovers(&self, folder: &str) {
        let (parent, prefix) = match self.partition {
            Partitioning::Export => (
                self.out.join(folder),
                format!(".export={}.", self.export_id),
            ),
            Partitioning::None => (self.out.clone(), format!(".{folder}.")),
        };
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    /// Swap a staged folder in for the published one.
    fn publish(&self, folder: &str) -> Result<(), ConvertError> {
        let staged = self.staging_dir(folder);
        let target = self.final_dir(folder);
        let old = self.hidden(folder, &format!("old-{}", self.run_id));
        if target.exists() {
            std::fs::rename(&target, &old).map_err(write_err(&target))?;
        }
        std::fs::rename(&staged, &target).map_err(write_err(&target))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(write_err(&old))?;
        }
        Ok(())
    }
}

/// Rejected lines of one table, written as NDJSON: file, line, id, reason, raw text.
struct Quarantine {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl Quarantine {
    fn write(&mut self, record: &serde_json::Value) -> Result<(), ConvertError> {
        if self.out.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(write_err(dir))?;
            }
            let f = std::fs::File::create(&self.path).map_err(write_err(&self.path))?;
            self.out = Some(std::io::BufWriter::new(f));
        }
        let out = self.out.as_mut().expect("opened above");
        serde_json::to_writer(&mut *out, record).map_err(|e| ConvertError::Write {
            path: self.path.display().to_string(),
            source: e.into(),
        })?;
        out.write_all(b"\n").map_err(write_err(&self.path))
    }
    fn finish(self) -> Result<bool, ConvertError> {
        match self.out {
            Some(mut w) => {
                w.flush().map_err(write_err(&self.path))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Convert every file of `plan` into `opts.out`.
pub fn convert(plan: &Plan, input: &str, opts: &ConvertOptions) -> Result<Outcome, ConvertError> {
    let started = Instant::now();
    let started_at = report::now_utc();
    let model = Model::r4();
    let run_id = format!(
        "{}-{}",
        started_at.replace([':', '.'], "").replace('-', ""),
        std::process::id()
    );
    let layout = Layout {
        out: opts.out.clone(),
        export_id: plan.export_id.clone(),
        run_id: run_id.clone(),
        partition: opts.partition,
    };
    std::fs::create_dir_all(&opts.out).map_err(write_err(&opts.out))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .stack_size(WORKER_STACK)
        .build()
        .map_err(|e| ConvertError::Setup(format!("cannot start {} threads: {e}", opts.threads)))?;

    // Tables: one per resource type of the output files, plus the error table.
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for (i, f) in plan.files.iter().enumerate() {
        let folder = match f.role {
            Role::Output => f.resource_type.clone(),
            Role::Error => ERROR_TABLE.to_string(),
        };
        tables
            .entry(folder.clone())
            .or_insert_with(|| Table {
                folder,
                resource_type: f.resource_type.clone(),
                files: Vec::new(),
            })
            .files
            .push((i, f));
    }

    let progress = Progress::new(plan.total_bytes(), opts.quiet);
    let mut file_reports: Vec<FileReport> = plan
        .files
        .iter()
        .map(|f| FileReport {
            name: f.name.clone(),
            resource_type: f.resource_type.clone(),
            role: f.role,
            bytes: f.bytes,
            ndjson_bytes: 0,
            lines: 0,
            rows: 0,
            rejected: 0,
            manifest_count: f.count,
        })
        .collect();
    let quarantine_dir = layout.staging_dir("_quarantine");
    layout.clean_leftovers("_quarantine");
    let mut any_quarantined = false;

    // Large tables one at a time, each using every thread; small ones several at once, so
    // that an export of many small types keeps the cores busy too.
    let small_limit = (opts.chunk_bytes * opts.window) as u64;
    let (small, big): (Vec<&Table>, Vec<&Table>) =
        tables.values().partition(|t| t.bytes() < small_limit);
    let ctx = TableContext {
        model: &model,
        opts,
        pool: &pool,
        layout: &layout,
        quarantine_dir: &quarantine_dir,
        progress: &progress,
    };
    let mut outcomes = Vec::with_capacity(tables.len());
    for table in big {
        outcomes.push(run_table(table, &ctx)?);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..opts.threads.clamp(1, 4) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(table) = small.get(i) else { break };
                let outcome = run_table(table, &ctx);
                let failed = outcome.is_err();
                done.lock()
                    .expect("no panics while holding the lock")
                    .push(outcome);
                if failed {
                    next.store(small.len(), std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    for outcome in done.into_inner().expect("workers finished") {
        outcomes.push(outcome?);
    }
    let mut table_reports = BTreeMap::new();
    for outcome in outcomes {
        any_quarantined |= outcome.quarantined;
        for (i, stats) in outcome.stats {
            let fr = &mut file_reports[i];
            fr.ndjson_bytes += stats.ndjson_bytes;
            fr.lines += stats.lines;
            fr.rows += stats.rows;
            fr.rejected += stats.rejected;
        }
        table_reports.insert(outcome.folder, outcome.report);
    }
    progress.finish();

    // Every table is written: publish them, then the quarantine, then the report.
    for table in tables.values() {
        layout.publish(&table.folder)?;
    }
    let quarantine_final = layout.final_dir("_quarantine");
    if any_quarantined {
        layout.publish("_quarantine")?;
    } else {
        let _ = std::fs::remove_dir_all(&quarantine_dir);
        if quarantine_final.exists() {
            // A previous run's quarantine of this export no longer applies.
            std::fs::remove_dir_all(&quarantine_final).map_err(write_err(&quarantine_final))?;
        }
    }

    let mut report = RunReport {
        tool: "fhirlake".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        fhir_version: model.fhir_version.clone(),
        export_id: plan.export_id.clone(),
        input: input.to_string(),
        input_kind: plan.kind,
        transaction_time: plan.transaction_time.clone(),
        job_status: plan.job_status.clone(),
        run_id,
        started_at,
        finished_at: report::now_utc(),
        seconds: started.elapsed().as_secs_f64(),
        status: String::new(),
        options: options_json(opts),
        totals: Default::default(),
        reconciled: false,
        tables: table_reports,
        files: file_reports,
        deleted: plan.deleted.clone(),
        quarantine: any_quarantined.then(|| layout.rel_final("_quarantine")),
    };
    report.reconcile();
    let over = opts
        .max_rejected
        .exceeded(report.totals.rejected, report.totals.lines);
    report.status = if over {
        "rejected-over-threshold"
    } else {
        "succeeded"
    }
    .into();
    write_report(&opts.out, &plan.export_id, &report)?;
    Ok(Outcome {
        report,
        over_threshold: over,
    })
}

fn options_json(opts: &ConvertOptions) -> serde_json::Value {
    serde_json::json!({
        "partition": opts.partition,
        "compression": opts.sink.codec,
        "targetFileBytes": opts.sink.target_file_bytes,
        "rowGroupBytes": opts.sink.row_group_bytes,
        "maxRejected": opts.max_rejected,
        "threads": opts.threads,
        "keepUnknown": opts.keep_unknown,
        "chunkBytes": opts.chunk_bytes,
        "memoryLimit": opts.memory_limit,
    })
}

fn write_report(out: &Path, export_id: &str, report: &RunReport) -> Result<(), ConvertError> {
    let dir = out.join("_runs");
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    let path = dir.join(format!("{export_id}.json"));
    let tmp = dir.join(format!(".{export_id}.json.tmp"));
    let text = serde_json::to_vec_pretty(report).expect("the report serialises");
    std::fs::write(&tmp, text).map_err(write_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(write_err(&path))
}

/// What every table's run shares.
struct TableContext<'a> {
    model: &'a Arc<Model>,
    opts: &'a ConvertOptions,
    pool: &'a rayon::ThreadPool,
    layout: &'a Layout,
    quarantine_dir: &'a Path,
    progress: &'a Progress,
}

/// Counts of one input file.
#[derive(Debug, Clone, Copy, Default)]
struct FileStats {
    ndjson_bytes: u64,
    lines: u64,
    rows: u64,
    rejected: u64,
}

struct TableOutcome {
    folder: String,
    report: TableReport,
    stats: BTreeMap<usize, FileStats>,
    quarantined: bool,
}

impl Table<'_> {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, f)| f.bytes).sum()
    }
}

/// Convert one table into its staging folder.
fn run_table(table: &Table<'_>, cx: &TableContext<'_>) -> Result<TableOutcome, ConvertError> {
    cx.layout.clean_leftovers(&table.folder);
    let staged = cx.layout.staging_dir(&table.folder);
    std::fs::create_dir_all(&staged).map_err(write_err(&staged))?;
    let mut quarantine = Quarantine {
        path: cx.quarantine_dir.join(format!("{}.ndjson", table.folder)),
        out: None,
    };
    let t0 = Instant::now();
    cx.progress.start_table(&table.folder, table.bytes());
    let mut stats: BTreeMap<usize, FileStats> = table
        .files
        .iter()
        .map(|(i, _)| (*i, FileStats::default()))
        .collect();
    let outputs = convert_table(table, cx, &staged, &mut stats, &mut quarantine)?;
    let quarantined = quarantine.finish()?;
    let mut report = TableReport {
        resource_type: table.resource_type.clone(),
        path: cx.layout.rel_final(&table.folder),
        input_files: table.files.len() as u64,
        bytes: table.bytes(),
        seconds: t0.elapsed().as_secs_f64(),
        ..Default::default()
    };
    for st in stats.values() {
        report.ndjson_bytes += st.ndjson_bytes;
        report.lines += st.lines;
        report.rows += st.rows;
        report.rejected += st.rejected;
    }
    report.output_bytes = outputs.iter().map(|o| o.bytes).sum();
    report.output_files = outputs;
    cx.progress
        .finish_table(&table.folder, report.rows, report.rejected);
    Ok(TableOutcome {
        folder: table.folder.clone(),
        report,
        stats,
        quarantined,
    })
}

/// Read, decode and write one table.
fn convert_table(
    table: &Table<'_>,
    cx: &TableContext<'_>,
    staged: &Path,
    stats: &mut BTreeMap<usize, FileStats>,
    quarantine: &mut Quarantine,
) -> Result<Vec<crate::sink::OutputFile>, ConvertError> {
    let (model, opts) = (cx.model, cx.opts);
    let decoder = Decoder::new(
        model.clone(),
        &table.resource_type,
        DecodeOptions {
            keep_unknown: opts.keep_unknown,
        },
    )
    .map_err(|e| ConvertError::Setup(e.to_string()))?;

    // Stage 1: the reader.
    let (chunk_tx, chunk_rx) = sync_channel::<Result<Chunk, ConvertError>>(opts.window);
    let files: Vec<(usize, InputFile)> = table
        .files
        .iter()
        .map(|(i, f)| (*i, (*f).clone()))
        .collect();
    let chunk_bytes = opts.chunk_bytes;
    let s3 = opts.s3.clone();
    let reader = std::thread::spawn(move || {
        for (index, file) in files {
            let read_err = |source| ConvertError::Read {
                file: file.name.clone(),
                source,
            };
            let mut lr = match LineReader::open(index, &file, chunk_bytes, &s3) {
                Ok(r) => r,
                Err(e) => {
                    let _ = chunk_tx.send(Err(read_err(e)));
                    return;
                }
            };
            loop {
                let item = match lr.next_chunk() {
                    Ok(None) => break,
                    Ok(Some(c)) => Ok(c),
                    Err(e) => Err(read_err(e)),
                };
                let failed = item.is_err();
                // A closed queue means the run stopped: nothing more to read.
                if chunk_tx.send(item).is_err() || failed {
                    return;
                }
            }
        }
    });

    // Stage 3: the writer.
    let (batch_tx, batch_rx) = sync_channel::<arrow_array::RecordBatch>(opts.window);
    let mut writer = TableWriter::new(
        staged,
        &table.resource_type,
        model.clone(),
        opts.sink.clone(),
    );
    let writer_thread = spawn_big_stack(
        move || -> Result<Vec<crate::sink::OutputFile>, ConvertError> {
            for batch in batch_rx {
                writer.write(batch)?;
            }
            Ok(writer.finish()?)
        },
    );

    // Stage 2: decode windows of chunks in parallel, hand batches on in order.
    let names: BTreeMap<usize, &str> = table
        .files
        .iter()
        .map(|(i, f)| (*i, f.name.as_str()))
        .collect();
    let sinks = Sinks {
        table: &table.folder,
        batches: &batch_tx,
        quarantine,
        progress: cx.progress,
    };
    let result = decode_loop(
        &chunk_rx,
        opts.window,
        &decoder,
        cx.pool,
        sinks,
        stats,
        &names,
    );
    drop(batch_tx);
    drop(chunk_rx);
    let _ = reader.join();
    let written = writer_thread.join().map_err(|_| {
        ConvertError::Setup("the Parquet writer thread stopped unexpectedly".into())
    })?;
    result?;
    written
}

/// Where decoded chunks go.
struct Sinks<'a> {
    /// The table's folder name, for progress.
    table: &'a str,
    batches: &'a std::sync::mpsc::SyncSender<arrow_array::RecordBatch>,
    quarantine: &'a mut Quarantine,
    progress: &'a Progress,
}

fn decode_loop(
    chunk_rx: &Receiver<Result<Chunk, ConvertError>>,
    window: usize,
    decoder: &Decoder,
    pool: &rayon::ThreadPool,
    sinks: Sinks<'_>,
    stats: &mut BTreeMap<usize, FileStats>,
    names: &BTreeMap<usize, &str>,
) -> Result<(), ConvertError> {
    let Sinks {
        table,
        batches: batch_tx,
        quarantine,
        progress,
    } = sinks;
    loop {
        let mut chunks = Vec::with_capacity(window);
        for next in chunk_rx.iter().take(window) {
            chunks.push(next?);
        }
        if chunks.is_empty() {
            return Ok(());
        }
        let decoded: Vec<_> = pool.install(|| {
            chunks
                .par_iter()
                .map(|c| decoder.decode(&c.line_slices()))
                .collect()
        });
        for (chunk, d) in chunks.iter().zip(decoded) {
            let fr = stats.entry(chunk.file).or_default();
            let lines = chunk.lines.len() as u64;
            let rejected = d.rejected.len() as u64;
            fr.lines += lines;
            fr.rejected += rejected;
            fr.rows += lines - rejected;
            fr.ndjson_bytes += chunk.bytes;
            for r in &d.rejected {
                let raw = chunk.line(r.index);
                let mut record = serde_json::json!({
                    "file": names.get(&chunk.file).copied().unwrap_or_default(),
                    "line": chunk.first_line + r.index as u64,
                    "resourceType": decoder.resource_type(),
                    "id": r.id,
                    "reason": r.reason,
                });
                match std::str::from_utf8(raw) {
                    Ok(text) => record["raw"] = text.into(),
                    Err(_) => {
                        record["rawBase64"] =
                            base64::engine::general_purpose::STANDARD.encode(raw).into()
                    }
                }
                quarantine.write(&record)?;
            }
            progress.advance(table, chunk.source_bytes, lines - rejected);
            if batch_tx.send(d.batch).is_err() {
                // The writer stopped: its error is reported when it is joined.
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_limits() {
        let c: RejectLimit = "0".parse().unwrap();
        assert!(!c.exceeded(0, 10) && c.exceeded(1, 10));
        let c: RejectLimit = "2".parse().unwrap();
        assert!(!c.exceeded(2, 10) && c.exceeded(3, 10));
        let p: RejectLimit = "0.5%".parse().unwrap();
        assert!(!p.exceeded(5, 1000) && p.exceeded(6, 1000));
        assert!(!p.exceeded(0, 0));
        assert!("ten".parse::<RejectLimit>().is_err());
        assert!("150%".parse::<RejectLimit>().is_err());
    }
}
