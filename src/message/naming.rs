//! The spellings of system property names: every one IoT Hub uses somewhere, read on input, and
//! the one each endpoint kind uses, written on output.
//!
//! IoT Hub names one system property differently depending on where it is seen (Learn, "Create
//! and read IoT Hub messages", table "System property names"): an Event Hubs endpoint (and the
//! built-in endpoint) carries `iothub-connection-device-id` and `content-type`, a Storage
//! container `connectionDeviceId` and `contentType`, Service Bus `MessageId` and `ContentType`,
//! Event Grid `iothub-content-type`; IoT Edge hub's MQTT property bag writes `$.cdid` and `$.ct`.
//! Messages captured at any of these places are fed back to hubroute, so input accepts every
//! spelling ([`canonical_name`]); a broker sink standing in for an endpoint writes the spelling of
//! the endpoint kind it stands for ([`PropertyNaming`]), so a consumer written against that kind
//! reads it unchanged.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::names;

/// Whose spelling a sink writes system property names in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PropertyNaming {
    /// IoT Edge hub's MQTT property bag (`$.mid`, `$.ct`, `$.cdid`, …; others as `$.{name}`).
    #[default]
    Edge,
    /// Event Hubs endpoints and the built-in endpoint (`message-id`, `content-type`,
    /// `iothub-connection-device-id`, …).
    EventHubs,
    /// Storage containers (and Cosmos DB): the routing names themselves (`messageId`,
    /// `contentType`, `connectionDeviceId`, …).
    Storage,
    /// Service Bus queues and topics (`MessageId`, `ContentType`, `CorrelationId`, with
    /// `iothub-connection-*` ids).
    ServiceBus,
    /// Event Grid (`message-id`, `iothub-content-type`, `iothub-content-encoding`, …).
    EventGrid,
}

/// One row of IoT Hub's table: the routing name, then Event Hubs, Storage, Service Bus and
/// Event Grid spellings.
pub(crate) type Row = (&'static str, [&'static str; 4]);

/// IoT Hub's "System property names" table. Service Bus has no enqueued-time row (N/A: Service
/// Bus stamps its own `EnqueuedTimeUtc`); a broker has no such stamp, so hubroute keeps the hub's
/// value under the Event Hubs name rather than lose it.
pub(crate) const TABLE: [Row; 12] = [
    (
        names::MESSAGE_ID,
        ["message-id", "messageId", "MessageId", "message-id"],
    ),
    (names::USER_ID, ["user-id", "userId", "UserId", "user-id"]),
    (
        names::CONNECTION_DEVICE_ID,
        [
            "iothub-connection-device-id",
            "connectionDeviceId",
            "iothub-connection-device-id",
            "iothub-connection-device-id",
        ],
    ),
    (
        names::CONNECTION_MODULE_ID,
        [
            "iothub-connection-module-id",
            "connectionModuleId",
            "iothub-connection-module-id",
            "iothub-connection-module-id",
        ],
    ),
    (
        names::CONNECTION_DEVICE_GENERATION_ID,
        [
            "iothub-connection-auth-generation-id",
            "connectionDeviceGenerationId",
            "iothub-connection-auth-generation-id",
            "iothub-connection-auth-generation-id",
        ],
    ),
    (
        names::CONNECTION_AUTH_METHOD,
        [
            "iothub-connection-auth-method",
            "connectionAuthMethod",
            "iothub-connection-auth-method",
            "iothub-connection-auth-method",
        ],
    ),
    (
        names::CONTENT_TYPE,
        [
            "content-type",
            "contentType",
            "ContentType",
            "iothub-content-type",
        ],
    ),
    (
        names::CONTENT_ENCODING,
        [
            "content-encoding",
            "contentEncoding",
            "ContentEncoding",
            "iothub-content-encoding",
        ],
    ),
    (
        names::ENQUEUED_TIME,
        [
            "iothub-enqueuedtime",
            "enqueuedTime",
            "iothub-enqueuedtime",
            "iothub-enqueuedtime",
        ],
    ),
    (
        names::CORRELATION_ID,
        [
            "correlation-id",
            "correlationId",
            "CorrelationId",
            "correlation-id",
        ],
    ),
    (
        names::DT_DATASCHEMA,
        [
            "dt-dataschema",
            "dt-dataschema",
            "dt-dataschema",
            "dt-dataschema",
        ],
    ),
    (
        names::DT_SUBJECT,
        ["dt-subject", "dt-subject", "dt-subject", "dt-subject"],
    ),
];

