//! Property tests of the wire format through the public API: encode→decode
//! round trips, and a stream decodes to the same frames whatever the chunking.

use proptest::prelude::*;
use uniway::wire::{self, Command, Frame, Status};

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        any::<u32>().prop_map(|remote_id| Command::Dial { remote_id }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(conn_id, remote_id)| Command::Accept { conn_id, remote_id }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(conn_id, remote_id)| Command::Connect { conn_id, remote_id }),
        any::<u32>().prop_map(|remote_id| Command::Refuse { remote_id }),
        any::<u32>().prop_map(|conn_id| Command::Close { conn_id }),
        Just(Command::Ping),
    ]
}

/// A frame as owned data: either a command or a data message on a vconn.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Cmd(Command),
    Data(u32, Vec<u8>),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        command().prop_map(Item::Cmd),
        (1u32.., proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(id, m)| Item::Data(id, m)),
    ]
}

fn encode(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::new();
    for it in items {
        match it {
            Item::Cmd(c) => c.encode(&mut out),
            Item::Data(id, m) => wire::encode_frame(&mut out, *id, m),
        }
    }
    out
}

fn to_item(f: Frame<'_>) -> Item {
    if f.is_command() {
        Item::Cmd(Command::decode(f.message).expect("valid command"))
    } else {
        Item::Data(f.conn_id, f.message.to_vec())
    }
}

proptest! {
    #[test]
    fn command_round_trip(cmd in command()) {
        let mut out = Vec::new();
        cmd.encode(&mut out);
        let frame = wire::decode_frame(&out, wire::DEFAULT_MAX_PACKET)
            .unwrap()
            .complete()
            .unwrap();
        prop_assert_eq!(frame.wire_len(), out.len());
        prop_assert_eq!(Command::decode(frame.message), Ok(cmd));
    }

    #[test]
    fn data_round_trip(id in 1u32.., msg in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut out = Vec::new();
        wire::encode_frame(&mut out, id, &msg);
        let frame = wire::decode_frame(&out, wire::DEFAULT_MAX_PACKET)
            .unwrap()
            .complete()
            .unwrap();
        prop_assert_eq!(frame.conn_id, id);
        prop_assert_eq!(frame.message, &msg[..]);
        prop_assert_eq!(frame.wire_len(), out.len());
    }

    /// Feeding the stream in arbitrary chunks to an incremental decoder (one
    /// that keeps unconsumed bytes, like a connection's read buffer) yields
    /// exactly the frames that were encoded, in order.
    #[test]
    fn same_frames_whatever_the_chunking(
        items in proptest::collection::vec(item(), 0..40),
        cuts in proptest::collection::vec(1usize..64, 1..200),
    ) {
        let stream = encode(&items);
        let mut pending: Vec<u8> = Vec::new();
        let mut got = Vec::new();
        let mut off = 0;
        let mut cut = cuts.iter().cycle();
        while off < stream.len() {
            let n = (*cut.next().unwrap()).min(stream.len() - off);
            pending.extend_from_slice(&stream[off..off + n]);
            off += n;
            while let Status::Complete(f) =
                wire::decode_frame(&pending, wire::DEFAULT_MAX_PACKET).unwrap()
            {
                let used = f.wire_len();
                got.push(to_item(f));
                pending.drain(..used);
            }
        }
        prop_assert!(pending.is_empty());
        prop_assert_eq!(got, items);
    }

    /// Arbitrary bytes never panic the decoders, and a decoded frame never
    /// claims more bytes than were given.
    #[test]
    fn arbitrary_bytes_are_handled(bytes in proptest::collection::vec(any::<u8>(), 0..64), max in 0u32..100) {
        if let Ok(Status::Complete(f)) = wire::decode_frame(&bytes, max) {
            prop_assert!(f.wire_len() <= bytes.len());
            let _ = Command::decode(f.message);
        }
    }
}
