//! Arrow schemas of FHIR resources, after the Parquet on FHIR draft.
//!
//! - One table per resource type; `resourceType` is the only required column.
//! - Properties are named as in FHIR JSON (`valueQuantity`), in definition order.
//! - Repeating elements are lists (item field `element`, as the draft's Parquet LIST
//!   groups); complex and backbone elements are structs.
//! - Primitive types: boolean -> Boolean; integer/positiveInt/unsignedInt -> Int32;
//!   everything else -> Utf8, decimals keeping their JSON text.
//! - Annotations beside a value `x`: `__x_numeric` Decimal128(38,6) for decimals;
//!   `__x_start`/`__x_end` Timestamp(ms, UTC) for date and dateTime.
//! - `_x` holds a primitive's `{id, extension}`.
//! - A `Resource` element (contained, Bundle.entry.resource) is a struct with one field
//!   per resource type that occurs, named by the type.
//! - `_unmapped` (only with `--keep-unknown`) holds unknown elements as a JSON object text.
//!
//! Column order for a value `x`: `x`, its annotations, then `_x`.
//!
//! The full (canonical) schema is infinite where FHIR recurses (Extension.extension), so a
//! batch's schema is the canonical one restricted to what occurs, and two such schemas of
//! a resource type always [`merge`] into another.

use crate::model::{Model, Primitive, TypeId, ValueKind};
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, TimeUnit};
use std::sync::Arc;

/// Timestamps are UTC instants: Parquet `TIMESTAMP(isAdjustedToUTC=true, MILLIS)`.
pub const TIMESTAMP_TZ: &str = "UTC";

/// Column naming rules.
pub mod names {
    /// The item field of every list, as in Parquet's LIST `element`.
    pub const LIST_ITEM: &str = "element";
    /// Elements unknown to the FHIR definitions, kept as JSON text.
    pub const UNMAPPED: &str = "_unmapped";
    pub const RESOURCE_TYPE: &str = "resourceType";

    pub fn under(name: &str) -> String {
        format!("_{name}")
    }
    pub fn numeric(name: &str) -> String {
        format!("__{name}_numeric")
    }
    pub fn start(name: &str) -> String {
        format!("__{name}_start")
    }
    pub fn end(name: &str) -> String {
        format!("__{name}_end")
    }
    /// Is this an annotation column (`__x_numeric`, `__x_start`, `__x_end`)?
    pub fn is_annotation(name: &str) -> bool {
        name.starts_with("__")
    }
}

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(TIMESTAMP_TZ.into()))
}

pub fn decimal_type() -> DataType {
    DataType::Decimal128(
        crate::annotate::DECIMAL_PRECISION,
        crate::annotate::DECIMAL_SCALE,
    )
}

pub fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new(names::LIST_ITEM, item, true)))
}

/// The `resourceType` column: required, as the draft says.
pub fn resource_type_field() -> Field {
    Field::new(names::RESOURCE_TYPE, DataType::Utf8, false)
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{0} is not a FHIR resource type")]
    UnknownResource(String),
    #[error("{path}: cannot merge {left} with {right}")]
    Conflict {
        path: String,
        left: String,
        right: String,
    },
    #[error("{path}: not a field of the FHIR definition")]
    UnknownField { path: String },
}

/// The canonical columns of a struct type, expanded `depth` levels of structs deep
/// (recursive types are infinite, so a depth is needed to print one).
pub fn canonical_fields(model: &Model, ty: TypeId, depth: usize) -> Vec<Field> {
    let td = model.ty(ty);
    let mut out = Vec::new();
    for f in &td.fields {
        if td.kind == crate::model::TypeKind::Resource && &*f.name == names::RESOURCE_TYPE {
            continue;
        }
        let value = match f.value {
            ValueKind::Primitive(p) => Some(primitive_type(p)),
            ValueKind::Struct(t) if depth > 0 => Some(DataType::Struct(
                canonical_fields(model, t, depth - 1).into(),
            )),
            // One member per resource type that occurs, each typed like that type's own
            // table; listing all 146 here would make the schema unreadable.
            ValueKind::AnyResource => Some(DataType::Struct(Fields::empty())),
            _ => None,
        };
        let Some(value) = value else { continue };
        let wrap = |t: DataType| if f.many { list_of(t) } else { t };
        out.push(Field::new(f.name.as_ref(), wrap(value), true));
        if let ValueKind::Primitive(p) = f.value {
            match p {
                Primitive::Decimal => out.push(Field::new(
                    names::numeric(&f.name),
                    wrap(decimal_type()),
                    true,
                )),
                Primitive::DateTime => {
                    out.push(Field::new(
                        names::start(&f.name),
                        wrap(timestamp_type()),
                        true,
                    ));
                    out.push(Field::new(
                        names::end(&f.name),
                        wrap(timestamp_type()),
                        true,
                    ));
                }
                _ => {}
            }
            if depth > 0 {
                let el = DataType::Struct(
                    canonical_fields(model, model.primitive_element, depth - 1).into(),
                );
                out.push(Field::new(names::under(&f.name), wrap(el), true));
            }
        }
    }
    out
}

