//! The decoder tree: one small column builder per FHIR element, created from the model
//! the first time the data uses that element (so recursion such as
//! `Questionnaire.item.item` or `Extension.extension` is as deep as the data, no deeper,
//! and a batch's schema holds only the fields that occur).
//!
//! Like arrow-json's reader, each builder knows one Arrow type and appends values from
//! the parsed JSON; unlike it, builders can be truncated, so a line that fails half-way
//! (an unknown element deep inside) is rolled back and quarantined whole.

use super::line::{json_type, Line};
use crate::annotate;
use crate::model::{Field as ModelField, Model, Primitive, TypeId, TypeKind, ValueKind};
use crate::schema::{self, names};
use arrow_array::types::Decimal128Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Int32Array, Int64Array, ListArray, PrimitiveArray, StringArray,
    StructArray, TimestampMillisecondArray,
};
use arrow_buffer::{
    BooleanBuffer, BooleanBufferBuilder, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer,
};
use arrow_schema::{DataType, Field, Fields};
use simd_json::{Node, StaticNode};
use std::sync::Arc;

/// What the decoders need besides the line: the model and the options.
pub(crate) struct Cx<'m> {
    pub model: &'m Model,
    pub keep_unknown: bool,
}

/// Why a line was rejected: a message and the element path, innermost last.
#[derive(Debug)]
pub(crate) struct DecodeError {
    /// Path segments, innermost first (pushed as the error bubbles up).
    pub path: Vec<String>,
    pub message: String,
}

impl DecodeError {
    fn new(message: impl Into<String>) -> Self {
        DecodeError {
            path: Vec::new(),
            message: message.into(),
        }
    }
    fn within(mut self, segment: &str) -> Self {
        self.path.push(segment.to_string());
        self
    }
    pub fn render(&self, root: &str) -> String {
        let mut s = root.to_string();
        for seg in self.path.iter().rev() {
            s.push('.');
            s.push_str(seg);
        }
        s.push_str(": ");
        s.push_str(&self.message);
        s
    }
}

type Result<T> = std::result::Result<T, DecodeError>;

fn expected(what: &str, node: &Node<'_>) -> DecodeError {
    DecodeError::new(format!("expected {what}, found {}", json_type(node)))
}

/// Finished output of a builder: one or more sibling columns (a decimal gives its text and
/// its `__<name>_numeric` annotation).
pub(crate) type Columns = Vec<(Field, ArrayRef)>;

fn validity(builder: &mut BooleanBufferBuilder) -> Option<NullBuffer> {
    let nulls = NullBuffer::new(builder.finish());
    (nulls.null_count() > 0).then_some(nulls)
}

fn all_null(len: usize, nulls: &Option<NullBuffer>) -> bool {
    match nulls {
        Some(n) => n.null_count() == len,
        None => len == 0,
    }
}

/// `a == b` for object keys, inlined. Hand-written because slice equality calls libc's
/// memcmp, and for FHIR's keys (almost all under 16 bytes) the call cost more than the
/// compare: memcmp was 3% of decoding time, most of it from this check. Two overlapping
/// 8- or 4-byte loads cover any length from 4 to 16 bytes.
#[inline(always)]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word8 = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap());
    let word4 = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap());
    match n {
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// Utf8 values, kept as offsets and bytes.
pub(crate) struct StrCol {
    offsets: Vec<i32>,
    data: Vec<u8>,
    valid: BooleanBufferBuilder,
}

impl StrCol {
    fn new() -> Self {
        StrCol {
            offsets: vec![0],
            data: Vec::new(),
            valid: BooleanBufferBuilder::new(0),
        }
    }
    fn len(&self) -> usize {
        self.valid.len()
    }
    pub(crate) fn push_str(&mut self, s: &str) {
        self.data.extend_from_slice(s.as_bytes());
        self.offsets.push(self.data.len() as i32);
        self.valid.append(true);
    }
    fn push_nulls(&mut self, n: usize) {
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.extend(std::iter::repeat_n(last, n));
        self.valid.append_n(n, false);
    }
    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        self.data
            .truncate(*self.offsets.last().unwrap_or(&0) as usize);
        self.valid.truncate(len);
    }
    fn finish(&mut self) -> StringArray {
        let nulls = validity(&mut self.valid);
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::take(&mut self.offsets)));
        let values = Buffer::from_vec(std::mem::take(&mut self.data));
        // SAFETY: offsets are monotonic (each push adds a length) and the bytes are the
        // concatenation of `&str`s cut at those offsets, so every value is valid UTF-8.
        unsafe { StringArray::new_unchecked(offsets, values, nulls) }
    }
}

