//! Fault injection over loopback: floods past the limits, half-open peers,
//! a server restarting under its ID while clients keep dialing, a peer that
//! writes a byte at a time, a reader that stops reading, and descriptor
//! exhaustion in a child `fastway`. In each, the peer at fault is cut (or
//! refused) and everyone else carries on. Faults of the data path proper
//! (a peer reset mid-frame, data and FIN together, drain under load) are
//! in `data_path_edges.rs` and `fastway_cli.rs`; RELIABILITY.md lists them
//! all.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::{pair, test_config, Got, RawPeer, TestGateway, DEADLINE};
use socket2::{Domain, Socket, Type};
use uniway::config::AcceptRate;
use uniway::wire::Command;

/// A bystander pair still exchanges a message both ways, promptly.
fn still_talks(server: &mut RawPeer, client: &mut RawPeer, conn_id: u32, tag: &[u8]) {
    let start = Instant::now();
    client.send_data(conn_id, tag);
    assert_eq!(server.recv(), Got::Data(conn_id, tag.to_vec()));
    server.send_data(conn_id, tag);
    assert_eq!(client.recv(), Got::Data(conn_id, tag.to_vec()));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "a bystander waited {:?}",
        start.elapsed()
    );
}

/// Whether the gateway closed `s` (EOF or reset) within `DEADLINE`.
fn closed_by_gateway(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A client connection from a given loopback source address.
fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    s.bind(&from.into()).unwrap();
    s.connect(&to.into()).unwrap();
    s.into()
}

/// Whether a fresh connection is served: a Ping comes back.
fn served(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    if s.write_all(&Command::Ping.to_bytes()).is_err() {
        return false;
    }
    let mut b = [0u8; 9];
    s.read_exact(&mut b).is_ok() && b == Command::Ping.to_bytes()[..]
}

#[test]
fn a_flood_past_max_clients_is_closed_at_once_and_bystanders_keep_talking() {
    let mut cfg = test_config();
    cfg.client.max_conns = Some(20);
    let gw = TestGateway::start(cfg);
    let (mut server, mut client, conn_id, _) = pair(&gw, 1);
    // 19 more fit; the next 100 are closed at once.
    let kept: Vec<TcpStream> = (0..19)
        .map(|_| TcpStream::connect(gw.client_addr).unwrap())
        .collect();
    let mut flood: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(gw.client_addr).unwrap())
        .collect();
    for s in &mut flood {
        assert!(closed_by_gateway(s), "a client past MaxClients was kept");
    }
    still_talks(&mut server, &mut client, conn_id, b"during the flood");
    for s in kept {
        assert!(served(s), "a client within the limit was not served");
    }
    // Room again once clients leave.
    drop(flood);
    let stats = gw.stop().stats();
    assert_eq!(stats.refused_full, 100);
    assert_eq!(stats.clients_accepted, 20);
}

#[test]
fn per_source_limits_spare_other_sources() {
    let mut cfg = test_config();
    cfg.max_clients_per_ip = Some(3);
    let gw = TestGateway::start(cfg);
    let from_a: Vec<TcpStream> = (0..3)
        .map(|_| connect_from("127.0.0.2", gw.client_addr))
        .collect();
    let mut fourth = connect_from("127.0.0.2", gw.client_addr);
    assert!(
        closed_by_gateway(&mut fourth),
        "a 4th client from one source was kept"
    );
    // Another source is not affected.
    assert!(served(connect_from("127.0.0.3", gw.client_addr)));
    for s in from_a {
        assert!(served(s));
    }
    let stats = gw.stop().stats();
    assert_eq!(stats.refused_per_ip, 1);

    let mut cfg = test_config();
    cfg.accept_rate_per_ip = Some(AcceptRate {
        per_sec: 2.0,
        burst: 5,
    });
    let gw = TestGateway::start(cfg);
    let burst: Vec<TcpStream> = (0..12)
        .map(|_| connect_from("127.0.0.4", gw.client_addr))
        .collect();
    let served_count = burst.into_iter().map(served).filter(|&ok| ok).count();
    // The burst, plus at most what refilled while connecting.
    assert!(
        (5..=7).contains(&served_count),
        "{served_count} of 12 served"
    );
    assert!(
        served(connect_from("127.0.0.5", gw.client_addr)),
        "another source was limited"
    );
    // The rate refills: after a second, two more.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(served(connect_from("127.0.0.4", gw.client_addr)));
    let stats = gw.stop().stats();
    assert!(stats.refused_rate >= 5, "{stats:?}");
}

