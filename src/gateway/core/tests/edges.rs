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
    assert!(h.core.conns[b.key].pause.is_none(), "B never waits on A");
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
    assert!(h.core.conns[c.key].pause.is_some());
    // Paused for most of its bound (half the idle timeout), Pinging
    // meanwhile (the Pings wait unread behind the paused frame).
    for _ in 0..2 {
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
    assert_eq!(pings, 2, "every Ping sent while paused is answered");
    assert_eq!(h.core.stats().pause_timeouts, 0);
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

mod interleavings {
    //! Random interleavings of partial frames from several sources to
    //! shared destinations, both directions, with random resets: every
    //! destination receives, from each source, an in-order run of whole
    //! frames that source sent (all of them if it lived), nothing else.

    use super::*;
    use proptest::prelude::*;

    const SERVERS: usize = 3;
    const CLIENTS: usize = 3;

    /// One step: source `src` sends its next `chunk` bytes, or is reset.
    #[derive(Debug, Clone)]
    struct Step {
        src: usize,
        chunk: usize,
        reset: bool,
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            (
                0..SERVERS + CLIENTS,
                1usize..40_000,
                prop::bool::weighted(0.03),
            )
                .prop_map(|(src, chunk, reset)| Step { src, chunk, reset }),
            1..120,
        )
    }

    fn payload(src: usize, seq: usize, len: usize) -> Vec<u8> {
        let mut m = vec![(src * 31 + seq) as u8; len];
        m[..4].copy_from_slice(&(seq as u32).to_le_bytes());
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn destinations_receive_only_whole_frames_their_sources_sent(
            steps in steps(),
            sizes in prop::collection::vec(4usize..150_000, 12),
        ) {
            let mut h = Harness::new();
            let mut servers: Vec<Peer> = (0..SERVERS).map(|i| h.server(i as u32 + 1)).collect();
            let mut clients: Vec<(Peer, u32)> = (0..CLIENTS).map(|_| h.client()).collect();
            // vconn[s][c], dialed by the server.
            let mut vconn = [[0u32; CLIENTS]; SERVERS];
            for (s, server) in servers.iter_mut().enumerate() {
                for (c, (client, cid)) in clients.iter_mut().enumerate() {
                    vconn[s][c] = h.open(server, s as u32 + 1, client, *cid);
                }
            }
            // Each source's byte stream: frames to each peer of the other
            // side in turn, of varied sizes.
            let n_src = SERVERS + CLIENTS;
            let mut streams: Vec<Vec<u8>> = vec![Vec::new(); n_src];
            // (destination index, conn ID, payload) in sending order.
            let mut plans: Vec<Vec<(usize, u32, Vec<u8>)>> = vec![Vec::new(); n_src];
            for src in 0..n_src {
                for seq in 0..4 {
                    let len = sizes[(src * 2 + seq) % sizes.len()];
                    let (dest, id) = if src < SERVERS {
                        let c = seq % CLIENTS;
                        (SERVERS + c, vconn[src][c])
                    } else {
                        let s = seq % SERVERS;
                        (s, vconn[s][src - SERVERS])
                    };
                    let m = payload(src, seq, len);
                    wire::encode_frame(&mut streams[src], id, &m);
                    plans[src].push((dest, id, m));
                }
            }
            let mut sent = vec![0usize; n_src];
            let mut dead = vec![false; n_src];
            let mut got: Vec<Vec<Got>> = vec![Vec::new(); n_src];
            for step in &steps {
                let src = step.src;
                if dead[src] {
                    continue;
                }
                let pipe = if src < SERVERS { &servers[src].pipe } else { &clients[src - SERVERS].0.pipe };
                if step.reset {
                    pipe.reset();
                    dead[src] = true;
                } else {
                    let end = (sent[src] + step.chunk).min(streams[src].len());
                    pipe.send(&streams[src][sent[src]..end]);
                    sent[src] = end;
                }
                h.turn();
                for (i, s) in servers.iter_mut().enumerate() {
                    got[i].extend(s.recv());
                }
                for (i, (c, _)) in clients.iter_mut().enumerate() {
                    got[SERVERS + i].extend(c.recv());
                }
            }
            // Let everything that was sent through.
            for _ in 0..50 {
                h.turn();
            }
            for (i, s) in servers.iter_mut().enumerate() {
                got[i].extend(s.recv());
            }
            for (i, (c, _)) in clients.iter_mut().enumerate() {
                got[SERVERS + i].extend(c.recv());
            }
            for dest in 0..n_src {
                if dead[dest] {
                    continue;
                }
                for src in 0..n_src {
                    let expected: Vec<(u32, &Vec<u8>)> = plans[src]
                        .iter()
                        .filter(|(d, _, _)| *d == dest)
                        .map(|(_, id, m)| (*id, m))
                        .collect();
                    let ids: Vec<u32> = expected.iter().map(|(id, _)| *id).collect();
                    let received: Vec<(u32, &Vec<u8>)> = got[dest]
                        .iter()
                        .filter_map(|g| match g {
                            Got::Data(id, m) if ids.contains(id) => Some((*id, m)),
                            _ => None,
                        })
                        .collect();
                    prop_assert!(received.len() <= expected.len());
                    prop_assert_eq!(&received[..], &expected[..received.len()],
                        "from {} to {}", src, dest);
                    if !dead[src] && sent[src] == streams[src].len() {
                        prop_assert_eq!(received.len(), expected.len(), "frames lost from {} to {}", src, dest);
                    }
                }
                // Nothing but commands and the frames checked above.
                let data = got[dest].iter().filter(|g| matches!(g, Got::Data(..))).count();
                let checked: usize = (0..n_src)
                    .map(|src| plans[src].iter().filter(|(d, _, _)| *d == dest).count())
                    .sum();
                prop_assert!(data <= checked);
            }
            prop_assert_eq!(h.core.stats().pool.chunks_in_use > 0, h.core.conns.iter().any(|(_, c)| !c.rbuf.is_empty() || !c.stage.is_empty() || !c.out.is_empty()));
        }
    }
}
