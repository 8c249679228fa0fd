//! The pause test: a server that never reads again, with a client that fed
//! it until the gateway stopped reading that client, and that meanwhile
//! pings and talks to a healthy server. The pause is bounded: within half
//! the client idle timeout its vconn to the stuck server is closed (both
//! ends told), its pings are answered again and its frames to the other
//! server flow; the stuck server itself is cut once its socket has taken
//! nothing for the server idle timeout. A bystander loses nothing.

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{test_config, Got, RawPeer, TestGateway};
use uniway::wire::{self, Command, Status};

const CLIENT_IDLE: Duration = Duration::from_secs(3);
const SERVER_IDLE: Duration = Duration::from_secs(3);
/// What the gateway promises: half the client idle timeout (Config's
/// `max_pause`, 5 s, is longer).
const BOUND: Duration = Duration::from_millis(1500);
/// Room for a loaded machine on top of a bound.
const SLACK: Duration = Duration::from_millis(1000);

fn frame(conn_id: u32, msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    wire::encode_frame(&mut f, conn_id, msg);
    f
}

/// Reads every frame `stream` receives until `stop`, with its arrival time.
fn reader(mut stream: TcpStream, stop: Arc<AtomicBool>) -> JoinHandle<Vec<(Instant, Got)>> {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => break,
            }
            let now = Instant::now();
            let mut at = 0;
            while let Ok(Status::Complete(f)) = wire::decode_frame(&buf[at..], u32::MAX) {
                got.push((
                    now,
                    if f.is_command() {
                        Got::Cmd(Command::decode(f.message).unwrap())
                    } else {
                        Got::Data(f.conn_id, f.message.to_vec())
                    },
                ));
                at += f.wire_len();
            }
            buf.drain(..at);
        }
        got
    })
}

