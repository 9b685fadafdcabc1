//! Shared test helpers.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data`, the team's data folder, when it is there. Tests that need it call
/// [`shared_data`] and skip, saying so, where it is absent (a fresh clone elsewhere).
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("FHIRLAKE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if dir.join("fhir-r4").is_dir() {
        Some(dir)
    } else {
        // Shown by scripts/test (cargo test -- --show-output) and counted in its summary.
        println!("SKIPPED {test}: needs ../shared/data (or FHIRLAKE_SHARED_DATA), absent here");
        None
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Lines of an NDJSON file, without terminators (CR stripped), blank lines skipped.
pub fn read_lines(path: &std::path::Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    };
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}
