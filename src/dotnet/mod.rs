//! Pure re-implementations of the .NET base-library behaviour the routing
//! engine leans on.
//!
//! The reference engine (Azure IoT Edge `Microsoft.Azure.Devices.Routing.Core`,
//! .NET 10) delegates number parsing, string indexing and case mapping to the
//! .NET base library. Those calls have semantics that Rust's standard library
//! does not share: `double.TryParse` with `NumberStyles.Any` accepts
//! parentheses, trailing signs and thousands separators; .NET strings are
//! UTF-16, so lengths and indices count UTF-16 code units; `ToUpperInvariant`
//! is a 1:1 simple case mapping. Every function here answers exactly what the
//! .NET call answers for the same text (deviations are documented where .NET
//! would produce a value Rust cannot represent, such as a lone surrogate).
//!
//! * [`number_parse`]: `double.TryParse(s, NumberStyles.Any, InvariantCulture)`
//!   and the grammar's decimal literals (conformance rules R07, R22).
//! * [`hex`]: `long.TryParse(s, NumberStyles.HexNumber, InvariantCulture)` for
//!   hex literals (R07).
//! * [`utf16`]: length, substring, ordinal search and ordinal comparison in
//!   UTF-16 code units (R18, R21).
//! * [`casing`]: `ToUpperInvariant`, `ToLowerInvariant` and
//!   `StringComparer.OrdinalIgnoreCase` (R01, R03, R21).
//! * [`number_format`]: shortest round-trip text of a double that the routing
//!   grammar reads back as the same number literal.

pub mod casing;
pub mod hex;
pub mod number_format;
pub mod number_parse;
pub mod utf16;

pub use casing::{eq_ignore_case, fold_ignore_case, to_lower_invariant, to_upper_invariant};
pub use hex::parse_hex_i64;
pub use number_format::format_double;
pub use number_parse::{parse_double_any, parse_integer_literal, parse_real_literal};
pub use utf16::{compare_ordinal, index_of, substring, utf16_len};
