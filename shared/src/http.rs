//! From a `lambda_http` request to a response, the same way in Lambda, in the local
//! server and in tests: route, authenticate, call the resource's handler, map errors,
//! and write one JSON log line.

use std::future::Future;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

use crate::app::App;
use crate::auth::{Principal, TeamPrincipal};
use crate::error::{ApiError, ErrorCode};
use crate::ids::{Id, Kind, ProjectId, TeamId};
use crate::model::Role;
use crate::routing::{
    Action, Matched, Resource, Route, TeamResource, TeamRoute, WebhookRoute, route,
};
use crate::store::{IdempotencyClaim, IdempotencyScope};
use sha2::{Digest, Sha256};

/// A routed, authenticated request, as a handler sees it.
pub struct ApiRequest {
    pub route: Route,
    pub principal: Principal,
    /// The raw query string (URL-encoded).
    pub query: Option<String>,
    pub body: Vec<u8>,
    /// On a create with the client's `Idempotency-Key`: the ID its new object gets, kept
    /// with the key.
    pub new_object: Option<NewObject>,
}

/// The ID a create under a client's `Idempotency-Key` gives its object. It is kept with
/// the key, so a retry that takes over an attempt that never finished (it died, or its
/// answer could not be kept) uses the same ID: its Stripe calls, whose idempotency keys
/// derive from the ID, replay, and it finds or makes the same record, never a second one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewObject {
    pub id: String,
    /// An earlier attempt with this ID may have got part or all of the way.
    pub retried: bool,
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
    /// The ID a create gives its new object: the one kept with the client's
    /// `Idempotency-Key`, else a new one.
    pub fn new_object_id<K: Kind>(&self) -> Id<K> {
        self.new_object
            .as_ref()
            .map_or_else(Id::generate, |o| Id::from(o.id.as_str()))
    }

    /// Whether an earlier attempt of this create (same `Idempotency-Key`, same request) may
    /// have made its object already.
    pub fn retried(&self) -> bool {
        self.new_object.as_ref().is_some_and(|o| o.retried)
    }

    /// The path's object ID (present for Get/Update/Delete routes).
    pub fn object_id(&self) -> &str {
        self.route.object_id.as_deref().unwrap_or_default()
    }

    pub fn project_id(&self) -> &ProjectId {
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
    pub fn object_id_of<K: Kind>(&self, resource: Resource) -> Result<Id<K>, ApiError> {
        debug_assert_eq!(resource.id_kind(), K::KIND);
        Id::parse(self.object_id()).ok_or_else(|| resource.not_found())
    }
}

/// A routed team-level request with its signed-in user, as the teams handlers see it.
pub struct TeamRequest {
    pub route: TeamRoute,
    pub principal: TeamPrincipal,
    /// Where this API is reached from outside (`https://api.example.com`): `PUBLIC_BASE_URL`,
    /// else the scheme and host the request came with.
    pub base_url: String,
    /// The raw query string (URL-encoded).
    pub query: Option<String>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for TeamRequest {
    // Never the body or headers: they may carry personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamRequest")
            .field("route", &self.route.name())
            .finish_non_exhaustive()
    }
}

impl TeamRequest {
    /// The path's team (empty on `/teams` itself).
    pub fn team_id(&self) -> &TeamId {
        static NONE: TeamId = TeamId::none();
        self.route.team_id.as_ref().unwrap_or(&NONE)
    }

    /// The path's object ID below the team (a user ID, a project or key ID).
    pub fn object_id(&self) -> &str {
        self.route.object_id.as_deref().unwrap_or_default()
    }

    /// The path's object ID, if it has the form of `resource`'s IDs; otherwise the 404 of
    /// a missing object, without a lookup.
    pub fn object_id_of<K: Kind>(&self, resource: TeamResource) -> Result<Id<K>, ApiError> {
        Id::parse(self.object_id()).ok_or_else(|| resource.not_found())
    }

    pub fn user_id(&self) -> &str {
        &self.principal.session.user_id
    }

    /// The caller's role in the path's team.
    pub fn role(&self) -> Option<Role> {
        self.principal.membership.as_ref().map(|m| m.role)
    }
}

