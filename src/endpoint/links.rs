//! [`GatewayLinks`]: a server endpoint's links to several gateways, in an
//! [`EndpointDriver`] (the mio counterpart of
//! [`MultiServer`](super::MultiServer)).
//!
//! The caller keeps running its loop as usual and shows every driver event
//! to [`handle_event`](GatewayLinks::handle_event), which says which
//! gateway the event came from and notes links that went down; and calls
//! [`connect_due`](GatewayLinks::connect_due) each turn, which (re)connects
//! links whose back-off is over (100 ms, doubling to 5 s). Client IDs are
//! per gateway: dial a client through the endpoint of the gateway that
//! holds it ([`key_of`](GatewayLinks::key_of)).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info};
use mio::Registry;

use super::config::EndpointConfig;
use super::core::{Endpoint, EndpointError, Event, Role, SendError};
use super::driver::{DriverEvent, EndpointDriver};
use super::multi::{for_each_gateway, RECONNECT_MAX, RECONNECT_MIN};

struct Link {
    addr: SocketAddr,
    /// The endpoint's key while it exists.
    key: Option<usize>,
    /// Its handshake is done.
    up: bool,
    next_try: Instant,
    backoff: Duration,
}

/// One server's links to a list of gateways.
pub struct GatewayLinks {
    cfg: EndpointConfig,
    links: Vec<Link>,
}

impl std::fmt::Debug for GatewayLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<SocketAddr> = self.links.iter().map(|l| l.addr).collect();
        f.debug_struct("GatewayLinks")
            .field("server_id", &self.cfg.server_id)
            .field("gateways", &addrs)
            .finish_non_exhaustive()
    }
}

impl GatewayLinks {
    /// Links for server `cfg.server_id` to the gateways at `addrs` (their
    /// server addresses); the first attempts are due at once.
    pub fn new(addrs: &[SocketAddr], cfg: EndpointConfig, now: Instant) -> GatewayLinks {
        GatewayLinks {
            cfg,
            links: addrs
                .iter()
                .map(|&addr| Link {
                    addr,
                    key: None,
                    up: false,
                    next_try: now,
                    backoff: RECONNECT_MIN,
                })
                .collect(),
        }
    }

    /// Connects every link that is down and due.
    pub fn connect_due(&mut self, d: &mut EndpointDriver, registry: &Registry, now: Instant) {
        for (i, l) in self.links.iter_mut().enumerate() {
            if l.key.is_some() || l.next_try > now {
                continue;
            }
            match d.connect(registry, l.addr, Role::Server, self.cfg.clone(), now) {
                Ok(key) => l.key = Some(key),
                Err(e) => {
                    debug!("gateway {i} at {}: {e}", l.addr);
                    l.next_try = now + l.backoff;
                    l.backoff = (l.backoff * 2).min(RECONNECT_MAX);
                }
            }
        }
    }

    /// Looks at a driver event: returns the index of the gateway whose
    /// endpoint it is about, if it is one of these links. A link whose
    /// endpoint closed is connected again after its back-off.
    pub fn handle_event(&mut self, ev: &DriverEvent, now: Instant) -> Option<usize> {
        let key = match ev {
            DriverEvent::Endpoint(key, _) | DriverEvent::Closed(key, _) => *key,
        };
        let i = self.gateway_of(key)?;
        let l = &mut self.links[i];
        match ev {
            DriverEvent::Endpoint(_, Event::Ready) => {
                info!(
                    "server {}: linked to gateway {i} at {}",
                    self.cfg.server_id, l.addr
                );
                l.up = true;
                l.backoff = RECONNECT_MIN;
            }
            DriverEvent::Closed(_, e) => {
                info!(
                    "server {}: link to gateway {i} at {} lost: {e}",
                    self.cfg.server_id, l.addr
                );
                l.key = None;
                l.up = false;
                l.next_try = now + l.backoff;
                l.backoff = (l.backoff * 2).min(RECONNECT_MAX);
            }
            DriverEvent::Endpoint(..) => {}
        }
        Some(i)
    }

    /// When [`connect_due`](Self::connect_due) next has work.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.links
            .iter()
            .filter(|l| l.key.is_none())
            .map(|l| l.next_try)
            .min()
    }

    /// The gateway an endpoint key belongs to, if it is one of these.
    pub fn gateway_of(&self, key: usize) -> Option<usize> {
        self.links.iter().position(|l| l.key == Some(key))
    }

    /// The endpoint key of gateway `gateway`'s link, while it is up.
    pub fn key_of(&self, gateway: usize) -> Option<usize> {
        self.links.get(gateway).filter(|l| l.up).and_then(|l| l.key)
    }

    /// Which links are up.
    pub fn linked(&self) -> Vec<bool> {
        self.links.iter().map(|l| l.up).collect()
    }

    /// [`for_each_gateway`] over the links' endpoints.
    fn per_gateway(
        &self,
        d: &mut EndpointDriver,
        targets: &[(usize, u32)],
        every: bool,
        f: impl Fn(&mut Endpoint, &[u32]) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        for_each_gateway(self.links.len(), targets, every, |g, ids| {
            match self.key_of(g).and_then(|k| d.endpoint(k)) {
                Some(ep) => f(ep, ids),
                None => Err(SendError::Endpoint(EndpointError::Disconnected)),
            }
        })
    }

    /// One message to every vconn in `targets` (gateway index, conn ID):
    /// each gateway gets one Multicast with its own conn IDs (the links'
    /// config needs `probe_features`).
    pub fn multicast(
        &self,
        d: &mut EndpointDriver,
        targets: &[(usize, u32)],
        msg: &[u8],
    ) -> Result<(), SendError> {
        self.per_gateway(d, targets, false, |ep, ids| ep.multicast(ids, msg))
    }

    /// Adds vconns to `group`, at the gateway of each.
    pub fn join(
        &self,
        d: &mut EndpointDriver,
        group: u32,
        targets: &[(usize, u32)],
    ) -> Result<(), SendError> {
        self.per_gateway(d, targets, false, |ep, ids| ep.join(group, ids))
    }

    /// Takes vconns out of `group`.
    pub fn leave(
        &self,
        d: &mut EndpointDriver,
        group: u32,
        targets: &[(usize, u32)],
    ) -> Result<(), SendError> {
        self.per_gateway(d, targets, false, |ep, ids| ep.leave(group, ids))
    }

    /// One message to every member of `group` at every linked gateway but
    /// `except` (each gateway is sent only its own exceptions).
    pub fn send_to_group(
        &self,
        d: &mut EndpointDriver,
        group: u32,
        msg: &[u8],
        except: &[(usize, u32)],
    ) -> Result<(), SendError> {
        self.per_gateway(d, except, true, |ep, ids| ep.send_to_group(group, msg, ids))
    }

    /// Empties `group` at every linked gateway.
    pub fn dissolve(&self, d: &mut EndpointDriver, group: u32) -> Result<(), SendError> {
        self.per_gateway(d, &[], true, |ep, _| ep.dissolve(group))
    }
}
