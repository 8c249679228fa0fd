//! Load tool: echo servers and clients driven from one thread through the
//! mio endpoint driver, ping-pong on every vconn, every echo verified.
//!
//! ```sh
//! cargo run --release --example loadgen -- --client 127.0.0.1:4000 --server 127.0.0.1:4001 \
//!     --servers 1 --clients 100 --vconns 1 --bytes 64 --inflight 1 --secs 10 --gateway-pid PID
//! cargo run --release --example loadgen -- --direct --clients 100 --bytes 64 --secs 10
//! cargo run --release --example loadgen -- --serve-direct 127.0.0.1:4100   # echo server alone
//! cargo run --release --example loadgen -- --direct-addr 127.0.0.1:4100 --gateway-pid ECHO_PID
//! cargo run --release --example loadgen -- --client ... --server ... --idle 10000 --gateway-pid PID
//! cargo run --release --example loadgen -- --client ... --server ... --tls-ca ca.pem ...   # clients over TLS
//! cargo run --release --example loadgen -- --client WS_ADDR --server ... --ws / ...      # clients over WebSocket
//! (with --tls-ca too: over WSS)
//! cargo run --release --example loadgen -- --server W0_ADDR,W1_ADDR ...            # servers linked to every worker
//! cargo run --release --example loadgen -- --snet [--snet-encrypt] ...              # clients over snet
//! cargo run --release --example loadgen -- --client ... --server ... --clients 1000 \
//!     --room group --bytes 256 --inflight 8 --gateway-pid PID    # one server broadcasting to a room
//! ```
//!
//! Reports round trips per second, latency percentiles, and with
//! `--gateway-pid` the gateway's CPU seconds and memory (from /proc), so
//! round trips per gateway CPU-second can be read off. `--direct` runs the
//! same clients against an in-process echo server that answers dials
//! itself (no gateway), for the cost of the extra hop; `--serve-direct` runs
//! that echo server as a process of its own, and `--direct-addr` points the
//! clients at it, so the per-round-trip CPU floor of a one-hop relay can be
//! measured like the gateway's (pass its pid as `--gateway-pid`). `--idle N` opens N
//! clients holding one vconn each and reports the gateway's memory per
//! client. A lost, duplicated, reordered or corrupted echo aborts the run.
//!
//! `--room unicast|multicast|group` is the broadcast scenario instead: one
//! server, `--clients` clients with a vconn each (the room), and the server
//! sending `--bytes` messages to every member, `--inflight` broadcasts at a
//! time, by one frame per member (unicast, what any gateway offers), one
//! Multicast, or one GroupSend to a group holding them all
//! (`docs/protocol.md` §10). Every member must get every broadcast once,
//! in order. It reports broadcasts and delivered frames per second, the
//! frames and bytes on the server's link, and with `--gateway-pid` the
//! gateway's CPU per delivered frame and its memory.

use std::collections::HashMap;
use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use uniway::endpoint::driver::{DriverEvent, EndpointDriver};
use uniway::endpoint::{EndpointConfig, EndpointSnet, Event, Role};
use uniway::snet::SnetSettings;
use uniway::wire::{self, Command, Status};
use uniway::TokenRange;

struct Args {
    client: SocketAddr,
    /// Every gateway (or worker) server address; each server links to all.
    server: Vec<SocketAddr>,
    key: String,
    servers: usize,
    clients: usize,
    vconns: usize,
    bytes: usize,
    inflight: usize,
    secs: f64,
    warmup: f64,
    gateway_pid: Option<u32>,
    direct: bool,
    idle: usize,
    sources: u8,
    serve_direct: Option<SocketAddr>,
    direct_addr: Option<SocketAddr>,
    round_trips: Option<u64>,
    /// Clients connect with TLS, trusting this CA (PEM) for `localhost`.
    tls_ca: Option<std::path::PathBuf>,
    /// Clients connect over WebSocket to `--client`, at this path.
    ws: Option<String>,
    /// Clients speak snet (the gateway's `-ClientSnetEnable`).
    snet: bool,
    /// ... encrypted (`-ClientSnetEncrypt`).
    snet_encrypt: bool,
    /// The broadcast scenario, and how the server fans out.
    room: Option<Fanout>,
}

/// How the room's server reaches every member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fanout {
    Unicast,
    Multicast,
    Group,
}

