//! The built `fastway` binary: flags, help, pid file, logged addresses,
//! operator commands, signals, SO_REUSEPORT.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Got, RawPeer, DEADLINE};
use uniway::wire::{self, Command};

const BIN: &str = env!("CARGO_BIN_EXE_fastway");

/// Every flag docs/fastway.md documents.
const CLI_MD_FLAGS: &[&str] = &[
    "ReusePort",
    "MaxPacket",
    "MaxClients",
    "MaxClientsPerIP",
    "MaxServers",
    "AcceptRatePerIP",
    "AcceptBurstPerIP",
    "MaxPartialBytes",
    "MaxPause",
    "MemPoolType",
    "MemPoolFactor",
    "MemPoolMaxChunk",
    "MemPoolMinChunk",
    "MemPoolPageSize",
    "ClientAddr",
    "ClientTlsCert",
    "ClientTlsKey",
    "ClientWsAddr",
    "ClientWsPath",
    "ClientWsOrigins",
    "ClientWsTlsCert",
    "ClientWsTlsKey",
    "ClientProxyProtocol",
    "ClientMaxConn",
    "ClientBufferSize",
    "ClientIdleTimeout",
    "ClientSendChanSize",
    "ClientSnetEnable",
    "ClientSnetEncrypt",
    "ClientSnetBuffer",
    "ClientSnetInitTimeout",
    "ClientSnetWaitTimeout",
    "ServerAddr",
    "ServerTlsCert",
    "ServerTlsKey",
    "ServerTlsClientCA",
    "ServerProxyProtocol",
    "ServerAuthKey",
    "ServerAuthPassword",
    "ServerBufferSize",
    "ServerIdleTimeout",
    "ServerSendChanSize",
    "ServerSnetEnable",
    "ServerSnetEncrypt",
    "ServerSnetBuffer",
    "ServerSnetInitTimeout",
    "ServerSnetWaitTimeout",
    "MetricsAddr",
    "Workers",
];

/// A fresh working directory for one process.
fn workdir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fastway-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `fastway` with its log lines.
struct Fastway {
    child: Child,
    dir: PathBuf,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    client: SocketAddr,
    server: SocketAddr,
}

impl Fastway {
    fn start(args: &[&str]) -> Fastway {
        Fastway::start_in(workdir(), args)
    }

    fn start_in(dir: PathBuf, args: &[&str]) -> Fastway {
        Fastway::start_env(dir, args, &[])
    }

    fn start_env(dir: PathBuf, args: &[&str], env: &[(&str, &Path)]) -> Fastway {
        let mut child = Process::new(BIN)
            .args(args)
            .current_dir(&dir)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("FASTWAY_SERVER_AUTH_KEY")
            .envs(env.iter().map(|&(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut fw = Fastway {
            child,
            dir,
            lines,
            log: Vec::new(),
            client: "0.0.0.0:0".parse().unwrap(),
            server: "0.0.0.0:0".parse().unwrap(),
        };
        fw.client = fw.wait_addr("client listener at ");
        fw.server = fw.wait_addr("server listener at ");
        fw.wait_log("fastway running");
        fw
    }

    /// Waits for a log line containing `needle`; returns it.
    fn wait_log(&mut self, needle: &str) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?}; log so far: {:#?}", self.log),
            }
        }
    }

    fn wait_addr(&mut self, prefix: &str) -> SocketAddr {
        let line = self.wait_log(prefix);
        let text = line.split(prefix).nth(1).unwrap().trim();
        text.parse().unwrap()
    }

