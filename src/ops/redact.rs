//! Secrets out of text before it is logged: the crate's one implementation,
//! [`crate::redact`], under the name the operations code uses.

pub use crate::redact::url;
