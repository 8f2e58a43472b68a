//! Real brokers: MQTT (Mosquitto or any MQTT 3.1.1 broker) and NATS / JetStream, as inputs and
//! as endpoint sinks. Behind the cargo features `mqtt` and `nats`; the engine and router never
//! depend on this module, so an embedder that only evaluates routes builds without tokio.
//!
//! * [`BrokerUrl`]: `mqtt://HOST:PORT[/TOPIC]`, `nats://HOST:PORT/SUBJECT`,
//!   `jetstream://HOST:PORT/NAME[?consumer=…&ack_wait=…]`, the command line's spelling, with TLS
//!   (`mqtts://`, `nats+tls://`, `jetstream+tls://` or `?tls=true`, `?ca=&cert=&key=` files) and
//!   credentials (`user@`, `?password_file=`/`?password_env=`, NATS `?token_file=`/`?token_env=`
//!   and `?creds=`). Secrets are read when the URL is parsed, so a missing file fails at start,
//!   and never printed: `Display` and `Debug` redact them, and so does [`redact`] for raw text.
//! * [`mqtt`]: the device-to-cloud subscriber (IoT Hub's topics, manual acknowledgements) and
//!   [`mqtt::MqttSink`].
//! * [`nats`]: the JetStream stream the bridge appends to, the durable consumer router processes
//!   share, and [`nats::NatsSink`].
//!
//! Delivery is at-least-once everywhere: an input is acknowledged only after its output is
//! confirmed (a JetStream publish acknowledgement, an MQTT PUBACK, every endpoint's sink flushed),
//! so a crash can repeat a message but never lose one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::message::naming::PropertyNaming;
use crate::sink::parse_duration;

#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(any(feature = "mqtt", feature = "nats", feature = "amqp"))]
pub mod tls;

/// The stable codes that open broker URL errors and warnings.
pub mod codes {
    /// A broker URL that cannot be read: scheme, host, port, or parameters that do not go
    /// together (a key without a certificate, a NATS token on an MQTT URL, two password sources).
    pub const BAD_URL: &str = "E0701";
    /// A password, token, credentials, CA, certificate or key file named by the URL cannot be
    /// read or is empty, or an environment variable it names is not set.
    pub const UNREADABLE_SECRET: &str = "E0702";
    /// A CA, certificate or key file holds no usable PEM, or they do not make a TLS
    /// configuration.
    pub const BAD_TLS_FILE: &str = "E0703";
    /// A password written in the URL itself: it works, but it ends up in shell histories and
    /// process listings, so a file or an environment variable is the better place.
    pub const PASSWORD_IN_URL: &str = "W0701";
    /// The MQTT broker says it dropped messages (Mosquitto's
    /// `$SYS/broker/publish/messages/dropped` rose while the router was subscribed).
    pub const BROKER_DROPPED: &str = "W0702";
}

/// The environment variable an MQTT URL with a user name and no other password source reads.
pub const MQTT_PASSWORD_ENV: &str = "HUBROUTE_MQTT_PASSWORD";
/// The environment variable a NATS URL with a user name and no other password source reads.
pub const NATS_PASSWORD_ENV: &str = "HUBROUTE_NATS_PASSWORD";

/// The broker families a URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `mqtt://` (`mqtts://` with TLS)
    Mqtt,
    /// `nats://`: core NATS (fire and forget, flushed).
    Nats,
    /// `jetstream://`: NATS JetStream (persisted, acknowledged).
    JetStream,
}

/// A password or token. Its `Debug` never shows it, so a URL or an options struct holding one
/// can be logged; [`Secret::expose`] is for the one place that sends it to the broker.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for handing to a broker client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The files a TLS connection uses: the CA that signed the server's certificate (the system's
/// roots when `None`), and a client certificate with its key for brokers that authenticate
/// clients by certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `?ca=FILE`: PEM certificates to trust.
    pub ca: Option<PathBuf>,
    /// `?cert=FILE`: the client's PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// `?key=FILE`: the client certificate's PEM private key.
    pub key: Option<PathBuf>,
}

/// TLS settings of a URL. With a broker feature on, the rustls configuration is built when the
/// URL is parsed, so a bad file fails at start instead of on every reconnection.
#[derive(Debug, Clone)]
pub struct Tls {
    /// The files it was built from.
    pub files: TlsFiles,
    #[cfg(any(feature = "mqtt", feature = "nats"))]
    config: std::sync::Arc<rustls::ClientConfig>,
}

impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        self.files == other.files
    }
}

impl Eq for Tls {}

