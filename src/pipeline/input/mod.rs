//! Inputs of the pipeline. [`lines`]: JSON Lines from a file or standard input, one result per
//! line whatever the bytes are, so a bad line is reported and the stream goes on.

pub mod lines;

pub use lines::{Line, LineContent, LineReader, DEFAULT_MAX_LINE_BYTES};
