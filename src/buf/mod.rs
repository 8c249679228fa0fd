//! Buffer management: a pool of fixed-size chunks, the per-connection read
//! buffer and the per-connection write queue built from those chunks.
//!
//! Nothing here knows about frames or connections; the gateway core decides
//! what goes in and out.

mod pool;
mod queue;
mod read;

pub use pool::{Chunk, Pool, PoolConfig, PoolError, PoolStats, Shared};
pub use queue::{WriteQueue, MAX_IOV};
pub use read::ReadBuf;
