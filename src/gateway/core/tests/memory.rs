//! What partial frames may pin, frames on dead vconns that pin nothing, and
//! buffer pages given back after a burst.

use super::*;

/// Enough turns for everything sent to be read (a turn reads a bounded
/// amount per connection).
fn settle(h: &mut Harness) {
    for _ in 0..20 {
        h.turn();
    }
}

fn frame(conn_id: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    wire::encode_frame(&mut f, conn_id, msg);
    f
}

#[test]
fn over_the_partial_budget_the_frame_furthest_from_finishing_is_cut() {
    let mut cfg = test_config();
    cfg.max_partial_bytes = Some(290_000);
    let mut h = Harness::with(cfg);
    let mut s = h.server(1);
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (mut c, cid) = h.client();
        let v = h.open(&mut c, cid, &mut s, 1);
        clients.push((c, v));
    }
    let (va, vb, vc) = (clients[0].1, clients[1].1, clients[2].1);
    let a = frame(va, &[1; 200_000]);
    let b = frame(vb, &[2; 300_000]);
    let c = frame(vc, &[3; 100_000]);
    // A is 50 KB from done, B 200 KB.
    clients[0].0.send(&a[..150_000]);
    clients[1].0.send(&b[..100_000]);
    settle(&mut h);
    assert!(h.alive(&clients[0].0) && h.alive(&clients[1].0));
    // C's 60 KB (40 KB from done) takes the total past 290 KB: B, the
    // furthest from finishing, is cut; A and C go on and arrive whole.
    clients[2].0.send(&c[..60_000]);
    settle(&mut h);
    assert_eq!(h.reason(&clients[1].0), Some(CloseReason::PartialBudget));
    assert!(h.alive(&clients[0].0) && h.alive(&clients[2].0));
    clients[0].0.send(&a[150_000..]);
    clients[2].0.send(&c[60_000..]);
    settle(&mut h);
    let got = s.recv();
    assert!(got.contains(&Got::Cmd(Command::Close { conn_id: vb })));
    assert!(got.contains(&Got::Data(va, vec![1; 200_000])));
    assert!(got.contains(&Got::Data(vc, vec![3; 100_000])));
    assert_eq!(h.core.stats().partial_budget_cuts, 1);
}

#[test]
fn a_frame_alone_over_the_budget_cuts_its_sender() {
    let mut cfg = test_config();
    cfg.max_partial_bytes = Some(100_000);
    let mut h = Harness::with(cfg);
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut c, cid, &mut s, 1);
    c.send(&frame(v, &[9; 150_000])[..120_000]);
    settle(&mut h);
    assert_eq!(h.reason(&c), Some(CloseReason::PartialBudget));
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Close { conn_id: v })]);
}

#[test]
fn a_large_frame_on_a_dead_vconn_pins_nothing_and_is_answered_close() {
    let mut h = Harness::new();
    let _s = h.server(1);
    let (mut c, _) = h.client();
    let dead = 4242;
    let f = frame(dead, &[5; 300_000]);
    c.send(&f[..250_000]);
    settle(&mut h);
    assert_eq!(h.core.staged, 0, "nothing kept for a dead vconn");
    assert!(c.recv().is_empty(), "answered only once the frame is whole");
    c.send(&f[250_000..]);
    c.send_cmd(Command::Ping);
    settle(&mut h);
    assert_eq!(
        c.recv(),
        vec![
            Got::Cmd(Command::Close { conn_id: dead }),
            Got::Cmd(Command::Ping)
        ]
    );
    assert!(h.alive(&c));
}

#[test]
fn a_large_frame_on_someone_elses_vconn_is_an_offence_at_once() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut a, aid) = h.client();
    let (b, _) = h.client();
    let v = h.open(&mut a, aid, &mut s, 1);
    b.send(&frame(v, &[6; 300_000])[..10_000]);
    settle(&mut h);
    assert!(matches!(
        h.reason(&b),
        Some(CloseReason::Protocol(ProtocolError::Spoofed { .. }))
    ));
    assert!(h.alive(&a));
}

#[test]
fn buffer_pages_go_back_after_a_burst() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let mut clients = Vec::new();
    for _ in 0..40 {
        let (mut c, cid) = h.client();
        let v = h.open(&mut c, cid, &mut s, 1);
        clients.push((c, v));
    }
    // A burst: every client holds half of a 400 KB frame.
    let big: Vec<Vec<u8>> = clients
        .iter()
        .map(|(_, v)| frame(*v, &[7; 400_000]))
        .collect();
    for ((c, _), f) in clients.iter().zip(&big) {
        c.send(&f[..200_000]);
    }
    settle(&mut h);
    let peak = h.core.stats().pool.page_bytes;
    assert!(peak >= 40 * 200_000, "{peak}");
    // They all leave.
    for (c, _) in &clients {
        c.hang_up();
    }
    settle(&mut h);
    assert_eq!(h.core.stats().pool.bytes_in_use, 0);
    // Within two trims (a second apart) the pages go back, but for a spare
    // per size class.
    for _ in 0..3 {
        h.advance(Duration::from_millis(1100));
    }
    let after = h.core.stats().pool.page_bytes;
    assert!(
        after <= 4 << 20,
        "{after} bytes of pages kept after the burst (peak {peak})"
    );
    assert!(
        h.core
            .poll_timeout(h.now)
            .is_none_or(|t| t > Duration::from_secs(1)),
        "no more trims wanted"
    );
}

#[test]
fn tables_shrink_after_a_crowd_leaves() {
    let mut h = Harness::new();
    let (_stay, _) = h.client();
    let crowd: Vec<Peer> = (0..900).map(|_| h.accept(Side::Client)).collect();
    h.turn();
    assert!(h.core.conns.capacity() >= 901);
    for p in &crowd {
        p.hang_up();
    }
    h.turn();
    for _ in 0..3 {
        h.advance(Duration::from_millis(1100));
    }
    let kept = h.core.conns.capacity();
    assert!(kept < 100, "{kept} slots kept for 1 connection");
    assert!(
        h.core.deadlines.len() <= 2,
        "{} deadlines kept",
        h.core.deadlines.len()
    );
    assert!(
        h.core.router.clients.capacity() < 100,
        "{}",
        h.core.router.clients.capacity()
    );
}
