//! The log of accepted records: append-only segment files, one `write` and one `fdatasync` per
//! group commit.
//!
//! Why not redb for the records: the log is a queue (append at the tail, read forward, drop
//! the head), and redb's B-tree made the committer copy every record twice (into a chunk,
//! then into a zeroed page), checksum every page, and grow its file with a region-allocator
//! rewrite each time: about 10k instructions per message, more than everything else the
//! store did. Here the records go from the routing thread's buffers to the kernel in one
//! vectored write, behind a small header with a CRC-32 of the frame; the cursor file keeps
//! only what is small and changes in place (endpoint ids, a checkpoint of the cursors, the
//! next sequence number).
//!
//! Layout: `<store>/log/<first sequence, 20 digits>.log2`, each a run of frames of two kinds
//! with the same header:
//!
//! ```text
//! magic | count u32 | sequence u64 | payload length u32 | crc32 u32 | payload
//! ```
//!
//! (little-endian; the CRC covers the 20 header bytes before it and the payload).
//!
//! * A record frame (magic `HRL1`): `sequence` is its first record's, the payload `count`
//!   records, each a LEB128 length and its bytes. Sequence numbers rise from record frame to
//!   record frame (a gap is allowed: records deleted before a crash, or numbers an earlier
//!   store skipped).
//! * A cursor frame (magic `HRK1`): endpoints' delivery cursors as they were when it was
//!   written, so that a cursor moves durably in the write and sync of the records it rides
//!   with instead of a sync of the cursor file of its own. `sequence` is the next sequence
//!   number then, the payload `count` entries of endpoint id u16 and cursor u64. A log
//!   written before cursor frames existed has none and opens as before (its `.log` files
//!   are renamed `.log2`). The other way must not happen: an older hubroute would take a
//!   cursor frame for a torn write and cut off every record after it. It reads only `.log`
//!   files and refuses the cursor file this version writes (`cursors`' format 2), which
//!   the store makes so before this log opens: an older build stops with an error and
//!   touches nothing.
//!
//! Crash safety: a frame is acknowledged only after `fdatasync` of its file (and, for a new
//! file, of the directory that names it). At open every frame is checked (magic, CRC,
//! lengths, rising sequence); the last file is cut at the first frame that fails — a write
//! torn by a crash, which nobody was told was accepted (a torn cursor frame loses only
//! cursor moves, which are repeated deliveries at worst). A failed write is cut off the same
//! way at once, so a later frame never lands after garbage.
//!
//! Deletion: records every endpoint has passed are dropped from the in-memory index at once
//! (that is what the store's byte count and backpressure see); a file goes when every frame
//! in it has, the last one only once it is [`RECYCLE_BYTES`] long (a new file costs a
//! directory sync), so the disk holds at most that much, or one [`SEGMENT_BYTES`] file,
//! beyond the records still needed. A file holding cursor frames goes only once the store's
//! cursor file (the checkpoint) covers them: [`Segments::delete_through`] says when one
//! waits for that, the store writes the checkpoint and calls it again.
//!
//! A file that goes is renamed `….log2.deleting` at once (so no open reads it again) and
//! deleted by a thread of its own, the janitor: on a file system mounted with `discard`,
//! deleting a synced 17 MB file took 12–15 ms, which the committer (and `run`'s last
//! checkpoint) would otherwise wait for. Once the store stops, the janitor takes no new
//! file: what it has not deleted stays as `.deleting` files, which the next open deletes.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::pipeline::codec::put_len;

const MAGIC: [u8; 4] = *b"HRL1";
/// The file name suffix of a log file: `.log2` since the log holds cursor frames, so that an
/// older hubroute, which reads only `.log` files and would take a cursor frame for a torn
/// write, never sees one.
const SUFFIX: &str = ".log2";
/// The suffix of log files written before cursor frames: read, and renamed at open.
const OLD_SUFFIX: &str = ".log";
/// Appended to a log file's name when it goes: the janitor deletes it (see the module doc).
const RETIRED_SUFFIX: &str = ".deleting";
/// The magic of a cursor frame.
const CURSOR_MAGIC: [u8; 4] = *b"HRK1";
/// Bytes of one cursor frame entry: endpoint id u16, cursor u64.
const CURSOR_ENTRY: usize = 10;
/// Bytes of a frame's header.
const HEADER: usize = 24;
/// A file takes no more frames once it is this long: files are deleted whole, so this bounds
/// what a partly passed file keeps on disk.
const SEGMENT_BYTES: u64 = 64 << 20;
/// The last file, once every record in it is passed, is deleted (the next frame starts a new
/// one) only when at least this long: each new file costs a directory sync.
const RECYCLE_BYTES: u64 = 8 << 20;
/// Most payload bytes of one frame: a larger batch is written as several frames (in the same
/// write and sync), so a reader never loads more than this for one frame.
const FRAME_BYTES: usize = 4 << 20;
/// Most records in one frame.
const FRAME_RECORDS: usize = 4096;

