//! Real brokers: MQTT (Mosquitto or any MQTT 3.1.1 broker) and NATS / JetStream, as inputs and
//! as endpoint sinks. Behind the cargo features `mqtt` and `nats`; the engine and router never
//! depend on this module, so an embedder that only evaluates routes builds without tokio.
//!
//! * [`BrokerUrl`]: `mqtt://HOST:PORT[/TOPIC]`, `nats://HOST:PORT/SUBJECT`,
//!   `jetstream://HOST:PORT/NAME[?consumer=…&ack_wait=…]`, the command line's spelling.
//! * [`mqtt`]: the device-to-cloud subscriber (IoT Hub's topics, manual acknowledgements) and
//!   [`mqtt::MqttSink`].
//! * [`nats`]: the JetStream stream the bridge appends to, the durable consumer router processes
//!   share, and [`nats::NatsSink`].
//!
//! Delivery is at-least-once everywhere: an input is acknowledged only after its output is
//! confirmed (a JetStream publish acknowledgement, an MQTT PUBACK, every endpoint's sink flushed),
//! so a crash can repeat a message but never lose one.

use std::time::Duration;

use crate::message::naming::PropertyNaming;
use crate::sink::parse_duration;

#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "nats")]
pub mod nats;

/// The broker families a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `mqtt://`
    Mqtt,
    /// `nats://`: core NATS (fire and forget, flushed).
    Nats,
    /// `jetstream://`: NATS JetStream (persisted, acknowledged).
    JetStream,
}

/// A parsed broker URL. Only loopback or explicitly named hosts are contacted; nothing is
/// resolved or connected here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Which broker family.
    pub scheme: Scheme,
    /// Host name or address.
    pub host: String,
    /// TCP port (1883 for MQTT and 4222 for NATS when omitted).
    pub port: u16,
    /// The path after the authority, without the leading `/`: an MQTT topic, a NATS subject, a
    /// JetStream stream name. May be empty.
    pub path: String,
    /// `?key=value&…` pairs, in order.
    pub query: Vec<(String, String)>,
}

impl BrokerUrl {
    /// Parses `scheme://host[:port][/path][?query]`.
    pub fn parse(text: &str) -> Result<BrokerUrl, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("'{text}' is not a broker URL (scheme://host:port/…)"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => Scheme::Mqtt,
            "nats" => Scheme::Nats,
            "jetstream" | "js" => Scheme::JetStream,
            other => {
                return Err(format!(
                    "'{text}': unknown broker scheme '{other}' (mqtt, nats or jetstream)"
                ))
            }
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        let default_port = match scheme {
            Scheme::Mqtt => 1883,
            Scheme::Nats | Scheme::JetStream => 4222,
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("'{text}': '{p}' is not a port number"))?,
            ),
            None => (authority, default_port),
        };
        if host.is_empty() {
            return Err(format!("'{text}': no host"));
        }
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (p.to_string(), String::new()),
            })
            .collect();
        Ok(BrokerUrl {
            scheme,
            host: host.to_string(),
            port,
            path: path.to_string(),
            query,
        })
    }

    /// The value of query parameter `key`, if present.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `host:port`, for connecting.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Query parameter `key` as a duration (`500ms`, `30s`, `2m`, or plain seconds).
    pub fn duration_param(&self, key: &str) -> Result<Option<Duration>, String> {
        self.param(key)
            .map(|v| {
                parse_duration(v)
                    .ok_or_else(|| format!("{key}={v}: not a duration (e.g. 30s, 500ms)"))
            })
            .transpose()
    }
}

/// The spelling of system property names a sink URL asks for with `?names=` (`edge`,
/// `eventHubs`, `storage`, `serviceBus`, `eventGrid`, or an endpoint kind such as
/// `serviceBusQueues`); IoT Edge hub's bag names without it. `hubroute run` adds the parameter
/// from the kind of the endpoint a sink is bound to ([`crate::message::naming::with_endpoint_naming`]).
pub fn property_naming(url: &BrokerUrl) -> Result<PropertyNaming, String> {
    url.param("names")
        .map_or(Ok(PropertyNaming::Edge), str::parse)
        .map_err(|e| format!("{url}: names={e}"))
}

impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Mqtt => "mqtt",
            Scheme::Nats => "nats",
            Scheme::JetStream => "jetstream",
        };
        write!(f, "{scheme}://{}:{}/{}", self.host, self.port, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_urls_choose_a_property_naming() {
        let naming = |u: &str| property_naming(&BrokerUrl::parse(u).unwrap());
        assert_eq!(naming("mqtt://h:1/t"), Ok(PropertyNaming::Edge));
        assert_eq!(
            naming("nats://h:1/s?names=serviceBus"),
            Ok(PropertyNaming::ServiceBus)
        );
        assert_eq!(
            naming("nats://h:1/s?names=eventHubs"),
            Ok(PropertyNaming::EventHubs)
        );
        let e = naming("mqtt://h:1/t?names=kafka").unwrap_err();
        assert!(e.contains("names='kafka' is not a property naming"), "{e}");
    }

    #[test]
    fn urls() {
        let u =
            BrokerUrl::parse("jetstream://127.0.0.1:4333/HUB?consumer=router&ack_wait=5s").unwrap();
        assert_eq!(u.scheme, Scheme::JetStream);
        assert_eq!(u.address(), "127.0.0.1:4333");
        assert_eq!(u.path, "HUB");
        assert_eq!(u.param("consumer"), Some("router"));
        assert_eq!(
            u.duration_param("ack_wait").unwrap(),
            Some(Duration::from_secs(5))
        );
        let u = BrokerUrl::parse("mqtt://localhost/alerts/out").unwrap();
        assert_eq!((u.port, u.path.as_str()), (1883, "alerts/out"));
        assert!(BrokerUrl::parse("kafka://x:1/t").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://h:99999").is_err());
        assert!(BrokerUrl::parse("h:1").is_err());
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("1y"), None);
    }
}
