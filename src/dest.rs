//! Where the lakehouse goes: a local folder or an S3 prefix, behind one small interface
//! that creates files and writes them as streams.

use crate::s3::{S3Upload, S3Url, Sse, S3};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// A file being written; `complete` makes it whole and returns its size.
pub trait Output: Write + Send {
    fn complete(self: Box<Self>) -> std::io::Result<u64>;
}

struct LocalOutput {
    file: std::io::BufWriter<std::fs::File>,
    bytes: u64,
}

impl Write for LocalOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Output for LocalOutput {
    fn complete(mut self: Box<Self>) -> std::io::Result<u64> {
        self.file.flush()?;
        Ok(self.bytes)
    }
}

impl Output for S3Upload {
    fn complete(self: Box<Self>) -> std::io::Result<u64> {
        S3Upload::complete(*self)
    }
}

/// The destination given with `--out`.
pub enum Dest {
    Local(PathBuf),
    S3 {
        s3: Arc<S3>,
        base: S3Url,
        sse: Sse,
        part_size: usize,
    },
}

impl Dest {
    pub fn is_s3(&self) -> bool {
        matches!(self, Dest::S3 { .. })
    }

    /// The S3 object (or local path) of `rel`, a `/`-separated path under the destination.
    pub fn url(&self, rel: &str) -> Option<S3Url> {
        match self {
            Dest::S3 { base, .. } => Some(S3Url {
                bucket: base.bucket.clone(),
                key: format!("{}{rel}", base.key),
            }),
            Dest::Local(_) => None,
        }
    }

    pub fn local_path(&self, rel: &str) -> Option<PathBuf> {
        match self {
            Dest::Local(root) => Some(root.join(rel)),
            Dest::S3 { .. } => None,
        }
    }

    /// How messages name `rel`.
    pub fn display(&self, rel: &str) -> String {
        match self {
            Dest::Local(root) => root.join(rel).display().to_string(),
            Dest::S3 { .. } => self.url(rel).map(|u| u.to_string()).unwrap_or_default(),
        }
    }

    /// Start writing the file `rel`.
    pub fn create(&self, rel: &str) -> std::io::Result<Box<dyn Output>> {
        match self {
            Dest::Local(root) => {
                let path = root.join(rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                Ok(Box::new(LocalOutput {
                    file: std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?),
                    bytes: 0,
                }))
            }
            Dest::S3 {
                s3, sse, part_size, ..
            } => Ok(Box::new(S3Upload::new(
                s3.clone(),
                self.url(rel).expect("S3 destination"),
                sse.clone(),
                *part_size,
            ))),
        }
    }

    /// Write a small file whole.
    pub fn put(&self, rel: &str, body: Vec<u8>) -> std::io::Result<()> {
        let mut out = self.create(rel)?;
        out.write_all(&body)?;
        out.complete().map(|_| ())
    }
}
