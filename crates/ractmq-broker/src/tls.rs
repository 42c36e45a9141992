//! Reading TLS material (PEM files) into rustls configurations, for the client listeners (MQTT over TLS and
//! over secure WebSocket) and for TLS between cluster nodes, which reads its files with the same functions.
//!
//! The files are read once, when the node starts; a problem with one is one line naming the setting and the
//! file, so an operator knows which flag or key to fix.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// The one crypto provider ractmq uses (aws-lc-rs, rustls' default), named so that no process-wide default
/// has to be installed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Every certificate in the PEM file at `path`, at least one.
pub fn read_certs(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{setting} {}: cannot read it ({e})", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{setting} {}: not PEM certificates ({e})", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{setting} {}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// The private key in the PEM file at `path`.
pub fn read_key(path: &Path, setting: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{setting} {}: no private key read ({e})", path.display()))
}

/// The certificate authorities in the PEM file at `path`, as trust roots.
pub fn read_roots(path: &Path, setting: &str) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for ca in read_certs(path, setting)? {
        roots
            .add(ca)
            .map_err(|e| format!("{setting} {}: not a usable CA certificate ({e})", path.display()))?;
    }
    Ok(Arc::new(roots))
}

/// Where a TLS listener's files are, and the names of the settings that gave them (for error lines).
pub struct ServerFiles<'a> {
    /// The certificate chain's PEM file, and the name of the setting that gave it.
    pub cert: (&'a Path, &'a str),
    /// The private key's PEM file, and the name of the setting that gave it.
    pub key: (&'a Path, &'a str),
    /// Clients must show a certificate signed by this CA (mutual TLS); `None`: clients show none.
    pub client_ca: Option<(&'a Path, &'a str)>,
}

/// A server configuration for MQTT clients over TLS (1.2 and 1.3).
pub fn server_config(files: &ServerFiles<'_>) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(files.cert.0, files.cert.1)?;
    let key = read_key(files.key.0, files.key.1)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match files.client_ca {
        None => builder.with_no_client_auth(),
        Some((path, setting)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(read_roots(path, setting)?, provider)
                .build()
                .map_err(|e| format!("{setting} {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} and {} do not make a certificate with its key: {e}",
            files.cert.1, files.key.1
        )
    })?;
    Ok(Arc::new(config))
}
