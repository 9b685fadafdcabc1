//! The FHIR model: every resource, complex type, backbone element and primitive type of
//! one FHIR version, compiled from the official StructureDefinitions.
//!
//! The model is version-neutral: it only knows type names, element names, cardinality and
//! the FHIR types of each element. A release (R4, later R4B/R5) is one generated file,
//! `schemas/<release>/model.json`, made by [`generate`] and embedded in the binary.
//!
//! Backbone elements (`Patient.contact`) and the nested elements of data types
//! (`Timing.repeat`) are types of their own, named by their path; a `contentReference`
//! (`Questionnaire.item.item` -> `#Questionnaire.item`) simply points at that named type,
//! which is how recursion stays finite in the model and is bounded by the data when decoding.

pub mod generate;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

pub use generate::generate;

/// The compact, serialisable form written to `schemas/<release>/model.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelFile {
    #[serde(rename = "fhirVersion")]
    pub fhir_version: String,
    pub types: Vec<TypeFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TypeFile {
    pub name: String,
    pub kind: TypeKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<ElementFile>,
}

/// One element: `[name, many, type, type, ...]` in the file, to keep it compact.
/// `name` keeps the `[x]` suffix of choice elements.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementFile {
    pub name: String,
    pub many: bool,
    pub types: Vec<String>,
}

impl Serialize for ElementFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(2 + self.types.len()))?;
        seq.serialize_element(&self.name)?;
        seq.serialize_element(&u8::from(self.many))?;
        for t in &self.types {
            seq.serialize_element(t)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ElementFile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Vec<serde_json::Value> = Vec::deserialize(d)?;
        let bad = || serde::de::Error::custom("element must be [name, 0|1, type...]");
        let name = raw.first().and_then(|v| v.as_str()).ok_or_else(bad)?;
        let many = raw.get(1).and_then(|v| v.as_u64()).ok_or_else(bad)? == 1;
        let types = raw[2..]
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ElementFile {
            name: name.to_string(),
            many,
            types,
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum TypeKind {
    Primitive,
    Complex,
    Resource,
    Backbone,
}

/// Index of a type in [`Model::types`].
pub type TypeId = u32;

/// How a primitive FHIR type is written in JSON and stored in Arrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    Boolean,
    /// integer, positiveInt, unsignedInt: a JSON number, Int32.
    Integer32,
    /// integer64 (R5): a JSON string, Int64.
    Integer64,
    /// decimal: a JSON number; its text is kept, plus a Decimal128(38,6) annotation.
    Decimal,
    /// date, dateTime: a JSON string, plus `_start`/`_end` timestamp annotations.
    DateTime,
    /// every other primitive: a JSON string, Utf8.
    String,
}

impl Primitive {
    pub fn of(type_name: &str) -> Primitive {
        match type_name {
            "boolean" => Primitive::Boolean,
            "integer" | "positiveInt" | "unsignedInt" => Primitive::Integer32,
            "integer64" => Primitive::Integer64,
            "decimal" => Primitive::Decimal,
            "date" | "dateTime" => Primitive::DateTime,
            _ => Primitive::String,
        }
    }
}

/// What an element's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Primitive(Primitive),
    /// A complex type or backbone element: a struct.
    Struct(TypeId),
    /// `Resource` (contained, Bundle.entry.resource, Parameters.parameter.resource):
    /// a struct with one field per resource type that occurs.
    AnyResource,
}

/// One JSON property of a type: an element, or one type of a choice element.
#[derive(Debug, Clone)]
pub struct Field {
    /// The JSON property name, e.g. `valueQuantity`, `birthDate`.
    pub name: Arc<str>,
    /// The FHIR type name, e.g. `Quantity`, `date`, `Patient.contact`.
    pub type_name: Arc<str>,
    pub value: ValueKind,
    pub many: bool,
    /// Index of the element (not the field) in its type, for error paths.
    pub element: u32,
}

#[derive(Debug)]
pub struct TypeDef {
    pub name: String,
    pub kind: TypeKind,
    /// Fields in canonical order: elements in definition order, choice types in the
    /// order of the definition's type list.
    pub fields: Vec<Field>,
    /// JSON property name -> index in `fields`.
    pub by_name: FxHashMap<Arc<str>, u32>,
}

impl TypeDef {
    pub fn field(&self, json_name: &str) -> Option<(u32, &Field)> {
        let idx = *self.by_name.get(json_name)?;
        Some((idx, &self.fields[idx as usize]))
    }
}

#[derive(Debug)]
pub struct Model {
    pub fhir_version: String,
    pub types: Vec<TypeDef>,
    pub by_name: FxHashMap<String, TypeId>,
    /// Resource type names, sorted, for the `Resource` union.
    pub resource_types: Vec<String>,
    /// The struct type behind `_name` primitive extension properties: `{id, extension}`.
    pub primitive_element: TypeId,
}

