//! Parsers for flag values in the notation Go's `flag` package and the Go
//! `fastway` accept: durations like `1m30s`, sizes like `512K`, booleans.

use std::time::Duration;

/// Parses a Go duration: one or more `<number><unit>` parts, units `ns`,
/// `us` (or `µs`), `ms`, `s`, `m`, `h`; numbers may have a fraction
/// (`1.5h`). A bare `0` is zero. Negative durations are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (use Go notation, e.g. 30s, 1m30s, 500ms)");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * nanos_per;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Parses a byte count, optionally with a suffix: `B`, `K`/`KB`, `M`/`MB`,
/// `G`/`GB` (powers of 1024, any case).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?} (use a byte count, e.g. 65536, 64K, 1M)");
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let mult: u64 = match s[digits..].to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Parses a boolean as Go's `strconv.ParseBool` does.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?} (use true or false)")),
    }
}

/// Parses a non-negative whole number.
pub fn parse_count(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("invalid number {s:?} (use a whole number)"))
}

/// Writes a byte count as `parse_size` reads it, with the largest suffix
/// that divides it (`512K`, `1M`, `64`).
pub fn show_size(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % (1 << 20) == 0 => format!("{}M", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}K", n >> 10),
        n => n.to_string(),
    }
}

/// Writes a duration as `parse_duration` reads it: whole seconds as `30s`,
/// anything finer in milliseconds, microseconds or nanoseconds.
pub fn show_duration(d: Duration) -> String {
    match d.as_nanos() {
        n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}us", n / 1_000),
        n => format!("{n}ns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_values_read_back() {
        for n in [0, 64, 1000, 2048, 512 * 1024, 1 << 20, 64 << 20, 1536] {
            assert_eq!(parse_size(&show_size(n)), Ok(n), "{n}");
        }
        assert_eq!(show_size(512 * 1024), "512K");
        assert_eq!(show_size(64 << 20), "64M");
        for d in [
            Duration::from_secs(30),
            Duration::from_secs(60),
            Duration::from_millis(1500),
            Duration::from_micros(300),
            Duration::from_nanos(7),
        ] {
            assert_eq!(parse_duration(&show_duration(d)), Ok(d), "{d:?}");
        }
        assert_eq!(show_duration(Duration::from_secs(60)), "60s");
    }

    #[test]
    fn go_durations() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("30s"), Duration::from_secs(30));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("2h"), Duration::from_secs(7200));
        assert_eq!(d("1.5h"), Duration::from_secs(5400));
        assert_eq!(d("300us"), Duration::from_micros(300));
        assert_eq!(d("10ns"), Duration::from_nanos(10));
        assert_eq!(d("0"), Duration::ZERO);
        for bad in ["", "30", "s", "-1s", "1x", "1m30", "1..5s", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512K"), Ok(524288));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64B"), Ok(64));
        assert_eq!(parse_size("2048"), Ok(2048));
        for bad in ["", "K", "1.5K", "12Q", "-1", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("yes").is_err());
    }
}
