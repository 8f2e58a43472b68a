//! The summary `run` prints when its input ends, whatever the input (file, standard input or a
//! live one), from the input's counts (the library's [`LinesReport`]) and the pipeline's.

use hubroute::pipeline::input::LinesReport;
use hubroute::pipeline::PipelineStats;
use std::fmt::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::run_args::RunArgs;

fn millis(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}ms", d.as_secs_f64() * 1e3))
}

/// The summary on standard error (always printed; events in JSON log mode); exit code 1 when anything was
/// dead-lettered in delivery or copies are left undelivered in the store.
pub(crate) fn report(
    input: &LinesReport,
    stats: &PipelineStats,
    elapsed: Duration,
    args: &RunArgs,
) -> ExitCode {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "read {} messages in {:.3}s ({:.0} msg/s)",
        input.read,
        elapsed.as_secs_f64(),
        input.read as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    let codes: Vec<String> = input
        .invalid
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "  valid {} + invalid {} + blank {} = read {}",
        input.valid,
        input.invalid_total(),
        input.blank,
        input.read
    );
    let _ = writeln!(
        out,
        "  invalid: {} ({}dead-lettered to {})",
        input.invalid_total(),
        if codes.is_empty() {
            String::new()
        } else {
            format!("{}; ", codes.join(", "))
        },
        args.dead_letter.display()
    );
    let _ = writeln!(out, "  accepted into the store: {}", stats.accepted);
    let _ = writeln!(out, "  fallback: {}", stats.fallback);
    let _ = writeln!(out, "  matched no route and dropped: {}", stats.unrouted);
    if stats.recovered_copies > 0 {
        let _ = writeln!(
            out,
            "  copies recovered from the store at start: {}",
            stats.recovered_copies
        );
    }
    let mut dead_total = 0;
    let mut backlog_total = 0;
    for e in &stats.endpoints {
        dead_total += e.dead_lettered_total();
        backlog_total += e.backlog;
        let dead: String = e
            .dead_lettered
            .iter()
            .map(|(c, n)| format!(" {c}: {n}"))
            .collect();
        let _ = writeln!(
            out,
            "  {}: routed {}, delivered {}, dead-lettered {}{}, retries {}, backlog {}, health {}{}, latency p50 {} p99 {}",
            e.name,
            e.routed,
            e.delivered,
            e.dead_lettered_total(),
            if dead.is_empty() { String::new() } else { format!(" ({})", dead.trim_start()) },
            e.retries,
            e.backlog,
            e.health,
            e.reason
                .as_deref()
                .or(e.last_error.as_deref())
                .map(|r| format!(" (last error: {r})"))
                .unwrap_or_default(),
            millis(e.latency_p50),
            millis(e.latency_p99),
        );
    }
    let _ = writeln!(
        out,
        "  dead-lettered in delivery: {dead_total}; left in the store {} for the next run: {backlog_total}",
        args.store.display()
    );
    crate::logging::report(&out);
    if dead_total + backlog_total > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
