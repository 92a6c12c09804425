//! Client idempotency keys (`Idempotency-Key` on a create), as Stripe has them: the first
//! answer is kept for 24 hours and replayed to a retry with the same key and request; the
//! same key with another request is refused.

use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::ItemState;
use super::{Item, Store, dynamo_error, is_conditional_failure, key_item, keys, n, s, state};
use crate::deadline::WithinDeadline;
use crate::error::ApiError;
use crate::ids::{ProjectId, TeamId};

/// How long an answer is kept (the table's TTL attribute `ttl` removes it after; not
/// `expiresAt`, which API key records use for their own expiry).
pub const KEEP_SECS: i64 = 24 * 3600;
/// A claim left by a crashed invocation may be taken over after this.
const STALE_SECS: i64 = 120;

/// What the store knows of a key when a request arrives with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The request runs. `object_id` is the ID its create gives the new object: the one
    /// the claim was made with, or, when it takes over the claim of an attempt that never
    /// finished (`taken_over`), the one that attempt used, so the retry makes (or finds)
    /// the very same object, in Stripe and here, instead of a second one.
    Claimed {
        object_id: Option<String>,
        taken_over: bool,
    },
    /// Answered before: replay this status and body.
    Replay { status: u16, body: String },
    /// Used with another request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// Stripe retries a webhook delivery for up to three days; an event ID is remembered for
/// about a month.
pub const EVENT_KEEP_SECS: i64 = 30 * 24 * 3600;