#[test]
fn half_open_peers_are_reaped_by_idle_timeouts_and_their_vconns_closed() {
    let mut cfg = test_config();
    cfg.client.idle_timeout = Duration::from_millis(400);
    cfg.server.idle_timeout = Duration::from_millis(400);
    let gw = TestGateway::start(cfg);
    // A client that dials and then goes silent without closing (a peer
    // whose host vanished): its server is told when it is reaped.
    let mut server = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut silent = RawPeer::client(gw.client_addr);
    let conn_id = silent.dial(1);
    assert_eq!(server.expect_connect().0, conn_id);
    // The server stays alive by pinging; the client says nothing more.
    let start = Instant::now();
    loop {
        server.send_cmd(Command::Ping);
        match server.recv() {
            Got::Cmd(Command::Ping) => {}
            Got::Cmd(Command::Close { conn_id: c }) if c == conn_id => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the silent client was never reaped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "reaped too early"
    );
    silent.expect_closed();
    // A server that goes silent is reaped the same way.
    let mut mute = RawPeer::server(gw.server_addr, 2, b"test-key");
    mute.expect_closed();
    let stats = gw.stop().stats();
    // The client, the mute server, and perhaps the first server, which
    // stopped pinging when the test moved on.
    assert!(stats.idle_timeouts >= 2, "{stats:?}");
}

#[test]
fn a_server_restarting_under_its_id_while_clients_keep_dialing() {
    let gw = TestGateway::start(test_config());
    let mut first = RawPeer::server(gw.server_addr, 7, b"test-key");
    let mut clients: Vec<RawPeer> = (0..10).map(|_| RawPeer::client(gw.client_addr)).collect();
    for c in &mut clients {
        let id = c.dial(7);
        assert_eq!(first.expect_connect().0, id);
    }
    // The server dies; while it is gone every dial is answered (Refuse);
    // then it comes back under the same ID and dials succeed again.
    drop(first);
    for c in &mut clients {
        // Its old vconn is closed.
        match c.recv() {
            Got::Cmd(Command::Close { .. }) => {}
            other => panic!("expected Close, got {other:?}"),
        }
    }
    let mut refused = 0;
    for c in &mut clients {
        c.send_cmd(Command::Dial { remote_id: 7 });
        match c.recv_cmd() {
            Command::Refuse { remote_id: 7 } => refused += 1,
            other => panic!("a dial to a gone server got {other:?}"),
        }
    }
    assert_eq!(refused, 10);
    let mut second = RawPeer::server(gw.server_addr, 7, b"test-key");
    // The newest registration wins even if an old connection lingers.
    let mut third = RawPeer::server(gw.server_addr, 7, b"test-key");
    second.expect_closed();
    for c in &mut clients {
        let id = c.dial(7);
        assert_eq!(third.expect_connect().0, id);
        c.send_data(id, b"back");
        assert_eq!(third.recv(), Got::Data(id, b"back".to_vec()));
    }
    let stats = gw.stop().stats();
    assert_eq!(stats.servers_replaced, 1);
}

#[test]
fn a_writer_that_trickles_one_byte_at_a_time_is_cut_and_delays_no_one() {
    let mut cfg = test_config();
    cfg.client.idle_timeout = Duration::from_millis(600);
    let gw = TestGateway::start(cfg);
    let (mut server, mut client, conn_id, _) = pair(&gw, 2);
    let mut slow_server = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut slow = RawPeer::client(gw.client_addr);
    let slow_id = slow.dial(1);
    assert_eq!(slow_server.expect_connect().0, slow_id);
    // A 200-byte frame, one byte every 50 ms: it would take 10 s.
    let mut frame = Vec::new();
    uniway::wire::encode_frame(&mut frame, slow_id, &[7u8; 192]);
    let mut cut = false;
    let start = Instant::now();
    for (i, b) in frame.iter().enumerate() {
        if slow.stream.write_all(&[*b]).is_err() {
            cut = true;
            break;
        }
        if i % 4 == 0 {
            still_talks(&mut server, &mut client, conn_id, b"meanwhile");
        }
        std::thread::sleep(Duration::from_millis(50));
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    // Cut by its idle timeout (no complete frame for 600 ms), frame unsent.
    if !cut {
        slow.expect_closed();
    }
    match slow_server.recv() {
        Got::Cmd(Command::Close { conn_id: c }) => assert_eq!(c, slow_id),
        other => panic!("the server got {other:?} instead of the slow vconn's Close"),
    }
    still_talks(&mut server, &mut client, conn_id, b"after");
    let stats = gw.stop().stats();
    assert_eq!(stats.partial_frames_dropped, 1);
    assert_eq!(stats.idle_timeouts, 1);
}

#[test]
fn a_reader_that_stops_reading_is_cut_and_delays_no_one() {
    let mut cfg = test_config();
    cfg.client.send_queue_msgs = 50;
    let gw = TestGateway::start(cfg);
    let (mut server, mut client, conn_id, _) = pair(&gw, 2);
    let mut flooder = RawPeer::server(gw.server_addr, 1, b"test-key");
    let mut deaf = RawPeer::client(gw.client_addr);
    let deaf_id = deaf.dial(1);
    assert_eq!(flooder.expect_connect().0, deaf_id);
    // A server floods the client that never reads; the other pair talks
    // meanwhile.
    let big = vec![1u8; 16 * 1024];
    let mut closed = false;
    for i in 0..2000 {
        flooder.send_data(deaf_id, &big);
        if i % 100 == 0 {
            still_talks(&mut server, &mut client, conn_id, b"meanwhile");
        }
        if let Ok(true) = poll_close(&mut flooder, deaf_id) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the client that reads nothing was never cut");
    assert_eq!(
        flooder.recv(),
        Got::Cmd(Command::Close { conn_id: deaf_id })
    );
    still_talks(&mut server, &mut client, conn_id, b"unaffected");
    let stats = gw.stop().stats();
    assert_eq!(stats.slow_consumers, 1);
}

/// Whether a Close for `conn_id` is waiting on `server`, without blocking.
fn poll_close(server: &mut RawPeer, conn_id: u32) -> std::io::Result<bool> {
    server.stream.set_nonblocking(true)?;
    let mut peek = [0u8; 13];
    let n = server.stream.peek(&mut peek);
    server.stream.set_nonblocking(false)?;
    match n {
        Ok(n) if n >= 13 => {
            let close = Command::Close { conn_id }.to_bytes();
            Ok(peek[..close.len()] == close[..])
        }
        _ => Ok(false),
    }
}

#[test]
fn out_of_descriptors_the_listener_pauses_and_recovers() {
    let dir = std::env::temp_dir().join(format!("uniway-nofile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // fastway with 40 descriptors: a few go to the poller, listeners,
    // signals and files; the rest to clients.
    let mut child = Process::new("sh")
        .args([
            "-c",
            &format!(
                "ulimit -n 40 && exec {} -ClientAddr=127.0.0.1:0 -ServerAddr=127.0.0.1:0",
                env!("CARGO_BIN_EXE_fastway")
            ),
        ])
        .current_dir(&dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_line = |needle: &str| -> String {
        let start = Instant::now();
        loop {
            let line = lines
                .recv_timeout(DEADLINE.saturating_sub(start.elapsed()))
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    };
    let addr: SocketAddr = wait_line("client listener at ")
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // 80 clients: the kernel completes their handshakes (the backlog), but
    // the gateway runs out of descriptors accepting them.
    let flood: Vec<TcpStream> = (0..80).map(|_| TcpStream::connect(addr).unwrap()).collect();
    wait_line("accept failed");
    // Those it did accept are served.
    let mut first = flood.into_iter();
    let some = first.next().unwrap();
    assert!(served(some), "an accepted client was not served");
    // When descriptors free up, it accepts again.
    drop(first);
    let start = Instant::now();
    let ok = loop {
        if let Ok(s) = TcpStream::connect(addr) {
            if served(s) {
                break true;
            }
        }
        if start.elapsed() > DEADLINE {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Process::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        ok,
        "the listener did not recover once descriptors were free"
    );
    assert!(status.success(), "fastway did not exit cleanly: {status}");
}
