//! The compiled FHIR model: regenerated from the official definitions it must equal the
//! committed `schemas/r4/model.json`, and it must hold what the definitions say.

mod common;

use fhirlake::model::{self, Model, Primitive, TypeKind, ValueKind};

#[test]
fn committed_model_matches_regeneration() {
    let Some(data) = common::shared_data("committed_model_matches_regeneration") else {
        return;
    };
    let generated = model::generate(&data.join("fhir-r4")).unwrap();
    let text = model::generate::to_text(&generated);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/r4/model.json"
    ))
    .unwrap();
    assert!(
        text == committed,
        "schemas/r4/model.json is stale: run `fhirlake model generate ../shared/data/fhir-r4 --out schemas/r4/model.json`"
    );
    assert_eq!(
        model::R4_MODEL_JSON,
        committed,
        "the binary embeds the committed file"
    );
}

#[test]
fn model_covers_every_r4_resource_type() {
    let m = Model::r4();
    assert_eq!(m.fhir_version, "4.0.1");
    assert_eq!(m.resource_types.len(), 146);
    for name in [
        "Patient",
        "Observation",
        "Bundle",
        "Questionnaire",
        "ExplanationOfBenefit",
        "SubstancePolymer",
    ] {
        assert!(m.resource(name).is_some(), "{name}");
    }
    assert!(
        m.resource("Resource").is_none(),
        "abstract types are not tables"
    );
    assert!(
        m.resource("HumanName").is_none(),
        "data types are not tables"
    );
    let primitives = m
        .types
        .iter()
        .filter(|t| t.kind == TypeKind::Primitive)
        .count();
    assert_eq!(primitives, 20);
}

#[test]
fn model_keeps_choices_cardinality_backbones_and_recursion() {
    let m = Model::r4();
    let obs = m.ty(m.resource("Observation").unwrap());
    let value_types: Vec<&str> = obs
        .fields
        .iter()
        .filter(|f| obs.fields[0].element != f.element && f.name.starts_with("value"))
        .map(|f| &*f.name)
        .collect();
    assert_eq!(
        value_types,
        [
            "valueQuantity",
            "valueCodeableConcept",
            "valueString",
            "valueBoolean",
            "valueInteger",
            "valueRange",
            "valueRatio",
            "valueSampledData",
            "valueTime",
            "valueDateTime",
            "valuePeriod"
        ]
    );
    let (_, category) = obs.field("category").unwrap();
    assert!(category.many);
    let (_, status) = obs.field("status").unwrap();
    assert!(!status.many);
    assert_eq!(status.value, ValueKind::Primitive(Primitive::String));
    let (_, rr) = obs.field("referenceRange").unwrap();
    let ValueKind::Struct(rr_ty) = rr.value else {
        panic!("backbone is a struct")
    };
    assert_eq!(m.ty(rr_ty).name, "Observation.referenceRange");
    assert_eq!(m.ty(rr_ty).kind, TypeKind::Backbone);
    // contentReference: Questionnaire.item.item is Questionnaire.item again.
    let q = m.ty(m.resource("Questionnaire").unwrap());
    let ValueKind::Struct(item) = q.field("item").unwrap().1.value else {
        panic!()
    };
    let ValueKind::Struct(inner) = m.ty(item).field("item").unwrap().1.value else {
        panic!()
    };
    assert_eq!(item, inner);
    // Primitive kinds.
    let p = m.ty(m.resource("Patient").unwrap());
    assert_eq!(
        p.field("active").unwrap().1.value,
        ValueKind::Primitive(Primitive::Boolean)
    );
    assert_eq!(
        p.field("birthDate").unwrap().1.value,
        ValueKind::Primitive(Primitive::DateTime)
    );
    assert_eq!(
        p.field("multipleBirthInteger").unwrap().1.value,
        ValueKind::Primitive(Primitive::Integer32)
    );
    assert_eq!(
        p.field("contained").unwrap().1.value,
        ValueKind::AnyResource
    );
    let q = m.ty(m.type_id("Quantity").unwrap());
    assert_eq!(
        q.field("value").unwrap().1.value,
        ValueKind::Primitive(Primitive::Decimal)
    );
    // Extension.value[x] has every allowed type.
    let ext = m.ty(m.type_id("Extension").unwrap());
    assert_eq!(
        ext.fields
            .iter()
            .filter(|f| f.name.starts_with("value"))
            .count(),
        50
    );
}

/// The model format is version-neutral: R4B and R5 definitions compile with the same
/// generator (contentReference in R5's `url#path` form included). The R4B/R5 copies in
/// ../shared/data were assembled without the `Extension` StructureDefinition, so a usable
/// R4B/R5 model needs the official bundles; the compiled types are checked here.
#[test]
fn r4b_and_r5_definitions_compile_too() {
    let Some(data) = common::shared_data("r4b_and_r5_definitions_compile_too") else {
        return;
    };
    for (dir, version, resources) in [("fhir-r4b", "4.3.0", 141), ("fhir-r5", "5.0.0", 158)] {
        let file = model::generate(&data.join(dir)).unwrap();
        assert_eq!(file.fhir_version, version);
        let n = file
            .types
            .iter()
            .filter(|t| t.kind == TypeKind::Resource)
            .count();
        println!(
            "{dir}: {n} resource types, {} types in all",
            file.types.len()
        );
        assert_eq!(n, resources, "{dir}");
        let q = file
            .types
            .iter()
            .find(|t| t.name == "Questionnaire.item")
            .unwrap();
        let inner = q.elements.iter().find(|e| e.name == "item").unwrap();
        assert_eq!(
            inner.types,
            ["Questionnaire.item"],
            "{dir}: contentReference"
        );
        let missing = Model::from_file(&file).unwrap_err().to_string();
        assert!(missing.contains("Extension"), "{dir}: {missing}");
    }
}