/// Fixed-width values with validity.
pub(crate) struct PrimCol<T> {
    values: Vec<T>,
    valid: BooleanBufferBuilder,
}

impl<T: Copy + Default> PrimCol<T> {
    fn new() -> Self {
        PrimCol {
            values: Vec::new(),
            valid: BooleanBufferBuilder::new(0),
        }
    }
    fn push(&mut self, v: Option<T>) {
        self.values.push(v.unwrap_or_default());
        self.valid.append(v.is_some());
    }
    fn push_nulls(&mut self, n: usize) {
        self.values.extend(std::iter::repeat_n(T::default(), n));
        self.valid.append_n(n, false);
    }
    fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        self.valid.truncate(len);
    }
    fn take(&mut self) -> (ScalarBuffer<T>, Option<NullBuffer>)
    where
        T: arrow_buffer::ArrowNativeType,
    {
        let nulls = validity(&mut self.valid);
        (ScalarBuffer::from(std::mem::take(&mut self.values)), nulls)
    }
}

/// The value of one JSON property, of one Arrow shape.
pub(crate) enum Column {
    Str(StrCol),
    Bool(PrimCol<bool>),
    Int32(PrimCol<i32>),
    Int64(PrimCol<i64>),
    /// Text plus the scaled numeric annotation.
    Decimal(StrCol, PrimCol<i128>),
    /// Text plus the start/end annotations (one validity for both).
    Date(StrCol, PrimCol<i64>, Vec<i64>),
    Struct(Box<StructCol>),
    Resource(Box<ResourceCol>),
    List(Box<ListCol>),
}

impl Column {
    /// The builder for a model field; `under` gives the `_name` `{id, extension}` struct.
    fn for_field(model: &Model, field: &ModelField, under: bool, nulls: usize) -> Column {
        let item = if under {
            Column::Struct(Box::new(StructCol::new(
                model,
                model.primitive_element,
                false,
            )))
        } else {
            Column::for_value(model, field.value)
        };
        let mut col = if field.many {
            Column::List(Box::new(ListCol::new(
                item,
                under || matches!(field.value, ValueKind::Primitive(_)),
            )))
        } else {
            item
        };
        col.push_nulls(nulls);
        col
    }

    fn for_value(model: &Model, value: ValueKind) -> Column {
        match value {
            ValueKind::Primitive(p) => match p {
                Primitive::Boolean => Column::Bool(PrimCol::new()),
                Primitive::Integer32 => Column::Int32(PrimCol::new()),
                Primitive::Integer64 => Column::Int64(PrimCol::new()),
                Primitive::Decimal => Column::Decimal(StrCol::new(), PrimCol::new()),
                Primitive::DateTime => Column::Date(StrCol::new(), PrimCol::new(), Vec::new()),
                Primitive::String => Column::Str(StrCol::new()),
            },
            ValueKind::Struct(t) => Column::Struct(Box::new(StructCol::new(model, t, false))),
            ValueKind::AnyResource => Column::Resource(Box::new(ResourceCol::new())),
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Str(c) => c.len(),
            Column::Bool(c) => c.valid.len(),
            Column::Int32(c) => c.valid.len(),
            Column::Int64(c) => c.valid.len(),
            Column::Decimal(t, _) | Column::Date(t, _, _) => t.len(),
            Column::Struct(c) => c.len,
            Column::Resource(c) => c.len,
            Column::List(c) => c.valid.len(),
        }
    }

