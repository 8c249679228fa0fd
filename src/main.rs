//! `fastway`: the gateway command, a drop-in replacement for the Go binary.
//!
//! Parses the flags, locks and writes `fastway.pid`, binds the listeners,
//! tells systemd it is ready (when started as a `Type=notify` service), and
//! runs the gateway: `-Workers N` reactors, each a `Gateway` in a mio loop
//! on a thread of its own (see `worker.rs`). The main thread keeps the
//! signals and the metrics: SIGTERM/SIGINT drain every worker and exit,
//! SIGUSR1 runs the command in `fastway.cmd` (over all workers), SIGHUP
//! reads the TLS certificates again.

mod profiler;
mod worker;

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use log::{error, info, warn};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;
use uniway::cli::command::{self, OpCommand};
use uniway::cli::metrics::{self, MetricsServer, WorkerMetrics};
use uniway::cli::{self, listen, Options, Parsed};
use uniway::gateway::ConnInfo;
use uniway::tls::{server_config, TlsFiles};
use uniway::transport::WsSettings;
use uniway::{ClientIds, Gateway, Side, Stats, TokenRange};
use worker::{TlsUpdate, Worker};

/// In the main thread's poll.
const SIGNALS: Token = Token(0);
const METRICS_TOKENS: TokenRange = TokenRange { start: 1, len: 32 };
/// In each worker's poll (token 0 is its waker).
const GATEWAY_TOKENS: TokenRange = TokenRange {
    start: 1,
    len: 1 << 30,
};

