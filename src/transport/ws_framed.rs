//! The data path of an open server-side WebSocket, framed here rather than
//! by tungstenite (which keeps the handshake): frames from the client are
//! unmasked in place in the caller's read buffer, and what the gateway
//! writes goes out with a vectored write, a WebSocket frame header in front
//! of each piece of the write queue, without copying.
//!
//! The mapping stays one uniway frame per binary message: a frame that
//! spans several pieces of the queue goes out as one message in several
//! WebSocket frames (a binary frame, then continuations; browsers see one
//! message). From the client, binary messages, fragmented or not, are the
//! byte stream; a text message, a bad frame or a message longer than the
//! largest uniway frame is refused. Pings are answered with pongs and a
//! close with a close, between frames.

use std::io::{ErrorKind, IoSlice, Read, Write};

use super::{read_status, total_len, write_status, IoStatus};

const OP_CONTINUATION: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;
/// Pieces (each a header and a payload) per vectored write.
const BATCH: usize = 32;
/// The uniway frame header's Length field.
const LENGTH_LEN: usize = 4;
/// Largest frame a client sends (under any listener's message limit).
const CLIENT_FRAME: usize = 16 * 1024;

/// Why the client's bytes were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A text message (only binary is spoken).
    Text,
    /// A message longer than a uniway frame can be.
    TooLong,
    /// A frame the protocol does not allow.
    Bad(&'static str),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Text => f.write_str("a text message (only binary is spoken)"),
            Refusal::TooLong => f.write_str("a message longer than the largest frame"),
            Refusal::Bad(why) => write!(f, "a bad WebSocket frame: {why}"),
        }
    }
}

/// A client frame being read.
#[derive(Debug, Clone, Copy)]
struct InFrame {
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    len: u64,
    done: u64,
}

/// Where the gateway's byte stream is in its uniway frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct OutState {
    /// Bytes of the current uniway frame still to go (0: between frames).
    left: usize,
    /// The current frame's message has had its first WebSocket frame.
    started: bool,
}

/// The framing state of one open WebSocket.
#[derive(Debug, Default)]
pub struct Framed {
    max_message: usize,
    // Reading.
    hdr: [u8; 14],
    hdr_len: usize,
    frame: Option<InFrame>,
    in_message: bool,
    message_len: usize,
    control: Vec<u8>,
    /// Bytes read before the framing took over (after the handshake).
    leftover: Vec<u8>,
    // Writing.
    out: OutState,
    /// The unsent rest of a frame the socket took only part of.
    tail: Vec<u8>,
    tail_at: usize,
    /// Pongs and a close, sent at the next frame boundary.
    controls: Vec<u8>,
    /// A close came from the client: answered, then reads end.
    peer_closed: bool,
    /// A close went to the client.
    close_sent: bool,
    /// The client side (an endpoint's): frames from the server come
    /// unmasked and frames to it go masked, with masks from this generator.
    client: Option<u32>,
}

impl Framed {
    /// Framing for messages up to `max_message` bytes, going on from
    /// `leftover`, bytes read past the handshake.
    pub fn new(max_message: usize, leftover: Vec<u8>) -> Framed {
        Framed {
            max_message,
            leftover,
            ..Framed::default()
        }
    }

    /// The client side's framing (an endpoint talking to a gateway's
    /// WebSocket listener); `seed` starts the mask generator.
    pub fn client(max_message: usize, leftover: Vec<u8>, seed: u32) -> Framed {
        Framed {
            client: Some(seed | 1),
            ..Framed::new(max_message, leftover)
        }
    }

    /// Whether this is the client side.
    pub fn is_client(&self) -> bool {
        self.client.is_some()
    }