/// A frame in the index.
#[derive(Debug, Clone, Copy)]
struct Frame {
    first: u64,
    count: u32,
    /// Where its header starts in the file.
    offset: u64,
    /// Its payload's length.
    len: u32,
    /// Its records' bytes (without length prefixes): what the store's byte count holds.
    bytes: u64,
}

impl Frame {
    fn end(&self) -> u64 {
        self.first + u64::from(self.count)
    }
}

/// One file of the log.
struct Segment {
    path: PathBuf,
    file: Arc<File>,
    /// Bytes of whole frames (the file is never longer once open).
    len: u64,
    /// Its record frames not yet deleted.
    frames: VecDeque<Frame>,
    /// The log's cursor mark (see [`State::cursor_mark`]) of its last cursor frame; 0: it
    /// holds none.
    cursor_mark: u64,
}

/// What the cursor frames of the log said when it was opened: per endpoint id the highest
/// cursor, and the highest next sequence number.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct LogCursors {
    pub(super) cursors: BTreeMap<u16, u64>,
    pub(super) next: u64,
    /// Cursor frames read.
    pub(super) frames: u64,
}

impl LogCursors {
    fn merge(&mut self, next: u64, payload: &[u8]) {
        self.frames += 1;
        self.next = self.next.max(next);
        for e in payload.chunks_exact(CURSOR_ENTRY) {
            let id = u16::from_le_bytes([e[0], e[1]]);
            let cursor = u64_at(e, 2);
            let c = self.cursors.entry(id).or_default();
            *c = (*c).max(cursor);
        }
    }
}

struct State {
    segments: VecDeque<Segment>,
    /// One past the last sequence number written (0: nothing in the log).
    next: u64,
    /// The last file takes no more frames (deleted, full, or a write to it failed and could
    /// not be cut off): the next append starts a new file.
    closed: bool,
    /// A write failed and could not be undone: nothing more is written (restart to recover).
    broken: Option<String>,
    /// Rises with every cursor frame written (at open: 1 if the log holds any).
    cursor_mark: u64,
    /// The cursor mark the store's checkpoint covers: a file whose cursor frames are newer
    /// is not deleted.
    checkpointed: u64,
    /// [`SEGMENT_BYTES`] and [`RECYCLE_BYTES`] (smaller in tests, so that a few small
    /// records span files).
    segment_bytes: u64,
    recycle_bytes: u64,
}

/// The open log; see the module documentation. Appends come from one thread at a time (the
/// committer); reads and deletions may come from any.
pub(super) struct Segments {
    dir: PathBuf,
    state: Mutex<State>,
    janitor: Janitor,
}

/// Deletes retired log files on a thread of its own (started at the first), so that nobody
/// waits for a deletion; see the module documentation.
#[derive(Default)]
struct Janitor {
    queue: Mutex<Option<std::sync::mpsc::Sender<PathBuf>>>,
    /// Set when the store stops: the thread deletes nothing more (the next open will).
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl Janitor {
    /// Takes `path` out of the log's sight (renamed `.deleting`) and has it deleted. A
    /// rename that fails deletes it here instead; a file already gone is fine.
    fn retire(&self, path: &Path) {
        let mut retired = path.as_os_str().to_owned();
        retired.push(RETIRED_SUFFIX);
        let retired = PathBuf::from(retired);
        match std::fs::rename(path, &retired) {
            Ok(()) => self.delete(retired),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => remove(path),
        }
    }

    /// Deletes an already retired file on the janitor's thread (here if it cannot start).
    fn delete(&self, retired: PathBuf) {
        use std::sync::atomic::Ordering;
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
            let stopped = Arc::clone(&self.stopped);
            let started = std::thread::Builder::new()
                .name("store-janitor".into())
                .spawn(move || {
                    for path in rx {
                        if stopped.load(Ordering::Acquire) {
                            break;
                        }
                        remove(&path);
                    }
                });
            if started.is_err() {
                drop(queue);
                remove(&retired);
                return;
            }
            *queue = Some(tx);
        }
        if let Some(Err(e)) = queue.as_ref().map(|q| q.send(retired)) {
            remove(&e.0);
        }
    }

