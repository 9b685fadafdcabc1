//! The `fhirlake` command: a thin layer over the library.

use clap::{Parser, Subcommand, ValueEnum};
use fhirlake::convert::{self, ConvertOptions, Partitioning, RejectLimit};
use fhirlake::manifest::{self, PlanOptions};
use fhirlake::model::{self, Model};
use fhirlake::report::human_bytes;
use fhirlake::schema;
use fhirlake::sink::Codec;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc keeps freed memory for reuse: each chunk's decode builds and drops large
/// buffers, which with the system allocator cost page faults and zeroing on every chunk.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (documented in the README).
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_REJECTED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "fhirlake",
    version,
    about = "Turn FHIR bulk-export NDJSON into typed, lossless Parquet",
    after_help = "Examples:
  fhirlake convert export-status.json --out ./lake
  fhirlake convert ./my-export-folder --out ./lake --max-rejected 0.1%
  fhirlake inspect describe-fhir-export-job.json
  fhirlake schema Observation --format athena
  fhirlake to-ndjson ./lake/Patient --out ./roundtrip

Exit codes: 0 success; 1 failure; 2 usage or input error (bad arguments, unreadable
input, S3 credentials, permissions, region or a missing bucket); 3 finished, but more
lines were rejected than --max-rejected allows.
Logging: RUST_LOG=fhirlake=debug (logs never contain resource contents)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert an export into partitioned Parquet: one table per resource type.
    ///
    /// INPUT is a HealthLake export status JSON (GET .../export/<jobId>), a
    /// describe-fhir-export-job output, a FHIR Bulk Data manifest, a folder of NDJSON files
    /// (.ndjson, .jsonl, optionally .gz, at any depth) or one such file.
    ///
    /// Writes DEST/<Type>/export=<id>/part-NNNNN.parquet, rejected lines to
    /// DEST/_quarantine/export=<id>/<Type>.ndjson and the run report to
    /// DEST/_runs/<id>.json, last (the commit). A re-run of the same export replaces its
    /// partition. A run that fails publishes nothing and says why in
    /// DEST/_runs/<id>.failed.json. DEST may be s3://bucket/prefix, as may INPUT.
    #[command(after_help = "Examples:
  fhirlake convert fixtures/healthlake-sample/export-status.json --out ./lake
  fhirlake convert ./export --out ./lake --partition none --compression snappy
  fhirlake convert manifest.json --local-root /data/copy --out ./lake --max-rejected 100")]
    Convert {
        /// Manifest, export folder or NDJSON file.
        input: PathBuf,
        /// Destination folder of the lakehouse.
        #[arg(long, short)]
        out: PathBuf,
        /// Where local copies of the manifest's s3:// or https:// files are (default: the
        /// manifest's folder). Each URL is looked up by the longest tail of its path.
        #[arg(long)]
        local_root: Option<PathBuf>,
        /// The export id in partition paths and the report (default: the job id, else the
        /// manifest's transactionTime, else the folder's name).
        #[arg(long)]
        export_id: Option<String>,
        /// `export`: DEST/<Type>/export=<id>/; `none`: DEST/<Type>/.
        #[arg(long, value_enum, default_value_t = Partitioning::Export)]
        partition: Partitioning,
        #[arg(long, value_enum, default_value_t = Codec::Zstd)]
        compression: Codec,
        /// Roll to a new Parquet file at this size.
        #[arg(long, default_value = "256MiB", value_parser = parse_size)]
        target_file_size: u64,
        /// Rejected lines allowed before the exit code is 3: a count or a percentage of
        /// lines (e.g. 0.5%). The run completes and commits either way.
        #[arg(long, default_value = "0")]
        max_rejected: RejectLimit,
        /// Peak memory to plan for; queues and buffers are sized from it.
        #[arg(long, default_value = "1GiB", value_parser = parse_size)]
        memory_limit: u64,
        /// Decoding threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Keep elements unknown to FHIR R4 in `_unmapped` JSON columns instead of
        /// rejecting their lines.
        #[arg(long)]
        keep_unknown: bool,
        /// No progress and no summary.
        #[arg(long, short)]
        quiet: bool,
        /// Encrypt objects written to S3 with this KMS key (id or ARN), as HealthLake
        /// export jobs do (SSE-KMS).
        #[arg(long)]
        sse_kms_key_id: Option<String>,
        /// Server-side encryption of objects written to S3 (default: the bucket's).
        #[arg(long, value_enum)]
        sse: Option<SseMode>,
        /// Part size of multipart uploads to S3 (at least 5 MiB).
        #[arg(long, default_value = "16MiB", value_parser = parse_size)]
        s3_upload_part_size: u64,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Show what convert would read: files, resource types, bytes, manifest counts.
    Inspect {
        input: PathBuf,
        #[arg(long)]
        local_root: Option<PathBuf>,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Regenerate FHIR NDJSON from Parquet written by convert (a file or table folder).
    ToNdjson {
        input: PathBuf,
        /// Folder to write <ResourceType>.ndjson into.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Print the canonical schema of a resource type.
    ///
    /// FHIR recurses (Extension.extension, Questionnaire.item.item), so the full schema is
    /// infinite; structs are expanded --depth levels. Tables written by fhirlake hold only
    /// the fields that occur in the data, which can be deeper.
    Schema {
        /// A FHIR R4 resource type, e.g. Observation.
        resource_type: String,
        /// How many levels of nested structs to expand.
        #[arg(long, default_value_t = 2)]
        depth: usize,
        /// Arrow schema (one field per line) or an Athena/Hive column list.
        #[arg(long, value_enum, default_value_t = SchemaFormat::Arrow)]
        format: SchemaFormat,
    },
    /// Work with the compiled FHIR model.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Compile StructureDefinition bundles (profiles-types.json, profiles-resources.json,
    /// optionally .json.gz) into the compact model fhirlake embeds.
    Generate {
        /// Folder holding the definition bundles, e.g. ../shared/data/fhir-r4.
        definitions: PathBuf,
        /// Where to write the model, e.g. schemas/r4/model.json.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Where S3 is and who we are there: the AWS CLI's settings and credential chain.
#[derive(clap::Args, Debug, Clone)]
struct S3Args {
    /// AWS profile from ~/.aws/config and ~/.aws/credentials (SSO profiles too).
    #[arg(long)]
    profile: Option<String>,
    /// AWS region (default: from the environment or profile).
    #[arg(long)]
    region: Option<String>,
    /// S3 endpoint, for S3-compatible stores (AWS_ENDPOINT_URL is honoured too).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Path-style addressing (http://host/bucket/key), for S3-compatible stores.
    #[arg(long)]
    s3_path_style: bool,
    /// Size of each ranged GET of an S3 object.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    s3_part_size: u64,
    /// Ranged GETs in flight per S3 object (fewer if --memory-limit needs it).
    #[arg(long, default_value_t = 4)]
    s3_parts_in_flight: usize,
    /// Attempts per S3 request before the run fails, with backoff between them (503
    /// SlowDown, 5xx, dropped connections; a read resumes at the byte it had reached).
    #[arg(long, default_value_t = 8)]
    s3_attempts: u32,
}

impl S3Args {
    fn lazy(&self) -> fhirlake::s3::LazyS3 {
        fhirlake::s3::LazyS3::new(self.options())
    }

    fn options(&self) -> fhirlake::s3::S3Options {
        fhirlake::s3::S3Options {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            path_style: self.s3_path_style,
            part_size: self.s3_part_size.max(1024),
            parts_in_flight: self.s3_parts_in_flight.max(1),
            attempts: self.s3_attempts.max(1),
        }
        .with_defaults()
    }
}

fn plan_error(e: manifest::ManifestError) -> (u8, String) {
    (
        if e.is_usage() {
            EXIT_USAGE
        } else {
            EXIT_FAILURE
        },
        e.to_string(),
    )
}

#[derive(Clone, Copy, ValueEnum)]
enum SseMode {
    /// SSE-S3.
    #[value(name = "AES256")]
    Aes256,
    /// SSE-KMS with the account's default key (or --sse-kms-key-id).
    #[value(name = "aws:kms")]
    AwsKms,
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemaFormat {
    Arrow,
    Athena,
}

/// `256MiB`, `1GiB`, `500MB`, `1048576`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size such as 256MiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1048576.0,
        "g" | "gb" => 1e9,
        "gib" => 1073741824.0,
        "t" | "tb" => 1e12,
        "tib" => 1099511627776.0,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit (use B, KB, KiB, MB, MiB, GB, GiB)"
            ))
        }
    };
    Ok((n * mult) as u64)
}

