//! `hubroute device create|disable|enable|delete|list`: the device registry file (`run
//! --devices`), edited atomically. A router running with that file sees each change within its
//! `--twin-poll` (or at its next start): it routes DeviceLifecycleEvents for a created or
//! deleted device, and the HTTPS input's authentication follows the status.
//!
//! The file is a JSON object of deviceId to identity, in IoT Hub's device identity shape
//! (`deviceId`, `generationId`, `etag`, `status`, `authentication.symmetricKey`); an entry
//! that is just a string (a generation id) is an older registry's enabled device without keys.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use clap::{Args, Subcommand};
use hubroute::twin::{codes, write_atomically, TwinError};
use serde_json::{Map, Value};

#[derive(Args)]
pub struct DeviceArgs {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Register a device with new symmetric keys (32 random bytes each, base64), enabled, and
    /// print its identity (with the keys: keep them).
    Create(OneDevice),
    /// Disable a device: its requests are refused (401) until it is enabled again.
    Disable(OneDevice),
    /// Enable a disabled device.
    Enable(OneDevice),
    /// Remove a device from the registry (its twin goes with it).
    Delete(OneDevice),
    /// List the devices: id, status and whether they have keys.
    List(Registry),
}

#[derive(Args)]
struct Registry {
    /// The device registry file (`run --devices`); created by `create` if missing.
    #[arg(long)]
    devices: PathBuf,
}

#[derive(Args)]
struct OneDevice {
    #[command(flatten)]
    registry: Registry,
    /// The device id.
    id: String,
}

pub fn run(args: DeviceArgs) -> Result<ExitCode, String> {
    match args.command {
        DeviceCommand::Create(d) => create(d),
        DeviceCommand::Disable(d) => set_status(d, "disabled"),
        DeviceCommand::Enable(d) => set_status(d, "enabled"),
        DeviceCommand::Delete(d) => delete(d),
        DeviceCommand::List(r) => list(r),
    }
}

fn load(path: &std::path::Path, create: bool) -> Result<Map<String, Value>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => "{}".into(),
        Err(e) => return Err(format!("--devices {}: {e}", path.display())),
    };
    // The same reading as the router's, so a file this accepts the router accepts.
    hubroute::twin::parse_registry(&text)
        .map_err(|e| format!("--devices {}: {e}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => unreachable!("parse_registry accepted it"),
    }
}

fn save(path: &std::path::Path, registry: &Map<String, Value>) -> Result<(), String> {
    let text = serde_json::to_string_pretty(registry).unwrap_or_default() + "\n";
    write_atomically(path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn no_such(id: &str, path: &std::path::Path) -> String {
    TwinError::new(
        codes::NO_SUCH_DEVICE,
        format!("no device '{id}' in {}", path.display()),
    )
    .to_string()
}

/// IoT Hub's device id rule: up to 128 ASCII letters, digits and `-.%_*?!(),:=@$'+`... minus
/// the characters that would break a file or topic name here (`/`, `\`, `#`).
fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.%_*?!(),:=@$'+;".contains(c))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a device id (1 to 128 ASCII letters, digits and - . % _ * ? ! ( ) , : = @ $ ' + ;)",
            id.escape_debug()
        ))
    }
}

fn random_key() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A generation id as IoT Hub makes them: .NET ticks (100 ns since 0001-01-01) of the
/// creation time, so a device created again under the same id has another one.
fn generation_id() -> String {
    const EPOCH_TICKS: u128 = 621_355_968_000_000_000;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (EPOCH_TICKS + since.as_nanos() / 100).to_string()
}

fn create(d: OneDevice) -> Result<ExitCode, String> {
    check_id(&d.id)?;
    let path = &d.registry.devices;
    let mut registry = load(path, true)?;
    if registry.contains_key(&d.id) {
        return Err(TwinError::new(
            codes::DEVICE_EXISTS,
            format!("device '{}' already exists in {}", d.id, path.display()),
        )
        .to_string());
    }
    let identity = serde_json::json!({
        "deviceId": d.id,
        "generationId": generation_id(),
        "etag": "AAAAAAAAAAE=",
        "status": "enabled",
        "authentication": {
            "type": "sas",
            "symmetricKey": {"primaryKey": random_key()?, "secondaryKey": random_key()?},
        },
    });
    registry.insert(d.id.clone(), identity.clone());
    save(path, &registry)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&identity).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn set_status(d: OneDevice, status: &str) -> Result<ExitCode, String> {
    let path = &d.registry.devices;
    let mut registry = load(path, false)?;
    let entry = registry
        .get_mut(&d.id)
        .ok_or_else(|| no_such(&d.id, path))?;
    if let Value::String(generation) = entry {
        // An older registry's entry: the generation id becomes the identity's.
        *entry = serde_json::json!({"deviceId": d.id, "generationId": generation.clone()});
    }
    if let Value::Object(o) = entry {
        o.insert("status".into(), Value::String(status.into()));
    }
    save(path, &registry)?;
    println!("{} {status}", d.id);
    Ok(ExitCode::SUCCESS)
}

fn delete(d: OneDevice) -> Result<ExitCode, String> {
    let path = &d.registry.devices;
    let mut registry = load(path, false)?;
    if registry.remove(&d.id).is_none() {
        return Err(no_such(&d.id, path));
    }
    save(path, &registry)?;
    println!("{} deleted", d.id);
    Ok(ExitCode::SUCCESS)
}

fn list(r: Registry) -> Result<ExitCode, String> {
    let registry = load(&r.devices, false)?;
    for (id, identity) in &registry {
        let status = identity
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("enabled");
        let keys = identity
            .pointer("/authentication/symmetricKey/primaryKey")
            .is_some_and(|k| k.is_string());
        println!("{id} {status} {}", if keys { "sas" } else { "none" });
    }
    Ok(ExitCode::SUCCESS)
}
