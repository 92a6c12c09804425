//! The Stripe gateway: the only code that speaks async-stripe. Handlers get plain structs
//! and [`ApiError`]s; every Stripe error becomes an API error in [`stripe_error`].
//!
//! Calls carry a per-attempt timeout and are retried once on a transient failure with the
//! same idempotency key (derived by the caller from the BillStack ID), so a retry can never
//! create a second object. Every attempt ends, and a retry starts only if it can end,
//! within what is left of the invocation ([`crate::deadline`]), however many calls a
//! request makes in a row.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ::stripe::{IdempotencyKey, RequestStrategy};
use sha2::{Digest, Sha256};
use stripe_client_core::StripeRequest;
use stripe_core::customer::{CreateCustomer, ListCustomer, UpdateCustomer};
use stripe_product::price::{
    CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, UpdatePrice,
};
use stripe_product::product::{CreateProduct, DeleteProduct, UpdateProduct};

use crate::model::Interval;

mod accounts;
mod transport;
pub use accounts::{AccountInfo, StripeAccounts, not_connected};
pub use transport::{CallError, StripeHttp};

type Client = StripeHttp;

use crate::deadline;
use crate::error::ApiError;
use crate::secrets::Secret;

/// How many times a call is tried in all on a transient failure.
const ATTEMPTS: u32 = 2;
const BACKOFF: Duration = Duration::from_millis(250);
/// What a retry needs left before the invocation's deadline to be worth starting: its
/// pause and a short attempt. With less, the first failure is answered.
const RETRY_NEEDS: Duration = Duration::from_millis(1250);

/// A Stripe customer as BillStack needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeCustomer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub metadata: HashMap<String, String>,
}

/// What BillStack reads of Stripe's customer object: only these fields. Stripe's answers
/// are read into these lean structs rather than async-stripe's full object types, whose
/// readers (every nested object Stripe may send) were a fifth of each function's binary.
#[derive(miniserde::Deserialize)]
struct CustomerFields {
    id: String,
    email: Option<String>,
    name: Option<String>,
    metadata: Option<HashMap<String, String>>,
}

impl From<CustomerFields> for StripeCustomer {
    fn from(c: CustomerFields) -> Self {
        Self {
            id: c.id,
            email: c.email,
            name: c.name,
            metadata: c.metadata.unwrap_or_default(),
        }
    }
}

#[derive(miniserde::Deserialize)]
struct CustomerList {
    data: Vec<CustomerFields>,
}

/// An answer of which nothing is read (a deleted object, a key's check list).
#[derive(miniserde::Deserialize)]
struct Unread {}

/// Changes to a Stripe customer; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerChanges {
    pub email: Option<String>,
    /// `Some(None)` clears the name.
    pub name: Option<Option<String>>,
    /// Sent as Stripe's metadata parameter: merged into the object, `""` unsets a key.
    pub metadata: Option<HashMap<String, String>>,
}

/// A Stripe product or price as BillStack needs it (and reads of Stripe's answer).
#[derive(Debug, Clone, PartialEq, Eq, miniserde::Deserialize)]
pub struct StripeObject {
    pub id: String,
    pub active: bool,
    pub metadata: HashMap<String, String>,
}

/// Changes to a Stripe product; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductChanges {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
    pub metadata: Option<HashMap<String, String>>,
}

/// A new Stripe price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStripePrice<'a> {
    pub product: &'a str,
    pub unit_amount: i64,
    pub currency: &'a str,
    /// `None` for a one-time price.
    pub recurring: Option<(Interval, u32)>,
    pub metadata: HashMap<String, String>,
}

/// The idempotency key of an update: derived from the object's ID, the version the change
/// applies to, and the change itself, so a retry of the same change replays in Stripe and
/// another change gets its own key.
pub fn update_key(id: &str, version: u64, change: &impl std::fmt::Debug) -> String {
    let text = format!("{change:?}");
    let digest = hex::encode(&Sha256::digest(text.as_bytes())[..8]);
    format!("bs_{id}_v{version}_{digest}")
}

/// The idempotency key of one request's change, or of the change that undoes one (Stripe
/// took it but our write of it failed). As [`update_key`], plus a part drawn for this call:
/// the transport's retries of it replay in Stripe, but a later request never replays an
/// earlier one's, which an undo may have put back since (a retried PATCH would then leave
/// Stripe as the undo left it, and our record with the change).
pub fn change_key(id: &str, version: u64, undo: bool, change: &impl std::fmt::Debug) -> String {
    let call = uuid::Uuid::now_v7().simple();
    if undo {
        format!("{}_{call}", update_key(id, version, &("undo", change)))
    } else {
        format!("{}_{call}", update_key(id, version, change))
    }
}

