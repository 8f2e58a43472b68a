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
