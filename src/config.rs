//! Gateway configuration as plain data, with the defaults of the `fastway` command (`docs/fastway.md`), and its
//! validation. Nothing here reads flags or files; the `fastway` binary maps
//! its command line onto these structs.
//!
//! Where each limit is enforced:
//!
//! | limit | setting | enforced in |
//! | --- | --- | --- |
//! | connections per side, per source, accept rate | `SideConfig::max_conns`, `Config::max_clients_per_ip`, `Config::accept_rate_per_ip` (sources tracked: `gateway::admission::MAX_BUCKETS`) | `gateway/admission.rs` |
//! | accepts per turn, back-off on descriptor exhaustion, token range | constants | `gateway/mod.rs` |
//! | frame Length | `Config::max_packet` | `gateway/core/input.rs` (read), `wire/frame.rs` (decode) |
//! | bytes of partial large frames, in all | `Config::max_partial_bytes` | `gateway/core/input.rs` |
//! | reads and writes per connection per turn | constants | `gateway/core/input.rs`, `gateway/core/output.rs` |
//! | queue to a peer (messages, bytes; slow consumer, high-water pause) | `SideConfig::send_queue_msgs`, `SideConfig::send_queue_bytes` | `gateway/core/output.rs` |
//! | a pause on a congested server | `Config::max_pause` | `gateway/core/output.rs` (`end_pause`), deadline in `gateway/core/conn.rs` |
//! | vconns per client, in all | `SideConfig::max_vconns`, `gateway::MAX_VCONNS` | `gateway/core/router.rs`, `gateway/vconn.rs` |
//! | idle, handshake, write-stall timeouts | `SideConfig::idle_timeout`, `Config::handshake_timeout` | deadlines in `gateway/core/conn.rs`, fired in `gateway/core/mod.rs` |
//! | snet handshake, reconnect wait, reconnect rate | `SnetConfig` | `gateway/core/snet.rs`, `gateway/core/conn.rs` |
//! | buffer pages | `PoolConfig` | `buf/pool.rs` |
//! | groups per server, members per group, groups per vconn | `Config::groups` (`GroupLimits`) | `gateway/groups.rs`, applied in `gateway/core/fanout.rs` |

use std::fmt;
use std::time::Duration;

pub use crate::buf::PoolConfig;
pub use crate::gateway::groups::GroupLimits;
pub use crate::side::Side;
pub use crate::snet::SnetSettings;
use crate::wire::DEFAULT_MAX_PACKET;

/// Settings that differ between the client side and the server side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideConfig {
    /// Most vconns one connection of this side may have (`ClientMaxConn`).
    /// `None` means unlimited (the Go gateway has no server-side limit).
    pub max_vconns: Option<u32>,
    /// Read buffer size per connection (`*BufferSize`).
    pub buffer_size: usize,
    /// Close a connection that sends no complete frame for this long.
    pub idle_timeout: Duration,
    /// Most messages queued to one connection (`*SendChanSize`).
    pub send_queue_msgs: usize,
    /// Most bytes queued to one connection.
    pub send_queue_bytes: usize,
    /// Most connections of this side at once (`MaxClients`, `MaxServers`;
    /// handshaking servers count); past it a new connection is closed at
    /// once. `None`: unlimited.
    pub max_conns: Option<usize>,
    /// Connections of this side come through a load balancer and start
    /// with a PROXY protocol header, v1 or v2 (`ClientProxyProtocol`,
    /// `ServerProxyProtocol`): the address in it is the peer's, for logs,
    /// `lookup conns` and the per-source limits. A connection without a
    /// valid header within the handshake timeout is closed.
    pub proxy_protocol: bool,
    /// Connections of this side on plain TCP listeners speak snet
    /// (`*SnetEnable` and the other `*Snet*` flags): their streams survive
    /// reconnects. `None`: off.
    pub snet: Option<SnetConfig>,
}

/// snet settings of one side (`docs/protocol.md` §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnetConfig {
    /// Encryption and resend buffer size (`*SnetEncrypt`, `*SnetBuffer`).
    pub settings: SnetSettings,
    /// How long a new link has to send its request (`*SnetInitTimeout`).
    pub init_timeout: Duration,
    /// How long a stream whose link broke waits for a reconnect
    /// (`*SnetWaitTimeout`).
    pub wait_timeout: Duration,
}

impl SnetConfig {
    /// The `fastway` defaults for `side`: no encryption, a 32 KiB (client)
    /// or 1 MiB (server) buffer, 10 s to handshake, 60 s to reconnect.
    pub fn defaults(side: Side) -> SnetConfig {
        SnetConfig {
            settings: SnetSettings {
                encrypt: false,
                buffer: match side {
                    Side::Client => 32 * 1024,
                    Side::Server => 1024 * 1024,
                },
            },
            init_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(60),
        }
    }
}