    fn push_nulls(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        match self {
            Column::Str(c) => c.push_nulls(n),
            Column::Bool(c) => c.push_nulls(n),
            Column::Int32(c) => c.push_nulls(n),
            Column::Int64(c) => c.push_nulls(n),
            Column::Decimal(t, v) => {
                t.push_nulls(n);
                v.push_nulls(n);
            }
            Column::Date(t, s, e) => {
                t.push_nulls(n);
                s.push_nulls(n);
                e.extend(std::iter::repeat_n(0, n));
            }
            Column::Struct(c) => c.push_nulls(n),
            Column::Resource(c) => c.push_nulls(n),
            Column::List(c) => c.push_nulls(n),
        }
    }

    /// Drop values past `len`, including the partial pushes of a failed line (which
    /// did not yet count in a struct's or list's own length, so always recurse).
    fn truncate(&mut self, len: usize) {
        match self {
            Column::Str(c) => c.truncate(len),
            Column::Bool(c) => c.truncate(len),
            Column::Int32(c) => c.truncate(len),
            Column::Int64(c) => c.truncate(len),
            Column::Decimal(t, v) => {
                t.truncate(len);
                v.truncate(len);
            }
            Column::Date(t, s, e) => {
                t.truncate(len);
                s.truncate(len);
                e.truncate(len);
            }
            Column::Struct(c) => c.truncate(len),
            Column::Resource(c) => c.truncate(len),
            Column::List(c) => c.truncate(len),
        }
    }

    /// Append the JSON value at tape index `idx`.
    fn push(&mut self, cx: &Cx<'_>, line: &Line<'_, '_>, idx: usize) -> Result<()> {
        let node = &line.tape[idx];
        if let Node::Static(StaticNode::Null) = node {
            return Err(DecodeError::new(
                "null value (FHIR forbids null; omit the element instead)",
            ));
        }
        match self {
            Column::Str(c) => match node {
                Node::String(s) => c.push_str(s),
                _ => return Err(expected("string", node)),
            },
            Column::Bool(c) => match node {
                Node::Static(StaticNode::Bool(b)) => c.push(Some(*b)),
                _ => return Err(expected("boolean", node)),
            },
            Column::Int32(c) => {
                let v = match node {
                    Node::Static(StaticNode::I64(v)) => i32::try_from(*v).ok(),
                    Node::Static(StaticNode::U64(v)) => i32::try_from(*v).ok(),
                    // Whole numbers past 64 bits arrive as floats: still out of range.
                    Node::Static(StaticNode::F64(_))
                        if !line.number_text(idx).contains(['.', 'e', 'E']) =>
                    {
                        None
                    }
                    _ => return Err(expected("integer", node)),
                };
                match v {
                    Some(v) => c.push(Some(v)),
                    None => return Err(DecodeError::new("integer out of 32-bit range")),
                }
            }
            Column::Int64(c) => match node {
                Node::String(s) => match s.parse::<i64>() {
                    Ok(v) => c.push(Some(v)),
                    Err(_) => {
                        return Err(DecodeError::new("expected a 64-bit integer in a string"))
                    }
                },
                _ => return Err(expected("string", node)),
            },
            Column::Decimal(text, numeric) => match node {
                Node::Static(StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_)) => {
                    let t = line.number_text(idx);
                    text.push_str(t);
                    numeric.push(annotate::decimal_scaled(t));
                }
                _ => return Err(expected("number", node)),
            },
            Column::Date(text, start, end) => match node {
                Node::String(s) => {
                    text.push_str(s);
                    let r = annotate::date_range(s);
                    start.push(r.map(|r| r.0));
                    end.push(r.map(|r| r.1).unwrap_or(0));
                }
                _ => return Err(expected("string", node)),
            },
            Column::Struct(c) => c.push_object(cx, line, idx)?,
            Column::Resource(c) => c.push_resource(cx, line, idx)?,
            Column::List(c) => c.push_array(cx, line, idx)?,
        }
        Ok(())
    }

    /// Finish into sibling columns named from `name`; nothing when every value is null.
    fn finish(&mut self, model: &Model, name: &str, out: &mut Columns) {
        match self {
            Column::Str(c) => {
                push_col(out, name, Arc::new(c.finish()));
            }
            Column::Bool(c) => {
                let (values, nulls) = (
                    c.values.drain(..).collect::<BooleanBuffer>(),
                    validity(&mut c.valid),
                );
                push_col(out, name, Arc::new(BooleanArray::new(values, nulls)));
            }
            Column::Int32(c) => {
                let (v, n) = c.take();
                push_col(out, name, Arc::new(Int32Array::new(v, n)));
            }
            Column::Int64(c) => {
                let (v, n) = c.take();
                push_col(out, name, Arc::new(Int64Array::new(v, n)));
            }
            Column::Decimal(text, numeric) => {
                let text = text.finish();
                let (v, n) = numeric.take();
                if push_col(out, name, Arc::new(text)) {
                    let arr = PrimitiveArray::<Decimal128Type>::new(v, n)
                        .with_precision_and_scale(
                            annotate::DECIMAL_PRECISION,
                            annotate::DECIMAL_SCALE,
                        )
                        .expect("38,6 is a valid decimal precision and scale");
                    out.push((
                        Field::new(names::numeric(name), arr.data_type().clone(), true),
                        Arc::new(arr),
                    ));
                }
            }
            Column::Date(text, start, end) => {
                let text = text.finish();
                let (s, n) = start.take();
                let e = ScalarBuffer::from(std::mem::take(end));
                if push_col(out, name, Arc::new(text)) {
                    let s = TimestampMillisecondArray::new(s, n.clone())
                        .with_timezone(schema::TIMESTAMP_TZ);
                    let e =
                        TimestampMillisecondArray::new(e, n).with_timezone(schema::TIMESTAMP_TZ);
                    out.push((
                        Field::new(names::start(name), s.data_type().clone(), true),
                        Arc::new(s),
                    ));
                    out.push((
                        Field::new(names::end(name), e.data_type().clone(), true),
                        Arc::new(e),
                    ));
                }
            }
            Column::Struct(c) => {
                if let Some(arr) = c.finish(model) {
                    push_col(out, name, Arc::new(arr));
                }
            }
            Column::Resource(c) => {
                if let Some(arr) = c.finish(model) {
                    push_col(out, name, Arc::new(arr));
                }
            }
            Column::List(c) => c.finish(model, name, out),
        }
    }
}

