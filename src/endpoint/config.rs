//! Endpoint configuration (the Go `EndPointCfg` fields that mean something
//! here), its validation, and message formats.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::snet::SnetSettings;
use crate::wire::DEFAULT_MAX_PACKET;

/// Decides, when the gateway has not answered a Ping within the ping
/// timeout, whether to keep the connection (`true`) or close it (`false`).
pub type TimeoutCallback = Arc<dyn Fn() -> bool + Send + Sync>;

/// How an endpoint behaves.
#[derive(Clone)]
pub struct EndpointConfig {
    /// Largest frame Length sent or accepted; must match the gateway's.
    pub max_packet: u32,
    /// Bytes read from the socket at a time.
    pub buffer_size: usize,
    /// Messages waiting to be written before `send` blocks.
    pub send_queue_size: usize,
    /// Messages waiting per vconn for its reader; past it the vconn is
    /// closed (a stuck reader never stalls the shared connection).
    pub recv_queue_size: usize,
    /// Send a Ping this often; must be shorter than the gateway's idle
    /// timeout (`*IdleTimeout`, 30 s by default) or the gateway closes a
    /// quiet connection. Default: every [`DEFAULT_PING_INTERVAL`]. `None`
    /// (with `ping_timeout` `None`) sends none.
    pub ping_interval: Option<Duration>,
    /// A Ping unanswered this long calls `timeout_callback`. Default:
    /// [`DEFAULT_PING_TIMEOUT`].
    pub ping_timeout: Option<Duration>,
    /// Keep (`true`) or close (`false`) on a ping timeout; none means close.
    pub timeout_callback: Option<TimeoutCallback>,
    /// The server ID a server endpoint registers as.
    pub server_id: u32,
    /// The key a server endpoint proves in the handshake.
    pub auth_key: Vec<u8>,
    /// Speak snet with the gateway (its `*SnetEnable` side): the link is
    /// redialled when it breaks and the stream resumes. `None`: plain TCP.
    pub snet: Option<EndpointSnet>,
    /// A server asks the gateway for its extensions as soon as its
    /// handshake is done (`docs/protocol.md` §10), so the fan-out calls
    /// work once the answer is in ([`Endpoint::features`](super::Endpoint::features)).
    /// A gateway without them (the Go one) answers with a Refuse and
    /// nothing else changes. Default off.
    pub probe_features: bool,
}

/// An endpoint's snet settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointSnet {
    /// Encryption (must match the gateway's `*SnetEncrypt`) and the resend
    /// buffer size (the gateway's `*SnetBuffer` is the usual choice).
    pub settings: SnetSettings,
    /// How often a broken link is dialled again (the first time at once).
    pub redial_every: Duration,
    /// How long to keep trying before the endpoint fails (the gateway's
    /// `*SnetWaitTimeout`: after it, the gateway has forgotten the stream).
    pub give_up_after: Duration,
}

impl Default for EndpointSnet {
    /// No encryption, a 32 KiB buffer, a redial every 3 s (as the
    /// reference client does) for up to 60 s.
    fn default() -> Self {
        EndpointSnet {
            settings: SnetSettings {
                encrypt: false,
                buffer: 32 * 1024,
            },
            redial_every: DEFAULT_REDIAL,
            give_up_after: Duration::from_secs(60),
        }
    }
}

/// How often an snet endpoint redials a broken link by default.
pub const DEFAULT_REDIAL: Duration = Duration::from_secs(3);

/// How often an endpoint pings by default: well inside the gateway's
/// default 30 s idle timeout.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);
/// How long a default endpoint waits for the gateway's answer to a Ping.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for EndpointConfig {
    /// Settings that keep a connection alive against a gateway with
    /// default flags: a Ping every 10 s, closed if unanswered for 5 s.
    fn default() -> Self {
        EndpointConfig {
            max_packet: DEFAULT_MAX_PACKET,
            buffer_size: 64 * 1024,
            send_queue_size: 1024,
            recv_queue_size: 1024,
            ping_interval: Some(DEFAULT_PING_INTERVAL),
            ping_timeout: Some(DEFAULT_PING_TIMEOUT),
            timeout_callback: None,
            server_id: 0,
            auth_key: Vec::new(),
            snet: None,
            probe_features: false,
        }
    }
}

impl fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("max_packet", &self.max_packet)
            .field("buffer_size", &self.buffer_size)
            .field("send_queue_size", &self.send_queue_size)
            .field("recv_queue_size", &self.recv_queue_size)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("timeout_callback", &self.timeout_callback.is_some())
            .field("server_id", &self.server_id)
            .field("auth_key", &"<hidden>")
            .field("snet", &self.snet)
            .field("probe_features", &self.probe_features)
            .finish()
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfigError(pub String);

impl fmt::Display for EndpointConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid endpoint configuration: {}", self.0)
    }
}

impl std::error::Error for EndpointConfigError {}

