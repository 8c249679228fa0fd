//! uniway: a game-server gateway that multiplexes virtual connections
//! between game clients and backend servers over TCP, wire-compatible with
//! the Go `fastway`/`uniway` gateway.
//!
//! The crate is layered (see `DESIGN.md`): [`wire`] holds the frame, command
//! and handshake formats as pure functions; the gateway and endpoints are
//! built on it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod wire;
