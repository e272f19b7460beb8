//! AWS throttling as an answer: a call AWS throttles is made again after a full-jitter wait
//! (`nomad_secrets_net::throttle`) for as long as the run's budget allows. The SDK's own
//! retries (at most `Budget::ATTEMPTS`, for throttling too) run inside each round.

use std::future::Future;
use std::time::Instant;

use aws_smithy_async::rt::sleep::{AsyncSleep as _, TokioSleep};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use nomad_secrets_net::{Budget, throttle};

/// The error codes AWS services answer when they throttle.
pub const CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
];

/// Whether `error` is AWS throttling the call.
pub fn is_throttling<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    matches!(error, SdkError::ServiceError(_)) && error.code().is_some_and(|c| CODES.contains(&c))
}

/// `call()`, made again after a full-jitter wait while AWS throttles it and the budget of a run
/// ending at `deadline` has room.
pub async fn patiently<T, E, R, F, Fut>(deadline: Instant, mut call: F) -> Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
{
    let budget = Budget::new(deadline);
    let mut round = 1;
    loop {
        match call().await {
            Err(error) if is_throttling(&error) => match throttle::wait(&budget, round) {
                Some(wait) => {
                    TokioSleep::new().sleep(wait).await;
                    round += 1;
                }
                None => return Err(error),
            },
            other => return other,
        }
    }
}
