//! `fastway`: the gateway command, a drop-in replacement for the Go binary.
//!
//! Parses the flags, locks and writes `fastway.pid`, binds the listeners,
//! tells systemd it is ready (when started as a `Type=notify` service), and
//! runs the gateway in one mio loop together with the signals:
//! SIGTERM/SIGINT drain and exit, SIGUSR1 runs the command in
//! `fastway.cmd`, SIGHUP reads the TLS certificates again.

mod profiler;

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;
use uniway::cli::command::{self, OpCommand};
use uniway::cli::metrics::{self, MetricsServer, WorkerMetrics};
use uniway::cli::{self, listen, Options, Parsed};
use uniway::tls::{server_config, TlsFiles};
use uniway::transport::WsSettings;
use uniway::{Gateway, Side, TokenRange};

const SIGNALS: Token = Token(0);
const GATEWAY_TOKENS: TokenRange = TokenRange {
    start: 1,
    len: 1 << 30,
};
const METRICS_TOKENS: TokenRange = TokenRange {
    start: (1 << 30) + 1,
    len: 32,
};
/// How long a shutdown may spend flushing queued bytes.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

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
    let client = listen::bind(&opts.client_addr, opts.reuse_port)
        .map_err(|e| format!("ClientAddr {}: {e}", opts.client_addr))?;
    let server = listen::bind(&opts.server_addr, opts.reuse_port)
        .map_err(|e| format!("ServerAddr {}: {e}", opts.server_addr))?;
    let ws = match &opts.ws_addr {
        Some(addr) => Some(
            listen::bind(addr, opts.reuse_port).map_err(|e| format!("ClientWsAddr {addr}: {e}"))?,
        ),
        None => None,
    };
    let tls = Tls {
        client: opts.client_tls.clone(),
        server: opts.server_tls.clone(),
        ws: opts.ws_tls.clone(),
    };
    let ws_settings = WsSettings {
        path: opts.ws_path.clone(),
        origins: opts.ws_origins.clone(),
        max_packet: opts.config.max_packet,
    };
    let mut poll = Poll::new().map_err(|e| format!("cannot create the poller: {e}"))?;
    let mut gw = Gateway::new(opts.config, GATEWAY_TOKENS).map_err(|e| e.to_string())?;
    for (side, listener, files) in [
        (Side::Client, client, &tls.client),
        (Side::Server, server, &tls.server),
    ] {
        let listening = match files {
            None => gw.listen(poll.registry(), side, listener),
            Some(files) => {
                let config = server_config(files).map_err(|e| format!("{side} TLS: {e}"))?;
                gw.listen_tls(poll.registry(), side, listener, config)
            }
        };
        listening.map_err(|e| format!("{side} listener: {e}"))?;
    }
    if let Some(listener) = ws {
        let config = match &tls.ws {
            Some(files) => Some(server_config(files).map_err(|e| format!("WebSocket TLS: {e}"))?),
            None => None,
        };
        gw.listen_ws(poll.registry(), listener, ws_settings, config)
            .map_err(|e| format!("WebSocket listener: {e}"))?;
    }
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
    let mut drain_until: Option<Instant> = None;
    let mut events = Events::with_capacity(1024);
    loop {
        let now = Instant::now();
        let mut timeout = gw.poll_timeout(now);
        if let Some(at) = metrics
            .as_mut()
            .and_then(|m| m.handle_timeout(poll.registry(), now))
        {
            let left = at.saturating_duration_since(now);
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
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
            if let Some(m) = metrics.as_mut().filter(|m| m.owns(ev.token())) {
                m.handle_event(poll.registry(), ev, now, || {
                    metrics::render(vec![worker_metrics(&gw, now)])
                });
                continue;
            }
            if ev.token() != SIGNALS {
                gw.handle_event(poll.registry(), ev, now);
                continue;
            }
            for sig in signals.pending() {
                match sig {
                    SIGUSR1 => run_command_file(&mut gw, &tls, &mut profiler, started),
                    SIGHUP => tls.reload(&mut gw, "SIGHUP"),
                    _ if drain_until.is_none() => {
                        info!("signal {sig}: shutting down, flushing queued data");
                        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
                        gw.shutdown(poll.registry());
                        drain_until = Some(now + DRAIN_LIMIT);
                    }
                    _ => {}
                }
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
                let st = gw.stats();
                info!(
                    "fastway stopped: forwarded {} frames from clients and {} from servers; \
                     wrote {} bytes to clients and {} to servers",
                    st.frames_from_clients,
                    st.frames_from_servers,
                    st.bytes_to_clients,
                    st.bytes_to_servers
                );
                return Ok(());
            }
        }
    }
}

/// One gateway's figures for a metrics scrape.
fn worker_metrics(gw: &Gateway, now: Instant) -> WorkerMetrics {
    WorkerMetrics {
        stats: gw.stats(),
        turns: gw.turn_histogram(),
        queued: gw.conns(now).iter().map(|c| c.queued_bytes).collect(),
    }
}

/// The TLS files of each listener, kept to read them again.
struct Tls {
    client: Option<TlsFiles>,
    server: Option<TlsFiles>,
    ws: Option<TlsFiles>,
}

impl Tls {
    /// Reads every listener's certificate and key again and hands the new
    /// configuration to the gateway; a file that cannot be used is logged
    /// and the listener keeps its old certificate. Open connections are
    /// not touched.
    fn reload(&self, gw: &mut Gateway, why: &str) {
        let mut any = false;
        for (side, files) in [(Side::Client, &self.client), (Side::Server, &self.server)] {
            let Some(files) = files else { continue };
            any = true;
            match server_config(files) {
                Ok(config) => {
                    gw.set_tls_config(side, config);
                    info!(
                        "{why}: {side} TLS certificate reloaded from {}",
                        files.cert_chain.display()
                    );
                }
                Err(e) => warn!("{why}: {side} TLS not reloaded, the old certificate stays: {e}"),
            }
        }
        if let Some(files) = &self.ws {
            any = true;
            match server_config(files) {
                Ok(config) => {
                    gw.set_ws_tls_config(config);
                    info!(
                        "{why}: WebSocket TLS certificate reloaded from {}",
                        files.cert_chain.display()
                    );
                }
                Err(e) => {
                    warn!("{why}: WebSocket TLS not reloaded, the old certificate stays: {e}")
                }
            }
        }
        if !any {
            info!("{why}: no TLS listener, nothing to reload");
        }
    }
}

fn run_command_file(
    gw: &mut Gateway,
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
    match cmd {
        OpCommand::LookupStats => write("fastway.stats", command::render_stats(&gw.stats())),
        OpCommand::LookupConns(filter) => write(
            "fastway.conns",
            command::render_conns(&gw.conns(Instant::now()), &filter),
        ),
        OpCommand::Kick(side, id) => {
            if gw.kick(side, id) {
                info!("kick {side} {id}: closing it");
            } else {
                warn!("kick {side} {id}: no such {side}");
            }
        }
        OpCommand::LookupHeap => write(
            "fastway.heap.prof",
            command::render_heap(&gw.stats(), command::rss_bytes(), started.elapsed()),
        ),
        OpCommand::ReloadTls => tls.reload(gw, "reload tls"),
        OpCommand::CpuprofStart => profiler.start(),
        OpCommand::CpuprofStop => profiler.stop("fastway.cpu.prof"),
        OpCommand::GoOnly(name, instead) => {
            info!("{name}: Go runtime only, no meaning in this gateway; {instead}")
        }
    }
}
