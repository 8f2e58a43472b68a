//! Lines of a stream read with bounded memory, where a bad line is an item rather than an
//! error that ends the stream: `BufRead::lines` stops at the first invalid UTF-8 and holds a
//! line of any length in memory, so one bad line lost every line after it.

use std::io::{self, BufRead};

/// One line of input (without its `\n` or `\r\n`), numbered from 1.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line of UTF-8 text.
    Text(String),
    /// Not UTF-8: the first invalid byte is at this offset in the line.
    NotUtf8 { valid_up_to: usize },
    /// Longer than the limit: the bytes past it were read and dropped.
    TooLong { bytes: u64 },
}

/// Splits a reader into [`Line`]s, keeping at most `max_bytes` of any line.
pub struct Lines<R> {
    reader: R,
    max_bytes: usize,
    number: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R, max_bytes: usize) -> Self {
        Lines {
            reader,
            max_bytes,
            number: 0,
            buf: Vec::new(),
        }
    }

    /// The next line and its number; `None` at the end. An I/O error is the reader's own
    /// (the stream cannot go on), never the content's.
    pub fn next_line(&mut self) -> Option<io::Result<(u64, Line)>> {
        self.buf.clear();
        let mut total: u64 = 0;
        let mut ended = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(e)),
            };
            if chunk.is_empty() {
                break;
            }
            let (take, found) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            let room = (self.max_bytes + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..take.min(room)]);
            total += take as u64;
            ended = true;
            self.reader.consume(take + usize::from(found));
            if found {
                break;
            }
        }
        if !ended {
            return None;
        }
        self.number += 1;
        if self.buf.last() == Some(&b'\r') && total <= self.max_bytes as u64 + 1 {
            self.buf.pop();
            total -= 1;
        }
        let line = if total > self.max_bytes as u64 {
            Line::TooLong { bytes: total }
        } else {
            match String::from_utf8(std::mem::take(&mut self.buf)) {
                Ok(s) => Line::Text(s),
                Err(e) => Line::NotUtf8 {
                    valid_up_to: e.utf8_error().valid_up_to(),
                },
            }
        };
        Some(Ok((self.number, line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], max: usize) -> Vec<(u64, Line)> {
        let mut lines = Lines::new(input, max);
        std::iter::from_fn(|| lines.next_line().map(Result::unwrap)).collect()
    }

    #[test]
    fn every_line_is_an_item() {
        let got = all(b"ab\r\n\xffx\n\n0123456789\nlast", 4);
        assert_eq!(
            got,
            vec![
                (1, Line::Text("ab".into())),
                (2, Line::NotUtf8 { valid_up_to: 0 }),
                (3, Line::Text(String::new())),
                (4, Line::TooLong { bytes: 10 }),
                (5, Line::Text("last".into())),
            ]
        );
        assert!(all(b"", 4).is_empty());
        assert_eq!(all(b"abcd\r\n", 4), vec![(1, Line::Text("abcd".into()))]);
    }
}
