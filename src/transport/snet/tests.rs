//! The snet transport, both sides over in-memory links: handshake, data
//! both ways, links cut at every point, resumes, and the failures.

use std::io::IoSlice;

use super::*;
use crate::snet::{Resume, RewindError};
use crate::transport::MemPipe;

fn settings(encrypt: bool, buffer: usize) -> SnetSettings {
    SnetSettings { encrypt, buffer }
}

/// A gateway-side and an endpoint-side transport and the pipes under them.
struct Pair {
    gw: Snet<MemPipe>,
    ep: Snet<MemPipe>,
    /// What each transport's link sees from the other side.
    gw_link: MemPipe,
    ep_link: MemPipe,
}

impl Pair {
    fn new(s: SnetSettings) -> Pair {
        let (gw_link, ep_link) = (MemPipe::new(), MemPipe::new());
        let gw = Snet::accept(gw_link.clone(), s);
        let ep = Snet::connect_with_key(ep_link.clone(), s, 0x1234_5678);
        Pair {
            gw,
            ep,
            gw_link,
            ep_link,
        }
    }

    /// Moves bytes between the links, `limit` at most each way.
    fn shuttle(&mut self, limit: usize) {
        let a = self.ep_link.take_output();
        let n = a.len().min(limit);
        self.gw_link.send(&a[..n]);
        let b = self.gw_link.take_output();
        let n = b.len().min(limit);
        self.ep_link.send(&b[..n]);
    }

    /// The endpoint dials again over a new link, and the gateway reads its
    /// reconnect request on a fresh link of its own: that link's transport
    /// and the request (the pair's links are the new ones from here).
    fn redial(&mut self, s: SnetSettings) -> (Snet<MemPipe>, Resume) {
        let (gw_link, ep_link) = (MemPipe::new(), MemPipe::new());
        self.ep.reattach(ep_link.clone());
        self.ep.write(&[]);
        let mut fresh = Snet::accept(gw_link.clone(), s);
        gw_link.send(&ep_link.take_output());
        let mut buf = [0u8; 8];
        fresh.read(&mut buf, Ready::READABLE);
        let Some(Ok(Request::Resume(r))) = fresh.request() else {
            panic!("no reconnect request");
        };
        self.gw_link = gw_link;
        self.ep_link = ep_link;
        (fresh, r)
    }

    fn handshake(&mut self, id: u64) {
        assert_eq!(self.ep.write(&[]), (0, IoStatus::Continue));
        self.shuttle(usize::MAX);
        let mut buf = [0u8; 64];
        assert_eq!(self.gw.read(&mut buf, Ready::READABLE).0, 0);
        assert!(matches!(self.gw.request(), Some(Ok(Request::New { .. }))));
        self.gw.open(id, 0x9999).unwrap();
        assert_eq!(self.gw.write(&[]), (0, IoStatus::Continue));
        self.shuttle(usize::MAX);
        assert_eq!(self.ep.read(&mut buf, Ready::READABLE).0, 0);
        assert_eq!(self.ep.id(), Some(id));
        assert!(!self.ep.is_handshaking() && !self.gw.is_handshaking());
    }
}

fn read_all(t: &mut Snet<MemPipe>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let (n, status) = t.read(&mut buf, Ready::READABLE);
        out.extend_from_slice(&buf[..n]);
        if n == 0 || status != IoStatus::Continue {
            return out;
        }
    }
}

#[test]
fn handshake_then_data_both_ways() {
    for encrypt in [false, true] {
        let mut p = Pair::new(settings(encrypt, 1024));
        p.handshake(42);
        assert_eq!(
            p.ep.write(&[IoSlice::new(b"hello "), IoSlice::new(b"gateway")])
                .0,
            13
        );
        assert_eq!(p.gw.write(&[IoSlice::new(b"hello endpoint")]).0, 14);
        let (to_gw, to_ep) = (p.ep_link.take_output(), p.gw_link.take_output());
        assert_eq!(to_gw != b"hello gateway", encrypt);
        p.gw_link.send(&to_gw);
        p.ep_link.send(&to_ep);
        assert_eq!(read_all(&mut p.gw), b"hello gateway");
        assert_eq!(read_all(&mut p.ep), b"hello endpoint");
    }
}

/// Cuts the link after every possible number of bytes has passed each way,
/// with bytes in flight both ways, and resumes over a new link: each side
/// receives every byte exactly once, in order.
#[test]
fn a_cut_anywhere_loses_and_repeats_nothing() {
    let msg_to_gw: Vec<u8> = (0..60u8).collect();
    let msg_to_ep: Vec<u8> = (100..180u8).collect();
    for encrypt in [false, true] {
        for cut in 0..40 {
            let mut p = Pair::new(settings(encrypt, 128));
            p.handshake(5);
            p.ep.write(&[IoSlice::new(&msg_to_gw[..30])]);
            p.gw.write(&[IoSlice::new(&msg_to_ep[..40])]);
            // Part passes, the rest is lost with the link.
            p.shuttle(cut);
            let mut got_gw = read_all(&mut p.gw);
            let mut got_ep = read_all(&mut p.ep);
            p.gw_link.reset();
            p.ep_link.reset();
            read_all(&mut p.gw);
            read_all(&mut p.ep);
            assert!(p.gw.is_detached() && p.ep.is_detached(), "cut {cut}");
            // While detached, writes wait.
            assert_eq!(p.gw.write(&[IoSlice::new(b"x")]), (0, IoStatus::WouldBlock));

            // The endpoint dials again; the gateway moves the new link into
            // the waiting stream.
            let (mut fresh, r) = p.redial(settings(encrypt, 128));
            p.gw.resume_from(&mut fresh, &r).unwrap();
            p.gw.write(&[IoSlice::new(&msg_to_ep[40..])]);
            p.shuttle(usize::MAX);
            got_ep.extend(read_all(&mut p.ep));
            p.ep.write(&[IoSlice::new(&msg_to_gw[30..])]);
            p.shuttle(usize::MAX);
            got_gw.extend(read_all(&mut p.gw));
            assert_eq!(got_gw, msg_to_gw, "cut {cut}, encrypt {encrypt}");
            assert_eq!(got_ep, msg_to_ep, "cut {cut}, encrypt {encrypt}");
        }
    }
}

