//! hubroute: Azure IoT Hub message routing on your own machines.
//!
//! It parses, type-checks and compiles IoT Hub routing queries and evaluates them on device
//! messages with the reference engine's exact results (see `../shared/conformance`).
//!
//! ```
//! use hubroute::{Condition, Options, Bool3, message::Message};
//! let cond = Condition::compile("processingPath = 'hot' AND $body.Weather.Temperature > 50", &Options::default()).unwrap();
//! let msg = Message::from_json_str(r#"{
//!     "systemProperties": {"contentType": "application/json", "contentEncoding": "utf-8"},
//!     "appProperties": {"processingPath": "hot"},
//!     "body": "{\"Weather\": {\"Temperature\": 72}}"
//! }"#).unwrap();
//! assert_eq!(cond.eval(&msg), Bool3::True);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
#[cfg(any(feature = "mqtt", feature = "nats", feature = "amqp"))]
pub mod broker;
mod bytes;
pub mod check;
pub mod compile;
mod condition;
pub mod diagnostic;
pub mod dotnet;
pub mod eval;
pub mod functions;
pub mod ingest;
pub mod ir;
mod json_text;
#[cfg(feature = "store")]
mod lock_file;
pub mod message;
#[cfg(feature = "ops")]
pub mod ops;
#[cfg(feature = "store")]
pub mod pipeline;
pub mod redact;
pub mod registry;
pub mod route;
pub mod sink;
pub mod span;
pub mod syntax;
pub mod twin;
pub mod ty;
mod value;

pub use check::{Dialect, Options};
pub use condition::Condition;
pub use diagnostic::{CompileError, Diagnostic, Severity};
pub use eval::Bool3;
pub use syntax::Limits;
