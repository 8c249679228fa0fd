//! The server WebSocket's own framing (`transport::WsFraming`).
//!
//! - Arbitrary bytes from a client, read in arbitrary pieces: never a
//!   panic; never more payload out than bytes in; the same payload and the
//!   same verdict however the bytes are cut.
//! - Well-formed masked frames made from the input (binary messages
//!   fragmented anyhow, pings between): exactly their payloads come out,
//!   and every ping is answered.
//! - Uniway frames of sizes from the input, offered in pieces cut anyhow to
//!   a socket that takes a few bytes at a time: the client receives one
//!   message per frame, each exactly the frame.

use std::io::{self, IoSlice, Write};

use uniway::transport::{IoStatus, WsFraming};

/// How a read of a client's bytes ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// All bytes taken.
    Open,
    /// A close came (what followed it does not count).
    Closed,
    /// Refused (bad input).
    Refused,
}

/// Reads `bytes` through the framing in pieces of the given sizes; the
/// payload and how it ended.
fn read_in_pieces(bytes: &[u8], sizes: impl Iterator<Item = usize>) -> (Vec<u8>, End) {
    let mut f = WsFraming::new(1 << 16, Vec::new());
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = sizes;
    let mut buf = [0u8; 256];
    while !rest.is_empty() {
        let n = sizes
            .next()
            .unwrap_or(rest.len())
            .clamp(1, buf.len())
            .min(rest.len());
        let mut piece = &rest[..n];
        let (got, status) = f.read(&mut piece, &mut buf[..n], false);
        rest = &rest[n..];
        out.extend_from_slice(&buf[..got]);
        match status {
            IoStatus::Error(_) => return (out, End::Refused),
            IoStatus::Closed => break,
            _ => {}
        }
    }
    let end = if f.peer_closed() {
        End::Closed
    } else {
        End::Open
    };
    (out, end)
}

fn client_frame(out: &mut Vec<u8>, opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) {
    out.push(opcode | if fin { 0x80 } else { 0 });
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// A socket that takes at most `room` bytes per write.
struct Trickle {
    out: Vec<u8>,
    room: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.room);
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The messages in a server's frames (unmasked), with the control frames'
/// opcodes seen.
fn messages(mut wire: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let (mut out, mut controls, mut current) = (Vec::new(), Vec::new(), Vec::new());
    while !wire.is_empty() {
        let (fin, op) = (wire[0] & 0x80 != 0, wire[0] & 0x0f);
        let (len, at) = match wire[1] {
            126 => (usize::from(u16::from_be_bytes([wire[2], wire[3]])), 4),
            127 => (
                u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (usize::from(n), 2),
        };
        let payload = &wire[at..at + len];
        wire = &wire[at + len..];
        if op >= 8 {
            controls.push(op);
            continue;
        }
        current.extend_from_slice(payload);
        if fin {
            out.push(std::mem::take(&mut current));
        }
    }
    (out, controls)
}

/// One fuzz input: panics if a promise is broken. Returns whether the
/// arbitrary bytes were refused, and the uniway frames written through.
pub fn run(data: &[u8]) -> (bool, usize) {
    let Some((&seed, body)) = data.split_first() else {
        return (false, 0);
    };
    let sizes = |k: u8| {
        body.iter()
            .cycle()
            .map(move |&b| usize::from(b ^ k) % 41 + 1)
    };

    // 1. Arbitrary bytes, cut two ways.
    let (a, a_end) = read_in_pieces(body, sizes(seed));
    let (b, b_end) = read_in_pieces(body, std::iter::repeat(body.len().max(1)));
    assert!(a.len() <= body.len());
    assert_eq!(a_end, b_end, "the verdict depends on the cuts");
    if a_end != End::Refused {
        assert_eq!(a, b, "the payload depends on the cuts");
    }

    // 2. Well-formed frames from the input.
    let mut stream = Vec::new();
    let mut want = Vec::new();
    let mut pings = 0;
    let mut in_message = false;
    for (i, chunk) in body.chunks(7).enumerate() {
        let mask = [chunk[0], seed, i as u8, 0x5a];
        if chunk[0] % 5 == 0 {
            client_frame(&mut stream, 9, true, &chunk[1..], mask);
            pings += 1;
            continue;
        }
        let fin = chunk[0] % 3 != 0;
        let op = if in_message { 0 } else { 2 };
        client_frame(&mut stream, op, fin, chunk, mask);
        want.extend_from_slice(chunk);
        in_message = !fin;
    }
    let mut f = WsFraming::new(1 << 20, Vec::new());
    let mut got = Vec::new();
    let mut rest = &stream[..];
    let mut buf = [0u8; 64];
    for size in sizes(seed.wrapping_add(1)) {
        if rest.is_empty() {
            break;
        }
        let n = size.min(rest.len()).min(buf.len());
        let mut piece = &rest[..n];
        let (k, status) = f.read(&mut piece, &mut buf[..n], false);
        assert!(!status.is_end(), "well-formed frames refused");
        got.extend_from_slice(&buf[..k]);
        rest = &rest[n..];
    }
    assert_eq!(got, want);
    let mut sink = Vec::new();
    f.flush(&mut sink);
    assert_eq!(messages(&sink).1, vec![10u8; pings], "every ping answered");

    // 3. Uniway frames written through a trickling socket.
    let frames: Vec<Vec<u8>> = body
        .iter()
        .map(|&b| {
            let n = usize::from(b) * 3;
            let mut frame = ((4 + n) as u32).to_le_bytes().to_vec();
            frame.extend_from_slice(&[1, 0, 0, 0]);
            frame.extend((0..n).map(|i| (i as u8) ^ b));
            frame
        })
        .collect();
    let stream: Vec<u8> = frames.concat();
    let cut = usize::from(seed) % 13 + 1;
    let mut f = WsFraming::new(1 << 20, Vec::new());
    let mut sink = Trickle {
        out: Vec::new(),
        room: usize::from(seed) % 29 + 1,
    };
    let mut pos = 0;
    let mut rounds = 0;
    while pos < stream.len() || f.wants_write() {
        rounds += 1;
        assert!(rounds < 10 * stream.len() + 100, "no progress");
        let bufs: Vec<IoSlice> = stream[pos..]
            .chunks(cut)
            .take(64)
            .map(IoSlice::new)
            .collect();
        pos += f.write(&mut sink, &bufs).0;
    }
    assert_eq!(messages(&sink.out).0, frames);
    (a_end == End::Refused, frames.len())
}
