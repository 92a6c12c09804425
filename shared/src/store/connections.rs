//! A team's Stripe connection (one item in the team's partition) and the claims that keep
//! one Stripe customer linked to one project at most.

use std::collections::HashMap;

use super::{Store, dynamo_error, keys, s, to_item};
use crate::deadline::WithinDeadline;
use crate::error::ApiError;
use crate::ids::{CustomerId, ProjectId, TeamId};
use crate::model::{BackfillJob, StripeConnection, SyncStatus};

impl Store {
    pub async fn get_stripe_connection(
        &self,
        team_id: &TeamId,
    ) -> Result<Option<StripeConnection>, ApiError> {
        self.get(keys::stripe_connection(team_id)).await
    }

    /// Stores the team's connection, replacing the one before. (The caller's membership,
    /// just checked, shows that the team exists.)
    pub async fn put_stripe_connection(
        &self,
        connection: &StripeConnection,
    ) -> Result<(), ApiError> {
        let item = to_item(
            connection,
            keys::stripe_connection(&connection.team_id),
            "stripe_connection",
        )?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .within_deadline()
            .await
            .map_err(dynamo_error)?;
        Ok(())
    }

    /// Sets the connection's `syncStatus`, if the team is still connected.
    pub async fn set_sync_status(
        &self,
        team_id: &TeamId,
        status: SyncStatus,
    ) -> Result<(), ApiError> {
        let value = serde_dynamo::to_attribute_value(status).map_err(ApiError::internal)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(super::key_item(keys::stripe_connection(team_id))))
            .update_expression("SET syncStatus = :status")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":status", value)
            .send()
            .within_deadline()
            .await;
        super::applied(result).map(|_| ())
    }

    pub async fn get_backfill_job(
        &self,
        team_id: &TeamId,
    ) -> Result<Option<BackfillJob>, ApiError> {
        self.get(keys::backfill_job(team_id)).await
    }

    /// Writes a job: a new one (replacing a finished one, or one whose runner went quiet
    /// for `stale_after` seconds) with `expected_steps: None`, else a step's progress if
    /// the stored job is still at `expected_steps`. `false` when the condition fails.
    pub async fn put_backfill_job(
        &self,
        job: &BackfillJob,
        expected_steps: Option<u64>,
        stale_after: i64,
    ) -> Result<bool, ApiError> {
        let item = to_item(job, keys::backfill_job(&job.team_id), "backfill_job")?;
        match expected_steps {
            None => {
                self.put_conditional(
                    item,
                    "attribute_not_exists(pk) OR jobState <> :running OR updatedAt < :stale",
                    HashMap::from([
                        (":running".to_owned(), s("running")),
                        (":stale".to_owned(), super::n(job.updated_at - stale_after)),
                    ]),
                )
                .await
            }
            Some(steps) => {
                self.put_conditional(
                    item,
                    "jobId = :job AND steps = :steps",
                    HashMap::from([
                        (":job".to_owned(), s(job.job_id.clone())),
                        (":steps".to_owned(), super::n(steps)),
                    ]),
                )
                .await
            }
        }
    }

    /// Removes the team's connection; `false` if there was none.
    pub async fn delete_stripe_connection(&self, team_id: &TeamId) -> Result<bool, ApiError> {
        self.delete_existing(keys::stripe_connection(team_id)).await
    }

    /// Claims the Stripe customer `stripe_customer_id` of the team's account for
    /// `project_id`: `true` if it was free or already this project's, `false` if another
    /// project holds it. A Stripe customer that no project's metadata names may be linked
    /// by any project of the team; the claim makes sure only one does.
    pub async fn claim_stripe_customer(
        &self,
        team_id: &TeamId,
        stripe_customer_id: &str,
        project_id: &ProjectId,
        customer_id: &CustomerId,
        now: i64,
    ) -> Result<bool, ApiError> {
        let (pk, sk) = keys::stripe_customer_claim(team_id, stripe_customer_id);
        let item = HashMap::from([
            (keys::PK.to_owned(), s(pk)),
            (keys::SK.to_owned(), s(sk)),
            (keys::ENTITY.to_owned(), s("stripe_customer_claim")),
            ("projectId".to_owned(), s(project_id)),
            ("customerId".to_owned(), s(customer_id)),
            ("claimedAt".to_owned(), super::n(now)),
        ]);
        self.put_conditional(
            item,
            "attribute_not_exists(pk) OR projectId = :project",
            HashMap::from([(":project".to_owned(), s(project_id))]),
        )
        .await
    }
}
