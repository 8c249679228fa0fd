//! snet through the real gateway: endpoints on both sides whose links a
//! proxy keeps cutting, with sequence-numbered traffic on several vconns
//! each way; and the ways a resume can fail.

mod common;

use std::collections::HashMap;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::cut::CutProxy;
use common::{test_config, RawPeer, TestGateway};
use mio::{Events, Poll};
use uniway::endpoint::driver::{DriverEvent, EndpointDriver};
use uniway::endpoint::{EndpointConfig, EndpointError, EndpointSnet, Event, Role};
use uniway::snet::{Session, SnetError, SnetSettings, REPLY_LEN, REQUEST_LEN};
use uniway::wire::Command;
use uniway::{Config, Side, SnetConfig, TokenRange};

const KEY: &[u8] = b"test-key";

fn gateway_config(encrypt: bool, wait: Duration) -> Config {
    let mut cfg = test_config();
    for side in [Side::Client, Side::Server] {
        let snet = SnetConfig {
            settings: SnetSettings {
                encrypt,
                buffer: 256 * 1024,
            },
            init_timeout: Duration::from_secs(2),
            wait_timeout: wait,
        };
        match side {
            Side::Client => cfg.client.snet = Some(snet),
            Side::Server => cfg.server.snet = Some(snet),
        }
    }
    cfg
}

fn endpoint_config(encrypt: bool, server_id: u32) -> EndpointConfig {
    EndpointConfig {
        server_id,
        auth_key: KEY.to_vec(),
        snet: Some(EndpointSnet {
            settings: SnetSettings {
                encrypt,
                buffer: 256 * 1024,
            },
            redial_every: Duration::from_millis(10),
            give_up_after: Duration::from_secs(10),
        }),
        ..EndpointConfig::default()
    }
}

/// A message: its vconn's sequence number, then filler of a length that
/// varies with it (so frames straddle cuts at every offset).
fn message(seq: u32) -> Vec<u8> {
    let mut m = seq.to_le_bytes().to_vec();
    m.extend(std::iter::repeat_n(seq as u8, (seq as usize * 37) % 900));
    m
}

fn seq_of(data: &[u8]) -> u32 {
    let seq = u32::from_le_bytes(data[..4].try_into().unwrap());
    assert_eq!(data, &message(seq)[..], "message {seq} damaged");
    seq
}

