//! PROXY protocol on the listeners, over loopback: v1 and v2 (TCP4, TCP6,
//! LOCAL), headers split across reads and followed at once by frames,
//! garbage, a missing header, a header that never finishes. The address in
//! the header is the peer's for `lookup conns` and the per-source limits;
//! a bad header closes that connection only.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{pair, test_config, Got, RawPeer, TestGateway, DEADLINE};
use uniway::wire::Command;
use uniway::Config;

fn proxied() -> Config {
    let mut cfg = test_config();
    cfg.client.proxy_protocol = true;
    cfg.server.proxy_protocol = true;
    cfg.handshake_timeout = Duration::from_millis(500);
    cfg
}

/// A v2 header: TCP over IPv4 (`0x11`) or IPv6 (`0x21`), or LOCAL.
fn v2(family: u8, src: &[u8], dst: &[u8], ports: (u16, u16), local: bool) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(if local { 0x20 } else { 0x21 });
    h.push(if local { 0x00 } else { family });
    let body: Vec<u8> = if local {
        Vec::new()
    } else {
        [src, dst, &ports.0.to_be_bytes(), &ports.1.to_be_bytes()].concat()
    };
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(&body);
    h
}

/// A client through a balancer: the header, then the usual bytes.
fn client_via(gw: &TestGateway, header: &[u8]) -> RawPeer {
    let mut s = TcpStream::connect(gw.client_addr).unwrap();
    s.write_all(header).unwrap();
    RawPeer::from_stream(s)
}

/// The peer address the gateway shows for each client, via `conns()`.
fn client_peers(gw: TestGateway) -> Vec<String> {
    let gw = gw.stop();
    gw.conns(std::time::Instant::now())
        .into_iter()
        .filter(|c| c.side == uniway::Side::Client)
        .map(|c| c.peer.to_string())
        .collect()
}

#[test]
fn v1_and_v2_headers_give_the_real_address_and_frames_flow() {
    let gw = TestGateway::start(proxied());
    let server_header = b"PROXY TCP4 10.1.1.1 10.0.0.1 5000 4001\r\n";
    let mut server = {
        let mut s = TcpStream::connect(gw.server_addr).unwrap();
        s.write_all(server_header).unwrap();
        RawPeer::from_stream(s)
    };
    // The challenge comes only after the header.
    let mut challenge = [0u8; 8];
    server.stream.read_exact(&mut challenge).unwrap();
    let resp = uniway::wire::Challenge(challenge).respond(b"test-key", 1);
    server.send(&resp.to_bytes());

    let headers: Vec<Vec<u8>> = vec![
        b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 4000\r\n".to_vec(),
        b"PROXY TCP6 2001:db8::7 2001:db8::1 51001 4000\r\n".to_vec(),
        v2(
            0x11,
            &[198, 51, 100, 9],
            &[10, 0, 0, 1],
            (40000, 4000),
            false,
        ),
        v2(
            0x21,
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
            &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            (40001, 4000),
            false,
        ),
    ];
    // Kept open until the gateway is asked about them.
    let mut open = Vec::new();
    for h in &headers {
        // The header and a Dial in one write: nothing after the header is
        // lost.
        let mut bytes = h.clone();
        bytes.extend_from_slice(&Command::Dial { remote_id: 1 }.to_bytes());
        let mut c = client_via(&gw, &bytes);
        let conn_id = match c.recv_cmd() {
            Command::Accept { conn_id, .. } => conn_id,
            other => panic!("expected Accept, got {other:?}"),
        };
        assert_eq!(server.expect_connect().0, conn_id);
        c.send_data(conn_id, b"through the balancer");
        assert_eq!(
            server.recv(),
            Got::Data(conn_id, b"through the balancer".to_vec())
        );
        open.push(c);
    }
    let mut peers = client_peers(gw);
    drop(open);
    peers.sort();
    assert_eq!(
        peers,
        [
            "198.51.100.9:40000",
            "203.0.113.7:51000",
            "[2001:db8::7]:51001",
            "[2001:db8::9]:40001"
        ]
    );
}

#[test]
fn a_header_trickled_a_byte_at_a_time_is_taken() {
    let gw = TestGateway::start(proxied());
    let mut open = Vec::new();
    for h in [
        b"PROXY TCP4 203.0.113.8 10.0.0.1 51000 4000\r\n".to_vec(),
        v2(
            0x11,
            &[198, 51, 100, 10],
            &[10, 0, 0, 1],
            (40000, 4000),
            false,
        ),
    ] {
        let mut s = TcpStream::connect(gw.client_addr).unwrap();
        s.set_nodelay(true).unwrap();
        for b in &h {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(3));
        }
        let mut c = RawPeer::from_stream(s);
        c.send_cmd(Command::Ping);
        assert_eq!(c.recv_cmd(), Command::Ping);
        open.push(c);
    }
    let mut peers = client_peers(gw);
    drop(open);
    peers.sort();
    assert_eq!(peers, ["198.51.100.10:40000", "203.0.113.8:51000"]);
}