impl std::str::FromStr for Fanout {
    type Err = String;
    fn from_str(s: &str) -> Result<Fanout, String> {
        match s {
            "unicast" => Ok(Fanout::Unicast),
            "multicast" => Ok(Fanout::Multicast),
            "group" => Ok(Fanout::Group),
            other => Err(format!("--room {other}: unicast, multicast or group")),
        }
    }
}

fn args() -> Result<Args, Box<dyn Error>> {
    let mut p = pico_args::Arguments::from_env();
    let a = Args {
        client: p
            .opt_value_from_str("--client")?
            .unwrap_or("127.0.0.1:4000".parse()?),
        server: p
            .opt_value_from_str::<_, String>("--server")?
            .unwrap_or("127.0.0.1:4001".into())
            .split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()?,
        key: p.opt_value_from_str("--key")?.unwrap_or_default(),
        servers: p.opt_value_from_str("--servers")?.unwrap_or(1),
        clients: p.opt_value_from_str("--clients")?.unwrap_or(100),
        vconns: p.opt_value_from_str("--vconns")?.unwrap_or(1),
        bytes: p.opt_value_from_str("--bytes")?.unwrap_or(64),
        inflight: p.opt_value_from_str("--inflight")?.unwrap_or(1),
        secs: p.opt_value_from_str("--secs")?.unwrap_or(10.0),
        warmup: p.opt_value_from_str("--warmup")?.unwrap_or(1.0),
        gateway_pid: p.opt_value_from_str("--gateway-pid")?,
        direct: p.contains("--direct"),
        idle: p.opt_value_from_str("--idle")?.unwrap_or(0),
        sources: p.opt_value_from_str("--sources")?.unwrap_or(1),
        serve_direct: p.opt_value_from_str("--serve-direct")?,
        direct_addr: p.opt_value_from_str("--direct-addr")?,
        round_trips: p.opt_value_from_str("--round-trips")?,
        tls_ca: p.opt_value_from_str("--tls-ca")?,
        ws: p.opt_value_from_str("--ws")?,
        snet: p.contains("--snet"),
        snet_encrypt: p.contains("--snet-encrypt"),
        room: p.opt_value_from_str("--room")?,
    };
    let rest = p.finish();
    if !rest.is_empty() {
        return Err(format!("unknown arguments: {rest:?}").into());
    }
    if a.bytes < HEADER {
        return Err(format!("--bytes must be at least {HEADER}").into());
    }
    Ok(a)
}

/// Sequence number and send time lead every message; the rest is a
/// pattern derived from both, so any corruption shows.
const HEADER: usize = 16;

fn fill(buf: &mut Vec<u8>, seq: u64, sent_ns: u64, len: usize) {
    buf.clear();
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&sent_ns.to_le_bytes());
    buf.extend((0..len - HEADER).map(|i| (seq as usize).wrapping_add(i) as u8));
}

fn check(data: &[u8], expect_seq: u64, len: usize) -> Result<u64, String> {
    if data.len() != len {
        return Err(format!("echo of {} bytes, sent {len}", data.len()));
    }
    let seq = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    if seq != expect_seq {
        return Err(format!(
            "echo of message {seq}, expected {expect_seq} (lost or reordered)"
        ));
    }
    let body_ok = data[HEADER..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (seq as usize).wrapping_add(i) as u8);
    if !body_ok {
        return Err(format!("message {seq} came back corrupted"));
    }
    Ok(u64::from_le_bytes(
        data[8..16].try_into().unwrap_or_default(),
    ))
}

/// Gateway process figures from /proc.
#[derive(Debug, Clone, Copy)]
struct ProcStat {
    cpu_secs: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

fn proc_stat(pid: u32) -> io::Result<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcStat {
        cpu_secs: ticks / clk_tck(),
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A client socket from source address 127.0.0.`n`, so tens of thousands
/// of connections do not run out of ephemeral ports.
fn connect_from(addr: SocketAddr, source: u8) -> io::Result<TcpStream> {
    if source <= 1 {
        return TcpStream::connect(addr);
    }
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((Ipv4Addr::new(127, 0, 0, source), 0)).into())?;
    s.set_nonblocking(true)?;
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(115) => {} // EINPROGRESS
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(s.into()))
}

