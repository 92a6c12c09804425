//! Stripe over HTTP/1.1 connections kept alive across calls and invocations.
//!
//! async-stripe's own client builds its hyper client with `pool_max_idle_per_host(0)` and
//! leaves `TCP_NODELAY` off, so every call opens a new TCP and TLS connection and, on a new
//! TLS connection, the request waits for the ACK of the handshake's last flight (Nagle).
//! Against a 10 ms round trip that cost 36 ms per call (docs/benchmarks.md, lever b). The
//! request builders of the async-stripe crates accept any [`StripeClient`], so this is that
//! client: the same requests and headers over a pooled hyper client with `TCP_NODELAY`.

use std::fmt::Write as _;
use std::time::Duration;

use ::stripe::RequestStrategy;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use stripe_client_core::{
    CustomizedStripeRequest, Outcome, StripeClient, StripeClientErr, StripeMethod,
};

const API_BASE: &str = "https://api.stripe.com/";
const STRIPE_VERSION: HeaderName = HeaderName::from_static("stripe-version");
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// A Stripe API client with a connection pool; cheap to share by reference. Without a key
/// (as [`StripeHttp::new`] makes it) it only serves as the pool that [`StripeHttp::with_key`]
/// clients share.
#[derive(Clone)]
pub struct StripeHttp {
    client: crate::outbound::HttpsClient,
    api_base: String,
    secret: Option<HeaderValue>,
    user_agent: HeaderValue,
    stripe_version: HeaderValue,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for StripeHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeHttp")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StripeHttp {
    /// `api_base`: another server than api.stripe.com (the emulator), `http` or `https`.
    /// `timeout` bounds each attempt, reading the whole response included.
    pub fn new(
        api_base: Option<&str>,
        timeout: Option<Duration>,
        user_agent: &str,
    ) -> Result<Self, CallError> {
        let api_base = match api_base {
            Some(base) => {
                let uri: http::Uri = base.parse().map_err(|e| {
                    CallError::ConfigError(format!("the Stripe API base {base:?} is invalid: {e}"))
                })?;
                if uri.scheme().is_none() || uri.authority().is_none() {
                    return Err(CallError::ConfigError(format!(
                        "the Stripe API base {base:?} is not an absolute URL"
                    )));
                }
                format!("{}/", base.trim_end_matches('/'))
            }
            None => API_BASE.to_owned(),
        };
        let user_agent = HeaderValue::try_from(user_agent)
            .map_err(|_| CallError::ConfigError("invalid user agent".into()))?;

        let client = crate::outbound::https_client();
        Ok(Self {
            client,
            api_base,
            secret: None,
            user_agent,
            stripe_version: HeaderValue::from_str(stripe_shared::version::VERSION.as_str())
                .map_err(|_| CallError::ConfigError("invalid Stripe API version".into()))?,
            timeout,
        })
    }

    /// A client that calls with `secret_key`, over this one's connection pool.
    pub fn with_key(&self, secret_key: &str) -> Result<Self, CallError> {
        let mut secret = HeaderValue::try_from(format!("Bearer {secret_key}"))
            .map_err(|_| CallError::ConfigError("the Stripe key is not a valid header".into()))?;
        secret.set_sensitive(true);
        Ok(Self {
            secret: Some(secret),
            ..self.clone()
        })
    }

    fn request(
        &self,
        method: StripeMethod,
        path: &str,
        query: Option<&str>,
        body: Option<String>,
        idempotency_key: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, CallError> {
        let mut uri = format!("{}v1{path}", self.api_base);
        if let Some(query) = query {
            let _ = write!(uri, "?{query}");
        }
        let method = match method {
            StripeMethod::Get => Method::GET,
            StripeMethod::Post => Method::POST,
            StripeMethod::Delete => Method::DELETE,
        };
        let secret = self
            .secret
            .clone()
            .ok_or_else(|| CallError::ConfigError("no Stripe key to call with".into()))?;
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, secret)
            .header(USER_AGENT, self.user_agent.clone())
            .header(STRIPE_VERSION, self.stripe_version.clone());
        if let Some(key) = idempotency_key {
            builder = builder.header(IDEMPOTENCY_KEY, key);
        }
        let body = match body {
            Some(body) => {
                builder = builder.header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                Bytes::from(body)
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(body))
            .map_err(|e| CallError::ClientError(e.to_string()))
    }

    /// `GET /v1{path}[?query]` once: the body of a 2xx answer, or Stripe's error.
    pub async fn get_raw(&self, path: &str, query: Option<&str>) -> Result<Bytes, CallError> {
        let request = self.request(StripeMethod::Get, path, query, None, None)?;
        match self
            .attempt(request, crate::deadline::cap(self.timeout))
            .await?
        {
            (status, _, body) if status.is_success() => Ok(body),
            (status, _, body) => Err(api_error(status, &body)),
        }
    }

    /// One attempt: the status, Stripe's `Stripe-Should-Retry` advice and the whole body.
    async fn attempt(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Option<bool>, Bytes), CallError> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| CallError::ClientError(crate::outbound::error_text(&e)))?;
            let status = response.status();
            let should_retry = response
                .headers()
                .get("stripe-should-retry")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::ClientError(e.to_string()))?
                .to_bytes();
            Ok((status, should_retry, body))
        };
        match timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .unwrap_or(Err(CallError::Timeout)),
            None => exchange.await,
        }
    }
}

