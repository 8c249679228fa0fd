//! snet through the real gateway: endpoints on both sides whose links a
//! proxy keeps cutting, with sequence-numbered traffic on several vconns
//! each way; and the ways a resume can fail.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::cut::CutProxy;
use common::{test_config, TestGateway};
use mio::{Events, Poll};
use uniway::endpoint::driver::{DriverEvent, EndpointDriver};
use uniway::endpoint::{EndpointConfig, EndpointSnet, Event, Role};
use uniway::snet::SnetSettings;
use uniway::{Config, Side, SnetConfig, TokenRange};

const KEY: &[u8] = b"test-key";

fn gateway_config(encrypt: bool, wait: Duration) -> Config {
    let mut cfg = test_config();
    for side in [Side::Client, Side::Server] {
        let snet = SnetConfig {
            settings: SnetSettings {
                encrypt,
                buffer: 256 * 1024,
            },
            init_timeout: Duration::from_secs(2),
            wait_timeout: wait,
        };
        match side {
            Side::Client => cfg.client.snet = Some(snet),
            Side::Server => cfg.server.snet = Some(snet),
        }
    }
    cfg
}

fn endpoint_config(encrypt: bool, server_id: u32) -> EndpointConfig {
    EndpointConfig {
        server_id,
        auth_key: KEY.to_vec(),
        snet: Some(EndpointSnet {
            settings: SnetSettings {
                encrypt,
                buffer: 256 * 1024,
            },
            redial_every: Duration::from_millis(10),
            give_up_after: Duration::from_secs(10),
        }),
        ..EndpointConfig::default()
    }
}

/// A message: its vconn's sequence number, then filler of a length that
/// varies with it (so frames straddle cuts at every offset).
fn message(seq: u32) -> Vec<u8> {
    let mut m = seq.to_le_bytes().to_vec();
    m.extend(std::iter::repeat_n(seq as u8, (seq as usize * 37) % 900));
    m
}

fn seq_of(data: &[u8]) -> u32 {
    let seq = u32::from_le_bytes(data[..4].try_into().unwrap());
    assert_eq!(data, &message(seq)[..], "message {seq} damaged");
    seq
}

