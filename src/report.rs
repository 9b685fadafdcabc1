//! The run report: what was read, written and rejected, reconciled per input file, written
//! to `DEST/_runs/<export id>.json` and summarised on the terminal.

use crate::manifest::{Deleted, InputKind, Role};
use crate::sink::OutputFile;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    pub name: String,
    pub resource_type: String,
    pub role: Role,
    /// Size on disk (compressed size for `.gz`).
    pub bytes: u64,
    /// NDJSON bytes read (after decompression).
    pub ndjson_bytes: u64,
    pub lines: u64,
    pub rows: u64,
    pub rejected: u64,
    /// The count the manifest states, when it states one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_count: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    pub resource_type: String,
    /// Folder of the table's files for this export, relative to the destination.
    pub path: String,
    pub input_files: u64,
    pub bytes: u64,
    pub ndjson_bytes: u64,
    pub lines: u64,
    pub rows: u64,
    pub rejected: u64,
    pub output_files: Vec<OutputFile>,
    pub output_bytes: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub input_files: u64,
    pub bytes: u64,
    pub ndjson_bytes: u64,
    pub lines: u64,
    pub rows: u64,
    pub rejected: u64,
    pub output_files: u64,
    pub output_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub tool: String,
    pub version: String,
    pub fhir_version: String,
    pub export_id: String,
    pub input: String,
    pub input_kind: InputKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_status: Option<String>,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub seconds: f64,
    /// `succeeded`, or `rejected-over-threshold` (the data is written all the same).
    pub status: String,
    pub options: serde_json::Value,
    pub totals: Totals,
    /// For every input file, lines == rows + rejected.
    pub reconciled: bool,
    /// Tables, by folder name.
    pub tables: BTreeMap<String, TableReport>,
    pub files: Vec<FileReport>,
    /// `deleted[]` entries of the manifest: recorded, not applied.
    pub deleted: Vec<Deleted>,
    /// Quarantine folder, relative to the destination, when any line was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<String>,
}

impl RunReport {
    /// Recompute totals and the reconciliation from the per-file and per-table figures.
    pub fn reconcile(&mut self) {
        let mut t = Totals::default();
        for f in &self.files {
            t.input_files += 1;
            t.bytes += f.bytes;
            t.ndjson_bytes += f.ndjson_bytes;
            t.lines += f.lines;
            t.rows += f.rows;
            t.rejected += f.rejected;
        }
        for table in self.tables.values() {
            t.output_files += table.output_files.len() as u64;
            t.output_bytes += table.output_bytes;
        }
        let files_ok = self.files.iter().all(|f| f.lines == f.rows + f.rejected);
        let tables_ok = self.tables.values().all(|tb| {
            tb.rows == tb.output_files.iter().map(|o| o.rows).sum::<u64>()
                && tb.lines == tb.rows + tb.rejected
        });
        self.reconciled = files_ok && tables_ok && t.lines == t.rows + t.rejected;
        self.totals = t;
    }

    /// A table for people, one row per output table plus a total.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<28} {:>7} {:>12} {:>10} {:>10} {:>9} {:>6} {:>11}\n",
            "table", "files", "input", "lines", "rows", "rejected", "parts", "parquet"
        ));
        for (name, t) in &self.tables {
            out.push_str(&format!(
                "{:<28} {:>7} {:>12} {:>10} {:>10} {:>9} {:>6} {:>11}\n",
                name,
                t.input_files,
                human_bytes(t.bytes),
                t.lines,
                t.rows,
                t.rejected,
                t.output_files.len(),
                human_bytes(t.output_bytes)
            ));
        }
        let t = &self.totals;
        out.push_str(&format!(
            "{:<28} {:>7} {:>12} {:>10} {:>10} {:>9} {:>6} {:>11}\n",
            "total",
            t.input_files,
            human_bytes(t.bytes),
            t.lines,
            t.rows,
            t.rejected,
            t.output_files,
            human_bytes(t.output_bytes)
        ));
        let mbps = if self.seconds > 0.0 {
            t.ndjson_bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        };
        out.push_str(&format!(
            "{} in {:.1} s ({:.0} MB/s of NDJSON); reconciled: {}\n",
            self.status,
            self.seconds,
            mbps,
            if self.reconciled { "yes" } else { "NO" }
        ));
        out
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Now, as `YYYY-MM-DDThh:mm:ss.fffZ`.
pub fn now_utc() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    crate::annotate::format_utc_ms(ms)
}