/// An echo server that answers dials itself: the `--direct` baseline, on a
/// thread of its own (or, with `--serve-direct`, as the whole process, so it
/// can be pinned and its CPU time measured like the gateway's).
fn direct_echo(at: SocketAddr, in_thread: bool) -> io::Result<SocketAddr> {
    let mut listener = TcpListener::bind(at)?;
    let addr = listener.local_addr()?;
    let mut serve = move || {
        let mut poll = Poll::new().expect("poll");
        poll.registry()
            .register(&mut listener, Token(usize::MAX), Interest::READABLE)
            .expect("register");
        let mut conns: Slab<(TcpStream, Vec<u8>, Vec<u8>)> = Slab::new();
        let mut events = Events::with_capacity(1024);
        let mut next_id = 1u32;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if poll.poll(&mut events, None).is_err() {
                continue;
            }
            for ev in events.iter() {
                if ev.token() == Token(usize::MAX) {
                    while let Ok((mut s, _)) = listener.accept() {
                        let _ = s.set_nodelay(true);
                        let e = conns.vacant_entry();
                        let _ = poll.registry().register(
                            &mut s,
                            Token(e.key()),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                        e.insert((s, Vec::new(), Vec::new()));
                    }
                    continue;
                }
                let key = ev.token().0;
                let Some((s, inbuf, out)) = conns.get_mut(key) else {
                    continue;
                };
                let mut dead = false;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            dead = true;
                            break;
                        }
                        Ok(n) => inbuf.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            dead = true;
                            break;
                        }
                    }
                }
                let mut at = 0;
                while let Ok(Status::Complete(f)) = wire::decode_frame(&inbuf[at..], u32::MAX) {
                    let n = f.wire_len();
                    match Command::decode(f.message) {
                        Ok(Command::Dial { remote_id }) if f.is_command() => {
                            Command::Accept {
                                conn_id: next_id,
                                remote_id,
                            }
                            .encode(out);
                            next_id += 1;
                        }
                        _ => out.extend_from_slice(&inbuf[at..at + n]),
                    }
                    at += n;
                }
                inbuf.drain(..at);
                while !out.is_empty() {
                    match s.write(out) {
                        Ok(n) => {
                            out.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            dead = true;
                            break;
                        }
                    }
                }
                if dead {
                    let (mut s, _, _) = conns.remove(key);
                    let _ = poll.registry().deregister(&mut s);
                }
            }
        }
    };
    if in_thread {
        std::thread::spawn(serve);
    } else {
        serve();
    }
    Ok(addr)
}

struct Flow {
    next_send: u64,
    next_expect: u64,
}

/// A TLS client configuration trusting the CA in `ca` (PEM), for a gateway
/// whose certificate names `localhost`.
fn tls_client(
    ca: &std::path::Path,
) -> Result<
    (
        std::sync::Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    ),
    Box<dyn Error>,
> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
        roots.add(c?)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((
        std::sync::Arc::new(config),
        rustls::pki_types::ServerName::try_from("localhost")?,
    ))
}

