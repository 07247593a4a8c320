//! One crypto provider for the whole relay, aws-lc-rs (jsonwebtoken needs it for JWT signatures
//! anyway), passed explicitly to every TLS configuration instead of installed as a process-wide
//! default: HTTPS to destinations (reqwest), SMTP with TLS (lettre, through its `aws-lc-rs`
//! feature), the relay's own HTTPS (`[server.tls]`), and SHA-256 for dedup ids.

use std::sync::{Arc, LazyLock};

use rustls::crypto::CryptoProvider;

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
    use std::fmt::Write;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}
