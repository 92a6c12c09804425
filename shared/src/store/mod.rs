//! The DynamoDB single-table store. Handlers see records and [`ApiError`]s, never SDK types.

mod catalog;
mod connections;
mod customers;
mod idempotency;
pub mod keys;
mod teams;

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::deadline::WithinDeadline;
use crate::error::{ApiError, AwsService, aws_error};
use crate::ids::ProjectId;
use crate::input::Page;

pub use customers::EmailReservation;
pub use idempotency::{IdempotencyClaim, IdempotencyScope};
pub use teams::RoleChange;

pub type Item = HashMap<String, AttributeValue>;

/// The table and the client that reaches it; cheap to share by reference.
#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("table", &self.table).finish()
    }
}

/// A DynamoDB failure as an API error ([`aws_error`]).
pub fn dynamo_error<E>(err: SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    aws_error(AwsService::DynamoDb, err)
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.code() == Some("ConditionalCheckFailedException")
}

/// A conditional write's outcome: `true` if it was applied, `false` if its condition
/// failed, any other failure as an API error.
fn applied<O, E>(result: Result<O, SdkError<E, HttpResponse>>) -> Result<bool, ApiError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if is_conditional_failure(&err) => Ok(false),
        Err(err) => Err(dynamo_error(err)),
    }
}

/// How a transaction ended, when DynamoDB answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxOutcome {
    Applied,
    /// Cancelled by a condition; for each item in order, whether its condition failed.
    ConditionFailed(Vec<bool>),
}

