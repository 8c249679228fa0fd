//! Tests of the sans-IO endpoint: dial matching, messages, the server
//! handshake, bad input from the gateway, keep-alive.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn bytes(cmds: &[Command]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        c.encode(&mut out);
    }
    out
}

fn events(e: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

#[test]
fn replies_match_the_oldest_dial_per_remote() {
    let now = Instant::now();
    let mut e = Endpoint::new(Role::Client, EndpointConfig::default(), now);
    assert_eq!(events(&mut e), vec![Event::Ready]);
    let a1 = e.dial(1).unwrap();
    let b = e.dial(2).unwrap();
    let a2 = e.dial(1).unwrap();
    assert_eq!(
        e.take_output(),
        bytes(&[
            Command::Dial { remote_id: 1 },
            Command::Dial { remote_id: 2 },
            Command::Dial { remote_id: 1 },
        ])
    );
    let input = bytes(&[
        Command::Accept {
            conn_id: 10,
            remote_id: 1,
        },
        Command::Refuse { remote_id: 2 },
        Command::Accept {
            conn_id: 11,
            remote_id: 1,
        },
    ]);
    // Byte by byte, to exercise partial frames.
    for b in &input {
        e.receive(std::slice::from_ref(b)).unwrap();
    }
    assert_eq!(
        events(&mut e),
        vec![
            Event::Dialed {
                dial: a1,
                conn_id: 10,
                remote_id: 1
            },
            Event::DialRefused {
                dial: b,
                remote_id: 2
            },
            Event::Dialed {
                dial: a2,
                conn_id: 11,
                remote_id: 1
            },
        ]
    );
    assert_eq!(e.vconn_count(), 2);
    assert_eq!(e.pending_dials(), 0);
}

#[test]
fn messages_closes_and_sends() {
    let now = Instant::now();
    let mut e = Endpoint::new(Role::Client, EndpointConfig::default(), now);
    e.receive(&bytes(&[Command::Connect {
        conn_id: 5,
        remote_id: 9,
    }]))
    .unwrap();
    let mut frame = Vec::new();
    wire::encode_frame(&mut frame, 5, b"hi");
    wire::encode_frame(&mut frame, 6, b"not mine");
    e.receive(&frame).unwrap();
    e.send(5, b"yo").unwrap();
    assert_eq!(e.send(6, b"x"), Err(SendError::NotOpen(6)));
    let big = vec![0; e.cfg.max_message() + 1];
    assert!(matches!(e.send(5, &big), Err(SendError::TooLarge { .. })));
    e.receive(&bytes(&[Command::Close { conn_id: 5 }])).unwrap();
    assert_eq!(
        events(&mut e)[1..],
        [
            Event::Accepted {
                conn_id: 5,
                remote_id: 9
            },
            Event::Message {
                conn_id: 5,
                data: b"hi".to_vec()
            },
            Event::Closed { conn_id: 5 },
        ]
    );
    assert_eq!(e.send(5, b"late"), Err(SendError::NotOpen(5)));
}

#[test]
fn server_handshake_answers_and_confirms_with_a_ping() {
    let now = Instant::now();
    let cfg = EndpointConfig {
        server_id: 3,
        auth_key: b"k".to_vec(),
        ..EndpointConfig::default()
    };
    let mut e = Endpoint::new(Role::Server, cfg, now);
    assert!(!e.is_ready());
    let challenge = Challenge([9; 8]);
    e.receive(&challenge.0[..5]).unwrap();
    assert!(e.output().is_empty());
    e.receive(&challenge.0[5..]).unwrap();
    let mut expect = challenge.respond(b"k", 3).to_bytes().to_vec();
    Command::Ping.encode(&mut expect);
    assert_eq!(e.take_output(), expect);
    e.receive(&bytes(&[Command::Ping])).unwrap();
    assert!(e.is_ready());
    assert_eq!(events(&mut e), vec![Event::Ready]);
}

#[test]
fn hang_up_during_handshake_is_a_rejection() {
    let now = Instant::now();
    let mut e = Endpoint::new(Role::Server, EndpointConfig::default(), now);
    e.receive(&[0; 8]).unwrap();
    assert_eq!(e.disconnected(), EndpointError::HandshakeRejected);
    assert_eq!(e.dial(1), Err(EndpointError::HandshakeRejected));
}

#[test]
fn bad_input_from_the_gateway_fails_the_endpoint() {
    let now = Instant::now();
    let mut e = Endpoint::new(Role::Client, EndpointConfig::default(), now);
    let d = e.dial(1).unwrap();
    e.receive(&bytes(&[Command::Connect {
        conn_id: 1,
        remote_id: 1,
    }]))
    .unwrap();
    let err = e
        .receive(&bytes(&[Command::Dial { remote_id: 1 }]))
        .unwrap_err();
    assert!(matches!(
        err,
        EndpointError::Command(CommandError::Forbidden { .. })
    ));
    let evs = events(&mut e);
    assert!(evs.contains(&Event::DialFailed { dial: d }));
    assert!(evs.contains(&Event::Closed { conn_id: 1 }));
    let mut e = Endpoint::new(Role::Client, EndpointConfig::default(), now);
    let err = e.receive(&bytes(&[Command::Accept {
        conn_id: 1,
        remote_id: 4,
    }]));
    assert_eq!(err, Err(EndpointError::UnexpectedReply { remote_id: 4 }));
}

#[test]
fn keep_alive_pings_and_the_callback_decides() {
    let t0 = Instant::now();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let cfg = EndpointConfig {
        ping_interval: Some(Duration::from_secs(10)),
        ping_timeout: Some(Duration::from_secs(5)),
        timeout_callback: Some(Arc::new(move || c2.fetch_add(1, Ordering::SeqCst) == 0)),
        ..EndpointConfig::default()
    };
    let mut e = Endpoint::new(Role::Client, cfg, t0);
    assert_eq!(e.deadline(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(e.poll_timeout(t0), Some(Duration::from_secs(10)));
    assert_eq!(
        e.poll_timeout(t0 + Duration::from_secs(11)),
        Some(Duration::ZERO)
    );
    e.handle_timeout(t0 + Duration::from_secs(10)).unwrap();
    assert_eq!(e.take_output(), bytes(&[Command::Ping]));
    // Answered in time: no callback.
    e.receive(&bytes(&[Command::Ping])).unwrap();
    e.handle_timeout(t0 + Duration::from_secs(20)).unwrap();
    // Not answered: the callback says keep (first call)...
    e.handle_timeout(t0 + Duration::from_secs(25)).unwrap();
    assert!(events(&mut e).contains(&Event::PingTimeout { kept: true }));
    // ...then close (second call).
    e.handle_timeout(t0 + Duration::from_secs(30)).unwrap();
    let err = e.handle_timeout(t0 + Duration::from_secs(35)).unwrap_err();
    assert_eq!(err, EndpointError::PingTimeout);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A server endpoint past its handshake, with vconns 5 and 6 open.
fn server_with_vconns(probe: bool) -> Endpoint {
    let cfg = EndpointConfig {
        server_id: 3,
        auth_key: b"k".to_vec(),
        probe_features: probe,
        max_packet: 100,
        ..EndpointConfig::default()
    };
    let mut e = Endpoint::new(Role::Server, cfg, Instant::now());
    let challenge = Challenge([9; 8]);
    e.receive(&challenge.0).unwrap();
    let mut expect = challenge.respond(b"k", 3).to_bytes().to_vec();
    Command::Ping.encode(&mut expect);
    if probe {
        Command::Dial { remote_id: 0 }.encode(&mut expect);
    }
    assert_eq!(e.take_output(), expect);
    e.receive(&bytes(&[
        Command::Ping,
        Command::Connect {
            conn_id: 5,
            remote_id: 40,
        },
        Command::Connect {
            conn_id: 6,
            remote_id: 41,
        },
    ]))
    .unwrap();
    e
}

#[test]
fn fan_out_waits_for_the_gateway_to_say_it_supports_it() {
    let mut e = server_with_vconns(true);
    // Not answered yet: nothing is sent.
    assert_eq!(e.multicast(&[5], b"x"), Err(SendError::Unsupported));
    assert_eq!(e.features(), None);
    e.receive(&bytes(&[Command::Features {
        bits: FEATURE_GROUPS,
    }]))
    .unwrap();
    assert!(events(&mut e).contains(&Event::Features {
        dial: DialId(0),
        bits: FEATURE_GROUPS
    }));
    assert!(e.fan_out_supported());
    assert!(e.output().is_empty());

    e.multicast(&[5, 6], b"Hi").unwrap();
    e.join(7, &[5, 6]).unwrap();
    e.leave(7, &[6, 99]).unwrap(); // 99 is not open: skipped
    e.dissolve(7).unwrap();
    e.send_to_group(7, b"Hi", &[5]).unwrap();
    let mut expect = Vec::new();
    wire::encode_multicast(&mut expect, &[5, 6], b"Hi");
    wire::encode_join(&mut expect, 7, &[5, 6]);
    wire::encode_leave(&mut expect, 7, &[6]);
    wire::encode_leave(&mut expect, 7, &[]);
    wire::encode_group_send(&mut expect, 7, &[5], b"Hi");
    assert_eq!(e.take_output(), expect);

    // Conn IDs that are not open, and frames over MaxPacket, are refused
    // before anything is queued.
    assert_eq!(e.multicast(&[5, 8], b"x"), Err(SendError::NotOpen(8)));
    assert_eq!(e.join(7, &[9]), Err(SendError::NotOpen(9)));
    // Length 4 + 1 + 4 + 2 * 4 + 84 = 101 > 100.
    assert!(matches!(
        e.multicast(&[5, 6], &[0; 84]),
        Err(SendError::TooLarge { len: 84, max: 83 })
    ));
    e.multicast(&[5, 6], &[0; 83]).unwrap();
    assert!(!e.output().is_empty());

    // A join the gateway refused is reported.
    e.receive(&bytes(&[Command::JoinRefused {
        group: 7,
        conn_id: 6,
    }]))
    .unwrap();
    assert_eq!(
        events(&mut e),
        vec![Event::JoinRefused {
            group: 7,
            conn_id: 6
        }]
    );
}

#[test]
fn a_gateway_without_the_extension_refuses_the_probe_and_nothing_is_sent() {
    let mut e = server_with_vconns(true);
    e.receive(&bytes(&[Command::Refuse { remote_id: 0 }]))
        .unwrap();
    assert!(events(&mut e).contains(&Event::Features {
        dial: DialId(0),
        bits: 0
    }));
    assert_eq!(e.features(), Some(0));
    assert_eq!(e.send_to_group(1, b"x", &[]), Err(SendError::Unsupported));
    assert!(e.output().is_empty());
    // Without the option, no probe goes out at all.
    let mut quiet = server_with_vconns(false);
    assert_eq!(quiet.features(), None);
    assert!(quiet.take_output().is_empty());
    // A client may not use fan-out even if it were told the bits.
    let mut c = Endpoint::new(Role::Client, EndpointConfig::default(), Instant::now());
    assert_eq!(c.multicast(&[], b""), Err(SendError::Unsupported));
    assert!(
        c.receive(&bytes(&[Command::Features { bits: 1 }])).is_err(),
        "an answer to no probe"
    );
}
