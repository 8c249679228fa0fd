//! Who may connect: the limits against floods, checked when a connection
//! is accepted, before it costs anything but its socket.
//!
//! - at most `max_conns` connections per side (`MaxClients`, `MaxServers`;
//!   handshaking servers count);
//! - at most `max_clients_per_ip` clients from one source (`MaxClientsPerIP`);
//! - at most `rate` new connections per second from one source, with bursts
//!   of `burst` (`AcceptRatePerIP`, `AcceptBurstPerIP`), per side: a token
//!   bucket per source.
//!
//! A source is an IPv4 address, or an IPv6 /64 (one host's share of a
//! typical allocation); IPv4 peers seen through a dual-stack listener
//! (`::ffff:a.b.c.d`) count as their IPv4 address. Memory stays bounded:
//! per-source counts exist only for sources with live clients, buckets only
//! while they are refilling (at most [`MAX_BUCKETS`]; past that, new
//! sources are not rate-limited until buckets expire, while the per-side
//! limits still hold). Time is passed in.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::{AcceptRate, Config};
use crate::side::Side;

/// Most sources tracked for the accept rate at once.
pub const MAX_BUCKETS: usize = 100_000;
/// How often refilled buckets are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A source: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source a peer address belongs to.
    pub fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Source(IpAddr::V6(prefix.into()))
            }
            v4 => Source(v4),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The side already has its most connections.
    Full {
        /// The side.
        side: Side,
        /// Its limit.
        limit: usize,
    },
    /// The source already has its most clients.
    PerSource {
        /// The source.
        source: Source,
        /// The limit.
        limit: usize,
    },
    /// The source connects faster than its accept rate.
    Rate {
        /// The source.
        source: Source,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Full { side, limit } => {
                let flag = match side {
                    Side::Client => "MaxClients",
                    Side::Server => "MaxServers",
                };
                write!(f, "{limit} {side} connections already ({flag})")
            }
            Refusal::PerSource { source, limit } => {
                write!(f, "{limit} clients from {source} already (MaxClientsPerIP)")
            }
            Refusal::Rate { source } => {
                write!(f, "{source} connects faster than AcceptRatePerIP allows")
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(&self, rate: AcceptRate, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + dt * rate.per_sec).min(f64::from(rate.burst))
    }
}

/// The live counts and buckets the limits need.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    live: [usize; 2],
    clients_per_source: HashMap<Source, usize>,
    buckets: HashMap<(Side, Source), Bucket>,
    swept: Option<Instant>,
}

impl Admission {
    /// Live connections on `side`.
    pub(super) fn live(&self, side: Side) -> usize {
        self.live[side.index()]
    }

    /// Decides on a new connection from `ip` on `side`; if admitted, it is
    /// counted until [`released`](Self::released).
    pub(super) fn admit(
        &mut self,
        cfg: &Config,
        side: Side,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), Refusal> {
        self.admit_side(cfg, side)?;
        self.admit_source(cfg, side, ip, now).inspect_err(|_| {
            self.live[side.index()] -= 1;
        })
    }

    /// The per-side limit alone, for a connection whose source is not known
    /// yet (behind a load balancer, before its PROXY header).
    pub(super) fn admit_side(&mut self, cfg: &Config, side: Side) -> Result<(), Refusal> {
        if let Some(limit) = cfg.side(side).max_conns {
            if self.live[side.index()] >= limit {
                return Err(Refusal::Full { side, limit });
            }
        }
        self.live[side.index()] += 1;
        Ok(())
    }

    /// The per-source limits, once the source is known; its side was
    /// admitted already.
    pub(super) fn admit_source(
        &mut self,
        cfg: &Config,
        side: Side,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), Refusal> {
        let source = Source::of(ip);
        if side == Side::Client {
            if let Some(limit) = cfg.max_clients_per_ip {
                if self.clients_per_source.get(&source).copied().unwrap_or(0) >= limit {
                    return Err(Refusal::PerSource { source, limit });
                }
            }
        }
        if let Some(rate) = cfg.accept_rate_per_ip {
            self.sweep(rate, now);
            let full = Bucket {
                tokens: f64::from(rate.burst),
                at: now,
            };
            let tracked = self.buckets.len() < MAX_BUCKETS;
            match self.buckets.get_mut(&(side, source)) {
                Some(b) => {
                    let tokens = b.refilled(rate, now);
                    if tokens < 1.0 {
                        return Err(Refusal::Rate { source });
                    }
                    *b = Bucket {
                        tokens: tokens - 1.0,
                        at: now,
                    };
                }
                None if tracked => {
                    self.buckets.insert(
                        (side, source),
                        Bucket {
                            tokens: full.tokens - 1.0,
                            ..full
                        },
                    );
                }
                None => {}
            }
        }
        if side == Side::Client {
            *self.clients_per_source.entry(source).or_insert(0) += 1;
        }
        Ok(())
    }

