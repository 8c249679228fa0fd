//! How much TLS costs per byte, without I/O: a rustls client and server in
//! memory exchange 4 KiB messages both ways (as in scenario c of
//! BENCHMARKS.md), with the cipher suite they agree on by default. The
//! gateway's share of a round trip is one decrypt and one encrypt of 4 KiB,
//! half of what each round trip here costs.
//!
//! ```sh
//! cargo run --release --example tls_cipher
//! ```

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};

/// Moves every TLS byte `from` has for the wire into `to`.
fn shuttle(from: &mut Connection, to: &mut Connection) -> Result<(), Box<dyn std::error::Error>> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire)?;
    }
    let mut at = &wire[..];
    while !at.is_empty() {
        to.read_tls(&mut at)?;
        to.process_new_packets()?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const MSG: usize = 4096;
    const ROUNDS: usize = 50_000;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["localhost".to_string()])?.self_signed(&key)?;
    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone())?;
    let server_config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    let client_config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client: Connection =
        ClientConnection::new(Arc::new(client_config), ServerName::try_from("localhost")?)?.into();
    let mut server: Connection = ServerConnection::new(Arc::new(server_config))?.into();
    while client.is_handshaking() || server.is_handshaking() {
        shuttle(&mut client, &mut server)?;
        shuttle(&mut server, &mut client)?;
    }
    let suite = server
        .negotiated_cipher_suite()
        .map_or("none".to_string(), |s| format!("{:?}", s.suite()));
    let msg = vec![7u8; MSG];
    let mut back = vec![0u8; MSG];
    let start = Instant::now();
    for _ in 0..ROUNDS {
        client.writer().write_all(&msg)?;
        shuttle(&mut client, &mut server)?;
        server.reader().read_exact(&mut back)?;
        server.writer().write_all(&back)?;
        shuttle(&mut server, &mut client)?;
        client.reader().read_exact(&mut back)?;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(back, msg, "the bytes came through");
    let per_round = secs * 1e6 / ROUNDS as f64;
    // Each round trip encrypts and decrypts 4 KiB twice: the gateway does
    // half of that.
    println!(
        "{suite}: {:.2} ns per byte per encrypt+decrypt; a 4 KiB round trip costs the gateway {:.2} µs of TLS",
        secs * 1e9 / (2 * MSG * ROUNDS) as f64,
        per_round / 2.0
    );
    Ok(())
}
