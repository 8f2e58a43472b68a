//! IoT Hub system property wire names, as the routing engine and the
//! conformance corpus spell them. Lookups ignore case, so these are the
//! canonical spellings used when hubroute itself writes a property.

/// Message identifier set by the sender.
pub const MESSAGE_ID: &str = "messageId";
/// Identifier of the message this one answers.
pub const CORRELATION_ID: &str = "correlationId";
/// Sender-set user identifier.
pub const USER_ID: &str = "userId";
/// Destination of a cloud-to-device message.
pub const TO: &str = "to";
/// Feedback request of a cloud-to-device message.
pub const ACK: &str = "ack";
/// Body content type; `$body` needs `application/json`.
pub const CONTENT_TYPE: &str = "contentType";
/// Body encoding; `$body` needs utf-8, utf-16 or utf-32.
pub const CONTENT_ENCODING: &str = "contentEncoding";
/// Device that sent the message (set by the hub).
pub const CONNECTION_DEVICE_ID: &str = "connectionDeviceId";
/// Module that sent the message (set by the hub).
pub const CONNECTION_MODULE_ID: &str = "connectionModuleId";
/// Generation of the sending device identity (set by the hub).
pub const CONNECTION_DEVICE_GENERATION_ID: &str = "connectionDeviceGenerationId";
/// How the sender authenticated (set by the hub).
pub const CONNECTION_AUTH_METHOD: &str = "connectionAuthMethod";
/// When the hub received the message.
pub const ENQUEUED_TIME: &str = "enqueuedTime";
/// The device-set creation time; [`CREATION_TIME_UTC_ALIAS`] is accepted too.
pub const CREATION_TIME_UTC: &str = "iothub-creation-time-utc";
/// The SDK-style alias of [`CREATION_TIME_UTC`].
pub const CREATION_TIME_UTC_ALIAS: &str = "creationTimeUtc";
/// IoT Plug and Play model of the sender.
pub const DT_DATASCHEMA: &str = "dt-dataschema";
/// IoT Plug and Play component (Edge Hub spelling).
pub const DT_SUBJECT: &str = "dt-subject";
/// IoT Plug and Play component.
pub const COMPONENT_NAME: &str = "componentName";

/// The only `contentType` under which `$body` is readable (R23).
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The system properties the router stamps from the sender's connection (anti-spoofing): a
/// device never sets them, so `$name` of one of these reads the system property only, never
/// an application property a device named `$name` (see [`is_stamped`]).
pub const STAMPED: [&str; 5] = [
    CONNECTION_DEVICE_ID,
    CONNECTION_MODULE_ID,
    CONNECTION_AUTH_METHOD,
    CONNECTION_DEVICE_GENERATION_ID,
    ENQUEUED_TIME,
];

/// Whether `name` (a system property name, without `$`) is one the router stamps, compared
/// ignoring case as IoT Hub compares property names.
pub fn is_stamped(name: &str) -> bool {
    STAMPED.iter().any(|s| s.eq_ignore_ascii_case(name))
}
