//! The two dialects, and the rules by which the hub dialect departs from the Edge engine.

/// Which language a condition is written in.
///
/// The two differ only where Microsoft Learn documents IoT Hub's behaviour and the IoT Edge
/// engine does otherwise; `grammar/deviations.md` lists every difference with the Learn
/// sentence that decides it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// IoT Hub's, as Microsoft Learn documents it (the default): `$twin`, `STARTSWITH`,
    /// `is_array` / `is_object` / `is_primitive`, a body value in either operand of
    /// `AND` / `OR`, `$body[0]` undefined with a warning, documented system-property keywords
    /// without `$` (`enqueuedTime`).
    #[default]
    Hub,
    /// The open-source IoT Edge routing engine's, exactly, quirks included.
    Edge,
}

impl Dialect {
    /// The name the CLI's `--dialect` takes.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Hub => "hub",
            Dialect::Edge => "edge",
        }
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "hub" | "iothub" | "iot-hub" => Ok(Dialect::Hub),
            "edge" | "iotedge" | "iot-edge" => Ok(Dialect::Edge),
            _ => Err(format!("unknown dialect '{s}': expected 'hub' or 'edge'")),
        }
    }
}

/// A rule of the hub dialect that reads a condition differently from the Edge engine, each
/// decided by Microsoft Learn ("IoT Hub message routing query syntax" = QS, "IoT Hub query
/// language" = QL). [`crate::check::Checked::hub_rules`] says which ones a condition relied on;
/// grammar/deviations.md lists them with their examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HubRule {
    /// `$twin.tags.*` / `$twin.properties.desired.*` / `.reported.*` read the sender's twin.
    Twin,
    /// `STARTSWITH` / `ENDSWITH`, QL's spellings of `starts_with` / `ends_with`.
    FunctionSpelling,
    /// `is_array`, `is_object`, `is_primitive`.
    TypeTests,
    /// A body or twin value as the right operand of `AND` / `OR` under a non-body left one.
    BodyEitherSide,
    /// `$body` alone or indexed is undefined (with warning W0007).
    WholeBody,
    /// A system-property keyword without `$` (`enqueuedTime`) reads the system property.
    DollarlessKeyword,
}

impl HubRule {
    /// The Learn page and text that decide the rule.
    pub fn learn(self) -> &'static str {
        match self {
            HubRule::Twin => "QS, \"Query based on device twin\": $twin.properties.desired.telemetryConfig.sendFrequency = '5m'",
            HubRule::FunctionSpelling => "QL (2022), string functions: STARTSWITH(x, y), ENDSWITH(x, y)",
            HubRule::TypeTests => "QL, \"Functions\" for route conditions: IS_ARRAY, IS_OBJECT, IS_PRIMITIVE",
            HubRule::BodyEitherSide => "QS, \"Query based on message body\": $body.Weather.Temperature = 50 AND $body.Weather.IsEnabled",
            HubRule::WholeBody => "QS: only property paths under $body are supported; $body[0] = 'Feb' is undefined",
            HubRule::DollarlessKeyword => "QS (2018) writes enqueuedTime without $; the message-construction page's \"keyword for routing query\" column (messageId, userId, connectionDeviceGenerationId, connectionAuthMethod)",
        }
    }
}
