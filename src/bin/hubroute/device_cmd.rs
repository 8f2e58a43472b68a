//! `hubroute device create|disable|enable|delete|list`: the device registry file (`run
//! --devices`, [`hubroute::registry`]), edited atomically. A router running with that file
//! sees each change within its `--twin-poll` (or at its next start): it routes
//! DeviceLifecycleEvents for a created or deleted device.

use crate::output::outln;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use clap::{Args, Subcommand};
use hubroute::registry::{Device, DeviceStatus, Registry, SymmetricKey};
use hubroute::twin::{codes, TwinError};

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
    /// List the devices: id, status and whether they have keys (sas or none).
    List(RegistryFile),
}

#[derive(Args)]
struct RegistryFile {
    /// The device registry file (`run --devices`); created by `create` if missing.
    #[arg(long)]
    devices: PathBuf,
}

#[derive(Args)]
struct OneDevice {
    #[command(flatten)]
    registry: RegistryFile,
    /// The device id.
    id: String,
}

pub fn run(args: DeviceArgs) -> Result<ExitCode, String> {
    match args.command {
        DeviceCommand::Create(d) => create(d),
        DeviceCommand::Disable(d) => set_status(d, DeviceStatus::Disabled),
        DeviceCommand::Enable(d) => set_status(d, DeviceStatus::Enabled),
        DeviceCommand::Delete(d) => delete(d),
        DeviceCommand::List(r) => list(r),
    }
}

fn load(path: &Path, create: bool) -> Result<Registry, String> {
    if create && !path.exists() {
        return Ok(Registry::new());
    }
    Registry::load(path).map_err(|e| format!("--devices: {e}"))
}

fn save(path: &Path, registry: &Registry) -> Result<(), String> {
    registry.save(path).map_err(|e| format!("--devices: {e}"))
}

fn no_such(id: &str, path: &Path) -> String {
    TwinError::new(
        codes::NO_SUCH_DEVICE,
        format!("no device '{id}' in {}", path.display()),
    )
    .to_string()
}

/// IoT Hub's device id rule: up to 128 ASCII letters, digits and `- . % _ * ? ! ( ) , : = @ $
/// ' + ;` (`#` and `/` left out: they would break MQTT topics and file names here).
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

fn random_key() -> Result<SymmetricKey, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    SymmetricKey::from_base64(&base64::engine::general_purpose::STANDARD.encode(bytes))
        .map_err(|()| "a generated key is not base64".to_string())
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
    if registry.get(&d.id).is_some() {
        return Err(TwinError::new(
            codes::DEVICE_EXISTS,
            format!("device '{}' already exists in {}", d.id, path.display()),
        )
        .to_string());
    }
    let mut device = Device::new(d.id.clone(), generation_id());
    device.etag = Some("AAAAAAAAAAE=".into());
    device.primary_key = Some(random_key()?);
    device.secondary_key = Some(random_key()?);
    let identity = device.to_json();
    registry.insert(device);
    save(path, &registry)?;
    outln!(
        "{}",
        serde_json::to_string_pretty(&identity).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

fn set_status(d: OneDevice, status: DeviceStatus) -> Result<ExitCode, String> {
    let path = &d.registry.devices;
    let mut registry = load(path, false)?;
    if !registry.set_status(&d.id, status, None) {
        return Err(no_such(&d.id, path));
    }
    save(path, &registry)?;
    outln!("{} {}", d.id, status.as_str());
    Ok(ExitCode::SUCCESS)
}

fn delete(d: OneDevice) -> Result<ExitCode, String> {
    let path = &d.registry.devices;
    let mut registry = load(path, false)?;
    if registry.remove(&d.id).is_none() {
        return Err(no_such(&d.id, path));
    }
    save(path, &registry)?;
    outln!("{} deleted", d.id);
    Ok(ExitCode::SUCCESS)
}

fn list(r: RegistryFile) -> Result<ExitCode, String> {
    let registry = load(&r.devices, false)?;
    for device in registry.iter() {
        let keys = if device.primary_key.is_some() || device.secondary_key.is_some() {
            "sas"
        } else {
            "none"
        };
        outln!("{} {} {keys}", device.id, device.status.as_str());
    }
    Ok(ExitCode::SUCCESS)
}
