//! Multicast, groups and group sends (`docs/protocol.md` §10) on the
//! virtual clock: a room where every member gets each message once and in
//! order among unicast traffic, joins, leaves and closes racing, a slow
//! member cut alone, the limits, bad and spoofing commands, and payloads
//! held once.

use super::*;
use crate::config::GroupLimits;
use crate::wire::{
    encode_group_send, encode_join, encode_leave, encode_multicast, GroupType, FEATURE_GROUPS,
};

fn multicast(ids: &[u32], msg: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    encode_multicast(&mut b, ids, msg);
    b
}

fn join(group: u32, ids: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    encode_join(&mut b, group, ids);
    b
}

fn leave(group: u32, ids: &[u32]) -> Vec<u8> {
    let mut b = Vec::new();
    encode_leave(&mut b, group, ids);
    b
}

fn group_send(group: u32, except: &[u32], msg: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    encode_group_send(&mut b, group, except, msg);
    b
}

/// A server and `n` clients, each with one vconn to it.
fn room(h: &mut Harness, n: usize) -> (Peer, Vec<(Peer, u32)>) {
    let mut s = h.server(1);
    let mut members = Vec::new();
    for _ in 0..n {
        let (mut c, cid) = h.client();
        let v = h.open(&mut c, cid, &mut s, 1);
        members.push((c, v));
    }
    (s, members)
}

#[test]
fn a_server_that_dials_id_0_learns_the_features_and_a_client_is_refused() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, _) = h.client();
    s.send_cmd(Command::Dial { remote_id: 0 });
    c.send_cmd(Command::Dial { remote_id: 0 });
    h.turn();
    assert_eq!(
        s.recv(),
        vec![Got::Cmd(Command::Features {
            bits: FEATURE_GROUPS
        })]
    );
    assert_eq!(c.recv(), vec![Got::Cmd(Command::Refuse { remote_id: 0 })]);
    assert!(h.alive(&s) && h.alive(&c));
}

/// 40 members; the server interleaves group sends (except one member),
/// multicasts to half the room and unicast frames; every member gets what
/// was meant for it, once, in the order the server sent it, and the
/// server's link carried one frame per broadcast.
#[test]
fn every_member_gets_each_message_once_and_in_order_among_unicast() {
    let mut h = Harness::new();
    let (mut s, mut members) = room(&mut h, 40);
    let ids: Vec<u32> = members.iter().map(|(_, v)| *v).collect();
    s.send(&join(7, &ids));
    h.turn();
    assert_eq!(h.core.stats().group_members, 40);
    assert_eq!(h.core.stats().groups, 1);
    let mut expect: Vec<Vec<Got>> = vec![Vec::new(); ids.len()];
    let bytes_before = h.core.stats().bytes_from_servers;
    let mut sent = 0;
    for round in 0..30u32 {
        let msg = format!("broadcast {round}").into_bytes();
        let skip = ids[round as usize % ids.len()];
        s.send(&group_send(7, &[skip], &msg));
        sent += group_send(7, &[skip], &msg).len();
        let half: Vec<u32> = ids.iter().copied().step_by(2).collect();
        let multi = format!("half {round}").into_bytes();
        s.send(&multicast(&half, &multi));
        sent += multicast(&half, &multi).len();
        let one = ids[(round as usize * 7) % ids.len()];
        let uni = format!("unicast {round}").into_bytes();
        s.send_data(one, &uni);
        sent += 8 + uni.len();
        for (i, &v) in ids.iter().enumerate() {
            if v != skip {
                expect[i].push(Got::Data(v, msg.clone()));
            }
            if half.contains(&v) {
                expect[i].push(Got::Data(v, multi.clone()));
            }
            if v == one {
                expect[i].push(Got::Data(v, uni.clone()));
            }
        }
        // A few rounds per turn, so queues hold several shared frames.
        if round % 3 == 2 {
            h.turn();
        }
    }
    for _ in 0..5 {
        h.turn();
    }
    for (i, (c, _)) in members.iter_mut().enumerate() {
        assert_eq!(c.recv(), expect[i], "member {i}");
    }
    let st = h.core.stats();
    assert_eq!(st.group_sends, 30);
    assert_eq!(st.multicasts, 30);
    assert_eq!(st.frames_fanned_out, 30 * 39 + 30 * 20);
    assert_eq!(st.bytes_from_servers - bytes_before, sent as u64);
    assert!(s.recv().is_empty(), "nothing comes back to the server");
    assert_eq!(h.core.wpool.shared_chunks(), 0, "every payload given back");
}

