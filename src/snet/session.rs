//! One snet stream's state, without I/O: its ID and key, the RC4 state of
//! each direction, the read counter and the resend ring (which holds the
//! write counter). The handshake messages are built and checked here.

use std::io::IoSlice;

use md5::{Digest, Md5};
use rc4::{KeyInit, Rc4, StreamCipher};
use subtle::ConstantTimeEq;

use super::dh64;
use super::ring::Ring;
use super::{Resume, SnetError, REPLY_LEN, REQUEST_LEN};

/// The settings of one side's snet streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnetSettings {
    /// Encrypt the stream's bytes (`*SnetEncrypt`). The ID in the
    /// handshake reply is encrypted either way.
    pub encrypt: bool,
    /// Size of the resend ring (`*SnetBuffer`).
    pub buffer: usize,
}

/// One snet stream.
pub struct Session {
    id: u64,
    key: [u8; 8],
    /// The RC4 state of each direction, kept only when the stream is
    /// encrypted (the handshake uses them either way).
    ciphers: Option<Box<Ciphers>>,
    read: u64,
    ring: Ring,
}

/// RC4 for bytes read (`rx`) and written (`tx`).
struct Ciphers {
    rx: Rc4,
    tx: Rc4,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("encrypt", &self.ciphers.is_some())
            .field("read", &self.read)
            .field("written", &self.ring.written())
            .finish()
    }
}

fn cipher(key: &[u8; 8]) -> Rc4 {
    // An 8-byte key is within RC4's 1..=256.
    Rc4::new_from_slice(key).unwrap_or_else(|_| unreachable!("RC4 takes 8-byte keys"))
}

impl Session {
    fn new(id: u64, secret: u64, settings: SnetSettings) -> Session {
        let key = secret.to_le_bytes();
        Session {
            id,
            key,
            ciphers: Some(Box::new(Ciphers {
                rx: cipher(&key),
                tx: cipher(&key),
            })),
            read: 0,
            ring: Ring::new(settings.buffer),
        }
    }

    /// After the handshake: an unencrypted stream needs no RC4 state.
    fn keep_ciphers(mut self, settings: SnetSettings) -> Session {
        if !settings.encrypt {
            self.ciphers = None;
        }
        self
    }

    /// The gateway's side of a new stream: from the client's public key and
    /// the gateway's private key, the stream and the 16-byte reply.
    pub fn accept(
        id: u64,
        client_public: u64,
        private: u64,
        settings: SnetSettings,
    ) -> Result<(Session, [u8; REPLY_LEN]), SnetError> {
        if client_public == 0 {
            return Err(SnetError::ZeroPublicKey);
        }
        let mut s = Session::new(id, dh64::secret(private, client_public), settings);
        let mut reply = [0u8; REPLY_LEN];
        reply[..8].copy_from_slice(&dh64::public_key(private).to_le_bytes());
        reply[8..].copy_from_slice(&id.to_le_bytes());
        if let Some(c) = s.ciphers.as_mut() {
            c.tx.apply_keystream(&mut reply[8..]);
        }
        Ok((s.keep_ciphers(settings), reply))
    }

    /// The 40-byte new-stream request of a client with `private`.
    pub fn request(private: u64) -> [u8; REQUEST_LEN] {
        let mut req = [0u8; REQUEST_LEN];
        req[8..16].copy_from_slice(&dh64::public_key(private).to_le_bytes());
        req
    }

    /// The client's side of a new stream, from the gateway's reply.
    pub fn connect(
        private: u64,
        reply: &[u8; REPLY_LEN],
        settings: SnetSettings,
    ) -> Result<Session, SnetError> {
        let gateway_public = u64::from_le_bytes(field(reply, 0));
        if gateway_public == 0 {
            return Err(SnetError::ZeroPublicKey);
        }
        let mut s = Session::new(0, dh64::secret(private, gateway_public), settings);
        let mut id = field(reply, 8);
        if let Some(c) = s.ciphers.as_mut() {
            c.rx.apply_keystream(&mut id);
        }
        s.id = u64::from_le_bytes(id);
        if s.id == 0 {
            return Err(SnetError::ZeroId);
        }
        Ok(s.keep_ciphers(settings))
    }

    /// The stream's ID.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The RC4 key (the shared secret's 8 little-endian bytes).
    pub fn key(&self) -> [u8; 8] {
        self.key
    }

