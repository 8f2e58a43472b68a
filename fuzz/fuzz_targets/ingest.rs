//! MQTT device-to-cloud ingest: arbitrary topic bytes and payloads through topic parsing,
//! property-bag decoding, the anti-spoofing stamp and IoT Hub's message rules. No panic; every
//! error is coded; a stamped message carries the topic's identity and none of the spoofable
//! names; the sink's bag encoding of an ingested message decodes back to the same properties.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use hubroute::ingest::{d2c_message, is_spoofing_name, property_bag, Connection, D2cTopic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The topic runs up to the first NUL (which MQTT topics cannot contain); the rest is the body.
    let (topic, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let topic = String::from_utf8_lossy(topic);
    let _ = property_bag::decode(&topic);
    let parsed = match D2cTopic::parse(&topic) {
        Ok(t) => t,
        Err(e) => {
            assert_eq!(e.code(), "E0601");
            return;
        }
    };
    let connection = Connection::from_topic(&parsed, None);
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    match d2c_message(&parsed, payload, &connection, at) {
        Err(e) => assert!(matches!(e.code(), "E0602" | "E0603"), "{e}"),
        Ok(msg) => {
            let sys = &msg.system_properties;
            assert_eq!(sys.get("connectionDeviceId"), Some(Some(parsed.device_id)));
            assert_eq!(sys.get("connectionModuleId").flatten(), parsed.module_id);
            for spoof in [
                "iothub-connection-device-id",
                "iothub-enqueuedtime",
                "$.cdid",
                "$connectionDeviceId",
                "$connectionModuleId",
                "$enqueuedTime",
            ] {
                assert_eq!(msg.app_properties.get(spoof), None);
            }
            assert!(!msg.app_properties.iter().any(|(n, _)| is_spoofing_name(n)));
            let again = property_bag::decode(&property_bag::encode(&msg)).expect("own bag");
            let app: Vec<_> = again
                .iter()
                .filter(|(n, _)| property_bag::system_name(n).is_none())
                .map(|(n, v)| (n.as_str(), v.as_deref()))
                .collect();
            let want: Vec<_> = msg
                .app_properties
                .iter()
                .filter(|(n, _)| !n.starts_with("$."))
                .collect();
            assert_eq!(app, want);
        }
    }
});
