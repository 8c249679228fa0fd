//! Helpers for loopback tests: a gateway on its own thread, and raw peers
//! that speak the wire format over plain std sockets.

#![allow(dead_code)]

pub mod cut;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Poll;
use uniway::wire::{self, Challenge, Command, Status, CHALLENGE_LEN};
use uniway::{Config, Gateway, Side, TokenRange};

/// How long any single expectation may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn test_config() -> Config {
    Config {
        auth_key: b"test-key".to_vec(),
        ..Config::default()
    }
}

/// A gateway running `Gateway::run` on a thread of its own.
pub struct TestGateway {
    pub client_addr: SocketAddr,
    pub server_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Gateway>>,
}

impl TestGateway {
    pub fn start(cfg: Config) -> TestGateway {
        TestGateway::start_with(cfg, |gw, registry| {
            // The same listener setup as fastway (a deep backlog), so
            // bursts of connects in tests do not lose SYNs.
            let bind = || uniway::listen::bind("127.0.0.1:0", false).unwrap();
            let client = gw.listen(registry, Side::Client, bind()).unwrap();
            let server = gw.listen(registry, Side::Server, bind()).unwrap();
            (client, server)
        })
    }

    /// A gateway whose listeners `setup` opens; it returns the client-side
    /// and server-side addresses.
    pub fn start_with(
        cfg: Config,
        setup: impl FnOnce(&mut Gateway, &mio::Registry) -> (SocketAddr, SocketAddr),
    ) -> TestGateway {
        let poll = Poll::new().unwrap();
        let mut gw = Gateway::new(
            cfg,
            TokenRange {
                start: 0,
                len: 1 << 16,
            },
        )
        .unwrap();
        let (client_addr, server_addr) = setup(&mut gw, poll.registry());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut poll = poll;
            gw.run(&mut poll, &flag).unwrap();
            gw
        });
        TestGateway {
            client_addr,
            server_addr,
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the gateway and hands it back for inspection.
    pub fn stop(mut self) -> Gateway {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What a raw peer received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Cmd(Command),
    Data(u32, Vec<u8>),
}

/// A peer speaking the wire format by hand.
pub struct RawPeer {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawPeer {
    pub fn client(addr: SocketAddr) -> RawPeer {
        RawPeer::new(TcpStream::connect(addr).unwrap())
    }

    /// Connects as a server and reads the challenge.
    pub fn server_raw(addr: SocketAddr) -> (RawPeer, Challenge) {
        let mut p = RawPeer::new(TcpStream::connect(addr).unwrap());
        let mut c = [0u8; CHALLENGE_LEN];
        p.stream.read_exact(&mut c).unwrap();
        (p, Challenge(c))
    }

    /// Connects as server `id`, answers the challenge, and waits until the
    /// gateway has registered it (a Ping round trip after the response).
    pub fn server(addr: SocketAddr, id: u32, key: &[u8]) -> RawPeer {
        let (mut p, challenge) = RawPeer::server_raw(addr);
        p.send(&challenge.respond(key, id).to_bytes());
        p.send_cmd(Command::Ping);
        assert_eq!(p.recv_cmd(), Command::Ping);
        p
    }

    /// Wraps a stream that is already connected.
    pub fn from_stream(stream: TcpStream) -> RawPeer {
        RawPeer::new(stream)
    }

    fn new(stream: TcpStream) -> RawPeer {
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        RawPeer {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send_cmd(&mut self, cmd: Command) {
        self.send(&cmd.to_bytes());
    }

    pub fn send_data(&mut self, conn_id: u32, msg: &[u8]) {
        let mut out = Vec::new();
        wire::encode_frame(&mut out, conn_id, msg);
        self.send(&out);
    }

    /// A whole frame from what was read already, if there is one.
    fn take_frame(&mut self) -> Option<Got> {
        let Ok(Status::Complete(f)) = wire::decode_frame(&self.buf, u32::MAX) else {
            return None;
        };
        let got = if f.is_command() {
            Got::Cmd(Command::decode(f.message).expect("bad command from gateway"))
        } else {
            Got::Data(f.conn_id, f.message.to_vec())
        };
        let n = f.wire_len();
        self.buf.drain(..n);
        Some(got)
    }

    /// The next frame, waiting at most `DEADLINE`.
    pub fn recv(&mut self) -> Got {
        loop {
            if let Some(got) = self.take_frame() {
                return got;
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("gateway closed the connection while a frame was expected"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("no frame within {DEADLINE:?}: {e}"),
            }
        }
    }

    /// The next frame, or `None` once the gateway ended the stream
    /// cleanly (a reset is a failure: it may have destroyed data).
    pub fn recv_or_end(&mut self) -> Option<Got> {
        loop {
            if let Some(got) = self.take_frame() {
                return Some(got);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "stream ended inside a frame");
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("no clean end within {DEADLINE:?}: {e}"),
            }
        }
    }

    pub fn recv_cmd(&mut self) -> Command {
        match self.recv() {
            Got::Cmd(c) => c,
            other => panic!("expected a command, got {other:?}"),
        }
    }

    /// Waits until the gateway closes this connection, discarding whatever
    /// it sends meanwhile.
    pub fn expect_closed(&mut self) {
        let start = Instant::now();
        let mut chunk = [0u8; 4096];
        loop {
            assert!(
                start.elapsed() < DEADLINE,
                "gateway did not close the connection"
            );
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("gateway did not close the connection: {e}"),
            }
        }
    }

    /// Dials `remote` and returns the conn ID of the Accept.
    pub fn dial(&mut self, remote: u32) -> u32 {
        self.send_cmd(Command::Dial { remote_id: remote });
        match self.recv_cmd() {
            Command::Accept { conn_id, remote_id } if remote_id == remote => conn_id,
            other => panic!("expected Accept from {remote}, got {other:?}"),
        }
    }

    /// Waits for a Connect; returns (conn ID, remote ID).
    pub fn expect_connect(&mut self) -> (u32, u32) {
        match self.recv_cmd() {
            Command::Connect { conn_id, remote_id } => (conn_id, remote_id),
            other => panic!("expected Connect, got {other:?}"),
        }
    }
}

/// A server with ID `id` and a client with a vconn open between them:
/// (server, client, conn ID, client ID).
pub fn pair(gw: &TestGateway, id: u32) -> (RawPeer, RawPeer, u32, u32) {
    let mut server = RawPeer::server(gw.server_addr, id, b"test-key");
    let mut client = RawPeer::client(gw.client_addr);
    let conn_id = client.dial(id);
    let (c, client_id) = server.expect_connect();
    assert_eq!(c, conn_id);
    (server, client, conn_id, client_id)
}

/// Runs `d` in `poll` until `on` (given every event) says to stop, within
/// `DEADLINE`.
pub fn drive(
    d: &mut uniway::endpoint::driver::EndpointDriver,
    poll: &mut Poll,
    what: &str,
    mut on: impl FnMut(
        &mut uniway::endpoint::driver::EndpointDriver,
        uniway::endpoint::driver::DriverEvent,
    ) -> bool,
) {
    let mut events = mio::Events::with_capacity(64);
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not done in {DEADLINE:?}"
        );
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        for ev in events.iter() {
            d.handle_event(ev);
        }
        d.handle_timeout(poll.registry(), Instant::now());
        while let Some(ev) = d.poll_event() {
            if on(d, ev) {
                return;
            }
        }
    }
}