#[test]
fn a_server_that_never_reads_again_pauses_its_feeders_only_within_the_bound() {
    let mut cfg = test_config();
    cfg.client.idle_timeout = CLIENT_IDLE;
    cfg.server.idle_timeout = SERVER_IDLE;
    let gw = TestGateway::start(cfg);

    let mut stuck = RawPeer::server(gw.server_addr, 1, b"test-key");
    socket2::SockRef::from(&stuck.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    let mut healthy = RawPeer::server(gw.server_addr, 2, b"test-key");
    let mut a = RawPeer::client(gw.client_addr);
    let to_stuck = a.dial(1);
    stuck.expect_connect();
    let to_healthy = a.dial(2);
    healthy.expect_connect();
    let mut b = RawPeer::client(gw.client_addr);
    let b_to_healthy = b.dial(2);
    healthy.expect_connect();

    // A floods the stuck server until the gateway stops reading A (its
    // writes then block: the documented backpressure).
    let flood = frame(to_stuck, &[5; 1000]);
    a.stream
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let flood_start = Instant::now();
    let mut flooded = 0usize;
    let paused_at = loop {
        match a.stream.write(&flood[flooded % flood.len()..]) {
            Ok(n) => flooded += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break Instant::now() - Duration::from_millis(300)
            }
            Err(e) => panic!("flooding: {e}"),
        }
        assert!(
            flood_start.elapsed() < Duration::from_secs(20),
            "the gateway never stopped reading A ({flooded} bytes taken)"
        );
    };
    let stop = Arc::new(AtomicBool::new(false));
    let a_reader = reader(a.stream.try_clone().unwrap(), stop.clone());
    let healthy_reader = reader(healthy.stream.try_clone().unwrap(), stop.clone());
    let mut stuck_sender = stuck.stream.try_clone().unwrap();

    // For 6 s: A pings and sends to the healthy server every 0.5 s, from a
    // thread of its own (its writes wait while the gateway does not read
    // it, so each tick's time is when A meant to send); B sends to the
    // healthy server every 50 ms; both servers keep pinging (the stuck one
    // is not idle, it just never reads).
    let window = Instant::now();
    let ticks: Vec<Instant> = (0..12)
        .map(|i| window + i * Duration::from_millis(500))
        .collect();
    let mut a_writer = a.stream.try_clone().unwrap();
    a_writer.set_write_timeout(None).unwrap();
    let rest = flood[flooded % flood.len()..].to_vec();
    let a_ticks = ticks.clone();
    let a_sender = std::thread::spawn(move || {
        // The end of the frame a partial write left, so what follows is
        // whole frames.
        a_writer.write_all(&rest).unwrap();
        for (i, at) in a_ticks.iter().enumerate() {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            a_writer.write_all(&Command::Ping.to_bytes()).unwrap();
            a_writer
                .write_all(&frame(to_healthy, format!("a{i}").as_bytes()))
                .unwrap();
        }
    });
    let mut b_sent = 0u32;
    let mut stuck_closed_at = None;
    for tick in 0..120u32 {
        if tick % 10 == 0 {
            healthy.send_cmd(Command::Ping);
            if stuck_closed_at.is_none()
                && stuck_sender.write_all(&Command::Ping.to_bytes()).is_err()
            {
                stuck_closed_at = Some(Instant::now());
            }
        }
        b.send_data(b_to_healthy, &b_sent.to_le_bytes());
        b_sent += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    a_sender.join().unwrap();
    let elapsed = window.elapsed();
    std::thread::sleep(SLACK);
    stop.store(true, Ordering::Relaxed);
    let a_got = a_reader.join().unwrap();
    let healthy_got = healthy_reader.join().unwrap();

    // A was told its vconn to the stuck server closed, within the bound.
    let (closed_at, _) = a_got
        .iter()
        .find(|(_, g)| *g == Got::Cmd(Command::Close { conn_id: to_stuck }))
        .expect("A was never told its vconn to the stuck server closed");
    // (Measured from when A's writes began to block: the pause began
    // earlier, when the gateway stopped reading A and the kernel's buffers
    // started to fill.)
    let waited = closed_at.saturating_duration_since(paused_at);
    assert!(waited <= BOUND + SLACK, "A was blocked for {waited:?}");
    // Every ping answered, each within the bound.
    let pongs: Vec<Instant> = a_got
        .iter()
        .filter(|(_, g)| *g == Got::Cmd(Command::Ping))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(pongs.len(), ticks.len(), "pings answered");
    for (i, (sent, answered)) in ticks.iter().zip(&pongs).enumerate() {
        let took = answered.saturating_duration_since(*sent);
        assert!(took <= BOUND + SLACK, "ping {i} answered after {took:?}");
    }
    // Every message A sent to the healthy server arrived, in order.
    let from_a: Vec<Vec<u8>> = healthy_got
        .iter()
        .filter_map(|(_, g)| match g {
            Got::Data(id, m) if *id == to_healthy => Some(m.clone()),
            _ => None,
        })
        .collect();
    let want: Vec<Vec<u8>> = (0..ticks.len())
        .map(|i| format!("a{i}").into_bytes())
        .collect();
    assert_eq!(from_a, want, "A's messages to the healthy server");
    // The bystander lost nothing and waited on no one.
    let from_b: Vec<u32> = healthy_got
        .iter()
        .filter_map(|(_, g)| match g {
            Got::Data(id, m) if *id == b_to_healthy => {
                Some(u32::from_le_bytes(m[..4].try_into().unwrap()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(from_b, (0..b_sent).collect::<Vec<_>>(), "B's messages");

    // A is still connected and served.
    a.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let again = a.dial(2);
    healthy
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    a.send_data(again, b"still here");
    let mut last = None;
    for _ in 0..1000 {
        match healthy.recv() {
            Got::Data(id, m) if id == again => {
                last = Some(m);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(last.as_deref(), Some(&b"still here"[..]));

    let stats = gw.stop().stats();
    eprintln!(
        "flooded {flooded} bytes; A's writes blocked for {waited:?} until told; {} pings answered in at most {:?}; \
         stuck server cut by its write timeout (its own pings failed {:?} into the window of {elapsed:?})",
        pongs.len(),
        ticks
            .iter()
            .zip(&pongs)
            .map(|(s, p)| p.saturating_duration_since(*s))
            .max()
            .unwrap_or_default(),
        stuck_closed_at.map(|t| t - window),
    );
    assert_eq!(stats.idle_timeouts, 0, "nobody was cut as idle");
    assert_eq!(stats.slow_consumers, 0);
    assert!(stats.pause_timeouts >= 1 && stats.pause_closes >= 1);
    assert_eq!(stats.write_timeouts, 1, "the stuck server was cut");
    assert_eq!(stats.servers, 1, "only the healthy server is left");
}