const PID_FILE: &str = "fastway.pid";
const CMD_FILE: &str = "fastway.cmd";

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(Parsed::Help) => {
            // Go's flag package prints the usage to stderr.
            eprint!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(opts)) => opts,
        Err(e) => {
            eprintln!("fastway: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    match run(*opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `fastway.pid`, locked for as long as this process runs, so a second
/// `fastway` in the same directory refuses to start instead of taking it
/// over. Removed when dropped (on every exit path that returns from
/// `run`, including errors and panics that unwind).
struct PidFile {
    path: PathBuf,
    file: File,
}

impl PidFile {
    /// Opens and locks the pid file, leaving its contents alone until
    /// [`write_pid`](Self::write_pid): a second instance that fails here
    /// must not touch the first one's file.
    fn lock() -> Result<PidFile, String> {
        let path = PathBuf::from(PID_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {PID_FILE}: {e}"))?;
        match file.try_lock() {
            Ok(()) => Ok(PidFile { path, file }),
            Err(TryLockError::WouldBlock) => {
                let other = fs::read_to_string(&path).unwrap_or_default();
                let other = other.trim();
                let who = if other.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {other})")
                };
                Err(format!(
                    "another fastway{who} is running in this directory ({PID_FILE} is locked); \
                     stop it or start this one in another directory"
                ))
            }
            Err(TryLockError::Error(e)) => Err(format!("cannot lock {PID_FILE}: {e}")),
        }
    }

    /// Writes this process's ID, once the listeners are bound.
    fn write_pid(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file
            .write_all(format!("{}\n", std::process::id()).as_bytes())?;
        self.file.flush()
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

fn run(opts: Options) -> Result<(), String> {
    let mut pid_file = PidFile::lock()?;
    let open_to_all = opts.config.auth_key.is_empty();
    let n = match opts.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let tls = Tls {
        client: opts.client_tls.clone(),
        server: opts.server_tls.clone(),
        ws: opts.ws_tls.clone(),
    };
    let configs = tls.configs()?;
    let ws_settings = WsSettings {
        path: opts.ws_path.clone(),
        origins: opts.ws_origins.clone(),
        max_packet: opts.config.max_packet,
    };
    // Several workers share the client listeners' address (the kernel
    // spreads connections over them); worker i takes servers on
    // ServerAddr's port + i.
    let shared = opts.reuse_port || n > 1;
    let mut client_at: Option<SocketAddr> = None;
    let mut ws_at: Option<SocketAddr> = None;
    let mut server_at: Option<SocketAddr> = None;
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let bind_shared = |first: Option<SocketAddr>, flag: &str, addr: &str| {
            let target = first.map_or(addr.to_string(), |a| a.to_string());
            listen::bind(&target, shared).map_err(|e| format!("{flag} {target}: {e}"))
        };
        let client = bind_shared(client_at, "ClientAddr", &opts.client_addr)?;
        client_at = client_at.or(client.local_addr().ok());
        let server = match server_at {
            None => listen::bind(&opts.server_addr, opts.reuse_port)
                .map_err(|e| format!("ServerAddr {}: {e}", opts.server_addr))?,
            Some(first) => {
                // Port 0 asks for any port: each worker gets one of its
                // own from the kernel (logged below).
                let ephemeral = listen::resolve(&opts.server_addr)
                    .is_ok_and(|a| a.iter().all(|a| a.port() == 0));
                let port = if ephemeral {
                    0
                } else {
                    u16::try_from(usize::from(first.port()) + i).map_err(|_| {
                        format!(
                            "ServerAddr {first}: no port {} + {i} for worker {i} of {n}; \
                             give -ServerAddr a lower port or -Workers a smaller count",
                            first.port()
                        )
                    })?
                };
                let at = SocketAddr::new(first.ip(), port);
                listen::bind(&at.to_string(), opts.reuse_port).map_err(|e| {
                    format!(
                        "ServerAddr {at} (worker {i} of {n} takes ServerAddr's port + {i}): {e}; \
                         give -ServerAddr a port whose next {} are free, or -ServerAddr=HOST:0 \
                         for a port of the kernel's choosing per worker",
                        n - 1
                    )
                })?
            }
        };
        server_at = server_at.or(server.local_addr().ok());
        let ws = match &opts.ws_addr {
            Some(addr) => {
                let l = bind_shared(ws_at, "ClientWsAddr", addr)?;
                ws_at = ws_at.or(l.local_addr().ok());
                Some(l)
            }
            None => None,
        };
        let mut config = opts.config.clone();
        if n > 1 {
            config.client_ids = ClientIds::worker(i as u32, n as u32);
        }
        let poll = Poll::new().map_err(|e| format!("cannot create the poller: {e}"))?;
        let mut gw = Gateway::new(config, GATEWAY_TOKENS).map_err(|e| e.to_string())?;
        for (side, listener, config) in [
            (Side::Client, client, &configs.client),
            (Side::Server, server, &configs.server),
        ] {
            let listening = match config {
                None => gw.listen(poll.registry(), side, listener),
                Some(config) => gw.listen_tls(poll.registry(), side, listener, config.clone()),
            };
            listening.map_err(|e| format!("{side} listener: {e}"))?;
        }
        if let Some(listener) = ws {
            gw.listen_ws(
                poll.registry(),
                listener,
                ws_settings.clone(),
                configs.ws.clone(),
            )
            .map_err(|e| format!("WebSocket listener: {e}"))?;
        }
        if n > 1 {
            info!(
                "worker {i} of {n}: servers connect to {}",
                gw.local_addrs(Side::Server)[0]
            );
        }
        workers
            .push(Worker::start(i, poll, gw).map_err(|e| format!("cannot start worker {i}: {e}"))?);
    }

    let mut poll = Poll::new().map_err(|e| format!("cannot create the poller: {e}"))?;
    let mut metrics = match &opts.metrics_addr {
        Some(addr) => {
            let listener =
                listen::bind(addr, false).map_err(|e| format!("MetricsAddr {addr}: {e}"))?;
            let m = MetricsServer::new(listener, poll.registry(), METRICS_TOKENS)
                .map_err(|e| format!("MetricsAddr {addr}: {e}"))?;
            if let Ok(at) = m.local_addr() {
                info!("metrics (GET /metrics) listener at {at}");
            }
            Some(m)
        }
        None => None,
    };
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP])
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    pid_file
        .write_pid()
        .map_err(|e| format!("cannot write {PID_FILE}: {e}"))?;
    if open_to_all {
        warn!(
            "ServerAuthKey is empty: any process that reaches ServerAddr can register \
             any server ID; set -ServerAuthKey, -ServerAuthKeyFile or {}",
            cli::AUTH_KEY_ENV
        );
    }
    info!("fastway running, pid {}", std::process::id());
    // Under systemd with Type=notify: the listeners are bound, dependants
    // may start. Outside systemd this does nothing.
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        warn!("cannot tell systemd the gateway is ready: {e}");
    }

    let started = Instant::now();
    let mut profiler = profiler::Profiler::default();
    let mut events = Events::with_capacity(64);
    'run: loop {
        let now = Instant::now();
        let timeout = metrics
            .as_mut()
            .and_then(|m| m.handle_timeout(poll.registry(), now))
            .map(|at| at.saturating_duration_since(now));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll failed: {e}"));
            }
        }
        let now = Instant::now();
        for ev in events.iter() {
            if let Some(m) = metrics.as_mut().filter(|m| m.owns(ev.token())) {
                m.handle_event(poll.registry(), ev, now, || {
                    let snapshots = snapshots(&workers);
                    metrics::render(snapshots.into_iter().map(|(m, _)| m).collect())
                });
                continue;
            }
            if ev.token() != SIGNALS {
                continue;
            }
            for sig in signals.pending() {
                match sig {
                    SIGUSR1 => run_command_file(&workers, &tls, &mut profiler, started),
                    SIGHUP => tls.reload(&workers, "SIGHUP"),
                    sig => {
                        info!("signal {sig}: shutting down, flushing queued data");
                        break 'run;
                    }
                }
            }
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    for w in &workers {
        w.shutdown();
    }
    let mut finals = Vec::with_capacity(workers.len());
    for w in workers {
        finals.push(w.join()?);
    }
    let total = command::total_fields(&finals);
    let field = |name: &str| {
        total
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    };
    info!(
        "fastway stopped: forwarded {} frames from clients and {} from servers; \
         wrote {} bytes to clients and {} to servers",
        field("frames_from_clients"),
        field("frames_from_servers"),
        field("bytes_to_clients"),
        field("bytes_to_servers")
    );
    Ok(())
}