/// Stripe calls for one account (one team's connection): cheap to clone, every clone
/// shares one connection pool.
#[derive(Clone)]
pub struct StripeGateway {
    client: Arc<Client>,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeGateway")
    }
}

/// Maps a Stripe failure to the API error a client should see: Stripe's throttling is
/// 429, a parameter Stripe refuses is 400 naming it, anything else is 502.
pub fn stripe_error(err: CallError) -> ApiError {
    match err {
        CallError::Stripe(errors, status) => {
            // Stripe's message may quote what was sent (an email, a name): neither logged
            // nor shown. Its code and parameter name say what went wrong.
            let code = errors.code.as_deref().unwrap_or("none");
            let param = errors.param.as_deref();
            tracing::warn!(
                status,
                kind = errors.kind.as_deref().unwrap_or(""),
                code,
                param = param.unwrap_or(""),
                "stripe refused a request"
            );
            match (status, errors.kind.as_deref()) {
                (429, _) => {
                    ApiError::rate_limited("Stripe is rate limiting requests; retry shortly")
                }
                (400 | 402, Some("invalid_request_error" | "card_error")) => {
                    let ours = param.and_then(our_param);
                    let what = match ours {
                        Some(field) => format!(" the value of {field}"),
                        None => String::new(),
                    };
                    let err = ApiError::bad_request(format!(
                        "Stripe rejected{what} (Stripe error code {code})"
                    ));
                    match ours {
                        Some(field) => err.with_param(field),
                        None => err,
                    }
                }
                _ => ApiError::stripe_failed(format!("Stripe returned an error ({status})")),
            }
        }
        CallError::Timeout | CallError::ClientError(_) => {
            tracing::warn!(error = %err, "stripe unreachable");
            ApiError::stripe_failed("Could not reach Stripe; retry the request")
        }
        CallError::JSONDeserialize(detail) => {
            tracing::error!(%detail, "unreadable stripe response");
            ApiError::stripe_failed("Stripe returned a response BillStack could not read")
        }
        CallError::ConfigError(detail) => ApiError::internal(format!("stripe config: {detail}")),
    }
}

/// Our name for a parameter Stripe names (`recurring[interval_count]` → `intervalCount`);
/// `None` for one we do not send as such.
fn our_param(stripe: &str) -> Option<&'static str> {
    let base = stripe.split('[').next().unwrap_or(stripe);
    Some(match (base, stripe) {
        (_, "recurring[interval]") => "interval",
        (_, "recurring[interval_count]") => "intervalCount",
        ("metadata", _) => "metadata",
        ("email", _) => "email",
        ("name", _) => "name",
        ("description", _) => "description",
        ("unit_amount", _) => "unitAmount",
        ("currency", _) => "currency",
        ("product", _) => "productId",
        ("active", _) => "isActive",
        _ => return None,
    })
}

/// Sends `request` with `strategy`, reading the answer as `T`: one of the lean structs
/// above, not the request's own (full) output type.
async fn send<T: miniserde::Deserialize>(
    client: &Client,
    request: &impl StripeRequest,
    strategy: RequestStrategy,
) -> Result<T, CallError> {
    request
        .build()
        .customize::<T>()
        .request_strategy(strategy)
        .send(client)
        .await
}

fn transient(err: &CallError) -> bool {
    match err {
        CallError::Stripe(_, status) => matches!(status, 409 | 429 | 500..=599),
        CallError::Timeout | CallError::ClientError(_) => true,
        _ => false,
    }
}

fn idempotency_key(key: &str) -> Result<IdempotencyKey, ApiError> {
    IdempotencyKey::new(key).map_err(|e| ApiError::internal(format!("idempotency key: {e:?}")))
}

impl StripeGateway {
    /// Calls with `secret_key` over `http`'s connection pool.
    pub fn new(http: &StripeHttp, secret_key: &Secret) -> Result<Self, ApiError> {
        let client = http
            .with_key(secret_key.expose())
            .map_err(|e| ApiError::internal(format!("stripe client: {e}")))?;
        Ok(Self {
            client: Arc::new(client),
        })
    }