/// Upper-camel-case a type code for a choice property name: `dateTime` -> `DateTime`.
pub fn choice_suffix(type_code: &str) -> String {
    let mut c = type_code.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model file is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("model is inconsistent: {0}")]
    Inconsistent(String),
}

impl Model {
    /// Build the in-memory model from its compact file form.
    pub fn from_file(file: &ModelFile) -> Result<Model, ModelError> {
        let mut by_name = FxHashMap::default();
        for (i, t) in file.types.iter().enumerate() {
            by_name.insert(t.name.clone(), i as TypeId);
        }
        // The synthetic `{id, extension}` struct behind `_name` properties.
        let primitive_element = file.types.len() as TypeId;
        by_name.insert("#PrimitiveElement".into(), primitive_element);

        let mut types = Vec::with_capacity(file.types.len() + 1);
        for t in &file.types {
            let mut fields = Vec::new();
            for (ei, e) in t.elements.iter().enumerate() {
                let (base, choice) = match e.name.strip_suffix("[x]") {
                    Some(b) => (b, true),
                    None => (e.name.as_str(), false),
                };
                for ty in &e.types {
                    let name = if choice {
                        format!("{base}{}", choice_suffix(ty))
                    } else {
                        base.to_string()
                    };
                    let value = if ty == "Resource" {
                        ValueKind::AnyResource
                    } else {
                        let id = *by_name.get(ty.as_str()).ok_or_else(|| {
                            ModelError::Inconsistent(format!(
                                "{}.{} has unknown type {ty}",
                                t.name, e.name
                            ))
                        })?;
                        match file.types[id as usize].kind {
                            TypeKind::Primitive => ValueKind::Primitive(Primitive::of(ty)),
                            _ => ValueKind::Struct(id),
                        }
                    };
                    fields.push(Field {
                        name: name.into(),
                        type_name: ty.as_str().into(),
                        value,
                        many: e.many,
                        element: ei as u32,
                    });
                }
            }
            types.push(TypeDef::new(t.name.clone(), t.kind, fields));
        }
        let string_id = *by_name
            .get("string")
            .ok_or_else(|| ModelError::Inconsistent("no `string` type".into()))?;
        let extension_id = *by_name
            .get("Extension")
            .ok_or_else(|| ModelError::Inconsistent("no `Extension` type".into()))?;
        let _ = string_id;
        types.push(TypeDef::new(
            "#PrimitiveElement".into(),
            TypeKind::Complex,
            vec![
                Field {
                    name: "id".into(),
                    type_name: "string".into(),
                    value: ValueKind::Primitive(Primitive::String),
                    many: false,
                    element: 0,
                },
                Field {
                    name: "extension".into(),
                    type_name: "Extension".into(),
                    value: ValueKind::Struct(extension_id),
                    many: true,
                    element: 1,
                },
            ],
        ));
        let mut resource_types: Vec<String> = file
            .types
            .iter()
            .filter(|t| t.kind == TypeKind::Resource)
            .map(|t| t.name.clone())
            .collect();
        resource_types.sort();
        Ok(Model {
            fhir_version: file.fhir_version.clone(),
            types,
            by_name,
            resource_types,
            primitive_element,
        })
    }

    pub fn from_json(text: &str) -> Result<Model, ModelError> {
        let file: ModelFile = serde_json::from_str(text)?;
        Model::from_file(&file)
    }

    /// The embedded FHIR R4 (4.0.1) model.
    pub fn r4() -> Arc<Model> {
        static R4: OnceLock<Arc<Model>> = OnceLock::new();
        R4.get_or_init(|| {
            Arc::new(
                Model::from_json(R4_MODEL_JSON)
                    .expect("the embedded R4 model is checked by the test suite"),
            )
        })
        .clone()
    }

    pub fn type_id(&self, name: &str) -> Option<TypeId> {
        self.by_name.get(name).copied()
    }

    pub fn ty(&self, id: TypeId) -> &TypeDef {
        &self.types[id as usize]
    }

    /// The id of a concrete resource type, or `None` when `name` is not one.
    pub fn resource(&self, name: &str) -> Option<TypeId> {
        let id = self.type_id(name)?;
        (self.ty(id).kind == TypeKind::Resource).then_some(id)
    }
}

impl TypeDef {
    fn new(name: String, kind: TypeKind, fields: Vec<Field>) -> TypeDef {
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i as u32))
            .collect();
        TypeDef {
            name,
            kind,
            fields,
            by_name,
        }
    }
}

/// The generated R4 model, embedded at build time.
pub const R4_MODEL_JSON: &str = include_str!("../../schemas/r4/model.json");
