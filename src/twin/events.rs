//! The messages the hub itself emits when a twin changes or a device identity is created or
//! deleted, in IoT Hub's shape (Learn, "IoT Hub non-telemetry event schemas"):
//!
//! * application properties `hubName`, `deviceId`, `moduleId` (module twins only),
//!   `operationTimestamp`, `iothub-message-schema` (`twinChangeNotification` or
//!   `deviceLifecycleNotification`) and `opType` (`updateTwin`; `createDeviceIdentity`,
//!   `deleteDeviceIdentity`);
//! * system properties `contentType` `application/json`, `contentEncoding` `utf-8`, `userId`
//!   (the hub's name), `correlationId`, `connectionDeviceId`, `connectionModuleId`,
//!   `enqueuedTime`; the source (`iothub-message-source`) is the message's [`Source`].
//!
//! Every property is set here, by the router; nothing of it comes from a device.

use std::time::SystemTime;

use serde_json::Value;

use crate::message::{names, Message, Source};
use crate::sink::format_enqueued_time;

/// `iothub-message-schema` of twin change notifications.
pub const TWIN_CHANGE_SCHEMA: &str = "twinChangeNotification";
/// `iothub-message-schema` of device lifecycle notifications.
pub const LIFECYCLE_SCHEMA: &str = "deviceLifecycleNotification";

/// What a hub event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A twin's tags or properties were patched.
    UpdateTwin,
    /// A device identity was created.
    CreateDeviceIdentity,
    /// A device identity was deleted.
    DeleteDeviceIdentity,
}

impl Operation {
    /// The `opType` application property.
    pub fn op_type(self) -> &'static str {
        match self {
            Operation::UpdateTwin => "updateTwin",
            Operation::CreateDeviceIdentity => "createDeviceIdentity",
            Operation::DeleteDeviceIdentity => "deleteDeviceIdentity",
        }
    }

    fn source(self) -> Source {
        match self {
            Operation::UpdateTwin => Source::TwinChangeEvents,
            _ => Source::DeviceLifecycleEvents,
        }
    }

    fn schema(self) -> &'static str {
        match self {
            Operation::UpdateTwin => TWIN_CHANGE_SCHEMA,
            _ => LIFECYCLE_SCHEMA,
        }
    }
}

/// The event message: `body` is the notification's JSON body; `sequence` makes the
/// correlation id unique per change (`{hub}-{device}[/module]-{op}-{sequence}`; IoT Hub uses a
/// random id, which a test could not predict).
pub fn event(
    hub: &str,
    device_id: &str,
    module_id: Option<&str>,
    op: Operation,
    body: &Value,
    sequence: u64,
    at: SystemTime,
) -> Message {
    let mut m = Message {
        source: Some(op.source()),
        body: body.to_string().into_bytes(),
        ..Message::default()
    };
    let ts = format_enqueued_time(at);
    let app = &mut m.app_properties;
    app.insert("hubName", Some(hub.to_string()));
    app.insert("deviceId", Some(device_id.to_string()));
    if let Some(module) = module_id {
        app.insert("moduleId", Some(module.to_string()));
    }
    app.insert("operationTimestamp", Some(ts.clone()));
    app.insert("iothub-message-schema", Some(op.schema().to_string()));
    app.insert("opType", Some(op.op_type().to_string()));
    let sys = &mut m.system_properties;
    sys.insert(names::CONTENT_TYPE, Some(names::CONTENT_TYPE_JSON.into()));
    sys.insert(names::CONTENT_ENCODING, Some("utf-8".into()));
    sys.insert(names::USER_ID, Some(hub.to_string()));
    let who = match module_id {
        Some(module) => format!("{device_id}/{module}"),
        None => device_id.to_string(),
    };
    sys.insert(
        names::CORRELATION_ID,
        Some(format!("{hub}-{who}-{}-{sequence}", op.op_type())),
    );
    sys.insert(names::CONNECTION_DEVICE_ID, Some(device_id.to_string()));
    if let Some(module) = module_id {
        sys.insert(names::CONNECTION_MODULE_ID, Some(module.to_string()));
    }
    sys.insert(names::ENQUEUED_TIME, Some(ts));
    m
}

/// The body of a lifecycle notification: the device identity as IoT Hub shows it (no keys:
/// `authenticationType` only) together with its twin's tags and properties.
pub fn lifecycle_body(twin: &Value, status: &str, generation_id: Option<&str>) -> Value {
    let mut body = serde_json::json!({
        "deviceId": twin.get("deviceId").cloned().unwrap_or(Value::Null),
        "etag": format!("AAAAAAAAAA{}", twin.get("version").and_then(Value::as_u64).unwrap_or(1)),
        "version": twin.get("version").cloned().unwrap_or(Value::from(1)),
        "status": status,
        "statusUpdateTime": "0001-01-01T00:00:00Z",
        "connectionState": "Disconnected",
        "lastActivityTime": "0001-01-01T00:00:00Z",
        "cloudToDeviceMessageCount": 0,
        "authenticationType": "sas",
        "x509Thumbprint": {"primaryThumbprint": null, "secondaryThumbprint": null},
        "capabilities": {"iotEdge": false},
        "tags": twin.get("tags").cloned().unwrap_or_else(|| serde_json::json!({})),
        "properties": twin.get("properties").cloned().unwrap_or_else(|| serde_json::json!({})),
    });
    if let Some(g) = generation_id {
        body["generationId"] = Value::String(g.to_string());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twin_change_has_iot_hubs_properties() {
        let body = serde_json::json!({"version": 2, "properties": {"reported": {"t": 1}}});
        let m = event(
            "hub1",
            "d1",
            Some("m1"),
            Operation::UpdateTwin,
            &body,
            7,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(m.source, Some(Source::TwinChangeEvents));
        let app = &m.app_properties;
        assert_eq!(
            app.get("iothub-message-schema"),
            Some(Some("twinChangeNotification"))
        );
        assert_eq!(app.get("opType"), Some(Some("updateTwin")));
        assert_eq!(app.get("moduleId"), Some(Some("m1")));
        assert_eq!(
            app.get("operationTimestamp"),
            Some(Some("1970-01-01T00:00:00.0000000Z"))
        );
        assert_eq!(
            m.system_properties.get("connectionModuleId"),
            Some(Some("m1"))
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&m.body).unwrap(),
            body,
            "the body is the notification"
        );
        let m = event(
            "hub1",
            "d1",
            None,
            Operation::DeleteDeviceIdentity,
            &body,
            1,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(m.source, Some(Source::DeviceLifecycleEvents));
        assert_eq!(
            m.app_properties.get("iothub-message-schema"),
            Some(Some("deviceLifecycleNotification"))
        );
        assert_eq!(m.system_properties.get("connectionModuleId"), None);
    }
}
