//! The WebSocket listener over loopback, with tungstenite as the client:
//! frames in binary messages both ways (several in one message, one split
//! over two), one binary message per frame to the client, text refused,
//! path and Origin checked, ping, the close handshake, a message larger
//! than MaxPacket refused, and WSS.
#![cfg(feature = "ws")]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use common::{test_config, Got, RawPeer, TestGateway, DEADLINE};
use mio::net::TcpListener;
use mio::Poll;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};
use uniway::transport::WsSettings;
use uniway::wire::{self, Command};
use uniway::{Side, TokenRange};

/// A gateway with a WebSocket client listener (its address is
/// `client_addr`) and a plain server listener.
fn ws_gateway(settings: WsSettings, tls: Option<Arc<rustls::ServerConfig>>) -> TestGateway {
    let mut cfg = test_config();
    cfg.max_packet = settings.max_packet;
    TestGateway::start_with(cfg, |gw, registry| {
        let bind = || TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let ws = gw.listen_ws(registry, bind(), settings, tls).unwrap();
        let server = gw.listen(registry, Side::Server, bind()).unwrap();
        (ws, server)
    })
}

fn settings() -> WsSettings {
    WsSettings {
        path: "/game".into(),
        origins: Vec::new(),
        max_packet: 64 * 1024,
    }
}

fn frame(conn_id: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    wire::encode_frame(&mut f, conn_id, msg);
    f
}

type Client = WebSocket<TcpStream>;

/// A client over the upgrade at `path`; the error is tungstenite's own.
#[allow(clippy::result_large_err)]
fn connect(addr: SocketAddr, path: &str, origin: Option<&str>) -> tungstenite::Result<Client> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tungstenite::client::client(req, tcp)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(e) => e,
            tungstenite::HandshakeError::Interrupted(_) => panic!("blocking client interrupted"),
        })
}

/// The next binary message, which must hold exactly one frame.
fn recv_frame<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>) -> Got {
    loop {
        match ws.read().expect("no message from the gateway") {
            Message::Binary(b) => {
                let f = wire::decode_frame(&b, u32::MAX)
                    .unwrap()
                    .complete()
                    .unwrap();
                assert_eq!(f.wire_len(), b.len(), "one frame per message");
                return if f.is_command() {
                    Got::Cmd(Command::decode(f.message).unwrap())
                } else {
                    Got::Data(f.conn_id, f.message.to_vec())
                };
            }
            Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn dial<S: std::io::Read + std::io::Write>(ws: &mut WebSocket<S>, remote: u32) -> u32 {
    ws.send(Message::binary(
        Command::Dial { remote_id: remote }.to_bytes().to_vec(),
    ))
    .unwrap();
    match recv_frame(ws) {
        Got::Cmd(Command::Accept { conn_id, .. }) => conn_id,
        other => panic!("expected Accept, got {other:?}"),
    }
}

#[test]
fn frames_travel_in_binary_messages_both_ways() {
    let gw = ws_gateway(settings(), None);
    let mut server = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut ws = connect(gw.client_addr, "/game", None).unwrap();
    let v = dial(&mut ws, 1);
    assert_eq!(server.expect_connect().0, v);
    // Two frames in one message, then one frame split over two messages.
    let two = [frame(v, b"one"), frame(v, b"two")].concat();
    ws.send(Message::binary(two)).unwrap();
    let split = frame(v, &[7u8; 3000]);
    ws.send(Message::binary(split[..1000].to_vec())).unwrap();
    ws.send(Message::binary(split[1000..].to_vec())).unwrap();
    assert_eq!(server.recv(), Got::Data(v, b"one".to_vec()));
    assert_eq!(server.recv(), Got::Data(v, b"two".to_vec()));
    assert_eq!(server.recv(), Got::Data(v, vec![7u8; 3000]));
    // To the client: every frame its own message, however the server's
    // frames were coalesced.
    let mut burst = Vec::new();
    for i in 0..20u8 {
        burst.extend(frame(v, &[i; 100]));
    }
    burst.extend(frame(v, &[9u8; 60_000]));
    server.send(&burst);
    for i in 0..20u8 {
        assert_eq!(recv_frame(&mut ws), Got::Data(v, vec![i; 100]));
    }
    assert_eq!(recv_frame(&mut ws), Got::Data(v, vec![9u8; 60_000]));
    // A WebSocket ping is answered.
    ws.send(Message::Ping(b"hi".to_vec().into())).unwrap();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"hi"),
        other => panic!("expected Pong, got {other:?}"),
    }
    // The close handshake: the client closes, the gateway answers, and the
    // server hears its vconn closed.
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake: {e}"),
        }
    }
    assert_eq!(server.recv(), Got::Cmd(Command::Close { conn_id: v }));
}

