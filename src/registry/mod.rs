//! The device registry: which devices may send, with which keys, and whether they are enabled,
//! as IoT Hub's identity registry holds it, read from and written to the `--devices` file.
//!
//! The file is a JSON object from device id to identity. An identity is either a string, the
//! old form (the generation id; enabled, no keys), or an object in IoT Hub's device identity
//! shape (a subset):
//!
//! ```json
//! {"d1": {"deviceId": "d1", "generationId": "638000000000000001", "etag": "AAAAAAAAAAE=",
//!         "status": "enabled", "statusReason": null,
//!         "authentication": {"type": "sas",
//!                            "symmetricKey": {"primaryKey": "…", "secondaryKey": "…"}},
//!         "modules": {"m1": {"generationId": "…", "authentication": {…}}}},
//!  "legacy": "6369"}
//! ```
//!
//! `modules` is ours (IoT Hub keeps module identities apart): a module's own keys sign tokens
//! for `{host}/devices/{d}/modules/{m}`; the device's keys sign tokens for the whole device,
//! its modules included. [`Registry::authenticate`] checks a SAS token ([`sas`]) for a device
//! (or module): signature, expiry, scope, status. Errors carry stable codes ([`codes`]) and
//! never quote a key or a token.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use hubroute::registry::{sas, Registry};
//! let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
//! let registry = Registry::parse(&format!(r#"{{"d1": {{"status": "enabled",
//!     "authentication": {{"symmetricKey": {{"primaryKey": "{key}"}}}}}}}}"#)).unwrap();
//! let token = sas::mint("hub.azure-devices.net/devices/d1", key, 2_000_000_000, None).unwrap();
//! let now = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
//! let ok = registry.authenticate(&token, "d1", None, "HUB.azure-devices.net", now).unwrap();
//! assert_eq!(ok.device_id, "d1");
//! assert_eq!(registry.authenticate(&token, "d2", None, "hub.azure-devices.net", now)
//!     .unwrap_err().code(), "E1013");
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};

mod auth;
pub mod sas;

pub use auth::{AuthError, AuthOk};

/// Stable codes of registry and authentication errors (E10xx). Codes are never reused.
pub mod codes {
    /// The registry file cannot be read or written.
    pub const FILE: &str = "E1001";
    /// The registry file is not a JSON object of device identities.
    pub const MALFORMED: &str = "E1002";
    /// A symmetric key in the registry is not base64.
    pub const BAD_KEY: &str = "E1003";
    /// An identity's `deviceId` differs from the id it is filed under.
    pub const ID_MISMATCH: &str = "E1004";
    /// The request's token is not an IoT Hub SAS token.
    pub const MALFORMED_TOKEN: &str = "E1010";
    /// The token has expired.
    pub const EXPIRED_TOKEN: &str = "E1011";
    /// The token's signature was made with none of the identity's keys.
    pub const BAD_SIGNATURE: &str = "E1012";
    /// The token is for another hub, device or module than the one sending.
    pub const WRONG_SCOPE: &str = "E1013";
    /// The device (or module) is not in the registry.
    pub const UNKNOWN_DEVICE: &str = "E1014";
    /// The device is disabled.
    pub const DISABLED_DEVICE: &str = "E1015";
    /// The device has no symmetric keys, so it cannot authenticate with a SAS token.
    pub const NO_KEYS: &str = "E1016";
    /// A shared access policy token (`skn`): the registry holds no hub policies.
    pub const POLICY_TOKEN: &str = "E1017";
}

/// Why a registry could not be loaded or saved. Messages name the file and the device, never
/// a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// E1001: reading or writing the file failed.
    #[error("E1001 {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// E1002: not the registry's JSON shape.
    #[error("E1002 {0}")]
    Malformed(String),
    /// E1003: a key that is not base64.
    #[error("E1003 device '{device}': {which} is not a base64 symmetric key")]
    BadKey {
        /// The device (or `device/module`).
        device: String,
        /// `primaryKey` or `secondaryKey`.
        which: &'static str,
    },
    /// E1004: `deviceId` differs from the id the identity is filed under.
    #[error("E1004 identity filed under '{key}' says deviceId '{device_id}'")]
    IdMismatch {
        /// The object key.
        key: String,
        /// The identity's `deviceId`.
        device_id: String,
    },
}

impl RegistryError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::File { .. } => codes::FILE,
            RegistryError::Malformed(_) => codes::MALFORMED,
            RegistryError::BadKey { .. } => codes::BAD_KEY,
            RegistryError::IdMismatch { .. } => codes::ID_MISMATCH,
        }
    }
}

/// A device's symmetric key: the base64 text (as the file holds it) and its bytes. `Debug`
/// does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SymmetricKey {
    text: String,
    bytes: Vec<u8>,
}

