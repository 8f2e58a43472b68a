//! The pipeline's durable store: an append-only log of accepted messages and one delivery
//! cursor per endpoint, in a [redb](https://docs.rs/redb) database file.
//!
//! Why redb: it is pure Rust (no C toolchain, `forbid(unsafe_code)` stays meaningful for our
//! code), its commits are ACID and crash-safe with an fsync on a durable commit, a single file
//! is easy to place and back up, and it is actively maintained. The access pattern is a queue:
//! append at the tail, read from several cursors, delete the head. An LSM store (fjall) would
//! write faster under heavy random updates, but our writes are sequential appends in group
//! commits, where one B-tree commit per batch is cheap and reads need no compaction.
//!
//! Tables:
//! * `log`: sequence number (u64, increasing) → one record ([`super::codec`]).
//! * `endpoints`: endpoint name → its id in the store, so that records stay valid when the
//!   routing configuration is edited between runs (ids are never reused).
//! * `cursors`: endpoint id → the last sequence number that endpoint has settled (delivered or
//!   dead-lettered). Records at or below every cursor are deleted.
//! * `meta`: `next` → the next sequence number (kept when the log is empty).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const ENDPOINTS: TableDefinition<&str, u16> = TableDefinition::new("endpoints");
const CURSORS: TableDefinition<u16, u64> = TableDefinition::new("cursors");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The store's file inside its directory.
pub const FILE_NAME: &str = "hubroute.redb";

/// A store operation failed; the message names the store and the operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {path}: {what}: {detail}")]
pub struct StoreError {
    path: String,
    what: &'static str,
    detail: String,
}

/// The open store. Shared by the committer and every endpoint worker (redb serialises write
/// transactions and lets reads run beside them).
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// What the store held when it was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Endpoint name → id, every endpoint the store has seen.
    pub endpoints: BTreeMap<String, u16>,
    /// Endpoint id → cursor.
    pub cursors: BTreeMap<u16, u64>,
    /// The next sequence number to assign.
    pub next: u64,
}

/// redb's page cache. Its default (1 GiB) let a router's memory grow with the input it had
/// read; the records endpoints need next are in the pipeline's own in-memory tail anyway, so
/// a small cache serves the store's B-tree pages.
const CACHE_BYTES: usize = 32 << 20;

