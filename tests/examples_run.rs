//! Runs the example programs once each, as a newcomer would: `fastway`,
//! then `echo_server` registered with it, then `client` typing two lines
//! (each must come back), then `loadgen` for a moment against the same
//! gateway (it checks every echo itself), then `soak` for three seconds.
//! `cargo test` builds the
//! examples; this test runs the binaries it built.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// A built example next to this test's binary (`target/<profile>/examples`).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} missing: run this test through `cargo test`, which builds the examples",
        path.display()
    );
    path
}

/// A child whose stdout (or stderr) lines arrive on a channel; killed when
/// dropped.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(mut cmd: Command, from_stderr: bool) -> Running {
        let mut child = if from_stderr {
            cmd.stderr(Stdio::piped()).stdout(Stdio::null())
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit())
        }
        .spawn()
        .unwrap();
        let out: Box<dyn std::io::Read + Send> = if from_stderr {
            Box::new(child.stderr.take().unwrap())
        } else {
            Box::new(child.stdout.take().unwrap())
        };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_line(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {needle:?}; seen: {:#?}", self.seen),
            }
        }
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "did not exit; seen: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number after `name` (e.g. `round_trips=`) in a load tool's output.
fn field(text: &str, name: &str) -> f64 {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(name))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn echo_server_client_and_loadgen_run_against_fastway() {
    let dir = std::env::temp_dir().join(format!("uniway-examples-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut fastway = Command::new(env!("CARGO_BIN_EXE_fastway"));
    fastway
        .args([
            "-ClientAddr=127.0.0.1:0",
            "-ServerAddr=127.0.0.1:0",
            "-ServerAuthKey=secret",
        ])
        .current_dir(&dir)
        .env("RUST_LOG", "info");
    let mut gw = Running::spawn(fastway, true);
    let addr = |line: String| line.rsplit(' ').next().unwrap().to_string();
    let client_addr = addr(gw.wait_line("client listener at "));
    let server_addr = addr(gw.wait_line("server listener at "));

    let mut echo = Command::new(example("echo_server"));
    echo.args([&server_addr, "7", "secret"]);
    let mut echo = Running::spawn(echo, false);
    echo.wait_line("echo server 7 registered");

    let mut client = Command::new(example("client"));
    client.args([&client_addr, "7"]).stdin(Stdio::piped());
    let mut client = Running::spawn(client, false);
    client.wait_line("open to server 7");
    let mut stdin = client.child.stdin.take().unwrap();
    writeln!(stdin, "hello gateway").unwrap();
    assert_eq!(client.wait_line("< "), "< hello gateway");
    writeln!(stdin, "second line").unwrap();
    assert_eq!(client.wait_line("< "), "< second line");
    drop(stdin);
    assert!(client.wait_exit().success(), "client failed");

    // A wrong key: the example says why in words, not a Debug dump.
    let mut wrong = Command::new(example("echo_server"));
    wrong.args([&server_addr, "8", "not-the-key"]);
    let out = wrong.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("echo_server: cannot register as server 8"),
        "{err}"
    );
    assert!(!err.contains('{'), "Debug formatting in {err}");

    let mut load = Command::new(example("loadgen"));
    load.args([
        "--client",
        &client_addr,
        "--server",
        &server_addr,
        "--servers",
        "1",
        "--clients",
        "10",
        "--bytes",
        "64",
        "--inflight",
        "2",
        "--secs",
        "0.5",
        "--warmup",
        "0.2",
        "--key",
        "secret",
    ]);
    let out = load.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(field(&text, "round_trips=") > 0.0, "{text}");

    // The room scenario, each way of fanning out: every member gets every
    // broadcast, and a fan-out command is one frame on the server's link.
    for mode in ["unicast", "multicast", "group"] {
        let out = Command::new(example("loadgen"))
            .args([
                "--client",
                &client_addr,
                "--server",
                &server_addr,
                "--clients",
                "20",
                "--room",
                mode,
                "--bytes",
                "256",
                "--inflight",
                "4",
                "--secs",
                "0.5",
                "--warmup",
                "0.2",
                "--key",
                "secret",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "loadgen --room {mode} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(field(&text, "broadcasts=") > 0.0, "{text}");
        let frames = field(&text, "server_link_frames_per_broadcast=");
        assert_eq!(frames, if mode == "unicast" { 20.0 } else { 1.0 }, "{text}");
    }

    // The soak tool, for a few seconds with churn and a server restart.
    let mut soak = Command::new(example("soak"));
    soak.args([
        "--client",
        &client_addr,
        "--server",
        &server_addr,
        "--key",
        "secret",
        "--clients",
        "40",
        "--servers",
        "2",
        "--secs",
        "3",
        "--restart-every",
        "1",
        "--redials",
        "50",
        "--reconnects",
        "10",
    ]);
    let out = soak.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("errors=0"),
        "soak failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The echo server is still there after all that.
    assert!(
        echo.child.try_wait().unwrap().is_none(),
        "echo_server exited"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
