//! Embedding the gateway in your own mio loop.
//!
//! The loop below owns the `Poll`. It hands the gateway a range of tokens
//! and routes every event in that range to it; next to the gateway it runs
//! a listener of its own, a tiny status port that answers each connection
//! with one line of the gateway's counters and hangs up.
//!
//! ```sh
//! cargo run --example embed -- 127.0.0.1:4000 127.0.0.1:4001 127.0.0.1:4002
//! nc 127.0.0.1 4002    # clients=0 servers=0 vconns=0 ...
//! ```

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use uniway::{Config, Gateway, Side, Stats, TokenRange};

/// The application's own token; the gateway's range starts well above it.
const STATUS: Token = Token(0);
const GATEWAY_TOKENS: TokenRange = TokenRange {
    start: 1 << 20,
    len: 1 << 20,
};

/// The addresses the loop actually bound.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub status: SocketAddr,
}

/// One line of counters, as the status port sends it.
pub fn status_line(s: &Stats) -> String {
    format!(
        "clients={} servers={} vconns={} frames_in={} dials={} refused={} protocol_errors={}\n",
        s.clients,
        s.servers,
        s.vconns,
        s.frames_from_clients + s.frames_from_servers,
        s.dials,
        s.refused_unknown + s.refused_limit,
        s.bad_frames + s.bad_commands + s.spoofs,
    )
}

/// A listener on `addr`; an error names the address.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Runs the gateway and the status port in one loop until `stop` is set.
pub fn run(
    config: Config,
    client: SocketAddr,
    server: SocketAddr,
    status: SocketAddr,
    stop: &AtomicBool,
    on_bound: impl FnOnce(Bound),
) -> io::Result<Stats> {
    let mut poll = Poll::new()?;
    let mut gateway =
        Gateway::new(config, GATEWAY_TOKENS).map_err(|e| io::Error::other(e.to_string()))?;
    let client = gateway.listen(poll.registry(), Side::Client, bind(client)?)?;
    let server = gateway.listen(poll.registry(), Side::Server, bind(server)?)?;
    let mut status_listener = bind(status)?;
    let status = status_listener.local_addr()?;
    poll.registry()
        .register(&mut status_listener, STATUS, Interest::READABLE)?;
    on_bound(Bound {
        client,
        server,
        status,
    });

    let mut events = Events::with_capacity(1024);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        // Sleep no longer than the gateway allows, nor than our own needs
        // (here: noticing `stop` within 100 ms).
        let ours = Duration::from_millis(100);
        let timeout = gateway
            .poll_timeout(Instant::now())
            .map_or(ours, |t| t.min(ours));
        match poll.poll(&mut events, Some(timeout)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        }
        let now = Instant::now();
        for event in events.iter() {
            if gateway.owns(event.token()) {
                gateway.handle_event(poll.registry(), event, now);
            } else if event.token() == STATUS {
                answer_status(&status_listener, &gateway.stats());
            }
        }
        gateway.handle_timeout(poll.registry(), Instant::now());
    }
    Ok(gateway.stats())
}

/// Accepts every waiting status connection and writes it one line.
fn answer_status(listener: &TcpListener, stats: &Stats) {
    let line = status_line(stats);
    loop {
        match listener.accept() {
            // A fresh socket's send buffer takes one short line at once.
            Ok((mut stream, _)) => {
                let _ = stream.write(line.as_bytes());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                eprintln!("status port: {e}");
                return;
            }
        }
    }
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(dead_code)]
fn start() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut addr = |default: &str| -> io::Result<SocketAddr> {
        let a = args.next().unwrap_or_else(|| default.to_string());
        a.parse()
            .map_err(|e| io::Error::other(format!("bad address {a}: {e}")))
    };
    let client = addr("127.0.0.1:4000")?;
    let server = addr("127.0.0.1:4001")?;
    let status = addr("127.0.0.1:4002")?;
    let stop = AtomicBool::new(false);
    run(Config::default(), client, server, status, &stop, |b| {
        println!(
            "clients at {}, servers at {}, status at {}",
            b.client, b.server, b.status
        )
    })?;
    Ok(())
}
