//! The blocking endpoint API against the real gateway on loopback.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{test_config, TestGateway, DEADLINE};
use uniway::endpoint::{
    Client, ConnectError, DialError, EndpointConfig, EndpointError, RecvError, Server, Text,
};

fn server_cfg(id: u32) -> EndpointConfig {
    EndpointConfig {
        server_id: id,
        auth_key: b"test-key".to_vec(),
        ..EndpointConfig::default()
    }
}

/// Waits for `cond` with a deadline.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn both_sides_dial_and_exchange_10000_random_messages_in_order() {
    let gw = TestGateway::start(test_config());
    // Senders run ahead of receivers; this test is about integrity and
    // order, not the receive-queue overflow policy, so the queues are
    // deep enough to hold a whole direction's share.
    let deep = |cfg: EndpointConfig| EndpointConfig {
        recv_queue_size: 10_000,
        ..cfg
    };
    let server = Arc::new(Server::connect(gw.server_addr, deep(server_cfg(1))).unwrap());
    let client =
        Arc::new(Client::connect(gw.client_addr, deep(EndpointConfig::default())).unwrap());
    let c_to_s = client.dial(1).unwrap();
    let s_from_c = server.accept().unwrap();
    assert_eq!(s_from_c.conn_id(), c_to_s.conn_id());
    let client_id = s_from_c.remote_id();
    let s_to_c = server.dial(client_id).unwrap();
    let c_from_s = client.accept().unwrap();
    assert_eq!(c_from_s.conn_id(), s_to_c.conn_id());
    assert_eq!(c_from_s.remote_id(), 1);

    // The plan: 10,000 messages of 1 KiB, each on a random one of the two
    // vconns, in a random direction.
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let plan: Vec<(usize, bool, Vec<u8>)> = (0..10_000)
        .map(|_| {
            let r = rng.next();
            ((r & 1) as usize, r & 2 != 0, rng.bytes(1024))
        })
        .collect();
    let plan = Arc::new(plan);
    // Ends: [client side, server side] per vconn.
    let vconns = Arc::new([[c_to_s, s_from_c], [c_from_s, s_to_c]]);
    let mut threads = Vec::new();
    for to_server in [true, false] {
        // One sender per direction, sending its share of the plan in order.
        let (p, v) = (plan.clone(), vconns.clone());
        threads.push(std::thread::spawn(move || {
            for (i, (k, dir, msg)) in p.iter().enumerate() {
                if *dir == to_server {
                    let from = if to_server { 0 } else { 1 };
                    v[*k][from]
                        .send(msg)
                        .unwrap_or_else(|e| panic!("send {i}: {e}"));
                }
            }
        }));
        // One receiver per vconn and direction, checking content and order.
        for k in 0..2 {
            let (p, v) = (plan.clone(), vconns.clone());
            let (c, s) = (client.clone(), server.clone());
            threads.push(std::thread::spawn(move || {
                let to = if to_server { 1 } else { 0 };
                for (i, (_, _, msg)) in p
                    .iter()
                    .enumerate()
                    .filter(|(_, (kk, d, _))| *kk == k && *d == to_server)
                {
                    let got = v[k][to].recv_timeout(DEADLINE).unwrap_or_else(|e| {
                        panic!(
                            "message {i}: {e} (receive overflows: client {}, server {})",
                            c.recv_overflows(),
                            s.recv_overflows()
                        )
                    });
                    assert!(got == *msg, "message {i} on vconn {k} differs");
                }
            }));
        }
    }
    for t in threads {
        t.join().unwrap();
    }
    drop(vconns);
    eventually("endpoints to drop their vconns", || {
        client.vconn_count() == 0 && server.vconn_count() == 0
    });
    assert_eq!(client.recv_overflows() + server.recv_overflows(), 0);
}

#[test]
fn eight_threads_echo_over_one_client_and_everything_is_freed() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 3000;
    let gw = TestGateway::start(test_config());
    let server = Arc::new(Server::connect(gw.server_addr, server_cfg(5)).unwrap());
    let echo = {
        let server = server.clone();
        std::thread::spawn(move || {
            let mut handlers = Vec::new();
            while let Ok(v) = server.accept() {
                handlers.push(std::thread::spawn(move || {
                    while let Ok(m) = v.recv() {
                        if v.send(&m).is_err() {
                            break;
                        }
                    }
                }));
            }
            for h in handlers {
                h.join().unwrap();
            }
        })
    };
    let client = Arc::new(Client::connect(gw.client_addr, EndpointConfig::default()).unwrap());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                let v = client.dial(5).unwrap();
                for i in 0..ROUNDS {
                    let msg = format!("thread {t} round {i}").into_bytes();
                    v.send(&msg).unwrap();
                    assert_eq!(v.recv_timeout(DEADLINE).unwrap(), msg);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    eventually("both endpoints to hold no vconn", || {
        client.vconn_count() == 0 && server.vconn_count() == 0
    });
    server.close();
    echo.join().unwrap();
    let stats = gw.stop().stats();
    assert_eq!(stats.vconns, 0);
    assert_eq!(stats.frames_from_clients, (THREADS * ROUNDS) as u64);
    assert_eq!(stats.frames_from_servers, (THREADS * ROUNDS) as u64);
}