    /// A connection admitted from `ip` on `side` is gone; `source` says
    /// whether its source had been admitted too.
    pub(super) fn released(&mut self, side: Side, ip: IpAddr, source: bool) {
        self.live[side.index()] = self.live[side.index()].saturating_sub(1);
        if source {
            self.forget_source(side, ip);
        }
    }

    /// Gives back a source admitted by [`admit_source`](Self::admit_source)
    /// for a connection that will close as if it never was.
    pub(super) fn forget_source(&mut self, side: Side, ip: IpAddr) {
        if side == Side::Client {
            let source = Source::of(ip);
            if let Some(n) = self.clients_per_source.get_mut(&source) {
                *n -= 1;
                if *n == 0 {
                    self.clients_per_source.remove(&source);
                }
            }
        }
    }

    /// Drops the buckets that have refilled: a full bucket says nothing a
    /// missing one would not.
    fn sweep(&mut self, rate: AcceptRate, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_EVERY)
        {
            return;
        }
        self.swept = Some(now);
        let burst = f64::from(rate.burst);
        self.buckets.retain(|_, b| b.refilled(rate, now) < burst);
    }

    /// Sources tracked (per-source counts, buckets), for tests.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> (usize, usize) {
        (self.clients_per_source.len(), self.buckets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::default()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(
            Source::of(ip("::ffff:10.0.0.1")),
            Source::of(ip("10.0.0.1"))
        );
        assert_eq!(
            Source::of(ip("2001:db8::1")),
            Source::of(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            Source::of(ip("2001:db8::1")),
            Source::of(ip("2001:db8:0:1::1"))
        );
        assert_eq!(Source::of(ip("2001:db8::1")).to_string(), "2001:db8::/64");
    }

    #[test]
    fn per_side_limit_counts_live_connections() {
        let mut c = cfg();
        c.client.max_conns = Some(2);
        let mut a = Admission::default();
        let now = Instant::now();
        let x = ip("10.0.0.1");
        assert!(a.admit(&c, Side::Client, x, now).is_ok());
        assert!(a.admit(&c, Side::Client, ip("10.0.0.2"), now).is_ok());
        assert_eq!(
            a.admit(&c, Side::Client, ip("10.0.0.3"), now),
            Err(Refusal::Full {
                side: Side::Client,
                limit: 2
            })
        );
        // Servers are counted on their own.
        assert!(a.admit(&c, Side::Server, x, now).is_ok());
        a.released(Side::Client, x, true);
        assert!(a.admit(&c, Side::Client, ip("10.0.0.3"), now).is_ok());
        assert_eq!(a.live(Side::Client), 2);
    }

    #[test]
    fn per_source_limit_and_its_memory() {
        let mut c = cfg();
        c.max_clients_per_ip = Some(2);
        let mut a = Admission::default();
        let now = Instant::now();
        let x = ip("10.0.0.1");
        assert!(a.admit(&c, Side::Client, x, now).is_ok());
        assert!(a
            .admit(&c, Side::Client, ip("::ffff:10.0.0.1"), now)
            .is_ok());
        let refused = a.admit(&c, Side::Client, x, now).unwrap_err();
        assert!(refused.to_string().contains("MaxClientsPerIP"), "{refused}");
        assert!(a.admit(&c, Side::Client, ip("10.0.0.2"), now).is_ok());
        // Servers from the same address are not clients.
        assert!(a.admit(&c, Side::Server, x, now).is_ok());
        for _ in 0..2 {
            a.released(Side::Client, x, true);
        }
        a.released(Side::Client, ip("10.0.0.2"), true);
        assert_eq!(
            a.tracked().0,
            0,
            "no count kept for sources with no clients"
        );
    }

    #[test]
    fn accept_rate_allows_a_burst_then_the_rate() {
        let mut c = cfg();
        c.accept_rate_per_ip = Some(AcceptRate {
            per_sec: 10.0,
            burst: 5,
        });
        let mut a = Admission::default();
        let t0 = Instant::now();
        let x = ip("10.0.0.1");
        let ok = (0..20)
            .filter(|_| a.admit(&c, Side::Client, x, t0).is_ok())
            .count();
        assert_eq!(ok, 5, "the burst");
        assert_eq!(
            a.admit(&c, Side::Client, x, t0),
            Err(Refusal::Rate {
                source: Source::of(x)
            })
        );
        // Another source is not affected, nor the other side.
        assert!(a.admit(&c, Side::Client, ip("10.0.0.2"), t0).is_ok());
        assert!(a.admit(&c, Side::Server, x, t0).is_ok());
        // 10 a second: one more every 100 ms.
        let t1 = t0 + Duration::from_millis(100);
        assert!(a.admit(&c, Side::Client, x, t1).is_ok());
        assert!(a.admit(&c, Side::Client, x, t1).is_err());
        // Once refilled the bucket is dropped at the next sweep.
        let later = t1 + Duration::from_secs(5);
        assert!(a.admit(&c, Side::Client, ip("10.0.0.3"), later).is_ok());
        assert_eq!(a.tracked().1, 1, "only the newest source's bucket is left");
    }
}
