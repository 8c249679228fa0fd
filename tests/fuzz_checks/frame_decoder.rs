//! Arbitrary bytes into the incremental frame decoder: it never panics,
//! never claims more bytes than it was given, and re-encoding each decoded
//! frame gives back exactly the bytes it was decoded from.

use uniway::wire::{self, Status};

/// One fuzz input: panics if a promise is broken. Returns the frames
/// decoded and whether the decoder refused what followed them.
pub fn run(data: &[u8]) -> (usize, bool) {
    // The first two bytes pick a MaxPacket so small limits are explored too.
    let (max_packet, mut rest) = match data {
        [a, b, rest @ ..] => (u32::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return (0, false),
    };
    let mut frames = 0;
    loop {
        match wire::decode_frame(rest, max_packet) {
            Ok(Status::Complete(frame)) => {
                let n = frame.wire_len();
                assert!(n <= rest.len());
                assert!(n >= wire::HEADER_LEN);
                let mut again = Vec::new();
                wire::encode_frame(&mut again, frame.conn_id, frame.message);
                assert_eq!(&again[..], &rest[..n]);
                let header = wire::decode_header(rest, max_packet)
                    .unwrap()
                    .complete()
                    .unwrap();
                assert_eq!(header.frame_len(), n);
                rest = &rest[n..];
                frames += 1;
            }
            Ok(Status::Partial) => return (frames, false),
            Err(e) => {
                let _ = e.to_string();
                return (frames, true);
            }
        }
    }
}
