//! A small, stateful Stripe emulator for customers, products and prices.
//!
//! It speaks Stripe's wire format (form-encoded requests with `metadata[k]=v`
//! brackets, JSON responses that async-stripe deserializes, Stripe's error
//! envelope, `Bearer sk_test_...` auth, `Idempotency-Key` replay) and keeps
//! its state in memory. Tests start it in-process on a free port:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let emulator = stripe_emulator::StripeEmulator::start(0).await?;
//! // point the Stripe client at emulator.url() ...
//! assert_eq!(emulator.request_count("POST /v1/customers"), 0);
//! # Ok(()) }
//! ```
//!
//! Choices worth knowing:
//! - A deleted customer or product answers 404 `resource_missing` to every
//!   request (real Stripe answers a retrieve of a deleted customer with a 200
//!   `{"id", "object", "deleted": true}` stub). It disappears from lists and from
//!   [`StripeEmulator::customers`]/[`StripeEmulator::products`], while
//!   [`StripeEmulator::customer`]/[`StripeEmulator::product`] return that deleted
//!   stub. Its id stays usable as a pagination cursor.
//! - Parameters Stripe accepts but the emulator does not model (`phone`,
//!   `lookup_key`, `tax_behavior`, ...) are refused like unknown ones, so nothing
//!   is silently ignored.
//! - Only successful (2xx) POST results are stored for an `Idempotency-Key`;
//!   validation errors and faults injected before apply are not, so a retry with
//!   the same key runs again. A fault injected after apply stores the success.
//! - Requests to `/_emulator/...` (the HTTP control endpoints) are neither
//!   recorded nor subject to faults.

mod accounts;
mod error;
pub mod events;
mod form;
mod ids;
mod store;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::accounts::{Account, Accounts, KeyKind};
pub use crate::accounts::{
    AccountKeys, DEFAULT_ACCOUNT_ID, DEFAULT_PUBLISHABLE_KEY, DEFAULT_SECRET_KEY,
};
use crate::error::{ApiError, Reply};
use crate::form::Form;
use crate::store::{IdempotentResult, Resource, Store};

/// Largest request body accepted (Stripe's own limit is far lower for these endpoints).
const MAX_BODY_BYTES: usize = 1 << 20;
/// Stripe refuses longer idempotency keys.
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// When an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultTiming {
    /// Before the request is applied: nothing changes (and nothing is stored for its
    /// idempotency key).
    #[default]
    BeforeApply,
    /// After the request is applied (and its result stored for its idempotency key):
    /// the change happened but the client sees the error, like a lost response.
    AfterApply,
}

/// Fail (or delay) the next `times` requests matching `route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `"POST /v1/customers/:id"` (a route pattern), `"POST /v1/customers/cus_123"`
    /// (one concrete path) or `"*"` (every `/v1` request).
    pub route: String,
    /// How many matching requests this fault affects; 0 does nothing.
    pub times: u32,
    /// The status answered (body: Stripe's error envelope: `api_error` for 5xx,
    /// `invalid_request_error` with code `rate_limit` for 429). 0 means "delay only,
    /// then answer normally".
    pub status: u16,
    /// Before or after the change is applied.
    pub timing: FaultTiming,
    /// Sleep this long before answering (before applying, for `BeforeApply`).
    pub delay: Option<Duration>,
}

impl Fault {
    /// Fails the next matching request with `status`, before it is applied.
    pub fn new(route: impl Into<String>, status: u16) -> Fault {
        Fault {
            route: route.into(),
            times: 1,
            status,
            timing: FaultTiming::BeforeApply,
            delay: None,
        }
    }

    /// The same fault for the next `times` matching requests.
    pub fn with_times(mut self, times: u32) -> Fault {
        self.times = times;
        self
    }

    pub fn with_timing(mut self, timing: FaultTiming) -> Fault {
        self.timing = timing;
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Fault {
        self.delay = Some(delay);
        self
    }
}

/// One `/v1` request as the emulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `"POST"`, `"GET"`, `"DELETE"`.
    pub method: String,
    /// Method and route pattern, the syntax `request_count` takes:
    /// `"POST /v1/customers/:id"` (for an unknown path: method and path).
    pub route: String,
    /// The request path, e.g. `/v1/customers/cus_123` (no query string).
    pub path: String,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// The status answered; 0 while the request is still being handled.
    pub status: u16,
}

