//! The invocation's deadline, for the calls a request makes on its way: each Stripe attempt
//! is bounded by what is left, and no retry starts that cannot end in time. Lambda gives the
//! deadline with each invocation; a task-local carries it from the request to the gateway
//! and the store, so no signature in between has to. An AWS SDK call (DynamoDB, KMS, SQS),
//! retries and backoff included, is cut at it too ([`WithinDeadline`]). Outside Lambda
//! (tools, the local server, tests without one) there is none, and only each call's own
//! timeout applies.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::SdkError;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Kept back from Lambda's deadline to answer, and log, before Lambda stops the function.
pub const RESERVE: Duration = Duration::from_millis(500);

/// Runs `work` with `deadline` as the time its outbound calls must end by.
pub async fn scope<F: Future>(deadline: Option<Instant>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, work).await,
        None => work.await,
    }
}

/// The instant of Lambda's deadline (milliseconds since the epoch), less [`RESERVE`];
/// `None` for 0, which is what a request outside Lambda carries.
pub fn from_lambda(deadline_ms: u64) -> Option<Instant> {
    if deadline_ms == 0 {
        return None;
    }
    let now_ms = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_millis(),
    )
    .ok()?;
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(RESERVE);
    Some(Instant::now() + left)
}

/// What is left until the deadline; `None` when there is none.
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// `timeout`, no longer than what is left.
pub fn cap(timeout: Option<Duration>) -> Option<Duration> {
    match (timeout, remaining()) {
        (Some(timeout), Some(left)) => Some(timeout.min(left)),
        (timeout, left) => timeout.or(left),
    }
}

/// Whether `needed` still fits before the deadline (always, without one).
pub fn allows(needed: Duration) -> bool {
    remaining().is_none_or(|left| left >= needed)
}

/// An AWS SDK call (its attempts, retries and backoff) cut at the invocation's deadline:
/// past it, the call ends as the SDK's own timeout would, [`SdkError::TimeoutError`], which
/// the store answers 503 with `Retry-After`. Without a deadline the call runs as it is.
pub trait WithinDeadline<T, E, R>: Future<Output = Result<T, SdkError<E, R>>> + Sized {
    fn within_deadline(self) -> impl Future<Output = Result<T, SdkError<E, R>>> {
        async move {
            match remaining() {
                None => self.await,
                Some(left) => tokio::time::timeout(left, self).await.unwrap_or_else(|_| {
                    Err(SdkError::timeout_error(
                        "the call did not end before the invocation's deadline",
                    ))
                }),
            }
        }
    }
}

impl<F, T, E, R> WithinDeadline<T, E, R> for F where F: Future<Output = Result<T, SdkError<E, R>>> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_capped_by_what_is_left_and_only_inside_a_deadline() {
        assert_eq!(remaining(), None);
        assert_eq!(
            cap(Some(Duration::from_secs(8))),
            Some(Duration::from_secs(8))
        );
        assert!(allows(Duration::from_secs(3600)));
        assert_eq!(from_lambda(0), None);

        let soon = Instant::now() + Duration::from_secs(2);
        scope(Some(soon), async {
            let left = remaining().unwrap();
            assert!(left <= Duration::from_secs(2) && left > Duration::from_secs(1));
            assert!(cap(Some(Duration::from_secs(8))).unwrap() <= Duration::from_secs(2));
            assert_eq!(
                cap(Some(Duration::from_millis(10))),
                Some(Duration::from_millis(10))
            );
            assert!(allows(Duration::from_millis(500)));
            assert!(!allows(Duration::from_secs(3)));
        })
        .await;

        // Lambda's deadline in 10 s: what is left, less the reserve.
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let at = from_lambda(now_ms + 10_000).unwrap();
        let left = at.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_secs(10) - RESERVE && left > Duration::from_secs(8));
        // A deadline passed already leaves nothing, never a panic.
        let past = from_lambda(now_ms - 5_000).unwrap();
        assert!(past <= Instant::now() + Duration::from_millis(1));
    }
}
