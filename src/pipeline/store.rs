//! The pipeline's durable store, in its directory: an append-only log of accepted records
//! and delivery cursor moves (`segments`: files of checksummed frames, one write and one
//! `fdatasync` per group commit) and the endpoints' ids with a checkpoint of their cursors
//! (`cursors`: one small file of two slots, one `pwrite` and one `fdatasync` per write).
//!
//! Why no database: the log is a queue (append at the tail, read forward, drop the head) and
//! the rest is a few dozen bytes rewritten whole. redb held both before; its B-tree cost the
//! committer about 10k instructions per message (copies, page zeroing, checksums, allocator
//! rewrites as the file grew), and creating and closing its file tens of millions more per
//! start. What the two files need from a database — surviving a crash at any point — they
//! get from checksums, slots written in turn, and syncs before anything is acknowledged.
//!
//! * Endpoint name → id, so that records stay valid when the routing configuration is edited
//!   between runs (ids are never reused).
//! * Endpoint id → cursor: the last sequence number that endpoint has settled (delivered or
//!   dead-lettered). Records at or below every cursor are deleted.
//! * The next sequence number (kept when the log is empty).
//!
//! Cursors ride in the log: each commit appends, after its records and in the same write and
//! sync, a cursor frame of the endpoints whose settled position moved since the last one;
//! when no input comes the committer writes a cursor frame alone (one write and sync, what a
//! cursor file write costs). So a crash repeats about one commit's deliveries, at no sync of
//! its own. The cursor file is the checkpoint those frames are read over:
//!
//! * at open the cursors are the checkpoint's, each raised to the highest any cursor frame
//!   in the log holds (a cursor only moves forward, and every value written was settled, so
//!   the highest is the newest, whatever file it is in);
//! * it is written (synced) with the cursors held in memory — which hold every frame
//!   written — before a log file holding cursor frames it does not cover yet is deleted,
//!   at a clean shutdown, when a cursor frame has no file to go to (the log is empty), and
//!   (as before) when endpoints are added, before any record names their ids.
//!
//! Crash safety: a cursor frame is a promise only that its endpoints had settled that far;
//! lost (torn off at the end of the log with its write, or never written) it repeats
//! deliveries, never skips one. A file is deleted only when every endpoint has passed all
//! its records and the checkpoint holds every cursor its frames held, so deleting it loses
//! neither a record nor a cursor. `next` goes into every cursor frame and checkpoint, so
//! numbering never falls below a cursor: a record numbered at or below one would be
//! skipped.
//!
//! A store an older hubroute wrote (`hubroute.redb`: records in table `chunks`, or before
//! that one per entry in `log`; ids, cursors and `next` in tables) is moved into these files
//! when opened, and its database file deleted once they are synced. A log written before
//! cursor frames existed holds only record frames and opens as it did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use redb::{Database, ReadableTable, TableDefinition, TableHandle};

use crate::lock_file::{lock_exclusive, LockError};

mod cursors;
mod segments;

