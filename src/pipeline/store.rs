//! The pipeline's durable store: an append-only log of accepted records ([`segments`]: files
//! of checksummed frames, one write and one `fdatasync` per group commit) and, in a
//! [redb](https://docs.rs/redb) database file, one delivery cursor per endpoint.
//!
//! Why redb for the cursors: it is pure Rust (no C toolchain, `forbid(unsafe_code)` stays
//! meaningful for our code), its commits are ACID and crash-safe, and a single file is easy
//! to place and back up. The records left it (see [`segments`] for why): redb's B-tree cost
//! the committer about 10k instructions per message in copies, page zeroing, checksums and
//! file growth, where the log's vectored write costs a CRC.
//!
//! Tables:
//! * `endpoints`: endpoint name → its id in the store, so that records stay valid when the
//!   routing configuration is edited between runs (ids are never reused).
//! * `cursors`: endpoint id → the last sequence number that endpoint has settled (delivered or
//!   dead-lettered). Records at or below every cursor are deleted.
//! * `meta`: `next` → the next sequence number (kept when the log is empty).
//! * `chunks` and `log`: where records were before the segment log (chunks of records, and
//!   before that one entry per record); what an older hubroute left there is moved into the
//!   log when the store is opened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::{Database, Durability, ReadableTable, TableDefinition, TableHandle, WriteTransaction};

mod segments;

/// The layout before chunks: sequence number → one record.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// The layout before the segment log: (first sequence number, record count) → that many
/// records, each a LEB128 length and its bytes; `(u64::MAX, 0)` an empty end marker.
const CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");
const ENDPOINTS: TableDefinition<&str, u16> = TableDefinition::new("endpoints");
const CURSORS: TableDefinition<u16, u64> = TableDefinition::new("cursors");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The store's database file inside its directory.
pub const FILE_NAME: &str = "hubroute.redb";

/// The directory of the record log inside the store's directory.
pub const LOG_DIR: &str = "log";

/// A store operation failed; the message names the store and the operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {path}: {what}: {detail}")]
pub struct StoreError {
    path: String,
    what: &'static str,
    detail: String,
}

/// The open store. Shared by the committer and every endpoint worker (redb serialises write
/// transactions and lets reads run beside them; the log is appended by the committer only
/// and read by anyone).
pub struct Store {
    db: Database,
    path: PathBuf,
    log: segments::Segments,
    /// The next sequence number as far as this process knows (written as `meta.next` with
    /// the cursors, so that numbering goes on when every record is deleted).
    next: AtomicU64,
    /// Whether a commit since the last durable one was not synced ([`Store::sync`] has work).
    unsynced: AtomicBool,
    /// Whether a database commit since open, or since the last one that saved redb's
    /// allocator state, changed it (redb then saves it in a commit of its own when dropped).
    dirty: AtomicBool,
    /// Shutting down ([`Store::begin_close`]): durable commits save the allocator state.
    closing: AtomicBool,
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

/// redb's page cache: it holds only cursors and endpoint ids now (and, once, an older
/// store's records being moved into the log), so a small one does.
const CACHE_BYTES: usize = 4 << 20;

impl Store {
    fn err(&self, what: &'static str, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            what,
            detail: e.to_string(),
        }
    }

