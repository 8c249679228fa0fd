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
    assert!(h.core.conns[c.key].pause.is_some(), "client paused");
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
        (vec![5, 0, 0, 0, 0, 0, 0, 0, 12], |e| {
            *e == ProtocolError::Command(CommandError::UnknownType(12))
        }),
        // A fan-out command is for servers only.
        (
            {
                let mut b = Vec::new();
                crate::wire::encode_multicast(&mut b, &[1], b"x");
                b
            },
            |e| {
                *e == ProtocolError::Command(CommandError::ServerOnly(
                    crate::wire::GroupType::Multicast,
                ))
            },
        ),
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

/// A client, a server that stops reading, and a healthy server: the
/// client is paused when the first one's queue passes its high-water mark.
struct StuckServer {
    h: Harness,
    stuck: Peer,
    healthy: Peer,
    c: Peer,
    /// The client's two vconns to the stuck server, and one to the other.
    to_stuck: [u32; 2],
    to_healthy: u32,
}

fn stuck_server(client_idle: Duration) -> StuckServer {
    let mut cfg = test_config();
    cfg.server.send_queue_bytes = 64 * 1024; // high water at 32 KiB
    cfg.client.idle_timeout = client_idle;
    let mut h = Harness::with(cfg);
    let mut stuck = h.server(1);
    let mut healthy = h.server(2);
    let (mut c, cid) = h.client();
    let to_stuck = [
        h.open(&mut c, cid, &mut stuck, 1),
        h.open(&mut c, cid, &mut stuck, 1),
    ];
    let to_healthy = h.open(&mut c, cid, &mut healthy, 2);
    stuck.set_write_room(Some(0));
    for _ in 0..100 {
        c.send_data(to_stuck[0], &[7; 1000]);
    }
    h.turn();
    assert!(h.core.conns[c.key].pause.is_some(), "client paused");
    StuckServer {
        h,
        stuck,
        healthy,
        c,
        to_stuck,
        to_healthy,
    }
}

#[test]
fn a_pause_ends_within_its_bound_and_closes_only_the_vconns_to_the_stuck_server() {
    let StuckServer {
        mut h,
        mut stuck,
        mut healthy,
        mut c,
        to_stuck,
        to_healthy,
    } = stuck_server(Duration::from_secs(3));
    assert_eq!(h.core.pause_limit(), Duration::from_millis(1500));
    c.send_cmd(Command::Ping);
    c.send_data(to_healthy, b"to the other server");
    h.advance(Duration::from_millis(1400));
    assert!(
        h.core.conns[c.key].pause.is_some(),
        "still within the bound"
    );
    assert!(healthy.recv().is_empty());
    h.advance(Duration::from_millis(200));
    assert!(h.core.conns[c.key].pause.is_none(), "read again");
    // The rest of its input (the frames behind the dropped one) is read
    // on the next turns, a budget at a time.
    for _ in 0..5 {
        h.turn();
    }
    assert_eq!(
        healthy.recv(),
        vec![Got::Data(to_healthy, b"to the other server".to_vec())],
        "its frames to other servers flow"
    );
    let got = c.recv();
    for v in to_stuck {
        assert!(
            got.contains(&Got::Cmd(Command::Close { conn_id: v })),
            "{got:?}"
        );
    }
    assert!(
        got.contains(&Got::Cmd(Command::Ping)),
        "Ping answered: {got:?}"
    );
    // The later frames on the closed vconn are answered Close too, never
    // delivered; nothing else is closed.
    assert!(h.alive(&c) && h.alive(&stuck) && h.alive(&healthy));
    let s = h.core.stats();
    assert_eq!(
        (s.pause_timeouts, s.pause_closes, s.frames_dropped_paused),
        (1, 2, 1)
    );
    assert_eq!(s.idle_timeouts, 0);
    // The stuck server hears of the closes once it reads again, after
    // the frames it had been sent.
    stuck.set_write_room(None);
    h.turn();
    let got = stuck.recv();
    let data = got.iter().filter(|g| matches!(g, Got::Data(..))).count();
    assert!(data > 0 && data < 100, "{data} frames delivered");
    for (i, v) in to_stuck.iter().enumerate() {
        let close = Got::Cmd(Command::Close { conn_id: *v });
        let at = got.iter().position(|g| *g == close);
        assert!(
            at.is_some_and(|at| at >= data),
            "Close {i} after the data: {got:?}"
        );
    }
    assert!(
        got[..data]
            .iter()
            .all(|g| *g == Got::Data(to_stuck[0], vec![7; 1000])),
        "only whole frames the client sent"
    );
}