/// IoT Edge hub's property bag names (both directions of the MQTT bag).
pub(crate) const EDGE: [(&str, &str); 11] = [
    (names::MESSAGE_ID, "$.mid"),
    (names::CORRELATION_ID, "$.cid"),
    (names::USER_ID, "$.uid"),
    (names::TO, "$.to"),
    (names::CONTENT_TYPE, "$.ct"),
    (names::CONTENT_ENCODING, "$.ce"),
    (names::CONNECTION_DEVICE_ID, "$.cdid"),
    (names::CONNECTION_MODULE_ID, "$.cmid"),
    (
        names::CONNECTION_AUTH_METHOD,
        "iothub-connection-auth-method",
    ),
    (
        names::CONNECTION_DEVICE_GENERATION_ID,
        "iothub-connection-auth-generation-id",
    ),
    (names::ENQUEUED_TIME, "iothub-enqueuedtime"),
];

/// The message source as the built-in endpoint names it (`iothub-message-source`); input reads
/// it into the message's source.
pub const MESSAGE_SOURCE: &str = "iothub-message-source";

impl PropertyNaming {
    /// Every naming, in the order of [`PropertyNaming::key`]'s documentation.
    pub const ALL: [PropertyNaming; 5] = [
        PropertyNaming::Edge,
        PropertyNaming::EventHubs,
        PropertyNaming::Storage,
        PropertyNaming::ServiceBus,
        PropertyNaming::EventGrid,
    ];

    /// The naming of an endpoint kind, by the key of its list in a routing configuration
    /// (`eventHubs`, `serviceBusQueues`, `serviceBusTopics`, `storageContainers`,
    /// `cosmosDBSqlContainers`, `events` for the built-in endpoint, which is Event Hubs
    /// compatible); `None` for an unknown key.
    pub fn for_endpoint_kind(key: &str) -> Option<PropertyNaming> {
        Some(match key {
            "events" | "eventHubs" => PropertyNaming::EventHubs,
            "serviceBusQueues" | "serviceBusTopics" => PropertyNaming::ServiceBus,
            "storageContainers" | "cosmosDBSqlContainers" => PropertyNaming::Storage,
            "eventGrid" => PropertyNaming::EventGrid,
            _ => return None,
        })
    }

    /// The name of this naming in a sink URL's `names=` parameter.
    pub fn key(self) -> &'static str {
        match self {
            PropertyNaming::Edge => "edge",
            PropertyNaming::EventHubs => "eventHubs",
            PropertyNaming::Storage => "storage",
            PropertyNaming::ServiceBus => "serviceBus",
            PropertyNaming::EventGrid => "eventGrid",
        }
    }

    /// The name under which this naming writes system property `name` (a routing name such as
    /// `contentType`, in any case). Names outside IoT Hub's table keep their own spelling, except
    /// in the Edge bag, where they are `$.{name}` so that they read back as system properties.
    pub fn outbound_name(self, name: &str) -> Cow<'_, str> {
        let column = match self {
            PropertyNaming::Edge => {
                return EDGE
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map_or_else(
                        || Cow::Owned(format!("$.{name}")),
                        |(_, w)| Cow::Borrowed(*w),
                    )
            }
            PropertyNaming::EventHubs => 0,
            PropertyNaming::Storage => 1,
            PropertyNaming::ServiceBus => 2,
            PropertyNaming::EventGrid => 3,
        };
        TABLE
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(Cow::Borrowed(name), |(_, spellings)| {
                Cow::Borrowed(spellings[column])
            })
    }
}

