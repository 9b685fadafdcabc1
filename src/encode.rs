//! The reverse mapping: Arrow rows back to FHIR JSON, one resource per row.
//!
//! Built like the decoder, as a tree of small per-column writers made once per batch from
//! the batch's schema and the FHIR model. Annotation columns (`__x_*`) are derived data and
//! are skipped; decimals are written from their kept text, so `6.3000` stays `6.3000`;
//! `_unmapped` JSON is spliced back into its object.

use crate::decode::line::write_json_string;
use crate::model::{Model, Primitive, TypeId, ValueKind};
use crate::schema::names;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Fields};
use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the batch has no resourceType column; is it a fhirlake table?")]
    NoResourceType,
    #[error("{0} is not a FHIR resource type")]
    UnknownResource(String),
    #[error("column {path} does not belong to the FHIR definition")]
    UnknownColumn { path: String },
    #[error("column {path} has Arrow type {found}, which fhirlake does not write for it")]
    WrongType { path: String, found: String },
}

enum Enc<'a> {
    /// A JSON string.
    Str(&'a StringArray),
    /// A decimal's kept text, written as a JSON number.
    Raw(&'a StringArray),
    Bool(&'a BooleanArray),
    Int32(&'a Int32Array),
    /// integer64 (R5) is a JSON string.
    Int64(&'a Int64Array),
    Struct(StructEnc<'a>),
    /// A `Resource` element: one member per resource type.
    Resource(Vec<StructEnc<'a>>),
    List(&'a ListArray, Box<Enc<'a>>),
}

struct StructEnc<'a> {
    nulls: Option<&'a NullBuffer>,
    fields: Vec<(String, Enc<'a>, Option<&'a NullBuffer>)>,
    unmapped: Option<&'a StringArray>,
    /// Written first, for resources.
    resource_type: Option<String>,
}

fn is_valid(nulls: Option<&NullBuffer>, row: usize) -> bool {
    nulls.is_none_or(|n| n.is_valid(row))
}

impl StructEnc<'_> {
    fn write(&self, row: usize, out: &mut String) {
        out.push('{');
        let mut first = true;
        if let Some(rt) = &self.resource_type {
            out.push_str("\"resourceType\":");
            write_json_string(rt, out);
            first = false;
        }
        for (name, enc, nulls) in &self.fields {
            if !is_valid(*nulls, row) {
                continue;
            }
            let mark = out.len();
            if !first {
                out.push(',');
            }
            write_json_string(name, out);
            out.push(':');
            let value_at = out.len();
            enc.write(row, out);
            // A struct with no values is an absent element (FHIR forbids `{}`); tables
            // written by Spark-based tools hold such structs for every absent element.
            if &out[value_at..] == "{}" {
                out.truncate(mark);
                continue;
            }
            first = false;
        }
        if let Some(u) = self.unmapped {
            if u.is_valid(row) {
                let text = u.value(row).trim();
                let inner = text
                    .strip_prefix('{')
                    .and_then(|t| t.strip_suffix('}'))
                    .unwrap_or("")
                    .trim();
                if !inner.is_empty() {
                    if !first {
                        out.push(',');
                    }
                    out.push_str(inner);
                }
            }
        }
        out.push('}');
    }
}

impl Enc<'_> {
    fn write(&self, row: usize, out: &mut String) {
        match self {
            Enc::Str(a) => write_json_string(a.value(row), out),
            Enc::Raw(a) => out.push_str(a.value(row)),
            Enc::Bool(a) => out.push_str(if a.value(row) { "true" } else { "false" }),
            Enc::Int32(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Enc::Int64(a) => {
                let _ = write!(out, "\"{}\"", a.value(row));
            }
            Enc::Struct(s) => s.write(row, out),
            Enc::Resource(members) => {
                if let Some(m) = members.iter().find(|m| is_valid(m.nulls, row)) {
                    m.write(row, out);
                }
            }
            Enc::List(list, item) => {
                out.push('[');
                let offsets = list.value_offsets();
                let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
                let item_nulls = list.values().nulls();
                for i in start..end {
                    if i > start {
                        out.push(',');
                    }
                    if is_valid(item_nulls, i) {
                        item.write(i, out);
                    } else {
                        out.push_str("null");
                    }
                }
                out.push(']');
            }
        }
    }
}

struct Builder<'m> {
    model: &'m Model,
}

impl<'m> Builder<'m> {
    fn structure<'a>(
        &self,
        ty: TypeId,
        fields: &Fields,
        arrays: &'a [ArrayRef],
        nulls: Option<&'a NullBuffer>,
        path: &str,
    ) -> Result<StructEnc<'a>, EncodeError> {
        let td = self.model.ty(ty);
        // `resourceType` is the table itself at resource level; elsewhere (for example
        // ExampleScenario.instance.resourceType) it is an ordinary element.
        let is_resource = td.kind == crate::model::TypeKind::Resource;
        let mut out = StructEnc {
            nulls,
            fields: Vec::new(),
            unmapped: None,
            resource_type: None,
        };
        for (field, array) in fields.iter().zip(arrays) {
            let name = field.name().as_str();
            let p = format!("{path}.{name}");
            if (is_resource && name == names::RESOURCE_TYPE) || names::is_annotation(name) {
                continue;
            }
            if name == names::UNMAPPED {
                out.unmapped = Some(string(array, &p)?);
                continue;
            }
            let value = if let Some((_, f)) = td.field(name) {
                Some(f.value)
            } else if let Some((_, f)) = name.strip_prefix('_').and_then(|b| td.field(b)) {
                matches!(f.value, ValueKind::Primitive(_))
                    .then_some(ValueKind::Struct(self.model.primitive_element))
            } else {
                None
            };
            let value = value.ok_or_else(|| EncodeError::UnknownColumn { path: p.clone() })?;
            let enc = self.value(value, array, &p)?;
            out.fields.push((name.to_string(), enc, array.nulls()));
        }
        Ok(out)
    }

    fn value<'a>(
        &self,
        value: ValueKind,
        array: &'a ArrayRef,
        path: &str,
    ) -> Result<Enc<'a>, EncodeError> {
        if let DataType::List(_) = array.data_type() {
            let list = array.as_list::<i32>();
            let item = self.value(value, list.values(), path)?;
            return Ok(Enc::List(list, Box::new(item)));
        }
        let wrong = || EncodeError::WrongType {
            path: path.to_string(),
            found: array.data_type().to_string(),
        };
        Ok(match value {
            ValueKind::Primitive(p) => match (p, array.data_type()) {
                (Primitive::Boolean, DataType::Boolean) => Enc::Bool(array.as_boolean()),
                (Primitive::Integer32, DataType::Int32) => {
                    Enc::Int32(array.as_primitive::<Int32Type>())
                }
                (Primitive::Integer64, DataType::Int64) => {
                    Enc::Int64(array.as_primitive::<Int64Type>())
                }
                (Primitive::Decimal, DataType::Utf8) => Enc::Raw(array.as_string::<i32>()),
                (Primitive::DateTime | Primitive::String, DataType::Utf8) => {
                    Enc::Str(array.as_string::<i32>())
                }
                _ => return Err(wrong()),
            },
            ValueKind::Struct(t) => {
                let s: &StructArray = array.as_struct_opt().ok_or_else(wrong)?;
                Enc::Struct(self.structure(t, s.fields(), s.columns(), s.nulls(), path)?)
            }
            ValueKind::AnyResource => {
                let s: &StructArray = array.as_struct_opt().ok_or_else(wrong)?;
                let mut members = Vec::new();
                for (f, col) in s.fields().iter().zip(s.columns()) {
                    let p = format!("{path}.{}", f.name());
                    let ty = self
                        .model
                        .resource(f.name())
                        .ok_or_else(|| EncodeError::UnknownColumn { path: p.clone() })?;
                    let m: &StructArray = col.as_struct_opt().ok_or_else(wrong)?;
                    let mut enc = self.structure(ty, m.fields(), m.columns(), m.nulls(), &p)?;
                    enc.resource_type = Some(f.name().clone());
                    members.push(enc);
                }
                Enc::Resource(members)
            }
        })
    }
}