impl SymmetricKey {
    /// Decodes a base64 key; `Err(())` when it is not base64 or is empty.
    #[allow(clippy::result_unit_err)]
    pub fn from_base64(text: &str) -> Result<SymmetricKey, ()> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim().as_bytes())
            .map_err(|_| ())?;
        if bytes.is_empty() {
            return Err(());
        }
        Ok(SymmetricKey {
            text: text.trim().to_string(),
            bytes,
        })
    }

    /// The key's bytes (the HMAC key).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The key as base64, as IoT Hub shows it.
    pub fn to_base64(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(***)")
    }
}

/// Whether a device may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceStatus {
    /// It may (IoT Hub's `"enabled"`).
    #[default]
    Enabled,
    /// Its requests are refused (`"disabled"`).
    Disabled,
}

impl DeviceStatus {
    /// IoT Hub's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Enabled => "enabled",
            DeviceStatus::Disabled => "disabled",
        }
    }
}

/// A module identity of a device (see the module docs: ours, not IoT Hub's registry shape).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Module {
    /// `generationId`.
    pub generation_id: String,
    /// The module's primary key, if it has its own.
    pub primary_key: Option<SymmetricKey>,
    /// The module's secondary key.
    pub secondary_key: Option<SymmetricKey>,
}

/// One device identity.
#[derive(Debug, Clone, Eq)]
pub struct Device {
    /// The device id (the key it is filed under).
    pub id: String,
    /// `generationId`, stamped as `connectionDeviceGenerationId` ("0" when the file has none).
    pub generation_id: String,
    /// `etag`, kept as given (IoT Hub's identity version; lifecycle events carry it).
    pub etag: Option<String>,
    /// `status`.
    pub status: DeviceStatus,
    /// `statusReason`.
    pub status_reason: Option<String>,
    /// `authentication.symmetricKey.primaryKey`.
    pub primary_key: Option<SymmetricKey>,
    /// `authentication.symmetricKey.secondaryKey`.
    pub secondary_key: Option<SymmetricKey>,
    /// Module identities by module id.
    pub modules: BTreeMap<String, Module>,
    /// Whether it came from the old string form, so [`Registry::save`] keeps that form while
    /// nothing else is set.
    legacy: bool,
}

impl PartialEq for Device {
    /// Equal identities, whichever form of the file they were read from.
    fn eq(&self, other: &Device) -> bool {
        self.id == other.id
            && self.generation_id == other.generation_id
            && self.etag == other.etag
            && self.status == other.status
            && self.status_reason == other.status_reason
            && self.primary_key == other.primary_key
            && self.secondary_key == other.secondary_key
            && self.modules == other.modules
    }
}

impl Device {
    /// An enabled device with this id and generation and no keys.
    pub fn new(id: impl Into<String>, generation_id: impl Into<String>) -> Device {
        Device {
            id: id.into(),
            generation_id: generation_id.into(),
            etag: None,
            status: DeviceStatus::Enabled,
            status_reason: None,
            primary_key: None,
            secondary_key: None,
            modules: BTreeMap::new(),
            legacy: false,
        }
    }

    /// Whether the device may connect.
    pub fn is_enabled(&self) -> bool {
        self.status == DeviceStatus::Enabled
    }

    /// The identity in IoT Hub's device shape (what the file holds; lifecycle events carry it).
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("deviceId".into(), Value::from(self.id.as_str()));
        obj.insert(
            "generationId".into(),
            Value::from(self.generation_id.as_str()),
        );
        if let Some(e) = &self.etag {
            obj.insert("etag".into(), Value::from(e.as_str()));
        }
        obj.insert("status".into(), Value::from(self.status.as_str()));
        obj.insert(
            "statusReason".into(),
            self.status_reason
                .as_deref()
                .map(Value::from)
                .unwrap_or(Value::Null),
        );
        obj.insert(
            "authentication".into(),
            auth_json(&self.primary_key, &self.secondary_key),
        );
        if !self.modules.is_empty() {
            let modules = self
                .modules
                .iter()
                .map(|(id, m)| {
                    let mut mo = Map::new();
                    mo.insert("generationId".into(), Value::from(m.generation_id.as_str()));
                    mo.insert(
                        "authentication".into(),
                        auth_json(&m.primary_key, &m.secondary_key),
                    );
                    (id.clone(), Value::Object(mo))
                })
                .collect();
            obj.insert("modules".into(), Value::Object(modules));
        }
        Value::Object(obj)
    }

    fn is_plain(&self) -> bool {
        self.legacy
            && self.etag.is_none()
            && self.status == DeviceStatus::Enabled
            && self.status_reason.is_none()
            && self.primary_key.is_none()
            && self.secondary_key.is_none()
            && self.modules.is_empty()
    }
}

