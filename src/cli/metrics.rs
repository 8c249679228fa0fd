//! `-MetricsAddr`: the gateway's counters for Prometheus.
//!
//! [`render`] turns a snapshot of each worker's counters into the
//! Prometheus/OpenMetrics text format (encoded by `prometheus-client`):
//! every counter and gauge of [`Stats`], per worker (label `worker="0"`,
//! ...) and for the whole process (`worker="total"`); a histogram of data
//! frames routed per turn; and, as gauges by bound, how many connections
//! have at most so many bytes queued now. [`MetricsServer`] answers `GET /metrics` over HTTP/1
//! from the caller's mio loop: small, non-blocking, one request per
//! connection, with a deadline and a cap on connections at once.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry as PromRegistry;
use slab::Slab;

use crate::gateway::{StatKind, Stats, TurnHistogram, STAT_FIELDS, TURN_FRAME_BOUNDS};
use crate::tokens::TokenRange;
use crate::transport::{read_status, write_status, IoStatus};

/// One worker's figures at the time of a scrape.
#[derive(Debug, Clone, Default)]
pub struct WorkerMetrics {
    /// Its counters and gauges.
    pub stats: Stats,
    /// Data frames routed per turn.
    pub turns: TurnHistogram,
    /// Bytes queued to each of its connections.
    pub queued: Vec<usize>,
}

/// Bounds of the queue-depth gauges, in bytes.
const QUEUE_BOUNDS: [u64; 9] = [
    0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
];

/// The snapshot a scrape encodes.
#[derive(Debug)]
struct Snapshot {
    workers: Vec<WorkerMetrics>,
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for field in STAT_FIELDS {
            let gauge = field.kind == StatKind::Gauge;
            let kind = if gauge {
                MetricType::Gauge
            } else {
                MetricType::Counter
            };
            let full = format!("uniway_{}", field.name);
            let mut metric = encoder.encode_descriptor(&full, field.help, None, kind)?;
            let mut total = 0u64;
            for (w, worker) in self.workers.iter().enumerate() {
                let label = [("worker", w.to_string())];
                let v = (field.get)(&worker.stats);
                total += v;
                let mut family = metric.encode_family(&label)?;
                encode_value(&mut family, gauge, v)?;
            }
            let label = [("worker", "total".to_string())];
            let mut family = metric.encode_family(&label)?;
            encode_value(&mut family, gauge, total)?;
        }

        let mut turns = TurnHistogram::default();
        for w in &self.workers {
            turns.add(&w.turns);
        }
        let mut metric = encoder.encode_descriptor(
            "uniway_frames_per_turn",
            "data frames routed per reactor turn, over turns that routed any (all workers)",
            None,
            MetricType::Histogram,
        )?;
        // Per-bucket counts; the encoder makes them cumulative, and writes
        // an upper bound of f64::MAX as +Inf.
        let buckets: Vec<(f64, u64)> = turns
            .buckets
            .iter()
            .enumerate()
            .map(|(i, &n)| (TURN_FRAME_BOUNDS.get(i).map_or(f64::MAX, |&b| b as f64), n))
            .collect();
        metric.encode_histogram::<NoLabelSet>(turns.sum as f64, turns.count(), &buckets, None)?;

        // Queue depths now: a gauge per bound (a histogram's buckets must
        // only grow; these go up and down).
        let depths: Vec<usize> = self
            .workers
            .iter()
            .flat_map(|w| w.queued.iter().copied())
            .collect();
        let mut metric = encoder.encode_descriptor(
            "uniway_queue_depth_connections",
            "connections with at most `le` bytes queued for writing, now (all workers)",
            None,
            MetricType::Gauge,
        )?;
        let bounds = QUEUE_BOUNDS.iter().map(|&b| (b.to_string(), b));
        for (label, limit) in bounds.chain([("+Inf".to_string(), u64::MAX)]) {
            let n = depths.iter().filter(|&&d| d as u64 <= limit).count() as u64;
            let label = [("le", label)];
            metric.encode_family(&label)?.encode_gauge(&n)?;
        }
        Ok(())
    }
}

fn encode_value(
    e: &mut prometheus_client::encoding::MetricEncoder<'_>,
    gauge: bool,
    v: u64,
) -> Result<(), std::fmt::Error> {
    if gauge {
        e.encode_gauge(&v)
    } else {
        e.encode_counter::<NoLabelSet, _, u64>(&v, None)
    }
}

