//! The one HTTP client for calls out of a function (Stripe, the identity provider's keys):
//! HTTP/1.1 over rustls with Mozilla's roots compiled in, connections kept alive, and
//! `TCP_NODELAY` (docs/benchmarks.md, lever b).

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Idle connections are dropped after this long: under the idle timeouts of Stripe's load
/// balancers, so a kept connection is rarely one the far end has already closed.
const POOL_IDLE: Duration = Duration::from_secs(50);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A pooled client for `https` and `http` URLs (the emulator and the development issuer
/// listen on plain HTTP on loopback).
pub fn https_client() -> HttpsClient {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    // Compiled-in Mozilla roots: nothing is read from disk, nothing parsed at start-up.
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .build(https)
}

/// hyper-util's error text ("client error (Connect)") hides its cause; name it.
pub fn error_text(err: &hyper_util::client::legacy::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// `GET url`: the body of a 200 answer of at most `max_bytes`, within `timeout`; any other
/// outcome as a log-safe description.
pub async fn get(
    client: &HttpsClient,
    url: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Bytes, String> {
    exchange(client, Method::GET, url, None, timeout, max_bytes).await
}

/// `POST url` with a JSON body: the body of a 200 answer, as [`get`] has it.
pub async fn post_json(
    client: &HttpsClient,
    url: &str,
    body: &serde_json::Value,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Bytes, String> {
    exchange(
        client,
        Method::POST,
        url,
        Some(body.to_string()),
        timeout,
        max_bytes,
    )
    .await
}

async fn exchange(
    client: &HttpsClient,
    method: Method,
    url: &str,
    body: Option<String>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Bytes, String> {
    let mut request = Request::builder()
        .method(method.clone())
        .uri(url)
        .header(http::header::ACCEPT, "application/json");
    if body.is_some() {
        request = request.header(http::header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
        .map_err(|e| format!("invalid URL {url}: {e}"))?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{method} {url}: {}", error_text(&e)))?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(format!("{method} {url}: status {status}"));
        }
        Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map(|body| body.to_bytes())
            .map_err(|e| format!("{method} {url}: {e}"))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("{method} {url}: no answer within {timeout:?}")))
}
