//! The operator commands of `fastway.cmd` (read on SIGUSR1): parsing them,
//! and the text files the `lookup` commands write.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::gateway::{ConnInfo, Stats};
use crate::side::Side;

/// A command an operator can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCommand {
    /// Start a CPU profile.
    CpuprofStart,
    /// Stop the CPU profile and save it as `fastway.cpu.prof`.
    CpuprofStop,
    /// Buffer pool and memory figures to `fastway.heap.prof`.
    LookupHeap,
    /// Every counter to `fastway.stats`.
    LookupStats,
    /// One line per connection (those the filter takes) to
    /// `fastway.conns`.
    LookupConns(ConnFilter),
    /// Close a client or server now; the other ends of its vconns are
    /// told, as when it leaves.
    Kick(Side, u32),
    /// Read the TLS certificates and keys again (as SIGHUP does).
    ReloadTls,
    /// A Go-runtime lookup with no meaning here: which one, and what to use.
    GoOnly(&'static str, &'static str),
}

/// Which connections `lookup conns` lists: every condition given must
/// hold (`side=client|server`, `id=N`, `addr=IP` or `addr=IP:PORT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnFilter {
    /// Only this side.
    pub side: Option<Side>,
    /// Only this client or server ID.
    pub id: Option<u32>,
    /// Only peers at this address.
    pub addr: Option<AddrFilter>,
}

/// A peer address to match: any port of an IP, or one IP and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrFilter {
    /// Any port of this IP.
    Ip(IpAddr),
    /// This IP and port.
    Socket(SocketAddr),
}

impl ConnFilter {
    /// Whether `c` is one to list.
    pub fn matches(&self, c: &ConnInfo) -> bool {
        self.side.is_none_or(|s| s == c.side)
            && self.id.is_none_or(|id| c.id == Some(id))
            && self.addr.is_none_or(|a| match a {
                AddrFilter::Ip(ip) => c.peer.ip() == ip,
                AddrFilter::Socket(at) => c.peer == at,
            })
    }

    fn parse(words: &[&str]) -> Result<ConnFilter, String> {
        let mut f = ConnFilter::default();
        for w in words {
            let bad = || {
                format!("lookup conns: bad filter {w:?} (side=client|server, id=N, addr=IP[:PORT])")
            };
            match w.split_once('=') {
                Some(("side", v)) => f.side = Some(parse_side(v).ok_or_else(bad)?),
                Some(("id", v)) => f.id = Some(v.parse().map_err(|_| bad())?),
                Some(("addr", v)) => {
                    f.addr = Some(if let Ok(ip) = v.parse() {
                        AddrFilter::Ip(ip)
                    } else {
                        AddrFilter::Socket(v.parse().map_err(|_| bad())?)
                    })
                }
                _ => return Err(bad()),
            }
        }
        Ok(f)
    }
}

fn parse_side(word: &str) -> Option<Side> {
    match word {
        "client" => Some(Side::Client),
        "server" => Some(Side::Server),
        _ => None,
    }
}

/// Parses the text of `fastway.cmd`: words separated by white space.
pub fn parse_command(text: &str) -> Result<OpCommand, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    Ok(match words[..] {
        ["lookup", "conns", ref filter @ ..] => OpCommand::LookupConns(ConnFilter::parse(filter)?),
        ["kick", side, id] => {
            let side = parse_side(side)
                .ok_or_else(|| format!("kick: {side:?} is not client or server"))?;
            let id = id
                .parse()
                .map_err(|_| format!("kick: {id:?} is not an ID"))?;
            OpCommand::Kick(side, id)
        }
        ["cpuprof", "start"] => OpCommand::CpuprofStart,
        ["cpuprof", "stop"] => OpCommand::CpuprofStop,
        ["lookup", "heap"] => OpCommand::LookupHeap,
        ["lookup", "stats"] => OpCommand::LookupStats,
        ["reload", "tls"] => OpCommand::ReloadTls,
        ["lookup", "gc"] => OpCommand::GoOnly(
            "lookup gc",
            "there is no garbage collector; use lookup heap",
        ),
        ["lookup", "goroutine"] => OpCommand::GoOnly(
            "lookup goroutine",
            "the gateway is one thread; use lookup conns for per-connection state",
        ),
        ["lookup", "block"] => {
            OpCommand::GoOnly("lookup block", "nothing blocks in the reactor; use cpuprof")
        }
        ["lookup", "threadcreate"] => OpCommand::GoOnly(
            "lookup threadcreate",
            "the gateway creates no threads; use lookup stats",
        ),
        [] => return Err("the command file is empty".into()),
        _ => return Err(format!("unknown command {:?}", text.trim())),
    })
}

/// Every counter, one `name value` line each.
pub fn render_stats(s: &Stats) -> String {
    render_fields(&s.fields())
}

/// Every counter summed over several gateways (the workers of one
/// process), one `name value` line each.
pub fn render_stats_total(all: &[Stats]) -> String {
    render_fields(&total_fields(all))
}

/// The fields of [`Stats::fields`], summed over `all`.
pub fn total_fields(all: &[Stats]) -> Vec<(&'static str, u64)> {
    let mut total = Stats::default().fields();
    for s in all {
        for (t, (_, v)) in total.iter_mut().zip(s.fields()) {
            t.1 += v;
        }
    }
    total
}

