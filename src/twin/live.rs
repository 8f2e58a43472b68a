//! The router's live twins: every device's (and module's) twin, kept durably in
//! `<store>/twins.redb` beside the pipeline's store, read by `$twin` conditions and enrichments
//! from memory, and changed three ways:
//!
//! * a device reports properties ([`LiveTwins::apply_reported`]);
//! * the twin directory's files change (tags and desired properties; [`LiveTwins::sync_files`]);
//! * the device registry file changes (devices created or deleted; [`LiveTwins::sync_registry`]).
//!
//! Each change routes IoT Hub's notification (`TwinChangeEvents`, `DeviceLifecycleEvents`)
//! through the pipeline. **Order, for crashes:** the notification is durably accepted by the
//! pipeline first, the twin is committed second, and only then is the change reported done
//! (to the device, or as synced). A crash between the two loses neither: the change was not
//! acknowledged (a device sends its patch again; a file or registry difference is found again
//! at the next start), so it is applied and notified again, with the same version number — a
//! duplicate notification, never a missing one (IoT Hub's routing is at least once too).
//!
//! Reads take a read lock on a map of `Arc`ed documents for as long as it takes to clone one
//! `Arc` (no allocation); changes are serialised by one mutex, which is fine for state
//! changes that are rare next to telemetry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use redb::{Database, ReadableTable, TableDefinition};
use serde_json::{Map, Value};

use super::events::{self, Operation};
use super::patch::{self, Section};
use super::{codes, TwinError};
use crate::body::{BodyPath, JsonDoc};
use crate::eval::{context::selected_value, TwinLookup, Value as EvalValue};
use crate::lock_file::{lock_exclusive, LockError};
use crate::message::Message;
use crate::route::DirTwinStore;
use crate::sink::format_enqueued_time;

/// Where twin changes are announced: a notification (a `TwinChangeEvents` or
/// `DeviceLifecycleEvents` message) routed, its `$twin` read from `twin`, and durably accepted
/// before the change itself is committed. The router's `Pipeline` is one (in
/// `crate::pipeline`); the twins name only this trait, so that the pipeline may use them and
/// not the other way round.
pub trait Notify {
    /// Routes `message` (enqueued at `at`) and returns once the store has it.
    fn route_and_accept(
        &self,
        message: &crate::message::Message,
        twin: &dyn crate::eval::TwinLookup,
        at: SystemTime,
    ) -> Result<(), NotifyError>;
}

/// Why a notification did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyError {
    /// The message was refused (IoT Hub's rules): the first violation's code, and all of them.
    Rejected {
        /// The first violation's code.
        code: &'static str,
        /// Every violation, `[code] text; …`.
        reason: String,
    },
    /// The store did not take it (closed, full or failing).
    NotAccepted(String),
}

/// `deviceId` or `deviceId/moduleId` → the twin's JSON.
const TWINS: TableDefinition<&str, &str> = TableDefinition::new("twins");
/// `deviceId` → the registry entry as last synced (`{"status", "generationId"}`; no keys).
const DEVICES: TableDefinition<&str, &str> = TableDefinition::new("devices");
/// `registry_seen` (1 once a registry was synced), `sequence` (of notifications).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The twin database's file inside the store directory.
pub const FILE_NAME: &str = "twins.redb";

/// The file locked while a process has the twins open (the database itself is created by
/// the first change).
pub const LOCK_FILE_NAME: &str = "twins.lock";

/// Opens (or creates) the twin database at `path`.
fn open_db(path: &Path) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(4 << 20).create(path)
}

/// The directory, inside the store directory, of the twins' JSON views (`<deviceId>.json`,
/// `<deviceId>/<moduleId>.json`).
pub const VIEW_DIR: &str = "twins";

/// Writes `bytes` to `path` by way of a temporary file in the same directory and a rename, so
/// that a reader (a running router polling, `hubroute twin show`) never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_replacing(path, bytes, true)
}

/// [`write_atomically`], synced to disk before the rename only when `durable` (a view that the
/// next commit rewrites need not cost an fsync).
fn write_replacing(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    if durable {
        f.sync_all()?;
    }
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// The key of a twin: `device` or `device/module`.
fn key(device: &str, module: Option<&str>) -> String {
    match module {
        Some(m) => format!("{device}/{m}"),
        None => device.to_string(),
    }
}

fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once('/') {
        Some((d, m)) => (d, Some(m)),
        None => (key, None),
    }
}

