//! [`MultiServer`]: one backend server connected to several gateways at
//! once (the workers of one `fastway -Workers N`, or the gateways of a
//! cluster behind a load balancer), with the blocking API.
//!
//! Each gateway gets a link of its own, kept up by a thread that connects,
//! does the handshake, and after a failure connects again with back-off
//! (100 ms, doubling to 5 s). Vconns clients open through any gateway come
//! out of one [`accept`](MultiServer::accept), tagged with the gateway's
//! index in the list. Client IDs are per gateway: a game server names a
//! client by `(gateway index, client ID)`, and dials it through that
//! gateway with [`dial`](MultiServer::dial).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info};

use super::blocking::{Server, VirtualConn};
use super::config::{EndpointConfig, MsgFormat, Raw};
use super::core::{EndpointError, SendError};
use super::error::DialError;

/// First wait before connecting again to a gateway.
pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Longest wait between attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);

struct Shared<F: MsgFormat> {
    links: Mutex<Vec<Option<Arc<Server<F>>>>>,
    stop: AtomicBool,
}

/// A server endpoint linked to every gateway of a list.
pub struct MultiServer<F: MsgFormat = Raw> {
    addrs: Vec<SocketAddr>,
    shared: Arc<Shared<F>>,
    accepted: Mutex<Receiver<(usize, VirtualConn<F>)>>,
    threads: Vec<JoinHandle<()>>,
}

