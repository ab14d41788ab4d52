//! Circuit breaker: after repeated failures the cloud stops being offered for a while, so a dead
//! endpoint costs one fast refusal instead of a timeout per subtask.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// The half-open trial request is out.
    trial_in_flight: bool,
}

/// Admission of one request by the breaker; while it is the half-open trial, no other request
/// is admitted until it ends (success, failure, or dropped unfinished).
#[derive(Debug)]
pub struct TrialPermit {
    trial_of: Option<Arc<CircuitBreaker>>,
}

impl Drop for TrialPermit {
    fn drop(&mut self) {
        if let Some(breaker) = &self.trial_of {
            breaker.inner.lock().unwrap_or_else(|p| p.into_inner()).trial_in_flight = false;
        }
    }
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

    /// Whether a request would be admitted now (without admitting it).
    pub fn allows_request(&self) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open { .. } => false,
            BreakerState::HalfOpen => !self.inner.lock().unwrap_or_else(|p| p.into_inner()).trial_in_flight,
        }
    }

    /// Admits a request: always while closed, never while open, and one trial at a time when
    /// half-open.
    pub fn try_acquire(self: &Arc<Self>) -> Option<TrialPermit> {
        match self.state() {
            BreakerState::Closed => Some(TrialPermit { trial_of: None }),
            BreakerState::Open { .. } => None,
            BreakerState::HalfOpen => {
                let mut counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                if counters.trial_in_flight {
                    return None;
                }
                counters.trial_in_flight = true;
                Some(TrialPermit { trial_of: Some(self.clone()) })
            }
        }
    }

    pub fn record_success(&self) {
        let mut counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *counters = Counters::default();
    }

    pub fn record_failure(&self) {
        let mut counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        counters.consecutive_failures += 1;
        counters.trial_in_flight = false;
        // A failed trial (half-open) re-opens at once; otherwise open at the threshold.
        if counters.open_until.is_some() || counters.consecutive_failures >= self.config.failure_threshold {
            counters.open_until = Some(Instant::now() + self.config.open_for);
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).consecutive_failures
    }

    /// The state to persist: consecutive failures and, if open, until when (wall clock, since
    /// `Instant`s do not survive a restart).
    pub fn snapshot(&self) -> BreakerSnapshot {
        let counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let open_until = counters.open_until.map(|until| {
            let remaining = until.saturating_duration_since(Instant::now());
            SystemTime::now() + remaining
        });
        BreakerSnapshot {
            consecutive_failures: counters.consecutive_failures,
            open_until_unix_millis: open_until.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64),
        }
    }

    /// Restores a persisted state (an open breaker stays open for what remained of its cool-down).
    pub fn restore(&self, snapshot: &BreakerSnapshot) {
        let mut counters = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        counters.consecutive_failures = snapshot.consecutive_failures;
        counters.open_until = snapshot.open_until_unix_millis.map(|millis| {
            let until = UNIX_EPOCH + Duration::from_millis(millis);
            Instant::now() + until.duration_since(SystemTime::now()).unwrap_or_default()
        });
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakerSnapshot {
    pub consecutive_failures: u32,
    pub open_until_unix_millis: Option<u64>,
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

    #[test]
    fn half_open_admits_one_trial_at_a_time() {
        let breaker = Arc::new(CircuitBreaker::new(BreakerConfig { failure_threshold: 1, open_for: Duration::from_millis(30) }));
        assert!(breaker.try_acquire().is_some() && breaker.try_acquire().is_some(), "closed: everything goes");
        breaker.record_failure();
        assert!(breaker.try_acquire().is_none(), "open: nothing goes");
        std::thread::sleep(Duration::from_millis(40));
        let trial = breaker.try_acquire().expect("half-open: one trial");
        assert!(breaker.try_acquire().is_none() && !breaker.allows_request(), "a second request waits for the trial");
        drop(trial); // abandoned (cancelled) without an outcome: another trial may go
        let trial = breaker.try_acquire().expect("a new trial");
        breaker.record_success();
        drop(trial);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.try_acquire().is_some() && breaker.try_acquire().is_some());
    }

    #[test]
    fn an_open_breaker_survives_a_restart() {
        let config = BreakerConfig { failure_threshold: 1, open_for: Duration::from_secs(60) };
        let before = CircuitBreaker::new(config);
        before.record_failure();
        let saved = serde_json::to_string(&before.snapshot()).unwrap();
        let after = CircuitBreaker::new(config);
        after.restore(&serde_json::from_str(&saved).unwrap());
        assert!(matches!(after.state(), BreakerState::Open { remaining } if remaining > Duration::from_secs(58)));
        assert_eq!(after.consecutive_failures(), 1);
        let expired = BreakerSnapshot { consecutive_failures: 3, open_until_unix_millis: Some(1) };
        after.restore(&expired);
        assert_eq!(after.state(), BreakerState::HalfOpen);
    }
}
