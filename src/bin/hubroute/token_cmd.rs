//! `hubroute token`: a SAS token for a device (or module), as `az iot hub
//! generate-sas-token --device-id …` prints it (`-o tsv`), from a key given or from the device
//! registry. For devices and tests sending to `run --input https://…`.

use crate::output::outln;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use hubroute::registry::{sas, Registry, SymmetricKey};

/// `hubroute token` arguments.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The device the token is for.
    #[arg(long)]
    device: String,
    /// The module the token is for (its resource is `{host}/devices/{device}/modules/{module}`).
    #[arg(long)]
    module: Option<String>,
    /// The symmetric key (base64) to sign with; a secret: prefer --devices.
    #[arg(long, conflicts_with = "devices", required_unless_present = "devices")]
    key: Option<String>,
    /// The device registry to take the key from (the module's own key, if it has one, for
    /// --module; else the device's).
    #[arg(long)]
    devices: Option<PathBuf>,
    /// With --devices: sign with the secondary key.
    #[arg(long, requires = "devices")]
    secondary: bool,
    /// The hub host name the token is for (as `run --hub-host`).
    #[arg(
        long,
        conflicts_with = "hub_name",
        required_unless_present = "hub_name"
    )]
    hub_host: Option<String>,
    /// The hub name: the host is `{hub-name}.azure-devices.net`.
    #[arg(long)]
    hub_name: Option<String>,
    /// How long the token is valid from now (seconds, or 30s, 1h…; az's default, an hour).
    #[arg(long, default_value = "3600", conflicts_with = "expiry")]
    duration: String,
    /// The expiry as Unix seconds instead of --duration (a fixed token, for examples and tests).
    #[arg(long)]
    expiry: Option<u64>,
    /// A shared access policy name (`skn`), for a policy key's token. The router takes only
    /// device-key tokens.
    #[arg(long)]
    policy: Option<String>,
}

/// Prints the token.
pub(crate) fn run(args: TokenArgs) -> Result<ExitCode, String> {
    let host = match (&args.hub_host, &args.hub_name) {
        (Some(h), _) => h.clone(),
        (None, Some(n)) => format!("{n}.azure-devices.net"),
        (None, None) => return Err("give --hub-host HOST or --hub-name NAME".into()),
    };
    let resource = match &args.module {
        Some(m) => format!("{host}/devices/{}/modules/{m}", args.device),
        None => format!("{host}/devices/{}", args.device),
    };
    let key = match (&args.key, &args.devices) {
        (Some(k), _) => SymmetricKey::from_base64(k)
            .map_err(|()| "--key: not a base64 symmetric key".to_string())?,
        (None, Some(path)) => key_from_registry(&args, path)?,
        (None, None) => return Err("give --key B64 or --devices FILE".into()),
    };
    let expiry = match args.expiry {
        Some(e) => e,
        None => {
            let valid = parse_duration(&args.duration)?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            now.saturating_add(valid.as_secs())
        }
    };
    outln!(
        "{}",
        sas::mint_with(&resource, &key, expiry, args.policy.as_deref())
    );
    Ok(ExitCode::SUCCESS)
}

fn key_from_registry(args: &TokenArgs, path: &std::path::Path) -> Result<SymmetricKey, String> {
    let registry = Registry::load(path).map_err(|e| format!("--devices: {e}"))?;
    let device = registry.get(&args.device).ok_or_else(|| {
        format!(
            "--devices {}: no device '{}' in it",
            path.display(),
            args.device
        )
    })?;
    let module = args.module.as_deref().and_then(|m| device.modules.get(m));
    let (primary, secondary) = match module {
        Some(m) if m.primary_key.is_some() || m.secondary_key.is_some() => {
            (&m.primary_key, &m.secondary_key)
        }
        _ => (&device.primary_key, &device.secondary_key),
    };
    let (key, which) = if args.secondary {
        (secondary, "secondary")
    } else {
        (primary, "primary")
    };
    key.clone().ok_or_else(|| {
        format!(
            "--devices {}: device '{}' has no {which} key",
            path.display(),
            args.device
        )
    })
}

/// Seconds as az takes them, or a duration with a unit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => hubroute::sink::parse_duration(text)
            .ok_or_else(|| format!("--duration: '{text}' is not seconds or a duration (1h, 30m)")),
    }
}
