//! The operations flags of `run` (and, for metrics and logs, `bridge`).

use crate::logging::LogArgs;
use clap::Args;
use std::path::PathBuf;

/// Metrics, logs and the config file.
#[derive(Args, Clone, Debug, Default)]
pub struct ObserveArgs {
    /// A TOML file with the process's settings: input, sinks, store, metrics, logs, limits
    /// (see examples/router.toml). Flags given on the command line override it; relative
    /// paths in it are relative to its directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics and health at /healthz, /livez and
    /// /readyz (e.g. 127.0.0.1:9464; port 0 picks a free port, logged at start).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Reloading routes and logging their evaluation (`run` only).
#[derive(Args, Clone, Debug, Default)]
pub struct RouteOpsArgs {
    #[command(flatten)]
    pub observe: ObserveArgs,
    /// Log route evaluations that are undefined, with the reason (IoT Hub's routes resource
    /// log UndefinedRouteEvaluation), at most PER_SECOND lines a second (default 10).
    #[arg(long, value_name = "PER_SECOND", num_args = 0..=1, default_missing_value = "10")]
    pub log_undefined: Option<u32>,
    /// Reload the routing configuration when the routes file changes, as on SIGHUP.
    #[arg(long)]
    pub watch: bool,
}