#[test]
fn a_resume_beyond_the_ring_fails_for_good() {
    let mut p = Pair::new(settings(false, 16));
    p.handshake(9);
    // 32 bytes sent by the gateway, none arrive.
    for chunk in [[1u8; 16], [2; 16]] {
        assert_eq!(p.gw.write(&[IoSlice::new(&chunk)]).0, 16);
    }
    p.gw_link.take_output();
    p.gw_link.reset();
    read_all(&mut p.gw);
    let (mut fresh, r) = p.redial(settings(false, 16));
    assert_eq!(
        p.gw.resume_from(&mut fresh, &r),
        Err(SnetError::Rewind(RewindError::NotInRing {
            resend: 32,
            capacity: 16
        }))
    );
    assert!(p.gw.failure().is_some());
}

#[test]
fn a_refused_resume_is_a_typed_failure_on_the_endpoint() {
    let mut p = Pair::new(settings(true, 64));
    p.handshake(3);
    p.ep_link.reset();
    read_all(&mut p.ep);
    assert!(p.ep.is_detached());
    let link = MemPipe::new();
    p.ep.reattach(link.clone());
    p.ep.write(&[]);
    // The gateway does not know the stream: it closes the link.
    link.hang_up();
    let mut buf = [0u8; 8];
    assert_eq!(
        p.ep.read(&mut buf, Ready::READABLE),
        (0, IoStatus::Error(ErrorKind::InvalidData))
    );
    assert_eq!(p.ep.failure(), Some(SnetError::UnknownStream));
}

#[test]
fn a_wrong_key_or_an_unknown_stream_is_refused() {
    let mut p = Pair::new(settings(false, 64));
    p.handshake(3);
    let mut q = Pair::new(settings(false, 64));
    q.ep.private = 0x4242;
    q.ep.send_handshake(&Session::request(0x4242));
    q.handshake(3);
    // q's endpoint claims p's stream 3 with its own key.
    q.ep_link.reset();
    read_all(&mut q.ep);
    let link = MemPipe::new();
    q.ep.reattach(link.clone());
    q.ep.write(&[]);
    let fresh_link = MemPipe::new();
    let mut fresh = Snet::accept(fresh_link.clone(), settings(false, 64));
    fresh_link.send(&link.take_output());
    let mut buf = [0u8; 8];
    fresh.read(&mut buf, Ready::READABLE);
    let Some(Ok(Request::Resume(r))) = fresh.request() else {
        panic!("no reconnect request");
    };
    assert_eq!(p.gw.check(&r), Err(SnetError::BadDigest));
    assert_eq!(p.gw.resume_from(&mut fresh, &r), Err(SnetError::BadDigest));
    // p's stream is untouched.
    assert!(p.gw.failure().is_none() && !p.gw.is_detached());
    assert_eq!(fresh.open(4, 1), Err(SnetError::UnknownStream));
}

#[test]
fn a_zero_public_key_is_refused() {
    let link = MemPipe::new();
    let mut t = Snet::accept(link.clone(), settings(false, 64));
    link.send(&[0u8; REQUEST_LEN]);
    let mut buf = [0u8; 8];
    t.read(&mut buf, Ready::READABLE);
    assert_eq!(t.request(), Some(Err(SnetError::ZeroPublicKey)));
}

#[test]
fn a_request_split_across_reads_is_gathered() {
    let link = MemPipe::new();
    let mut t = Snet::accept(link.clone(), settings(false, 64));
    let req = Session::request(77);
    let mut buf = [0u8; 8];
    for piece in req.chunks(3) {
        assert!(t.request().is_none());
        link.send(piece);
        t.read(&mut buf, Ready::READABLE);
    }
    assert!(matches!(t.request(), Some(Ok(Request::New { .. }))));
    // Nothing after the request was read.
    link.send(b"later");
    t.open(1, 2).unwrap();
    assert_eq!(read_all(&mut t), b"later");
}

#[test]
fn the_end_after_shutdown_is_the_end() {
    let mut p = Pair::new(settings(false, 64));
    p.handshake(2);
    assert_eq!(p.gw.shutdown_write(), IoStatus::Continue);
    assert!(p.gw_link.write_shut());
    p.gw_link.hang_up();
    let mut buf = [0u8; 8];
    assert_eq!(p.gw.read(&mut buf, Ready::READABLE), (0, IoStatus::Closed));
    assert!(!p.gw.is_detached());
}
