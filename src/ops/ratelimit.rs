//! [`RateLimit`]: at most N events per interval, and a count of those suppressed, so that a log
//! line per message (an undefined route evaluation) stays readable under a flood and still
//! says how much it left out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A fixed-window limiter shared by threads.
#[derive(Debug)]
pub struct RateLimit {
    per_window: u32,
    window: Duration,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u32,
    suppressed: u64,
}

impl RateLimit {
    /// At most `per_window` events every `window`.
    pub fn new(per_window: u32, window: Duration) -> Self {
        RateLimit {
            per_window,
            window,
            state: Mutex::new(Window {
                started: Instant::now(),
                used: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether an event at `now` may be reported: `Some(n)` if so, with the number of events
    /// suppressed since the last one reported (to say so in the line), `None` if not.
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(w.started) >= self.window {
            w.started = now;
            w.used = 0;
        }
        if w.used < self.per_window {
            w.used += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed += 1;
            None
        }
    }

    /// [`RateLimit::allow_at`] now.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_n_per_window_and_counts_the_rest() {
        let limit = RateLimit::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(limit.allow_at(t0), Some(0));
        assert_eq!(limit.allow_at(t0), Some(0));
        assert_eq!(limit.allow_at(t0), None);
        assert_eq!(limit.allow_at(t0 + Duration::from_millis(999)), None);
        // A new window: the first event reports the two suppressed ones.
        assert_eq!(limit.allow_at(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(limit.allow_at(t0 + Duration::from_secs(1)), Some(0));
    }

    #[test]
    fn zero_per_window_allows_nothing() {
        let limit = RateLimit::new(0, Duration::from_secs(1));
        assert_eq!(limit.allow(), None);
    }
}
