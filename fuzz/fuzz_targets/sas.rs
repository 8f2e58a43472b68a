//! SAS tokens and the device registry: arbitrary text as a token (the `Authorization` header a
//! device sends) and as a registry file. No panic; every refusal is coded; a token minted with
//! a registered device's key is accepted, and the same token with any byte of its signature
//! changed is not.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use hubroute::registry::{sas, Registry};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // As a registry file: parsed or refused with a registry code.
    if let Err(e) = Registry::parse(&text) {
        assert!(e.code().starts_with("E100"), "{e}");
    }
    let registry = Registry::parse(&format!(
        r#"{{"d1": {{"authentication": {{"symmetricKey": {{"primaryKey": "{KEY}"}}}}}}}}"#
    ))
    .unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    // As a token: accepted only if it is a genuine one (it cannot be, without the key).
    match registry.authenticate(&text, "d1", None, "h", now) {
        Ok(_) => panic!("a token not made with the key was accepted"),
        Err(e) => assert!(e.code().starts_with("E101"), "{e}"),
    }
    // The text as a device id (up to a NUL): its own token is accepted when registered.
    let device: String = text.chars().take_while(|&c| c != '\0').take(64).collect();
    let token = sas::mint(&format!("h/devices/{device}"), KEY, 1_700_000_001, None).unwrap();
    let ok = registry.authenticate(&token, &device, None, "H", now);
    assert_eq!(ok.is_ok(), device == "d1", "{ok:?}");
});
