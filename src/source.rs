//! Bytes in: an input file read as chunks of whole lines, never whole into memory.
//!
//! A chunk holds complete lines only (a line that straddles two reads is carried over),
//! so each chunk can be decoded on its own; a line longer than the chunk size simply
//! makes a bigger chunk. `.gz` files are decompressed on the fly. Line ends may be LF or
//! CRLF; a UTF-8 byte-order mark at the start of a file is dropped.

use crate::manifest::{InputFile, Location};
use std::io::Read;

/// Whole lines of one file.
pub struct Chunk {
    /// Index of the file in the plan.
    pub file: usize,
    /// 1-based number of the chunk's first line in its file.
    pub first_line: u64,
    pub data: Vec<u8>,
    /// `(start, end)` of each line in `data`, without its terminator.
    pub lines: Vec<(usize, usize)>,
    /// NDJSON bytes in the chunk (decompressed).
    pub bytes: u64,
    /// Bytes of the file read since the previous chunk (compressed bytes for `.gz`), for
    /// progress against file sizes.
    pub source_bytes: u64,
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

impl Chunk {
    pub fn line(&self, i: usize) -> &[u8] {
        let (s, e) = self.lines[i];
        &self.data[s..e]
    }
    pub fn line_slices(&self) -> Vec<&[u8]> {
        self.lines.iter().map(|&(s, e)| &self.data[s..e]).collect()
    }
}

/// Reads a file as chunks of about `chunk_bytes` whole lines.
pub struct LineReader {
    inner: Box<dyn Read + Send>,
    file: usize,
    chunk_bytes: usize,
    carry: Vec<u8>,
    next_line: u64,
    eof: bool,
    first: bool,
    source_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    source_reported: u64,
}

impl LineReader {
    /// Open an input file, on disk or in S3 (`s3` is connected on first use).
    pub fn open(
        file_index: usize,
        file: &InputFile,
        chunk_bytes: usize,
        s3: &crate::s3::LazyS3,
    ) -> std::io::Result<LineReader> {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let raw: Box<dyn Read + Send> = match &file.location {
            Location::Local(path) => Box::new(std::fs::File::open(path)?),
            Location::S3(url) => {
                let client = s3.get().map_err(std::io::Error::other)?;
                Box::new(
                    client
                        .open(url, Some(file.bytes))
                        .map_err(std::io::Error::other)?,
                )
            }
        };
        let f = Counting {
            inner: raw,
            count: count.clone(),
        };
        let inner: Box<dyn Read + Send> = if file.gzipped() {
            Box::new(flate2::read::MultiGzDecoder::new(
                std::io::BufReader::with_capacity(1 << 20, f),
            ))
        } else {
            Box::new(f)
        };
        let mut reader = LineReader::new(inner, file_index, chunk_bytes);
        reader.source_read = count;
        Ok(reader)
    }

    pub fn new(inner: Box<dyn Read + Send>, file: usize, chunk_bytes: usize) -> LineReader {
        LineReader {
            inner,
            file,
            chunk_bytes: chunk_bytes.max(1024),
            carry: Vec::new(),
            next_line: 1,
            eof: false,
            first: true,
            source_read: Default::default(),
            source_reported: 0,
        }
    }

    /// The next chunk, or `None` at the end of the file.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        let mut data = std::mem::take(&mut self.carry);
        // Read until the buffer holds at least a chunk's worth and a line end, or EOF.
        let mut search_from = 0;
        let mut target = self.chunk_bytes;
        loop {
            if !self.eof && data.len() < target {
                let want = (target - data.len()).max(64 * 1024);
                let start = data.len();
                data.resize(start + want, 0);
                let n = read_full(&mut self.inner, &mut data[start..])?;
                data.truncate(start + n);
                if n < want {
                    self.eof = true;
                }
                continue;
            }
            if self.eof || memchr::memrchr(b'\n', &data[search_from..]).is_some() {
                break;
            }
            // One line longer than the chunk: keep reading until it ends.
            search_from = data.len();
            target = data.len() + self.chunk_bytes.max(1 << 20);
        }
        if self.first {
            self.first = false;
            if data.starts_with(b"\xEF\xBB\xBF") {
                data.drain(..3);
            }
        }
        if data.is_empty() || (self.eof && last_line_end(&data) == 0) {
            return Ok(None);
        }
        // Blank lines at the very end of a file are not lines (a file holding only a line
        // end is empty); blank lines between resources are, and get rejected. So trailing
        // blank lines are held back with the carry until more content or the end shows up.
        let cut = if self.eof {
            last_line_end(&data)
        } else {
            // Complete lines only; of those, up to the last one with content.
            let complete = memchr::memrchr(b'\n', &data).map_or(data.len(), |i| i + 1);
            match last_line_end(&data[..complete]) {
                0 if data.len() > 2 * self.chunk_bytes => complete, // blank lines pile up
                end => end,
            }
        };
        if cut == 0 && !self.eof {
            self.carry = data;
            return self.next_chunk();
        }
        self.carry = data[cut..].to_vec();
        data.truncate(cut);
        let bytes = data.len() as u64;
        let read = self.source_read.load(std::sync::atomic::Ordering::Relaxed);
        let source_bytes = read - self.source_reported;
        self.source_reported = read;
        let mut lines = Vec::new();
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &data) {
            lines.push((start, strip_cr(&data, start, nl)));
            start = nl + 1;
        }
        if start < data.len() {
            lines.push((start, strip_cr(&data, start, data.len())));
        }
        let chunk = Chunk {
            file: self.file,
            first_line: self.next_line,
            data,
            lines,
            bytes,
            source_bytes,
        };
        self.next_line += chunk.lines.len() as u64;
        Ok(Some(chunk))
    }
}

