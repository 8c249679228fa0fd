//! uniway: a game-server gateway that multiplexes virtual connections
//! between game clients and backend servers over TCP, wire-compatible with
//! the Go `fastway`/`uniway` gateway.
//!
//! The wire protocol is described in [`protocol`] (`docs/protocol.md` in
//! the repository), the `fastway` command in `docs/fastway.md`.
//!
//! The crate is layered, each layer usable on its own:
//!
//! - [`wire`]: frame, command and handshake formats as pure functions;
//! - [`buf`]: pooled chunks, read buffers and write queues;
//! - [`transport`]: the byte streams under the framing (plain TCP, an
//!   in-memory pipe) and the one place I/O results are classified;
//! - [`gateway`]: the routing core (no I/O, time passed in) and the mio
//!   driver [`Gateway`] that applications embed in their own loop;
//! - [`random`]: the random source the core is given, as it is given the
//!   clock (the OS's, or a seeded one that replays a run);
//! - [`config`]: the gateway's settings with the defaults of the `fastway`
//!   command;
//! - [`endpoint`]: client and server endpoints (a sans-IO core, a mio
//!   driver for many endpoints, and a blocking API);
//! - `tls` (with the default `tls` feature): TLS settings for listeners;
//! - [`listen`]: listening sockets opened the way the Go gateway opens
//!   them (Go-style addresses, deep backlog, optional `SO_REUSEPORT`);
//! - `cli` (with the default `cli` feature): the `fastway` command's flags
//!   and operator commands.
//!
//! With `default-features = false` the library builds without anything
//! only the `fastway` command needs (flag parsing, signals, logging
//! output, the CPU profiler).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

pub mod buf;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod endpoint;
pub mod gateway;
pub mod listen;
#[doc = include_str!("../docs/protocol.md")]
pub mod protocol {}
pub mod random;
pub mod side;
pub mod snet;
#[cfg(feature = "tls")]
pub mod tls;
pub mod tokens;
pub mod transport;
pub mod wire;

pub use config::{ClientIds, Config, PoolConfig, SideConfig, SnetConfig};

/// The README's Rust snippets, compiled by `cargo test` as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeSnippets;
pub use gateway::{Gateway, Stats};
pub use side::Side;
pub use tokens::TokenRange;
