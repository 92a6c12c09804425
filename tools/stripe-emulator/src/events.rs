//! Events, as Stripe emits them: every change the emulator makes (a customer, product or
//! price created, updated or deleted) becomes an event of Stripe's shape in its account
//! (`GET /v1/events`), delivered to each of the account's webhook endpoints
//! (`/v1/webhook_endpoints`) whose `enabled_events` include its type, signed with the
//! endpoint's `whsec_` secret (`Stripe-Signature: t=…,v1=…`), asynchronously, and retried on
//! a non-2xx answer or a failed connection. Tests can hold deliveries and release them in
//! reverse order and/or twice each.

use std::collections::VecDeque;
use std::time::Duration;

use aws_lc_rs::hmac;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::ids;

/// The API version events are stamped with.
pub const API_VERSION: &str = "2025-09-30.clover";
/// Attempts per delivery (Stripe retries for three days; the emulator, quickly).
pub const MAX_ATTEMPTS: u32 = 5;
const RETRY_AFTER: Duration = Duration::from_millis(200);

/// A webhook endpoint of an account.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub enabled_events: Vec<String>,
    pub created: i64,
}

impl Endpoint {
    pub fn new(url: String, enabled_events: Vec<String>) -> Self {
        let token = ids::object_id("x");
        Self {
            id: ids::object_id("we"),
            secret: format!("whsec_{}", token.trim_start_matches("x_").repeat(2)),
            url,
            enabled_events: if enabled_events.is_empty() {
                vec!["*".to_owned()]
            } else {
                enabled_events
            },
            created: ids::now(),
        }
    }

    pub fn wants(&self, kind: &str) -> bool {
        self.enabled_events.iter().any(|e| e == "*" || e == kind)
    }

    /// As Stripe answers it; the secret only when `with_secret` (Stripe shows it on create).
    pub fn to_json(&self, with_secret: bool) -> Value {
        let mut value = json!({
            "id": self.id,
            "object": "webhook_endpoint",
            "url": self.url,
            "enabled_events": self.enabled_events,
            "status": "enabled",
            "api_version": API_VERSION,
            "created": self.created,
            "livemode": false,
        });
        if with_secret {
            value["secret"] = json!(self.secret);
        }
        value
    }
}

/// The event of a change: `kind` such as `customer.updated`, `object` as it now is.
pub(crate) fn event(kind: &str, object: Value, idempotency_key: Option<&str>) -> Value {
    json!({
        "id": ids::object_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": ids::now(),
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 0,
        "request": {"id": ids::request_id(), "idempotency_key": idempotency_key},
        "type": kind,
    })
}

/// `Stripe-Signature` for `body` with `secret` at `timestamp`.
pub fn signature(body: &str, secret: &str, timestamp: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(tag.as_ref()))
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub event_id: String,
    pub kind: String,
    pub url: String,
    pub secret: String,
    pub body: String,
    pub attempts: u32,
}

/// What became of a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub event_id: String,
    pub event_type: String,
    pub url: String,
    /// The HTTP status answered; 0 when the endpoint could not be reached.
    pub status: u16,
    pub attempt: u32,
}

/// Deliveries waiting, and whether they are held back.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub queue: VecDeque<Delivery>,
    pub held: bool,
    pub attempts: Vec<DeliveryAttempt>,
}

impl Outbox {
    /// Releases held deliveries, in reverse order and/or each twice if asked.
    pub fn release(&mut self, reverse: bool, duplicate: bool) {
        let mut queue: Vec<Delivery> = self.queue.drain(..).collect();
        if reverse {
            queue.reverse();
        }
        if duplicate {
            queue = queue.into_iter().flat_map(|d| [d.clone(), d]).collect();
        }
        self.queue = queue.into();
        self.held = false;
    }
}

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends one delivery; the status answered, 0 if none.
pub(crate) async fn send(client: &HttpClient, delivery: &Delivery) -> u16 {
    let request = http::Request::post(&delivery.url)
        .header("content-type", "application/json; charset=utf-8")
        .header(
            "user-agent",
            "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        )
        .header(
            "stripe-signature",
            signature(&delivery.body, &delivery.secret, ids::now()),
        )
        .body(Full::new(Bytes::from(delivery.body.clone())));
    let Ok(request) = request else { return 0 };
    match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
        Ok(Ok(response)) => response.status().as_u16(),
        _ => 0,
    }
}

/// How long a failed delivery waits before its next attempt.
pub(crate) fn backoff(attempts: u32) -> Duration {
    RETRY_AFTER * 2u32.saturating_pow(attempts.saturating_sub(1))
}
