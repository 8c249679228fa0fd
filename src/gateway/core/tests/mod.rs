//! The core on a virtual clock, a seeded random source and in-memory
//! connections: every rule of `docs/protocol.md` §4–6, without sockets or
//! sleeps, each run the same. This file holds the harness and the protocol
//! rules; `pressure.rs` the flow-control, bad-input, large-frame and
//! shutdown cases; `edges.rs` the edges of the data path (sources dying or
//! stalling mid-frame, conn ID reuse, bounded queues, a drain under input);
//! `memory.rs` what partial frames and dead vconns may pin and pages given
//! back after a burst; `fanout.rs` multicast and groups (§10).

mod edges;
mod fanout;
mod memory;
mod pressure;

use std::time::{Duration, Instant};

use super::Core;
use crate::config::Config;
use crate::gateway::stats::{CloseReason, ProtocolError};
use crate::random::SeededRandom;
use crate::side::Side;
use crate::transport::{MemPipe, Ready};
use crate::wire::{self, Challenge, Command, CommandError, Status, CHALLENGE_LEN};

type Pipe = MemPipe;

/// The harness's random seed: every run draws the same challenges.
const SEED: u64 = 0x5eed_0001;

/// What a peer received, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Cmd(Command),
    Data(u32, Vec<u8>),
}

struct Peer {
    key: usize,
    pipe: Pipe,
    /// Received bytes not yet decoded into whole frames.
    pending: Vec<u8>,
}

impl Peer {
    fn send(&self, bytes: &[u8]) {
        self.pipe.send(bytes);
    }
    fn send_cmd(&self, cmd: Command) {
        self.send(&cmd.to_bytes());
    }
    fn send_data(&self, conn_id: u32, msg: &[u8]) {
        let mut out = Vec::new();
        wire::encode_frame(&mut out, conn_id, msg);
        self.send(&out);
    }
    fn hang_up(&self) {
        self.pipe.hang_up();
    }
    fn raw(&mut self) -> Vec<u8> {
        let mut all = std::mem::take(&mut self.pending);
        all.extend(self.pipe.take_output());
        all
    }
    /// Every whole frame received since the last call.
    fn recv(&mut self) -> Vec<Got> {
        let buf = self.raw();
        let mut at = 0;
        let mut out = Vec::new();
        while let Ok(Status::Complete(f)) = wire::decode_frame(&buf[at..], u32::MAX) {
            at += f.wire_len();
            out.push(if f.is_command() {
                Got::Cmd(Command::decode(f.message).expect("gateway sent a bad command"))
            } else {
                Got::Data(f.conn_id, f.message.to_vec())
            });
        }
        self.pending = buf[at..].to_vec();
        out
    }
    fn set_write_room(&self, room: Option<usize>) {
        self.pipe.set_write_room(room);
    }
}

struct Harness {
    core: Core<Pipe>,
    now: Instant,
    closed: Vec<(Pipe, CloseReason)>,
}

fn test_config() -> Config {
    Config {
        auth_key: b"secret".to_vec(),
        ..Config::default()
    }
}

type ReasonCheck = fn(&ProtocolError) -> bool;

impl Harness {
    fn new() -> Harness {
        Harness::with(test_config())
    }

    fn with(cfg: Config) -> Harness {
        Harness {
            core: Core::with_random(cfg, 1000, Box::new(SeededRandom::new(SEED))),
            now: Instant::now(),
            closed: Vec::new(),
        }
    }