fn render_fields(fields: &[(&'static str, u64)]) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// One line per connection: side, ID, peer, vconns, queued bytes and
/// messages, idle time, and its link: `up`, or for an snet stream whose
/// link is down `waiting:<ms left>`.
pub fn render_conns(conns: &[ConnInfo], filter: &ConnFilter) -> String {
    let mut out = String::from("side id peer vconns queued_bytes queued_msgs idle_ms link\n");
    for c in conns.iter().filter(|c| filter.matches(c)) {
        let id = c.id.map_or("-".to_string(), |i| i.to_string());
        let _ = writeln!(
            out,
            "{} {} {} {} {} {} {} {}",
            c.side,
            id,
            c.peer,
            c.vconns,
            c.queued_bytes,
            c.queued_msgs,
            c.idle.as_millis(),
            match c.snet_waiting {
                Some(left) => format!("waiting:{}", left.as_millis()),
                None => "up".to_string(),
            }
        );
    }
    out
}

/// Buffer pool figures (summed over `all`, the workers) and the process's
/// resident memory.
pub fn render_heap(all: &[Stats], rss_bytes: Option<u64>, uptime: Duration) -> String {
    let mut out = String::new();
    for (name, value) in total_fields(all) {
        if name.starts_with("pool_") || name == "queued_bytes" {
            let _ = writeln!(out, "{name} {value}");
        }
    }
    if let Some(rss) = rss_bytes {
        let _ = writeln!(out, "rss_bytes {rss}");
    }
    let _ = writeln!(out, "uptime_secs {}", uptime.as_secs());
    out
}

/// The process's resident set size, from `/proc/self/status` (Linux).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse_command("lookup stats\n"), Ok(OpCommand::LookupStats));
        assert_eq!(
            parse_command("  cpuprof   start "),
            Ok(OpCommand::CpuprofStart)
        );
        assert!(matches!(
            parse_command("lookup gc"),
            Ok(OpCommand::GoOnly("lookup gc", _))
        ));
        assert!(parse_command("").unwrap_err().contains("empty"));
        assert!(parse_command("reboot now")
            .unwrap_err()
            .contains("reboot now"));
        assert_eq!(
            parse_command("kick client 7"),
            Ok(OpCommand::Kick(Side::Client, 7))
        );
        assert_eq!(
            parse_command("kick server 12\n"),
            Ok(OpCommand::Kick(Side::Server, 12))
        );
        assert!(parse_command("kick player 7")
            .unwrap_err()
            .contains("player"));
        assert!(parse_command("kick client x")
            .unwrap_err()
            .contains("\"x\""));
        assert_eq!(
            parse_command("lookup conns"),
            Ok(OpCommand::LookupConns(ConnFilter::default()))
        );
        assert_eq!(
            parse_command("lookup conns side=server id=3 addr=10.0.0.5"),
            Ok(OpCommand::LookupConns(ConnFilter {
                side: Some(Side::Server),
                id: Some(3),
                addr: Some(AddrFilter::Ip("10.0.0.5".parse().unwrap())),
            }))
        );
        assert!(parse_command("lookup conns colour=red")
            .unwrap_err()
            .contains("colour=red"));
    }

    #[test]
    fn conns_filters_select_rows() {
        let row = |side, id, peer: &str| ConnInfo {
            key: 0,
            side,
            id,
            peer: peer.parse().unwrap(),
            vconns: 0,
            queued_bytes: 0,
            queued_msgs: 0,
            idle: Duration::ZERO,
            snet_waiting: None,
        };
        let conns = [
            row(Side::Client, Some(1), "10.0.0.1:5000"),
            row(Side::Client, Some(2), "10.0.0.2:5000"),
            row(Side::Server, Some(1), "10.0.0.1:6000"),
            row(Side::Server, None, "10.0.0.3:6000"),
        ];
        let lines = |f: &str| {
            let Ok(OpCommand::LookupConns(filter)) = parse_command(&format!("lookup conns {f}"))
            else {
                panic!("{f}");
            };
            render_conns(&conns, &filter).lines().count() - 1
        };
        assert_eq!(lines(""), 4);
        assert_eq!(lines("side=client"), 2);
        assert_eq!(lines("id=1"), 2);
        assert_eq!(lines("side=server id=1"), 1);
        assert_eq!(lines("addr=10.0.0.1"), 2);
        assert_eq!(lines("addr=10.0.0.1:6000"), 1);
        assert_eq!(lines("addr=10.0.0.9"), 0);
    }

    /// The field names of a derived `Debug` rendering, nested structs
    /// flattened as `outer_inner`: an enumeration of `Stats` that does not
    /// come from `Stats::fields`.
    fn debug_field_names(debug: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut prefix: Vec<String> = Vec::new();
        for token in debug.split_inclusive(['{', '}', ',']) {
            let token = token.trim();
            if token == "}" || token == "}," {
                prefix.pop();
                continue;
            }
            let Some((name, rest)) = token.split_once(':') else {
                continue;
            };
            let name = name.trim().rsplit(' ').next().unwrap_or("").to_string();
            let full = prefix
                .iter()
                .chain([&name])
                .cloned()
                .collect::<Vec<_>>()
                .join("_");
            if rest.trim_end().ends_with('{') {
                prefix.push(name);
            } else {
                names.push(full);
            }
            if rest.contains('}') {
                prefix.pop();
            }
        }
        names
    }

    #[test]
    fn stats_render_every_counter() {
        let s = Stats::default();
        let mut expected = debug_field_names(&format!("{s:?}"));
        assert!(expected.len() > 30, "parsed only {expected:?}");
        let text = render_stats(&s);
        let mut rendered: Vec<String> = text
            .lines()
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect();
        expected.sort();
        rendered.sort();
        assert_eq!(rendered, expected, "a counter of Stats is not rendered");
        let s = Stats {
            vconns: 3,
            dials: 7,
            ..Stats::default()
        };
        let text = render_stats(&s);
        assert!(text.contains("vconns 3\n") && text.contains("dials 7\n"));
    }
}