fn main() -> Result<(), Box<dyn Error>> {
    let a = args()?;
    if let Some(mode) = a.room {
        return room(&a, mode);
    }
    if let Some(at) = a.serve_direct {
        eprintln!("direct echo server at {at}, pid {}", std::process::id());
        direct_echo(at, false)?;
        return Ok(());
    }
    let direct = a.direct || a.direct_addr.is_some();
    let tls = a.tls_ca.as_deref().map(tls_client).transpose()?;
    let mut poll = Poll::new()?;
    let mut d = EndpointDriver::new(TokenRange {
        start: 1,
        len: 1 << 20,
    });
    let base = Instant::now();
    let client_addr = match (a.direct_addr, a.direct) {
        (Some(addr), _) => addr,
        (None, true) => direct_echo("127.0.0.1:0".parse()?, true)?,
        (None, false) => a.client,
    };
    let server_cfg = |id: u32| EndpointConfig {
        server_id: id,
        auth_key: a.key.clone().into_bytes(),
        recv_queue_size: usize::MAX,
        ..EndpointConfig::default()
    };
    let mut server_keys = Vec::new();
    if !direct {
        for id in 1..=a.servers as u32 {
            for &at in &a.server {
                server_keys.push(d.connect(
                    poll.registry(),
                    at,
                    Role::Server,
                    server_cfg(id),
                    base,
                )?);
            }
        }
    }
    let servers_needed = server_keys.len();
    let mut ready_servers = 0;
    let mut clients_started = false;
    let total_clients = if a.idle > 0 { a.idle } else { a.clients };
    let mut flows: Vec<Flow> = Vec::new();
    let mut by_conn: HashMap<(usize, u32), usize> = HashMap::new();
    let mut client_index: HashMap<usize, usize> = HashMap::new();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut msg = Vec::new();
    let mut events = Events::with_capacity(4096);
    let wanted_flows = total_clients * a.vconns;
    let mut ready_at: Option<Instant> = None;
    let mut window: Option<(Instant, Option<ProcStat>, u64)> = None;
    let mut stop_at: Option<Instant> = None;
    let mut round_trips: u64 = 0;
    let mut outstanding: u64 = 0;
    let before_idle = a.gateway_pid.map(proc_stat).transpose()?;

    loop {
        let now = Instant::now();
        if !clients_started && ready_servers == servers_needed {
            clients_started = true;
            for i in 0..total_clients {
                let source = if a.sources > 1 {
                    2 + (i % usize::from(a.sources - 1)) as u8
                } else {
                    1
                };
                let k = match (&tls, &a.ws) {
                    (None, None) if a.snet || a.snet_encrypt => d.connect(
                        poll.registry(),
                        client_addr,
                        Role::Client,
                        EndpointConfig {
                            snet: Some(EndpointSnet {
                                settings: SnetSettings {
                                    encrypt: a.snet_encrypt,
                                    ..EndpointSnet::default().settings
                                },
                                ..EndpointSnet::default()
                            }),
                            ..EndpointConfig::default()
                        },
                        now,
                    )?,
                    (tls, Some(path)) => d.connect_ws(
                        poll.registry(),
                        client_addr,
                        path,
                        EndpointConfig::default(),
                        tls.clone(),
                        now,
                    )?,
                    (Some(t), None) => d.connect_tls(
                        poll.registry(),
                        client_addr,
                        Role::Client,
                        EndpointConfig::default(),
                        t.clone(),
                        now,
                    )?,
                    (None, None) => {
                        let stream = connect_from(client_addr, source)?;
                        d.add(
                            poll.registry(),
                            stream,
                            Role::Client,
                            EndpointConfig::default(),
                            now,
                        )?
                    }
                };
                client_index.insert(k, i);
            }
        }
        // Phases: set up, warm up, measure, drain.
        if ready_at.is_none() && flows.len() == wanted_flows && clients_started {
            ready_at = Some(now);
            eprintln!("{} vconns open after {:.2?}", flows.len(), now - base);
            if a.idle > 0 {
                break;
            }
        }
        if let (Some(limit), Some(_)) = (a.round_trips, ready_at) {
            if window.is_none() {
                let g = a.gateway_pid.map(proc_stat).transpose()?;
                window = Some((now, g, 0));
            }
            if stop_at.is_none() && round_trips + outstanding >= limit {
                stop_at = Some(now);
            }
        } else if let Some(r) = ready_at {
            if window.is_none() && now >= r + Duration::from_secs_f64(a.warmup) {
                let g = a.gateway_pid.map(proc_stat).transpose()?;
                window = Some((now, g, round_trips));
                hist.reset();
            }
        }
        if let (Some((w, _, _)), None) = (window, a.round_trips) {
            if stop_at.is_none() && now >= w + Duration::from_secs_f64(a.secs) {
                stop_at = Some(now);
            }
        }
        if let Some(s) = stop_at {
            if outstanding == 0 {
                break;
            }
            if now > s + Duration::from_secs(10) {
                return Err(format!("{outstanding} echoes never came back").into());
            }
        }
        turn(&mut poll, &mut events, &mut d, now)?;
        while let Some(ev) = d.poll_event() {
            let now = Instant::now();
            match ev {
                DriverEvent::Endpoint(k, Event::Ready) if server_keys.contains(&k) => {
                    ready_servers += 1
                }
                DriverEvent::Endpoint(k, Event::Ready) => {
                    let i = client_index[&k];
                    let ep = d.endpoint(k).ok_or("endpoint vanished")?;
                    for j in 0..a.vconns {
                        let target = if a.direct {
                            1
                        } else {
                            ((i * a.vconns + j) % a.servers) as u32 + 1
                        };
                        ep.dial(target)?;
                    }
                }
                DriverEvent::Endpoint(k, Event::Dialed { conn_id, .. }) => {
                    let idx = flows.len();
                    flows.push(Flow {
                        next_send: 0,
                        next_expect: 0,
                    });
                    by_conn.insert((k, conn_id), idx);
                    if a.idle == 0 {
                        let f = &mut flows[idx];
                        let ep = d.endpoint(k).ok_or("endpoint vanished")?;
                        for _ in 0..a.inflight {
                            fill(
                                &mut msg,
                                f.next_send,
                                (now - base).as_nanos() as u64,
                                a.bytes,
                            );
                            ep.send(conn_id, &msg)?;
                            f.next_send += 1;
                            outstanding += 1;
                        }
                    }
                }
                DriverEvent::Endpoint(k, Event::DialRefused { remote_id, .. }) => {
                    return Err(format!("client {k}: dial to {remote_id} refused").into())
                }
                DriverEvent::Endpoint(k, Event::Message { conn_id, data })
                    if server_keys.contains(&k) =>
                {
                    d.endpoint(k)
                        .ok_or("endpoint vanished")?
                        .send(conn_id, &data)?;
                }
                DriverEvent::Endpoint(k, Event::Message { conn_id, data }) => {
                    let idx = *by_conn
                        .get(&(k, conn_id))
                        .ok_or("echo on an unknown vconn")?;
                    let f = &mut flows[idx];
                    let sent = check(&data, f.next_expect, a.bytes)
                        .map_err(|e| format!("client {k} vconn {conn_id}: {e}"))?;
                    f.next_expect += 1;
                    outstanding -= 1;
                    round_trips += 1;
                    let rtt = ((now - base).as_nanos() as u64).saturating_sub(sent).max(1);
                    if window.is_some() && stop_at.is_none() {
                        hist.record(rtt)?;
                    }
                    if stop_at.is_none() {
                        fill(
                            &mut msg,
                            f.next_send,
                            (now - base).as_nanos() as u64,
                            a.bytes,
                        );
                        d.endpoint(k)
                            .ok_or("endpoint vanished")?
                            .send(conn_id, &msg)?;
                        f.next_send += 1;
                        outstanding += 1;
                    }
                }
                DriverEvent::Endpoint(_, Event::Accepted { .. }) => {}
                DriverEvent::Endpoint(k, other) => {
                    return Err(format!("endpoint {k}: unexpected {other:?}").into())
                }
                DriverEvent::Closed(k, e) => return Err(format!("endpoint {k} closed: {e}").into()),
            }
        }
    }

    if a.idle > 0 {
        // Let the gateway settle, then read its memory.
        std::thread::sleep(Duration::from_secs(2));
        let (Some(before), Some(pid)) = (before_idle, a.gateway_pid) else {
            println!(
                "idle: {} clients holding a vconn each (no --gateway-pid: no memory figures)",
                a.idle
            );
            return Ok(());
        };
        let after = proc_stat(pid)?;
        let per = (after.rss_kib.saturating_sub(before.rss_kib) * 1024) as f64 / a.idle as f64;
        println!(
            "idle: clients={} gateway_rss_before_kib={} gateway_rss_after_kib={} bytes_per_client={per:.0}",
            a.idle, before.rss_kib, after.rss_kib
        );
        return Ok(());
    }

    let (w, g0, rt0) = window.ok_or("the run ended before the measurement window")?;
    let elapsed = if a.round_trips.is_some() {
        Instant::now()
    } else {
        stop_at.unwrap_or_else(Instant::now)
    } - w;
    let n = round_trips - rt0;
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "mode={} servers={} clients={} vconns={} bytes={} inflight={} secs={:.2}",
        if direct { "direct" } else { "gateway" },
        a.servers,
        a.clients,
        a.vconns,
        a.bytes,
        a.inflight,
        elapsed.as_secs_f64()
    );
    println!(
        "round_trips={n} rt_per_sec={:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1}",
        n as f64 / elapsed.as_secs_f64(),
        us(0.50),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    if let (Some(pid), Some(g0)) = (a.gateway_pid, g0) {
        let g1 = proc_stat(pid)?;
        let cpu = g1.cpu_secs - g0.cpu_secs;
        println!(
            "gateway_cpu_secs={cpu:.2} gateway_cpu_util={:.0}% rt_per_gateway_cpu_sec={:.0} gateway_rss_kib={} gateway_peak_rss_kib={}",
            100.0 * cpu / elapsed.as_secs_f64(),
            if cpu > 0.0 { n as f64 / cpu } else { f64::NAN },
            g1.rss_kib,
            g1.hwm_kib
        );
    }
    Ok(())
}

