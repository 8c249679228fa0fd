//! The gateway core driven by arbitrary sequences of operations: peers
//! connecting and hanging up, well-formed and arbitrary bytes, dials, data,
//! closes, large frames, blocked writers, jumps of time. After every step
//! the core's invariants must hold (every vconn has two live ends, each
//! end's list matches the table, ID maps agree, queue caps hold) and every
//! byte the gateway sent must parse as frames it may send. At the end,
//! with every peer gone, nothing may be left: no connection, no vconn, no
//! buffer. Two promises of the data path are checked on every frame: a
//! data frame a peer receives is a run of bytes some peer actually sent
//! (nothing invented, nothing spliced from two sources), and no connection
//! waits on anything but a congested server (a partial frame holds no one).
//! The fan-out commands (multicast, join, leave, group send, the feature
//! probe) are among the operations; a frame they deliver must be one a
//! server asked for (its message on one of the conn IDs it knew of).

use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use uniway::gateway::{Core, Stats};
use uniway::random::SeededRandom;
use uniway::transport::{MemPipe, Ready};
use uniway::wire::{self, Challenge, Command, Origin, Status, CHALLENGE_LEN};
use uniway::{Config, Side};

const KEY: &[u8] = b"fuzz-key";

/// One step of a run.
#[derive(Arbitrary, Debug)]
pub enum Op {
    Connect {
        server: bool,
    },
    HangUp {
        peer: u8,
    },
    Reset {
        peer: u8,
    },
    Raw {
        peer: u8,
        bytes: Vec<u8>,
    },
    Handshake {
        peer: u8,
        server_id: u8,
        good_key: bool,
    },
    Dial {
        peer: u8,
        remote: u8,
    },
    Data {
        peer: u8,
        vconn: u8,
        len: u8,
    },
    Large {
        peer: u8,
        vconn: u8,
        len: u16,
        sent: u16,
    },
    Close {
        peer: u8,
        vconn: u8,
    },
    Ping {
        peer: u8,
    },
    WriteRoom {
        peer: u8,
        room: Option<u16>,
    },
    Advance {
        ms: u16,
    },
    Probe {
        peer: u8,
    },
    Multicast {
        peer: u8,
        /// Which of the peer's vconns, one bit each (and one unknown).
        vconns: u8,
        len: u8,
    },
    Join {
        peer: u8,
        group: u8,
        vconns: u8,
    },
    Leave {
        peer: u8,
        group: u8,
        vconns: u8,
    },
    GroupSend {
        peer: u8,
        group: u8,
        except: u8,
        len: u8,
    },
}

/// The conn IDs of `known` picked by the bits of `mask`; bit 7 adds one
/// no vconn has (or had) in a short run.
fn picked(known: &[u32], mask: u8) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..7)
        .filter(|b| mask & (1 << b) != 0)
        .filter_map(|b| known.get(b).copied())
        .collect();
    if mask & 0x80 != 0 {
        ids.push(0x7fff_0000 + u32::from(mask));
    }
    ids
}

struct Peer {
    key: usize,
    side: Side,
    pipe: MemPipe,
    open: bool,
    received: Vec<u8>,
    /// Everything this peer sent.
    sent: Vec<u8>,
    challenge: Option<Challenge>,
    /// Conn IDs this peer learned from Accept and Connect.
    vconns: Vec<u32>,
    /// IDs of peers on the other side it learned of.
    remotes: Vec<u32>,
}

fn config() -> Config {
    let mut cfg = Config {
        auth_key: KEY.to_vec(),
        max_packet: 4096,
        ..Config::default()
    };
    cfg.client.max_vconns = Some(3);
    cfg.client.buffer_size = 64;
    cfg.client.send_queue_msgs = 20;
    cfg.client.send_queue_bytes = 8192;
    cfg.server.buffer_size = 256;
    cfg.server.send_queue_msgs = 200;
    cfg.server.send_queue_bytes = 16384;
    cfg
}