/// Older layouts (see the module documentation), read once to move them.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");
const ENDPOINTS: TableDefinition<&str, u16> = TableDefinition::new("endpoints");
const CURSORS: TableDefinition<u16, u64> = TableDefinition::new("cursors");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The database file an older hubroute kept the store in (moved into the files below when
/// found).
pub const FILE_NAME: &str = "hubroute.redb";

/// The directory of the record log inside the store's directory.
pub const LOG_DIR: &str = "log";

/// The file of endpoint ids and cursors inside the store's directory.
pub const CURSOR_FILE_NAME: &str = "cursors";

/// The file locked while a process has the store open.
pub const LOCK_FILE_NAME: &str = "store.lock";

/// A store operation failed; the message names the store and the operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {path}: {what}: {detail}")]
pub struct StoreError {
    path: String,
    what: &'static str,
    detail: String,
}

/// The open store. Shared by the committer and every endpoint worker (the log is appended
/// by the committer only and read by anyone; the cursors are written under a lock).
pub struct Store {
    path: PathBuf,
    /// Locked for as long as the store is open: one process at a time.
    _lock: std::fs::File,
    log: segments::Segments,
    /// The cursor file (`None` until first written) and what it holds.
    cursors: Mutex<(cursors::CursorFile, cursors::State)>,
    /// The next sequence number as far as this process knows (written with the cursors, so
    /// that numbering goes on when every record is deleted).
    next: AtomicU64,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const IN_USE: &str = "another hubroute process is using it (give each router its own --store)";

impl Store {
    fn err(&self, what: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            what,
            detail: e.to_string(),
        }
    }

    /// Opens (or creates) the store in `dir`. Fails clearly when another process has it open.
    /// Checks the record log (a write a crash tore is cut off; see the `segments` module) and moves an
    /// older hubroute's store into the current files.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let fail = |what, detail: String| StoreError {
            path: dir.display().to_string(),
            what,
            detail,
        };
        let created = !dir.exists();
        std::fs::create_dir_all(dir)
            .map_err(|e| fail("cannot create its directory", e.to_string()))?;
        if created {
            // The new directory's name must survive a crash like the files in it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| fail("cannot sync its parent directory", e.to_string()))?;
            }
        }
        // The lock first: it keeps a second process away from everything below.
        let lock_file = lock_exclusive(&dir.join(LOCK_FILE_NAME)).map_err(|e| match e {
            LockError::Open(e) => fail("cannot open", e.to_string()),
            LockError::Lock(e) => fail("cannot lock", e.to_string()),
            LockError::Held => fail("cannot open", IN_USE.into()),
        })?;
        // The cursor file before the log: an older hubroute must find it in a format it
        // refuses before the log holds a file it would misread (see `cursors`).
        let cursor_path = dir.join(CURSOR_FILE_NAME);
        let (file, mut state) = match cursors::CursorFile::open(&cursor_path)
            .map_err(|e| fail("cannot read the cursors", e.to_string()))?
        {
            Some((f, s)) if f.upgraded() => (f, s),
            old => {
                let s = old.map(|(_, s)| s).unwrap_or_default();
                let f = cursors::CursorFile::create(&cursor_path, &s)
                    .map_err(|e| fail("cannot write the cursors", e.to_string()))?;
                (f, s)
            }
        };
        let (log, log_cursors) = segments::Segments::open(&dir.join(LOG_DIR))
            .map_err(|e| fail("cannot open the record log", e.to_string()))?;
        // The checkpoint, raised by the log's cursor frames. When none raises it, the
        // checkpoint covers them all already and files holding them may go without another.
        let mut raised = log_cursors.next > state.next;
        state.next = state.next.max(log_cursors.next);
        for (id, cursor) in state.endpoints.values_mut() {
            if let Some(&c) = log_cursors.cursors.get(id) {
                raised |= c > *cursor;
                *cursor = (*cursor).max(c);
            }
        }
        if !raised {
            log.checkpointed(log.cursor_mark());
        }
        let next = log.next().max(state.next);
        let store = Store {
            path: dir.to_path_buf(),
            _lock: lock_file,
            log,
            cursors: Mutex::new((file, state)),
            next: AtomicU64::new(next),
        };
        let old = dir.join(FILE_NAME);
        if old.exists() {
            store.migrate(&old)?;
        }
        Ok(store)
    }

    /// Moves the store an older hubroute kept in `old` (a redb database) into the log and
    /// the cursor file, then deletes it. A crash part way repeats the move at the next open
    /// without doubling anything: records the log has are skipped, and cursors already
    /// written win over the database's.
    fn migrate(&self, old: &Path) -> Result<(), StoreError> {
        let db = Database::builder()
            .set_cache_size(4 << 20)
            .create(old)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => self.err("cannot open", IN_USE),
                other => self.err("cannot open the older store", other),
            })?;
        let tx = db
            .begin_read()
            .map_err(|e| self.err("cannot read the older store", e))?;
        let names: Vec<String> = tx
            .list_tables()
            .map_err(|e| self.err("cannot read the older store", e))?
            .map(|t| t.name().to_string())
            .collect();
        let has = |t: &str| names.iter().any(|n| n == t);
        let bad = |e: &dyn std::fmt::Display| self.err("cannot read the older store", e);
        if has(LOG.name()) {
            let table = tx.open_table(LOG).map_err(|e| bad(&e))?;
            let mut run: Vec<Vec<u8>> = Vec::new();
            let mut first = 0;
            for row in table.iter().map_err(|e| bad(&e))? {
                let (k, v) = row.map_err(|e| bad(&e))?;
                let seq = k.value();
                if seq < self.log.next() {
                    continue;
                }
                if !run.is_empty() && (seq != first + run.len() as u64 || run.len() >= 1024) {
                    self.move_run(first, &run)?;
                    run.clear();
                }
                if run.is_empty() {
                    first = seq;
                }
                run.push(v.value().to_vec());
            }
            self.move_run(first, &run)?;
        }
        if has(CHUNKS.name()) {
            let table = tx.open_table(CHUNKS).map_err(|e| bad(&e))?;
            for row in table.iter().map_err(|e| bad(&e))? {
                let (k, v) = row.map_err(|e| bad(&e))?;
                let (first, count) = k.value();
                if count == 0 || first + u64::from(count) <= self.log.next() {
                    continue;
                }
                let run: Vec<Vec<u8>> = segments::payload_records(v.value())
                    .map(<[u8]>::to_vec)
                    .collect();
                let skip = usize::try_from(self.log.next().saturating_sub(first))
                    .unwrap_or(usize::MAX)
                    .min(run.len());
                self.move_run(first + skip as u64, &run[skip..])?;
            }
        }
        let mut state = cursors::State::default();
        if has(ENDPOINTS.name()) {
            let ids = tx.open_table(ENDPOINTS).map_err(|e| bad(&e))?;
            let positions: BTreeMap<u16, u64> = if has(CURSORS.name()) {
                let table = tx.open_table(CURSORS).map_err(|e| bad(&e))?;
                let mut m = BTreeMap::new();
                for row in table.iter().map_err(|e| bad(&e))? {
                    let (k, v) = row.map_err(|e| bad(&e))?;
                    m.insert(k.value(), v.value());
                }
                m
            } else {
                BTreeMap::new()
            };
            for row in ids.iter().map_err(|e| bad(&e))? {
                let (k, v) = row.map_err(|e| bad(&e))?;
                let id = v.value();
                state.endpoints.insert(
                    k.value().to_string(),
                    (id, positions.get(&id).copied().unwrap_or(0)),
                );
            }
        }
        if has(META.name()) {
            let meta = tx.open_table(META).map_err(|e| bad(&e))?;
            state.next = meta
                .get("next")
                .map_err(|e| bad(&e))?
                .map_or(0, |v| v.value());
        }
        drop(tx);
        drop(db);
        {
            let mut guard = lock(&self.cursors);
            let (file, current) = &mut *guard;
            // The cursor file is created at open (empty) when there was none; one naming
            // endpoints was written by an earlier pass of this move and wins.
            if current.endpoints.is_empty() {
                state.next = state.next.max(self.log.next()).max(current.next);
                *current = state;
                self.write_checkpoint(file, current)?;
            }
            self.next.fetch_max(current.next, Ordering::AcqRel);
        }
        std::fs::remove_file(old).map_err(|e| self.err("cannot delete the older store", e))
    }

    fn move_run(&self, first: u64, run: &[Vec<u8>]) -> Result<(), StoreError> {
        if run.is_empty() {
            return Ok(());
        }
        let slices: Vec<&[u8]> = run.iter().map(Vec::as_slice).collect();
        self.log
            .append(first, &slices, &[], 0)
            .map_err(|e| self.err("cannot move the older store's records", e))?;
        self.next
            .fetch_max(first + run.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    /// Writes `state` (with the next sequence number as far as this process knows) to the
    /// cursor file, synced: a checkpoint covering every cursor
    /// frame written so far, since `state` holds them all. Call with the cursor lock held
    /// (it is what `file` and `state` are borrowed from), so no cursor frame is written
    /// between reading the mark and the write.
    fn write_checkpoint(
        &self,
        file: &mut cursors::CursorFile,
        state: &mut cursors::State,
    ) -> Result<(), StoreError> {
        let mark = self.log.cursor_mark();
        state.next = state.next.max(self.next.load(Ordering::Acquire));
        file.write(state)
            .map_err(|e| self.err("cannot write the cursors", e))?;
        self.log.checkpointed(mark);
        Ok(())
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives every name in `names` an id (keeping ids already assigned) and reads the cursors
    /// and the next sequence number. Writes (synced) only when there is a new endpoint: the
    /// log's records name endpoints by these ids, and a new endpoint's cursor starts at the
    /// current end, so the ids must be on disk before the first record naming them is.
    pub fn recover(&self, names: &[&str]) -> Result<Recovered, StoreError> {
        let mut guard = lock(&self.cursors);
        let (file, state) = &mut *guard;
        let next = state
            .next
            .max(self.log.next())
            .max(self.next.load(Ordering::Acquire))
            .max(1);
        let mut changed = false;
        for name in names {
            if !state.endpoints.contains_key(*name) {
                let id = state
                    .endpoints
                    .values()
                    .map(|&(id, _)| id)
                    .max()
                    .map_or(Some(0), |m| m.checked_add(1))
                    .ok_or_else(|| self.err("endpoints", "more than 65535 endpoints"))?;
                // A new endpoint starts at the current end: it never saw what was accepted
                // before it existed.
                state.endpoints.insert((*name).to_string(), (id, next - 1));
                changed = true;
            }
        }
        if changed {
            state.next = state.next.max(next);
            self.write_checkpoint(file, state)?;
        }
        self.next.fetch_max(next, Ordering::AcqRel);
        Ok(Recovered {
            endpoints: state
                .endpoints
                .iter()
                .map(|(n, &(id, _))| (n.clone(), id))
                .collect(),
            cursors: state.endpoints.values().copied().collect(),
            next,
        })
    }

    /// Calls `f` with every record in the log, in order (used once, on open, for the counts).
    pub fn scan(&self, f: impl FnMut(u64, &[u8])) -> Result<(), StoreError> {
        self.log.scan(f).map_err(|e| self.err("log", e))
    }

    /// Appends `records` numbered from `first`, durably: when this returns `Ok` they are on
    /// disk (fsync'd), and an input may acknowledge them.
    pub fn append(&self, first: u64, records: &[&[u8]]) -> Result<(), StoreError> {
        self.commit(first, records, &[], None).map(|_| ())
    }

    /// Sets the endpoints' `cursors` in memory (they only move forward; unknown ids are
    /// ignored).
    fn set_cursors(state: &mut cursors::State, moved: &[(u16, u64)]) {
        for &(endpoint, cursor) in moved {
            if let Some((_, c)) = state.endpoints.values_mut().find(|(id, _)| *id == endpoint) {
                *c = (*c).max(cursor);
            }
        }
    }

    /// Up to `max` records after sequence `after`, in order.
    pub fn read_after(&self, after: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.log
            .read_after(after, max)
            .map_err(|e| self.err("cannot read", e))
    }

    /// One commit of the committer: appends `records` numbered from `first` (none: `first`
    /// is ignored) and a cursor frame of the endpoints' `cursors` (settled positions that
    /// moved) to the log in one write, synced (an input may acknowledge the records when
    /// this returns), then deletes the records up to `delete_through`. Returns the records
    /// and bytes deleted. Cursors alone go in a frame of their own (one write and sync), or
    /// to the checkpoint when the log has no file to take them.
    pub fn commit(
        &self,
        first: u64,
        records: &[&[u8]],
        cursors: &[(u16, u64)],
        delete_through: Option<u64>,
    ) -> Result<(u64, u64), StoreError> {
        if !records.is_empty() || !cursors.is_empty() {
            // Held across the write: the checkpoint's mark must not pass a frame whose
            // cursors `state` does not hold yet.
            let mut guard = lock(&self.cursors);
            let (file, state) = &mut *guard;
            let end = first + records.len() as u64;
            let next = if records.is_empty() {
                self.next.load(Ordering::Acquire)
            } else {
                end.max(self.next.load(Ordering::Acquire))
            };
            let written = self
                .log
                .append(first, records, cursors, next)
                .map_err(|e| self.err("cannot append", e))?;
            if !records.is_empty() {
                self.next.fetch_max(end, Ordering::AcqRel);
            }
            Self::set_cursors(state, cursors);
            if !written {
                self.write_checkpoint(file, state)?;
            }
        }
        // The cursors that let these records go were synced above (or before): a crash
        // after the deletion finds them, not records it would deliver again.
        Ok(delete_through.map_or((0, 0), |t| self.delete(t)))
    }

    /// Drops the records up to `through` from the log and deletes the files left with none,
    /// writing the checkpoint first when one of them holds cursor frames it does not cover.
    /// A failing checkpoint keeps the files (they go at a later deletion) and says so: the
    /// records are passed either way.
    fn delete(&self, through: u64) -> (u64, u64) {
        let (records, bytes, waits) = self.log.delete_through(through);
        if !waits {
            return (records, bytes);
        }
        let checkpoint = {
            let mut guard = lock(&self.cursors);
            let (file, state) = &mut *guard;
            self.write_checkpoint(file, state)
        };
        if let Err(e) = checkpoint {
            tracing::warn!("{e} (a passed log file is kept until it can be written)");
            return (records, bytes);
        }
        let (more_records, more_bytes, _) = self.log.delete_through(through);
        (records + more_records, bytes + more_bytes)
    }

    /// Deletes the records up to `through` (which every cursor has passed); returns the records
    /// and bytes deleted.
    pub fn delete_through(&self, through: u64) -> Result<(u64, u64), StoreError> {
        Ok(self.delete(through))
    }

    /// The pipeline stops: log files that go from now on (the last checkpoint's) are renamed
    /// for deletion, not deleted, and the log's janitor deletes nothing more, so that
    /// stopping waits for no deletion (slow on a file system mounted with `discard`); the next
    /// open deletes them.
    pub(crate) fn stopping(&self) {
        self.log.stop_deleting();
    }

    /// At a clean stop: sets the endpoints' `cursors` and writes the checkpoint (synced) if
    /// they moved or cursor frames are newer than it, so the next open reads one file of
    /// cursors; then deletes the records up to `delete_through` (the records and bytes).
    pub fn checkpoint(
        &self,
        cursors: &[(u16, u64)],
        delete_through: Option<u64>,
    ) -> Result<(u64, u64), StoreError> {
        {
            let mut guard = lock(&self.cursors);
            let (file, state) = &mut *guard;
            Self::set_cursors(state, cursors);
            if !cursors.is_empty() || self.log.needs_checkpoint() {
                self.write_checkpoint(file, state)?;
            }
        }
        Ok(delete_through.map_or((0, 0), |t| self.delete(t)))
    }

    /// Records in the log (for tests and reports).
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.log.len())
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::codec::put_len;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hubroute-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Records read back in order from any position, survive a reopen, and numbering goes on
    /// after everything was delivered and deleted; a second process is refused.
    #[test]
    fn records_read_back_and_numbering_survives_deletion() {
        let d = dir("basic");
        let records: Vec<Vec<u8>> = (0..3000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        {
            let store = Store::open(&d).unwrap();
            let e = Store::open(&d).unwrap_err().to_string();
            assert!(e.contains("another hubroute process"), "{e}");
            assert_eq!(store.recover(&["a"]).unwrap().next, 1);
            store.append(1, &slices).unwrap();
            assert_eq!(store.len().unwrap(), 3000);
            for after in [0, 1, 999, 2999] {
                let read = store.read_after(after, 10_000).unwrap();
                assert_eq!(read.len() as u64, 3000 - after);
                assert_eq!(read[0].1, (after as u32).to_le_bytes());
            }
            assert_eq!(store.read_after(10, 3).unwrap().len(), 3);
        }
        let store = Store::open(&d).unwrap();
        let r = store.recover(&["a"]).unwrap();
        assert_eq!((r.next, r.cursors[&0]), (3001, 0));
        let (n, bytes) = store.commit(0, &[], &[(0, 3000)], Some(3000)).unwrap();
        assert_eq!((n, bytes), (3000, 12_000));
        assert!(store.is_empty().unwrap());
        drop(store);
        let store = Store::open(&d).unwrap();
        let r = store.recover(&["a", "b"]).unwrap();
        assert_eq!((r.next, r.cursors[&0], r.cursors[&1]), (3001, 3000, 3000));
        drop(store);
        std::fs::remove_dir_all(&d).ok();
    }

    /// A store an older hubroute wrote (redb: one entry per record in `log`, chunks of
    /// records in `chunks`, ids, cursors and `next` in tables) keeps its records, ids and
    /// cursors: they are moved into the log and the cursor file, once, and the database goes.
    #[test]
    fn an_older_store_is_moved_into_the_files() {
        let d = dir("migrate");
        std::fs::create_dir_all(&d).unwrap();
        {
            let db = Database::create(d.join(FILE_NAME)).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut log = tx.open_table(LOG).unwrap();
                for seq in 5..9u64 {
                    log.insert(seq, [seq as u8].as_slice()).unwrap();
                }
                let mut chunks = tx.open_table(CHUNKS).unwrap();
                let mut value = Vec::new();
                for seq in 9..12u8 {
                    put_len(&mut value, 2);
                    value.extend_from_slice(&[seq, seq]);
                }
                chunks.insert((9, 3), value.as_slice()).unwrap();
                chunks.insert((u64::MAX, 0), [].as_slice()).unwrap();
                let mut ids = tx.open_table(ENDPOINTS).unwrap();
                ids.insert("a", 0).unwrap();
                ids.insert("b", 1).unwrap();
                let mut cursors = tx.open_table(CURSORS).unwrap();
                cursors.insert(0, 6).unwrap();
                cursors.insert(1, 4).unwrap();
                let mut meta = tx.open_table(META).unwrap();
                meta.insert("next", 12).unwrap();
            }
            tx.commit().unwrap();
        }
        for _ in 0..2 {
            let store = Store::open(&d).unwrap();
            assert!(!d.join(FILE_NAME).exists());
            let recovered = store.recover(&["a", "b"]).unwrap();
            assert_eq!(recovered.next, 12);
            assert_eq!(recovered.endpoints["b"], 1);
            assert_eq!((recovered.cursors[&0], recovered.cursors[&1]), (6, 4));
            let read = store.read_after(0, 10).unwrap();
            let seqs: Vec<u64> = read.iter().map(|(s, _)| *s).collect();
            assert_eq!(seqs, [5, 6, 7, 8, 9, 10, 11]);
            assert_eq!(read[3].1, [8]);
            assert_eq!(read[6].1, [11, 11]);
        }
        std::fs::remove_dir_all(&d).ok();
    }

    /// The checkpoint as the cursor file holds it: endpoint id → cursor, and `next`.
    fn checkpoint_on_disk(d: &Path) -> (BTreeMap<u16, u64>, u64) {
        let (_, state) = cursors::CursorFile::open(&d.join(CURSOR_FILE_NAME))
            .unwrap()
            .unwrap();
        (state.endpoints.values().copied().collect(), state.next)
    }

    /// Cursor frames ride in the commits across several log files; a file holding some is
    /// deleted only after the checkpoint is written (the cursor file then holds its
    /// cursors), and a crash (no clean stop) finds each endpoint's newest cursor.
    #[test]
    fn cursor_frames_span_files_deletion_and_checkpoint() {
        let d = dir("cursor-frames");
        let records: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 100]).collect();
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        {
            let store = Store::open(&d).unwrap();
            store.log.set_limits(500, 500);
            assert_eq!(store.recover(&["a", "b"]).unwrap().next, 1);
            assert_eq!(
                checkpoint_on_disk(&d),
                (BTreeMap::from([(0, 0), (1, 0)]), 1)
            );
            // Four commits of 10 records (a file each), each carrying cursors.
            store.commit(1, &slices[..10], &[], None).unwrap();
            store.commit(11, &slices[10..20], &[(0, 10)], None).unwrap();
            store
                .commit(21, &slices[20..30], &[(0, 20), (1, 5)], None)
                .unwrap();
            store.commit(31, &slices[30..], &[(1, 10)], None).unwrap();
            assert_eq!(store.log.files(), 4);
            // Nothing deleted yet: the checkpoint is untouched.
            assert_eq!(checkpoint_on_disk(&d).0, BTreeMap::from([(0, 0), (1, 0)]));
            // Every endpoint passed 20: the first file goes (no cursor frames, no
            // checkpoint); the second holds cursor frames, so the checkpoint is written
            // first, with every cursor written so far.
            assert_eq!(store.delete_through(20).unwrap(), (20, 2000));
            assert_eq!(store.log.files(), 2);
            assert_eq!(
                checkpoint_on_disk(&d),
                (BTreeMap::from([(0, 20), (1, 10)]), 41)
            );
            // A frame newer than that checkpoint, in the last file (made roomier: a full
            // file takes no cursor frame alone).
            store.log.set_limits(1 << 20, 500);
            store.commit(0, &[], &[(0, 35)], None).unwrap();
            assert!(store.log.needs_checkpoint());
        }
        // A crash: no checkpoint at stop. The newest cursors are the frames' and the
        // checkpoint's highest.
        let store = Store::open(&d).unwrap();
        store.log.set_limits(500, 500);
        let r = store.recover(&["a", "b"]).unwrap();
        assert_eq!((r.cursors[&0], r.cursors[&1], r.next), (35, 10, 41));
        assert!(store.log.needs_checkpoint());
        // Deleting the rest writes the checkpoint again before the files go.
        assert_eq!(
            store.commit(0, &[], &[(1, 40)], Some(40)).unwrap(),
            (20, 2000)
        );
        assert_eq!(store.log.files(), 0);
        assert_eq!(
            checkpoint_on_disk(&d),
            (BTreeMap::from([(0, 35), (1, 40)]), 41)
        );
        // With no file open, cursors alone go to the checkpoint.
        store.commit(0, &[], &[(0, 40)], None).unwrap();
        assert_eq!(checkpoint_on_disk(&d).0, BTreeMap::from([(0, 40), (1, 40)]));
        drop(store);
        let store = Store::open(&d).unwrap();
        let r = store.recover(&["a", "b"]).unwrap();
        assert_eq!((r.cursors[&0], r.cursors[&1], r.next), (40, 40, 41));
        std::fs::remove_dir_all(&d).ok();
    }

    /// At open every cursor is the highest the checkpoint and any cursor frame holds,
    /// whatever order they were written in; a clean stop's checkpoint covers them all.
    #[test]
    fn reopen_takes_the_highest_cursor() {
        let d = dir("highest");
        let records: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 10]).collect();
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        {
            let store = Store::open(&d).unwrap();
            store.recover(&["a", "b", "c"]).unwrap();
            store.append(1, &slices).unwrap();
            // b's checkpoint is above the frames written after it.
            store.checkpoint(&[(1, 8)], None).unwrap();
            store.commit(0, &[], &[(0, 7), (1, 3)], None).unwrap();
            store.commit(0, &[], &[(0, 4), (2, 6)], None).unwrap();
        }
        {
            let store = Store::open(&d).unwrap();
            let r = store.recover(&["a", "b", "c"]).unwrap();
            assert_eq!((r.cursors[&0], r.cursors[&1], r.cursors[&2]), (7, 8, 6));
            assert_eq!(r.next, 11);
            // The log's frames raised the checkpoint: it is written at a clean stop.
            assert!(store.log.needs_checkpoint());
            store.checkpoint(&[], None).unwrap();
            assert_eq!(
                checkpoint_on_disk(&d),
                (BTreeMap::from([(0, 7), (1, 8), (2, 6)]), 11)
            );
        }
        // Now the checkpoint covers every frame: nothing to write.
        let store = Store::open(&d).unwrap();
        assert!(!store.log.needs_checkpoint());
        let r = store.recover(&["a", "b", "c"]).unwrap();
        assert_eq!((r.cursors[&0], r.cursors[&1], r.cursors[&2]), (7, 8, 6));
        std::fs::remove_dir_all(&d).ok();
    }

    /// A log written before cursor frames existed (record frames only, built here byte by
    /// byte as that version wrote them, and a format 1 cursor file) opens with its records
    /// and the cursor file's cursors, is upgraded so that the older version no longer opens
    /// it, and takes cursor frames from then on.
    #[test]
    fn an_old_log_without_cursor_frames_opens() {
        let d = dir("old-log");
        std::fs::create_dir_all(d.join(LOG_DIR)).unwrap();
        let mut file = Vec::new();
        for (first, records) in [
            (1u64, &[&b"one"[..], b"two"][..]),
            (3, &[&b"three"[..]][..]),
        ] {
            let mut payload = Vec::new();
            for r in records {
                put_len(&mut payload, r.len());
                payload.extend_from_slice(r);
            }
            let mut header = Vec::new();
            header.extend_from_slice(b"HRL1");
            header.extend_from_slice(&(records.len() as u32).to_le_bytes());
            header.extend_from_slice(&first.to_le_bytes());
            header.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&header);
            hasher.update(&payload);
            header.extend_from_slice(&hasher.finalize().to_le_bytes());
            file.extend_from_slice(&header);
            file.extend_from_slice(&payload);
        }
        std::fs::write(d.join(LOG_DIR).join("00000000000000000001.log"), &file).unwrap();
        let mut state = cursors::State {
            next: 1,
            ..cursors::State::default()
        };
        state.endpoints.insert("a".into(), (0, 1));
        cursors::CursorFile::create_format1(&d.join(CURSOR_FILE_NAME), &state).unwrap();
        {
            let store = Store::open(&d).unwrap();
            // Upgraded before anything else: the older build's files are out of its sight
            // and its cursor file is one it refuses.
            let names: Vec<String> = std::fs::read_dir(d.join(LOG_DIR))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(names, ["00000000000000000001.log2"]);
            let (f, s) = cursors::CursorFile::open(&d.join(CURSOR_FILE_NAME))
                .unwrap()
                .unwrap();
            assert!(f.upgraded());
            assert_eq!(s, state);
            assert!(!store.log.needs_checkpoint());
            let r = store.recover(&["a"]).unwrap();
            assert_eq!((r.cursors[&0], r.next), (1, 4));
            let read = store.read_after(1, 10).unwrap();
            assert_eq!(read, [(2, b"two".to_vec()), (3, b"three".to_vec())]);
            store.commit(4, &[&b"four"[..]], &[(0, 3)], None).unwrap();
        }
        let store = Store::open(&d).unwrap();
        let r = store.recover(&["a"]).unwrap();
        assert_eq!((r.cursors[&0], r.next), (3, 5));
        assert_eq!(store.read_after(3, 10).unwrap(), [(4, b"four".to_vec())]);
        std::fs::remove_dir_all(&d).ok();
    }
}