/// A device's twins as `$twin` reads them.
#[derive(Default)]
struct Entry {
    twin: Option<Arc<JsonDoc>>,
    modules: HashMap<String, Arc<JsonDoc>>,
}

/// A registry entry as last synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// `enabled` or `disabled`.
    pub status: String,
    /// The generation id, if the registry gives one.
    pub generation_id: Option<String>,
}

impl DeviceRecord {
    fn to_json(&self) -> String {
        serde_json::json!({"status": self.status, "generationId": self.generation_id}).to_string()
    }

    fn from_json(text: &str) -> DeviceRecord {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        DeviceRecord {
            status: v["status"].as_str().unwrap_or("enabled").to_string(),
            generation_id: v["generationId"].as_str().map(str::to_string),
        }
    }
}

/// What changes work on, under one lock.
struct Writer {
    twins: BTreeMap<String, Value>,
    devices: BTreeMap<String, DeviceRecord>,
    registry_seen: bool,
    sequence: u64,
    /// Twin files as last read: path → (modified, length), so a poll parses only what changed.
    seen_files: HashMap<PathBuf, (Option<SystemTime>, u64)>,
    /// Problems already reported, so a poll does not repeat them.
    warned: HashSet<String>,
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Notifications routed.
    pub events: usize,
    /// Twins or devices taken in without a notification (first seen).
    pub seeded: usize,
    /// Problems met for the first time (a file that is not a twin), `[code] text` each.
    pub problems: Vec<String>,
}

