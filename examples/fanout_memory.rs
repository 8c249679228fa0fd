//! What queued broadcasts cost in memory: the gateway core (no sockets, an
//! in-memory pipe per peer) with one server and a room of clients that
//! read nothing, so everything sent to them stays queued; the server sends
//! broadcasts of `bytes` bytes by unicast (one frame per member) and by
//! GroupSend (`docs/protocol.md` §10). Reports the buffer pool's bytes in
//! use and the heap the core holds (counted by this program's allocator),
//! per queued broadcast and per member.
//!
//! ```sh
//! cargo run --release --example fanout_memory -- [members] [broadcasts] [bytes]
//! ```
//! (defaults 1000, 32, 256)

use std::alloc::{GlobalAlloc, Layout, System};
use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use uniway::gateway::Core;
use uniway::transport::{MemPipe, Ready};
use uniway::wire::{self, Challenge, Command, Status, CHALLENGE_LEN};
use uniway::{Config, Side};

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout is passed through unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

struct Room {
    core: Core<MemPipe>,
    server: MemPipe,
    members: Vec<MemPipe>,
    ids: Vec<u32>,
    now: Instant,
}

impl Room {
    fn turn(&mut self) {
        let keys: Vec<usize> = self
            .core
            .conn_infos(self.now)
            .iter()
            .map(|c| c.key)
            .collect();
        for k in keys {
            self.core
                .set_readiness(k, Ready::READABLE | Ready::WRITABLE);
        }
        self.core.turn(self.now);
    }

    fn open(members: usize) -> Result<Room, Box<dyn Error>> {
        let cfg = Config {
            auth_key: b"k".to_vec(),
            ..Config::default()
        };
        let now = Instant::now();
        let mut r = Room {
            core: Core::new(cfg, members + 8),
            server: MemPipe::new(),
            members: Vec::new(),
            ids: Vec::new(),
            now,
        };
        r.core
            .accept(Side::Server, r.server.clone(), now)
            .map_err(|_| "no room for the server")?;
        r.turn();
        let out = r.server.take_output();
        let challenge = Challenge::decode(&out[..CHALLENGE_LEN])
            .complete()
            .ok_or("no challenge")?;
        r.server.send(&challenge.respond(b"k", 1).to_bytes());
        r.turn();
        for _ in 0..members {
            let pipe = MemPipe::new();
            r.core
                .accept(Side::Client, pipe.clone(), now)
                .map_err(|_| "no room for a client")?;
            pipe.send(&Command::Dial { remote_id: 1 }.to_bytes());
            r.members.push(pipe);
        }
        r.turn();
        let out = r.server.take_output();
        let mut at = 0;
        while let Ok(Status::Complete(f)) = wire::decode_frame(&out[at..], u32::MAX) {
            if let Ok(Command::Connect { conn_id, .. }) = Command::decode(f.message) {
                r.ids.push(conn_id);
            }
            at += f.wire_len();
        }
        if r.ids.len() != members {
            return Err(format!("{} of {members} vconns opened", r.ids.len()).into());
        }
        let mut join = Vec::new();
        wire::encode_join(&mut join, 1, &r.ids);
        r.server.send(&join);
        for m in &r.members {
            m.take_output();
            m.set_write_room(Some(0));
        }
        r.turn();
        Ok(r)
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let arg = |i: usize, default: usize| -> Result<usize, Box<dyn Error>> {
        Ok(match std::env::args().nth(i) {
            Some(v) => v.parse()?,
            None => default,
        })
    };
    let (members, broadcasts, bytes) = (arg(1, 1000)?, arg(2, 32)?, arg(3, 256)?);
    let msg = vec![0x42u8; bytes];
    for group in [false, true] {
        let mut room = Room::open(members)?;
        let (pool0, heap0) = (
            room.core.stats().pool.bytes_in_use,
            LIVE.load(Ordering::Relaxed),
        );
        for _ in 0..broadcasts {
            let mut frames = Vec::new();
            if group {
                wire::encode_group_send(&mut frames, 1, &[], &msg);
            } else {
                for &c in &room.ids {
                    wire::encode_frame(&mut frames, c, &msg);
                }
            }
            room.server.send(&frames);
            // Enough turns for the gateway to read all of it.
            for _ in 0..(frames.len() / (64 * 1024) + 2) {
                room.turn();
            }
        }
        let stats = room.core.stats();
        let queued = stats.queued_bytes;
        let pool = stats.pool.bytes_in_use - pool0;
        let heap = LIVE.load(Ordering::Relaxed) - heap0;
        let expect = (members * broadcasts * (8 + bytes)) as u64;
        if queued as u64 != expect {
            return Err(format!("{queued} bytes queued, expected {expect}").into());
        }
        let per = |x: usize| x as f64 / (broadcasts * members) as f64;
        println!(
            "fanout={} members={members} broadcasts_queued={broadcasts} bytes={bytes} \
             queued_frame_bytes={queued} pool_bytes_in_use={pool} heap_bytes={heap} \
             pool_bytes_per_member_frame={:.1} heap_bytes_per_member_frame={:.1} \
             memory_per_broadcast={:.0}",
            if group { "group" } else { "unicast" },
            per(pool),
            per(heap),
            (pool + heap) as f64 / broadcasts as f64,
        );
    }
    Ok(())
}
