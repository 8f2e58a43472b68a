//! Endpoint sinks: where routed messages go, and how they get there.
//!
//! The route table decides *which* endpoints a message goes to; this module delivers one copy
//! per endpoint ([`Envelope`]) to a [`Sink`]. The pieces:
//!
//! * [`Sink`]: the trait a destination implements. Batches, not single messages, because every
//!   real destination (a file, a broker) is much cheaper per message in batches.
//! * Built-in sinks: [`JsonLinesSink`] (a file or stdout, for people and pipes), [`ChannelSink`]
//!   (an in-process channel, for embedding) and [`StorageSink`] (files laid out and encoded as an
//!   IoT Hub Storage-container endpoint writes its blobs, so existing readers keep working).
//! * [`Dispatcher`] (in [`delivery`]): one worker thread and one bounded queue per endpoint, retries
//!   with exponential backoff, and a [`DeadLetter`] file for everything that cannot be delivered.
//!   A slow or dead endpoint never stalls the others, and no message is dropped silently: each
//!   one is delivered, dead-lettered with a reason, or counted as lost because the dead-letter
//!   file itself failed. In memory only: for delivery that survives a crash and acknowledges
//!   inputs on durable acceptance, use the store-backed `pipeline` module (feature `store`),
//!   which `hubroute run` uses.
//!
//! Error and dead-letter reason codes are stable (`E05xx`, see [`codes`]).

use std::time::SystemTime;

use crate::message::Message;

mod channel;
pub mod delivery;
mod jsonl;
pub(crate) mod record;
pub mod replay;
mod storage;
pub(crate) mod time;
pub mod view;

pub use channel::ChannelSink;
pub use delivery::{
    DeadLetter, DeliveryStats, DispatchError, Dispatched, Dispatcher, DispatcherConfig,
    EndpointStats, RetryPolicy, Settlement, Ticket,
};
pub use jsonl::JsonLinesSink;
pub use record::{json_body_text, storage_json_record, AVRO_SCHEMA};
pub use storage::{
    validate_file_name_format, StorageConfig, StorageEncoding, StorageSink,
    DEFAULT_BATCH_FREQUENCY, DEFAULT_FILE_NAME_FORMAT, DEFAULT_MAX_CHUNK_SIZE_BYTES,
    FILE_NAME_TOKENS,
};
pub use time::{
    format_enqueued_time, parse_duration, parse_enqueued_time, Clock, ManualClock, SystemClock,
};
pub use view::{CopyView, PackedProperties, SharedJson};

/// Stable codes for sink errors and dead-letter reasons. Codes are never reused.
pub mod codes {
    /// A write failed in a way that may succeed later (I/O error, broker down).
    pub const RETRYABLE: &str = "E0501";
    /// A write can never succeed (bad configuration, receiver gone, unencodable message).
    pub const FATAL: &str = "E0502";
    /// Dead letter: the endpoint's queue was full when the message was dispatched.
    pub const BACKLOG_FULL: &str = "E0503";
    /// Dead letter: every attempt the retry policy allows failed with a retryable error.
    pub const RETRIES_EXHAUSTED: &str = "E0504";
    /// Dead letter: no sink is bound to the envelope's endpoint name.
    pub const UNKNOWN_ENDPOINT: &str = "E0505";
    /// Dead letter: the sink panicked on this batch (or on an earlier one, which leaves it
    /// unusable).
    pub const SINK_PANICKED: &str = "E0506";
    /// Dead letter: the endpoint's worker thread is gone, so nothing can be queued for it.
    pub const WORKER_STOPPED: &str = "E0507";
    /// Dead letter: the copy was not delivered within its endpoint's retention time.
    pub const RETENTION_EXPIRED: &str = "E0508";
    /// Dead letter: the failing endpoint's waiting copies exceeded its retention bytes.
    pub const RETENTION_BYTES_EXCEEDED: &str = "E0509";
    /// A store record could not be decoded (the store file is damaged); counted, reported.
    pub const STORE_RECORD_DAMAGED: &str = "E0510";
}