    /// Opens (or creates) the store in `dir`. Fails clearly when another process has it open.
    /// Checks the record log (a write a crash tore is cut off; see [`segments`]).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        let fail = |what, detail: String| StoreError {
            path: path.display().to_string(),
            what,
            detail,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| fail("cannot create its directory", e.to_string()))?;
        // The database first: its lock keeps a second process away from the log too.
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
        let log = segments::Segments::open(&dir.join(LOG_DIR))
            .map_err(|e| fail("cannot open the record log", e.to_string()))?;
        let next = log.next();
        Ok(Store {
            db,
            path,
            log,
            next: AtomicU64::new(next),
            unsynced: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        })
    }

    /// Where the store file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives every name in `names` an id (keeping ids already assigned), moves records an
    /// older hubroute kept in the database into the log, and reads the cursors and the next
    /// sequence number. One transaction, and none when nothing is new (a start with the
    /// same endpoints writes nothing).
    pub fn recover(&self, names: &[&str]) -> Result<Recovered, StoreError> {
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        let mut out = Recovered::default();
        let moved = self.migrate(&tx)?;
        let mut changed = moved;
        {
            let mut endpoints = tx
                .open_table(ENDPOINTS)
                .map_err(|e| self.err("endpoints", e))?;
            for entry in endpoints.iter().map_err(|e| self.err("endpoints", e))? {
                let (k, v) = entry.map_err(|e| self.err("endpoints", e))?;
                out.endpoints.insert(k.value().to_string(), v.value());
            }
            let meta = tx.open_table(META).map_err(|e| self.err("meta", e))?;
            let next = meta
                .get("next")
                .map_err(|e| self.err("meta", e))?
                .map_or(0, |v| v.value());
            out.next = next.max(self.log.next()).max(1);
            self.next.store(out.next, Ordering::Release);
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
                    changed = true;
                }
            }
            for entry in cursors.iter().map_err(|e| self.err("cursors", e))? {
                let (k, v) = entry.map_err(|e| self.err("cursors", e))?;
                out.cursors.insert(k.value(), v.value());
            }
        }
        if moved {
            let mut meta = tx.open_table(META).map_err(|e| self.err("meta", e))?;
            meta.insert("next", out.next)
                .map_err(|e| self.err("meta", e))?;
        }
        if !changed {
            // Nothing new: no commit (it would cost redb an allocator-state commit at close).
            tx.abort().map_err(|e| self.err("cannot read", e))?;
            return Ok(out);
        }
        // Synced: the log's records name endpoints by these ids, and a new endpoint's
        // cursor starts at the current end, so the ids must be on disk before the first
        // record is (a restart that gave them again would skip what was accepted for them).
        tx.set_durability(Durability::Immediate);
        self.dirty.store(true, Ordering::Release);
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        Ok(out)
    }

    /// Moves records an older hubroute kept in the database (table `log`, one entry per
    /// record; table `chunks`) into the log, so that nothing accepted before an upgrade is
    /// lost, and drops those tables in `tx`; whether it moved anything. Records the log
    /// already has (a crash between the move and the commit) are not moved twice.
    fn migrate(&self, tx: &WriteTransaction) -> Result<bool, StoreError> {
        let names: Vec<String> = tx
            .list_tables()
            .map_err(|e| self.err("cannot list tables", e))?
            .map(|t| t.name().to_string())
            .collect();
        let mut moved = false;
        if names.iter().any(|n| n == LOG.name()) {
            {
                let log = tx.open_table(LOG).map_err(|e| self.err("log", e))?;
                let mut run: Vec<Vec<u8>> = Vec::new();
                let mut first = 0;
                for row in log.iter().map_err(|e| self.err("log", e))? {
                    let (k, v) = row.map_err(|e| self.err("log", e))?;
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
            tx.delete_table(LOG)
                .map_err(|e| self.err("cannot move the old log", e))?;
            moved = true;
        }
        if names.iter().any(|n| n == CHUNKS.name()) {
            {
                let chunks = tx.open_table(CHUNKS).map_err(|e| self.err("log", e))?;
                for row in chunks.iter().map_err(|e| self.err("log", e))? {
                    let (k, v) = row.map_err(|e| self.err("log", e))?;
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
            tx.delete_table(CHUNKS)
                .map_err(|e| self.err("cannot move the old log", e))?;
            moved = true;
        }
        Ok(moved)
    }

    fn move_run(&self, first: u64, run: &[Vec<u8>]) -> Result<(), StoreError> {
        if run.is_empty() {
            return Ok(());
        }
        let slices: Vec<&[u8]> = run.iter().map(Vec::as_slice).collect();
        self.log
            .append(first, &slices)
            .map_err(|e| self.err("cannot move the old log", e))
    }

    /// Calls `f` with every record in the log, in order (used once, on open, for the counts).
    pub fn scan(&self, f: impl FnMut(u64, &[u8])) -> Result<(), StoreError> {
        self.log.scan(f).map_err(|e| self.err("log", e))
    }

    /// Appends `records` numbered from `first`, durably: when this returns `Ok` they are on
    /// disk (fsync'd), and an input may acknowledge them.
    pub fn append(&self, first: u64, records: &[&[u8]]) -> Result<(), StoreError> {
        self.commit(first, records, &[], None, true).map(|_| ())
    }

    /// Up to `max` records after sequence `after`, in order.
    pub fn read_after(&self, after: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.log
            .read_after(after, max)
            .map_err(|e| self.err("cannot read", e))
    }

    /// Moves `endpoint`'s cursor to `cursor` and deletes the records up to `delete_through`
    /// (which every cursor has passed); `durable`: fsync now, or let the next durable commit
    /// carry it (a crash before then only repeats deliveries). Returns the records and bytes
    /// deleted.
    pub fn advance(
        &self,
        endpoint: u16,
        cursor: u64,
        delete_through: Option<u64>,
        durable: bool,
    ) -> Result<(u64, u64), StoreError> {
        self.commit(0, &[], &[(endpoint, cursor)], delete_through, durable)
    }

    /// One commit of the committer: appends `records` numbered from `first` (none: `first`
    /// is ignored) to the log, synced (an input may acknowledge them when this returns),
    /// sets the endpoints' `cursors` (`durable`: synced; otherwise the next durable commit
    /// carries them, and a crash before it only repeats deliveries) and deletes the records
    /// up to `delete_through`. Returns the records and bytes deleted.
    pub fn commit(
        &self,
        first: u64,
        records: &[&[u8]],
        cursors: &[(u16, u64)],
        delete_through: Option<u64>,
        durable: bool,
    ) -> Result<(u64, u64), StoreError> {
        if !records.is_empty() {
            self.log
                .append(first, records)
                .map_err(|e| self.err("cannot append", e))?;
            self.next
                .fetch_max(first + records.len() as u64, Ordering::AcqRel);
        }
        if !cursors.is_empty() {
            let mut tx = self
                .db
                .begin_write()
                .map_err(|e| self.err("cannot write", e))?;
            tx.set_durability(if durable {
                Durability::Immediate
            } else {
                Durability::None
            });
            let saves_state = durable && self.closing.load(Ordering::Acquire);
            tx.set_quick_repair(saves_state);
            {
                let mut table = tx.open_table(CURSORS).map_err(|e| self.err("cursors", e))?;
                for &(endpoint, cursor) in cursors {
                    table
                        .insert(endpoint, cursor)
                        .map_err(|e| self.err("cursors", e))?;
                }
                let mut meta = tx.open_table(META).map_err(|e| self.err("meta", e))?;
                meta.insert("next", self.next.load(Ordering::Acquire))
                    .map_err(|e| self.err("meta", e))?;
            }
            if !durable {
                self.unsynced.store(true, Ordering::Release);
            }
            self.dirty.store(true, Ordering::Release);
            tx.commit().map_err(|e| self.err("cannot commit", e))?;
            if saves_state {
                self.dirty.store(false, Ordering::Release);
            }
            if durable {
                // Carries every commit before it (commits are serialised by redb and, in
                // the pipeline, all made by the committer or, after it ended, by shutdown).
                self.unsynced.store(false, Ordering::Release);
            }
        }
        // Deleting before the cursors are synced is safe: what goes was settled by every
        // endpoint, and a cursor a crash sets back finds those records gone and passes them.
        Ok(delete_through.map_or((0, 0), |t| self.log.delete_through(t)))
    }

    /// Deletes the records up to `through` (which every cursor has passed); returns the records
    /// and bytes deleted.
    pub fn delete_through(&self, through: u64) -> Result<(u64, u64), StoreError> {
        Ok(self.log.delete_through(through))
    }

    /// Records in the log (for tests and reports).
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self.log.len())
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Shutting down: from now on a durable commit also saves redb's allocator state, which
    /// redb otherwise writes in a commit (two syncs) of its own when the database is dropped.
    /// Call before the last cursor commit, then [`Store::sync`].
    pub fn begin_close(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// A durable commit of everything committed so far (at shutdown); nothing to do (no
    /// fsync) when every commit since the last durable one was durable (and, after
    /// [`Store::begin_close`], the last one saved the allocator state).
    pub fn sync(&self) -> Result<(), StoreError> {
        let closing = self.closing.load(Ordering::Acquire);
        if !self.unsynced.load(Ordering::Acquire)
            && !(closing && self.dirty.load(Ordering::Acquire))
        {
            return Ok(());
        }
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        tx.set_durability(Durability::Immediate);
        tx.set_quick_repair(closing);
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        self.unsynced.store(false, Ordering::Release);
        if closing {
            self.dirty.store(false, Ordering::Release);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hubroute-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Records read back in order from any position, survive a reopen, and numbering goes on
    /// after everything was delivered and deleted.
    #[test]
    fn records_read_back_and_numbering_survives_deletion() {
        let d = dir("basic");
        let records: Vec<Vec<u8>> = (0..3000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        {
            let store = Store::open(&d).unwrap();
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
        assert_eq!(r.next, 3001);
        let (n, bytes) = store
            .commit(0, &[], &[(0, 3000)], Some(3000), true)
            .unwrap();
        assert_eq!((n, bytes), (3000, 12_000));
        assert!(store.is_empty().unwrap());
        drop(store);
        let store = Store::open(&d).unwrap();
        let r = store.recover(&["a"]).unwrap();
        assert_eq!((r.next, r.cursors[&0]), (3001, 3000));
        drop(store);
        std::fs::remove_dir_all(&d).ok();
    }

    fn put_len(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// A store written by earlier versions (one entry per record in `log`, chunks of records
    /// in `chunks`) keeps its records: they are moved into the log, once.
    #[test]
    fn older_layouts_are_moved_into_the_log() {
        let d = dir("migrate");
        {
            let store = Store::open(&d).unwrap();
            let tx = store.db.begin_write().unwrap();
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
            }
            tx.commit().unwrap();
        }
        for _ in 0..2 {
            let store = Store::open(&d).unwrap();
            let recovered = store.recover(&["a"]).unwrap();
            assert_eq!(recovered.next, 12);
            let read = store.read_after(0, 10).unwrap();
            let seqs: Vec<u64> = read.iter().map(|(s, _)| *s).collect();
            assert_eq!(seqs, [5, 6, 7, 8, 9, 10, 11]);
            assert_eq!(read[3].1, [8]);
            assert_eq!(read[6].1, [11, 11]);
        }
        std::fs::remove_dir_all(&d).ok();
    }
}
