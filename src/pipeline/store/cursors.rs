//! The store's small state: endpoint ids, their cursors and the next sequence number, in
//! one file of two slots written in turn.
//!
//! Why not redb (which held it before): creating a redb file and closing it (redb saves its
//! allocator state in a commit of its own when dropped) cost a router tens of millions of
//! instructions per start and stop, for a few dozen bytes of state. A write here is one
//! `pwrite` and one `fdatasync`.
//!
//! Layout: two slots of equal size; each `magic "HRC1" | generation u64 | length u32 |
//! crc32 u32 | payload`, the CRC covering the 16 bytes before it and the payload. A write goes
//! to the slot not holding the newest state, so a write torn by a crash leaves the other
//! whole; at open the valid slot with the higher generation wins. Payload: next u64, count
//! u32, then per endpoint id u16, cursor u64, name length u32, name (UTF-8). A state that
//! no longer fits a slot is written to a new file with larger slots, synced and renamed over
//! the old one (as is the first).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: [u8; 4] = *b"HRC1";
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
}

fn encode(state: &State, generation: u64) -> Vec<u8> {
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
    out[0..4].copy_from_slice(&MAGIC);
    out[4..12].copy_from_slice(&generation.to_le_bytes());
    out[12..16].copy_from_slice(&len.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[..16]);
    hasher.update(&out[HEADER..]);
    let crc = hasher.finalize();
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    out
}

/// A slot's state and generation, if it is whole.
fn decode(slot: &[u8]) -> Option<(State, u64)> {
    if slot.len() < HEADER || slot[0..4] != MAGIC {
        return None;
    }
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
    Some((State { next, endpoints }, generation))
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
        let a = decode(&bytes[..slot_size]);
        let b = decode(&bytes[slot_size..]);
        let (current, state, generation) = match (a, b) {
            (Some((sa, ga)), Some((sb, gb))) => {
                if ga >= gb {
                    (0, sa, ga)
                } else {
                    (1, sb, gb)
                }
            }
            (Some((s, g)), None) => (0, s, g),
            (None, Some((s, g))) => (1, s, g),
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
            },
            state,
        )))
    }

    /// Writes a new file at `path` holding `state` (both slots), synced and renamed into
    /// place, so that the file is whole or absent after a crash.
    pub(super) fn create(path: &Path, state: &State) -> std::io::Result<CursorFile> {
        let bytes = encode(state, 1);
        let slot_size = bytes.len().next_power_of_two().max(MIN_SLOT);
        let mut image = vec![0u8; 2 * slot_size];
        image[..bytes.len()].copy_from_slice(&bytes);
        image[slot_size..slot_size + bytes.len()].copy_from_slice(&bytes);
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
}