    /// One turn, with every connection readable and writable.
    fn turn(&mut self) {
        let keys: Vec<usize> = self.core.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.core
                .set_readiness(k, Ready::READABLE | Ready::WRITABLE);
        }
        self.core.turn(self.now);
        self.core.check_invariants().unwrap();
        self.closed.extend(self.core.take_closed());
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.turn();
    }

    fn accept(&mut self, side: Side) -> Peer {
        let pipe = Pipe::default();
        let key = self.core.accept(side, pipe.clone(), self.now).ok().unwrap();
        Peer {
            key,
            pipe,
            pending: Vec::new(),
        }
    }

    fn client(&mut self) -> (Peer, u32) {
        let p = self.accept(Side::Client);
        self.turn();
        let id = self.core.conns[p.key].id().unwrap();
        (p, id)
    }

    fn server_with_key(&mut self, id: u32, key: &[u8]) -> Peer {
        let mut p = self.accept(Side::Server);
        self.turn();
        let raw = p.raw();
        assert_eq!(raw.len(), CHALLENGE_LEN, "challenge first, alone");
        let challenge = Challenge::decode(&raw).complete().unwrap();
        p.send(&challenge.respond(key, id).to_bytes());
        self.turn();
        p
    }

    fn server(&mut self, id: u32) -> Peer {
        let p = self.server_with_key(id, b"secret");
        assert_eq!(self.core.conns[p.key].id(), Some(id));
        p
    }

    fn alive(&self, p: &Peer) -> bool {
        self.core.conns.contains(p.key)
    }

    /// Why `p` was closed, if it was.
    fn reason(&self, p: &Peer) -> Option<CloseReason> {
        self.closed
            .iter()
            .find(|(pipe, _)| pipe.same(&p.pipe))
            .map(|(_, r)| *r)
    }

    /// Dials from `from` to `remote`, returning the conn ID the gateway
    /// accepted with; asserts the dialed peer got the matching Connect.
    fn open(&mut self, from: &mut Peer, from_id: u32, to: &mut Peer, remote: u32) -> u32 {
        from.send_cmd(Command::Dial { remote_id: remote });
        self.turn();
        let got = from.recv();
        let [Got::Cmd(Command::Accept { conn_id, remote_id })] = got[..] else {
            panic!("expected one Accept, got {got:?}");
        };
        assert_eq!(remote_id, remote);
        assert_eq!(
            to.recv(),
            vec![Got::Cmd(Command::Connect {
                conn_id,
                remote_id: from_id
            })]
        );
        conn_id
    }
}

#[test]
fn server_handshake_ok() {
    let mut h = Harness::new();
    let s = h.server(7);
    assert!(h.alive(&s));
    assert_eq!(h.core.router.servers.get(&7), Some(&s.key));
    assert_eq!(h.core.stats().servers_authenticated, 1);
    assert!(h.reason(&s).is_none());
}

/// The core draws its challenges from the source it is given: the same
/// seed replays the same challenges, another seed gives others.
#[test]
fn challenges_come_from_the_random_source_given() {
    let challenges = |seed: u64| {
        let mut h = Harness::new();
        h.core = Core::with_random(test_config(), 10, Box::new(SeededRandom::new(seed)));
        let mut got = Vec::new();
        for _ in 0..3 {
            let mut p = h.accept(Side::Server);
            h.turn();
            got.push(p.raw());
        }
        got
    };
    let a = challenges(7);
    assert_eq!(a, challenges(7));
    assert_ne!(a, challenges(8));
    assert!(a.iter().all(|c| c.len() == CHALLENGE_LEN));
    assert!(
        a[0] != a[1] && a[1] != a[2],
        "each server its own challenge"
    );
}

#[test]
fn server_handshake_bad_key_closes_only_that_server() {
    let mut h = Harness::new();
    let good = h.server(1);
    let bad = h.server_with_key(2, b"wrong");
    assert!(!h.alive(&bad));
    assert_eq!(h.reason(&bad), Some(CloseReason::AuthFailed));
    assert!(h.alive(&good));
    assert_eq!(h.core.stats().auth_failures, 1);
    assert!(!h.core.router.servers.contains_key(&2));
}

#[test]
fn server_handshake_timeout() {
    let mut h = Harness::new();
    let mut s = h.accept(Side::Server);
    h.turn();
    assert_eq!(s.raw().len(), CHALLENGE_LEN);
    s.send(&[0; 10]); // a truncated response
    h.advance(Duration::from_millis(4999));
    assert!(h.alive(&s));
    h.advance(Duration::from_millis(2));
    assert_eq!(h.reason(&s), Some(CloseReason::HandshakeTimeout));
    assert_eq!(h.core.stats().handshake_timeouts, 1);
}

#[test]
fn clients_get_increasing_nonzero_ids() {
    let mut h = Harness::new();
    let (_a, ia) = h.client();
    let (_b, ib) = h.client();
    assert!(ia != 0 && ib > ia);
}