#[test]
fn a_server_that_takes_no_byte_for_its_idle_timeout_is_cut_and_its_clients_told() {
    let mut cfg = test_config();
    cfg.server.idle_timeout = Duration::from_secs(2);
    let mut h = Harness::with(cfg);
    let mut stuck = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut c, cid, &mut stuck, 1);
    stuck.set_write_room(Some(0));
    c.send_data(v, b"never read");
    h.turn();
    // It keeps sending (so it is not idle) but takes nothing.
    for _ in 0..3 {
        h.advance(Duration::from_millis(600));
        stuck.send_cmd(Command::Ping);
        c.send_cmd(Command::Ping);
    }
    h.turn();
    assert!(h.alive(&stuck), "1.8 s without a byte taken");
    h.advance(Duration::from_millis(300));
    assert_eq!(h.reason(&stuck), Some(CloseReason::WriteTimeout));
    let got = c.recv();
    assert!(
        got.contains(&Got::Cmd(Command::Close { conn_id: v })),
        "{got:?}"
    );
    assert!(h.alive(&c));
    assert_eq!(h.core.stats().write_timeouts, 1);
    assert_eq!(h.core.stats().idle_timeouts, 0);
}

#[test]
fn a_peer_that_takes_bytes_slowly_is_not_cut_for_taking_none() {
    let mut cfg = test_config();
    cfg.server.idle_timeout = Duration::from_secs(2);
    let mut h = Harness::with(cfg);
    let mut slow = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut c, cid, &mut slow, 1);
    slow.set_write_room(Some(0));
    for _ in 0..20 {
        c.send_data(v, &[1; 100]);
    }
    h.turn();
    // A few bytes a second, for three idle timeouts.
    for _ in 0..6 {
        slow.send_cmd(Command::Ping);
        h.advance(Duration::from_millis(1000));
        slow.set_write_room(Some(10));
        h.turn();
        slow.set_write_room(Some(0));
    }
    assert!(h.alive(&slow), "closed as {:?}", h.reason(&slow));
    assert_eq!(h.core.stats().write_timeouts, 0);
}

#[test]
fn a_server_idle_timeout_shorter_than_the_handshake_deadline_is_honoured() {
    let mut cfg = test_config();
    cfg.server.idle_timeout = Duration::from_secs(2);
    cfg.handshake_timeout = Duration::from_secs(5);
    let mut h = Harness::with(cfg);
    let s = h.server(1);
    h.advance(Duration::from_millis(1900));
    assert!(h.alive(&s));
    h.advance(Duration::from_millis(200));
    assert_eq!(h.reason(&s), Some(CloseReason::IdleTimeout));
}

/// A buffer page that cannot be mapped closes the connection that needed
/// it, with a typed reason; the core does not panic and its tables stay
/// sound (the harness checks them every turn).
#[test]
fn a_page_that_cannot_be_mapped_closes_the_connection_that_needed_it() {
    let mut cfg = test_config();
    // Pages of 2^46 bytes (64 TiB): no machine maps one.
    cfg.pool.max_chunk = 1 << 46;
    cfg.pool.page_size = 1 << 46;
    cfg.client.buffer_size = 1 << 46;
    let mut h = Harness::with(cfg);
    let c = h.accept(Side::Client);
    c.send(b"x");
    h.turn();
    assert_eq!(
        h.reason(&c),
        Some(CloseReason::Io(std::io::ErrorKind::OutOfMemory))
    );
    assert!(h.core.is_empty());
    assert_eq!(h.core.stats().pool.chunks_in_use, 0);
    assert_eq!(h.core.stats().pool.pages, 0);
}
