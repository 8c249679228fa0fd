//! Byte-exact and error-class tests for the wire module.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// `docs/protocol.md` §3, the frames byte by byte.
fn examples() -> Vec<(Command, Vec<u8>)> {
    vec![
        (
            Command::Dial { remote_id: 1 },
            hex("09 00 00 00 00 00 00 00 00 01 00 00 00"),
        ),
        (
            Command::Accept {
                conn_id: 9527,
                remote_id: 1,
            },
            hex("0d 00 00 00 00 00 00 00 01 37 25 00 00 01 00 00 00"),
        ),
        (
            Command::Connect {
                conn_id: 9527,
                remote_id: 1,
            },
            hex("0d 00 00 00 00 00 00 00 02 37 25 00 00 01 00 00 00"),
        ),
        (
            Command::Refuse { remote_id: 1 },
            hex("09 00 00 00 00 00 00 00 03 01 00 00 00"),
        ),
        (
            Command::Close { conn_id: 9527 },
            hex("09 00 00 00 00 00 00 00 04 37 25 00 00"),
        ),
        (Command::Ping, hex("05 00 00 00 00 00 00 00 05")),
        (
            Command::Features { bits: 1 },
            hex("09 00 00 00 00 00 00 00 06 01 00 00 00"),
        ),
        (
            Command::JoinRefused {
                group: 7,
                conn_id: 9527,
            },
            hex("0d 00 00 00 00 00 00 00 07 07 00 00 00 37 25 00 00"),
        ),
    ]
}

/// `docs/protocol.md` §10, the fan-out commands byte by byte.
fn group_examples() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut multicast = Vec::new();
    encode_multicast(&mut multicast, &[9527, 9528], b"Hi");
    let mut join = Vec::new();
    encode_join(&mut join, 7, &[9527, 9528]);
    let mut leave = Vec::new();
    encode_leave(&mut leave, 7, &[9528]);
    let mut dissolve = Vec::new();
    encode_leave(&mut dissolve, 7, &[]);
    let mut send = Vec::new();
    encode_group_send(&mut send, 7, &[9527], b"Hi");
    vec![
        (
            multicast,
            hex("13 00 00 00 00 00 00 00 08 02 00 00 00 37 25 00 00 38 25 00 00 48 69"),
        ),
        (
            join,
            hex("11 00 00 00 00 00 00 00 09 07 00 00 00 37 25 00 00 38 25 00 00"),
        ),
        (
            leave,
            hex("0d 00 00 00 00 00 00 00 0a 07 00 00 00 38 25 00 00"),
        ),
        (dissolve, hex("09 00 00 00 00 00 00 00 0a 07 00 00 00")),
        (
            send,
            hex("13 00 00 00 00 00 00 00 0b 07 00 00 00 01 00 00 00 37 25 00 00 48 69"),
        ),
    ]
}

#[test]
fn group_commands_encode_and_decode_byte_exact() {
    let decoded: Vec<String> = group_examples()
        .into_iter()
        .map(|(encoded, bytes)| {
            assert_eq!(encoded, bytes);
            let frame = decode_frame(&bytes, DEFAULT_MAX_PACKET)
                .unwrap()
                .complete()
                .unwrap();
            assert!(frame.is_command());
            let kind = GroupType::from_byte(frame.message[0]).unwrap();
            let cmd = GroupCommand::decode(kind, frame.message).unwrap();
            assert_eq!(cmd.kind(), kind);
            match cmd {
                GroupCommand::Multicast { conn_ids, message } => {
                    format!("M {:?} {message:?}", conn_ids.iter().collect::<Vec<_>>())
                }
                GroupCommand::Join { group, conn_ids } => {
                    format!("J {group} {:?}", conn_ids.iter().collect::<Vec<_>>())
                }
                GroupCommand::Leave { group, conn_ids } => {
                    format!("L {group} {:?}", conn_ids.iter().collect::<Vec<_>>())
                }
                GroupCommand::GroupSend {
                    group,
                    except,
                    message,
                } => format!(
                    "S {group} {:?} {message:?}",
                    except.iter().collect::<Vec<_>>()
                ),
            }
        })
        .collect();
    assert_eq!(
        decoded,
        [
            "M [9527, 9528] [72, 105]",
            "J 7 [9527, 9528]",
            "L 7 [9528]",
            "L 7 []",
            "S 7 [9527] [72, 105]",
        ]
    );
}