    /// Bytes read from the stream.
    pub fn read_count(&self) -> u64 {
        self.read
    }

    /// Bytes written to the stream.
    pub fn write_count(&self) -> u64 {
        self.ring.written()
    }

    /// The 40-byte reconnect request for this stream.
    pub fn resume_request(&self) -> [u8; REQUEST_LEN] {
        let mut req = [0u8; REQUEST_LEN];
        req[..8].copy_from_slice(&self.id.to_le_bytes());
        req[8..16].copy_from_slice(&self.write_count().to_le_bytes());
        req[16..24].copy_from_slice(&self.read.to_le_bytes());
        let digest = digest(&req[..24], &self.key);
        req[24..].copy_from_slice(&digest);
        req
    }

    /// Checks a reconnect request's digest against this stream's key
    /// (constant time).
    pub fn check(&self, r: &Resume) -> Result<(), SnetError> {
        let want = digest(&r.head, &self.key);
        if bool::from(want.ct_eq(&r.digest)) {
            Ok(())
        } else {
            Err(SnetError::BadDigest)
        }
    }

    /// The 16-byte reconnect reply: this side's write and read counters.
    pub fn resume_reply(&self) -> [u8; REPLY_LEN] {
        let mut reply = [0u8; REPLY_LEN];
        reply[..8].copy_from_slice(&self.write_count().to_le_bytes());
        reply[8..].copy_from_slice(&self.read.to_le_bytes());
        reply
    }

    /// Goes on over a new link from the peer's counters: the peer resends
    /// what this side has not read, this side what the peer has not.
    pub fn resume(&mut self, peer_write: u64, peer_read: u64) -> Result<(), SnetError> {
        if peer_write < self.read {
            return Err(SnetError::WroteLessThanRead {
                written: peer_write,
                read: self.read,
            });
        }
        self.ring.rewind(peer_read).map_err(SnetError::Rewind)
    }

    /// Takes bytes that arrived on the stream, decrypting them in place.
    #[inline]
    pub fn received(&mut self, data: &mut [u8]) {
        if let Some(c) = self.ciphers.as_mut() {
            c.rx.apply_keystream(data);
        }
        self.read += data.len() as u64;
    }

    /// Commits as much of `bufs` to the stream as the ring has room for,
    /// encrypting it there. Returns the bytes taken.
    #[inline]
    pub fn commit(&mut self, bufs: &[IoSlice<'_>]) -> usize {
        match self.ciphers.as_mut() {
            Some(c) => self.ring.commit(bufs, |run| c.tx.apply_keystream(run)),
            None => self.ring.commit(bufs, |_| {}),
        }
    }

    /// Whether bytes are written to the link as they are (no encryption),
    /// so they can go straight from the caller's buffers.
    pub fn is_plain(&self) -> bool {
        self.ciphers.is_none()
    }

    /// Records that the first `n` bytes of `bufs` went to the link as they
    /// are, with nothing unsent before them (unencrypted streams only).
    #[inline]
    pub fn record(&mut self, bufs: &[IoSlice<'_>], n: usize) {
        debug_assert!(self.ciphers.is_none());
        self.ring.record(bufs, n);
    }

    /// Room in the ring for more bytes now.
    pub fn room(&self) -> usize {
        self.ring.room()
    }

    /// Committed bytes the current link has not taken yet.
    pub fn unsent(&self) -> [&[u8]; 2] {
        self.ring.unsent_slices()
    }

    /// Whether the current link has bytes to take.
    pub fn has_unsent(&self) -> bool {
        self.ring.unsent() > 0
    }

    /// Records that the link took `n` bytes.
    pub fn sent(&mut self, n: usize) {
        self.ring.sent(n);
    }

    /// Bytes the ring has allocated.
    pub fn ring_allocated(&self) -> usize {
        self.ring.allocated()
    }
}

fn field<const N: usize>(bytes: &[u8; N], at: usize) -> [u8; 8] {
    let mut f = [0u8; 8];
    f.copy_from_slice(&bytes[at..at + 8]);
    f
}

/// `MD5(head || key)`, the proof in a reconnect request.
pub(super) fn digest(head: &[u8], key: &[u8; 8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(head);
    h.update(key);
    h.finalize().into()
}