    fn signal(&self, sig: &str) {
        let ok = Process::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Writes `fastway.cmd`, sends SIGUSR1, waits for the log line `done`.
    fn command(&mut self, cmd: &str, done: &str) -> String {
        std::fs::write(self.dir.join("fastway.cmd"), cmd).unwrap();
        self.log.retain(|l| !l.contains(done));
        self.signal("-USR1");
        self.wait_log(done)
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "fastway did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("fastway.pid")
    }
}

impl Drop for Fastway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn loopback() -> [&'static str; 2] {
    ["-ClientAddr=127.0.0.1:0", "-ServerAddr=127.0.0.1:0"]
}

#[test]
fn help_lists_every_flag_with_its_default() {
    for h in ["-h", "-help", "--help"] {
        let out = Process::new(BIN).arg(h).output().unwrap();
        assert!(out.status.success(), "{h}");
        // On stderr, as Go's flag package prints it.
        assert!(out.stdout.is_empty(), "{h}: usage on stdout");
        let text = String::from_utf8(out.stderr).unwrap();
        for name in CLI_MD_FLAGS {
            assert!(text.contains(&format!("-{name}")), "{h}: -{name} missing");
        }
        // Strings quoted, other values not, as Go prints them.
        for default in [
            "(default 512K)",
            "(default \"atom\")",
            "(default 30s)",
            "(default 100000)",
            "(default \":0\")",
        ] {
            assert!(text.contains(default), "{h}: {default} missing");
        }
    }
}

#[test]
fn bad_flags_exit_2_with_one_line_and_bind_nothing() {
    // A port that is free now; a bad command line must leave it free.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = format!("-ClientAddr=127.0.0.1:{port}");
    let cases: &[(&[&str], &str)] = &[
        (&["-NoSuchFlag"], "NoSuchFlag"),
        (&["-MaxPacket=huge"], "MaxPacket"),
        (&["-ClientIdleTimeout=30"], "ClientIdleTimeout"),
        (&["-MemPoolType=heap"], "MemPoolType"),
        (&["-ClientMaxConn=-1"], "ClientMaxConn"),
        (&["-ServerSendChanSize"], "ServerSendChanSize"),
    ];
    for (args, name) in cases {
        let dir = workdir();
        let out = Process::new(BIN)
            .arg(&client)
            .args(*args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(name), "{args:?}: {err}");
        assert!(
            !dir.join("fastway.pid").exists(),
            "{args:?} wrote a pid file"
        );
        TcpListener::bind(("127.0.0.1", port)).expect("the port was bound");
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn pid_file_and_logged_ephemeral_ports() {
    let mut fw = Fastway::start(&loopback());
    let pid: u32 = std::fs::read_to_string(fw.pid_file())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, fw.child.id());
    assert_ne!(fw.client.port(), 0);
    // Both logged addresses are reachable and speak the protocol.
    let mut server = RawPeer::server(fw.server, 1, b"");
    let mut client = RawPeer::client(fw.client);
    let v = client.dial(1);
    assert_eq!(server.expect_connect().0, v);
    client.send_data(v, b"hi");
    assert_eq!(server.recv(), Got::Data(v, b"hi".to_vec()));
    fw.signal("-TERM");
    assert!(fw.wait_exit().success());
    assert!(!fw.pid_file().exists(), "pid file left behind");
    fw.wait_log("fastway stopped");
}

#[test]
fn a_second_fastway_in_the_same_directory_refuses_and_sighup_is_harmless() {
    let mut first = Fastway::start(&loopback());
    first.wait_log("ServerAuthKey is empty");
    let pid = std::fs::read_to_string(first.pid_file()).unwrap();
    let mut second = Process::new(BIN)
        .args(loopback())
        .current_dir(&first.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = second.kill();
            panic!("a second fastway in the same directory kept running");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("another fastway") && err.contains(pid.trim()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(first.pid_file()).unwrap(),
        pid,
        "the first one's pid file was touched"
    );
    // SIGHUP is logged and changes nothing.
    first.signal("-HUP");
    first.wait_log("SIGHUP");
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "SIGHUP stopped fastway"
    );
    let mut client = RawPeer::client(first.client);
    client.send_cmd(Command::Ping);
    assert_eq!(client.recv_cmd(), Command::Ping);
    first.signal("-TERM");
    assert!(first.wait_exit().success());
    assert!(!first.pid_file().exists(), "pid file left behind");
}

#[test]
fn tells_systemd_it_is_ready_once_listening_and_when_stopping() {
    let dir = workdir();
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut fw = Fastway::start_env(dir, &loopback(), &[("NOTIFY_SOCKET", &path)]);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("no readiness message");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    // Ready means listening.
    TcpStream::connect(fw.client).unwrap();
    TcpStream::connect(fw.server).unwrap();
    fw.signal("-TERM");
    let n = sock.recv(&mut buf).expect("no stopping message");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "STOPPING=1"), "{msg:?}");
    assert!(fw.wait_exit().success());
}