#[test]
fn text_oversize_wrong_path_and_origin_are_refused_alone() {
    let mut s = settings();
    s.origins = vec!["https://game.example".into()];
    let gw = ws_gateway(s, None);
    let mut server = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut good = connect(gw.client_addr, "/game", Some("https://game.example")).unwrap();
    let v = dial(&mut good, 1);
    assert_eq!(server.expect_connect().0, v);
    // Wrong path, wrong origin, no origin: the upgrade is refused.
    assert!(connect(gw.client_addr, "/other", Some("https://game.example")).is_err());
    assert!(connect(gw.client_addr, "/game", Some("https://evil.example")).is_err());
    assert!(connect(gw.client_addr, "/game", None).is_err());
    // A text message, and a binary message larger than a frame may be.
    for bad in [
        Message::text("hello"),
        Message::binary(vec![0u8; 64 * 1024 + 100]),
    ] {
        let mut ws = connect(gw.client_addr, "/game", Some("https://game.example")).unwrap();
        let _ = ws.send(bad);
        let ended = loop {
            match ws.read() {
                Ok(Message::Close(_)) => {}
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => break true,
            }
        };
        assert!(ended);
    }
    // The good client never noticed.
    good.send(Message::binary(frame(v, b"still here"))).unwrap();
    assert_eq!(server.recv(), Got::Data(v, b"still here".to_vec()));
    let stats = gw.stop().stats();
    assert!(stats.clients_accepted >= 6);
}

#[cfg(feature = "tls")]
#[test]
fn wss_carries_frames_over_tls() {
    use rcgen::{CertificateParams, KeyPair};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let gw = ws_gateway(settings(), Some(Arc::new(server_cfg)));
    let mut server = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap())
        .unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(gw.client_addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let conn = rustls::ClientConnection::new(
        Arc::new(client_cfg),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let tls = rustls::StreamOwned::new(conn, tcp);
    let req = format!("wss://localhost:{}/game", gw.client_addr.port())
        .into_client_request()
        .unwrap();
    let (mut ws, _) = tungstenite::client::client(req, tls).unwrap();
    let v = dial(&mut ws, 1);
    assert_eq!(server.expect_connect().0, v);
    ws.send(Message::binary(frame(v, b"over wss"))).unwrap();
    assert_eq!(server.recv(), Got::Data(v, b"over wss".to_vec()));
    server.send_data(v, &[3u8; 20_000]);
    assert_eq!(recv_frame(&mut ws), Got::Data(v, vec![3u8; 20_000]));
}

/// The endpoint driver's WebSocket client: dials, sends and receives
/// through the WebSocket listener.
#[test]
fn endpoint_driver_clients_speak_websocket() {
    use uniway::endpoint::driver::{DriverEvent, EndpointDriver};
    use uniway::endpoint::{EndpointConfig, Event};
    let gw = ws_gateway(settings(), None);
    let mut server = RawPeer::server(gw.server_addr, 3, b"test-key");
    let echo = std::thread::spawn(move || {
        let (v, _) = server.expect_connect();
        for _ in 0..3 {
            match server.recv() {
                Got::Data(c, m) if c == v => server.send_data(v, &m),
                other => panic!("server got {other:?}"),
            }
        }
        server
    });
    let mut poll = Poll::new().unwrap();
    let mut d = EndpointDriver::new(TokenRange { start: 0, len: 16 });
    let k = d
        .connect_ws(
            poll.registry(),
            gw.client_addr,
            "/game",
            EndpointConfig::default(),
            None,
            std::time::Instant::now(),
        )
        .unwrap();
    let mut replies = Vec::new();
    common::drive(&mut d, &mut poll, "echoes over WebSocket", |d, ev| {
        match ev {
            DriverEvent::Endpoint(_, Event::Ready) => {
                d.endpoint(k).unwrap().dial(3).unwrap();
            }
            DriverEvent::Endpoint(_, Event::Dialed { conn_id, .. }) => {
                let ep = d.endpoint(k).unwrap();
                for m in [&b"a"[..], &[5u8; 60_000][..], b"c"] {
                    ep.send(conn_id, m).unwrap();
                }
            }
            DriverEvent::Endpoint(_, Event::Message { data, .. }) => replies.push(data),
            other => panic!("unexpected {other:?}"),
        }
        replies.len() == 3
    });
    assert_eq!(
        replies,
        vec![b"a".to_vec(), vec![5u8; 60_000], b"c".to_vec()]
    );
    drop(echo.join().unwrap());
}
