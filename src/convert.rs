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
use crate::dest::Dest;
use crate::manifest::{InputFile, Plan, Role};
use crate::model::Model;
use crate::progress::Progress;
use crate::report::{self, FileReport, RunReport, TableReport};
use crate::sink::{SinkSettings, TableWriter};
use crate::source::{Chunk, LineReader};
use base64::Engine as _;
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

/// Threads are named (`fhirlake-read`, `-decode-N`, `-write`) so that profiles (`perf
/// report --sort comm`) show each stage's share.
fn spawn_big_stack<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.to_string())
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
    /// Encryption of objects written to S3.
    pub sse: crate::s3::Sse,
    /// Part size of multipart uploads to S3.
    pub upload_part_bytes: usize,
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
                // Tables are written side by side, each buffering a row group.
                row_group_bytes: (limit / 4 / concurrent_tables(threads)).clamp(8 << 20, 128 << 20),
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
            sse: Default::default(),
            upload_part_bytes: 16 << 20,
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
    #[error(transparent)]
    S3(#[from] crate::s3::S3Error),
    #[error("{0}")]
    Setup(String),
    /// The run failed; its failure report is at `report`.
    #[error("{source}; the run was not committed (see {report})")]
    Reported {
        source: Box<ConvertError>,
        report: String,
    },
    /// The run committed, but a step after the commit failed.
    #[error("{0}")]
    AfterCommit(String),
}

impl ConvertError {
    /// The I/O error underneath, if there is one.
    fn io(&self) -> Option<&std::io::Error> {
        match self {
            ConvertError::Reported { source, .. } => source.io(),
            ConvertError::Read { source, .. } | ConvertError::Write { source, .. } => Some(source),
            ConvertError::Sink(crate::sink::SinkError::Io { source, .. }) => Some(source),
            ConvertError::Sink(crate::sink::SinkError::Parquet {
                source: parquet::errors::ParquetError::External(e),
                ..
            }) => e.downcast_ref::<std::io::Error>(),
            _ => None,
        }
    }

    /// True when the user has something to fix: credentials, permissions, region or a
    /// missing bucket in S3, or a destination the user may not write to.
    pub fn is_user_error(&self) -> bool {
        match self {
            ConvertError::S3(e) => e.is_user_error(),
            ConvertError::Reported { source, .. } => source.is_user_error(),
            _ => self
                .io()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied),
        }
    }

    /// Where reading an S3 object failed for good, if that is what stopped the run.
    pub fn read_failure(&self) -> Option<&crate::s3::ReadFailure> {
        self.io().and_then(crate::s3::ReadFailure::find)
    }
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
///
/// On disk, a run writes into hidden staging folders and renames them into place at the
/// end. In S3, which has no rename, a run writes objects under names of its own
/// (`part-<run>-NNNNN.parquet`) straight into the partition; the run report, written
/// last, lists exactly them, and only then are the earlier run's objects deleted.
struct Layout {
    dest: Arc<Dest>,
    export_id: String,
    run_id: String,
    partition: Partitioning,
}

