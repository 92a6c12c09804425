//! A pass-through in front of DynamoDB Local that counts requests by operation, can fail
//! the next N calls of an operation, and can hold the next call of one at a pause point
//! until the test releases it, so tests can prove what happens when our write fails after
//! Stripe answered or meets another request's, and the benchmark can count calls. It forwards every byte
//! to the real server: it is not a mock.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Default)]
struct State {
    counts: HashMap<String, usize>,
    /// operation → (remaining, status, error body, whether the call is applied first)
    faults: HashMap<String, Fault>,
    /// operation → the pause point its next call stops at ([`DynamoProxy::hold_next`]).
    holds: HashMap<String, HeldCall>,
}

/// The proxy's side of a [`Hold`]: it says when the call arrived, then waits for release.
struct HeldCall {
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// A pause point: the next call of an operation, stopped at the proxy before DynamoDB sees
/// it, until the test releases it. With it, a test puts one request's write after another
/// request's whole run, deterministically (no sleeping and hoping).
pub struct Hold {
    reached: Option<oneshot::Receiver<()>>,
    release: Option<oneshot::Sender<()>>,
}

impl Hold {
    /// Waits until the held call has arrived (and is being held).
    pub async fn reached(&mut self) {
        if let Some(reached) = self.reached.take() {
            let _ = reached.await;
        }
    }

    /// Lets the held call go on to DynamoDB.
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

impl Drop for Hold {
    // A hold dropped unreleased (a failed test) lets its call go rather than hang it.
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

/// A running proxy; dropping it stops it.
pub struct DynamoProxy {
    endpoint: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for DynamoProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The operation of a DynamoDB request: `X-Amz-Target: DynamoDB_20120810.GetItem` → `GetItem`.
fn operation<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("unknown")
        .to_owned()
}

impl DynamoProxy {
    /// Listens on a free loopback port and forwards to `upstream` (e.g. DynamoDB Local).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (client, upstream, state) = (client.clone(), upstream.clone(), shared.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let (client, upstream, state) =
                            (client.clone(), upstream.clone(), state.clone());
                        async move {
                            Ok::<_, Infallible>(forward(request, &client, &upstream, &state).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            endpoint,
            state,
            task,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Requests seen per operation (`GetItem`, `Query`, `TransactWriteItems`, ...).
    pub fn counts(&self) -> HashMap<String, usize> {
        self.state
            .lock()
            .map(|s| s.counts.clone())
            .unwrap_or_default()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.counts().get(operation).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.counts().values().sum()
    }

    pub fn reset_counts(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.counts.clear();
        }
    }

    /// Answers the next `times` calls of `operation` with DynamoDB's `InternalServerError`
    /// (HTTP 500), without forwarding them.
    pub fn fail_next(&self, operation: &str, times: u32) {
        self.answer_next(operation, times, 500, INTERNAL_ERROR.to_owned());
    }

    /// Answers the next `times` `TransactWriteItems` calls as DynamoDB does when another
    /// transaction holds one of their `items` items: cancelled, with `TransactionConflict`
    /// as the reason of the last item and `None` for the others.
    pub fn conflict_next_transactions(&self, times: u32, items: usize) {
        let mut reasons = vec![r#"{"Code":"None"}"#; items.saturating_sub(1)];
        reasons.push(
            r#"{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}"#,
        );
        let body = format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled (injected by DynamoProxy)","CancellationReasons":[{}]}}"#,
            reasons.join(",")
        );
        self.answer_next("TransactWriteItems", times, 400, body);
    }

    /// Forwards the next `times` calls of `operation` (DynamoDB applies them) and then
    /// answers `InternalServerError`: a response lost on the way back, which the SDK retries.
    pub fn lose_next_answers(&self, operation: &str, times: u32) {
        self.insert_fault(
            operation,
            Fault {
                remaining: times,
                status: 500,
                body: INTERNAL_ERROR.to_owned(),
                applied: true,
            },
        );
    }

    /// Holds the next call of `operation` (`TransactWriteItems`, `GetItem`, ...) at the proxy
    /// until the returned [`Hold`] is released.
    pub fn hold_next(&self, operation: &str) -> Hold {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        if let Ok(mut state) = self.state.lock() {
            state.holds.insert(
                operation.to_owned(),
                HeldCall {
                    reached: reached_tx,
                    release: release_rx,
                },
            );
        }
        Hold {
            reached: Some(reached_rx),
            release: Some(release_tx),
        }
    }

    fn answer_next(&self, operation: &str, times: u32, status: u16, body: String) {
        self.insert_fault(
            operation,
            Fault {
                remaining: times,
                status,
                body,
                applied: false,
            },
        );
    }

    fn insert_fault(&self, operation: &str, fault: Fault) {
        if let Ok(mut state) = self.state.lock() {
            state.faults.insert(operation.to_owned(), fault);
        }
    }
}

async fn forward(
    request: Request<hyper::body::Incoming>,
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    state: &Mutex<State>,
) -> Response<Full<Bytes>> {
    let op = operation(&request);
    let (fault, held) = state
        .lock()
        .map(|mut s| {
            *s.counts.entry(op.clone()).or_default() += 1;
            let held = s.holds.remove(&op);
            let fault = s.faults.get_mut(&op).filter(|f| f.remaining > 0).map(|f| {
                f.remaining -= 1;
                f.clone()
            });
            (fault, held)
        })
        .unwrap_or_default();
    // Held after its fate is decided: faults set while it waits are for the calls after it.
    if let Some(held) = held {
        let _ = held.reached.send(());
        let _ = held.release.await;
    }
    let lost = match fault {
        Some(fault) if !fault.applied => return response(fault.status, fault.body.into()),
        lost => lost,
    };
    let (mut parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return response(
            502,
            Bytes::from_static(b"proxy: could not read the request"),
        );
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{upstream}{path}").parse() else {
        return response(502, Bytes::from_static(b"proxy: bad upstream"));
    };
    parts.uri = uri;
    match client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(answer) => {
            let (parts, body) = answer.into_parts();
            match (body.collect().await, lost) {
                (Ok(_), Some(fault)) => response(fault.status, fault.body.into()),
                (Ok(bytes), None) => Response::from_parts(parts, Full::new(bytes.to_bytes())),
                (Err(_), _) => response(502, Bytes::from_static(b"proxy: upstream body failed")),
            }
        }
        Err(_) => response(502, Bytes::from_static(b"proxy: upstream unreachable")),
    }
}

const INTERNAL_ERROR: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected by DynamoProxy"}"#;

/// An injected answer for the next `remaining` calls of an operation.
#[derive(Debug, Clone)]
struct Fault {
    remaining: u32,
    status: u16,
    body: String,
    /// Forwarded (and applied by DynamoDB) before the injected answer replaces the real one.
    applied: bool,
}

fn response(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}
