//! The two sides of the cluster check (`examples/cluster/check.sh`): game
//! servers linked to every gateway, and game clients that reach the
//! gateways through a load balancer, with sequence-checked traffic.
//!
//! ```sh
//! # servers 1 and 2, each linked to every gateway's server address
//! cargo run --example cluster_check -- servers KEY GW1_SERVER_ADDR,GW2_SERVER_ADDR,...
//! # CLIENTS clients through the balancer for SECS seconds; then checks the
//! # run against the phases the script recorded in PHASES_FILE
//! cargo run --example cluster_check -- clients BALANCER_ADDR CLIENTS SECS PHASES_FILE
//! ```
//!
//! Each client dials server 1 or 2 and sends numbered messages one at a
//! time, checking every echo (content and order). When its gateway goes
//! away it connects again through the balancer and goes on. At the end:
//! no echo out of order or damaged, every client working again, no
//! connection attempt refused by the balancer, and around the moment a gateway was killed
//! only that gateway's share of clients disturbed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uniway::endpoint::{Client, DialError, EndpointConfig, MultiServer, RecvError};

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("servers") if args.len() == 3 => servers(&args[1], &args[2]),
        Some("clients") if args.len() == 5 => clients(&args[1], &args[2], &args[3], &args[4]),
        _ => Err("usage: cluster_check servers KEY ADDRS | clients ADDR N SECS PHASES".into()),
    };
    if let Err(e) = result {
        eprintln!("cluster_check: {e}");
        std::process::exit(1);
    }
}

