//! The router: IoT Hub routing configurations, compiled into a [`RouteTable`] that sends each
//! message to its endpoints, with the fallback route, enrichments, `$twin` and explanations.
//!
//! ```
//! use hubroute::route::RouteTable;
//! use hubroute::message::{Message, Source};
//! let config = r#"{"routes": [{"name": "hot", "source": "DeviceMessages",
//!     "condition": "processingPath = 'hot'", "endpointNames": ["events"], "isEnabled": true}]}"#;
//! let table = RouteTable::from_json(config, "myhub").table.unwrap();
//! let msg = Message::from_json_str(r#"{"appProperties": {"processingPath": "hot"}}"#).unwrap();
//! let routing = table.route(&msg, Source::DeviceMessages);
//! assert_eq!(table.endpoint(routing.endpoints[0]).name, "events");
//! ```

pub mod config;
mod diagnostic;
mod enrich;
mod explain;
mod router;
mod table;
mod twin;
pub mod validate;

pub use diagnostic::{ConfigDiagnostic, DiagnosticLog};
pub use enrich::{Enrichment, EnrichmentValue};
pub use explain::{Explanation, NodeExplanation, Outcome, RouteExplanation};
pub use router::Router;
pub use table::{condition_options, Build, Endpoint, EndpointId, Route, RouteTable, Routing};
pub use twin::{DirTwinStore, FixedTwin, TwinProblem, TwinResolver, TwinStore, KEPT_PROBLEMS};
