//! The operator commands of `fastway.cmd` (read on SIGUSR1): parsing them,
//! and the text files the `lookup` commands write.

use std::fmt::Write as _;
use std::time::Duration;

use crate::gateway::{ConnInfo, Stats};

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
    /// One line per connection to `fastway.conns`.
    LookupConns,
    /// Read the TLS certificates and keys again (as SIGHUP does).
    ReloadTls,
    /// A Go-runtime lookup with no meaning here: which one, and what to use.
    GoOnly(&'static str, &'static str),
}

/// Parses the text of `fastway.cmd`: words separated by white space.
pub fn parse_command(text: &str) -> Result<OpCommand, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    Ok(match words[..] {
        ["cpuprof", "start"] => OpCommand::CpuprofStart,
        ["cpuprof", "stop"] => OpCommand::CpuprofStop,
        ["lookup", "heap"] => OpCommand::LookupHeap,
        ["lookup", "stats"] => OpCommand::LookupStats,
        ["lookup", "conns"] => OpCommand::LookupConns,
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
    let mut out = String::new();
    for (name, value) in s.fields() {
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// One line per connection: side, ID, peer, vconns, queued bytes and
/// messages, idle time, and its link: `up`, or for an snet stream whose
/// link is down `waiting:<ms left>`.
pub fn render_conns(conns: &[ConnInfo]) -> String {
    let mut out = String::from("side id peer vconns queued_bytes queued_msgs idle_ms link\n");
    for c in conns {
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

/// Buffer pool figures and the process's resident memory.
pub fn render_heap(s: &Stats, rss_bytes: Option<u64>, uptime: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "pool_pages {}", s.pool.pages);
    let _ = writeln!(out, "pool_page_bytes {}", s.pool.page_bytes);
    let _ = writeln!(out, "pool_chunks_in_use {}", s.pool.chunks_in_use);
    let _ = writeln!(out, "pool_bytes_in_use {}", s.pool.bytes_in_use);
    let _ = writeln!(out, "queued_bytes {}", s.queued_bytes);
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
