//! One process at a time for a directory's files (the store, the twins): an exclusive,
//! non-blocking `flock` on a lock file, held for as long as the returned file is open. The
//! kernel drops it when the process ends, however it ends, so a crash leaves nothing to clean.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Why the lock was not taken.
pub(crate) enum LockError {
    /// The lock file could not be created or opened.
    Open(io::Error),
    /// Locking failed (not "held elsewhere": an I/O error).
    Lock(io::Error),
    /// Another process holds it.
    Held,
}

/// Opens (creating) `path` and locks it exclusively without waiting.
pub(crate) fn lock_exclusive(path: &Path) -> Result<File, LockError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(LockError::Open)?;
    match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
        Ok(true) => Ok(file),
        Ok(false) => Err(LockError::Held),
        Err(e) => Err(LockError::Lock(e)),
    }
}
