//! In steady state the forwarding path allocates nothing on the heap: after
//! a warm-up, whole turns of routing frames between a server and clients,
//! including flushing them out, make no allocation at all.
//!
//! A counting global allocator sees every allocation of this test binary;
//! only those made on the test's thread while `Core::turn` runs count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use uniway::gateway::Core;
use uniway::transport::{MemPipe, Ready};
use uniway::wire::{self, Challenge, Command, Status, CHALLENGE_LEN};
use uniway::{Config, Side};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only bumps a thread-local counter, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

fn turn(core: &mut Core<MemPipe>, keys: &[usize], now: Instant) {
    for &k in keys {
        core.set_readiness(k, Ready::READABLE | Ready::WRITABLE);
    }
    core.turn(now);
}

/// Reads every whole frame out of `buf`; returns the conn IDs of Accepts.
fn drain(buf: &mut Vec<u8>) -> Vec<u32> {
    let mut accepted = Vec::new();
    let mut at = 0;
    while let Ok(Status::Complete(f)) = wire::decode_frame(&buf[at..], u32::MAX) {
        if f.is_command() {
            if let Ok(Command::Accept { conn_id, .. }) = Command::decode(f.message) {
                accepted.push(conn_id);
            }
        }
        at += f.wire_len();
    }
    buf.drain(..at);
    accepted
}

#[test]
fn steady_state_forwarding_does_not_allocate() {
    let cfg = Config {
        auth_key: b"k".to_vec(),
        ..Config::default()
    };
    let mut core: Core<MemPipe> = Core::new(cfg, 100);
    let now = Instant::now();

    let server = MemPipe::new();
    let skey = core.accept(Side::Server, server.clone(), now).unwrap();
    turn(&mut core, &[skey], now);
    let challenge = Challenge::decode(&server.take_output()[..CHALLENGE_LEN])
        .complete()
        .unwrap();
    server.send(&challenge.respond(b"k", 1).to_bytes());
    turn(&mut core, &[skey], now);

    let mut clients = Vec::new();
    for _ in 0..8 {
        let pipe = MemPipe::new();
        let key = core.accept(Side::Client, pipe.clone(), now).unwrap();
        pipe.send(&Command::Dial { remote_id: 1 }.to_bytes());
        clients.push((key, pipe));
    }
    let mut keys: Vec<usize> = clients.iter().map(|(k, _)| *k).collect();
    keys.push(skey);
    turn(&mut core, &keys, now);
    let conn_ids: Vec<u32> = clients
        .iter()
        .map(|(_, p)| drain(&mut p.take_output())[0])
        .collect();
    server.take_output();

    // Pre-encode the traffic so the test itself allocates nothing per turn.
    let to_server: Vec<Vec<u8>> = conn_ids
        .iter()
        .map(|&v| {
            let mut f = Vec::new();
            wire::encode_frame(&mut f, v, &[v as u8; 100]);
            f
        })
        .collect();
    let mut to_clients = Vec::new();
    for &v in &conn_ids {
        wire::encode_frame(&mut to_clients, v, &[v as u8; 300]);
    }

    let mut counts = Vec::new();
    let mut warm_up = 0;
    for round in 0..200 {
        for ((_, pipe), frame) in clients.iter().zip(&to_server) {
            pipe.send(frame);
        }
        server.send(&to_clients);
        let n = allocations(|| turn(&mut core, &keys, now));
        if round >= 20 {
            counts.push(n);
        } else {
            warm_up += n;
        }
        let out = server.take_output();
        assert_eq!(out.len(), to_server.iter().map(Vec::len).sum::<usize>());
        for (_, pipe) in &clients {
            assert_eq!(pipe.take_output().len(), 308);
        }
    }
    // The first turns fill the pools, so the counter must have seen them.
    assert!(warm_up > 0, "the counting allocator saw nothing");
    assert!(
        counts.iter().all(|&n| n == 0),
        "allocations per turn: {counts:?}"
    );
    assert_eq!(core.stats().frames_from_clients, 200 * 8);
}
