//! Throttling is an answer, not a failure. A store that throttles (AWS `ThrottlingException`,
//! HTTP 429, Google's `RESOURCE_EXHAUSTED`, a Vault rate-limit quota) is asking callers to
//! spread out. A mass start puts thousands of fetches on it at once; if each retries on a fixed
//! schedule they come back together and the store sees a storm. So a throttled call is retried
//! after a uniformly random wait below a bound that doubles each round ("full jitter"), for as
//! long as the run's [`Budget`] allows, rather than [`Budget::ATTEMPTS`] times.

use std::hash::{BuildHasher as _, RandomState};
use std::time::{Duration, Instant};

use crate::Budget;

/// The bound of the first wait; doubled each round.
pub const FIRST_BOUND: Duration = Duration::from_millis(250);
/// The largest bound.
pub const MAX_BOUND: Duration = Duration::from_secs(8);
/// Least time an attempt needs after a wait.
const LEAST_ATTEMPT: Duration = Duration::from_millis(200);

/// The wait before retrying after throttled round `round` (1 for the first), or `None` when the
/// budget has no room for a wait and another attempt.
pub fn wait(budget: &Budget, round: u32) -> Option<Duration> {
    let bound = FIRST_BOUND
        .saturating_mul(2u32.saturating_pow(round.saturating_sub(1).min(16)))
        .min(MAX_BOUND);
    let wait = bound.mul_f64(fraction());
    (budget.left() >= wait + LEAST_ATTEMPT).then_some(wait)
}

/// A uniformly random number in [0, 1): each process's own hash keys (the standard library
/// seeds them from the OS) over the time. Jitter needs spread, not secrecy.
fn fraction() -> f64 {
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_spread_below_a_doubling_bound_and_stop_with_the_budget() {
        let budget = Budget::new(Instant::now() + Duration::from_secs(60));
        for round in 1..=8 {
            let bound = FIRST_BOUND * 2u32.pow(round - 1);
            let waits: Vec<Duration> = (0..200).map(|_| wait(&budget, round).unwrap()).collect();
            assert!(waits.iter().all(|w| *w <= bound.min(MAX_BOUND)));
            // Spread: not all the same, and some in the lower half of the bound.
            assert!(waits.iter().any(|w| *w != waits[0]));
            assert!(waits.iter().any(|w| *w < bound.min(MAX_BOUND) / 2));
        }
        let spent = Budget::new(Instant::now() + Duration::from_millis(400));
        assert_eq!(
            wait(&spent, 1),
            None,
            "no room for an attempt after the wait"
        );
    }
}
