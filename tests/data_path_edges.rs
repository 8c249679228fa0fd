//! The edges of the data path over real loopback sockets, one test per way
//! it once went wrong: a server reset mid-frame, a trickling server, the
//! last bytes arriving with the FIN (both sides), a sender paused by the
//! gateway, conn ID reuse, and a Ping flood from a peer that reads nothing.
//! (Drain under input is in `fastway_cli.rs`, through the real command.)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{pair, test_config, Got, RawPeer, TestGateway, DEADLINE};
use mio::{Events, Poll};
use uniway::wire::{self, Challenge, Command, CHALLENGE_LEN};
use uniway::{Gateway, Side, TokenRange};

fn frame(conn_id: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    wire::encode_frame(&mut f, conn_id, msg);
    f
}

/// Drops `stream` with a reset (RST) instead of an orderly FIN.
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

#[test]
fn server_reset_mid_frame_gives_the_client_no_invented_bytes() {
    let gw = TestGateway::start(test_config());
    let (mut server, mut client, v, _) = pair(&gw, 1);
    let f = frame(v, &[0x77; 300_000]);
    server.send(&f[..100_000]);
    std::thread::sleep(Duration::from_millis(100));
    reset(server.stream);
    // The next thing the client hears is that the vconn closed.
    assert_eq!(client.recv(), Got::Cmd(Command::Close { conn_id: v }));
    client.send_cmd(Command::Ping);
    assert_eq!(
        client.recv_cmd(),
        Command::Ping,
        "the client stays connected"
    );
    let stats = gw.stop().stats();
    assert_eq!(stats.partial_frames_dropped, 1);
}

#[test]
fn a_trickling_server_does_not_delay_other_servers_traffic() {
    let gw = TestGateway::start(test_config());
    let mut a = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut b = RawPeer::server(gw.server_addr, 2, b"test-key");
    let mut x = RawPeer::client(gw.client_addr);
    let mut y = RawPeer::client(gw.client_addr);
    let va = x.dial(1);
    a.expect_connect();
    let vbx = x.dial(2);
    b.expect_connect();
    let vby = y.dial(2);
    b.expect_connect();
    let big = frame(va, &[5; 200_000]);
    a.send(&big[..60_000]);
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    b.send_data(vbx, b"to x");
    b.send_data(vby, b"to y");
    assert_eq!(x.recv(), Got::Data(vbx, b"to x".to_vec()));
    assert_eq!(y.recv(), Got::Data(vby, b"to y".to_vec()));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "B's frames waited {:?} behind A's partial frame",
        start.elapsed()
    );
    a.send(&big[60_000..]);
    assert_eq!(x.recv(), Got::Data(va, vec![5; 200_000]));
}

/// A gateway driven step by step from the test's thread, so that bytes and
/// a FIN can be made to arrive before it looks: one readiness event.
struct Stepped {
    poll: Poll,
    events: Events,
    gw: Gateway,
}

impl Stepped {
    fn new() -> (Stepped, std::net::SocketAddr, std::net::SocketAddr) {
        let poll = Poll::new().unwrap();
        let mut gw = Gateway::new(test_config(), TokenRange { start: 0, len: 64 }).unwrap();
        let bind = || uniway::listen::bind("127.0.0.1:0", false).unwrap();
        let c = gw.listen(poll.registry(), Side::Client, bind()).unwrap();
        let s = gw.listen(poll.registry(), Side::Server, bind()).unwrap();
        let events = Events::with_capacity(64);
        (Stepped { poll, events, gw }, c, s)
    }