/// Parses what the gateway sent a peer; panics on anything it may not send,
/// and on a data frame whose bytes no peer sent in one run.
fn absorb(p: &mut Peer, streams: &[Vec<u8>], fanned: &[Vec<u8>]) {
    p.received.extend(p.pipe.take_output());
    if p.side == Side::Server && p.challenge.is_none() {
        if p.received.len() < CHALLENGE_LEN {
            return;
        }
        p.challenge = Challenge::decode(&p.received).complete();
        p.received.drain(..CHALLENGE_LEN);
    }
    loop {
        let f = match wire::decode_frame(&p.received, u32::MAX) {
            Ok(Status::Complete(f)) => f,
            Ok(Status::Partial) => return,
            Err(e) => panic!("gateway sent a bad frame: {e}"),
        };
        if f.is_command() {
            match Command::decode_from(Origin::Gateway, f.message) {
                Ok(Command::Accept { conn_id, remote_id })
                | Ok(Command::Connect { conn_id, remote_id }) => {
                    p.vconns.push(conn_id);
                    p.remotes.push(remote_id);
                }
                Ok(_) => {}
                Err(e) => panic!("gateway sent a bad command: {e}"),
            }
        } else {
            let bytes = &p.received[..f.wire_len()];
            let sent = streams
                .iter()
                .any(|s| s.windows(bytes.len()).any(|w| w == bytes))
                || fanned.iter().any(|f| f == bytes);
            assert!(sent, "a peer received a frame no peer sent: {bytes:?}");
        }
        let n = f.wire_len();
        p.received.drain(..n);
    }
}

fn send(p: &mut Peer, bytes: &[u8]) {
    p.sent.extend_from_slice(bytes);
    p.pipe.send(bytes);
}

fn pick<T: Copy>(items: &[T], i: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(i) % items.len()])
}

/// One fuzz input, decoded into operations the way `fuzz_target!` decodes
/// a typed input: panics if a promise is broken. Returns the core's stats
/// at the end (none if the input decodes to no operations).
pub fn run(data: &[u8]) -> Option<Stats> {
    let Ok(ops) = Vec::<Op>::arbitrary_take_rest(Unstructured::new(data)) else {
        return None;
    };
    Some(run_ops(&ops))
}

