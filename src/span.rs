//! Byte spans into a condition's source text, and their conversion to the 1-based line/column
//! positions the reference engine reports.

use std::fmt;

/// A half-open byte range `start..end` into the source text of one condition.
///
/// Spans are byte offsets (cheap, exact, sliceable); line/column is computed only when a
/// diagnostic is shown, by [`SourceMap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from byte offsets.
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The range, for slicing the source.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A 1-based line and column. Columns count UTF-16 code units, as the reference engine's
/// (ANTLR on .NET strings) do, so positions agree with the cloud's error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LineCol {
    /// 1-based line.
    pub line: u32,
    /// 1-based column in UTF-16 code units.
    pub column: u32,
}

/// Maps byte offsets of one source text to lines and columns.
#[derive(Clone, Debug)]
pub struct SourceMap<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    /// Indexes the line starts of `text` (lines end at `\n`; a `\r\n` pair ends one line).
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap { text, line_starts }
    }

    /// The line and column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column: usize = self.text[start..floor_char_boundary(self.text, offset)]
            .chars()
            .map(char::len_utf16)
            .sum();
        LineCol {
            line: line as u32 + 1,
            column: column as u32 + 1,
        }
    }

    /// The text of the 1-based line `line`, without its line break.
    pub fn line_text(&self, line: u32) -> &'a str {
        let i = (line as usize)
            .saturating_sub(1)
            .min(self.line_starts.len() - 1);
        let start = self.line_starts[i];
        let end = self
            .line_starts
            .get(i + 1)
            .map(|&e| e - 1)
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches('\r')
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_utf16_column() {
        let map = SourceMap::new("ab\n😀x = 1");
        assert_eq!(map.line_col(0), LineCol { line: 1, column: 1 });
        assert_eq!(map.line_col(3), LineCol { line: 2, column: 1 });
        // '😀' is 4 bytes and 2 UTF-16 units.
        assert_eq!(map.line_col(7), LineCol { line: 2, column: 3 });
        assert_eq!(map.line_text(2), "😀x = 1");
    }
}
