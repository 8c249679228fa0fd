//! The edges of the data path, one test per way it once went wrong: a
//! source dying or stalling mid-frame, a paused sender, conn ID reuse,
//! queues that must stay bounded, and a drain under input. Each fails on a
//! gateway that forwards partial frames cut-through, lets its idle clock
//! run against its own pauses, recycles conn IDs quickly, or stops reading
//! while draining.

use super::*;

fn frame(conn_id: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    wire::encode_frame(&mut f, conn_id, msg);
    f
}

#[test]
fn source_dying_mid_frame_leaves_the_destination_no_invented_bytes() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut s, 1, &mut c, cid);
    let f = frame(v, &[0xab; 300_000]);
    s.send(&f[..100_000]);
    h.turn();
    s.pipe.reset();
    h.turn();
    assert!(!h.alive(&s));
    // The client hears only that the vconn closed: not a byte of the frame.
    assert_eq!(c.recv(), vec![Got::Cmd(Command::Close { conn_id: v })]);
    assert!(
        c.pending.is_empty(),
        "no partial frame on the client's wire"
    );
    assert!(h.alive(&c), "the client's connection is unaffected");
    assert_eq!(h.core.stats().partial_frames_dropped, 1);
    assert_eq!(h.core.stats().pool.chunks_in_use, 0);
}

#[test]
fn a_stalled_partial_frame_holds_up_no_one_else() {
    let mut h = Harness::new();
    let mut a = h.server(1);
    let mut b = h.server(2);
    let (mut x, xid) = h.client();
    let (mut y, yid) = h.client();
    let va = h.open(&mut a, 1, &mut x, xid);
    let vbx = h.open(&mut b, 2, &mut x, xid);
    let vby = h.open(&mut b, 2, &mut y, yid);
    let big = frame(va, &[1; 200_000]);
    a.send(&big[..50_000]);
    h.turn();
    b.send_data(vbx, b"to x");
    b.send_data(vby, b"to y");
    h.turn();
    assert_eq!(x.recv(), vec![Got::Data(vbx, b"to x".to_vec())]);
    assert_eq!(y.recv(), vec![Got::Data(vby, b"to y".to_vec())]);
    assert!(!h.core.conns[b.key].stalled, "B never waits on A");
    // A finishes much later; its frame arrives whole, after B's.
    h.advance(Duration::from_secs(5));
    a.send(&big[50_000..]);
    h.turn();
    assert_eq!(x.recv(), vec![Got::Data(va, vec![1; 200_000])]);
}

#[test]
fn a_source_trickling_a_frame_past_its_idle_timeout_is_closed() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut s, 1, &mut c, cid);
    let big = frame(v, &[2; 100_000]);
    let mut got = Vec::new();
    for (i, piece) in big.chunks(1000).take(40).enumerate() {
        s.send(piece);
        c.send_cmd(Command::Ping);
        h.advance(Duration::from_secs(1));
        assert!(h.alive(&c), "step {i}");
        got.extend(
            c.recv()
                .into_iter()
                .filter(|g| *g != Got::Cmd(Command::Ping)),
        );
    }
    assert_eq!(h.reason(&s), Some(CloseReason::IdleTimeout));
    assert_eq!(got, vec![Got::Cmd(Command::Close { conn_id: v })]);
    assert!(h.alive(&c));
}

#[test]
fn a_sender_paused_by_the_gateway_is_not_idle() {
    let mut cfg = test_config();
    cfg.server.send_queue_bytes = 64 * 1024; // high water at 32 KiB
    cfg.client.idle_timeout = Duration::from_secs(3);
    let mut h = Harness::with(cfg);
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut c, cid, &mut s, 1);
    s.set_write_room(Some(0));
    for _ in 0..100 {
        c.send_data(v, &[7; 1000]);
    }
    h.turn();
    assert!(h.core.conns[c.key].stalled);
    // Paused for far longer than the idle timeout, Pinging meanwhile (the
    // Pings wait unread behind the paused frame).
    for _ in 0..20 {
        c.send_cmd(Command::Ping);
        h.advance(Duration::from_millis(500));
        // The server keeps pinging too, so only the client's clock matters.
        s.send_cmd(Command::Ping);
    }
    assert!(h.alive(&c), "closed as {:?}", h.reason(&c));
    assert_eq!(h.core.stats().idle_timeouts, 0);
    s.set_write_room(None);
    for _ in 0..20 {
        h.turn();
    }
    let data = s
        .recv()
        .into_iter()
        .filter(|g| matches!(g, Got::Data(..)))
        .count();
    assert_eq!(data, 100);
    let pings = c
        .recv()
        .into_iter()
        .filter(|g| *g == Got::Cmd(Command::Ping))
        .count();
    assert_eq!(pings, 20, "every Ping sent while paused is answered");
    // Once it is no longer paused, silence counts again.
    h.advance(Duration::from_secs(4));
    assert_eq!(h.reason(&c), Some(CloseReason::IdleTimeout));
}

