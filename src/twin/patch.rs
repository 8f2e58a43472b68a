//! Twin documents and their patches, with IoT Hub's semantics: a patch is a JSON merge patch
//! (RFC 7386: an object merges key by key, `null` deletes, anything else replaces), each
//! section (`tags`, `properties.desired`, `properties.reported`) keeps its own `$version` and
//! `$metadata` (when each property was last updated), and the twin's `version` counts every
//! change. Pure functions over `serde_json` values, so they are tested without a store.

use serde_json::{Map, Value};

use super::{codes, TwinError};

/// The parts of a twin a patch can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `tags`: set by the back end, never seen by the device.
    Tags,
    /// `properties.desired`: set by the back end for the device.
    Desired,
    /// `properties.reported`: set by the device.
    Reported,
}

impl Section {
    /// The name in messages (`tags`, `desired`, `reported`).
    pub fn name(self) -> &'static str {
        match self {
            Section::Tags => "tags",
            Section::Desired => "desired",
            Section::Reported => "reported",
        }
    }

    /// IoT Hub's size limit of the section (8 KB of tags, 32 KB each of desired and reported
    /// properties), applied to a patch's JSON text.
    pub fn max_bytes(self) -> usize {
        match self {
            Section::Tags => 8 * 1024,
            Section::Desired | Section::Reported => 32 * 1024,
        }
    }
}

/// IoT Hub's deepest nesting of objects in tags and properties (the root counts as level 1).
pub const MAX_DEPTH: usize = 10;