#[derive(Debug, Default)]
struct Shared {
    accounts: Mutex<Accounts>,
    outbox: Mutex<events::Outbox>,
    wake: tokio::sync::Notify,
    log: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<Vec<Fault>>,
    /// TCP connections accepted so far.
    connections: AtomicUsize,
    /// Bumped to close every connection once it is idle.
    close_idle: tokio::sync::watch::Sender<u64>,
}

/// Locks a mutex, carrying on with the data should a previous holder have panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `"post  /v1/customers"` → `"POST /v1/customers"`.
fn normalize_route(route: &str) -> String {
    let route = route.trim();
    match route.split_once(char::is_whitespace) {
        Some((method, path)) => format!("{} {}", method.to_ascii_uppercase(), path.trim()),
        None => route.to_string(),
    }
}

/// Does `pattern` (normalized) cover a request?
fn route_matches(pattern: &str, method: &str, route: &str, path: &str) -> bool {
    pattern == "*"
        || pattern == route
        || pattern
            .strip_prefix(method)
            .and_then(|rest| rest.strip_prefix(' '))
            == Some(path)
}

impl Shared {
    fn record_start(&self, req: &ApiRequest, route: &str) -> usize {
        let mut log = lock(&self.log);
        log.push(RecordedRequest {
            method: req.method.clone(),
            route: route.to_string(),
            path: req.path.clone(),
            idempotency_key: req.idempotency_key.clone(),
            status: 0,
        });
        log.len() - 1
    }

    fn record_status(&self, index: usize, status: u16) {
        if let Some(r) = lock(&self.log).get_mut(index) {
            r.status = status;
        }
    }

    fn take_fault(&self, method: &str, route: &str, path: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let pos = faults
            .iter()
            .position(|f| f.times > 0 && route_matches(&f.route, method, route, path))?;
        let fault = faults.get_mut(pos)?;
        fault.times -= 1;
        let taken = Fault {
            times: 1,
            ..fault.clone()
        };
        if fault.times == 0 {
            faults.remove(pos);
        }
        Some(taken)
    }

    fn inject_fault(&self, mut fault: Fault) {
        if fault.times == 0 {
            return;
        }
        fault.route = normalize_route(&fault.route);
        lock(&self.faults).push(fault);
    }

    fn clear_faults(&self) -> usize {
        let mut faults = lock(&self.faults);
        let n = faults.len();
        faults.clear();
        n
    }

    fn request_count(&self, route: &str) -> usize {
        let pattern = normalize_route(route);
        lock(&self.log)
            .iter()
            .filter(|r| route_matches(&pattern, &r.method, &r.route, &r.path))
            .count()
    }
}

/// One account's objects, as tests inspect them.
pub struct AccountView<'a> {
    shared: &'a Shared,
    id: String,
}

impl AccountView<'_> {
    fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> Option<T> {
        lock(&self.shared.accounts)
            .get(&self.id)
            .map(|a| f(&a.store))
    }

    pub fn customer(&self, id: &str) -> Option<Value> {
        self.read(|s| s.customer_json(id)).flatten()
    }

    pub fn customers(&self) -> Vec<Value> {
        self.read(|s| s.customers.live().map(|c| c.to_json()).collect())
            .unwrap_or_default()
    }

    pub fn product(&self, id: &str) -> Option<Value> {
        self.read(|s| s.product_json(id)).flatten()
    }

    pub fn products(&self) -> Vec<Value> {
        self.read(|s| s.products.live().map(|p| p.to_json()).collect())
            .unwrap_or_default()
    }

    pub fn price(&self, id: &str) -> Option<Value> {
        self.read(|s| s.price_json_plain(id)).flatten()
    }

    pub fn prices(&self) -> Vec<Value> {
        self.read(|s| s.prices.live().map(|p| p.to_json()).collect())
            .unwrap_or_default()
    }
}

/// The running emulator; it stops serving when dropped.
#[derive(Debug)]
pub struct StripeEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
    deliveries: JoinHandle<()>,
}

