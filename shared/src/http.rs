//! From a `lambda_http` request to a response, the same way in Lambda, in the local
//! server and in tests: route, authenticate, call the resource's handler, map errors,
//! and write one JSON log line.

use std::future::Future;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

use crate::app::App;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routing::{Action, Resource, Route, route};
use crate::store::IdempotencyClaim;
use sha2::{Digest, Sha256};

/// A routed, authenticated request, as a handler sees it.
pub struct ApiRequest {
    pub route: Route,
    pub principal: Principal,
    /// The raw query string (URL-encoded).
    pub query: Option<String>,
    pub body: Vec<u8>,
    /// The client's `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
}

impl std::fmt::Debug for ApiRequest {
    // Never the body or headers: they may carry personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiRequest")
            .field("route", &self.route.name())
            .finish_non_exhaustive()
    }
}

impl ApiRequest {
    /// The path's object ID (present for Get/Update/Delete routes).
    pub fn object_id(&self) -> &str {
        self.route.object_id.as_deref().unwrap_or_default()
    }

    pub fn project_id(&self) -> &str {
        &self.route.project_id
    }

    /// Each function serves its own resource's routes; another's is a 404 there.
    pub fn expect_resource(&self, resource: Resource) -> Result<(), ApiError> {
        if self.route.resource == resource {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "No route for {}",
                self.route.name()
            )))
        }
    }

    /// The route's object ID, if it has the form of `resource`'s IDs; otherwise the 404 of a
    /// missing object (an ID of another form names nothing), without a lookup.
    pub fn object_id_of(&self, resource: Resource) -> Result<&str, ApiError> {
        let id = self.object_id();
        if resource.id_kind().matches(id) {
            Ok(id)
        } else {
            Err(resource.not_found())
        }
    }
}

/// A handler's answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiResponse {
    pub fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
        }
    }

    pub fn created(body: Value) -> Self {
        Self {
            status: StatusCode::CREATED,
            body,
        }
    }

    pub fn deleted() -> Self {
        Self::ok(serde_json::json!({"success": true}))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json_response(status: StatusCode, body: String, retry_after: Option<u32>) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = retry_after {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A response on its way out.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    body: String,
    replayed: bool,
}

impl From<ApiResponse> for Answer {
    fn from(response: ApiResponse) -> Self {
        Self {
            status: response.status,
            body: response.body.to_string(),
            replayed: false,
        }
    }
}

struct Claim {
    key: String,
    replay: Option<Answer>,
}

/// Checks a client's `Idempotency-Key` on a create: the first use runs, a retry of the
/// same request replays the first answer, the same key with another request is refused.
async fn claim_key(app: &App, route: &Route, key: &str, body: &[u8]) -> Result<Claim, ApiError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    let mut hasher = Sha256::new();
    hasher.update(route.name().as_bytes());
    hasher.update([0]);
    hasher.update(body);
    let fingerprint: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let claim = app
        .store
        .claim_idempotency_key(
            &route.project_id,
            key,
            &fingerprint,
            crate::clock::now_epoch(),
        )
        .await?;
    let replay = match claim {
        IdempotencyClaim::Claimed => None,
        IdempotencyClaim::Replay { status, body } => Some(Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
            replayed: true,
        }),
        IdempotencyClaim::Mismatch => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "This Idempotency-Key was already used with another request; use a new key for a new request",
            )
            .with_param("Idempotency-Key"));
        }
        IdempotencyClaim::InProgress => {
            return Err(ApiError::conflict(
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still in progress; retry shortly",
            ));
        }
    };
    Ok(Claim {
        key: key.to_owned(),
        replay,
    })
}

