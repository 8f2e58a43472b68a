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
///
/// A twin that cannot be used makes every `$twin` value undefined, which quietly turns a route
/// off; so each one is also kept as a [`TwinProblem`] ([`DirTwinStore::problems`]) for the CLI to
/// warn about, once per device.
pub struct DirTwinStore {
    dir: PathBuf,
    cache: Mutex<HashMap<String, Option<Arc<JsonDoc>>>>,
    /// The first problems, and how many there were.
    problems: Mutex<(Vec<TwinProblem>, usize)>,
}

/// How many [`TwinProblem`]s a [`DirTwinStore`] keeps: a fleet without twins must not grow
/// memory, or a log, by one line per device.
pub const KEPT_PROBLEMS: usize = 100;

/// Why a twin could not be used. Each has a stable warning code ([`TwinProblem::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TwinProblem {
    /// W0801: the twin directory does not exist (or is not a directory).
    #[error("twin directory {} does not exist; every $twin value is undefined", .0.display())]
    NoDirectory(PathBuf),
    /// W0802: no twin file for a device (or module) a message came from.
    #[error("no twin for device '{device}' ({} does not exist); its $twin values are undefined", .path.display())]
    Missing {
        /// `deviceId`, or `deviceId/moduleId`.
        device: String,
        /// The file looked for.
        path: PathBuf,
    },
    /// W0803: a twin file that cannot be read or is not JSON.
    #[error("twin file {} cannot be used ({reason}); its $twin values are undefined", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl TwinProblem {
    /// The stable warning code.
    pub fn code(&self) -> &'static str {
        match self {
            TwinProblem::NoDirectory(_) => "W0801",
            TwinProblem::Missing { .. } => "W0802",
            TwinProblem::Malformed { .. } => "W0803",
        }
    }
}

impl DirTwinStore {
    /// A store over `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirTwinStore {
            dir: dir.into(),
            cache: Mutex::new(HashMap::new()),
            problems: Mutex::new((Vec::new(), 0)),
        }
    }

    /// [`TwinProblem::NoDirectory`] when the directory is missing, checked now (a store is made
    /// before any message needs a twin, so this is the moment to say the path is wrong).
    pub fn directory_problem(&self) -> Option<TwinProblem> {
        (!self.dir.is_dir()).then(|| TwinProblem::NoDirectory(self.dir.clone()))
    }

    /// The twins looked up so far that could not be used, once each, in the order met (the
    /// first [`KEPT_PROBLEMS`]; [`DirTwinStore::problem_count`] counts them all).
    pub fn problems(&self) -> Vec<TwinProblem> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    fn load(&self, rel: &str) -> Option<Arc<JsonDoc>> {
        // Device ids may not contain path separators in IoT Hub; refuse them here too.
        if rel
            .split('/')
            .any(|p| p.is_empty() || p == ".." || p.contains('\\'))
        {
            return None;
        }
        let path = self.dir.join(format!("{rel}.json"));
        let problem = match std::fs::read_to_string(&path) {
            Ok(text) => match JsonDoc::parse(&text) {
                Ok(doc) => return Some(Arc::new(doc)),
                Err(e) => TwinProblem::Malformed {
                    path,
                    reason: format!("not JSON: {e}"),
                },
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.dir.is_dir() {
                    // Said once, by directory_problem; not again per device.
                    return None;
                }
                TwinProblem::Missing {
                    device: rel.to_string(),
                    path,
                }
            }
            Err(e) => TwinProblem::Malformed {
                path,
                reason: e.to_string(),
            },
        };
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        problems.1 += 1;
        if problems.0.len() < KEPT_PROBLEMS {
            problems.0.push(problem);
        }
        None
    }

    /// How many twins could not be used so far; [`DirTwinStore::problems`] keeps the first
    /// [`KEPT_PROBLEMS`] of them.
    pub fn problem_count(&self) -> usize {
        self.problems.lock().unwrap_or_else(|p| p.into_inner()).1
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

/// One twin for every message: the `twin` of IoT Hub's test-route API requests, which tests a
/// route against a given twin whatever device the message names.
pub struct FixedTwin(JsonDoc);

impl FixedTwin {
    /// The twin in `text` (`{"tags": {...}, "properties": {"desired": {...}, "reported": {...}}}`).
    pub fn parse(text: &str) -> Result<FixedTwin, String> {
        JsonDoc::parse(text)
            .map(FixedTwin)
            .map_err(|e| format!("the twin is not JSON: {e}"))
    }
}

impl TwinLookup for FixedTwin {
    fn twin_value<'t>(&'t self, _message: &Message, path: &BodyPath) -> Value<'t> {
        match selected_value(self.0.select(path)) {
            Value::Missing => Value::Undefined,
            v => v.into_owned(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_kept_once_each_with_codes() {
        let dir = std::env::temp_dir().join(format!("hubroute-twins-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let missing_dir = DirTwinStore::new(&dir);
        assert_eq!(
            missing_dir.directory_problem().map(|p| p.code()),
            Some("W0801")
        );
        assert!(missing_dir.twin("d1", None).is_none());
        assert!(
            missing_dir.problems().is_empty(),
            "said once, by directory_problem"
        );

        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("good.json"), r#"{"tags": {"a": 1}}"#).unwrap();
        std::fs::write(dir.join("bad.json"), "{tags").unwrap();
        let store = DirTwinStore::new(&dir);
        assert!(store.directory_problem().is_none());
        assert!(store.twin("good", None).is_some());
        for _ in 0..2 {
            assert!(store.twin("bad", None).is_none());
            assert!(store.twin("nobody", Some("m")).is_none());
        }
        let codes: Vec<_> = store.problems().iter().map(TwinProblem::code).collect();
        assert_eq!(codes, ["W0803", "W0802"]);
        assert_eq!(store.problem_count(), 2);
        assert!(store.problems()[1].to_string().contains("'nobody/m'"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