    /// Runs `request` with our retry policy: up to [`ATTEMPTS`] tries on a transient failure,
    /// each with the same idempotency key (or none, for reads).
    async fn call<R, F, Fut>(&self, key: Option<&str>, send: F) -> Result<R, ApiError>
    where
        F: Fn(RequestStrategy) -> Fut,
        Fut: Future<Output = Result<R, CallError>>,
    {
        let strategy = match key {
            Some(key) => RequestStrategy::Idempotent(idempotency_key(key)?),
            None => RequestStrategy::Once,
        };
        let mut attempt = 1;
        loop {
            match send(strategy.clone()).await {
                Ok(value) => return Ok(value),
                Err(err)
                    if attempt < ATTEMPTS && transient(&err) && deadline::allows(RETRY_NEEDS) =>
                {
                    tracing::info!(attempt, error = %err, "retrying a stripe call");
                    attempt += 1;
                    // A kept-alive connection the far end closed while the function was
                    // frozen fails at once and is worth retrying at once, on a new one;
                    // Stripe's own "busy" answers get a pause first.
                    if matches!(err, CallError::Stripe(..)) {
                        tokio::time::sleep(BACKOFF).await;
                    }
                }
                Err(err) => return Err(stripe_error(err)),
            }
        }
    }

    /// The object at `path` (`/customers/cus_…`) as Stripe holds it now, as JSON; `None` if
    /// Stripe has no such object (or it was deleted).
    pub async fn retrieve_json(&self, path: &str) -> Result<Option<serde_json::Value>, ApiError> {
        self.get_json(path, None).await
    }

    /// One page of a Stripe list (`/customers`, with `limit`, `starting_after`, …), as JSON.
    pub async fn list_json(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<serde_json::Value, ApiError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        self.get_json(path, Some(&query))
            .await?
            .ok_or_else(|| ApiError::stripe_failed("Stripe answered a list with nothing"))
    }

    async fn get_json(
        &self,
        path: &str,
        query: Option<&str>,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let client = &*self.client;
        let mut attempt = 1;
        loop {
            match client.get_raw(path, query).await {
                Ok(body) => {
                    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
                        ApiError::stripe_failed(
                            "Stripe returned a response BillStack could not read",
                        )
                    })?;
                    return Ok((value["deleted"] != true).then_some(value));
                }
                Err(CallError::Stripe(_, 404)) => return Ok(None),
                Err(err)
                    if attempt < ATTEMPTS && transient(&err) && deadline::allows(RETRY_NEEDS) =>
                {
                    attempt += 1
                }
                Err(err) => return Err(stripe_error(err)),
            }
        }
    }

    /// Stripe customers with exactly this email (Stripe's filter is case-sensitive), newest
    /// first, at most 100.
    pub async fn customers_by_email(&self, email: &str) -> Result<Vec<StripeCustomer>, ApiError> {
        let client = &*self.client;
        let request = ListCustomer::new().email(email).limit(100);
        let list: CustomerList = self
            .call(None, |strategy| send(client, &request, strategy))
            .await?;
        Ok(list.data.into_iter().map(StripeCustomer::from).collect())
    }

    pub async fn create_customer(
        &self,
        email: &str,
        name: Option<&str>,
        metadata: HashMap<String, String>,
        idempotency_key: &str,
    ) -> Result<StripeCustomer, ApiError> {
        let client = &*self.client;
        let mut request = CreateCustomer::new().email(email).metadata(metadata);
        if let Some(name) = name {
            request = request.name(name);
        }
        let customer: CustomerFields = self
            .call(Some(idempotency_key), |strategy| {
                send(client, &request, strategy)
            })
            .await?;
        Ok(customer.into())
    }

    pub async fn update_customer(
        &self,
        id: &str,
        changes: &CustomerChanges,
        idempotency_key: &str,
    ) -> Result<StripeCustomer, ApiError> {
        let client = &*self.client;
        let mut request = UpdateCustomer::new(id);
        if let Some(email) = &changes.email {
            request = request.email(email);
        }
        if let Some(name) = &changes.name {
            // Stripe clears a field sent as an empty string.
            request = request.name(name.clone().unwrap_or_default());
        }
        if let Some(metadata) = &changes.metadata {
            request = request.metadata(metadata.clone());
        }
        let customer: CustomerFields = self
            .call(Some(idempotency_key), |strategy| {
                send(client, &request, strategy)
            })
            .await?;
        Ok(customer.into())
    }
}

impl StripeGateway {
    pub async fn create_product(
        &self,
        name: &str,
        description: Option<&str>,
        metadata: HashMap<String, String>,
        idempotency_key: &str,
    ) -> Result<StripeObject, ApiError> {
        let client = &*self.client;
        let mut request = CreateProduct::new(name).metadata(metadata);
        if let Some(description) = description {
            request = request.description(description);
        }
        self.call(Some(idempotency_key), |strategy| {
            send(client, &request, strategy)
        })
        .await
    }

