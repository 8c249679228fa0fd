//! A backend server that echoes every message on every vconn.
//!
//! ```sh
//! cargo run --example echo_server -- 127.0.0.1:4001 1 secret
//! ```
//! Arguments: the gateway's server address, this server's ID, the key
//! (`-ServerAuthKey` of the gateway; empty by default).

use std::error::Error;

use uniway::endpoint::{EndpointConfig, Server};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4001".into());
    let server_id: u32 = args.next().unwrap_or_else(|| "1".into()).parse()?;
    let key = args.next().unwrap_or_default();
    let server = Server::connect(
        addr.as_str(),
        EndpointConfig {
            server_id,
            auth_key: key.into_bytes(),
            ..EndpointConfig::default()
        },
    )?;
    println!("echo server {server_id} registered at {addr}");
    loop {
        let vconn = server.accept()?;
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
