//! Hard limits on accepting: a full token range and a process out of
//! descriptors pause accepting without killing the listener, and accepting
//! resumes by itself once there is room again.
//!
//! These tests live in their own test binary because one of them uses up
//! the process's file descriptors.

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{test_config, RawPeer, DEADLINE};
use mio::net::TcpListener;
use mio::Poll;
use uniway::gateway::LISTENER_SLOTS;
use uniway::wire::Command;
use uniway::{Config, Gateway, Side, TokenRange};

/// The descriptor test starves the whole process; no other test of this
/// binary may run meanwhile.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A gateway with room for `conns` connections, running on its own thread.
fn start(
    cfg: Config,
    conns: usize,
) -> (
    SocketAddr,
    Arc<AtomicBool>,
    std::thread::JoinHandle<Gateway>,
) {
    let poll = Poll::new().unwrap();
    let range = TokenRange {
        start: 0,
        len: LISTENER_SLOTS + conns,
    };
    let mut gw = Gateway::new(cfg, range).unwrap();
    let addr = gw
        .listen(
            poll.registry(),
            Side::Client,
            TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap(),
        )
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let t = std::thread::spawn(move || {
        let mut poll = poll;
        gw.run(&mut poll, &flag).unwrap();
        gw
    });
    (addr, stop, t)
}

/// Whether the gateway has accepted `p`: it answers a Ping.
fn ping(p: &mut RawPeer) {
    p.send_cmd(Command::Ping);
    assert_eq!(p.recv_cmd(), Command::Ping);
}

#[test]
fn full_token_range_pauses_accepting_until_a_slot_frees() {
    let _serial = serial();
    let (addr, stop, t) = start(test_config(), 3);
    let mut first: Vec<RawPeer> = (0..3).map(|_| RawPeer::client(addr)).collect();
    for p in &mut first {
        ping(p);
    }
    // The fourth connects (the kernel's backlog takes it) but is not served.
    let mut waiting = RawPeer::client(addr);
    waiting.send_cmd(Command::Ping);
    waiting
        .stream
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let r = std::io::Read::read(&mut waiting.stream, &mut byte);
    assert!(
        r.is_err(),
        "a connection beyond the range was served: {r:?}"
    );
    waiting.stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // One leaves: the waiting one is accepted and its Ping answered.
    drop(first.pop());
    assert_eq!(waiting.recv_cmd(), Command::Ping);
    stop.store(true, Ordering::Relaxed);
    let gw = t.join().unwrap();
    assert!(gw.stats().accept_full >= 1);
    assert_eq!(gw.stats().clients, 3);
}

/// Runs the gateway loop on the calling thread until `done` holds.
fn drive_until(poll: &mut Poll, gw: &mut Gateway, done: impl Fn(&Gateway) -> bool) {
    let mut events = mio::Events::with_capacity(64);
    let start = Instant::now();
    while !done(gw) {
        assert!(
            start.elapsed() < DEADLINE,
            "condition not reached: {:?}",
            gw.stats()
        );
        let timeout = gw
            .poll_timeout(Instant::now())
            .map_or(Duration::from_millis(10), |t| {
                t.min(Duration::from_millis(10))
            });
        poll.poll(&mut events, Some(timeout)).unwrap();
        for ev in events.iter() {
            gw.handle_event(poll.registry(), ev, Instant::now());
        }
        gw.handle_timeout(poll.registry(), Instant::now());
    }
}

#[test]
fn out_of_descriptors_pauses_accepting_and_the_listener_survives() {
    let _serial = serial();
    let mut poll = Poll::new().unwrap();
    let range = TokenRange {
        start: 0,
        len: LISTENER_SLOTS + 100,
    };
    let mut gw = Gateway::new(test_config(), range).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = gw.listen(poll.registry(), Side::Client, listener).unwrap();
    let mut before = RawPeer::client(addr);
    before.send_cmd(Command::Ping);
    drive_until(&mut poll, &mut gw, |g| g.stats().pings == 1);
    assert_eq!(before.recv_cmd(), Command::Ping);

    // Use up every descriptor, then free one for the client's socket, so
    // the gateway has none left for its side of the connection.
    let mut hog = Vec::new();
    let started = Instant::now();
    loop {
        match File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) if e.raw_os_error() == Some(24) => break, // EMFILE
            Err(e) => panic!("unexpected error while using up descriptors: {e}"),
        }
        assert!(
            started.elapsed() < DEADLINE,
            "could not exhaust descriptors"
        );
    }
    hog.pop();
    let mut pending = RawPeer::client(addr);
    pending.send_cmd(Command::Ping);
    drive_until(&mut poll, &mut gw, |g| g.stats().accept_errors >= 1);
    assert_eq!(gw.stats().clients, 1, "accepted without a descriptor?");

    // Descriptors come back: after the pause the same listener accepts it.
    drop(hog);
    drive_until(&mut poll, &mut gw, |g| g.stats().pings == 2);
    assert_eq!(pending.recv_cmd(), Command::Ping);
    before.send_cmd(Command::Ping);
    drive_until(&mut poll, &mut gw, |g| g.stats().pings == 3);
    assert_eq!(before.recv_cmd(), Command::Ping);
    assert_eq!(gw.stats().clients, 2);
}
