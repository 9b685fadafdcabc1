//! The decoder's rules on small inline resources: what is rejected and why, the Arrow
//! shapes and types, annotations, sparse schemas and their merge, contained resources,
//! recursion and `_unmapped`.

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, Int32Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use fhirlake::decode::line::canonical_json;
use fhirlake::decode::{DecodeOptions, Decoded, Decoder};
use fhirlake::encode;
use fhirlake::model::Model;
use fhirlake::schema;

fn decode(rt: &str, lines: &[&str]) -> Decoded {
    decode_with(rt, lines, DecodeOptions::default())
}

fn decode_with(rt: &str, lines: &[&str], opts: DecodeOptions) -> Decoded {
    let d = Decoder::new(Model::r4(), rt, opts).unwrap();
    d.decode(lines)
}

/// The single rejection reason for one line.
fn reject(rt: &str, line: &str) -> String {
    let d = decode(rt, &[line]);
    assert_eq!(d.batch.num_rows(), 0, "{line} should be rejected");
    assert_eq!(d.rejected.len(), 1);
    d.rejected[0].reason.clone()
}

fn field_names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

fn roundtrip(rt: &str, line: &str) {
    let d = decode(rt, &[line]);
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    let out = encode::to_json_lines(&Model::r4(), &d.batch).unwrap();
    assert_eq!(
        canonical_json(out[0].as_bytes()).unwrap(),
        canonical_json(line.as_bytes()).unwrap()
    );
}

