//! Live inputs: `hubroute run --input mqtt://…|jetstream://…|https://…|amqp://…` and `hubroute
//! bridge`: argument wiring and the summary. The loops (acknowledge once durably accepted, the
//! in-flight window, resends) are the library's: [`hubroute::pipeline::input::mqtt`],
//! [`hubroute::pipeline::input::jetstream`], `https`, `amqp` and [`hubroute::pipeline::bridge`];
//! every router input runs through [`serve`], on a single-threaded tokio runtime until Ctrl-C or
//! SIGTERM, with the twin directory and registry watched.

// Builds without a broker feature keep the command-line surface and report the missing feature;
// the imports the loops need are then unused.
#![cfg_attr(not(all(feature = "mqtt", feature = "nats")), allow(unused_imports))]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use hubroute::eval::TwinLookup;
use hubroute::pipeline::input::InvalidLog;
use hubroute::pipeline::Pipeline;

#[allow(unused_imports)]
use crate::bind_sinks::not_built;
use crate::logging::{say, Level};
use crate::run_args::RunArgs;
use crate::summary::report;

/// What `run` hands over once the pipeline (store, sinks, dead letter) is open.
#[cfg_attr(not(any(feature = "mqtt", feature = "nats")), allow(dead_code))]
pub(crate) struct Live<'a> {
    /// The live route table (reloads) and the counters behind `--metrics`.
    pub observed: std::sync::Arc<crate::ops_wiring::Observed>,
    pub pipeline: Pipeline,
    pub twin: Option<&'a (dyn TwinLookup + Sync)>,
    pub invalid_log: Mutex<InvalidLog>,
    /// The router's twins, kept in step with the twin directory and registry while it runs.
    pub twins: &'a hubroute::twin::LiveTwins,
    pub watch: crate::twin_watch::WatchPlan,
    pub watch_state: crate::twin_watch::WatchState,
}

/// Runs the router on a broker input until interrupted (or idle, with --exit-when-idle), then
/// drains the endpoints (up to --drain-timeout; the rest stays in the store) and prints the
/// summary.
pub(crate) fn run(args: &RunArgs, live: Live<'_>) -> Result<ExitCode, String> {
    #[cfg(any(feature = "mqtt", feature = "nats"))]
    {
        use hubroute::broker::{BrokerUrl, Scheme};
        let url = BrokerUrl::parse(&args.input).map_err(|e| format!("--input: {e}"))?;
        serve(
            args,
            live,
            |runtime, input| {
                Ok(match url.scheme {
                    #[cfg(feature = "mqtt")]
                    Scheme::Mqtt => {
                        let mut settings =
                            hubroute::pipeline::input::mqtt::MqttSettings::new(&args.client_id);
                        settings.registry = load_registry(args.devices.as_ref())?;
                        runtime.block_on(hubroute::pipeline::input::mqtt::run(
                            input,
                            &url,
                            &settings,
                            interrupted(),
                        ))?
                    }
                    #[cfg(feature = "nats")]
                    Scheme::JetStream => {
                        let outcome = runtime.block_on(
                            hubroute::pipeline::input::jetstream::run(input, &url, interrupted()),
                        )?;
                        say(
                            Level::Info,
                            &format!(
                                "redelivered messages received: {}; pull stream resumed {} times",
                                outcome.redelivered, outcome.resumed
                            ),
                        );
                        outcome
                    }
                    _ => {
                        return Err(format!(
                            "--input {url}: use mqtt://HOST:PORT or jetstream://HOST:PORT/STREAM?consumer=NAME{}",
                            if cfg!(all(feature = "mqtt", feature = "nats")) {
                                ""
                            } else {
                                " (and a build with both broker features)"
                            }
                        ))
                    }
                })
            },
            |outcome| {
                format!(
                    "acknowledged {}, left for redelivery {}, acknowledgements failed {}",
                    outcome.acknowledged,
                    outcome.left_for_redelivery,
                    outcome.acknowledgements_failed
                )
            },
        )
    }
    #[cfg(not(any(feature = "mqtt", feature = "nats")))]
    {
        let _ = live;
        Err(not_built(&args.input))
    }
}