/// The metrics text for these workers' figures.
pub fn render(workers: Vec<WorkerMetrics>) -> String {
    let mut registry = PromRegistry::default();
    registry.register_collector(Box::new(Snapshot { workers }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Most scrapes served at once; more wait in the listen backlog.
const MAX_SCRAPES: usize = 16;
/// A scrape that has not sent its request or taken its answer by then is
/// dropped.
const SCRAPE_DEADLINE: Duration = Duration::from_secs(5);
/// Longest request head accepted.
const MAX_REQUEST: usize = 8192;

struct Scrape {
    stream: TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
    written: usize,
    deadline: Instant,
}

/// An HTTP/1 responder for `/metrics` in a caller's mio loop, on the
/// tokens of a [`TokenRange`] (the first for the listener).
pub struct MetricsServer {
    listener: TcpListener,
    range: TokenRange,
    scrapes: Slab<Scrape>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("range", &self.range)
            .field("scrapes", &self.scrapes.len())
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Serves on `listener`, registered with `registry` under the first
    /// token of `range` (the others are for scrapes in progress).
    pub fn new(
        mut listener: TcpListener,
        registry: &Registry,
        range: TokenRange,
    ) -> io::Result<MetricsServer> {
        registry.register(&mut listener, Token(range.start), Interest::READABLE)?;
        Ok(MetricsServer {
            listener,
            range,
            scrapes: Slab::new(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `token` is one of its own.
    pub fn owns(&self, token: Token) -> bool {
        self.range.contains(token)
    }

    /// Takes a poll event for one of its tokens; `render` makes the body
    /// of `/metrics` when a request for it is complete.
    pub fn handle_event(
        &mut self,
        registry: &Registry,
        event: &Event,
        now: Instant,
        render: impl FnOnce() -> String,
    ) {
        let offset = event.token().0 - self.range.start;
        if offset == 0 {
            self.accept(registry, now);
            return;
        }
        let key = offset - 1;
        let Some(s) = self.scrapes.get_mut(key) else {
            return;
        };
        match progress(s, render) {
            Ok(false) => {}
            Ok(true) | Err(_) => self.drop_scrape(registry, key),
        }
    }

    /// Drops scrapes past their deadline; returns when to call again.
    pub fn handle_timeout(&mut self, registry: &Registry, now: Instant) -> Option<Instant> {
        let late: Vec<usize> = self
            .scrapes
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        for key in late {
            self.drop_scrape(registry, key);
        }
        self.scrapes.iter().map(|(_, s)| s.deadline).min()
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        while self.scrapes.len() < MAX_SCRAPES && self.scrapes.len() + 1 < self.range.len {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let key = self.scrapes.vacant_key();
                    let token = Token(self.range.start + 1 + key);
                    if registry
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    self.scrapes.insert(Scrape {
                        stream,
                        request: Vec::new(),
                        response: Vec::new(),
                        written: 0,
                        deadline: now + SCRAPE_DEADLINE,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("metrics listener: accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn drop_scrape(&mut self, registry: &Registry, key: usize) {
        if let Some(mut s) = self.scrapes.try_remove(key) {
            let _ = registry.deregister(&mut s.stream);
        }
    }
}

/// Reads the request and writes the answer as far as the socket allows;
/// `Ok(true)` once the scrape is over.
fn progress(s: &mut Scrape, render: impl FnOnce() -> String) -> io::Result<bool> {
    if s.response.is_empty() {
        let mut buf = [0u8; 1024];
        loop {
            match read_status(s.stream.read(&mut buf), buf.len()) {
                (n, IoStatus::Continue) => s.request.extend_from_slice(&buf[..n]),
                (_, IoStatus::WouldBlock) => break,
                (_, IoStatus::Closed) => return Ok(true),
                (_, IoStatus::Error(kind)) => return Err(kind.into()),
            }
            if s.request.len() > MAX_REQUEST {
                return Ok(true);
            }
        }
        if !s.request.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(false);
        }
        s.response = respond(&s.request, render);
    }
    while s.written < s.response.len() {
        let rest = &s.response[s.written..];
        match write_status(s.stream.write(rest), rest.len()) {
            (n, IoStatus::Continue) => s.written += n,
            (_, IoStatus::WouldBlock) => return Ok(false),
            (_, IoStatus::Closed) => return Ok(true),
            (_, IoStatus::Error(kind)) => return Err(kind.into()),
        }
    }
    Ok(true)
}

/// The whole HTTP answer to a request head.
fn respond(request: &[u8], render: impl FnOnce() -> String) -> Vec<u8> {
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, kind, body) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics") => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(),
        ),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "only /metrics is served here\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(clients: usize, dials: u64, turns: &[u64], queued: Vec<usize>) -> WorkerMetrics {
        let mut t = TurnHistogram::default();
        for &n in turns {
            t.record(n);
        }
        WorkerMetrics {
            stats: Stats {
                clients,
                dials,
                ..Stats::default()
            },
            turns: t,
            queued,
        }
    }

    fn value<'a>(text: &'a str, series: &str) -> &'a str {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    #[test]
    fn every_counter_per_worker_and_in_total() {
        let text = render(vec![
            worker(3, 10, &[1, 5], vec![0, 2000]),
            worker(4, 5, &[300], vec![70000]),
        ]);
        assert_eq!(value(&text, r#"uniway_clients{worker="0"}"#), "3");
        assert_eq!(value(&text, r#"uniway_clients{worker="total"}"#), "7");
        assert_eq!(value(&text, r#"uniway_dials_total{worker="1"}"#), "5");
        assert_eq!(value(&text, r#"uniway_dials_total{worker="total"}"#), "15");
        assert!(text.contains("# TYPE uniway_clients gauge"));
        assert!(text.contains("# TYPE uniway_dials counter"));
        assert!(text.contains("# HELP uniway_dials Dial commands received"));
        assert_eq!(
            text.matches("# TYPE uniway_frames_from_servers ").count(),
            1
        );
        for (name, _) in Stats::default().fields() {
            assert!(
                text.contains(&format!("# TYPE uniway_{name} ")),
                "{name} missing"
            );
        }
        assert_eq!(value(&text, "uniway_frames_per_turn_count"), "3");
        assert_eq!(value(&text, "uniway_frames_per_turn_sum"), "306.0");
        assert_eq!(
            value(&text, r#"uniway_frames_per_turn_bucket{le="1.0"}"#),
            "1"
        );
        assert_eq!(
            value(&text, r#"uniway_frames_per_turn_bucket{le="8.0"}"#),
            "2"
        );
        assert_eq!(
            value(&text, r#"uniway_frames_per_turn_bucket{le="+Inf"}"#),
            "3"
        );
        assert_eq!(
            value(&text, r#"uniway_queue_depth_connections{le="0"}"#),
            "1"
        );
        assert_eq!(
            value(&text, r#"uniway_queue_depth_connections{le="4096"}"#),
            "2"
        );
        assert_eq!(
            value(&text, r#"uniway_queue_depth_connections{le="65536"}"#),
            "2"
        );
        assert_eq!(
            value(&text, r#"uniway_queue_depth_connections{le="+Inf"}"#),
            "3"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    /// Every series the Grafana dashboard in `deploy/` plots exists.
    #[test]
    fn the_dashboard_plots_only_series_that_exist() {
        let dashboard = include_str!("../../deploy/grafana-dashboard.json");
        let text = render(vec![worker(1, 1, &[1], vec![1])]);
        let mut names = 0;
        for (i, _) in dashboard.match_indices("uniway_") {
            let name: String = dashboard[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name == "uniway_gateways" || name.len() <= "uniway_".len() {
                continue;
            }
            names += 1;
            assert!(
                text.lines()
                    .any(|l| !l.starts_with('#')
                        && l.split(['{', ' ']).next() == Some(name.as_str())),
                "the dashboard plots {name}, which is not served"
            );
        }
        assert!(names > 30, "only {names} series found in the dashboard");
    }

    #[test]
    fn only_get_metrics_is_answered() {
        let ok =
            String::from_utf8(respond(b"GET /metrics HTTP/1.1\r\n\r\n", || "x".into())).unwrap();
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nx"),
            "{ok}"
        );
        assert!(ok.contains("Content-Length: 1\r\n"));
        let missing =
            String::from_utf8(respond(b"GET / HTTP/1.1\r\n\r\n", || unreachable!())).unwrap();
        assert!(missing.starts_with("HTTP/1.1 404"));
        let post = String::from_utf8(respond(
            b"POST /metrics HTTP/1.1\r\n\r\n",
            || unreachable!(),
        ))
        .unwrap();
        assert!(post.starts_with("HTTP/1.1 405"));
    }
}
