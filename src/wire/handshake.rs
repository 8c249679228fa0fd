//! The server handshake of `docs/protocol.md` §4: an 8-byte random challenge from
//! the gateway, answered by `MD5(challenge || key)` and the server's ID.
//!
//! Digests are compared in constant time so a server cannot learn the key
//! byte by byte from response timing.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use super::frame::{read_u32, Status};
use crate::random::{NoRandomness, OsRandom, RandomSource};

/// Bytes of the challenge the gateway sends.
pub const CHALLENGE_LEN: usize = 8;
/// Bytes of the MD5 digest.
pub const DIGEST_LEN: usize = 16;
/// Bytes of the server's response: digest and server ID.
pub const RESPONSE_LEN: usize = DIGEST_LEN + 4;

/// The gateway's random challenge to one server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge(pub [u8; CHALLENGE_LEN]);

impl Challenge {
    /// A fresh challenge from the operating system's CSPRNG.
    pub fn random() -> Result<Challenge, NoRandomness> {
        Challenge::from_source(&mut OsRandom)
    }

    /// A fresh challenge drawn from `source`.
    pub fn from_source(source: &mut dyn RandomSource) -> Result<Challenge, NoRandomness> {
        let mut b = [0u8; CHALLENGE_LEN];
        source.fill(&mut b)?;
        Ok(Challenge(b))
    }

    /// `MD5(challenge || key)`.
    pub fn digest(&self, key: &[u8]) -> [u8; DIGEST_LEN] {
        let mut h = Md5::new();
        h.update(self.0);
        h.update(key);
        h.finalize().into()
    }

    /// The response a server holding `key` sends to claim `server_id`.
    pub fn respond(&self, key: &[u8], server_id: u32) -> Response {
        Response {
            digest: self.digest(key),
            server_id,
        }
    }

    /// Whether `response` proves knowledge of `key`, compared in constant time.
    pub fn verify(&self, key: &[u8], response: &Response) -> bool {
        bool::from(self.digest(key).ct_eq(&response.digest))
    }

    /// Decodes a challenge from the start of `buf`.
    pub fn decode(buf: &[u8]) -> Status<Challenge> {
        match buf.get(..CHALLENGE_LEN) {
            Some(b) => {
                let mut c = [0u8; CHALLENGE_LEN];
                c.copy_from_slice(b);
                Status::Complete(Challenge(c))
            }
            None => Status::Partial,
        }
    }
}

/// A server's answer to the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// `MD5(challenge || key)`.
    pub digest: [u8; DIGEST_LEN],
    /// The ID the server claims.
    pub server_id: u32,
}

impl Response {
    /// The 20 bytes sent on the wire.
    pub fn to_bytes(&self) -> [u8; RESPONSE_LEN] {
        let mut b = [0u8; RESPONSE_LEN];
        b[..DIGEST_LEN].copy_from_slice(&self.digest);
        b[DIGEST_LEN..].copy_from_slice(&self.server_id.to_le_bytes());
        b
    }

    /// Decodes a response from the start of `buf`.
    pub fn decode(buf: &[u8]) -> Status<Response> {
        match buf.get(..RESPONSE_LEN) {
            Some(b) => {
                let mut digest = [0u8; DIGEST_LEN];
                digest.copy_from_slice(&b[..DIGEST_LEN]);
                Status::Complete(Response {
                    digest,
                    server_id: read_u32(&b[DIGEST_LEN..]),
                })
            }
            None => Status::Partial,
        }
    }
}
