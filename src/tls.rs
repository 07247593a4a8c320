//! One crypto provider for the whole relay, aws-lc-rs (jsonwebtoken needs it for JWT signatures
//! anyway), passed explicitly to every TLS configuration instead of installed as a process-wide
//! default: HTTPS to destinations (reqwest), SMTP with TLS (lettre, through its `aws-lc-rs`
//! feature), the relay's own HTTPS (`[server.tls]`), and SHA-256 for dedup ids.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::crypto::CryptoProvider;
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;

use crate::error::ConfigError;

/// `[server.tls]`: serve HTTPS with this certificate chain and key, without a proxy in front.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key: PathBuf,
}

static PROVIDER: LazyLock<Arc<CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));

/// The crypto provider every TLS configuration of the relay is built with.
pub fn provider() -> Arc<CryptoProvider> {
    PROVIDER.clone()
}

/// The TLS configuration for connections the relay makes: the platform's certificate store, the
/// provider's safe protocol versions.
pub fn client_config() -> rustls::ClientConfig {
    use rustls_platform_verifier::BuilderVerifierExt;
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .with_platform_verifier()
        .expect("the platform verifier takes the provider")
        .with_no_client_auth()
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Loads a certificate chain and private key (PEM) for `[server.tls]`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ConfigError::new("server.tls.cert", format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::new(
            "server.tls.cert",
            format!("{} holds no certificate", cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ConfigError::new("server.tls.key", format!("{}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("server.tls", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError::new("server.tls", e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