/// Clients and a server behind two cutting proxies exchange numbered
/// messages on three vconns per client while links are cut every few
/// milliseconds on both sides: every message arrives exactly once, in
/// order, on every vconn, each way.
fn survive_cuts(encrypt: bool) {
    const VCONNS: usize = 3;
    const WINDOW: u32 = 16;
    const MIN_CUTS: usize = 50;
    let gw = TestGateway::start(gateway_config(encrypt, Duration::from_secs(10)));
    let client_proxy = CutProxy::start(gw.client_addr);
    let server_proxy = CutProxy::start(gw.server_addr);
    let mut poll = Poll::new().unwrap();
    let mut d = EndpointDriver::new(TokenRange { start: 0, len: 64 });
    let now = Instant::now();
    let server = d
        .connect(
            poll.registry(),
            server_proxy.addr,
            Role::Server,
            endpoint_config(encrypt, 1),
            now,
        )
        .unwrap();
    let mut client = None;
    // Per vconn: next to send, next expected back (client), next expected
    // in (server).
    let mut sent: HashMap<u32, u32> = HashMap::new();
    let mut echoed: HashMap<u32, u32> = HashMap::new();
    let mut at_server: HashMap<u32, u32> = HashMap::new();
    let mut events = Events::with_capacity(256);
    let start = Instant::now();
    let mut last_cut = Instant::now();
    let mut cut_side = 0;
    loop {
        // Traffic flows until enough links were cut, then drains.
        let cuts = client_proxy.cuts() + server_proxy.cuts();
        let sending = cuts < MIN_CUTS;
        if !sending && echoed.len() == VCONNS && echoed.iter().all(|(c, n)| sent[c] == *n) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stuck after {cuts} cuts: echoed {echoed:?}, sent {sent:?}"
        );
        if sending && echoed.len() == VCONNS && last_cut.elapsed() >= Duration::from_millis(15) {
            // Alternate sides; now and then both at once.
            match cut_side % 5 {
                0 | 2 => client_proxy.cut(),
                1 | 3 => server_proxy.cut(),
                _ => {
                    client_proxy.cut();
                    server_proxy.cut();
                }
            }
            cut_side += 1;
            last_cut = Instant::now();
        }
        let wait = d
            .poll_timeout(Instant::now())
            .map_or(Duration::from_millis(5), |t| {
                t.min(Duration::from_millis(5))
            });
        poll.poll(&mut events, Some(wait)).unwrap();
        for ev in events.iter() {
            d.handle_event(ev);
        }
        d.handle_timeout(poll.registry(), Instant::now());
        while let Some(ev) = d.poll_event() {
            match ev {
                DriverEvent::Endpoint(k, Event::Ready) if k == server => {
                    let c = d
                        .connect(
                            poll.registry(),
                            client_proxy.addr,
                            Role::Client,
                            endpoint_config(encrypt, 0),
                            Instant::now(),
                        )
                        .unwrap();
                    for _ in 0..VCONNS {
                        d.endpoint(c).unwrap().dial(1).unwrap();
                    }
                    client = Some(c);
                }
                DriverEvent::Endpoint(k, Event::Dialed { conn_id, .. }) => {
                    assert_eq!(Some(k), client);
                    sent.insert(conn_id, 0);
                    echoed.insert(conn_id, 0);
                }
                DriverEvent::Endpoint(k, Event::Accepted { conn_id, .. }) => {
                    assert_eq!(k, server);
                    at_server.insert(conn_id, 0);
                }
                DriverEvent::Endpoint(k, Event::Message { conn_id, data }) if k == server => {
                    let seq = seq_of(&data);
                    let next = at_server.get_mut(&conn_id).expect("known vconn");
                    assert_eq!(seq, *next, "vconn {conn_id} at the server");
                    *next += 1;
                    d.endpoint(server).unwrap().send(conn_id, &data).unwrap();
                }
                DriverEvent::Endpoint(_, Event::Message { conn_id, data }) => {
                    let seq = seq_of(&data);
                    let next = echoed.get_mut(&conn_id).expect("known vconn");
                    assert_eq!(seq, *next, "vconn {conn_id} back at the client");
                    *next += 1;
                }
                DriverEvent::Endpoint(_, Event::Ready | Event::PingTimeout { kept: true }) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        // Keep a window of messages in flight on every vconn.
        if let (Some(c), true) = (client, sending) {
            for (&conn_id, next) in sent.iter_mut() {
                while *next < echoed[&conn_id] + WINDOW {
                    d.endpoint(c)
                        .unwrap()
                        .send(conn_id, &message(*next))
                        .unwrap();
                    *next += 1;
                }
            }
        }
    }
    let cuts = client_proxy.cuts() + server_proxy.cuts();
    let carried: u32 = echoed.values().sum();
    // Enough traffic that cuts fell while it flowed.
    assert!(carried as usize > 10 * MIN_CUTS, "only {carried} messages");
    drop(d);
    let stats = gw.stop().stats();
    assert!(stats.snet_resumes >= MIN_CUTS as u64 / 2, "{stats:?}");
    assert_eq!(stats.snet_handshakes, 2);
    assert_eq!(stats.snet_resume_failed, 0);
    assert_eq!(stats.snet_expired, 0);
    eprintln!(
        "{cuts} links cut, {} resumes, {carried} messages each way, encrypt {encrypt}",
        stats.snet_resumes
    );
}

#[test]
fn streams_survive_cuts_on_both_sides() {
    survive_cuts(false);
}

#[test]
fn encrypted_streams_survive_cuts_on_both_sides() {
    survive_cuts(true);
}

/// An snet client by hand over a blocking socket, for the failure paths.
struct RawSnet {
    stream: TcpStream,
    session: Session,
}

const PLAIN: SnetSettings = SnetSettings {
    encrypt: false,
    buffer: 64 * 1024,
};

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(common::DEADLINE)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

impl RawSnet {
    fn open(addr: SocketAddr) -> RawSnet {
        let mut stream = connect(addr);
        let private = 0x5eed_0000_0000_0001;
        stream.write_all(&Session::request(private)).unwrap();
        let mut reply = [0u8; REPLY_LEN];
        stream.read_exact(&mut reply).unwrap();
        let session = Session::connect(private, &reply, PLAIN).unwrap();
        RawSnet { stream, session }
    }

    fn send(&mut self, bytes: &[u8]) {
        assert_eq!(self.session.commit(&[IoSlice::new(bytes)]), bytes.len());
        self.flush();
    }

    fn flush(&mut self) {
        let out = self.session.unsent().concat();
        self.stream.write_all(&out).unwrap();
        self.session.sent(out.len());
    }

    fn recv(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf).unwrap();
        self.session.received(&mut buf);
        buf
    }

    /// Sends a reconnect request on a new link; `None` if the gateway
    /// closes it instead of replying.
    fn try_resume(&mut self, addr: SocketAddr, request: [u8; REQUEST_LEN]) -> Option<TcpStream> {
        let mut stream = connect(addr);
        stream.write_all(&request).unwrap();
        let mut reply = [0u8; REPLY_LEN];
        match stream.read_exact(&mut reply) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
                ) =>
            {
                return None
            }
            Err(e) => panic!("no reply and no close: {e}"),
        }
        let word = |i: usize| u64::from_le_bytes(reply[i..i + 8].try_into().unwrap());
        self.session.resume(word(0), word(8)).unwrap();
        Some(stream)
    }

    fn resume(&mut self, addr: SocketAddr) -> bool {
        let req = self.session.resume_request();
        match self.try_resume(addr, req) {
            Some(stream) => {
                self.stream = stream;
                self.flush();
                true
            }
            None => false,
        }
    }

    fn ping(&mut self) {
        self.send(&Command::Ping.to_bytes());
        assert_eq!(self.recv(9), Command::Ping.to_bytes().to_vec());
    }
}

