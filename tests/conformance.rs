//! The transport conformance matrix: every client front of the gateway
//! (TCP, PROXY v1 and v2 in front of TCP, TLS, WebSocket, WSS, snet, snet
//! encrypted), every server front (the same but WebSocket), and this
//! crate's endpoint-side transports (its TLS client, its WebSocket client
//! over TCP and TLS), crossed with every frame size that crosses an
//! internal boundary (the WebSocket length forms, a TLS record, rustls'
//! buffer, the read buffers and read sizes, the pool's chunks, MaxPacket),
//! both directions, with the far end reading fast, reading in small pieces,
//! and pausing before it reads. Every frame must arrive byte-exact and in
//! order within a deadline; a failure names the row (client and server
//! front), the size, the direction and the reader.
//!
//! The gateway fronts are driven by peers written apart from the gateway
//! (plain sockets, rustls' blocking stream, tungstenite); the snet fronts
//! and the endpoint rows by this crate's own transports over non-blocking
//! sockets.
#![cfg(all(feature = "tls", feature = "ws"))]

mod common;

use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{test_config, Got, TestGateway};
use mio::net::TcpListener;
use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};
use uniway::config::SnetConfig;
use uniway::snet::SnetSettings;
use uniway::transport::{
    IoStatus, Ready, Snet, Tcp, Tls, Transport, WsClient, WsSettings, WsSocket,
};
use uniway::wire::{
    self, Challenge, Command, Status, CHALLENGE_LEN, DEFAULT_MAX_PACKET, HEADER_LEN,
};
use uniway::{Config, Side};

/// How long one batch (every size, one direction, one reader) may take.
const BATCH_DEADLINE: Duration = Duration::from_secs(20);
/// How long a pausing reader waits before it reads.
const PAUSE: Duration = Duration::from_millis(400);
const WS_PATH: &str = "/game";

/// Frame lengths on the wire (header included) that sit on a boundary, or
/// one byte either side of it.
fn frame_sizes() -> Vec<usize> {
    let max = HEADER_LEN + DEFAULT_MAX_PACKET as usize - 4;
    vec![
        HEADER_LEN + 1, // the smallest data frame
        64,             // the pool's smallest chunk
        125,            // WebSocket: the last 7-bit length
        126,            // the first 16-bit length
        127,
        1024,
        1025,
        2047, // the client read buffer (2 KiB), its write-queue chunks
        2048,
        2049,
        16_384, // a TLS record's plaintext
        16_385,
        32_768, // the client read size (16 buffers)
        32_769,
        65_535, // WebSocket's last 16-bit length; rustls' 64 KiB buffer;
        65_536, // the server buffer, the pool's largest chunk
        65_537,
        131_072,
        max - 1,
        max, // MaxPacket
    ]
}

/// The message of the `seq`th frame of a batch: its own pattern, so a
/// frame delivered out of place or spliced is caught.
fn message(seq: usize, frame_len: usize) -> Vec<u8> {
    (0..frame_len - HEADER_LEN)
        .map(|i| (i.wrapping_mul(7) ^ seq.wrapping_mul(131)) as u8)
        .collect()
}

fn frame(conn_id: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    wire::encode_frame(&mut f, conn_id, msg);
    f
}

#[derive(Debug, Clone, Copy)]
enum Front {
    Tcp,
    ProxyV1,
    ProxyV2,
    Tls,
    Ws,
    Wss,
    Snet,
    SnetEncrypted,
    /// This crate's TLS client transport against the TLS front.
    EndpointTls,
    /// This crate's WebSocket client transport against the WebSocket front.
    EndpointWs,
    /// The same over TLS against the WSS front.
    EndpointWss,
}

#[derive(Debug, Clone, Copy)]
enum Reader {
    /// Reads as fast as it can, 64 KiB at a time.
    Fast,
    /// Reads 1,000 bytes at a time, resting now and then.
    Pieces,
    /// Reads nothing for a while (the sender's bytes pile up in the
    /// kernel and the gateway), then reads fast.
    Paused,
}

impl Reader {
    fn piece(self) -> usize {
        match self {
            Reader::Pieces => 1000,
            Reader::Fast | Reader::Paused => 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    ServerToClient,
    ClientToServer,
}

/// A client's byte stream to the gateway, whatever carries it.
trait Link: Send {
    /// Sends `bytes` whole.
    fn send(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Up to `max` more bytes of the gateway's stream; empty if none came
    /// within a short wait.
    fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>>;
}

/// A blocking stream (TCP, rustls' stream) with a short read timeout.
struct StreamLink<S>(S);

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl<S: Read + Write + Send> Link for StreamLink<S> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)?;
        self.0.flush()
    }

    fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; max];
        match self.0.read(&mut buf) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            Err(e) if timed_out(&e) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// tungstenite's blocking client: each send is one binary message; reads
/// hand out the messages' payloads as one stream.
struct WsLink<S: Read + Write> {
    ws: WebSocket<S>,
    pending: Vec<u8>,
}

impl<S: Read + Write + Send> Link for WsLink<S> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.ws
            .send(Message::binary(bytes.to_vec()))
            .map_err(io::Error::other)
    }

    fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        if self.pending.is_empty() {
            match self.ws.read() {
                Ok(Message::Binary(b)) => self.pending = b.to_vec(),
                Ok(Message::Ping(_) | Message::Pong(_)) => return Ok(Vec::new()),
                Ok(other) => return Err(io::Error::other(format!("unexpected {other:?}"))),
                Err(tungstenite::Error::Io(e)) if timed_out(&e) => return Ok(Vec::new()),
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        let n = max.min(self.pending.len());
        Ok(self.pending.drain(..n).collect())
    }
}

/// One of this crate's transports over a non-blocking socket, polled.
struct TransportLink<T>(T);

const POLL_EVERY: Duration = Duration::from_micros(200);

impl<T: Transport + Send> TransportLink<T> {
    fn flush(&mut self) -> io::Result<()> {
        while self.0.wants_write() {
            match self.0.write(&[]).1 {
                IoStatus::Continue => {}
                IoStatus::WouldBlock => std::thread::sleep(POLL_EVERY),
                IoStatus::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
                IoStatus::Error(kind) => return Err(kind.into()),
            }
        }
        Ok(())
    }
}

impl<T: Transport + Send> Link for TransportLink<T> {
    fn send(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let (n, status) = self.0.write(&[IoSlice::new(bytes)]);
            bytes = &bytes[n..];
            match status {
                IoStatus::Continue => {}
                IoStatus::WouldBlock => {
                    // A transport in its handshake may need to read first.
                    let _ = self.0.read(&mut [], Ready::READABLE);
                    std::thread::sleep(POLL_EVERY)
                }
                IoStatus::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
                IoStatus::Error(kind) => return Err(kind.into()),
            }
        }
        self.flush()
    }

    fn read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        self.flush()?;
        let mut buf = vec![0; max];
        let started = Instant::now();
        loop {
            let (n, status) = self.0.read(&mut buf, Ready::READABLE | Ready::WRITABLE);
            if n > 0 {
                buf.truncate(n);
                return Ok(buf);
            }
            match status {
                IoStatus::Continue => {}
                IoStatus::WouldBlock if started.elapsed() < Duration::from_millis(50) => {
                    std::thread::sleep(POLL_EVERY)
                }
                IoStatus::WouldBlock => return Ok(Vec::new()),
                IoStatus::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
                IoStatus::Error(kind) => return Err(kind.into()),
            }
        }
    }
}

/// A certificate for localhost and 127.0.0.1, and configurations that
/// serve and trust it.
struct Certs {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

fn certs() -> Certs {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(cert.der().to_vec()))
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Certs {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

fn snet(encrypt: bool) -> SnetSettings {
    SnetSettings {
        encrypt,
        buffer: 32 * 1024,
    }
}

/// A gateway whose client listener is `client`'s front and whose server
/// listener is `server`'s.
fn gateway(client: Front, server: Front, certs: &Certs) -> TestGateway {
    let mut cfg: Config = test_config();
    for (front, side) in [(client, Side::Client), (server, Side::Server)] {
        let sc = match side {
            Side::Client => &mut cfg.client,
            Side::Server => &mut cfg.server,
        };
        match front {
            Front::ProxyV1 | Front::ProxyV2 => sc.proxy_protocol = true,
            Front::Snet | Front::SnetEncrypted => {
                let mut s = SnetConfig::defaults(side);
                s.settings = snet(matches!(front, Front::SnetEncrypted));
                sc.snet = Some(s);
            }
            _ => {}
        }
    }
    let ws = WsSettings {
        path: WS_PATH.into(),
        origins: Vec::new(),
        max_packet: cfg.max_packet,
    };
    let tls = certs.server.clone();
    TestGateway::start_with(cfg, move |gw, registry| {
        let bind = || TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let client_at = match client {
            Front::Tls | Front::EndpointTls => gw
                .listen_tls(registry, Side::Client, bind(), tls.clone())
                .unwrap(),
            Front::Ws | Front::EndpointWs => gw.listen_ws(registry, bind(), ws, None).unwrap(),
            Front::Wss | Front::EndpointWss => gw
                .listen_ws(registry, bind(), ws, Some(tls.clone()))
                .unwrap(),
            _ => gw.listen(registry, Side::Client, bind()).unwrap(),
        };
        let server_at = match server {
            Front::Tls | Front::EndpointTls => {
                gw.listen_tls(registry, Side::Server, bind(), tls).unwrap()
            }
            Front::Ws | Front::Wss | Front::EndpointWs | Front::EndpointWss => {
                panic!("servers do not connect over WebSocket")
            }
            _ => gw.listen(registry, Side::Server, bind()).unwrap(),
        };
        (client_at, server_at)
    })
}

fn proxy_v2_header() -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&[203, 0, 113, 7, 127, 0, 0, 1]);
    h.extend_from_slice(&5000u16.to_be_bytes());
    h.extend_from_slice(&4000u16.to_be_bytes());
    h
}

