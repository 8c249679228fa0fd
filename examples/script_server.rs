//! A backend server for testing client libraries (the TypeScript client's
//! tests use it): it echoes every message on every vconn, and obeys a few
//! text commands a client sends on a vconn, so a client test can make the
//! server do what only a server can.
//!
//! ```sh
//! cargo run --example script_server -- 127.0.0.1:4001 1 secret
//! ```
//! Arguments: the gateway's server address, this server's ID, the key.
//!
//! Commands (the whole message, as text):
//! - `!close`: the server closes this vconn.
//! - `!dial`: the server dials the client at the other end of this vconn,
//!   sends `hello <conn ID>` on the new vconn, then echoes on it; this vconn
//!   gets `dialed <conn ID>` (or `refused`).
//! - `!burst N SIZE`: the server sends N messages of SIZE bytes, message i
//!   filled with the byte i % 251, then `burst done`.
//! - `!exit`: the process exits at once (its vconns are closed by the
//!   gateway).
//!
//! Anything else comes back unchanged.

use std::process::ExitCode;
use std::sync::Arc;

use uniway::endpoint::{EndpointConfig, Server, VirtualConn};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("script_server: {e}");
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
    let server = Arc::new(server);
    println!("script server {server_id} registered at {addr}");
    loop {
        let vconn = server
            .accept()
            .map_err(|e| format!("gateway at {addr}: {e}"))?;
        let server = Arc::clone(&server);
        std::thread::spawn(move || serve(&server, vconn));
    }
}

/// Echoes and obeys commands on one vconn until it closes.
fn serve(server: &Arc<Server>, vconn: VirtualConn) {
    while let Ok(msg) = vconn.recv() {
        let reply = match std::str::from_utf8(&msg) {
            Ok("!close") => {
                vconn.close();
                return;
            }
            Ok("!exit") => std::process::exit(0),
            Ok("!dial") => Some(dial_back(server, vconn.remote_id())),
            Ok(text) if text.starts_with("!burst ") => burst(&vconn, text),
            _ => None,
        };
        let sent = match reply {
            Some(text) => vconn.send(text.as_bytes()),
            None => vconn.send(&msg),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Dials `client`, greets it on the new vconn and echoes there.
fn dial_back(server: &Arc<Server>, client: u32) -> String {
    match server.dial(client) {
        Ok(vc) => {
            let id = vc.conn_id();
            if vc.send(format!("hello {id}").as_bytes()).is_err() {
                return "refused".into();
            }
            let server = Arc::clone(server);
            std::thread::spawn(move || serve(&server, vc));
            format!("dialed {id}")
        }
        Err(_) => "refused".into(),
    }
}

/// Sends the messages `!burst N SIZE` asks for; returns the last reply.
fn burst(vconn: &VirtualConn, text: &str) -> Option<String> {
    let mut words = text.split_whitespace().skip(1);
    let count = words.next().and_then(|w| w.parse::<usize>().ok());
    let size = words.next().and_then(|w| w.parse::<usize>().ok());
    let (Some(count), Some(size)) = (count, size) else {
        return Some("bad burst".into());
    };
    for i in 0..count {
        let msg = vec![(i % 251) as u8; size];
        if vconn.send(&msg).is_err() {
            return None;
        }
    }
    Some("burst done".into())
}
