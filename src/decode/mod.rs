//! NDJSON lines of one resource type -> an Arrow [`RecordBatch`] plus rejected lines.
//!
//! Each line is parsed with simd-json into a tape, then walked by a tree of small column
//! builders made from the FHIR model (see [`columns`]). A line that is not JSON, not an
//! object, of the wrong `resourceType`, or that holds an element the definition lacks or a
//! value of the wrong JSON type is rolled back and returned as [`Rejected`] with a reason
//! that names the element path and never a value (resource contents are PHI).
//!
//! [`Decoder::decode_parallel`] cuts the lines into batches and decodes them on rayon.

mod columns;
pub mod line;

use crate::model::{Model, TypeId};
use crate::schema;
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray};
use arrow_schema::{Field, Schema};
use columns::{Cx, StructCol};
use line::Line;
use rayon::prelude::*;
use simd_json::{Buffers, Node, Tape};
use std::sync::Arc;

/// JSON nesting allowed in a line: deeper lines are rejected with a reason. FHIR resources
/// rarely pass 20; 200 leaves room for 100 levels of Questionnaire.item.
pub const MAX_DEPTH: usize = 200;

/// How to decode.
#[derive(Debug, Clone, Default)]
pub struct DecodeOptions {
    /// Keep elements unknown to the FHIR definitions in `_unmapped` JSON text columns
    /// instead of rejecting the line.
    pub keep_unknown: bool,
}

/// A line that could not become a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the line in the input slice.
    pub index: usize,
    /// The resource's `id`, when the line got far enough to have one.
    pub id: Option<String>,
    /// What is wrong, with the element path; never a value from the resource.
    pub reason: String,
}

/// The result of decoding a batch of lines.
#[derive(Debug)]
pub struct Decoded {
    /// One row per accepted line, in input order; its schema holds only the fields that
    /// occur (the canonical schema restricted to the data).
    pub batch: RecordBatch,
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("{0} is not a FHIR resource type (names are case-sensitive, e.g. Observation)")]
    UnknownResource(String),
}

/// Decodes lines of one resource type. Cheap to share across threads.
#[derive(Debug, Clone)]
pub struct Decoder {
    model: Arc<Model>,
    resource: TypeId,
    name: String,
    options: DecodeOptions,
}

impl Decoder {
    pub fn new(
        model: Arc<Model>,
        resource_type: &str,
        options: DecodeOptions,
    ) -> Result<Decoder, DecoderError> {
        let resource = model
            .resource(resource_type)
            .ok_or_else(|| DecoderError::UnknownResource(resource_type.to_string()))?;
        Ok(Decoder {
            model,
            resource,
            name: resource_type.to_string(),
            options,
        })
    }

