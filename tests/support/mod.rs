//! Real brokers for the TLS and Mosquitto-configuration tests: processes on free loopback
//! ports, killed on drop, and certificates made at test time with rcgen. Not every test file
//! uses every helper.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository root, where the shipped examples are.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A unique scratch directory, removed on drop (kept with `KEEP_BROKER_DIRS=1` or
/// `KEEP_FAULT_DIRS=1`, to read the processes' logs after a failure).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("hubroute-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let keep = ["KEEP_BROKER_DIRS", "KEEP_FAULT_DIRS"]
            .iter()
            .any(|k| std::env::var_os(k).is_some());
        if !keep {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Waits up to 20 s for `child` (`what`) to listen on loopback `port`; panics, with its log
/// if it has one, when it exits first or never listens.
pub fn wait_for_port(port: u16, what: &str, child: &mut Child, log: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = log.map(|l| std::fs::read_to_string(l).unwrap_or_default());
            panic!(
                "{what} exited at start ({status}): {}",
                log.unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn find_program(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed; these tests start a real broker. Install it with \
                 `sudo apt-get install -y mosquitto nats-server` (Debian/Ubuntu)"
            )
        })
}

/// The name of the user running the tests (`id -un`): Mosquitto started as root would switch
/// to the `mosquitto` user, which cannot write in our scratch directory.
pub fn current_user() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}

/// A broker process, killed on drop.
pub struct Server {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Server {
    /// Mosquitto with `config` (which must name its listener ports), logging to `dir`.
    pub fn mosquitto(dir: &Path, name: &str, config: &str, ports: &[u16]) -> Server {
        let log = dir.join(format!("{name}.log"));
        let text = format!(
            "{config}\n# Added by the test harness\nlog_dest file {}\nlog_type all\nuser {}\n",
            log.display(),
            current_user()
        );
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(&conf, text).unwrap();
        let mut command = Command::new(find_program("mosquitto"));
        command.arg("-c").arg(&conf);
        Server::start(command, ports, "mosquitto", log)
    }

    /// nats-server with the configuration file `config`.
    pub fn nats(dir: &Path, name: &str, config: &str, port: u16) -> Server {
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(&conf, config).unwrap();
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(find_program("nats-server"));
        command.arg("-c").arg(&conf).arg("-l").arg(&log);
        Server::start(command, &[port], "nats-server", log)
    }

    fn start(mut command: Command, ports: &[u16], what: &str, log: PathBuf) -> Server {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        for &port in ports {
            wait_for_port(port, what, &mut child, Some(&log));
        }
        Server {
            child: Some(child),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits (at most `limit`) until `check` holds.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// A test CA, a server certificate for 127.0.0.1 and localhost, and client certificates,
/// written as PEM files.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path, name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("hubroute test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        let ca = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca, cert.pem()).unwrap();
        let issuer = rcgen::Issuer::new(params, key);
        let mut pki = Pki {
            ca,
            server_cert: PathBuf::new(),
            server_key: PathBuf::new(),
            issuer,
            dir: dir.to_path_buf(),
        };
        let (cert, key) = pki.issue(
            &format!("{name}-server"),
            "127.0.0.1",
            &["127.0.0.1", "localhost"],
        );
        pki.server_cert = cert;
        pki.server_key = key;
        pki
    }

    /// A certificate with common name `cn` and the given subject alternative names; its and
    /// its key's files.
    pub fn issue(&self, file: &str, cn: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_file = self.dir.join(format!("{file}.pem"));
        let key_file = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

/// The `device_fleet` example of this build, built here if it is not there (`cargo build`
/// puts it in `target/{profile}/examples`; `cargo test` builds examples only as tests, and a
/// single test target not at all).
pub fn device_fleet() -> std::path::PathBuf {
    // target/{profile}/deps/this-test → target/{profile}/examples/device_fleet
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let fleet = profile_dir.join("examples").join("device_fleet");
    if !fleet.exists() {
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "--example", "device_fleet", "--features", "mqtt"]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.current_dir(repo()).status().unwrap();
        assert!(
            status.success(),
            "cargo build --example device_fleet failed: {status}"
        );
    }
    fleet
}

/// Runs the `device_fleet` example `bin` against `url`: `n` messages from `devices` devices,
/// every one acknowledged by the broker; `Err` with what it said otherwise.
pub fn run_device_fleet(bin: &Path, url: &str, n: usize, devices: usize) -> Result<(), String> {
    let out = Command::new(bin)
        .args([url, &n.to_string(), &devices.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    if out.status.success()
        && said.starts_with(&format!("published {n} messages from {devices} devices"))
    {
        return Ok(());
    }
    Err(format!(
        "device_fleet failed ({}): {said}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    ))
}
