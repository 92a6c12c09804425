//! The Stripe gateway: the only code that speaks async-stripe. Handlers get plain structs
//! and [`ApiError`]s; every Stripe error becomes an API error in [`stripe_error`].
//!
//! Calls carry a per-attempt timeout and are retried once on a transient failure with the
//! same idempotency key (derived by the caller from the BillStack ID), so a retry can never
//! create a second object. Both attempts fit inside the function's own timeout.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use ::stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError};
use stripe_client_core::StripeRequest;
use stripe_core::customer::{CreateCustomer, ListCustomer, UpdateCustomer};
use stripe_shared::{ApiErrorsType, Customer};

use crate::error::ApiError;

/// How many times a call is tried in all on a transient failure.
const ATTEMPTS: u32 = 2;
const BACKOFF: Duration = Duration::from_millis(250);

/// A Stripe customer as BillStack needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeCustomer {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub metadata: HashMap<String, String>,
}

impl From<Customer> for StripeCustomer {
    fn from(c: Customer) -> Self {
        Self {
            id: c.id.to_string(),
            email: c.email,
            name: c.name,
            metadata: c.metadata.unwrap_or_default(),
        }
    }
}

/// Changes to a Stripe customer; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerChanges {
    pub email: Option<String>,
    /// `Some(None)` clears the name.
    pub name: Option<Option<String>>,
    /// Sent as Stripe's metadata parameter: merged into the object, `""` unsets a key.
    pub metadata: Option<HashMap<String, String>>,
}

#[derive(Clone)]
pub struct StripeGateway {
    client: Client,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeGateway")
    }
}

/// Maps a Stripe failure to the API error a client should see: Stripe's throttling is
/// 429, a parameter Stripe refuses is 400 naming it, anything else is 502.
pub fn stripe_error(err: StripeError) -> ApiError {
    match err {
        StripeError::Stripe(errors, status) => {
            let message = errors.message.clone().unwrap_or_default();
            tracing::warn!(status, kind = errors.type_.as_str(), %message, "stripe refused a request");
            match (status, &errors.type_) {
                (429, _) => {
                    ApiError::rate_limited("Stripe is rate limiting requests; retry shortly")
                }
                (400 | 402, ApiErrorsType::InvalidRequestError | ApiErrorsType::CardError) => {
                    let err =
                        ApiError::bad_request(format!("Stripe rejected the request: {message}"));
                    match errors.param.clone() {
                        Some(param) => err.with_param(param),
                        None => err,
                    }
                }
                _ => ApiError::stripe_failed(format!("Stripe returned an error ({status})")),
            }
        }
        StripeError::Timeout | StripeError::ClientError(_) => {
            tracing::warn!(error = %err, "stripe unreachable");
            ApiError::stripe_failed("Could not reach Stripe; retry the request")
        }
        StripeError::JSONDeserialize(detail) => {
            tracing::error!(%detail, "unreadable stripe response");
            ApiError::stripe_failed("Stripe returned a response BillStack could not read")
        }
        StripeError::ConfigError(detail) => ApiError::internal(format!("stripe config: {detail}")),
    }
}

fn transient(err: &StripeError) -> bool {
    match err {
        StripeError::Stripe(_, status) => matches!(status, 409 | 429 | 500..=599),
        StripeError::Timeout | StripeError::ClientError(_) => true,
        _ => false,
    }
}

fn idempotency_key(key: &str) -> Result<IdempotencyKey, ApiError> {
    IdempotencyKey::new(key).map_err(|e| ApiError::internal(format!("idempotency key: {e:?}")))
}

impl StripeGateway {
    /// `api_base`: the emulator's URL, or `None` for api.stripe.com. `timeout` bounds each
    /// attempt.
    pub fn new(
        secret_key: &str,
        api_base: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, ApiError> {
        let mut builder = ClientBuilder::new(secret_key).timeout(timeout).app_info(
            "BillStack",
            Some(env!("CARGO_PKG_VERSION").to_owned()),
            None,
        );
        if let Some(base) = api_base {
            builder = builder.url(base);
        }
        let client = builder
            .build()
            .map_err(|e| ApiError::internal(format!("stripe client: {e}")))?;
        Ok(Self { client })
    }

    /// Runs `request` with our retry policy: up to [`ATTEMPTS`] tries on a transient failure,
    /// each with the same idempotency key (or none, for reads).
    async fn call<R, F, Fut>(&self, key: Option<&str>, send: F) -> Result<R, ApiError>
    where
        F: Fn(RequestStrategy) -> Fut,
        Fut: Future<Output = Result<R, StripeError>>,
    {
        let strategy = match key {
            Some(key) => RequestStrategy::Idempotent(idempotency_key(key)?),
            None => RequestStrategy::Once,
        };
        let mut attempt = 1;
        loop {
            match send(strategy.clone()).await {
                Ok(value) => return Ok(value),
                Err(err) if attempt < ATTEMPTS && transient(&err) => {
                    tracing::info!(attempt, error = %err, "retrying a stripe call");
                    attempt += 1;
                    tokio::time::sleep(BACKOFF).await;
                }
                Err(err) => return Err(stripe_error(err)),
            }
        }
    }

    /// Stripe customers with exactly this email (Stripe's filter is case-sensitive), newest
    /// first, at most 100.
    pub async fn customers_by_email(&self, email: &str) -> Result<Vec<StripeCustomer>, ApiError> {
        let request = ListCustomer::new().email(email).limit(100);
        let list = self
            .call(None, |strategy| {
                request
                    .customize()
                    .request_strategy(strategy)
                    .send(&self.client)
            })
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
        let mut request = CreateCustomer::new().email(email).metadata(metadata);
        if let Some(name) = name {
            request = request.name(name);
        }
        let customer = self
            .call(Some(idempotency_key), |strategy| {
                request
                    .customize()
                    .request_strategy(strategy)
                    .send(&self.client)
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
        let customer = self
            .call(Some(idempotency_key), |strategy| {
                request
                    .customize()
                    .request_strategy(strategy)
                    .send(&self.client)
            })
            .await?;
        Ok(customer.into())
    }
}