    /// The next mask (client side).
    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.client.unwrap_or(1);
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.client = Some(x);
        x.to_ne_bytes()
    }

    /// A control frame, masked on the client side.
    fn push_control(&mut self, opcode: u8, payload: &[u8]) {
        if self.client.is_some() {
            let mask = self.next_mask();
            push_masked(&mut self.controls, opcode, true, payload, mask);
        } else {
            push_frame(&mut self.controls, opcode, true, payload);
        }
    }

    /// Whether a close came from the client.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Whether bytes of its own wait to be written.
    pub fn wants_write(&self) -> bool {
        self.tail_at < self.tail.len() || !self.controls.is_empty()
    }

    /// Reads from `sock` into `buf`; hands out only message payloads.
    /// `short_is_drained`: a read that returns less than asked emptied the
    /// socket (plain TCP under edge-triggered polling, not ending), so no
    /// read is spent on `WouldBlock`.
    pub fn read<S: Read>(
        &mut self,
        sock: &mut S,
        buf: &mut [u8],
        short_is_drained: bool,
    ) -> (usize, IoStatus) {
        if self.peer_closed {
            return (0, IoStatus::Closed);
        }
        let n = if !self.leftover.is_empty() {
            let n = self.leftover.len().min(buf.len());
            buf[..n].copy_from_slice(&self.leftover[..n]);
            self.leftover.drain(..n);
            n
        } else {
            match read_status(sock.read(buf), buf.len()) {
                (n, IoStatus::Continue) => n,
                (_, status) => return (0, status),
            }
        };
        let drained = short_is_drained && n > 0 && n < buf.len() && self.leftover.is_empty();
        match self.decode(&mut buf[..n]) {
            Ok(payload) if drained => (payload, IoStatus::WouldBlock),
            Ok(payload) => (payload, IoStatus::Continue),
            Err(refusal) => {
                log::debug!("WebSocket: {refusal}");
                (0, IoStatus::Error(ErrorKind::InvalidData))
            }
        }
    }

    /// Takes the frames in `data` (as read), moving the unmasked payload of
    /// binary messages to its front; returns the payload's length.
    fn decode(&mut self, data: &mut [u8]) -> Result<usize, Refusal> {
        let (mut r, mut w) = (0, 0);
        // Nothing after a close counts.
        while r < data.len() && !self.peer_closed {
            let Some(mut f) = self.frame else {
                r += self.take_header(&data[r..])?;
                continue;
            };
            let take = ((f.len - f.done) as usize).min(data.len() - r);
            if self.client.is_none() {
                unmask(&mut data[r..r + take], f.mask, f.done as usize);
            }
            if is_control(f.opcode) {
                self.control.extend_from_slice(&data[r..r + take]);
            } else {
                data.copy_within(r..r + take, w);
                w += take;
            }
            r += take;
            f.done += take as u64;
            self.frame = Some(f);
            if f.done == f.len {
                self.end_frame(f);
            }
        }
        Ok(w)
    }

    /// Gathers header bytes from the front of `data`; returns how many
    /// were taken. Starts the frame once its header is whole.
    fn take_header(&mut self, data: &[u8]) -> Result<usize, Refusal> {
        let mut taken = 0;
        loop {
            let need = header_len(&self.hdr[..self.hdr_len]);
            if self.hdr_len >= need {
                break;
            }
            let k = (need - self.hdr_len).min(data.len() - taken);
            if k == 0 {
                return Ok(taken);
            }
            self.hdr[self.hdr_len..self.hdr_len + k].copy_from_slice(&data[taken..taken + k]);
            self.hdr_len += k;
            taken += k;
        }
        let h = &self.hdr[..self.hdr_len];
        let (fin, rsv, opcode, masked) =
            (h[0] & 0x80 != 0, h[0] & 0x70, h[0] & 0x0f, h[1] & 0x80 != 0);
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => u64::from(n),
        };
        self.hdr_len = 0;
        if rsv != 0 {
            return Err(Refusal::Bad("reserved bits set"));
        }
        let mut mask = [0u8; 4];
        match (self.client.is_some(), masked) {
            (false, true) => mask.copy_from_slice(&h[h.len() - 4..]),
            (false, false) => return Err(Refusal::Bad("an unmasked frame from a client")),
            (true, false) => {}
            (true, true) => return Err(Refusal::Bad("a masked frame from a server")),
        }
        match opcode {
            OP_TEXT => return Err(Refusal::Text),
            OP_BINARY if self.in_message => {
                return Err(Refusal::Bad("a new message inside another"))
            }
            OP_CONTINUATION if !self.in_message => {
                return Err(Refusal::Bad("a continuation outside a message"))
            }
            OP_BINARY | OP_CONTINUATION => {
                self.message_len = self.message_len.saturating_add(len as usize);
                if len > self.max_message as u64 || self.message_len > self.max_message {
                    return Err(Refusal::TooLong);
                }
                self.in_message = true;
            }
            OP_CLOSE | OP_PING | OP_PONG => {
                if !fin || len > 125 {
                    return Err(Refusal::Bad("a fragmented or long control frame"));
                }
                self.control.clear();
            }
            _ => return Err(Refusal::Bad("an unknown opcode")),
        }
        let f = InFrame {
            opcode,
            fin,
            mask,
            len,
            done: 0,
        };
        self.frame = Some(f);
        if len == 0 {
            self.end_frame(f);
        }
        Ok(taken)
    }

    fn end_frame(&mut self, f: InFrame) {
        self.frame = None;
        match f.opcode {
            OP_PING => {
                let payload = std::mem::take(&mut self.control);
                self.push_control(OP_PONG, &payload);
            }
            OP_CLOSE => {
                self.peer_closed = true;
                if !self.close_sent {
                    // The status code (if any) echoed, as RFC 6455 asks.
                    let code: Vec<u8> = self.control.iter().take(2).copied().collect();
                    self.push_control(OP_CLOSE, &code);
                    self.close_sent = true;
                }
            }
            OP_PONG => {}
            _ if f.fin => {
                self.in_message = false;
                self.message_len = 0;
            }
            _ => {}
        }
    }

    /// Writes what is owed first (the rest of a frame, then control
    /// frames); `Continue` once nothing is.
    pub fn flush<S: Write>(&mut self, sock: &mut S) -> IoStatus {
        while self.tail_at < self.tail.len() {
            let tail = &self.tail[self.tail_at..];
            match write_status(sock.write(tail), tail.len()) {
                (n, IoStatus::Continue) => self.tail_at += n,
                (_, status) => return status,
            }
        }
        self.tail.clear();
        self.tail_at = 0;
        if !self.controls.is_empty() {
            // Control frames are whole frames: what the socket does not
            // take becomes the tail.
            match write_status(sock.write(&self.controls), self.controls.len()) {
                (n, IoStatus::Continue) => {
                    self.tail.extend_from_slice(&self.controls[n..]);
                    self.controls.clear();
                    if !self.tail.is_empty() {
                        return IoStatus::WouldBlock;
                    }
                }
                (_, status) => return status,
            }
        }
        IoStatus::Continue
    }

    /// Writes the gateway's bytes, one message per uniway frame; returns the
    /// bytes taken.
    pub fn write<S: Write>(&mut self, sock: &mut S, bufs: &[IoSlice<'_>]) -> (usize, IoStatus) {
        match self.flush(sock) {
            IoStatus::Continue => {}
            status => return (0, status),
        }
        if self.close_sent {
            return (0, IoStatus::Closed);
        }
        // Cut the offered bytes into pieces: runs within one slice and one
        // uniway frame, each with a WebSocket frame header.
        let mut headers = [[0u8; 10]; BATCH];
        let mut hdr_lens = [0usize; BATCH];
        let mut payloads: [&[u8]; BATCH] = [&[]; BATCH];
        let mut after = [OutState::default(); BATCH];
        let mut state = self.out;
        let mut pieces = 0;
        'cut: for (i, b) in bufs.iter().enumerate() {
            let mut rest: &[u8] = b;
            while !rest.is_empty() {
                if pieces == BATCH {
                    break 'cut;
                }
                if state.left == 0 {
                    let Some(len) = peek_length(bufs, i, b.len() - rest.len()) else {
                        // Not even the Length field is here yet.
                        break 'cut;
                    };
                    state = OutState {
                        left: (LENGTH_LEN + len).max(crate::wire::HEADER_LEN),
                        started: false,
                    };
                }
                let n = rest.len().min(state.left);
                let fin = n == state.left;
                let op = if state.started {
                    OP_CONTINUATION
                } else {
                    OP_BINARY
                };
                hdr_lens[pieces] = frame_header(&mut headers[pieces], op, fin, n);
                payloads[pieces] = &rest[..n];
                rest = &rest[n..];
                state = if fin {
                    OutState::default()
                } else {
                    OutState {
                        left: state.left - n,
                        started: true,
                    }
                };
                after[pieces] = state;
                pieces += 1;
            }
        }
        if pieces == 0 {
            return (0, IoStatus::Continue);
        }
        let mut iov = [IoSlice::new(&[]); 2 * BATCH];
        for p in 0..pieces {
            iov[2 * p] = IoSlice::new(&headers[p][..hdr_lens[p]]);
            iov[2 * p + 1] = IoSlice::new(payloads[p]);
        }
        let offered = total_len(&iov[..2 * pieces]);
        let written = match write_status(sock.write_vectored(&iov[..2 * pieces]), offered) {
            (n, IoStatus::Continue) => n,
            (_, status) => return (0, status),
        };
        // Pieces written whole are done; one written in part is finished
        // from the tail; the rest were not taken.
        let mut left = written;
        let mut taken = 0;
        for p in 0..pieces {
            let size = hdr_lens[p] + payloads[p].len();
            if left == 0 {
                break;
            }
            taken += payloads[p].len();
            self.out = after[p];
            if left < size {
                let mut piece = headers[p][..hdr_lens[p]].to_vec();
                piece.extend_from_slice(payloads[p]);
                self.tail.extend_from_slice(&piece[left..]);
                return (taken, IoStatus::WouldBlock);
            }
            left -= size;
        }
        let all: usize = (0..pieces).map(|p| hdr_lens[p] + payloads[p].len()).sum();
        if written < all {
            (taken, IoStatus::WouldBlock)
        } else {
            (taken, IoStatus::Continue)
        }
    }

    /// Queues a close to the peer (sent at the next frame boundary).
    pub fn close(&mut self) {
        if !self.close_sent {
            self.push_control(OP_CLOSE, &[]);
            self.close_sent = true;
        }
    }

    /// Client side: writes the endpoint's bytes as masked binary messages
    /// (cut anywhere: the gateway takes their payloads as one stream), at
    /// most `limit` bytes a call; returns the bytes taken.
    pub fn write_client<S: Write>(
        &mut self,
        sock: &mut S,
        bufs: &[IoSlice<'_>],
        limit: usize,
    ) -> (usize, IoStatus) {
        match self.flush(sock) {
            IoStatus::Continue => {}
            status => return (0, status),
        }
        if self.close_sent {
            return (0, IoStatus::Closed);
        }
        // Masking needs a copy: the frames are made in the tail, then sent.
        let mut taken = 0;
        for b in bufs {
            for piece in b.chunks(CLIENT_FRAME) {
                if taken + piece.len() > limit && taken > 0 {
                    break;
                }
                let mask = self.next_mask();
                push_masked(&mut self.tail, OP_BINARY, true, piece, mask);
                taken += piece.len();
            }
        }
        match self.flush(sock) {
            IoStatus::Continue | IoStatus::WouldBlock if taken > 0 => {
                let status = if self.wants_write() {
                    IoStatus::WouldBlock
                } else {
                    IoStatus::Continue
                };
                (taken, status)
            }
            status => (taken, status),
        }
    }

    /// Whether everything, a close included, has gone out.
    pub fn closed_out(&self) -> bool {
        self.close_sent && !self.wants_write()
    }
}