/// Add a finished column unless every value is null (sparse schemas); says if it did.
fn push_col(out: &mut Columns, name: &str, arr: ArrayRef) -> bool {
    if all_null(arr.len(), &arr.logical_nulls()) {
        return false;
    }
    out.push((Field::new(name, arr.data_type().clone(), true), arr));
    true
}

/// A repeating element: a list of its item builder.
pub(crate) struct ListCol {
    offsets: Vec<i32>,
    valid: BooleanBufferBuilder,
    item: Column,
    /// Primitive lists may hold `null` placeholders aligned with their `_name` list.
    nullable_items: bool,
}

impl ListCol {
    fn new(item: Column, nullable_items: bool) -> Self {
        ListCol {
            offsets: vec![0],
            valid: BooleanBufferBuilder::new(0),
            item,
            nullable_items,
        }
    }
    fn push_nulls(&mut self, n: usize) {
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.extend(std::iter::repeat_n(last, n));
        self.valid.append_n(n, false);
    }
    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        self.item
            .truncate(*self.offsets.last().unwrap_or(&0) as usize);
        self.valid.truncate(len);
    }
    fn push_array(&mut self, cx: &Cx<'_>, line: &Line<'_, '_>, idx: usize) -> Result<()> {
        let Node::Array { len, .. } = line.tape[idx] else {
            return Err(expected("array", &line.tape[idx]));
        };
        if len == 0 {
            return Err(DecodeError::new(
                "empty array (FHIR forbids empty arrays; omit the element instead)",
            ));
        }
        let mut pos = idx + 1;
        for _ in 0..len {
            if self.nullable_items && matches!(line.tape[pos], Node::Static(StaticNode::Null)) {
                self.item.push_nulls(1);
            } else {
                self.item.push(cx, line, pos)?;
            }
            pos = line.skip(pos);
        }
        self.offsets.push(self.item.len() as i32);
        self.valid.append(true);
        Ok(())
    }
    fn finish(&mut self, model: &Model, name: &str, out: &mut Columns) {
        let nulls = validity(&mut self.valid);
        let len = self.offsets.len() - 1;
        if all_null(len, &nulls) {
            return;
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::take(&mut self.offsets)));
        let mut items = Columns::new();
        self.item.finish(model, name, &mut items);
        if items.is_empty() {
            // Every item is null: keep the list with an all-null item column of the right type.
            return;
        }
        for (field, arr) in items {
            let item_field = Arc::new(Field::new(names::LIST_ITEM, arr.data_type().clone(), true));
            let list = ListArray::new(item_field, offsets.clone(), arr, nulls.clone());
            out.push((
                Field::new(field.name(), list.data_type().clone(), true),
                Arc::new(list),
            ));
        }
    }
}