/// A Stripe event as it arrived for a team's webhook: the raw body, exactly as received (it
/// is what the signature covers), and the `Stripe-Signature` header.
pub struct WebhookRequest {
    pub route: WebhookRoute,
    pub signature: Option<String>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("team_id", &self.route.team_id)
            .finish_non_exhaustive()
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

/// The client's `Idempotency-Key`, if it sent one: 1 to 255 visible ASCII characters. A key
/// that is not (bytes beyond ASCII included) is refused, never taken as no key.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error_response(err: &ApiError) -> Response<Body> {
    let mut response = json_response(err.status(), err.body_json());
    let headers = response.headers_mut();
    if let Some(secs) = err.retry_after {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(allow) = err
        .allow
        .as_deref()
        .and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert(http::header::ALLOW, allow);
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
    new_object: Option<NewObject>,
}

/// A client's `Idempotency-Key` on a create, with the fingerprint of the request it came
/// with (route and body), taken before the body moves on to the handler.
struct ClientKey {
    key: String,
    fingerprint: String,
    /// The ID the create would give its object (project resources).
    object_id: Option<String>,
}

impl ClientKey {
    fn new(route_name: &str, key: &str, body: &[u8], object_id: Option<String>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(route_name.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        let fingerprint = hex::encode(hasher.finalize());
        Self {
            key: key.to_owned(),
            fingerprint,
            object_id,
        }
    }
}

/// Checks a client's `Idempotency-Key` on a create: the first use runs, a retry of the
/// same request replays the first answer, the same key with another request is refused.
async fn claim_key(
    app: &App,
    scope: IdempotencyScope<'_>,
    client: &ClientKey,
) -> Result<Claim, ApiError> {
    let key = client.key.as_str();
    let claim = app
        .store
        .claim_idempotency_key(
            scope,
            key,
            &client.fingerprint,
            client.object_id.as_deref(),
            crate::clock::now_epoch(),
        )
        .await?;
    let (replay, new_object) = match claim {
        IdempotencyClaim::Claimed {
            object_id,
            taken_over,
        } => (
            None,
            object_id.map(|id| NewObject {
                id,
                retried: taken_over,
            }),
        ),
        IdempotencyClaim::Replay { status, body } => (
            Some(Answer {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                body,
                replayed: true,
            }),
            None,
        ),
        IdempotencyClaim::Mismatch => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyError,
                "This Idempotency-Key was already used with another request; use a new key for a new request",
            )
            .with_param("Idempotency-Key"));
        }
        IdempotencyClaim::InProgress => {
            return Err(ApiError::new(
                ErrorCode::IdempotencyInProgress,
                "A request with this Idempotency-Key is still in progress; retry shortly",
            ));
        }
    };
    Ok(Claim {
        key: key.to_owned(),
        replay,
        new_object,
    })
}

/// Runs `handler` under the client's `Idempotency-Key` (on creates only): a replay answers
/// the kept answer, a first use keeps the answer of a request that ran to its end. The
/// handler is given the new object's ID kept with the key, if any.
async fn with_idempotency<H, Fut>(
    app: &App,
    scope: IdempotencyScope<'_>,
    client: Option<ClientKey>,
    handler: H,
) -> Result<Answer, ApiError>
where
    H: FnOnce(Option<NewObject>) -> Fut,
    Fut: Future<Output = Result<ApiResponse, ApiError>>,
{
    let claim = match &client {
        Some(client) => Some(claim_key(app, scope, client).await?),
        None => None,
    };
    if let Some(replay) = claim.as_ref().and_then(|c| c.replay.clone()) {
        return Ok(replay);
    }
    let new_object = claim.as_ref().and_then(|c| c.new_object.clone());
    let result = handler(new_object).await.map(Answer::from);
    if let Some(claim) = claim {
        match &result {
            // Only answers of a request that ran to its end are kept, as Stripe does. Its
            // answer goes to the client even when keeping it fails (a 5xx would make the
            // client retry a create that succeeded); the claim then stays pending, so a
            // retry within its stale bound is told to wait (409 idempotency_in_progress),
            // and one after it takes over with the same object ID (`NewObject`).
            Ok(answer) => {
                if let Err(err) = app
                    .store
                    .complete_idempotency_key(
                        scope,
                        &claim.key,
                        answer.status.as_u16(),
                        &answer.body,
                    )
                    .await
                {
                    tracing::warn!(
                        code = err.code.as_str(),
                        "the answer of an idempotent request could not be kept"
                    );
                }
            }
            Err(_) => app.store.release_idempotency_key(scope, &claim.key).await,
        }
    }
    result
}

