//! A link-cutting TCP proxy for loopback tests: forwards bytes between
//! each accepted connection and a target, and kills links on demand (all
//! at once, or each after a chosen number of bytes) with a reset, the way
//! a network switch or a dying NAT entry does.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

struct Shared {
    stop: AtomicBool,
    /// Bumped by `cut`: links older than the current value die.
    epoch: AtomicUsize,
    /// Links are cut after this many bytes (both ways together); 0: never.
    cut_after: AtomicUsize,
    /// New connections are reset at once (the network is down).
    hold: AtomicBool,
    links: AtomicUsize,
    cuts: AtomicUsize,
    forwarded: AtomicUsize,
}

/// A proxy on 127.0.0.1 in front of `target`.
pub struct CutProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl CutProxy {
    pub fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            epoch: AtomicUsize::new(0),
            cut_after: AtomicUsize::new(0),
            hold: AtomicBool::new(false),
            links: AtomicUsize::new(0),
            cuts: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((a, _)) => {
                        if s.hold.load(Ordering::SeqCst) {
                            reset(a);
                            continue;
                        }
                        let Ok(b) = TcpStream::connect(target) else {
                            reset(a);
                            continue;
                        };
                        let s = s.clone();
                        std::thread::spawn(move || forward(s, a, b));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        CutProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Kills every live link with a reset.
    pub fn cut(&self) {
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Cuts each link once this many bytes have passed it (both ways
    /// together); `None`: only `cut` does.
    pub fn cut_after(&self, bytes: Option<usize>) {
        self.shared
            .cut_after
            .store(bytes.unwrap_or(0), Ordering::SeqCst);
    }

    /// While `true`, new connections are reset at once.
    pub fn hold(&self, on: bool) {
        self.shared.hold.store(on, Ordering::SeqCst);
    }

    /// Links live now.
    pub fn links(&self) -> usize {
        self.shared.links.load(Ordering::SeqCst)
    }

    /// Links killed so far.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far, both ways.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Closes with a reset (SO_LINGER 0), not a FIN.
fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

/// One link: both directions in one thread over non-blocking sockets, so
/// a cut can drop both sockets at once (and reset them).
fn forward(s: Arc<Shared>, a: TcpStream, b: TcpStream) {
    let epoch = s.epoch.load(Ordering::SeqCst);
    s.links.fetch_add(1, Ordering::SeqCst);
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (mut ab, mut ba): (Vec<u8>, Vec<u8>) = (Vec::new(), Vec::new());
    let (mut a_eof, mut b_eof) = (false, false);
    let mut passed = 0usize;
    let mut buf = [0u8; 16 * 1024];
    let cut = loop {
        if s.epoch.load(Ordering::SeqCst) != epoch {
            break true;
        }
        let limit = s.cut_after.load(Ordering::SeqCst);
        // Never forward past the cut point.
        let room = if limit == 0 {
            buf.len()
        } else if passed >= limit {
            break true;
        } else {
            (limit - passed).min(buf.len())
        };
        let mut idle = true;
        for (from, to, pending, eof) in
            [(&a, &b, &mut ab, &mut a_eof), (&b, &a, &mut ba, &mut b_eof)]
        {
            let (mut from, mut to) = (from, to);
            if !*eof && pending.is_empty() {
                match from.read(&mut buf[..room]) {
                    Ok(0) => {
                        *eof = true;
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    }
                    Ok(n) => {
                        pending.extend_from_slice(&buf[..n]);
                        passed += n;
                        s.forwarded.fetch_add(n, Ordering::SeqCst);
                        idle = false;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => *eof = true,
                }
            }
            if !pending.is_empty() {
                match to.write(pending) {
                    Ok(n) => {
                        pending.drain(..n);
                        idle = false;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => *eof = true,
                }
            }
        }
        if a_eof && b_eof && ab.is_empty() && ba.is_empty() {
            break false;
        }
        if idle {
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    if cut {
        s.cuts.fetch_add(1, Ordering::SeqCst);
        reset(a);
        reset(b);
    }
    s.links.fetch_sub(1, Ordering::SeqCst);
}