    pub async fn update_product(
        &self,
        id: &str,
        changes: &ProductChanges,
        idempotency_key: &str,
    ) -> Result<StripeObject, ApiError> {
        let client = &*self.client;
        let mut request = UpdateProduct::new(id);
        if let Some(name) = &changes.name {
            request = request.name(name);
        }
        if let Some(description) = &changes.description {
            request = request.description(description.clone().unwrap_or_default());
        }
        if let Some(active) = changes.active {
            request = request.active(active);
        }
        if let Some(metadata) = &changes.metadata {
            request = request.metadata(metadata.clone());
        }
        self.call(Some(idempotency_key), |strategy| {
            send(client, &request, strategy)
        })
        .await
    }

    /// Deletes a product that has no prices (undoing a create whose write failed).
    pub async fn delete_product(&self, id: &str) -> Result<(), ApiError> {
        let client = &*self.client;
        let request = DeleteProduct::new(id);
        self.call(None, |strategy| send::<Unread>(client, &request, strategy))
            .await
            .map(|_| ())
    }

    pub async fn create_price(
        &self,
        new: &NewStripePrice<'_>,
        idempotency_key: &str,
    ) -> Result<StripeObject, ApiError> {
        let client = &*self.client;
        let currency: stripe_types::Currency =
            new.currency.parse().unwrap_or_else(|never| match never {});
        let mut request = CreatePrice::new(currency)
            .product(new.product)
            .unit_amount(new.unit_amount)
            .metadata(new.metadata.clone());
        if let Some((interval, count)) = new.recurring {
            let interval = match interval {
                Interval::Day => CreatePriceRecurringInterval::Day,
                Interval::Week => CreatePriceRecurringInterval::Week,
                Interval::Month => CreatePriceRecurringInterval::Month,
                Interval::Year => CreatePriceRecurringInterval::Year,
            };
            let mut recurring = CreatePriceRecurring::new(interval);
            recurring.interval_count = Some(u64::from(count));
            request = request.recurring(recurring);
        }
        self.call(Some(idempotency_key), |strategy| {
            send(client, &request, strategy)
        })
        .await
    }

    /// Changes a price's `active` flag and/or metadata (all Stripe lets change).
    pub async fn update_price(
        &self,
        id: &str,
        active: Option<bool>,
        metadata: Option<HashMap<String, String>>,
        idempotency_key: &str,
    ) -> Result<StripeObject, ApiError> {
        let client = &*self.client;
        let mut request = UpdatePrice::new(id);
        if let Some(active) = active {
            request = request.active(active);
        }
        if let Some(metadata) = metadata {
            request = request.metadata(metadata);
        }
        self.call(Some(idempotency_key), |strategy| {
            send(client, &request, strategy)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> ApiError {
        stripe_error(transport::api_error(
            http::StatusCode::BAD_REQUEST,
            body.as_bytes(),
        ))
    }

    #[test]
    fn stripe_refusals_name_our_parameter_and_never_quote_the_value() {
        let err = refused(
            r#"{"error": {"type": "invalid_request_error", "code": "parameter_invalid_integer", "param": "recurring[interval_count]", "message": "Invalid integer: 9999999 for jane@example.com"}}"#,
        );
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(err.param.as_deref(), Some("intervalCount"));
        assert!(
            !err.message.contains("9999999") && !err.message.contains("jane@"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("parameter_invalid_integer"),
            "{}",
            err.message
        );
        let err = refused(
            r#"{"error": {"type": "invalid_request_error", "param": "metadata[plan]", "message": "Invalid value pro-plan-secret"}}"#,
        );
        assert_eq!(err.param.as_deref(), Some("metadata"));
        assert!(!err.message.contains("pro-plan-secret"));
        let err = refused(
            r#"{"error": {"type": "invalid_request_error", "param": "expand[0]", "message": "No such thing"}}"#,
        );
        assert_eq!(err.param, None);
    }

    #[test]
    fn update_keys_name_the_version_and_change_and_change_keys_each_call() {
        let key = update_key("pc_1", 3, &"archive");
        assert_eq!(key, update_key("pc_1", 3, &"archive"));
        assert!(
            key.starts_with("bs_pc_1_v3_") && key.len() == "bs_pc_1_v3_".len() + 16,
            "{key}"
        );
        assert_ne!(key, update_key("pc_1", 4, &"archive"));
        assert_ne!(key, update_key("pc_1", 3, &"unarchive"));
        // A request's change gets a key of its own, which its undo does not share.
        let change = (Some(false), None::<HashMap<String, String>>);
        let first = change_key("pc_1", 3, false, &change);
        assert!(first.starts_with("bs_pc_1_v3_"), "{first}");
        assert_ne!(first, change_key("pc_1", 3, false, &change));
        assert_ne!(
            first.rsplit_once('_').unwrap().0,
            change_key("pc_1", 3, true, &change)
                .rsplit_once('_')
                .unwrap()
                .0
        );
    }
}