impl<F: MsgFormat> std::fmt::Debug for MultiServer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiServer")
            .field("gateways", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl MultiServer<Raw> {
    /// Links server `cfg.server_id` to every gateway in `addrs` (their
    /// server addresses), with raw-bytes messages. Returns at once; links
    /// come up in the background (see [`linked`](Self::linked)). Fails only
    /// if a thread cannot be started.
    pub fn connect(addrs: Vec<SocketAddr>, cfg: EndpointConfig) -> io::Result<MultiServer<Raw>> {
        MultiServer::connect_with(addrs, cfg, Raw)
    }
}

impl<F: MsgFormat + Clone> MultiServer<F> {
    /// [`connect`](MultiServer::connect) with message format `format`.
    pub fn connect_with(
        addrs: Vec<SocketAddr>,
        cfg: EndpointConfig,
        format: F,
    ) -> io::Result<MultiServer<F>> {
        let shared = Arc::new(Shared {
            links: Mutex::new(vec![None; addrs.len()]),
            stop: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let mut group = MultiServer {
            addrs: addrs.clone(),
            shared,
            accepted: Mutex::new(rx),
            threads: Vec::with_capacity(addrs.len()),
        };
        for (i, &addr) in addrs.iter().enumerate() {
            let (shared, tx, cfg, format) = (
                group.shared.clone(),
                tx.clone(),
                cfg.clone(),
                format.clone(),
            );
            // On failure, dropping the group stops the threads started.
            let thread = std::thread::Builder::new()
                .name(format!("uniway-link-{i}"))
                .spawn(move || keep_linked(i, addr, cfg, format, shared, tx))?;
            group.threads.push(thread);
        }
        Ok(group)
    }
}

impl<F: MsgFormat> MultiServer<F> {
    /// The gateways' addresses, in the order their indexes refer to.
    pub fn gateways(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Which gateways a link is up to now (registered and handshaken).
    pub fn linked(&self) -> Vec<bool> {
        self.lock().iter().map(Option::is_some).collect()
    }

    /// Waits until every gateway is linked, or `timeout` passes; returns
    /// whether all are.
    pub fn wait_linked(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if self.linked().iter().all(|&up| up) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next vconn a client opened through any gateway, with that
    /// gateway's index.
    pub fn accept(&self) -> Result<(usize, VirtualConn<F>), EndpointError> {
        self.accept_until(None)
    }

    /// Like [`accept`](Self::accept), giving up after `timeout` (then
    /// `Err(EndpointError::Disconnected)` if none came).
    pub fn accept_timeout(
        &self,
        timeout: Duration,
    ) -> Result<(usize, VirtualConn<F>), EndpointError> {
        self.accept_until(Some(Instant::now() + timeout))
    }

    fn accept_until(
        &self,
        until: Option<Instant>,
    ) -> Result<(usize, VirtualConn<F>), EndpointError> {
        let rx = self.accepted.lock().unwrap_or_else(|e| e.into_inner());
        let got = match until {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        got.map_err(|e| match e {
            RecvTimeoutError::Timeout => EndpointError::Disconnected,
            RecvTimeoutError::Disconnected => EndpointError::Closed,
        })
    }

    /// Opens a vconn to client `client_id` of gateway `gateway` (an index
    /// into the list). Fails with `Disconnected` while that link is down.
    pub fn dial(&self, gateway: usize, client_id: u32) -> Result<VirtualConn<F>, DialError> {
        let link = self
            .lock()
            .get(gateway)
            .cloned()
            .flatten()
            .ok_or(DialError::Endpoint(EndpointError::Disconnected))?;
        link.dial(client_id)
    }

    /// The links up now, with their gateway's index.
    fn up(&self) -> Vec<(usize, Arc<Server<F>>)> {
        self.lock()
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.clone().map(|l| (i, l)))
            .collect()
    }

    /// [`for_each_gateway`] over the links up now.
    fn per_gateway(
        &self,
        targets: &[(usize, u32)],
        every: bool,
        f: impl Fn(&Server<F>, &[u32]) -> Result<(), SendError>,
    ) -> Result<(), SendError> {
        let up = self.up();
        for_each_gateway(self.addrs.len(), targets, every, |g, ids| {
            match up.iter().find(|(i, _)| *i == g) {
                Some((_, link)) => f(link, ids),
                None => Err(SendError::Endpoint(EndpointError::Disconnected)),
            }
        })
    }

    /// Sends one message to every vconn in `targets` (gateway index, conn
    /// ID): each gateway gets one Multicast with its own conn IDs. The
    /// links must support fan-out (`EndpointConfig::probe_features`).
    pub fn multicast(&self, targets: &[(usize, u32)], msg: &F::Outgoing) -> Result<(), SendError> {
        self.per_gateway(targets, false, |s, ids| s.multicast(ids, msg))
    }

    /// Adds vconns to `group`; each gateway keeps the group of its own
    /// members.
    pub fn join(&self, group: u32, targets: &[(usize, u32)]) -> Result<(), SendError> {
        self.per_gateway(targets, false, |s, ids| s.join(group, ids))
    }

    /// Takes vconns out of `group`.
    pub fn leave(&self, group: u32, targets: &[(usize, u32)]) -> Result<(), SendError> {
        self.per_gateway(targets, false, |s, ids| s.leave(group, ids))
    }

    /// Sends one message to every member of `group` at every linked
    /// gateway but `except`; each gateway is sent only its own exceptions.
    /// A gateway whose link is down is reported, after the others got it.
    pub fn send_to_group(
        &self,
        group: u32,
        msg: &F::Outgoing,
        except: &[(usize, u32)],
    ) -> Result<(), SendError> {
        self.per_gateway(except, true, |s, ids| s.send_to_group(group, msg, ids))
    }

    /// Empties `group` at every linked gateway.
    pub fn dissolve(&self, group: u32) -> Result<(), SendError> {
        self.per_gateway(&[], true, |s, _| s.dissolve(group))
    }

    /// Closes every link and stops reconnecting.
    pub fn close(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for link in self.lock().iter().flatten() {
            link.close();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<Arc<Server<F>>>>> {
        self.shared.links.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<F: MsgFormat> Drop for MultiServer<F> {
    fn drop(&mut self) {
        self.close();
    }
}

/// Calls `f` for each of `gateways` gateways with the conn IDs of
/// `targets` (gateway index, conn ID) that are its own; gateways none of
/// `targets` names only if `every`. Every gateway is tried; the first
/// failure is returned.
pub(super) fn for_each_gateway(
    gateways: usize,
    targets: &[(usize, u32)],
    every: bool,
    mut f: impl FnMut(usize, &[u32]) -> Result<(), SendError>,
) -> Result<(), SendError> {
    let mut result = Ok(());
    let mut ids = Vec::new();
    for g in 0..gateways {
        ids.clear();
        ids.extend(targets.iter().filter(|(i, _)| *i == g).map(|&(_, c)| c));
        if ids.is_empty() && !every {
            continue;
        }
        let r = f(g, &ids);
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// One gateway's link, for as long as the group lives.
fn keep_linked<F: MsgFormat + Clone>(
    index: usize,
    addr: SocketAddr,
    cfg: EndpointConfig,
    format: F,
    shared: Arc<Shared<F>>,
    tx: Sender<(usize, VirtualConn<F>)>,
) {
    let mut backoff = RECONNECT_MIN;
    while !shared.stop.load(Ordering::SeqCst) {
        let server = TcpStream::connect(addr)
            .map_err(super::error::ConnectError::Io)
            .and_then(|s| Server::with_format(s, cfg.clone(), format.clone()));
        match server {
            Ok(server) => {
                info!(
                    "server {}: linked to gateway {index} at {addr}",
                    cfg.server_id
                );
                backoff = RECONNECT_MIN;
                let server = Arc::new(server);
                shared.links.lock().unwrap_or_else(|e| e.into_inner())[index] =
                    Some(server.clone());
                if shared.stop.load(Ordering::SeqCst) {
                    server.close();
                }
                while let Ok(vconn) = server.accept() {
                    if tx.send((index, vconn)).is_err() {
                        break;
                    }
                }
                shared.links.lock().unwrap_or_else(|e| e.into_inner())[index] = None;
                if let Some(e) = server
                    .failure()
                    .filter(|_| !shared.stop.load(Ordering::SeqCst))
                {
                    info!(
                        "server {}: link to gateway {index} at {addr} lost: {e}",
                        cfg.server_id
                    );
                }
            }
            Err(e) => debug!("server {}: gateway {index} at {addr}: {e}", cfg.server_id),
        }
        // Wait before trying again, in steps, so a close is seen soon.
        let until = Instant::now() + backoff;
        while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}