impl Tls {
    fn new(files: TlsFiles) -> Result<Tls, String> {
        Ok(Tls {
            #[cfg(any(feature = "mqtt", feature = "nats"))]
            config: std::sync::Arc::new(tls::client_config(&files)?),
            files,
        })
    }

    /// The client configuration for the broker clients.
    #[cfg(any(feature = "mqtt", feature = "nats"))]
    pub fn client_config(&self) -> std::sync::Arc<rustls::ClientConfig> {
        std::sync::Arc::clone(&self.config)
    }
}

/// A parsed broker URL. Only loopback or explicitly named hosts are contacted; nothing is
/// resolved or connected here, but the files the URL names (passwords, tokens, certificates)
/// are read, so that a mistake shows at start. `Debug` and `Display` never show a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// Which broker family.
    pub scheme: Scheme,
    /// Host name or address.
    pub host: String,
    /// TCP port (1883 for MQTT, 8883 for MQTT over TLS, 4222 for NATS when omitted).
    pub port: u16,
    /// The path after the authority, without the leading `/`: an MQTT topic, a NATS subject, a
    /// JetStream stream name. May be empty.
    pub path: String,
    /// `?key=value&…` pairs, in order, without the TLS and credential parameters (those are
    /// in the fields below).
    pub query: Vec<(String, String)>,
    /// TLS, when the scheme or the parameters ask for it.
    pub tls: Option<Tls>,
    /// The user name (`user@host`), for MQTT and NATS user/password authentication.
    pub user: Option<String>,
    /// The password, from `?password_file=`, `?password_env=`, the default environment
    /// variable ([`MQTT_PASSWORD_ENV`], [`NATS_PASSWORD_ENV`]) or, with a warning, the URL.
    pub password: Option<Secret>,
    /// A NATS token, from `?token_file=` or `?token_env=`.
    pub token: Option<Secret>,
    /// A NATS `.creds` file (user JWT and NKey seed), from `?creds=`.
    pub creds: Option<PathBuf>,
}

/// Query parameters that configure TLS and credentials; taken out of [`BrokerUrl::query`].
const SECURITY_PARAMS: [&str; 9] = [
    "tls",
    "ca",
    "cert",
    "key",
    "password_file",
    "password_env",
    "token_file",
    "token_env",
    "creds",
];

impl BrokerUrl {
    /// Parses `scheme://[user[:password]@]host[:port][/path][?query]`, reading the secret and
    /// certificate files it names and the environment variables it points to.
    pub fn parse(text: &str) -> Result<BrokerUrl, String> {
        BrokerUrl::parse_with_env(text, &|name| std::env::var(name).ok())
    }