/// The live twins of a router; see the module documentation.
pub struct LiveTwins {
    /// The database; `None` until the first change when the store had none (creating a redb
    /// file, and closing it, cost a router that keeps no twins tens of millions of
    /// instructions and three syncs per start).
    db: std::sync::OnceLock<Database>,
    /// `twins.lock`, locked for as long as this is open: one process at a time, also before
    /// the database exists.
    _lock: std::fs::File,
    path: PathBuf,
    hub: String,
    view: RwLock<HashMap<String, Entry>>,
    writer: Mutex<Writer>,
    /// For devices with no twin here: the twin directory's own lookup, which also keeps the
    /// warnings (W0802, W0803) about devices without a usable twin file.
    fallback: Option<DirTwinStore>,
    /// The enabled devices of the registry as last synced (id → generation id), for inputs
    /// that check senders on every message: swapped whole on a change, read by cloning an `Arc`.
    enabled: RwLock<Option<Arc<HashMap<String, String>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LiveTwins {
    /// Opens (or creates) the twins of the store in `store_dir`; `hub` names the hub in
    /// notifications; `twin_dir`, if given, answers `$twin` for devices this store does not
    /// know (see [`LiveTwins::sync_files`] to take its files in).
    pub fn open(
        store_dir: &Path,
        hub: &str,
        twin_dir: Option<&Path>,
    ) -> Result<LiveTwins, TwinError> {
        let path = store_dir.join(FILE_NAME);
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            TwinError::new(
                codes::STORE,
                format!("twin store {}: {what}: {e}", path.display()),
            )
        };
        std::fs::create_dir_all(store_dir).map_err(|e| fail("cannot create its directory", &e))?;
        const IN_USE: &str = "another hubroute process is using it (a running router: stop it, or change twins through its files)";
        let lock_file = lock_exclusive(&store_dir.join(LOCK_FILE_NAME)).map_err(|e| match e {
            LockError::Open(e) => fail("cannot open", &e),
            LockError::Lock(e) => fail("cannot lock", &e),
            LockError::Held => fail("cannot open", &IN_USE),
        })?;
        let db = if path.exists() {
            Some(open_db(&path).map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => fail("cannot open", &IN_USE),
                other => fail("cannot open", &other),
            })?)
        } else {
            None
        };
        let mut writer = Writer {
            twins: BTreeMap::new(),
            devices: BTreeMap::new(),
            registry_seen: false,
            sequence: 0,
            seen_files: HashMap::new(),
            warned: HashSet::new(),
        };
        {
            // A read transaction: opening writes nothing (a router without twins pays no
            // commit and no sync for them); a table not there yet is empty, and the first
            // change creates it.
            let tx = match &db {
                Some(db) => Some(db.begin_read().map_err(|e| fail("cannot read", &e))?),
                None => None,
            };
            let tables = tx.as_ref().map(|tx| {
                (
                    tx.open_table(TWINS),
                    tx.open_table(DEVICES),
                    tx.open_table(META),
                )
            });
            let missing =
                |e: &redb::TableError| matches!(e, redb::TableError::TableDoesNotExist(_));
            let (twins, devices, meta) = match tables {
                Some(t) => t,
                None => (
                    Err(redb::TableError::TableDoesNotExist(String::new())),
                    Err(redb::TableError::TableDoesNotExist(String::new())),
                    Err(redb::TableError::TableDoesNotExist(String::new())),
                ),
            };
            match twins {
                Ok(twins) => {
                    for row in twins.iter().map_err(|e| fail("twins", &e))? {
                        let (k, v) = row.map_err(|e| fail("twins", &e))?;
                        let doc: Value = serde_json::from_str(v.value())
                            .map_err(|e| fail("a stored twin is not JSON", &e))?;
                        writer.twins.insert(k.value().to_string(), doc);
                    }
                }
                Err(e) if missing(&e) => {}
                Err(e) => return Err(fail("twins", &e)),
            }
            match devices {
                Ok(devices) => {
                    for row in devices.iter().map_err(|e| fail("devices", &e))? {
                        let (k, v) = row.map_err(|e| fail("devices", &e))?;
                        writer
                            .devices
                            .insert(k.value().to_string(), DeviceRecord::from_json(v.value()));
                    }
                }
                Err(e) if missing(&e) => {}
                Err(e) => return Err(fail("devices", &e)),
            }
            match meta {
                Ok(meta) => {
                    writer.registry_seen = meta
                        .get("registry_seen")
                        .map_err(|e| fail("meta", &e))?
                        .is_some_and(|v| v.value() == 1);
                    writer.sequence = meta
                        .get("sequence")
                        .map_err(|e| fail("meta", &e))?
                        .map_or(0, |v| v.value());
                }
                Err(e) if missing(&e) => {}
                Err(e) => return Err(fail("meta", &e)),
            }
        }
        let cell = std::sync::OnceLock::new();
        if let Some(db) = db {
            let _ = cell.set(db);
        }
        let twins = LiveTwins {
            db: cell,
            _lock: lock_file,
            path,
            hub: hub.to_string(),
            view: RwLock::new(HashMap::new()),
            writer: Mutex::new(writer),
            fallback: twin_dir.map(DirTwinStore::new),
            enabled: RwLock::new(None),
        };
        {
            let w = lock(&twins.writer);
            for (k, doc) in &w.twins {
                twins.publish(k, Some(doc));
            }
        }
        Ok(twins)
    }

    /// The registry's enabled devices (id → generation id) as last synced by
    /// [`LiveTwins::sync_registry`]; `None` before the first sync. A device disabled or
    /// deleted in the file is out of it from the sync on, so an input checking senders
    /// against it refuses the device's next message.
    pub fn enabled_devices(&self) -> Option<Arc<HashMap<String, String>>> {
        self.enabled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn publish_registry(&self, w: &Writer) {
        let enabled: HashMap<String, String> = w
            .devices
            .iter()
            .filter(|(_, r)| r.status == "enabled")
            .map(|(id, r)| {
                (
                    id.clone(),
                    r.generation_id.clone().unwrap_or_else(|| "0".into()),
                )
            })
            .collect();
        *self.enabled.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(enabled));
    }

    /// The twin directory's lookup, whose problems (devices without a usable twin file) the
    /// CLI reports.
    pub fn fallback(&self) -> Option<&DirTwinStore> {
        self.fallback.as_ref()
    }

    /// The twin of a device (or module) as stored now.
    pub fn twin(&self, device: &str, module: Option<&str>) -> Option<Value> {
        lock(&self.writer).twins.get(&key(device, module)).cloned()
    }

    /// Every twin's key (`device` or `device/module`), sorted.
    pub fn keys(&self) -> Vec<String> {
        lock(&self.writer).twins.keys().cloned().collect()
    }

    /// The registry as last synced.
    pub fn devices(&self) -> BTreeMap<String, DeviceRecord> {
        lock(&self.writer).devices.clone()
    }

    /// Makes `doc` (or its absence) what `$twin` reads for `key`.
    fn publish(&self, key: &str, doc: Option<&Value>) {
        let parsed = doc.and_then(|d| JsonDoc::parse(&d.to_string()).ok().map(Arc::new));
        let (device, module) = split_key(key);
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        let entry = view.entry(device.to_string()).or_default();
        match (module, parsed) {
            (None, p) => entry.twin = p,
            (Some(m), Some(p)) => {
                entry.modules.insert(m.to_string(), p);
            }
            (Some(m), None) => {
                entry.modules.remove(m);
            }
        }
        if entry.twin.is_none() && entry.modules.is_empty() {
            view.remove(device);
        }
    }

    fn doc(&self, device: &str, module: Option<&str>) -> Option<Arc<JsonDoc>> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        let entry = view.get(device)?;
        match module {
            None => entry.twin.clone(),
            Some(m) => entry.modules.get(m).cloned(),
        }
    }

    /// Commits the twins in `changed` (`None`: deleted) and the registry records in `devices`
    /// in one durable transaction, then shows them to `$twin`.
    fn commit(
        &self,
        w: &mut Writer,
        changed: &[(String, Option<Value>)],
        devices: &[(String, Option<DeviceRecord>)],
        registry_seen: bool,
    ) -> Result<(), TwinError> {
        let fail = |e: &dyn std::fmt::Display| {
            TwinError::new(
                codes::STORE,
                format!("twin store {}: cannot commit: {e}", self.path.display()),
            )
        };
        // Under the writer's lock: one change at a time creates the database.
        if self.db.get().is_none() {
            let db = open_db(&self.path).map_err(|e| fail(&e))?;
            let _ = self.db.set(db);
        }
        let db = self
            .db
            .get()
            .ok_or_else(|| fail(&"the database is not open"))?;
        let tx = db.begin_write().map_err(|e| fail(&e))?;
        {
            let mut twins = tx.open_table(TWINS).map_err(|e| fail(&e))?;
            for (k, doc) in changed {
                match doc {
                    Some(d) => {
                        twins
                            .insert(k.as_str(), d.to_string().as_str())
                            .map_err(|e| fail(&e))?;
                    }
                    None => {
                        twins.remove(k.as_str()).map_err(|e| fail(&e))?;
                    }
                }
            }
            let mut table = tx.open_table(DEVICES).map_err(|e| fail(&e))?;
            for (id, record) in devices {
                match record {
                    Some(r) => {
                        table
                            .insert(id.as_str(), r.to_json().as_str())
                            .map_err(|e| fail(&e))?;
                    }
                    None => {
                        table.remove(id.as_str()).map_err(|e| fail(&e))?;
                    }
                }
            }
            let mut meta = tx.open_table(META).map_err(|e| fail(&e))?;
            meta.insert("sequence", w.sequence).map_err(|e| fail(&e))?;
            if registry_seen {
                meta.insert("registry_seen", 1).map_err(|e| fail(&e))?;
            }
        }
        tx.commit().map_err(|e| fail(&e))?;
        if registry_seen {
            w.registry_seen = true;
        }
        for (id, record) in devices {
            match record {
                Some(r) => w.devices.insert(id.clone(), r.clone()),
                None => w.devices.remove(id),
            };
        }
        for (k, doc) in changed {
            match doc {
                Some(d) => w.twins.insert(k.clone(), d.clone()),
                None => w.twins.remove(k),
            };
            self.publish(k, doc.as_ref());
            self.write_view(k, doc.as_ref());
        }
        Ok(())
    }

    /// Mirrors a committed twin to `<store>/twins/<key>.json` (written to a temporary file and
    /// renamed, so a reader sees the old or the new document): `hubroute twin show` reads it
    /// while the router holds the database. A view, not the record: a failure to write it is
    /// reported and changes nothing stored.
    fn write_view(&self, key: &str, doc: Option<&Value>) {
        let Some(dir) = self.path.parent().map(|p| p.join(VIEW_DIR)) else {
            return;
        };
        let file = dir.join(format!("{key}.json"));
        let result = match doc {
            Some(d) => write_replacing(
                &file,
                serde_json::to_string_pretty(d)
                    .unwrap_or_default()
                    .as_bytes(),
                false,
            ),
            None => match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::warn!("cannot write the twin view {}: {e}", file.display());
        }
    }

    /// Routes one notification through `pipeline` and waits until it is durably accepted.
    /// `$twin` of its routes and enrichments reads `overlay` (the twin after the change) for
    /// its device.
    // The writer is passed in (not locked here) because the caller holds it across the
    // notification and the commit that follows; grouping the rest would only rename them.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        pipeline: &dyn Notify,
        w: &mut Writer,
        device: &str,
        module: Option<&str>,
        op: Operation,
        body: &Value,
        overlay: Option<&Value>,
        at: SystemTime,
    ) -> Result<(), TwinError> {
        w.sequence += 1;
        let message = events::event(&self.hub, device, module, op, body, w.sequence, at);
        let overlay = Overlay {
            base: self,
            doc: overlay.and_then(|d| JsonDoc::parse(&d.to_string()).ok()),
        };
        pipeline
            .route_and_accept(&message, &overlay, at)
            .map_err(|e| {
                let what = match e {
                    NotifyError::Rejected { code, reason } => {
                        format!("rejected: [{code}] {reason}")
                    }
                    NotifyError::NotAccepted(e) => format!("not accepted: {e}"),
                };
                TwinError::new(
                    codes::NOT_ACCEPTED,
                    format!("the {} notification was {what}", op.op_type()),
                )
            })?;
        Ok(())
    }

    /// A device (or module) reports properties: merges `patch` (a JSON object; `null`
    /// deletes) into its reported properties, bumps the versions, routes the
    /// `TwinChangeEvents` notification and stores the twin, in that order (see the module
    /// documentation). Returns the reported properties' new `$version`, which IoT Hub answers
    /// the device with. A device without a twin gets one.
    pub fn apply_reported(
        &self,
        pipeline: &dyn Notify,
        device: &str,
        module: Option<&str>,
        patch_json: &str,
        now: SystemTime,
    ) -> Result<u64, TwinError> {
        let patch = patch::parse_patch(patch_json, Section::Reported)?;
        let mut w = lock(&self.writer);
        let body = self.change(
            pipeline,
            &mut w,
            device,
            module,
            Section::Reported,
            &patch,
            now,
        )?;
        Ok(body["properties"]["reported"]["$version"]
            .as_u64()
            .unwrap_or(0))
    }

    /// Applies `patch` to a section of a twin (created if missing): notification, then commit.
    #[allow(clippy::too_many_arguments)]
    fn change(
        &self,
        pipeline: &dyn Notify,
        w: &mut Writer,
        device: &str,
        module: Option<&str>,
        section: Section,
        patch: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<Value, TwinError> {
        let k = key(device, module);
        let ts = format_enqueued_time(now);
        let mut twin = w
            .twins
            .get(&k)
            .cloned()
            .unwrap_or_else(|| patch::new_twin(device, module, &ts));
        let body = patch::apply(&mut twin, section, patch, &ts);
        self.notify(
            pipeline,
            w,
            device,
            module,
            Operation::UpdateTwin,
            &body,
            Some(&twin),
            now,
        )?;
        self.commit(w, &[(k, Some(twin))], &[], false)?;
        Ok(body)
    }

    /// Takes in the twin directory `dir` (`<deviceId>.json`, `<deviceId>/<moduleId>.json`, in
    /// the shape `az iot hub device-twin show` prints): a twin this store does not know is
    /// taken as it is (its first state, no notification); for one it knows, the differences of
    /// the file's `tags` and `properties.desired` from the stored ones are applied as patches,
    /// each routed as a `TwinChangeEvents` notification. Reported properties are the device's:
    /// a file's are only read for a twin first seen. A file that disappears leaves its twin as
    /// it is. Only files whose modification time or length changed since the last call are
    /// read again.
    pub fn sync_files(
        &self,
        pipeline: &dyn Notify,
        dir: &Path,
        now: SystemTime,
    ) -> Result<SyncReport, TwinError> {
        let mut report = SyncReport::default();
        let mut w = lock(&self.writer);
        for (k, file) in scan_twin_dir(dir) {
            let stamp = std::fs::metadata(&file)
                .map(|m| (m.modified().ok(), m.len()))
                .unwrap_or((None, 0));
            if w.seen_files.get(&file) == Some(&stamp) {
                continue;
            }
            let doc = match std::fs::read_to_string(&file)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            {
                Ok(v) if v.is_object() => v,
                Ok(_) | Err(_) => {
                    let text = format!(
                        "[{}] twin file {} is not a JSON object; it is ignored until it is",
                        codes::BAD_TWIN_FILE,
                        file.display()
                    );
                    if w.warned.insert(text.clone()) {
                        report.problems.push(text);
                    }
                    w.seen_files.insert(file, stamp);
                    continue;
                }
            };
            let (device, module) = split_key(&k);
            let ts = format_enqueued_time(now);
            if !w.twins.contains_key(&k) {
                let mut twin = patch::new_twin(device, module, &ts);
                for section in [Section::Tags, Section::Desired, Section::Reported] {
                    if let Some(s) = patch::section(&doc, section) {
                        let clean: Map<String, Value> = s
                            .iter()
                            .filter(|(k, _)| !k.starts_with('$'))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        patch::merge(patch::section_mut(&mut twin, section), &clean);
                    }
                }
                self.commit(&mut w, &[(k.clone(), Some(twin))], &[], false)?;
                report.seeded += 1;
            } else {
                for section in [Section::Tags, Section::Desired] {
                    let empty = Map::new();
                    let wanted = patch::section(&doc, section).unwrap_or(&empty);
                    let current = w.twins.get(&k).and_then(|t| patch::section(t, section));
                    let delta = patch::diff(current.unwrap_or(&empty), wanted);
                    if !delta.is_empty() {
                        self.change(pipeline, &mut w, device, module, section, &delta, now)?;
                        report.events += 1;
                    }
                }
            }
            w.seen_files.insert(file, stamp);
        }
        Ok(report)
    }

    /// Takes in the device registry file (`--devices`): a device in it that the last sync did
    /// not have is created (an empty twin, unless a twin exists, and a `createDeviceIdentity`
    /// notification); a device the last sync had and the file lacks is deleted (with its module
    /// twins; `deleteDeviceIdentity`). A status change (enabled/disabled) is recorded without
    /// a notification: IoT Hub's lifecycle events are for creation and deletion only, and a
    /// twin change notification covers tags and properties, not the status. The very first
    /// sync takes the registry as it is, without notifications (those devices existed before).
    pub fn sync_registry(
        &self,
        pipeline: &dyn Notify,
        registry: &BTreeMap<String, DeviceRecord>,
        now: SystemTime,
    ) -> Result<SyncReport, TwinError> {
        let mut report = SyncReport::default();
        let mut w = lock(&self.writer);
        let ts = format_enqueued_time(now);
        if !w.registry_seen {
            let mut twins = Vec::new();
            let mut devices = Vec::new();
            for (id, record) in registry {
                if !w.twins.contains_key(id) {
                    twins.push((id.clone(), Some(patch::new_twin(id, None, &ts))));
                }
                devices.push((id.clone(), Some(record.clone())));
            }
            report.seeded = devices.len();
            self.commit(&mut w, &twins, &devices, true)?;
            self.publish_registry(&w);
            return Ok(report);
        }
        let known: Vec<String> = w.devices.keys().cloned().collect();
        for id in known.iter().filter(|id| !registry.contains_key(*id)) {
            let twin = w
                .twins
                .get(id)
                .cloned()
                .unwrap_or_else(|| patch::new_twin(id, None, &ts));
            let status = w
                .devices
                .get(id)
                .map_or("enabled".to_string(), |r| r.status.clone());
            let generation = w.devices.get(id).and_then(|r| r.generation_id.clone());
            let body = events::lifecycle_body(&twin, &status, generation.as_deref());
            self.notify(
                pipeline,
                &mut w,
                id,
                None,
                Operation::DeleteDeviceIdentity,
                &body,
                Some(&twin),
                now,
            )?;
            let prefix = format!("{id}/");
            let mut gone: Vec<(String, Option<Value>)> = w
                .twins
                .keys()
                .filter(|k| *k == id || k.starts_with(&prefix))
                .map(|k| (k.clone(), None))
                .collect();
            gone.dedup();
            self.commit(&mut w, &gone, &[(id.clone(), None)], false)?;
            report.events += 1;
        }
        for (id, record) in registry {
            match w.devices.get(id) {
                Some(r) if r == record => {}
                Some(_) => {
                    self.commit(&mut w, &[], &[(id.clone(), Some(record.clone()))], false)?;
                }
                None => {
                    let twin = w
                        .twins
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| patch::new_twin(id, None, &ts));
                    let body = events::lifecycle_body(
                        &twin,
                        &record.status,
                        record.generation_id.as_deref(),
                    );
                    self.notify(
                        pipeline,
                        &mut w,
                        id,
                        None,
                        Operation::CreateDeviceIdentity,
                        &body,
                        Some(&twin),
                        now,
                    )?;
                    self.commit(
                        &mut w,
                        &[(id.clone(), Some(twin))],
                        &[(id.clone(), Some(record.clone()))],
                        false,
                    )?;
                    report.events += 1;
                }
            }
        }
        self.publish_registry(&w);
        Ok(report)
    }
}

