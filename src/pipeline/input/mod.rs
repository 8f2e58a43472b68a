//! Inputs of the pipeline. [`lines`]: JSON Lines from a file or standard input, one result per
//! line whatever the bytes are, so a bad line is reported and the stream goes on; [`feed`]:
//! such an input through a [`super::Pipeline`], as `hubroute run --input FILE` does;
//! `jetstream` (feature `nats`): a pull consumer that resumes after the server fails.

pub mod feed;
#[cfg(feature = "nats")]
pub mod jetstream;
pub mod lines;

pub use feed::{feed_lines, InvalidLine, LinesReport};
pub use lines::{Line, LineContent, LineReader, DEFAULT_MAX_LINE_BYTES};
