//! A game client that dials a server, sends each line typed on stdin as a
//! message and prints the replies, until stdin ends.
//!
//! ```sh
//! cargo run --example client -- 127.0.0.1:4000 1
//! ```
//! Arguments: the gateway's client address and the server ID to dial.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use uniway::endpoint::{Client, EndpointConfig, RecvError, Text};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4000".into());
    let server_id = args.next().unwrap_or_else(|| "1".into());
    let server_id: u32 = server_id
        .parse()
        .map_err(|_| format!("server ID {server_id:?} is not a number"))?;
    // The defaults ping the gateway every 10 s, inside its idle timeout.
    let client = Client::connect_with(addr.as_str(), EndpointConfig::default(), Text)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let vconn = client
        .dial(server_id)
        .map_err(|e| format!("cannot dial server {server_id}: {e}"))?;
    println!(
        "vconn {} open to server {server_id}; type lines",
        vconn.conn_id()
    );
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        vconn.send(&line).map_err(|e| format!("send: {e}"))?;
        match vconn.recv_timeout(Duration::from_secs(5)) {
            Ok(reply) => println!("< {reply}"),
            Err(RecvError::Timeout) => println!("(no reply within 5 s)"),
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    vconn.close();
    Ok(())
}
