//! The `fastway` command's logic, kept out of `main.rs` so it can be tested:
//! flags, listening sockets, and the operator commands of `fastway.cmd`.

pub mod command;
pub mod flags;
pub mod metrics;
pub mod value;

/// The listeners, kept at [`crate::listen`] for library users.
pub use crate::listen;

pub use flags::{parse, usage, FlagError, Options, Parsed, AUTH_KEY_ENV, FLAGS};
