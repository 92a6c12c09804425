//! What the integration tests share: one DynamoDB Local and one local KMS (moto) per test
//! binary (or the ones at `DYNAMODB_ENDPOINT` / `AWS_ENDPOINT_URL_KMS`), one table, and per
//! test a fresh Stripe emulator, team (connected to the emulator's default account),
//! project and full-access key, so tests run in parallel without seeing each other's data.

pub mod openapi;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use billstack::App;
use billstack::admin::{self, NewApiKey, NewMember};
use billstack::config::{Config, IssuerConfig};
use billstack::ids::TeamId;
use billstack::lambda_http::{Body, Request};
use billstack::model::ApiKeyRecord;
use billstack::model::{Project, Role, Team};
use billstack::secrets::Kms;
use billstack::store::Store;
use devstack::{DynamoDbLocal, DynamoProxy, MotoServer};
use http::{Method, StatusCode};
use serde_json::Value;
use stripe_emulator::StripeEmulator;

pub use dev_issuer::{DevIssuer, TokenRequest};
pub use stripe_emulator::{Fault, FaultTiming};

const TABLE: &str = "billstack-test";

static DYNAMODB: OnceLock<Result<DynamoDbLocal, String>> = OnceLock::new();
static TABLE_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
static KMS: OnceLock<Result<MotoServer, String>> = OnceLock::new();
static KMS_KEY_READY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
/// The KMS key teams' secrets are encrypted under in tests.
pub const KMS_KEY: &str = "alias/billstack-tests";

/// The local KMS's endpoint: `AWS_ENDPOINT_URL_KMS` if set, else a moto server started for
/// this test binary (and stopped when it exits).
pub fn kms_endpoint() -> String {
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL_KMS")
        && !endpoint.is_empty()
    {
        return endpoint;
    }
    match KMS.get_or_init(|| MotoServer::start(0)) {
        Ok(server) => server.endpoint().to_owned(),
        Err(err) => panic!("cannot start the local KMS: {err}"),
    }
}

/// A KMS client of the local KMS, with [`KMS_KEY`] created on first use.
pub async fn kms() -> Kms {
    let endpoint = tokio::task::spawn_blocking(kms_endpoint)
        .await
        .expect("kms start task");
    let sdk = billstack::aws::settings(true).await;
    let kms = Kms::new(&sdk, Some(&endpoint), Some(KMS_KEY));
    KMS_KEY_READY
        .get_or_init(|| async {
            admin::create_kms_key(&kms, KMS_KEY)
                .await
                .expect("create the test KMS key");
        })
        .await;
    kms
}

/// DynamoDB Local's endpoint: `DYNAMODB_ENDPOINT` if set, else one started for this
/// test binary (and stopped when it exits).
pub fn dynamodb_endpoint() -> String {
    if let Ok(endpoint) = std::env::var("DYNAMODB_ENDPOINT")
        && !endpoint.is_empty()
    {
        return endpoint;
    }
    match DYNAMODB.get_or_init(|| DynamoDbLocal::start(0)) {
        Ok(local) => local.endpoint().to_owned(),
        Err(err) => panic!("cannot start DynamoDB Local: {err}"),
    }
}

/// A store on the shared test table, created on first use.
pub async fn store() -> Store {
    let endpoint = endpoint().await;
    let store = Store::connect(TABLE, Some(&endpoint)).await;
    TABLE_READY
        .get_or_init(|| async {
            store
                .create_table_if_missing()
                .await
                .expect("create test table");
        })
        .await;
    store
}

async fn endpoint() -> String {
    tokio::task::spawn_blocking(dynamodb_endpoint)
        .await
        .expect("dynamodb start task")
}

/// One test's world: its own Stripe emulator, team, project and full-access key.
pub struct TestEnv {
    pub app: Arc<App>,
    pub store: Store,
    pub stripe: StripeEmulator,
    /// What the handlers' DynamoDB calls go through: counts them, fails them on demand.
    /// (`store` above talks to DynamoDB Local directly, so assertions are not counted.)
    pub dynamo: DynamoProxy,
    pub team: Team,
    pub project: Project,
    /// A full-access key of the team.
    pub key: String,
    /// This env's own OIDC issuer, which the app trusts for sessions.
    pub issuer: DevIssuer,
    /// The user ID of the team's owner (a member with role `owner`).
    pub owner: String,
}

pub fn config(stripe_url: &str, auth_cache_ttl: Duration) -> Config {
    Config {
        table_name: TABLE.to_owned(),
        dynamodb_endpoint: None,
        stripe_api_base: Some(stripe_url.to_owned()),
        stripe_timeout: Duration::from_secs(5),
        auth_cache_ttl,
        sessions: None,
        kms_key_id: Some(KMS_KEY.to_owned()),
        kms_endpoint: Some(kms_endpoint()),
        stripe_key_cache_ttl: Duration::from_secs(300),
        public_base_url: None,
        backfill_queue_url: None,
    }
}

