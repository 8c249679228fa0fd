//! The workers of `fastway -Workers N`: each a `Gateway` in a mio loop of
//! its own, on its own thread, taking orders from the main thread (which
//! owns the signals, the command file and the metrics) over a channel and a
//! waker.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::warn;
use mio::{Events, Poll, Token, Waker};
use uniway::cli::metrics::WorkerMetrics;
use uniway::gateway::ConnInfo;
use uniway::{Gateway, Side, Stats};

/// The waker's token, outside the gateway's range.
pub const WAKE: Token = Token(0);
/// How long a shutdown may spend flushing queued bytes.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// How long the main thread waits for a worker's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// New TLS settings for a worker's listeners.
#[derive(Default)]
pub struct TlsUpdate {
    pub client: Option<Arc<rustls::ServerConfig>>,
    pub server: Option<Arc<rustls::ServerConfig>>,
    pub ws: Option<Arc<rustls::ServerConfig>>,
}

/// What the main thread asks of a worker.
pub enum Order {
    /// Its figures and connections, now.
    Snapshot(Sender<(WorkerMetrics, Vec<ConnInfo>)>),
    /// Close client or server `id`; answers whether it was there.
    Kick(Side, u32, Sender<bool>),
    /// Use these certificates for new connections; answers once done.
    Tls(TlsUpdate, Sender<()>),
    /// Drain and stop.
    Shutdown,
}

/// A running worker, seen from the main thread.
pub struct Worker {
    orders: Sender<Order>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<Result<Stats, String>>>,
}

impl Worker {
    /// Starts worker `index` on `gw`, whose listeners are registered with
    /// `poll`.
    pub fn start(index: usize, poll: Poll, gw: Gateway) -> io::Result<Worker> {
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let (orders, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("fastway-worker-{index}"))
            .spawn(move || run(poll, gw, rx))?;
        Ok(Worker {
            orders,
            waker,
            thread: Some(thread),
        })
    }

    fn send(&self, order: Order) {
        if self.orders.send(order).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Its figures and connections (`None` if it does not answer in time).
    pub fn snapshot(&self) -> Option<(WorkerMetrics, Vec<ConnInfo>)> {
        let (tx, rx) = mpsc::channel();
        self.send(Order::Snapshot(tx));
        rx.recv_timeout(ANSWER_WAIT).ok()
    }

    /// Closes client or server `id` there; whether it was there.
    pub fn kick(&self, side: Side, id: u32) -> bool {
        let (tx, rx) = mpsc::channel();
        self.send(Order::Kick(side, id, tx));
        rx.recv_timeout(ANSWER_WAIT).unwrap_or(false)
    }

    /// New certificates for its listeners, in use when this returns
    /// (or after a wait, if the worker does not answer).
    pub fn set_tls(&self, update: TlsUpdate) {
        let (tx, rx) = mpsc::channel();
        self.send(Order::Tls(update, tx));
        let _ = rx.recv_timeout(ANSWER_WAIT);
    }

    /// Starts its drain.
    pub fn shutdown(&self) {
        self.send(Order::Shutdown);
    }

    /// Waits for it to finish; its final counters.
    pub fn join(mut self) -> Result<Stats, String> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err("a worker thread panicked".into()),
            None => Err("worker already joined".into()),
        }
    }
}

/// The worker's loop: the gateway, and the orders between turns.
fn run(mut poll: Poll, mut gw: Gateway, orders: Receiver<Order>) -> Result<Stats, String> {
    let mut events = Events::with_capacity(1024);
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let mut timeout = gw.poll_timeout(now);
        if let Some(until) = drain_until {
            let left = until
                .saturating_duration_since(now)
                .min(Duration::from_millis(50));
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll failed: {e}"));
            }
        }
        let now = Instant::now();
        for ev in events.iter() {
            if ev.token() != WAKE {
                gw.handle_event(poll.registry(), ev, now);
            }
        }
        while let Ok(order) = orders.try_recv() {
            match order {
                Order::Snapshot(reply) => {
                    let conns = gw.conns(now);
                    let metrics = WorkerMetrics {
                        stats: gw.stats(),
                        turns: gw.turn_histogram(),
                        queued: conns.iter().map(|c| c.queued_bytes).collect(),
                    };
                    let _ = reply.send((metrics, conns));
                }
                Order::Kick(side, id, reply) => {
                    let _ = reply.send(gw.kick(side, id));
                }
                Order::Tls(update, done) => {
                    if let Some(c) = update.client {
                        gw.set_tls_config(Side::Client, c);
                    }
                    if let Some(c) = update.server {
                        gw.set_tls_config(Side::Server, c);
                    }
                    if let Some(c) = update.ws {
                        gw.set_ws_tls_config(c);
                    }
                    let _ = done.send(());
                }
                Order::Shutdown if drain_until.is_none() => {
                    gw.shutdown(poll.registry());
                    drain_until = Some(now + DRAIN_LIMIT);
                }
                Order::Shutdown => {}
            }
        }
        gw.handle_timeout(poll.registry(), Instant::now());
        if let Some(until) = drain_until {
            let drained = gw.is_drained();
            if drained || Instant::now() >= until {
                if !drained {
                    let open = gw.conns(Instant::now());
                    let unflushed = open.iter().filter(|c| c.queued_bytes > 0).count();
                    warn!(
                        "shutdown: after {DRAIN_LIMIT:?}, {} connections still open \
                         ({unflushed} with data unwritten); closing them",
                        open.len()
                    );
                }
                gw.close_all(poll.registry());
                return Ok(gw.stats());
            }
        }
    }
}
