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
fn replay(target: &str, run: fn(&[u8])) -> usize {
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
            let outcome = std::panic::catch_unwind(|| run(&data));
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

/// The checks themselves catch what they are meant to: an input that
/// cannot be the correct handshake response is refused (`handshake`), and
/// a garbage input does not slip through the frame decoder's round trip.
#[test]
fn the_checks_run_on_hand_made_inputs() {
    // Correct response (mode 0), delivered in pieces of 3 and 7 bytes.
    handshake::run(&[0, 3, 7, 1, 0]);
    // One bit flipped (mode 1), then trailing bytes.
    handshake::run(&[1, 5, 2, 9, 0, 0xff, 0xee]);
    // Arbitrary bytes (mode 2), 20 of them.
    handshake::run(&[
        2, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    ]);
    frame_decoder::run(&[0, 2, 9, 0, 0, 0, 1, 0, 0, 0, b'h', b'e', b'l', b'l', b'o']);
    // snet: a request, then writes both ways, partial deliveries, a cut
    // with data in flight and a genuine resume, a forged one.
    let mut snet = vec![0u8; 40];
    snet.extend([
        0, 50, 1, 60, 2, 20, 3, 30, 6, 0, 4, 0, 5, 0, 0, 10, 2, 255, 4, 0, 7, 3,
    ]);
    snet_session::run(&snet);
    command_decoder::run(&[0, 1, 0, 0, 0]);
    gateway_core::run(&[0; 64]);
    ws_framing::run(b"\x07\x09\x00\x00\x00\x01\x00\x00\x00hello\x00\x82\x85");
    proxy_header::run(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nafter");
    proxy_header::run(
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x00\x01\x00\x02",
    );
}
