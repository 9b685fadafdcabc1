//! Compile the official StructureDefinition bundles of a FHIR release into a [`ModelFile`].
//!
//! Input: a folder holding `profiles-types.json` and `profiles-resources.json` (either may
//! be gzip-compressed, `.json.gz`, as the R4B/R5 copies are). Output: a deterministic,
//! line-per-type JSON text, so that a regenerated model diffs cleanly against the
//! committed `schemas/<release>/model.json`.

use super::{ElementFile, ModelFile, TypeFile, TypeKind};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("unexpected definition content: {0}")]
    Shape(String),
}

fn read_bundle(dir: &Path, stem: &str) -> Result<Value, GenerateError> {
    let plain = dir.join(format!("{stem}.json"));
    let gz = dir.join(format!("{stem}.json.gz"));
    let (path, gzipped) = if plain.exists() {
        (plain, false)
    } else {
        (gz, true)
    };
    let io = |source| GenerateError::Io {
        path: path.display().to_string(),
        source,
    };
    let bytes = std::fs::read(&path).map_err(io)?;
    let text = if gzipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(io)?;
        out
    } else {
        bytes
    };
    serde_json::from_slice(&text).map_err(|source| GenerateError::Json {
        path: path.display().to_string(),
        source,
    })
}

/// The FHIR type of one `ElementDefinition.type` entry. Elements such as `Resource.id`
/// and `Extension.url` are typed `http://hl7.org/fhirpath/System.String` with the FHIR
/// type in the `structuredefinition-fhir-type` extension.
fn type_code(ty: &Value) -> Option<String> {
    let code = ty.get("code")?.as_str()?;
    if let Some(system) = code.strip_prefix("http://hl7.org/fhirpath/System.") {
        let from_ext = ty
            .get("extension")
            .and_then(Value::as_array)
            .and_then(|exts| {
                exts.iter().find_map(|x| {
                    let url = x.get("url")?.as_str()?;
                    if url.ends_with("structuredefinition-fhir-type") {
                        x.get("valueUrl")
                            .or_else(|| x.get("valueUri"))
                            .and_then(Value::as_str)
                    } else {
                        None
                    }
                })
            });
        let mapped = from_ext.unwrap_or(match system {
            "Boolean" => "boolean",
            "Integer" => "integer",
            "Decimal" => "decimal",
            "Date" => "date",
            "DateTime" => "dateTime",
            "Time" => "time",
            _ => "string",
        });
        return Some(mapped.to_string());
    }
    Some(code.to_string())
}

/// Compile one StructureDefinition into its type and the types of its backbone elements.
fn compile(sd: &Value, out: &mut BTreeMap<String, TypeFile>) -> Result<(), GenerateError> {
    let type_name = sd["type"].as_str().unwrap_or_default().to_string();
    let kind = match sd["kind"].as_str() {
        Some("resource") => TypeKind::Resource,
        Some("complex-type") => TypeKind::Complex,
        Some("primitive-type") => TypeKind::Primitive,
        _ => return Ok(()),
    };
    if kind == TypeKind::Primitive {
        out.insert(
            type_name.clone(),
            TypeFile {
                name: type_name,
                kind,
                elements: vec![],
            },
        );
        return Ok(());
    }
    let elements = sd["snapshot"]["element"]
        .as_array()
        .ok_or_else(|| GenerateError::Shape(format!("{type_name} has no snapshot")))?;
    // Types keyed by path, in order of first appearance; the root is `type_name`.
    let mut types: Vec<TypeFile> = vec![TypeFile {
        name: type_name.clone(),
        kind,
        elements: vec![],
    }];
    for el in elements {
        let path = el["path"].as_str().unwrap_or_default();
        let Some((parent, name)) = path.rsplit_once('.') else {
            continue; // the root element
        };
        if el["max"].as_str() == Some("0") {
            continue;
        }
        let many = match el["max"].as_str() {
            Some("*") => true,
            Some(n) => n.parse::<u32>().map(|n| n > 1).unwrap_or(false),
            None => false,
        };
        let mut codes: Vec<String> = Vec::new();
        if let Some(cr) = el.get("contentReference").and_then(Value::as_str) {
            // R4: `#Questionnaire.item`; R5: `http://...StructureDefinition/Questionnaire#Questionnaire.item`.
            let target = cr.rsplit_once('#').map(|(_, t)| t).unwrap_or(cr);
            codes.push(target.to_string());
        } else {
            for ty in el["type"].as_array().map(Vec::as_slice).unwrap_or_default() {
                if let Some(c) = type_code(ty) {
                    codes.push(c);
                }
            }
        }
        if codes.is_empty() {
            return Err(GenerateError::Shape(format!("{path} has no type")));
        }
        // A nested element with its own children is a backbone type named by its path.
        if codes.len() == 1 && (codes[0] == "BackboneElement" || codes[0] == "Element") {
            codes[0] = path.to_string();
            types.push(TypeFile {
                name: path.to_string(),
                kind: TypeKind::Backbone,
                elements: vec![],
            });
        }
        let parent_type = types.iter_mut().find(|t| t.name == parent).ok_or_else(|| {
            GenerateError::Shape(format!("{path}: parent {parent} not seen before"))
        })?;
        parent_type.elements.push(ElementFile {
            name: name.to_string(),
            many,
            types: codes,
        });
    }
    for t in types {
        out.insert(t.name.clone(), t);
    }
    Ok(())
}

/// Compile the definitions in `dir` into a model.
pub fn generate(dir: &Path) -> Result<ModelFile, GenerateError> {
    let mut out = BTreeMap::new();
    let mut version = String::new();
    for stem in ["profiles-types", "profiles-resources"] {
        let bundle = read_bundle(dir, stem)?;
        let entries = bundle["entry"]
            .as_array()
            .ok_or_else(|| GenerateError::Shape(format!("{stem} is not a Bundle")))?;
        for entry in entries {
            let sd = &entry["resource"];
            if sd["resourceType"] != "StructureDefinition"
                || sd["derivation"] != "specialization"
                || sd["abstract"] == true
            {
                continue;
            }
            if version.is_empty() {
                version = sd["fhirVersion"].as_str().unwrap_or_default().to_string();
            }
            compile(sd, &mut out)?;
        }
    }
    Ok(ModelFile {
        fhir_version: version,
        types: out.into_values().collect(),
    })
}

/// Serialise a model one type per line, sorted by name: stable and diff-friendly.
pub fn to_text(model: &ModelFile) -> String {
    let mut s = String::new();
    s.push_str("{\"fhirVersion\":");
    s.push_str(&serde_json::to_string(&model.fhir_version).expect("string serialises"));
    s.push_str(",\"types\":[\n");
    for (i, t) in model.types.iter().enumerate() {
        if i > 0 {
            s.push_str(",\n");
        }
        s.push_str(&serde_json::to_string(t).expect("type serialises"));
    }
    s.push_str("\n]}\n");
    s
}
