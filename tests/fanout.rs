//! Multicast and groups (`docs/protocol.md` §10) through the real gateway
//! on loopback, with the blocking endpoints: a room where every member
//! gets each broadcast once and in order with unicast interleaved, a
//! member that stops reading cut while the others go on, and a server
//! learning the gateway's features before using them.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{test_config, Got, RawPeer, TestGateway, DEADLINE};
use uniway::endpoint::{Client, EndpointConfig, RecvError, SendError, Server};
use uniway::wire::{Command, FEATURE_GROUPS};

fn server_cfg(id: u32) -> EndpointConfig {
    EndpointConfig {
        server_id: id,
        auth_key: b"test-key".to_vec(),
        ..EndpointConfig::default()
    }
}

#[test]
fn a_room_gets_every_broadcast_once_and_in_order_with_unicast_interleaved() {
    let gw = TestGateway::start(test_config());
    let server = Server::connect(gw.server_addr, server_cfg(1)).unwrap();
    // Nothing goes out before the gateway has said it takes fan-out.
    assert_eq!(
        server.send_to_group(1, b"too early", &[]),
        Err(SendError::Unsupported)
    );
    assert_eq!(
        server.probe_features(DEADLINE).unwrap() & FEATURE_GROUPS,
        FEATURE_GROUPS
    );
    const N: usize = 60;
    let cfg = EndpointConfig {
        recv_queue_size: 10_000,
        ..EndpointConfig::default()
    };
    let clients: Vec<Client> = (0..N)
        .map(|_| Client::connect(gw.client_addr, cfg.clone()).unwrap())
        .collect();
    let client_ends: Vec<_> = clients.iter().map(|c| c.dial(1).unwrap()).collect();
    let server_ends: Vec<_> = (0..N).map(|_| server.accept().unwrap()).collect();
    let ids: Vec<u32> = client_ends.iter().map(|v| v.conn_id()).collect();
    let by_id = |id: u32| server_ends.iter().find(|v| v.conn_id() == id).unwrap();
    server.join(1, &ids).unwrap();
    let evens: Vec<u32> = ids.iter().copied().step_by(2).collect();
    let mut expect: Vec<Vec<Vec<u8>>> = vec![Vec::new(); N];
    for round in 0..50usize {
        let skip = ids[round % N];
        let msg = format!("room {round}").into_bytes();
        server.send_to_group(1, &msg, &[skip]).unwrap();
        let multi = format!("evens {round}").into_bytes();
        server.multicast(&evens, &multi).unwrap();
        let one = ids[(round * 7) % N];
        let uni = format!("you {round}").into_bytes();
        by_id(one).send(&uni).unwrap();
        for (i, &v) in ids.iter().enumerate() {
            if v != skip {
                expect[i].push(msg.clone());
            }
            if evens.contains(&v) {
                expect[i].push(multi.clone());
            }
            if v == one {
                expect[i].push(uni.clone());
            }
        }
    }
    for (i, v) in client_ends.iter().enumerate() {
        for (k, want) in expect[i].iter().enumerate() {
            let got = v.recv_timeout(DEADLINE).unwrap();
            assert_eq!(&got, want, "member {i}, message {k}");
        }
    }
    // And nothing more.
    for v in &client_ends {
        assert_eq!(
            v.recv_timeout(Duration::from_millis(50)),
            Err(RecvError::Timeout)
        );
    }
    let stats = gw.stop().stats();
    assert_eq!(stats.group_sends, 50);
    assert_eq!(stats.multicasts, 50);
    assert_eq!(stats.frames_fanned_out as usize, 50 * (N - 1) + 50 * N / 2);
}