fn is_control(opcode: u8) -> bool {
    opcode & 0x08 != 0
}

/// How long a client frame's header is, from what is known of it (2 until
/// its first two bytes are in).
fn header_len(h: &[u8]) -> usize {
    if h.len() < 2 {
        return 2;
    }
    let ext = match h[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
    2 + ext + mask
}

/// The Length of the uniway frame starting at `at` in `bufs[i]`, reading
/// across slices if the field is split.
fn peek_length(bufs: &[IoSlice<'_>], i: usize, at: usize) -> Option<usize> {
    let mut field = [0u8; LENGTH_LEN];
    let mut got = 0;
    let mut first = at;
    for b in &bufs[i..] {
        let avail = &b[first..];
        let k = avail.len().min(LENGTH_LEN - got);
        field[got..got + k].copy_from_slice(&avail[..k]);
        got += k;
        first = 0;
        if got == LENGTH_LEN {
            return Some(u32::from_le_bytes(field) as usize);
        }
    }
    None
}

/// Writes a server frame header (unmasked) into `h`; returns its length.
fn frame_header(h: &mut [u8; 10], opcode: u8, fin: bool, len: usize) -> usize {
    h[0] = opcode | if fin { 0x80 } else { 0 };
    if len < 126 {
        h[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        h[1] = 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A masked frame (client to server) appended to `out`.
fn push_masked(out: &mut Vec<u8>, opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) {
    let mut h = [0u8; 10];
    let n = frame_header(&mut h, opcode, fin, payload.len());
    h[1] |= 0x80;
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(&mask);
    let at = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[at..], mask, 0);
}

fn push_frame(out: &mut Vec<u8>, opcode: u8, fin: bool, payload: &[u8]) {
    let mut h = [0u8; 10];
    let n = frame_header(&mut h, opcode, fin, payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
}

/// XORs `data` with the mask, `offset` bytes into the frame's payload.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = [0u8; 8];
    for (i, b) in m.iter_mut().enumerate() {
        *b = mask[(offset + i) & 3];
    }
    let word = u64::from_ne_bytes(m);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i & 7];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// A masked client frame.
    fn client_frame(opcode: u8, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut h = [0u8; 10];
        let n = frame_header(&mut h, opcode, fin, payload.len());
        let mut out = h[..n].to_vec();
        out[1] |= 0x80;
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    fn decode_all(f: &mut Framed, bytes: &[u8], piece: usize) -> Result<Vec<u8>, Refusal> {
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece) {
            let mut data = chunk.to_vec();
            let n = f.decode(&mut data)?;
            out.extend_from_slice(&data[..n]);
        }
        Ok(out)
    }

    #[test]
    fn client_frames_split_anywhere_give_the_payloads_in_order() {
        let payload: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let mut stream = client_frame(OP_BINARY, false, &payload[..100], [1, 2, 3, 4]);
        stream.extend(client_frame(OP_PING, true, b"hi", [9, 9, 9, 9]));
        stream.extend(client_frame(
            OP_CONTINUATION,
            true,
            &payload[100..],
            [5, 6, 7, 8],
        ));
        stream.extend(client_frame(OP_BINARY, true, b"", [0, 0, 0, 1]));
        for piece in [1, 2, 3, 7, 64, 1000] {
            let mut f = Framed::new(1024, Vec::new());
            assert_eq!(
                decode_all(&mut f, &stream, piece).unwrap(),
                payload,
                "pieces of {piece}"
            );
            // The ping is answered with a pong carrying its payload.
            assert_eq!(f.controls, [0x80 | OP_PONG, 2, b'h', b'i']);
        }
    }

    #[test]
    fn bad_client_frames_are_refused() {
        let mut f = Framed::new(16, Vec::new());
        assert_eq!(
            decode_all(&mut f, &client_frame(OP_TEXT, true, b"x", [1; 4]), 9),
            Err(Refusal::Text)
        );
        let mut f = Framed::new(16, Vec::new());
        assert_eq!(
            decode_all(&mut f, &client_frame(OP_BINARY, true, &[0; 17], [1; 4]), 9),
            Err(Refusal::TooLong)
        );
        let mut f = Framed::new(16, Vec::new());
        let mut two = client_frame(OP_BINARY, false, &[0; 10], [1; 4]);
        two.extend(client_frame(OP_CONTINUATION, true, &[0; 10], [1; 4]));
        assert_eq!(decode_all(&mut f, &two, 100), Err(Refusal::TooLong));
        let mut f = Framed::new(16, Vec::new());
        let mut unmasked = client_frame(OP_BINARY, true, b"x", [0; 4]);
        unmasked[1] &= 0x7f;
        assert!(matches!(
            decode_all(&mut f, &unmasked[..3], 9),
            Err(Refusal::Bad(_))
        ));
        let mut f = Framed::new(16, Vec::new());
        assert!(matches!(
            decode_all(
                &mut f,
                &client_frame(OP_CONTINUATION, true, b"x", [1; 4]),
                9
            ),
            Err(Refusal::Bad(_))
        ));
    }

    /// An endpoint's framing against a gateway's, both ways, with a ping
    /// from the gateway answered by a masked pong.
    #[test]
    fn the_client_side_speaks_to_the_server_side() {
        let mut server = Framed::new(1 << 20, Vec::new());
        let mut client = Framed::client(usize::MAX, Vec::new(), 7);
        // Client to server: 40 KiB, cut into masked frames.
        let up: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        let (n, status) = client.write_client(&mut wire, &[IoSlice::new(&up)], usize::MAX);
        assert_eq!((n, status), (up.len(), IoStatus::Continue));
        assert!(wire[1] & 0x80 != 0, "client frames are masked");
        assert_eq!(decode_all(&mut server, &wire, 999).unwrap(), up);
        // Server to client: two uniway frames, and a ping between writes.
        let mut frame = 9u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&[1, 0, 0, 0, 9, 8, 7, 6, 5]);
        let mut down = Vec::new();
        server.write(&mut down, &[IoSlice::new(&frame), IoSlice::new(&frame)]);
        let mut got = decode_all(&mut client, &down, 5).unwrap();
        let mut ping = Vec::new();
        push_frame(&mut ping, OP_PING, true, b"p");
        got.extend(decode_all(&mut client, &ping, 2).unwrap());
        assert_eq!(got, [frame.clone(), frame].concat());
        let mut pong = Vec::new();
        client.flush(&mut pong);
        assert_eq!(pong[0], 0x80 | OP_PONG);
        assert!(pong[1] & 0x80 != 0, "the pong is masked");
        // The gateway takes the masked pong without complaint.
        assert_eq!(decode_all(&mut server, &pong, 3).unwrap(), b"");
        // A masked frame from a server is refused by the client.
        let mut bad = Framed::client(usize::MAX, Vec::new(), 3);
        assert!(decode_all(&mut bad, &wire, 100).is_err());
    }

    #[test]
    fn a_close_is_answered_and_ends_the_reads() {
        let mut f = Framed::new(16, Vec::new());
        decode_all(&mut f, &client_frame(OP_CLOSE, true, &[3, 232], [7; 4]), 3).unwrap();
        assert!(f.peer_closed());
        assert_eq!(f.controls, [0x80 | OP_CLOSE, 2, 3, 232]);
        let mut sock = Vec::new();
        assert_eq!(f.flush(&mut sock), IoStatus::Continue);
        assert_eq!(sock, [0x80 | OP_CLOSE, 2, 3, 232]);
        assert!(f.closed_out());
    }

    /// A sink that takes at most `room` bytes per write.
    struct Trickle {
        out: Vec<u8>,
        room: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Parses server frames back into messages.
    fn messages(mut wire: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut current = Vec::new();
        while !wire.is_empty() {
            let fin = wire[0] & 0x80 != 0;
            let (len, at) = match wire[1] {
                126 => (usize::from(u16::from_be_bytes([wire[2], wire[3]])), 4),
                127 => (
                    u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (usize::from(n), 2),
            };
            current.extend_from_slice(&wire[at..at + len]);
            wire = &wire[at + len..];
            if fin {
                out.push(std::mem::take(&mut current));
            }
        }
        out
    }

    #[test]
    fn written_frames_are_one_message_each_however_the_queue_is_cut() {
        let frames: Vec<Vec<u8>> = [0usize, 3, 200, 70_000, 5]
            .iter()
            .map(|&n| {
                let mut f = ((4 + n) as u32).to_le_bytes().to_vec();
                f.extend_from_slice(&7u32.to_le_bytes());
                f.extend((0..n).map(|i| i as u8));
                f
            })
            .collect();
        let stream: Vec<u8> = frames.concat();
        for (cut, room) in [
            (1, 1),
            (3, 5),
            (100, 1 << 20),
            (4096, 999),
            (1 << 20, 1 << 20),
        ] {
            let mut f = Framed::new(1 << 20, Vec::new());
            let mut sink = Trickle {
                out: Vec::new(),
                room,
            };
            // `pos`: bytes of the stream taken so far; the queue's slices
            // are cut every `cut` bytes of the stream.
            let mut pos = 0;
            let mut guard = 0;
            while pos < stream.len() || f.wants_write() {
                guard += 1;
                assert!(guard < 1_000_000, "no progress");
                let mut bufs = Vec::new();
                let mut at = pos;
                while at < stream.len() && bufs.len() < 64 {
                    let end = ((at / cut + 1) * cut).min(stream.len());
                    bufs.push(IoSlice::new(&stream[at..end]));
                    at = end;
                }
                let (n, _) = f.write(&mut sink, &bufs);
                pos += n;
            }
            assert_eq!(messages(&sink.out), frames, "cut {cut}, room {room}");
        }
    }
}