/// Clients and a server behind two cutting proxies exchange numbered
/// messages on three vconns per client while links are cut every few
/// milliseconds on both sides: every message arrives exactly once, in
/// order, on every vconn, each way.
fn survive_cuts(encrypt: bool) {
    const VCONNS: usize = 3;
    const WINDOW: u32 = 16;
    const MIN_CUTS: usize = 50;
    let gw = TestGateway::start(gateway_config(encrypt, Duration::from_secs(10)));
    let client_proxy = CutProxy::start(gw.client_addr);
    let server_proxy = CutProxy::start(gw.server_addr);
    let mut poll = Poll::new().unwrap();
    let mut d = EndpointDriver::new(TokenRange { start: 0, len: 64 });
    let now = Instant::now();
    let server = d
        .connect(
            poll.registry(),
            server_proxy.addr,
            Role::Server,
            endpoint_config(encrypt, 1),
            now,
        )
        .unwrap();
    let mut client = None;
    // Per vconn: next to send, next expected back (client), next expected
    // in (server).
    let mut sent: HashMap<u32, u32> = HashMap::new();
    let mut echoed: HashMap<u32, u32> = HashMap::new();
    let mut at_server: HashMap<u32, u32> = HashMap::new();
    let mut events = Events::with_capacity(256);
    let start = Instant::now();
    let mut last_cut = Instant::now();
    let mut cut_side = 0;
    loop {
        // Traffic flows until enough links were cut, then drains.
        let cuts = client_proxy.cuts() + server_proxy.cuts();
        let sending = cuts < MIN_CUTS;
        if !sending && echoed.len() == VCONNS && echoed.iter().all(|(c, n)| sent[c] == *n) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "stuck after {cuts} cuts: echoed {echoed:?}, sent {sent:?}"
        );
        if sending && echoed.len() == VCONNS && last_cut.elapsed() >= Duration::from_millis(15) {
            // Alternate sides; now and then both at once.
            match cut_side % 5 {
                0 | 2 => client_proxy.cut(),
                1 | 3 => server_proxy.cut(),
                _ => {
                    client_proxy.cut();
                    server_proxy.cut();
                }
            }
            cut_side += 1;
            last_cut = Instant::now();
        }
        let wait = d
            .poll_timeout(Instant::now())
            .map_or(Duration::from_millis(5), |t| {
                t.min(Duration::from_millis(5))
            });
        poll.poll(&mut events, Some(wait)).unwrap();
        for ev in events.iter() {
            d.handle_event(ev);
        }
        d.handle_timeout(poll.registry(), Instant::now());
        while let Some(ev) = d.poll_event() {
            match ev {
                DriverEvent::Endpoint(k, Event::Ready) if k == server => {
                    let c = d
                        .connect(
                            poll.registry(),
                            client_proxy.addr,
                            Role::Client,
                            endpoint_config(encrypt, 0),
                            Instant::now(),
                        )
                        .unwrap();
                    for _ in 0..VCONNS {
                        d.endpoint(c).unwrap().dial(1).unwrap();
                    }
                    client = Some(c);
                }
                DriverEvent::Endpoint(k, Event::Dialed { conn_id, .. }) => {
                    assert_eq!(Some(k), client);
                    sent.insert(conn_id, 0);
                    echoed.insert(conn_id, 0);
                }
                DriverEvent::Endpoint(k, Event::Accepted { conn_id, .. }) => {
                    assert_eq!(k, server);
                    at_server.insert(conn_id, 0);
                }
                DriverEvent::Endpoint(k, Event::Message { conn_id, data }) if k == server => {
                    let seq = seq_of(&data);
                    let next = at_server.get_mut(&conn_id).expect("known vconn");
                    assert_eq!(seq, *next, "vconn {conn_id} at the server");
                    *next += 1;
                    d.endpoint(server).unwrap().send(conn_id, &data).unwrap();
                }
                DriverEvent::Endpoint(_, Event::Message { conn_id, data }) => {
                    let seq = seq_of(&data);
                    let next = echoed.get_mut(&conn_id).expect("known vconn");
                    assert_eq!(seq, *next, "vconn {conn_id} back at the client");
                    *next += 1;
                }
                DriverEvent::Endpoint(_, Event::Ready | Event::PingTimeout { kept: true }) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        // Keep a window of messages in flight on every vconn.
        if let (Some(c), true) = (client, sending) {
            for (&conn_id, next) in sent.iter_mut() {
                while *next < echoed[&conn_id] + WINDOW {
                    d.endpoint(c)
                        .unwrap()
                        .send(conn_id, &message(*next))
                        .unwrap();
                    *next += 1;
                }
            }
        }
    }
    let cuts = client_proxy.cuts() + server_proxy.cuts();
    let carried: u32 = echoed.values().sum();
    // Enough traffic that cuts fell while it flowed.
    assert!(carried as usize > 10 * MIN_CUTS, "only {carried} messages");
    drop(d);
    let stats = gw.stop().stats();
    assert!(stats.snet_resumes >= MIN_CUTS as u64 / 2, "{stats:?}");
    assert_eq!(stats.snet_handshakes, 2);
    assert_eq!(stats.snet_resume_failed, 0);
    assert_eq!(stats.snet_expired, 0);
    eprintln!(
        "{cuts} links cut, {} resumes, {carried} messages each way, encrypt {encrypt}",
        stats.snet_resumes
    );
}

#[test]
fn streams_survive_cuts_on_both_sides() {
    survive_cuts(false);
}

#[test]
fn encrypted_streams_survive_cuts_on_both_sides() {
    survive_cuts(true);
}