/// Reads `$twin` from the live twins, one device's twin replaced by the twin after a change
/// (for the routes and enrichments of that change's notification).
struct Overlay<'a> {
    base: &'a LiveTwins,
    doc: Option<JsonDoc>,
}

impl TwinLookup for Overlay<'_> {
    fn twin_value<'t>(&'t self, message: &Message, path: &BodyPath) -> EvalValue<'t> {
        match &self.doc {
            Some(doc) => match selected_value(doc.select(path)) {
                EvalValue::Missing => EvalValue::Undefined,
                v => v.into_owned(),
            },
            None => self.base.twin_value(message, path),
        }
    }
}

impl TwinLookup for LiveTwins {
    /// The value at `path` of the twin of the message's `connectionDeviceId` (and
    /// `connectionModuleId`), as changed last; a device this store does not know is looked up
    /// in the twin directory (and a missing twin there is reported).
    fn twin_value<'t>(&'t self, message: &Message, path: &BodyPath) -> EvalValue<'t> {
        let sys = &message.system_properties;
        let Some(Some(device)) = sys.get("connectionDeviceId") else {
            return EvalValue::Undefined;
        };
        let module = sys.get("connectionModuleId").flatten();
        let doc = match self.doc(device, module) {
            Some(d) => d,
            None => match self.fallback.as_ref().and_then(|f| {
                use crate::route::TwinStore;
                f.twin(device, module)
            }) {
                Some(d) => d,
                None => return EvalValue::Undefined,
            },
        };
        match selected_value(doc.select(path)) {
            EvalValue::Missing => EvalValue::Undefined,
            v => v.into_owned(),
        }
    }
}