/// Runs a live input — a broker's (MQTT, JetStream) or a device server (HTTPS, AMQP) — as every
/// one runs: on a single-threaded tokio runtime, with the ops hooks, the in-flight window and
/// the idle timeout of the arguments, while the twin directory and the registry are watched
/// (their changes routed as TwinChangeEvents and DeviceLifecycleEvents, whatever the input);
/// then drains the endpoints and prints how the input settled (`settled`) and the summary.
#[cfg(any(
    feature = "mqtt",
    feature = "nats",
    feature = "https",
    feature = "amqp"
))]
pub(crate) fn serve(
    args: &RunArgs,
    live: Live<'_>,
    input_loop: impl FnOnce(
        &tokio::runtime::Runtime,
        &hubroute::pipeline::input::LiveInput<'_>,
    ) -> Result<hubroute::pipeline::input::LiveReport, String>,
    settled: impl FnOnce(&hubroute::pipeline::input::LiveReport) -> String,
) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let mut input = hubroute::pipeline::input::LiveInput::new(&live.pipeline, &live.invalid_log);
    input.twin = live.twin;
    input.twins = Some(live.twins);
    let hooks = OpsHooks(std::sync::Arc::clone(&live.observed.counters));
    input.hooks = &hooks;
    input.max_in_flight = args.max_in_flight;
    input.idle_timeout = args.exit_when_idle;
    let started = Instant::now();
    let outcome = crate::twin_watch::while_watching(
        live.twins,
        &live.pipeline,
        &live.watch,
        live.watch_state,
        || input_loop(&runtime, &input),
    )?;
    let delivery = live.pipeline.shutdown(args.drain_timeout);
    say(Level::Info, &settled(&outcome));
    let stats = hubroute::pipeline::input::LinesReport {
        read: outcome.read,
        blank: 0,
        valid: outcome.valid,
        invalid: outcome.invalid,
        stopped: None,
    };
    Ok(report(&stats, &delivery, started.elapsed(), args))
}

/// What the device servers (HTTPS, AMQP) authenticate with: the registry of `--devices`
/// (required: devices sign SAS tokens with its keys) and the hub host the tokens are for
/// (`--hub-host`, by default `{hub-name}.azure-devices.net`).
#[cfg(any(feature = "https", feature = "amqp"))]
pub(crate) fn device_auth(
    args: &RunArgs,
    live: &Live<'_>,
    scheme: &str,
) -> Result<(hubroute::registry::Registry, String), String> {
    let registry = load_registry(args.devices.as_ref())?.ok_or_else(|| {
        format!(
            "--input {scheme}:// needs --devices FILE: devices authenticate with SAS tokens signed \
             with their keys from the registry (see `hubroute token`)"
        )
    })?;
    let host = args
        .hub_host
        .clone()
        .unwrap_or_else(|| format!("{}.azure-devices.net", live.pipeline.table().hub_name()));
    Ok((registry, host))
}

/// What `--metrics` sees of a broker input: messages read and invalid by code (the counters'
/// `read` and `invalid`), messages the bridge's stream confirmed (`accepted`), and readiness
/// (subscribed or pulling).
#[cfg(any(
    feature = "mqtt",
    feature = "nats",
    feature = "https",
    feature = "amqp"
))]
pub(crate) struct OpsHooks(pub std::sync::Arc<hubroute::ops::Counters>);

#[cfg(any(
    feature = "mqtt",
    feature = "nats",
    feature = "https",
    feature = "amqp"
))]
impl hubroute::pipeline::input::InputHooks for OpsHooks {
    fn read(&self, invalid: Option<&'static str>) {
        let mut counts = hubroute::ops::Batch {
            read: 1,
            ..Default::default()
        };
        if let Some(code) = invalid {
            counts.invalid.insert(code, 1);
        }
        self.0.add(&counts);
    }

    fn connected(&self, up: bool) {
        crate::ops_wiring::set_input_connected(up);
    }

    fn appended(&self) {
        self.0.add(&hubroute::ops::Batch {
            accepted: 1,
            ..Default::default()
        });
    }
}

