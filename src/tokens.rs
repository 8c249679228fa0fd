//! The range of mio tokens a driver (the gateway's or the endpoints') may
//! use inside a `Poll` its user owns. Token `start + k` stands for the
//! driver's slot `k`, so telling whose an event is takes a range check.

use mio::Token;

/// The tokens a driver may use: `start .. start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRange {
    /// First token.
    pub start: usize,
    /// Number of tokens.
    pub len: usize,
}

impl TokenRange {
    /// Whether `token` falls in the range.
    pub fn contains(&self, token: Token) -> bool {
        token.0 >= self.start && token.0 - self.start < self.len
    }

    /// The slot `token` stands for, if it falls in the range.
    pub fn slot(&self, token: Token) -> Option<usize> {
        self.contains(token).then(|| token.0 - self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_map_inside_the_range_only() {
        let r = TokenRange { start: 10, len: 5 };
        assert_eq!(r.slot(Token(9)), None);
        assert_eq!(r.slot(Token(10)), Some(0));
        assert_eq!(r.slot(Token(14)), Some(4));
        assert_eq!(r.slot(Token(15)), None);
        assert!(!TokenRange { start: 0, len: 0 }.contains(Token(0)));
    }
}
