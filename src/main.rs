//! The `fhirlake` command: a thin layer over the library.

use clap::{Parser, Subcommand, ValueEnum};
use fhirlake::model::{self, Model};
use fhirlake::schema;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes (documented in the README).
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "fhirlake",
    version,
    about = "Turn FHIR bulk-export NDJSON into typed, lossless Parquet",
    after_help = "Examples:\n  fhirlake schema Observation\n  fhirlake schema Patient --format athena --depth 3\n  fhirlake model generate ../shared/data/fhir-r4 --out schemas/r4/model.json"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

#[derive(Clone, Copy, ValueEnum)]
enum SchemaFormat {
    Arrow,
    Athena,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
