//! Property bags with the engine's case-insensitive names.
//!
//! The engine copies both property dictionaries into .NET dictionaries with
//! `StringComparer.OrdinalIgnoreCase` (`Message.cs:49-50`, conformance rule
//! R01), so `$ContentType` finds `contentType`. Bags are small, so a vector
//! with a linear scan beats hashing and keeps the insertion order for output.

pub use crate::dotnet::eq_ignore_case;

/// A property bag: names compare case-insensitively (.NET
/// `OrdinalIgnoreCase`), insertion order is kept, and a value may be `null`
/// (present but null, which the engine distinguishes from absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<(String, Option<String>)>,
    /// Whether every name is ASCII (kept in step with `entries`), so that a
    /// lookup of an ASCII name can compare with plain ASCII case folding
    /// without re-checking each name ([`Properties::names_ascii`]).
    ascii: bool,
}

impl Default for Properties {
    fn default() -> Self {
        Properties {
            entries: Vec::new(),
            ascii: true,
        }
    }
}

impl Properties {
    /// An empty bag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `name` is. When it and every name in the bag are ASCII, equality
    /// under `OrdinalIgnoreCase` is equal length and equality up to ASCII case,
    /// tested first on the first byte folded to lower case (equal for any two
    /// ASCII-case-equal bytes); otherwise the full comparison.
    #[inline]
    fn position(&self, name: &str) -> Option<usize> {
        if self.ascii && name.is_ascii() {
            let nb = name.as_bytes();
            let first = nb.first().map_or(0, |c| c | 0x20);
            return self.entries.iter().position(|(n, _)| {
                let b = n.as_bytes();
                b.len() == nb.len()
                    && b.first().map_or(0, |c| c | 0x20) == first
                    && b.eq_ignore_ascii_case(nb)
            });
        }
        self.entries
            .iter()
            .position(|(n, _)| eq_ignore_case(n, name))
    }

    /// Sets `name` to `value`. A name already present in another case keeps
    /// its position and original spelling and takes the new value.
    pub fn insert(&mut self, name: impl Into<String>, value: Option<String>) {
        let name = name.into();
        match self.position(&name) {
            Some(i) => self.entries[i].1 = value,
            None => {
                self.ascii &= name.is_ascii();
                self.entries.push((name, value))
            }
        }
    }

    /// Whether every name in the bag is ASCII. Two ASCII names are equal
    /// under `OrdinalIgnoreCase` exactly when they have the same length and
    /// are equal up to ASCII case, which is much cheaper to test.
    pub fn names_ascii(&self) -> bool {
        self.ascii
    }

    /// `None` when absent, `Some(None)` when present with a null value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.position(name).map(|i| self.entries[i].1.as_deref())
    }

    /// Removes `name` (in any case) and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<Option<String>> {
        let removed = self.position(name).map(|i| self.entries.remove(i).1);
        self.ascii = self.entries.iter().all(|(n, _)| n.is_ascii());
        removed
    }

    /// Name/value pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_deref()))
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the bag is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<N: Into<String>> FromIterator<(N, Option<String>)> for Properties {
    fn from_iter<T: IntoIterator<Item = (N, Option<String>)>>(iter: T) -> Self {
        let mut p = Properties::new();
        for (n, v) in iter {
            p.insert(n, v);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_lookup_and_replace() {
        let mut p = Properties::new();
        p.insert("ContentType", Some("a".into()));
        p.insert("other", None);
        p.insert("CONTENTTYPE", Some("b".into()));
        assert_eq!(p.len(), 2);
        assert_eq!(p.get("contenttype"), Some(Some("b")));
        assert_eq!(p.get("OTHER"), Some(None));
        assert_eq!(p.get("missing"), None);
        let names: Vec<_> = p.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["ContentType", "other"]);
        assert_eq!(p.remove("contentTYPE"), Some(Some("b".into())));
        assert_eq!(p.remove("contentTYPE"), None);
        assert!(!p.is_empty());
    }

    #[test]
    fn non_ascii_simple_case_mapping() {
        assert!(eq_ignore_case("Straße", "STRAßE"));
        assert!(!eq_ignore_case("straße", "STRASSE"));
        assert!(eq_ignore_case("ÄÖü", "äöÜ"));
        // .NET's OrdinalIgnoreCase table does not fold dotless i to I.
        assert!(!eq_ignore_case("applıcation", "APPLICATION"));
        assert!(!eq_ignore_case("a", "ab"));
        assert!(!eq_ignore_case("é", "e"));
    }
}
