//! One server linked to several gateways: `MultiServer` (blocking) and
//! `GatewayLinks` (mio), against real gateways, including one that goes
//! away and comes back at the same address.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{test_config, TestGateway, DEADLINE};
use mio::{Events, Poll};
use uniway::endpoint::driver::{DriverEvent, EndpointDriver, GatewayLinks};
use uniway::endpoint::{Client, EndpointConfig, Event, MultiServer, Role};
use uniway::{Side, TokenRange};

fn server_cfg() -> EndpointConfig {
    EndpointConfig {
        server_id: 1,
        auth_key: b"test-key".to_vec(),
        ..EndpointConfig::default()
    }
}

/// A gateway whose server listener is at `server_addr` (to come back at
/// the same address after a stop).
fn gateway_at(server_addr: SocketAddr) -> TestGateway {
    TestGateway::start_with(test_config(), move |gw, registry| {
        let client = uniway::listen::bind("127.0.0.1:0", false).unwrap();
        let server = uniway::listen::bind(&server_addr.to_string(), false).unwrap();
        (
            gw.listen(registry, Side::Client, client).unwrap(),
            gw.listen(registry, Side::Server, server).unwrap(),
        )
    })
}

#[test]
fn a_multi_server_serves_clients_of_every_gateway_and_relinks() {
    let a = TestGateway::start(test_config());
    let b = TestGateway::start(test_config());
    let b_server = b.server_addr;
    let server = MultiServer::connect(vec![a.server_addr, b.server_addr], server_cfg()).unwrap();
    assert!(server.wait_linked(DEADLINE), "{:?}", server.linked());

    // One client on each gateway; the server sees each through its gateway.
    let clients = [
        Client::connect(a.client_addr, EndpointConfig::default()).unwrap(),
        Client::connect(b.client_addr, EndpointConfig::default()).unwrap(),
    ];
    for (i, c) in clients.iter().enumerate() {
        let v = c.dial(1).unwrap();
        v.send(format!("from {i}").as_bytes()).unwrap();
        let (gateway, on_server) = server.accept_timeout(DEADLINE).unwrap();
        assert_eq!(gateway, i);
        assert_eq!(on_server.recv().unwrap(), format!("from {i}").into_bytes());
        // The server dials the client back through the gateway that holds
        // it: (gateway, client ID) names a client.
        let back = server.dial(gateway, on_server.remote_id()).unwrap();
        back.send(b"dialled back").unwrap();
        let at_client = c.accept().unwrap();
        assert_eq!(at_client.recv().unwrap(), b"dialled back");
    }
    // Client IDs are per gateway: the same ID names another client
    // elsewhere, or none.
    assert!(server.dial(0, 999).is_err());

    // Gateway b goes away; a keeps working; b comes back at its address
    // and the server links to it again by itself.
    drop(b);
    let start = Instant::now();
    while server.linked() != [true, false] {
        assert!(start.elapsed() < DEADLINE, "{:?}", server.linked());
        std::thread::sleep(Duration::from_millis(10));
    }
    let v = clients[0].dial(1).unwrap();
    v.send(b"still here").unwrap();
    assert_eq!(
        server.accept_timeout(DEADLINE).unwrap().1.recv().unwrap(),
        b"still here"
    );
    let b = gateway_at(b_server);
    assert!(server.wait_linked(DEADLINE), "{:?}", server.linked());
    let c = Client::connect(b.client_addr, EndpointConfig::default()).unwrap();
    c.dial(1).unwrap().send(b"b again").unwrap();
    let (gateway, v) = server.accept_timeout(DEADLINE).unwrap();
    assert_eq!((gateway, v.recv().unwrap()), (1, b"b again".to_vec()));
}

