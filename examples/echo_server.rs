//! A backend server that echoes every message on every vconn, until it is
//! stopped (Ctrl+C) or the gateway goes away.
//!
//! ```sh
//! cargo run --example echo_server -- 127.0.0.1:4001 1 secret
//! ```
//! Arguments: the gateway's server address, this server's ID, the key
//! (`-ServerAuthKey` of the gateway; empty by default). The default
//! `EndpointConfig` pings the gateway every 10 s, so a quiet server is not
//! taken for a dead one.

use std::process::ExitCode;

use uniway::endpoint::{EndpointConfig, Server};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4001".into());
    let server_id = args.next().unwrap_or_else(|| "1".into());
    let server_id: u32 = server_id
        .parse()
        .map_err(|_| format!("server ID {server_id:?} is not a number"))?;
    let key = args.next().unwrap_or_default();
    let server = Server::connect(
        addr.as_str(),
        EndpointConfig {
            server_id,
            auth_key: key.into_bytes(),
            ..EndpointConfig::default()
        },
    )
    .map_err(|e| format!("cannot register as server {server_id} at {addr}: {e}"))?;
    println!("echo server {server_id} registered at {addr}");
    loop {
        let vconn = server
            .accept()
            .map_err(|e| format!("gateway at {addr}: {e}"))?;
        println!(
            "vconn {} from client {}",
            vconn.conn_id(),
            vconn.remote_id()
        );
        std::thread::spawn(move || {
            while let Ok(msg) = vconn.recv() {
                if vconn.send(&msg).is_err() {
                    break;
                }
            }
            println!("vconn {} closed", vconn.conn_id());
        });
    }
}
