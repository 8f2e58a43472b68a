//! The routing-configuration halves of `check` and `fmt`, and loading a configuration for
//! `test` and `run`.

use crate::output::{err, errln, outln};
use crate::render;
use hubroute::route::{ConfigDiagnostic, RouteTable};
use hubroute::Dialect;
use std::path::Path;
use std::process::ExitCode;

/// Reads and builds a configuration document. One that is not UTF-8 is not JSON (E0401, with
/// the byte where it stops), reported as `check --routes` and `run` report any other problem.
fn build_document(
    path: &Path,
    hub_name: &str,
    dialect: Dialect,
) -> Result<hubroute::route::Build, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => RouteTable::from_json_in(&text, hub_name, dialect),
        Err(e) => hubroute::route::Build {
            table: None,
            diagnostics: vec![ConfigDiagnostic::error(
                "E0401",
                "document",
                format!(
                    "not JSON: invalid UTF-8 at byte {}",
                    e.utf8_error().valid_up_to()
                ),
            )],
            errors: 1,
            warnings: 0,
            omitted: 0,
        },
    })
}

/// Loads and builds a routing configuration with conditions in a dialect; on configuration
/// errors prints them and gives the exit code (1) to return.
pub fn load_table_in(
    path: &Path,
    hub_name: &str,
    dialect: Dialect,
) -> Result<Result<RouteTable, ExitCode>, String> {
    let build = build_document(path, hub_name, dialect)?;
    Ok(match build.table {
        Some(t) => Ok(t),
        None => {
            for d in build
                .diagnostics
                .iter()
                .filter(|d| d.is_error() && !follows(d))
            {
                errln!("{}", render_config(path, d));
            }
            if build.omitted > 0 {
                errln!(
                    "{}: {} errors in all; see `hubroute check --routes`",
                    path.display(),
                    build.errors
                );
            }
            Err(ExitCode::from(1))
        }
    })
}

/// Whether a configuration diagnostic is a condition error that only follows from an earlier
/// one (see `Diagnostic::follows`); text output leaves those out.
pub fn follows(d: &ConfigDiagnostic) -> bool {
    d.condition.as_ref().is_some_and(|(_, cd)| cd.follows)
}

/// A configuration diagnostic for people: the location line, and for conditions the
/// condition with a caret.
pub fn render_config(origin: &Path, d: &ConfigDiagnostic) -> String {
    match &d.condition {
        Some((text, cd)) => {
            let name = d
                .name
                .as_deref()
                .map(|n| format!(" ('{n}')"))
                .unwrap_or_default();
            render::text(
                &format!("{}: {}{name}", origin.display(), d.location),
                text,
                cd,
            )
        }
        None => format!("{d}\n  --> {}\n", origin.display()),
    }
}

/// `hubroute check --routes`: every problem of a configuration.
pub fn check(
    path: &Path,
    hub_name: &str,
    json: bool,
    deny_warnings: bool,
    dialect: Dialect,
) -> Result<ExitCode, String> {
    let build = build_document(path, hub_name, dialect)?;
    let omitted = build.omitted;
    // Condition errors that only follow from an earlier one are left out of text output, and
    // out of its counts.
    let hidden = |d: &&ConfigDiagnostic| !json && follows(d);
    let hidden_errors = build
        .diagnostics
        .iter()
        .filter(hidden)
        .filter(|d| d.is_error())
        .count();
    let hidden_warnings = build.diagnostics.iter().filter(hidden).count() - hidden_errors;
    let (errors, warnings) = (
        build.errors - hidden_errors,
        build.warnings - hidden_warnings,
    );
    if json {
        let items: Vec<serde_json::Value> = build
            .diagnostics
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).expect("JSON");
                if let Some((cond, cd)) = &d.condition {
                    v["condition"] =
                        serde_json::json!({"text": cond, "diagnostic": render::json(cond, cd)});
                }
                v
            })
            .collect();
        let doc = serde_json::json!({"file": path.display().to_string(), "ok": errors == 0, "errors": errors, "warnings": warnings, "diagnostics": items, "omitted": omitted});
        outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    } else {
        for d in build.diagnostics.iter().filter(|d| !follows(d)) {
            outln!("{}", render_config(path, d));
        }
        if omitted > 0 {
            outln!(
                "{}: {omitted} more diagnostic{} not shown (the first {} are)",
                path.display(),
                if omitted == 1 { "" } else { "s" },
                build.diagnostics.len()
            );
        }
        if let Some(t) = &build.table {
            outln!(
                "{}: {} routes, {} endpoints, fallback {}, {} enrichments",
                path.display(),
                t.routes().len(),
                t.endpoints().len(),
                match t.fallback() {
                    Some(f) if f.enabled => "enabled",
                    Some(_) => "disabled",
                    None => "absent",
                },
                t.enrichments().len()
            );
        }
        outln!(
            "{errors} error{}, {warnings} warning{}",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
    Ok(if errors > 0 || (deny_warnings && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `hubroute fmt --routes`: every condition in canonical form.
pub fn fmt(path: &Path) -> Result<ExitCode, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let Ok(text) = String::from_utf8(bytes) else {
        // build_document's diagnostic for it.
        for d in &build_document(path, "", Dialect::Hub)?.diagnostics {
            errln!("{}", render_config(path, d));
        }
        return Ok(ExitCode::from(1));
    };
    // Reading problems only (a condition with type errors still has a canonical form), the
    // first 100 of them.
    let mut log = hubroute::route::DiagnosticLog::new(hubroute::route::validate::MAX_DIAGNOSTICS);
    let config = hubroute::route::config::read_into(&text, &mut log);
    if log.errors() > 0 {
        for d in log.kept() {
            errln!("{}", render_config(path, d));
        }
        if log.omitted() > 0 {
            errln!("{}: {} more not shown", path.display(), log.omitted());
        }
        return Ok(ExitCode::from(1));
    }
    let mut failed = false;
    let conditions = config
        .routes
        .iter()
        .map(|r| (r.name.clone(), r.condition.clone()))
        .chain(config.fallback.iter().map(|f| {
            (
                f.name.clone().unwrap_or_else(|| "$fallback".into()),
                f.condition.clone(),
            )
        }));
    for (name, condition) in conditions {
        let condition = condition.unwrap_or_else(|| "true".into());
        let errors = syntax_errors(&condition);
        match hubroute::syntax::parse(&condition) {
            Ok(ast) if errors.is_empty() => outln!("{name}: {ast}"),
            Ok(_) => {
                failed = true;
                for d in &errors {
                    err!("{}", render::text(&name, &condition, d));
                }
            }
            Err(e) => {
                failed = true;
                for d in &e.0 {
                    err!("{}", render::text(&name, &condition, d));
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The syntax errors (E000x) of `query`: formatting needs only a parse, so a query with type
/// errors still has a canonical form, but one with a syntax error has none (the tree keeps the
/// broken part as written, which would print as if it were fine).
pub fn syntax_errors(query: &str) -> Vec<hubroute::Diagnostic> {
    let all = match hubroute::syntax::parse(query) {
        Err(e) => return e.0,
        Ok(_) => match hubroute::Condition::compile(query, &hubroute::Options::iot_hub()) {
            Ok(_) => return Vec::new(),
            Err(e) => e.0,
        },
    };
    all.into_iter()
        .filter(|d| d.is_error() && d.code.starts_with("E000"))
        .collect()
}
