//! `hubroute run --input amqp://ADDR` or `amqps://ADDR?cert=FILE&key=FILE`: devices over AMQP
//! 1.0, authenticated with SAS tokens against `--devices`, into the durable pipeline. The
//! server and its settlement rule are the library's ([`hubroute::pipeline::input::amqp`]);
//! this is the wiring and the summary.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use hubroute::pipeline::input::amqp::{self, AmqpSettings, AmqpUrl, RegistryAuth};
use hubroute::pipeline::input::LiveInput;

use crate::live::{interrupted, Live, OpsHooks};
use crate::run_cmd::{report, InputStats, RunArgs};

pub(crate) fn run(args: &RunArgs, live: Live<'_>) -> Result<ExitCode, String> {
    let url = AmqpUrl::parse(&args.input).map_err(|e| format!("--input: {e}"))?;
    let registry = crate::live::load_registry(args.devices.as_ref())?.ok_or_else(|| {
        "--input amqp:// needs --devices FILE: devices authenticate with SAS tokens signed with \
         their keys from the registry (see `hubroute token`)"
            .to_string()
    })?;
    let auth = RegistryAuth {
        registry,
        host: args
            .hub_host
            .clone()
            .unwrap_or_else(|| format!("{}.azure-devices.net", live.pipeline.table().hub_name())),
    };
    let settings = AmqpSettings::new(url, Arc::new(auth));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let mut input = LiveInput::new(&live.pipeline, &live.invalid_log);
    input.twin = live.twin;
    let hooks = OpsHooks(Arc::clone(&live.observed.counters));
    input.hooks = &hooks;
    input.max_in_flight = args.max_in_flight;
    input.idle_timeout = args.exit_when_idle;
    let started = Instant::now();
    let outcome = runtime.block_on(amqp::run(&input, &settings, interrupted()))?;
    let delivery = live.pipeline.shutdown(args.drain_timeout);
    eprintln!(
        "settled {} (accepted or rejected), released {}, settlements failed {}",
        outcome.acknowledged, outcome.left_for_redelivery, outcome.acknowledgements_failed
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