/// The end of the last line holding anything but white space, with its line end; 0 when
/// there is none.
fn last_line_end(data: &[u8]) -> usize {
    match data.iter().rposition(|b| !b.is_ascii_whitespace()) {
        None => 0,
        Some(i) => match memchr::memchr(b'\n', &data[i..]) {
            Some(nl) => i + nl + 1,
            None => data.len(),
        },
    }
}

fn strip_cr(data: &[u8], start: usize, end: usize) -> usize {
    if end > start && data[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(text: &[u8], size: usize) -> Vec<(u64, Vec<String>)> {
        let mut r = LineReader::new(Box::new(std::io::Cursor::new(text.to_vec())), 0, size);
        r.chunk_bytes = size; // below the 1 KiB floor, to exercise carries
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk().unwrap() {
            let lines = (0..c.lines.len())
                .map(|i| String::from_utf8(c.line(i).to_vec()).unwrap())
                .collect();
            out.push((c.first_line, lines));
        }
        out
    }

    #[test]
    fn splits_lines_across_reads_and_numbers_them() {
        let text = b"aaaa\nbbbbbbbbbbbb\r\ncc\n\ndd";
        for size in [3, 6, 4096] {
            let all: Vec<String> = chunks(text, size)
                .into_iter()
                .flat_map(|(_, l)| l)
                .collect();
            assert_eq!(
                all,
                ["aaaa", "bbbbbbbbbbbb", "cc", "", "dd"],
                "chunk size {size}"
            );
        }
        let firsts: Vec<u64> = chunks(text, 6).iter().map(|c| c.0).collect();
        assert_eq!(firsts[0], 1);
        let mut n = 1;
        for (first, lines) in chunks(text, 6) {
            assert_eq!(first, n);
            n += lines.len() as u64;
        }
    }

    #[test]
    fn bom_trailing_newline_and_empty_input() {
        let all: Vec<String> = chunks(b"\xEF\xBB\xBF{}\n{}\n", 4096)
            .into_iter()
            .flat_map(|(_, l)| l)
            .collect();
        assert_eq!(all, ["{}", "{}"]);
        assert!(chunks(b"", 4096).is_empty());
        // Blank lines at the end are not lines; blank lines in between are.
        assert!(chunks(b"\n", 4096).is_empty());
        assert!(chunks(b"\r\n \n\n", 2).is_empty());
        for size in [1, 3, 4096] {
            let all: Vec<String> = chunks(b"a\n\n \nb\n\n\r\n  \n", size)
                .into_iter()
                .flat_map(|(_, l)| l)
                .collect();
            assert_eq!(all, ["a", "", " ", "b"], "chunk size {size}");
            let text = format!("{}\n\n{}\n", "x".repeat(100_000), "y".repeat(70_000));
            let all: Vec<String> = chunks(text.as_bytes(), size)
                .into_iter()
                .flat_map(|(_, l)| l)
                .collect();
            assert_eq!(
                all,
                ["x".repeat(100_000), String::new(), "y".repeat(70_000)],
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn a_line_longer_than_the_chunk_is_kept_whole() {
        let long = "x".repeat(10_000);
        let text = format!("a\n{long}\nb\n");
        let all: Vec<String> = chunks(text.as_bytes(), 16)
            .into_iter()
            .flat_map(|(_, l)| l)
            .collect();
        assert_eq!(all, ["a".to_string(), long, "b".to_string()]);
    }
}
