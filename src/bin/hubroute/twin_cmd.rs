//! `hubroute twin show|set`: a device's twin as the router keeps it, and changes of its tags
//! and desired properties. `set` edits the twin directory's file (atomically); a router
//! running with that `--twin-dir` sees the change within its `--twin-poll`, one that is not
//! running at its next start, and routes it as TwinChangeEvents (see twin_watch.rs for why
//! files rather than a call into the router).

use crate::output::{out, outln};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hubroute::twin::{codes, patch, write_atomically, LiveTwins, Section, TwinError};
use serde_json::Value;

#[derive(Args)]
pub struct TwinArgs {
    #[command(subcommand)]
    command: TwinCommand,
}

#[derive(Subcommand)]
enum TwinCommand {
    /// Print a device's (or module's) twin as the router keeps it: tags, desired and reported
    /// properties with their `$version` and `$metadata`, and the twin's `version`.
    Show(ShowArgs),
    /// Change a device's tags or desired properties (a JSON merge patch: `null` deletes) in
    /// its twin file, and print the file.
    Set(SetArgs),
}

#[derive(Args)]
struct ShowArgs {
    /// The router's store (`run --store`); read while the router runs too.
    #[arg(long, default_value = "hubroute-store")]
    store: PathBuf,
    /// The device.
    #[arg(long)]
    device: String,
    /// The module, for a module twin.
    #[arg(long)]
    module: Option<String>,
}

#[derive(Args)]
struct SetArgs {
    /// The twin directory the router runs with (`run --twin-dir`).
    #[arg(long)]
    twin_dir: PathBuf,
    /// The device.
    #[arg(long)]
    device: String,
    /// The module, for a module twin.
    #[arg(long)]
    module: Option<String>,
    /// A patch of the tags, e.g. '{"site": "lab", "old": null}'.
    #[arg(long)]
    tags: Option<String>,
    /// A patch of the desired properties, e.g. '{"interval": 30}'.
    #[arg(long)]
    desired: Option<String>,
}

pub fn run(args: TwinArgs) -> Result<ExitCode, String> {
    match args.command {
        TwinCommand::Show(a) => show(a),
        TwinCommand::Set(a) => set(a),
    }
}

/// A device or module id that can name a file: IoT Hub's ids never hold `/` or `\`.
fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\\']) || id.len() > 128 {
        return Err(format!(
            "[{}] --{what} '{}' is not an IoT Hub id (1 to 128 characters, no '/' or '\\')",
            codes::NO_SUCH_DEVICE,
            id.escape_debug()
        ));
    }
    Ok(())
}

fn rel(device: &str, module: Option<&str>) -> String {
    match module {
        Some(m) => format!("{device}/{m}.json"),
        None => format!("{device}.json"),
    }
}

fn show(a: ShowArgs) -> Result<ExitCode, String> {
    check_id("device", &a.device)?;
    if let Some(m) = &a.module {
        check_id("module", m)?;
    }
    let twin = match LiveTwins::open(&a.store, "hubroute", None) {
        Ok(twins) => twins.twin(&a.device, a.module.as_deref()),
        // A running router holds the database: read the view it keeps beside it.
        Err(e) if e.code == codes::STORE && e.message.contains("another hubroute process") => {
            let file = a
                .store
                .join(hubroute::twin::live::VIEW_DIR)
                .join(rel(&a.device, a.module.as_deref()));
            match std::fs::read_to_string(&file) {
                Ok(text) => serde_json::from_str(&text).ok(),
                Err(_) => None,
            }
        }
        Err(e) => return Err(e.to_string()),
    };
    match twin {
        Some(t) => {
            outln!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        None => Err(TwinError::new(
            codes::NO_SUCH_DEVICE,
            format!(
                "store {} has no twin for '{}'",
                a.store.display(),
                rel(&a.device, a.module.as_deref()).trim_end_matches(".json")
            ),
        )
        .to_string()),
    }
}

fn set(a: SetArgs) -> Result<ExitCode, String> {
    check_id("device", &a.device)?;
    if let Some(m) = &a.module {
        check_id("module", m)?;
    }
    if a.tags.is_none() && a.desired.is_none() {
        return Err("give --tags JSON and/or --desired JSON".into());
    }
    let file = a.twin_dir.join(rel(&a.device, a.module.as_deref()));
    let mut doc: Value = match std::fs::read_to_string(&file) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            format!(
                "[{}] {} is not a twin (not JSON: {e})",
                codes::BAD_TWIN_FILE,
                file.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    if !doc.is_object() {
        return Err(format!(
            "[{}] {} is not a twin (not a JSON object)",
            codes::BAD_TWIN_FILE,
            file.display()
        ));
    }
    for (section, text) in [(Section::Tags, &a.tags), (Section::Desired, &a.desired)] {
        if let Some(text) = text {
            let p = patch::parse_patch(text, section)
                .map_err(|e| format!("--{}: {e}", section.name()))?;
            patch::merge(patch::section_mut(&mut doc, section), &p);
        }
    }
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    write_atomically(&file, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    out!("{text}");
    Ok(ExitCode::SUCCESS)
}