fn auth_json(primary: &Option<SymmetricKey>, secondary: &Option<SymmetricKey>) -> Value {
    let key = |k: &Option<SymmetricKey>| {
        k.as_ref()
            .map(|k| Value::from(k.to_base64()))
            .unwrap_or(Value::Null)
    };
    serde_json::json!({
        "type": "sas",
        "symmetricKey": {"primaryKey": key(primary), "secondaryKey": key(secondary)},
    })
}

/// The registry: devices by id, in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    devices: BTreeMap<String, Device>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Reads a registry file; errors name the file.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Registry::parse(&text).map_err(|e| match e {
            RegistryError::Malformed(m) => {
                RegistryError::Malformed(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// Parses a registry file's text.
    pub fn parse(text: &str) -> Result<Registry, RegistryError> {
        let root: Value = serde_json::from_str(text).map_err(|e| {
            RegistryError::Malformed(format!(
                "not JSON at line {}, column {}: expected {{\"deviceId\": identity, …}}",
                e.line(),
                e.column()
            ))
        })?;
        let Value::Object(entries) = root else {
            return Err(RegistryError::Malformed(
                "expected a JSON object {\"deviceId\": identity, …}".into(),
            ));
        };
        let mut devices = BTreeMap::new();
        for (id, identity) in entries {
            let device = parse_device(&id, &identity)?;
            devices.insert(id, device);
        }
        Ok(Registry { devices })
    }

    /// Writes the registry to `path` atomically (a temporary file beside it, synced, then
    /// renamed over it), so a reader never sees half a file and a crash leaves the old one.
    pub fn save(&self, path: &Path) -> Result<(), RegistryError> {
        use std::io::Write;
        let fail = |e: std::io::Error| RegistryError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut text = self.to_json_text();
        text.push('\n');
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "devices.json".into());
        let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
    }

    /// The file's text (pretty JSON); old-form devices that gained nothing stay strings.
    pub fn to_json_text(&self) -> String {
        let map: Map<String, Value> = self
            .devices
            .iter()
            .map(|(id, d)| {
                let v = if d.is_plain() {
                    Value::from(d.generation_id.as_str())
                } else {
                    d.to_json()
                };
                (id.clone(), v)
            })
            .collect();
        serde_json::to_string_pretty(&Value::Object(map)).unwrap_or_default()
    }

    /// The device with this id.
    pub fn get(&self, id: &str) -> Option<&Device> {
        self.devices.get(id)
    }

    /// The device with this id, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Device> {
        self.devices.get_mut(id)
    }

    /// Adds or replaces a device; the replaced one is returned.
    pub fn insert(&mut self, device: Device) -> Option<Device> {
        self.devices.insert(device.id.clone(), device)
    }

    /// Removes a device.
    pub fn remove(&mut self, id: &str) -> Option<Device> {
        self.devices.remove(id)
    }

    /// Sets a device's status (and reason); `false` when there is no such device.
    pub fn set_status(&mut self, id: &str, status: DeviceStatus, reason: Option<String>) -> bool {
        match self.devices.get_mut(id) {
            Some(d) => {
                d.status = status;
                d.status_reason = reason;
                true
            }
            None => false,
        }
    }

    /// The devices in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }

    /// How many devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

/// A registry in the old form, from `(deviceId, generationId)` pairs: enabled devices without
/// keys (what embedders built as a map before the registry had keys).
impl FromIterator<(String, String)> for Registry {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Registry {
        let devices = pairs
            .into_iter()
            .map(|(id, generation)| {
                let mut d = Device::new(id.clone(), generation);
                d.legacy = true;
                (id, d)
            })
            .collect();
        Registry { devices }
    }
}

impl<const N: usize> From<[(String, String); N]> for Registry {
    fn from(pairs: [(String, String); N]) -> Registry {
        pairs.into_iter().collect()
    }
}

impl FromIterator<Device> for Registry {
    fn from_iter<I: IntoIterator<Item = Device>>(devices: I) -> Registry {
        Registry {
            devices: devices.into_iter().map(|d| (d.id.clone(), d)).collect(),
        }
    }
}

impl<'a> IntoIterator for &'a Registry {
    type Item = &'a Device;
    type IntoIter = std::collections::btree_map::Values<'a, String, Device>;
    fn into_iter(self) -> Self::IntoIter {
        self.devices.values()
    }
}

