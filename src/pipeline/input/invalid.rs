//! The dead letter of the *input*: what was read but is not a routable message (a bad line, a
//! publish on a wrong topic, a malformed stream record), appended as JSON Lines with its code,
//! reason and origin, so that nothing read is lost. Endpoints' undeliverable copies go to the
//! pipeline's own [`crate::sink::DeadLetter`]; both may share one file (each record names
//! `endpoint`, `null` here).

use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes an input read, as the input dead letter holds them (`bodyBase64`, a line that is
/// not UTF-8): standard base64, so any reader decodes them.
pub fn base64_body(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Invalid inputs, appended to a JSON Lines file.
#[derive(Debug)]
pub struct InvalidLog {
    file: std::fs::File,
    path: PathBuf,
}

impl InvalidLog {
    /// Opens `path` for appending (creating it and its directory).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(InvalidLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Where the records go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records an invalid line of a JSON Lines input (`line` counts from 1); a failure to
    /// write is reported on standard error, since reading a file goes on either way.
    pub fn write_line(&mut self, line: u64, code: &str, reason: &str, message: serde_json::Value) {
        let record = serde_json::json!({"endpoint": null, "code": code, "reason": reason, "line": line, "message": message});
        if let Err(e) = writeln!(self.file, "{record}") {
            tracing::error!("cannot write the dead letter: {e}");
        }
    }

    /// Records an input that is not a routable message (`origin` says where it came from: a
    /// topic, a stream sequence) and flushes; `Err` when the dead letter itself failed (then
    /// the input must not be acknowledged).
    pub fn write_input(
        &mut self,
        origin: serde_json::Value,
        code: &str,
        reason: &str,
        message: serde_json::Value,
    ) -> std::io::Result<()> {
        let record = serde_json::json!({"endpoint": null, "code": code, "reason": reason, "input": origin, "message": message});
        writeln!(self.file, "{record}")?;
        self.file.flush()
    }
}