/// One message on its way to one endpoint: a copy with that endpoint's enrichments already applied
/// as application properties, plus what a sink needs to know about where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The endpoint name from the routing configuration (selects the sink).
    pub endpoint: String,
    /// The message as this endpoint should see it.
    pub message: Message,
    /// When the hub (or the router) accepted the message; written as `EnqueuedTimeUtc`.
    pub enqueued_time: SystemTime,
    /// The hub's name, the `{iothub}` token of Storage file names.
    pub hub_name: String,
    /// The input partition, the `{partition}` token of Storage file names.
    pub partition: u32,
    /// The message's sequence number within its partition.
    pub sequence: u64,
}

impl Envelope {
    /// An envelope for `endpoint` with the current time, partition 0, sequence 0 and no hub name.
    pub fn new(endpoint: impl Into<String>, message: Message) -> Self {
        Envelope {
            endpoint: endpoint.into(),
            message,
            enqueued_time: SystemTime::now(),
            hub_name: String::new(),
            partition: 0,
            sequence: 0,
        }
    }
}

/// Why a sink could not take a batch. The variant tells the [`Dispatcher`] what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Trying again later may work (I/O error, broker down): the batch is retried with backoff.
    #[error("{0}")]
    Retryable(String),
    /// Trying again cannot work (bad configuration, receiver gone, message the destination can
    /// never hold): the batch goes to the dead letter at once.
    #[error("{0}")]
    Fatal(String),
}

impl SinkError {
    /// The stable code: [`codes::RETRYABLE`] or [`codes::FATAL`].
    pub fn code(&self) -> &'static str {
        match self {
            SinkError::Retryable(_) => codes::RETRYABLE,
            SinkError::Fatal(_) => codes::FATAL,
        }
    }

    /// Whether the dispatcher should try the batch again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Retryable(_))
    }

    /// Classifies an I/O error: a closed pipe means the reader is gone for good, anything else
    /// (disk full, permissions being fixed, a network file system hiccup) may clear up.
    pub(crate) fn from_io(context: &str, e: &std::io::Error) -> SinkError {
        let text = format!("{context}: {e}");
        match e.kind() {
            std::io::ErrorKind::BrokenPipe => SinkError::Fatal(text),
            _ => SinkError::Retryable(text),
        }
    }
}

/// A destination for routed messages.
///
/// A sink is owned by one [`Dispatcher`] worker thread at a time, hence `Send` but not `Sync`.
/// Implementations should report failures as [`SinkError`] rather than panic; the dispatcher
/// survives a panic anyway, but then stops using the sink.
pub trait Sink: Send {
    /// A short human-readable description (`"jsonl:/tmp/out.jsonl"`), for logs and errors.
    fn describe(&self) -> String;

    /// Writes the batch, in order. On `Ok` every envelope was accepted. On `Err` the caller may
    /// retry the whole batch, so a sink that failed half way may see some envelopes twice
    /// (delivery is at-least-once).
    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError>;

    /// Makes everything accepted so far durable (or visible) at the destination.
    fn flush(&mut self) -> Result<(), SinkError>;

    /// Writes copies read in place from the durable pipeline's store, as
    /// [`Sink::write_batch`] would write their envelopes. The default decodes each view into
    /// an [`Envelope`] and calls `write_batch`; a sink that can render straight from the
    /// borrowed bytes (the JSON Lines sink) overrides it and builds no `Message` per copy.
    fn write_views(&mut self, batch: &[CopyView<'_>]) -> Result<(), SinkError> {
        let envelopes: Vec<Envelope> = batch.iter().map(CopyView::to_envelope).collect();
        self.write_batch(&envelopes)
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        (**self).write_batch(batch)
    }
    fn write_views(&mut self, batch: &[CopyView<'_>]) -> Result<(), SinkError> {
        (**self).write_views(batch)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        (**self).flush()
    }
}
