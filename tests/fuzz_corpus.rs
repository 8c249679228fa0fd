//! Replays the fuzz corpora through the fuzz targets' own checks, so that
//! `cargo test` on a stable toolchain guards what the fuzzers found: every
//! file under `fuzz/corpus/<target>/` (inputs kept by minimising a
//! campaign's corpus) and `fuzz/regressions/<target>/` (inputs that once
//! broke a promise, named for what they broke) is run through
//! `tests/fuzz_checks/<target>.rs`, the code the fuzz target runs. (In a
//! copy without the fuzz project, such as the published crate, there is
//! nothing to replay.)

#[allow(dead_code)]
#[path = "fuzz_checks/command_decoder.rs"]
mod command_decoder;
#[allow(dead_code)]
#[path = "fuzz_checks/frame_decoder.rs"]
mod frame_decoder;
#[allow(dead_code)]
#[path = "fuzz_checks/gateway_core.rs"]
mod gateway_core;
#[allow(dead_code)]
#[path = "fuzz_checks/handshake.rs"]
mod handshake;
#[allow(dead_code)]
#[path = "fuzz_checks/proxy_header.rs"]
mod proxy_header;
#[allow(dead_code)]
#[path = "fuzz_checks/snet_session.rs"]
mod snet_session;
#[allow(dead_code)]
#[path = "fuzz_checks/ws_framing.rs"]
mod ws_framing;

use std::path::Path;

/// Runs every input kept for `target`; returns how many there were.
fn replay<R>(target: &str, run: fn(&[u8]) -> R) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in [
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.map_while(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| {
                run(&data);
            });
            assert!(
                outcome.is_ok(),
                "{target}: {} breaks a promise",
                file.display()
            );
            n += 1;
        }
    }
    n
}

/// Asserts that a replay found inputs, wherever the fuzz project is there.
fn kept(target: &str, n: usize) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    assert!(n > 0 || !fuzz.exists(), "{target}: no corpus kept");
}

#[test]
fn frame_decoder_corpus() {
    kept("frame_decoder", replay("frame_decoder", frame_decoder::run));
}

#[test]
fn command_decoder_corpus() {
    kept(
        "command_decoder",
        replay("command_decoder", command_decoder::run),
    );
}

#[test]
fn handshake_corpus() {
    kept("handshake", replay("handshake", handshake::run));
}

#[test]
fn proxy_header_corpus() {
    kept("proxy_header", replay("proxy_header", proxy_header::run));
}

#[test]
fn ws_framing_corpus() {
    kept("ws_framing", replay("ws_framing", ws_framing::run));
}

#[test]
fn snet_session_corpus() {
    kept("snet_session", replay("snet_session", snet_session::run));
}

#[test]
fn gateway_core_corpus() {
    kept("gateway_core", replay("gateway_core", gateway_core::run));
}

