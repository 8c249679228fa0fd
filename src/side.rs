//! Which side of the gateway a peer is on. Shared by the gateway, the
//! endpoints and the configuration, so none of them imports another for it.

use std::fmt;

/// Which listener a physical connection came in on, or which kind of
/// endpoint a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// A game client.
    Client,
    /// A backend server.
    Server,
}

impl Side {
    /// The other side: the one a Dial from this side reaches.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    /// 0 for clients, 1 for servers: an index into per-side arrays.
    pub fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Server => "server",
        })
    }
}
