//! Progress: indicatif bars on a terminal (the current table and overall, with bytes and
//! resources per second and an ETA); plain periodic lines elsewhere (Glue, Batch and
//! Step Functions logs). Only counts and table names are ever shown, never data.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Progress {
    mode: Mode,
    started: Instant,
    total_bytes: u64,
    state: Mutex<State>,
}

enum Mode {
    Quiet,
    Bars {
        multi: MultiProgress,
        overall: ProgressBar,
        table: Mutex<std::collections::HashMap<String, ProgressBar>>,
    },
    Lines,
}

#[derive(Default)]
struct State {
    bytes: u64,
    rows: u64,
    table: String,
    last_line: Option<Instant>,
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    pub fn new(total_bytes: u64, quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let overall = multi.add(ProgressBar::new(total_bytes));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            overall.set_prefix("total");
            Mode::Bars {
                multi,
                overall,
                table: Mutex::new(Default::default()),
            }
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            started: Instant::now(),
            total_bytes,
            state: Mutex::new(State::default()),
        }
    }

    pub fn start_table(&self, name: &str, bytes: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.table = name.to_string();
        }
        if let Mode::Bars { multi, table, .. } = &self.mode {
            let bar = multi.insert(0, ProgressBar::new(bytes));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(truncate(name, 12));
            if let Ok(mut t) = table.lock() {
                t.insert(name.to_string(), bar);
            }
        }
    }

    /// `bytes` more of table `name`'s input read, `rows` more resources written.
    pub fn advance(&self, name: &str, bytes: u64, rows: u64) {
        let Ok(mut s) = self.state.lock() else { return };
        s.bytes += bytes;
        s.rows += rows;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bars { overall, table, .. } => {
                overall.inc(bytes);
                overall.set_message(format!("{:.0} resources/s", s.rows as f64 / secs));
                if let Ok(t) = table.lock() {
                    if let Some(bar) = t.get(name) {
                        bar.inc(bytes);
                    }
                }
            }
            Mode::Lines => {
                let due = s.last_line.is_none_or(|t| t.elapsed() >= LOG_EVERY);
                if due {
                    s.last_line = Some(Instant::now());
                    let pct = if self.total_bytes > 0 {
                        100.0 * s.bytes as f64 / self.total_bytes as f64
                    } else {
                        100.0
                    };
                    eprintln!(
                        "fhirlake: {:.1}% ({} of {}), {} resources, {:.1} MB/s, {:.0} resources/s, now {}",
                        pct,
                        crate::report::human_bytes(s.bytes),
                        crate::report::human_bytes(self.total_bytes),
                        s.rows,
                        s.bytes as f64 / 1e6 / secs,
                        s.rows as f64 / secs,
                        s.table
                    );
                }
            }
        }
    }

    pub fn finish_table(&self, name: &str, rows: u64, rejected: u64) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bars { table, multi, .. } => {
                if let Ok(mut t) = table.lock() {
                    if let Some(bar) = t.remove(name) {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                    }
                }
                let _ = multi.println(format!("{name}: {rows} rows, {rejected} rejected"));
            }
            Mode::Lines => eprintln!("fhirlake: {name}: {rows} rows, {rejected} rejected"),
        }
    }

    pub fn finish(&self) {
        if let Mode::Bars { overall, .. } = &self.mode {
            overall.finish_and_clear();
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}
