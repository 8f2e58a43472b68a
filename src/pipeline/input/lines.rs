//! A JSON Lines reader that never stops at a bad line: each line comes out as text, blank, or
//! invalid with a stable code (invalid UTF-8 [`super::super::codes::INVALID_UTF8`], too long
//! [`super::super::codes::LINE_TOO_LONG`]), with its line number. Memory is bounded by the
//! line limit: the rest of an over-long line is skipped, not buffered.

use std::io::{BufRead, ErrorKind};

use crate::pipeline::codes;

/// The default longest line: 1 MiB, four times IoT Hub's largest message (256 KB) so a
/// base64 or escaped body fits.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// How much of an over-long line the dead letter keeps.
const KEPT_PREFIX: usize = 1024;

/// One line of input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub number: u64,
    /// What it holds.
    pub content: LineContent,
}

/// What a line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineContent {
    /// UTF-8 text (without the line end), to be parsed as a message.
    Text(String),
    /// Only white space.
    Blank,
    /// Not a message: the code, why, and what the dead letter keeps of it (JSON).
    Invalid {
        /// Stable code.
        code: &'static str,
        /// For a human.
        reason: String,
        /// `{"bodyBase64": …}` of the line (or of its first bytes, with `"length"`).
        raw: serde_json::Value,
    },
    /// Reading failed; nothing after it is read. Not a line (not counted as one).
    ReadFailed(String),
}

/// Reads lines from `reader`; see the module docs.
pub struct LineReader<R> {
    reader: R,
    number: u64,
    max: usize,
    done: bool,
}

impl<R: BufRead> LineReader<R> {
    /// A reader with the given longest line (at least 1 byte).
    pub fn new(reader: R, max_line_bytes: usize) -> Self {
        LineReader {
            reader,
            number: 0,
            max: max_line_bytes.max(1),
            done: false,
        }
    }

    /// Lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.number
    }
}

impl<R: BufRead> Iterator for LineReader<R> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        if self.done {
            return None;
        }
        let mut buf = Vec::new();
        let mut total = 0usize;
        let mut seen_any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Line {
                        number: self.number + 1,
                        content: LineContent::ReadFailed(e.to_string()),
                    });
                }
            };
            if available.is_empty() {
                if !seen_any {
                    self.done = true;
                    return None;
                }
                break;
            }
            seen_any = true;
            let newline = memchr::memchr(b'\n', available);
            let chunk = &available[..newline.unwrap_or(available.len())];
            let room = (self.max + 1).saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            total += chunk.len();
            let consumed = newline.map_or(chunk.len(), |i| i + 1);
            self.reader.consume(consumed);
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        if buf.last() == Some(&b'\r') && total <= self.max + 1 {
            buf.pop();
            total -= 1;
        }
        let content = if total > self.max {
            buf.truncate(KEPT_PREFIX);
            LineContent::Invalid {
                code: codes::LINE_TOO_LONG,
                reason: format!(
                    "line of {total} bytes is longer than the limit of {} bytes",
                    self.max
                ),
                raw: serde_json::json!({"prefixBase64": super::invalid::base64_body(&buf), "length": total}),
            }
        } else {
            match String::from_utf8(buf) {
                Ok(text) if text.trim().is_empty() => LineContent::Blank,
                Ok(text) => LineContent::Text(text),
                Err(e) => {
                    let at = e.utf8_error().valid_up_to();
                    LineContent::Invalid {
                        code: codes::INVALID_UTF8,
                        reason: format!("the line is not valid UTF-8 (at byte {})", at + 1),
                        raw: serde_json::json!({"bodyBase64": super::invalid::base64_body(e.as_bytes())}),
                    }
                }
            }
        };
        Some(Line {
            number: self.number,
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8], max: usize) -> Vec<Line> {
        LineReader::new(std::io::BufReader::with_capacity(4, input), max).collect()
    }

    #[test]
    fn every_line_comes_out_in_order() {
        let lines = read(b"{\"a\":1}\r\n\n  \n\xff\xfe\n0123456789abc\nlast", 10);
        let kinds: Vec<_> = lines
            .iter()
            .map(|l| match &l.content {
                LineContent::Text(t) => format!("{}:text {t}", l.number),
                LineContent::Blank => format!("{}:blank", l.number),
                LineContent::Invalid { code, .. } => format!("{}:{code}", l.number),
                LineContent::ReadFailed(e) => format!("{}:read {e}", l.number),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "1:text {\"a\":1}",
                "2:blank",
                "3:blank",
                "4:E0904",
                "5:E0905",
                "6:text last"
            ]
        );
    }

    #[test]
    fn an_empty_input_has_no_lines_and_a_final_newline_adds_none() {
        assert!(read(b"", 10).is_empty());
        assert_eq!(read(b"x\n", 10).len(), 1);
    }
}