fn servers(key: &str, addrs: &str) -> Result<(), String> {
    let addrs: Vec<SocketAddr> = addrs
        .split(',')
        .map(|a| a.parse().map_err(|e| format!("{a}: {e}")))
        .collect::<Result<_, _>>()?;
    let mut threads = Vec::new();
    for id in [1, 2] {
        let cfg = EndpointConfig {
            server_id: id,
            auth_key: key.as_bytes().to_vec(),
            ..EndpointConfig::default()
        };
        let server = MultiServer::connect(addrs.clone(), cfg).map_err(|e| e.to_string())?;
        threads.push(std::thread::spawn(move || {
            if server.wait_linked(Duration::from_secs(10)) {
                println!("server {id} linked to {} gateways", server.gateways().len());
            }
            while let Ok((_, vconn)) = server.accept() {
                std::thread::spawn(move || {
                    while let Ok(msg) = vconn.recv() {
                        if vconn.send(&msg).is_err() {
                            break;
                        }
                    }
                });
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// What one client saw.
#[derive(Default)]
struct Record {
    round_trips: u64,
    /// Unix ms of each time its connection ended under it.
    disconnects: Vec<u64>,
    /// Unix ms of each round trip that took longer than a second, with
    /// how long it took.
    stalls: Vec<(u64, u64)>,
    last_ok: u64,
    /// TCP connection attempts to the balancer that failed.
    refused_connects: u64,
    /// Connections closed before their first dial was answered.
    dropped_before_dial: u64,
    bad_echoes: u64,
}

fn message(seq: u64) -> Vec<u8> {
    let mut m = seq.to_le_bytes().to_vec();
    m.extend(std::iter::repeat_n(seq as u8, (seq % 200) as usize));
    m
}

fn one_client(index: usize, via: SocketAddr, until: Instant, stop: &AtomicBool) -> Record {
    let mut r = Record::default();
    let server = 1 + (index % 2) as u32;
    let mut seq = 0u64;
    'connect: while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let client = match Client::connect(via, EndpointConfig::default()) {
            Ok(c) => c,
            Err(_) => {
                r.refused_connects += 1;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        // A gateway that has just come up may not have its servers yet.
        let vconn = loop {
            match client.dial(server) {
                Ok(v) => break v,
                Err(DialError::Refused { .. }) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                // The connection ended before any answer: its gateway was
                // going away (killed, or draining for an upgrade) just as the
                // balancer picked it. The client connects again.
                Err(_) => {
                    r.disconnects.push(unix_ms());
                    r.dropped_before_dial += 1;
                    continue 'connect;
                }
            }
        };
        while Instant::now() < until {
            let sent = Instant::now();
            if vconn.send(&message(seq)).is_err() {
                r.disconnects.push(unix_ms());
                continue 'connect;
            }
            match vconn.recv_timeout(Duration::from_secs(10)) {
                Ok(echo) => {
                    if echo != message(seq) {
                        r.bad_echoes += 1;
                    }
                    seq += 1;
                    r.round_trips += 1;
                    r.last_ok = unix_ms();
                    let took = sent.elapsed().as_millis() as u64;
                    if took > 1000 {
                        r.stalls.push((r.last_ok, took));
                    }
                }
                Err(RecvError::Closed) | Err(RecvError::Timeout) | Err(_) => {
                    r.disconnects.push(unix_ms());
                    continue 'connect;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    r
}

fn clients(via: &str, n: &str, secs: &str, phases: &str) -> Result<(), String> {
    let via: SocketAddr = via.parse().map_err(|e| format!("{via}: {e}"))?;
    let n: usize = n.parse().map_err(|e| format!("{n}: {e}"))?;
    let secs: u64 = secs.parse().map_err(|e| format!("{secs}: {e}"))?;
    let started_ms = unix_ms();
    let until = Instant::now() + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (stop, records) = (stop.clone(), records.clone());
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let r = one_client(i, via, until, &stop);
                    records.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                })
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    for t in threads {
        let _ = t.join();
    }
    let ended_ms = unix_ms();
    let records = records.lock().unwrap_or_else(|e| e.into_inner());
    verify(&records, n, started_ms, ended_ms, phases)
}

fn phase(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

fn verify(
    records: &[Record],
    n: usize,
    started: u64,
    ended: u64,
    phases: &str,
) -> Result<(), String> {
    let text = std::fs::read_to_string(phases).map_err(|e| format!("{phases}: {e}"))?;
    let kill = phase(&text, "kill ").ok_or("no kill time recorded")?;
    let mut problems = Vec::new();
    let total: u64 = records.iter().map(|r| r.round_trips).sum();
    let bad: u64 = records.iter().map(|r| r.bad_echoes).sum();
    let refused: u64 = records.iter().map(|r| r.refused_connects).sum();
    let disconnects: usize = records.iter().map(|r| r.disconnects.len()).sum();
    let dropped: u64 = records.iter().map(|r| r.dropped_before_dial).sum();
    println!(
        "{n} clients, {total} checked round trips in {:.1} s, {disconnects} disconnects \
         ({dropped} before their first dial was answered), {refused} refused connects",
        (ended - started) as f64 / 1000.0
    );
    if records.len() != n {
        problems.push(format!("{} of {n} clients reported", records.len()));
    }
    if bad > 0 {
        problems.push(format!("{bad} echoes damaged or out of order"));
    }
    if refused > 0 {
        problems.push(format!("{refused} connection attempts refused"));
    }
    let stale = records.iter().filter(|r| r.last_ok + 3000 < ended).count();
    if stale > 0 {
        problems.push(format!("{stale} clients not working at the end"));
    }
    // At the kill: only the killed gateway's share is disturbed.
    let hit = records
        .iter()
        .filter(|r| r.disconnects.iter().any(|&t| t >= kill && t < kill + 3000))
        .count();
    println!("gateway killed: {hit} of {n} clients reconnected");
    if hit == 0 || hit > n / 2 {
        problems.push(format!(
            "{hit} of {n} clients disturbed by killing one of three gateways"
        ));
    }
    let bystander_stalls = records
        .iter()
        .filter(|r| !r.disconnects.iter().any(|&t| t >= kill && t < kill + 3000))
        .filter(|r| r.stalls.iter().any(|&(t, _)| t >= kill && t < kill + 3000))
        .count();
    if bystander_stalls > 0 {
        problems.push(format!(
            "{bystander_stalls} clients of the other gateways stalled over 1 s at the kill"
        ));
    }
    if let (Some(from), Some(to)) = (phase(&text, "upgrade_start "), phase(&text, "upgrade_end ")) {
        let moved = records
            .iter()
            .filter(|r| r.disconnects.iter().any(|&t| t >= from && t <= to + 3000))
            .count();
        println!("upgrade: {moved} of {n} clients moved from the old gateway to the others");
    }
    if problems.is_empty() {
        println!("cluster check passed");
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
