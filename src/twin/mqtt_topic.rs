//! Reported-property patches over MQTT, through a broker that authenticates devices.
//!
//! IoT Hub's topic, `$iothub/twin/PATCH/properties/reported/?$rid={rid}`, names no device: IoT
//! Hub knows the device from the connection. A router subscribed to a broker does not (MQTT
//! tells a subscriber nothing about who published), and Mosquitto's ACLs can only allow or
//! refuse a topic, not rewrite it. So hubroute takes the patch on a per-device topic that the
//! broker's ACL makes true, as it does for device-to-cloud messages:
//!
//! * patch: `devices/{deviceId}/twin/PATCH/properties/reported/?$rid={rid}` (modules:
//!   `devices/{deviceId}/modules/{moduleId}/twin/PATCH/…`), ACL `pattern write
//!   devices/%u/twin/PATCH/properties/reported/#`;
//! * answer: `devices/{deviceId}/twin/res/{status}/?$rid={rid}&$version={version}` (IoT Hub's
//!   `$iothub/twin/res/204/?$rid=…&$version=…` under the device's prefix), ACL `pattern read
//!   devices/%u/twin/res/#`.

/// The topic filters the router subscribes to for patches.
pub const REPORTED_FILTERS: [&str; 2] = [
    "devices/+/twin/PATCH/properties/reported/#",
    "devices/+/modules/+/twin/PATCH/properties/reported/#",
];

/// A patch topic, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedTopic<'a> {
    /// The device.
    pub device_id: &'a str,
    /// The module, for a module twin.
    pub module_id: Option<&'a str>,
    /// The request id (`$rid`), echoed in the answer.
    pub rid: Option<&'a str>,
}

impl<'a> ReportedTopic<'a> {
    /// Splits `devices/{d}[/modules/{m}]/twin/PATCH/properties/reported/[?$rid=N]`; `None` for
    /// any other topic.
    pub fn parse(topic: &'a str) -> Option<ReportedTopic<'a>> {
        let rest = topic.strip_prefix("devices/")?;
        let (device_id, rest) = rest.split_once('/')?;
        let (module_id, rest) = match rest.strip_prefix("modules/") {
            Some(r) => {
                let (m, r) = r.split_once('/')?;
                (Some(m), r)
            }
            None => (None, rest),
        };
        let query = rest.strip_prefix("twin/PATCH/properties/reported/")?;
        if device_id.is_empty() || module_id.is_some_and(str::is_empty) {
            return None;
        }
        let rid = query
            .strip_prefix('?')
            .unwrap_or(query)
            .split('&')
            .find_map(|kv| kv.strip_prefix("$rid="));
        Some(ReportedTopic {
            device_id,
            module_id,
            rid,
        })
    }

    /// The answer's topic: `status` (204 done, 400 bad patch, 503 not now) and, when done,
    /// the reported properties' new `$version`.
    pub fn response(&self, status: u16, version: Option<u64>) -> String {
        let mut t = format!("devices/{}/", self.device_id);
        if let Some(m) = self.module_id {
            t.push_str(&format!("modules/{m}/"));
        }
        t.push_str(&format!(
            "twin/res/{status}/?$rid={}",
            self.rid.unwrap_or("")
        ));
        if let Some(v) = version {
            t.push_str(&format!("&$version={v}"));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        let t = ReportedTopic::parse("devices/d1/twin/PATCH/properties/reported/?$rid=7").unwrap();
        assert_eq!((t.device_id, t.module_id, t.rid), ("d1", None, Some("7")));
        assert_eq!(
            t.response(204, Some(3)),
            "devices/d1/twin/res/204/?$rid=7&$version=3"
        );
        let t =
            ReportedTopic::parse("devices/d1/modules/m/twin/PATCH/properties/reported/").unwrap();
        assert_eq!((t.module_id, t.rid), (Some("m"), None));
        assert_eq!(
            t.response(400, None),
            "devices/d1/modules/m/twin/res/400/?$rid="
        );
        assert!(ReportedTopic::parse("devices/d1/messages/events/").is_none());
        assert!(ReportedTopic::parse("devices//twin/PATCH/properties/reported/").is_none());
    }
}