#[test]
fn local_and_unknown_keep_the_balancers_address() {
    let gw = TestGateway::start(proxied());
    let mut open = Vec::new();
    for h in [b"PROXY UNKNOWN\r\n".to_vec(), v2(0, &[], &[], (0, 0), true)] {
        let mut c = client_via(&gw, &h);
        c.send_cmd(Command::Ping);
        assert_eq!(c.recv_cmd(), Command::Ping);
        open.push(c);
    }
    let peers = client_peers(gw);
    drop(open);
    assert_eq!(peers.len(), 2);
    assert!(
        peers.iter().all(|p| p.starts_with("127.0.0.1:")),
        "{peers:?}"
    );
}

#[test]
fn a_missing_bad_or_slow_header_closes_only_that_connection() {
    let gw = TestGateway::start(proxied());
    let mut server = {
        let mut s = TcpStream::connect(gw.server_addr).unwrap();
        s.write_all(&v2(0x11, &[10, 9, 9, 9], &[10, 0, 0, 1], (1, 2), false))
            .unwrap();
        let mut p = RawPeer::from_stream(s);
        let mut challenge = [0u8; 8];
        p.stream.read_exact(&mut challenge).unwrap();
        p.send(
            &uniway::wire::Challenge(challenge)
                .respond(b"test-key", 1)
                .to_bytes(),
        );
        p
    };
    let mut good = client_via(&gw, b"PROXY TCP4 203.0.113.9 10.0.0.1 1 2\r\n");
    let conn_id = good.dial(1);
    assert_eq!(server.expect_connect().0, conn_id);
    let offenders: Vec<Vec<u8>> = vec![
        // A client that speaks the protocol at once, no header.
        Command::Ping.to_bytes().to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n".to_vec(),
        // A v1 line that never ends within 107 bytes.
        [&b"PROXY TCP4 "[..], &[b'1'; 120]].concat(),
    ];
    for bytes in &offenders {
        let mut bad = client_via(&gw, bytes);
        bad.expect_closed();
    }
    // Half a header, then silence: closed at the handshake timeout.
    let mut slow = client_via(&gw, b"PROXY TCP4 203.0.");
    let start = std::time::Instant::now();
    slow.expect_closed();
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    assert!(start.elapsed() < DEADLINE);
    // The good pair never noticed.
    good.send_data(conn_id, b"still here");
    assert_eq!(server.recv(), Got::Data(conn_id, b"still here".to_vec()));
    let stats = gw.stop().stats();
    assert_eq!(stats.bad_proxy_headers, 5);
    assert_eq!(stats.proxy_headers, 2);
}

#[test]
fn per_source_limits_count_the_address_in_the_header() {
    let mut cfg = proxied();
    cfg.max_clients_per_ip = Some(2);
    let gw = TestGateway::start(cfg);
    // Every connection comes from 127.0.0.1 (the balancer); the headers
    // say two players, one of whom opens three connections.
    let a = b"PROXY TCP4 203.0.113.1 10.0.0.1 1000 4000\r\n";
    let b = b"PROXY TCP4 203.0.113.2 10.0.0.1 1000 4000\r\n";
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut c = client_via(&gw, a);
        c.send_cmd(Command::Ping);
        assert_eq!(c.recv_cmd(), Command::Ping);
        kept.push(c);
    }
    let mut third = client_via(&gw, a);
    third.expect_closed();
    let mut other = client_via(&gw, b);
    other.send_cmd(Command::Ping);
    assert_eq!(other.recv_cmd(), Command::Ping);
    // One of the first player's leaves: room for one more.
    drop(kept.pop());
    std::thread::sleep(Duration::from_millis(200));
    let mut again = client_via(&gw, a);
    again.send_cmd(Command::Ping);
    assert_eq!(again.recv_cmd(), Command::Ping);
    let stats = gw.stop().stats();
    assert_eq!(stats.refused_per_ip, 1);
}

#[test]
fn without_the_flag_nothing_changes() {
    let gw = TestGateway::start(test_config());
    let (mut server, mut client, conn_id, _) = pair(&gw, 1);
    client.send_data(conn_id, b"plain");
    assert_eq!(server.recv(), Got::Data(conn_id, b"plain".to_vec()));
}