/// Resolves on Ctrl-C or SIGTERM.
#[cfg(any(
    feature = "mqtt",
    feature = "nats",
    feature = "https",
    feature = "amqp"
))]
pub(crate) async fn interrupted() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `--devices FILE`: the device registry (see `hubroute::registry`; the old
/// `{"deviceId": "generationId", …}` form too). With a registry, unknown senders are rejected
/// (E0605), as IoT Hub rejects unregistered devices, and disabled ones (E0606).
#[cfg(any(feature = "mqtt", feature = "https", feature = "amqp"))]
pub(crate) fn load_registry(
    path: Option<&PathBuf>,
) -> Result<Option<hubroute::registry::Registry>, String> {
    let Some(path) = path else { return Ok(None) };
    hubroute::registry::Registry::load(path)
        .map(Some)
        .map_err(|e| format!("--devices: {e}"))
}

/// `hubroute bridge`: devices' MQTT publishes, stamped and validated, appended to a JetStream
/// stream that router processes share.
#[derive(Args)]
pub struct BridgeArgs {
    /// The MQTT broker devices publish to (IoT Hub's device-to-cloud topics).
    #[arg(long)]
    from: String,
    /// The stream to append to: jetstream://HOST:PORT/STREAM (created if missing).
    #[arg(long)]
    to: String,
    /// Where invalid messages go, with the reason (JSON Lines).
    #[arg(long, default_value = "hubroute-bridge-dead-letter.jsonl")]
    dead_letter: PathBuf,
    /// The bridge's MQTT client id (its broker session holds messages while it is away).
    #[arg(long, default_value = "hubroute-bridge")]
    client_id: String,
    /// Device registry: a JSON object of deviceId to identity (IoT Hub's device shape, or the
    /// generation id); unknown and disabled senders are rejected.
    #[arg(long)]
    devices: Option<PathBuf>,
    /// Messages received and not yet confirmed by the stream, at most.
    #[arg(long, default_value_t = 5000)]
    max_in_flight: usize,
    /// Stop after this long without a message (default: run until interrupted).
    #[arg(long, value_parser = crate::run_args::parse_duration_arg)]
    exit_when_idle: Option<Duration>,
    #[command(flatten)]
    ops: crate::ops_args::ObserveArgs,
}

/// Runs the bridge until interrupted (or idle).
pub(crate) fn bridge(args: BridgeArgs) -> Result<ExitCode, String> {
    crate::logging::init(&args.ops.log)?;
    #[cfg(all(feature = "mqtt", feature = "nats"))]
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime.block_on(bridge_loop(args))
    }
    #[cfg(not(all(feature = "mqtt", feature = "nats")))]
    {
        Err(not_built(&args.from))
    }
}

#[cfg(all(feature = "mqtt", feature = "nats"))]
async fn bridge_loop(args: BridgeArgs) -> Result<ExitCode, String> {
    use hubroute::broker::BrokerUrl;
    use hubroute::pipeline::bridge::{self, BridgeSettings};
    use hubroute::pipeline::input::mqtt::MqttSettings;

    let from = BrokerUrl::parse(&args.from).map_err(|e| format!("--from: {e}"))?;
    let to = BrokerUrl::parse(&args.to).map_err(|e| format!("--to: {e}"))?;
    let mut mqtt = MqttSettings::new(&args.client_id);
    mqtt.registry = load_registry(args.devices.as_ref())?;
    let settings = BridgeSettings {
        mqtt,
        max_in_flight: args.max_in_flight,
        idle_timeout: args.exit_when_idle,
    };
    let invalid_log = Mutex::new(crate::run_args::open_invalid_log(&args.dead_letter)?);
    // Read, appended (accepted) and invalid by code, for --metrics.
    let counters = std::sync::Arc::new(hubroute::ops::Counters::default());
    let _metrics = crate::ops_wiring::serve_counters(&args.ops, std::sync::Arc::clone(&counters))?;
    let started = Instant::now();
    let outcome = bridge::run(
        &from,
        &to,
        &settings,
        &invalid_log,
        std::sync::Arc::new(OpsHooks(counters)),
        interrupted(),
    )
    .await?;
    let received = outcome.received;
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let mut out = format!(
        "received {received} messages in {elapsed:.3}s ({:.0} msg/s)\n",
        received as f64 / elapsed
    );
    out += &format!("  appended to {to}: {}\n", outcome.appended);
    out += &format!(
        "  appends retried: {}; not confirmed when stopped (left unacknowledged for redelivery): {}\n",
        outcome.retried,
        outcome.unconfirmed()
    );
    out += &format!(
        "  invalid: {} (dead-lettered to {}){}\n",
        outcome.invalid_total(),
        args.dead_letter.display(),
        outcome
            .invalid
            .iter()
            .map(|(c, n)| format!(" {c}: {n}"))
            .collect::<String>()
    );
    crate::logging::report(&out);
    Ok(ExitCode::SUCCESS)
}
