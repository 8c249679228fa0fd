//! The server handshake, from both ends. The wire decoders take any bytes
//! without panicking and round-trip what they decode. Then a server
//! connection to the gateway core answers its challenge with fuzzed bytes,
//! cut into fuzzed pieces: one of a correct response, a response with one
//! bit flipped, or arbitrary bytes, each maybe followed by more bytes. The
//! server is registered exactly when its first 20 bytes are the correct
//! response; otherwise it is closed for a wrong digest, and never both.

use std::time::{Duration, Instant};

use uniway::gateway::{CloseReason, Core};
use uniway::random::SeededRandom;
use uniway::transport::{MemPipe, Ready};
use uniway::wire::{Challenge, Response, Status, CHALLENGE_LEN, RESPONSE_LEN};
use uniway::{Config, Side};

const KEY: &[u8] = b"handshake-fuzz-key";

/// What the gateway made of a server's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The input was too short to make a server of.
    NoServer,
    /// Fewer bytes than a response: still waiting, neither let in nor cut.
    Waiting,
    /// Let in.
    Registered,
    /// Cut for a wrong digest.
    Refused,
}

/// One fuzz input: panics if a promise is broken. Returns what the
/// gateway made of the answer.
pub fn run(data: &[u8]) -> Verdict {
    decoders(data);
    let [mode, split_a, split_b, id0, id1, rest @ ..] = data else {
        return Verdict::NoServer;
    };
    let cfg = Config {
        auth_key: KEY.to_vec(),
        ..Config::default()
    };
    // Seeded: an input replays exactly, the same challenge every time.
    let random = Box::new(SeededRandom::new(0x5eed_0002));
    let mut core: Core<MemPipe> = Core::with_random(cfg, 4, random);
    let mut now = Instant::now();
    let pipe = MemPipe::new();
    let Ok(key) = core.accept(Side::Server, pipe.clone(), now) else {
        panic!("a fresh core refused a connection");
    };
    core.turn(now);
    let challenge = Challenge::decode(&pipe.take_output())
        .complete()
        .expect("the gateway sends its challenge at once");

    let server_id = u32::from(u16::from_le_bytes([*id0, *id1]));
    let good = challenge.respond(KEY, server_id).to_bytes();
    let mut bytes = match mode % 3 {
        0 => good.to_vec(),
        1 => {
            let mut b = good.to_vec();
            let bit = usize::from(*split_a) % (RESPONSE_LEN * 8);
            // Flip a bit of the digest or of the server ID.
            b[bit / 8] ^= 1 << (bit % 8);
            b
        }
        _ => Vec::new(),
    };
    bytes.extend_from_slice(rest);
    // Correct: the digest matches (any server ID may be claimed).
    let correct = bytes.len() >= RESPONSE_LEN && bytes[..16] == good[..16];

    // Deliver it in three pieces, a turn after each.
    let a = usize::from(*split_a).min(bytes.len());
    let b = (a + usize::from(*split_b)).min(bytes.len());
    for piece in [&bytes[..a], &bytes[a..b], &bytes[b..]] {
        pipe.send(piece);
        now += Duration::from_millis(1);
        core.set_readiness(key, Ready::READABLE | Ready::WRITABLE);
        core.turn(now);
    }
    let stats = core.stats();
    let closed: Vec<CloseReason> = core.take_closed().map(|(_, why)| why).collect();
    if bytes.len() < RESPONSE_LEN {
        assert_eq!(
            stats.servers_authenticated,
            0,
            "registered on {} bytes",
            bytes.len()
        );
        assert!(
            !closed.contains(&CloseReason::AuthFailed),
            "judged on a partial response"
        );
        return Verdict::Waiting;
    }
    if correct {
        assert_eq!(
            stats.servers_authenticated, 1,
            "a correct response was refused"
        );
        assert!(!closed.contains(&CloseReason::AuthFailed));
        Verdict::Registered
    } else {
        assert_eq!(
            stats.servers_authenticated, 0,
            "a wrong digest was accepted"
        );
        assert_eq!(stats.auth_failures, 1);
        assert_eq!(closed, vec![CloseReason::AuthFailed]);
        Verdict::Refused
    }
}

fn decoders(data: &[u8]) {
    match Challenge::decode(data) {
        Status::Complete(c) => assert_eq!(&c.0[..], &data[..CHALLENGE_LEN]),
        Status::Partial => assert!(data.len() < CHALLENGE_LEN),
    }
    match Response::decode(data) {
        Status::Complete(r) => assert_eq!(&r.to_bytes()[..], &data[..RESPONSE_LEN]),
        Status::Partial => assert!(data.len() < RESPONSE_LEN),
    }
}