/// Sessions of `issuer`, with the audience it mints for by default.
pub fn issuer_config(issuer: &DevIssuer) -> IssuerConfig {
    IssuerConfig {
        issuer: issuer.url().to_owned(),
        audience: dev_issuer::DEFAULT_AUDIENCE.to_owned(),
        jwks_url: None,
    }
}

impl TestEnv {
    /// Tests revoke keys and expect the very next request to see it: no auth cache.
    pub async fn new() -> Self {
        Self::with_auth_cache(Duration::ZERO).await
    }

    /// With the warm-container auth cache as deployed.
    pub async fn with_auth_cache(ttl: Duration) -> Self {
        // Logs show up beside a failing test's output (`RUST_LOG` widens them, e.g. to grep a
        // whole run's logs for secrets).
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,billstack=info".to_owned());
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(filter.as_str())
            .try_init();
        let store = store().await;
        kms().await;
        let stripe = StripeEmulator::start(0)
            .await
            .expect("start stripe emulator");
        let dynamo = DynamoProxy::start(&endpoint().await)
            .await
            .expect("dynamodb proxy");
        let issuer = DevIssuer::start(0)
            .await
            .expect("start the development issuer");
        // The app is built exactly as a function's `main` builds it.
        let config = Config {
            dynamodb_endpoint: Some(dynamo.endpoint().to_owned()),
            sessions: Some(issuer_config(&issuer)),
            ..config(&stripe.url(), ttl)
        };
        let mut app = App::from_config(&config).await.expect("app");
        let (jobs, job_queue) = billstack_local::local_jobs();
        app.jobs = jobs;
        let app = Arc::new(app);
        // No time budget: every "invocation" runs one step, so jobs run over many.
        billstack_local::spawn_job_runner(app.clone(), job_queue, Duration::ZERO);
        let Seeded {
            team,
            project,
            key,
            owner,
        } = seed_team(&store, "Test team").await;
        connect_stripe(&app, &team.id, stripe_emulator::DEFAULT_SECRET_KEY).await;
        // The connection's check of the key is setup, not the test's own Stripe traffic.
        stripe.clear_requests();
        Self {
            app,
            store,
            stripe,
            dynamo,
            team,
            project,
            key,
            issuer,
            owner,
        }
    }

    /// A session token of `user_id` from this env's issuer.
    pub fn token(&self, user_id: &str) -> String {
        self.issuer.token_for(user_id)
    }

    /// A session token of the team's owner.
    pub fn owner_token(&self) -> String {
        self.token(&self.owner)
    }

    /// Adds `user_id` to this env's team with `role`.
    pub async fn add_member(&self, user_id: &str, role: Role) {
        admin::add_member(
            &self.store,
            &self.team.id,
            &NewMember {
                user_id: user_id.to_owned(),
                role,
                email: None,
            },
        )
        .await
        .expect("member");
    }

    /// Another key of this env's team.
    pub async fn key_with(&self, new: NewApiKey) -> (ApiKeyRecord, String) {
        let (record, secret) = admin::create_api_key(&self.store, &self.team.id, &new)
            .await
            .expect("key");
        (record, secret.expose().to_owned())
    }

    /// Another project of this env's team.
    pub async fn other_project(&self) -> Project {
        admin::create_project(&self.store, &self.team.id, "Other project")
            .await
            .expect("project")
    }

    /// Leaves an orphan in Stripe: a create of `resource` ("products" or "prices") with
    /// `body` reaches Stripe, our write of it fails and so does the undo in Stripe (a
    /// product's delete, a price's deactivation), so the object stays there, carrying our
    /// metadata, with no record. The client sees 503.
    pub async fn plant_orphan(&self, resource: &str, body: Value) {
        let (write, undo) = match resource {
            "products" => ("PutItem", "DELETE /v1/products/:id"),
            "prices" => ("TransactWriteItems", "POST /v1/prices/:id"),
            other => panic!("no orphans of {other}"),
        };
        self.dynamo.fail_next(write, 3);
        self.stripe
            .inject_fault(Fault::new(undo, 500).with_times(2));
        let (status, answer) = self
            .call(Method::POST, &self.path(resource), Some(body))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    }

    /// Moves a client key's claim in this project back past its stale bound, as if its
    /// attempt had died ten minutes ago.
    pub async fn age_idempotency_claim(&self, key: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        self.store
            .client()
            .update_item()
            .table_name(self.store.table())
            .key(
                "pk",
                AttributeValue::S(billstack::store::keys::project_partition(&self.project.id)),
            )
            .key("sk", AttributeValue::S(format!("IDEMPOTENCY#{key}")))
            .update_expression("SET claimedAt = :then")
            .expression_attribute_values(
                ":then",
                AttributeValue::N((billstack::clock::now_epoch() - 600).to_string()),
            )
            .send()
            .await
            .expect("age the claim");
    }

