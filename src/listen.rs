//! Opening the listening sockets the way the Go gateway does: an address in
//! Go notation (`:4000` means every interface), SO_REUSEADDR always, and
//! SO_REUSEPORT when asked so several processes can share one port.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use socket2::{Domain, Socket, Type};

/// Backlog of pending connections per listener. The kernel clamps it to
/// `net.core.somaxconn`, so this asks for as much as the system allows (as
/// Go's listener does); a burst of connects then does not lose SYNs.
const BACKLOG: i32 = 65535;

/// The addresses to try for a Go-style address: `:port` is every interface,
/// IPv6 dual-stack first, then IPv4; anything else is resolved as given.
pub fn resolve(addr: &str) -> io::Result<Vec<SocketAddr>> {
    if let Some(port) = addr.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("bad port in {addr:?}"))
        })?;
        return Ok(vec![
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        ]);
    }
    Ok(addr.to_socket_addrs()?.collect())
}

/// Binds a non-blocking listener on the first address of `addr` that works.
/// An error keeps its kind and names the address it failed on
/// (`cannot listen on 0.0.0.0:4000: Address already in use`).
pub fn bind(addr: &str, reuse_port: bool) -> io::Result<mio::net::TcpListener> {
    let mut last = io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("cannot listen on {addr:?}: it resolves to no address"),
    );
    let addrs = resolve(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr:?}: {e}")))?;
    for a in addrs {
        match bind_one(a, reuse_port) {
            Ok(l) => return Ok(l),
            Err(e) => last = io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")),
        }
    }
    Err(last)
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> io::Result<mio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_any_address() {
        let a = resolve(":4000").unwrap();
        assert_eq!(a[0].port(), 4000);
        assert!(a.iter().all(|x| x.ip().is_unspecified()));
        assert!(resolve(":http").is_err());
        assert_eq!(
            resolve("127.0.0.1:5").unwrap(),
            vec!["127.0.0.1:5".parse().unwrap()]
        );
    }

    #[test]
    fn reuse_port_lets_two_listeners_share_a_port() {
        let a = bind("127.0.0.1:0", true).unwrap();
        let port = a.local_addr().unwrap().port();
        let b = bind(&format!("127.0.0.1:{port}"), true).unwrap();
        assert_eq!(b.local_addr().unwrap().port(), port);
        let c = bind(&format!("127.0.0.1:{port}"), false).unwrap_err();
        assert_eq!(c.kind(), io::ErrorKind::AddrInUse);
        let text = c.to_string();
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    }
}
