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
    /// A line that spans refills of the reader's buffer, gathered here (kept for the next).
    spill: Vec<u8>,
}

/// What [`LineReader::read_into`] read.
#[derive(Debug)]
pub(crate) enum ReadLine {
    /// Text, appended to the caller's string.
    Text,
    /// Anything else.
    Other(LineContent),
}

impl<R: BufRead> LineReader<R> {
    /// A reader with the given longest line (at least 1 byte).
    pub fn new(reader: R, max_line_bytes: usize) -> Self {
        LineReader {
            reader,
            number: 0,
            max: max_line_bytes.max(1),
            done: false,
            spill: Vec::new(),
        }
    }

    /// Lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.number
    }

    /// The next line and its number, a text line appended to `text` instead of a string of
    /// its own: a chunk of lines is one string, so reading allocates nothing per line. A line
    /// that is whole in the reader's buffer (nearly all) is validated there and copied once.
    pub(crate) fn read_into(&mut self, text: &mut String) -> Option<(u64, ReadLine)> {
        if self.done {
            return None;
        }
        let max = self.max;
        let mut spill = std::mem::take(&mut self.spill);
        spill.clear();
        let mut total = 0usize;
        let mut seen_any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    self.spill = spill;
                    return Some((
                        self.number + 1,
                        ReadLine::Other(LineContent::ReadFailed(e.to_string())),
                    ));
                }
            };
            if available.is_empty() {
                if !seen_any {
                    self.done = true;
                    self.spill = spill;
                    return None;
                }
                break;
            }
            seen_any = true;
            let newline = memchr::memchr(b'\n', available);
            let chunk = &available[..newline.unwrap_or(available.len())];
            if let (Some(i), true) = (newline, spill.is_empty()) {
                // The whole line is in the buffer.
                let read = finish_line(&chunk[..chunk.len().min(max + 1)], chunk.len(), max, text);
                self.reader.consume(i + 1);
                self.number += 1;
                self.spill = spill;
                return Some((self.number, read));
            }
            let room = (max + 1).saturating_sub(spill.len());
            spill.extend_from_slice(&chunk[..chunk.len().min(room)]);
            total += chunk.len();
            let consumed = newline.map_or(chunk.len(), |i| i + 1);
            self.reader.consume(consumed);
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        let read = finish_line(&spill, total, max, text);
        self.spill = spill;
        Some((self.number, read))
    }
}

/// A line of `total` bytes (without its `\n`), of which `bytes` are the first (all, or the
/// first `max + 1` of a longer one): text appended to `text`, blank, or invalid.
fn finish_line(mut bytes: &[u8], mut total: usize, max: usize, text: &mut String) -> ReadLine {
    if bytes.last() == Some(&b'\r') && total <= max + 1 {
        bytes = &bytes[..bytes.len() - 1];
        total -= 1;
    }
    if total > max {
        let kept = &bytes[..bytes.len().min(KEPT_PREFIX)];
        return ReadLine::Other(LineContent::Invalid {
            code: codes::LINE_TOO_LONG,
            reason: format!("line of {total} bytes is longer than the limit of {max} bytes"),
            raw: serde_json::json!({"prefixBase64": super::invalid::base64_body(kept), "length": total}),
        });
    }
    // simdutf8 (SIMD, picked at run time): every byte of the input is validated here, once;
    // std's validator only for the position of an error.
    match simdutf8::basic::from_utf8(bytes) {
        Ok(line) if line.trim().is_empty() => ReadLine::Other(LineContent::Blank),
        Ok(line) => {
            text.push_str(line);
            ReadLine::Text
        }
        Err(_) => {
            let at = std::str::from_utf8(bytes)
                .err()
                .map_or(0, |e| e.valid_up_to());
            ReadLine::Other(LineContent::Invalid {
                code: codes::INVALID_UTF8,
                reason: format!("the line is not valid UTF-8 (at byte {})", at + 1),
                raw: serde_json::json!({"bodyBase64": super::invalid::base64_body(bytes)}),
            })
        }
    }
}

impl<R: BufRead> Iterator for LineReader<R> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        let mut text = String::new();
        let (number, read) = self.read_into(&mut text)?;
        let content = match read {
            ReadLine::Text => LineContent::Text(text),
            ReadLine::Other(content) => content,
        };
        Some(Line { number, content })
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