fn parse_device(id: &str, identity: &Value) -> Result<Device, RegistryError> {
    let malformed = |what: &str| RegistryError::Malformed(format!("device '{id}': {what}"));
    let obj = match identity {
        Value::String(generation) => {
            let mut d = Device::new(id, generation.as_str());
            d.legacy = true;
            return Ok(d);
        }
        Value::Object(obj) => obj,
        _ => {
            return Err(malformed(
                "expected a generation id (string) or a device identity (object)",
            ))
        }
    };
    if let Some(v) = obj.get("deviceId") {
        let device_id = v
            .as_str()
            .ok_or_else(|| malformed("'deviceId' is not a string"))?;
        if device_id != id {
            return Err(RegistryError::IdMismatch {
                key: id.to_string(),
                device_id: device_id.to_string(),
            });
        }
    }
    let mut device = Device::new(
        id,
        optional_string(obj, "generationId", &malformed)?
            .unwrap_or_else(|| crate::ingest::Connection::UNREGISTERED_GENERATION.to_string()),
    );
    device.etag = optional_string(obj, "etag", &malformed)?;
    device.status_reason = optional_string(obj, "statusReason", &malformed)?;
    device.status = match optional_string(obj, "status", &malformed)?.as_deref() {
        None => DeviceStatus::Enabled,
        Some(s) if s.eq_ignore_ascii_case("enabled") => DeviceStatus::Enabled,
        Some(s) if s.eq_ignore_ascii_case("disabled") => DeviceStatus::Disabled,
        Some(_) => return Err(malformed("'status' must be \"enabled\" or \"disabled\"")),
    };
    (device.primary_key, device.secondary_key) = parse_keys(id, obj, &malformed)?;
    match obj.get("modules") {
        None | Some(Value::Null) => {}
        Some(Value::Object(modules)) => {
            for (mid, m) in modules {
                let label = format!("{id}/{mid}");
                let mmalformed =
                    |what: &str| RegistryError::Malformed(format!("module '{label}': {what}"));
                let Value::Object(mobj) = m else {
                    return Err(mmalformed("expected a module identity (object)"));
                };
                let (primary_key, secondary_key) = parse_keys(&label, mobj, &mmalformed)?;
                let module = Module {
                    generation_id: optional_string(mobj, "generationId", &mmalformed)?
                        .unwrap_or_else(|| {
                            crate::ingest::Connection::UNREGISTERED_GENERATION.to_string()
                        }),
                    primary_key,
                    secondary_key,
                };
                device.modules.insert(mid.clone(), module);
            }
        }
        Some(_) => return Err(malformed("'modules' must be an object")),
    }
    Ok(device)
}

fn optional_string(
    obj: &Map<String, Value>,
    name: &str,
    malformed: &dyn Fn(&str) -> RegistryError,
) -> Result<Option<String>, RegistryError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(malformed(&format!("'{name}' is not a string"))),
    }
}

type KeyPair = (Option<SymmetricKey>, Option<SymmetricKey>);

fn parse_keys(
    label: &str,
    obj: &Map<String, Value>,
    malformed: &dyn Fn(&str) -> RegistryError,
) -> Result<KeyPair, RegistryError> {
    let auth = match obj.get("authentication") {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::Object(a)) => a,
        Some(_) => return Err(malformed("'authentication' must be an object")),
    };
    if let Some(t) = optional_string(auth, "type", malformed)? {
        if !t.eq_ignore_ascii_case("sas") && !t.eq_ignore_ascii_case("none") {
            return Err(malformed(
                "authentication 'type' must be \"sas\" (symmetric keys; X.509 is not supported)",
            ));
        }
    }
    let keys = match auth.get("symmetricKey") {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::Object(k)) => k,
        Some(_) => return Err(malformed("'symmetricKey' must be an object")),
    };
    let key = |which: &'static str| -> Result<Option<SymmetricKey>, RegistryError> {
        match optional_string(keys, which, malformed)? {
            None => Ok(None),
            Some(t) => {
                SymmetricKey::from_base64(&t)
                    .map(Some)
                    .map_err(|()| RegistryError::BadKey {
                        device: label.to_string(),
                        which,
                    })
            }
        }
    };
    Ok((key("primaryKey")?, key("secondaryKey")?))
}

/// The registry file's modification time, `None` when it cannot be read.
pub fn modified(file: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

/// Reads `file` again into `registry` when its modification time is no longer `seen` (then
/// updated), so a running input sees devices added, disabled or deleted (`hubroute device`, an
/// edit) without a restart. A file that no longer parses is reported and the registry in memory
/// kept. The devices' inputs (HTTPS, AMQP) call this on their own schedules.
pub fn reload_if_modified(
    file: &Path,
    seen: &mut Option<std::time::SystemTime>,
    registry: &std::sync::RwLock<Registry>,
) {
    let now = modified(file);
    if now.is_none() || now == *seen {
        return;
    }
    *seen = now;
    match Registry::load(file) {
        Ok(r) => {
            tracing::info!(
                "device registry {} changed: {} devices",
                file.display(),
                r.len()
            );
            *registry.write().unwrap_or_else(|p| p.into_inner()) = r;
        }
        Err(e) => tracing::warn!("device registry changed but not taken, the old one stays: {e}"),
    }
}

#[cfg(test)]
mod tests;