#[test]
fn each_failure_has_its_own_error_and_nothing_hangs() {
    let gw = TestGateway::start(test_config());
    // A refused dial.
    let client = Client::connect(gw.client_addr, EndpointConfig::default()).unwrap();
    assert_eq!(
        client.dial(4242).err(),
        Some(DialError::Refused { remote_id: 4242 })
    );
    // A bad address (nothing listens there).
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    assert!(matches!(
        Client::connect(dead_addr, EndpointConfig::default()),
        Err(ConnectError::Io(_))
    ));
    // A bad key.
    let mut wrong = server_cfg(2);
    wrong.auth_key = b"wrong".to_vec();
    assert!(matches!(
        Server::connect(gw.server_addr, wrong),
        Err(ConnectError::Handshake(EndpointError::HandshakeRejected))
    ));
    // A bad configuration.
    let bad = EndpointConfig {
        ping_interval: Some(Duration::from_secs(1)),
        ping_timeout: None,
        ..EndpointConfig::default()
    };
    assert!(matches!(
        Client::connect(gw.client_addr, bad),
        Err(ConnectError::Config(_))
    ));
    // A "gateway" that hangs up at once.
    let rude = TcpListener::bind("127.0.0.1:0").unwrap();
    let rude_addr = rude.local_addr().unwrap();
    let hangup = std::thread::spawn(move || {
        for s in rude.incoming().take(2) {
            drop(s);
        }
    });
    assert!(matches!(
        Server::connect(rude_addr, server_cfg(3)),
        Err(ConnectError::Handshake(EndpointError::HandshakeRejected))
    ));
    let c = Client::connect(rude_addr, EndpointConfig::default()).unwrap();
    match c.dial(1) {
        Err(DialError::Endpoint(EndpointError::Disconnected)) => {}
        other => panic!("expected a disconnected dial, got {:?}", other.err()),
    }
    assert!(c.accept().is_err());
    hangup.join().unwrap();
}

#[test]
fn server_closing_at_once_while_clients_churn_2000_times() {
    let gw = TestGateway::start(test_config());
    let server = Arc::new(Server::connect(gw.server_addr, server_cfg(1)).unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let closer = {
        let (server, accepted) = (server.clone(), accepted.clone());
        std::thread::spawn(move || {
            while let Ok(v) = server.accept() {
                accepted.fetch_add(1, Ordering::Relaxed);
                v.close();
            }
        })
    };
    let client = Client::connect(gw.client_addr, EndpointConfig::default()).unwrap();
    let (mut opened, mut refused) = (0, 0);
    for i in 0..2000u32 {
        match client.dial(1) {
            Ok(v) => {
                opened += 1;
                // The server may already have closed it: both outcomes are fine.
                let _ = v.send(&i.to_le_bytes());
                match v.recv_timeout(DEADLINE) {
                    Err(RecvError::Closed) => {}
                    other => panic!("expected the server's close, got {other:?}"),
                }
            }
            // Over ClientMaxConn for a moment while closes are in flight.
            Err(DialError::Refused { .. }) => refused += 1,
            Err(e) => panic!("dial {i}: {e}"),
        }
    }
    assert!(opened > 0);
    assert_eq!(opened + refused, 2000);
    eventually("every vconn to be gone", || {
        client.vconn_count() == 0
            && server.vconn_count() == 0
            && accepted.load(Ordering::Relaxed) == opened
    });
    server.close();
    closer.join().unwrap();
    let stats = gw.stop().stats();
    assert_eq!(stats.vconns, 0);
    assert_eq!(stats.queued_bytes, 0);
}

/// A peer that reads everything and never answers.
fn silent_peer() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut s, &mut sink);
        }
    });
    addr
}

fn keepalive_cfg(
    answer: impl Fn(usize) -> bool + Send + Sync + 'static,
    calls: Arc<AtomicUsize>,
) -> EndpointConfig {
    EndpointConfig {
        ping_interval: Some(Duration::from_millis(20)),
        ping_timeout: Some(Duration::from_millis(50)),
        timeout_callback: Some(Arc::new(move || {
            answer(calls.fetch_add(1, Ordering::SeqCst))
        })),
        ..EndpointConfig::default()
    }
}

#[test]
fn ping_timeout_callback_keep_is_obeyed() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Client::connect(silent_peer(), keepalive_cfg(|_| true, calls.clone())).unwrap();
    eventually("three timeouts", || calls.load(Ordering::SeqCst) >= 3);
    assert_eq!(c.failure(), None, "kept, so still open");
}

#[test]
fn ping_timeout_callback_close_is_obeyed() {
    let calls = Arc::new(AtomicUsize::new(0));
    // Keep once, then close.
    let c = Client::connect(silent_peer(), keepalive_cfg(|n| n == 0, calls.clone())).unwrap();
    eventually("the endpoint to close", || c.failure().is_some());
    assert_eq!(c.failure(), Some(EndpointError::PingTimeout));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(c.accept().is_err());
}

#[test]
fn pings_keep_an_idle_link_alive_through_the_gateway() {
    let mut cfg = test_config();
    cfg.client.idle_timeout = Duration::from_millis(300);
    let gw = TestGateway::start(cfg);
    let pinging = EndpointConfig {
        ping_interval: Some(Duration::from_millis(50)),
        ping_timeout: Some(Duration::from_millis(500)),
        ..EndpointConfig::default()
    };
    let alive = Client::connect(gw.client_addr, pinging).unwrap();
    let silent = Client::connect(gw.client_addr, EndpointConfig::default()).unwrap();
    eventually("the silent client to be cut", || silent.failure().is_some());
    assert_eq!(alive.failure(), None);
    assert_eq!(silent.failure(), Some(EndpointError::Disconnected));
}

#[test]
fn text_format_round_trip() {
    let gw = TestGateway::start(test_config());
    let server = Server::connect_with(gw.server_addr, server_cfg(8), Text).unwrap();
    let client = Client::connect_with(gw.client_addr, EndpointConfig::default(), Text).unwrap();
    let v = client.dial(8).unwrap();
    let s = server.accept().unwrap();
    v.send("héllo").unwrap();
    assert_eq!(s.recv_timeout(DEADLINE).unwrap(), "héllo");
}
