//! Flow control (slow clients, congested servers), bad input, large frames,
//! shutdown and buffer use, on the harness of `mod.rs`.

use super::*;

#[test]
fn slow_client_is_disconnected_and_its_servers_told() {
    let mut cfg = test_config();
    cfg.client.send_queue_msgs = 10;
    let mut h = Harness::with(cfg);
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let (mut fast, fid) = h.client();
    let v = h.open(&mut s, 1, &mut c, cid);
    let vf = h.open(&mut s, 1, &mut fast, fid);
    c.set_write_room(Some(0));
    for i in 0..12u8 {
        s.send_data(v, &[i]);
        if i < 5 {
            s.send_data(vf, &[i]);
        }
    }
    h.turn();
    assert_eq!(h.reason(&c), Some(CloseReason::SlowConsumer));
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Close { conn_id: v })]);
    assert_eq!(fast.recv().len(), 5, "the other client is unaffected");
    assert!(h.alive(&fast));
    assert_eq!(h.core.stats().slow_consumers, 1);
}

#[test]
fn congested_server_pauses_clients_and_resumes_them_when_drained() {
    let mut cfg = test_config();
    cfg.server.send_queue_bytes = 64 * 1024; // high water at 32 KiB
    let mut h = Harness::with(cfg);
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut c, cid, &mut s, 1);
    s.set_write_room(Some(0));
    let msg = [7u8; 1000];
    for _ in 0..100 {
        c.send_data(v, &msg);
    }
    for _ in 0..20 {
        h.turn();
    }
    let queued = h.core.conns[s.key].out.bytes();
    assert!((32 * 1024..64 * 1024).contains(&queued), "queued {queued}");
    assert!(h.core.conns[c.key].stalled, "client paused");
    assert!(h.alive(&c) && h.alive(&s));
    assert!(h.core.stats().paused >= 1);
    s.set_write_room(None);
    for _ in 0..20 {
        h.turn();
    }
    let got = s.recv();
    assert_eq!(got.len(), 100, "every frame arrives once the server drains");
    assert!(got.iter().all(|g| *g == Got::Data(v, msg.to_vec())));
}

#[test]
fn bad_frames_and_commands_close_only_the_offender() {
    let cases: Vec<(Vec<u8>, ReasonCheck)> = vec![
        (vec![3, 0, 0, 0], |e| matches!(e, ProtocolError::Frame(_))),
        (u32::MAX.to_le_bytes().to_vec(), |e| {
            matches!(e, ProtocolError::Frame(_))
        }),
        (vec![4, 0, 0, 0, 0, 0, 0, 0], |e| {
            *e == ProtocolError::Command(CommandError::Empty)
        }),
        (vec![5, 0, 0, 0, 0, 0, 0, 0, 9], |e| {
            *e == ProtocolError::Command(CommandError::UnknownType(9))
        }),
        (
            Command::Accept {
                conn_id: 1,
                remote_id: 1,
            }
            .to_bytes()
            .to_vec(),
            |e| matches!(e, ProtocolError::Command(CommandError::Forbidden { .. })),
        ),
        (vec![0x10, 0, 0, 0, 0, 0, 0, 0, 5], |e| {
            matches!(e, ProtocolError::Command(CommandError::WrongLength { .. }))
        }),
        (vec![0xff, 0xff, 0, 0, 0, 0, 0, 0, 0], |e| {
            matches!(e, ProtocolError::Command(CommandError::WrongLength { .. }))
        }),
    ];
    for (bytes, check) in cases {
        let mut h = Harness::new();
        let mut s = h.server(1);
        let (mut c, cid) = h.client();
        let v = h.open(&mut c, cid, &mut s, 1);
        let (bad, _) = h.client();
        bad.send(&bytes);
        c.send_data(v, b"bystander");
        h.turn();
        assert!(!h.alive(&bad), "{bytes:?} did not close the offender");
        match h.reason(&bad) {
            Some(CloseReason::Protocol(e)) => assert!(check(&e), "{bytes:?}: {e:?}"),
            other => panic!("{bytes:?}: closed for {other:?}"),
        }
        assert!(h.alive(&c) && h.alive(&s));
        assert_eq!(s.recv(), vec![Got::Data(v, b"bystander".to_vec())]);
    }
}

#[test]
fn large_frame_from_server_is_forwarded_once_whole() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut s, 1, &mut c, cid);
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let mut frame = Vec::new();
    wire::encode_frame(&mut frame, v, &big);
    s.send(&frame[..100_000]);
    h.turn();
    h.turn();
    assert!(
        c.raw().is_empty(),
        "nothing of a partial frame is forwarded"
    );
    // The client is not held by the partial frame: its Ping is answered.
    c.send_cmd(Command::Ping);
    h.turn();
    assert_eq!(c.recv(), vec![Got::Cmd(Command::Ping)]);
    s.send(&frame[100_000..]);
    h.turn();
    h.turn();
    assert_eq!(c.recv(), vec![Got::Data(v, big)]);
    assert_eq!(h.core.stats().pool.chunks_in_use, 0);
}

#[test]
fn large_frame_from_client_arrives_whole_without_locking_the_server() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let (mut c2, cid2) = h.client();
    let v = h.open(&mut c, cid, &mut s, 1);
    let v2 = h.open(&mut c2, cid2, &mut s, 1);
    let big = vec![0x5a; 10_000];
    let mut frame = Vec::new();
    wire::encode_frame(&mut frame, v, &big);
    c.send(&frame[..5000]);
    c2.send_data(v2, b"meanwhile");
    h.turn();
    assert_eq!(s.recv(), vec![Got::Data(v2, b"meanwhile".to_vec())]);
    c.send(&frame[5000..]);
    h.turn();
    assert_eq!(s.recv(), vec![Got::Data(v, big)]);
}

#[test]
fn idle_connections_hold_no_buffers() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let mut clients = Vec::new();
    for _ in 0..50 {
        let (mut c, cid) = h.client();
        let v = h.open(&mut c, cid, &mut s, 1);
        clients.push((c, v));
    }
    for (c, v) in &clients {
        c.send_data(*v, b"x");
    }
    h.turn();
    assert_eq!(s.recv().len(), 50);
    assert_eq!(h.core.stats().pool.chunks_in_use, 0);
}

#[test]
fn shutdown_flushes_queued_data_then_closes_every_vconn() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut c, cid, &mut s, 1);
    c.set_write_room(Some(0));
    s.send_data(v, b"queued before shutdown");
    h.turn();
    h.core.begin_shutdown();
    s.send_data(v, b"sent after shutdown: read and discarded");
    h.turn();
    assert!(!h.core.is_drained());
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Close { conn_id: v })]);
    assert!(
        s.pipe.write_shut(),
        "a flushed connection gets the end of the stream"
    );
    assert!(!c.pipe.write_shut(), "not before its queue is written");
    c.set_write_room(None);
    h.turn();
    assert_eq!(
        c.recv(),
        vec![
            Got::Data(v, b"queued before shutdown".to_vec()),
            Got::Cmd(Command::Close { conn_id: v })
        ]
    );
    assert!(c.pipe.write_shut());
    // Each connection closes once its peer has closed its end too.
    assert!(!h.core.is_drained());
    c.hang_up();
    s.hang_up();
    h.turn();
    assert!(h.core.is_drained());
    assert_eq!(h.reason(&c), Some(CloseReason::Shutdown));
    assert_eq!(h.reason(&s), Some(CloseReason::Shutdown));
}
