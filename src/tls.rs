//! TLS settings for the gateway's listeners (feature `tls`): a rustls
//! server configuration made from PEM files, with modern defaults (TLS 1.3
//! and 1.2, the ring provider's cipher suites), no client authentication
//! unless a client CA is given (for server-to-gateway links that must show
//! a certificate).
//!
//! ```no_run
//! use uniway::tls::{server_config, TlsFiles};
//!
//! let config = server_config(&TlsFiles {
//!     cert_chain: "/etc/fastway/cert.pem".into(),
//!     key: "/etc/fastway/key.pem".into(),
//!     client_ca: None,
//! })?;
//! # let _ = config;
//! # Ok::<(), uniway::tls::TlsError>(())
//! ```
//!
//! Hand the result to [`Gateway::listen_tls`](crate::Gateway::listen_tls),
//! and a newer one later to
//! [`Gateway::set_tls_config`](crate::Gateway::set_tls_config).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// Where a listener's certificate, key and (optionally) client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first, in PEM.
    pub cert_chain: PathBuf,
    /// The private key of the leaf, in PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// If set, peers must present a certificate signed by one of these
    /// CAs (PEM).
    pub client_ca: Option<PathBuf>,
}

/// A TLS configuration that could not be made; says which file and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the files and makes a server configuration.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(&files.cert_chain)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError(format!("{}: no private key ({e})", files.key.display())))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS setup: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError(format!(
            "{} and {}: {e}",
            files.cert_chain.display(),
            files.key.display()
        ))
    })?;
    Ok(Arc::new(config))
}

fn certificates(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}
