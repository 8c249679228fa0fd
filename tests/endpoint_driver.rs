//! Hundreds of endpoints in one thread through the mio driver, against the
//! real gateway: servers and clients, ping-pong on every vconn.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::{test_config, TestGateway, DEADLINE};
use mio::{Events, Poll};
use uniway::endpoint::driver::{DriverEvent, EndpointDriver};
use uniway::endpoint::{EndpointConfig, Event, Role};
use uniway::TokenRange;

#[test]
fn one_thread_drives_two_servers_and_300_clients() {
    const CLIENTS: usize = 300;
    const ROUNDS: u32 = 20;
    let gw = TestGateway::start(test_config());
    let mut poll = Poll::new().unwrap();
    let mut driver = EndpointDriver::new(TokenRange {
        start: 10,
        len: 1000,
    });
    let now = Instant::now();
    let mut servers = Vec::new();
    for id in [1, 2] {
        let cfg = EndpointConfig {
            server_id: id,
            auth_key: b"test-key".to_vec(),
            ..EndpointConfig::default()
        };
        servers.push(
            driver
                .connect(poll.registry(), gw.server_addr, Role::Server, cfg, now)
                .unwrap(),
        );
    }
    let mut events = Events::with_capacity(1024);
    let mut ready_servers = 0;
    let mut clients: HashMap<usize, u32> = HashMap::new(); // key -> rounds done
    let mut finished = 0;
    let start = Instant::now();
    while finished < CLIENTS {
        assert!(start.elapsed() < DEADLINE * 3, "stuck: {finished} finished");
        poll.poll(&mut events, driver.poll_timeout(Instant::now()))
            .unwrap();
        for ev in events.iter() {
            assert!(driver.owns(ev.token()));
            driver.handle_event(ev);
        }
        driver.handle_timeout(poll.registry(), Instant::now());
        while let Some(ev) = driver.poll_event() {
            match ev {
                DriverEvent::Endpoint(key, Event::Ready) if servers.contains(&key) => {
                    ready_servers += 1;
                    if ready_servers == 2 {
                        for _ in 0..CLIENTS {
                            let k = driver
                                .connect(
                                    poll.registry(),
                                    gw.client_addr,
                                    Role::Client,
                                    EndpointConfig::default(),
                                    Instant::now(),
                                )
                                .unwrap();
                            clients.insert(k, 0);
                        }
                    }
                }
                DriverEvent::Endpoint(key, Event::Ready) => {
                    let target = 1 + (key % 2) as u32;
                    driver.endpoint(key).unwrap().dial(target).unwrap();
                }
                DriverEvent::Endpoint(key, Event::Dialed { conn_id, .. }) => {
                    driver
                        .endpoint(key)
                        .unwrap()
                        .send(conn_id, &0u32.to_le_bytes())
                        .unwrap();
                }
                DriverEvent::Endpoint(key, Event::Message { conn_id, data })
                    if servers.contains(&key) =>
                {
                    driver.endpoint(key).unwrap().send(conn_id, &data).unwrap();
                }
                DriverEvent::Endpoint(key, Event::Message { conn_id, data }) => {
                    let n = u32::from_le_bytes(data.try_into().unwrap());
                    let done = clients.get_mut(&key).unwrap();
                    assert_eq!(n, *done, "client {key} got round {n}");
                    *done += 1;
                    if *done == ROUNDS {
                        finished += 1;
                        driver.endpoint(key).unwrap().close_vconn(conn_id);
                    } else {
                        driver
                            .endpoint(key)
                            .unwrap()
                            .send(conn_id, &done.to_le_bytes())
                            .unwrap();
                    }
                }
                DriverEvent::Endpoint(_, Event::Accepted { .. } | Event::Closed { .. }) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // One more turn writes the last closes.
    driver.handle_timeout(poll.registry(), Instant::now());
    assert_eq!(driver.len(), CLIENTS + 2);
    let stats = gw.stop().stats();
    assert_eq!(
        stats.frames_from_clients,
        CLIENTS as u64 * u64::from(ROUNDS)
    );
    assert_eq!(
        stats.frames_from_servers,
        CLIENTS as u64 * u64::from(ROUNDS)
    );
}