#[test]
fn group_commands_that_do_not_add_up_are_refused() {
    let cases: &[(GroupType, &[u8])] = &[
        // A count of 3 conn IDs with room for 2.
        (
            GroupType::Multicast,
            &[8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0],
        ),
        // No count at all.
        (GroupType::Multicast, &[8, 1, 0]),
        // A count near u32::MAX.
        (GroupType::Multicast, &[8, 0xff, 0xff, 0xff, 0xff]),
        // Join with no conn ID.
        (GroupType::Join, &[9, 7, 0, 0, 0]),
        // Join with a conn ID cut short.
        (GroupType::Join, &[9, 7, 0, 0, 0, 1, 0, 0]),
        // Leave with a stray byte.
        (GroupType::Leave, &[10, 7, 0, 0, 0, 1]),
        // GroupSend without its except count.
        (GroupType::GroupSend, &[11, 7, 0, 0, 0]),
        (
            GroupType::GroupSend,
            &[11, 7, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0],
        ),
        // Nothing but the Type byte.
        (GroupType::Leave, &[10]),
    ];
    for &(kind, msg) in cases {
        let err = GroupCommand::decode(kind, msg).unwrap_err();
        assert_eq!(err.kind, kind);
        assert_eq!(err.length, msg.len());
        let text = CommandError::Group(err).to_string();
        assert!(text.contains(kind.name()), "{text}");
        assert!(text.contains(&format!("{} bytes", msg.len())), "{text}");
    }
    // Empty lists and messages are fine where the shape allows them.
    assert!(GroupCommand::decode(GroupType::Multicast, &[8, 0, 0, 0, 0]).is_ok());
    assert!(GroupCommand::decode(GroupType::GroupSend, &[11, 7, 0, 0, 0, 0, 0, 0, 0]).is_ok());
}

#[test]
fn commands_encode_byte_exact() {
    for (cmd, bytes) in examples() {
        let mut out = Vec::new();
        cmd.encode(&mut out);
        assert_eq!(out, bytes, "{cmd:?}");
        assert_eq!(&*cmd.to_bytes(), &bytes[..], "{cmd:?}");
    }
}

#[test]
fn commands_decode_byte_exact() {
    for (cmd, bytes) in examples() {
        let frame = decode_frame(&bytes, DEFAULT_MAX_PACKET)
            .unwrap()
            .complete()
            .unwrap();
        assert!(frame.is_command());
        assert_eq!(frame.wire_len(), bytes.len());
        assert_eq!(Command::decode(frame.message), Ok(cmd));
    }
}

#[test]
fn data_frame_byte_exact() {
    let bytes = hex("09 00 00 00 37 25 00 00 48 65 6c 6c 6f");
    let mut out = Vec::new();
    encode_frame(&mut out, 9527, b"Hello");
    assert_eq!(out, bytes);
    let frame = decode_frame(&bytes, DEFAULT_MAX_PACKET)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(
        frame,
        Frame {
            conn_id: 9527,
            message: b"Hello"
        }
    );
    // The message is borrowed from the input, not copied.
    assert!(std::ptr::eq(frame.message.as_ptr(), bytes[8..].as_ptr()));
}

#[test]
fn empty_data_frame_is_legal() {
    let bytes = hex("04 00 00 00 07 00 00 00");
    let frame = decode_frame(&bytes, DEFAULT_MAX_PACKET)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(frame.conn_id, 7);
    assert!(frame.message.is_empty());
}

