//! A sink writing one JSON object per line: the Storage JSON record plus the endpoint name.
//!
//! This is the sink for people and pipes (`hubroute run --sink x=jsonl:-`, `| jq`): the same
//! record shape as a Storage container's JSON files, so one reader handles both, with an
//! `"endpoint"` member first so several endpoints can share one file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::{push_endpoint_prefix, write_view_members, Record};
use super::time::format_enqueued_time;
use super::view::CopyView;
use super::{Envelope, Sink, SinkError};

/// A batch's rendered lines are written once they reach this many bytes, and the buffer is
/// reused for the rest: a batch of thousands of copies does not grow a buffer of megabytes
/// that every endpoint's thread touches for the first time (page faults were a tenth of a
/// 10k-line run's CPU), and the buffer stays in the cache.
const WRITE_AT: usize = 256 << 10;

/// Where the lines go.
enum Target {
    Stdout,
    File { path: PathBuf, file: std::fs::File },
    Writer(Box<dyn Write + Send>),
}

/// Writes each envelope as one JSON line:
/// `{"endpoint":…,"EnqueuedTimeUtc":…,"Properties":{…},"SystemProperties":{…},"Body":…}`.
///
/// Each batch is rendered in memory and written with `write_all` in pieces of whole lines
/// (once 256 KiB are rendered), so a line is never interleaved with another writer's output
/// and a failed write leaves at most one torn batch.
pub struct JsonLinesSink {
    target: Target,
    description: String,
    /// The batch being rendered, kept between batches so its capacity is reused. Bytes, not a
    /// `String`: lines are copied from store records whose UTF-8 was checked when read.
    text: Vec<u8>,
    /// The start of a line, `{"endpoint":…,`, for the endpoint `prefix_for`: rendered when
    /// the endpoint changes (once, for an endpoint's own sink), copied per line (its
    /// escaping check was about a twentieth of rendering a copy).
    prefix: Vec<u8>,
    prefix_for: String,
}

impl JsonLinesSink {
    /// Appends to the file at `path`, creating it (and its parent directories) if needed.
    pub fn to_path(path: impl AsRef<Path>) -> Result<Self, SinkError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                SinkError::from_io(&format!("cannot create {}", parent.display()), &e)
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| SinkError::from_io(&format!("cannot open {}", path.display()), &e))?;
        Ok(JsonLinesSink {
            description: format!("jsonl:{}", path.display()),
            target: Target::File { path, file },
            text: Vec::new(),
            prefix: Vec::new(),
            prefix_for: String::new(),
        })
    }

    /// Writes to standard output (locked per batch, so lines from other threads do not tear).
    pub fn stdout() -> Self {
        JsonLinesSink {
            target: Target::Stdout,
            description: "jsonl:-".into(),
            text: Vec::new(),
            prefix: Vec::new(),
            prefix_for: String::new(),
        }
    }

    /// Writes to any writer, e.g. a socket or an in-memory buffer in a test.
    pub fn to_writer(writer: Box<dyn Write + Send>, description: impl Into<String>) -> Self {
        JsonLinesSink {
            target: Target::Writer(writer),
            description: description.into(),
            text: Vec::new(),
            prefix: Vec::new(),
            prefix_for: String::new(),
        }
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let ctx = || format!("cannot write to {}", self.description);
        let result = match &mut self.target {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Target::File { file, .. } => file.write_all(bytes),
            Target::Writer(w) => w.write_all(bytes).and_then(|()| w.flush()),
        };
        result.map_err(|e| SinkError::from_io(&ctx(), &e))
    }
}

impl Sink for JsonLinesSink {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        for e in batch {
            let record = Record::new(e, format_enqueued_time(e.enqueued_time));
            record.write_json(Some(&e.endpoint), &mut text);
            text.push(b'\n');
            self.write_if_full(&mut text)?;
        }
        self.finish_batch(text)
    }

    /// Renders each line straight from the stored bytes into the sink's reused buffer: no
    /// `Message` per copy, one write per batch.
    fn write_views(&mut self, batch: &[CopyView<'_>]) -> Result<(), SinkError> {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        for v in batch {
            if self.prefix_for != v.endpoint || self.prefix.is_empty() {
                self.prefix.clear();
                push_endpoint_prefix(&mut self.prefix, v.endpoint);
                self.prefix_for.clear();
                self.prefix_for.push_str(v.endpoint);
            }
            text.extend_from_slice(&self.prefix);
            write_view_members(v, &mut text);
            text.push(b'\n');
            self.write_if_full(&mut text)?;
        }
        self.finish_batch(text)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        let result = match &mut self.target {
            Target::Stdout => std::io::stdout().lock().flush(),
            Target::File { file, path } => file
                .sync_data()
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
            Target::Writer(w) => w.flush(),
        };
        result.map_err(|e| SinkError::from_io(&format!("cannot flush {}", self.description), &e))
    }
}

impl JsonLinesSink {
    /// Writes the lines rendered so far once they reach [`WRITE_AT`] bytes.
    fn write_if_full(&mut self, text: &mut Vec<u8>) -> Result<(), SinkError> {
        if text.len() >= WRITE_AT {
            self.write_bytes(text)?;
            text.clear();
        }
        Ok(())
    }

    /// Writes the rendered batch and keeps the buffer for the next one.
    fn finish_batch(&mut self, mut text: Vec<u8>) -> Result<(), SinkError> {
        let result = if text.is_empty() {
            Ok(())
        } else {
            self.write_bytes(&text)
        };
        // A batch of very large copies does not pin its memory for the sink's lifetime.
        if text.capacity() > 16 << 20 {
            text = Vec::new();
        }
        self.text = text;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use std::sync::{Arc, Mutex};

    /// Keeps every `write` call's bytes apart.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<Vec<Vec<u8>>>>);
    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A batch larger than [`WRITE_AT`] goes out in several writes, each of whole lines and
    /// none much past the threshold, and together they are exactly the lines each envelope
    /// renders on its own (a batch of one never reaches the threshold).
    #[test]
    fn large_batches_are_written_in_pieces_of_whole_lines() {
        let batch: Vec<Envelope> = (0..300)
            .map(|i| {
                let mut m = Message::default();
                m.system_properties
                    .insert("messageId", Some(format!("m{i}")));
                // Bodies of different lengths, so the threshold falls anywhere in a line.
                m.body = vec![b'x'; 1000 + 37 * i];
                Envelope::new("ep", m)
            })
            .collect();
        let writes = Writes::default();
        let mut sink = JsonLinesSink::to_writer(Box::new(writes.clone()), "pieces");
        sink.write_batch(&batch).unwrap();
        let pieces = writes.0.lock().unwrap().clone();
        assert!(pieces.len() > 1, "{} writes", pieces.len());
        let longest_line = 2000 + 37 * 300;
        for p in &pieces {
            assert_eq!(p.last(), Some(&b'\n'), "a piece ends a line");
            assert!(p.len() < WRITE_AT + longest_line, "{} bytes", p.len());
        }
        let one_by_one = Writes::default();
        let mut reference = JsonLinesSink::to_writer(Box::new(one_by_one.clone()), "lines");
        for e in &batch {
            reference.write_batch(std::slice::from_ref(e)).unwrap();
        }
        assert_eq!(pieces.concat(), one_by_one.0.lock().unwrap().concat());
    }
}
