//! The core's clock: each connection's next deadline (idle, handshake,
//! PROXY header, pause bound, write stall, snet wait), kept in one heap with
//! one live entry per connection, and what happens when one fires.
//!
//! It decides when; what a deadline does to a connection is the reason it
//! is closed with, or, for a pause, `end_pause` in `output.rs`.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::conn::{Due, State};
use super::Core;
use crate::gateway::stats::CloseReason;
use crate::transport::Transport;

impl<T: Transport> Core<T> {
    /// The longest a client waits, paused because its next frame goes to a
    /// congested server, before its vconns to that server are closed:
    /// [`Config::max_pause`], and never more than half the client idle
    /// timeout.
    pub(super) fn pause_limit(&self) -> Duration {
        self.cfg.max_pause.min(self.cfg.client.idle_timeout / 2)
    }

    /// When connection `key` needs attention next, and why.
    pub(super) fn next_due(&self, key: usize) -> (Instant, Due) {
        let c = &self.conns[key];
        c.deadline(self.cfg.side(c.side).idle_timeout, self.pause_limit())
    }

    /// Makes sure the deadline heap wakes the core for `key` no later than
    /// its next deadline. Call it whenever that deadline may have come
    /// closer; one that moved later is found when the earlier entry fires.
    pub(super) fn schedule(&mut self, key: usize) {
        let (at, _) = self.next_due(key);
        let c = &mut self.conns[key];
        if c.timer.is_none_or(|t| at < t) {
            c.timer = Some(at);
            self.deadlines.push(Reverse((at, key, c.serial)));
        }
    }

    pub(super) fn fire_deadlines(&mut self, now: Instant) {
        while let Some(&Reverse((at, key, serial))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            // A connection already closing is not timed out again, and an
            // entry that is not the connection's live one is stale.
            let live = self
                .conns
                .get(key)
                .is_some_and(|c| c.serial == serial && c.doomed.is_none() && c.timer == Some(at));
            if !live {
                continue;
            }
            let (due, why) = self.next_due(key);
            let c = &mut self.conns[key];
            if due > now {
                // Activity moved the deadline; one live entry stays.
                c.timer = Some(due);
                self.deadlines.push(Reverse((due, key, serial)));
                continue;
            }
            c.timer = None;
            let reason = match (why, c.state) {
                (Due::Pause, _) => {
                    self.end_pause(key);
                    self.schedule(key);
                    continue;
                }
                (Due::SnetWait, _) => {
                    self.stats.snet_expired += 1;
                    CloseReason::SnetExpired
                }
                (Due::WriteStall, _) => {
                    self.stats.write_timeouts += 1;
                    CloseReason::WriteTimeout
                }
                (_, State::Handshake { .. } | State::Snet { .. }) => {
                    self.stats.handshake_timeouts += 1;
                    CloseReason::HandshakeTimeout
                }
                (_, State::Proxy { .. }) => {
                    self.stats.bad_proxy_headers += 1;
                    CloseReason::ProxyTimeout
                }
                (_, State::Active { .. }) => {
                    self.stats.idle_timeouts += 1;
                    CloseReason::IdleTimeout
                }
            };
            self.doom(key, reason);
        }
    }
}