impl EndpointConfig {
    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), EndpointConfigError> {
        let bad = |s: &str| Err(EndpointConfigError(s.to_string()));
        match (self.ping_interval, self.ping_timeout) {
            (Some(_), None) => {
                return bad("ping_interval is set but ping_timeout is not; set both or neither")
            }
            (None, Some(_)) => {
                return bad("ping_timeout is set but ping_interval is not; set both or neither")
            }
            (Some(i), Some(t)) if i.is_zero() || t.is_zero() => {
                return bad("ping_interval and ping_timeout must be greater than zero")
            }
            _ => {}
        }
        if self.timeout_callback.is_some() && self.ping_timeout.is_none() {
            return bad("timeout_callback needs ping_interval and ping_timeout");
        }
        if self.max_packet < crate::wire::MIN_LENGTH + 9 {
            return bad("max_packet must be at least 13");
        }
        if self.buffer_size < 64 {
            return bad("buffer_size must be at least 64");
        }
        if let Some(snet) = &self.snet {
            if snet.settings.buffer == 0
                || snet.redial_every.is_zero()
                || snet.give_up_after.is_zero()
            {
                return bad(
                    "snet buffer, redial_every and give_up_after must be greater than zero",
                );
            }
        }
        if self.send_queue_size == 0 || self.recv_queue_size == 0 {
            return bad("send_queue_size and recv_queue_size must be greater than zero");
        }
        Ok(())
    }

    /// The longest message a vconn can carry.
    pub fn max_message(&self) -> usize {
        (self.max_packet - crate::wire::MIN_LENGTH) as usize
    }
}

/// A message that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message format: {}", self.0)
    }
}

impl std::error::Error for FormatError {}

/// Turns application values into message bytes and back (the Go
/// `MsgFormat`).
///
/// A format may send a borrowed form of what it receives: [`Raw`] sends
/// any `&[u8]` and receives `Vec<u8>`, [`Text`] sends `&str` and receives
/// `String`.
///
/// ```
/// use uniway::endpoint::{FormatError, MsgFormat};
///
/// /// Messages that are one little-endian `u64` each.
/// struct Counter;
///
/// impl MsgFormat for Counter {
///     type Msg = u64;
///     type Outgoing = u64;
///     fn encode(&self, n: &u64, out: &mut Vec<u8>) -> Result<(), FormatError> {
///         out.extend_from_slice(&n.to_le_bytes());
///         Ok(())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<u64, FormatError> {
///         let b: [u8; 8] = bytes
///             .try_into()
///             .map_err(|_| FormatError(format!("{} bytes, not 8", bytes.len())))?;
///         Ok(u64::from_le_bytes(b))
///     }
/// }
///
/// let mut out = Vec::new();
/// Counter.encode(&7, &mut out).unwrap();
/// assert_eq!(Counter.decode(&out), Ok(7));
/// assert!(Counter.decode(b"short").is_err());
/// ```
pub trait MsgFormat: Send + Sync + 'static {
    /// What a vconn receives.
    type Msg: Send + 'static;
    /// What a vconn sends, by reference (may be unsized, such as `[u8]`).
    type Outgoing: ?Sized;
    /// Appends the encoding of `msg` to `out`.
    fn encode(&self, msg: &Self::Outgoing, out: &mut Vec<u8>) -> Result<(), FormatError>;
    /// Decodes one message.
    fn decode(&self, bytes: &[u8]) -> Result<Self::Msg, FormatError>;
}

/// Raw bytes: any `&[u8]` is sent unchanged; messages arrive as `Vec<u8>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl MsgFormat for Raw {
    type Msg = Vec<u8>;
    type Outgoing = [u8];
    fn encode(&self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), FormatError> {
        out.extend_from_slice(msg);
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, FormatError> {
        Ok(bytes.to_vec())
    }
}

/// UTF-8 text: any `&str` is sent; messages arrive as `String`s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Text;

impl MsgFormat for Text {
    type Msg = String;
    type Outgoing = str;
    fn encode(&self, msg: &str, out: &mut Vec<u8>) -> Result<(), FormatError> {
        out.extend_from_slice(msg.as_bytes());
        Ok(())
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, FormatError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| FormatError(format!("not UTF-8: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_settings_come_in_pairs() {
        let mut c = EndpointConfig::default();
        assert!(c.validate().is_ok());
        // The defaults ping well inside the gateway's default idle timeout.
        let idle = crate::Config::default().client.idle_timeout;
        let (every, wait) = (c.ping_interval.unwrap(), c.ping_timeout.unwrap());
        assert!(every + wait < idle, "{every:?} + {wait:?} vs {idle:?}");
        c.ping_timeout = None;
        c.ping_interval = Some(Duration::from_secs(1));
        assert!(c.validate().unwrap_err().0.contains("ping_timeout is not"));
        c.ping_interval = None;
        c.ping_timeout = Some(Duration::from_secs(1));
        assert!(c.validate().unwrap_err().0.contains("ping_interval is not"));
        c.ping_interval = Some(Duration::from_secs(1));
        assert!(c.validate().is_ok());
        let mut c = EndpointConfig {
            timeout_callback: Some(Arc::new(|| true)),
            ping_interval: None,
            ping_timeout: None,
            ..EndpointConfig::default()
        };
        assert!(c.validate().unwrap_err().0.contains("timeout_callback"));
        c.recv_queue_size = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn formats_round_trip() {
        let mut out = Vec::new();
        Text.encode("héllo", &mut out).unwrap();
        assert_eq!(Text.decode(&out).unwrap(), "héllo");
        assert!(Text.decode(&[0xff]).is_err());
        assert_eq!(Raw.decode(&[1, 2]).unwrap(), vec![1, 2]);
    }
}
