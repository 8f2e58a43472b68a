//! `hubroute test` (like `az iot hub message-route test`, with no hidden defaults and with
//! `--explain`), and the routing-configuration halves of `check` and `fmt`.

use crate::output::outln;
use crate::render;
use clap::Args;
use hubroute::message::{Message, Source};
use hubroute::route::{
    ConfigDiagnostic, DirTwinStore, Explanation, NodeExplanation, Outcome, RouteTable, TwinResolver,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct TestArgs {
    /// The routing configuration: a hub's `properties.routing` JSON, an ARM resource or
    /// template, or `az iot hub show` output.
    #[arg(long)]
    pub routes: PathBuf,
    /// The message, as JSON: {"systemProperties": {...}, "appProperties": {...}, "body": "..."}.
    #[arg(long, short)]
    pub message: PathBuf,
    /// The message's source (default: the message's own "source", else DeviceMessages).
    #[arg(long)]
    pub source: Option<String>,
    /// Show, for every route, the sub-expressions and values that decided it.
    #[arg(long)]
    pub explain: bool,
    /// A directory of device twins (`<deviceId>.json`) for `$twin` references and enrichments.
    #[arg(long)]
    pub twin_dir: Option<PathBuf>,
    /// The hub name for `$iothubname` when the configuration does not name the hub.
    #[arg(long, default_value = "hubroute")]
    pub hub_name: String,
    /// Expect exactly these endpoints (repeat the flag); exit 1 otherwise. `--expect none`
    /// expects the message to go nowhere.
    #[arg(long)]
    pub expect: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Loads and builds a routing configuration; on configuration errors prints them and gives
/// the exit code (1) to return.
pub fn load_table(path: &Path, hub_name: &str) -> Result<Result<RouteTable, ExitCode>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let build = RouteTable::from_json(&text, hub_name);
    Ok(match build.table {
        Some(t) => Ok(t),
        None => {
            for d in build.diagnostics.iter().filter(|d| d.is_error()) {
                eprintln!("{}", render_config(path, d));
            }
            if build.omitted > 0 {
                eprintln!(
                    "{}: {} errors in all; see `hubroute check --routes`",
                    path.display(),
                    build.errors
                );
            }
            Err(ExitCode::from(1))
        }
    })
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

pub fn test(args: TestArgs) -> Result<ExitCode, String> {
    let table = match load_table(&args.routes, &args.hub_name)? {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let text = std::fs::read_to_string(&args.message)
        .map_err(|e| format!("cannot read {}: {e}", args.message.display()))?;
    let message = Message::from_json_str(&text)
        .map_err(|e| format!("{}: [{}] {e}", args.message.display(), e.code()))?;
    let source = match &args.source {
        Some(s) => s.parse::<Source>().map_err(|e| format!("--source: {e}"))?,
        None => message.source.unwrap_or(Source::DeviceMessages),
    };
    let store = args.twin_dir.as_ref().map(DirTwinStore::new);
    let resolver = store.as_ref().map(|s| TwinResolver::new(s));
    let twin = resolver
        .as_ref()
        .map(|r| r as &dyn hubroute::eval::TwinLookup);
    let explanation = table.explain(&message, source, twin);
    if args.json {
        let doc = serde_json::json!({"message": message.to_json_value(), "result": explanation});
        outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    } else {
        print_message(&message, source);
        print_explanation(&explanation, args.explain);
    }
    if args.expect.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut want: Vec<&str> = args
        .expect
        .iter()
        .map(String::as_str)
        .filter(|e| *e != "none")
        .collect();
    let mut got: Vec<&str> = explanation.endpoints.iter().map(String::as_str).collect();
    want.sort_unstable();
    got.sort_unstable();
    if want == got {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "test failed: expected endpoints [{}], got [{}]",
            want.join(", "),
            got.join(", ")
        );
        Ok(ExitCode::from(1))
    }
}

/// What the message really has: no hidden defaults (the portal adds contentEncoding).
fn print_message(m: &Message, source: Source) {
    outln!("message (source {source})");
    let props = |p: &hubroute::message::Properties| {
        if p.is_empty() {
            return "(none)".to_string();
        }
        p.iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={v}"),
                None => format!("{k}=null"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    outln!("  system properties: {}", props(&m.system_properties));
    outln!("  application properties: {}", props(&m.app_properties));
    let readable = match m.body_text() {
        Ok(_) => "queryable with $body".to_string(),
        Err(e) => format!("not queryable with $body: {e}"),
    };
    outln!("  body: {} bytes, {readable}", m.body.len());
}

fn print_explanation(e: &Explanation, explain: bool) {
    outln!("routes:");
    for r in e.routes.iter().chain(&e.fallback) {
        let mark = match r.outcome {
            Outcome::True => "match   ",
            Outcome::False => "false   ",
            Outcome::Undefined => "undefined",
            Outcome::Disabled => "disabled",
            Outcome::SourceMismatch => "other source",
        };
        outln!("  {mark:<12} {} -> {}", r.name, r.endpoint);
        if explain {
            if let Some(c) = &r.condition {
                print_node(c, 2);
            }
        }
        for n in &r.notes {
            outln!("               note: {n}");
        }
    }
    for n in &e.notes {
        outln!("note: {n}");
    }
    if e.endpoints.is_empty() {
        outln!("endpoints: (none)");
    } else {
        outln!("endpoints: {}", e.endpoints.join(", "));
    }
}

fn print_node(n: &NodeExplanation, depth: usize) {
    outln!("{}{}  => {}", "    ".repeat(depth), n.text, n.value);
    for c in &n.children {
        print_node(c, depth + 1);
    }
}

/// `hubroute check --routes`: every problem of a configuration.
pub fn check(
    path: &Path,
    hub_name: &str,
    json: bool,
    deny_warnings: bool,
) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let build = RouteTable::from_json(&text, hub_name);
    let (errors, warnings, omitted) = (build.errors, build.warnings, build.omitted);
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
        for d in &build.diagnostics {
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
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (config, problems) = hubroute::route::config::read(&text);
    if problems.iter().any(ConfigDiagnostic::is_error) {
        for d in &problems {
            eprintln!("{}", render_config(path, d));
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
        match hubroute::syntax::parse(&condition) {
            Ok(ast) => outln!("{name}: {ast}"),
            Err(e) => {
                failed = true;
                for d in &e.0 {
                    eprint!("{}", render::text(&name, &condition, d));
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