/// Whose keys a key is unique among: a project's (its creates), a team's (its members,
/// projects), or a user's (the teams they create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyScope<'a> {
    Project(&'a ProjectId),
    Team(&'a TeamId),
    User(&'a str),
}

fn key(scope: IdempotencyScope<'_>, idempotency_key: &str) -> (String, String) {
    let partition = match scope {
        IdempotencyScope::Project(id) => keys::project_partition(id),
        IdempotencyScope::Team(id) => keys::team_index(id),
        IdempotencyScope::User(id) => keys::user_index(id),
    };
    keys::idempotency(partition, idempotency_key)
}

fn item_state(item: &Item) -> Option<ItemState> {
    ItemState::parse(&text(item, "state")?)
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

impl Store {
    /// Claims `idempotency_key` for a request whose fingerprint is `fingerprint` and whose
    /// create would give its object `object_id`, or says what became of its earlier use.
    pub async fn claim_idempotency_key(
        &self,
        scope: IdempotencyScope<'_>,
        idempotency_key: &str,
        fingerprint: &str,
        object_id: Option<&str>,
        now: i64,
    ) -> Result<IdempotencyClaim, ApiError> {
        let (pk, sk) = key(scope, idempotency_key);
        let mut item: Item = [
            (keys::PK.to_owned(), s(&pk)),
            (keys::SK.to_owned(), s(&sk)),
            (keys::ENTITY.to_owned(), s("idempotency_key")),
            ("state".to_owned(), state(ItemState::Pending)),
            ("fingerprint".to_owned(), s(fingerprint)),
            ("claimedAt".to_owned(), n(now)),
            ("ttl".to_owned(), n(now + KEEP_SECS)),
        ]
        .into();
        if let Some(id) = object_id {
            item.insert("objectId".to_owned(), s(id));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR #ttl < :now OR #state = :released OR (#state = :pending AND fingerprint = :fp AND claimedAt < :stale)",
            )
            .expression_attribute_values(":released", state(ItemState::Released))
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":pending", state(ItemState::Pending))
            .expression_attribute_values(":fp", s(fingerprint))
            .expression_attribute_values(":stale", n(now - STALE_SECS))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .send().within_deadline()
            .await;
        let existing = match result {
            Ok(out) => {
                let old = out.attributes.unwrap_or_default();
                // A released or stale claim of this very request, taken over: its object ID
                // is kept (an expired one's is not: that attempt is a day old).
                let unfinished = matches!(item_state(&old), Some(ItemState::Pending | ItemState::Released))
                    && number(&old, "ttl").is_some_and(|ttl| ttl >= now);
                let earlier = (unfinished
                    && text(&old, "fingerprint").as_deref() == Some(fingerprint))
                .then(|| text(&old, "objectId"))
                .flatten();
                let Some(earlier) = earlier else {
                    return Ok(IdempotencyClaim::Claimed {
                        object_id: object_id.map(str::to_owned),
                        taken_over: false,
                    });
                };
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key_item((pk, sk))))
                    .update_expression("SET objectId = :id")
                    .expression_attribute_values(":id", s(&earlier))
                    .send().within_deadline()
                    .await
                    .map_err(dynamo_error)?;
                return Ok(IdempotencyClaim::Claimed {
                    object_id: Some(earlier),
                    taken_over: true,
                });
            }
            Err(err) if is_conditional_failure(&err) => match err.into_service_error() {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e) => {
                    e.item.unwrap_or_default()
                }
                _ => Item::new(),
            },
            Err(err) => return Err(dynamo_error(err)),
        };
        if text(&existing, "fingerprint").as_deref() != Some(fingerprint) {
            return Ok(IdempotencyClaim::Mismatch);
        }
        match (
            item_state(&existing),
            number(&existing, "status"),
            text(&existing, "body"),
        ) {
            (Some(ItemState::Done), Some(status), Some(body)) => Ok(IdempotencyClaim::Replay {
                status: u16::try_from(status).unwrap_or(200),
                body,
            }),
            _ => Ok(IdempotencyClaim::InProgress),
        }
    }

    /// Records that the team's Stripe event `event_id` is being applied: `true` the first
    /// time, `false` when it was recorded before (a redelivery). One conditional write: the
    /// record says "seen" from the start, and [`Store::forget_stripe_event`] takes it back
    /// when applying fails, so that Stripe's retry applies it.
    pub async fn record_stripe_event(
        &self,
        team_id: &TeamId,
        event_id: &str,
        now: i64,
    ) -> Result<bool, ApiError> {
        let (pk, sk) = keys::stripe_event(team_id, event_id);
        let item: Item = [
            (keys::PK.to_owned(), s(pk)),
            (keys::SK.to_owned(), s(sk)),
            (keys::ENTITY.to_owned(), s("stripe_event")),
            ("receivedAt".to_owned(), n(now)),
            ("ttl".to_owned(), n(now + EVENT_KEEP_SECS)),
        ]
        .into();
        super::applied(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk) OR #ttl < :now")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":now", n(now))
                .send()
                .within_deadline()
                .await,
        )
    }

    /// Takes back [`Store::record_stripe_event`] (applying failed).
    pub async fn forget_stripe_event(&self, team_id: &TeamId, event_id: &str) {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::stripe_event(team_id, event_id))))
            .send()
            .within_deadline()
            .await;
        if let Err(err) = result {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "could not forget a Stripe event; its retry will be taken for a duplicate");
        }
    }

    /// Keeps the answer to replay for the key's lifetime.
    pub async fn complete_idempotency_key(
        &self,
        scope: IdempotencyScope<'_>,
        idempotency_key: &str,
        status: u16,
        body: &str,
    ) -> Result<(), ApiError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key(scope, idempotency_key))))
            .update_expression("SET #state = :done, #status = :status, body = :body")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", state(ItemState::Done))
            .expression_attribute_values(":status", n(status))
            .expression_attribute_values(":body", AttributeValue::S(body.to_owned()))
            .send()
            .within_deadline()
            .await
            .map_err(dynamo_error)?;
        Ok(())
    }

    /// Gives a claim up (the request failed on our side), so a retry runs again at once. The
    /// claim is kept, released, with its object ID: the failed attempt may have left its
    /// object in Stripe (its undo failing too), and the retry of the same request makes
    /// that same object instead of a second one.
    pub async fn release_idempotency_key(
        &self,
        scope: IdempotencyScope<'_>,
        idempotency_key: &str,
    ) {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key(scope, idempotency_key))))
            .update_expression("SET #state = :released")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", state(ItemState::Pending))
            .expression_attribute_values(":released", state(ItemState::Released))
            .send()
            .within_deadline()
            .await;
        if let Err(err) = result
            && !is_conditional_failure(&err)
        {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err), "could not release an idempotency key; it will go stale");
        }
    }
}