/// The canonical schema of a resource type, structs expanded `depth` levels deep.
pub fn canonical_schema(
    model: &Model,
    resource_type: &str,
    depth: usize,
) -> Result<Schema, SchemaError> {
    let ty = model
        .resource(resource_type)
        .ok_or_else(|| SchemaError::UnknownResource(resource_type.to_string()))?;
    let mut fields = vec![resource_type_field()];
    fields.extend(canonical_fields(model, ty, depth));
    Ok(Schema::new(fields))
}

pub fn primitive_type(p: Primitive) -> DataType {
    match p {
        Primitive::Boolean => DataType::Boolean,
        Primitive::Integer32 => DataType::Int32,
        Primitive::Integer64 => DataType::Int64,
        Primitive::Decimal | Primitive::DateTime | Primitive::String => DataType::Utf8,
    }
}

/// Where a column sits in its struct type: canonical rank and what its value is.
enum Slot {
    Value(ValueKind),
    /// `_x`: the `{id, extension}` struct.
    Under,
    /// Annotations and `_unmapped`: leaves.
    Leaf,
}

/// Rank of a column name in a struct type's canonical order, and its kind.
fn locate(model: &Model, ty: TypeId, name: &str) -> Option<(usize, Slot)> {
    let td = model.ty(ty);
    if name == names::UNMAPPED {
        return Some((usize::MAX, Slot::Leaf));
    }
    if let Some(rest) = name.strip_prefix("__") {
        for (suffix, off) in [("_numeric", 1), ("_start", 2), ("_end", 3)] {
            if let Some(base) = rest.strip_suffix(suffix) {
                let (i, _) = td.field(base)?;
                return Some((i as usize * 5 + off, Slot::Leaf));
            }
        }
        return None;
    }
    if let Some((i, f)) = td.field(name) {
        return Some((i as usize * 5, Slot::Value(f.value)));
    }
    let base = name.strip_prefix('_')?;
    let (i, f) = td.field(base)?;
    matches!(f.value, ValueKind::Primitive(_)).then_some((i as usize * 5 + 4, Slot::Under))
}

/// Merge two sparse schemas of `resource_type` into their union, still in canonical order.
pub fn merge(
    model: &Model,
    resource_type: &str,
    a: &Schema,
    b: &Schema,
) -> Result<Schema, SchemaError> {
    let ty = model
        .resource(resource_type)
        .ok_or_else(|| SchemaError::UnknownResource(resource_type.to_string()))?;
    let strip = |s: &Schema| -> Vec<FieldRef> {
        s.fields()
            .iter()
            .filter(|f| f.name() != names::RESOURCE_TYPE)
            .cloned()
            .collect()
    };
    let merged = merge_struct(model, ty, &strip(a), &strip(b), resource_type)?;
    let mut fields: Vec<FieldRef> = vec![Arc::new(resource_type_field())];
    fields.extend(merged.iter().cloned());
    Ok(Schema::new(fields))
}

fn merge_struct(
    model: &Model,
    ty: TypeId,
    a: &[FieldRef],
    b: &[FieldRef],
    path: &str,
) -> Result<Fields, SchemaError> {
    let mut out: Vec<(usize, FieldRef)> = Vec::with_capacity(a.len().max(b.len()));
    for fa in a {
        let (rank, slot) =
            locate(model, ty, fa.name()).ok_or_else(|| SchemaError::UnknownField {
                path: format!("{path}.{}", fa.name()),
            })?;
        let merged = match b.iter().find(|fb| fb.name() == fa.name()) {
            Some(fb) => {
                let p = format!("{path}.{}", fa.name());
                Arc::new(Field::new(
                    fa.name(),
                    merge_type(model, &slot, fa.data_type(), fb.data_type(), &p)?,
                    true,
                ))
            }
            None => fa.clone(),
        };
        out.push((rank, merged));
    }
    for fb in b {
        if a.iter().any(|fa| fa.name() == fb.name()) {
            continue;
        }
        let (rank, _) = locate(model, ty, fb.name()).ok_or_else(|| SchemaError::UnknownField {
            path: format!("{path}.{}", fb.name()),
        })?;
        out.push((rank, fb.clone()));
    }
    out.sort_by_key(|(rank, _)| *rank);
    Ok(out.into_iter().map(|(_, f)| f).collect())
}