impl Drop for StripeEmulator {
    fn drop(&mut self) {
        // Aborting the accept loop drops its listener and its JoinSet, which aborts
        // every open connection.
        self.server.abort();
        self.deliveries.abort();
    }
}

impl StripeEmulator {
    /// Binds 127.0.0.1:`port` (0 = a free port) and serves in a spawned tokio task
    /// until dropped. Must be called inside a tokio runtime.
    pub async fn start(port: u16) -> std::io::Result<StripeEmulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        let deliveries = tokio::spawn(deliver(Arc::clone(&shared)));
        Ok(StripeEmulator {
            shared,
            addr,
            server,
            deliveries,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `stripe::ClientBuilder::url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The default account's objects (the account of [`DEFAULT_SECRET_KEY`]).
    pub fn default_account(&self) -> AccountView<'_> {
        self.account(DEFAULT_ACCOUNT_ID)
    }

    /// The objects of account `id` (an unknown ID shows an empty account).
    pub fn account(&self, id: &str) -> AccountView<'_> {
        AccountView {
            shared: &self.shared,
            id: id.to_owned(),
        }
    }

    /// Opens a new account, with its own keys and objects.
    pub fn open_account(&self, name: Option<&str>) -> AccountKeys {
        lock(&self.shared.accounts).open(name)
    }

    /// The default account's customer as Stripe would return it; a deleted one as its
    /// `{"id", "object": "customer", "deleted": true}` stub.
    pub fn customer(&self, id: &str) -> Option<Value> {
        self.default_account().customer(id)
    }

    /// The default account's live customers, in creation order.
    pub fn customers(&self) -> Vec<Value> {
        self.default_account().customers()
    }

    /// The default account's product as Stripe would return it; a deleted one as its stub.
    pub fn product(&self, id: &str) -> Option<Value> {
        self.default_account().product(id)
    }

    /// The default account's live products, in creation order.
    pub fn products(&self) -> Vec<Value> {
        self.default_account().products()
    }

    pub fn price(&self, id: &str) -> Option<Value> {
        self.default_account().price(id)
    }

    /// The default account's prices, in creation order.
    pub fn prices(&self) -> Vec<Value> {
        self.default_account().prices()
    }

    /// Requests received so far (answered or in flight) matching `route`:
    /// `"POST /v1/customers"`, `"POST /v1/customers/:id"`, a concrete
    /// `"POST /v1/customers/cus_123"`, or `"*"` for all.
    pub fn request_count(&self, route: &str) -> usize {
        self.shared.request_count(route)
    }

    /// Every `/v1` request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Registers a webhook endpoint in account `account_id` for every event type; answers
    /// its ID and signing secret (`whsec_…`). `None` for an unknown account.
    pub fn add_webhook_endpoint(&self, account_id: &str, url: &str) -> Option<(String, String)> {
        let endpoint = events::Endpoint::new(url.to_owned(), Vec::new());
        let answer = (endpoint.id.clone(), endpoint.secret.clone());
        lock(&self.shared.accounts)
            .get_mut(account_id)?
            .endpoints
            .push(endpoint);
        Some(answer)
    }

    /// Every event of account `account_id`, oldest first.
    pub fn events(&self, account_id: &str) -> Vec<Value> {
        lock(&self.shared.accounts)
            .get(account_id)
            .map(|a| a.events.clone())
            .unwrap_or_default()
    }

    /// Holds deliveries back until [`StripeEmulator::release_deliveries`].
    pub fn hold_deliveries(&self) {
        lock(&self.shared.outbox).held = true;
    }

    /// Sends what was held: in reverse order and/or each twice, if asked.
    pub fn release_deliveries(&self, reverse: bool, duplicate: bool) {
        lock(&self.shared.outbox).release(reverse, duplicate);
        self.shared.wake.notify_one();
    }

    /// Every delivery attempt so far, in order.
    pub fn delivery_attempts(&self) -> Vec<events::DeliveryAttempt> {
        lock(&self.shared.outbox).attempts.clone()
    }

    /// Deliveries waiting (held, or due for a retry).
    pub fn pending_deliveries(&self) -> usize {
        lock(&self.shared.outbox).queue.len()
    }

    /// Forgets the requests received so far (a test's setup calls are not its own).
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Queues a fault; faults for the same request are used first-in, first-out.
    pub fn inject_fault(&self, fault: Fault) {
        self.shared.inject_fault(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.clear_faults();
    }

    /// TCP connections accepted so far: a client that keeps connections alive opens one
    /// for many requests.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Closes every open connection as soon as it is idle (a request in flight is answered
    /// first), as a load balancer closes idle keep-alive connections.
    pub fn close_idle_connections(&self) {
        self.shared
            .close_idle
            .send_modify(|generation| *generation += 1);
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Typically out of file descriptors: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let mut close = shared.close_idle.subscribe();
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |req| handle(Arc::clone(&shared), req));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = close.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// Sends queued deliveries one at a time, in order; a failed one is queued again after a
/// backoff, up to [`events::MAX_ATTEMPTS`] attempts.
async fn deliver(shared: Arc<Shared>) {
    let client = events::http_client();
    loop {
        let next = {
            let mut outbox = lock(&shared.outbox);
            if outbox.held {
                None
            } else {
                outbox.queue.pop_front()
            }
        };
        let Some(mut delivery) = next else {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            continue;
        };
        delivery.attempts += 1;
        let status = events::send(&client, &delivery).await;
        lock(&shared.outbox).attempts.push(events::DeliveryAttempt {
            event_id: delivery.event_id.clone(),
            event_type: delivery.kind.clone(),
            url: delivery.url.clone(),
            status,
            attempt: delivery.attempts,
        });
        if !(200..300).contains(&status) && delivery.attempts < events::MAX_ATTEMPTS {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                tokio::time::sleep(events::backoff(delivery.attempts)).await;
                lock(&shared.outbox).queue.push_back(delivery);
                shared.wake.notify_one();
            });
        }
    }
}

/// What the `/v1` handling needs from a request, owned so it can outlive the connection.
#[derive(Debug)]
struct ApiRequest {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Bytes,
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let err = ApiError::invalid("The request body could not be read or is too large.");
            return Ok(to_response(err.into_reply()));
        }
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return Ok(to_response(control(&shared, &method, &path, &body)));
    }
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let request = ApiRequest {
        method,
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        authorization: header("authorization"),
        idempotency_key: header("idempotency-key"),
        body,
    };
    // Handled in its own task, like a real server that finishes a request whose
    // client went away (a client timeout must not cancel a change half way).
    let reply = match tokio::spawn(process(shared, request)).await {
        Ok(reply) => reply,
        Err(_) => ApiError::new(
            500,
            "api_error",
            "The emulator failed to handle the request.",
        )
        .into_reply(),
    };
    Ok(to_response(reply))
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(&reply.body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&ids::request_id()) {
        headers.insert(HeaderName::from_static("request-id"), v);
    }
    for (name, value) in reply.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(n, v);
        }
    }
    response
}

/// `/v1/customers` → (`/v1/customers`, customers, no id);
/// `/v1/customers/cus_1` → (`/v1/customers/:id`, customers, `cus_1`).
fn classify(path: &str) -> (String, Option<(Resource, Option<&str>)>) {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", resource] => match Resource::from_segment(resource) {
            Some(r) => (path.to_string(), Some((r, None))),
            None => (path.to_string(), None),
        },
        ["v1", resource, id] if !id.is_empty() => match Resource::from_segment(resource) {
            Some(r) => (format!("/v1/{resource}/:id"), Some((r, Some(*id)))),
            None => (path.to_string(), None),
        },
        _ => (path.to_string(), None),
    }
}

async fn process(shared: Arc<Shared>, req: ApiRequest) -> Reply {
    let (route_path, _) = classify(&req.path);
    let route = format!("{} {}", req.method, route_path);
    let index = shared.record_start(&req, &route);
    let reply = match shared.take_fault(&req.method, &route, &req.path) {
        None => apply(&shared, &req),
        Some(fault) => {
            let delay = fault.delay.unwrap_or_default();
            match fault.timing {
                FaultTiming::BeforeApply => {
                    tokio::time::sleep(delay).await;
                    if fault.status == 0 {
                        apply(&shared, &req)
                    } else {
                        ApiError::injected(fault.status).into_reply()
                    }
                }
                FaultTiming::AfterApply => {
                    let applied = apply(&shared, &req);
                    tokio::time::sleep(delay).await;
                    if fault.status == 0 {
                        applied
                    } else {
                        ApiError::injected(fault.status).into_reply()
                    }
                }
            }
        }
    };
    shared.record_status(index, reply.status);
    reply
}

/// The account a request's key belongs to, or Stripe's 401 (403 for a restricted key
/// on `GET /v1/account`).
fn authenticate<'a>(
    accounts: &'a mut Accounts,
    req: &ApiRequest,
) -> Result<&'a mut Account, ApiError> {
    let key = accounts::bearer_key(req.authorization.as_deref())?;
    let (account, kind) = accounts
        .by_key(key)
        .ok_or_else(|| accounts::invalid_key(key))?;
    if kind == KeyKind::Restricted && req.path == "/v1/account" {
        return Err(accounts::permission_denied(key));
    }
    Ok(account)
}

/// Authenticates and runs one `/v1` request, with `Idempotency-Key` replay for POSTs.
fn apply(shared: &Shared, req: &ApiRequest) -> Reply {
    // One lock over check, apply and store: concurrent requests with one key run one at a time.
    let mut accounts = lock(&shared.accounts);
    let account = match authenticate(&mut accounts, req) {
        Ok(account) => account,
        Err(err) => return err.into_reply(),
    };
    if req.path == "/v1/account" {
        return match req.method.as_str() {
            "GET" => Reply::ok(account.to_json()),
            method => ApiError::unrecognized_url(method, &req.path).into_reply(),
        };
    }
    let form = Form::parse(req.query.as_bytes(), &req.body);
    if let Some(reply) = account_api(account, req, &form) {
        return reply;
    }
    let (_, target) = classify(&req.path);
    let kind = event_kind(&req.method, target);
    // A deletion's event carries the object as it was.
    let before = match (kind, target) {
        (Some(k), Some((Resource::Customers, Some(id)))) if k.ends_with(".deleted") => {
            account.store.customer_json(id)
        }
        (Some(k), Some((Resource::Products, Some(id)))) if k.ends_with(".deleted") => {
            account.store.product_json(id)
        }
        _ => None,
    };
    let (reply, fresh) = run(&mut account.store, req, &form, target);
    if let Some(kind) = kind.filter(|_| fresh && reply.is_success()) {
        let object = before.unwrap_or_else(|| reply.body.clone());
        let event = events::event(kind, object, req.idempotency_key.as_deref());
        let body = event.to_string();
        let event_id = event["id"].as_str().unwrap_or_default().to_owned();
        let mut outbox = lock(&shared.outbox);
        for endpoint in account.endpoints.iter().filter(|e| e.wants(kind)) {
            outbox.queue.push_back(events::Delivery {
                event_id: event_id.clone(),
                kind: kind.to_owned(),
                url: endpoint.url.clone(),
                secret: endpoint.secret.clone(),
                body: body.clone(),
                attempts: 0,
            });
        }
        drop(outbox);
        account.events.push(event);
        shared.wake.notify_one();
    }
    reply
}

/// The event type of a successful request: `customer.created` for `POST /v1/customers`.
fn event_kind(method: &str, target: Option<(Resource, Option<&str>)>) -> Option<&'static str> {
    Some(match (method, target?) {
        ("POST", (Resource::Customers, None)) => "customer.created",
        ("POST", (Resource::Customers, Some(_))) => "customer.updated",
        ("DELETE", (Resource::Customers, Some(_))) => "customer.deleted",
        ("POST", (Resource::Products, None)) => "product.created",
        ("POST", (Resource::Products, Some(_))) => "product.updated",
        ("DELETE", (Resource::Products, Some(_))) => "product.deleted",
        ("POST", (Resource::Prices, None)) => "price.created",
        ("POST", (Resource::Prices, Some(_))) => "price.updated",
        _ => return None,
    })
}

/// `/v1/webhook_endpoints` and `/v1/events` of the account; `None` for other paths.
fn account_api(account: &mut Account, req: &ApiRequest, form: &Form) -> Option<Reply> {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let reply = match (req.method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "webhook_endpoints"]) => {
            let url = match form.scalar("url") {
                Ok(Some(url)) if url.starts_with("http://") || url.starts_with("https://") => url,
                Ok(_) => return Some(ApiError::missing_param("url").into_reply()),
                Err(err) => return Some(err.into_reply()),
            };
            let enabled = match form.list("enabled_events") {
                Ok(list) => list,
                Err(err) => return Some(err.into_reply()),
            };
            let endpoint = events::Endpoint::new(url, enabled);
            let answer = endpoint.to_json(true);
            account.endpoints.push(endpoint);
            Reply::ok(answer)
        }
        ("GET", ["v1", "webhook_endpoints"]) => Reply::ok(json!({
            "object": "list",
            "url": "/v1/webhook_endpoints",
            "has_more": false,
            "data": account.endpoints.iter().rev().map(|e| e.to_json(false)).collect::<Vec<_>>(),
        })),
        ("DELETE", ["v1", "webhook_endpoints", id]) => {
            let before = account.endpoints.len();
            account.endpoints.retain(|e| e.id != *id);
            if account.endpoints.len() == before {
                ApiError::no_such("webhook_endpoint", id).into_reply()
            } else {
                Reply::ok(json!({"id": id, "object": "webhook_endpoint", "deleted": true}))
            }
        }
        ("GET", ["v1", "events"]) => {
            let limit = form
                .integer("limit")
                .ok()
                .flatten()
                .unwrap_or(10)
                .clamp(1, 100) as usize;
            let kind = form.scalar("type").ok().flatten();
            let data: Vec<&Value> = account
                .events
                .iter()
                .rev()
                .filter(|e| kind.as_deref().is_none_or(|k| e["type"] == k))
                .take(limit + 1)
                .collect();
            Reply::ok(json!({
                "object": "list",
                "url": "/v1/events",
                "has_more": data.len() > limit,
                "data": data.into_iter().take(limit).collect::<Vec<_>>(),
            }))
        }
        ("GET", ["v1", "events", id]) => match account.events.iter().find(|e| e["id"] == *id) {
            Some(event) => Reply::ok(event.clone()),
            None => ApiError::no_such("event", id).into_reply(),
        },
        _ => return None,
    };
    Some(reply)
}

/// Runs one object request, with `Idempotency-Key` replay for POSTs; `true` beside the
/// reply when it was applied now (not replayed).
fn run(
    store: &mut Store,
    req: &ApiRequest,
    form: &Form,
    target: Option<(Resource, Option<&str>)>,
) -> (Reply, bool) {
    let key = match &req.idempotency_key {
        Some(k) if req.method == "POST" && !k.is_empty() => k.clone(),
        _ => return (store.dispatch(&req.method, &req.path, target, form), true),
    };
    if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        let err = ApiError::invalid(format!(
            "Idempotency-Key header can be at most {MAX_IDEMPOTENCY_KEY_LEN} characters long."
        ));
        return (err.into_reply(), false);
    }
    let params = form.canonical();
    if let Some(previous) = store.idempotency.get(&key) {
        let error = if previous.method != req.method || previous.path != req.path {
            Some(format!(
                "Keys for idempotent requests can only be used for the same endpoint they were \
                 first used for ('{} {}' vs '{} {}'). Try using a key other than '{key}' if you \
                 meant to execute a different request.",
                previous.method, previous.path, req.method, req.path
            ))
        } else if previous.params != params {
            Some(format!(
                "Keys for idempotent requests can only be used with the same parameters they were \
                 first used with. Try using a key other than '{key}' if you meant to execute a \
                 different request."
            ))
        } else {
            None
        };
        let mut reply = match error {
            Some(message) => ApiError::new(400, "idempotency_error", message).into_reply(),
            None => {
                let mut replay = Reply::with_status(previous.status, previous.body.clone());
                replay
                    .headers
                    .push(("idempotent-replayed", "true".to_string()));
                replay
            }
        };
        reply.headers.push(("idempotency-key", key));
        return (reply, false);
    }
    let mut reply = store.dispatch(&req.method, &req.path, target, form);
    if reply.is_success() {
        store.idempotency.insert(
            key.clone(),
            IdempotentResult {
                method: req.method.clone(),
                path: req.path.clone(),
                params,
                status: reply.status,
                body: reply.body.clone(),
            },
        );
    }
    reply.headers.push(("idempotency-key", key));
    (reply, true)
}

// ---------------------------------------------------------------- HTTP control endpoints

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FaultSpec {
    route: String,
    #[serde(default = "one")]
    times: u32,
    #[serde(default = "internal_error")]
    status: u16,
    #[serde(default)]
    timing: TimingSpec,
    delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

fn internal_error() -> u16 {
    500
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TimingSpec {
    #[default]
    Before,
    After,
}

fn control_error(status: u16, message: impl Into<String>) -> Reply {
    ApiError::new(status, "invalid_request_error", message).into_reply()
}

fn control(shared: &Shared, method: &str, path: &str, body: &[u8]) -> Reply {
    match (method, path) {
        ("POST", "/_emulator/faults") => {
            let spec: FaultSpec = match serde_json::from_slice(body) {
                Ok(spec) => spec,
                Err(e) => return control_error(400, format!("Invalid fault: {e}")),
            };
            if spec.route.trim().is_empty() {
                return control_error(400, "Invalid fault: route must not be empty");
            }
            if spec.status != 0 && !(400..=599).contains(&spec.status) {
                return control_error(400, "Invalid fault: status must be 0 or 400-599");
            }
            let fault = Fault {
                route: normalize_route(&spec.route),
                times: spec.times,
                status: spec.status,
                timing: match spec.timing {
                    TimingSpec::Before => FaultTiming::BeforeApply,
                    TimingSpec::After => FaultTiming::AfterApply,
                },
                delay: spec.delay_ms.map(Duration::from_millis),
            };
            let echo = json!({
                "route": fault.route,
                "times": fault.times,
                "status": fault.status,
                "timing": if fault.timing == FaultTiming::AfterApply { "after" } else { "before" },
                "delayMs": spec.delay_ms,
            });
            shared.inject_fault(fault);
            Reply::ok(echo)
        }
        ("POST", "/_emulator/accounts") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct NewAccount {
                name: Option<String>,
            }
            let spec: NewAccount = if body.iter().all(u8::is_ascii_whitespace) {
                NewAccount { name: None }
            } else {
                match serde_json::from_slice(body) {
                    Ok(spec) => spec,
                    Err(e) => return control_error(400, format!("Invalid account: {e}")),
                }
            };
            let keys = lock(&shared.accounts).open(spec.name.as_deref());
            Reply::with_status(201, keys.to_json())
        }
        ("POST", "/_emulator/deliveries/hold") => {
            lock(&shared.outbox).held = true;
            Reply::ok(json!({"held": true}))
        }
        ("POST", "/_emulator/deliveries/release") => {
            #[derive(Deserialize, Default)]
            #[serde(deny_unknown_fields)]
            struct Release {
                #[serde(default)]
                order: Option<String>,
                #[serde(default)]
                duplicate: bool,
            }
            let spec: Release = if body.iter().all(u8::is_ascii_whitespace) {
                Release::default()
            } else {
                match serde_json::from_slice(body) {
                    Ok(spec) => spec,
                    Err(e) => return control_error(400, format!("Invalid release: {e}")),
                }
            };
            let reverse = match spec.order.as_deref() {
                None | Some("forward") => false,
                Some("reverse") => true,
                Some(other) => {
                    return control_error(
                        400,
                        format!("Invalid release: order {other:?} is not forward or reverse"),
                    );
                }
            };
            let mut outbox = lock(&shared.outbox);
            let released = outbox.queue.len() * if spec.duplicate { 2 } else { 1 };
            outbox.release(reverse, spec.duplicate);
            drop(outbox);
            shared.wake.notify_one();
            Reply::ok(json!({"released": released}))
        }
        ("GET", "/_emulator/deliveries") => {
            let outbox = lock(&shared.outbox);
            Reply::ok(json!({
                "held": outbox.held,
                "pending": outbox.queue.len(),
                "attempts": outbox.attempts.iter().map(|a| json!({
                    "eventId": a.event_id, "type": a.event_type, "url": a.url,
                    "status": a.status, "attempt": a.attempt,
                })).collect::<Vec<_>>(),
            }))
        }
        ("DELETE", "/_emulator/faults") => Reply::ok(json!({ "cleared": shared.clear_faults() })),
        ("GET", "/_emulator/requests") => {
            let log = lock(&shared.log);
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for r in log.iter() {
                *counts.entry(r.route.as_str()).or_default() += 1;
            }
            Reply::ok(json!({ "counts": counts, "total": log.len() }))
        }
        _ => control_error(
            404,
            format!("Unrecognized emulator control URL ({method}: {path})."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keys() {
        use crate::accounts::mask_key;
        assert_eq!(
            mask_key("sk_live_abcdefghijkl1234"),
            "sk_live_************1234"
        );
        assert_eq!(mask_key("hunter2"), "*******");
        assert_eq!(mask_key("sk_live_short"), "sk_live_*****");
        assert!(!mask_key("supersecretvalue9876").contains("supersecret"));
    }

    #[test]
    fn classifies_routes() {
        assert_eq!(classify("/v1/customers").0, "/v1/customers");
        let (route, target) = classify("/v1/prices/price_1");
        assert_eq!(route, "/v1/prices/:id");
        assert_eq!(target, Some((Resource::Prices, Some("price_1"))));
        assert_eq!(classify("/v1/invoices").1, None);
        assert_eq!(
            classify("/v1/customers/cus_1/sources").0,
            "/v1/customers/cus_1/sources"
        );
    }

    #[test]
    fn matches_routes() {
        let p = normalize_route("post   /v1/customers/:id ");
        assert_eq!(p, "POST /v1/customers/:id");
        assert!(route_matches(
            &p,
            "POST",
            "POST /v1/customers/:id",
            "/v1/customers/cus_1"
        ));
        assert!(!route_matches(
            &p,
            "GET",
            "GET /v1/customers/:id",
            "/v1/customers/cus_1"
        ));
        let concrete = "POST /v1/customers/cus_1";
        assert!(route_matches(
            concrete,
            "POST",
            "POST /v1/customers/:id",
            "/v1/customers/cus_1"
        ));
        assert!(!route_matches(
            concrete,
            "POST",
            "POST /v1/customers/:id",
            "/v1/customers/cus_2"
        ));
        assert!(route_matches(
            "*",
            "DELETE",
            "DELETE /v1/products/:id",
            "/v1/products/p"
        ));
    }

    #[test]
    fn keys_belong_to_accounts() {
        let mut accounts = Accounts::default();
        let opened = accounts.open(Some("Team B"));
        let mut id = |auth: Option<&str>, path: &str| {
            let request = ApiRequest {
                method: "GET".into(),
                path: path.into(),
                query: String::new(),
                authorization: auth.map(str::to_owned),
                idempotency_key: None,
                body: Bytes::new(),
            };
            authenticate(&mut accounts, &request)
                .map(|a| a.keys.id.clone())
                .map_err(|e| (e.status, e.message))
        };
        let default_key = format!("Bearer {DEFAULT_SECRET_KEY}");
        assert_eq!(
            id(Some(&default_key), "/v1/customers"),
            Ok(DEFAULT_ACCOUNT_ID.to_owned())
        );
        let secret = format!("bearer {}", opened.secret_key);
        assert_eq!(id(Some(&secret), "/v1/account"), Ok(opened.id.clone()));
        let restricted = format!("Bearer {}", opened.restricted_key);
        assert_eq!(
            id(Some(&restricted), "/v1/customers"),
            Ok(opened.id.clone())
        );
        assert_eq!(
            id(Some(&restricted), "/v1/account").map_err(|e| e.0),
            Err(403)
        );
        assert_eq!(
            id(Some("Bearer sk_live_abcdefghijkl9999"), "/v1/customers"),
            Err((
                401,
                "Invalid API Key provided: sk_live_************9999".to_owned()
            ))
        );
        assert_eq!(
            id(Some("Bearer sk_test_123"), "/v1/customers").map_err(|e| e.0),
            Err(401)
        );
        let (status, none) = id(None, "/v1/customers").unwrap_err();
        assert_eq!(status, 401);
        assert!(
            none.starts_with("You did not provide an API key."),
            "{none}"
        );
        assert!(id(Some("Basic sk_test_123"), "/v1/customers").is_err());
    }
}