#[test]
fn gateway_links_in_a_mio_loop() {
    let gws = [
        TestGateway::start(test_config()),
        TestGateway::start(test_config()),
    ];
    let addrs: Vec<SocketAddr> = gws.iter().map(|g| g.server_addr).collect();
    let mut poll = Poll::new().unwrap();
    let mut d = EndpointDriver::new(TokenRange { start: 0, len: 64 });
    let cfg = EndpointConfig {
        probe_features: true,
        ..server_cfg()
    };
    let mut links = GatewayLinks::new(&addrs, cfg, Instant::now());
    let mut events = Events::with_capacity(64);
    let mut clients = Vec::new();
    let mut seen = [0usize; 2];
    let mut accepted: Vec<(usize, u32)> = Vec::new();
    let mut received: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut sent = false;
    let start = Instant::now();
    // Each link's endpoint knows the gateway's features.
    let both_probed = |d: &mut EndpointDriver, links: &GatewayLinks| {
        (0..2).all(|g| {
            links
                .key_of(g)
                .and_then(|k| d.endpoint(k))
                .is_some_and(|ep| ep.fan_out_supported())
        })
    };
    while received.len() < 5 || start.elapsed() < Duration::from_millis(200) {
        assert!(
            start.elapsed() < DEADLINE,
            "seen {seen:?}, received {received:?}"
        );
        if seen == [3, 3] && !sent && both_probed(&mut d, &links) {
            // A group across both gateways: each gets only its members.
            links.join(&mut d, 5, &accepted).unwrap();
            let except = [accepted[0]];
            links.send_to_group(&mut d, 5, b"to all", &except).unwrap();
            sent = true;
        }
        let now = Instant::now();
        links.connect_due(&mut d, poll.registry(), now);
        poll.poll(&mut events, Some(Duration::from_millis(5)))
            .unwrap();
        for ev in events.iter() {
            d.handle_event(ev);
        }
        d.handle_timeout(poll.registry(), Instant::now());
        while let Some(ev) = d.poll_event() {
            let gateway = links.handle_event(&ev, Instant::now());
            match ev {
                DriverEvent::Endpoint(_, Event::Ready)
                    if gateway.is_some() && links.linked() == [true, true] =>
                {
                    // Three clients on each gateway dial server 1.
                    for g in &gws {
                        for _ in 0..3 {
                            let c = d
                                .connect(
                                    poll.registry(),
                                    g.client_addr,
                                    Role::Client,
                                    EndpointConfig::default(),
                                    Instant::now(),
                                )
                                .unwrap();
                            d.endpoint(c).unwrap().dial(1).unwrap();
                            clients.push(c);
                        }
                    }
                }
                DriverEvent::Endpoint(key, Event::Accepted { conn_id, .. }) => {
                    let g = gateway.expect("an accept on a server link");
                    assert_eq!(links.key_of(g), Some(key));
                    seen[g] += 1;
                    accepted.push((g, conn_id));
                }
                DriverEvent::Endpoint(key, Event::Message { data, .. }) => {
                    assert!(gateway.is_none(), "a client receives it");
                    received.push((key, data));
                }
                _ => {}
            }
        }
    }
    assert_eq!(links.gateway_of(clients[0]), None);
    // Five members got it once; the one excepted did not.
    assert_eq!(received.len(), 5, "{received:?}");
    assert!(received.iter().all(|(_, m)| m == b"to all"));
    let mut keys: Vec<usize> = received.iter().map(|(k, _)| *k).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 5);
    let [a, b] = gws;
    let (a, b) = (a.stop().stats(), b.stop().stats());
    assert_eq!((a.group_members, b.group_members), (3, 3));
    assert_eq!(a.frames_fanned_out + b.frames_fanned_out, 5);
    assert_eq!((a.group_sends, b.group_sends), (1, 1));
}

#[test]
fn a_multi_server_multicasts_and_keeps_groups_per_gateway() {
    let a = TestGateway::start(test_config());
    let b = TestGateway::start(test_config());
    let cfg = EndpointConfig {
        probe_features: true,
        ..server_cfg()
    };
    let server = MultiServer::connect(vec![a.server_addr, b.server_addr], cfg).unwrap();
    assert!(server.wait_linked(DEADLINE));
    let clients: Vec<Client> = [a.client_addr, a.client_addr, b.client_addr]
        .iter()
        .map(|&addr| Client::connect(addr, EndpointConfig::default()).unwrap())
        .collect();
    let ends: Vec<_> = clients.iter().map(|c| c.dial(1).unwrap()).collect();
    let mut targets = Vec::new();
    let mut server_ends = Vec::new();
    for _ in 0..3 {
        let (g, v) = server.accept_timeout(DEADLINE).unwrap();
        targets.push((g, v.conn_id()));
        server_ends.push(v);
    }
    // The links probe as they come up; wait for both answers.
    let start = Instant::now();
    while server.dissolve(1).is_err() {
        assert!(start.elapsed() < DEADLINE);
        std::thread::sleep(Duration::from_millis(5));
    }
    server.multicast(&targets, b"one each").unwrap();
    server.join(8, &targets).unwrap();
    server.send_to_group(8, b"group", &[]).unwrap();
    for v in &ends {
        assert_eq!(v.recv_timeout(DEADLINE).unwrap(), b"one each");
        assert_eq!(v.recv_timeout(DEADLINE).unwrap(), b"group");
    }
    drop(server);
    let (a, b) = (a.stop().stats(), b.stop().stats());
    assert_eq!((a.frames_fanned_out, b.frames_fanned_out), (4, 2));
    assert_eq!((a.multicasts, b.multicasts), (1, 1));
}
