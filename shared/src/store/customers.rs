//! Customers and their per-project email uniqueness items.
//!
//! An email is reserved (`pending`) before Stripe is called, so of many concurrent
//! creates of one email exactly one reaches Stripe; the customer and the email's
//! activation are then written in one transaction. A reservation left `pending` by a
//! crashed invocation goes stale after [`EmailReservation::STALE_AFTER_SECS`] and may be
//! taken over.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};

use super::keys::ItemState;
use super::{
    Item, Store, TxOutcome, dynamo_error, is_conditional_failure, key_item, keys, n, s, state,
    to_item,
};
use crate::deadline::WithinDeadline;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{CustomerId, ProjectId};
use crate::input::Page;
use crate::model::Customer;

/// How many times a delete follows a record that keeps changing under it.
const DELETE_ATTEMPTS: usize = 3;

/// A pending claim on an email for one customer ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailReservation {
    pub project_id: ProjectId,
    pub email: String,
    pub customer_id: CustomerId,
}

impl EmailReservation {
    /// Longer than any invocation can run (the function timeout is 30 s).
    pub const STALE_AFTER_SECS: i64 = 120;
}

fn taken(email: &str) -> ApiError {
    ApiError::new(
        ErrorCode::EmailTaken,
        format!("A customer with email {email} already exists in this project"),
    )
    .with_param("email")
}