impl Layout {
    /// The published folder of a table (or `_quarantine`), relative to the destination.
    fn rel_final(&self, folder: &str) -> String {
        match self.partition {
            Partitioning::Export => format!("{folder}/export={}", self.export_id),
            Partitioning::None => folder.to_string(),
        }
    }
    /// Where this run writes a table's files.
    fn rel_write(&self, folder: &str) -> String {
        if self.dest.is_s3() {
            self.rel_final(folder)
        } else {
            self.rel_hidden(folder, &format!("staging-{}", self.run_id))
        }
    }
    /// Put before each file name this run writes.
    fn name_prefix(&self) -> String {
        if self.dest.is_s3() {
            format!("{}-", self.run_id)
        } else {
            String::new()
        }
    }
    fn rel_hidden(&self, folder: &str, what: &str) -> String {
        match self.partition {
            Partitioning::Export => format!("{folder}/.export={}.{what}", self.export_id),
            Partitioning::None => format!(".{folder}.{what}"),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dest.local_path(rel).expect("a local destination")
    }
    /// Remove hidden folders left by interrupted runs of this export (on disk; in S3 the
    /// objects of unfinished runs are deleted after the next commit).
    fn clean_leftovers(&self, folder: &str) {
        let Dest::Local(out) = &*self.dest else {
            return;
        };
        let (parent, prefix) = match self.partition {
            Partitioning::Export => (out.join(folder), format!(".export={}.", self.export_id)),
            Partitioning::None => (out.clone(), format!(".{folder}.")),
        };
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    /// Make sure the folder a table is written to exists, even if it gets no file.
    fn prepare(&self, folder: &str) -> Result<(), ConvertError> {
        if !self.dest.is_s3() {
            let staged = self.path(&self.rel_write(folder));
            std::fs::create_dir_all(&staged).map_err(write_err(&staged))?;
        }
        Ok(())
    }
    /// Swap a staged folder in for the published one (on disk).
    fn publish(&self, folder: &str) -> Result<(), ConvertError> {
        if self.dest.is_s3() {
            return Ok(());
        }
        let staged = self.path(&self.rel_write(folder));
        let target = self.path(&self.rel_final(folder));
        let old = self.path(&self.rel_hidden(folder, &format!("old-{}", self.run_id)));
        if target.exists() {
            std::fs::rename(&target, &old).map_err(write_err(&target))?;
        }
        std::fs::rename(&staged, &target).map_err(write_err(&target))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(write_err(&old))?;
        }
        Ok(())
    }
    /// The quarantine file of a table, relative to the destination.
    fn quarantine_file(&self, table: &str) -> String {
        format!(
            "{}/{}{table}.ndjson",
            self.rel_write("_quarantine"),
            self.name_prefix()
        )
    }
}

/// Rejected lines of one table, written as NDJSON: file, line, id, reason, raw text.
struct Quarantine {
    dest: Arc<Dest>,
    rel: String,
    out: Option<Box<dyn crate::dest::Output>>,
}

impl Quarantine {
    fn err(&self) -> impl Fn(std::io::Error) -> ConvertError + '_ {
        move |source| ConvertError::Write {
            path: self.dest.display(&self.rel),
            source,
        }
    }
    fn write(&mut self, record: &serde_json::Value) -> Result<(), ConvertError> {
        if self.out.is_none() {
            let out = self.dest.create(&self.rel).map_err(self.err())?;
            self.out = Some(out);
        }
        let mut line = serde_json::to_vec(record).expect("a JSON value serialises");
        line.push(b'\n');
        let result = self.out.as_mut().expect("opened above").write_all(&line);
        result.map_err(self.err())
    }
    fn finish(mut self) -> Result<bool, ConvertError> {
        match self.out.take() {
            Some(out) => {
                out.complete().map_err(self.err())?;
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
    let run_id = format!(
        "{}-{}",
        started_at.replace([':', '.'], "").replace('-', ""),
        std::process::id()
    );
    let dest = Arc::new(match crate::s3::S3Url::parse(&opts.out.to_string_lossy()) {
        Some(mut base) => {
            if !base.key.is_empty() && !base.key.ends_with('/') {
                base.key.push('/');
            }
            Dest::S3 {
                s3: opts.s3.get()?,
                base,
                sse: opts.sse.clone(),
                part_size: opts.upload_part_bytes,
            }
        }
        None => {
            std::fs::create_dir_all(&opts.out).map_err(write_err(&opts.out))?;
            Dest::Local(opts.out.clone())
        }
    });
    let run = RunIds {
        run_id,
        started_at,
        started,
    };
    match convert_into(plan, input, opts, &dest, &run) {
        Ok(outcome) => {
            // This run committed: a failure report of an earlier run no longer applies.
            remove_failure_report(&dest, &plan.export_id);
            Ok(outcome)
        }
        Err(err @ ConvertError::AfterCommit(_)) => Err(err),
        Err(err) => match write_failure_report(&dest, plan, input, &run, &err) {
            Some(report) => Err(ConvertError::Reported {
                source: Box::new(err),
                report,
            }),
            // Best effort: the error itself is what the caller reports.
            None => Err(err),
        },
    }
}

/// When and as what a run started.
struct RunIds {
    run_id: String,
    started_at: String,
    started: Instant,
}

fn convert_into(
    plan: &Plan,
    input: &str,
    opts: &ConvertOptions,
    dest: &Arc<Dest>,
    run: &RunIds,
) -> Result<Outcome, ConvertError> {
    let model = Model::r4();
    let layout = Layout {
        dest: dest.clone(),
        export_id: plan.export_id.clone(),
        run_id: run.run_id.clone(),
        partition: opts.partition,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .thread_name(|i| format!("fhirlake-decode-{i}"))
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
    layout.clean_leftovers("_quarantine");
    let mut any_quarantined = false;

    // Tables run side by side (two on two cores), largest first, sharing the decoding
    // threads: one table's start and end, when its reader fills the pipeline or its
    // writer closes the last file, overlap another's decoding instead of idling cores.
    let mut order: Vec<&Table> = tables.values().collect();
    order.sort_by_key(|t| std::cmp::Reverse(t.bytes()));
    let ctx = TableContext {
        model: &model,
        opts,
        pool: &pool,
        layout: &layout,
        progress: &progress,
    };
    let mut outcomes = Vec::with_capacity(tables.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..concurrent_tables(opts.threads) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(table) = order.get(i) else { break };
                let outcome = run_table(table, &ctx);
                let failed = outcome.is_err();
                done.lock()
                    .expect("no panics while holding the lock")
                    .push(outcome);
                if failed {
                    next.store(order.len(), std::sync::atomic::Ordering::Relaxed);
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
    if any_quarantined {
        layout.publish("_quarantine")?;
    } else if let Dest::Local(_) = &**dest {
        let _ = std::fs::remove_dir_all(layout.path(&layout.rel_write("_quarantine")));
        let quarantine_final = layout.path(&layout.rel_final("_quarantine"));
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
        run_id: run.run_id.clone(),
        started_at: run.started_at.clone(),
        finished_at: report::now_utc(),
        seconds: run.started.elapsed().as_secs_f64(),
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
    write_report(dest, &plan.export_id, &report)?;
    if let Dest::S3 { s3, .. } = &**dest {
        remove_superseded_objects(s3, dest, &layout, &report)?;
    }
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

/// Write the run report: the commit point of a run.
fn write_report(dest: &Dest, export_id: &str, report: &RunReport) -> Result<(), ConvertError> {
    let rel = format!("_runs/{export_id}.json");
    let text = serde_json::to_vec_pretty(report).expect("the report serialises");
    match dest {
        Dest::Local(out) => {
            let dir = out.join("_runs");
            std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
            let path = dir.join(format!("{export_id}.json"));
            let tmp = dir.join(format!(".{export_id}.json.tmp"));
            std::fs::write(&tmp, text).map_err(write_err(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(write_err(&path))
        }
        Dest::S3 { .. } => dest.put(&rel, text).map_err(|source| ConvertError::Write {
            path: dest.display(&rel),
            source,
        }),
    }
}

fn failure_report_rel(export_id: &str) -> String {
    format!("_runs/{export_id}.failed.json")
}

/// Record why a run failed in `DEST/_runs/<export id>.failed.json`, beside (never in
/// place of) the last committed run report: the earlier run's data stays as it was.
/// Returns where it went, if it could be written.
fn write_failure_report(
    dest: &Dest,
    plan: &Plan,
    input: &str,
    run: &RunIds,
    err: &ConvertError,
) -> Option<String> {
    let failure = err.read_failure().map(|f| {
        serde_json::json!({
            "object": f.url,
            "offset": f.offset,
            "attempts": f.attempts,
            "reason": f.reason,
        })
    });
    let report = serde_json::json!({
        "tool": "fhirlake",
        "version": env!("CARGO_PKG_VERSION"),
        "status": "failed",
        "exportId": plan.export_id,
        "input": input,
        "runId": run.run_id,
        "startedAt": run.started_at,
        "failedAt": report::now_utc(),
        "seconds": run.started.elapsed().as_secs_f64(),
        "error": err.to_string(),
        "readFailure": failure,
        "committed": false,
        "note": "nothing of this run was published; the last committed run (if any) is unchanged; a re-run starts over",
    });
    let text = serde_json::to_vec_pretty(&report).expect("the report serialises");
    let rel = failure_report_rel(&plan.export_id);
    let written = match dest {
        Dest::Local(out) => std::fs::create_dir_all(out.join("_runs"))
            .and_then(|()| std::fs::write(out.join(&rel), text)),
        Dest::S3 { .. } => dest.put(&rel, text),
    };
    match written {
        Ok(()) => Some(dest.display(&rel)),
        Err(e) => {
            // Likely for the same reason the run failed (e.g. access denied).
            tracing::debug!(path = %dest.display(&rel), error = %e, "cannot write the failure report");
            None
        }
    }
}

/// Remove the failure report of an earlier run of this export, if there is one.
fn remove_failure_report(dest: &Dest, export_id: &str) {
    let rel = failure_report_rel(export_id);
    match dest {
        Dest::Local(out) => {
            let _ = std::fs::remove_file(out.join(&rel));
        }
        Dest::S3 { s3, .. } => {
            // Deleting a missing key is not an error in S3.
            if let Err(e) = s3.delete(&[dest.url(&rel).expect("S3 destination")]) {
                tracing::warn!(error = %e, "cannot remove an earlier failure report");
            }
        }
    }
}

/// After a committed run in S3: delete every object in this export's partitions (tables
/// and quarantine) that the new run report does not list: the earlier run's, and those
/// of runs that never committed.
fn remove_superseded_objects(
    s3: &crate::s3::S3,
    dest: &Dest,
    layout: &Layout,
    report: &RunReport,
) -> Result<(), ConvertError> {
    let mut keep = std::collections::HashSet::new();
    let mut folders: Vec<String> = Vec::new();
    for t in report.tables.values() {
        folders.push(t.path.clone());
        for f in &t.output_files {
            keep.insert(format!("{}/{}", t.path, f.name));
        }
    }
    let quarantine = layout.rel_final("_quarantine");
    folders.push(quarantine.clone());
    for t in report.tables.keys() {
        keep.insert(layout.quarantine_file(t));
    }
    let err = |e: crate::s3::S3Error| {
        ConvertError::AfterCommit(format!(
            "the run committed, but removing the superseded objects of earlier runs failed ({e}); until a re-run succeeds, readers that list the partition rather than follow the run report see both runs"
        ))
    };
    let mut stale = Vec::new();
    for folder in folders {
        let prefix = dest.url(&format!("{folder}/")).expect("S3 destination");
        for (url, _) in s3.list(&prefix).map_err(err)? {
            let rel = dest_rel(dest, &url);
            if !keep.contains(&rel) {
                stale.push(url);
            }
        }
    }
    if !stale.is_empty() {
        s3.delete(&stale).map_err(err)?;
    }
    Ok(())
}

/// The path of an object relative to an S3 destination.
fn dest_rel(dest: &Dest, url: &crate::s3::S3Url) -> String {
    match dest {
        Dest::S3 { base, .. } => url
            .key
            .strip_prefix(&base.key)
            .unwrap_or(&url.key)
            .to_string(),
        Dest::Local(_) => String::new(),
    }
}

/// What every table's run shares.
struct TableContext<'a> {
    model: &'a Arc<Model>,
    opts: &'a ConvertOptions,
    pool: &'a rayon::ThreadPool,
    layout: &'a Layout,
    progress: &'a Progress,
}

/// How many tables are converted at once with `threads` decoding threads (up to four).
pub fn concurrent_tables(threads: usize) -> usize {
    threads.clamp(1, 4)
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
    cx.layout.prepare(&table.folder)?;
    let mut quarantine = Quarantine {
        dest: cx.layout.dest.clone(),
        rel: cx.layout.quarantine_file(&table.folder),
        out: None,
    };
    let t0 = Instant::now();
    cx.progress.start_table(&table.folder, table.bytes());
    let mut stats: BTreeMap<usize, FileStats> = table
        .files
        .iter()
        .map(|(i, _)| (*i, FileStats::default()))
        .collect();
    let outputs = convert_table(table, cx, &mut stats, &mut quarantine)?;
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
    let reader = std::thread::Builder::new()
        .name("fhirlake-read".into())
        .spawn(move || {
            // The next file is opened while this one is read, so that an S3 object's first
            // parts are on their way before they are needed (a local file costs nothing).
            let open = |(index, file): &(usize, InputFile)| {
                LineReader::open(*index, file, chunk_bytes, &s3).map_err(|source| {
                    ConvertError::Read {
                        file: file.name.clone(),
                        source,
                    }
                })
            };
            let mut next = files.first().map(open);
            for (k, file) in files.iter().enumerate() {
                let current = next.take().expect("opened ahead");
                next = files.get(k + 1).map(open);
                let mut lr = match current {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = chunk_tx.send(Err(e));
                        return;
                    }
                };
                loop {
                    let item = match lr.next_chunk() {
                        Ok(None) => break,
                        Ok(Some(c)) => Ok(c),
                        Err(source) => Err(ConvertError::Read {
                            file: file.1.name.clone(),
                            source,
                        }),
                    };
                    let failed = item.is_err();
                    // A closed queue means the run stopped: nothing more to read.
                    if chunk_tx.send(item).is_err() || failed {
                        return;
                    }
                }
            }
        })
        .expect("the system can start a thread");

    // Stage 3: the writer.
    let (batch_tx, batch_rx) = sync_channel::<arrow_array::RecordBatch>(opts.window);
    let mut writer = TableWriter::new(
        cx.layout.dest.clone(),
        &cx.layout.rel_write(&table.folder),
        &cx.layout.name_prefix(),
        &table.resource_type,
        model.clone(),
        opts.sink.clone(),
    );
    let writer_thread = spawn_big_stack(
        "fhirlake-write",
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
    mut sinks: Sinks<'_>,
    stats: &mut BTreeMap<usize, FileStats>,
    names: &BTreeMap<usize, &str>,
) -> Result<(), ConvertError> {
    // Chunks are decoded as they come, up to `window` at once on the pool, and handed on
    // in their order: no thread waits for a whole window to finish (a barrier there left a
    // core idle a third of the time).
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    pool.in_place_scope(|scope| {
        let mut sent = 0u64; // chunks given to the pool
        let mut next = 0u64; // the next chunk to hand on
        let mut finished: BTreeMap<u64, (Chunk, crate::decode::Decoded)> = BTreeMap::new();
        let mut input_open = true;
        loop {
            while input_open && sent - next < window as u64 {
                match chunk_rx.recv() {
                    Ok(Ok(chunk)) => {
                        let done_tx = done_tx.clone();
                        let seq = sent;
                        scope.spawn(move |_| {
                            // A panic must not leave the loop below waiting for ever.
                            let d = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                decoder.decode(&chunk.line_slices())
                            }));
                            let _ = done_tx.send((seq, chunk, d.ok()));
                        });
                        sent += 1;
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => input_open = false,
                }
            }
            if next == sent {
                return Ok(());
            }
            let (seq, chunk, d) = done_rx.recv().expect("a decode task answers");
            let Some(d) = d else {
                return Err(ConvertError::Setup(format!(
                    "decoding {} near line {} failed unexpectedly; please report this",
                    names.get(&chunk.file).copied().unwrap_or_default(),
                    chunk.first_line
                )));
            };
            finished.insert(seq, (chunk, d));
            while let Some((chunk, d)) = finished.remove(&next) {
                next += 1;
                if !hand_on(&chunk, d, &mut sinks, stats, names, decoder)? {
                    // The writer stopped: its error is reported when it is joined.
                    return Ok(());
                }
            }
        }
    })
}

/// Count a decoded chunk, quarantine its rejected lines and send its batch to the writer.
/// False when the writer has stopped.
fn hand_on(
    chunk: &Chunk,
    d: crate::decode::Decoded,
    sinks: &mut Sinks<'_>,
    stats: &mut BTreeMap<usize, FileStats>,
    names: &BTreeMap<usize, &str>,
    decoder: &Decoder,
) -> Result<bool, ConvertError> {
    {
        {
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
                sinks.quarantine.write(&record)?;
            }
            sinks
                .progress
                .advance(sinks.table, chunk.source_bytes, lines - rejected);
            Ok(sinks.batches.send(d.batch).is_ok())
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
