//! Soak run: many clients and servers through a gateway for minutes, with
//! churn, every message checked end to end.
//!
//! ```sh
//! fastway -ClientAddr=127.0.0.1:4000 -ServerAddr=127.0.0.1:4001 &
//! cargo run --release --example soak -- --client 127.0.0.1:4000 --server 127.0.0.1:4001 \
//!     --clients 2000 --servers 8 --secs 600 --gateway-pid $(cat fastway.pid)
//! ```
//!
//! Servers `1..=N` echo every message. Each client holds one or two vconns
//! to random servers and keeps one sequence-numbered message in flight on
//! each; every echo must be the next in its vconn's sequence, with the
//! bytes that were sent. Meanwhile, at random: clients close a vconn and
//! dial another, clients drop their connection and reconnect, and every
//! `--restart-every` seconds a server drops its connection and registers
//! again under its ID. Every close must reach the other end (within 10 s)
//! and no vconn may close unprompted. The gateway's resident memory is
//! sampled every second. Any lost, duplicated, reordered or corrupted
//! message, missing or unprompted close aborts the run with an error; at
//! the end one line sums up what was done and how memory behaved.

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use uniway::endpoint::driver::{DriverEvent, EndpointDriver};
use uniway::endpoint::{EndpointConfig, Event, Role, SendError};
use uniway::TokenRange;

/// How long a close may take to reach the other end.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

struct Args {
    client: SocketAddr,
    server: SocketAddr,
    key: String,
    clients: usize,
    servers: u32,
    secs: u64,
    gateway_pid: Option<u32>,
    /// vconn close-and-redial operations per second.
    redials: f64,
    /// Client reconnects per second.
    reconnects: f64,
    restart_every: u64,
    seed: u64,
}

fn args() -> Result<Args, Box<dyn Error>> {
    let mut p = pico_args::Arguments::from_env();
    Ok(Args {
        client: p
            .opt_value_from_str("--client")?
            .unwrap_or_else(|| "127.0.0.1:4000".parse().unwrap()),
        server: p
            .opt_value_from_str("--server")?
            .unwrap_or_else(|| "127.0.0.1:4001".parse().unwrap()),
        key: p.opt_value_from_str("--key")?.unwrap_or_default(),
        clients: p.opt_value_from_str("--clients")?.unwrap_or(2000),
        servers: p.opt_value_from_str("--servers")?.unwrap_or(8),
        secs: p.opt_value_from_str("--secs")?.unwrap_or(600),
        gateway_pid: p.opt_value_from_str("--gateway-pid")?,
        redials: p.opt_value_from_str("--redials")?.unwrap_or(100.0),
        reconnects: p.opt_value_from_str("--reconnects")?.unwrap_or(20.0),
        restart_every: p.opt_value_from_str("--restart-every")?.unwrap_or(30),
        seed: p.opt_value_from_str("--seed")?.unwrap_or(1),
    })
}

/// xorshift64*: reproducible churn from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Whether an event of `per_sec` happens in a tick of `dt`.
    fn happens(&mut self, per_sec: f64, dt: Duration) -> bool {
        (self.next() as f64 / u64::MAX as f64) < per_sec * dt.as_secs_f64()
    }
}

/// Message `seq` of vconn `conn_id`: the sequence number, then bytes
/// derived from both, 8 to 520 bytes long.
fn message(conn_id: u32, seq: u64) -> Vec<u8> {
    let len = 8 + ((u64::from(conn_id) * 31 + seq * 17) % 513) as usize;
    let mut m = seq.to_le_bytes().to_vec();
    m.extend((8..len).map(|i| (i as u64 ^ seq ^ u64::from(conn_id)) as u8));
    m
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Client,
    Server(u32),
}

/// A vconn as its two ends have seen it so far (the client's Dialed and
/// the server's Accepted come in either order).
#[derive(Default)]
struct VConn {
    client: Option<usize>,
    server: Option<usize>,
    /// The server the client dialed (from Dialed).
    server_id: u32,
    next_send: u64,
    next_expect: u64,
}

