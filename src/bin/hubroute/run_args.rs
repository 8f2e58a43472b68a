//! `hubroute run`'s arguments and what is read from them alone: sizes, durations, the protocol,
//! the pipeline's settings, the input's dead letter, and how a URL may be shown (without its
//! secrets). Shared by the file input (`run_cmd`) and the live inputs (`live`), which otherwise
//! do not know each other.

use clap::Args;
use hubroute::message::Protocol;
use hubroute::pipeline::input::InvalidLog;
use hubroute::pipeline::{PipelineConfig, Retention};
use hubroute::route::RouteTable;
use hubroute::sink::RetryPolicy;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args)]
pub struct RunArgs {
    /// The routing configuration (as for `test`).
    #[arg(long)]
    pub(crate) routes: PathBuf,
    /// The query language of the conditions: hub (IoT Hub, as Learn documents it) or edge
    /// (the IoT Edge engine, with body queries and twin_change_includes on).
    #[arg(long, default_value = "hub")]
    pub(crate) dialect: hubroute::Dialect,
    /// Where messages come from: a JSON Lines file (`-` for standard input, the default),
    /// what a Storage endpoint wrote (`.avro` or `.json` files, or a directory of them: captured
    /// traffic routed again), `mqtt://HOST:PORT` (devices publishing to IoT Hub's
    /// device-to-cloud topics), `https://HOST:PORT?cert=FILE&key=FILE` or `http://HOST:PORT`
    /// (devices sending as to IoT Hub's REST "Send Device Event", with SAS tokens checked
    /// against --devices), `amqps://HOST:PORT?cert=FILE&key=FILE` or `amqp://HOST:PORT`
    /// (devices over AMQP 1.0 with CBS SAS tokens, as IoT Hub's AMQP endpoint), or
    /// `jetstream://HOST:PORT/STREAM?consumer=NAME` (the stream `hubroute bridge` fills, shared
    /// with every process naming the same consumer; also `ack_wait=30s`, `max_ack_pending=N`).
    #[arg(long, default_value = "-")]
    pub(crate) input: String,
    /// Bind an endpoint to a sink: NAME=URL with URL `file:PATH` (JSON Lines), `stdout:`,
    /// `storage:DIR` (IoT Hub Storage-endpoint files: Avro or JSON, named by the endpoint's
    /// fileNameFormat), `mqtt://HOST:PORT/TOPIC` (QoS 1 to TOPIC/{property bag}),
    /// `nats://HOST:PORT/SUBJECT` or `jetstream://HOST:PORT/SUBJECT` (properties as headers).
    /// Every endpoint a route can reach must be bound, each once. A `file:` sink appends across
    /// runs; a Storage sink never overwrites: a file name that exists gets `-1`, `-2`, ...
    /// (read its Avro with `hubroute inspect DIR`). A broker sink names system properties as
    /// the endpoint's kind does (`?names=edge|eventHubs|serviceBus|storage|eventGrid` to choose).
    #[arg(long = "sink", value_name = "NAME=URL")]
    pub(crate) sinks: Vec<String>,
    /// Where undeliverable and invalid messages go, with the reason (JSON Lines, appended
    /// across runs; by default hubroute-dead-letter.jsonl in the current directory).
    #[arg(long, default_value = "hubroute-dead-letter.jsonl")]
    pub(crate) dead_letter: PathBuf,
    /// A directory of device twins (`<deviceId>.json`, `<deviceId>/<moduleId>.json`): their
    /// tags and desired properties, taken into the twins the router keeps in its store (a twin
    /// first seen as it is; later edits, e.g. by `hubroute twin set`, as changes routed as
    /// TwinChangeEvents). Watched while the router runs (see --twin-poll).
    #[arg(long)]
    pub(crate) twin_dir: Option<PathBuf>,
    /// How often a running router looks for changes of --twin-dir and --devices (e.g. 1s,
    /// 200ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
    pub(crate) twin_poll: Duration,
    /// The hub name for `$iothubname` and storage file names, when the configuration does
    /// not name the hub.
    #[arg(long, default_value = "hubroute")]
    pub(crate) hub_name: String,
    /// The source of messages that carry no "source" field.
    #[arg(long, default_value = "DeviceMessages")]
    pub(crate) source: String,
    /// The protocol the messages arrived by, for IoT Hub's property charset rules
    /// (mqtt, amqp, https, c2d).
    #[arg(long, default_value = "mqtt")]
    pub(crate) protocol: String,
    /// Attempts per batch before its copies go to the dead letter (code E0504); 0, the
    /// default, retries for as long as the endpoint's --retention-time allows (then E0508).
    /// Errors that can never succeed go to the dead letter at once (E0502).
    #[arg(long, default_value_t = 0)]
    pub(crate) max_attempts: u32,
    /// The longest wait between two attempts (e.g. 10s, 500ms); waits double from 100 ms.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub(crate) max_backoff: Duration,
    /// The durable store: accepted messages wait here until every endpoint has them, also
    /// across restarts (one process per directory).
    #[arg(long, default_value = "hubroute-store")]
    pub(crate) store: PathBuf,
    /// Stored bytes at which the input pauses until endpoints catch up (never drops).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes_arg)]
    pub(crate) store_max_bytes: u64,
    /// A copy not delivered this long after acceptance goes to the dead letter (E0508); an
    /// endpoint failing this long is "dead". IoT Hub's documented figure is about 1 hour.
    #[arg(long, default_value = "1h", value_parser = parse_duration_arg)]
    pub(crate) retention_time: Duration,
    /// A failing endpoint's waiting copies beyond this many bytes go to the dead letter (E0509).
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes_arg)]
    pub(crate) retention_bytes: u64,
    /// When the input ends (or on Ctrl-C/SIGTERM): how long to wait for endpoints to deliver
    /// what is stored. What is left stays in the store for the next run.
    #[arg(long, default_value = "30s", value_parser = parse_duration_arg)]
    pub(crate) drain_timeout: Duration,
    /// The longest input line; longer ones are dead-lettered (E0905) and reading goes on.
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes_arg)]
    pub(crate) max_line_bytes: u64,
    /// With a broker input: the MQTT client id (its broker session holds unacknowledged
    /// messages while the router is away).
    #[arg(long, default_value = "hubroute-router")]
    pub(crate) client_id: String,
    /// The device registry, a JSON object of deviceId to identity (IoT Hub's device shape with
    /// keys and status, or just the generation id, stamped as connectionDeviceGenerationId);
    /// unknown (E0605) and disabled senders are rejected; HTTPS and AMQP devices authenticate
    /// with SAS tokens signed with their keys. Watched while the router runs: a device added or
    /// removed (`hubroute device`) is routed as DeviceLifecycleEvents.
    #[arg(long)]
    pub(crate) devices: Option<PathBuf>,
    /// With an HTTPS or AMQP input: the hub host name devices sign their SAS tokens for (default
    /// `{hub-name}.azure-devices.net`).
    #[arg(long)]
    pub(crate) hub_host: Option<String>,
    /// With a broker input: messages read but not yet delivered everywhere, at most.
    #[arg(long, default_value_t = 2000)]
    pub(crate) max_in_flight: usize,
    /// With a broker input: stop after this long without a message (default: run until
    /// interrupted with Ctrl-C or SIGTERM).
    #[arg(long, value_parser = parse_duration_arg)]
    pub(crate) exit_when_idle: Option<Duration>,
    /// Do not show a progress line even on a terminal.
    #[arg(long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) ops: crate::ops_args::RouteOpsArgs,
}

