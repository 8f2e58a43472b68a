use std::time::{Duration, UNIX_EPOCH};

use super::*;

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const KM: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";
const HOST: &str = "hub.azure-devices.net";

fn registry() -> Registry {
    Registry::parse(&format!(
        r#"{{
        "legacy": "6369",
        "d1": {{"deviceId": "d1", "generationId": "638000000000000001", "etag": "AAAAAAAAAAE=",
                "status": "enabled", "statusReason": null,
                "authentication": {{"type": "sas",
                    "symmetricKey": {{"primaryKey": "{K1}", "secondaryKey": "{K2}"}}}},
                "modules": {{"m1": {{"generationId": "7",
                    "authentication": {{"symmetricKey": {{"primaryKey": "{KM}"}}}}}}}}}},
        "off": {{"status": "disabled", "authentication": {{"symmetricKey": {{"primaryKey": "{K1}"}}}}}}
    }}"#
    ))
    .unwrap()
}

fn at(secs: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn token(resource: &str, key: &str, expiry: u64) -> String {
    sas::mint(resource, key, expiry, None).unwrap()
}

#[test]
fn old_and_new_forms_load() {
    let r = registry();
    assert_eq!(r.len(), 3);
    let legacy = r.get("legacy").unwrap();
    assert_eq!(legacy.generation_id, "6369");
    assert!(legacy.is_enabled());
    assert_eq!(legacy.primary_key, None);
    let d1 = r.get("d1").unwrap();
    assert_eq!(d1.generation_id, "638000000000000001");
    assert_eq!(d1.etag.as_deref(), Some("AAAAAAAAAAE="));
    assert_eq!(d1.primary_key.as_ref().unwrap().to_base64(), K1);
    assert_eq!(d1.secondary_key.as_ref().unwrap().to_base64(), K2);
    assert_eq!(d1.modules["m1"].generation_id, "7");
    let off = r.get("off").unwrap();
    assert_eq!(off.status, DeviceStatus::Disabled);
    assert_eq!(off.generation_id, "0");
    let ids: Vec<&str> = r.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["d1", "legacy", "off"]);
}

