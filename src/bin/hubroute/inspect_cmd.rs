//! `hubroute inspect`: what a Storage endpoint wrote (Avro, AvroDeflate or JSON record files, or
//! a directory of them), printed as message JSON, one line per record, so it can be read, searched
//! with `jq`, or routed again with `run --input`.

use crate::output::errln;
use clap::Args;
use hubroute::sink::replay::Replay;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct InspectArgs {
    /// A Storage record file (`.avro`, `.json`) or a directory searched for them.
    pub path: PathBuf,
    /// Add each record's file, record number and EnqueuedTimeUtc as a `record` member.
    #[arg(long)]
    pub origin: bool,
}

/// Prints every record; unreadable files and records are reported on standard error with their
/// code, and make the exit code 1, while the others are still printed.
pub fn run(args: InspectArgs) -> Result<ExitCode, String> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = 0u64;
    let mut seen = 0u64;
    for item in Replay::open(&args.path) {
        seen += 1;
        match item {
            Ok(r) => {
                let mut v = r.message.to_json_value();
                if args.origin {
                    v["record"] = serde_json::json!({
                        "file": r.file.display().to_string(),
                        "number": r.record,
                        "EnqueuedTimeUtc": r.enqueued_time_utc,
                    });
                }
                crate::output::check(writeln!(out, "{v}"))?;
            }
            Err(e) => {
                failed += 1;
                errln!("{e}");
            }
        }
    }
    crate::output::check(out.flush())?;
    if seen == 0 {
        errln!(
            "note: no records: {} holds no .avro or .json record files",
            args.path.display()
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
