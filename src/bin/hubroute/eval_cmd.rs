//! `hubroute eval`: one query against one message, or the JSON Lines batch contract of
//! DESIGN.md (`--jsonl`), which outside test harnesses rely on.

use crate::output::{err, errln};
use crate::render;
use crate::CompileFlags;
use clap::Args;
use hubroute::message::Message;
use hubroute::pipeline::input::{LineContent, LineReader};
use hubroute::{Condition, Options};
use serde_json::{json, Value as Json};
use std::io::Write;
use std::process::ExitCode;

#[derive(Args)]
pub struct EvalArgs {
    /// The query (not with --jsonl).
    query: Option<String>,
    /// The message, as JSON: {"systemProperties": {...}, "appProperties": {...}, "body": "..."}
    /// (or "bodyBase64"). "-" reads standard input.
    #[arg(long, short)]
    message: Option<String>,
    /// Batch mode: read conformance-format lines on standard input, write one JSON result line
    /// per input line. Flags per line (`body_query`, `twin_change_includes`) replace the
    /// command-line compile flags.
    #[arg(long, conflicts_with_all = ["query", "message"])]
    jsonl: bool,
    /// With --jsonl, the longest line read (bytes); a longer line gets an E0905 error line and
    /// the stream goes on, so memory stays bounded.
    #[arg(long, default_value_t = 8 << 20, requires = "jsonl")]
    max_line_bytes: usize,
    /// A directory of device twins (`<deviceId>.json`, as for `test`) for `$twin` references;
    /// the message's connectionDeviceId selects the twin.
    #[arg(long, conflicts_with = "jsonl")]
    twin_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    flags: CompileFlags,
}

pub fn run(args: EvalArgs) -> Result<ExitCode, String> {
    if args.jsonl {
        return jsonl(args.max_line_bytes);
    }
    let query = args.query.ok_or("give a query (or --jsonl)")?;
    let path = args.message.ok_or("give --message FILE (or --jsonl)")?;
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("reading stdin: {e}"))?
    } else {
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?
    };
    let message =
        Message::from_json_str(&text).map_err(|e| format!("{path}: [{}] {e}", e.code()))?;
    let options = args.flags.options()?;
    let condition = match Condition::compile(&query, &options) {
        Ok(c) => c,
        Err(e) => {
            for d in e.0.iter().filter(|d| !d.follows) {
                err!("{}", render::text("<query>", &query, d));
            }
            return Ok(ExitCode::from(1));
        }
    };
    for w in condition.warnings() {
        err!("{}", render::text("<query>", &query, w));
    }
    let result = match &args.twin_dir {
        None => {
            if query.to_ascii_lowercase().contains("$twin") {
                errln!("warning[W0804]: the query reads $twin but no --twin-dir was given; every $twin value is undefined");
            }
            condition.eval(&message)
        }
        Some(dir) => {
            let store = hubroute::route::DirTwinStore::new(dir);
            let resolver = hubroute::route::TwinResolver::new(&store);
            let ctx = hubroute::eval::context::EvalContext::new(&message).with_twin(&resolver);
            let result = condition.eval_in(&ctx);
            for p in store
                .directory_problem()
                .into_iter()
                .chain(store.problems())
            {
                errln!("warning[{}]: {p}", p.code());
            }
            result
        }
    };
    crate::output::check(writeln!(std::io::stdout(), "{result}"))?;
    Ok(ExitCode::SUCCESS)
}

fn has_flag(line: &Json, flag: &str) -> bool {
    line["flags"]
        .as_array()
        .is_some_and(|fs| fs.iter().any(|f| f == flag))
}

