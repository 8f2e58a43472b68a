//! Inputs of the pipeline. [`lines`]: JSON Lines from a file or standard input, one result per
//! line whatever the bytes are, so a bad line is reported and the stream goes on; [`feed`]:
//! such an input through a [`super::Pipeline`], as `hubroute run --input FILE` does;
//! `jetstream` (feature `nats`): a pull consumer that resumes after the server fails, and a
//! router's input on it; `mqtt` (feature `mqtt`): devices publishing to IoT Hub's topics;
//! `https` (feature `https`): devices sending to IoT Hub's REST "Send Device Event",
//! authenticated with SAS tokens; `amqp` (feature `amqp`): devices over AMQP 1.0 with CBS SAS
//! authentication, this router being the server; `live`: what these inputs share
//! (acknowledgement, window, hooks, report);
//! [`invalid`]: where inputs that are not messages go.

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod feed;
#[cfg(feature = "https")]
pub mod https;
pub mod invalid;
#[cfg(feature = "nats")]
pub mod jetstream;
pub mod lines;
#[cfg(any(
    feature = "mqtt",
    feature = "nats",
    feature = "https",
    feature = "amqp"
))]
pub mod live;
#[cfg(feature = "mqtt")]
pub mod mqtt;

pub use feed::{feed_lines, feed_reader, InvalidLine, LinesReport};
pub use invalid::InvalidLog;
pub use lines::{Line, LineContent, LineReader, DEFAULT_MAX_LINE_BYTES};
#[cfg(any(
    feature = "mqtt",
    feature = "nats",
    feature = "https",
    feature = "amqp"
))]
pub use live::{InputHooks, LiveInput, LiveReport, NoHooks};
