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