fn client_snet_gateway(wait: Duration, buffer: usize) -> TestGateway {
    let mut cfg = test_config();
    cfg.client.snet = Some(SnetConfig {
        settings: SnetSettings {
            encrypt: false,
            buffer,
        },
        init_timeout: Duration::from_millis(300),
        wait_timeout: wait,
    });
    TestGateway::start(cfg)
}

/// A client with a vconn to server 1.
fn dialled(gw: &TestGateway, server: &mut RawPeer) -> (RawSnet, u32) {
    let mut c = RawSnet::open(gw.client_addr);
    c.send(&Command::Dial { remote_id: 1 }.to_bytes());
    let (conn_id, _) = server.expect_connect();
    let accept = Command::decode(&c.recv(17)[8..]).unwrap();
    assert_eq!(
        accept,
        Command::Accept {
            conn_id,
            remote_id: 1
        }
    );
    (c, conn_id)
}

#[test]
fn a_stream_not_back_within_the_wait_timeout_is_gone_and_its_servers_told() {
    let gw = client_snet_gateway(Duration::from_millis(300), 64 * 1024);
    let mut server = RawPeer::server(gw.server_addr, 1, KEY);
    let (mut c, conn_id) = dialled(&gw, &mut server);
    c.ping();
    c.stream.shutdown(Shutdown::Both).unwrap();
    // The server hears nothing while the stream waits...
    server
        .stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(server.stream.read(&mut byte).is_err(), "told too early");
    server
        .stream
        .set_read_timeout(Some(common::DEADLINE))
        .unwrap();
    // ... and is told once it gives up.
    assert_eq!(server.recv_cmd(), Command::Close { conn_id });
    assert!(!c.resume(gw.client_addr), "an expired stream resumed");
    let stats = gw.stop().stats();
    assert_eq!((stats.snet_expired, stats.snet_resume_unknown), (1, 1));
    assert_eq!((stats.clients, stats.vconns, stats.snet_waiting), (0, 0, 0));
}