/// One input line to one output object.
fn eval_line(line: &str) -> Json {
    let parsed: Json = match serde_json::from_str(line) {
        Ok(v @ Json::Object(_)) => v,
        Ok(_) => {
            return error_line(
                Json::Null,
                codes::NOT_OBJECT,
                "input line is not a JSON object",
                None,
            )
        }
        Err(e) => {
            return error_line(
                Json::Null,
                codes::NOT_JSON,
                &format!("input line is not JSON: {e}"),
                None,
            )
        }
    };
    let id = parsed.get("id").cloned().unwrap_or(Json::Null);
    if let Some(kind) = parsed.get("kind").and_then(Json::as_str) {
        return json!({"id": id, "skipped": kind});
    }
    let Some(query) = parsed.get("query").and_then(Json::as_str) else {
        return error_line(
            id,
            codes::NO_QUERY,
            "input line has no \"query\" string",
            None,
        );
    };
    let source = parsed
        .get("source")
        .or_else(|| parsed.get("message").and_then(|m| m.get("source")))
        .and_then(Json::as_str)
        .unwrap_or("DeviceMessages");
    let twin_change_source = match source.parse::<hubroute::message::Source>() {
        Ok(s) => s == hubroute::message::Source::TwinChangeEvents,
        Err(e) => return error_line(id, codes::BAD_SOURCE, &e.to_string(), None),
    };
    // Conformance lines are the Edge engine's unless they say `"dialect": "hub"`.
    let dialect = match parsed.get("dialect").and_then(Json::as_str).map(str::parse) {
        None => hubroute::Dialect::Edge,
        Some(Ok(d)) => d,
        Some(Err(e)) => return error_line(id, codes::BAD_DIALECT, &e, None),
    };
    let options = Options {
        body_query: has_flag(&parsed, "body_query"),
        twin_change_includes: has_flag(&parsed, "twin_change_includes"),
        twin_change_source,
        dialect,
    };
    let condition = match Condition::compile(query, &options) {
        Ok(c) => c,
        Err(e) => {
            let d = e.first();
            return error_line(id, d.code, &d.message, Some((d.span.start, d.span.end)));
        }
    };
    let message = match parsed.get("message") {
        Some(m) => match Message::from_json_value(m) {
            Ok(m) => m,
            Err(e) => return error_line(id, e.code(), &format!("message: {e}"), None),
        },
        None => Message::default(),
    };
    json!({"id": id, "result": condition.eval(&message).as_str()})
}

fn error_line(id: Json, code: &str, message: &str, span: Option<(u32, u32)>) -> Json {
    let mut error = json!({"code": code, "message": message});
    if let Some((start, end)) = span {
        error["start"] = json!(start);
        error["end"] = json!(end);
    }
    json!({"id": id, "error": error})
}

/// Stable codes of `eval --jsonl` line errors (E09xx, shared with the library's line reader
/// in [`hubroute::pipeline::codes`]). Codes are never reused.
mod codes {
    /// The line is not JSON.
    pub const NOT_JSON: &str = "E0900";
    /// The line is JSON but not an object.
    pub const NOT_OBJECT: &str = "E0901";
    /// The object has no `query` string.
    pub const NO_QUERY: &str = "E0902";
    /// The `source` is not a routing source.
    pub const BAD_SOURCE: &str = "E0903";
    // E0904: the line is not UTF-8 (hubroute::pipeline::codes::INVALID_UTF8, given by the
    // line reader).
    // E0905: the line is longer than `--max-line-bytes` (hubroute::pipeline::codes::LINE_TOO_LONG,
    // given by the line reader).
    /// Evaluating the line failed inside hubroute (a bug).
    pub const INTERNAL: &str = "E0906";
    // E0907: reading the input failed (hubroute::pipeline::codes::READ_FAILED).
    /// The `dialect` is neither `hub` nor `edge`.
    pub const BAD_DIALECT: &str = "E0908";
}

/// Every input line gets exactly one output line, whatever it holds: a line that cannot be
/// read as text gets an error line carrying its line number, and the stream goes on. Only a
/// failure of standard input itself stops it.
fn jsonl(max_line_bytes: usize) -> Result<ExitCode, String> {
    let stdin = std::io::stdin();
    let lines = LineReader::new(stdin.lock(), max_line_bytes);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in lines {
        let number = line.number;
        let mut result = match line.content {
            LineContent::ReadFailed(e) => return Err(format!("reading stdin: {e}")),
            LineContent::Blank => json!({"id": null, "skipped": "blank"}),
            // A panic is a bug, never the input's fault; the line still gets its error line
            // and the stream goes on (the panic message is on standard error).
            LineContent::Text(text) => std::panic::catch_unwind(|| eval_line(&text))
                .unwrap_or_else(|_| {
                    error_line(
                        Json::Null,
                        codes::INTERNAL,
                        "internal error evaluating this line (a bug in hubroute: please report it)",
                        None,
                    )
                }),
            // Not UTF-8 (E0904) or over --max-line-bytes (E0905).
            LineContent::Invalid { code, reason, .. } => {
                error_line(Json::Null, code, &format!("line {number}: {reason}"), None)
            }
        };
        if result.get("error").is_some() {
            result["line"] = json!(number);
        }
        crate::output::check(writeln!(out, "{result}"))?;
    }
    crate::output::check(out.flush())?;
    Ok(ExitCode::SUCCESS)
}
