//! Circuit breakers around the dependencies that can go away: S3 and NATS.
//!
//! After `threshold` failures in a row the circuit opens: calls fail at once
//! (the API answers 503 with `Retry-After`) instead of piling up behind
//! timeouts. When the cool-down has passed, one call goes through as a probe
//! (half-open); its success closes the circuit, its failure opens it again.
//! `stowage_circuit_open{dependency}` is 1 while a circuit is open.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::CIRCUIT_OPEN;

/// Failures in a row that open a circuit.
pub const THRESHOLD: u32 = 5;
/// How long an open circuit refuses calls before it lets a probe through.
pub const COOL_DOWN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is out; every other call is refused until it returns.
    HalfOpen,
}

/// The circuit is open: retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{dependency} is failing; calls are refused for {retry_after:?}")]
pub struct Open {
    pub dependency: &'static str,
    pub retry_after: Duration,
}

#[derive(Debug)]
pub struct Circuit {
    dependency: &'static str,
    threshold: u32,
    cool_down: Duration,
    state: Mutex<State>,
}

impl Circuit {
    pub fn new(dependency: &'static str) -> Self {
        Self::with(dependency, THRESHOLD, COOL_DOWN)
    }

    pub fn with(dependency: &'static str, threshold: u32, cool_down: Duration) -> Self {
        metrics::gauge!(CIRCUIT_OPEN, "dependency" => dependency).set(0.0);
        Self {
            dependency,
            threshold,
            cool_down,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// May a call go ahead now?
    pub fn allow(&self) -> Result<(), Open> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                Ok(())
            }
            State::Open { until } => {
                Err(self.refusal(until.saturating_duration_since(Instant::now())))
            }
            State::HalfOpen => Err(self.refusal(Duration::from_secs(1))),
        }
    }

    /// Records how an allowed call went.
    pub fn record(&self, ok: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let next = match (*state, ok) {
            (State::Closed { .. }, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (State::HalfOpen, true) | (State::Open { .. }, true) => {
                tracing::info!(
                    dependency = self.dependency,
                    "circuit closed: the dependency answers again"
                );
                State::Closed { failures: 0 }
            }
            (_, false) => {
                if !matches!(*state, State::Open { .. }) {
                    tracing::warn!(
                        dependency = self.dependency,
                        cool_down = ?self.cool_down,
                        "circuit open: calls fail fast until a probe succeeds"
                    );
                }
                State::Open {
                    until: Instant::now() + self.cool_down,
                }
            }
        };
        *state = next;
        let open = matches!(next, State::Open { .. } | State::HalfOpen);
        metrics::gauge!(CIRCUIT_OPEN, "dependency" => self.dependency).set(if open {
            1.0
        } else {
            0.0
        });
    }

    pub fn is_open(&self) -> bool {
        !matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            State::Closed { .. }
        )
    }

    fn refusal(&self, retry_after: Duration) -> Open {
        Open {
            dependency: self.dependency,
            retry_after: Ord::max(retry_after, Duration::from_secs(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_probes_once_and_closes_on_success() {
        let c = Circuit::with("test", 3, Duration::from_millis(50));
        for _ in 0..2 {
            c.allow().unwrap();
            c.record(false);
        }
        assert!(!c.is_open(), "two failures keep it closed");
        c.allow().unwrap();
        c.record(true);
        for _ in 0..3 {
            c.allow().unwrap();
            c.record(false);
        }
        assert!(c.is_open());
        let refused = c.allow().unwrap_err();
        assert_eq!(refused.dependency, "test");
        assert!(refused.retry_after >= Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(60));
        // Half-open: one probe, the others still refused.
        c.allow().unwrap();
        assert!(c.allow().is_err());
        c.record(false);
        assert!(c.is_open(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        c.allow().unwrap();
        c.record(true);
        assert!(!c.is_open());
        assert!(c.allow().is_ok());
    }
}
