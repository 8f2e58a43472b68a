//! Renders diagnostics for people (source line and caret) and for tools (JSON).

use hubroute::span::SourceMap;
use hubroute::{Diagnostic, Severity};
use serde_json::json;
use std::fmt::Write;

/// `error[E0101]: message` then the source line with carets under the span, then notes.
pub fn text(origin: &str, source: &str, d: &Diagnostic) -> String {
    text_at(origin, 0, source, d)
}

/// [`text`] for a query that starts on line `lines_before + 1` of the file `origin`, so the
/// location (`FILE:LINE:COL`) and the gutter show the file's own line numbers.
pub fn text_at(origin: &str, lines_before: u32, source: &str, d: &Diagnostic) -> String {
    let map = SourceMap::new(source);
    let (start, _) = d.range(&map);
    let line_text = map.line_text(start.line);
    let shown_line = start.line + lines_before;
    let mut out = String::new();
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(out, "{kind}[{}]: {}", d.code, d.message);
    let _ = writeln!(out, "  --> {origin}:{shown_line}:{}", start.column);
    let gutter = shown_line.to_string().len();
    let _ = writeln!(out, "{:gutter$} |", "");
    let _ = writeln!(out, "{shown_line} | {line_text}");
    // Carets under the span's characters on its first line.
    let line_start = source[..d.span.start as usize]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let before = source[line_start..d.span.start as usize].chars().count();
    let span_end = (d.span.end as usize)
        .min(line_start + line_text.len())
        .max(d.span.start as usize);
    let width = source[d.span.start as usize..span_end]
        .chars()
        .count()
        .max(1);
    let _ = writeln!(
        out,
        "{:gutter$} | {}{}",
        "",
        " ".repeat(before),
        "^".repeat(width)
    );
    for note in &d.notes {
        let _ = writeln!(out, "{:gutter$} = note: {note}", "");
    }
    out
}

/// A diagnostic as a JSON object: code, severity, message, byte span, 1-based line/column
/// range (UTF-16 columns, end exclusive, as IoT Hub reports them), notes.
pub fn json(source: &str, d: &Diagnostic) -> serde_json::Value {
    let map = SourceMap::new(source);
    let (start, end) = d.range(&map);
    json!({
        "code": d.code,
        "severity": d.severity,
        "message": d.message,
        "start": d.span.start,
        "end": d.span.end,
        "range": {"start": start, "end": end},
        "notes": d.notes,
        "follows": d.follows,
    })
}
