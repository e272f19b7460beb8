//! The one way a plugin whose client is async (an SDK's: AWS's, Google's) runs it from the
//! protocol's blocking `fetch` and `check`: [`block_on`], on a current-thread runtime that is
//! shut down without waiting, under a [`Bound`] that says who ends a call still running when
//! the deadline's [`Budget`] is spent.

use std::future::Future;
use std::time::Instant;

use nomad_secrets_protocol::Error;

use crate::Budget;

/// Who ends a future that has not ended by the end of the deadline's [`Budget`].
#[derive(Clone, Copy, Debug)]
pub enum Bound {
    /// [`block_on`] does, at [`Budget::left`] of `deadline`, with the error `timed_out` gives:
    /// for clients whose own timeouts do not bound a whole call (Google's: its retry loop, its
    /// token sources).
    Budget {
        /// The run's deadline.
        deadline: Instant,
        /// The error of a call cut short (a timeout, with what was not reached).
        timed_out: fn() -> Error,
    },
    /// The client does: its own timeouts, set from the same [`Budget`], end every call in time
    /// with an error naming what did not answer (the AWS SDK's operation timeouts), which a cut
    /// here at the same moment would race and replace. The protocol's deadline watches the rest.
    Client,
}

/// Runs `future` on a current-thread runtime (every driver enabled), ended as `bound` says. The
/// runtime is shut down without waiting: a task stuck in a DNS lookup must not keep the process
/// alive.
pub fn block_on<T>(
    future: impl Future<Output = Result<T, Error>>,
    bound: Bound,
) -> Result<T, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::unavailable(format!("cannot start the async runtime: {e}")))?;
    let result = match bound {
        Bound::Client => runtime.block_on(future),
        Bound::Budget {
            deadline,
            timed_out,
        } => {
            let left = Budget::new(deadline).left();
            runtime
                .block_on(async { tokio::time::timeout(left, future).await })
                .unwrap_or_else(|_| Err(timed_out()))
        }
    };
    runtime.shutdown_background();
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nomad_secrets_protocol::ErrorKind;

    use super::*;

    fn late() -> Error {
        Error::new(ErrorKind::Timeout, "late")
    }

    #[test]
    fn a_budget_bound_ends_a_stuck_call_before_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(600);
        let bound = Bound::Budget {
            deadline,
            timed_out: late,
        };
        let stuck = std::future::pending::<Result<(), Error>>();
        let error = block_on(stuck, bound).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
        assert!(Instant::now() + Budget::MARGIN / 2 < deadline);
        assert_eq!(block_on(async { Ok(7) }, bound).unwrap(), 7);
    }

    #[test]
    fn a_client_bound_leaves_the_call_its_own_answer() {
        let call = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err::<(), _>(Error::unavailable("the client's own words"))
        };
        let error = block_on(call, Bound::Client).unwrap_err();
        assert!(error.to_string().contains("own words"), "{error}");
    }
}
