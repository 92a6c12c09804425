//! Background jobs (a team's backfill from Stripe): a job keeps its cursor in DynamoDB and
//! runs in steps, each within an invocation's time budget; what continues it is a message.
//! Deployed, messages go to an SQS queue (`BACKFILL_QUEUE_URL`) that the backfill function
//! consumes: SQS retries a failed invocation and keeps what keeps failing in a dead-letter
//! queue, with no scheduler of our own. The local API and the tests hand messages to a task
//! of their own process that runs the same step code.

use serde::{Deserialize, Serialize};

use crate::deadline::WithinDeadline;
use crate::error::{ApiError, AwsService, aws_error};
use crate::ids::{JobId, TeamId};

/// "Continue job `job_id` of team `team_id`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobMessage {
    pub team_id: TeamId,
    pub job_id: JobId,
}

/// Where job messages go.
#[derive(Debug, Clone, Default)]
pub enum Jobs {
    /// Nowhere: this process starts no jobs.
    #[default]
    Off,
    Queue {
        sqs: aws_sdk_sqs::Client,
        url: String,
    },
    /// To a task of this process (`billstack_local::spawn_job_runner`).
    Local(tokio::sync::mpsc::UnboundedSender<JobMessage>),
}

impl Jobs {
    pub fn queue(sdk: &aws_config::SdkConfig, url: &str) -> Self {
        Jobs::Queue {
            sqs: aws_sdk_sqs::Client::new(sdk),
            url: url.to_owned(),
        }
    }

    /// Hands `message` on; 503 when it cannot be.
    pub async fn send(&self, message: &JobMessage) -> Result<(), ApiError> {
        match self {
            Jobs::Off => Err(ApiError::unavailable(
                "Background jobs are not configured here (BACKFILL_QUEUE_URL)",
            )),
            Jobs::Queue { sqs, url } => {
                let body = serde_json::to_string(message).map_err(ApiError::internal)?;
                sqs.send_message()
                    .queue_url(url)
                    .message_body(body)
                    .send()
                    .within_deadline()
                    .await
                    .map_err(|e| aws_error(AwsService::Sqs, e))?;
                Ok(())
            }
            Jobs::Local(sender) => sender
                .send(message.clone())
                .map_err(|_| ApiError::unavailable("The job runner has stopped")),
        }
    }
}