#[test]
fn workers_hand_out_disjoint_client_ids() {
    for (index, want) in [(0, [1, 4, 7]), (2, [3, 6, 9])] {
        let mut h = Harness::with(Config {
            client_ids: crate::config::ClientIds::worker(index, 3),
            ..test_config()
        });
        let ids: Vec<u32> = (0..3).map(|_| h.client().1).collect();
        assert_eq!(ids, want, "worker {index}");
    }
    let ids = crate::config::ClientIds::worker(1, 3);
    assert_eq!(ids.after(u32::MAX - 1), 2, "wraps to its first");
    assert!(Config {
        client_ids: crate::config::ClientIds { first: 4, step: 3 },
        ..Config::default()
    }
    .validate()
    .is_err());
}

#[test]
fn dial_ok_both_directions_and_forwarding() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v1 = h.open(&mut c, cid, &mut s, 1);
    let v2 = h.open(&mut s, 1, &mut c, cid);
    assert_ne!(v1, v2);
    c.send_data(v1, b"hello");
    s.send_data(v2, b"world");
    s.send_data(v1, b"");
    h.turn();
    assert_eq!(s.recv(), vec![Got::Data(v1, b"hello".to_vec())]);
    assert_eq!(
        c.recv(),
        vec![Got::Data(v2, b"world".to_vec()), Got::Data(v1, vec![])]
    );
    assert_eq!(h.core.stats().frames_from_clients, 1);
    assert_eq!(h.core.stats().frames_from_servers, 2);
}

#[test]
fn forwarded_frames_are_byte_for_byte() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut c, cid, &mut s, 1);
    let mut frame = Vec::new();
    wire::encode_frame(&mut frame, v, &[0xab; 300]);
    c.send(&frame);
    h.turn();
    assert_eq!(s.raw(), frame);
}

#[test]
fn dial_unknown_peer_is_refused() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, _) = h.client();
    c.send_cmd(Command::Dial { remote_id: 99 });
    s.send_cmd(Command::Dial { remote_id: 12345 });
    h.turn();
    assert_eq!(c.recv(), vec![Got::Cmd(Command::Refuse { remote_id: 99 })]);
    assert_eq!(
        s.recv(),
        vec![Got::Cmd(Command::Refuse { remote_id: 12345 })]
    );
    assert_eq!(h.core.stats().refused_unknown, 2);
}

#[test]
fn client_limit_counts_both_directions() {
    let mut cfg = test_config();
    cfg.client.max_vconns = Some(2);
    let mut h = Harness::with(cfg);
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    h.open(&mut c, cid, &mut s, 1);
    h.open(&mut s, 1, &mut c, cid);
    // Client at its limit: its own dial is refused...
    c.send_cmd(Command::Dial { remote_id: 1 });
    h.turn();
    assert_eq!(c.recv(), vec![Got::Cmd(Command::Refuse { remote_id: 1 })]);
    // ...and so is a server's dial to it.
    s.send_cmd(Command::Dial { remote_id: cid });
    h.turn();
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Refuse { remote_id: cid })]);
    assert!(c.recv().is_empty());
    assert_eq!(h.core.stats().refused_limit, 2);
}

#[test]
fn pipelined_dials_are_answered_in_order() {
    let mut h = Harness::new();
    let mut s1 = h.server(1);
    let _s2 = h.server(2);
    let (mut c, _) = h.client();
    for r in [1, 9, 2, 1] {
        c.send_cmd(Command::Dial { remote_id: r });
    }
    h.turn();
    let got = c.recv();
    let remotes: Vec<(bool, u32)> = got
        .iter()
        .map(|g| match g {
            Got::Cmd(Command::Accept { remote_id, .. }) => (true, *remote_id),
            Got::Cmd(Command::Refuse { remote_id }) => (false, *remote_id),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(remotes, vec![(true, 1), (false, 9), (true, 2), (true, 1)]);
    assert_eq!(s1.recv().len(), 2);
}

#[test]
fn close_by_owner_tells_both_ends() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let v = h.open(&mut c, cid, &mut s, 1);
    c.send_cmd(Command::Close { conn_id: v });
    h.turn();
    assert_eq!(c.recv(), vec![Got::Cmd(Command::Close { conn_id: v })]);
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Close { conn_id: v })]);
    assert_eq!(h.core.router.vconns.len(), 0);
}

#[test]
fn close_by_stranger_is_ignored() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let (mut stranger, _) = h.client();
    let v = h.open(&mut c, cid, &mut s, 1);
    stranger.send_cmd(Command::Close { conn_id: v });
    stranger.send_cmd(Command::Close { conn_id: 777 });
    h.turn();
    assert!(stranger.recv().is_empty());
    assert!(c.recv().is_empty() && s.recv().is_empty());
    assert_eq!(h.core.router.vconns.len(), 1);
    assert!(h.alive(&stranger));
    assert_eq!(h.core.stats().closes_ignored, 2);
}

