//! Runs `examples/embed.rs` in a thread: the gateway inside a user loop
//! next to the user's status port, both answering on loopback.

mod common;

#[path = "../examples/embed.rs"]
mod embed;

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use common::{test_config, Got, RawPeer};

fn status(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(common::DEADLINE)).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn gateway_and_status_port_share_one_loop() {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = stop.clone();
    let any = "127.0.0.1:0".parse().unwrap();
    let loop_thread = std::thread::spawn(move || {
        embed::run(test_config(), any, any, any, &flag, |b| tx.send(b).unwrap())
    });
    let bound = rx.recv_timeout(common::DEADLINE).unwrap();

    assert!(status(bound.status).starts_with("clients=0 servers=0 vconns=0 "));

    let mut server = RawPeer::server(bound.server, 9, b"test-key");
    let mut client = RawPeer::client(bound.client);
    let v = client.dial(9);
    assert_eq!(server.expect_connect().0, v);
    client.send_data(v, b"through the user's loop");
    assert_eq!(
        server.recv(),
        Got::Data(v, b"through the user's loop".to_vec())
    );

    let line = status(bound.status);
    assert!(
        line.starts_with("clients=1 servers=1 vconns=1 frames_in=1 dials=1 "),
        "{line}"
    );

    stop.store(true, Ordering::Relaxed);
    let stats = loop_thread.join().unwrap().unwrap();
    assert_eq!(stats.vconns, 1);
}