/// A run of `ops`: panics if a promise is broken; returns the core's stats
/// at the end.
pub fn run_ops(ops: &[Op]) -> Stats {
    // Seeded: an input replays exactly, challenges included.
    let random = Box::new(SeededRandom::new(0x5eed_0003));
    let mut core: Core<MemPipe> = Core::with_random(config(), 64, random);
    let mut now = Instant::now();
    let mut peers: Vec<Peer> = Vec::new();
    let mut ids: Vec<u32> = Vec::new();
    // Frames a fan-out command may have delivered.
    let mut fanned: Vec<Vec<u8>> = Vec::new();
    for op in ops.iter().take(200) {
        let live: Vec<usize> = (0..peers.len()).filter(|&i| peers[i].open).collect();
        let peer = |i: u8| pick(&live, i);
        match *op {
            Op::Connect { server } => {
                let side = if server { Side::Server } else { Side::Client };
                let pipe = MemPipe::new();
                if let Ok(key) = core.accept(side, pipe.clone(), now) {
                    peers.push(Peer {
                        key,
                        side,
                        pipe,
                        open: true,
                        received: Vec::new(),
                        sent: Vec::new(),
                        challenge: None,
                        vconns: Vec::new(),
                        remotes: Vec::new(),
                    });
                }
            }
            Op::HangUp { peer: i } => {
                if let Some(i) = peer(i) {
                    peers[i].pipe.hang_up();
                }
            }
            Op::Reset { peer: i } => {
                if let Some(i) = peer(i) {
                    peers[i].pipe.reset();
                }
            }
            Op::Raw { peer: i, ref bytes } => {
                if let Some(i) = peer(i) {
                    send(&mut peers[i], bytes);
                }
            }
            Op::Handshake {
                peer: i,
                server_id,
                good_key,
            } => {
                if let Some(i) = peer(i) {
                    if let Some(c) = peers[i].challenge {
                        let key: &[u8] = if good_key { KEY } else { b"wrong" };
                        send(
                            &mut peers[i],
                            &c.respond(key, u32::from(server_id % 4)).to_bytes(),
                        );
                    }
                }
            }
            Op::Dial { peer: i, remote } => {
                if let Some(i) = peer(i) {
                    let remote_id = match peers[i].side {
                        Side::Client => u32::from(remote % 5),
                        Side::Server => pick(&ids, remote).unwrap_or(u32::from(remote)),
                    };
                    send(&mut peers[i], &Command::Dial { remote_id }.to_bytes());
                }
            }
            Op::Data {
                peer: i,
                vconn,
                len,
            } => {
                if let Some(i) = peer(i) {
                    let id = pick(&peers[i].vconns, vconn).unwrap_or(u32::from(vconn));
                    let mut out = Vec::new();
                    wire::encode_frame(&mut out, id, &vec![len; usize::from(len)]);
                    send(&mut peers[i], &out);
                }
            }
            Op::Large {
                peer: i,
                vconn,
                len,
                sent,
            } => {
                if let Some(i) = peer(i) {
                    let id = pick(&peers[i].vconns, vconn).unwrap_or(u32::from(vconn));
                    let len = usize::from(len) % 4090;
                    let mut out = Vec::new();
                    wire::encode_frame(&mut out, id, &vec![0xa5; len]);
                    let cut = usize::from(sent).min(out.len());
                    send(&mut peers[i], &out[..cut]);
                }
            }
            Op::Close { peer: i, vconn } => {
                if let Some(i) = peer(i) {
                    let conn_id = pick(&peers[i].vconns, vconn).unwrap_or(u32::from(vconn));
                    send(&mut peers[i], &Command::Close { conn_id }.to_bytes());
                }
            }
            Op::Ping { peer: i } => {
                if let Some(i) = peer(i) {
                    send(&mut peers[i], &Command::Ping.to_bytes());
                }
            }
            Op::WriteRoom { peer: i, room } => {
                if let Some(i) = peer(i) {
                    peers[i].pipe.set_write_room(room.map(usize::from));
                }
            }
            Op::Advance { ms } => now += Duration::from_millis(u64::from(ms) * 10),
            Op::Probe { peer: i } => {
                if let Some(i) = peer(i) {
                    send(&mut peers[i], &Command::Dial { remote_id: 0 }.to_bytes());
                }
            }
            Op::Multicast {
                peer: i,
                vconns,
                len,
            } => {
                if let Some(i) = peer(i) {
                    let targets = picked(&peers[i].vconns, vconns);
                    let msg = vec![len ^ 0x3c; usize::from(len)];
                    let mut out = Vec::new();
                    wire::encode_multicast(&mut out, &targets, &msg);
                    for &c in &targets {
                        let mut f = Vec::new();
                        wire::encode_frame(&mut f, c, &msg);
                        fanned.push(f);
                    }
                    send(&mut peers[i], &out);
                }
            }
            Op::Join {
                peer: i,
                group,
                vconns,
            }
            | Op::Leave {
                peer: i,
                group,
                vconns,
            } => {
                if let Some(i) = peer(i) {
                    let encode = match op {
                        Op::Join { .. } => wire::encode_join,
                        _ => wire::encode_leave,
                    };
                    let mut out = Vec::new();
                    let targets = picked(&peers[i].vconns, vconns);
                    encode(&mut out, u32::from(group % 4), &targets);
                    send(&mut peers[i], &out);
                }
            }
            Op::GroupSend {
                peer: i,
                group,
                except,
                len,
            } => {
                if let Some(i) = peer(i) {
                    let msg = vec![len ^ 0xc3; usize::from(len)];
                    let mut out = Vec::new();
                    let except = picked(&peers[i].vconns, except);
                    wire::encode_group_send(&mut out, u32::from(group % 4), &except, &msg);
                    // Any vconn the server knew of may be a member.
                    for &c in &peers[i].vconns {
                        let mut f = Vec::new();
                        wire::encode_frame(&mut f, c, &msg);
                        fanned.push(f);
                    }
                    send(&mut peers[i], &out);
                }
            }
        }
        step(&mut core, &mut peers, now, &fanned);
        ids = core
            .conn_infos(now)
            .iter()
            .filter(|c| c.side == Side::Client)
            .filter_map(|c| c.id)
            .collect();
    }
    // Everyone leaves and every writer unblocks: nothing may be left over.
    for p in &peers {
        p.pipe.hang_up();
        p.pipe.set_write_room(None);
    }
    // Each turn reads a bounded amount, so a backlog takes many turns; time
    // moves on so idle timeouts can fire too. The bound is far above the
    // turns the largest input needs.
    for _ in 0..100_000 {
        step(&mut core, &mut peers, now, &fanned);
        if core.is_empty() {
            break;
        }
        now += Duration::from_secs(1);
    }
    assert!(
        core.is_empty(),
        "{} connections left: {:?} {:?}",
        core.len(),
        core.conn_infos(now),
        core.stats()
    );
    let stats = core.stats();
    assert_eq!(stats.vconns, 0);
    assert_eq!(stats.pool.chunks_in_use, 0, "buffers leaked");
    stats
}

fn step(core: &mut Core<MemPipe>, peers: &mut [Peer], now: Instant, fanned: &[Vec<u8>]) {
    for p in peers.iter().filter(|p| p.open) {
        core.set_readiness(p.key, Ready::READABLE | Ready::WRITABLE);
    }
    core.turn(now);
    if let Err(e) = core.check_invariants() {
        panic!("invariant broken: {e}");
    }
    let closed: Vec<MemPipe> = core.take_closed().map(|(pipe, _)| pipe).collect();
    let streams: Vec<Vec<u8>> = peers.iter().map(|p| p.sent.clone()).collect();
    for p in peers.iter_mut().filter(|p| p.open) {
        absorb(p, &streams, fanned);
        if closed.iter().any(|c| c.same(&p.pipe)) {
            p.open = false;
        }
    }
}
