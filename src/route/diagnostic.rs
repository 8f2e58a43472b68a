//! Problems in a routing configuration: a stable code, where (a JSON location and the route
//! or endpoint name), and for conditions the diagnostics inside the condition.

use crate::diagnostic::{Diagnostic, Severity};

/// One problem in a routing configuration.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ConfigDiagnostic {
    /// Stable code (`E04xx` configuration errors, `W04xx` warnings; condition problems carry
    /// the condition's own `E0xxx`/`W0xxx` code).
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// Where in the document: `routes[2].condition`, `endpoints.storageContainers[0]`.
    pub location: String,
    /// The route, endpoint or enrichment it is about, when named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What is wrong.
    pub message: String,
    /// For a condition problem: the condition's text and the diagnostic (with its span).
    #[serde(skip)]
    pub condition: Option<(String, Diagnostic)>,
}

impl ConfigDiagnostic {
    /// An error at `location`.
    pub fn error(
        code: &'static str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigDiagnostic {
            code,
            severity: Severity::Error,
            location: location.into(),
            name: None,
            message: message.into(),
            condition: None,
        }
    }

    /// A warning at `location`.
    pub fn warning(
        code: &'static str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigDiagnostic {
            severity: Severity::Warning,
            ..Self::error(code, location, message)
        }
    }

    /// Names the route, endpoint or enrichment.
    pub fn named(mut self, name: &str) -> Self {
        if !name.is_empty() {
            self.name = Some(name.to_string());
        }
        self
    }

    /// A diagnostic inside a condition.
    pub fn in_condition(location: String, name: &str, condition: &str, d: Diagnostic) -> Self {
        ConfigDiagnostic {
            code: d.code,
            severity: d.severity,
            location,
            name: Some(name.to_string()).filter(|n| !n.is_empty()),
            message: d.message.clone(),
            condition: Some((condition.to_string(), d)),
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl std::fmt::Display for ConfigDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{kind}[{}]: {}: ", self.code, self.location)?;
        if let Some(n) = &self.name {
            write!(f, "'{n}': ")?;
        }
        f.write_str(&self.message)
    }
}

/// Diagnostics collected with bounded memory: the first `cap` kept, all counted. A
/// configuration of any size (100,000 empty routes are 400,000 problems) then costs at most
/// `cap` diagnostics.
#[derive(Debug)]
pub struct DiagnosticLog {
    kept: Vec<ConfigDiagnostic>,
    cap: usize,
    errors: usize,
    warnings: usize,
}

impl DiagnosticLog {
    /// A log keeping at most `cap` diagnostics.
    pub fn new(cap: usize) -> Self {
        DiagnosticLog {
            kept: Vec::new(),
            cap,
            errors: 0,
            warnings: 0,
        }
    }

    /// Counts `d`, and keeps it while fewer than the cap are kept.
    pub fn push(&mut self, d: ConfigDiagnostic) {
        if d.is_error() {
            self.errors += 1;
        } else {
            self.warnings += 1;
        }
        if self.kept.len() < self.cap {
            self.kept.push(d);
        }
    }

    /// The kept diagnostics, in the order they came.
    pub fn kept(&self) -> &[ConfigDiagnostic] {
        &self.kept
    }

    /// All errors pushed, kept or not.
    pub fn errors(&self) -> usize {
        self.errors
    }

    /// All warnings pushed, kept or not.
    pub fn warnings(&self) -> usize {
        self.warnings
    }

    /// Diagnostics counted but not kept.
    pub fn omitted(&self) -> usize {
        self.errors + self.warnings - self.kept.len()
    }

    /// The kept diagnostics.
    pub fn into_kept(self) -> Vec<ConfigDiagnostic> {
        self.kept
    }

    /// Counts diagnostics that were pushed to another log and not kept there.
    pub(super) fn count_omitted(&mut self, errors: usize, warnings: usize) {
        self.errors += errors;
        self.warnings += warnings;
    }
}