#[test]
fn a_wrong_digest_is_refused_and_the_stream_goes_on() {
    let gw = client_snet_gateway(Duration::from_secs(10), 64 * 1024);
    let mut server = RawPeer::server(gw.server_addr, 1, KEY);
    let (mut c, conn_id) = dialled(&gw, &mut server);
    c.stream.shutdown(Shutdown::Both).unwrap();
    let mut forged = c.session.resume_request();
    forged[39] ^= 0x55;
    assert!(c.try_resume(gw.client_addr, forged).is_none());
    // Unknown stream IDs are refused too.
    let mut unknown = c.session.resume_request();
    unknown[0] = 0x77;
    assert!(c.try_resume(gw.client_addr, unknown).is_none());
    // The real owner resumes; the vconn still works both ways.
    assert!(c.resume(gw.client_addr));
    let mut frame = Vec::new();
    uniway::wire::encode_frame(&mut frame, conn_id, b"after");
    c.send(&frame);
    assert_eq!(server.recv(), common::Got::Data(conn_id, b"after".to_vec()));
    server.send_data(conn_id, b"back");
    assert_eq!(&c.recv(frame.len() - 1)[8..], b"back");
    let stats = gw.stop().stats();
    assert_eq!(stats.snet_resume_bad_digest, 1);
    assert_eq!(stats.snet_resume_unknown, 1);
    assert_eq!(stats.snet_resumes, 1);
}

#[test]
fn a_resume_needing_more_than_the_ring_ends_the_stream_cleanly() {
    let gw = client_snet_gateway(Duration::from_secs(10), 1024);
    let mut server = RawPeer::server(gw.server_addr, 1, KEY);
    let (c, conn_id) = dialled(&gw, &mut server);
    // 4 KiB for the client, which it never reads.
    for _ in 0..4 {
        server.send_data(conn_id, &[7u8; 1024]);
    }
    server.send_cmd(Command::Ping);
    assert_eq!(server.recv_cmd(), Command::Ping);
    std::thread::sleep(Duration::from_millis(100));
    c.stream.shutdown(Shutdown::Both).unwrap();
    // It claims to have read only the Accept: 4 KiB more are missing, and
    // the gateway keeps 1 KiB.
    let mut stream = connect(gw.client_addr);
    stream.write_all(&c.session.resume_request()).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "closed without a reply");
    // The stream is gone for good: its vconn is closed for the server.
    assert_eq!(server.recv_cmd(), Command::Close { conn_id });
    let stats = gw.stop().stats();
    assert_eq!(stats.snet_resume_failed, 1);
    assert_eq!(stats.clients, 0);
}

#[test]
fn a_reconnect_replaces_a_link_still_up() {
    let gw = client_snet_gateway(Duration::from_secs(10), 64 * 1024);
    let mut server = RawPeer::server(gw.server_addr, 1, KEY);
    let (mut c, conn_id) = dialled(&gw, &mut server);
    let mut old = c.stream.try_clone().unwrap();
    assert!(c.resume(gw.client_addr));
    // The old link is closed by the gateway; the new one carries the vconn.
    let mut buf = [0u8; 16];
    assert!(matches!(old.read(&mut buf), Ok(0) | Err(_)));
    server.send_data(conn_id, b"new link");
    assert_eq!(&c.recv(16)[8..], b"new link");
    c.ping();
    let stats = gw.stop().stats();
    assert_eq!(stats.snet_resumes, 1);
    assert_eq!(stats.clients, 1);
}

#[test]
fn bad_and_slow_requests_close_only_their_link() {
    let gw = client_snet_gateway(Duration::from_secs(10), 64 * 1024);
    let mut good = RawSnet::open(gw.client_addr);
    // A zero public key.
    let mut zero = connect(gw.client_addr);
    zero.write_all(&[0u8; REQUEST_LEN]).unwrap();
    let mut rest = Vec::new();
    let _ = zero.read_to_end(&mut rest);
    assert!(rest.is_empty());
    // Half a request, then nothing: closed after the init timeout.
    let mut slow = connect(gw.client_addr);
    slow.write_all(&Session::request(99)[..20]).unwrap();
    let start = Instant::now();
    let _ = slow.read_to_end(&mut rest);
    assert!(start.elapsed() >= Duration::from_millis(250));
    good.ping();
    let stats = gw.stop().stats();
    assert_eq!(stats.snet_bad_requests, 1);
    assert_eq!(stats.handshake_timeouts, 1);
    assert_eq!(stats.snet_handshakes, 1);
}

