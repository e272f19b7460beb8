//! Secret Manager's retry loop with throttling as an answer. Google's loop asks a retry policy
//! whether to go on and, separately, a backoff policy how long to wait; neither alone can tell
//! a throttled call from a failed one and wait out the first with full jitter. So both share one
//! [`Rounds`]: a `RESOURCE_EXHAUSTED` (or a bare HTTP 429) is retried after
//! [`throttle::wait`](nomad_secrets_net::throttle::wait) for as long as the run's budget allows,
//! without using up the [`Budget::ATTEMPTS`] that other failures get (Google's AIP-194 rules).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use google_cloud_gax::backoff_policy::BackoffPolicy;
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::exponential_backoff::ExponentialBackoff;
use google_cloud_gax::retry_policy::{
    Aip194Strict, LimitedAttemptCount, RetryPolicy, RetryPolicyExt as _,
};
use google_cloud_gax::retry_result::RetryResult;
use google_cloud_gax::retry_state::RetryState;
use nomad_secrets_net::{Budget, throttle};

/// What helps when Secret Manager still throttles at the deadline.
pub const THROTTLED_HINT: &str = "the operator's `cache_ttl` makes a node ask once per job and secret (and `cache_max_stale` serves the last value while the store throttles); a longer `deadline` (Nomad 2.x allows 60 s) leaves more room to wait; or raise the project's Secret Manager quota";

/// Whether Secret Manager (or a proxy before it) asks callers to slow down.
pub fn is_throttled(error: &GaxError) -> bool {
    match error.status() {
        Some(status) => status.code == Code::ResourceExhausted,
        None => error.http_status_code() == Some(429),
    }
}

/// The policies of one call: a retry policy and a backoff policy sharing the throttled rounds.
pub fn policies(budget: Budget) -> (ThrottleAware, Backoff) {
    let rounds = Arc::new(Mutex::new(Rounds::default()));
    let retry = ThrottleAware {
        budget,
        rounds: rounds.clone(),
        others: Aip194Strict.with_attempt_limit(Budget::ATTEMPTS),
    };
    (
        retry,
        Backoff {
            rounds,
            others: crate::backoff(),
        },
    )
}

/// What the two policies share.
#[derive(Debug, Default)]
struct Rounds {
    /// Throttled answers so far.
    throttled: u32,
    /// The wait chosen for the throttled answer just seen, taken by the backoff policy.
    wait: Option<Duration>,
}

impl Rounds {
    /// `state` as if the throttled answers had not happened: the attempts that failed
    /// otherwise (at least the one just made), which AIP-194's limit and backoff count.
    fn not_throttled(&self, state: &RetryState) -> RetryState {
        let failed = state.attempt_count.saturating_sub(self.throttled).max(1);
        RetryState::new(state.idempotent)
            .set_start(state.start)
            .set_attempt_count(failed)
    }
}

/// Throttled answers go on while the budget has room; anything else as AIP-194 says, counting
/// only the attempts that were not throttled.
#[derive(Debug)]
pub struct ThrottleAware {
    budget: Budget,
    rounds: Arc<Mutex<Rounds>>,
    others: LimitedAttemptCount<Aip194Strict>,
}

impl RetryPolicy for ThrottleAware {
    fn on_error(&self, state: &RetryState, error: GaxError) -> RetryResult {
        let mut rounds = self.rounds.lock().unwrap_or_else(|e| e.into_inner());
        if is_throttled(&error) {
            rounds.throttled += 1;
            rounds.wait = throttle::wait(&self.budget, rounds.throttled);
            return match rounds.wait {
                Some(_) => RetryResult::Continue(error),
                None => RetryResult::Exhausted(error),
            };
        }
        rounds.wait = None;
        self.others.on_error(&rounds.not_throttled(state), error)
    }
}

/// The throttled answer's full-jitter wait, or the shared budget's backoff.
#[derive(Debug)]
pub struct Backoff {
    rounds: Arc<Mutex<Rounds>>,
    others: ExponentialBackoff,
}

impl BackoffPolicy for Backoff {
    fn on_failure(&self, state: &RetryState) -> Duration {
        let mut rounds = self.rounds.lock().unwrap_or_else(|e| e.into_inner());
        match rounds.wait.take() {
            Some(wait) => wait,
            None => self.others.on_failure(&rounds.not_throttled(state)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use google_cloud_gax::error::rpc::Status;

    use super::*;

    fn status(code: Code) -> GaxError {
        GaxError::service(Status::default().set_code(code))
    }

    fn state(attempts: u32) -> RetryState {
        RetryState::new(true)
            .set_start(Instant::now())
            .set_attempt_count(attempts)
    }

    #[test]
    fn throttling_is_waited_out_past_the_attempts_while_the_budget_has_room() {
        let (retry, backoff) = policies(Budget::new(Instant::now() + Duration::from_secs(60)));
        for attempt in 1..=10 {
            let flow = retry.on_error(&state(attempt), status(Code::ResourceExhausted));
            assert!(
                matches!(flow, RetryResult::Continue(_)),
                "attempt {attempt}"
            );
            // Full jitter below the doubling bound, not the 100 ms..1 s backoff of failures.
            assert!(backoff.on_failure(&state(attempt)) <= throttle::MAX_BOUND);
        }
        // Ten throttled answers used none of the three attempts other failures get.
        for attempt in 11..=12 {
            let flow = retry.on_error(&state(attempt), status(Code::Unavailable));
            assert!(
                matches!(flow, RetryResult::Continue(_)),
                "attempt {attempt}"
            );
            assert!(backoff.on_failure(&state(attempt)) <= Budget::MAX_BACKOFF);
        }
        let flow = retry.on_error(&state(13), status(Code::Unavailable));
        assert!(matches!(flow, RetryResult::Exhausted(_)));
    }

    #[test]
    fn throttling_ends_when_the_budget_has_no_room_and_other_errors_keep_their_rules() {
        let (retry, _) = policies(Budget::new(Instant::now() + Duration::from_millis(400)));
        let flow = retry.on_error(&state(1), status(Code::ResourceExhausted));
        assert!(matches!(flow, RetryResult::Exhausted(_)));
        let (retry, _) = policies(Budget::new(Instant::now() + Duration::from_secs(60)));
        let flow = retry.on_error(&state(1), status(Code::PermissionDenied));
        assert!(matches!(flow, RetryResult::Permanent(_)));
    }

    #[test]
    fn a_bare_429_is_throttling_and_a_429_with_a_status_is_read_by_its_code() {
        let bare = GaxError::http(429, Default::default(), Default::default());
        assert!(is_throttled(&bare));
        assert!(is_throttled(&status(Code::ResourceExhausted)));
        assert!(!is_throttled(&status(Code::Unavailable)));
    }
}