/// Serves one request with `handler`, which answers the routes of its resources (and 404s
/// the others). Authentication and authorization happen here, before the handler runs.
pub async fn serve<H, Fut>(app: &App, request: Request, handler: H) -> Response<Body>
where
    H: FnOnce(ApiRequest) -> Fut,
    Fut: Future<Output = Result<ApiResponse, ApiError>>,
{
    let started = Instant::now();
    let request_id = request
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .unwrap_or_default();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let matched = route(&method, &path);
    let route_name = matched
        .as_ref()
        .map(Route::name)
        .unwrap_or_else(|_| "unmatched".to_owned());
    let (team_id, project_id) = matched
        .as_ref()
        .map(|r| (r.team_id.clone(), r.project_id.clone()))
        .unwrap_or_default();

    let result = async {
        let route = matched?;
        let headers = request.headers();
        let principal = app
            .auth
            .authenticate(
                &app.store,
                header(headers, "authorization"),
                &route.team_id,
                &route.project_id,
                route.resource,
                route.action.access(),
            )
            .await?;
        let idempotency_key = header(headers, "idempotency-key").map(str::to_owned);
        let body = request.body().as_ref().to_vec();
        let claim = match (&idempotency_key, route.action) {
            (Some(key), Action::Create) => Some(claim_key(app, &route, key, &body).await?),
            _ => None,
        };
        if let Some(replay) = claim.as_ref().and_then(|c| c.replay.clone()) {
            return Ok(replay);
        }
        let project_id = route.project_id.clone();
        let api_request = ApiRequest {
            principal,
            query: request.uri().query().map(str::to_owned),
            idempotency_key,
            body,
            route,
        };
        let result = handler(api_request).await.map(Answer::from);
        if let Some(claim) = claim {
            match &result {
                // Only answers of a request that ran to its end are kept, as Stripe does.
                Ok(answer) => {
                    app.store
                        .complete_idempotency_key(
                            &project_id,
                            &claim.key,
                            answer.status.as_u16(),
                            &answer.body,
                        )
                        .await?
                }
                Err(_) => {
                    app.store
                        .release_idempotency_key(&project_id, &claim.key)
                        .await
                }
            }
        }
        result
    }
    .await;

    let (status, response, error_code) = match result {
        Ok(ok) => {
            let mut response = json_response(ok.status, ok.body, None);
            if ok.replayed {
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            (ok.status, response, None)
        }
        Err(err) => (
            err.status,
            json_response(err.status, err.body_json(), err.retry_after),
            Some(err.code),
        ),
    };
    tracing::info!(
        target: "billstack::request",
        request_id = %request_id,
        method = %method,
        route = %route_name,
        team_id = %team_id,
        project_id = %project_id,
        status = status.as_u16(),
        error_code = error_code.unwrap_or(""),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// A Lambda function's whole `main`: logs, config (fail fast on a bad one), clients built
/// once, then every invocation served by `handler` through [`serve`].
pub async fn run_lambda<H, Fut>(handler: H) -> Result<(), lambda_http::Error>
where
    H: Fn(&'static App, ApiRequest) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<ApiResponse, ApiError>> + Send,
{
    init_tracing();
    let config = crate::config::Config::from_env()?;
    serve_lambda(App::from_config(&config).await?, handler).await
}

/// Serves every invocation with `app` and `handler` through [`serve`], until the runtime
/// stops.
pub async fn serve_lambda<H, Fut>(app: App, handler: H) -> Result<(), lambda_http::Error>
where
    H: Fn(&'static App, ApiRequest) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<ApiResponse, ApiError>> + Send,
{
    // Lives as long as the process, as Lambda keeps it.
    let app: &'static App = Box::leak(Box::new(app));
    lambda_http::run(lambda_http::service_fn(
        move |request: Request| async move {
            Ok::<_, lambda_http::Error>(serve(app, request, |req| handler(app, req)).await)
        },
    ))
    .await
}

/// JSON logs to stdout (CloudWatch in Lambda), filtered by `RUST_LOG` (default `info`).
/// The AWS SDK's and hyper's own chatter stays at `warn`.
pub fn init_tracing() {
    let _ = tracing::subscriber::set_global_default(json_subscriber(std::io::stdout));
}

/// The JSON log subscriber every binary uses, writing to `writer` (tests capture it).
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "info,aws_smithy_runtime=warn,aws_config=warn,hyper=warn,h2=warn,rustls=warn",
        )
    });
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .with_writer(writer)
        .finish()
}
