//! `hubroute run --input https://ADDR?cert=F&key=F` (or `http://ADDR`): devices sending as to
//! IoT Hub's "Send Device Event", authenticated against `--devices`. The server is the
//! library's ([`hubroute::pipeline::input::https`]), run here on a single-threaded tokio
//! runtime until Ctrl-C or SIGTERM (or --exit-when-idle).

use std::process::ExitCode;

use hubroute::pipeline::input::https::{self, HttpsSettings, HttpsUrl};

use crate::live::{device_auth, interrupted, serve, Live};
use crate::run_args::RunArgs;

/// Serves devices until interrupted, then drains the endpoints and prints the summary.
pub(crate) fn run(args: &RunArgs, live: Live<'_>) -> Result<ExitCode, String> {
    let url = HttpsUrl::parse(&args.input).map_err(|e| format!("--input: {e}"))?;
    let (registry, hub_host) = device_auth(args, &live, "https")?;
    let mut settings = HttpsSettings::new(hub_host, registry);
    settings.registry_file = args.devices.clone();
    serve(
        args,
        live,
        |runtime, input| runtime.block_on(https::run(input, &url, &settings, interrupted())),
        |outcome| {
            format!(
                "answered 204 (durably accepted) {}, not accepted {}",
                outcome.acknowledged, outcome.left_for_redelivery
            )
        },
    )
}