impl Store {
    fn transact_put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, ApiError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn activate_email(
        &self,
        reservation: &EmailReservation,
    ) -> Result<TransactWriteItem, ApiError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::customer_email(
                &reservation.project_id,
                &reservation.email,
            ))))
            .update_expression("SET #state = :active REMOVE reservedAt")
            .condition_expression("customerId = :id")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":active", state(ItemState::Active))
            .expression_attribute_values(":id", s(&reservation.customer_id))
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn delete_email(
        &self,
        project_id: &ProjectId,
        email: &str,
        customer_id: &CustomerId,
    ) -> Result<TransactWriteItem, ApiError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::customer_email(project_id, email))))
            .condition_expression("customerId = :id")
            .expression_attribute_values(":id", s(customer_id))
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Claims `email` in the project for `customer_id`, or 409 if another customer has it
    /// (or is being created with it right now).
    pub async fn reserve_email(
        &self,
        reservation: &EmailReservation,
        now: i64,
    ) -> Result<(), ApiError> {
        let (pk, sk) = keys::customer_email(&reservation.project_id, &reservation.email);
        let item: Item = [
            (keys::PK.to_owned(), s(pk)),
            (keys::SK.to_owned(), s(sk)),
            (keys::ENTITY.to_owned(), s("customer_email")),
            ("customerId".to_owned(), s(&reservation.customer_id)),
            ("state".to_owned(), state(ItemState::Pending)),
            ("reservedAt".to_owned(), n(now)),
        ]
        .into();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // A pending reservation goes stale; one of this very customer is ours already
            // (a retry, under the client's Idempotency-Key, of a create that died).
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :pending AND (reservedAt < :stale OR customerId = :id))",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":pending", state(ItemState::Pending))
            .expression_attribute_values(":id", s(&reservation.customer_id))
            .expression_attribute_values(":stale", n(now - EmailReservation::STALE_AFTER_SECS))
            .send().within_deadline()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_failure(&err) => Err(taken(&reservation.email)),
            Err(err) => Err(dynamo_error(err)),
        }
    }

    /// Gives a reservation up (after Stripe or our write failed). Best effort: a failure is
    /// logged, and the reservation then goes stale on its own.
    pub async fn release_email(&self, reservation: &EmailReservation) {
        let (pk, sk) = keys::customer_email(&reservation.project_id, &reservation.email);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item((pk, sk))))
            .condition_expression("customerId = :id AND #state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":id", s(&reservation.customer_id))
            .expression_attribute_values(":pending", state(ItemState::Pending))
            .send()
            .within_deadline()
            .await;
        if let Err(err) = result
            && !is_conditional_failure(&err)
        {
            tracing::warn!(
                error = %aws_sdk_dynamodb::error::DisplayErrorContext(&err),
                "could not release an email reservation; it will go stale"
            );
        }
    }

    pub async fn get_customer(
        &self,
        project_id: &ProjectId,
        customer_id: &CustomerId,
    ) -> Result<Option<Customer>, ApiError> {
        self.get(keys::object(project_id, keys::CUSTOMER, customer_id))
            .await
    }

    pub async fn list_customers(
        &self,
        project_id: &ProjectId,
        page: &Page,
    ) -> Result<(Vec<Customer>, bool), ApiError> {
        self.list_objects(project_id, keys::CUSTOMER, page, None)
            .await
    }

    /// Writes a new customer and activates its email reservation, in one transaction.
    pub async fn insert_customer(
        &self,
        customer: &Customer,
        reservation: &EmailReservation,
    ) -> Result<(), ApiError> {
        let item = to_item(
            customer,
            keys::object(&customer.project_id, keys::CUSTOMER, &customer.id),
            "customer",
        )?;
        let outcome = self
            .transact(vec![
                self.transact_put(item, "attribute_not_exists(pk)")?,
                self.activate_email(reservation)?,
            ])
            .await?;
        match outcome {
            TxOutcome::Applied => Ok(()),
            // The reservation was lost (taken over as stale): someone else has the email now.
            TxOutcome::ConditionFailed(_) => Err(taken(&reservation.email)),
        }
    }

    /// Replaces a customer whose stored version is `expected_version`; when the email
    /// changes, frees the old email item and activates the new reservation in the same
    /// transaction. 409 if the customer changed or vanished meanwhile.
    pub async fn replace_customer(
        &self,
        customer: &Customer,
        expected_version: u64,
        email_change: Option<(&str, &EmailReservation)>,
    ) -> Result<(), ApiError> {
        let item = to_item(
            customer,
            keys::object(&customer.project_id, keys::CUSTOMER, &customer.id),
            "customer",
        )?;
        let mut put_item = self.transact_put(item, "version = :expected")?;
        if let Some(put) = put_item.put.as_mut() {
            put.expression_attribute_values =
                Some([(":expected".to_owned(), n(expected_version))].into());
        }
        let mut items = vec![put_item];
        if let Some((old_email, reservation)) = email_change {
            items.push(self.delete_email(&customer.project_id, old_email, &customer.id)?);
            items.push(self.activate_email(reservation)?);
        }
        match self.transact(items).await? {
            TxOutcome::Applied => Ok(()),
            TxOutcome::ConditionFailed(_) => Err(ApiError::new(
                ErrorCode::ConcurrentUpdate,
                "The customer was changed or deleted by another request; fetch it and retry",
            )),
        }
    }

    /// Deletes the customer's record and frees its email, as of the version read. When the
    /// record changed meanwhile (an email change committed between our read and this
    /// write), it deletes the record as it is now, so the email freed is always the
    /// record's own and no reservation is left pointing at a deleted customer. `false` if
    /// the customer is gone.
    pub async fn delete_customer(&self, customer: &Customer) -> Result<bool, ApiError> {
        let mut current = customer.clone();
        let mut with_email = true;
        for _ in 0..DELETE_ATTEMPTS {
            let key = keys::object(&current.project_id, keys::CUSTOMER, &current.id);
            let mut items = vec![
                TransactWriteItem::builder()
                    .delete(self.delete_version(key, current.version)?)
                    .build(),
            ];
            if with_email {
                items.push(self.delete_email(&current.project_id, &current.email, &current.id)?);
            }
            if self.transact(items).await? == TxOutcome::Applied {
                return Ok(true);
            }
            match self.get_customer(&current.project_id, &current.id).await? {
                None => return Ok(false),
                Some(now) if now.version != current.version => {
                    current = now;
                    with_email = true;
                }
                // The record is as read but its email item is missing: delete the record
                // alone, so it cannot linger.
                Some(_) => with_email = false,
            }
        }
        Err(ApiError::new(
            ErrorCode::ConcurrentUpdate,
            "The customer kept changing while it was being deleted; retry the delete",
        ))
    }

    /// Deleting `key` if its record is still at `version`.
    fn delete_version(&self, key: (String, String), version: u64) -> Result<Delete, ApiError> {
        Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(version))
            .build()
            .map_err(ApiError::internal)
    }

    /// Moves `current`, which Stripe deleted at `deleted_at`, out of reads and lists (kept
    /// under [`keys::DELETED_CUSTOMER`], with its `deletedAt`) and frees its email, if the
    /// stored version is still the one read; `false` if it changed or vanished meanwhile.
    pub async fn mark_customer_deleted(
        &self,
        current: &Customer,
        deleted_at: i64,
    ) -> Result<bool, ApiError> {
        let expected_version = current.version;
        let deleted = &Customer {
            deleted_at: Some(deleted_at),
            stripe_synced_at: deleted_at.max(current.stripe_synced_at),
            updated_at: crate::clock::now_epoch().max(current.updated_at),
            version: current.version + 1,
            ..current.clone()
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::object(
                &deleted.project_id,
                keys::CUSTOMER,
                &deleted.id,
            ))))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", n(expected_version))
            .build()
            .map_err(ApiError::internal)?;
        let kept = to_item(
            deleted,
            keys::object(&deleted.project_id, keys::DELETED_CUSTOMER, &deleted.id),
            "deleted_customer",
        )?;
        let outcome = self
            .transact(vec![
                TransactWriteItem::builder().delete(delete).build(),
                self.transact_put(kept, "attribute_not_exists(pk)")?,
                self.delete_email(&deleted.project_id, &deleted.email, &deleted.id)?,
            ])
            .await?;
        Ok(outcome == TxOutcome::Applied)
    }

    /// A customer Stripe deleted, as kept.
    pub async fn get_deleted_customer(
        &self,
        project_id: &ProjectId,
        customer_id: &CustomerId,
    ) -> Result<Option<Customer>, ApiError> {
        self.get(keys::object(
            project_id,
            keys::DELETED_CUSTOMER,
            customer_id,
        ))
        .await
    }

    /// Raw item of a customer's email, for tests and repair tools.
    pub async fn email_owner(
        &self,
        project_id: &ProjectId,
        email: &str,
    ) -> Result<Option<(String, String)>, ApiError> {
        let item: Option<Item> = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::customer_email(project_id, email))))
            .consistent_read(true)
            .send()
            .within_deadline()
            .await
            .map_err(dynamo_error)?
            .item;
        Ok(item.map(|item| {
            let get = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            (get("customerId"), get("state"))
        }))
    }
}