#[derive(Default)]
struct Tally {
    round_trips: u64,
    opened: u64,
    closed_by_clients: u64,
    closes_seen: u64,
    reconnects: u64,
    restarts: u64,
    refused: u64,
}

/// Sends on a vconn; one that closed meanwhile is fine (the endpoint
/// took in the Close with the bytes before it, so the Closed event for it
/// is already queued behind the event being handled).
fn send(d: &mut EndpointDriver, k: usize, conn_id: u32, m: &[u8]) -> Result<(), Box<dyn Error>> {
    match d.endpoint(k).ok_or("endpoint vanished")?.send(conn_id, m) {
        Ok(()) | Err(SendError::NotOpen(_)) => Ok(()),
        Err(e) => Err(format!("endpoint {k} vconn {conn_id}: {e}").into()),
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn Error>> {
    let a = args()?;
    let mut rng = Rng(a.seed.max(1));
    let mut poll = Poll::new()?;
    let mut d = EndpointDriver::new(TokenRange {
        start: 1,
        len: 1 << 20,
    });
    let server_cfg = |id: u32| EndpointConfig {
        server_id: id,
        auth_key: a.key.clone().into_bytes(),
        recv_queue_size: usize::MAX,
        ..EndpointConfig::default()
    };
    let start = Instant::now();
    let mut who: HashMap<usize, Who> = HashMap::new();
    let mut server_key: HashMap<u32, usize> = HashMap::new();
    for id in 1..=a.servers {
        let k = d.connect(
            poll.registry(),
            a.server,
            Role::Server,
            server_cfg(id),
            start,
        )?;
        who.insert(k, Who::Server(id));
    }
    let mut clients: Vec<usize> = Vec::new();
    let mut vconns: HashMap<u32, VConn> = HashMap::new();
    // Closes owed to an endpoint: (endpoint key, conn ID) -> deadline.
    let mut owed: HashMap<(usize, u32), Instant> = HashMap::new();
    let mut tally = Tally::default();
    let mut rss: Vec<(u64, u64)> = Vec::new();
    let mut events = Events::with_capacity(4096);
    let mut last_tick = start;
    let mut next_sample = start;
    let mut next_restart = start + Duration::from_secs(a.restart_every);
    let end = start + Duration::from_secs(a.secs);

    // Vconns whose client left before their server saw them open: the
    // server's Accepted will be followed by a Close it is owed.
    let mut orphans: Vec<u32> = Vec::new();
    // When each server ID last restarted: a client may see a vconn to it
    // open (Dialed) and close before anything else is known of it.
    let mut restarted: HashMap<u32, Instant> = HashMap::new();
    // When a client was last dropped: a server may see a vconn open and
    // close whose client never got to see it open.
    let mut client_dropped: Option<Instant> = None;
    let mut comeback: Vec<u32> = Vec::new();
    // Everything a vanished endpoint held: the other ends are owed a Close.
    let forget = |k: usize,
                  vconns: &mut HashMap<u32, VConn>,
                  owed: &mut HashMap<(usize, u32), Instant>,
                  orphans: &mut Vec<u32>,
                  now: Instant| {
        let gone: Vec<u32> = vconns
            .iter()
            .filter(|(_, v)| v.client == Some(k) || v.server == Some(k))
            .map(|(&c, _)| c)
            .collect();
        for c in gone {
            let v = vconns.remove(&c).expect("listed above");
            let other = if v.client == Some(k) {
                v.server
            } else {
                v.client
            };
            match other {
                Some(o) => {
                    owed.insert((o, c), now + CLOSE_DEADLINE);
                }
                None if v.client == Some(k) => orphans.push(c),
                None => {}
            }
        }
        owed.retain(|(e, _), _| *e != k);
    };

    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        for id in comeback.drain(..) {
            let k = d.connect(poll.registry(), a.server, Role::Server, server_cfg(id), now)?;
            who.insert(k, Who::Server(id));
        }
        // Keep the client population up.
        while clients.len() < a.clients && server_key.len() == a.servers as usize {
            let k = d.connect(
                poll.registry(),
                a.client,
                Role::Client,
                EndpointConfig::default(),
                now,
            )?;
            who.insert(k, Who::Client);
            clients.push(k);
        }
        // Churn.
        let dt = now - last_tick;
        last_tick = now;
        if !clients.is_empty() && rng.happens(a.redials, dt) {
            let k = clients[rng.below(clients.len() as u64) as usize];
            let mine: Vec<u32> = vconns
                .iter()
                .filter(|(_, v)| v.client == Some(k) && v.server.is_some())
                .map(|(&c, _)| c)
                .collect();
            if let (Some(&c), Some(ep)) = (mine.first(), d.endpoint(k)) {
                ep.close_vconn(c);
                let v = vconns.remove(&c).expect("listed");
                owed.insert((v.server.expect("filtered"), c), now + CLOSE_DEADLINE);
                tally.closed_by_clients += 1;
                ep.dial(1 + rng.below(u64::from(a.servers)) as u32)?;
            }
        }
        if !clients.is_empty() && rng.happens(a.reconnects, dt) {
            let i = rng.below(clients.len() as u64) as usize;
            let k = clients.swap_remove(i);
            d.close(poll.registry(), k);
            who.remove(&k);
            forget(k, &mut vconns, &mut owed, &mut orphans, now);
            client_dropped = Some(now);
            tally.reconnects += 1;
        }
        if a.restart_every > 0 && now >= next_restart {
            next_restart = now + Duration::from_secs(a.restart_every);
            let id = 1 + rng.below(u64::from(a.servers)) as u32;
            if let Some(k) = server_key.remove(&id) {
                d.close(poll.registry(), k);
                who.remove(&k);
                forget(k, &mut vconns, &mut owed, &mut orphans, now);
                restarted.insert(id, now);
                // Registers again once the old endpoint's last events are
                // drained (its key may be handed out again).
                comeback.push(id);
                tally.restarts += 1;
            }
        }
        if let Some((&(e, c), _)) = owed.iter().find(|(_, &at)| now > at) {
            return Err(format!("endpoint {e} never heard that vconn {c} closed").into());
        }
        if now >= next_sample {
            next_sample += Duration::from_secs(1);
            if let Some(kib) = a.gateway_pid.and_then(rss_kib) {
                let t = (now - start).as_secs();
                rss.push((t, kib));
                if t.is_multiple_of(10) {
                    eprintln!(
                        "t={t}s rss_kib={kib} clients={} vconns={} round_trips={}",
                        clients.len(),
                        vconns.len(),
                        tally.round_trips
                    );
                }
            }
        }

        let timeout = d.poll_timeout(now).map_or(Duration::from_millis(10), |t| {
            t.min(Duration::from_millis(10))
        });
        poll.poll(&mut events, Some(timeout))?;
        for ev in events.iter() {
            d.handle_event(ev);
        }
        d.handle_timeout(poll.registry(), Instant::now());
        while let Some(ev) = d.poll_event() {
            let now = Instant::now();
            match ev {
                DriverEvent::Endpoint(k, _) if !who.contains_key(&k) => {}
                DriverEvent::Endpoint(k, Event::Ready) => match who[&k] {
                    Who::Server(id) => {
                        server_key.insert(id, k);
                    }
                    Who::Client => {
                        let ep = d.endpoint(k).ok_or("endpoint vanished")?;
                        for _ in 0..1 + rng.below(2) {
                            ep.dial(1 + rng.below(u64::from(a.servers)) as u32)?;
                        }
                    }
                },
                DriverEvent::Endpoint(
                    k,
                    Event::Dialed {
                        conn_id, remote_id, ..
                    },
                ) => {
                    let v = vconns.entry(conn_id).or_default();
                    v.client = Some(k);
                    v.server_id = remote_id;
                    tally.opened += 1;
                    let m = message(conn_id, v.next_send);
                    v.next_send += 1;
                    send(&mut d, k, conn_id, &m)?;
                }
                DriverEvent::Endpoint(k, Event::DialRefused { .. }) => {
                    // A server restarting: dial another.
                    tally.refused += 1;
                    let ep = d.endpoint(k).ok_or("endpoint vanished")?;
                    ep.dial(1 + rng.below(u64::from(a.servers)) as u32)?;
                }
                DriverEvent::Endpoint(k, Event::Accepted { conn_id, .. }) => {
                    if let Some(i) = orphans.iter().position(|&c| c == conn_id) {
                        orphans.swap_remove(i);
                        owed.insert((k, conn_id), now + CLOSE_DEADLINE);
                    } else {
                        vconns.entry(conn_id).or_default().server = Some(k);
                    }
                }
                DriverEvent::Endpoint(k, Event::Message { conn_id, data }) => match who[&k] {
                    Who::Server(_) => {
                        // Echo; a message for a vconn this side already
                        // closed cannot come (the endpoint drops it).
                        send(&mut d, k, conn_id, &data)?;
                    }
                    Who::Client => {
                        let Some(v) = vconns.get_mut(&conn_id) else {
                            // Closed by this client a moment ago.
                            continue;
                        };
                        let want = message(conn_id, v.next_expect);
                        if data != want {
                            let got = data
                                .get(..8)
                                .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
                            return Err(format!(
                                "vconn {conn_id}: expected message {} ({} bytes), got seq {got:?} ({} bytes)",
                                v.next_expect,
                                want.len(),
                                data.len()
                            )
                            .into());
                        }
                        v.next_expect += 1;
                        tally.round_trips += 1;
                        let m = message(conn_id, v.next_send);
                        v.next_send += 1;
                        send(&mut d, k, conn_id, &m)?;
                    }
                },
                DriverEvent::Endpoint(k, Event::Closed { conn_id }) => {
                    let owed_one = owed.remove(&(k, conn_id)).is_some();
                    // A vconn one end never saw open, whose other end went
                    // away: its close is owed, though nobody knew.
                    let recent = |at: Instant| now.duration_since(at) < CLOSE_DEADLINE;
                    let half_seen = vconns.get(&conn_id).is_some_and(|v| {
                        v.server.is_none()
                            && restarted.get(&v.server_id).is_some_and(|&at| recent(at))
                            || v.client.is_none() && client_dropped.is_some_and(recent)
                    });
                    if !owed_one && !half_seen {
                        let seen = vconns
                            .get(&conn_id)
                            .map(|v| (v.client, v.server, v.server_id));
                        return Err(format!(
                            "endpoint {k}: vconn {conn_id} closed though neither end closed it \
                             (ends seen: {seen:?})"
                        )
                        .into());
                    }
                    tally.closes_seen += 1;
                    vconns.remove(&conn_id);
                    if who[&k] == Who::Client {
                        // Its server went away: dial another.
                        let ep = d.endpoint(k).ok_or("endpoint vanished")?;
                        ep.dial(1 + rng.below(u64::from(a.servers)) as u32)?;
                    }
                }
                DriverEvent::Endpoint(k, other) => {
                    return Err(format!("endpoint {k}: unexpected {other:?}").into())
                }
                DriverEvent::Closed(k, e) => {
                    if who.contains_key(&k) {
                        return Err(format!("endpoint {k} lost its connection: {e}").into());
                    }
                }
            }
        }
    }

    let warm = rss.iter().find(|(t, _)| *t >= a.secs / 10).map(|&(_, k)| k);
    let after_warmup: Vec<u64> = rss
        .iter()
        .filter(|(t, _)| *t >= a.secs / 10)
        .map(|&(_, k)| k)
        .collect();
    println!(
        "soak: secs={} clients={} servers={} round_trips={} vconns_opened={} \
         closed_by_clients={} closes_delivered={} client_reconnects={} server_restarts={} \
         dials_refused={} errors=0",
        a.secs,
        a.clients,
        a.servers,
        tally.round_trips,
        tally.opened,
        tally.closed_by_clients,
        tally.closes_seen,
        tally.reconnects,
        tally.restarts,
        tally.refused
    );
    if let (Some(warm), Some(&last)) = (warm, after_warmup.last()) {
        let min = after_warmup.iter().min().copied().unwrap_or(warm);
        let max = after_warmup.iter().max().copied().unwrap_or(warm);
        println!(
            "gateway_rss_kib: at_warmup_end={warm} min={min} max={max} last={last} (samples after the first {} s)",
            a.secs / 10
        );
    }
    Ok(())
}