/// One turn of the driver: waits for readiness (at most 100 ms, less if
/// a timer is due), then reads, runs timers and writes.
fn turn(
    poll: &mut Poll,
    events: &mut Events,
    d: &mut EndpointDriver,
    now: Instant,
) -> io::Result<()> {
    let timeout = d
        .poll_timeout(now)
        .map(|t| t.min(Duration::from_millis(100)));
    poll.poll(events, timeout.or(Some(Duration::from_millis(100))))?;
    for ev in events.iter() {
        d.handle_event(ev);
    }
    d.handle_timeout(poll.registry(), Instant::now());
    Ok(())
}

/// The broadcast scenario (`--room`): see the module doc.
fn room(a: &Args, mode: Fanout) -> Result<(), Box<dyn Error>> {
    const GROUP: u32 = 1;
    let mut poll = Poll::new()?;
    let mut d = EndpointDriver::new(TokenRange {
        start: 1,
        len: 1 << 20,
    });
    let base = Instant::now();
    let server_cfg = EndpointConfig {
        server_id: 1,
        auth_key: a.key.clone().into_bytes(),
        probe_features: mode != Fanout::Unicast,
        ..EndpointConfig::default()
    };
    let at = *a.server.first().ok_or("no --server")?;
    let server = d.connect(poll.registry(), at, Role::Server, server_cfg, base)?;
    let mut clients_started = false;
    // The room: the server's conn IDs, and each client's next expected
    // broadcast.
    let mut members: Vec<u32> = Vec::new();
    let mut next_expect: HashMap<usize, u64> = HashMap::new();
    let mut joined = false;
    // Per broadcast in flight: members still to receive it.
    let mut pending: HashMap<u64, usize> = HashMap::new();
    let mut next_seq: u64 = 0;
    let mut done: u64 = 0;
    let mut link_bytes: u64 = 0;
    let mut link_frames: u64 = 0;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut window: Option<(Instant, Option<ProcStat>, u64, u64, u64, u64)> = None;
    // Broadcasts sent when the window closed.
    let mut sent_at_stop = 0;
    let mut started_at: Option<Instant> = None;
    let mut stop_at: Option<Instant> = None;
    let mut events = Events::with_capacity(4096);
    let mut msg = Vec::new();
    let mut peak_rss = 0;
    let mut sampled = base;
    loop {
        let now = Instant::now();
        let ready = d
            .endpoint(server)
            .is_some_and(|ep| ep.is_ready() && (mode == Fanout::Unicast || ep.fan_out_supported()));
        if !clients_started && ready {
            clients_started = true;
            for i in 0..a.clients {
                let source = if a.sources > 1 {
                    2 + (i % usize::from(a.sources - 1)) as u8
                } else {
                    1
                };
                let stream = connect_from(a.client, source)?;
                let k = d.add(
                    poll.registry(),
                    stream,
                    Role::Client,
                    EndpointConfig {
                        recv_queue_size: usize::MAX,
                        ..EndpointConfig::default()
                    },
                    now,
                )?;
                next_expect.insert(k, 0);
            }
        }
        if members.len() == a.clients && !joined {
            let ep = d.endpoint(server).ok_or("server vanished")?;
            if mode == Fanout::Group {
                ep.join(GROUP, &members)?;
            }
            joined = true;
            started_at = Some(now);
            eprintln!("room of {} open after {:.2?}", members.len(), now - base);
        }
        if let Some(s) = started_at {
            if window.is_none() && now >= s + Duration::from_secs_f64(a.warmup) {
                let g = a.gateway_pid.map(proc_stat).transpose()?;
                window = Some((now, g, done, link_bytes, link_frames, next_seq));
                hist.reset();
            }
        }
        if let Some((w, ..)) = window {
            if stop_at.is_none() && now >= w + Duration::from_secs_f64(a.secs) {
                stop_at = Some(now);
                sent_at_stop = next_seq;
            }
        }
        if let Some(s) = stop_at {
            if pending.is_empty() {
                break;
            }
            if now > s + Duration::from_secs(10) {
                return Err(format!("{} broadcasts never reached everyone", pending.len()).into());
            }
        }
        // Keep `inflight` broadcasts going.
        while joined && stop_at.is_none() && pending.len() < a.inflight {
            fill(&mut msg, next_seq, (now - base).as_nanos() as u64, a.bytes);
            let ep = d.endpoint(server).ok_or("server vanished")?;
            let before = ep.output().len();
            match mode {
                Fanout::Unicast => {
                    for &c in &members {
                        ep.send(c, &msg)?;
                    }
                    link_frames += members.len() as u64;
                }
                Fanout::Multicast => {
                    ep.multicast(&members, &msg)?;
                    link_frames += 1;
                }
                Fanout::Group => {
                    ep.send_to_group(GROUP, &msg, &[])?;
                    link_frames += 1;
                }
            }
            link_bytes += (ep.output().len() - before) as u64;
            pending.insert(next_seq, members.len());
            next_seq += 1;
        }
        turn(&mut poll, &mut events, &mut d, now)?;
        while let Some(ev) = d.poll_event() {
            let now = Instant::now();
            match ev {
                DriverEvent::Endpoint(k, Event::Ready) if k == server => {}
                DriverEvent::Endpoint(_, Event::Features { .. }) => {}
                DriverEvent::Endpoint(k, Event::Ready) => {
                    d.endpoint(k).ok_or("endpoint vanished")?.dial(1)?;
                }
                DriverEvent::Endpoint(k, Event::Accepted { conn_id, .. }) if k == server => {
                    members.push(conn_id)
                }
                DriverEvent::Endpoint(_, Event::Dialed { .. }) => {}
                DriverEvent::Endpoint(k, Event::Message { conn_id, data }) => {
                    let expect = next_expect.get_mut(&k).ok_or("a message for no client")?;
                    let sent = check(&data, *expect, a.bytes)
                        .map_err(|e| format!("client {k} vconn {conn_id}: {e}"))?;
                    let seq = *expect;
                    *expect += 1;
                    let left = pending.get_mut(&seq).ok_or("a broadcast twice")?;
                    *left -= 1;
                    if *left == 0 {
                        pending.remove(&seq);
                        done += 1;
                        if window.is_some() && stop_at.is_none() {
                            let t = ((now - base).as_nanos() as u64).saturating_sub(sent);
                            hist.record(t.max(1))?;
                        }
                    }
                }
                DriverEvent::Endpoint(k, other) => {
                    return Err(format!("endpoint {k}: unexpected {other:?}").into())
                }
                DriverEvent::Closed(k, e) => return Err(format!("endpoint {k} closed: {e}").into()),
            }
        }
        // The gateway's memory, sampled every 50 ms while measuring.
        if let Some(pid) = a.gateway_pid.filter(|_| window.is_some()) {
            if sampled.elapsed() >= Duration::from_millis(50) {
                sampled = Instant::now();
                peak_rss = peak_rss.max(proc_stat(pid)?.rss_kib);
            }
        }
    }
    let (w, g0, done0, bytes0, frames0, seq0) =
        window.ok_or("the run ended before the measurement window")?;
    let sent = sent_at_stop - seq0;
    let elapsed = stop_at.unwrap_or_else(Instant::now) - w;
    let n = done - done0;
    let delivered = n * members.len() as u64;
    let secs = elapsed.as_secs_f64();
    println!(
        "mode=room fanout={mode:?} clients={} bytes={} inflight={} secs={secs:.2}",
        members.len(),
        a.bytes,
        a.inflight
    );
    println!(
        "broadcasts={n} broadcasts_per_sec={:.0} delivered_frames_per_sec={:.0} p50_us={:.1} p99_us={:.1}",
        n as f64 / secs,
        delivered as f64 / secs,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0
    );
    let per = |x: u64| {
        if sent > 0 {
            x as f64 / sent as f64
        } else {
            f64::NAN
        }
    };
    println!(
        "server_link_frames_per_broadcast={:.1} server_link_bytes_per_broadcast={:.0}",
        per(link_frames - frames0),
        per(link_bytes - bytes0)
    );
    if let (Some(pid), Some(g0)) = (a.gateway_pid, g0) {
        let g1 = proc_stat(pid)?;
        let cpu = g1.cpu_secs - g0.cpu_secs;
        println!(
            "gateway_cpu_secs={cpu:.2} gateway_cpu_ns_per_delivered_frame={:.0} delivered_frames_per_gateway_cpu_sec={:.0} gateway_rss_kib={} gateway_rss_peak_in_window_kib={}",
            if delivered > 0 { cpu * 1e9 / delivered as f64 } else { f64::NAN },
            if cpu > 0.0 { delivered as f64 / cpu } else { f64::NAN },
            g1.rss_kib,
            peak_rss.max(g1.rss_kib)
        );
    }
    Ok(())
}