/// Drives `d` until endpoint `key` is closed; returns why.
fn until_closed(
    d: &mut EndpointDriver,
    poll: &mut Poll,
    key: usize,
    mut tick: impl FnMut(),
) -> EndpointError {
    let mut events = Events::with_capacity(64);
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < common::DEADLINE,
            "endpoint {key} still alive"
        );
        tick();
        poll.poll(&mut events, Some(Duration::from_millis(5)))
            .unwrap();
        for ev in events.iter() {
            d.handle_event(ev);
        }
        d.handle_timeout(poll.registry(), Instant::now());
        while let Some(ev) = d.poll_event() {
            if let DriverEvent::Closed(k, e) = ev {
                if k == key {
                    return e;
                }
            }
        }
    }
}

fn snet_client(d: &mut EndpointDriver, poll: &Poll, addr: SocketAddr, give_up: Duration) -> usize {
    let mut cfg = endpoint_config(false, 0);
    if let Some(s) = &mut cfg.snet {
        s.settings.buffer = 64 * 1024;
        s.give_up_after = give_up;
    }
    d.connect(poll.registry(), addr, Role::Client, cfg, Instant::now())
        .unwrap()
}

#[test]
fn an_endpoint_whose_stream_expired_fails_with_a_typed_error() {
    let gw = client_snet_gateway(Duration::from_millis(200), 64 * 1024);
    let proxy = CutProxy::start(gw.client_addr);
    let mut poll = Poll::new().unwrap();
    let mut d = EndpointDriver::new(TokenRange { start: 0, len: 8 });
    let key = snet_client(&mut d, &poll, proxy.addr, Duration::from_secs(5));
    // Wait for the stream, then take the network away for longer than the
    // gateway waits.
    let start = Instant::now();
    while proxy.links() == 0 || start.elapsed() < Duration::from_millis(50) {
        assert!(start.elapsed() < common::DEADLINE);
        let mut events = Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_millis(5)))
            .unwrap();
        for ev in events.iter() {
            d.handle_event(ev);
        }
        d.handle_timeout(poll.registry(), Instant::now());
    }
    proxy.hold(true);
    proxy.cut();
    let back_at = Instant::now() + Duration::from_millis(500);
    let e = until_closed(&mut d, &mut poll, key, || {
        if Instant::now() >= back_at {
            proxy.hold(false);
        }
    });
    assert_eq!(e, EndpointError::Snet(SnetError::UnknownStream));
    assert!(e.to_string().contains("unknown snet stream"), "{e}");
    let stats = gw.stop().stats();
    assert_eq!((stats.snet_expired, stats.snet_resume_unknown), (1, 1));
}