#[test]
fn a_closed_conn_id_never_reaches_another_client() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut a, aid) = h.client();
    let old = h.open(&mut s, 1, &mut a, aid);
    a.hang_up();
    h.turn();
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Close { conn_id: old })]);
    let (mut b, bid) = h.client();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..2000 {
        let v = h.open(&mut s, 1, &mut b, bid);
        assert_ne!(v, old, "a conn ID came back");
        assert!(ids.insert(v), "conn ID {v} handed out twice");
        s.send_cmd(Command::Close { conn_id: v });
        h.turn();
        s.recv();
        b.recv();
    }
    let last = h.open(&mut s, 1, &mut b, bid);
    // The server, late, still writes to the first client's vconn.
    s.send_data(old, b"meant for A");
    h.turn();
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Close { conn_id: old })]);
    assert!(b.recv().is_empty(), "B received A's frames");
    s.send_data(last, b"for B");
    h.turn();
    assert_eq!(b.recv(), vec![Got::Data(last, b"for B".to_vec())]);
}

#[test]
fn ping_flood_from_a_non_reader_is_bounded_by_its_queue_cap() {
    let mut cfg = test_config();
    cfg.client.send_queue_msgs = 100;
    let mut h = Harness::with(cfg);
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut s, 1, &mut c, cid);
    // A large frame for the client is on its way, slowly, while the client
    // floods Pings and reads nothing.
    let big = frame(v, &[3; 100_000]);
    s.send(&big[..30_000]);
    c.set_write_room(Some(0));
    let mut pings = Vec::new();
    for _ in 0..5000 {
        pings.extend_from_slice(&Command::Ping.to_bytes());
    }
    c.send(&pings);
    let mut most = 0;
    for _ in 0..200 {
        h.turn();
        if let Some(cc) = h.core.conns.get(c.key) {
            most = most.max(cc.out.msgs());
        }
        if !h.alive(&c) {
            break;
        }
    }
    assert_eq!(h.reason(&c), Some(CloseReason::SlowConsumer));
    assert!(most <= 100 + 5 * 4 * 64, "queue reached {most} entries");
    assert!(h.alive(&s), "the server is unaffected");
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Close { conn_id: v })]);
}

#[test]
fn drain_keeps_flushing_while_the_peer_sends() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut s, 1, &mut c, cid);
    c.set_write_room(Some(8192));
    for i in 0..300u32 {
        let mut msg = vec![0u8; 8192];
        msg[..4].copy_from_slice(&i.to_le_bytes());
        s.send_data(v, &msg);
    }
    // The gateway reads it all (a bounded amount per turn): accepted.
    let mut got = Vec::new();
    for _ in 0..50 {
        h.turn();
        got.extend(c.recv());
    }
    assert!(
        h.core.conns[c.key].out.msgs() > 250,
        "queued for the slow client"
    );
    h.core.begin_shutdown();
    for _ in 0..2000 {
        // The client reads a little, and keeps talking.
        c.send_cmd(Command::Ping);
        c.send_data(v, b"late");
        c.set_write_room(Some(8192));
        h.turn();
        got.extend(c.recv());
        if c.pipe.write_shut() {
            break;
        }
    }
    let data: Vec<u32> = got
        .iter()
        .filter_map(|g| match g {
            Got::Data(id, m) if *id == v => Some(u32::from_le_bytes(m[..4].try_into().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(data, (0..300).collect::<Vec<_>>(), "every queued message");
    assert_eq!(got.last(), Some(&Got::Cmd(Command::Close { conn_id: v })));
    assert!(c.pipe.write_shut());
    c.hang_up();
    s.hang_up();
    h.turn();
    assert!(h.core.is_drained());
}
