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
//! * `chunks`: (first sequence number, record count) → that many consecutive records
//!   ([`super::codec`]), each as a LEB128 length and its bytes. A commit writes its records in
//!   a few chunks rather than one entry each: redb's per-key insert and, above all, per-key
//!   delete (B-tree rebalancing, page allocation) cost more than everything else the pipeline
//!   did per message. A chunk is deleted once every cursor has passed all of it. Chunks end
//!   by bytes just under a power-of-two leaf, an empty entry at the end (`END`) keeps
//!   appends from copying the previous chunk, and a large batch is written in transactions of
//!   at most `TRANSACTION_BYTES` (only the last one synced).
//! * `log`: the layout before chunks (sequence number → one record); records an older
//!   hubroute left there are moved into `chunks` when the store is opened.
//! * `endpoints`: endpoint name → its id in the store, so that records stay valid when the
//!   routing configuration is edited between runs (ids are never reused).
//! * `cursors`: endpoint id → the last sequence number that endpoint has settled (delivered or
//!   dead-lettered). Records at or below every cursor are deleted.
//! * `meta`: `next` → the next sequence number (kept when the log is empty).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");

/// An empty entry after every chunk, so that a new chunk goes into the B-tree's last leaf
/// beside it rather than beside the chunk before: redb rebuilds the leaf an insert goes into
/// (copy on write), and a leaf holding the previous half-megabyte chunk would be copied
/// whole on every append. Holds no records (count 0, empty value).
const END: (u64, u32) = (u64::MAX, 0);

/// Most records in one chunk, and most bytes of its value (a single record larger than that
/// is a chunk of its own). redb stores a value larger than a page in a leaf rounded up to a
/// power of two of pages: a value just under 512 KiB takes a 512 KiB leaf, where one just
/// over would take a leaf of 1 MiB, half of it zeros written, checksummed and synced. The
/// slack leaves room for the leaf's header and key. Small enough that a chunk partly passed
/// keeps little in the store, large enough that the per-entry costs vanish.
const CHUNK_RECORDS: usize = 1024;
const CHUNK_BYTES: usize = (512 << 10) - 1024;

/// Most bytes of records in one redb transaction. redb's write buffer is a tenth of its cache
/// ([`CACHE_BYTES`]); a transaction writing more than it holds has its first pages written
/// out before their checksums are computed at commit, and then read back from the file for
/// them. A larger batch is written as several transactions, all but the last not synced:
/// the last one's sync makes all of them durable at once, and a crash before it loses them
/// all (none was acknowledged).
const TRANSACTION_BYTES: usize = 2 << 20;

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

