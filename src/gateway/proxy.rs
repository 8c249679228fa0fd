//! PROXY protocol headers (v1 text, v2 binary), as HAProxy and cloud load
//! balancers put them in front of a connection's first bytes to say whom
//! the connection is really from. Parsing is the `ppp` crate's; this module
//! reduces its answer to what the core needs: wait, refuse, or the header's
//! length and the real source address.

use std::net::{IpAddr, SocketAddr};

use ppp::{v1, v2, HeaderResult, PartialResult};

/// What the start of a connection's bytes holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The start of a header, or nothing yet: more bytes are needed.
    Incomplete,
    /// Not a PROXY header, or a malformed one; says why.
    Invalid(String),
    /// A whole header of `len` bytes. `source` is the address it gives for
    /// the peer, or `None` when it gives none to use (v1 `UNKNOWN`, a v2
    /// `LOCAL` command, an unspecified or Unix address): the connection is
    /// then the balancer's own and keeps its address.
    Header {
        /// Bytes of the header, its line end or address block included.
        len: usize,
        /// The peer's address, if the header gives one.
        source: Option<SocketAddr>,
    },
}

/// The longest v1 header, its line end included.
const V1_MAX: usize = 107;

/// Looks for a PROXY header at the start of `data`.
pub fn parse(data: &[u8]) -> Parsed {
    if data.is_empty() {
        return Parsed::Incomplete;
    }
    // A v1 header is judged once its line is whole: cut anywhere before
    // its end (in a port number, say), it may look wrong and is not.
    let prefix = &data[..data.len().min(6)];
    if b"PROXY ".starts_with(prefix) {
        let line = &data[..data.len().min(V1_MAX)];
        return match line.windows(2).position(|w| w == b"\r\n") {
            // The header is the whole line, whatever ppp takes of it (for
            // UNKNOWN it may stop short of the line's end).
            Some(end) => match judge(HeaderResult::V1(v1::Header::try_from(&data[..end + 2]))) {
                Parsed::Header { source, .. } => Parsed::Header {
                    len: end + 2,
                    source,
                },
                other => other,
            },
            None if data.len() < V1_MAX => Parsed::Incomplete,
            None => Parsed::Invalid(format!("no line end within {V1_MAX} bytes")),
        };
    }
    judge(HeaderResult::parse(data))
}

fn judge(result: HeaderResult<'_>) -> Parsed {
    match result {
        HeaderResult::V1(r) if r.is_incomplete() => Parsed::Incomplete,
        HeaderResult::V2(r) if r.is_incomplete() => Parsed::Incomplete,
        HeaderResult::V1(Err(e)) => Parsed::Invalid(e.to_string()),
        HeaderResult::V2(Err(e)) => Parsed::Invalid(e.to_string()),
        HeaderResult::V1(Ok(h)) => Parsed::Header {
            len: h.header.len(),
            source: match h.addresses {
                v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                v1::Addresses::Unknown => None,
            },
        },
        HeaderResult::V2(Ok(h)) => Parsed::Header {
            len: h.header.len(),
            source: match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::Unspecified | v2::Addresses::Unix(_)) => None,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v2 header for TCP over IPv4 from `src` to `dst`.
    pub(crate) fn v2_tcp4(src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
        let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        h.push(0x21); // version 2, PROXY
        h.push(0x11); // TCP over IPv4
        h.extend_from_slice(&12u16.to_be_bytes());
        h.extend_from_slice(&src.0);
        h.extend_from_slice(&dst.0);
        h.extend_from_slice(&src.1.to_be_bytes());
        h.extend_from_slice(&dst.1.to_be_bytes());
        h
    }

    #[test]
    fn v1_headers_give_the_source_and_their_length() {
        let h = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 4000\r\nrest";
        assert_eq!(
            parse(h),
            Parsed::Header {
                len: h.len() - 4,
                source: Some("203.0.113.7:51000".parse().unwrap())
            }
        );
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 4000\r\n";
        assert_eq!(
            parse(h),
            Parsed::Header {
                len: h.len(),
                source: Some("[2001:db8::7]:51000".parse().unwrap())
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Header {
                len: 15,
                source: None
            }
        );
    }

    #[test]
    fn v2_headers_give_the_source_and_their_length() {
        let mut h = v2_tcp4(([198, 51, 100, 9], 40000), ([10, 0, 0, 1], 4000));
        let len = h.len();
        h.extend_from_slice(b"frames");
        assert_eq!(
            parse(&h),
            Parsed::Header {
                len,
                source: Some("198.51.100.9:40000".parse().unwrap())
            }
        );
        // LOCAL: a health check from the balancer itself.
        let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local),
            Parsed::Header {
                len: 16,
                source: None
            }
        );
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete_and_garbage_is_invalid() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 4000\r\n";
        let v2 = v2_tcp4(([198, 51, 100, 9], 40000), ([10, 0, 0, 1], 4000));
        for h in [&v1[..], &v2[..]] {
            for n in 0..h.len() {
                assert_eq!(parse(&h[..n]), Parsed::Incomplete, "{n} bytes");
            }
        }
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x09\x00\x00\x00",
            b"PROXY TCP4 x y z w\r\n",
        ] {
            assert!(matches!(parse(bad), Parsed::Invalid(_)), "{bad:?}");
        }
    }
}
