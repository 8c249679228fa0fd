//! Arbitrary bytes as the start of a connection behind a load balancer:
//! the PROXY header parser never panics, never claims more bytes than it
//! was given, judges a whole header the same with or without what follows
//! it, and calls every shorter cut of a header it accepts incomplete.

use uniway::gateway::proxy::{parse, Parsed};

/// One fuzz input: panics if a promise is broken. Returns the length of
/// the header accepted, if one was.
pub fn run(data: &[u8]) -> Option<usize> {
    let whole = parse(data);
    let Parsed::Header { len, source } = &whole else {
        return None;
    };
    assert!(
        *len > 0 && *len <= data.len(),
        "{len} of {} bytes",
        data.len()
    );
    let alone = parse(&data[..*len]);
    assert_eq!(
        alone,
        Parsed::Header {
            len: *len,
            source: *source
        }
    );
    for cut in 0..*len {
        assert_eq!(
            parse(&data[..cut]),
            Parsed::Incomplete,
            "cut at {cut} of {len}"
        );
    }
    Some(*len)
}
