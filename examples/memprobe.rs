//! Memory probe: how much a gateway's resident memory grows under two kinds
//! of crowd, and how much of it comes back when the crowd leaves.
//!
//! ```sh
//! fastway -ClientAddr=127.0.0.1:4000 -ServerAddr=127.0.0.1:4001 &
//! cargo run --release --example memprobe -- 127.0.0.1:4000 127.0.0.1:4001 $(cat fastway.pid)
//! ```
//!
//! 1. Partial frames: a server registers (ID 1, empty key), 200 clients
//!    each dial it and send the first half of a 400 KB frame, and stop.
//! 2. Idle clients: 10,000 clients connect and say nothing.
//!
//! For each: the gateway's RSS (from /proc) before, at the peak, and 3 s
//! after the clients hung up, as one line.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use uniway::wire::{self, Challenge, Command, CHALLENGE_LEN};

fn rss_kib(pid: u32) -> Result<u64, Box<dyn Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmRSS")?.parse()?)
}

fn read_frame(s: &mut TcpStream) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut rest = vec![0u8; u32::from_le_bytes(len) as usize];
    s.read_exact(&mut rest)?;
    Ok(rest)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: memprobe CLIENT_ADDR SERVER_ADDR GATEWAY_PID";
    let client: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let server_addr: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let pid: u32 = args.next().ok_or(usage)?.parse()?;
    let settle = Duration::from_secs(3);

    // 1. Partial frames.
    let before = rss_kib(pid)?;
    let mut server = TcpStream::connect(server_addr)?;
    let mut challenge = [0u8; CHALLENGE_LEN];
    server.read_exact(&mut challenge)?;
    server.write_all(&Challenge(challenge).respond(b"", 1).to_bytes())?;
    let mut clients = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(client)?;
        c.write_all(&Command::Dial { remote_id: 1 }.to_bytes())?;
        let reply = read_frame(&mut c)?;
        let Ok(Command::Accept { conn_id, .. }) = Command::decode(&reply[4..]) else {
            return Err(format!("dial refused: {reply:?}").into());
        };
        let mut frame = Vec::new();
        wire::encode_frame(&mut frame, conn_id, &vec![7u8; 400_000]);
        c.write_all(&frame[..200_000])?;
        clients.push(c);
    }
    std::thread::sleep(settle);
    let peak = rss_kib(pid)?;
    drop(clients);
    drop(server);
    std::thread::sleep(settle);
    let after = rss_kib(pid)?;
    println!(
        "partial_frames: clients=200 held_each=200000 rss_kib_before={before} rss_kib_peak={peak} rss_kib_after={after}"
    );

    // 2. Idle clients.
    let before = rss_kib(pid)?;
    let idle: Vec<TcpStream> = (0..10_000)
        .map(|_| TcpStream::connect(client))
        .collect::<Result<_, _>>()?;
    std::thread::sleep(settle);
    let peak = rss_kib(pid)?;
    drop(idle);
    std::thread::sleep(settle);
    let after = rss_kib(pid)?;
    println!(
        "idle_clients: clients=10000 rss_kib_before={before} rss_kib_peak={peak} rss_kib_after={after}"
    );
    Ok(())
}
