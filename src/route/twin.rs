//! Device twins for `$twin` in conditions and enrichments: a store trait and a store backed
//! by a directory of twin documents.

use crate::body::{BodyPath, JsonDoc};
use crate::eval::{context::selected_value, TwinLookup, Value};
use crate::message::Message;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where twins come from. A twin document has the shape `az iot hub device-twin show` prints:
/// `{"tags": {...}, "properties": {"desired": {...}, "reported": {...}}, ...}`.
pub trait TwinStore: Send + Sync {
    /// The twin of a device, or of a module when `module_id` is given.
    fn twin(&self, device_id: &str, module_id: Option<&str>) -> Option<Arc<JsonDoc>>;
}

/// Twins read from `<dir>/<deviceId>.json`, and for modules `<dir>/<deviceId>/<moduleId>.json`;
/// read once, then cached (including absence).
pub struct DirTwinStore {
    dir: PathBuf,
    cache: Mutex<HashMap<String, Option<Arc<JsonDoc>>>>,
}

impl DirTwinStore {
    /// A store over `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirTwinStore {
            dir: dir.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn load(&self, rel: &str) -> Option<Arc<JsonDoc>> {
        // Device ids may not contain path separators in IoT Hub; refuse them here too.
        if rel
            .split('/')
            .any(|p| p.is_empty() || p == ".." || p.contains('\\'))
        {
            return None;
        }
        let text = std::fs::read_to_string(self.dir.join(format!("{rel}.json"))).ok()?;
        JsonDoc::parse(&text).ok().map(Arc::new)
    }
}

impl TwinStore for DirTwinStore {
    fn twin(&self, device_id: &str, module_id: Option<&str>) -> Option<Arc<JsonDoc>> {
        let rel = match module_id {
            Some(m) => format!("{device_id}/{m}"),
            None => device_id.to_string(),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(rel.clone())
            .or_insert_with(|| self.load(&rel))
            .clone()
    }
}

/// Reads `$twin` values for a message from a store, by the message's
/// `connectionDeviceId` / `connectionModuleId` (stamped by the hub, never by the device).
pub struct TwinResolver<'s> {
    store: &'s dyn TwinStore,
}

impl<'s> TwinResolver<'s> {
    /// A resolver over `store`.
    pub fn new(store: &'s dyn TwinStore) -> Self {
        TwinResolver { store }
    }
}

impl TwinLookup for TwinResolver<'_> {
    /// A primitive twin value; undefined for no twin, an absent path or an object (IoT Hub's
    /// query language treats a missing property as undefined).
    fn twin_value<'t>(&'t self, message: &Message, path: &BodyPath) -> Value<'t> {
        let sys = &message.system_properties;
        let Some(Some(device)) = sys.get("connectionDeviceId") else {
            return Value::Undefined;
        };
        let module = sys.get("connectionModuleId").flatten();
        let Some(twin) = self.store.twin(device, module) else {
            return Value::Undefined;
        };
        match selected_value(twin.select(path)) {
            Value::Missing => Value::Undefined,
            v => v.into_owned(),
        }
    }
}
