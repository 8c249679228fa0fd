//! The core's invariants, checked by the tests after every turn and by the
//! fuzzer after every step: counts agree with the tables, the router's
//! table agrees with every connection's list, caps hold, and only a
//! congested server makes anyone wait. Reads only; changes nothing.

use super::conn::{Conn, Rx};
use super::Core;
use crate::side::Side;
use crate::transport::Transport;

impl<T: Transport> Core<T> {
    /// Checks the core's invariants; for tests and the fuzzer.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (key, c) in self.conns.iter() {
            if matches!(c.rx, Rx::Gather { .. }) != c.gather.is_some() {
                return Err(format!(
                    "conn {key}: a gather chunk without a gather, or the reverse"
                ));
            }
        }
        let gathering = |c: &Conn<T>| match c.rx {
            Rx::Gather { len, .. } => len as usize,
            _ => 0,
        };
        let staged: usize = self
            .conns
            .iter()
            .map(|(_, c)| c.stage.bytes() + gathering(c))
            .sum();
        if staged != self.staged {
            return Err(format!(
                "partial frames hold {staged} bytes, {} counted",
                self.staged
            ));
        }
        for side in [Side::Client, Side::Server] {
            let n = self.conns.iter().filter(|(_, c)| c.side == side).count();
            if self.admission.live(side) != n {
                return Err(format!(
                    "{side}: {n} connections, {} counted for the limits",
                    self.admission.live(side)
                ));
            }
        }
        self.router.check(&self.conns)?;
        for (key, c) in self.conns.iter() {
            let cap = self.cfg.side(c.side);
            if c.doomed.is_none()
                && c.side == Side::Client
                && (c.out.msgs() > cap.send_queue_msgs || c.out.bytes() > cap.send_queue_bytes)
            {
                return Err(format!(
                    "conn {key}: client queue over its cap and not closing"
                ));
            }
            if let Some(max) = cap.max_vconns {
                if c.vlist.len() > max {
                    return Err(format!(
                        "conn {key}: {} vconns over the limit {max}",
                        c.vlist.len()
                    ));
                }
            }
        }
        for (key, c) in self.conns.iter() {
            // Only a congested server makes anyone wait: a partial frame
            // holds no destination, and a client's queue never pauses its
            // sources.
            if let Some(p) = c.pause {
                let on_server = self
                    .conns
                    .get(p.on)
                    .is_some_and(|d| d.side == Side::Server && d.waiters.contains(&key));
                if !on_server {
                    return Err(format!("conn {key} paused, but on no server"));
                }
            }
            if c.side == Side::Client && !c.waiters.is_empty() {
                return Err(format!("client conn {key} holds up other connections"));
            }
        }
        Ok(())
    }
}