fn blocking_tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s
}

fn nonblocking_tcp(addr: SocketAddr) -> std::net::TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_nonblocking(true).unwrap();
    s
}

fn mio_tcp(addr: SocketAddr) -> mio::net::TcpStream {
    mio::net::TcpStream::from_std(nonblocking_tcp(addr))
}

/// A client of `front` connected to `addr`.
fn connect(front: Front, addr: SocketAddr, certs: &Certs) -> Box<dyn Link> {
    let localhost = || ServerName::try_from("localhost").unwrap();
    match front {
        Front::Tcp => Box::new(StreamLink(blocking_tcp(addr))),
        Front::ProxyV1 => {
            let mut s = blocking_tcp(addr);
            s.write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 5000 4000\r\n")
                .unwrap();
            Box::new(StreamLink(s))
        }
        Front::ProxyV2 => {
            let mut s = blocking_tcp(addr);
            s.write_all(&proxy_v2_header()).unwrap();
            Box::new(StreamLink(s))
        }
        Front::Tls => {
            let conn = rustls::ClientConnection::new(certs.client.clone(), localhost()).unwrap();
            Box::new(StreamLink(rustls::StreamOwned::new(
                conn,
                blocking_tcp(addr),
            )))
        }
        Front::Ws | Front::Wss => {
            let tcp = blocking_tcp(addr);
            // The upgrade itself with a long timeout; reads after it short.
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let ws = match front {
                Front::Ws => {
                    let req = format!("ws://{addr}{WS_PATH}")
                        .into_client_request()
                        .unwrap();
                    let (ws, _) = tungstenite::client::client(req, MaybeTls::Plain(tcp)).unwrap();
                    ws
                }
                _ => {
                    let conn =
                        rustls::ClientConnection::new(certs.client.clone(), localhost()).unwrap();
                    let tls = rustls::StreamOwned::new(conn, tcp);
                    let req = format!("wss://localhost:{}{WS_PATH}", addr.port())
                        .into_client_request()
                        .unwrap();
                    let (ws, _) =
                        tungstenite::client::client(req, MaybeTls::Tls(Box::new(tls))).unwrap();
                    ws
                }
            };
            ws.get_ref()
                .tcp()
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            Box::new(WsLink {
                ws,
                pending: Vec::new(),
            })
        }
        Front::Snet | Front::SnetEncrypted => {
            let link = Tcp::new(nonblocking_tcp(addr), addr);
            let settings = snet(matches!(front, Front::SnetEncrypted));
            Box::new(TransportLink(Snet::connect(link, settings).unwrap()))
        }
        Front::EndpointTls => {
            let tls = Tls::connect(mio_tcp(addr), addr, certs.client.clone(), localhost()).unwrap();
            Box::new(TransportLink(tls))
        }
        Front::EndpointWs => {
            let ws = WsClient::connect(WsSocket::Plain(mio_tcp(addr)), addr, WS_PATH).unwrap();
            Box::new(TransportLink(ws))
        }
        Front::EndpointWss => {
            let ip = ServerName::try_from("127.0.0.1").unwrap();
            let conn = rustls::ClientConnection::new(certs.client.clone(), ip).unwrap();
            let socket =
                WsSocket::TlsClient(Box::new(rustls::StreamOwned::new(conn, mio_tcp(addr))));
            Box::new(TransportLink(
                WsClient::connect(socket, addr, WS_PATH).unwrap(),
            ))
        }
    }
}

/// tungstenite's socket: TCP, or rustls over TCP.
enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl MaybeTls {
    fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTls::Plain(s) => s,
            MaybeTls::Tls(s) => &s.sock,
        }
    }
}