/// A Stripe call's failure, with what the gateway needs of it. async-stripe's own error
/// type would carry Stripe's whole error object, with the payment intent, setup intent,
/// payment method and source it may name: their readers were a fifth of each function's
/// binary, for fields BillStack never reads.
#[derive(Debug)]
pub enum CallError {
    /// Stripe's error answer, with its HTTP status.
    Stripe(Refusal, u16),
    Timeout,
    ClientError(String),
    JSONDeserialize(String),
    ConfigError(String),
}

/// What is read of Stripe's error object: its type, code and parameter, never its message
/// (which may quote what was sent).
#[derive(Debug, Clone, Default, PartialEq, Eq, miniserde::Deserialize)]
pub struct Refusal {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub code: Option<String>,
    pub param: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct ErrorAnswer {
    error: Refusal,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Stripe(refusal, status) => write!(
                f,
                "Stripe answered {status} ({}, {})",
                refusal.kind.as_deref().unwrap_or("no type"),
                refusal.code.as_deref().unwrap_or("no code")
            ),
            CallError::Timeout => f.write_str("the Stripe call timed out"),
            CallError::ClientError(detail) => write!(f, "Stripe could not be reached: {detail}"),
            CallError::JSONDeserialize(detail) => write!(f, "unreadable Stripe answer: {detail}"),
            CallError::ConfigError(detail) => write!(f, "Stripe client settings: {detail}"),
        }
    }
}

impl std::error::Error for CallError {}

impl StripeClientErr for CallError {
    fn deserialize_err(msg: impl std::fmt::Display) -> Self {
        CallError::JSONDeserialize(msg.to_string())
    }
}

/// An error response's body as Stripe's error object.
pub(super) fn api_error(status: StatusCode, body: &[u8]) -> CallError {
    std::str::from_utf8(body)
        .ok()
        .and_then(|text| miniserde::json::from_str::<ErrorAnswer>(text).ok())
        .map(|e| CallError::Stripe(e.error, status.as_u16()))
        .unwrap_or_else(|| {
            CallError::JSONDeserialize(format!("unreadable Stripe error response ({status})"))
        })
}

impl StripeClient for StripeHttp {
    type Err = CallError;

    /// Runs the request's strategy: with [`RequestStrategy::Once`] or
    /// [`RequestStrategy::Idempotent`] that is one attempt; the retrying strategies retry
    /// as async-stripe's client does, with the same idempotency key each time.
    async fn execute(&self, request: CustomizedStripeRequest) -> Result<Bytes, CallError> {
        let (request, config) = request.into_pieces();
        let strategy = config.request_strategy.unwrap_or(RequestStrategy::Once);
        let timeout = config.timeout.or(self.timeout);
        let key = strategy.get_key();
        // Built once; every attempt sends the same request, idempotency key included.
        let http_request = self.request(
            request.method,
            &request.path,
            request.query.as_deref(),
            request.body,
            key.as_ref().map(|k| k.as_str()),
        )?;
        let mut tries = 0;
        let mut last_status = None;
        let mut last_should_retry = None;
        let mut last_error = CallError::ClientError("no attempt made".into());
        loop {
            match strategy.test(last_status, last_should_retry, tries) {
                Outcome::Stop => return Err(last_error),
                Outcome::Continue(backoff) => {
                    if let Some(backoff) = backoff {
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
            tries += 1;
            match self
                .attempt(http_request.clone(), crate::deadline::cap(timeout))
                .await
            {
                Ok((status, _, body)) if status.is_success() => return Ok(body),
                Ok((status, should_retry, body)) => {
                    last_status = Some(status.as_u16());
                    last_should_retry = should_retry;
                    last_error = api_error(status, &body);
                }
                Err(err) => last_error = err,
            }
        }
    }
}