/// New connections per second from one source, with bursts
/// (`AcceptRatePerIP`, `AcceptBurstPerIP`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AcceptRate {
    /// Connections per second, sustained.
    pub per_sec: f64,
    /// Connections at once, after a quiet spell.
    pub burst: u32,
}

// `validate` requires `per_sec` to be finite, so equality is total.
impl Eq for AcceptRate {}

/// Everything the gateway needs to know, with the defaults of the `fastway` command (`docs/fastway.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Largest frame Length accepted (`MaxPacket`).
    pub max_packet: u32,
    /// Key servers prove in the handshake (`ServerAuthKey`).
    pub auth_key: Vec<u8>,
    /// How long a server has to answer the challenge.
    pub handshake_timeout: Duration,
    /// Client-side settings.
    pub client: SideConfig,
    /// Server-side settings.
    pub server: SideConfig,
    /// Buffer pool parameters.
    pub pool: PoolConfig,
    /// Most clients from one source (an IPv4 address or an IPv6 /64) at
    /// once (`MaxClientsPerIP`). `None`: unlimited.
    pub max_clients_per_ip: Option<usize>,
    /// How fast one source may open connections, per side. `None`:
    /// unlimited.
    pub accept_rate_per_ip: Option<AcceptRate>,
    /// Most bytes that partial frames (frames longer than a read buffer,
    /// gathered until whole) may hold over all connections
    /// (`MaxPartialBytes`); past it the peers furthest from finishing are
    /// cut. `None`: unlimited.
    pub max_partial_bytes: Option<usize>,
    /// The longest a client is paused because its next frame goes to a
    /// congested server (one over its high-water mark) before its vconns
    /// to that server are closed and both ends told; never more than half
    /// the client idle timeout. Default 5 s.
    pub max_pause: Duration,
    /// Which client IDs this gateway hands out: `first`, `first + step`,
    /// `first + 2·step`, ... The workers of one process (`-Workers N`)
    /// take disjoint sets (worker `i`: first `i + 1`, step `N`), so a
    /// client ID names one client in the whole process. Default: every ID
    /// from 1.
    pub client_ids: ClientIds,
    /// Bounds on the groups servers keep at the gateway (`ServerMaxGroups`,
    /// `GroupMaxMembers`, `VConnMaxGroups`; `docs/protocol.md` §10).
    pub groups: GroupLimits,
}

/// A set of client IDs: `first + k·step` for k = 0, 1, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIds {
    /// The first ID (at least 1).
    pub first: u32,
    /// The distance between IDs (at least 1, at least `first`).
    pub step: u32,
}

impl Default for ClientIds {
    fn default() -> Self {
        ClientIds { first: 1, step: 1 }
    }
}

impl ClientIds {
    /// The set of worker `index` of `workers`.
    pub fn worker(index: u32, workers: u32) -> ClientIds {
        ClientIds {
            first: index + 1,
            step: workers,
        }
    }

    /// The ID after `id` in the set (back to `first` after the last).
    pub fn after(&self, id: u32) -> u32 {
        id.checked_add(self.step).unwrap_or(self.first)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_packet: DEFAULT_MAX_PACKET,
            auth_key: Vec::new(),
            handshake_timeout: Duration::from_secs(5),
            client: SideConfig {
                max_vconns: Some(16),
                buffer_size: 2 * 1024,
                idle_timeout: Duration::from_secs(30),
                send_queue_msgs: 1000,
                send_queue_bytes: 4 * 1024 * 1024,
                max_conns: None,
                proxy_protocol: false,
                snet: None,
            },
            server: SideConfig {
                max_vconns: None,
                buffer_size: 64 * 1024,
                idle_timeout: Duration::from_secs(30),
                send_queue_msgs: 100_000,
                send_queue_bytes: 256 * 1024 * 1024,
                max_conns: None,
                proxy_protocol: false,
                snet: None,
            },
            pool: PoolConfig::default(),
            max_clients_per_ip: None,
            accept_rate_per_ip: None,
            max_partial_bytes: Some(64 * 1024 * 1024),
            max_pause: Duration::from_secs(5),
            client_ids: ClientIds::default(),
            groups: GroupLimits::default(),
        }
    }
}

/// The smallest read buffer: room for a frame header and any command.
pub const MIN_BUFFER_SIZE: usize = 64;

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting, named as the `fastway` flag spells it.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
    /// For a rule between two settings: the other one, and the problem as
    /// seen from it (so a message can name whichever the user set).
    pub other: Option<(&'static str, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn bad(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        problem: problem.into(),
        other: None,
    }
}

/// A rule between two settings that `a` and `b` break together.
fn bad_pair(a: &'static str, a_problem: String, b: &'static str, b_problem: String) -> ConfigError {
    ConfigError {
        field: a,
        problem: a_problem,
        other: Some((b, b_problem)),
    }
}