/// Bytes of `n` as a LEB128 length.
fn len_len(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

/// Where the chunk starting at `records[start]` ends (exclusive), and its value's length.
fn chunk_end(records: &[&[u8]], start: usize) -> (usize, usize) {
    let mut end = start;
    let mut len = 0;
    while end < records.len() && end - start < CHUNK_RECORDS {
        let more = len_len(records[end].len()) + records[end].len();
        if end > start && len + more > CHUNK_BYTES {
            break;
        }
        len += more;
        end += 1;
    }
    (end, len)
}

/// How many of `records` (from the start) the next transaction writes: whole chunks, at
/// least one, up to [`TRANSACTION_BYTES`].
fn transaction_end(records: &[&[u8]]) -> usize {
    let (mut end, mut bytes) = (0, 0);
    while end < records.len() {
        let (next, len) = chunk_end(records, end);
        if end > 0 && bytes + len > TRANSACTION_BYTES {
            break;
        }
        bytes += len;
        end = next;
    }
    end
}

/// The records of a chunk's value, in order; stops at a damaged length (a damaged record
/// is then missing, and reported as damaged by whoever expected it).
fn chunk_records(mut value: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if value.is_empty() {
            return None;
        }
        let n = crate::sink::view::read_len(&mut value).ok()?;
        if value.len() < n {
            value = &[];
            return None;
        }
        let (record, rest) = value.split_at(n);
        value = rest;
        Some(record)
    })
}
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
    /// Whether a commit since the last durable one was not synced ([`Store::sync`] has work).
    unsynced: std::sync::atomic::AtomicBool,
    /// The chunk being written (only the committer writes).
    scratch: std::sync::Mutex<Vec<u8>>,
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
        let store = Store {
            db,
            path,
            unsynced: std::sync::atomic::AtomicBool::new(false),
            scratch: std::sync::Mutex::new(Vec::new()),
        };
        let mut tx = store
            .db
            .begin_write()
            .map_err(|e| store.err("cannot write", e))?;
        // Not synced: the tables are created again by the next open if a crash loses them,
        // and the first durable commit (the first records) carries them.
        tx.set_durability(Durability::None);
        {
            let mut chunks = tx
                .open_table(CHUNKS)
                .map_err(|e| store.err("cannot open the log", e))?;
            if chunks
                .get(END)
                .map_err(|e| store.err("cannot open the log", e))?
                .is_none()
            {
                chunks
                    .insert(END, [].as_slice())
                    .map_err(|e| store.err("cannot open the log", e))?;
            }
            drop(chunks);
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
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        // Not synced (a start that stores nothing costs no fsync): what it writes (ids of new
        // endpoints, the old log moved into chunks) is written the same way again by the next
        // start if a crash loses it, and nothing refers to it before the first durable commit,
        // which carries it.
        tx.set_durability(Durability::None);
        let mut out = Recovered::default();
        {
            let mut endpoints = tx
                .open_table(ENDPOINTS)
                .map_err(|e| self.err("endpoints", e))?;
            for entry in endpoints.iter().map_err(|e| self.err("endpoints", e))? {
                let (k, v) = entry.map_err(|e| self.err("endpoints", e))?;
                out.endpoints.insert(k.value().to_string(), v.value());
            }
            self.migrate(&tx)?;
            let chunks = tx.open_table(CHUNKS).map_err(|e| self.err("log", e))?;
            let meta = tx.open_table(META).map_err(|e| self.err("meta", e))?;
            let last = chunks
                .range(..END)
                .map_err(|e| self.err("log", e))?
                .next_back()
                .transpose()
                .map_err(|e| self.err("log", e))?
                .map(|(k, _)| {
                    let (first, count) = k.value();
                    first + u64::from(count)
                });
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

    /// Moves records an older hubroute stored one per entry (table `log`) into chunks, so
    /// that nothing accepted before an upgrade is lost.
    fn migrate(&self, tx: &WriteTransaction) -> Result<(), StoreError> {
        let old: Vec<(u64, Vec<u8>)> = {
            let Ok(log) = tx.open_table(LOG) else {
                return Ok(());
            };
            let rows = log.iter().map_err(|e| self.err("log", e))?;
            rows.map(|r| {
                r.map(|(k, v)| (k.value(), v.value().to_vec()))
                    .map_err(|e| self.err("log", e))
            })
            .collect::<Result<_, _>>()?
        };
        if old.is_empty() {
            return Ok(());
        }
        // Consecutive runs become chunks (a gap cannot happen, but would start a new one).
        let mut run: Vec<&[u8]> = Vec::new();
        let mut first = old[0].0;
        for (i, (seq, bytes)) in old.iter().enumerate() {
            if i > 0 && *seq != first + run.len() as u64 {
                self.insert_chunks(tx, first, &run)?;
                run.clear();
                first = *seq;
            }
            run.push(bytes);
        }
        self.insert_chunks(tx, first, &run)?;
        let mut log = tx.open_table(LOG).map_err(|e| self.err("log", e))?;
        log.retain(|_, _| false)
            .map_err(|e| self.err("cannot move the old log", e))
    }

    /// Calls `f` with every record in the log, in order (used once, on open, for the counts).
    pub fn scan(&self, mut f: impl FnMut(u64, &[u8])) -> Result<(), StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| self.err("cannot read", e))?;
        let chunks = tx.open_table(CHUNKS).map_err(|e| self.err("log", e))?;
        for entry in chunks.iter().map_err(|e| self.err("log", e))? {
            let (k, v) = entry.map_err(|e| self.err("log", e))?;
            let (first, _) = k.value();
            for (i, record) in chunk_records(v.value()).enumerate() {
                f(first + i as u64, record);
            }
        }
        Ok(())
    }

    /// Appends `records` numbered from `first`, durably: when this returns `Ok` they are on
    /// disk (fsync'd), and an input may acknowledge them.
    pub fn append(&self, first: u64, records: &[&[u8]]) -> Result<(), StoreError> {
        self.commit(first, records, &[], None, true).map(|_| ())
    }

    /// Writes `records` numbered from `first` as chunks.
    fn insert_chunks(
        &self,
        tx: &WriteTransaction,
        first: u64,
        records: &[&[u8]],
    ) -> Result<(), StoreError> {
        let mut chunks = tx.open_table(CHUNKS).map_err(|e| self.err("log", e))?;
        // One buffer, kept between commits: a chunk assembled in fresh memory each time cost
        // page faults. redb copies it into its page.
        let mut value = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let mut start = 0;
        while start < records.len() {
            let (end, len) = chunk_end(records, start);
            value.clear();
            value.reserve(len);
            for record in &records[start..end] {
                put_len(&mut value, record.len());
                value.extend_from_slice(record);
            }
            let count = u32::try_from(end - start).unwrap_or(u32::MAX);
            chunks
                .insert((first + start as u64, count), value.as_slice())
                .map_err(|e| self.err("cannot append", e))?;
            start = end;
        }
        if value.capacity() > 2 * CHUNK_BYTES {
            // One huge record made it large: do not keep that.
            *value = Vec::new();
        }
        Ok(())
    }

    /// Up to `max` records after sequence `after`, in order.
    pub fn read_after(&self, after: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| self.err("cannot read", e))?;
        let chunks = tx.open_table(CHUNKS).map_err(|e| self.err("log", e))?;
        let mut out = Vec::new();
        let start = after.saturating_add(1);
        // The chunk holding `start` begins at or before it.
        let from = chunks
            .range(..=(start, u32::MAX))
            .map_err(|e| self.err("log", e))?
            .next_back()
            .transpose()
            .map_err(|e| self.err("log", e))?
            .map_or(start, |(k, _)| k.value().0);
        for entry in chunks.range((from, 0)..).map_err(|e| self.err("log", e))? {
            let (k, v) = entry.map_err(|e| self.err("log", e))?;
            let (first, _) = k.value();
            for (i, record) in chunk_records(v.value()).enumerate() {
                let seq = first + i as u64;
                if seq >= start {
                    out.push((seq, record.to_vec()));
                    if out.len() >= max {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
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

    /// One transaction of the committer: appends `records` numbered from `first` (none:
    /// `first` is ignored), sets the endpoints' `cursors` and deletes the records up to
    /// `delete_through`. `durable`: synced when this returns (an input may acknowledge the
    /// records); otherwise the next durable commit carries it. Returns the records and bytes
    /// deleted.
    pub fn commit(
        &self,
        first: u64,
        mut records: &[&[u8]],
        cursors: &[(u16, u64)],
        delete_through: Option<u64>,
        durable: bool,
    ) -> Result<(u64, u64), StoreError> {
        let mut first = first;
        // A large batch: its first parts in transactions of their own, not synced (the last
        // one's sync covers them; see TRANSACTION_BYTES).
        loop {
            let end = transaction_end(records);
            if end >= records.len() {
                break;
            }
            let mut tx = self
                .db
                .begin_write()
                .map_err(|e| self.err("cannot write", e))?;
            tx.set_durability(Durability::None);
            self.insert_chunks(&tx, first, &records[..end])?;
            self.unsynced.store(true, Ordering::Release);
            tx.commit().map_err(|e| self.err("cannot commit", e))?;
            first += end as u64;
            records = &records[end..];
        }
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
                self.insert_chunks(&tx, first, records)?;
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
        if !durable {
            self.unsynced.store(true, Ordering::Release);
        }
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        if durable {
            // Carries every commit before it (commits are serialised by redb and, in the
            // pipeline, all made by the committer or, after it ended, by shutdown).
            self.unsynced.store(false, Ordering::Release);
        }
        Ok(deleted)
    }

    /// Deletes the chunks whose records are all at or below `through` inside `tx` (a chunk
    /// partly passed stays until every cursor has passed all of it); the records and bytes
    /// deleted.
    fn delete_in(&self, tx: &WriteTransaction, through: u64) -> Result<(u64, u64), StoreError> {
        let (mut records, mut freed) = (0u64, 0u64);
        let mut chunks = tx.open_table(CHUNKS).map_err(|e| self.err("log", e))?;
        chunks
            .retain_in(..=(through, u32::MAX), |(first, count), v| {
                if first.saturating_add(u64::from(count)) > through.saturating_add(1) {
                    return true;
                }
                for record in chunk_records(v) {
                    records += 1;
                    freed += record.len() as u64;
                }
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
        self.unsynced.store(true, Ordering::Release);
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        Ok(deleted)
    }

    /// Records in the log (for tests and reports).
    pub fn len(&self) -> Result<u64, StoreError> {
        let tx = self
            .db
            .begin_read()
            .map_err(|e| self.err("cannot read", e))?;
        let chunks = tx.open_table(CHUNKS).map_err(|e| self.err("log", e))?;
        let mut n = 0;
        for entry in chunks.iter().map_err(|e| self.err("log", e))? {
            let (k, _) = entry.map_err(|e| self.err("log", e))?;
            n += u64::from(k.value().1);
        }
        Ok(n)
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// A durable commit of everything committed so far (at shutdown); nothing to do (no
    /// fsync) when every commit since the last durable one was durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        if !self.unsynced.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut tx = self
            .db
            .begin_write()
            .map_err(|e| self.err("cannot write", e))?;
        tx.set_durability(Durability::Immediate);
        tx.commit().map_err(|e| self.err("cannot commit", e))?;
        self.unsynced.store(false, Ordering::Release);
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

    /// Records in chunks read back in order from any position, and a chunk is deleted only
    /// once every record in it is passed.
    #[test]
    fn chunks_read_from_anywhere_and_go_when_wholly_passed() {
        let d = dir("chunks");
        let store = Store::open(&d).unwrap();
        let c = CHUNK_RECORDS as u64;
        let total = 2 * c + c / 2;
        let records: Vec<Vec<u8>> = (0..total as u32)
            .map(|i| i.to_le_bytes().to_vec())
            .collect();
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        store.append(1, &slices).unwrap();
        assert_eq!(store.len().unwrap(), total);
        for after in [0, 1, c - 1, c, c + 1, 2 * c - 1, total - 1] {
            let read = store.read_after(after, 10_000).unwrap();
            assert_eq!(read.len() as u64, total - after);
            assert_eq!(read[0].0, after + 1);
            assert_eq!(read[0].1, (after as u32).to_le_bytes());
        }
        assert_eq!(store.read_after(10, 3).unwrap().len(), 3);
        // Through c + c/4: the first chunk (1..=c) goes, the second (c+1..=2c) stays.
        let (n, bytes) = store.commit(0, &[], &[], Some(c + c / 4), false).unwrap();
        assert_eq!((n, bytes), (c, c * 4));
        assert_eq!(store.read_after(0, 10_000).unwrap()[0].0, c + 1);
        let (n, _) = store.commit(0, &[], &[], Some(total), true).unwrap();
        assert_eq!(n, total - c);
        assert!(store.is_empty().unwrap());
        drop(store);
        std::fs::remove_dir_all(&d).ok();
    }

    /// Large records: chunks end by bytes, a batch larger than a transaction is written in
    /// several, and everything reads back in order.
    #[test]
    fn large_batches_span_chunks_and_transactions() {
        let d = dir("large");
        let store = Store::open(&d).unwrap();
        let records: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 100_000]).collect();
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        assert!(transaction_end(&slices) < slices.len());
        assert!(chunk_end(&slices, 0).0 < 6);
        store.append(7, &slices).unwrap();
        let read = store.read_after(6, 1000).unwrap();
        assert_eq!(read.len(), 100);
        for (i, (seq, bytes)) in read.iter().enumerate() {
            assert_eq!(*seq, 7 + i as u64);
            assert_eq!(bytes, &records[i]);
        }
        drop(store);
        let store = Store::open(&d).unwrap();
        assert_eq!(store.recover(&["a"]).unwrap().next, 107);
        drop(store);
        std::fs::remove_dir_all(&d).ok();
    }

    /// LEB128 lengths take as many bytes as `put_len` writes.
    #[test]
    fn length_prefix_sizes() {
        for n in [0, 1, 127, 128, 16383, 16384, 1 << 30] {
            let mut out = Vec::new();
            put_len(&mut out, n);
            assert_eq!(len_len(n), out.len(), "{n}");
        }
    }

    /// A store written with one entry per record (before chunks) keeps its records.
    #[test]
    fn an_old_per_record_log_is_moved_into_chunks() {
        let d = dir("migrate");
        {
            let store = Store::open(&d).unwrap();
            let tx = store.db.begin_write().unwrap();
            {
                let mut log = tx.open_table(LOG).unwrap();
                for seq in 5..9u64 {
                    log.insert(seq, [seq as u8].as_slice()).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let store = Store::open(&d).unwrap();
        let recovered = store.recover(&["a"]).unwrap();
        assert_eq!(recovered.next, 9);
        let read = store.read_after(0, 10).unwrap();
        let seqs: Vec<u64> = read.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [5, 6, 7, 8]);
        assert_eq!(read[3].1, [8]);
        drop(store);
        std::fs::remove_dir_all(&d).ok();
    }
}