#[test]
fn handshake_digest_matches_protocol_example() {
    let challenge = Challenge([1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        challenge.digest(b"secret").to_vec(),
        hex("ad cf a1 21 16 93 e4 37 4b 11 14 06 c6 21 70 c5")
    );
}

#[test]
fn handshake_response_round_trip_and_verify() {
    let challenge = Challenge([1, 2, 3, 4, 5, 6, 7, 8]);
    let resp = challenge.respond(b"secret", 0xdead_beef);
    let bytes = resp.to_bytes();
    assert_eq!(bytes.len(), RESPONSE_LEN);
    assert_eq!(&bytes[16..], &[0xef, 0xbe, 0xad, 0xde]);
    for n in 0..RESPONSE_LEN {
        assert!(Response::decode(&bytes[..n]).is_partial());
    }
    let back = Response::decode(&bytes).complete().unwrap();
    assert_eq!(back, resp);
    assert!(challenge.verify(b"secret", &back));
    assert!(!challenge.verify(b"secreT", &back));
    assert!(!challenge.verify(b"", &back));
    let other = Challenge([8, 7, 6, 5, 4, 3, 2, 1]);
    assert!(!other.verify(b"secret", &back));
}

#[test]
fn challenges_are_random_and_decodable() {
    let a = Challenge::random().unwrap();
    let b = Challenge::random().unwrap();
    assert_ne!(a, b, "two CSPRNG challenges collided");
    assert!(Challenge::decode(&a.0[..7]).is_partial());
    assert_eq!(Challenge::decode(&a.0), Status::Complete(a));
}

#[test]
fn every_prefix_of_a_frame_stream_needs_more() {
    let mut stream = Vec::new();
    for (cmd, _) in examples() {
        cmd.encode(&mut stream);
    }
    encode_frame(&mut stream, 9527, b"Hello");
    encode_frame(&mut stream, 1, b"");
    let mut off = 0;
    while off < stream.len() {
        let rest = &stream[off..];
        let frame = decode_frame(rest, DEFAULT_MAX_PACKET)
            .unwrap()
            .complete()
            .unwrap();
        let n = frame.wire_len();
        for cut in 0..n {
            assert_eq!(
                decode_frame(&rest[..cut], DEFAULT_MAX_PACKET),
                Ok(Status::Partial),
                "prefix {cut} of frame at {off}"
            );
        }
        off += n;
    }
    assert_eq!(off, stream.len());
}

#[test]
fn length_below_four_is_too_small() {
    for length in 0u32..4 {
        let bytes = length.to_le_bytes();
        let err = decode_header(&bytes, DEFAULT_MAX_PACKET).unwrap_err();
        assert_eq!(err, FrameError::LengthTooSmall { length });
        assert!(err.to_string().contains(&format!("Length {length}")));
        // Rejected from the Length field alone, before the Conn ID arrives.
        assert_eq!(decode_frame(&bytes, DEFAULT_MAX_PACKET), Err(err));
    }
}

#[test]
fn length_above_max_packet_is_too_large() {
    let bytes = (DEFAULT_MAX_PACKET + 1).to_le_bytes();
    let err = decode_frame(&bytes, DEFAULT_MAX_PACKET).unwrap_err();
    assert_eq!(
        err,
        FrameError::LengthTooLarge {
            length: DEFAULT_MAX_PACKET + 1,
            max_packet: DEFAULT_MAX_PACKET
        }
    );
    assert!(err.to_string().contains("MaxPacket 524288"));
    // Exactly MaxPacket is legal.
    let ok = DEFAULT_MAX_PACKET.to_le_bytes();
    assert_eq!(decode_frame(&ok, DEFAULT_MAX_PACKET), Ok(Status::Partial));
    // A smaller configured limit is honoured.
    let bytes = 13u32.to_le_bytes();
    assert_eq!(
        decode_header(&bytes, 12),
        Err(FrameError::LengthTooLarge {
            length: 13,
            max_packet: 12
        })
    );
}

#[test]
fn length_u32_max_is_rejected_without_overflow() {
    let mut bytes = u32::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 8]);
    let err = decode_frame(&bytes, u32::MAX - 1).unwrap_err();
    assert_eq!(
        err,
        FrameError::LengthTooLarge {
            length: u32::MAX,
            max_packet: u32::MAX - 1
        }
    );
    assert!(err.to_string().contains("4294967295"));
    // Even a limit of u32::MAX accepts the header and waits, without
    // overflowing the frame length computation.
    let h = decode_header(&bytes, u32::MAX).unwrap().complete().unwrap();
    assert_eq!(h.frame_len(), u32::MAX as usize + 4);
    assert_eq!(decode_frame(&bytes, u32::MAX), Ok(Status::Partial));
}