#[test]
fn rejects_lines_that_are_not_resources() {
    assert_eq!(
        reject("Patient", r#"{"resourceType":"Patient","id":"#),
        "not valid JSON (EOF while parsing a value at column 31)"
    );
    assert_eq!(
        reject(
            "Patient",
            r#"{"resourceType":"Patient"} {"resourceType":"Patient"}"#
        ),
        "more than one JSON value on the line, or text after it (column 28)"
    );
    let bad_utf8: &[u8] = b"{\"resourceType\":\"Patient\",\"id\":\"\xff\"}";
    let d = Decoder::new(Model::r4(), "Patient", DecodeOptions::default())
        .unwrap()
        .decode(&[bad_utf8]);
    assert_eq!(d.rejected[0].reason, "not valid JSON (invalid UTF-8)");
    let deep = format!(
        r#"{{"resourceType":"Patient","id":"d","x":{}1{}}}"#,
        "[".repeat(250),
        "]".repeat(250)
    );
    let d = decode("Patient", &[&deep]);
    assert_eq!(
        d.rejected[0].reason,
        "not valid JSON (nested deeper than 200 levels)"
    );
    assert_eq!(
        d.rejected[0].id.as_deref(),
        Some("d"),
        "broken lines still name their resource"
    );
    assert!(reject("Patient", "not json").starts_with("not valid JSON"));
    assert_eq!(
        reject("Patient", r#"["Patient"]"#),
        "not a JSON object (found array)"
    );
    assert_eq!(
        reject("Patient", r#""Patient""#),
        "not a JSON object (found string)"
    );
    assert_eq!(
        reject("Patient", r#"{"id":"p1"}"#),
        "Patient: missing resourceType"
    );
    assert_eq!(
        reject("Patient", r#"{"resourceType":"Observation","id":"o1"}"#),
        "resourceType is Observation, expected Patient"
    );
    assert_eq!(
        reject("Patient", r#"{"resourceType":"Patiënt-SECRET"}"#),
        "Patient: resourceType is not a FHIR 4.0.1 resource type"
    );
    assert_eq!(
        reject("Patient", r#"{"resourceType":7}"#),
        "Patient.resourceType: expected string, found number"
    );
}

#[test]
fn rejects_unknown_elements_with_their_path() {
    assert_eq!(
        reject(
            "Patient",
            r#"{"resourceType":"Patient","favouriteColour":"SECRET"}"#
        ),
        "Patient.favouriteColour: unknown element (not in the FHIR 4.0.1 definition of Patient)"
    );
    assert_eq!(
        reject(
            "Patient",
            r#"{"resourceType":"Patient","name":[{"family":"X"},{"nickname":"SECRET"}]}"#
        ),
        "Patient.name.nickname: unknown element (not in the FHIR 4.0.1 definition of HumanName)"
    );
    assert_eq!(
        reject("Patient", r#"{"resourceType":"Patient","contact":[{"name":{"text":"a"},"age":3}]}"#),
        "Patient.contact.age: unknown element (not in the FHIR 4.0.1 definition of Patient.contact)"
    );
    // `_x` exists only for primitives.
    assert_eq!(
        reject(
            "Patient",
            r#"{"resourceType":"Patient","_maritalStatus":{"id":"x"}}"#
        ),
        "Patient._maritalStatus: unknown element (not in the FHIR 4.0.1 definition of Patient)"
    );
    // A choice type the element does not allow.
    assert_eq!(
        reject(
            "Patient",
            r#"{"resourceType":"Patient","deceasedString":"yes"}"#
        ),
        "Patient.deceasedString: unknown element (not in the FHIR 4.0.1 definition of Patient)"
    );
}

#[test]
fn rejects_values_of_the_wrong_json_type() {
    let cases = [
        (
            r#"{"resourceType":"Patient","active":"true"}"#,
            "Patient.active: expected boolean, found string",
        ),
        (
            r#"{"resourceType":"Patient","gender":{"code":"male"}}"#,
            "Patient.gender: expected string, found object",
        ),
        (
            r#"{"resourceType":"Patient","gender":["male"]}"#,
            "Patient.gender: expected string, found array",
        ),
        (
            r#"{"resourceType":"Patient","name":{"family":"X"}}"#,
            "Patient.name: expected array, found object",
        ),
        (
            r#"{"resourceType":"Patient","name":["X"]}"#,
            "Patient.name: expected object, found string",
        ),
        (
            r#"{"resourceType":"Patient","birthDate":19700101}"#,
            "Patient.birthDate: expected string, found number",
        ),
        (
            r#"{"resourceType":"Patient","multipleBirthInteger":2.5}"#,
            "Patient.multipleBirthInteger: expected integer, found decimal number",
        ),
        (
            r#"{"resourceType":"Patient","multipleBirthInteger":3000000000}"#,
            "Patient.multipleBirthInteger: integer out of 32-bit range",
        ),
        (
            r#"{"resourceType":"Patient","_birthDate":"1970"}"#,
            "Patient._birthDate: expected object, found string",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(reject("Patient", line), want, "{line}");
    }
    assert_eq!(
        reject(
            "Observation",
            r#"{"resourceType":"Observation","status":"final","valueQuantity":{"value":"5.4","unit":"SECRET"}}"#
        ),
        "Observation.valueQuantity.value: expected number, found string"
    );
    assert_eq!(
        reject(
            "Observation",
            r#"{"resourceType":"Observation","component":[{"code":{"text":"a"}},{"valueQuantity":{"value":true}}]}"#
        ),
        "Observation.component.valueQuantity.value: expected number, found boolean"
    );
}

#[test]
fn rejects_nulls_empty_arrays_empty_objects_and_duplicates() {
    assert_eq!(
        reject("Patient", r#"{"resourceType":"Patient","gender":null}"#),
        "Patient.gender: null value (FHIR forbids null; omit the element instead)"
    );
    assert_eq!(
        reject("Patient", r#"{"resourceType":"Patient","name":[]}"#),
        "Patient.name: empty array (FHIR forbids empty arrays; omit the element instead)"
    );
    assert_eq!(
        reject("Patient", r#"{"resourceType":"Patient","maritalStatus":{}}"#),
        "Patient.maritalStatus: empty object (FHIR forbids empty objects; omit the element instead)"
    );
    assert_eq!(
        reject("Patient", r#"{"resourceType":"Patient","name":[null]}"#),
        "Patient.name: null value (FHIR forbids null; omit the element instead)"
    );
    assert_eq!(
        reject("Patient", r#"{"resourceType":"Patient","id":"a","id":"b"}"#),
        "Patient.id: property appears twice"
    );
    // Nulls inside primitive arrays are FHIR's placeholders aligned with `_name`: kept.
    roundtrip(
        "Patient",
        r#"{"resourceType":"Patient","name":[{"given":["Ann",null],"_given":[null,{"extension":[{"url":"http://x/nick","valueString":"Nan"}]}]}]}"#,
    );
}

#[test]
fn reasons_never_contain_values() {
    let secret = "SECRET-PHI-4711";
    let lines = [
        format!(r#"{{"resourceType":"Patient","active":"{secret}"}}"#),
        format!(
            r#"{{"resourceType":"Patient","name":[{{"family":"{secret}","nick":"{secret}"}}]}}"#
        ),
        format!(r#"{{"resourceType":"Observation","code":{{"text":"{secret}"}}}}"#),
        format!(r#"{{"resourceType":"Patient","{secret}":1}}"#),
        format!(r#"{{"resourceType":"Patient","id":"x","birthDate":"{secret}"#),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let d = decode("Patient", &lines);
    assert_eq!(d.rejected.len(), 5);
    for r in &d.rejected {
        // Unknown keys are named (truncated) since they are structure; values never are.
        if r.index != 3 {
            assert!(!r.reason.contains(secret), "{}", r.reason);
        }
    }
}

#[test]
fn failed_lines_are_rolled_back_and_good_lines_kept_in_order() {
    let d = decode(
        "Patient",
        &[
            r#"{"resourceType":"Patient","id":"a","name":[{"family":"A"}]}"#,
            // fails deep inside, after `id` and part of `name` were appended
            r#"{"resourceType":"Patient","id":"b","name":[{"family":"B","given":["x"]},{"family":"B2","bogus":1}],"active":true}"#,
            "",
            r#"{"resourceType":"Patient","id":"c","name":[{"family":"C","given":["y","z"]}],"active":false}"#,
        ],
    );
    let idx: Vec<usize> = d.rejected.iter().map(|r| r.index).collect();
    assert_eq!(idx, [1, 2]);
    assert_eq!(d.rejected[0].id.as_deref(), Some("b"));
    assert_eq!(d.rejected[1].reason, "empty line");
    let ids = d.batch.column_by_name("id").unwrap().as_string::<i32>();
    assert_eq!(ids.iter().collect::<Vec<_>>(), [Some("a"), Some("c")]);
    let out = encode::to_json_lines(&Model::r4(), &d.batch).unwrap();
    assert_eq!(
        canonical_json(out[1].as_bytes()).unwrap(),
        canonical_json(br#"{"resourceType":"Patient","id":"c","name":[{"family":"C","given":["y","z"]}],"active":false}"#).unwrap()
    );
    let active = d.batch.column_by_name("active").unwrap().as_boolean();
    assert!(active.is_null(0));
    assert!(!active.value(1));
}

#[test]
fn types_shapes_and_sparse_schema() {
    let d = decode(
        "Patient",
        &[
            r#"{"resourceType":"Patient","id":"p","active":true,"name":[{"family":"F","given":["G"]}],"birthDate":"1970-01-01","multipleBirthInteger":2}"#,
        ],
    );
    let schema = d.batch.schema();
    assert_eq!(
        field_names(&d.batch),
        [
            "resourceType",
            "id",
            "active",
            "name",
            "birthDate",
            "__birthDate_start",
            "__birthDate_end",
            "multipleBirthInteger"
        ]
    );
    let rt = schema.field_with_name("resourceType").unwrap();
    assert!(!rt.is_nullable());
    assert!(schema.fields().iter().skip(1).all(|f| f.is_nullable()));
    assert_eq!(
        schema.field_with_name("active").unwrap().data_type(),
        &DataType::Boolean
    );
    assert_eq!(
        schema
            .field_with_name("multipleBirthInteger")
            .unwrap()
            .data_type(),
        &DataType::Int32
    );
    assert_eq!(
        schema
            .field_with_name("__birthDate_start")
            .unwrap()
            .data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    let DataType::List(item) = schema.field_with_name("name").unwrap().data_type() else {
        panic!("name is a list")
    };
    assert_eq!(item.name(), "element");
    let DataType::Struct(human_name) = item.data_type() else {
        panic!("HumanName is a struct")
    };
    let names: Vec<_> = human_name.iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["family", "given"], "only fields that occur");
    assert_eq!(human_name[1].data_type(), &schema::list_of(DataType::Utf8));
    let start = d
        .batch
        .column_by_name("__birthDate_start")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>();
    let end = d
        .batch
        .column_by_name("__birthDate_end")
        .unwrap()
        .as_primitive::<TimestampMillisecondType>();
    assert_eq!((start.value(0), end.value(0)), (0, 86_400_000 - 1));
    assert_eq!(
        d.batch
            .column_by_name("multipleBirthInteger")
            .unwrap()
            .as_primitive::<Int32Type>()
            .value(0),
        2
    );
}

#[test]
fn choice_types_are_flat_siblings_and_decimals_keep_their_text() {
    let lines = [
        r#"{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueQuantity":{"value":6.3000,"unit":"mmol/L"}}"#,
        r#"{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueString":"positive"}"#,
        r#"{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueQuantity":{"value":0.1e-5}}"#,
        r#"{"resourceType":"Observation","status":"final","code":{"text":"t"},"valueQuantity":{"value":123456789012345678901234567890123456789.5}}"#,
    ];
    let d = decode("Observation", &lines);
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    assert_eq!(
        field_names(&d.batch),
        [
            "resourceType",
            "status",
            "code",
            "valueQuantity",
            "valueString"
        ]
    );
    let q = d.batch.column_by_name("valueQuantity").unwrap().as_struct();
    let names: Vec<_> = q.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["value", "__value_numeric", "unit"]);
    let text = q.column(0).as_string::<i32>();
    assert_eq!(text.value(0), "6.3000");
    assert_eq!(text.value(2), "0.1e-5");
    let numeric = q.column(1).as_primitive::<Decimal128Type>();
    assert_eq!(numeric.data_type(), &DataType::Decimal128(38, 6));
    assert_eq!(numeric.value(0), 6_300_000);
    assert_eq!(numeric.value(2), 1);
    assert!(
        numeric.is_null(3),
        "more than 38 digits: text kept, numeric null"
    );
    assert_eq!(text.value(3), "123456789012345678901234567890123456789.5");
    assert!(q.is_null(1));
    for l in lines {
        roundtrip("Observation", l);
    }
}

#[test]
fn primitive_extensions_become_underscore_structs() {
    let line = r#"{"resourceType":"Patient","birthDate":"1970-01-01","_birthDate":{"id":"1","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-01-01T00:00:00Z"}]}}"#;
    let d = decode("Patient", &[line]);
    assert_eq!(
        field_names(&d.batch),
        [
            "resourceType",
            "birthDate",
            "__birthDate_start",
            "__birthDate_end",
            "_birthDate"
        ]
    );
    let under = d.batch.column_by_name("_birthDate").unwrap().as_struct();
    let names: Vec<_> = under.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "extension"]);
    let ext = under.column(1).as_list::<i32>().value(0);
    let ext = ext.as_struct();
    let names: Vec<_> = ext.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "url",
            "valueDateTime",
            "__valueDateTime_start",
            "__valueDateTime_end"
        ]
    );
    roundtrip("Patient", line);
    // A primitive with only an extension and no value.
    roundtrip(
        "Patient",
        r#"{"resourceType":"Patient","_gender":{"extension":[{"url":"http://x/absent","valueCode":"unknown"}]}}"#,
    );
}

#[test]
fn contained_resources_are_typed_per_resource_type() {
    let line = r##"{"resourceType":"MedicationRequest","id":"m","contained":[{"resourceType":"Medication","id":"med1","code":{"text":"aspirin"}},{"resourceType":"Patient","id":"p1","active":true}],"status":"active","intent":"order","medicationReference":{"reference":"#med1"},"subject":{"reference":"#p1"}}"##;
    let d = decode("MedicationRequest", &[line]);
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    let DataType::List(item) = d
        .batch
        .schema()
        .field_with_name("contained")
        .unwrap()
        .data_type()
        .clone()
    else {
        panic!()
    };
    let DataType::Struct(members) = item.data_type() else {
        panic!()
    };
    let names: Vec<_> = members.iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["Medication", "Patient"]);
    let contained = d
        .batch
        .column_by_name("contained")
        .unwrap()
        .as_list::<i32>()
        .value(0);
    let contained = contained.as_struct();
    let med = contained.column(0).as_struct();
    assert!(med.is_valid(0) && med.is_null(1));
    assert_eq!(
        med.column_by_name("id")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "med1"
    );
    roundtrip("MedicationRequest", line);
    assert_eq!(
        reject(
            "MedicationRequest",
            r#"{"resourceType":"MedicationRequest","contained":[{"id":"x"}]}"#
        ),
        "MedicationRequest.contained: missing resourceType"
    );
    assert_eq!(
        reject("MedicationRequest", r#"{"resourceType":"MedicationRequest","contained":[{"resourceType":"Medication","strength":1}]}"#),
        "MedicationRequest.contained.(Medication).strength: unknown element (not in the FHIR 4.0.1 definition of Medication)"
    );
}

#[test]
fn recursion_is_as_deep_as_the_data() {
    // Questionnaire.item.item... six levels, Extension.extension three.
    let mut item = r#"{"linkId":"6","type":"string"}"#.to_string();
    for level in (1..6).rev() {
        item = format!(r#"{{"linkId":"{level}","type":"group","item":[{item}]}}"#);
    }
    let line = format!(
        r#"{{"resourceType":"Questionnaire","status":"active","item":[{item}],"extension":[{{"url":"a","extension":[{{"url":"b","extension":[{{"url":"c","valueInteger":1}}]}}]}}]}}"#
    );
    let d = decode("Questionnaire", &[&line]);
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    let mut depth = 0;
    let mut dt = d
        .batch
        .schema()
        .field_with_name("item")
        .unwrap()
        .data_type()
        .clone();
    while let DataType::List(f) = dt {
        let DataType::Struct(fields) = f.data_type() else {
            panic!()
        };
        depth += 1;
        match fields.iter().find(|f| f.name() == "item") {
            Some(f) => dt = f.data_type().clone(),
            None => break,
        }
    }
    assert_eq!(depth, 6);
    roundtrip("Questionnaire", &line);
}

#[test]
fn unknown_elements_kept_in_unmapped_when_asked() {
    let line = r#"{"resourceType":"Patient","id":"p","favouriteColour":"blue","name":[{"family":"F","nickname":{"text":"x","n":1.50}}]}"#;
    let opts = DecodeOptions { keep_unknown: true };
    let d = decode_with("Patient", &[line], opts.clone());
    assert!(d.rejected.is_empty(), "{:?}", d.rejected);
    assert_eq!(
        field_names(&d.batch),
        ["resourceType", "id", "name", "_unmapped"]
    );
    assert_eq!(
        d.batch
            .column_by_name("_unmapped")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        r#"{"favouriteColour":"blue"}"#
    );
    let out = encode::to_json_lines(&Model::r4(), &d.batch).unwrap();
    assert_eq!(
        canonical_json(out[0].as_bytes()).unwrap(),
        canonical_json(line.as_bytes()).unwrap()
    );
    // Without the option the same line is rejected.
    assert_eq!(decode("Patient", &[line]).rejected.len(), 1);
}

#[test]
fn schemas_merge_by_union_in_canonical_order() {
    let model = Model::r4();
    let a = decode(
        "Patient",
        &[
            r#"{"resourceType":"Patient","gender":"male","name":[{"given":["A"]}],"contained":[{"resourceType":"Patient","id":"x"}]}"#,
        ],
    );
    let b = decode(
        "Patient",
        &[
            r#"{"resourceType":"Patient","id":"b","birthDate":"2000","name":[{"family":"B"}],"contained":[{"resourceType":"Organization","name":"o"}]}"#,
        ],
    );
    let (sa, sb) = (a.batch.schema(), b.batch.schema());
    let merged = schema::merge(&model, "Patient", &sa, &sb).unwrap();
    let names: Vec<_> = merged.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "resourceType",
            "id",
            "contained",
            "name",
            "gender",
            "birthDate",
            "__birthDate_start",
            "__birthDate_end"
        ]
    );
    assert_eq!(
        merged,
        schema::merge(&model, "Patient", &sb, &sa).unwrap(),
        "commutative"
    );
    assert_eq!(
        merged,
        schema::merge(&model, "Patient", &merged, &sa).unwrap(),
        "idempotent"
    );
    let DataType::List(name) = merged.field_with_name("name").unwrap().data_type().clone() else {
        panic!()
    };
    let DataType::Struct(hn) = name.data_type() else {
        panic!()
    };
    assert_eq!(
        hn.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
        ["family", "given"]
    );
    let DataType::List(c) = merged
        .field_with_name("contained")
        .unwrap()
        .data_type()
        .clone()
    else {
        panic!()
    };
    let DataType::Struct(members) = c.data_type() else {
        panic!()
    };
    assert_eq!(
        members
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>(),
        ["Organization", "Patient"]
    );
    // The merged schema is what decoding both lines together gives.
    let both = decode(
        "Patient",
        &[
            r#"{"resourceType":"Patient","gender":"male","name":[{"given":["A"]}],"contained":[{"resourceType":"Patient","id":"x"}]}"#,
            r#"{"resourceType":"Patient","id":"b","birthDate":"2000","name":[{"family":"B"}],"contained":[{"resourceType":"Organization","name":"o"}]}"#,
        ],
    );
    assert_eq!(*both.batch.schema(), merged);
    // Different resource types, or a field the definition lacks, do not merge.
    assert!(schema::merge(&model, "Observation", &sa, &sb).is_err());
}

#[test]
fn parallel_decoding_matches_sequential() {
    let mut lines = Vec::new();
    for i in 0..1000 {
        if i % 97 == 0 {
            lines.push(format!(
                r#"{{"resourceType":"Patient","id":"p{i}","active":"no"}}"#
            ));
        } else if i % 2 == 0 {
            lines.push(format!(
                r#"{{"resourceType":"Patient","id":"p{i}","birthDate":"19{:02}-03"}}"#,
                i % 100
            ));
        } else {
            lines.push(format!(
                r#"{{"resourceType":"Patient","id":"p{i}","active":true}}"#
            ));
        }
    }
    let d = Decoder::new(Model::r4(), "Patient", DecodeOptions::default()).unwrap();
    let seq = d.decode(&lines);
    let par = d.decode_parallel(&lines, 64);
    assert_eq!(par.len(), 16);
    let par_rejects: Vec<usize> = par
        .iter()
        .flat_map(|p| p.rejected.iter().map(|r| r.index))
        .collect();
    let seq_rejects: Vec<usize> = seq.rejected.iter().map(|r| r.index).collect();
    assert_eq!(par_rejects, seq_rejects);
    assert_eq!(seq_rejects.len(), 11);
    let model = Model::r4();
    let seq_json = encode::to_json_lines(&model, &seq.batch).unwrap();
    let par_json: Vec<String> = par
        .iter()
        .flat_map(|p| encode::to_json_lines(&model, &p.batch).unwrap())
        .collect();
    assert_eq!(seq_json, par_json);
    assert_eq!(seq_json.len(), 1000 - 11);
}
