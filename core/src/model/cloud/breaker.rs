//! Circuit breaker: after repeated failures the cloud stops being offered for a while, so a dead
//! endpoint costs one fast refusal instead of a timeout per subtask.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::BreakerConfig;

/// What the router sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests go through.
    Closed,
    /// Requests are refused for `remaining`.
    Open { remaining: Duration },
    /// The cool-down is over: the next request is a trial.
    HalfOpen,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self { config, inner: Mutex::new(Counters::default()) }
    }

    pub fn state(&self) -> BreakerState {
        let counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match counters.open_until {
            None => BreakerState::Closed,
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(remaining) if !remaining.is_zero() => BreakerState::Open { remaining },
                _ => BreakerState::HalfOpen,
            },
        }
    }

    /// Whether a request may go out now.
    pub fn allows_request(&self) -> bool {
        !matches!(self.state(), BreakerState::Open { .. })
    }

    pub fn record_success(&self) {
        let mut counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *counters = Counters::default();
    }

    pub fn record_failure(&self) {
        let mut counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        counters.consecutive_failures += 1;
        // A failed trial (half-open) re-opens at once; otherwise open at the threshold.
        if counters.open_until.is_some() || counters.consecutive_failures >= self.config.failure_threshold {
            counters.open_until = Some(Instant::now() + self.config.open_for);
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).consecutive_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_at_threshold_half_opens_after_cool_down_and_closes_on_success() {
        let breaker = CircuitBreaker::new(BreakerConfig { failure_threshold: 2, open_for: Duration::from_millis(50) });
        breaker.record_failure();
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record_failure();
        assert!(matches!(breaker.state(), BreakerState::Open { .. }));
        assert!(!breaker.allows_request());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.allows_request());
        breaker.record_failure(); // the trial failed: open again at once
        assert!(matches!(breaker.state(), BreakerState::Open { .. }));
        std::thread::sleep(Duration::from_millis(60));
        breaker.record_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.consecutive_failures(), 0);
    }
}