/// Serves one request with `handler`, which answers the routes of its resources (and 404s
/// the others). Authentication and authorization happen here, before the handler runs.
pub async fn serve<H, Fut>(app: &App, request: Request, handler: H) -> Response<Body>
where
    H: FnOnce(ApiRequest) -> Fut,
    Fut: Future<Output = Result<ApiResponse, ApiError>>,
{
    answer(request, |matched, request: Request| async move {
        let route = match matched {
            Matched::Project(route) => route,
            other => {
                return Err(ApiError::not_found(format!(
                    "No route for {}",
                    other.name()
                )));
            }
        };
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
        // As in Stripe, a key means something on a create only, and elsewhere is ignored.
        let idempotency_key = match route.action {
            Action::Create => idempotency_key(headers)?,
            _ => None,
        };
        let body = request.body().as_ref().to_vec();
        let project_id = route.project_id.clone();
        let client = idempotency_key.as_deref().map(|key| {
            let id = route.resource.id_kind().generate();
            ClientKey::new(&route.name(), key, &body, Some(id))
        });
        let mut api_request = ApiRequest {
            principal,
            query: request.uri().query().map(str::to_owned),
            body,
            route,
            new_object: None,
        };
        with_idempotency(
            app,
            IdempotencyScope::Project(&project_id),
            client,
            |new_object| {
                api_request.new_object = new_object;
                handler(api_request)
            },
        )
        .await
    })
    .await
}

/// Serves one team-level request with `handler`: sessions only, with the role the route
/// needs checked here, before the handler runs.
pub async fn serve_team<H, Fut>(app: &App, request: Request, handler: H) -> Response<Body>
where
    H: FnOnce(TeamRequest) -> Fut,
    Fut: Future<Output = Result<ApiResponse, ApiError>>,
{
    answer(request, |matched, request: Request| async move {
        let route = match matched {
            Matched::Team(route) => route,
            other => {
                return Err(ApiError::not_found(format!("No route for {}", other.name())));
            }
        };
        let headers = request.headers();
        let principal = app
            .auth
            .authenticate_team(&app.store, header(headers, "authorization"), &route)
            .await?;
        // Connecting Stripe needs no key of its own: a repeat stores the same connection.
        // Its body holds the secret key, so no fingerprint of it is ever kept.
        let idempotency_key =
            if route.action == Action::Create && route.resource != TeamResource::Stripe {
                idempotency_key(headers)?
            } else {
                None
            };
        if idempotency_key.is_some() && route.resource == TeamResource::ApiKeys {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "Idempotency-Key is not accepted when creating an API key: its secret is shown once and never stored, so no answer could be replayed",
            ));
        }
        let body = request.body().as_ref().to_vec();
        let client = idempotency_key
            .as_deref()
            .map(|key| ClientKey::new(&route.name(), key, &body, None));
        let user_id = principal.session.user_id.clone();
        let team_id = route.team_id.clone();
        let scope = match &team_id {
            Some(team_id) => IdempotencyScope::Team(team_id),
            None => IdempotencyScope::User(&user_id),
        };
        let base_url = app
            .public_base_url
            .clone()
            .unwrap_or_else(|| request_base_url(headers));
        let team_request = TeamRequest {
            principal,
            base_url,
            query: request.uri().query().map(str::to_owned),
            body,
            route,
        };
        with_idempotency(app, scope, client, |_| handler(team_request)).await
    })
    .await
}

