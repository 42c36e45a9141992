//! TLS between nodes, as an option: mutual authentication against one certificate authority, on top of the
//! cookie.
//!
//! Every node has a certificate signed by the cluster's CA whose subject alternative names include its node
//! name (`--node-name`, as a DNS name): a node dialling `n2` checks that the certificate it is shown is n2's,
//! and every node refuses a peer without a certificate from the CA. The files are read once, when the node
//! starts; a problem with one is one line naming the flag and the file.

use std::path::PathBuf;
use std::sync::Arc;

use ractmq_broker::tls::{provider, read_certs, read_key, read_roots};
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Where a node's TLS material is.
#[derive(Debug, Clone)]
pub struct ClusterTls {
    /// This node's certificate chain (PEM), its node name among the DNS names.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The certificate authority every node's certificate is signed by (PEM).
    pub ca: PathBuf,
}

/// The loaded configuration: how to accept links and how to dial.
#[derive(Clone)]
pub struct TlsSetup {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSetup")
    }
}

impl ClusterTls {
    /// Read the files and build both ends; the error is one line naming what to fix.
    pub(crate) fn load(&self) -> Result<TlsSetup, String> {
        let certs = read_certs(&self.cert, "--cluster-tls-cert")?;
        let key = read_key(&self.key, "--cluster-tls-key")?;
        let roots = read_roots(&self.ca, "--cluster-tls-ca")?;
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| format!("--cluster-tls-ca {}: {e}", self.ca.display()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cluster TLS: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| format!("--cluster-tls-cert/--cluster-tls-key: {e}"))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cluster TLS: {e}"))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("--cluster-tls-cert/--cluster-tls-key: {e}"))?;
        Ok(TlsSetup {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}

/// The name a node's certificate must carry: its node name.
pub fn server_name(node: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(node.to_string()).map_err(|e| format!("node name {node} is not a TLS server name ({e})"))
}
