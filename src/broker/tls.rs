//! One rustls client configuration for both broker clients (rumqttc and async-nats), built from
//! a URL's `ca=`, `cert=` and `key=` files with the ring provider. Built once when the URL is
//! parsed, so a missing or malformed file is an error at start, never a reconnection loop.
//! The AMQP input's server side (`amqps://…?cert=F&key=F`) takes its configuration from here
//! too ([`server_config`]), so every TLS endpoint of hubroute uses one provider and one PEM
//! reader.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::codes::{BAD_TLS_FILE, UNREADABLE_SECRET};
use super::TlsFiles;

/// The client configuration for `files`: trusts `ca` (the system's roots without one) and
/// presents `cert`/`key` when both are given.
pub fn client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &files.ca {
        Some(ca) => {
            let (added, _) = roots.add_parsable_certificates(certificates(ca, "ca")?);
            if added == 0 {
                return Err(format!(
                    "{BAD_TLS_FILE}: ca={}: no usable CA certificate in it",
                    ca.display()
                ));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(format!(
                    "{BAD_TLS_FILE}: TLS without ca=FILE needs the system's CA certificates, \
                     and none were found (Debian: apt-get install ca-certificates)"
                ));
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("{BAD_TLS_FILE}: {e}"))?
    .with_root_certificates(roots);
    match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certificates(cert, "cert")?, private_key(key)?)
            .map_err(|e| {
                format!(
                    "{BAD_TLS_FILE}: cert={} key={}: {e}",
                    cert.display(),
                    key.display()
                )
            }),
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(format!(
            "{BAD_TLS_FILE}: a client certificate needs both cert=FILE and key=FILE"
        )),
    }
}

/// The server configuration presenting `cert` (a PEM chain, leaf first) with `key`, on the
/// ring provider; no client certificates are asked for (devices authenticate with SAS tokens).
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{BAD_TLS_FILE}: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certificates(cert, "cert")?, private_key(key)?)
        .map_err(|e| {
            format!(
                "{BAD_TLS_FILE}: cert={} key={}: {e}",
                cert.display(),
                key.display()
            )
        })
}

fn read(file: &Path, param: &str) -> Result<Vec<u8>, String> {
    std::fs::read(file).map_err(|e| {
        format!(
            "{UNREADABLE_SECRET}: {param}={}: cannot read it: {e}",
            file.display()
        )
    })
}

fn certificates(file: &Path, param: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(file, param)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{BAD_TLS_FILE}: {param}={}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{BAD_TLS_FILE}: {param}={}: no PEM certificate in it",
            file.display()
        ));
    }
    Ok(certs)
}

/// The key's error never quotes the file: it is a secret.
fn private_key(file: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(file, "key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| {
        format!(
            "{BAD_TLS_FILE}: key={}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it",
            file.display()
        )
    })
}