impl fmt::Display for PropertyNaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl FromStr for PropertyNaming {
    type Err = String;

    /// A `names=` value, in any case; endpoint-kind keys (`eventHubs`, `serviceBusQueues`, …)
    /// are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(n) = PropertyNaming::ALL
            .into_iter()
            .find(|n| n.key().eq_ignore_ascii_case(s))
        {
            return Ok(n);
        }
        ["events", "eventHubs", "serviceBusQueues", "serviceBusTopics", "storageContainers", "cosmosDBSqlContainers"]
            .into_iter()
            .find(|k| k.eq_ignore_ascii_case(s))
            .and_then(PropertyNaming::for_endpoint_kind)
            .ok_or_else(|| {
                format!("'{s}' is not a property naming (edge, eventHubs, storage, serviceBus or eventGrid)")
            })
    }
}

/// The routing name (`connectionDeviceId`) of a system property written in any spelling IoT Hub
/// uses (`iothub-connection-device-id`, `$.cdid`, `ConnectionDeviceId`, …), or `None` when the
/// name is not one of them (it is then kept as it is).
pub fn canonical_name(name: &str) -> Option<&'static str> {
    by_length()
        .get(name.len())
        .and_then(|bucket| bucket.iter().find(|(s, _)| s.eq_ignore_ascii_case(name)))
        .map(|&(_, c)| c)
        .or_else(|| name.strip_prefix("$.").and_then(canonical_name))
}

/// Every spelling of [`TABLE`] and [`EDGE`] with its routing name, in the order
/// [`canonical_name`] tries them (rows in order, the routing name first), bucketed by length:
/// input looks up every system property name of every message, and a name is compared only
/// with the few spellings of its length instead of all ninety.
fn by_length() -> &'static [Vec<(&'static str, &'static str)>] {
    static BY_LENGTH: std::sync::OnceLock<Vec<Vec<(&'static str, &'static str)>>> =
        std::sync::OnceLock::new();
    BY_LENGTH.get_or_init(|| {
        let mut buckets: Vec<Vec<(&'static str, &'static str)>> = Vec::new();
        let spellings = TABLE
            .iter()
            .flat_map(|(n, row)| std::iter::once((*n, *n)).chain(row.iter().map(|s| (*s, *n))))
            .chain(EDGE.iter().flat_map(|&(n, w)| [(n, n), (w, n)]));
        for (spelling, name) in spellings {
            if buckets.len() <= spelling.len() {
                buckets.resize_with(spelling.len() + 1, Vec::new);
            }
            buckets[spelling.len()].push((spelling, name));
        }
        buckets
    })
}

