//! The worked example of `docs/protocol.md` §7, byte for byte, and the
//! handshake and resume paths of two sessions against each other.

use std::io::IoSlice;

use rc4::{KeyInit, Rc4, StreamCipher};

use super::*;
use crate::wire::Command;

const CLIENT_PRIVATE: u64 = 0x0123_4567_89ab_cdef;
const GATEWAY_PRIVATE: u64 = 0x0fed_cba9_8765_4321;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

fn on() -> SnetSettings {
    SnetSettings {
        encrypt: true,
        buffer: 64,
    }
}

#[test]
fn rc4_published_vector() {
    let mut data = *b"Plaintext";
    Rc4::new_from_slice(b"Key")
        .unwrap()
        .apply_keystream(&mut data);
    assert_eq!(data.to_vec(), hex("bb f3 16 e8 d9 40 af 0a d3"));
    let mut data = *b"Attack at dawn";
    Rc4::new_from_slice(b"Secret")
        .unwrap()
        .apply_keystream(&mut data);
    assert_eq!(
        data.to_vec(),
        hex("45 a0 1f 64 5f c3 5b 38 35 52 54 4b 9b f5")
    );
}

#[test]
fn worked_example_byte_for_byte() {
    let req = Session::request(CLIENT_PRIVATE);
    let mut want = hex("00 00 00 00 00 00 00 00 81 a1 a7 f4 74 ea 5f 44");
    want.extend([0u8; 24]);
    assert_eq!(req.to_vec(), want);
    let Request::New { public } = Request::parse(&req).unwrap() else {
        panic!("not a new-stream request");
    };
    assert_eq!(public, 0x445f_ea74_f4a7_a181);

    let (mut gw, reply) = Session::accept(1, public, GATEWAY_PRIVATE, on()).unwrap();
    assert_eq!(gw.key().to_vec(), hex("ef 25 a4 f4 e7 18 f2 77"));
    assert_eq!(
        reply.to_vec(),
        hex("e9 66 cb 2d 79 93 ed 0a 77 a0 64 1c c6 1e f3 4b")
    );
    let mut client = Session::connect(CLIENT_PRIVATE, &reply, on()).unwrap();
    assert_eq!(client.id(), 1);

    // Ping from the gateway, after the 8 keystream bytes of the ID.
    let ping = Command::Ping.to_bytes();
    assert_eq!(ping.len(), 9);
    assert_eq!(gw.commit(&[IoSlice::new(&ping)]), 9);
    let wire = gw.unsent().concat();
    assert_eq!(wire, hex("e0 00 a2 cc 7a 83 b7 84 81"));
    gw.sent(9);
    let mut got = wire.clone();
    client.received(&mut got);
    assert_eq!(got, &ping[..]);

    // Dial(1) from the client, from the start of its keystream.
    let dial = Command::Dial { remote_id: 1 }.to_bytes();
    assert_eq!(dial.len(), 13);
    assert_eq!(client.commit(&[IoSlice::new(&dial)]), 13);
    let wire = client.unsent().concat();
    assert_eq!(wire, hex("7f a0 64 1c c6 1e f3 4b e5 01 a2 cc 7a"));
    client.sent(13);
    let mut got = wire;
    gw.received(&mut got);
    assert_eq!(got, &dial[..]);

    let resume = client.resume_request();
    assert_eq!(
        resume.to_vec(),
        hex("01 00 00 00 00 00 00 00 0d 00 00 00 00 00 00 00
             09 00 00 00 00 00 00 00 fd 67 e6 de 27 7e 7c a0
             7a d7 ff db 4b f8 9e c9")
    );
    let Request::Resume(r) = Request::parse(&resume).unwrap() else {
        panic!("not a reconnect");
    };
    assert_eq!((r.id, r.write_count, r.read_count), (1, 13, 9));
    assert_eq!(gw.check(&r), Ok(()));
}

#[test]
fn zero_public_keys_are_refused_both_ways() {
    assert_eq!(
        Request::parse(&[0; REQUEST_LEN]),
        Err(SnetError::ZeroPublicKey)
    );
    assert_eq!(
        Session::accept(1, 0, GATEWAY_PRIVATE, on()).err(),
        Some(SnetError::ZeroPublicKey)
    );
    assert_eq!(
        Session::connect(CLIENT_PRIVATE, &[0; REPLY_LEN], on()).err(),
        Some(SnetError::ZeroPublicKey)
    );
}

#[test]
fn a_wrong_digest_is_refused() {
    let public = dh64::public_key(CLIENT_PRIVATE);
    let (gw, reply) = Session::accept(7, public, GATEWAY_PRIVATE, on()).unwrap();
    let client = Session::connect(CLIENT_PRIVATE, &reply, on()).unwrap();
    let mut req = client.resume_request();
    req[30] ^= 1;
    let Ok(Request::Resume(r)) = Request::parse(&req) else {
        panic!("not a reconnect");
    };
    assert_eq!(gw.check(&r), Err(SnetError::BadDigest));
    // Changing the counters breaks the digest too.
    let mut req = client.resume_request();
    req[8] = 99;
    let Ok(Request::Resume(r)) = Request::parse(&req) else {
        panic!("not a reconnect");
    };
    assert_eq!(gw.check(&r), Err(SnetError::BadDigest));
}

/// Both sides write, part of it is lost with the link, and a resume
/// resends exactly what each side missed.
#[test]
fn resume_resends_exactly_what_was_missed() {
    for encrypt in [false, true] {
        let settings = SnetSettings {
            encrypt,
            buffer: 32,
        };
        let public = dh64::public_key(CLIENT_PRIVATE);
        let (mut gw, reply) = Session::accept(3, public, GATEWAY_PRIVATE, settings).unwrap();
        let mut cl = Session::connect(CLIENT_PRIVATE, &reply, settings).unwrap();

        // The gateway sends 20 bytes; the client receives 12 of them.
        gw.commit(&[IoSlice::new(b"0123456789abcdefghij")]);
        let wire = gw.unsent().concat();
        gw.sent(20);
        let mut got = wire[..12].to_vec();
        cl.received(&mut got);
        assert_eq!(got, b"0123456789ab");
        // The client commits 10, of which 4 reach the link and arrive.
        cl.commit(&[IoSlice::new(b"ABCDEFGHIJ")]);
        let wire_c = cl.unsent().concat();
        cl.sent(4);
        let mut got_c = wire_c[..4].to_vec();
        gw.received(&mut got_c);
        assert_eq!(got_c, b"ABCD");

        // Reconnect.
        let Ok(Request::Resume(r)) = Request::parse(&cl.resume_request()) else {
            panic!("not a reconnect");
        };
        assert_eq!((r.write_count, r.read_count), (10, 12));
        gw.check(&r).unwrap();
        gw.resume(r.write_count, r.read_count).unwrap();
        let reply = gw.resume_reply();
        let w = u64::from_le_bytes(reply[..8].try_into().unwrap());
        let rd = u64::from_le_bytes(reply[8..].try_into().unwrap());
        assert_eq!((w, rd), (20, 4));
        cl.resume(w, rd).unwrap();

        let mut rest = gw.unsent().concat();
        cl.received(&mut rest);
        assert_eq!(rest, b"cdefghij");
        let mut rest_c = cl.unsent().concat();
        gw.received(&mut rest_c);
        assert_eq!(rest_c, b"EFGHIJ");
    }
}

#[test]
fn impossible_counters_fail_the_resume() {
    let public = dh64::public_key(CLIENT_PRIVATE);
    let (mut gw, _) = Session::accept(3, public, GATEWAY_PRIVATE, on()).unwrap();
    gw.commit(&[IoSlice::new(&[1; 40])]);
    gw.sent(40);
    let mut got = [0u8; 5];
    gw.received(&mut got);
    // The client says it read more than was sent.
    assert!(matches!(
        gw.resume(5, 41),
        Err(SnetError::Rewind(RewindError::ReadMoreThanSent { .. }))
    ));
    // ... or wrote less than the gateway read.
    assert!(matches!(
        gw.resume(4, 40),
        Err(SnetError::WroteLessThanRead { .. })
    ));
    // ... or misses more than the 64-byte ring keeps.
    gw.commit(&[IoSlice::new(&[2; 64])]);
    gw.sent(64);
    assert!(matches!(
        gw.resume(5, 10),
        Err(SnetError::Rewind(RewindError::NotInRing { .. }))
    ));
    assert_eq!(gw.resume(5, 40), Ok(()));
}