#[test]
fn a_flood_of_bad_peers_writes_a_bounded_number_of_log_lines() {
    let mut fw = Fastway::start(&loopback());
    // A server registering and going away is logged at the default level.
    let server = RawPeer::server(fw.server, 3, b"");
    fw.wait_log("server 3 (127.0.0.1:");
    fw.wait_log("registered");
    drop(server);
    fw.wait_log("closed: peer closed the connection");

    // 300 clients that each send a frame with Length 0.
    const FLOOD: usize = 300;
    for _ in 0..FLOOD {
        let mut s = TcpStream::connect(fw.client).unwrap();
        std::io::Write::write_all(&mut s, &[0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    }
    let line = fw.wait_log("suppressed");
    let suppressed: usize = line
        .split_whitespace()
        .skip_while(|w| *w != "suppressed")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"));
    let stats = fw.command("lookup stats", "fastway.stats written");
    assert!(stats.contains("written"));
    let bad = stat(&read_file(&fw.dir, "fastway.stats"), "bad_frames");
    assert_eq!(bad, FLOOD as u64, "every bad peer was closed");
    let warned = fw
        .log
        .iter()
        .filter(|l| l.contains("protocol error"))
        .count();
    assert!(suppressed > 0);
    // Within the limit of each window that passed (at most a few here).
    assert!(warned <= 3 * 20, "{warned} protocol warnings written");
    assert!(warned + suppressed <= FLOOD);
}

fn read_file(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn stat(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn lookup_commands_report_a_scripted_exchange() {
    let mut fw = Fastway::start(&[loopback()[0], loopback()[1], "-ServerAuthKey=sekrit"]);
    let mut server = RawPeer::server(fw.server, 7, b"sekrit");
    let mut a = RawPeer::client(fw.client);
    let mut b = RawPeer::client(fw.client);
    a.dial(7);
    a.dial(7);
    b.dial(7);
    for _ in 0..3 {
        server.expect_connect();
    }
    b.send_cmd(Command::Dial { remote_id: 99 });
    assert_eq!(b.recv_cmd(), Command::Refuse { remote_id: 99 });

    fw.command("lookup stats\n", "fastway.stats written");
    let stats = read_file(&fw.dir, "fastway.stats");
    assert_eq!(stat(&stats, "clients"), 2);
    assert_eq!(stat(&stats, "servers"), 1);
    assert_eq!(stat(&stats, "vconns"), 3);
    assert_eq!(stat(&stats, "dials"), 4);
    assert_eq!(stat(&stats, "refused_unknown"), 1);
    assert_eq!(stat(&stats, "servers_authenticated"), 1);

    fw.command("lookup conns", "fastway.conns written");
    let conns = read_file(&fw.dir, "fastway.conns");
    let rows: Vec<Vec<&str>> = conns
        .lines()
        .skip(1)
        .map(|l| l.split(' ').collect())
        .collect();
    assert_eq!(rows.len(), 3, "{conns}");
    let server_row = rows.iter().find(|r| r[0] == "server").unwrap();
    assert_eq!((server_row[1], server_row[3]), ("7", "3"), "{conns}");
    let mut client_vconns: Vec<&str> = rows
        .iter()
        .filter(|r| r[0] == "client")
        .map(|r| r[3])
        .collect();
    client_vconns.sort();
    assert_eq!(client_vconns, ["1", "2"], "{conns}");

    fw.command("lookup heap", "fastway.heap.prof written");
    assert!(read_file(&fw.dir, "fastway.heap.prof").contains("rss_bytes "));
    fw.command("lookup goroutine", "Go runtime only");
    fw.command("make coffee", "unknown command");
    std::fs::remove_file(fw.dir.join("fastway.cmd")).unwrap();
    fw.signal("-USR1");
    fw.wait_log("cannot read fastway.cmd");

    #[cfg(feature = "cpuprof")]
    {
        fw.command("cpuprof start", "cpuprof started");
        for _ in 0..200 {
            a.send_cmd(Command::Ping);
            assert_eq!(a.recv_cmd(), Command::Ping);
        }
        fw.command("cpuprof stop", "profile written");
        let prof = std::fs::read(fw.dir.join("fastway.cpu.prof")).unwrap();
        assert!(!prof.is_empty());
    }
    // Still serving after all the commands.
    b.send_cmd(Command::Ping);
    assert_eq!(b.recv_cmd(), Command::Ping);
}

#[test]
fn sigterm_delivers_queued_data_then_closes_and_exits_0() {
    let mut fw = Fastway::start(&loopback());
    let mut server = RawPeer::server(fw.server, 1, b"");
    let mut client = RawPeer::client(fw.client);
    let v = client.dial(1);
    assert_eq!(server.expect_connect().0, v);
    // The client does not read while the server sends more than the socket
    // buffers hold, so part of it waits in the gateway's queue.
    const N: usize = 300;
    let msg = vec![0x42u8; 8000];
    let mut burst = Vec::new();
    for _ in 0..N {
        wire::encode_frame(&mut burst, v, &msg);
    }
    server.send(&burst);
    server.send_cmd(Command::Ping);
    assert_eq!(server.recv_cmd(), Command::Ping);
    fw.signal("-TERM");
    fw.wait_log("shutting down");
    for i in 0..N {
        assert_eq!(client.recv(), Got::Data(v, msg.clone()), "message {i}");
    }
    assert_eq!(client.recv_cmd(), Command::Close { conn_id: v });
    let mut rest = Vec::new();
    let _ = client.stream.read_to_end(&mut rest);
    // Each peer that closes its end lets the gateway close that connection.
    drop(client);
    drop(server);
    assert!(fw.wait_exit().success());
}

#[test]
fn sigterm_drain_delivers_everything_to_a_slow_client_that_keeps_talking() {
    let mut fw = Fastway::start(&loopback());
    let mut server = RawPeer::server(fw.server, 1, b"");
    let mut client = RawPeer::client(fw.client);
    let v = client.dial(1);
    assert_eq!(server.expect_connect().0, v);
    const N: u32 = 300;
    let mut burst = Vec::new();
    for i in 0..N {
        let mut msg = vec![0x42u8; 8192];
        msg[..4].copy_from_slice(&i.to_le_bytes());
        wire::encode_frame(&mut burst, v, &msg);
    }
    server.send(&burst);
    server.send_cmd(Command::Ping);
    assert_eq!(server.recv_cmd(), Command::Ping);
    fw.signal("-TERM");
    fw.wait_log("shutting down");
    // During the drain the client talks (a Ping, then data on its vconn)
    // and reads slowly.
    client.send_cmd(Command::Ping);
    std::thread::sleep(Duration::from_millis(200));
    client.send_data(v, b"still here");
    let mut got = Vec::new();
    loop {
        match client.recv() {
            Got::Data(id, m) if id == v => {
                got.push(u32::from_le_bytes(m[..4].try_into().unwrap()));
                if got.len() % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Got::Cmd(Command::Close { conn_id }) if conn_id == v => break,
            // An answer to the Ping, if the gateway gives one.
            Got::Cmd(Command::Ping) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        got,
        (0..N).collect::<Vec<_>>(),
        "every queued message, in order"
    );
    // Then the end of the stream, not a reset.
    let mut rest = Vec::new();
    client.stream.read_to_end(&mut rest).unwrap();
    drop(client);
    drop(server);
    assert!(fw.wait_exit().success());
}

#[test]
fn sigterm_under_full_load_delivers_every_frame_the_gateway_took() {
    let mut fw = Fastway::start(&loopback());
    let mut server = RawPeer::server(fw.server, 1, b"");
    const CLIENTS: usize = 40;
    let mut vconns = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = RawPeer::client(fw.client);
        let v = c.dial(1);
        assert_eq!(server.expect_connect().0, v);
        vconns.push(v);
        // Each client reads until the gateway ends its stream, checking
        // that its frames are numbered 0, 1, 2, ... with intact bytes.
        readers.push(std::thread::spawn(move || {
            let mut next = 0u32;
            loop {
                match c.recv_or_end() {
                    None => return next,
                    Some(Got::Data(id, m)) => {
                        assert_eq!(id, v);
                        let seq = u32::from_le_bytes(m[..4].try_into().unwrap());
                        assert_eq!(seq, next, "vconn {v}: a frame lost or reordered");
                        assert!(
                            m[4..].iter().all(|&b| b == seq as u8),
                            "vconn {v}: corrupted"
                        );
                        next += 1;
                    }
                    Some(Got::Cmd(Command::Close { conn_id })) => assert_eq!(conn_id, v),
                    Some(other) => panic!("vconn {v}: unexpected {other:?}"),
                }
            }
        }));
    }
    // The server streams to every client as fast as the gateway takes it,
    // until the shutdown has begun.
    let mut stream = server.stream.try_clone().unwrap();
    drop(server);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut seq = 0u32;
        while !stopped.load(Ordering::Relaxed) {
            let mut batch = Vec::new();
            for &v in &vconns {
                let mut msg = vec![seq as u8; 1000];
                msg[..4].copy_from_slice(&seq.to_le_bytes());
                wire::encode_frame(&mut batch, v, &msg);
            }
            if stream.write_all(&batch).is_err() {
                break;
            }
            seq += 1;
        }
        seq
    });
    std::thread::sleep(Duration::from_millis(700));
    fw.signal("-TERM");
    fw.wait_log("shutting down");
    stop.store(true, Ordering::Relaxed);
    let line = fw.wait_log("fastway stopped:");
    assert!(fw.wait_exit().success());
    let sent_rounds = writer.join().unwrap();
    let received: u64 = readers
        .into_iter()
        .map(|r| u64::from(r.join().unwrap()))
        .sum();
    let taken: u64 = line
        .split("and ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no server frame count in {line:?}"));
    assert!(received > 0 && sent_rounds > 0);
    assert_eq!(
        received, taken,
        "frames the gateway took from the server vs frames clients got"
    );
}

#[test]
fn reuse_port_lets_two_gateways_share_the_client_port() {
    let first = Fastway::start(&[
        "-ReusePort",
        "-ClientAddr=127.0.0.1:0",
        "-ServerAddr=127.0.0.1:0",
    ]);
    let port = first.client.port();
    let client_addr = format!("-ClientAddr=127.0.0.1:{port}");
    let second = Fastway::start(&["-ReusePort", &client_addr, "-ServerAddr=127.0.0.1:0"]);
    assert_eq!(second.client.port(), port);
    // Connections to the shared port are served (by whichever process).
    for _ in 0..4 {
        let mut c = RawPeer::client(first.client);
        c.send_cmd(Command::Ping);
        assert_eq!(c.recv_cmd(), Command::Ping);
    }
    // Without -ReusePort the port is taken.
    let out = Process::new(BIN)
        .args([client_addr.as_str(), "-ServerAddr=127.0.0.1:0"])
        .current_dir(workdir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ClientAddr"));
}

/// With `-ClientSnetEnable`, a client whose link broke stays, waiting:
/// `lookup conns` shows it so, `lookup stats` counts it, and after
/// `-ClientSnetWaitTimeout` it is gone.
#[test]
fn a_waiting_snet_client_shows_in_lookups_then_expires() {
    use uniway::snet::{Session, SnetSettings, REPLY_LEN};
    let mut fw = Fastway::start(&[
        "-ClientAddr=127.0.0.1:0",
        "-ServerAddr=127.0.0.1:0",
        "-ClientSnetEnable",
        "-ClientSnetWaitTimeout=2s",
    ]);
    let mut link = TcpStream::connect(fw.client).unwrap();
    link.set_read_timeout(Some(DEADLINE)).unwrap();
    link.write_all(&Session::request(0x1234_5678)).unwrap();
    let mut reply = [0u8; REPLY_LEN];
    link.read_exact(&mut reply).unwrap();
    let settings = SnetSettings {
        encrypt: false,
        buffer: 1024,
    };
    Session::connect(0x1234_5678, &reply, settings).unwrap();
    fw.command("lookup conns", "fastway.conns written");
    let conns = read_file(&fw.dir, "fastway.conns");
    assert!(conns.starts_with("side id peer vconns queued_bytes queued_msgs idle_ms link\n"));
    assert!(conns.lines().nth(1).unwrap().ends_with(" up"), "{conns}");
    drop(link);
    let start = Instant::now();
    loop {
        fw.command("lookup conns", "fastway.conns written");
        let conns = read_file(&fw.dir, "fastway.conns");
        if conns
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains(" waiting:"))
        {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never waiting: {conns}");
        std::thread::sleep(Duration::from_millis(20));
    }
    fw.command("lookup stats", "fastway.stats written");
    let stats = read_file(&fw.dir, "fastway.stats");
    assert_eq!(stat(&stats, "snet_waiting"), 1);
    assert_eq!(stat(&stats, "snet_links_lost"), 1);
    assert_eq!(stat(&stats, "clients"), 1);
    loop {
        fw.command("lookup stats", "fastway.stats written");
        let stats = read_file(&fw.dir, "fastway.stats");
        if stat(&stats, "snet_expired") == 1 {
            assert_eq!(
                (stat(&stats, "clients"), stat(&stats, "snet_waiting")),
                (0, 0)
            );
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never expired: {stats}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kick_closes_a_peer_and_tells_the_other_ends() {
    let mut fw = Fastway::start(&[
        "-ClientAddr=127.0.0.1:0",
        "-ServerAddr=127.0.0.1:0",
        "-ServerAuthKey=k",
    ]);
    let mut server = RawPeer::server(fw.server, 7, b"k");
    let mut a = RawPeer::client(fw.client);
    let mut b = RawPeer::client(fw.client);
    let conn_a = a.dial(7);
    let (_, client_a) = server.expect_connect();
    let conn_b = b.dial(7);
    server.expect_connect();

    fw.command(
        &format!("lookup conns side=client id={client_a}"),
        "fastway.conns written",
    );
    let conns = read_file(&fw.dir, "fastway.conns");
    assert_eq!(conns.lines().count(), 2, "{conns}");
    assert!(conns
        .lines()
        .nth(1)
        .unwrap()
        .starts_with(&format!("client {client_a} ")));

    fw.command(&format!("kick client {client_a}"), "closing it");
    a.expect_closed();
    assert_eq!(server.recv_cmd(), Command::Close { conn_id: conn_a });
    fw.command("kick client 999", "no such client");
    fw.command("kick server 7", "closing it");
    server.expect_closed();
    assert_eq!(b.recv_cmd(), Command::Close { conn_id: conn_b });
    fw.command("lookup stats", "fastway.stats written");
    let stats = read_file(&fw.dir, "fastway.stats");
    assert_eq!(stat(&stats, "kicked"), 2);
    assert_eq!(stat(&stats, "servers"), 0);
    fw.wait_log("kicked by the operator");
}

#[test]
fn metrics_are_served_for_prometheus() {
    let mut fw = Fastway::start(&[
        "-ClientAddr=127.0.0.1:0",
        "-ServerAddr=127.0.0.1:0",
        "-ServerAuthKey=k",
        "-MetricsAddr=127.0.0.1:0",
    ]);
    let at = fw.wait_addr("metrics (GET /metrics) listener at ");
    let _server = RawPeer::server(fw.server, 3, b"k");
    let mut client = RawPeer::client(fw.client);
    client.dial(3);
    let get = |path: &str| {
        let mut s = TcpStream::connect(at).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        // The request in two pieces, as a slow scraper might send it.
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n").as_bytes())
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        s.write_all(b"\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let page = get("/metrics");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    for line in [
        "uniway_clients{worker=\"0\"} 1",
        "uniway_clients{worker=\"total\"} 1",
        "uniway_servers{worker=\"total\"} 1",
        "uniway_vconns{worker=\"0\"} 1",
        "uniway_dials_total{worker=\"total\"} 1",
        "# TYPE uniway_frames_per_turn histogram",
        "uniway_queue_depth_connections{le=\"+Inf\"} 2",
    ] {
        assert!(page.contains(line), "no {line:?} in\n{page}");
    }
    assert!(get("/").starts_with("HTTP/1.1 404"));
    // Scrapes do not disturb the gateway.
    client.send_cmd(Command::Ping);
    assert_eq!(client.recv_cmd(), Command::Ping);
}

/// `-Workers 2`: two reactors share the client address; each takes servers
/// on its own port; a server linked to both serves every client; client
/// IDs are unique in the process; commands, stats and metrics cover both;
/// SIGTERM drains both.
#[test]
fn two_workers_share_the_clients_and_answer_as_one() {
    use std::collections::HashSet;
    use uniway::endpoint::{Client, EndpointConfig, MultiServer};
    let mut fw = Fastway::start(&[
        "-ClientAddr=127.0.0.1:0",
        "-ServerAddr=127.0.0.1:0",
        "-ServerAuthKey=k",
        "-Workers=2",
        "-MetricsAddr=127.0.0.1:0",
    ]);
    let servers: Vec<SocketAddr> = (0..2)
        .map(|i| fw.wait_addr(&format!("worker {i} of 2: servers connect to ")))
        .collect();
    assert_ne!(servers[0], servers[1]);
    let metrics_at = fw.wait_addr("metrics (GET /metrics) listener at ");
    let server = MultiServer::connect(
        servers.clone(),
        EndpointConfig {
            server_id: 1,
            auth_key: b"k".to_vec(),
            ..EndpointConfig::default()
        },
    )
    .unwrap();
    assert!(server.wait_linked(DEADLINE));
    let clients: Vec<Client> = (0..40)
        .map(|_| Client::connect(fw.client, EndpointConfig::default()).unwrap())
        .collect();
    let mut by_gateway = [0; 2];
    let mut ids = HashSet::new();
    let mut open = Vec::new();
    for c in &clients {
        let v = c.dial(1).unwrap();
        v.send(b"hi").unwrap();
        let (gateway, on_server) = server.accept_timeout(DEADLINE).unwrap();
        assert_eq!(on_server.recv().unwrap(), b"hi");
        on_server.send(b"back").unwrap();
        assert_eq!(v.recv().unwrap(), b"back");
        by_gateway[gateway] += 1;
        assert!(ids.insert(on_server.remote_id()), "client ID given twice");
        open.push((v, on_server));
    }
    assert!(by_gateway[0] > 0 && by_gateway[1] > 0, "{by_gateway:?}");

    fw.command("lookup stats", "fastway.stats written");
    let stats = read_file(&fw.dir, "fastway.stats");
    assert_eq!(stat(&stats, "clients"), 40);
    assert_eq!(stat(&stats, "servers"), 2);
    assert_eq!(stat(&stats, "vconns"), 40);
    fw.command("lookup conns side=server", "fastway.conns written");
    assert_eq!(read_file(&fw.dir, "fastway.conns").lines().count(), 3);
    let victim = *ids.iter().next().unwrap();
    fw.command(&format!("kick client {victim}"), "closing it");

    let mut s = TcpStream::connect(metrics_at).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    for w in ["0", "1", "total"] {
        assert!(
            page.contains(&format!("uniway_servers{{worker=\"{w}\"}}")),
            "{page}"
        );
    }
    assert!(
        page.contains("uniway_servers{worker=\"total\"} 2"),
        "{page}"
    );

    fw.signal("-TERM");
    assert!(fw.wait_exit().success());
    let last = fw.wait_log("fastway stopped");
    assert!(
        last.contains("forwarded 40 frames from clients and 40 from servers"),
        "{last}"
    );
}

#[test]
fn a_worker_whose_server_port_is_taken_says_which_flag_to_change() {
    // Worker 1 takes ServerAddr's port + 1: hold that port, leave the one
    // below it free (retrying if someone else takes it meanwhile).
    for _ in 0..20 {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap().port();
        let base = taken - 1;
        if TcpListener::bind(("127.0.0.1", base)).is_err() {
            continue;
        }
        let dir = workdir();
        let out = Process::new(BIN)
            .args([
                "-ClientAddr=127.0.0.1:0".to_string(),
                format!("-ServerAddr=127.0.0.1:{base}"),
                "-Workers=2".to_string(),
            ])
            .current_dir(&dir)
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !err.contains("worker 1") {
            // The port below was taken by someone else before fastway
            // bound it; try another pair.
            assert!(err.contains(&format!(":{base}")), "{err}");
            continue;
        }
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(&format!("127.0.0.1:{taken}")), "{err}");
        assert!(err.contains("Address already in use"), "{err}");
        assert!(
            err.contains("-ServerAddr"),
            "names the flag to change: {err}"
        );
        drop(held);
        return;
    }
    panic!("no free pair of ports found");
}
