//! Reads conditions, one JSON string per line on standard input, and prints for each the
//! parser's accept/reject decision: `accept END` (END = byte offset where the expression ends,
//! the rest being ignored trailing input), `empty`, or `reject`. `scripts/antlr_diff.py` runs
//! the reference ANTLR grammar over the same lines and compares; one process for many lines
//! keeps a run of thousands of conditions fast.

use std::io::{BufRead, Write};

fn main() {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in stdin.lock().lines() {
        let line = line.expect("reading standard input");
        let verdict = match serde_json::from_str::<String>(&line) {
            Err(e) => format!("bad-input {e}"),
            Ok(text) => match hubroute::syntax::parse(&text) {
                Err(_) => "reject".to_string(),
                Ok(ast) if !ast.is_error_free() => "reject".to_string(),
                Ok(ast) => match &ast.root {
                    None => "empty".to_string(),
                    Some(root) => format!("accept {}", root.span.end),
                },
            },
        };
        writeln!(out, "{verdict}").expect("writing standard output");
    }
}
