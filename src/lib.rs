//! fhirlake: FHIR bulk-export NDJSON to typed, lossless Parquet.
//!
//! The data flow, one module per step:
//! - [`model`]: the FHIR definitions, compiled (`schemas/<release>/model.json`).
//! - [`schema`]: the Arrow schema of each resource type, following Parquet on FHIR.
//! - [`decode`]: NDJSON lines to Arrow record batches (simd-json on rayon).
//! - [`annotate`]: the derived `__x_numeric` and `__x_start`/`__x_end` values.
//! - [`encode`]: the reverse, Arrow rows back to FHIR JSON.
//! - [`manifest`]: what to read (export manifests, folders), as a plan.
//! - [`source`]: bytes from disk, as chunks of whole lines.
//! - [`sink`]: Parquet out.
//! - [`convert`]: the pipeline joining them; [`report`] and [`progress`] tell how it went.
//! - [`allocator`]: how the binary's allocator is set up.
pub mod allocator;
pub mod annotate;
pub mod convert;
pub mod decode;
pub mod dest;
pub mod encode;
pub mod manifest;
pub mod model;
pub mod progress;
pub mod report;
pub mod s3;
pub mod schema;
pub mod sink;
pub mod source;
pub mod to_ndjson;
