//! What the gateway writes to a WebSocket client is cut into one message
//! per frame. Arbitrary bytes in arbitrary pieces: the cutter never panics
//! and loses or invents no byte (what it hands out plus what it holds is
//! what went in, in order); a stream of well-formed frames comes out as
//! exactly those frames, however it is cut.

use uniway::transport::FrameCutter;
use uniway::wire;

/// One fuzz input: panics if a promise is broken.
pub fn run(data: &[u8]) {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let cuts = |len: usize| -> Vec<usize> {
        // Piece sizes from the input itself, at least 1.
        body.iter()
            .cycle()
            .take(len.max(1))
            .map(|&b| usize::from(b ^ step) % 97 + 1)
            .collect()
    };

    // Arbitrary bytes.
    let mut cutter = FrameCutter::default();
    let mut out = Vec::new();
    let mut rest = body;
    for size in cuts(body.len()) {
        if rest.is_empty() {
            break;
        }
        let (mut piece, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        while let Some(f) = cutter.next_frame(&mut piece) {
            out.extend_from_slice(&f);
        }
        assert!(piece.is_empty());
    }
    assert_eq!(out.len() + cutter.held() + rest.len(), body.len());
    assert_eq!(&out[..], &body[..out.len()]);

    // Well-formed frames made from the input.
    let mut frames = Vec::new();
    let mut stream = Vec::new();
    for (i, m) in body.chunks(usize::from(step % 31) + 1).enumerate() {
        let mut f = Vec::new();
        wire::encode_frame(&mut f, i as u32 + 1, m);
        stream.extend_from_slice(&f);
        frames.push(f);
    }
    let mut cutter = FrameCutter::default();
    let mut got = Vec::new();
    let mut rest: &[u8] = &stream;
    let mut sizes = cuts(stream.len()).into_iter();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(usize::MAX);
        let (mut piece, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        while let Some(f) = cutter.next_frame(&mut piece) {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
    assert_eq!(cutter.held(), 0);
}
