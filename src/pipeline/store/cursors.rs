//! The store's small state: endpoint ids, their cursors and the next sequence number, in
//! one file of two slots written in turn.
//!
//! Why not redb (which held it before): creating a redb file and closing it (redb saves its
//! allocator state in a commit of its own when dropped) cost a router tens of millions of
//! instructions per start and stop, for a few dozen bytes of state. A write here is one
//! `pwrite` and one `fdatasync`.
//!
//! Layout: two slots of equal size; each `magic "HRC2" | generation u64 | length u32 |
//! crc32 u32 | payload`, the CRC covering the 16 bytes before it and the payload. A write goes
//! to the slot not holding the newest state, so a write torn by a crash leaves the other
//! whole; at open the valid slot with the higher generation wins. Payload: next u64, count
//! u32, then per endpoint id u16, cursor u64, name length u32, name (UTF-8). A state that
//! no longer fits a slot is written to a new file with larger slots, synced and renamed over
//! the old one (as is the first).
//!
//! Format versions: `HRC1` is what hubroute wrote before the log held cursor frames, `HRC2`
//! what it writes since. Both read the same. The second magic exists to be refused: an older
//! hubroute finds no whole slot in an `HRC2` file and will not open the store, where it would
//! otherwise take the log's first cursor frame for a torn write and cut off the records
//! after it. So a store is upgraded (both slots `HRC2`, [`CursorFile::upgraded`]) before its
//! log takes a cursor frame; a magic of a later version is refused here the same way, with a
//! message that says so.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The magic this version writes.
const MAGIC: [u8; 4] = *b"HRC2";
/// The magic of a file written before the log held cursor frames: read, rewritten at open.
const MAGIC_V1: [u8; 4] = *b"HRC1";
const HEADER: usize = 20;
/// The smallest slot (a page).
const MIN_SLOT: usize = 4096;

/// What the file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct State {
    pub(super) next: u64,
    /// Endpoint name → (id, cursor).
    pub(super) endpoints: BTreeMap<String, (u16, u64)>,
}

/// The open file.
pub(super) struct CursorFile {
    path: PathBuf,
    file: File,
    slot_size: usize,
    /// The slot holding the newest state, and its generation.
    current: usize,
    generation: u64,
    /// No slot holds a whole state an older hubroute reads.
    upgraded: bool,
}

fn encode(state: &State, generation: u64) -> Vec<u8> {
    encode_as(MAGIC, state, generation)
}

