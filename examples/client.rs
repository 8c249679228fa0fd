//! A game client that dials a server, sends each line typed on stdin as a
//! message and prints the replies.
//!
//! ```sh
//! cargo run --example client -- 127.0.0.1:4000 1
//! ```
//! Arguments: the gateway's client address and the server ID to dial.

use std::error::Error;
use std::io::BufRead;
use std::time::Duration;

use uniway::endpoint::{Client, EndpointConfig, RecvError, Text};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:4000".into());
    let server_id: u32 = args.next().unwrap_or_else(|| "1".into()).parse()?;
    let cfg = EndpointConfig {
        // Well inside the gateway's default 30 s idle timeout.
        ping_interval: Some(Duration::from_secs(10)),
        ping_timeout: Some(Duration::from_secs(5)),
        ..EndpointConfig::default()
    };
    let client = Client::connect_with(addr.as_str(), cfg, Text)?;
    let vconn = client.dial(server_id)?;
    println!(
        "vconn {} open to server {server_id}; type lines",
        vconn.conn_id()
    );
    for line in std::io::stdin().lock().lines() {
        vconn.send(&line?)?;
        match vconn.recv_timeout(Duration::from_secs(5)) {
            Ok(reply) => println!("< {reply}"),
            Err(RecvError::Timeout) => println!("(no reply within 5 s)"),
            Err(e) => return Err(e.into()),
        }
    }
    vconn.close();
    Ok(())
}
