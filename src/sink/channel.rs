//! A sink that hands envelopes to the embedding program over a `std::sync::mpsc` channel.

use std::sync::mpsc::Sender;

use super::{Envelope, Sink, SinkError};

/// Sends a clone of every envelope to an in-process receiver, for programs that embed the router
/// and consume its output themselves.
///
/// The channel is unbounded, so a write never blocks; back-pressure comes from the
/// [`super::Dispatcher`]'s bounded queue in front of the sink. A dropped receiver is
/// [`SinkError::Fatal`]: nobody will ever read again, so retrying would only delay the dead
/// letter.
#[derive(Debug)]
pub struct ChannelSink {
    sender: Sender<Envelope>,
    name: String,
}

impl ChannelSink {
    /// A sink sending to `sender`.
    pub fn new(sender: Sender<Envelope>) -> Self {
        ChannelSink {
            sender,
            name: "channel".into(),
        }
    }

    /// The same, with a name for [`Sink::describe`].
    pub fn named(sender: Sender<Envelope>, name: impl Into<String>) -> Self {
        ChannelSink {
            sender,
            name: name.into(),
        }
    }
}

impl Sink for ChannelSink {
    fn describe(&self) -> String {
        format!("channel:{}", self.name)
    }

    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        for (i, e) in batch.iter().enumerate() {
            self.sender.send(e.clone()).map_err(|_| {
                SinkError::Fatal(format!(
                    "{}: the receiver is gone ({i} of {} envelopes of the batch were sent)",
                    self.describe(),
                    batch.len()
                ))
            })?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
