//! An arbitrary request, then an arbitrary life of one snet stream: both
//! sides write, the links deliver part of what was sent, links are cut
//! (what was in flight is lost) and the endpoint resumes over new links,
//! sometimes with a forged request first. Promises: parsing never panics;
//! each side only ever reads a prefix of what the other wrote, in order,
//! each byte once; a forged reconnect is refused without touching the
//! stream; a genuine one fails only when the bytes it needs have left the
//! resend ring, and then for good.

use std::collections::VecDeque;
use std::io::IoSlice;

use uniway::snet::{Request, SnetError, SnetSettings, REQUEST_LEN};
use uniway::transport::{IoStatus, MemPipe, Ready, Snet, Transport};

/// The resend ring is small, so that resumes that need bytes it no
/// longer holds happen.
const BUFFER: usize = 97;

struct Side {
    t: Snet<MemPipe>,
    link: MemPipe,
    /// Bytes on the wire toward the other side.
    wire: VecDeque<u8>,
    wrote: Vec<u8>,
    read: Vec<u8>,
}

impl Side {
    fn pull(&mut self) {
        self.wire.extend(self.link.take_output());
    }

    fn read_all(&mut self) {
        let mut buf = [0u8; 13];
        loop {
            let (n, status) = self.t.read(&mut buf, Ready::READABLE);
            self.read.extend_from_slice(&buf[..n]);
            if n == 0 || status != IoStatus::Continue {
                return;
            }
        }
    }

    fn write(&mut self, len: usize, fill: u8) {
        let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
        let (n, _) = self.t.write(&[IoSlice::new(&data)]);
        self.wrote.extend_from_slice(&data[..n]);
        self.pull();
    }
}

fn deliver(from: &mut Side, to: &mut Side, n: usize) {
    from.pull();
    let n = n.min(from.wire.len());
    let bytes: Vec<u8> = from.wire.drain(..n).collect();
    to.link.send(&bytes);
}

/// What one input did: bytes each side read, and reconnects resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    /// Bytes the gateway side read, then the endpoint side.
    pub read: (usize, usize),
    /// Reconnects that resumed the stream.
    pub resumes: usize,
    /// Whether the stream ended at a reconnect (a forged one, or one that
    /// could not be resumed).
    pub ended: bool,
}

/// One fuzz input: panics if a promise is broken. Returns what it did.
pub fn run(data: &[u8]) -> Seen {
    let mut seen = Seen::default();
    // The first byte's low bit turns encryption on (encrypted writes go
    // through the ring; plain ones straight to the link).
    let settings = SnetSettings {
        encrypt: data.first().is_some_and(|b| b & 1 == 1),
        buffer: BUFFER,
    };
    // Whatever the first 40 bytes are, parsing them is safe.
    if data.len() >= REQUEST_LEN {
        let mut req = [0u8; REQUEST_LEN];
        req.copy_from_slice(&data[..REQUEST_LEN]);
        let _ = Request::parse(&req);
    }
    let (gl, el) = (MemPipe::new(), MemPipe::new());
    let mut gw = Side {
        t: Snet::accept(gl.clone(), settings),
        link: gl,
        wire: VecDeque::new(),
        wrote: Vec::new(),
        read: Vec::new(),
    };
    let mut ep = Side {
        t: Snet::connect_with_key(el.clone(), settings, 0x0123_4567_89ab_cdef),
        link: el,
        wire: VecDeque::new(),
        wrote: Vec::new(),
        read: Vec::new(),
    };
    ep.t.write(&[]);
    deliver(&mut ep, &mut gw, usize::MAX);
    gw.read_all();
    gw.t.open(1, 0x0fed_cba9_8765_4321).unwrap();
    gw.t.write(&[]);
    deliver(&mut gw, &mut ep, usize::MAX);
    ep.read_all();
    assert_eq!(ep.t.id(), Some(1));

    let mut ops = data.get(REQUEST_LEN..).unwrap_or(&[]).iter().copied();
    while let Some(op) = ops.next() {
        let arg = ops.next().unwrap_or(0) as usize;
        match op % 8 {
            0 => ep.write(arg, op),
            1 => gw.write(arg, op),
            2 => deliver(&mut ep, &mut gw, arg),
            3 => deliver(&mut gw, &mut ep, arg),
            4 => gw.read_all(),
            5 => ep.read_all(),
            6 | 7 => {
                // Cut: what was in flight is lost.
                gw.link.reset();
                ep.link.reset();
                gw.read_all();
                ep.read_all();
                ep.wire.clear();
                gw.wire.clear();
                let forge = op % 8 == 7;
                if !resume(&mut gw, &mut ep, settings, forge, arg) {
                    seen.ended = true;
                    break;
                }
                seen.resumes += 1;
            }
            _ => unreachable!(),
        }
        for (a, b) in [(&gw, &ep), (&ep, &gw)] {
            assert!(
                b.wrote.starts_with(&a.read),
                "read {} bytes that are not what was written",
                a.read.len()
            );
        }
    }
    seen.read = (gw.read.len(), ep.read.len());
    seen
}

/// The endpoint redials; `false` if the stream is over (and rightly so).
fn resume(gw: &mut Side, ep: &mut Side, settings: SnetSettings, forge: bool, at: usize) -> bool {
    if !ep.t.is_detached() || !gw.t.is_detached() {
        // Reads alone did not see the cut yet: a write does.
        ep.t.write(&[IoSlice::new(b"")]);
        gw.t.write(&[IoSlice::new(b"")]);
    }
    let (gl, el) = (MemPipe::new(), MemPipe::new());
    ep.t.reattach(el.clone());
    ep.link = el;
    ep.t.write(&[]);
    let mut req = ep.link.take_output();
    if forge {
        let i = at % req.len().max(1);
        if let Some(b) = req.get_mut(i) {
            *b ^= 0x5a;
        }
    }
    let mut fresh = Snet::accept(gl.clone(), settings);
    gl.send(&req);
    let mut buf = [0u8; 4];
    fresh.read(&mut buf, Ready::READABLE);
    let r = match fresh.request() {
        Some(Ok(Request::Resume(r))) => r,
        // A forged ID of zero is a new-stream request.
        Some(Ok(Request::New { .. })) | Some(Err(_)) if forge => return false,
        other => panic!("not a reconnect: {other:?}"),
    };
    let written = gw.t.session().map_or(0, |s| s.write_count());
    let missing_at_ep = written.saturating_sub(r.read_count);
    match gw.t.resume_from(&mut fresh, &r) {
        Ok(()) => {}
        Err(SnetError::BadDigest | SnetError::UnknownStream) => {
            assert!(forge, "a genuine reconnect refused");
            return false;
        }
        Err(e) => {
            assert!(
                forge || missing_at_ep > BUFFER as u64,
                "resume failed with {missing_at_ep} bytes missing: {e:?}"
            );
            return false;
        }
    }
    assert!(!forge || gw.t.check(&r).is_ok());
    gw.link = gl;
    gw.t.write(&[]);
    deliver(gw, ep, usize::MAX);
    ep.read_all();
    ep.t.write(&[]);
    true
}
