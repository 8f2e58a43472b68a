//! `hubroute run --input amqp://ADDR` or `amqps://ADDR?cert=FILE&key=FILE`: devices over AMQP
//! 1.0, authenticated with SAS tokens against `--devices`, into the durable pipeline. The
//! server and its settlement rule are the library's ([`hubroute::pipeline::input::amqp`]);
//! this is the wiring and the summary.

use std::process::ExitCode;
use std::sync::Arc;

use hubroute::pipeline::input::amqp::{self, AmqpSettings, AmqpUrl, RegistryAuth};

use crate::live::{device_auth, interrupted, serve, Live};
use crate::run_args::RunArgs;

/// Serves devices until interrupted, then drains the endpoints and prints the summary.
pub(crate) fn run(args: &RunArgs, live: Live<'_>) -> Result<ExitCode, String> {
    let url = AmqpUrl::parse(&args.input).map_err(|e| format!("--input: {e}"))?;
    let (registry, host) = device_auth(args, &live, "amqp")?;
    let auth = RegistryAuth::new(registry, host, args.devices.clone());
    let settings = AmqpSettings::new(url, Arc::new(auth));
    serve(
        args,
        live,
        |runtime, input| runtime.block_on(amqp::run(input, &settings, interrupted())),
        |outcome| {
            format!(
                "settled {} (accepted or rejected), released {}, settlements failed {}",
                outcome.acknowledged, outcome.left_for_redelivery, outcome.acknowledgements_failed
            )
        },
    )
}
