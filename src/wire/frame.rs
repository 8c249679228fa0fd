//! Frame layer: the `Length u32 | Conn ID u32 | Message` envelope of
//! `docs/protocol.md` §2.
//!
//! Decoding is incremental and borrows: the decoder looks at a byte slice and
//! answers *a complete frame of N bytes*, *need more bytes*, or a typed error.
//! The Length field is checked against the configured maximum from the first
//! four bytes, before anything is allocated or waited for. Encoders append to
//! a caller's buffer. Nothing here does I/O or reads a clock.

use std::fmt;

/// Bytes of the Length field.
pub const LENGTH_LEN: usize = 4;
/// Bytes of the Length and Conn ID fields together: the fixed frame header.
pub const HEADER_LEN: usize = 8;
/// Smallest legal Length: a Conn ID and an empty message.
pub const MIN_LENGTH: u32 = 4;
/// Default largest legal Length (`MaxPacket`, 512 KiB).
pub const DEFAULT_MAX_PACKET: u32 = 512 * 1024;
/// The Conn ID that marks a command frame.
pub const COMMAND_CONN_ID: u32 = 0;

/// Outcome of an incremental decode that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole item was decoded.
    Complete(T),
    /// The input is a valid prefix; more bytes are needed.
    Partial,
}

impl<T> Status<T> {
    /// The decoded item, if complete.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(t) => Some(t),
            Status::Partial => None,
        }
    }

    /// Whether more bytes are needed.
    pub fn is_partial(&self) -> bool {
        matches!(self, Status::Partial)
    }
}

/// A frame header whose Length has been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The Length field: bytes after the Length field (Conn ID + message).
    pub length: u32,
    /// The Conn ID field; 0 for a command frame.
    pub conn_id: u32,
}

impl Header {
    /// Bytes of the whole frame on the wire, Length field included.
    pub fn frame_len(&self) -> usize {
        self.length as usize + LENGTH_LEN
    }

    /// Bytes of the message that follows the header.
    pub fn message_len(&self) -> usize {
        (self.length - MIN_LENGTH) as usize
    }

    /// Whether this is a command frame (Conn ID 0).
    pub fn is_command(&self) -> bool {
        self.conn_id == COMMAND_CONN_ID
    }

    /// The 8 header bytes as they appear on the wire.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..4].copy_from_slice(&self.length.to_le_bytes());
        b[4..].copy_from_slice(&self.conn_id.to_le_bytes());
        b
    }
}

/// A complete frame borrowed from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The Conn ID field; 0 for a command frame.
    pub conn_id: u32,
    /// The message bytes (for a command frame: Type and arguments).
    pub message: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Whether this is a command frame (Conn ID 0).
    pub fn is_command(&self) -> bool {
        self.conn_id == COMMAND_CONN_ID
    }

    /// Bytes of the whole frame on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.message.len()
    }
}

/// A frame whose Length field is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Length is below 4, so the frame cannot even hold a Conn ID.
    LengthTooSmall {
        /// The Length field as received.
        length: u32,
    },
    /// Length is above the configured `MaxPacket`.
    LengthTooLarge {
        /// The Length field as received.
        length: u32,
        /// The configured maximum.
        max_packet: u32,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameError::LengthTooSmall { length } => write!(
                f,
                "frame Length {length} is below the minimum of {MIN_LENGTH} \
                 (a frame must at least carry a 4-byte Conn ID)"
            ),
            FrameError::LengthTooLarge { length, max_packet } => write!(
                f,
                "frame Length {length} exceeds MaxPacket {max_packet} \
                 (raise MaxPacket or send smaller messages)"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks a Length field against the legal range `4..=max_packet`.
pub fn check_length(length: u32, max_packet: u32) -> Result<(), FrameError> {
    if length < MIN_LENGTH {
        Err(FrameError::LengthTooSmall { length })
    } else if length > max_packet {
        Err(FrameError::LengthTooLarge { length, max_packet })
    } else {
        Ok(())
    }
}

/// Decodes a frame header from the start of `buf`.
///
/// The Length field is checked as soon as its 4 bytes are present, so a bad
/// frame is rejected without waiting for the Conn ID.
pub fn decode_header(buf: &[u8], max_packet: u32) -> Result<Status<Header>, FrameError> {
    let Some(len_bytes) = buf.get(..LENGTH_LEN) else {
        return Ok(Status::Partial);
    };
    let length = read_u32(len_bytes);
    check_length(length, max_packet)?;
    let Some(id_bytes) = buf.get(LENGTH_LEN..HEADER_LEN) else {
        return Ok(Status::Partial);
    };
    Ok(Status::Complete(Header {
        length,
        conn_id: read_u32(id_bytes),
    }))
}

/// Decodes one complete frame from the start of `buf`, borrowing its message.
///
/// On success the frame occupies `frame.wire_len()` bytes of `buf`.
pub fn decode_frame(buf: &[u8], max_packet: u32) -> Result<Status<Frame<'_>>, FrameError> {
    let header = match decode_header(buf, max_packet)? {
        Status::Complete(h) => h,
        Status::Partial => return Ok(Status::Partial),
    };
    match buf.get(HEADER_LEN..header.frame_len()) {
        Some(message) => Ok(Status::Complete(Frame {
            conn_id: header.conn_id,
            message,
        })),
        None => Ok(Status::Partial),
    }
}

/// The header of a frame carrying `message_len` bytes on `conn_id`.
///
/// Returns `None` when the Length would not fit in a `u32`.
pub fn header_for(conn_id: u32, message_len: usize) -> Option<Header> {
    let length = u32::try_from(message_len).ok()?.checked_add(MIN_LENGTH)?;
    Some(Header { length, conn_id })
}

/// Appends a whole frame (header and message) to `out`.
///
/// # Panics
///
/// If `message` is longer than `u32::MAX - 4` bytes; the caller bounds
/// message sizes by `MaxPacket` long before that.
pub fn encode_frame(out: &mut Vec<u8>, conn_id: u32, message: &[u8]) {
    let header = header_for(conn_id, message.len()).expect("message longer than u32::MAX - 4");
    out.reserve(HEADER_LEN + message.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(message);
}

pub(crate) fn read_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}