fn encode_as(magic: [u8; 4], state: &State, generation: u64) -> Vec<u8> {
    let mut out = vec![0u8; HEADER];
    out.extend_from_slice(&state.next.to_le_bytes());
    out.extend_from_slice(&(state.endpoints.len() as u32).to_le_bytes());
    for (name, &(id, cursor)) in &state.endpoints {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&cursor.to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    let len = (out.len() - HEADER) as u32;
    out[0..4].copy_from_slice(&magic);
    out[4..12].copy_from_slice(&generation.to_le_bytes());
    out[12..16].copy_from_slice(&len.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[..16]);
    hasher.update(&out[HEADER..]);
    let crc = hasher.finalize();
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A slot's state, generation and whether it is of the current format, if it is whole.
fn decode(slot: &[u8]) -> Option<(State, u64, bool)> {
    if slot.len() < HEADER || (slot[0..4] != MAGIC && slot[0..4] != MAGIC_V1) {
        return None;
    }
    let current = slot[0..4] == MAGIC;
    let generation = u64::from_le_bytes(slot[4..12].try_into().ok()?);
    let len = u32::from_le_bytes(slot[12..16].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(slot[16..20].try_into().ok()?);
    let payload = slot.get(HEADER..HEADER.checked_add(len)?)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&slot[..16]);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return None;
    }
    let mut p = payload;
    let mut take = |n: usize| -> Option<&[u8]> {
        if p.len() < n {
            return None;
        }
        let (a, b) = p.split_at(n);
        p = b;
        Some(a)
    };
    let next = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut endpoints = BTreeMap::new();
    for _ in 0..count {
        let id = u16::from_le_bytes(take(2)?.try_into().ok()?);
        let cursor = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let n = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let name = std::str::from_utf8(take(n)?).ok()?.to_string();
        endpoints.insert(name, (id, cursor));
    }
    Some((State { next, endpoints }, generation, current))
}

/// The version of a slot whose magic is that of a cursor file later than this build's.
fn later_version(slot: &[u8]) -> Option<u8> {
    match slot.get(0..4)? {
        [b'H', b'R', b'C', v] if v.is_ascii_digit() && *v > MAGIC[3] => Some(v - b'0'),
        _ => None,
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl CursorFile {
    /// Reads the file at `path`: `None` when there is none; an error when neither slot is
    /// whole (damage: a crash tears at most one).
    pub(super) fn open(path: &Path) -> std::io::Result<Option<(CursorFile, State)>> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        let slot_size = len / 2;
        if slot_size < MIN_SLOT || len > 64 << 20 {
            return Err(std::io::Error::other(format!(
                "{} is not a cursor file ({len} bytes)",
                path.display()
            )));
        }
        let mut bytes = vec![0u8; 2 * slot_size];
        file.read_exact_at(&mut bytes, 0)?;
        let (first, second) = bytes.split_at(slot_size);
        if let Some(v) = later_version(first).or_else(|| later_version(second)) {
            return Err(std::io::Error::other(format!(
                "{} was written by a later hubroute (cursor file format {v}; this one reads 1 and 2): open the store with that version",
                path.display()
            )));
        }
        let a = decode(first);
        let b = decode(second);
        let upgraded = [&a, &b]
            .iter()
            .all(|slot| slot.as_ref().is_none_or(|s| s.2));
        let (current, state, generation) = match (a, b) {
            (Some((sa, ga, _)), Some((sb, gb, _))) => {
                if ga >= gb {
                    (0, sa, ga)
                } else {
                    (1, sb, gb)
                }
            }
            (Some((s, g, _)), None) => (0, s, g),
            (None, Some((s, g, _))) => (1, s, g),
            (None, None) => {
                return Err(std::io::Error::other(format!(
                    "{}: neither copy of the cursors is whole (the file is damaged)",
                    path.display()
                )))
            }
        };
        Ok(Some((
            CursorFile {
                path: path.to_path_buf(),
                file,
                slot_size,
                current,
                generation,
                upgraded,
            },
            state,
        )))
    }

    /// Whether no slot holds a whole state of the format before cursor frames, which an
    /// older hubroute would read (see the module docs): rewrite the file with
    /// [`CursorFile::create`] before the log takes a cursor frame when it does.
    pub(super) fn upgraded(&self) -> bool {
        self.upgraded
    }

    /// Writes a new file at `path` holding `state` (both slots), synced and renamed into
    /// place, so that the file is whole or absent after a crash.
    pub(super) fn create(path: &Path, state: &State) -> std::io::Result<CursorFile> {
        CursorFile::create_as(path, &encode(state, 1))
    }

    /// A file as a hubroute from before cursor frames wrote it (format 1), for tests of
    /// the upgrade.
    #[cfg(test)]
    pub(super) fn create_format1(path: &Path, state: &State) -> std::io::Result<CursorFile> {
        let mut file = CursorFile::create_as(path, &encode_as(MAGIC_V1, state, 1))?;
        file.upgraded = false;
        Ok(file)
    }

    /// Writes `bytes` (one slot's state, generation 1) to both slots of a new file.
    fn create_as(path: &Path, bytes: &[u8]) -> std::io::Result<CursorFile> {
        let slot_size = bytes.len().next_power_of_two().max(MIN_SLOT);
        let mut image = vec![0u8; 2 * slot_size];
        image[..bytes.len()].copy_from_slice(bytes);
        image[slot_size..slot_size + bytes.len()].copy_from_slice(bytes);
        let tmp = path.with_extension("tmp");
        {
            let f = File::create(&tmp)?;
            f.write_all_at(&image, 0)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(CursorFile {
            path: path.to_path_buf(),
            file,
            slot_size,
            current: 0,
            generation: 1,
            upgraded: true,
        })
    }

    /// Writes `state` durably (synced when this returns).
    pub(super) fn write(&mut self, state: &State) -> std::io::Result<()> {
        let generation = self.generation + 1;
        let bytes = encode(state, generation);
        if bytes.len() > self.slot_size {
            *self = CursorFile::create(&self.path, state)?;
            return Ok(());
        }
        let slot = 1 - self.current;
        self.file
            .write_all_at(&bytes, (slot * self.slot_size) as u64)?;
        self.file.sync_data()?;
        self.current = slot;
        self.generation = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(n: u64) -> State {
        let mut s = State {
            next: n,
            ..State::default()
        };
        s.endpoints.insert("a".into(), (0, n - 1));
        s.endpoints.insert("bé".into(), (1, n / 2));
        s
    }

    /// The newest whole slot wins; a torn write of one slot falls back to the other; a
    /// state larger than a slot moves to a larger file.
    #[test]
    fn newest_whole_slot_wins() {
        let d = std::env::temp_dir().join(format!("hubroute-cursors-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("cursors");
        assert!(CursorFile::open(&path).unwrap().is_none());
        let mut f = CursorFile::create(&path, &state(10)).unwrap();
        f.write(&state(20)).unwrap();
        f.write(&state(30)).unwrap();
        let (mut f, s) = CursorFile::open(&path).unwrap().unwrap();
        assert_eq!(s, state(30));
        f.write(&state(40)).unwrap();
        let torn = f.current * f.slot_size + 30;
        drop(f);
        let raw = OpenOptions::new().write(true).open(&path).unwrap();
        raw.write_all_at(&[0xff; 4], torn as u64).unwrap();
        drop(raw);
        let (mut f, s) = CursorFile::open(&path).unwrap().unwrap();
        assert_eq!(s, state(30));
        let mut big = state(50);
        for i in 0..500u16 {
            big.endpoints.insert(format!("endpoint-{i:04}"), (i + 2, 7));
        }
        f.write(&big).unwrap();
        assert_eq!(CursorFile::open(&path).unwrap().unwrap().1, big);
        std::fs::remove_dir_all(&d).ok();
    }

    /// A format 1 file reads the same and says it needs the upgrade, also when only its
    /// older slot is format 1; a later format is refused with a message that says so.
    #[test]
    fn formats() {
        let d =
            std::env::temp_dir().join(format!("hubroute-cursor-formats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("cursors");
        CursorFile::create_format1(&path, &state(10)).unwrap();
        let (mut f, s) = CursorFile::open(&path).unwrap().unwrap();
        assert_eq!((s, f.upgraded()), (state(10), false));
        f.write(&state(20)).unwrap();
        let (_, s) = CursorFile::open(&path).unwrap().unwrap();
        assert_eq!(s, state(20));
        assert!(!CursorFile::open(&path).unwrap().unwrap().0.upgraded());
        let f = CursorFile::create(&path, &state(20)).unwrap();
        assert!(CursorFile::open(&path).unwrap().unwrap().0.upgraded());
        let raw = OpenOptions::new().write(true).open(&path).unwrap();
        raw.write_all_at(b"HRC3", f.slot_size as u64).unwrap();
        let err = CursorFile::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("written by a later hubroute (cursor file format 3"),
            "{err}"
        );
        std::fs::remove_dir_all(&d).ok();
    }
}
