//! The gateway over loopback, through its public API, with raw sockets
//! speaking the wire format: bad input closes only the offender, traffic
//! arrives complete and in order, large and oddly split frames survive.

mod common;

use std::time::Duration;

use common::{pair, test_config, Got, RawPeer, TestGateway};
use uniway::wire::{self, Command};

/// Each bad input of `docs/protocol.md` §6, sent by a fresh client, while a
/// bystander's vconn carries traffic before and after.
#[test]
fn every_bad_input_closes_only_the_offender() {
    let gw = TestGateway::start(test_config());
    let (mut server, mut bystander, v, _) = pair(&gw, 1);
    let mut oversize = (wire::DEFAULT_MAX_PACKET + 1).to_le_bytes().to_vec();
    oversize.extend_from_slice(&[0; 4]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("Length 0", vec![0, 0, 0, 0]),
        ("Length 3", vec![3, 0, 0, 0, 1, 2, 3]),
        ("Length over MaxPacket", oversize),
        ("Length u32::MAX", vec![0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]),
        ("empty command", vec![4, 0, 0, 0, 0, 0, 0, 0]),
        ("unknown command", vec![5, 0, 0, 0, 0, 0, 0, 0, 6]),
        ("Dial too short", vec![8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]),
        ("Ping too long", vec![6, 0, 0, 0, 0, 0, 0, 0, 5, 0]),
        ("Close too long", vec![0x40, 0, 0, 0, 0, 0, 0, 0, 4]),
        (
            "Accept from an endpoint",
            Command::Accept {
                conn_id: 1,
                remote_id: 1,
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "Connect from an endpoint",
            Command::Connect {
                conn_id: 1,
                remote_id: 1,
            }
            .to_bytes()
            .to_vec(),
        ),
        (
            "Refuse from an endpoint",
            Command::Refuse { remote_id: 1 }.to_bytes().to_vec(),
        ),
    ];
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let mut bad = RawPeer::client(gw.client_addr);
        bad.send(bytes);
        bad.expect_closed();
        let msg = format!("after {what}: {i}");
        bystander.send_data(v, msg.as_bytes());
        assert_eq!(server.recv(), Got::Data(v, msg.into_bytes()), "{what}");
        server.send_data(v, b"ok");
        assert_eq!(bystander.recv(), Got::Data(v, b"ok".to_vec()), "{what}");
    }

    // A spoofed conn ID: another client writes into the bystander's vconn.
    let mut spoofer = RawPeer::client(gw.client_addr);
    spoofer.send_data(v, b"injected");
    spoofer.expect_closed();
    // A server with the wrong key, and one that stops mid-response.
    let (mut wrong, challenge) = RawPeer::server_raw(gw.server_addr);
    wrong.send(&challenge.respond(b"not-the-key", 2).to_bytes());
    wrong.expect_closed();
    // A bad frame from a server closes that server only.
    let mut bad_server = RawPeer::server(gw.server_addr, 3, b"test-key");
    bad_server.send(&[1, 0, 0, 0]);
    bad_server.expect_closed();

    bystander.send_data(v, b"still here");
    assert_eq!(server.recv(), Got::Data(v, b"still here".to_vec()));
    let stats = gw.stop().stats();
    assert_eq!(stats.bad_frames, 5, "{stats:?}");
    assert_eq!(stats.bad_commands, 8, "{stats:?}");
    assert_eq!(stats.spoofs, 1);
    assert_eq!(stats.auth_failures, 1);
}

#[test]
fn truncated_handshake_times_out() {
    let mut cfg = test_config();
    cfg.handshake_timeout = Duration::from_millis(200);
    let gw = TestGateway::start(cfg);
    let (mut s, _) = RawPeer::server_raw(gw.server_addr);
    s.send(&[0; 12]);
    s.expect_closed();
    assert_eq!(gw.stop().stats().handshake_timeouts, 1);
}