#[test]
fn spoofed_conn_id_disconnects_the_spoofer_only() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c, cid) = h.client();
    let (spoofer, _) = h.client();
    let v = h.open(&mut c, cid, &mut s, 1);
    spoofer.send_data(v, b"inject");
    h.turn();
    assert!(matches!(
        h.reason(&spoofer),
        Some(CloseReason::Protocol(ProtocolError::Spoofed { conn_id })) if conn_id == v
    ));
    assert!(s.recv().is_empty(), "injected frame must not arrive");
    c.send_data(v, b"still fine");
    h.turn();
    assert_eq!(s.recv(), vec![Got::Data(v, b"still fine".to_vec())]);
    assert_eq!(h.core.stats().spoofs, 1);
}

#[test]
fn data_on_dead_vconn_is_answered_with_close() {
    let mut h = Harness::new();
    let (mut c, _) = h.client();
    c.send_data(4242, b"late");
    h.turn();
    assert_eq!(c.recv(), vec![Got::Cmd(Command::Close { conn_id: 4242 })]);
    assert!(h.alive(&c));
    assert_eq!(h.core.stats().frames_on_dead_vconns, 1);
}

#[test]
fn ping_is_answered() {
    let mut h = Harness::new();
    let (mut c, _) = h.client();
    let mut s = h.server(3);
    c.send_cmd(Command::Ping);
    s.send_cmd(Command::Ping);
    h.turn();
    assert_eq!(c.recv(), vec![Got::Cmd(Command::Ping)]);
    assert_eq!(s.recv(), vec![Got::Cmd(Command::Ping)]);
}

#[test]
fn duplicate_server_id_replaces_the_old_server() {
    let mut h = Harness::new();
    let mut old = h.server(5);
    let (mut c, cid) = h.client();
    let v = h.open(&mut c, cid, &mut old, 5);
    let mut new = h.server(5);
    assert_eq!(h.reason(&old), Some(CloseReason::Replaced));
    assert_eq!(h.core.router.servers.get(&5), Some(&new.key));
    assert_eq!(c.recv(), vec![Got::Cmd(Command::Close { conn_id: v })]);
    assert_eq!(h.core.stats().servers_replaced, 1);
    // Dials now reach the new server.
    h.open(&mut c, cid, &mut new, 5);
}

#[test]
fn idle_timeout_closes_silent_peer_but_not_pinging_one() {
    let mut h = Harness::new();
    let (mut pinger, _) = h.client();
    let (silent, _) = h.client();
    for _ in 0..4 {
        pinger.send_cmd(Command::Ping);
        h.advance(Duration::from_secs(10));
        pinger.recv();
    }
    assert!(h.alive(&pinger));
    assert_eq!(h.reason(&silent), Some(CloseReason::IdleTimeout));
    assert_eq!(h.core.stats().idle_timeouts, 1);
}

#[test]
fn trickled_partial_frame_is_not_activity() {
    let mut h = Harness::new();
    let (c, _) = h.client();
    let mut frame = Vec::new();
    wire::encode_frame(&mut frame, 1, &[0; 100]);
    for b in frame.iter().take(40) {
        c.send(&[*b]);
        h.advance(Duration::from_secs(1));
    }
    assert!(!h.alive(&c), "a trickler is idle");
}

#[test]
fn peer_gone_closes_its_vconns_and_tells_the_other_ends() {
    let mut h = Harness::new();
    let mut s = h.server(1);
    let (mut c1, id1) = h.client();
    let (mut c2, id2) = h.client();
    let v1 = h.open(&mut c1, id1, &mut s, 1);
    let v2 = h.open(&mut s, 1, &mut c2, id2);
    s.hang_up();
    h.turn();
    assert!(!h.alive(&s));
    assert_eq!(c1.recv(), vec![Got::Cmd(Command::Close { conn_id: v1 })]);
    assert_eq!(c2.recv(), vec![Got::Cmd(Command::Close { conn_id: v2 })]);
    assert_eq!(h.core.router.vconns.len(), 0);
    assert!(!h.core.router.servers.contains_key(&1));
}
