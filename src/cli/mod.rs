//! The `fastway` command's logic, kept out of `main.rs` so it can be tested:
//! flags, listening sockets, and the operator commands of `fastway.cmd`.

pub mod command;
pub mod flags;
pub mod listen;
pub mod value;

pub use flags::{parse, usage, FlagError, Options, Parsed, FLAGS};
