//! A JetStream pull consumer that never stops pulling while its owner wants messages.
//!
//! async-nats ends or fails a pull stream when the server goes away long enough for idle
//! heartbeats to be missed, or restarts; a worker that then waited on the dead stream stopped
//! routing for good (2 of 11 runs with a SIGKILLed nats-server). [`ResumingPull::next`] replaces
//! a failed stream with a new one, with backoff (100 ms doubling to 5 s), forever, binding the
//! consumer afresh every fifth attempt in case the server lost it, and says so on standard
//! error. Messages the old stream delivered and nobody acknowledged are redelivered by the
//! server after the consumer's `ack_wait`.

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::Message;
use futures_util::StreamExt;

use crate::broker::nats::{ConsumerSettings, JetStreamInput};
use crate::broker::BrokerUrl;

/// The stream message id (`Nats-Msg-Id`) under which a bridge appends a device message that
/// names itself: device (and module) id, the device's `messageId`, and a hash of exactly what
/// the device sent (MQTT topic and payload). A resend of the same publish — by the broker
/// after a bridge restart, or by the bridge itself — gets the same id, so JetStream's duplicate
/// window drops it; a device that reuses a `messageId` for a different message still gets both
/// through. `None` without a `messageId`: nothing then tells a resend from a new message with
/// the same content, and the caller names its own run in the id (a restart can duplicate).
pub fn stream_message_id(
    topic: &str,
    payload: &[u8],
    message: &crate::message::Message,
) -> Option<String> {
    let sys = &message.system_properties;
    let message_id = sys.get("messageId").flatten().filter(|m| !m.is_empty())?;
    let device = sys.get("connectionDeviceId").flatten().unwrap_or_default();
    let module = sys.get("connectionModuleId").flatten().unwrap_or_default();
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.as_bytes().iter().chain(&[0u8]).chain(payload) {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    Some(format!("{device}/{module}/{message_id}/{hash:016x}"))
}

/// A durable pull consumer's messages, resumed after failures; see the module docs.
pub struct ResumingPull {
    url: BrokerUrl,
    settings: ConsumerSettings,
    input: JetStreamInput,
    messages: Option<pull::Stream>,
    resumed: u64,
}

impl std::fmt::Debug for ResumingPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumingPull")
            .field("url", &self.url.to_string())
            .field("consumer", &self.settings.name)
            .field("resumed", &self.resumed)
            .finish_non_exhaustive()
    }
}

impl ResumingPull {
    /// Connects, binds (creating if needed) the durable consumer and starts pulling.
    pub async fn open(url: &BrokerUrl, settings: ConsumerSettings) -> Result<Self, String> {
        let input = JetStreamInput::open(url, &settings).await?;
        let messages = Some(input.messages().await?);
        Ok(ResumingPull {
            url: url.clone(),
            settings,
            input,
            messages,
            resumed: 0,
        })
    }

    /// How often the pull stream was replaced.
    pub fn resumed(&self) -> u64 {
        self.resumed
    }

    /// The next delivered message (acknowledge it with its `acker`). Waits as long as it
    /// takes; cancel it (e.g. in a `select!` with a stop signal) to stop. Cancel-safe: a
    /// message is never taken from the stream and then dropped.
    pub async fn next(&mut self) -> Message {
        let mut attempt = 0u64;
        let mut backoff = Duration::from_millis(100);
        loop {
            if let Some(stream) = self.messages.as_mut() {
                match stream.next().await {
                    Some(Ok(m)) => return m,
                    Some(Err(e)) => eprintln!("{}: {e}; pulling again", self.url),
                    None => eprintln!(
                        "{}: the consumer's message stream ended; pulling again",
                        self.url
                    ),
                }
                self.messages = None;
                self.resumed += 1;
            }
            attempt += 1;
            if attempt % 5 == 0 {
                match JetStreamInput::open(&self.url, &self.settings).await {
                    Ok(fresh) => self.input = fresh,
                    Err(e) => eprintln!("{}: {e}", self.url),
                }
            }
            match self.input.messages().await {
                Ok(m) => {
                    if attempt > 1 {
                        eprintln!("{}: pulling again after {attempt} attempts", self.url);
                    }
                    self.messages = Some(m);
                    attempt = 0;
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Err(e) if attempt.is_power_of_two() => {
                    eprintln!("{}: {e}; retrying (attempt {attempt})", self.url)
                }
                Err(_) => {}
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    #[test]
    fn message_ids_are_stable_and_tell_content_apart() {
        let mut m = Message::default();
        m.system_properties
            .insert("connectionDeviceId", Some("dev-1".into()));
        assert_eq!(stream_message_id("t", b"x", &m), None, "no messageId");
        m.system_properties.insert("messageId", Some("m-1".into()));
        let a = stream_message_id("t", b"x", &m).unwrap();
        assert!(a.starts_with("dev-1//m-1/"), "{a}");
        assert_eq!(stream_message_id("t", b"x", &m).unwrap(), a, "a resend");
        assert_ne!(
            stream_message_id("t", b"y", &m).unwrap(),
            a,
            "another payload"
        );
        assert_ne!(
            stream_message_id("t2", b"x", &m).unwrap(),
            a,
            "another topic"
        );
    }
}