    /// [`BrokerUrl::parse`] with `env` in place of the process environment.
    pub fn parse_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BrokerUrl, String> {
        let shown = redact(text);
        let bad = |why: String| format!("{}: '{shown}': {why}", codes::BAD_URL);
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("not a broker URL (scheme://host:port/…)".into()))?;
        let (scheme, mut tls) = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => (Scheme::Mqtt, false),
            "mqtts" | "ssl" | "mqtt+tls" => (Scheme::Mqtt, true),
            "nats" => (Scheme::Nats, false),
            "nats+tls" | "tls" => (Scheme::Nats, true),
            "jetstream" | "js" => (Scheme::JetStream, false),
            "jetstream+tls" | "js+tls" => (Scheme::JetStream, true),
            other => {
                return Err(bad(format!(
                    "unknown broker scheme '{other}' (mqtt, mqtts, nats, nats+tls, jetstream or \
                     jetstream+tls)"
                )))
            }
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        let (userinfo, authority) = match authority.rsplit_once('@') {
            Some((u, a)) => (Some(u), a),
            None => (None, authority),
        };
        let (user, url_password) = match userinfo {
            Some(u) => {
                let (name, password) = match u.split_once(':') {
                    Some((n, p)) => (n, Some(percent_decode(p))),
                    None => (u, None),
                };
                let name = percent_decode(name);
                if name.is_empty() {
                    return Err(bad("empty user name before '@'".into()));
                }
                (Some(name), password)
            }
            None => (None, None),
        };
        let default_port = match (scheme, tls) {
            (Scheme::Mqtt, false) => 1883,
            (Scheme::Mqtt, true) => 8883,
            (Scheme::Nats | Scheme::JetStream, _) => 4222,
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| bad(format!("'{p}' is not a port number")))?,
            ),
            None => (authority, default_port),
        };
        if host.is_empty() {
            return Err(bad("no host".into()));
        }
        let mut plain = Vec::new();
        let mut security: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = match pair.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (pair.to_string(), String::new()),
            };
            if SECURITY_PARAMS.contains(&k.as_str()) {
                if security.iter().any(|(seen, _)| *seen == k) {
                    return Err(bad(format!("'{k}' is given twice")));
                }
                security.push((k, percent_decode(&v)));
            } else {
                plain.push((k, v));
            }
        }
        let get = |key: &str| {
            security
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        match get("tls") {
            None => {}
            Some("true" | "1" | "yes" | "") => tls = true,
            Some("false" | "0" | "no") if tls => {
                return Err(bad("tls=false on a TLS scheme".into()));
            }
            Some("false" | "0" | "no") => {}
            Some(other) => return Err(bad(format!("tls={other}: expected true or false"))),
        }
        let files = TlsFiles {
            ca: get("ca").map(PathBuf::from),
            cert: get("cert").map(PathBuf::from),
            key: get("key").map(PathBuf::from),
        };
        if files.cert.is_some() != files.key.is_some() {
            return Err(bad(
                "a client certificate needs both cert=FILE and key=FILE".into(),
            ));
        }
        // A CA or client certificate only makes sense over TLS: asking for one asks for TLS.
        tls |= files != TlsFiles::default();
        let tls = if tls { Some(Tls::new(files)?) } else { None };

        let is_nats = scheme != Scheme::Mqtt;
        let mut password_sources = 0;
        let mut password = None;
        if let Some(p) = url_password {
            password_sources += 1;
            tracing::warn!(
                "{}: '{shown}': the password is written in the URL; it works, but \
                 password_file=FILE or password_env=NAME keep it out of shell histories and \
                 process listings",
                codes::PASSWORD_IN_URL
            );
            password = Some(Secret(p));
        }
        if let Some(file) = get("password_file") {
            password_sources += 1;
            password = Some(read_secret(Path::new(file), "password_file")?);
        }
        if let Some(name) = get("password_env") {
            password_sources += 1;
            password = Some(secret_from_env(env, name, "password_env")?);
        }
        if password_sources > 1 {
            return Err(bad(
                "more than one password source (the URL, password_file, password_env)".into(),
            ));
        }
        if password.is_some() && user.is_none() {
            return Err(bad(
                "a password needs a user name (user@host); a NATS token is token_file= or \
                 token_env="
                    .into(),
            ));
        }
        if password.is_none() && user.is_some() {
            let default = if is_nats {
                NATS_PASSWORD_ENV
            } else {
                MQTT_PASSWORD_ENV
            };
            password = env(default).filter(|p| !p.is_empty()).map(Secret);
        }
        let token = match (get("token_file"), get("token_env")) {
            (Some(_), Some(_)) => {
                return Err(bad("both token_file and token_env".into()));
            }
            (Some(file), None) => Some(read_secret(Path::new(file), "token_file")?),
            (None, Some(name)) => Some(secret_from_env(env, name, "token_env")?),
            (None, None) => None,
        };
        let creds = get("creds").map(PathBuf::from);
        if let Some(file) = &creds {
            read_secret(file, "creds")?;
        }
        if !is_nats && (token.is_some() || creds.is_some()) {
            return Err(bad(
                "token_file, token_env and creds are NATS authentication; MQTT takes \
                 user@host with password_file or password_env"
                    .into(),
            ));
        }
        let methods = [user.is_some(), token.is_some(), creds.is_some()];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(bad(
                "choose one of user@host (with a password), a token and a creds file".into(),
            ));
        }
        Ok(BrokerUrl {
            scheme,
            host: host.to_string(),
            port,
            path: path.to_string(),
            query: plain,
            tls,
            user,
            password,
            token,
            creds,
        })
    }

    /// The value of query parameter `key`, if present.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `host:port`, for connecting.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Query parameter `key` as a duration (`500ms`, `30s`, `2m`, or plain seconds).
    pub fn duration_param(&self, key: &str) -> Result<Option<Duration>, String> {
        self.param(key)
            .map(|v| {
                parse_duration(v)
                    .ok_or_else(|| format!("{key}={v}: not a duration (e.g. 30s, 500ms)"))
            })
            .transpose()
    }
}

/// Reads a secret from `file`, without the line end an editor or `echo` leaves.
fn read_secret(file: &Path, param: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "{}: {param}={}: cannot read it: {e}",
            codes::UNREADABLE_SECRET,
            file.display()
        )
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(format!(
            "{}: {param}={}: the file is empty",
            codes::UNREADABLE_SECRET,
            file.display()
        ));
    }
    Ok(Secret(value.to_string()))
}

