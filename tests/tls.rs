//! TLS on a gateway listener, over loopback, with certificates made at test
//! time: frames both ways (small, coalesced, large), a bad handshake that
//! closes only that peer, a certificate replaced while connections stay
//! up, and servers that must show a client certificate.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{test_config, Got, RawPeer, DEADLINE};
use mio::net::TcpListener;
use mio::Poll;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use uniway::tls::{server_config, TlsFiles};
use uniway::wire::{self, Command, Status};
use uniway::{Gateway, Side, TokenRange};

/// A CA and a certificate for 127.0.0.1 it signed, written as PEM files.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("uniway-tls-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        let ca_pem = ca.pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        Pki {
            dir,
            ca_pem,
            ca,
            ca_key,
        }
    }

    /// A leaf certificate signed by the CA, as files `<name>.pem` and
    /// `<name>.key`.
    fn leaf(&self, name: &str) -> TlsFiles {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let cert_chain = self.dir.join(format!("{name}.pem"));
        let key_file = self.dir.join(format!("{name}.key"));
        std::fs::write(&cert_chain, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        TlsFiles {
            cert_chain,
            key: key_file,
            client_ca: None,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A client configuration trusting this CA, with an optional client
    /// certificate.
    fn client(&self, identity: Option<&TlsFiles>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(f) => {
                let chain = CertificateDer::pem_file_iter(&f.cert_chain)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect();
                let key = PrivateKeyDer::from_pem_file(&f.key).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A gateway with TLS on the listeners given, run on a thread; configs can
/// be swapped while it runs.
struct TlsGateway {
    client_addr: SocketAddr,
    server_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    swap: mpsc::Sender<(Side, Arc<rustls::ServerConfig>)>,
    handle: Option<JoinHandle<Gateway>>,
}

impl TlsGateway {
    fn start(
        client_tls: Option<Arc<rustls::ServerConfig>>,
        server_tls: Option<Arc<rustls::ServerConfig>>,
    ) -> TlsGateway {
        let mut poll = Poll::new().unwrap();
        let mut gw = Gateway::new(
            test_config(),
            TokenRange {
                start: 0,
                len: 1 << 16,
            },
        )
        .unwrap();
        let bind = || TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listen = |gw: &mut Gateway, side, tls: Option<Arc<rustls::ServerConfig>>| match tls {
            Some(c) => gw.listen_tls(poll.registry(), side, bind(), c).unwrap(),
            None => gw.listen(poll.registry(), side, bind()).unwrap(),
        };
        let client_addr = listen(&mut gw, Side::Client, client_tls);
        let server_addr = listen(&mut gw, Side::Server, server_tls);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (swap, swaps) = mpsc::channel::<(Side, Arc<rustls::ServerConfig>)>();
        let handle = std::thread::spawn(move || {
            let mut events = mio::Events::with_capacity(256);
            while !flag.load(Ordering::Relaxed) {
                while let Ok((side, c)) = swaps.try_recv() {
                    gw.set_tls_config(side, c);
                }
                let now = std::time::Instant::now();
                let t = gw.poll_timeout(now).map_or(Duration::from_millis(20), |t| {
                    t.min(Duration::from_millis(20))
                });
                poll.poll(&mut events, Some(t)).unwrap();
                let now = std::time::Instant::now();
                for ev in events.iter() {
                    gw.handle_event(poll.registry(), ev, now);
                }
                gw.handle_timeout(poll.registry(), std::time::Instant::now());
            }
            gw
        });
        TlsGateway {
            client_addr,
            server_addr,
            stop,
            swap,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> Gateway {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for TlsGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A peer speaking the wire format over TLS.
struct TlsPeer {
    s: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsPeer {
    fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<TlsPeer> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(DEADLINE))?;
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        let mut s = StreamOwned::new(conn, tcp);
        // Finish the handshake now, so a refusal shows here.
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(TlsPeer { s, buf: Vec::new() })
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
        self.s.flush().unwrap();
    }

    fn recv(&mut self) -> Got {
        loop {
            if let Ok(Status::Complete(f)) = wire::decode_frame(&self.buf, u32::MAX) {
                let got = if f.is_command() {
                    Got::Cmd(Command::decode(f.message).unwrap())
                } else {
                    Got::Data(f.conn_id, f.message.to_vec())
                };
                let n = f.wire_len();
                self.buf.drain(..n);
                return got;
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.s.read(&mut chunk).expect("no frame over TLS in time");
            assert!(n > 0, "gateway ended the TLS stream");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn dial(&mut self, remote: u32) -> u32 {
        self.send(&Command::Dial { remote_id: remote }.to_bytes());
        match self.recv() {
            Got::Cmd(Command::Accept { conn_id, .. }) => conn_id,
            other => panic!("expected Accept, got {other:?}"),
        }
    }
}

fn frame(conn_id: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    wire::encode_frame(&mut f, conn_id, msg);
    f
}

#[test]
fn frames_cross_a_tls_client_listener_both_ways() {
    let pki = Pki::new("frames");
    let config = server_config(&pki.leaf("gw")).unwrap();
    let gw = TlsGateway::start(Some(config), None);
    let mut server = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut client = TlsPeer::connect(gw.client_addr, pki.client(None)).unwrap();
    let v = client.dial(1);
    assert_eq!(server.expect_connect().0, v);
    // Small, coalesced, and larger than a TLS record and a read buffer.
    client.send(&frame(v, b"hello over TLS"));
    assert_eq!(server.recv(), Got::Data(v, b"hello over TLS".to_vec()));
    let burst: Vec<u8> = (0..50u8).flat_map(|i| frame(v, &[i; 100])).collect();
    client.send(&burst);
    for i in 0..50u8 {
        assert_eq!(server.recv(), Got::Data(v, vec![i; 100]));
    }
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    client.send(&frame(v, &big));
    assert_eq!(server.recv(), Got::Data(v, big.clone()));
    server.send_data(v, &big);
    assert_eq!(client.recv(), Got::Data(v, big));
    for i in 0..50u8 {
        server.send_data(v, &[i; 10]);
    }
    for i in 0..50u8 {
        assert_eq!(client.recv(), Got::Data(v, vec![i; 10]));
    }
    // A close_notify-less hang-up is just the end of the stream.
    drop(client);
    assert_eq!(server.recv(), Got::Cmd(Command::Close { conn_id: v }));
}

#[test]
fn a_bad_handshake_closes_only_that_peer() {
    let pki = Pki::new("bad");
    let gw = TlsGateway::start(Some(server_config(&pki.leaf("gw")).unwrap()), None);
    let mut server = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut good = TlsPeer::connect(gw.client_addr, pki.client(None)).unwrap();
    let v = good.dial(1);
    assert_eq!(server.expect_connect().0, v);
    // Plain frames to the TLS port; then a client that trusts another CA.
    let mut plain = RawPeer::client(gw.client_addr);
    plain.send_cmd(Command::Ping);
    plain.expect_closed();
    let other = Pki::new("other");
    assert!(TlsPeer::connect(gw.client_addr, other.client(None)).is_err());
    // Half a ClientHello, then nothing: the idle timeout would end it; the
    // good client meanwhile is served.
    let mut half = TcpStream::connect(gw.client_addr).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x00, 0x50, 0x01])
        .unwrap();
    good.send(&frame(v, b"unaffected"));
    assert_eq!(server.recv(), Got::Data(v, b"unaffected".to_vec()));
    drop(half);
    let stats = gw.stop().stats();
    assert_eq!(stats.clients_accepted, 4);
}

#[test]
fn a_new_certificate_takes_over_while_connections_stay_up() {
    let pki = Pki::new("reload");
    let gw = TlsGateway::start(Some(server_config(&pki.leaf("first")).unwrap()), None);
    let mut server = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut before = TlsPeer::connect(gw.client_addr, pki.client(None)).unwrap();
    let v = before.dial(1);
    assert_eq!(server.expect_connect().0, v);
    // A certificate from another CA replaces the first one.
    let next = Pki::new("reload-next");
    gw.swap
        .send((Side::Client, server_config(&next.leaf("second")).unwrap()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // New clients see the new certificate: trusting only the old CA fails,
    // trusting the new one works.
    assert!(TlsPeer::connect(gw.client_addr, pki.client(None)).is_err());
    let mut after = TlsPeer::connect(gw.client_addr, next.client(None)).unwrap();
    let w = after.dial(1);
    assert_eq!(server.expect_connect().0, w);
    // The connection made before the swap carries on.
    before.send(&frame(v, b"old cert, still here"));
    assert_eq!(
        server.recv(),
        Got::Data(v, b"old cert, still here".to_vec())
    );
    after.send(&frame(w, b"new cert"));
    assert_eq!(server.recv(), Got::Data(w, b"new cert".to_vec()));
}

#[test]
fn servers_over_tls_must_show_a_certificate_when_asked() {
    let pki = Pki::new("mtls");
    let mut files = pki.leaf("gw");
    files.client_ca = Some(pki.ca_file());
    let gw = TlsGateway::start(None, Some(server_config(&files).unwrap()));
    // Without a client certificate the handshake fails.
    let refused = TlsPeer::connect(gw.server_addr, pki.client(None)).and_then(|mut p| {
        let mut challenge = [0u8; 8];
        p.s.read_exact(&mut challenge).map(|_| p)
    });
    assert!(refused.is_err(), "a server without a certificate got in");
    // With one, the usual handshake runs inside TLS.
    let id = pki.leaf("backend");
    let mut server = TlsPeer::connect(gw.server_addr, pki.client(Some(&id))).unwrap();
    let mut challenge = [0u8; 8];
    server.s.read_exact(&mut challenge).unwrap();
    let resp = wire::Challenge(challenge).respond(b"test-key", 5);
    server.send(&resp.to_bytes());
    let mut client = RawPeer::client(gw.client_addr);
    let v = client.dial(5);
    match server.recv() {
        Got::Cmd(Command::Connect { conn_id, .. }) => assert_eq!(conn_id, v),
        other => panic!("expected Connect, got {other:?}"),
    }
    client.send_data(v, b"to a TLS server");
    assert_eq!(server.recv(), Got::Data(v, b"to a TLS server".to_vec()));
}

#[test]
fn unreadable_or_wrong_files_are_named_in_the_error() {
    let pki = Pki::new("files");
    let good = pki.leaf("gw");
    let missing = TlsFiles {
        cert_chain: pki.dir.join("nope.pem"),
        ..good.clone()
    };
    let e = server_config(&missing).unwrap_err().to_string();
    assert!(e.contains("nope.pem"), "{e}");
    let swapped = TlsFiles {
        cert_chain: good.key.clone(),
        key: good.cert_chain.clone(),
        client_ca: None,
    };
    let e = server_config(&swapped).unwrap_err().to_string();
    assert!(e.contains("gw.key") || e.contains("gw.pem"), "{e}");
    let other = pki.leaf("other");
    let mismatched = TlsFiles {
        key: other.key,
        ..good
    };
    assert!(
        server_config(&mismatched).is_err(),
        "a key that does not match its certificate"
    );
}

/// `fastway` with TLS from flags: SIGHUP with a broken certificate file
/// keeps the old one, `reload tls` with a good one takes it.
#[test]
fn fastway_reloads_its_certificate_on_sighup_and_on_command() {
    use std::io::BufRead;
    let pki = Pki::new("cli");
    let files = pki.leaf("gw");
    let dir = pki.dir.join("run");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fastway"))
        .args([
            "-ClientAddr=127.0.0.1:0",
            "-ServerAddr=127.0.0.1:0",
            &format!("-ClientTlsCert={}", files.cert_chain.display()),
            &format!("-ClientTlsKey={}", files.key.display()),
        ])
        .current_dir(&dir)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let wait = |needle: &str| -> String {
        loop {
            let l = lines
                .recv_timeout(DEADLINE)
                .unwrap_or_else(|_| panic!("no {needle:?}"));
            if l.contains(needle) {
                return l;
            }
        }
    };
    let line = wait("client listener at ");
    assert!(line.ends_with("(TLS)"), "{line}");
    let addr: SocketAddr = line
        .split("at ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
    };
    let ping = |config| {
        let mut p = TlsPeer::connect(addr, config)?;
        p.send(&Command::Ping.to_bytes());
        assert_eq!(p.recv(), Got::Cmd(Command::Ping));
        Ok::<_, std::io::Error>(p)
    };
    let kept = ping(pki.client(None)).unwrap();
    // A broken certificate file: the old certificate stays.
    std::fs::write(&files.cert_chain, "not a certificate").unwrap();
    signal("-HUP");
    wait("TLS not reloaded, the old certificate stays");
    ping(pki.client(None)).unwrap();
    // A good one from another CA, by command: it takes over.
    let next = Pki::new("cli-next");
    let fresh = next.leaf("gw2");
    std::fs::copy(&fresh.cert_chain, &files.cert_chain).unwrap();
    std::fs::copy(&fresh.key, &files.key).unwrap();
    std::fs::write(dir.join("fastway.cmd"), "reload tls").unwrap();
    signal("-USR1");
    wait("TLS certificate reloaded");
    assert!(
        ping(pki.client(None)).is_err(),
        "the old certificate is still served"
    );
    ping(next.client(None)).unwrap();
    // The connection from before both reloads still works.
    let mut kept = kept;
    kept.send(&Command::Ping.to_bytes());
    assert_eq!(kept.recv(), Got::Cmd(Command::Ping));
    drop(kept);
    signal("-TERM");
    assert!(child.wait().unwrap().success());
}

/// The endpoint driver's own TLS client: dials, sends and receives through
/// a TLS listener.
#[test]
fn endpoint_driver_clients_speak_tls() {
    use uniway::endpoint::driver::{DriverEvent, EndpointDriver};
    use uniway::endpoint::{EndpointConfig, Event, Role};
    let pki = Pki::new("driver");
    let gw = TlsGateway::start(Some(server_config(&pki.leaf("gw")).unwrap()), None);
    let mut server = RawPeer::server(gw.server_addr, 3, b"test-key");
    // The server echoes the first message of the first vconn.
    let echo = std::thread::spawn(move || {
        let (v, _) = server.expect_connect();
        match server.recv() {
            Got::Data(c, m) if c == v => server.send_data(v, &[&b"echo: "[..], &m].concat()),
            other => panic!("server got {other:?}"),
        }
        server
    });
    let mut poll = Poll::new().unwrap();
    let mut d = EndpointDriver::new(TokenRange { start: 0, len: 16 });
    let name = ServerName::try_from("localhost").unwrap();
    let k = d
        .connect_tls(
            poll.registry(),
            gw.client_addr,
            Role::Client,
            EndpointConfig::default(),
            (pki.client(None), name),
            std::time::Instant::now(),
        )
        .unwrap();
    let mut reply = None;
    common::drive(&mut d, &mut poll, "an echo over TLS", |d, ev| {
        match ev {
            DriverEvent::Endpoint(_, Event::Ready) => {
                d.endpoint(k).unwrap().dial(3).unwrap();
            }
            DriverEvent::Endpoint(_, Event::Dialed { conn_id, .. }) => d
                .endpoint(k)
                .unwrap()
                .send(conn_id, b"via the driver")
                .unwrap(),
            DriverEvent::Endpoint(_, Event::Message { data, .. }) => reply = Some(data),
            other => panic!("unexpected {other:?}"),
        }
        reply.is_some()
    });
    assert_eq!(reply.unwrap(), b"echo: via the driver");
    drop(echo.join().unwrap());
}
