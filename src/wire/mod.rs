//! The wire format of `docs/protocol.md` §2–4: frames, commands and the server
//! handshake, as pure functions over byte slices.
//!
//! Nothing in this module does I/O or reads a clock. Decoders are
//! incremental and borrow from their input; encoders append to a caller's
//! buffer. Every malformed input yields a typed error, never a panic.
//!
//! ```
//! use uniway::wire::{self, Command, FrameError, Origin, Status, DEFAULT_MAX_PACKET};
//!
//! // A data frame and a command, back to back in one buffer.
//! let mut buf = Vec::new();
//! wire::encode_frame(&mut buf, 9527, b"Hello");
//! Command::Dial { remote_id: 1 }.encode(&mut buf);
//! assert_eq!(&buf[..13], b"\x09\x00\x00\x00\x37\x25\x00\x00Hello");
//!
//! // Decoding takes what is complete and says how long it was.
//! let Status::Complete(frame) = wire::decode_frame(&buf, DEFAULT_MAX_PACKET)? else {
//!     panic!("a whole frame is there");
//! };
//! assert_eq!((frame.conn_id, frame.message), (9527, &b"Hello"[..]));
//! let rest = &buf[frame.wire_len()..];
//! let Status::Complete(cmd) = wire::decode_frame(rest, DEFAULT_MAX_PACKET)? else {
//!     panic!("the command is there too");
//! };
//! assert!(cmd.is_command());
//! assert_eq!(
//!     Command::decode_from(Origin::Endpoint, cmd.message),
//!     Ok(Command::Dial { remote_id: 1 })
//! );
//!
//! // Half a frame is not an error: more bytes are needed.
//! assert!(wire::decode_frame(&buf[..6], DEFAULT_MAX_PACKET)?.is_partial());
//! // A Length below 4 is.
//! assert!(wire::decode_frame(&[1, 0, 0, 0, 0], DEFAULT_MAX_PACKET).is_err());
//! # Ok::<(), FrameError>(())
//! ```

mod command;
mod frame;
mod group;
mod handshake;

pub use command::{Command, CommandBytes, CommandError, CommandType, Origin, MAX_COMMAND_FRAME};
pub use frame::{
    check_length, decode_frame, decode_header, encode_frame, header_for, Frame, FrameError, Header,
    Status, COMMAND_CONN_ID, DEFAULT_MAX_PACKET, HEADER_LEN, LENGTH_LEN, MIN_LENGTH,
};
pub use group::{
    encode_group_send, encode_join, encode_leave, encode_multicast, group_frame_length, ConnIds,
    GroupCommand, GroupCommandError, GroupType, FEATURE_GROUPS,
};
pub use handshake::{Challenge, Response, CHALLENGE_LEN, DIGEST_LEN, RESPONSE_LEN};

#[cfg(test)]
mod tests;