    /// The store stops: the thread ends after the file it is deleting, if any.
    fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl Drop for Segments {
    fn drop(&mut self) {
        self.janitor.stop();
    }
}

/// Deletes a log file that holds only passed records: one left behind (an error here, or a
/// crash) is dropped again by the next open.
fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("store log {}: cannot delete: {e}", path.display());
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io_err(text: String) -> std::io::Error {
    std::io::Error::other(text)
}

/// Bytes of `n` as a LEB128 length.
fn len_len(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

/// The records of a payload, in order; stops at a damaged length.
pub(super) fn payload_records(mut value: &[u8]) -> impl Iterator<Item = &[u8]> {
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

fn header_bytes(magic: [u8; 4], first: u64, count: u32, len: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&magic);
    h[4..8].copy_from_slice(&count.to_le_bytes());
    h[8..16].copy_from_slice(&first.to_le_bytes());
    h[16..20].copy_from_slice(&len.to_le_bytes());
    h
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The file name of a segment whose first record is `first`.
fn file_name(first: u64) -> String {
    format!("{first:020}{SUFFIX}")
}

/// Syncs a directory, so that a file created in it is found after a crash.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads the frames of `file` (length `len`): the valid record frames, the offset where the
/// valid frames end, and why reading stopped before `len` (if it did); the valid cursor
/// frames are merged into `cursors` (whether there were any: the result's last field).
/// `after`: record frames must start above it.
fn read_frames(
    file: &File,
    len: u64,
    mut after: Option<u64>,
    cursors: &mut LogCursors,
) -> (VecDeque<Frame>, u64, Option<String>, bool) {
    let mut had_cursors = false;
    let mut frames = VecDeque::new();
    let mut offset = 0u64;
    let mut header = [0u8; HEADER];
    let mut payload = Vec::new();
    let stop = loop {
        if offset == len {
            break None;
        }
        if len - offset < HEADER as u64 {
            break Some("a frame header is cut short".to_string());
        }
        if let Err(e) = file.read_exact_at(&mut header, offset) {
            break Some(format!("cannot read: {e}"));
        }
        let cursor_frame = header[0..4] == CURSOR_MAGIC;
        if header[0..4] != MAGIC && !cursor_frame {
            break Some("no frame where one should start".into());
        }
        let count = u32_at(&header, 4);
        let first = u64_at(&header, 8);
        let plen = u32_at(&header, 16);
        let crc = u32_at(&header, 20);
        if cursor_frame && u64::from(plen) != u64::from(count) * CURSOR_ENTRY as u64 {
            break Some("a cursor frame's length does not match its count".into());
        }
        if !cursor_frame
            && (count == 0
                || after.is_some_and(|a| first <= a)
                || first.checked_add(count.into()).is_none())
        {
            break Some(format!(
                "a frame's numbering is out of order (first {first})"
            ));
        }
        if u64::from(plen) > len - offset - HEADER as u64 {
            break Some("a frame is cut short".into());
        }
        payload.clear();
        payload.resize(plen as usize, 0);
        if let Err(e) = file.read_exact_at(&mut payload, offset + HEADER as u64) {
            break Some(format!("cannot read: {e}"));
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[..20]);
        hasher.update(&payload);
        if hasher.finalize() != crc {
            break Some("a frame's checksum does not match".into());
        }
        if cursor_frame {
            cursors.merge(first, &payload);
            had_cursors = true;
            offset += HEADER as u64 + u64::from(plen);
            continue;
        }
        // The payload holds exactly `count` records.
        let (mut n, mut bytes, mut used) = (0u32, 0u64, 0usize);
        for r in payload_records(&payload) {
            n += 1;
            bytes += r.len() as u64;
            used += len_len(r.len()) + r.len();
        }
        if n != count || used != payload.len() {
            break Some("a frame's records do not match its header".into());
        }
        let frame = Frame {
            first,
            count,
            offset,
            len: plen,
            bytes,
        };
        after = Some(frame.end() - 1);
        frames.push_back(frame);
        offset += HEADER as u64 + u64::from(plen);
    };
    (frames, offset, stop, had_cursors)
}

impl Segments {
    /// Opens the log in `dir` (created if missing), checking every frame; cuts a torn end off
    /// the last file. Problems in earlier files (damage, not a crash) are reported on
    /// standard error and what follows them in that file is skipped. Also returns what its
    /// cursor frames say; until [`Segments::checkpointed`] is called, no file holding cursor
    /// frames is deleted.
    pub(super) fn open(dir: &Path) -> std::io::Result<(Segments, LogCursors)> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            // Its name in the store's directory must survive a crash like the files in it.
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        let mut renamed = false;
        let mut retired = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(RETIRED_SUFFIX) {
                // Went while the store last ran; the janitor had not deleted it yet.
                retired.push(entry.path());
                continue;
            }
            let (stem, old) = match (name.strip_suffix(SUFFIX), name.strip_suffix(OLD_SUFFIX)) {
                (Some(stem), _) => (stem, false),
                (None, Some(stem)) => (stem, true),
                (None, None) => continue,
            };
            if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(first) = stem.parse::<u64>() else {
                continue;
            };
            let mut path = entry.path();
            if old {
                // A file an older hubroute wrote: renamed out of its sight before a cursor
                // frame can follow its records (the caller made the cursor file one it
                // refuses first).
                let new = dir.join(file_name(first));
                if new.exists() {
                    return Err(std::io::Error::other(format!(
                        "{} and {} both exist: keep the one with the store's records",
                        path.display(),
                        new.display()
                    )));
                }
                std::fs::rename(&path, &new)?;
                path = new;
                renamed = true;
            }
            names.push((first, path));
        }
        if renamed {
            sync_dir(dir)?;
        }
        names.sort();
        let mut segments = VecDeque::new();
        let mut last_seq: Option<u64> = None;
        let mut cursors = LogCursors::default();
        let count = names.len();
        for (i, (_, path)) in names.into_iter().enumerate() {
            let is_last = i + 1 == count;
            let file = OpenOptions::new().read(true).append(true).open(&path)?;
            let file_len = file.metadata()?.len();
            let (frames, valid, stop, had_cursors) =
                read_frames(&file, file_len, last_seq, &mut cursors);
            if let Some(why) = stop {
                if is_last {
                    // A write the crash tore (never acknowledged): cut it off, so the next
                    // frame follows the last whole one.
                    file.set_len(valid)?;
                    file.sync_all()?;
                } else {
                    tracing::error!(
                        "store log {}: damaged at byte {valid} of {file_len} ({why}); the records after it in this file are skipped",
                        path.display()
                    );
                }
            }
            if let Some(f) = frames.back() {
                last_seq = Some(f.end() - 1);
            }
            if frames.is_empty() && !is_last && !had_cursors {
                // Nothing in it (a crash right after creating it). One with cursor frames
                // stays until the checkpoint covers them; then deletion takes it.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            segments.push_back(Segment {
                path,
                file: Arc::new(file),
                len: valid,
                frames,
                cursor_mark: u64::from(had_cursors),
            });
        }
        let log = Segments {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                segments,
                next: last_seq.map_or(0, |s| s + 1),
                closed: false,
                broken: None,
                cursor_mark: u64::from(cursors.frames > 0),
                checkpointed: 0,
                segment_bytes: SEGMENT_BYTES,
                recycle_bytes: RECYCLE_BYTES,
            }),
            janitor: Janitor::default(),
        };
        for path in retired {
            log.janitor.delete(path);
        }
        Ok((log, cursors))
    }

    /// The store stops: files that go from now on are only renamed (`.deleting`), and the
    /// janitor deletes nothing more, so that stopping waits for no deletion; the next open
    /// deletes them.
    pub(super) fn stop_deleting(&self) {
        self.janitor.stop();
    }

    /// The cursor mark of the newest cursor frame written: pass it to
    /// [`Segments::checkpointed`] once a checkpoint holding every cursor up to now is synced.
    pub(super) fn cursor_mark(&self) -> u64 {
        lock(&self.state).cursor_mark
    }

    /// The store's checkpoint covers the cursor frames up to `mark`: files holding only those
    /// may be deleted.
    pub(super) fn checkpointed(&self, mark: u64) {
        let mut st = lock(&self.state);
        st.checkpointed = st.checkpointed.max(mark);
    }

    /// Sets the file size limits (tests: small ones, so that a few records span files).
    #[cfg(test)]
    pub(super) fn set_limits(&self, segment_bytes: u64, recycle_bytes: u64) {
        let mut st = lock(&self.state);
        st.segment_bytes = segment_bytes;
        st.recycle_bytes = recycle_bytes;
    }

    /// Log files on disk (tests).
    #[cfg(test)]
    pub(super) fn files(&self) -> usize {
        lock(&self.state).segments.len()
    }

    /// Whether cursor frames were written (or found at open) that the checkpoint does not
    /// cover.
    pub(super) fn needs_checkpoint(&self) -> bool {
        let st = lock(&self.state);
        st.cursor_mark > st.checkpointed
    }

    /// One past the last sequence number in the log (0 when it never held a record since
    /// its files were last all deleted).
    pub(super) fn next(&self) -> u64 {
        lock(&self.state).next
    }

    /// Appends `records` numbered from `first` (above everything in the log) and, when
    /// `cursors` has any, a cursor frame of them and `next`, in one write, and syncs it: when
    /// this returns `Ok(true)` they survive a crash. Only one thread appends at a time.
    ///
    /// `Ok(false)`: nothing written, because there are no records and no file takes a
    /// cursor frame (none open, or the last is full): a new file for a cursor frame alone
    /// would cost a directory sync too, so the store writes its checkpoint instead.
    pub(super) fn append(
        &self,
        first: u64,
        records: &[&[u8]],
        cursors: &[(u16, u64)],
        next: u64,
    ) -> std::io::Result<bool> {
        if records.is_empty() && cursors.is_empty() {
            return Ok(true);
        }
        let (file, offset, new_file) = {
            let mut st = lock(&self.state);
            if let Some(why) = &st.broken {
                return Err(io_err(format!(
                    "the log cannot be written since an earlier failure ({why}); restart the router"
                )));
            }
            if !records.is_empty() && first < st.next {
                return Err(io_err(format!(
                    "record {first} is not after the log's end {}",
                    st.next
                )));
            }
            let full = st.segments.back().is_none_or(|s| s.len >= st.segment_bytes);
            if (st.closed || full) && records.is_empty() {
                return Ok(false);
            }
            if st.closed || full {
                let path = self.dir.join(file_name(first));
                let file = OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(true)
                    .open(&path)?;
                let len = file.metadata()?.len();
                if len != 0 {
                    return Err(io_err(format!(
                        "{} exists and is not empty",
                        path.display()
                    )));
                }
                st.segments.push_back(Segment {
                    path,
                    file: Arc::new(file),
                    len: 0,
                    frames: VecDeque::new(),
                    cursor_mark: 0,
                });
                st.closed = false;
                let s = st.segments.back().expect("just pushed");
                (Arc::clone(&s.file), 0, true)
            } else {
                let s = st.segments.back().expect("not full");
                (Arc::clone(&s.file), s.len, false)
            }
        };
        if new_file {
            // The new file's name must survive a crash before anything in it is acknowledged.
            sync_dir(&self.dir)?;
        }
        // Frames: headers and length prefixes in two buffers, the records from where they are.
        let mut frames: Vec<Frame> = Vec::new();
        let mut headers: Vec<[u8; HEADER]> = Vec::new();
        let mut prefixes: Vec<u8> = Vec::with_capacity(records.len() * 3);
        let mut prefix_ends: Vec<usize> = Vec::with_capacity(records.len());
        let mut start = 0;
        let mut at = offset;
        while start < records.len() {
            let mut end = start;
            let mut len = 0usize;
            let mut bytes = 0u64;
            while end < records.len() && end - start < FRAME_RECORDS {
                let more = len_len(records[end].len()) + records[end].len();
                if end > start && len + more > FRAME_BYTES {
                    break;
                }
                len += more;
                bytes += records[end].len() as u64;
                end += 1;
            }
            let len32 = u32::try_from(len)
                .map_err(|_| io_err(format!("a record of {len} bytes is too large")))?;
            let count = (end - start) as u32;
            let frame_first = first + start as u64;
            let mut header = header_bytes(MAGIC, frame_first, count, len32);
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&header[..20]);
            for r in &records[start..end] {
                let from = prefixes.len();
                put_len(&mut prefixes, r.len());
                hasher.update(&prefixes[from..]);
                prefix_ends.push(prefixes.len());
                hasher.update(r);
            }
            header[20..24].copy_from_slice(&hasher.finalize().to_le_bytes());
            headers.push(header);
            frames.push(Frame {
                first: frame_first,
                count,
                offset: at,
                len: len32,
                bytes,
            });
            at += (HEADER + len) as u64;
            start = end;
        }
        // The cursor frame last (its place in the write does not matter: it is synced with
        // the records or torn with them, and names only records committed before).
        let mut cursor_frame = Vec::new();
        if !cursors.is_empty() {
            let count = u32::try_from(cursors.len())
                .map_err(|_| io_err(format!("{} cursors in one frame", cursors.len())))?;
            cursor_frame.reserve(HEADER + cursors.len() * CURSOR_ENTRY);
            cursor_frame.extend_from_slice(&header_bytes(
                CURSOR_MAGIC,
                next,
                count,
                count * CURSOR_ENTRY as u32,
            ));
            for &(id, cursor) in cursors {
                cursor_frame.extend_from_slice(&id.to_le_bytes());
                cursor_frame.extend_from_slice(&cursor.to_le_bytes());
            }
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&cursor_frame[..20]);
            hasher.update(&cursor_frame[HEADER..]);
            let crc = hasher.finalize().to_le_bytes();
            cursor_frame[20..24].copy_from_slice(&crc);
            at += cursor_frame.len() as u64;
        }
        let mut slices: Vec<IoSlice<'_>> =
            Vec::with_capacity(2 * records.len() + headers.len() + 1);
        let mut record = 0;
        let mut prefix_from = 0;
        for (h, f) in headers.iter().zip(&frames) {
            slices.push(IoSlice::new(h));
            for r in &records[record..record + f.count as usize] {
                let to = prefix_ends[record];
                slices.push(IoSlice::new(&prefixes[prefix_from..to]));
                slices.push(IoSlice::new(r));
                prefix_from = to;
                record += 1;
            }
        }
        if !cursor_frame.is_empty() {
            slices.push(IoSlice::new(&cursor_frame));
        }
        let written = write_all_vectored(&file, &mut slices).and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Cut off what may have been written, so that the next frame follows the last
            // whole one; if even that fails, write nothing more.
            let undone = file.set_len(offset).and_then(|()| file.sync_data());
            let mut st = lock(&self.state);
            if let Err(u) = undone {
                st.broken = Some(format!("{e}; then cannot cut the log back: {u}"));
            }
            return Err(e);
        }
        let mut st = lock(&self.state);
        if let Some(last) = frames.last() {
            st.next = last.end();
        }
        if !cursor_frame.is_empty() {
            st.cursor_mark += 1;
        }
        let mark = st.cursor_mark;
        if let Some(s) = st.segments.back_mut() {
            s.len = at;
            s.frames.extend(frames);
            if !cursor_frame.is_empty() {
                s.cursor_mark = mark;
            }
        }
        Ok(true)
    }

    /// Up to `max` records after sequence `after`, in order, read from the files.
    pub(super) fn read_after(
        &self,
        after: u64,
        max: usize,
    ) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
        let start = after.saturating_add(1);
        // Which frames, under the lock; read after it.
        let mut plan: Vec<(Arc<File>, Frame)> = Vec::new();
        {
            let st = lock(&self.state);
            let mut records = 0usize;
            'segments: for s in &st.segments {
                if s.frames.back().is_none_or(|f| f.end() <= start) {
                    continue;
                }
                let from = s.frames.partition_point(|f| f.end() <= start);
                for f in s.frames.iter().skip(from) {
                    plan.push((Arc::clone(&s.file), *f));
                    records += usize::try_from(f.end() - f.first.max(start)).unwrap_or(usize::MAX);
                    if records >= max {
                        break 'segments;
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut payload = Vec::new();
        for (file, f) in plan {
            payload.clear();
            payload.resize(f.len as usize, 0);
            file.read_exact_at(&mut payload, f.offset + HEADER as u64)?;
            for (i, r) in payload_records(&payload).enumerate() {
                let seq = f.first + i as u64;
                if seq >= start {
                    out.push((seq, r.to_vec()));
                    if out.len() >= max {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Calls `f` with every record in the log, in order.
    pub(super) fn scan(&self, mut f: impl FnMut(u64, &[u8])) -> std::io::Result<()> {
        let plan: Vec<(Arc<File>, Frame)> = {
            let st = lock(&self.state);
            st.segments
                .iter()
                .flat_map(|s| s.frames.iter().map(|fr| (Arc::clone(&s.file), *fr)))
                .collect()
        };
        let mut payload = Vec::new();
        for (file, fr) in plan {
            payload.clear();
            payload.resize(fr.len as usize, 0);
            file.read_exact_at(&mut payload, fr.offset + HEADER as u64)?;
            for (i, r) in payload_records(&payload).enumerate() {
                f(fr.first + i as u64, r);
            }
        }
        Ok(())
    }

    /// Records in the log.
    pub(super) fn len(&self) -> u64 {
        let st = lock(&self.state);
        st.segments
            .iter()
            .flat_map(|s| &s.frames)
            .map(|f| u64::from(f.count))
            .sum()
    }

    /// Drops the frames whose records are all at or below `through` (a frame partly passed
    /// stays until all of it is) and deletes the files left without record frames whose
    /// cursor frames the checkpoint covers; the records and bytes dropped, and whether a
    /// file waits for a checkpoint (then write one, call [`Segments::checkpointed`] and this
    /// again).
    pub(super) fn delete_through(&self, through: u64) -> (u64, u64, bool) {
        let mut freed = (0u64, 0u64);
        let mut waits = false;
        let mut remove = Vec::new();
        {
            let mut st = lock(&self.state);
            let (checkpointed, recycle_bytes) = (st.checkpointed, st.recycle_bytes);
            // The passed frames, file by file (records rise from file to file).
            for s in st.segments.iter_mut() {
                while let Some(f) = s.frames.front() {
                    if f.end() > through.saturating_add(1) {
                        break;
                    }
                    freed.0 += u64::from(f.count);
                    freed.1 += f.bytes;
                    s.frames.pop_front();
                }
                if !s.frames.is_empty() {
                    break;
                }
            }
            // The files at the front left with no record frame: an earlier file goes; the
            // last only when long enough to be worth a new file's directory sync. Either
            // only once the checkpoint holds its cursor frames' cursors: a crash after would
            // lose them otherwise.
            while let Some(s) = st.segments.front() {
                if !s.frames.is_empty() || !(st.segments.len() > 1 || s.len >= recycle_bytes) {
                    break;
                }
                if s.cursor_mark > checkpointed {
                    waits = true;
                    break;
                }
                let s = st.segments.pop_front().expect("front exists");
                remove.push(s.path);
                if st.segments.is_empty() {
                    st.closed = true;
                }
            }
        }
        for path in remove {
            self.janitor.retire(&path);
        }
        (freed.0, freed.1, waits)
    }
}

/// Writes every byte of `slices` (a vectored write takes at most the system's limit of
/// slices, and may take fewer bytes).
fn write_all_vectored(mut file: &File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "the log file took no bytes",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hubroute-seg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// The files in `d` whose names end with `suffix`.
    fn files_ending(d: &Path, suffix: &str) -> usize {
        std::fs::read_dir(d)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_str().unwrap().ends_with(suffix)
            })
            .count()
    }

    /// The log files in `d` (not those retired for the janitor).
    fn log_files(d: &Path) -> usize {
        files_ending(d, SUFFIX)
    }

    /// Waits (bounded) until `d` holds no retired file: the janitor deleted them.
    fn janitor_done(d: &Path) -> bool {
        let retired = || files_ending(d, RETIRED_SUFFIX);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while retired() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        retired() == 0
    }

    fn recs(n: u32, size: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let mut v = i.to_le_bytes().to_vec();
                v.resize(size.max(4), (i % 251) as u8);
                v
            })
            .collect()
    }

    /// Appended records read back from anywhere, survive a reopen, and a deleted prefix is
    /// gone (files whole once passed).
    #[test]
    fn append_read_reopen_delete() {
        let d = dir("basic");
        let rs = recs(5000, 100);
        let slices: Vec<&[u8]> = rs.iter().map(Vec::as_slice).collect();
        {
            let log = Segments::open(&d).unwrap().0;
            assert!(log.append(1, &slices[..3000], &[], 0).unwrap());
            assert!(log.append(3001, &slices[3000..], &[], 0).unwrap());
            assert_eq!(log.next(), 5001);
            let r = log.read_after(2999, 3).unwrap();
            assert_eq!(
                r.iter().map(|x| x.0).collect::<Vec<_>>(),
                [3000, 3001, 3002]
            );
            assert_eq!(r[1].1, rs[3000]);
        }
        let log = Segments::open(&d).unwrap().0;
        assert_eq!(log.next(), 5001);
        assert_eq!(log.len(), 5000);
        let mut n = 0;
        log.scan(|seq, r| {
            assert_eq!(r, rs[(seq - 1) as usize].as_slice());
            n += 1;
        })
        .unwrap();
        assert_eq!(n, 5000);
        // Frames 1..=3000 and 3001..=5000: through 4500 drops only the first.
        let (records, bytes, _) = log.delete_through(4500);
        assert_eq!((records, bytes), (3000, 3000 * 100));
        assert_eq!(log.read_after(0, 10).unwrap()[0].0, 3001);
        assert_eq!(log.delete_through(5000).0, 2000);
        assert_eq!(log.len(), 0);
        assert!(log.append(5001, &slices[..1], &[], 0).unwrap());
        drop(log);
        let log = Segments::open(&d).unwrap().0;
        assert_eq!(log.next(), 5002);
        std::fs::remove_dir_all(&d).ok();
    }

    /// A torn last frame (a crash in the middle of a write) is cut off at open, and the log
    /// goes on after the last whole frame.
    #[test]
    fn a_torn_end_is_cut_off() {
        let d = dir("torn");
        let rs = recs(10, 1000);
        let slices: Vec<&[u8]> = rs.iter().map(Vec::as_slice).collect();
        let path;
        {
            let log = Segments::open(&d).unwrap().0;
            assert!(log.append(1, &slices[..5], &[], 0).unwrap());
            assert!(log.append(6, &slices[5..], &[], 0).unwrap());
            path = lock(&log.state).segments[0].path.clone();
        }
        let len = std::fs::metadata(&path).unwrap().len();
        // Cut into the second frame, then garbage.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 10).unwrap();
        f.write_all_at(&[7u8; 30], len - 10).unwrap();
        drop(f);
        let log = Segments::open(&d).unwrap().0;
        assert_eq!(log.next(), 6);
        assert_eq!(log.len(), 5);
        assert!(log.append(6, &slices[5..], &[], 0).unwrap());
        drop(log);
        let log = Segments::open(&d).unwrap().0;
        assert_eq!(log.next(), 11);
        let r = log.read_after(0, 100).unwrap();
        assert_eq!(r.len(), 10);
        assert_eq!(r[9].1, rs[9]);
        std::fs::remove_dir_all(&d).ok();
    }

    /// Large batches span frames and files; files passed whole are deleted.
    #[test]
    fn large_batches_span_frames_and_files() {
        let d = dir("large");
        let rs = recs(200, 1 << 20);
        let slices: Vec<&[u8]> = rs.iter().map(Vec::as_slice).collect();
        let log = Segments::open(&d).unwrap().0;
        assert!(log.append(10, &slices[..100], &[], 0).unwrap());
        assert!(log.append(110, &slices[100..], &[], 0).unwrap());
        assert!(lock(&log.state).segments.len() >= 2);
        let r = log.read_after(105, 10).unwrap();
        assert_eq!(r[0].0, 106);
        assert_eq!(r[0].1, rs[96]);
        let files = || log_files(&d);
        let before = files();
        log.delete_through(109);
        assert!(files() < before);
        assert_eq!(log.delete_through(209).0, 100);
        // The last file was long enough to go too; the next append starts a new one.
        assert_eq!(files(), 0);
        assert!(log.append(210, &slices[..1], &[], 0).unwrap());
        assert_eq!(files(), 1);
        // The janitor deletes what went, off the caller's thread.
        assert!(janitor_done(&d));
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        drop(log);
        let log = Segments::open(&d).unwrap().0;
        assert_eq!(log.next(), 211);
        std::fs::remove_dir_all(&d).ok();
    }

    /// Once the store stops, files that go are only renamed: the stop waits for no deletion,
    /// the renamed files are never read as log files, and the next open deletes them.
    #[test]
    fn a_stopped_log_leaves_deletion_to_the_next_open() {
        let d = dir("janitor-stop");
        let rs = recs(6, 100);
        let slices: Vec<&[u8]> = rs.iter().map(Vec::as_slice).collect();
        let log = Segments::open(&d).unwrap().0;
        log.set_limits(250, 250);
        assert!(log.append(1, &slices[..3], &[], 0).unwrap());
        assert!(log.append(4, &slices[3..], &[], 0).unwrap());
        assert_eq!(log.files(), 2);
        log.stop_deleting();
        assert_eq!(log.delete_through(6).0, 6);
        assert_eq!(log_files(&d), 0);
        let all = || std::fs::read_dir(&d).unwrap().count();
        assert_eq!(all(), 2, "renamed, not deleted");
        drop(log);
        let (log, _) = Segments::open(&d).unwrap();
        assert_eq!(log.files(), 0, "a retired file is not a log file");
        assert_eq!(log.len(), 0);
        assert!(janitor_done(&d));
        assert_eq!(all(), 0);
        // The numbering goes on from the store's cursor file, not from the retired files:
        // an empty log starts where the caller says.
        assert!(log.append(7, &slices[..1], &[], 0).unwrap());
        assert_eq!(log_files(&d), 1);
        std::fs::remove_dir_all(&d).ok();
    }

    /// A cursor frame torn by a crash at the end of the log is cut off like a torn record
    /// frame: the records before it stay, the cursors of the whole frames before it count,
    /// and the log goes on after the last whole frame.
    #[test]
    fn a_torn_cursor_frame_is_cut_off() {
        let d = dir("torn-cursors");
        let rs = recs(10, 100);
        let slices: Vec<&[u8]> = rs.iter().map(Vec::as_slice).collect();
        let path;
        {
            let (log, found) = Segments::open(&d).unwrap();
            assert_eq!(found, LogCursors::default());
            assert!(log.append(1, &slices[..5], &[(0, 3)], 6).unwrap());
            assert!(log.append(6, &slices[5..], &[(0, 5), (1, 2)], 11).unwrap());
            // A cursor frame alone goes into the open file.
            assert!(log.append(0, &[], &[(1, 9)], 11).unwrap());
            path = lock(&log.state).segments[0].path.clone();
        }
        let (log, found) = Segments::open(&d).unwrap();
        assert_eq!(found.cursors, BTreeMap::from([(0, 5), (1, 9)]));
        assert_eq!((found.next, found.frames), (11, 3));
        drop(log);
        // Tear the last cursor frame (its last entry's last bytes).
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        drop(f);
        let (log, found) = Segments::open(&d).unwrap();
        assert_eq!(found.cursors, BTreeMap::from([(0, 5), (1, 2)]));
        assert_eq!(found.frames, 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len - 34);
        assert_eq!((log.next(), log.len()), (11, 10));
        assert!(log.append(11, &slices[..1], &[(1, 10)], 12).unwrap());
        drop(log);
        let (log, found) = Segments::open(&d).unwrap();
        assert_eq!(found.cursors, BTreeMap::from([(0, 5), (1, 10)]));
        assert_eq!(log.read_after(0, 100).unwrap().len(), 11);
        std::fs::remove_dir_all(&d).ok();
    }

    /// Files passed whole go at once when they hold no cursor frames, and only after the
    /// checkpoint covers them when they do; a cursor frame alone never starts a file.
    #[test]
    fn cursor_frames_hold_deletion_until_checkpointed() {
        let d = dir("cursor-files");
        let rs = recs(12, 100);
        let slices: Vec<&[u8]> = rs.iter().map(Vec::as_slice).collect();
        let (log, _) = Segments::open(&d).unwrap();
        log.set_limits(250, 250);
        // Each append of 3 records fills a file (3 × 125 bytes > 250).
        assert!(log.append(1, &slices[..3], &[], 0).unwrap());
        assert!(log.append(4, &slices[3..6], &[(0, 2)], 7).unwrap());
        assert!(log.append(7, &slices[6..9], &[(0, 5)], 10).unwrap());
        assert!(log.append(10, &slices[9..], &[], 0).unwrap());
        assert_eq!(log.files(), 4);
        let on_disk = || log_files(&d);
        // The first file has no cursor frames: it goes; the second waits.
        assert_eq!(log.delete_through(12), (12, 1200, true));
        assert_eq!((log.files(), on_disk()), (3, 3));
        // A checkpoint taken before the third file's frame covers only the second.
        log.checkpointed(1);
        assert_eq!(log.delete_through(12), (0, 0, true));
        assert_eq!((log.files(), on_disk()), (2, 2));
        log.checkpointed(log.cursor_mark());
        assert!(!log.needs_checkpoint());
        assert_eq!(log.delete_through(12), (0, 0, false));
        assert_eq!((log.files(), on_disk()), (0, 0));
        // No file open: a cursor frame alone is left to the checkpoint.
        assert!(!log.append(0, &[], &[(0, 12)], 13).unwrap());
        assert_eq!(on_disk(), 0);
        assert!(log.append(13, &slices[..1], &[(0, 12)], 14).unwrap());
        assert!(log.needs_checkpoint());
        drop(log);
        let (log, found) = Segments::open(&d).unwrap();
        assert_eq!(found.cursors, BTreeMap::from([(0, 12)]));
        assert_eq!((log.next(), log.len()), (14, 1));
        std::fs::remove_dir_all(&d).ok();
    }
}
