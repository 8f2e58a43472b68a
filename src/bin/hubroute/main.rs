//! `hubroute`: check, test, evaluate and run IoT Hub message routes on your own machine.
//!
//! Exit codes: 0 success; 1 the thing checked is wrong (diagnostics, a failed route test);
//! 2 usage or I/O error.

#[cfg(feature = "amqp")]
mod amqp_input;
mod bind_sinks;
mod check_cmd;
mod config_file;
mod device_cmd;
mod eval_cmd;
#[cfg(feature = "https")]
mod https_cmd;
mod inspect_cmd;
mod live;
mod logging;
mod malloc_tuning;
mod ops_args;
mod ops_wiring;
mod output;
mod reload;
mod render;
mod routes_cmd;
mod run_args;
mod run_cmd;
mod summary;
mod test_cmd;
mod token_cmd;
mod twin_cmd;
mod twin_watch;

use crate::output::errln;
use clap::{Args, CommandFactory, Parser, Subcommand};
use hubroute::Options;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hubroute",
    version,
    about = "Azure IoT Hub message routing on your own machines"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once per process: the size of `run`'s arguments costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Evaluate a routing query against a message (or a batch of conformance-format lines).
    Eval(eval_cmd::EvalArgs),
    /// Check routing queries: syntax, types, lints, with positioned diagnostics.
    Check(check_cmd::CheckArgs),
    /// Print a routing query, or a configuration's conditions, in canonical form.
    Fmt(check_cmd::FmtArgs),
    /// Test a message against a routing configuration: which routes match, which endpoints
    /// receive it, and (with --explain) why.
    Test(test_cmd::TestArgs),
    /// Route messages (JSON Lines, MQTT devices or a shared JetStream stream) to sinks bound to
    /// the endpoints.
    Run(run_args::RunArgs),
    /// Take devices' MQTT messages (IoT Hub's topics), stamp and validate them, and append them
    /// to a JetStream stream that any number of `run` processes share.
    Bridge(live::BridgeArgs),
    /// Print what a Storage endpoint wrote (Avro, AvroDeflate or JSON files, or a directory of
    /// them) as message JSON Lines, one record per line.
    Inspect(inspect_cmd::InspectArgs),
    /// Print a SAS token for a device (or module), as `az iot hub generate-sas-token` does,
    /// for devices sending to `run --input https://…`.
    Token(token_cmd::TokenArgs),
    /// Show a device's twin as the router keeps it, or set its tags and desired properties
    /// (routed as TwinChangeEvents by a router watching the twin directory).
    Twin(twin_cmd::TwinArgs),
    /// Create, disable, enable, delete or list devices in the registry file (routed as
    /// DeviceLifecycleEvents by a router watching it).
    Device(device_cmd::DeviceArgs),
}

/// How queries are compiled. Defaults are IoT Hub's: its dialect, body queries and `$twin` on.
#[derive(Args, Clone, Debug)]
pub struct CompileFlags {
    /// The query language: `hub` (IoT Hub, as Microsoft Learn documents it) or `edge` (the IoT
    /// Edge engine exactly, with no compiler flags unless --body-query / --twin-change-includes:
    /// `$body.x` is then an ordinary `$` property and `$twin` is not resolved).
    #[arg(long, default_value = "hub")]
    dialect: hubroute::Dialect,
    /// Shorthand for --dialect edge.
    #[arg(long)]
    edge: bool,
    /// With --dialect edge, enable body queries (RouteCompilerFlags.BodyQuery).
    #[arg(long)]
    body_query: bool,
    /// With --dialect edge, enable twin_change_includes (RouteCompilerFlags.TwinChangeIncludes).
    #[arg(long)]
    twin_change_includes: bool,
    /// The route's source: DeviceMessages (default), TwinChangeEvents, ... (twin_change_includes
    /// needs TwinChangeEvents).
    #[arg(long, default_value = "DeviceMessages")]
    source: String,
}

impl CompileFlags {
    /// The dialect asked for (`--edge` is `--dialect edge`).
    pub fn dialect(&self) -> hubroute::Dialect {
        match self.edge {
            true => hubroute::Dialect::Edge,
            false => self.dialect,
        }
    }

    /// The compiler options these flags ask for.
    pub fn options(&self) -> Result<Options, String> {
        let source: hubroute::message::Source =
            self.source.parse().map_err(|e| format!("--source: {e}"))?;
        let twin_change_source = source == hubroute::message::Source::TwinChangeEvents;
        Ok(if self.dialect() == hubroute::Dialect::Edge {
            Options {
                body_query: self.body_query,
                twin_change_includes: self.twin_change_includes,
                twin_change_source,
                ..Options::edge_none()
            }
        } else {
            Options {
                twin_change_source,
                ..Options::iot_hub()
            }
        })
    }
}

fn main() -> ExitCode {
    // `run --config FILE` / `bridge --config FILE`: the file's settings become flags that the
    // command line overrides.
    let argv = match config_file::expand(std::env::args_os().collect(), &Cli::command()) {
        Ok(argv) => argv,
        Err(message) => {
            errln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(argv);
    if matches!(cli.command, Command::Run(_) | Command::Bridge(_)) {
        malloc_tuning::restart_tuned();
    } else {
        logging::init_plain();
    }
    let result = match cli.command {
        Command::Eval(args) => eval_cmd::run(args),
        Command::Check(args) => check_cmd::run(args),
        Command::Fmt(args) => check_cmd::fmt(args),
        Command::Test(args) => test_cmd::test(args),
        Command::Run(args) => run_cmd::run(args),
        Command::Bridge(args) => live::bridge(args),
        Command::Inspect(args) => inspect_cmd::run(args),
        Command::Token(args) => token_cmd::run(args),
        Command::Twin(args) => twin_cmd::run(args),
        Command::Device(args) => device_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            errln!("error: {message}");
            ExitCode::from(2)
        }
    }
}
