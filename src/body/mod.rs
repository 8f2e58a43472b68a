//! JSON bodies and `$body` paths, read exactly as the reference engine reads
//! them (conformance rules R11, R15, R24).
//!
//! The engine validates `$body.<path>` at compile time with a small ANTLR
//! grammar ([`validate_body_path`], [`validate_twin_change_path`]), and at
//! run time parses the decoded body with Json.NET's `JObject.Parse`
//! ([`JsonDoc::parse`]) and evaluates the path with `SelectTokens`
//! ([`BodyPath`], [`JsonDoc::select`]). Each step has its own leniencies;
//! porting them separately keeps each one checkable against its source.
//!
//! ```
//! use hubroute::body::{BodyPath, JsonDoc, Selected};
//!
//! let doc = JsonDoc::parse("{ 'a': { b: [1, 0x10] }, /* note */ 'when': '2017-03-09T00:00:00Z' }").unwrap();
//! assert_eq!(doc.select(&BodyPath::parse("a.b[1]")), Selected::Number(16.0));
//! assert_eq!(doc.select(&BodyPath::parse("when")), Selected::Date);
//! assert_eq!(doc.select(&BodyPath::parse("a.c")), Selected::Missing);
//! ```

mod date;
mod doc;
mod extract;
mod jsonpath;
mod number;
mod parse;
mod path;
mod scan;
mod skip;

pub(crate) use date::{parse_iso, Zone};
pub use doc::{JsonDoc, Selected};
pub use extract::{Extraction, PathSet, PathSlot};
pub use jsonpath::{validate_body_path, validate_twin_change_path, JsonPathError};
pub use parse::{JsonError, MAX_DEPTH};
pub use path::BodyPath;

#[cfg(test)]
mod tests;
