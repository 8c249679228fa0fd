//! The wire format of PROTOCOL.md §2–4: frames, commands and the server
//! handshake, as pure functions over byte slices.
//!
//! Nothing in this module does I/O or reads a clock. Decoders are
//! incremental and borrow from their input; encoders append to a caller's
//! buffer. Every malformed input yields a typed error, never a panic.

mod command;
mod frame;
mod handshake;

pub use command::{Command, CommandBytes, CommandError, CommandType, Origin, MAX_COMMAND_FRAME};
pub use frame::{
    check_length, decode_frame, decode_header, encode_frame, header_for, Frame, FrameError, Header,
    Status, COMMAND_CONN_ID, DEFAULT_MAX_PACKET, HEADER_LEN, LENGTH_LEN, MIN_LENGTH,
};
pub use handshake::{Challenge, Response, CHALLENGE_LEN, DIGEST_LEN, RESPONSE_LEN};

#[cfg(test)]
mod tests;