impl Read for MaybeTls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.read(buf),
            MaybeTls::Tls(s) => s.read(buf),
        }
    }
}

impl Write for MaybeTls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeTls::Plain(s) => s.write(buf),
            MaybeTls::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTls::Plain(s) => s.flush(),
            MaybeTls::Tls(s) => s.flush(),
        }
    }
}

/// Whole frames out of a byte stream.
#[derive(Default)]
struct Frames {
    buf: Vec<u8>,
    at: usize,
}

impl Frames {
    fn push(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn next(&mut self) -> Option<Got> {
        let Ok(Status::Complete(f)) = wire::decode_frame(&self.buf[self.at..], u32::MAX) else {
            return None;
        };
        let got = if f.is_command() {
            Got::Cmd(Command::decode(f.message).expect("the gateway sent a bad command"))
        } else {
            Got::Data(f.conn_id, f.message.to_vec())
        };
        self.at += f.wire_len();
        if self.at > 1 << 20 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        Some(got)
    }
}

/// What a batch's reader is told to expect, and names it by in failures.
struct Expect<'a> {
    row: &'a str,
    dir: Direction,
    reader: Reader,
    conn_id: u32,
    sizes: &'a [usize],
}

/// Reads `e.sizes.len()` frames with `read`, as `e.reader` reads, checking
/// each against what was sent.
fn read_batch(
    e: &Expect<'_>,
    mut frames: Frames,
    mut read: impl FnMut(usize) -> io::Result<Vec<u8>>,
) {
    let started = Instant::now();
    if let Reader::Paused = e.reader {
        std::thread::sleep(PAUSE);
    }
    let mut reads = 0usize;
    for (seq, &size) in e.sizes.iter().enumerate() {
        let got = loop {
            if let Some(got) = frames.next() {
                break got;
            }
            assert!(
                started.elapsed() < BATCH_DEADLINE,
                "{}: {:?}, {:?} reader: stalled waiting for frame {seq} ({size} bytes on the wire)",
                e.row,
                e.dir,
                e.reader
            );
            let bytes = read(e.reader.piece()).unwrap_or_else(|err| {
                panic!(
                    "{}: {:?}, {:?} reader: {err} while waiting for frame {seq} ({size} bytes)",
                    e.row, e.dir, e.reader
                )
            });
            frames.push(&bytes);
            reads += 1;
            if let Reader::Pieces = e.reader {
                if reads.is_multiple_of(64) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        };
        let want = message(seq, size);
        match got {
            Got::Data(id, m) if id == e.conn_id && m == want => {}
            Got::Data(id, m) => panic!(
                "{}: {:?}, {:?} reader: frame {seq} ({size} bytes) arrived as {} bytes on vconn {id}{}",
                e.row,
                e.dir,
                e.reader,
                m.len() + HEADER_LEN,
                if m.len() == want.len() { ", its bytes changed" } else { "" }
            ),
            Got::Cmd(c) => panic!(
                "{}: {:?}, {:?} reader: {c:?} instead of frame {seq} ({size} bytes)",
                e.row, e.dir, e.reader
            ),
        }
    }
}

/// The next frame `link` receives, within the deadline.
fn expect(link: &mut dyn Link, frames: &mut Frames, what: &str) -> Got {
    let started = Instant::now();
    loop {
        if let Some(got) = frames.next() {
            return got;
        }
        assert!(started.elapsed() < BATCH_DEADLINE, "no {what}");
        let bytes = link
            .read_some(4096)
            .unwrap_or_else(|e| panic!("{e} while waiting for {what}"));
        frames.push(&bytes);
    }
}

/// Connects server 1 over `front` and answers its challenge; returns it
/// once the gateway has registered it (a Ping answered).
fn server(front: Front, addr: SocketAddr, certs: &Certs) -> (Box<dyn Link>, Frames) {
    let mut link = connect(front, addr, certs);
    let mut challenge = Vec::new();
    let started = Instant::now();
    while challenge.len() < CHALLENGE_LEN {
        assert!(
            started.elapsed() < BATCH_DEADLINE,
            "{front:?}: no challenge"
        );
        let want = CHALLENGE_LEN - challenge.len();
        challenge.extend(link.read_some(want).unwrap());
    }
    let challenge = Challenge(challenge.try_into().unwrap());
    link.send(&challenge.respond(b"test-key", 1).to_bytes())
        .unwrap();
    link.send(&Command::Ping.to_bytes()).unwrap();
    let mut frames = Frames::default();
    let got = expect(
        link.as_mut(),
        &mut frames,
        "the answer to the server's Ping",
    );
    assert_eq!(got, Got::Cmd(Command::Ping), "{front:?} server");
    (link, frames)
}

/// Sends `sizes` frames on `conn_id` from a thread of its own (one send,
/// so one WebSocket message, per frame); the join gives the link back.
fn send_batch(
    mut link: Box<dyn Link>,
    conn_id: u32,
    sizes: &[usize],
) -> JoinHandle<io::Result<Box<dyn Link>>> {
    let frames: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(seq, &size)| frame(conn_id, &message(seq, size)))
        .collect();
    std::thread::spawn(move || {
        for f in &frames {
            link.send(f)?;
        }
        Ok(link)
    })
}