/// Checks a patch as IoT Hub does: a JSON object no larger than the section allows, no deeper
/// than [`MAX_DEPTH`], whose property names are not empty, do not start with `$` (the twin's own
/// `$version` and `$metadata`) and contain no `.`, space or control character (IoT Hub
/// refuses those in twin property names, which are also routing-query paths).
pub fn parse_patch(text: &str, section: Section) -> Result<Map<String, Value>, TwinError> {
    if text.len() > section.max_bytes() {
        return Err(TwinError::new(
            codes::PATCH_TOO_LARGE,
            format!(
                "the {} patch is {} bytes; IoT Hub's limit is {} bytes",
                section.name(),
                text.len(),
                section.max_bytes()
            ),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        TwinError::new(
            codes::PATCH_NOT_OBJECT,
            format!(
                "the {} patch is not JSON (line {}, column {}): {e}",
                section.name(),
                e.line(),
                e.column()
            ),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(TwinError::new(
            codes::PATCH_NOT_OBJECT,
            format!("the {} patch must be a JSON object", section.name()),
        ));
    };
    check_names(&map, section, 1, "")?;
    Ok(map)
}

fn check_names(
    map: &Map<String, Value>,
    section: Section,
    depth: usize,
    at: &str,
) -> Result<(), TwinError> {
    if depth > MAX_DEPTH {
        return Err(TwinError::new(
            codes::PATCH_TOO_DEEP,
            format!(
                "the {} patch nests objects deeper than IoT Hub's {MAX_DEPTH} levels (at '{at}')",
                section.name()
            ),
        ));
    }
    for (name, value) in map {
        let path = if at.is_empty() {
            name.clone()
        } else {
            format!("{at}.{name}")
        };
        if name.is_empty()
            || name.starts_with('$')
            || name.chars().any(|c| c == '.' || c == ' ' || c.is_control())
        {
            return Err(TwinError::new(
                codes::PATCH_BAD_NAME,
                format!(
                    "the {} patch has the property name '{}', which IoT Hub refuses (empty, starting with '$', or containing '.', a space or a control character)",
                    section.name(),
                    path.escape_debug()
                ),
            ));
        }
        if let Value::Object(inner) = value {
            check_names(inner, section, depth + 1, &path)?;
        }
    }
    Ok(())
}

/// Applies a merge patch to `target`: objects merge key by key, `null` deletes, anything else
/// replaces. Keys starting with `$` in `target` (`$version`, `$metadata`) are left alone.
pub fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(t) = slot {
                    merge(t, inner);
                    // A patch of nulls only leaves an empty object, as IoT Hub keeps it.
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The merge patch that turns `old` into `new` (ignoring `$` keys): changed and added keys
/// with their new values (objects recursively), removed keys as `null`. Empty when equal.
pub fn diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in new {
        if key.starts_with('$') {
            continue;
        }
        match (old.get(key), value) {
            (Some(a), b) if a == b => {}
            (Some(Value::Object(a)), Value::Object(b)) => {
                let inner = diff(a, b);
                if !inner.is_empty() {
                    out.insert(key.clone(), Value::Object(inner));
                }
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    for key in old.keys() {
        if !key.starts_with('$') && !new.contains_key(key) {
            out.insert(key.clone(), Value::Null);
        }
    }
    out
}

/// Records in `metadata` (a section's `$metadata`) that the properties of `patch` were updated
/// at `timestamp`: `$lastUpdated` on the section and on each property the patch sets, nested as
/// the properties are; a deleted property loses its entry.
pub fn stamp_metadata(metadata: &mut Map<String, Value>, patch: &Map<String, Value>, ts: &str) {
    metadata.insert("$lastUpdated".into(), Value::String(ts.into()));
    for (key, value) in patch {
        match value {
            Value::Null => {
                metadata.remove(key);
            }
            Value::Object(inner) => {
                let slot = metadata
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(m) = slot {
                    stamp_metadata(m, inner, ts);
                }
            }
            _ => {
                let mut leaf = Map::new();
                leaf.insert("$lastUpdated".into(), Value::String(ts.into()));
                metadata.insert(key.clone(), Value::Object(leaf));
            }
        }
    }
}

/// The `$metadata` entries of the properties a patch names (what a twin change notification
/// carries beside the patch).
pub fn metadata_of(
    metadata: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(ts) = metadata.get("$lastUpdated") {
        out.insert("$lastUpdated".into(), ts.clone());
    }
    for key in patch.keys() {
        if let Some(m) = metadata.get(key) {
            out.insert(key.clone(), m.clone());
        }
    }
    out
}

/// A new twin document: `version` 1, empty tags, desired and reported properties at `$version` 1.
pub fn new_twin(device_id: &str, module_id: Option<&str>, ts: &str) -> Value {
    let section = || serde_json::json!({"$metadata": {"$lastUpdated": ts}, "$version": 1});
    let mut twin = serde_json::json!({
        "deviceId": device_id,
        "version": 1,
        "tags": {},
        "properties": {"desired": section(), "reported": section()},
    });
    if let Some(m) = module_id {
        twin["moduleId"] = Value::String(m.into());
    }
    twin
}

/// The section's object in a twin (created if missing).
pub fn section_mut(twin: &mut Value, section: Section) -> &mut Map<String, Value> {
    let slot = match section {
        Section::Tags => &mut twin["tags"],
        Section::Desired => &mut twin["properties"]["desired"],
        Section::Reported => &mut twin["properties"]["reported"],
    };
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// The section of a twin, if it has one.
pub fn section(twin: &Value, section: Section) -> Option<&Map<String, Value>> {
    match section {
        Section::Tags => twin.get("tags"),
        Section::Desired => twin.get("properties").and_then(|p| p.get("desired")),
        Section::Reported => twin.get("properties").and_then(|p| p.get("reported")),
    }
    .and_then(Value::as_object)
}

/// Applies `patch` to the twin's `section`: merges it, stamps `$metadata` (properties) and bumps
/// the section's `$version` (properties) and the twin's `version`. Returns what a twin change
/// notification's body holds for it: `{"version": N, "tags": patch}` or `{"version": N,
/// "properties": {"reported": {patch…, "$metadata": …, "$version": n}}}`.
pub fn apply(twin: &mut Value, section: Section, patch: &Map<String, Value>, ts: &str) -> Value {
    let version = twin.get("version").and_then(Value::as_u64).unwrap_or(0) + 1;
    twin["version"] = Value::from(version);
    let target = section_mut(twin, section);
    merge(target, patch);
    if section == Section::Tags {
        return serde_json::json!({"version": version, "tags": Value::Object(patch.clone())});
    }
    let section_version = target.get("$version").and_then(Value::as_u64).unwrap_or(0) + 1;
    target.insert("$version".into(), Value::from(section_version));
    let metadata = match target
        .entry("$metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(m) => m,
        other => {
            *other = Value::Object(Map::new());
            other.as_object_mut().expect("just made an object")
        }
    };
    stamp_metadata(metadata, patch, ts);
    let mut changed = patch.clone();
    changed.insert(
        "$metadata".into(),
        Value::Object(metadata_of(metadata, patch)),
    );
    changed.insert("$version".into(), Value::from(section_version));
    let mut properties = Map::new();
    properties.insert(section.name().into(), Value::Object(changed));
    serde_json::json!({"version": version, "properties": properties})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn merge_patch_semantics() {
        let mut t = obj(json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1], "$version": 4}));
        merge(
            &mut t,
            &obj(json!({"a": null, "b": {"c": null, "x": true}, "e": {"f": 1}, "n": "s"})),
        );
        assert_eq!(
            Value::Object(t),
            json!({"b": {"d": 3, "x": true}, "e": {"f": 1}, "n": "s", "$version": 4})
        );
    }

    #[test]
    fn diff_is_the_merge_patch_between() {
        let old = obj(json!({"a": 1, "b": {"c": 2, "d": 3}, "gone": 1, "$version": 2}));
        let new = obj(json!({"a": 1, "b": {"c": 5, "d": 3}, "added": [1], "$version": 9}));
        let d = diff(&old, &new);
        assert_eq!(
            Value::Object(d.clone()),
            json!({"b": {"c": 5}, "added": [1], "gone": null})
        );
        let mut t = old.clone();
        merge(&mut t, &d);
        t.remove("$version");
        let mut n = new.clone();
        n.remove("$version");
        assert_eq!(t, n);
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn apply_bumps_versions_and_stamps_metadata() {
        let mut twin = new_twin("d1", None, "T0");
        let body = apply(
            &mut twin,
            Section::Reported,
            &obj(json!({"temp": 21, "fw": {"v": "1.2"}})),
            "T1",
        );
        assert_eq!(body["version"], 2);
        assert_eq!(body["properties"]["reported"]["$version"], 2);
        assert_eq!(body["properties"]["reported"]["temp"], 21);
        assert_eq!(
            body["properties"]["reported"]["$metadata"]["fw"]["v"]["$lastUpdated"],
            "T1"
        );
        assert!(body.get("tags").is_none());
        let body = apply(
            &mut twin,
            Section::Reported,
            &obj(json!({"temp": null})),
            "T2",
        );
        assert_eq!(body["version"], 3);
        assert_eq!(twin["properties"]["reported"]["$version"], 3);
        assert!(twin["properties"]["reported"].get("temp").is_none());
        assert!(twin["properties"]["reported"]["$metadata"]
            .get("temp")
            .is_none());
        assert_eq!(twin["properties"]["desired"]["$version"], 1, "untouched");
        let body = apply(&mut twin, Section::Tags, &obj(json!({"site": "a"})), "T3");
        assert_eq!(body, json!({"version": 4, "tags": {"site": "a"}}));
        assert_eq!(twin["tags"]["site"], "a");
    }

    #[test]
    fn patches_are_checked() {
        let code = |t: &str| parse_patch(t, Section::Reported).unwrap_err().code;
        assert_eq!(code("[1]"), codes::PATCH_NOT_OBJECT);
        assert_eq!(code("{"), codes::PATCH_NOT_OBJECT);
        assert_eq!(code(r#"{"$version": 3}"#), codes::PATCH_BAD_NAME);
        assert_eq!(code(r#"{"a": {"b.c": 1}}"#), codes::PATCH_BAD_NAME);
        assert_eq!(code(r#"{"": 1}"#), codes::PATCH_BAD_NAME);
        let deep = format!("{}1{}", r#"{"a":"#.repeat(11), "}".repeat(11));
        assert_eq!(code(&deep), codes::PATCH_TOO_DEEP);
        let ok = format!("{}1{}", r#"{"a":"#.repeat(10), "}".repeat(10));
        assert!(parse_patch(&ok, Section::Reported).is_ok());
        let big = format!(r#"{{"a": "{}"}}"#, "x".repeat(33 * 1024));
        assert_eq!(code(&big), codes::PATCH_TOO_LARGE);
        assert!(parse_patch(r#"{"a": null}"#, Section::Reported).is_ok());
    }
}
