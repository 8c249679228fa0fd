//! Arbitrary bytes as a command message, from either origin: decoding never
//! panics, and whatever decodes re-encodes to the same message bytes. The
//! same holds for the fan-out commands (`docs/protocol.md` §10), which
//! neither origin takes as a base command.

use uniway::wire::{self, Command, GroupCommand, GroupType, Origin};

/// One fuzz input: panics if a promise is broken. Returns how many of the
/// two origins took the bytes as a base command, and whether they decode
/// as a fan-out command.
pub fn run(data: &[u8]) -> (usize, bool) {
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
    (taken, group(data))
}

/// Whether `data` decodes as a fan-out command; if it does, encoding what
/// was decoded gives the same bytes back.
fn group(data: &[u8]) -> bool {
    let Some(kind) = data.first().and_then(|&t| GroupType::from_byte(t)) else {
        return false;
    };
    let cmd = match GroupCommand::decode(kind, data) {
        Ok(cmd) => cmd,
        Err(e) => {
            assert_eq!(e.kind, kind);
            let _ = e.to_string();
            return false;
        }
    };
    let mut out = Vec::new();
    match cmd {
        GroupCommand::Multicast { conn_ids, message } => {
            wire::encode_multicast(&mut out, &conn_ids.iter().collect::<Vec<_>>(), message)
        }
        GroupCommand::Join { group, conn_ids } => {
            wire::encode_join(&mut out, group, &conn_ids.iter().collect::<Vec<_>>())
        }
        GroupCommand::Leave { group, conn_ids } => {
            wire::encode_leave(&mut out, group, &conn_ids.iter().collect::<Vec<_>>())
        }
        GroupCommand::GroupSend {
            group,
            except,
            message,
        } => wire::encode_group_send(&mut out, group, &except.iter().collect::<Vec<_>>(), message),
    }
    assert_eq!(&out[wire::HEADER_LEN..], data);
    true
}
