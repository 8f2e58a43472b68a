//! `--config router.toml`: the process's settings in one file, so that a deployment is that
//! file plus the hub's routing JSON.
//!
//! The file is turned into the command-line flags it stands for, placed before the flags
//! actually given, which therefore win: a flag given on the command line replaces the file's
//! value, and `--sink NAME=URL` replaces the file's sink of that NAME only. Doing it at the
//! level of flags means every setting has exactly one meaning and one validation (clap's), and
//! a flag added to `run` later is reachable from `[store]` and `[limits]` without touching
//! this file. Unknown keys are errors with their line and column (code E0805).
//!
//! ```toml
//! routes = "routing.json"          # paths are relative to this file's directory
//! [input]
//! url = "mqtt://127.0.0.1:1883"
//! [sinks]
//! alerts = "file:out/alerts.jsonl"
//! [metrics]
//! addr = "127.0.0.1:9464"
//! [limits]
//! max_attempts = 10                # any `run` flag: --max-attempts 10
//! ```

use hubroute::ops::codes::CONFIG_INVALID;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The file's shape. Sections map to flags as their comments say.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// `--routes` (a path).
    routes: Option<Spanned<String>>,
    /// `--hub-name`.
    hub_name: Option<Spanned<String>>,
    /// `--twin-dir` (a path).
    twin_dir: Option<Spanned<String>>,
    /// `--source`.
    source: Option<Spanned<String>>,
    /// `--protocol`.
    protocol: Option<Spanned<String>>,
    /// `--dead-letter` (a path).
    dead_letter: Option<Spanned<String>>,
    input: Option<Input>,
    output: Option<Output>,
    /// `--sink NAME=URL` each.
    #[serde(default)]
    sinks: BTreeMap<String, Spanned<String>>,
    /// `--store DIR` for `dir`, `--retention-…` for `retention_…`, else `--store-KEY VALUE`.
    #[serde(default)]
    store: BTreeMap<String, Spanned<toml::Value>>,
    metrics: Option<Metrics>,
    log: Option<Log>,
    reload: Option<Reload>,
    /// `--KEY VALUE` each (`max_attempts`, `max_backoff`, `max_in_flight`, ...).
    #[serde(default)]
    limits: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    /// `--input` (run) or `--from` (bridge): a file, `-`, or a broker URL.
    url: Option<Spanned<String>>,
    /// `--client-id`.
    client_id: Option<Spanned<String>>,
    /// `--devices` (a path).
    devices: Option<Spanned<String>>,
    /// `--hub-host` (an HTTPS input's token host).
    hub_host: Option<Spanned<String>>,
    /// `--exit-when-idle`.
    exit_when_idle: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Output {
    /// `--to` (bridge).
    url: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metrics {
    /// `--metrics`.
    addr: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Log {
    /// `--log-format`.
    format: Option<Spanned<String>>,
    /// `--log`.
    filter: Option<Spanned<String>>,
    /// `--log-undefined PER_SECOND`.
    undefined: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reload {
    /// `--watch`.
    watch: Option<Spanned<bool>>,
}

/// One flag the file stands for.
struct Flag {
    long: String,
    /// `None` for a switch.
    value: Option<String>,
    /// Byte offset of the key's value in the file, for errors.
    at: usize,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Where the config file is named in `argv` (`--config FILE` or `--config=FILE`).
fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut args = argv.iter().skip(2);
    while let Some(a) = args.next() {
        let a = a.to_string_lossy();
        if a == "--" {
            return None;
        }
        if a == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(v) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// `argv` with the config file's flags inserted after the subcommand, unless given already.
/// Subcommands other than `run` and `bridge`, and commands without `--config`, pass unchanged.
pub fn expand(argv: Vec<OsString>, cli: &clap::Command) -> Result<Vec<OsString>, String> {
    let Some(sub) = argv.get(1).map(|s| s.to_string_lossy().into_owned()) else {
        return Ok(argv);
    };
    if sub != "run" && sub != "bridge" {
        return Ok(argv);
    }
    let Some(path) = config_path(&argv) else {
        return Ok(argv);
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let known: BTreeSet<String> = cli
        .find_subcommand(&sub)
        .map(|c| {
            c.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let flags = flags_of(&text, &path, &base, &sub)?;

    // What the command line gives itself: those flags win.
    let mut given: BTreeSet<String> = BTreeSet::new();
    let mut given_sinks: BTreeSet<String> = BTreeSet::new();
    let mut tail = argv.iter().skip(2).map(|a| a.to_string_lossy());
    while let Some(a) = tail.next() {
        if a == "--" {
            break;
        }
        let Some(long) = a.strip_prefix("--") else {
            continue;
        };
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (long.to_string(), None),
        };
        if name == "sink" {
            let value = inline.or_else(|| tail.next().map(|v| v.into_owned()));
            if let Some((endpoint, _)) = value.as_deref().and_then(|v| v.split_once('=')) {
                given_sinks.insert(endpoint.to_string());
            }
        }
        given.insert(name);
    }

    let mut out: Vec<OsString> = argv[..2].to_vec();
    for flag in flags {
        if !known.contains(&flag.long) {
            let (line, col) = line_col(&text, flag.at);
            return Err(format!(
                "{}:{line}:{col}: [{CONFIG_INVALID}] `hubroute {sub}` has no flag --{} for this setting",
                path.display(),
                flag.long
            ));
        }
        if flag.long == "sink" {
            let endpoint = flag
                .value
                .as_deref()
                .and_then(|v| v.split_once('='))
                .map(|(n, _)| n);
            if endpoint.is_some_and(|n| given_sinks.contains(n)) {
                continue;
            }
        } else if given.contains(&flag.long) {
            continue;
        }
        out.push(format!("--{}", flag.long).into());
        if let Some(v) = flag.value {
            out.push(v.into());
        }
    }
    out.extend(argv.into_iter().skip(2));
    Ok(out)
}

/// The flags the file's text stands for.
fn flags_of(text: &str, path: &Path, base: &Path, sub: &str) -> Result<Vec<Flag>, String> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let (l, c) = line_col(text, s.start);
                format!(":{l}:{c}")
            })
            .unwrap_or_default();
        format!(
            "{}{at}: [{CONFIG_INVALID}] {}",
            path.display(),
            e.message().trim_end()
        )
    })?;
    let resolve = |p: &str| -> String {
        let p = Path::new(p);
        if p.is_absolute() || p.as_os_str() == "-" {
            p.display().to_string()
        } else {
            base.join(p).display().to_string()
        }
    };
    let mut flags = Vec::new();
    let mut push = |long: &str, value: Option<String>, at: usize| {
        flags.push(Flag {
            long: long.to_string(),
            value,
            at,
        })
    };
    let string = |s: &Spanned<String>| (Some(s.get_ref().clone()), s.span().start);
    let path_value = |s: &Spanned<String>| (Some(resolve(s.get_ref())), s.span().start);

    for (long, v) in [
        ("routes", file.routes.as_ref().map(path_value)),
        ("hub-name", file.hub_name.as_ref().map(string)),
        ("twin-dir", file.twin_dir.as_ref().map(path_value)),
        ("source", file.source.as_ref().map(string)),
        ("protocol", file.protocol.as_ref().map(string)),
        ("dead-letter", file.dead_letter.as_ref().map(path_value)),
    ] {
        if let Some((value, at)) = v {
            push(long, value, at);
        }
    }
    if let Some(input) = &file.input {
        let input_flag = if sub == "bridge" { "from" } else { "input" };
        if let Some(u) = &input.url {
            // A file input is a path; `-` and broker URLs are not.
            let value = if u.get_ref().contains("://") {
                string(u)
            } else {
                path_value(u)
            };
            push(input_flag, value.0, value.1);
        }
        if let Some(v) = &input.client_id {
            let (value, at) = string(v);
            push("client-id", value, at);
        }
        if let Some(v) = &input.devices {
            let (value, at) = path_value(v);
            push("devices", value, at);
        }
        if let Some(v) = &input.hub_host {
            let (value, at) = string(v);
            push("hub-host", value, at);
        }
        if let Some(v) = &input.exit_when_idle {
            let (value, at) = string(v);
            push("exit-when-idle", value, at);
        }
    }
    if let Some(u) = file.output.as_ref().and_then(|o| o.url.as_ref()) {
        let (value, at) = string(u);
        push("to", value, at);
    }
    for (name, url) in &file.sinks {
        let u = url.get_ref();
        let u = match (u.strip_prefix("file:"), u.strip_prefix("storage:")) {
            (Some(p), _) => format!("file:{}", resolve(p)),
            (_, Some(p)) => format!("storage:{}", resolve(p)),
            _ => u.clone(),
        };
        push("sink", Some(format!("{name}={u}")), url.span().start);
    }
    for (key, value) in &file.store {
        // `dir` is `--store DIR`; `retention_time` is `--retention-time`; others
        // `--store-KEY`.
        let is_path = key == "dir";
        let long = if is_path {
            "store".to_string()
        } else if key.starts_with("retention") {
            key.replace('_', "-")
        } else {
            format!("store-{}", key.replace('_', "-"))
        };
        let (v, at) = scalar(text, path, key, value)?;
        let v = match (v, is_path) {
            (Some(v), true) => Some(resolve(&v)),
            (v, _) => v,
        };
        if value.get_ref().as_bool() != Some(false) {
            push(&long, v, at);
        }
    }
    if let Some(m) = file.metrics.as_ref().and_then(|m| m.addr.as_ref()) {
        let (value, at) = string(m);
        push("metrics", value, at);
    }
    if let Some(log) = &file.log {
        if let Some(f) = &log.format {
            let (value, at) = string(f);
            push("log-format", value, at);
        }
        if let Some(f) = &log.filter {
            let (value, at) = string(f);
            push("log", value, at);
        }
        if let Some(n) = &log.undefined {
            push(
                "log-undefined",
                Some(n.get_ref().to_string()),
                n.span().start,
            );
        }
    }
    if let Some(w) = file.reload.as_ref().and_then(|r| r.watch.as_ref()) {
        if *w.get_ref() {
            push("watch", None, w.span().start);
        }
    }
    for (key, value) in &file.limits {
        let long = key.replace('_', "-");
        let (v, at) = scalar(text, path, key, value)?;
        if value.get_ref().as_bool() != Some(false) {
            push(&long, v, at);
        }
    }
    Ok(flags)
}

/// A scalar setting as a flag value (`None` for `true`, a switch).
fn scalar(
    text: &str,
    path: &Path,
    key: &str,
    value: &Spanned<toml::Value>,
) -> Result<(Option<String>, usize), String> {
    let at = value.span().start;
    let v = match value.get_ref() {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(_) => None,
        _ => {
            let (line, col) = line_col(text, at);
            return Err(format!(
                "{}:{line}:{col}: [{CONFIG_INVALID}] '{key}' must be a string, number or boolean",
                path.display()
            ));
        }
    };
    Ok((v, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    fn write(text: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("router.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// A directory removed when dropped (no crate for one test helper).
    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "hubroute-config-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn expand_strs(args: &[&str]) -> Result<Vec<String>, String> {
        let argv = args.iter().map(OsString::from).collect();
        expand(argv, &crate::Cli::command())
            .map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect())
    }

    #[test]
    fn the_file_becomes_flags_and_the_command_line_wins() {
        let (dir, path) = write(
            r#"
routes = "routing.json"
[input]
url = "mqtt://127.0.0.1:1883"
[sinks]
a = "file:out/a.jsonl"
b = "stdout:"
[metrics]
addr = "127.0.0.1:9464"
[limits]
max_attempts = 7
[reload]
watch = true
"#,
        );
        let p = path.to_str().unwrap();
        let out = expand_strs(&[
            "hubroute",
            "run",
            "--config",
            p,
            "--sink",
            "b=file:x",
            "--max-attempts=3",
        ])
        .unwrap();
        let d = dir.0.display();
        let expected: Vec<String> = [
            "hubroute".to_string(),
            "run".into(),
            "--routes".into(),
            format!("{d}/routing.json"),
            "--input".into(),
            "mqtt://127.0.0.1:1883".into(),
            "--sink".into(),
            format!("a=file:{d}/out/a.jsonl"),
            "--metrics".into(),
            "127.0.0.1:9464".into(),
            "--watch".into(),
            "--config".into(),
            p.into(),
            "--sink".into(),
            "b=file:x".into(),
            "--max-attempts=3".into(),
        ]
        .into();
        assert_eq!(out, expected);
    }

    #[test]
    fn unknown_keys_and_flags_are_errors_with_their_position() {
        let (_dir, path) = write("routes = \"r.json\"\n[input]\nurl = \"-\"\nspeed = 3\n");
        let p = path.to_str().unwrap();
        let err = expand_strs(&["hubroute", "run", "--config", p]).unwrap_err();
        assert!(err.contains(":4:1: [E0805]"), "{err}");
        assert!(err.contains("speed"), "{err}");
        let (_dir, path) = write("[limits]\nwarp_factor = 9\n");
        let p = path.to_str().unwrap();
        let err = expand_strs(&["hubroute", "run", "--config", p]).unwrap_err();
        assert!(err.contains(":2:15: [E0805]"), "{err}");
        assert!(err.contains("--warp-factor"), "{err}");
    }

    #[test]
    fn other_commands_and_runs_without_config_are_untouched() {
        let args = ["hubroute", "check", "--config", "x", "a = 1"];
        assert_eq!(expand_strs(&args).unwrap(), args);
        let args = ["hubroute", "run", "--routes", "r.json"];
        assert_eq!(expand_strs(&args).unwrap(), args);
    }

    #[test]
    fn the_bundled_example_expands_to_flags_run_accepts() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/router.toml");
        let out = expand_strs(&["hubroute", "run", "--config", example.to_str().unwrap()]).unwrap();
        crate::Cli::try_parse_from(&out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    }
}