/// Serves one webhook delivery with `handler`: no session or key (the handler checks the
/// signature), no `Idempotency-Key` (events carry their own IDs).
pub async fn serve_webhook<H, Fut>(request: Request, handler: H) -> Response<Body>
where
    H: FnOnce(WebhookRequest) -> Fut,
    Fut: Future<Output = Result<ApiResponse, ApiError>>,
{
    answer(request, |matched, request: Request| async move {
        let route = match matched {
            Matched::Webhook(route) => route,
            other => {
                return Err(ApiError::not_found(format!(
                    "No route for {}",
                    other.name()
                )));
            }
        };
        let webhook = WebhookRequest {
            signature: header(request.headers(), "stripe-signature").map(str::to_owned),
            body: request.body().as_ref().to_vec(),
            route,
        };
        handler(webhook).await.map(Answer::from)
    })
    .await
}

/// `scheme://host` of a request: API Gateway sets `X-Forwarded-Proto`; a request without it
/// came straight to the local server, over plain HTTP.
fn request_base_url(headers: &HeaderMap) -> String {
    let host = header(headers, "host")
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    let scheme = if header(headers, "x-forwarded-proto") == Some("https") {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// Routes `request`, runs `run` on the match, maps the outcome to a JSON response and
/// writes the one log line of the request.
async fn answer<F, Fut>(request: Request, run: F) -> Response<Body>
where
    F: FnOnce(Matched, Request) -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
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
        .map(Matched::name)
        .unwrap_or_else(|_| "unmatched".to_owned());
    let (team_id, project_id) = matched
        .as_ref()
        .map(|m| {
            (
                m.team_id().map(|id| id.to_string()).unwrap_or_default(),
                m.project_id().map(|id| id.to_string()).unwrap_or_default(),
            )
        })
        .unwrap_or_default();

    let deadline = request
        .lambda_context_ref()
        .and_then(|ctx| crate::deadline::from_lambda(ctx.deadline));
    let result = match matched {
        // Boxed: one allocation per request keeps the nesting of async types shallow
        // enough for rustc's layout queries wherever this future is awaited.
        Ok(matched) => crate::deadline::scope(deadline, Box::pin(run(matched, request))).await,
        Err(err) => Err(err),
    };

    let (status, response, error_code) = match result {
        Ok(ok) => {
            let mut response = json_response(ok.status, ok.body);
            if ok.replayed {
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            (ok.status, response, None)
        }
        Err(err) => (err.status(), error_response(&err), Some(err.code.as_str())),
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

/// [`run_lambda`] for the team-level function: every invocation through [`serve_team`].
pub async fn run_team_lambda<H, Fut>(handler: H) -> Result<(), lambda_http::Error>
where
    H: Fn(&'static App, TeamRequest) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<ApiResponse, ApiError>> + Send,
{
    init_tracing();
    let config = crate::config::Config::from_env()?;
    run_service(App::from_config(&config).await?, move |app, request| {
        serve_team(app, request, move |req| handler(app, req))
    })
    .await
}

/// [`run_lambda`] for the webhook function: every invocation through [`serve_webhook`].
pub async fn run_webhook_lambda<H, Fut>(handler: H) -> Result<(), lambda_http::Error>
where
    H: Fn(&'static App, WebhookRequest) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<ApiResponse, ApiError>> + Send,
{
    init_tracing();
    let config = crate::config::Config::from_env()?;
    run_service(App::from_config(&config).await?, move |app, request| {
        serve_webhook(request, move |req| handler(app, req))
    })
    .await
}

/// Serves every invocation with `app` and `handler` through [`serve`], until the runtime
/// stops.
pub async fn serve_lambda<H, Fut>(app: App, handler: H) -> Result<(), lambda_http::Error>
where
    H: Fn(&'static App, ApiRequest) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<ApiResponse, ApiError>> + Send,
{
    run_service(app, move |app, request| {
        serve(app, request, move |req| handler(app, req))
    })
    .await
}

/// Hands every invocation to `serve` with `app`, which lives as long as the process (as
/// Lambda keeps it).
async fn run_service<S, Fut>(app: App, serve: S) -> Result<(), lambda_http::Error>
where
    S: Fn(&'static App, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send,
{
    let app: &'static App = Box::leak(Box::new(app));
    lambda_http::run(lambda_http::service_fn(move |request: Request| async move {
        Ok::<_, lambda_http::Error>(serve(app, request).await)
    }))
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
