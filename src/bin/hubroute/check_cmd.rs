//! `hubroute check` and `hubroute fmt`.

use crate::output::{err, out, outln};
use crate::render;
use crate::CompileFlags;
use clap::{Args, ValueEnum};
use hubroute::pipeline::input::{LineContent, LineReader};
use hubroute::Condition;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    /// Diagnostics with the source line and a caret.
    Text,
    /// One JSON document: every query with its diagnostics.
    Json,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Queries to check.
    queries: Vec<String>,
    /// A file of queries, one per line (blank lines and lines starting with '#' are skipped).
    #[arg(long, short)]
    file: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Treat warnings as errors (exit 1).
    #[arg(long)]
    deny_warnings: bool,
    /// Check a whole routing configuration (routes, endpoints, fallback, enrichments) instead
    /// of queries.
    #[arg(long, conflicts_with_all = ["queries", "file"])]
    routes: Option<std::path::PathBuf>,
    /// The hub name for `$iothubname`, with --routes.
    #[arg(long, default_value = "hubroute")]
    hub_name: String,
    #[command(flatten)]
    flags: CompileFlags,
}

#[derive(Args)]
pub struct FmtArgs {
    /// The query to print in canonical form.
    #[arg(required_unless_present = "routes")]
    query: Option<String>,
    /// Print every condition of this routing configuration instead.
    #[arg(long, conflicts_with = "query")]
    routes: Option<std::path::PathBuf>,
}

/// One query to check and where it came from (`<query 1>`, or `file.txt` and its line).
struct Item {
    origin: String,
    /// For a query from a file, the lines before it, so positions are the file's.
    lines_before: u32,
    query: String,
}

pub fn run(args: CheckArgs) -> Result<ExitCode, String> {
    if let Some(routes) = &args.routes {
        return crate::routes_cmd::check(
            routes,
            &args.hub_name,
            matches!(args.format, Format::Json),
            args.deny_warnings,
            args.flags.dialect(),
        );
    }
    let options = args.flags.options()?;
    let mut items: Vec<Item> = args
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| Item {
            origin: format!("<query {}>", i + 1),
            lines_before: 0,
            query: q.clone(),
        })
        .collect();
    // Lines that are not text are errors of their own (code, origin, message); the other lines
    // are still checked.
    let mut unreadable: Vec<(&str, String, String)> = Vec::new();
    if let Some(path) = &args.file {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // A query is at most 64 KiB (E0201); a longer line is reported, not held.
        for line in LineReader::new(std::io::BufReader::new(file), 1 << 20) {
            let number = line.number;
            let origin = format!("{}:{number}", path.display());
            match line.content {
                LineContent::ReadFailed(e) => {
                    return Err(format!("cannot read {}: {e}", path.display()))
                }
                LineContent::Blank => {}
                LineContent::Text(line) => {
                    if !line.trim_start().starts_with('#') {
                        items.push(Item {
                            origin: path.display().to_string(),
                            lines_before: u32::try_from(number - 1).unwrap_or(u32::MAX),
                            query: line,
                        });
                    }
                }
                // Not UTF-8 (E0904) or over 1 MiB (E0905; a query is at most 64 KiB).
                LineContent::Invalid { code, reason, .. } => {
                    unreadable.push((code, origin, reason))
                }
            }
        }
    }
    if items.is_empty() && unreadable.is_empty() {
        return Err("nothing to check: give queries as arguments or --file".into());
    }
    let mut failed = !unreadable.is_empty();
    let mut report = Vec::new();
    let (mut errors, mut warnings) = (unreadable.len(), 0);
    for (code, origin, message) in &unreadable {
        match args.format {
            Format::Text => outln!("error[{code}]: {origin}: {message}\n"),
            Format::Json => report.push(serde_json::json!({
                "origin": origin,
                "query": null,
                "ok": false,
                "diagnostics": [{"code": code, "severity": "error", "message": message}],
            })),
        }
    }
    for item in &items {
        let mut diags = match Condition::compile(&item.query, &options) {
            Ok(c) => c.warnings().to_vec(),
            Err(e) => e.0,
        };
        if matches!(args.format, Format::Text) {
            // A consequence of an error already shown would read as a second problem.
            diags.retain(|d| !d.follows);
        }
        let e = diags.iter().filter(|d| d.is_error()).count();
        errors += e;
        warnings += diags.len() - e;
        failed |= e > 0 || (args.deny_warnings && !diags.is_empty());
        match args.format {
            Format::Text => {
                for d in &diags {
                    out!(
                        "{}",
                        render::text_at(&item.origin, item.lines_before, &item.query, d)
                    );
                    outln!();
                }
            }
            Format::Json => report.push(serde_json::json!({
                "origin": item.origin,
                "line": item.lines_before + 1,
                "query": item.query,
                "ok": e == 0,
                "diagnostics": diags.iter().map(|d| render::json(&item.query, d)).collect::<Vec<_>>(),
            })),
        }
    }
    match args.format {
        Format::Text => outln!(
            "checked {} quer{}: {errors} error{}, {warnings} warning{}",
            items.len(),
            if items.len() == 1 { "y" } else { "ies" },
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" },
        ),
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "queries": report, "errors": errors, "warnings": warnings
            }))
            .expect("JSON")
        ),
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn fmt(args: FmtArgs) -> Result<ExitCode, String> {
    if let Some(routes) = &args.routes {
        return crate::routes_cmd::fmt(routes);
    }
    let query = args.query.unwrap_or_default();
    let errors = crate::routes_cmd::syntax_errors(&query);
    if !errors.is_empty() {
        for d in &errors {
            err!("{}", render::text("<query>", &query, d));
        }
        return Ok(ExitCode::from(1));
    }
    match hubroute::syntax::parse(&query) {
        Ok(ast) => {
            outln!("{ast}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            for d in &e.0 {
                err!("{}", render::text("<query>", &query, d));
            }
            Ok(ExitCode::from(1))
        }
    }
}