/// The payload of a group send is held once however many queues hold it:
/// with every member's socket taking nothing, the write pool holds one
/// chunk for the payload (and none per member).
#[test]
fn a_queued_broadcast_holds_its_payload_once() {
    let mut h = Harness::new();
    let (s, members) = room(&mut h, 100);
    let ids: Vec<u32> = members.iter().map(|(_, v)| *v).collect();
    s.send(&join(3, &ids));
    h.turn();
    for (c, _) in &members {
        c.set_write_room(Some(0));
    }
    h.turn();
    let before = h.core.wpool.stats();
    s.send(&group_send(3, &[], &[0xab; 1000]));
    h.turn();
    let after = h.core.wpool.stats();
    assert_eq!(h.core.stats().frames_fanned_out, 100);
    assert_eq!(h.core.wpool.shared_chunks(), 1);
    assert_eq!(after.chunks_in_use - before.chunks_in_use, 1);
    assert!(after.bytes_in_use - before.bytes_in_use <= 2048);
    let queued: usize = members
        .iter()
        .map(|(c, _)| h.core.conns[c.key].out.bytes())
        .sum();
    assert_eq!(queued, 100 * 1008, "each member owes its own frame");
    for (c, _) in &members {
        c.set_write_room(None);
    }
    h.turn();
    assert_eq!(h.core.wpool.shared_chunks(), 0);
}

#[test]
fn joins_leaves_and_closes_race_without_stray_deliveries() {
    let mut h = Harness::new();
    let (s, mut members) = room(&mut h, 6);
    let ids: Vec<u32> = members.iter().map(|(_, v)| *v).collect();
    // Member 0 closes its vconn in the same turn the server adds it; 1
    // hangs up; 2 is added twice; 3 joins and leaves in one turn.
    members[0].0.send_cmd(Command::Close { conn_id: ids[0] });
    members[1].0.hang_up();
    s.send(&join(9, &ids));
    s.send(&join(9, &[ids[2]]));
    s.send(&leave(9, &[ids[3]]));
    s.send(&group_send(9, &[], b"one"));
    h.turn();
    h.turn();
    let got: Vec<Vec<Got>> = members.iter_mut().map(|(c, _)| c.recv()).collect();
    let data = |g: &[Got]| {
        g.iter()
            .filter(|x| matches!(x, Got::Data(..)))
            .cloned()
            .collect::<Vec<_>>()
    };
    // Member 0's Close and the join crossed: whichever came first, it
    // gets at most the one message, never twice.
    assert!(data(&got[0]).len() <= 1);
    assert!(data(&got[3]).is_empty(), "left before the send");
    for i in [2, 4, 5] {
        assert_eq!(
            data(&got[i]),
            vec![Got::Data(ids[i], b"one".to_vec())],
            "{i}"
        );
    }
    // The closed vconns are out of the group.
    let members_now = h.core.stats().group_members;
    assert_eq!(members_now, 3, "2, 4 and 5 remain");
    // Emptying the group removes it.
    s.send(&leave(9, &[]));
    h.turn();
    assert_eq!(
        (h.core.stats().groups, h.core.stats().group_members),
        (0, 0)
    );
    // A server that goes takes its groups with it.
    s.send(&join(10, &ids[4..]));
    h.turn();
    assert_eq!(h.core.stats().group_members, 2);
    s.hang_up();
    h.turn();
    assert_eq!(
        (h.core.stats().groups, h.core.stats().group_members),
        (0, 0)
    );
}

/// A member that stops reading is cut as a slow consumer; the others get
/// every message.
#[test]
fn a_slow_member_is_cut_while_the_others_keep_receiving() {
    let mut cfg = test_config();
    cfg.client.send_queue_bytes = 64 * 1024;
    let mut h = Harness::with(cfg);
    let (s, mut members) = room(&mut h, 5);
    let ids: Vec<u32> = members.iter().map(|(_, v)| *v).collect();
    s.send(&join(1, &ids));
    h.turn();
    members[0].0.set_write_room(Some(0));
    let msg = [5u8; 4000];
    for _ in 0..40 {
        s.send(&group_send(1, &[], &msg));
        h.turn();
    }
    assert!(!h.alive(&members[0].0));
    assert_eq!(h.reason(&members[0].0), Some(CloseReason::SlowConsumer));
    for (c, v) in members.iter_mut().skip(1) {
        let got = c.recv();
        assert_eq!(got.len(), 40);
        assert!(got.iter().all(|g| *g == Got::Data(*v, msg.to_vec())));
    }
    assert!(h.alive(&s));
    assert_eq!(h.core.stats().group_members, 4);
}

