//! snet: byte streams that survive TCP reconnects, optionally encrypted
//! (`docs/protocol.md` §7), as the deployed game clients speak it.
//!
//! This module has no I/O and no clock: the DH64 key exchange
//! ([`dh64`]), the handshake messages ([`Request`], [`Session::request`],
//! [`Session::resume_request`]), and a stream's [`Session`]: RC4 for each
//! direction, the byte counters and the resend ring, which is also the
//! stream's send buffer (bytes are encrypted once, where they are kept).
//! The transport that runs it over TCP is [`crate::transport::Snet`].
//!
//! snet's DH64 and RC4 are weak by modern standards; use TLS where real
//! confidentiality matters.

pub mod dh64;
mod ring;
mod session;

use std::fmt;

pub use self::ring::RewindError;
pub use self::session::{Session, SnetSettings};

/// Length of a new-stream or reconnect request.
pub const REQUEST_LEN: usize = 40;
/// Length of a new-stream or reconnect reply.
pub const REPLY_LEN: usize = 16;

/// A request that opens an snet link, as the gateway reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A new stream, with the client's public key (non-zero).
    New {
        /// The client's DH64 public key.
        public: u64,
    },
    /// A new link for an existing stream.
    Resume(Resume),
}

/// A reconnect request: the stream's ID, the client's counters, and the
/// proof that the client knows the stream's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The stream's ID.
    pub id: u64,
    /// Bytes the client has written to the stream.
    pub write_count: u64,
    /// Bytes the client has read from the stream.
    pub read_count: u64,
    head: [u8; 24],
    digest: [u8; 16],
}

impl Request {
    /// Parses a 40-byte request. A new-stream request with a zero public
    /// key is an error; its last 24 bytes are not looked at.
    pub fn parse(bytes: &[u8; REQUEST_LEN]) -> Result<Request, SnetError> {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let id = word(0);
        if id == 0 {
            let public = word(1);
            if public == 0 {
                return Err(SnetError::ZeroPublicKey);
            }
            return Ok(Request::New { public });
        }
        let mut head = [0u8; 24];
        head.copy_from_slice(&bytes[..24]);
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&bytes[24..]);
        Ok(Request::Resume(Resume {
            id,
            write_count: word(1),
            read_count: word(2),
            head,
            digest,
        }))
    }
}

/// Why an snet handshake or reconnect failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnetError {
    /// A public key of zero.
    ZeroPublicKey,
    /// A new-stream reply carrying stream ID zero.
    ZeroId,
    /// A reconnect for a stream that does not exist (or expired).
    UnknownStream,
    /// A reconnect whose digest does not match the stream's key.
    BadDigest,
    /// The peer wrote fewer bytes than this side has read from it.
    WroteLessThanRead {
        /// What the peer says it wrote.
        written: u64,
        /// What this side read.
        read: u64,
    },
    /// The peer's read counter cannot be resumed from.
    Rewind(RewindError),
    /// The link closed before the handshake finished.
    Truncated,
    /// No randomness for a private key.
    NoRandomness,
}

impl fmt::Display for SnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnetError::ZeroPublicKey => f.write_str("sent a zero public key"),
            SnetError::ZeroId => f.write_str("assigned stream ID zero"),
            SnetError::UnknownStream => f.write_str("asked to resume an unknown snet stream"),
            SnetError::BadDigest => f.write_str("sent a reconnect with a bad digest"),
            SnetError::WroteLessThanRead { written, read } => write!(
                f,
                "claims to have written {written} bytes, but {read} were read from it"
            ),
            SnetError::Rewind(RewindError::ReadMoreThanSent { read, sent }) => write!(
                f,
                "claims to have read {read} bytes, but only {sent} were sent to it"
            ),
            SnetError::Rewind(RewindError::NotInRing { resend, capacity }) => write!(
                f,
                "is missing {resend} bytes, more than the {capacity}-byte resend buffer keeps"
            ),
            SnetError::Truncated => f.write_str("closed the link during the snet handshake"),
            SnetError::NoRandomness => f.write_str("no randomness for a key"),
        }
    }
}

impl std::error::Error for SnetError {}

#[cfg(test)]
mod tests;