impl Store {
    /// Runs a transaction. A cancellation by another transaction on the same items
    /// (`TransactionConflict`) is a 503 with `Retry-After`, never a 500.
    pub(crate) async fn transact(
        &self,
        items: Vec<aws_sdk_dynamodb::types::TransactWriteItem>,
    ) -> Result<TxOutcome, ApiError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .within_deadline()
            .await;
        let err = match result {
            Ok(_) => return Ok(TxOutcome::Applied),
            Err(err) => err,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
            err.as_service_error()
        {
            let reasons = cancel.cancellation_reasons();
            let failed: Vec<bool> = reasons
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect();
            if failed.contains(&true) {
                return Ok(TxOutcome::ConditionFailed(failed));
            }
            if reasons
                .iter()
                .any(|r| r.code() == Some("TransactionConflict"))
            {
                tracing::warn!("transaction conflict");
                return Err(ApiError::unavailable(
                    "Another request was changing the same records; retry the request",
                ));
            }
        }
        Err(dynamo_error(err))
    }
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn state(state: keys::ItemState) -> AttributeValue {
    s(state.as_str())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Serializes a record and adds its keys and entity type.
pub(crate) fn to_item<T: Serialize>(
    record: &T,
    key: (String, String),
    entity: &str,
) -> Result<Item, ApiError> {
    let mut item: Item = serde_dynamo::to_item(record).map_err(ApiError::internal)?;
    item.insert(keys::PK.to_owned(), s(key.0));
    item.insert(keys::SK.to_owned(), s(key.1));
    item.insert(keys::ENTITY.to_owned(), s(entity));
    Ok(item)
}

pub(crate) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, ApiError> {
    serde_dynamo::from_item(item).map_err(ApiError::internal)
}

fn key_item(key: (String, String)) -> Item {
    HashMap::from([
        (keys::PK.to_owned(), s(key.0)),
        (keys::SK.to_owned(), s(key.1)),
    ])
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// A client for `endpoint` (DynamoDB Local) or, with `None`, for the AWS settings of the
    /// environment (the Lambda role, a profile, ...).
    pub async fn connect(table: impl Into<String>, endpoint: Option<&str>) -> Self {
        Self::with_config(
            &crate::aws::settings(endpoint.is_some()).await,
            table,
            endpoint,
        )
    }

    /// A store on `sdk` settings, with DynamoDB at `endpoint` if given.
    pub fn with_config(
        sdk: &aws_config::SdkConfig,
        table: impl Into<String>,
        endpoint: Option<&str>,
    ) -> Self {
        let mut config = aws_sdk_dynamodb::config::Builder::from(sdk);
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self::new(Client::from_conf(config.build()), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates the table with the keys and index the store uses; `false` if it exists.
    pub async fn create_table_if_missing(&self) -> Result<bool, ApiError> {
        match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .within_deadline()
            .await
        {
            Ok(_) => return Ok(false),
            Err(err) if err.code() == Some("ResourceNotFoundException") => {}
            Err(err) => return Err(dynamo_error(err)),
        }
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(ApiError::internal)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(ApiError::internal)
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(keys::GSI1)
            .key_schema(key(keys::GSI1PK, KeyType::Hash)?)
            .key_schema(key(keys::GSI1SK, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(ApiError::internal)?;
        let result = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(keys::PK)?)
            .attribute_definitions(attr(keys::SK)?)
            .attribute_definitions(attr(keys::GSI1PK)?)
            .attribute_definitions(attr(keys::GSI1SK)?)
            .key_schema(key(keys::PK, KeyType::Hash)?)
            .key_schema(key(keys::SK, KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .send()
            .within_deadline()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Another process created it first.
            Err(err) if err.code() == Some("ResourceInUseException") => Ok(false),
            Err(err) => Err(dynamo_error(err)),
        }
    }

    /// A strongly consistent read of one item.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        key: (String, String),
    ) -> Result<Option<T>, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .consistent_read(true)
            .send()
            .within_deadline()
            .await
            .map_err(dynamo_error)?;
        out.item.map(from_item).transpose()
    }

    /// Writes an item that must not exist yet; `false` if it does.
    async fn put_new(&self, item: Item) -> Result<bool, ApiError> {
        self.put_conditional(item, "attribute_not_exists(pk)", HashMap::new())
            .await
    }

    /// Writes an item if `condition` (with `values`) holds; `false` if it does not.
    pub(crate) async fn put_conditional(
        &self,
        item: Item,
        condition: &str,
        values: HashMap<String, AttributeValue>,
    ) -> Result<bool, ApiError> {
        applied(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .set_expression_attribute_values((!values.is_empty()).then_some(values))
                .send()
                .within_deadline()
                .await,
        )
    }

    /// Deletes an item if it exists; `false` if it did not.
    pub(crate) async fn delete_existing(&self, key: (String, String)) -> Result<bool, ApiError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .condition_expression("attribute_exists(pk)")
            .send()
            .within_deadline()
            .await;
        applied(result)
    }

    /// One page of a project's objects of one kind (`prefix`, e.g. [`keys::CUSTOMER`]),
    /// newest first. Reads `offset + limit + 1` matching items at most (the extra one tells
    /// whether there are more); with a cursor it starts right after that object.
    pub(crate) async fn list_objects<T: DeserializeOwned>(
        &self,
        project_id: &ProjectId,
        prefix: &str,
        page: &Page,
        filter: Option<(&str, HashMap<String, AttributeValue>)>,
    ) -> Result<(Vec<T>, bool), ApiError> {
        let partition = keys::project_partition(project_id);
        self.query_newest_first(
            None,
            (keys::PK, partition.clone()),
            (keys::SK, prefix.to_owned()),
            page.starting_after
                .as_deref()
                .map(|id| key_item(keys::object(project_id, prefix, id))),
            page,
            filter,
        )
        .await
    }

    /// The `Query` loop behind every list: newest first, at most `offset + limit + 1`
    /// matches read, pages sized to what is still needed. Only the page's own items are
    /// kept: those skipped by `offset` are counted and dropped as they arrive.
    pub(crate) async fn query_newest_first<T: DeserializeOwned>(
        &self,
        index: Option<&str>,
        (pk_name, pk_value): (&str, String),
        (sk_name, sk_prefix): (&str, String),
        start_after: Option<Item>,
        page: &Page,
        filter: Option<(&str, HashMap<String, AttributeValue>)>,
    ) -> Result<(Vec<T>, bool), ApiError> {
        let wanted = page.limit.map(|limit| (page.offset + limit) as usize + 1);
        let mut start_key = start_after;
        let offset = page.offset as usize;
        let keep = page.limit.map_or(usize::MAX, |l| l as usize);
        // Matches seen so far, and the ones of the page.
        let mut matched = 0usize;
        let mut kept: Vec<Item> = Vec::new();
        let (filter_expr, filter_values) = match filter {
            Some((expr, values)) => (Some(expr.to_owned()), values),
            None => (None, HashMap::new()),
        };
        loop {
            let remaining = wanted.map(|w| w.saturating_sub(matched));
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_names("#sk", sk_name)
                .expression_attribute_values(":pk", s(pk_value.clone()))
                .expression_attribute_values(":prefix", s(sk_prefix.clone()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start_key.take())
                .set_filter_expression(filter_expr.clone());
            for (name, value) in &filter_values {
                query = query.expression_attribute_values(name, value.clone());
            }
            if index.is_none() {
                query = query.consistent_read(true);
            }
            if let Some(remaining) = remaining {
                // Without a filter every item read is a match, so read no more than needed.
                let page_size = if filter_expr.is_some() {
                    1000
                } else {
                    remaining.clamp(1, 1000)
                };
                query = query.limit(page_size as i32);
            }
            let out = query.send().within_deadline().await.map_err(dynamo_error)?;
            for item in out.items.unwrap_or_default() {
                if matched >= offset && kept.len() < keep {
                    kept.push(item);
                }
                matched += 1;
            }
            start_key = out.last_evaluated_key;
            let enough = wanted.is_some_and(|w| matched >= w);
            if enough || start_key.is_none() {
                break;
            }
        }
        let has_more = wanted.is_some_and(|w| matched >= w);
        let items = kept
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<T>, _>>()?;
        Ok((items, has_more))
    }
}