/// The checks run for real on hand-made inputs, accepted and refused
/// ones: each says what it saw, so a check that returned early or checked
/// nothing would fail here. Refused inputs are the ones the code under test
/// must turn down (a wrong digest, a bad frame Length, garbage where a
/// PROXY header belongs, a forged reconnect).
#[test]
fn the_checks_run_on_hand_made_inputs_accepted_and_refused() {
    use gateway_core::Op;
    use handshake::Verdict;

    // Correct response (mode 0), delivered in pieces of 3 and 7 bytes.
    assert_eq!(handshake::run(&[0, 3, 7, 1, 0]), Verdict::Registered);
    // One bit flipped (mode 1), then trailing bytes.
    assert_eq!(
        handshake::run(&[1, 5, 2, 9, 0, 0xff, 0xee]),
        Verdict::Refused
    );
    // Arbitrary bytes (mode 2): 20 of them are judged, fewer wait.
    let mut garbage = vec![2, 0, 0, 0, 0];
    garbage.extend(1..=20);
    assert_eq!(handshake::run(&garbage), Verdict::Refused);
    assert_eq!(handshake::run(&[2, 0, 0, 0, 0, 1, 2, 3]), Verdict::Waiting);
    assert_eq!(handshake::run(&[0, 1]), Verdict::NoServer);

    // MaxPacket 16: one frame of Length 9 on conn 1, then one whose Length
    // is over MaxPacket.
    let frame = vec![16, 0, 9, 0, 0, 0, 1, 0, 0, 0, b'h', b'e', b'l', b'l', b'o'];
    assert_eq!(frame_decoder::run(&frame), (1, false));
    let mut over = frame.clone();
    over.extend([200, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(frame_decoder::run(&over), (1, true));

    // A Ping (type 5) from either side; an unknown type from neither; a
    // Multicast as a fan-out command only, and one whose count is more
    // than it holds as nothing.
    assert_eq!(command_decoder::run(&[5]), (2, false));
    assert_eq!(command_decoder::run(&[0xee, 1, 2]), (0, false));
    assert_eq!(
        command_decoder::run(&[8, 1, 0, 0, 0, 7, 0, 0, 0, b'h', b'i']),
        (0, true)
    );
    assert_eq!(
        command_decoder::run(&[8, 2, 0, 0, 0, 7, 0, 0, 0]),
        (0, false)
    );

    let v1 = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nafter";
    assert_eq!(proxy_header::run(v1), Some(v1.len() - 5));
    assert!(proxy_header::run(
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02",
    )
    .is_some());
    assert_eq!(proxy_header::run(b"GET / HTTP/1.1\r\n\r\n"), None);

    // WebSocket: an unmasked client frame is refused; frames go out.
    let (refused, frames) = ws_framing::run(b"\x07\x82\x05hello");
    assert!(refused);
    assert_eq!(frames, 7);
    let (refused, _) = ws_framing::run(b"\x07\x82\x85\x01\x02\x03\x04abcde");
    assert!(!refused);

    // snet: a request, then writes both ways, partial deliveries, a cut
    // with data in flight and a genuine resume, then a forged one.
    let mut snet = vec![0u8; 40];
    snet.extend([
        0, 50, 1, 60, 2, 20, 3, 30, 6, 0, 4, 0, 5, 0, 0, 10, 2, 255, 4, 0, 7, 3,
    ]);
    let seen = snet_session::run(&snet);
    assert_eq!(seen.resumes, 1, "{seen:?}");
    assert!(seen.ended, "the forged reconnect ends the stream: {seen:?}");
    // 50 + 10 bytes from the endpoint, 60 from the gateway, all read.
    assert_eq!(seen.read, (60, 60), "{seen:?}");

    // The core: a server with the right key, one with a wrong key, a
    // client that dials the first and sends, and a ping.
    let stats = gateway_core::run_ops(&[
        Op::Connect { server: true },
        Op::Handshake {
            peer: 0,
            server_id: 1,
            good_key: true,
        },
        Op::Connect { server: true },
        Op::Handshake {
            peer: 1,
            server_id: 2,
            good_key: false,
        },
        Op::Connect { server: false },
        Op::Dial { peer: 1, remote: 1 },
        Op::Data {
            peer: 1,
            vconn: 0,
            len: 10,
        },
        Op::Ping { peer: 1 },
    ]);
    assert_eq!(stats.servers_authenticated, 1, "{stats:?}");
    assert_eq!(stats.auth_failures, 1, "{stats:?}");
    assert_eq!(stats.dials, 1, "{stats:?}");
    assert_eq!(stats.pings, 1, "{stats:?}");
    assert!(gateway_core::run(&[0; 64]).is_some());

    // Fan-out: a server with two clients' vconns probes, puts both in a
    // group, sends to it, and multicasts to both and to a conn ID nobody
    // has (answered with Close).
    let stats = gateway_core::run_ops(&[
        Op::Connect { server: true },
        Op::Handshake {
            peer: 0,
            server_id: 1,
            good_key: true,
        },
        Op::Connect { server: false },
        Op::Dial { peer: 1, remote: 1 },
        Op::Connect { server: false },
        Op::Dial { peer: 2, remote: 1 },
        Op::Probe { peer: 0 },
        Op::Join {
            peer: 0,
            group: 1,
            vconns: 0b11,
        },
        Op::GroupSend {
            peer: 0,
            group: 1,
            except: 0,
            len: 5,
        },
        Op::Multicast {
            peer: 0,
            vconns: 0b1000_0011,
            len: 3,
        },
    ]);
    assert_eq!(stats.group_joins, 2, "{stats:?}");
    assert_eq!((stats.group_sends, stats.multicasts), (1, 1), "{stats:?}");
    assert_eq!(stats.frames_fanned_out, 4, "{stats:?}");
    assert_eq!(stats.frames_on_dead_vconns, 1, "{stats:?}");
}