fn string<'a>(array: &'a ArrayRef, path: &str) -> Result<&'a StringArray, EncodeError> {
    array
        .as_string_opt::<i32>()
        .ok_or_else(|| EncodeError::WrongType {
            path: path.to_string(),
            found: array.data_type().to_string(),
        })
}

/// Regenerate each row of `batch` as one line of FHIR JSON (without a line terminator).
pub fn to_json_lines(model: &Model, batch: &RecordBatch) -> Result<Vec<String>, EncodeError> {
    let mut out = Vec::with_capacity(batch.num_rows());
    write_rows(model, batch, |line| out.push(line.to_string()))?;
    Ok(out)
}

/// Call `sink` with the JSON text of each row of `batch`, in order.
pub fn write_rows(
    model: &Model,
    batch: &RecordBatch,
    mut sink: impl FnMut(&str),
) -> Result<(), EncodeError> {
    let rt_col = batch
        .column_by_name(names::RESOURCE_TYPE)
        .ok_or(EncodeError::NoResourceType)?;
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let rt_col = string(rt_col, names::RESOURCE_TYPE)?;
    let rt = rt_col.value(0).to_string();
    let ty = model
        .resource(&rt)
        .ok_or_else(|| EncodeError::UnknownResource(rt.clone()))?;
    let schema = batch.schema();
    let builder = Builder { model };
    let mut root = builder.structure(ty, schema.fields(), batch.columns(), None, &rt)?;
    root.resource_type = Some(rt);
    let mut line = String::new();
    for row in 0..batch.num_rows() {
        line.clear();
        root.write(row, &mut line);
        sink(&line);
    }
    Ok(())
}