/// The twin files of a directory: `<deviceId>.json` and `<deviceId>/<moduleId>.json`, by key.
pub fn scan_twin_dir(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if path.is_dir() {
            let Ok(modules) = std::fs::read_dir(&path) else {
                continue;
            };
            for m in modules.flatten() {
                let mp = m.path();
                if let Some(stem) = json_stem(&mp) {
                    out.insert(format!("{name}/{stem}"), mp);
                }
            }
        } else if let Some(stem) = json_stem(&path) {
            out.insert(stem, path);
        }
    }
    out
}

fn json_stem(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".json")?;
    (!stem.is_empty() && !stem.starts_with('.') && !stem.contains('/')).then(|| stem.to_string())
}

/// The devices of a registry file (`--devices`), read as the HTTPS input's authentication
/// reads it ([`crate::registry::Registry`]), without their keys.
pub fn read_registry(path: &Path) -> Result<BTreeMap<String, DeviceRecord>, TwinError> {
    crate::registry::Registry::load(path)
        .map(|r| records(&r))
        .map_err(|e| TwinError::new(codes::BAD_REGISTRY, format!("device registry: {e}")))
}

/// [`read_registry`] of a text.
pub fn parse_registry(text: &str) -> Result<BTreeMap<String, DeviceRecord>, TwinError> {
    crate::registry::Registry::parse(text)
        .map(|r| records(&r))
        .map_err(|e| TwinError::new(codes::BAD_REGISTRY, format!("device registry: {e}")))
}

fn records(registry: &crate::registry::Registry) -> BTreeMap<String, DeviceRecord> {
    registry
        .iter()
        .map(|d| {
            (
                d.id.clone(),
                DeviceRecord {
                    status: d.status.as_str().to_string(),
                    generation_id: Some(d.generation_id.clone()),
                },
            )
        })
        .collect()
}