/// `url` with `names=` set to the naming of endpoint kind `kind` (the key of its list in a
/// routing configuration, e.g. `eventHubs`), unless the URL already chooses one; `url`
/// unchanged for a kind without a naming of its own.
pub fn with_endpoint_naming(url: &str, kind: &str) -> String {
    let Some(naming) = PropertyNaming::for_endpoint_kind(kind) else {
        return url.to_string();
    };
    let has_names = url.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|p| p == "names" || p.starts_with("names="))
    });
    match (has_names, url.contains('?')) {
        (true, _) => url.to_string(),
        (false, true) => format!("{url}&names={naming}"),
        (false, false) => format!("{url}?names={naming}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search [`canonical_name`] replaced: every row in order, then IoT Edge's names.
    fn canonical_name_linear(name: &str) -> Option<&'static str> {
        TABLE
            .iter()
            .find(|(n, spellings)| {
                n.eq_ignore_ascii_case(name)
                    || spellings.iter().any(|s| s.eq_ignore_ascii_case(name))
            })
            .map(|(n, _)| *n)
            .or_else(|| {
                EDGE.iter()
                    .find(|(n, w)| n.eq_ignore_ascii_case(name) || w.eq_ignore_ascii_case(name))
                    .map(|(n, _)| *n)
            })
            .or_else(|| name.strip_prefix("$.").and_then(canonical_name_linear))
    }

    #[test]
    fn the_length_index_finds_what_the_linear_search_found() {
        let mut probes: Vec<String> = Vec::new();
        for (n, row) in TABLE {
            probes.push(n.to_string());
            probes.extend(row.iter().map(|s| s.to_string()));
        }
        for (n, w) in EDGE {
            probes.push(n.to_string());
            probes.push(w.to_string());
        }
        let more: Vec<String> = probes
            .iter()
            .flat_map(|p| {
                [
                    p.to_uppercase(),
                    format!("$.{p}"),
                    format!("$.$.{p}"),
                    format!("{p}x"),
                    p[1..].to_string(),
                    p.replacen('e', "\u{e9}", 1),
                ]
            })
            .collect();
        probes.extend(more);
        probes.extend(["", "$.", "$", "x", "temp"].map(String::from));
        for p in &probes {
            assert_eq!(canonical_name(p), canonical_name_linear(p), "{p:?}");
        }
    }

    #[test]
    fn every_spelling_reads_back_to_its_routing_name() {
        for naming in PropertyNaming::ALL {
            let rows = TABLE
                .iter()
                .map(|(n, _)| *n)
                .chain(EDGE.iter().map(|(n, _)| *n));
            for name in rows {
                let out = naming.outbound_name(name);
                assert_eq!(canonical_name(&out), Some(name), "{naming} {name} -> {out}");
            }
        }
        assert_eq!(
            canonical_name("IOTHUB-CONNECTION-DEVICE-ID"),
            Some("connectionDeviceId")
        );
        assert_eq!(canonical_name("processingPath"), None);
    }

    #[test]
    fn endpoint_kinds_have_their_tables_spellings() {
        let eh = PropertyNaming::for_endpoint_kind("eventHubs").unwrap();
        assert_eq!(eh.outbound_name("contentType"), "content-type");
        assert_eq!(
            eh.outbound_name("connectionDeviceId"),
            "iothub-connection-device-id"
        );
        assert_eq!(PropertyNaming::for_endpoint_kind("events"), Some(eh));
        let sb = PropertyNaming::for_endpoint_kind("serviceBusTopics").unwrap();
        assert_eq!(sb.outbound_name("messageId"), "MessageId");
        assert_eq!(sb.outbound_name("correlationId"), "CorrelationId");
        assert_eq!(
            sb.outbound_name("connectionModuleId"),
            "iothub-connection-module-id"
        );
        let st = PropertyNaming::for_endpoint_kind("storageContainers").unwrap();
        assert_eq!(st.outbound_name("CONTENTTYPE"), "contentType");
        assert_eq!(
            PropertyNaming::EventGrid.outbound_name("contentEncoding"),
            "iothub-content-encoding"
        );
        assert_eq!(PropertyNaming::Edge.outbound_name("contentType"), "$.ct");
        assert_eq!(
            PropertyNaming::Edge.outbound_name("dt-subject"),
            "$.dt-subject"
        );
        assert_eq!(
            eh.outbound_name("iothub-creation-time-utc"),
            "iothub-creation-time-utc"
        );
        assert_eq!("ServiceBusQueues".parse(), Ok(PropertyNaming::ServiceBus));
        assert_eq!("edge".parse(), Ok(PropertyNaming::Edge));
        assert!("kafka".parse::<PropertyNaming>().is_err());
        assert_eq!(
            with_endpoint_naming("mqtt://h:1/t", "serviceBusQueues"),
            "mqtt://h:1/t?names=serviceBus"
        );
        assert_eq!(
            with_endpoint_naming("nats://h:1/s?x=1", "events"),
            "nats://h:1/s?x=1&names=eventHubs"
        );
        assert_eq!(
            with_endpoint_naming("nats://h:1/s?names=edge", "eventHubs"),
            "nats://h:1/s?names=edge"
        );
    }
}
