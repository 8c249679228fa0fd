//! Makes a throwaway certificate authority and a certificate it signed for
//! `localhost` and 127.0.0.1, to try TLS locally (never for production).
//!
//! ```sh
//! cargo run --example testcert -- /tmp/certs
//! fastway -ClientAddr=127.0.0.1:4000 -ServerAddr=127.0.0.1:4001 \
//!     -ClientTlsCert=/tmp/certs/cert.pem -ClientTlsKey=/tmp/certs/key.pem
//! ```
//! Writes `ca.pem` (what clients trust), `cert.pem` and `key.pem` (what
//! the gateway serves) into the directory given.

use std::path::PathBuf;
use std::process::ExitCode;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

fn main() -> ExitCode {
    let dir: PathBuf = std::env::args().nth(1).unwrap_or_else(|| ".".into()).into();
    match make(&dir) {
        Ok(()) => {
            println!("wrote ca.pem, cert.pem and key.pem in {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("testcert: {e}");
            ExitCode::FAILURE
        }
    }
}

fn make(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL-based clients (Node, curl) take a certificate
    // whose issuer is its own subject for a self-signed one.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "uniway test CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    Ok(())
}
