//! The blocking API's errors: one type per way a call can fail, each with a
//! `Display` text that says what happened.

use std::fmt;
use std::io;
use std::time::Duration;

use super::config::{EndpointConfigError, FormatError};
use super::core::EndpointError;

/// How long `Server::connect` waits for the gateway to confirm the handshake.
pub(super) const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);

/// Why a dial failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialError {
    /// The gateway refused: no such peer, or a vconn limit was reached.
    Refused {
        /// The peer dialed.
        remote_id: u32,
    },
    /// The endpoint stopped before an answer came.
    Endpoint(EndpointError),
    /// No answer within the time given (a feature probe).
    Timeout,
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Refused { remote_id } => {
                write!(f, "gateway refused the dial to {remote_id}")
            }
            DialError::Endpoint(e) => write!(f, "dial failed: {e}"),
            DialError::Timeout => f.write_str("the gateway did not answer in time"),
        }
    }
}

impl std::error::Error for DialError {}

/// Why `accept` failed: the endpoint stopped.
pub type AcceptError = EndpointError;

/// Why `recv` returned no message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvError {
    /// The vconn was closed (by either end, the gateway, or a receive queue
    /// overflow) and every message that arrived before has been read.
    Closed,
    /// `recv_timeout` ran out.
    Timeout,
    /// A message arrived that the format cannot decode.
    Format(FormatError),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("vconn closed"),
            RecvError::Timeout => f.write_str("no message in time"),
            RecvError::Format(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RecvError {}

/// Why connecting failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The configuration cannot work.
    Config(EndpointConfigError),
    /// The TCP connection failed.
    Io(io::Error),
    /// The gateway rejected or broke the handshake.
    Handshake(EndpointError),
    /// The gateway did not finish the handshake in time.
    Timeout,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Config(e) => e.fmt(f),
            ConnectError::Io(e) => write!(f, "cannot connect to the gateway: {e}"),
            ConnectError::Handshake(e) => write!(f, "server handshake failed: {e}"),
            ConnectError::Timeout => write!(
                f,
                "gateway did not confirm the handshake within {HANDSHAKE_WAIT:?}"
            ),
        }
    }
}

impl std::error::Error for ConnectError {}
