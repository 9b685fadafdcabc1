//! One parsed NDJSON line: the simd-json tape plus what the tape does not keep.
//!
//! simd-json parses numbers into f64/i64, which loses a decimal's text (`6.3000`, `1e2`).
//! FHIR decimals must keep it, so the original line is kept beside the tape, and the
//! byte offset of each tape node is recovered from simd-json's stage-1 structural indexes
//! (one per value or key start, in document order, as the tape is).

use simd_json::{Node, StaticNode};
use std::cell::OnceCell;

/// A line's tape and the original bytes it was parsed from.
pub struct Line<'t, 'i> {
    pub tape: &'t [Node<'i>],
    /// The line as read, untouched by parsing.
    pub original: &'i [u8],
    /// simd-json's structural indexes for this line.
    structurals: &'t [u32],
    /// Byte offset of every tape node, built on first use.
    node_offsets: OnceCell<Vec<u32>>,
}

impl<'t, 'i> Line<'t, 'i> {
    pub fn new(tape: &'t [Node<'i>], original: &'i [u8], structurals: &'t [u32]) -> Self {
        Line {
            tape,
            original,
            structurals,
            node_offsets: OnceCell::new(),
        }
    }

    /// The original text of the number at tape node `idx`.
    pub fn number_text(&self, idx: usize) -> &'i str {
        let offsets = self.node_offsets.get_or_init(|| {
            let mut v = Vec::with_capacity(self.tape.len());
            for &s in self.structurals {
                match self.original.get(s as usize) {
                    Some(b'}' | b']' | b':' | b',') | None => {}
                    Some(_) => v.push(s),
                }
            }
            v
        });
        let start = offsets.get(idx).copied().unwrap_or(0) as usize;
        let rest = &self.original[start.min(self.original.len())..];
        let len = rest
            .iter()
            .take_while(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        // The bytes are ASCII digits and signs, so always valid UTF-8.
        std::str::from_utf8(&rest[..len]).unwrap_or("")
    }

    /// The index just past the value starting at `idx`.
    #[inline]
    pub fn skip(&self, idx: usize) -> usize {
        match self.tape[idx] {
            Node::Object { count, .. } | Node::Array { count, .. } => idx + count + 1,
            _ => idx + 1,
        }
    }

    /// Write the value at `idx` as JSON text, numbers verbatim, keys in original order
    /// (or sorted, for comparisons).
    pub fn write_json(&self, idx: usize, sort_keys: bool, out: &mut String) -> usize {
        match self.tape[idx] {
            Node::String(s) => {
                write_json_string(s, out);
                idx + 1
            }
            Node::Static(StaticNode::Null) => {
                out.push_str("null");
                idx + 1
            }
            Node::Static(StaticNode::Bool(b)) => {
                out.push_str(if b { "true" } else { "false" });
                idx + 1
            }
            Node::Static(_) => {
                out.push_str(self.number_text(idx));
                idx + 1
            }
            Node::Array { len, .. } => {
                out.push('[');
                let mut pos = idx + 1;
                for i in 0..len {
                    if i > 0 {
                        out.push(',');
                    }
                    pos = self.write_json(pos, sort_keys, out);
                }
                out.push(']');
                pos
            }
            Node::Object { len, .. } => {
                let mut members: Vec<(&str, String)> = Vec::with_capacity(len);
                let mut pos = idx + 1;
                for _ in 0..len {
                    let key = match self.tape[pos] {
                        Node::String(k) => k,
                        _ => "",
                    };
                    let mut v = String::new();
                    pos = self.write_json(pos + 1, sort_keys, &mut v);
                    members.push((key, v));
                }
                if sort_keys {
                    members.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    out.push_str(v);
                }
                out.push('}');
                pos
            }
        }
    }
}

/// Append `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The JSON type of a tape node, for error messages (never its value).
pub fn json_type(node: &Node<'_>) -> &'static str {
    match node {
        Node::String(_) => "string",
        Node::Object { .. } => "object",
        Node::Array { .. } => "array",
        Node::Static(StaticNode::Null) => "null",
        Node::Static(StaticNode::Bool(_)) => "boolean",
        Node::Static(StaticNode::F64(_)) => "decimal number",
        Node::Static(_) => "number",
    }
}

/// The top-level `"id"` of a line that did not parse, found by a shallow scan that tracks
/// strings and nesting only (best effort: it lets a quarantined line name its resource).
pub fn shallow_id(line: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    let mut i = 0;
    let mut last_key_at_top: Option<(usize, usize)> = None;
    while i < line.len() {
        match line[i] {
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < line.len() && line[j] != b'"' {
                    j += if line[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(line.len());
                let mut k = end + 1;
                while k < line.len() && line[k].is_ascii_whitespace() {
                    k += 1;
                }
                if depth == 1 && line.get(k) == Some(&b':') {
                    last_key_at_top = Some((start, end));
                } else if depth == 1 {
                    if let Some((ks, ke)) = last_key_at_top.take() {
                        if &line[ks..ke] == b"id" {
                            let id = std::str::from_utf8(&line[start..end]).ok()?;
                            return Some(id.chars().take(64).collect());
                        }
                    }
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => last_key_at_top = None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// A JSON text with object keys sorted and numbers verbatim: two JSON texts are equal as
/// JSON (key order aside, decimals by their exact text) when their canonical forms are.
pub fn canonical_json(text: &[u8]) -> Result<String, String> {
    let mut scratch = text.to_vec();
    let mut buffers = simd_json::Buffers::new(text.len());
    let tape =
        simd_json::to_tape_with_buffers(&mut scratch, &mut buffers).map_err(|e| e.to_string())?;
    let line = Line::new(&tape.0, text, buffers.structural_indexes());
    let mut out = String::with_capacity(text.len());
    line.write_json(0, true, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::shallow_id;

    #[test]
    fn shallow_id_finds_the_top_level_id_of_broken_lines() {
        assert_eq!(
            shallow_id(br#"{"resourceType":"Patient","id":"p1","name":[{"#).as_deref(),
            Some("p1")
        );
        assert_eq!(
            shallow_id(br#"{"contained":[{"id":"inner"}],"id" : "outer", x}"#).as_deref(),
            Some("outer")
        );
        assert_eq!(shallow_id(br#"{"text":"a \"id\":\"no\"","x":1"#), None);
        assert_eq!(shallow_id(br#"{"meta":{"id":"m"}}"#), None);
        assert_eq!(shallow_id(b"not json"), None);
    }
}