#[test]
fn bad_files_have_codes_and_never_show_keys() {
    let cases = [
        ("[1]", codes::MALFORMED),
        ("{", codes::MALFORMED),
        (r#"{"d": 5}"#, codes::MALFORMED),
        (r#"{"d": {"status": "paused"}}"#, codes::MALFORMED),
        (r#"{"d": {"deviceId": "e"}}"#, codes::ID_MISMATCH),
        (
            r#"{"d": {"authentication": {"symmetricKey": {"primaryKey": "s3cret!!"}}}}"#,
            codes::BAD_KEY,
        ),
        (
            r#"{"d": {"authentication": {"type": "selfSigned"}}}"#,
            codes::MALFORMED,
        ),
        (r#"{"d": {"modules": {"m": 1}}}"#, codes::MALFORMED),
    ];
    for (text, code) in cases {
        let e = Registry::parse(text).unwrap_err();
        assert_eq!(e.code(), code, "{text}: {e}");
        assert!(e.to_string().starts_with(code));
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    let e = Registry::load("/nonexistent/devices.json".as_ref()).unwrap_err();
    assert_eq!(e.code(), codes::FILE);
}

#[test]
fn save_round_trips_atomically_and_keeps_the_old_form() {
    let dir = std::env::temp_dir().join(format!("hubroute-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("devices.json");
    let mut r = registry();
    r.save(&path).unwrap();
    assert_eq!(Registry::load(&path).unwrap(), r);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(r#""legacy": "6369""#), "{text}");
    assert!(r.set_status("legacy", DeviceStatus::Disabled, Some("lost".into())));
    assert!(!r.set_status("nobody", DeviceStatus::Disabled, None));
    let mut d2 = Device::new("d2", "1");
    d2.primary_key = Some(SymmetricKey::from_base64(K2).unwrap());
    assert_eq!(r.insert(d2), None);
    assert!(r.remove("off").is_some());
    r.save(&path).unwrap();
    let back = Registry::load(&path).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.get("legacy").unwrap().status, DeviceStatus::Disabled);
    assert_eq!(
        back.get("legacy").unwrap().status_reason.as_deref(),
        Some("lost")
    );
    assert!(back.get("off").is_none());
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(names.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_device_token_authenticates_and_stamps_sas() {
    let r = registry();
    for key in [K1, K2] {
        let t = token(&format!("{HOST}/devices/d1"), key, 2000);
        let ok = r.authenticate(&t, "d1", None, HOST, at(1000)).unwrap();
        assert_eq!(ok.device_id, "d1");
        assert_eq!(ok.generation_id, "638000000000000001");
        let c = ok.connection();
        assert_eq!(
            c.auth_method,
            r#"{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#
        );
    }
    // Host case does not matter, either side.
    let t = token("HUB.Azure-Devices.net/devices/d1", K1, 2000);
    assert!(r.authenticate(&t, "d1", None, HOST, at(1000)).is_ok());
}

#[test]
fn module_tokens() {
    let r = registry();
    // The module's own key, for the module's resource.
    let t = token(&format!("{HOST}/devices/d1/modules/m1"), KM, 2000);
    let ok = r
        .authenticate(&t, "d1", Some("m1"), HOST, at(1000))
        .unwrap();
    assert_eq!(ok.module_id.as_deref(), Some("m1"));
    assert_eq!(ok.generation_id, "7");
    assert!(ok.connection().auth_method.contains(r#""scope":"module""#));
    // ... but not for the device, nor for another module.
    let e = r.authenticate(&t, "d1", None, HOST, at(1000)).unwrap_err();
    assert_eq!(e.code(), codes::WRONG_SCOPE);
    let e = r
        .authenticate(&t, "d1", Some("m2"), HOST, at(1000))
        .unwrap_err();
    assert_eq!(e.code(), codes::WRONG_SCOPE);
    // The device's key covers its modules.
    let t = token(&format!("{HOST}/devices/d1"), K1, 2000);
    assert!(r.authenticate(&t, "d1", Some("m9"), HOST, at(1000)).is_ok());
    // The module key signing the device's resource is not the device's key.
    let t = token(&format!("{HOST}/devices/d1"), KM, 2000);
    let e = r
        .authenticate(&t, "d1", Some("m1"), HOST, at(1000))
        .unwrap_err();
    assert_eq!(e.code(), codes::BAD_SIGNATURE);
}

#[test]
fn refusals_have_their_codes_and_never_quote_the_token() {
    let r = registry();
    let good = token(&format!("{HOST}/devices/d1"), K1, 2000);
    let sig = good
        .split("sig=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let cases: Vec<(String, &str, &str, &str)> = vec![
        ("nonsense".into(), "d1", HOST, codes::MALFORMED_TOKEN),
        (good.clone(), "d2", HOST, codes::WRONG_SCOPE),
        (
            good.clone(),
            "d1",
            "other.azure-devices.net",
            codes::WRONG_SCOPE,
        ),
        (
            token(&format!("{HOST}/devices/d1"), KM, 2000),
            "d1",
            HOST,
            codes::BAD_SIGNATURE,
        ),
        (
            token(&format!("{HOST}/devices/d1"), K1, 1000),
            "d1",
            HOST,
            codes::EXPIRED_TOKEN,
        ),
        (
            token(&format!("{HOST}/devices/ghost"), K1, 2000),
            "ghost",
            HOST,
            codes::UNKNOWN_DEVICE,
        ),
        (
            token(&format!("{HOST}/devices/off"), K1, 2000),
            "off",
            HOST,
            codes::DISABLED_DEVICE,
        ),
        (
            token(&format!("{HOST}/devices/legacy"), K1, 2000),
            "legacy",
            HOST,
            codes::NO_KEYS,
        ),
        (
            sas::mint(&format!("{HOST}/devices/d1"), K1, 2000, Some("device")).unwrap(),
            "d1",
            HOST,
            codes::POLICY_TOKEN,
        ),
        (
            token(&format!("{HOST}/devices/d1x"), K1, 2000),
            "d1",
            HOST,
            codes::WRONG_SCOPE,
        ),
        (token(HOST, K1, 2000), "d1", HOST, codes::WRONG_SCOPE),
    ];
    for (t, device, host, code) in cases {
        let e = r
            .authenticate(&t, device, None, host, at(1000))
            .unwrap_err();
        assert_eq!(e.code(), code, "{device} {host}: {e}");
        let text = e.to_string();
        assert!(text.starts_with(code));
        assert!(!text.contains(sig) && !text.contains(K1), "{text}");
    }
}

#[test]
fn keys_do_not_show_in_debug() {
    let r = registry();
    let text = format!("{r:?}");
    assert!(!text.contains(K1) && !text.contains(K2) && !text.contains(KM));
}