impl Config {
    /// The settings of one side.
    pub fn side(&self, side: Side) -> &SideConfig {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    /// Checks that every value can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_packet < crate::wire::MIN_LENGTH + 5 {
            return Err(bad("MaxPacket", "must be at least 9 to carry commands"));
        }
        let sides = [
            (
                &self.client,
                [
                    "ClientBufferSize",
                    "ClientIdleTimeout",
                    "ClientSendChanSize",
                ],
            ),
            (
                &self.server,
                [
                    "ServerBufferSize",
                    "ServerIdleTimeout",
                    "ServerSendChanSize",
                ],
            ),
        ];
        for (side, [buf_flag, idle_flag, queue_flag]) in sides {
            if side.buffer_size < MIN_BUFFER_SIZE {
                return Err(bad(
                    buf_flag,
                    format!("must be at least {MIN_BUFFER_SIZE} bytes"),
                ));
            }
            if side.idle_timeout.is_zero() {
                return Err(bad(idle_flag, "must be greater than zero"));
            }
            if side.send_queue_msgs == 0 || side.send_queue_bytes == 0 {
                return Err(bad(queue_flag, "must be greater than zero"));
            }
        }
        for (side, prefix) in [(&self.client, "Client"), (&self.server, "Server")] {
            let Some(snet) = side.snet else { continue };
            let flag = |name: &str| -> &'static str {
                match (prefix, name) {
                    ("Client", "Buffer") => "ClientSnetBuffer",
                    ("Client", "Init") => "ClientSnetInitTimeout",
                    ("Client", "Wait") => "ClientSnetWaitTimeout",
                    ("Client", _) => "ClientSnetEnable",
                    ("Server", "Buffer") => "ServerSnetBuffer",
                    ("Server", "Init") => "ServerSnetInitTimeout",
                    ("Server", "Wait") => "ServerSnetWaitTimeout",
                    _ => "ServerSnetEnable",
                }
            };
            if snet.settings.buffer == 0 {
                return Err(bad(flag("Buffer"), "must be greater than zero"));
            }
            if snet.init_timeout.is_zero() {
                return Err(bad(flag("Init"), "must be greater than zero"));
            }
            if snet.wait_timeout.is_zero() {
                return Err(bad(flag("Wait"), "must be greater than zero"));
            }
            if side.proxy_protocol {
                return Err(bad(
                    flag("Enable"),
                    format!("cannot be used together with {prefix}ProxyProtocol"),
                ));
            }
        }
        let ids = self.client_ids;
        if ids.first == 0 || ids.step == 0 || ids.first > ids.step {
            return Err(bad(
                "Workers",
                format!(
                    "client IDs from {} every {}: the first must be 1..=step",
                    ids.first, ids.step
                ),
            ));
        }
        if self.max_pause.is_zero() {
            return Err(bad("MaxPause", "must be greater than zero"));
        }
        if self.client.max_vconns == Some(0) {
            return Err(bad("ClientMaxConn", "must be greater than zero"));
        }
        let p = &self.pool;
        if p.min_chunk == 0 {
            return Err(bad("MemPoolMinChunk", "must be greater than zero"));
        }
        if p.max_chunk < p.min_chunk {
            return Err(bad_pair(
                "MemPoolMaxChunk",
                format!(
                    "{} must not be below MemPoolMinChunk ({})",
                    p.max_chunk, p.min_chunk
                ),
                "MemPoolMinChunk",
                format!(
                    "{} must not be above MemPoolMaxChunk ({})",
                    p.min_chunk, p.max_chunk
                ),
            ));
        }
        if p.factor < 2 {
            return Err(bad("MemPoolFactor", "must be at least 2"));
        }
        if p.page_size < p.max_chunk {
            return Err(bad_pair(
                "MemPoolPageSize",
                format!(
                    "{} must not be below MemPoolMaxChunk ({})",
                    p.page_size, p.max_chunk
                ),
                "MemPoolMaxChunk",
                format!(
                    "{} must not be above MemPoolPageSize ({})",
                    p.max_chunk, p.page_size
                ),
            ));
        }
        for (limit, flag) in [
            (self.client.max_conns, "MaxClients"),
            (self.server.max_conns, "MaxServers"),
            (self.max_clients_per_ip, "MaxClientsPerIP"),
            (self.max_partial_bytes, "MaxPartialBytes"),
        ] {
            if limit == Some(0) {
                return Err(bad(
                    flag,
                    "must be greater than zero (or unset for no limit)",
                ));
            }
        }
        if let Some(rate) = self.accept_rate_per_ip {
            if !(rate.per_sec.is_finite() && rate.per_sec > 0.0) {
                return Err(bad("AcceptRatePerIP", "must be a positive number"));
            }
            if rate.burst == 0 {
                return Err(bad("AcceptBurstPerIP", "must be at least 1"));
            }
        }
        if self.handshake_timeout.is_zero() {
            return Err(bad("handshake timeout", "must be greater than zero"));
        }
        Ok(())
    }
}