fn main() -> ExitCode {
    fhirlake::allocator::keep_freed_memory();
    // Ctrl-C: abort S3 multipart uploads under way, so none is left behind; nothing
    // visible is left either (staged folders are hidden, S3 runs commit last).
    let _ = ctrlc::set_handler(|| {
        fhirlake::s3::abort_all_uploads();
        eprintln!("fhirlake: interrupted; nothing was committed (a re-run starts over)");
        std::process::exit(130);
    });
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, as every other error: clap's own message spans several.
            let text = e.render().to_string();
            let mut parts: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("For more information")
                        && !l.starts_with("Usage:")
                })
                .collect();
            if let Some(first) = parts.first_mut() {
                *first = first.trim_start_matches("error: ");
            }
            eprintln!("fhirlake: {}; see fhirlake --help", parts.join(" "));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "fhirlake=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("fhirlake: {msg}");
            ExitCode::from(code)
        }
    }
}

/// Print to stdout; a closed pipe (`fhirlake schema X | head`) is not an error.
fn print_stdout(text: &str) -> Result<(), (u8, String)> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err((EXIT_FAILURE, format!("cannot write to stdout: {e}"))),
    }
}

fn run(cli: Cli) -> Result<(), (u8, String)> {
    match cli.command {
        Command::Convert {
            input,
            out,
            local_root,
            export_id,
            partition,
            compression,
            target_file_size,
            max_rejected,
            memory_limit,
            threads,
            keep_unknown,
            quiet,
            sse,
            sse_kms_key_id,
            s3_upload_part_size,
            s3,
        } => {
            let sse = match (sse, sse_kms_key_id) {
                (_, Some(key)) => fhirlake::s3::Sse::Kms(Some(key)),
                (Some(SseMode::AwsKms), None) => fhirlake::s3::Sse::Kms(None),
                (Some(SseMode::Aes256), None) => fhirlake::s3::Sse::S3,
                (None, None) => fhirlake::s3::Sse::BucketDefault,
            };
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            // A quarter of the memory budget is S3 read-ahead, over every object read at
            // once: two per table being converted (the file being read and the next one).
            let s3 = fhirlake::s3::LazyS3::new(
                s3.options()
                    .fit_read_ahead(memory_limit / 4, 2 * convert::concurrent_tables(threads)),
            );
            let plan = manifest::plan(
                &input,
                &PlanOptions {
                    local_root,
                    export_id,
                    s3: s3.clone(),
                },
            )
            .map_err(plan_error)?;
            let mut opts = ConvertOptions::for_memory(out.clone(), memory_limit, threads);
            opts.partition = partition;
            opts.sink.codec = compression;
            opts.sink.target_file_bytes = target_file_size.max(1 << 20);
            opts.max_rejected = max_rejected;
            opts.keep_unknown = keep_unknown;
            opts.quiet = quiet;
            opts.s3 = s3;
            opts.sse = sse;
            opts.upload_part_bytes = s3_upload_part_size.max(5 << 20) as usize;
            tracing::info!(files = plan.files.len(), export_id = %plan.export_id, "converting");
            let outcome =
                convert::convert(&plan, &input.display().to_string(), &opts).map_err(|e| {
                    let code = if e.is_user_error() {
                        EXIT_USAGE
                    } else {
                        EXIT_FAILURE
                    };
                    (code, e.to_string())
                })?;
            if !quiet {
                eprint!("{}", outcome.report.summary());
                eprintln!(
                    "tables in {}; report {}",
                    out.display(),
                    out.join("_runs")
                        .join(format!("{}.json", plan.export_id))
                        .display()
                );
            }
            if outcome.over_threshold {
                return Err((
                    EXIT_REJECTED,
                    format!(
                        "{} of {} lines rejected, over --max-rejected; see {}",
                        outcome.report.totals.rejected,
                        outcome.report.totals.lines,
                        out.join(
                            outcome
                                .report
                                .quarantine
                                .as_deref()
                                .unwrap_or("_quarantine")
                        )
                        .display()
                    ),
                ));
            }
            Ok(())
        }
        Command::Inspect {
            input,
            local_root,
            s3,
        } => {
            let plan = manifest::plan(
                &input,
                &PlanOptions {
                    local_root,
                    export_id: None,
                    s3: s3.lazy(),
                },
            )
            .map_err(plan_error)?;
            let mut text = format!(
                "input: {} ({})\nexport id: {}\n",
                input.display(),
                serde_json::to_value(plan.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                plan.export_id
            );
            if let Some(t) = &plan.transaction_time {
                text.push_str(&format!("transaction time: {t}\n"));
            }
            if let Some(s) = &plan.job_status {
                text.push_str(&format!("job status: {s}\n"));
            }
            let mut by_type: std::collections::BTreeMap<(String, String), (u64, u64, Option<u64>)> =
                Default::default();
            for f in &plan.files {
                let role = format!("{:?}", f.role).to_lowercase();
                let e = by_type
                    .entry((role, f.resource_type.clone()))
                    .or_insert((0, 0, Some(0)));
                e.0 += 1;
                e.1 += f.bytes;
                e.2 = match (e.2, f.count) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
            }
            text.push_str(&format!(
                "{:<8} {:<28} {:>6} {:>12} {:>10}\n",
                "role", "resource type", "files", "bytes", "count"
            ));
            for ((role, rt), (n, bytes, count)) in &by_type {
                let count = count.map_or("-".to_string(), |c| c.to_string());
                text.push_str(&format!(
                    "{role:<8} {rt:<28} {n:>6} {:>12} {count:>10}\n",
                    human_bytes(*bytes)
                ));
            }
            text.push_str(&format!(
                "total: {} files, {}\n",
                plan.files.len(),
                human_bytes(plan.total_bytes())
            ));
            for d in &plan.deleted {
                text.push_str(&format!("deleted (recorded, not applied): {}\n", d.url));
            }
            print_stdout(&text)
        }
        Command::ToNdjson { input, out } => {
            let counts = fhirlake::to_ndjson::to_ndjson(&input, &out).map_err(|e| match e {
                fhirlake::to_ndjson::ToNdjsonError::Input { .. } => (EXIT_USAGE, e.to_string()),
                other => (EXIT_FAILURE, other.to_string()),
            })?;
            for (rt, n) in counts {
                eprintln!(
                    "{rt}: {n} resources -> {}",
                    out.join(format!("{rt}.ndjson")).display()
                );
            }
            Ok(())
        }
        Command::Schema {
            resource_type,
            depth,
            format,
        } => {
            let model = Model::r4();
            let s = schema::canonical_schema(&model, &resource_type, depth).map_err(|e| {
                (
                    EXIT_USAGE,
                    format!("{e}; see `fhirlake schema --help` (types are case-sensitive, e.g. Observation)"),
                )
            })?;
            let text = match format {
                SchemaFormat::Arrow => schema::tree(&s),
                SchemaFormat::Athena => s
                    .fields()
                    .iter()
                    .map(|f| format!("`{}` {}\n", f.name(), schema::hive_type(f.data_type())))
                    .collect(),
            };
            print_stdout(&text)
        }
        Command::Model(ModelCommand::Generate { definitions, out }) => {
            let m = model::generate(&definitions).map_err(|e| (EXIT_USAGE, e.to_string()))?;
            std::fs::write(&out, model::generate::to_text(&m))
                .map_err(|e| (EXIT_FAILURE, format!("cannot write {}: {e}", out.display())))?;
            eprintln!(
                "wrote {} ({} types, FHIR {})",
                out.display(),
                m.types.len(),
                m.fhir_version
            );
            Ok(())
        }
    }
}
