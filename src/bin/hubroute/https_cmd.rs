//! `hubroute run --input https://ADDR?cert=F&key=F` (or `http://ADDR`): devices sending as to
//! IoT Hub's "Send Device Event", authenticated against `--devices`. The server is the
//! library's ([`hubroute::pipeline::input::https`]), run here on a single-threaded tokio
//! runtime until Ctrl-C or SIGTERM (or --exit-when-idle).

use std::process::ExitCode;
use std::time::Instant;

use hubroute::pipeline::input::https::{self, HttpsSettings, HttpsUrl};
use hubroute::pipeline::input::LiveInput;

use crate::live::{interrupted, load_registry, Live, OpsHooks};
use crate::run_cmd::{report, InputStats, RunArgs};

/// Serves devices until interrupted, then drains the endpoints and prints the summary.
pub(crate) fn run(args: &RunArgs, live: Live<'_>) -> Result<ExitCode, String> {
    let url = HttpsUrl::parse(&args.input).map_err(|e| format!("--input: {e}"))?;
    let registry = load_registry(args.devices.as_ref())?.ok_or_else(|| {
        "--input https:// needs --devices FILE: devices authenticate with SAS tokens signed with \
         their keys from the registry (see `hubroute token`)"
            .to_string()
    })?;
    let hub_host = args
        .hub_host
        .clone()
        .unwrap_or_else(|| format!("{}.azure-devices.net", live.pipeline.table().hub_name()));
    let mut settings = HttpsSettings::new(hub_host, registry);
    settings.registry_file = args.devices.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let mut input = LiveInput::new(&live.pipeline, &live.invalid_log);
    input.twin = live.twin;
    let hooks = OpsHooks(std::sync::Arc::clone(&live.observed.counters));
    input.hooks = &hooks;
    input.max_in_flight = args.max_in_flight;
    input.idle_timeout = args.exit_when_idle;
    let started = Instant::now();
    let outcome = runtime.block_on(https::run(&input, &url, &settings, interrupted()))?;
    let delivery = live.pipeline.shutdown(args.drain_timeout);
    eprintln!(
        "answered 204 (durably accepted) {}, not accepted {}",
        outcome.acknowledged, outcome.left_for_redelivery
    );
    let stats = InputStats {
        read: outcome.read,
        blank: 0,
        valid: outcome.valid,
        invalid: outcome.invalid,
        read_error: None,
    };
    Ok(report(&stats, &delivery, started.elapsed(), args))
}
