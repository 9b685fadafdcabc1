//! Shared by the harness examples: the `.ndjson` files below a folder, in a stable order.

use std::path::{Path, PathBuf};

/// Every `*.ndjson` file below `dir`, sorted by path (sub-folders included).
pub fn ndjson_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    collect(dir, &mut out)?;
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "ndjson") {
            out.push(p);
        }
    }
    Ok(())
}