/// A member whose socket takes nothing is cut as a slow consumer; the
/// others receive every message, and the group loses only it.
#[test]
fn a_member_that_stops_reading_is_cut_and_the_others_keep_receiving() {
    let mut cfg = test_config();
    // Above what one turn can route to a client (a server read budget of
    // 4 x 64 KiB), far below what the stuck member is sent.
    cfg.client.send_queue_bytes = 1024 * 1024;
    let gw = TestGateway::start(cfg);
    let server = Server::connect(gw.server_addr, server_cfg(1)).unwrap();
    server.probe_features(DEADLINE).unwrap();
    let ccfg = EndpointConfig {
        recv_queue_size: 100_000,
        ..EndpointConfig::default()
    };
    let readers: Vec<Client> = (0..4)
        .map(|_| Client::connect(gw.client_addr, ccfg.clone()).unwrap())
        .collect();
    let reader_ends: Vec<_> = readers.iter().map(|c| c.dial(1).unwrap()).collect();
    // The stuck member: it dials and then never reads again.
    let mut stuck = RawPeer::client(gw.client_addr);
    let stuck_id = stuck.dial(1);
    let mut ids: Vec<u32> = reader_ends.iter().map(|v| v.conn_id()).collect();
    ids.push(stuck_id);
    let _server_ends: Vec<_> = (0..5).map(|_| server.accept().unwrap()).collect();
    server.join(2, &ids).unwrap();
    let msg = vec![0x5a; 16 * 1024];
    let started = Instant::now();
    let total = 2000;
    // Sent while the readers read, each in a thread of its own, the
    // sender keeping within 32 messages (512 KiB, under the cap) of the
    // slowest reader: 32 MiB in all, far more than the stuck member's
    // socket buffers and queue cap hold.
    let done: Vec<AtomicUsize> = (0..reader_ends.len())
        .map(|_| AtomicUsize::new(0))
        .collect();
    std::thread::scope(|scope| {
        for (v, done) in reader_ends.iter().zip(&done) {
            let msg = &msg;
            scope.spawn(move || {
                for k in 0..total {
                    let got = v
                        .recv_timeout(DEADLINE)
                        .unwrap_or_else(|e| panic!("message {k}: {e}"));
                    assert_eq!(&got, msg);
                    done.store(k + 1, Ordering::Relaxed);
                }
            });
        }
        for k in 0..total {
            let slowest = || {
                done.iter()
                    .map(|d| d.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(0)
            };
            while slowest() + 32 < k {
                assert!(
                    started.elapsed() < 4 * DEADLINE,
                    "readers stalled at {}",
                    slowest()
                );
                std::thread::sleep(Duration::from_micros(200));
            }
            server.send_to_group(2, &msg, &[]).unwrap();
        }
    });
    assert!(started.elapsed() < 4 * DEADLINE);
    // The stuck member's connection was closed by the gateway: after its
    // unread bytes (the last frame may be cut) comes the end of the stream.
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match std::io::Read::read(&mut stuck.stream, &mut sink) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no end of stream within {DEADLINE:?}: {e}"),
        }
    }
    let stats = gw.stop().stats();
    assert_eq!(stats.slow_consumers, 1);
    assert_eq!(stats.group_sends, total as u64);
}

/// A server probing a gateway that does not know the extension gets 0 and
/// keeps working: simulated here by the reply a Go gateway sends (Refuse
/// for client 0), from a hand-driven gateway side.
#[test]
fn a_gateway_without_the_extension_answers_the_probe_with_refuse() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let challenge = [1u8; 8];
        s.write_all(&challenge).unwrap();
        let mut answer = [0u8; 20];
        s.read_exact(&mut answer).unwrap();
        let mut peer = RawPeer::from_stream(s);
        // The endpoint's confirming Ping, then its probe.
        assert_eq!(peer.recv_cmd(), Command::Ping);
        peer.send_cmd(Command::Ping);
        assert_eq!(peer.recv_cmd(), Command::Dial { remote_id: 0 });
        peer.send_cmd(Command::Refuse { remote_id: 0 });
        // The server sends no fan-out command: the next thing is a Ping
        // (or the end, when the test drops it).
        peer.recv_or_end()
    });
    let server = Server::connect(addr, server_cfg(3)).unwrap();
    assert_eq!(server.probe_features(DEADLINE), Ok(0));
    assert_eq!(server.multicast(&[], b"x"), Err(SendError::Unsupported));
    assert_eq!(server.join(1, &[]), Err(SendError::Unsupported));
    drop(server);
    assert!(!matches!(fake.join().unwrap(), Some(Got::Cmd(c)) if c != Command::Ping));
}

/// The byte-by-byte examples of `docs/protocol.md` §10 are what the
/// encoders write.
#[test]
fn the_protocol_doc_examples_are_what_the_encoders_write() {
    use uniway::wire::{encode_group_send, encode_join, encode_leave, encode_multicast};
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md")).unwrap();
    let section = &doc[doc.find("## 10.").expect("a section 10")..];
    let hex_of = |label: &str| -> Vec<u8> {
        let line = section
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no example {label:?}"));
        line[label.len()..]
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    };
    let enc = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Vec::new();
        f(&mut b);
        b
    };
    assert_eq!(
        hex_of("Features(1)"),
        Command::Features {
            bits: FEATURE_GROUPS
        }
        .to_bytes()
        .to_vec()
    );
    assert_eq!(
        hex_of("JoinRefused(7, 9527)"),
        Command::JoinRefused {
            group: 7,
            conn_id: 9527
        }
        .to_bytes()
        .to_vec()
    );
    assert_eq!(
        hex_of("Multicast([9527, 9528], \"Hi\")"),
        enc(&|b| encode_multicast(b, &[9527, 9528], b"Hi"))
    );
    assert_eq!(
        hex_of("Join(7, [9527, 9528])"),
        enc(&|b| encode_join(b, 7, &[9527, 9528]))
    );
    assert_eq!(
        hex_of("Leave(7, [9528])"),
        enc(&|b| encode_leave(b, 7, &[9528]))
    );
    assert_eq!(
        hex_of("Leave(7, []): empty group 7"),
        enc(&|b| encode_leave(b, 7, &[]))
    );
    assert_eq!(
        hex_of("GroupSend(7, except [9527], \"Hi\")"),
        enc(&|b| encode_group_send(b, 7, &[9527], b"Hi"))
    );
    let mut delivered = Vec::new();
    uniway::wire::encode_frame(&mut delivered, 9528, b"Hi");
    assert_eq!(hex_of("then vconn 9528's client gets"), delivered);
}