/// Every size, both ways, for each reader, between a client over
/// `client` and a server over `server_front`.
fn run(client: Front, server_front: Front) {
    let certs = certs();
    let gw = gateway(client, server_front, &certs);
    let sizes = frame_sizes();
    let row = format!("{client:?} client, {server_front:?} server");
    for reader in [Reader::Fast, Reader::Pieces, Reader::Paused] {
        let (s, mut s_frames) = server(server_front, gw.server_addr, &certs);
        let mut c = connect(client, gw.client_addr, &certs);
        c.send(&Command::Dial { remote_id: 1 }.to_bytes()).unwrap();
        let mut c_frames = Frames::default();
        let conn_id = match expect(c.as_mut(), &mut c_frames, "Accept") {
            Got::Cmd(Command::Accept { conn_id, .. }) => conn_id,
            other => panic!("{row}: {other:?} instead of Accept"),
        };
        let mut s = s;
        match expect(s.as_mut(), &mut s_frames, "Connect") {
            Got::Cmd(Command::Connect { conn_id: id, .. }) if id == conn_id => {}
            other => panic!("{row}: {other:?} instead of Connect"),
        }
        let e = Expect {
            row: &row,
            dir: Direction::ServerToClient,
            reader,
            conn_id,
            sizes: &sizes,
        };
        let sender = send_batch(s, conn_id, &sizes);
        read_batch(&e, c_frames, |max| c.read_some(max));
        let mut s = sender
            .join()
            .unwrap()
            .unwrap_or_else(|err| panic!("{row} {reader:?}: the server could not send: {err}"));
        let e = Expect {
            dir: Direction::ClientToServer,
            ..e
        };
        let sender = send_batch(c, conn_id, &sizes);
        read_batch(&e, s_frames, |max| s.read_some(max));
        sender
            .join()
            .unwrap()
            .unwrap_or_else(|err| panic!("{row} {reader:?}: the client could not send: {err}"));
    }
    let stats = gw.stop().stats();
    assert_eq!(
        (
            stats.slow_consumers,
            stats.pause_timeouts,
            stats.write_timeouts
        ),
        (0, 0, 0),
        "{row}: the batches fit every cap and bound"
    );
}

/// A client front, with a server over plain TCP.
fn run_front(front: Front) {
    run(front, Front::Tcp);
}

/// A server front, with a client over plain TCP.
fn run_server_front(front: Front) {
    run(Front::Tcp, front);
}

#[test]
fn tcp() {
    run_front(Front::Tcp);
}

#[test]
fn proxy_v1() {
    run_front(Front::ProxyV1);
}

#[test]
fn proxy_v2() {
    run_front(Front::ProxyV2);
}

#[test]
fn tls() {
    run_front(Front::Tls);
}

#[test]
fn websocket() {
    run_front(Front::Ws);
}

#[test]
fn wss() {
    run_front(Front::Wss);
}

#[test]
fn snet_plain() {
    run_front(Front::Snet);
}

#[test]
fn snet_encrypted() {
    run_front(Front::SnetEncrypted);
}

#[test]
fn endpoint_tls_client() {
    run_front(Front::EndpointTls);
}

#[test]
fn endpoint_ws_client() {
    run_front(Front::EndpointWs);
}

#[test]
fn endpoint_wss_client() {
    run_front(Front::EndpointWss);
}

#[test]
fn server_proxy_v1() {
    run_server_front(Front::ProxyV1);
}

#[test]
fn server_proxy_v2() {
    run_server_front(Front::ProxyV2);
}

#[test]
fn server_tls() {
    run_server_front(Front::Tls);
}

#[test]
fn server_snet_plain() {
    run_server_front(Front::Snet);
}

#[test]
fn server_snet_encrypted() {
    run_server_front(Front::SnetEncrypted);
}

#[test]
fn server_endpoint_tls_client() {
    run_server_front(Front::EndpointTls);
}