impl Store {
    fn err(&self, what: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            what,
            detail: e.to_string(),
        }
    }

    /// Opens (or creates) the store in `dir`. Fails clearly when another process has it open.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        let fail = |what, detail: String| StoreError {
            path: path.display().to_string(),
            what,
            detail,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| fail("cannot create its directory", e.to_string()))?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => fail(
                    "cannot open",
                    "another hubroute process is using it (give each router its own --store)"
                        .into(),
                ),
                other => fail("cannot open", other.to_string()),
            })?;
        let store = Store { db, path };
        let tx = store
            .db
            .begin_write()
            .map_err(|e| store.err("cannot write", e))?;
        {
            tx.open_table(LOG)
                .map_err(|e| store.err("cannot open the log", e))?;
            tx.open_table(ENDPOINTS)
                .map_err(|e| store.err("cannot open the endpoints", e))?;
            tx.open_table(CURSORS)
                .map_err(|e| store.err("cannot open the cursors", e))?;
            tx.open_table(META)
                .map_err(|e| store.err("cannot open the metadata", e))?;
        }
        tx.commit().map_err(|e| store.err("cannot commit", e))?;
        Ok(store)
    }

    /// Where the store file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives every name in `names` an id (keeping ids already assigned) and reads the cursors
    /// and the next sequence number.
    pub fn recover(&self, names: &[&str]) -> Result<Recovered, StoreError> {
        let tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        let mut out = Recovered::default();
        {
            let mut endpoints = tx
                .open_table(ENDPOINTS)
                .map_err(|e| self.err("endpoints", e))?;
            for entry in endpoints.iter().map_err(|e| self.err("endpoints", e))? {
                let (k, v) = entry.map_err(|e| self.err("endpoints", e))?;
                out.endpoints.insert(k.value().to_string(), v.value());
            }
            let log = tx.open_table(LOG).map_err(|e| self.err("log", e))?;
            let meta = tx.open_table(META).map_err(|e| self.err("meta", e))?;
            let last = log
                .last()
                .map_err(|e| self.err("log", e))?
                .map(|(k, _)| k.value() + 1);
            let next = meta
                .get("next")
                .map_err(|e| self.err("meta", e))?
                .map(|v| v.value());
            out.next = last.max(next).unwrap_or(1).max(1);
            // A new endpoint starts at the current end: it never saw what was accepted before
            // it existed.
            let mut cursors = tx.open_table(CURSORS).map_err(|e| self.err("cursors", e))?;
            for name in names {
                if !out.endpoints.contains_key(*name) {
                    let id = out
                        .endpoints
                        .values()
                        .max()
                        .map_or(Some(0), |m| m.checked_add(1))
                        .ok_or_else(|| self.err("endpoints", "more than 65535 endpoints"))?;
                    endpoints
                        .insert(*name, id)
                        .map_err(|e| self.err("endpoints", e))?;
                    cursors
                        .insert(id, out.next - 1)
                        .map_err(|e| self.err("cursors", e))?;
                    out.endpoints.insert((*name).to_string(), id);
                }
            }
            for entry in cursors.iter().map_err(|e| self.err("cursors", e))? {
                let (k, v) = entry.map_err(|e| self.err("cursors", e))?;
                out.cursors.insert(k.value(), v.value());
            }
        }
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        Ok(out)
    }

    /// Calls `f` with every record in the log, in order (used once, on open, for the counts).
    pub fn scan(&self, mut f: impl FnMut(u64, &[u8])) -> Result<(), StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| self.err("cannot read", e))?;
        let log = tx.open_table(LOG).map_err(|e| self.err("log", e))?;
        for entry in log.iter().map_err(|e| self.err("log", e))? {
            let (k, v) = entry.map_err(|e| self.err("log", e))?;
            f(k.value(), v.value());
        }
        Ok(())
    }

    /// Appends `records` numbered from `first`, durably: when this returns `Ok` they are on
    /// disk (fsync'd), and an input may acknowledge them.
    pub fn append(&self, first: u64, records: &[&[u8]]) -> Result<(), StoreError> {
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        tx.set_durability(Durability::Immediate);
        {
            let mut log = tx.open_table(LOG).map_err(|e| self.err("log", e))?;
            for (i, r) in records.iter().enumerate() {
                log.insert(first + i as u64, *r)
                    .map_err(|e| self.err("cannot append", e))?;
            }
            let mut meta = tx.open_table(META).map_err(|e| self.err("meta", e))?;
            meta.insert("next", first + records.len() as u64)
                .map_err(|e| self.err("meta", e))?;
        }
        tx.commit().map_err(|e| self.err("cannot commit", e))
    }

    /// Up to `max` records after sequence `after`, in order.
    pub fn read_after(&self, after: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| self.err("cannot read", e))?;
        let log = tx.open_table(LOG).map_err(|e| self.err("log", e))?;
        let mut out = Vec::new();
        let start = after.saturating_add(1);
        for entry in log
            .range(start..)
            .map_err(|e| self.err("log", e))?
            .take(max)
        {
            let (k, v) = entry.map_err(|e| self.err("log", e))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Moves `endpoint`'s cursor to `cursor` and deletes the records up to `delete_through`
    /// (which every cursor has passed); returns the bytes deleted. `durable`: fsync now, or let
    /// the next durable commit carry it (a crash before then only repeats deliveries).
    /// Returns the records and bytes deleted.
    pub fn advance(
        &self,
        endpoint: u16,
        cursor: u64,
        delete_through: Option<u64>,
        durable: bool,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        });
        let (mut records, mut freed) = (0u64, 0u64);
        {
            let mut cursors = tx.open_table(CURSORS).map_err(|e| self.err("cursors", e))?;
            cursors
                .insert(endpoint, cursor)
                .map_err(|e| self.err("cursors", e))?;
            if let Some(through) = delete_through {
                (records, freed) = self.delete_in(&tx, through)?;
            }
        }
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        Ok((records, freed))
    }

    /// One transaction of the committer: appends `records` numbered from `first` (none:
    /// `first` is ignored), sets the endpoints' `cursors` and deletes the records up to
    /// `delete_through`. `durable`: synced when this returns (an input may acknowledge the
    /// records); otherwise the next durable commit carries it. Returns the records and bytes
    /// deleted.
    pub fn commit(
        &self,
        first: u64,
        records: &[&[u8]],
        cursors: &[(u16, u64)],
        delete_through: Option<u64>,
        durable: bool,
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        });
        let mut deleted = (0, 0);
        {
            if !records.is_empty() {
                let mut log = tx.open_table(LOG).map_err(|e| self.err("log", e))?;
                for (i, r) in records.iter().enumerate() {
                    log.insert(first + i as u64, *r)
                        .map_err(|e| self.err("cannot append", e))?;
                }
                let mut meta = tx.open_table(META).map_err(|e| self.err("meta", e))?;
                meta.insert("next", first + records.len() as u64)
                    .map_err(|e| self.err("meta", e))?;
            }
            if !cursors.is_empty() {
                let mut table = tx.open_table(CURSORS).map_err(|e| self.err("cursors", e))?;
                for &(endpoint, cursor) in cursors {
                    table
                        .insert(endpoint, cursor)
                        .map_err(|e| self.err("cursors", e))?;
                }
            }
            if let Some(through) = delete_through {
                deleted = self.delete_in(&tx, through)?;
            }
        }
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        Ok(deleted)
    }

    /// Deletes the log's records up to `through` inside `tx`; the records and bytes deleted.
    fn delete_in(&self, tx: &WriteTransaction, through: u64) -> Result<(u64, u64), StoreError> {
        let (mut records, mut freed) = (0u64, 0u64);
        let mut log = tx.open_table(LOG).map_err(|e| self.err("log", e))?;
        log.retain_in(..=through, |_, v| {
            records += 1;
            freed += v.len() as u64;
            false
        })
        .map_err(|e| self.err("cannot delete delivered records", e))?;
        Ok((records, freed))
    }

    /// Deletes the records up to `through` (which every cursor has passed); returns the records
    /// and bytes deleted. Not synced: a crash before the next durable commit leaves them in
    /// the log, where recovery finds them behind every cursor.
    pub fn delete_through(&self, through: u64) -> Result<(u64, u64), StoreError> {
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        tx.set_durability(Durability::None);
        let deleted = self.delete_in(&tx, through)?;
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        Ok(deleted)
    }

    /// Records in the log (for tests and reports).
    pub fn len(&self) -> Result<u64, StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| self.err("cannot read", e))?;
        let log = tx.open_table(LOG).map_err(|e| self.err("log", e))?;
        log.len().map_err(|e| self.err("log", e))
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// A durable commit of everything committed so far (at shutdown).
    pub fn sync(&self) -> Result<(), StoreError> {
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        tx.set_durability(Durability::Immediate);
        tx.commit().map_err(|e| self.err("cannot commit", e))
    }
}