/// `1GiB`, `256MiB`, `64KiB`, `10MB` or plain bytes.
pub(crate) fn parse_bytes_arg(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(format!("'{text}' is not a size (e.g. 1GiB, 256MiB, 4096)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_bytes))
        .ok_or_else(|| format!("'{text}' is not a size (e.g. 1GiB, 256MiB, 4096)"))
}

/// A `--sink` or `--input` value as messages may print it: a broker URL loses its password,
/// token and secret-bearing parameters ([`hubroute::redact::url`]), even when mistyped.
pub(crate) fn shown(text: &str) -> String {
    hubroute::redact::url(text)
}

/// `30s`, `500ms`, `2m` or plain seconds.
pub(crate) fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    hubroute::sink::parse_duration(text)
        .ok_or_else(|| format!("'{text}' is not a duration (e.g. 30s, 500ms)"))
}

pub(crate) fn parse_protocol(p: &str) -> Result<Protocol, String> {
    match p.to_ascii_lowercase().as_str() {
        "mqtt" => Ok(Protocol::Mqtt),
        "amqp" => Ok(Protocol::Amqp),
        "https" | "http" => Ok(Protocol::Https),
        "c2d" | "cloudtodevice" => Ok(Protocol::CloudToDevice),
        _ => Err(format!("--protocol: '{p}' is not mqtt, amqp, https or c2d")),
    }
}

/// The pipeline's settings from the arguments.
pub(crate) fn pipeline_config(
    args: &RunArgs,
    table: &RouteTable,
) -> Result<PipelineConfig, String> {
    let mut config = PipelineConfig::new(&args.store, table.hub_name());
    config.max_store_bytes = args.store_max_bytes;
    config.retention = Retention {
        time: args.retention_time,
        bytes: args.retention_bytes,
    };
    config.retry = RetryPolicy {
        max_attempts: args.max_attempts,
        max_backoff: args.max_backoff,
        ..RetryPolicy::default()
    };
    config.protocol = parse_protocol(&args.protocol)?;
    config.default_source = args.source.parse().map_err(|e| format!("--source: {e}"))?;
    Ok(config)
}

/// The input's dead letter (invalid lines and broker messages, with their reason), so that
/// nothing read is lost; the error names the option.
pub(crate) fn open_invalid_log(path: &std::path::Path) -> Result<InvalidLog, String> {
    InvalidLog::open(path).map_err(|e| format!("--dead-letter {}: {e}", path.display()))
}
