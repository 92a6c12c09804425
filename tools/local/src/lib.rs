//! The local API: an HTTP server on loopback that turns each request into the very
//! `lambda_http` request API Gateway would hand a Lambda, and serves it with the same
//! router and handlers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use billstack::App;
use billstack::http::{serve, serve_team, serve_webhook};
use billstack::lambda_http::{Body, Request, RequestExt, Response};
use billstack::routing::{Matched, Resource, TeamResource, route};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves `request` with the handler of the function that owns its route, exactly as
/// that function's Lambda would.
pub async fn dispatch(app: &App, request: Request) -> Response<Body> {
    let matched = route(request.method(), request.uri().path());
    match matched {
        Ok(Matched::Webhook(_)) => serve_webhook(request, |req| webhooks::handle(app, req)).await,
        Ok(Matched::Team(r)) if r.resource == TeamResource::Stripe => {
            serve_team(app, request, |req| connection::handle(app, req)).await
        }
        Ok(Matched::Team(_)) => serve_team(app, request, |req| teams::handle(app, req)).await,
        Ok(Matched::Project(r)) if r.resource == Resource::Products => {
            serve(app, request, |req| products::handle(app, req)).await
        }
        Ok(Matched::Project(r)) if r.resource == Resource::Prices => {
            serve(app, request, |req| prices::handle(app, req)).await
        }
        // Unknown routes get the same 404/405 answer from any function.
        _ => serve(app, request, |req| customers::handle(app, req)).await,
    }
}

/// Turns an HTTP request into an API Gateway-style `lambda_http` request, with a fresh
/// request ID in its Lambda context.
pub async fn to_lambda_request(
    request: http::Request<hyper::body::Incoming>,
) -> Result<Request, hyper::Error> {
    let (parts, body) = request.into_parts();
    let bytes = body.collect().await?.to_bytes();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(err) => Body::Binary(err.into_bytes()),
        }
    };
    let mut context = billstack::lambda_http::Context::default();
    context.request_id = uuid::Uuid::new_v4().to_string();
    Ok(Request::from_parts(parts, body).with_lambda_context(context))
}

fn to_http_response(response: Response<Body>) -> http::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bin) => Bytes::from(bin),
        _ => Bytes::new(),
    };
    http::Response::from_parts(parts, Full::new(bytes))
}

/// The API's OpenAPI document, as committed (`cargo run -p billstack-openapi` writes it).
pub const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");
const API_HTML: &str = include_str!("../../../docs/api.html");
/// Swagger UI's files that `docs/api.html` loads, served from the npm package's folder.
const SWAGGER_FILES: [(&str, &str); 2] = [
    ("swagger-ui-bundle.js", "text/javascript"),
    ("swagger-ui.css", "text/css"),
];

fn plain(status: u16, content_type: &str, body: impl Into<Bytes>) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .unwrap_or_default()
}

/// The document, with this server as its server: what Swagger UI's "Try it out" and a
/// contract fuzzer call.
fn openapi_for(host: Option<&str>) -> String {
    let Some(host) = host.filter(|h| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
    }) else {
        return OPENAPI_JSON.to_owned();
    };
    match serde_json::from_str::<serde_json::Value>(OPENAPI_JSON) {
        Ok(mut doc) => {
            doc["servers"] = serde_json::json!([
                {"url": format!("http://{host}"), "description": "this local API"}
            ]);
            doc.to_string()
        }
        Err(_) => OPENAPI_JSON.to_owned(),
    }
}

/// What the local API serves beside the API itself: `/openapi.json` and the page at
/// `/docs/` that renders it.
fn documentation<B>(request: &http::Request<B>) -> Option<http::Response<Full<Bytes>>> {
    if request.method() != http::Method::GET {
        return None;
    }
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    match request.uri().path() {
        "/openapi.json" => Some(plain(200, "application/json", openapi_for(host))),
        "/docs" => Some(
            http::Response::builder()
                .status(308)
                .header(http::header::LOCATION, "/docs/")
                .body(Full::new(Bytes::new()))
                .unwrap_or_default(),
        ),
        "/docs/" => Some(plain(200, "text/html; charset=utf-8", API_HTML)),
        path => {
            let name = path.strip_prefix("/docs/")?;
            let (file, content_type) = SWAGGER_FILES.iter().find(|(f, _)| *f == name)?;
            Some(match devstack::swagger_ui() {
                Ok(dir) => match std::fs::read(dir.join(file)) {
                    Ok(bytes) => plain(200, content_type, bytes),
                    Err(err) => plain(500, "text/plain", format!("cannot read {file}: {err}")),
                },
                Err(err) => plain(
                    503,
                    "text/plain",
                    format!("Swagger UI is not installed: {err}"),
                ),
            })
        }
    }
}

/// Accepts connections on `listener` until the task is dropped.
pub async fn serve_http(listener: TcpListener, app: Arc<App>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                async move {
                    if let Some(page) = documentation(&request) {
                        return Ok::<_, Infallible>(page);
                    }
                    let response = match to_lambda_request(request).await {
                        Ok(request) => to_http_response(dispatch(&app, request).await),
                        Err(_) => http::Response::builder()
                            .status(400)
                            .body(Full::new(Bytes::from_static(
                                br#"{"error":"Could not read the request body"}"#,
                            )))
                            .unwrap_or_default(),
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A job queue of this process: give the `Jobs` to the App before it is shared, then
/// [`spawn_job_runner`] with the receiver.
pub fn local_jobs() -> (
    billstack::jobs::Jobs,
    tokio::sync::mpsc::UnboundedReceiver<billstack::jobs::JobMessage>,
) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    (billstack::jobs::Jobs::Local(sender), receiver)
}

/// Runs every job handed to `receiver` with the same code the backfill function runs, each
/// "invocation" given `budget`, one job at a time, until the sender goes.
pub fn spawn_job_runner(
    app: Arc<App>,
    mut receiver: tokio::sync::mpsc::UnboundedReceiver<billstack::jobs::JobMessage>,
    budget: std::time::Duration,
) {
    tokio::spawn(async move {
        while let Some(message) = receiver.recv().await {
            backfill::run_locally(&app, &message, budget).await;
        }
    });
}

/// Binds `addr` and serves in the background; returns the bound address.
pub async fn spawn_server(addr: SocketAddr, app: Arc<App>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve_http(listener, app));
    Ok(bound)
}