fn secret_from_env(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
    param: &str,
) -> Result<Secret, String> {
    match env(name) {
        Some(v) if !v.is_empty() => Ok(Secret(v)),
        _ => Err(format!(
            "{}: {param}={name}: the environment variable {name} is not set",
            codes::UNREADABLE_SECRET
        )),
    }
}

/// `%XX` sequences decoded (as UTF-8, lossily); anything else kept.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` (a broker URL as typed, valid or not) without its secrets: see [`crate::redact::url`].
pub use crate::redact::url as redact;

/// The spelling of system property names a sink URL asks for with `?names=` (`edge`,
/// `eventHubs`, `storage`, `serviceBus`, `eventGrid`, or an endpoint kind such as
/// `serviceBusQueues`); IoT Edge hub's bag names without it. `hubroute run` adds the parameter
/// from the kind of the endpoint a sink is bound to ([`crate::message::naming::with_endpoint_naming`]).
pub fn property_naming(url: &BrokerUrl) -> Result<PropertyNaming, String> {
    url.param("names")
        .map_or(Ok(PropertyNaming::Edge), str::parse)
        .map_err(|e| format!("{url}: names={e}"))
}

impl std::fmt::Display for BrokerUrl {
    /// `scheme://[user@]host:port/path`: no password, token or query, so it can go into any
    /// log or error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match (self.scheme, self.tls.is_some()) {
            (Scheme::Mqtt, false) => "mqtt",
            (Scheme::Mqtt, true) => "mqtts",
            (Scheme::Nats, false) => "nats",
            (Scheme::Nats, true) => "nats+tls",
            (Scheme::JetStream, false) => "jetstream",
            (Scheme::JetStream, true) => "jetstream+tls",
        };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(f, "{}:{}/{}", self.host, self.port, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_urls_choose_a_property_naming() {
        let naming = |u: &str| property_naming(&BrokerUrl::parse(u).unwrap());
        assert_eq!(naming("mqtt://h:1/t"), Ok(PropertyNaming::Edge));
        assert_eq!(
            naming("nats://h:1/s?names=serviceBus"),
            Ok(PropertyNaming::ServiceBus)
        );
        assert_eq!(
            naming("nats://h:1/s?names=eventHubs"),
            Ok(PropertyNaming::EventHubs)
        );
        let e = naming("mqtt://h:1/t?names=kafka").unwrap_err();
        assert!(e.contains("names='kafka' is not a property naming"), "{e}");
    }

    #[test]
    fn urls() {
        let u =
            BrokerUrl::parse("jetstream://127.0.0.1:4333/HUB?consumer=router&ack_wait=5s").unwrap();
        assert_eq!(u.scheme, Scheme::JetStream);
        assert_eq!(u.address(), "127.0.0.1:4333");
        assert_eq!(u.path, "HUB");
        assert_eq!(u.param("consumer"), Some("router"));
        assert_eq!(
            u.duration_param("ack_wait").unwrap(),
            Some(Duration::from_secs(5))
        );
        let u = BrokerUrl::parse("mqtt://localhost/alerts/out").unwrap();
        assert_eq!((u.port, u.path.as_str()), (1883, "alerts/out"));
        assert!(BrokerUrl::parse("kafka://x:1/t").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://h:99999").is_err());
        assert!(BrokerUrl::parse("h:1").is_err());
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("1y"), None);
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn scratch(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hubroute-url-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn credentials_come_from_files_and_environment_and_never_show() {
        let file = scratch("pw", "s3cret-file\n");
        let text = format!(
            "mqtt://router@127.0.0.1:1883?password_file={}",
            file.display()
        );
        let u = BrokerUrl::parse_with_env(&text, &no_env).unwrap();
        assert_eq!(u.user.as_deref(), Some("router"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("s3cret-file"));
        assert!(
            u.query.is_empty(),
            "credential parameters stay out of query"
        );
        for shown in [u.to_string(), format!("{u:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
        }
        assert_eq!(u.to_string(), "mqtt://router@127.0.0.1:1883/");

        let env = |name: &str| (name == "MY_PW").then(|| "from-env".to_string());
        let u = BrokerUrl::parse_with_env("mqtt://r@h?password_env=MY_PW", &env).unwrap();
        assert_eq!(u.password.unwrap().expose(), "from-env");
        let err = BrokerUrl::parse_with_env("mqtt://r@h?password_env=NOPE", &no_env).unwrap_err();
        assert!(err.starts_with("E0702") && err.contains("NOPE"), "{err}");

        let default = |name: &str| (name == MQTT_PASSWORD_ENV).then(|| "dflt".to_string());
        let u = BrokerUrl::parse_with_env("mqtt://r@h", &default).unwrap();
        assert_eq!(u.password.unwrap().expose(), "dflt");

        // Written in the URL: accepted, decoded, redacted everywhere.
        let u = BrokerUrl::parse_with_env("mqtt://r:p%40ss-inline@h:1/t", &no_env).unwrap();
        assert_eq!(u.password.as_ref().unwrap().expose(), "p@ss-inline");
        assert!(!format!("{u} {u:?}").contains("inline"));
        let err = BrokerUrl::parse_with_env("mqtt://r:inline-pw@h:notaport", &no_env).unwrap_err();
        assert!(
            err.starts_with("E0701") && !err.contains("inline-pw"),
            "{err}"
        );
        assert!(err.contains("r:***@h"), "{err}");

        let missing = "mqtt://r@h?password_file=/nonexistent/pw";
        let err = BrokerUrl::parse_with_env(missing, &no_env).unwrap_err();
        assert!(
            err.starts_with("E0702") && err.contains("/nonexistent/pw"),
            "{err}"
        );
        let empty = scratch("empty", "\n");
        let text = format!("mqtt://r@h?password_file={}", empty.display());
        assert!(BrokerUrl::parse_with_env(&text, &no_env)
            .unwrap_err()
            .contains("empty"));
    }

    #[test]
    fn nats_credentials() {
        let token = scratch("token", "tok-123");
        let text = format!("nats://127.0.0.1:4222/s?token_file={}", token.display());
        let u = BrokerUrl::parse_with_env(&text, &no_env).unwrap();
        assert_eq!(u.token.as_ref().map(Secret::expose), Some("tok-123"));
        assert!(!format!("{u} {u:?}").contains("tok-123"));
        let creds = scratch("x.creds", "-----BEGIN NATS USER JWT-----");
        let text = format!("jetstream://h/HUB?creds={}&consumer=c", creds.display());
        let u = BrokerUrl::parse_with_env(&text, &no_env).unwrap();
        assert_eq!(u.creds.as_deref(), Some(creds.as_path()));
        assert_eq!(u.param("consumer"), Some("c"));
        let env = |name: &str| (name == NATS_PASSWORD_ENV).then(|| "np".to_string());
        let u = BrokerUrl::parse_with_env("nats://u@h/s", &env).unwrap();
        assert_eq!(u.password.unwrap().expose(), "np");
    }

    #[test]
    fn contradictions_are_errors() {
        let token = scratch("token2", "t");
        for bad in [
            format!("mqtt://h?token_file={}", token.display()),
            format!("nats://u@h/s?token_file={}", token.display()),
            "mqtt://h?password_env=X".to_string(),
            "mqtt://h?cert=/a".to_string(),
            "mqtts://h?tls=false".to_string(),
            "mqtt://h?tls=maybe".to_string(),
            "mqtt://h?ca=/a&ca=/b".to_string(),
            "mqtt://@h".to_string(),
            "mqtt://u:p@h?password_env=X".to_string(),
        ] {
            let env = |_: &str| Some("x".to_string());
            let err = BrokerUrl::parse_with_env(&bad, &env).unwrap_err();
            assert!(err.starts_with("E07"), "{bad}: {err}");
        }
    }

    #[test]
    fn tls_schemes_and_files() {
        let err =
            BrokerUrl::parse_with_env("mqtts://h?ca=/nonexistent/ca.pem", &no_env).unwrap_err();
        assert!(err.starts_with("E0702"), "{err}");
        let junk = scratch("junk.pem", "not a certificate");
        let text = format!("nats://h/s?tls=true&ca={}", junk.display());
        let err = BrokerUrl::parse_with_env(&text, &no_env).unwrap_err();
        assert!(err.starts_with("E0703"), "{err}");
        // A CA asks for TLS even on a plain scheme.
        let text = format!("mqtt://h?ca={}", junk.display());
        assert!(BrokerUrl::parse_with_env(&text, &no_env).is_err());
        let u = BrokerUrl::parse_with_env("mqtt://h:1/t?tls=false", &no_env).unwrap();
        assert!(u.tls.is_none());
    }

    #[test]
    fn redaction_of_raw_text() {
        assert_eq!(redact("mqtt://u:pw@h:1/t?x=1"), "mqtt://u:***@h:1/t?x=1");
        assert_eq!(
            redact("nats://h?token=abc&token_file=/f&password=p"),
            "nats://h?token=***&token_file=/f&password=***"
        );
        assert_eq!(redact("u:pw@h"), "u:***@h");
        assert_eq!(redact("mqtt://h/a@b"), "mqtt://h/a@b");
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
    }
}
