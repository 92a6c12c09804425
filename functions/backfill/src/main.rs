//! The backfill Lambda: SQS delivers `{"teamId", "jobId"}` messages; each invocation runs
//! the job's steps within its remaining time and queues a message to continue if needed.
//! A failed invocation returns an error, so SQS redelivers the message (and, after its
//! `maxReceiveCount`, moves it to the dead-letter queue).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use billstack::App;
use billstack::jobs::JobMessage;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    billstack::http::init_tracing();
    let config = billstack::config::Config::from_env()?;
    let app: &'static App = Box::leak(Box::new(App::from_config(&config).await?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The invocation's deadline, as an Instant.
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let left = event.context.deadline.saturating_sub(now_ms);
        let deadline = Instant::now() + Duration::from_millis(left);
        for record in event.payload["Records"].as_array().into_iter().flatten() {
            let message: JobMessage = serde_json::from_str(record["body"].as_str().unwrap_or(""))?;
            if !backfill::run(app, &message, deadline).await? {
                app.jobs.send(&message).await?;
            }
        }
        Ok::<Value, lambda_runtime::Error>(Value::Null)
    }))
    .await
}
