//! hubroute: Azure IoT Hub message routing on your own machines.
#![forbid(unsafe_code)]

pub mod body;
pub mod diagnostic;
pub mod message;
pub mod span;
pub mod syntax;