#[test]
fn an_endpoint_gives_up_redialling_after_its_time() {
    let gw = client_snet_gateway(Duration::from_secs(10), 64 * 1024);
    let proxy = CutProxy::start(gw.client_addr);
    let mut poll = Poll::new().unwrap();
    let mut d = EndpointDriver::new(TokenRange { start: 0, len: 8 });
    let key = snet_client(&mut d, &poll, proxy.addr, Duration::from_millis(300));
    let start = Instant::now();
    let e = until_closed(&mut d, &mut poll, key, || {
        if proxy.links() > 0 && start.elapsed() > Duration::from_millis(50) {
            proxy.hold(true);
            proxy.cut();
        }
    });
    assert_eq!(e, EndpointError::SnetGaveUp);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn a_flood_of_reconnects_for_one_stream_is_refused() {
    let gw = client_snet_gateway(Duration::from_secs(10), 64 * 1024);
    let mut c = RawSnet::open(gw.client_addr);
    let mut refused = 0;
    for _ in 0..48 {
        if !c.resume(gw.client_addr) {
            refused += 1;
        }
    }
    assert!(refused > 0, "48 reconnects at once all accepted");
    // The stream itself is fine once the flood stops.
    std::thread::sleep(Duration::from_millis(300));
    assert!(c.resume(gw.client_addr));
    c.ping();
    let stats = gw.stop().stats();
    assert_eq!(stats.snet_resume_flood, refused);
}

/// The blocking API over snet: a server and a client, each behind a
/// cutting proxy, exchange numbered messages on two vconns while links
/// are cut on both sides; `send` and `recv` only ever see a pause.
#[test]
fn the_blocking_api_resumes_transparently() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use uniway::endpoint::{Client, Server};
    let gw = TestGateway::start(gateway_config(true, Duration::from_secs(10)));
    let client_proxy = Arc::new(CutProxy::start(gw.client_addr));
    let server_proxy = Arc::new(CutProxy::start(gw.server_addr));
    let server = Server::connect(server_proxy.addr, endpoint_config(true, 1)).unwrap();
    let echo = std::thread::spawn(move || {
        let mut threads = Vec::new();
        for _ in 0..2 {
            let vconn = server.accept().unwrap();
            threads.push(std::thread::spawn(move || {
                let mut next = 0;
                while let Ok(msg) = vconn.recv() {
                    assert_eq!(seq_of(&msg), next, "at the server");
                    next += 1;
                    vconn.send(&msg).unwrap();
                }
                next
            }));
        }
        let counts: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        (server, counts)
    });
    let client = Client::connect(client_proxy.addr, endpoint_config(true, 0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let cutter = {
        let (stop, cp, sp) = (stop.clone(), client_proxy.clone(), server_proxy.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                if i % 2 == 0 {
                    cp.cut()
                } else {
                    sp.cut()
                }
                i += 1;
            }
        })
    };
    // Each vconn sends in rounds of 8 (then takes their echoes) until 30
    // links were cut.
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let vconn = client.dial(1).unwrap();
            let (cp, sp) = (client_proxy.clone(), server_proxy.clone());
            std::thread::spawn(move || {
                let mut seq = 0;
                while cp.cuts() + sp.cuts() < 30 {
                    for _ in 0..8 {
                        vconn.send(&message(seq)).unwrap();
                        seq += 1;
                    }
                    for want in seq - 8..seq {
                        let got = vconn.recv_timeout(common::DEADLINE).unwrap();
                        assert_eq!(seq_of(&got), want, "back at the client");
                    }
                }
                seq
            })
        })
        .collect();
    let sent: Vec<u32> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    cutter.join().unwrap();
    let cuts = client_proxy.cuts() + server_proxy.cuts();
    drop(client);
    let (server, mut counts) = echo.join().unwrap();
    let mut sent_sorted = sent.clone();
    sent_sorted.sort_unstable();
    counts.sort_unstable();
    assert_eq!(counts, sent_sorted);
    drop(server);
    let stats = gw.stop().stats();
    assert!(
        cuts >= 30 && stats.snet_resumes >= 15,
        "{cuts} cuts, {stats:?}"
    );
    eprintln!(
        "blocking: {cuts} cuts, {} resumes, {sent:?} messages each way",
        stats.snet_resumes
    );
}

#[test]
fn frames_for_a_waiting_stream_queue_within_the_usual_caps() {
    let mut cfg = test_config();
    cfg.client.send_queue_msgs = 20;
    cfg.client.snet = Some(SnetConfig {
        settings: PLAIN,
        init_timeout: Duration::from_secs(2),
        wait_timeout: Duration::from_secs(10),
    });
    let gw = TestGateway::start(cfg);
    let mut server = RawPeer::server(gw.server_addr, 1, KEY);
    let (mut c, conn_id) = dialled(&gw, &mut server);
    c.stream.shutdown(Shutdown::Both).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // Ten frames wait for the client's return...
    for i in 0..10u8 {
        server.send_data(conn_id, &[i; 10]);
    }
    server.send_cmd(Command::Ping);
    assert_eq!(server.recv_cmd(), Command::Ping);
    assert!(c.resume(gw.client_addr));
    for i in 0..10u8 {
        assert_eq!(&c.recv(18)[8..], &[i; 10], "frame {i} after the resume");
    }
    // ... but past the cap the waiting client is a slow consumer.
    c.stream.shutdown(Shutdown::Both).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..30u8 {
        server.send_data(conn_id, &[i; 10]);
    }
    assert_eq!(server.recv_cmd(), Command::Close { conn_id });
    let stats = gw.stop().stats();
    assert_eq!((stats.slow_consumers, stats.clients), (1, 0));
}