    pub fn path(&self, resource: &str) -> String {
        project_path(&self.team.id, &self.project.id, resource)
    }

    /// Sends a request with this env's full-access key.
    /// Creates an object with `POST /{resource}` and returns it (the answer's `customer`,
    /// `product` or `price`); panics unless the answer is 201.
    pub async fn create(&self, resource: &str, body: Value) -> Value {
        // Boxed: one more level of inlined futures overflows rustc's layout query depth.
        let (status, answer) =
            Box::pin(self.call(Method::POST, &self.path(resource), Some(body))).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer[resource.strip_suffix('s').unwrap_or(resource)].clone()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(Some(&self.key), method, path, body).await
    }

    /// Sends a request with `key` (or none), through the same dispatch as the local API.
    pub async fn call_as(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        self.call_raw(
            key.map(|k| format!("Bearer {k}")).as_deref(),
            method,
            path,
            body,
        )
        .await
    }

    /// Sends a request with a raw Authorization header value and a raw body.
    pub async fn call_raw(
        &self,
        authorization: Option<&str>,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self
            .call_with_headers(authorization, &[], method, path, body)
            .await;
        (status, body)
    }

    /// Creates in `resource` with the project's API key under a client `Idempotency-Key`;
    /// answers the response headers too.
    pub async fn create_with_key(
        &self,
        resource: &str,
        idempotency_key: &str,
        body: Value,
    ) -> (StatusCode, http::HeaderMap, Value) {
        self.call_with_headers(
            Some(&format!("Bearer {}", self.key)),
            &[("idempotency-key", idempotency_key)],
            Method::POST,
            &self.path(resource),
            Some(body.to_string()),
        )
        .await
    }

    /// Sends a request with extra headers; answers the response headers too.
    pub async fn call_with_headers(
        &self,
        authorization: Option<&str>,
        headers: &[(&str, &str)],
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut builder = http::Request::builder().method(method).uri(path);
        if let Some(auth) = authorization {
            builder = builder.header("authorization", auth);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let request: Request = builder
            .body(body.map_or(Body::Empty, Body::Text))
            .expect("request");
        send_full(&self.app, request).await
    }
}

/// A team seeded straight into the table: one project, a full-access key, an owner.
pub struct Seeded {
    pub team: Team,
    pub project: Project,
    /// The full-access key's raw secret.
    pub key: String,
    /// The owner's user ID (`owner_of_<team>`).
    pub owner: String,
}

/// Seeds a team named `name` with a project, a full-access key and an owner.
pub async fn seed_team(store: &Store, name: &str) -> Seeded {
    let team = admin::create_team(store, name).await.expect("team");
    let project = admin::create_project(store, &team.id, "Test project")
        .await
        .expect("project");
    let (_, secret) = admin::create_api_key(
        store,
        &team.id,
        &NewApiKey {
            name: "full".into(),
            ..Default::default()
        },
    )
    .await
    .expect("key");
    let owner = format!("owner_of_{}", team.id);
    admin::add_member(
        store,
        &team.id,
        &NewMember {
            user_id: owner.clone(),
            role: Role::Owner,
            email: None,
        },
    )
    .await
    .expect("owner");
    Seeded {
        team,
        project,
        key: secret.expose().to_owned(),
        owner,
    }
}

/// Connects `team_id` to the Stripe account of `secret_key`, as an owner's
/// `POST /stripe/connect` does.
pub async fn connect_stripe(app: &App, team_id: &TeamId, secret_key: &str) {
    let new = connection::Connect::from_keys(secret_key.to_owned(), None, None)
        .expect("a well-formed key");
    connection::connect_team(app, team_id, &new)
        .await
        .expect("connect Stripe");
}

/// Serves a `lambda_http` request and reads the JSON answer.
pub async fn send(app: &App, request: Request) -> (StatusCode, Value) {
    let (status, _, body) = send_full(app, request).await;
    (status, body)
}

/// Serves a `lambda_http` request; answers status, headers and the JSON body.
pub async fn send_full(app: &App, request: Request) -> (StatusCode, http::HeaderMap, Value) {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let sent = match request.body() {
        Body::Text(text) => Some(text.as_bytes().to_vec()),
        Body::Binary(bytes) => Some(bytes.clone()),
        _ => None,
    };
    let response = billstack_local::dispatch(app, request).await;
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "every answer is JSON"
    );
    let body = match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("JSON body"),
        Body::Binary(bytes) => serde_json::from_slice(bytes).expect("JSON body"),
        _ => Value::Null,
    };
    openapi::check_exchange(&method, &path, sent.as_deref(), status.as_u16(), &body);
    (status, response.headers().clone(), body)
}

pub fn project_path(team_id: &str, project_id: &str, resource: &str) -> String {
    format!("/api/billstack/teams/{team_id}/projects/{project_id}/{resource}")
}