#[test]
fn empty_command_frame_is_its_own_error() {
    let bytes = hex("04 00 00 00 00 00 00 00");
    let frame = decode_frame(&bytes, DEFAULT_MAX_PACKET)
        .unwrap()
        .complete()
        .unwrap();
    let err = Command::decode(frame.message).unwrap_err();
    assert_eq!(err, CommandError::Empty);
    assert!(err.to_string().contains("empty command"));
}

#[test]
fn unknown_type_is_its_own_error() {
    for t in 8u8..=11 {
        let err = Command::decode(&[t, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(
            err,
            CommandError::ServerOnly(GroupType::from_byte(t).unwrap())
        );
        assert!(err.to_string().contains("only a server"), "{err}");
    }
    for t in 12u8..=255 {
        let err = Command::decode(&[t, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(err, CommandError::UnknownType(t));
        assert!(err.to_string().contains(&format!("Type {t}")));
    }
}

#[test]
fn each_command_at_wrong_length_is_rejected() {
    for kind in CommandType::ALL {
        for len in 1..=16usize {
            if len == kind.message_len() {
                continue;
            }
            let mut msg = vec![0u8; len];
            msg[0] = kind as u8;
            let err = Command::decode(&msg).unwrap_err();
            assert_eq!(err, CommandError::WrongLength { kind, length: len });
            let text = err.to_string();
            assert!(text.contains(kind.name()), "{text}");
            assert!(
                text.contains(&format!("exactly {}", kind.frame_length())),
                "{text}"
            );
        }
    }
}

#[test]
fn endpoints_may_not_send_gateway_commands() {
    for (cmd, bytes) in examples() {
        let msg = &bytes[HEADER_LEN..];
        let from_endpoint = Command::decode_from(Origin::Endpoint, msg);
        let from_gateway = Command::decode_from(Origin::Gateway, msg);
        match cmd.kind() {
            CommandType::Accept
            | CommandType::Connect
            | CommandType::Refuse
            | CommandType::Features
            | CommandType::JoinRefused => {
                let err = from_endpoint.unwrap_err();
                assert_eq!(
                    err,
                    CommandError::Forbidden {
                        kind: cmd.kind(),
                        origin: Origin::Endpoint
                    }
                );
                assert!(err.to_string().contains("may not send"));
                assert_eq!(from_gateway, Ok(cmd));
            }
            CommandType::Dial => {
                assert_eq!(from_endpoint, Ok(cmd));
                assert!(matches!(
                    from_gateway,
                    Err(CommandError::Forbidden {
                        origin: Origin::Gateway,
                        ..
                    })
                ));
            }
            CommandType::Close | CommandType::Ping => {
                assert_eq!(from_endpoint, Ok(cmd));
                assert_eq!(from_gateway, Ok(cmd));
            }
        }
    }
}

#[test]
fn error_messages_name_the_offending_values_and_differ() {
    let cases: Vec<(String, &[&str])> = vec![
        (FrameError::LengthTooSmall { length: 3 }.to_string(), &["3"]),
        (
            FrameError::LengthTooLarge {
                length: 900_001,
                max_packet: 524_288,
            }
            .to_string(),
            &["900001", "524288"],
        ),
        (CommandError::Empty.to_string(), &[]),
        (CommandError::UnknownType(77).to_string(), &["77"]),
        (
            CommandError::WrongLength {
                kind: CommandType::Ping,
                length: 2,
            }
            .to_string(),
            // The message length plus the conn ID: the frame's Length.
            &["Length 6", "5"],
        ),
        (
            CommandError::Forbidden {
                kind: CommandType::Accept,
                origin: Origin::Endpoint,
            }
            .to_string(),
            &[],
        ),
    ];
    for (text, values) in &cases {
        for v in *values {
            assert!(text.contains(v), "{text:?} does not name {v}");
        }
    }
    let distinct: std::collections::HashSet<&String> = cases.iter().map(|(t, _)| t).collect();
    assert_eq!(distinct.len(), cases.len(), "two errors read the same");
}