/// 4 clients, each with a vconn to one server; 2,000 sequence-numbered
/// messages each way on every vconn, all in flight at once.
#[test]
fn sequenced_messages_arrive_complete_and_in_order() {
    const CLIENTS: usize = 4;
    const MSGS: u32 = 2000;
    let gw = TestGateway::start(test_config());
    let mut server = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = RawPeer::client(gw.client_addr);
        let v = c.dial(1);
        assert_eq!(server.expect_connect().0, v);
        clients.push((c, v));
    }
    fn payload(v: u32, seq: u32) -> Vec<u8> {
        let mut m = seq.to_le_bytes().to_vec();
        m.extend(std::iter::repeat_n((v ^ seq) as u8, (seq % 61) as usize));
        m
    }
    let ids: Vec<u32> = clients.iter().map(|(_, v)| *v).collect();
    // Every client writes and reads on threads of its own while the server
    // writes and reads too, so no queue has to hold a whole burst.
    let mut threads = Vec::new();
    let mut readers: Vec<std::thread::JoinHandle<RawPeer>> = Vec::new();
    for (c, v) in clients {
        let mut w = c.stream.try_clone().unwrap();
        threads.push(std::thread::spawn(move || {
            use std::io::Write;
            let mut out = Vec::new();
            for seq in 0..MSGS {
                wire::encode_frame(&mut out, v, &payload(v, seq));
            }
            w.write_all(&out).unwrap();
        }));
        let mut c = c;
        // Each reader hands its peer back so no client hangs up (which
        // would send the server a Close) before the server has read all.
        readers.push(std::thread::spawn(move || {
            for seq in 0..MSGS {
                let got = c.recv();
                assert_eq!(got, Got::Data(v, payload(v, seq)), "to client, vconn {v}");
            }
            c
        }));
    }
    let mut server_out = Vec::new();
    for seq in 0..MSGS {
        for &v in &ids {
            wire::encode_frame(&mut server_out, v, &payload(v, seq));
        }
    }
    let mut server_writer = server.stream.try_clone().unwrap();
    threads.push(std::thread::spawn(move || {
        use std::io::Write;
        server_writer.write_all(&server_out).unwrap();
    }));
    let mut next = std::collections::HashMap::new();
    for _ in 0..(MSGS as usize * CLIENTS) {
        let got = server.recv();
        let Got::Data(v, m) = got else {
            panic!("server got {got:?} mid-stream")
        };
        let seq = next.entry(v).or_insert(0u32);
        assert_eq!(m, payload(v, *seq), "to server, vconn {v} message {seq}");
        *seq += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
    let clients: Vec<RawPeer> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let stats = gw.stop().stats();
    assert_eq!(stats.frames_from_clients, u64::from(MSGS) * CLIENTS as u64);
    assert_eq!(stats.frames_from_servers, u64::from(MSGS) * CLIENTS as u64);
    assert_eq!(stats.slow_consumers, 0);
    drop(clients);
}

/// The largest legal frame (Length = MaxPacket = 512 KiB), both ways.
#[test]
fn max_size_frame_is_forwarded_intact() {
    let gw = TestGateway::start(test_config());
    let (mut server, mut client, v, _) = pair(&gw, 1);
    let big: Vec<u8> = (0..wire::DEFAULT_MAX_PACKET - 4)
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    let mut frame = Vec::new();
    wire::encode_frame(&mut frame, v, &big);
    assert_eq!(frame.len(), 512 * 1024 + 4);
    let mut w = client.stream.try_clone().unwrap();
    let f2 = frame.clone();
    let t = std::thread::spawn(move || {
        use std::io::Write;
        w.write_all(&f2).unwrap();
    });
    assert_eq!(server.recv(), Got::Data(v, big.clone()));
    t.join().unwrap();
    let mut w = server.stream.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        use std::io::Write;
        w.write_all(&frame).unwrap();
    });
    assert_eq!(client.recv(), Got::Data(v, big));
    t.join().unwrap();
    // A ping right after still works both ways.
    client.send_cmd(Command::Ping);
    assert_eq!(client.recv_cmd(), Command::Ping);
}

#[test]
fn frames_split_byte_by_byte_and_coalesced_arrive_intact() {
    let gw = TestGateway::start(test_config());
    let (mut server, mut client, v, _) = pair(&gw, 1);
    // Byte by byte.
    let mut frame = Vec::new();
    wire::encode_frame(&mut frame, v, b"one byte at a time");
    for b in &frame {
        client.send(std::slice::from_ref(b));
    }
    assert_eq!(server.recv(), Got::Data(v, b"one byte at a time".to_vec()));
    // A thousand frames in one write, each way.
    let mut many = Vec::new();
    for i in 0..1000u32 {
        wire::encode_frame(&mut many, v, &i.to_le_bytes());
    }
    client.send(&many);
    server.send(&many);
    for i in 0..1000u32 {
        assert_eq!(server.recv(), Got::Data(v, i.to_le_bytes().to_vec()));
        assert_eq!(client.recv(), Got::Data(v, i.to_le_bytes().to_vec()));
    }
}

#[test]
fn closing_a_client_tells_the_server_and_frees_everything() {
    let gw = TestGateway::start(test_config());
    let (mut server, client, v, _) = pair(&gw, 1);
    drop(client);
    assert_eq!(server.recv_cmd(), Command::Close { conn_id: v });
    server.send_cmd(Command::Ping);
    assert_eq!(server.recv_cmd(), Command::Ping);
    let gw = gw.stop();
    let stats = gw.stats();
    assert_eq!(stats.vconns, 0);
    assert_eq!(stats.clients, 0);
    assert_eq!(stats.servers, 1);
}