#[test]
fn joins_over_the_limits_are_refused_and_counted() {
    let mut cfg = test_config();
    cfg.groups = GroupLimits {
        max_groups: 2,
        max_members: 3,
        max_per_vconn: 2,
    };
    let mut h = Harness::with(cfg);
    let (mut s, members) = room(&mut h, 4);
    let ids: Vec<u32> = members.iter().map(|(_, v)| *v).collect();
    s.send(&join(1, &ids)); // the fourth is over max_members
    s.send(&join(2, &ids[..1]));
    s.send(&join(3, &ids[1..2])); // a third group
    s.send(&join(2, &ids[..1])); // already in: fine
    h.turn();
    assert_eq!(
        s.recv(),
        vec![
            Got::Cmd(Command::JoinRefused {
                group: 1,
                conn_id: ids[3]
            }),
            Got::Cmd(Command::JoinRefused {
                group: 3,
                conn_id: ids[1]
            }),
        ]
    );
    let st = h.core.stats();
    assert_eq!(st.group_joins_refused, 2);
    assert_eq!((st.groups, st.group_members), (2, 4));
    assert!(h.alive(&s));
}

#[test]
fn a_multicast_to_a_closed_vconn_is_answered_with_close() {
    let mut h = Harness::new();
    let (mut s, mut members) = room(&mut h, 2);
    let ids: Vec<u32> = members.iter().map(|(_, v)| *v).collect();
    members[0].0.send_cmd(Command::Close { conn_id: ids[0] });
    h.turn();
    s.recv();
    s.send(&multicast(&ids, b"hi"));
    h.turn();
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Close { conn_id: ids[0] })]);
    assert_eq!(members[1].0.recv(), vec![Got::Data(ids[1], b"hi".to_vec())]);
}

/// A command naming another server's vconn (or sent by a client, or that
/// does not add up) closes its sender only and delivers nothing.
#[test]
fn bad_and_spoofing_fan_out_commands_close_only_their_sender() {
    type Make = fn(u32, u32) -> Vec<u8>;
    let cases: Vec<(Make, ReasonCheck)> = vec![
        (
            |mine, theirs| multicast(&[mine, theirs], b"x"),
            |e| matches!(e, ProtocolError::Spoofed { .. }),
        ),
        (
            |mine, theirs| join(1, &[mine, theirs]),
            |e| matches!(e, ProtocolError::Spoofed { .. }),
        ),
        (
            |_, _| vec![9, 0, 0, 0, 0, 0, 0, 0, 8, 5, 0, 0, 0],
            |e| matches!(e, ProtocolError::Command(CommandError::Group(g)) if g.kind == GroupType::Multicast),
        ),
    ];
    for (make, check) in cases {
        let mut h = Harness::new();
        let mut s = h.server(1);
        let mut other = h.server(2);
        let (mut c, cid) = h.client();
        let mine = h.open(&mut c, cid, &mut s, 1);
        let theirs = h.open(&mut c, cid, &mut other, 2);
        s.send(&make(mine, theirs));
        h.turn();
        assert!(!h.alive(&s));
        match h.reason(&s) {
            Some(CloseReason::Protocol(e)) => assert!(check(&e), "{e:?}"),
            r => panic!("closed for {r:?}"),
        }
        assert!(h.alive(&other) && h.alive(&c));
        let got = c.recv();
        assert!(
            !got.iter().any(|g| matches!(g, Got::Data(..))),
            "nothing delivered: {got:?}"
        );
    }
}

/// A group send larger than the server's read buffer, trickled in pieces,
/// arrives whole; a server that dies mid-command delivers nothing.
#[test]
fn a_large_group_send_is_gathered_whole_and_a_cut_one_is_dropped() {
    let mut h = Harness::new();
    let (s, mut members) = room(&mut h, 3);
    let ids: Vec<u32> = members.iter().map(|(_, v)| *v).collect();
    s.send(&join(4, &ids));
    h.turn();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let frame = group_send(4, &[], &big);
    for piece in frame.chunks(30_000) {
        s.send(piece);
        h.turn();
        if piece.len() == 30_000 {
            assert!(members.iter_mut().all(|(c, _)| c.recv().is_empty()));
        }
    }
    h.turn();
    for (c, v) in members.iter_mut() {
        assert_eq!(c.recv(), vec![Got::Data(*v, big.clone())]);
    }
    s.send(&frame[..100_000]);
    h.turn();
    s.hang_up();
    h.turn();
    assert!(!h.alive(&s));
    for (c, v) in members.iter_mut() {
        assert_eq!(c.recv(), vec![Got::Cmd(Command::Close { conn_id: *v })]);
    }
    assert_eq!(h.core.stats().partial_frames_dropped, 1);
    assert_eq!(h.core.staged, 0);
}
