//! Client and server endpoints: what game clients, backend servers, tests
//! and the load tool use to talk to a gateway (`docs/protocol.md` §8).
//!
//! - [`Endpoint`]: the protocol as a state machine with no I/O;
//! - [`driver::EndpointDriver`]: many endpoints in a mio loop of the
//!   caller's, in one thread;
//! - [`Client`], [`Server`], [`VirtualConn`]: a blocking API, safe to use
//!   from several threads;
//! - [`MultiServer`]: a server linked to several gateways at once (the
//!   workers of one `fastway`, or a cluster), blocking; its mio
//!   counterpart is [`driver::GatewayLinks`].

mod blocking;
mod config;
mod core;
pub mod driver;
mod error;
mod links;
mod multi;

pub use self::blocking::{Client, Server, VirtualConn};
pub use self::config::{
    EndpointConfig, EndpointConfigError, EndpointSnet, FormatError, MsgFormat, Raw, Text,
    TimeoutCallback, DEFAULT_PING_INTERVAL, DEFAULT_PING_TIMEOUT, DEFAULT_REDIAL,
};
pub use self::core::{DialId, Endpoint, EndpointError, Event, Role, SendError};
pub use self::error::{AcceptError, ConnectError, DialError, RecvError};
pub use self::multi::{MultiServer, RECONNECT_MAX, RECONNECT_MIN};
