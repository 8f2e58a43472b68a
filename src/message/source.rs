//! IoT Hub routing sources.

use std::fmt;
use std::str::FromStr;

use super::properties::eq_ignore_case;

/// The kind of event a message is, which selects the routes that see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Device-to-cloud telemetry (`telemetry` in the corpus).
    DeviceMessages,
    /// Device or module twin changes.
    TwinChangeEvents,
    /// Identity created or deleted.
    DeviceLifecycleEvents,
    /// Device connected or disconnected.
    DeviceConnectionStateEvents,
    /// IoT Plug and Play digital twin changes.
    DigitalTwinChangeEvents,
    /// Job lifecycle events.
    DeviceJobLifecycleEvents,
    /// Messages published through the MQTT broker feature.
    MqttBrokerMessages,
}

impl Source {
    /// Every source, in ARM documentation order.
    pub const ALL: [Source; 7] = [
        Source::DeviceMessages,
        Source::TwinChangeEvents,
        Source::DeviceLifecycleEvents,
        Source::DeviceConnectionStateEvents,
        Source::DigitalTwinChangeEvents,
        Source::DeviceJobLifecycleEvents,
        Source::MqttBrokerMessages,
    ];

    /// The ARM (`properties.routing.routes[].source`) name.
    pub fn arm_name(self) -> &'static str {
        match self {
            Source::DeviceMessages => "DeviceMessages",
            Source::TwinChangeEvents => "TwinChangeEvents",
            Source::DeviceLifecycleEvents => "DeviceLifecycleEvents",
            Source::DeviceConnectionStateEvents => "DeviceConnectionStateEvents",
            Source::DigitalTwinChangeEvents => "DigitalTwinChangeEvents",
            Source::DeviceJobLifecycleEvents => "DeviceJobLifecycleEvents",
            Source::MqttBrokerMessages => "MqttBrokerMessages",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.arm_name())
    }
}

/// A source name that is neither an ARM name nor a corpus name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown message source '{0}'; expected one of DeviceMessages (or telemetry), TwinChangeEvents, DeviceLifecycleEvents, DeviceConnectionStateEvents, DigitalTwinChangeEvents, DeviceJobLifecycleEvents, MqttBrokerMessages")]
pub struct UnknownSource(pub String);

impl FromStr for Source {
    type Err = UnknownSource;

    /// ARM names in any case, plus the conformance corpus names `telemetry`
    /// (device messages) and `twinChangeEvents`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if eq_ignore_case(s, "telemetry") {
            return Ok(Source::DeviceMessages);
        }
        Source::ALL
            .into_iter()
            .find(|src| eq_ignore_case(s, src.arm_name()))
            .ok_or_else(|| UnknownSource(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arm_and_corpus_names() {
        for src in Source::ALL {
            assert_eq!(src.to_string().parse::<Source>(), Ok(src));
            assert_eq!(src.arm_name().to_uppercase().parse::<Source>(), Ok(src));
        }
        assert_eq!("telemetry".parse::<Source>(), Ok(Source::DeviceMessages));
        assert_eq!(
            "twinChangeEvents".parse::<Source>(),
            Ok(Source::TwinChangeEvents)
        );
        let err = "events".parse::<Source>().unwrap_err();
        assert!(err.to_string().contains("DeviceMessages"));
        assert!(err.to_string().contains("'events'"));
    }
}