/// A complex type, backbone element or resource: one struct, with a builder per field that
/// has occurred.
pub(crate) struct StructCol {
    ty: TypeId,
    len: usize,
    valid: BooleanBufferBuilder,
    /// Per model field: its builder, once the field has occurred.
    slots: Vec<Option<Column>>,
    /// Per model field: the builder of its `_name` primitive extension struct.
    under: Vec<Option<Column>>,
    /// Slots that exist, as `field * 2 + (1 if under)`, to pad absent ones with nulls.
    active: Vec<u32>,
    /// JSON object text of elements unknown to the model (with `keep_unknown`).
    unmapped: Option<StrCol>,
    /// Resources carry `resourceType`, which is the table (or union member) itself.
    is_resource: bool,
    /// The key last seen at each position of an object, and what it resolved to: records
    /// of one export mostly repeat their key order, so one comparison replaces a hash
    /// lookup (profiling showed the lookup at ~17% of decoding).
    hints: Vec<(Box<str>, Resolved)>,
}

impl StructCol {
    pub(crate) fn new(model: &Model, ty: TypeId, _root: bool) -> Self {
        let n = model.ty(ty).fields.len();
        StructCol {
            ty,
            len: 0,
            valid: BooleanBufferBuilder::new(0),
            slots: (0..n).map(|_| None).collect(),
            under: (0..n).map(|_| None).collect(),
            active: Vec::new(),
            unmapped: None,
            is_resource: model.ty(ty).kind == TypeKind::Resource,
            hints: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn push_nulls(&mut self, n: usize) {
        for &k in &self.active {
            let (f, under) = ((k / 2) as usize, k % 2 == 1);
            let slot = if under {
                &mut self.under[f]
            } else {
                &mut self.slots[f]
            };
            if let Some(c) = slot {
                c.push_nulls(n);
            }
        }
        if let Some(u) = &mut self.unmapped {
            u.push_nulls(n);
        }
        self.valid.append_n(n, false);
        self.len += n;
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        for &k in &self.active {
            let (f, under) = ((k / 2) as usize, k % 2 == 1);
            let slot = if under {
                &mut self.under[f]
            } else {
                &mut self.slots[f]
            };
            if let Some(c) = slot {
                c.truncate(len);
            }
        }
        if let Some(u) = &mut self.unmapped {
            u.truncate(len);
        }
        self.valid.truncate(len);
        self.len = self.len.min(len);
    }

    /// Append the JSON object at `idx` as one struct value.
    pub(crate) fn push_object(
        &mut self,
        cx: &Cx<'_>,
        line: &Line<'_, '_>,
        idx: usize,
    ) -> Result<()> {
        let Node::Object { len, .. } = line.tape[idx] else {
            return Err(expected("object", &line.tape[idx]));
        };
        if len == 0 {
            return Err(DecodeError::new(
                "empty object (FHIR forbids empty objects; omit the element instead)",
            ));
        }
        let n = self.len;
        let td = cx.model.ty(self.ty);
        let mut unknown: Option<String> = None;
        let mut pos = idx + 1;
        for ordinal in 0..len {
            let key = match line.tape[pos] {
                Node::String(k) => k,
                _ => "",
            };
            let value = pos + 1;
            pos = line.skip(value);
            if self.is_resource && key == "resourceType" {
                continue;
            }
            let resolved = match self.hints.get(ordinal) {
                Some((k, r)) if same_key(k.as_bytes(), key.as_bytes()) => *r,
                _ => {
                    let r = resolve(td, key);
                    if ordinal < 64 {
                        if self.hints.len() <= ordinal {
                            self.hints.resize(ordinal + 1, (Box::from(""), None));
                        }
                        self.hints[ordinal] = (Box::from(key), r);
                    }
                    r
                }
            };
            let found = resolved.map(|(fi, under)| (fi, &td.fields[fi as usize], under));
            let Some((fi, field, under)) = found else {
                if !cx.keep_unknown {
                    return Err(DecodeError::new(format!(
                        "unknown element (not in the FHIR {} definition of {})",
                        cx.model.fhir_version,
                        display_type(&td.name)
                    ))
                    .within(&safe_key(key)));
                }
                let buf = unknown.get_or_insert_with(|| String::from("{"));
                if buf.len() > 1 {
                    buf.push(',');
                }
                super::line::write_json_string(key, buf);
                buf.push(':');
                line.write_json(value, false, buf);
                continue;
            };
            let slots = if under {
                &mut self.under
            } else {
                &mut self.slots
            };
            let slot = &mut slots[fi as usize];
            let col = match slot {
                Some(c) => c,
                None => {
                    self.active.push(fi * 2 + u32::from(under));
                    slot.insert(Column::for_field(cx.model, field, under, n))
                }
            };
            if col.len() != n {
                return Err(DecodeError::new("property appears twice").within(&safe_key(key)));
            }
            if let Err(e) = col.push(cx, line, value) {
                return Err(e.within(key));
            }
        }
        for &k in &self.active {
            let (f, under) = ((k / 2) as usize, k % 2 == 1);
            let slot = if under {
                &mut self.under[f]
            } else {
                &mut self.slots[f]
            };
            if let Some(c) = slot {
                if c.len() == n {
                    c.push_nulls(1);
                }
            }
        }
        match unknown {
            Some(mut text) => {
                text.push('}');
                let col = self.unmapped.get_or_insert_with(|| {
                    let mut c = StrCol::new();
                    c.push_nulls(n);
                    c
                });
                col.push_str(&text);
            }
            None => {
                if let Some(c) = &mut self.unmapped {
                    c.push_nulls(1);
                }
            }
        }
        self.valid.append(true);
        self.len += 1;
        Ok(())
    }

    /// The fields present, in canonical order, as columns.
    pub(crate) fn finish_columns(&mut self, model: &Model) -> Columns {
        let td = model.ty(self.ty);
        let mut out = Columns::new();
        for (i, f) in td.fields.iter().enumerate() {
            if let Some(c) = &mut self.slots[i] {
                c.finish(model, &f.name, &mut out);
            }
            if let Some(c) = &mut self.under[i] {
                c.finish(model, &names::under(&f.name), &mut out);
            }
        }
        if let Some(u) = &mut self.unmapped {
            push_col(&mut out, names::UNMAPPED, Arc::new(u.finish()));
        }
        out
    }

    fn finish(&mut self, model: &Model) -> Option<StructArray> {
        let cols = self.finish_columns(model);
        let nulls = validity(&mut self.valid);
        if cols.is_empty() || all_null(self.len, &nulls) {
            return None;
        }
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = cols.into_iter().unzip();
        Some(StructArray::new(Fields::from(fields), arrays, nulls))
    }
}

/// A `Resource`-typed element (contained, Bundle.entry.resource): a struct with one field
/// per resource type that occurs, exactly one of them set per value.
pub(crate) struct ResourceCol {
    len: usize,
    valid: BooleanBufferBuilder,
    members: Vec<(TypeId, StructCol)>,
}

impl ResourceCol {
    fn new() -> Self {
        ResourceCol {
            len: 0,
            valid: BooleanBufferBuilder::new(0),
            members: Vec::new(),
        }
    }
    fn push_nulls(&mut self, n: usize) {
        for (_, m) in &mut self.members {
            m.push_nulls(n);
        }
        self.valid.append_n(n, false);
        self.len += n;
    }
    fn truncate(&mut self, len: usize) {
        for (_, m) in &mut self.members {
            m.truncate(len);
        }
        self.valid.truncate(len);
        self.len = self.len.min(len);
    }
    fn push_resource(&mut self, cx: &Cx<'_>, line: &Line<'_, '_>, idx: usize) -> Result<()> {
        let Node::Object { .. } = line.tape[idx] else {
            return Err(expected("object", &line.tape[idx]));
        };
        let ty = resource_type_of(cx.model, line, idx)?;
        let n = self.len;
        let member = match self.members.iter().position(|(t, _)| *t == ty) {
            Some(i) => i,
            None => {
                let mut m = StructCol::new(cx.model, ty, false);
                m.push_nulls(n);
                self.members.push((ty, m));
                self.members.len() - 1
            }
        };
        let name = cx.model.ty(ty).name.clone();
        self.members[member]
            .1
            .push_object(cx, line, idx)
            .map_err(|e| e.within(&format!("({name})")))?;
        for (_, m) in &mut self.members {
            if m.len() == n {
                m.push_nulls(1);
            }
        }
        self.valid.append(true);
        self.len += 1;
        Ok(())
    }
    fn finish(&mut self, model: &Model) -> Option<StructArray> {
        self.members
            .sort_by(|a, b| model.ty(a.0).name.cmp(&model.ty(b.0).name));
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (ty, m) in &mut self.members {
            if let Some(arr) = m.finish(model) {
                fields.push(Field::new(
                    model.ty(*ty).name.as_str(),
                    arr.data_type().clone(),
                    true,
                ));
                arrays.push(Arc::new(arr));
            }
        }
        let nulls = validity(&mut self.valid);
        if fields.is_empty() || all_null(self.len, &nulls) {
            return None;
        }
        Some(StructArray::new(Fields::from(fields), arrays, nulls))
    }
}

/// What a JSON key names: `(field index, is it the `_name` of a primitive)`, or nothing.
type Resolved = Option<(u32, bool)>;

fn resolve(td: &crate::model::TypeDef, key: &str) -> Resolved {
    match td.field(key) {
        Some((fi, _)) => Some((fi, false)),
        None => key
            .strip_prefix('_')
            .and_then(|base| td.field(base))
            .filter(|(_, f)| matches!(f.value, ValueKind::Primitive(_)))
            .map(|(fi, _)| (fi, true)),
    }
}

/// The resource type named by the `resourceType` of the object at `idx`.
pub(crate) fn resource_type_of(model: &Model, line: &Line<'_, '_>, idx: usize) -> Result<TypeId> {
    let Node::Object { len, .. } = line.tape[idx] else {
        return Err(expected("object", &line.tape[idx]));
    };
    let mut pos = idx + 1;
    for _ in 0..len {
        let value = pos + 1;
        if let Node::String("resourceType") = line.tape[pos] {
            return match line.tape[value] {
                Node::String(name) => model.resource(name).ok_or_else(|| {
                    DecodeError::new(format!(
                        "resourceType is not a FHIR {} resource type",
                        model.fhir_version
                    ))
                }),
                ref other => Err(expected("string", other).within("resourceType")),
            };
        }
        pos = line.skip(value);
    }
    Err(DecodeError::new("missing resourceType"))
}

/// Backbone types are named by path (`Patient.contact`); data types by name.
fn display_type(name: &str) -> &str {
    name
}

/// An unknown key, for messages: keys are structure, not values, but a hostile file could
/// put anything there, so keep it short and printable.
fn safe_key(key: &str) -> String {
    let clean: String = key
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if key.chars().count() > 64 {
        format!("{clean}…")
    } else {
        clean
    }
}

/// Arrow type of a list of `item`.
#[allow(dead_code)]
pub(crate) fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new(names::LIST_ITEM, item, true)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_key_is_byte_equality_at_every_length() {
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for n in 0..=text.len() {
            let a = &text[..n];
            let copy = a.to_vec(); // equal bytes at another address
            assert!(super::same_key(a, &copy), "{n}");
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!super::same_key(a, &b), "length {n}, byte {i}");
            }
            if n > 0 {
                assert!(!super::same_key(a, &text[..n - 1]), "{n}");
            }
        }
    }
}