    pub fn resource_type(&self) -> &str {
        &self.name
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Decode `lines` (without line terminators) into one batch, on this thread.
    pub fn decode<L: AsRef<[u8]>>(&self, lines: &[L]) -> Decoded {
        let cx = Cx {
            model: &self.model,
            keep_unknown: self.options.keep_unknown,
        };
        let mut root = StructCol::new(&self.model, self.resource, true);
        let mut rejected = Vec::new();
        let mut scratch: Vec<u8> = Vec::new();
        let mut buffers = Buffers::with_max_depth(4096, MAX_DEPTH);
        let mut tape_store: Option<Tape<'static>> = Some(Tape::null());
        for (index, raw) in lines.iter().enumerate() {
            let original = raw.as_ref();
            scratch.clear();
            scratch.extend_from_slice(original);
            scratch.resize(original.len() + simd_json::INPUT_PADDING, 0);
            let mut tape = tape_store.take().unwrap_or_else(Tape::null).reset();
            let outcome = if original.iter().all(u8::is_ascii_whitespace) {
                Err((None, "empty line".to_string()))
            } else {
                match simd_json::fill_tape_padded(
                    &mut scratch,
                    original.len(),
                    &mut buffers,
                    &mut tape,
                ) {
                    Err(e) => Err((line::shallow_id(original), parse_error_reason(&e, original))),
                    Ok(()) => {
                        let line = Line::new(&tape.0, original, buffers.structural_indexes());
                        self.decode_line(&cx, &mut root, &line)
                    }
                }
            };
            tape_store = Some(tape.reset());
            if let Err((id, reason)) = outcome {
                rejected.push(Rejected { index, id, reason });
            }
        }
        let rows = root.len();
        let mut fields = vec![Arc::new(schema::resource_type_field())];
        let mut arrays: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(vec![self.name.as_str(); rows]))];
        for (f, a) in root.finish_columns(&self.model) {
            fields.push(Arc::new(f));
            arrays.push(a);
        }
        let batch = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .expect("decoded columns all have one value per accepted line");
        Decoded { batch, rejected }
    }

    /// Decode `lines` in batches of at most `batch_rows` lines, in parallel on the current
    /// rayon pool. Batches come back in input order; `Rejected::index` is relative to
    /// `lines`.
    pub fn decode_parallel<L: AsRef<[u8]> + Sync>(
        &self,
        lines: &[L],
        batch_rows: usize,
    ) -> Vec<Decoded> {
        let batch_rows = batch_rows.max(1);
        lines
            .par_chunks(batch_rows)
            .enumerate()
            .map(|(i, chunk)| {
                let mut d = self.decode(chunk);
                for r in &mut d.rejected {
                    r.index += i * batch_rows;
                }
                d
            })
            .collect()
    }

    fn decode_line(
        &self,
        cx: &Cx<'_>,
        root: &mut StructCol,
        line: &Line<'_, '_>,
    ) -> Result<(), (Option<String>, String)> {
        let Node::Object { len, .. } = line.tape[0] else {
            return Err((
                None,
                format!(
                    "not a JSON object (found {})",
                    line::json_type(&line.tape[0])
                ),
            ));
        };
        // The id is only for a rejected line's report: looked up on failure, not per line
        // (copying it for every line was 3.6% of all instructions).
        let id = || root_id(line, len);
        let ty = columns::resource_type_of(&self.model, line, 0)
            .map_err(|e| (id(), e.render(&self.name)))?;
        if ty != self.resource {
            return Err((
                id(),
                format!(
                    "resourceType is {}, expected {}",
                    self.model.ty(ty).name,
                    self.name
                ),
            ));
        }
        let checkpoint = root.len();
        if let Err(e) = root.push_object(cx, line, 0) {
            root.truncate(checkpoint);
            return Err((id(), e.render(&self.name)));
        }
        Ok(())
    }
}

/// The top-level `id` string, for reports.
fn root_id(line: &Line<'_, '_>, len: usize) -> Option<String> {
    let mut pos = 1;
    for _ in 0..len {
        if let (Node::String("id"), Node::String(id)) = (line.tape[pos], line.tape[pos + 1]) {
            return Some(id.chars().take(64).collect());
        }
        pos = line.skip(pos + 1);
    }
    None
}

/// Why a line is not JSON, without any of its content: serde_json's syntax messages name
/// the problem and the column only ("trailing characters at line 1 column 36"), so the
/// failed line is classified again with it (only failed lines pay for this).
fn parse_error_reason(e: &simd_json::Error, line: &[u8]) -> String {
    use simd_json::ErrorType as E;
    match e.error() {
        E::InvalidUtf8 => return "not valid JSON (invalid UTF-8)".into(),
        E::DepthLimitExceeded => {
            return format!("not valid JSON (nested deeper than {MAX_DEPTH} levels)")
        }
        _ => {}
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
        Err(e) if e.to_string().starts_with("trailing characters") => {
            format!(
                "more than one JSON value on the line, or text after it (column {})",
                e.column()
            )
        }
        Err(e) if e.is_syntax() || e.is_eof() => {
            // A line is one line: "at line 1 column 31" says no more than "at column 31".
            format!(
                "not valid JSON ({})",
                e.to_string().replace(" at line 1 column ", " at column ")
            )
        }
        _ => "not valid JSON (rejected by the JSON parser)".into(),
    }
}

/// The batch's schema field for `resourceType`.
pub fn resource_type_field() -> Field {
    schema::resource_type_field()
}
