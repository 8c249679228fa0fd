//! A rate limit for log lines that peers can cause.
//!
//! Whatever a flood of misbehaving peers does, the gateway writes at most
//! [`LINES_PER_WINDOW`] such lines per [`WINDOW`]; the lines over the limit
//! are counted, and once the window is over one line says how many were
//! left out. Lines that only matter when debugging (`debug` level) are not
//! limited: they are off unless asked for. Time is passed in.

use std::time::{Duration, Instant};

/// Lines allowed per window.
pub(super) const LINES_PER_WINDOW: u32 = 20;
/// The length of a window.
pub(super) const WINDOW: Duration = Duration::from_secs(1);

/// Counts the lines of the current window.
#[derive(Debug, Default)]
pub(crate) struct LogLimit {
    started: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogLimit {
    /// Whether one more line may be written at `now`; a line that may not
    /// is counted as suppressed.
    pub(super) fn allow(&mut self, now: Instant) -> bool {
        self.roll(now);
        if self.used < LINES_PER_WINDOW {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Starts a new window if the current one is over, first saying how
    /// many lines it left out (if any). Called every turn.
    pub(super) fn roll(&mut self, now: Instant) {
        match self.started {
            Some(at) if now.saturating_duration_since(at) < WINDOW => {}
            _ => {
                if let Some(n) = self.end_window() {
                    log::warn!("suppressed {n} similar log lines in the last {WINDOW:?}");
                }
                self.started = Some(now);
            }
        }
    }

    /// When the suppressed lines of this window are to be reported, if
    /// there are any.
    pub(super) fn report_due(&self) -> Option<Instant> {
        match self.started {
            Some(at) if self.suppressed > 0 => Some(at + WINDOW),
            _ => None,
        }
    }

    /// Ends the window: the count it suppressed, if any.
    fn end_window(&mut self) -> Option<u64> {
        self.used = 0;
        let n = std::mem::take(&mut self.suppressed);
        (n > 0).then_some(n)
    }

    /// Lines suppressed so far in this window.
    #[cfg(test)]
    pub(crate) fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_a_bounded_number_of_lines_per_window() {
        let t0 = Instant::now();
        let mut l = LogLimit::default();
        let allowed = (0..4000).filter(|_| l.allow(t0)).count();
        assert_eq!(allowed, LINES_PER_WINDOW as usize);
        assert_eq!(l.suppressed(), 4000 - u64::from(LINES_PER_WINDOW));
        assert_eq!(l.report_due(), Some(t0 + WINDOW));
        // Still the same window a moment later.
        assert!(!l.allow(t0 + WINDOW / 2));
        // A new window: the count is reported and starts again.
        assert!(l.allow(t0 + WINDOW));
        assert_eq!(l.suppressed(), 0);
        assert_eq!(l.report_due(), None);
        let mut fresh = LogLimit::default();
        fresh.roll(t0);
        assert_eq!(fresh.end_window(), None, "nothing suppressed, nothing said");
    }
}
