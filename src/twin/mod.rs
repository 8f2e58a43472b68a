//! Twins that change: the router's durable device twins ([`LiveTwins`]), reported-property
//! patches with IoT Hub's merge semantics and versions ([`patch`]), and the notifications the
//! hub routes when a twin changes or a device is created or deleted ([`events`]).
//!
//! See [`live`] for where twins are kept and the order of notification and commit that keeps a
//! crash from losing either.

pub mod events;
#[cfg(feature = "store")]
pub mod live;
pub mod mqtt_topic;
pub mod patch;

#[cfg(feature = "store")]
pub use live::{
    parse_registry, read_registry, scan_twin_dir, write_atomically, DeviceRecord, LiveTwins,
    Notify, NotifyError, SyncReport,
};
pub use patch::Section;

/// Stable codes of twin changes (E12xx).
pub mod codes {
    /// A twin patch is not JSON, or not a JSON object (HTTP 400).
    pub const PATCH_NOT_OBJECT: &str = "E1201";
    /// A property name IoT Hub refuses: empty, starting with `$`, or with `.`, a space or a
    /// control character (HTTP 400).
    pub const PATCH_BAD_NAME: &str = "E1202";
    /// A patch larger than the section's limit (8 KB tags, 32 KB desired or reported; HTTP 400).
    pub const PATCH_TOO_LARGE: &str = "E1203";
    /// A patch nesting objects deeper than 10 levels (HTTP 400).
    pub const PATCH_TOO_DEEP: &str = "E1204";
    /// The change's notification was not accepted by the pipeline (shutting down, or
    /// rejected); the twin was not changed (HTTP 503).
    pub const NOT_ACCEPTED: &str = "E1205";
    /// The twin store failed (or is in use by another process).
    pub const STORE: &str = "E1206";
    /// A twin file that is not a JSON object (ignored until it is).
    pub const BAD_TWIN_FILE: &str = "E1207";
    /// The device registry file cannot be read or is not a registry.
    pub const BAD_REGISTRY: &str = "E1208";
    /// A device or twin that does not exist (`hubroute twin show`, `hubroute device`).
    pub const NO_SUCH_DEVICE: &str = "E1209";
    /// A device that already exists (`hubroute device create`).
    pub const DEVICE_EXISTS: &str = "E1210";
}

/// Why a twin change failed: a stable code ([`codes`]) and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{code}] {message}")]
pub struct TwinError {
    /// The stable code.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

impl TwinError {
    /// An error with `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        TwinError {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status IoT Hub answers this with: 400 for a bad patch, 404 for an unknown
    /// device, 503 when it could not be taken now, 500 otherwise.
    pub fn http_status(&self) -> u16 {
        match self.code {
            codes::PATCH_NOT_OBJECT
            | codes::PATCH_BAD_NAME
            | codes::PATCH_TOO_LARGE
            | codes::PATCH_TOO_DEEP => 400,
            codes::NO_SUCH_DEVICE => 404,
            codes::DEVICE_EXISTS => 409,
            codes::NOT_ACCEPTED => 503,
            _ => 500,
        }
    }
}