/// Every worker's figures and connections, in worker order (a worker that
/// does not answer in time is left out).
fn snapshots(workers: &[Worker]) -> Vec<(WorkerMetrics, Vec<ConnInfo>)> {
    workers.iter().filter_map(Worker::snapshot).collect()
}

/// The TLS files of each listener, kept to read them again.
struct Tls {
    client: Option<TlsFiles>,
    server: Option<TlsFiles>,
    ws: Option<TlsFiles>,
}

impl Tls {
    /// Every listener's TLS settings, read from its files.
    fn configs(&self) -> Result<TlsUpdate, String> {
        let read = |files: &Option<TlsFiles>, what: &str| -> Result<_, String> {
            files
                .as_ref()
                .map(|f| server_config(f).map_err(|e| format!("{what} TLS: {e}")))
                .transpose()
        };
        Ok(TlsUpdate {
            client: read(&self.client, "client")?,
            server: read(&self.server, "server")?,
            ws: read(&self.ws, "WebSocket")?,
        })
    }

    /// Reads every listener's certificate and key again and hands the new
    /// settings to every worker; a file that cannot be used is logged and
    /// its listener keeps the old certificate. Open connections are not
    /// touched.
    fn reload(&self, workers: &[Worker], why: &str) {
        let mut any = false;
        let mut update = TlsUpdate::default();
        let mut done = Vec::new();
        for (what, files, slot) in [
            ("client", &self.client, &mut update.client),
            ("server", &self.server, &mut update.server),
            ("WebSocket", &self.ws, &mut update.ws),
        ] {
            let Some(files) = files else { continue };
            any = true;
            match server_config(files) {
                Ok(config) => {
                    *slot = Some(config);
                    done.push((what, files.cert_chain.display().to_string()));
                }
                Err(e) => warn!("{why}: {what} TLS not reloaded, the old certificate stays: {e}"),
            }
        }
        if !any {
            info!("{why}: no TLS listener, nothing to reload");
            return;
        }
        for w in workers {
            w.set_tls(TlsUpdate {
                client: update.client.clone(),
                server: update.server.clone(),
                ws: update.ws.clone(),
            });
        }
        for (what, from) in done {
            info!("{why}: {what} TLS certificate reloaded from {from}");
        }
    }
}

fn run_command_file(
    workers: &[Worker],
    tls: &Tls,
    profiler: &mut profiler::Profiler,
    started: Instant,
) {
    let text = match fs::read_to_string(CMD_FILE) {
        Ok(t) => t,
        Err(e) => {
            warn!("SIGUSR1: cannot read {CMD_FILE}: {e}");
            return;
        }
    };
    let cmd = match command::parse_command(&text) {
        Ok(c) => c,
        Err(e) => {
            warn!("SIGUSR1: {e} in {CMD_FILE}; known: cpuprof start|stop, lookup stats|conns|heap, kick client|server ID, reload tls");
            return;
        }
    };
    let write = |file: &str, body: String| match fs::write(file, body) {
        Ok(()) => info!("{file} written"),
        Err(e) => warn!("cannot write {file}: {e}"),
    };
    let stats = || -> Vec<Stats> {
        snapshots(workers)
            .into_iter()
            .map(|(m, _)| m.stats)
            .collect()
    };
    match cmd {
        OpCommand::LookupStats => write("fastway.stats", command::render_stats_total(&stats())),
        OpCommand::LookupConns(filter) => {
            let conns: Vec<ConnInfo> = snapshots(workers)
                .into_iter()
                .flat_map(|(_, conns)| conns)
                .collect();
            write("fastway.conns", command::render_conns(&conns, &filter))
        }
        OpCommand::Kick(side, id) => {
            // A client ID is one worker's; a server is linked to every one.
            let mut found = false;
            for w in workers {
                found |= w.kick(side, id);
                if found && side == Side::Client {
                    break;
                }
            }
            if found {
                info!("kick {side} {id}: closing it");
            } else {
                warn!("kick {side} {id}: no such {side}");
            }
        }
        OpCommand::LookupHeap => write(
            "fastway.heap.prof",
            command::render_heap(&stats(), command::rss_bytes(), started.elapsed()),
        ),
        OpCommand::ReloadTls => tls.reload(workers, "reload tls"),
        OpCommand::CpuprofStart => profiler.start(),
        OpCommand::CpuprofStop => profiler.stop("fastway.cpu.prof"),
        OpCommand::GoOnly(name, instead) => {
            info!("{name}: Go runtime only, no meaning in this gateway; {instead}")
        }
    }
}
