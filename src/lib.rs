//! fhirlake: FHIR bulk-export NDJSON to typed, lossless Parquet.
//!
//! The data flow, one module per step:
//! - [`model`]: the FHIR definitions, compiled (`schemas/<release>/model.json`).
//! - [`schema`]: the Arrow schema of each resource type, following Parquet on FHIR.
//! - [`decode`]: NDJSON lines to Arrow record batches (simd-json on rayon).
//! - [`annotate`]: the derived `__x_numeric` and `__x_start`/`__x_end` values.
//! - [`encode`]: the reverse, Arrow rows back to FHIR JSON.
pub mod annotate;
pub mod decode;
pub mod encode;
pub mod model;
pub mod schema;