    fn step(&mut self) {
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(20)))
            .unwrap();
        let now = Instant::now();
        for ev in self.events.iter() {
            self.gw.handle_event(self.poll.registry(), ev, now);
        }
        self.gw.handle_timeout(self.poll.registry(), Instant::now());
    }

    fn steps(&mut self, n: usize) {
        for _ in 0..n {
            self.step();
        }
    }

    /// Reads the next frame from `s`, stepping the gateway meanwhile.
    fn recv(&mut self, s: &mut TcpStream, buf: &mut Vec<u8>, within: Duration) -> Option<Got> {
        s.set_nonblocking(true).unwrap();
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(wire::Status::Complete(f)) = wire::decode_frame(buf, u32::MAX) {
                let got = match f.is_command() {
                    true => Got::Cmd(Command::decode(f.message).unwrap()),
                    false => Got::Data(f.conn_id, f.message.to_vec()),
                };
                let n = f.wire_len();
                buf.drain(..n);
                return Some(got);
            }
            self.step();
            let mut chunk = [0u8; 4096];
            if let Ok(n) = s.read(&mut chunk) {
                buf.extend_from_slice(&chunk[..n]);
            }
        }
        None
    }
}

/// A server (ID 1) and a client with a vconn between them, set up by
/// stepping the gateway: (server, client, conn ID).
fn stepped_pair(
    g: &mut Stepped,
    c: std::net::SocketAddr,
    s: std::net::SocketAddr,
) -> (TcpStream, TcpStream, u32) {
    let mut server = TcpStream::connect(s).unwrap();
    g.steps(3);
    let mut ch = [0u8; CHALLENGE_LEN];
    server.read_exact(&mut ch).unwrap();
    server
        .write_all(&Challenge(ch).respond(b"test-key", 1).to_bytes())
        .unwrap();
    let mut client = TcpStream::connect(c).unwrap();
    g.steps(3);
    client
        .write_all(&Command::Dial { remote_id: 1 }.to_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let Some(Got::Cmd(Command::Accept { conn_id, .. })) = g.recv(&mut client, &mut buf, DEADLINE)
    else {
        panic!("no Accept");
    };
    let mut sbuf = Vec::new();
    let connect = g.recv(&mut server, &mut sbuf, DEADLINE);
    assert!(matches!(connect, Some(Got::Cmd(Command::Connect { .. }))));
    (server, client, conn_id)
}

#[test]
fn last_bytes_and_fin_together_are_both_seen_from_a_client() {
    let (mut g, c, s) = Stepped::new();
    let (mut server, mut client, v) = stepped_pair(&mut g, c, s);
    // Data and FIN arrive before the gateway looks again.
    client.write_all(&frame(v, b"last words")).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut buf = Vec::new();
    let within = Duration::from_secs(3);
    assert_eq!(
        g.recv(&mut server, &mut buf, within),
        Some(Got::Data(v, b"last words".to_vec()))
    );
    assert_eq!(
        g.recv(&mut server, &mut buf, within),
        Some(Got::Cmd(Command::Close { conn_id: v })),
        "the client's end of stream was missed"
    );
}

#[test]
fn last_bytes_and_fin_together_are_both_seen_from_a_server() {
    let (mut g, c, s) = Stepped::new();
    let (mut server, mut client, v) = stepped_pair(&mut g, c, s);
    server.write_all(&frame(v, b"goodbye")).unwrap();
    server.write_all(&Command::Ping.to_bytes()).unwrap();
    server.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut buf = Vec::new();
    let within = Duration::from_secs(3);
    assert_eq!(
        g.recv(&mut client, &mut buf, within),
        Some(Got::Data(v, b"goodbye".to_vec()))
    );
    assert_eq!(
        g.recv(&mut client, &mut buf, within),
        Some(Got::Cmd(Command::Close { conn_id: v })),
        "the server's end of stream was missed"
    );
}

#[test]
fn a_ping_and_fin_together_close_the_client() {
    let (mut g, c, s) = Stepped::new();
    let (mut server, mut client, v) = stepped_pair(&mut g, c, s);
    client.write_all(&Command::Ping.to_bytes()).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut buf = Vec::new();
    assert_eq!(
        g.recv(&mut server, &mut buf, Duration::from_secs(3)),
        Some(Got::Cmd(Command::Close { conn_id: v }))
    );
}

#[test]
fn a_client_paused_by_backpressure_is_not_closed_as_idle() {
    let mut cfg = test_config();
    // Paused for at most 1 s (half the idle timeout) before its vconn to
    // a server that still has not drained would be closed.
    cfg.client.idle_timeout = Duration::from_secs(2);
    cfg.server.send_queue_bytes = 64 * 1024;
    let gw = TestGateway::start(cfg);
    let (mut server, client, v, _) = pair(&gw, 1);
    // The client sends without pause; the server reads nothing for 0.7 s.
    let mut writer = client.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let f = frame(v, &[9; 1000]);
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_millis(1500) {
            if writer.write_all(&f).is_err() {
                break;
            }
            sent += 1;
        }
        let _ = writer.write_all(&Command::Close { conn_id: v }.to_bytes());
        sent
    });
    std::thread::sleep(Duration::from_millis(700));
    // Now the server reads everything: every frame, then the client's own
    // Close, never a Close caused by an idle timeout in between.
    let mut frames = 0u64;
    let sent = loop {
        match server.recv() {
            Got::Data(id, m) if id == v && m.len() == 1000 => frames += 1,
            Got::Cmd(Command::Close { conn_id }) if conn_id == v => break frames,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(sent, sender.join().unwrap(), "frames lost");
    drop(client);
    let stats = gw.stop().stats();
    assert_eq!(stats.idle_timeouts, 0);
    assert!(
        stats.paused > 0,
        "the client was never paused: the test proves nothing"
    );
}

#[test]
fn a_conn_id_is_not_reused_while_its_old_owner_may_still_send() {
    let gw = TestGateway::start(test_config());
    let (mut server, client_a, old, _) = pair(&gw, 1);
    drop(client_a);
    assert_eq!(server.recv_cmd(), Command::Close { conn_id: old });
    let mut b = RawPeer::client(gw.client_addr);
    for _ in 0..300 {
        let v = b.dial(1);
        assert_ne!(v, old, "conn ID handed out again");
        assert_eq!(server.expect_connect().0, v);
        b.send_cmd(Command::Close { conn_id: v });
        assert_eq!(b.recv_cmd(), Command::Close { conn_id: v });
        assert_eq!(server.recv_cmd(), Command::Close { conn_id: v });
    }
    let live = b.dial(1);
    server.expect_connect();
    // The server, late, still writes on A's conn ID, then on B's.
    server.send_data(old, b"for A");
    server.send_data(live, b"for B");
    assert_eq!(server.recv_cmd(), Command::Close { conn_id: old });
    assert_eq!(b.recv(), Got::Data(live, b"for B".to_vec()));
}

#[test]
fn a_ping_flood_from_a_client_that_reads_nothing_is_cut_off() {
    let gw = TestGateway::start(test_config());
    let (mut server, client, v, _) = pair(&gw, 1);
    // A large frame for the client is under way, slowly, meanwhile.
    let big = frame(v, &[1; 300_000]);
    server.send(&big[..100_000]);
    // A small receive window, so the kernel's buffers soak up few answers.
    socket2::SockRef::from(&client.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    let mut writer = client.stream.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let pings = Command::Ping.to_bytes().repeat(10_000);
        for _ in 0..60 {
            if writer.write_all(&pings).is_err() {
                return;
            }
        }
    });
    assert_eq!(server.recv_cmd(), Command::Close { conn_id: v });
    flood.join().unwrap();
    // The server finishes its frame, now for a dead vconn, and goes on.
    server.send(&big[100_000..]);
    assert_eq!(server.recv_cmd(), Command::Close { conn_id: v });
    server.send_cmd(Command::Ping);
    assert_eq!(server.recv_cmd(), Command::Ping, "the server is unaffected");
    drop(client);
    let stats = gw.stop().stats();
    assert_eq!(stats.slow_consumers, 1);
}
