//! Checking a device's SAS token against the registry: what IoT Hub checks before it takes a
//! device's request (scope, identity, status, signature, expiry), and what it then stamps.

use std::time::{SystemTime, UNIX_EPOCH};

use super::sas::{SasError, SasToken};
use super::{codes, Registry, SymmetricKey};
use crate::ingest::Connection;

/// An authenticated sender: who it is, as the router stamps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOk {
    /// The device id.
    pub device_id: String,
    /// The module id, for a module's request.
    pub module_id: Option<String>,
    /// The identity's generation id (the module's, for a registered module).
    pub generation_id: String,
    /// When the token expires (seconds since the Unix epoch).
    pub expiry: u64,
}

impl AuthOk {
    /// The connection the anti-spoofing properties are stamped from: `connectionAuthMethod`
    /// as IoT Hub writes it for a SAS-authenticated device or module.
    pub fn connection(&self) -> Connection {
        let scope = if self.module_id.is_some() {
            "module"
        } else {
            "device"
        };
        Connection {
            device_id: self.device_id.clone(),
            module_id: self.module_id.clone(),
            auth_method: format!(
                r#"{{"scope":"{scope}","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}}"#
            ),
            generation_id: self.generation_id.clone(),
        }
    }
}

/// Why a request's token is refused. All are IoT Hub's 401 `IotHubUnauthorizedAccess`; the
/// codes say which check failed. Messages name the device, never the token or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// E1010: not a SAS token.
    #[error("E1010 {0}")]
    Malformed(SasError),
    /// E1011: expired.
    #[error("E1011 the token for '{device}' expired at {expiry} (Unix seconds)")]
    Expired {
        /// The sender.
        device: String,
        /// The token's `se`.
        expiry: u64,
    },
    /// E1012: signed with none of the identity's keys.
    #[error("E1012 the token's signature does not match a key of '{0}'")]
    BadSignature(String),
    /// E1013: the token is for another hub, device or module.
    #[error("E1013 the token's resource '{resource}' does not cover '{target}'")]
    WrongScope {
        /// The token's `sr`, decoded (not a secret: it names a hub and a device).
        resource: String,
        /// `{host}/devices/{id}[/modules/{m}]` of the request.
        target: String,
    },
    /// E1014: no such device.
    #[error("E1014 device '{0}' is not in the device registry")]
    UnknownDevice(String),
    /// E1015: the device is disabled.
    #[error("E1015 device '{0}' is disabled")]
    Disabled(String),
    /// E1016: the device has no keys.
    #[error("E1016 device '{0}' has no symmetric keys to check a SAS token with")]
    NoKeys(String),
    /// E1017: a shared access policy token.
    #[error(
        "E1017 shared access policy tokens (skn) are not accepted: sign with the device's key"
    )]
    PolicyToken,
}

impl AuthError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) => codes::MALFORMED_TOKEN,
            AuthError::Expired { .. } => codes::EXPIRED_TOKEN,
            AuthError::BadSignature(_) => codes::BAD_SIGNATURE,
            AuthError::WrongScope { .. } => codes::WRONG_SCOPE,
            AuthError::UnknownDevice(_) => codes::UNKNOWN_DEVICE,
            AuthError::Disabled(_) => codes::DISABLED_DEVICE,
            AuthError::NoKeys(_) => codes::NO_KEYS,
            AuthError::PolicyToken => codes::POLICY_TOKEN,
        }
    }
}

impl Registry {
    /// Checks `token` (the `Authorization` header, or a CBS put-token) for a request of
    /// `device_id` (and `module_id`) to the hub `host`, at `now`: it must parse, be a
    /// device-key token (no `skn`), cover `{host}/devices/{device_id}[/modules/{module_id}]`
    /// (host case-insensitive; `devices/{id}` covers its modules), name a registered, enabled
    /// device with keys, be signed with the module's or the device's primary or secondary
    /// key, and not have expired.
    pub fn authenticate(
        &self,
        token: &str,
        device_id: &str,
        module_id: Option<&str>,
        host: &str,
        now: SystemTime,
    ) -> Result<AuthOk, AuthError> {
        let token = SasToken::parse(token).map_err(AuthError::Malformed)?;
        if token.policy.is_some() {
            return Err(AuthError::PolicyToken);
        }
        let scoped_to_module =
            covers(&token.resource, host, device_id, module_id).ok_or_else(|| {
                AuthError::WrongScope {
                    resource: token.resource.clone(),
                    target: match module_id {
                        Some(m) => format!("{host}/devices/{device_id}/modules/{m}"),
                        None => format!("{host}/devices/{device_id}"),
                    },
                }
            })?;
        let device = self
            .get(device_id)
            .ok_or_else(|| AuthError::UnknownDevice(device_id.to_string()))?;
        if !device.is_enabled() {
            return Err(AuthError::Disabled(device_id.to_string()));
        }
        let module = module_id.and_then(|m| device.modules.get(m));
        let mut keys: Vec<&SymmetricKey> = Vec::with_capacity(4);
        if scoped_to_module {
            if let Some(m) = module {
                keys.extend(m.primary_key.iter().chain(m.secondary_key.iter()));
            }
        }
        keys.extend(device.primary_key.iter().chain(device.secondary_key.iter()));
        if keys.is_empty() {
            return Err(AuthError::NoKeys(device_id.to_string()));
        }
        if !keys.iter().any(|k| token.signed_by(k)) {
            return Err(AuthError::BadSignature(device_id.to_string()));
        }
        let now_secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if token.expiry <= now_secs {
            return Err(AuthError::Expired {
                device: device_id.to_string(),
                expiry: token.expiry,
            });
        }
        Ok(AuthOk {
            device_id: device_id.to_string(),
            module_id: module_id.map(str::to_string),
            generation_id: module
                .map(|m| m.generation_id.clone())
                .unwrap_or_else(|| device.generation_id.clone()),
            expiry: token.expiry,
        })
    }
}

/// Whether the decoded resource URI covers the target: `Some(true)` when it names the module
/// itself, `Some(false)` when it names the device (covering its modules), `None` when not.
fn covers(resource: &str, host: &str, device_id: &str, module_id: Option<&str>) -> Option<bool> {
    let resource = resource
        .strip_prefix("https://")
        .or_else(|| resource.strip_prefix("amqps://"))
        .unwrap_or(resource);
    let (res_host, path) = resource.split_once('/')?;
    if !res_host.eq_ignore_ascii_case(host) {
        return None;
    }
    let path = path.trim_end_matches('/');
    let device_path = format!("devices/{device_id}");
    if path == device_path {
        return Some(false);
    }
    let m = module_id?;
    (path == format!("{device_path}/modules/{m}")).then_some(true)
}
