//! Arbitrary bytes as a command message, from either origin: decoding never
//! panics, and whatever decodes re-encodes to the same message bytes.

use uniway::wire::{self, Command, Origin};

/// One fuzz input: panics if a promise is broken. Returns how many of the
/// two origins took the bytes as a command.
pub fn run(data: &[u8]) -> usize {
    let any = Command::decode(data);
    let mut taken = 0;
    for origin in [Origin::Endpoint, Origin::Gateway] {
        match Command::decode_from(origin, data) {
            Ok(cmd) => {
                assert_eq!(Ok(cmd), any);
                assert!(cmd.kind().may_be_sent_by(origin));
                let bytes = cmd.to_bytes();
                assert_eq!(&bytes[wire::HEADER_LEN..], data);
                let frame = wire::decode_frame(&bytes, wire::DEFAULT_MAX_PACKET)
                    .unwrap()
                    .complete()
                    .unwrap();
                assert!(frame.is_command());
                assert_eq!(frame.message, data);
                taken += 1;
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    taken
}
