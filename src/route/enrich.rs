//! Message enrichments: application properties IoT Hub adds to the copy of a message it
//! delivers to particular endpoints (`research/azure-routing.md` §4).

use super::table::{EndpointId, RouteTable};
use crate::body::BodyPath;
use crate::eval::{TwinLookup, Value};
use crate::message::{Message, Source};

/// What an enrichment's value is.
#[derive(Clone, Debug, PartialEq)]
pub enum EnrichmentValue {
    /// A static string.
    Static(String),
    /// `$iothubname`.
    HubName,
    /// `$twin.tags.…`, `$twin.properties.desired.…`, `$twin.properties.reported.…`: the path
    /// from the twin's root, and the literal text stamped when it has no primitive value.
    Twin {
        /// Path from the twin document's root (`tags.location`).
        path: BodyPath,
        /// The value as written (`$twin.tags.location`).
        literal: String,
    },
}

impl EnrichmentValue {
    /// Reads an enrichment value as IoT Hub does.
    pub fn parse(value: &str) -> Result<EnrichmentValue, String> {
        if value.eq_ignore_ascii_case("$iothubname") {
            return Ok(EnrichmentValue::HubName);
        }
        let lower = value.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("$twin.") {
            let ok = ["tags.", "properties.desired.", "properties.reported."]
                .iter()
                .any(|p| rest.starts_with(p));
            if !ok {
                return Err(format!("'{value}' must be under $twin.tags, $twin.properties.desired or $twin.properties.reported"));
            }
            return Ok(EnrichmentValue::Twin {
                path: BodyPath::parse(&value["$twin.".len()..]),
                literal: value.to_string(),
            });
        }
        Ok(EnrichmentValue::Static(value.to_string()))
    }
}

/// One enrichment of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Enrichment {
    /// The application property it sets.
    pub key: String,
    /// Its value.
    pub value: EnrichmentValue,
    /// The endpoints whose copies get it.
    pub endpoints: Vec<EndpointId>,
}

impl RouteTable {
    /// The enrichments, in document order.
    pub fn enrichments(&self) -> &[Enrichment] {
        &self.enrichments
    }

    /// Whether any enrichment applies to `endpoint` (if not, the original message is sent).
    pub fn enriches(&self, endpoint: EndpointId) -> bool {
        self.enrichments
            .iter()
            .any(|e| e.endpoints.contains(&endpoint))
    }

    /// The copy of `message` delivered to `endpoint`: the message with that endpoint's
    /// enrichments added as application properties. A twin path with no primitive value (no
    /// twin, absent, an object) stamps the path itself, as IoT Hub does. Digital-twin change
    /// events are not enriched.
    pub fn enrich(
        &self,
        message: &Message,
        endpoint: EndpointId,
        source: Source,
        twin: Option<&dyn TwinLookup>,
    ) -> Message {
        let mut copy = message.clone();
        for (key, value) in self.enrichment_values(message, endpoint, source, twin) {
            copy.app_properties.insert(key, Some(value));
        }
        copy
    }

    /// The application properties [`RouteTable::enrich`] adds to `endpoint`'s copy, in the
    /// table's order: what a store keeps per endpoint instead of a whole enriched copy.
    pub fn enrichment_values(
        &self,
        message: &Message,
        endpoint: EndpointId,
        source: Source,
        twin: Option<&dyn TwinLookup>,
    ) -> Vec<(String, String)> {
        if source == Source::DigitalTwinChangeEvents {
            return Vec::new();
        }
        self.enrichments
            .iter()
            .filter(|e| e.endpoints.contains(&endpoint))
            .map(|e| {
                let value = match &e.value {
                    EnrichmentValue::Static(s) => s.clone(),
                    EnrichmentValue::HubName => self.hub_name.clone(),
                    EnrichmentValue::Twin { path, literal } => {
                        let v = twin.map(|t| t.twin_value(message, path));
                        match v {
                            Some(Value::Str(s)) => s.into_owned(),
                            Some(Value::Number(n)) => {
                                crate::dotnet::format_double(n).unwrap_or_else(|| literal.clone())
                            }
                            Some(Value::Bool(b)) => b.to_string(),
                            _ => literal.clone(),
                        }
                    }
                };
                (e.key.clone(), value)
            })
            .collect()
    }
}