fn merge_type(
    model: &Model,
    slot: &Slot,
    a: &DataType,
    b: &DataType,
    path: &str,
) -> Result<DataType, SchemaError> {
    let conflict = || SchemaError::Conflict {
        path: path.to_string(),
        left: a.to_string(),
        right: b.to_string(),
    };
    match (a, b) {
        (DataType::List(ia), DataType::List(ib)) => Ok(list_of(merge_type(
            model,
            slot,
            ia.data_type(),
            ib.data_type(),
            path,
        )?)),
        (DataType::Struct(fa), DataType::Struct(fb)) => {
            let fields = match slot {
                Slot::Value(ValueKind::Struct(t)) => merge_struct(model, *t, fa, fb, path)?,
                Slot::Under => merge_struct(model, model.primitive_element, fa, fb, path)?,
                Slot::Value(ValueKind::AnyResource) => merge_union(model, fa, fb, path)?,
                _ => return Err(conflict()),
            };
            Ok(DataType::Struct(fields))
        }
        _ if a == b => Ok(a.clone()),
        _ => Err(conflict()),
    }
}

fn merge_union(model: &Model, a: &Fields, b: &Fields, path: &str) -> Result<Fields, SchemaError> {
    let mut out: Vec<FieldRef> = Vec::new();
    let mut names: Vec<&str> = a
        .iter()
        .chain(b.iter())
        .map(|f| f.name().as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let ty = model
            .resource(name)
            .ok_or_else(|| SchemaError::UnknownField {
                path: format!("{path}.{name}"),
            })?;
        let fa = a.iter().find(|f| f.name() == name);
        let fb = b.iter().find(|f| f.name() == name);
        let field = match (fa, fb) {
            (Some(fa), Some(fb)) => {
                let p = format!("{path}.{name}");
                let dt = merge_type(
                    model,
                    &Slot::Value(ValueKind::Struct(ty)),
                    fa.data_type(),
                    fb.data_type(),
                    &p,
                )?;
                Arc::new(Field::new(name, dt, true))
            }
            (Some(f), None) | (None, Some(f)) => f.clone(),
            (None, None) => continue,
        };
        out.push(field);
    }
    Ok(out.into())
}

/// An indented, one-field-per-line view of a schema, for people.
pub fn tree(schema: &Schema) -> String {
    fn walk(fields: &Fields, indent: usize, out: &mut String) {
        for f in fields {
            let (list, dt) = match f.data_type() {
                DataType::List(item) => (true, item.data_type()),
                dt => (false, dt),
            };
            let shown = match dt {
                DataType::Struct(_) => "struct".to_string(),
                DataType::Timestamp(_, _) => "timestamp(ms, UTC)".to_string(),
                DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
                DataType::Utf8 => "string".to_string(),
                other => other.to_string().to_lowercase(),
            };
            let shown = if list {
                format!("list<{shown}>")
            } else {
                shown
            };
            let req = if f.is_nullable() { "" } else { " (required)" };
            out.push_str(&format!("{:indent$}{} {shown}{req}\n", "", f.name()));
            if let DataType::Struct(children) = dt {
                if children.is_empty() {
                    out.push_str(&format!(
                        "{:w$}(one struct per resource type that occurs, typed as that type's table)\n",
                        "",
                        w = indent + 2
                    ));
                }
                walk(children, indent + 2, out);
            }
        }
    }
    let mut out = String::new();
    walk(schema.fields(), 0, &mut out);
    out
}

/// The Athena (Hive DDL) type of an Arrow type written by fhirlake.
pub fn hive_type(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 => "string".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::List(item) => format!("array<{}>", hive_type(item.data_type())),
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("`{}`:{}", f.name(), hive_type(f.data_type())))
                .collect();
            format!("struct<{}>", inner.join(","))
        }
        other => other.to_string().to_lowercase(),
    }
}

/// Cast `batch` to `target`, a wider schema of the same table (a [`merge`] of its own):
/// columns it lacks are added as nulls, nested structs and lists included.
pub fn widen(
    batch: &arrow_array::RecordBatch,
    target: &std::sync::Arc<Schema>,
) -> arrow_array::RecordBatch {
    use arrow_array::{new_null_array, RecordBatch, RecordBatchOptions};
    if batch.schema().fields() == target.fields() {
        return batch.clone();
    }
    let columns = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(col) => widen_array(col, f.data_type()),
            None => new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .expect("a merged schema holds every column of the batch, with the same types")
}

fn widen_array(array: &arrow_array::ArrayRef, target: &DataType) -> arrow_array::ArrayRef {
    use arrow_array::cast::AsArray;
    use arrow_array::{new_null_array, Array, ArrayRef, ListArray, StructArray};
    if array.data_type() == target {
        return array.clone();
    }
    match target {
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let columns: Vec<ArrayRef> = fields
                .iter()
                .map(|f| match s.column_by_name(f.name()) {
                    Some(c) => widen_array(c, f.data_type()),
                    None => new_null_array(f.data_type(), s.len()),
                })
                .collect();
            std::sync::Arc::new(StructArray::new(
                fields.clone(),
                columns,
                s.nulls().cloned(),
            ))
        }
        DataType::List(item) => {
            let l = array.as_list::<i32>();
            let values = widen_array(l.values(), item.data_type());
            std::sync::Arc::new(ListArray::new(
                item.clone(),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            ))
        }
        _ => array.clone(),
    }
}
