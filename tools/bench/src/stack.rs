//! What the functions run against: DynamoDB Local behind the counting proxy, the Stripe
//! emulator behind a connection-counting relay, and a seeded team, project and API key.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use billstack::admin::{self, NewApiKey, NewMember};
use billstack::model::Role;
use billstack::store::Store;
use dev_issuer::{DevIssuer, TokenRequest};
use devstack::DynamoDbLocal;
use stripe_emulator::StripeEmulator;

use crate::proxy::{DynamoProxy, TcpRelay};
use crate::spec::{Credentials, Vars};
use crate::stats::Calls;

pub const TABLE: &str = "billstack-bench";
pub const STRIPE_KEY: &str = "sk_test_billstack_bench";
const JVM_WARM_UP_CALLS: usize = 1000;
/// The seeded owner of the bench team, whose session the session kinds send.
const BENCH_USER: &str = "bench_user";

pub struct Stack {
    pub dynamo_proxy: DynamoProxy,
    pub stripe: StripeEmulator,
    pub stripe_relay: TcpRelay,
    /// The raw SDK client of the GetItem baseline, through the same proxy as the functions.
    raw: aws_sdk_dynamodb::Client,
    team_id: String,
    project_id: String,
    pub credentials: Credentials,
    /// Signs the sessions; the functions fetch its JWKS at their first session request.
    issuer: DevIssuer,
    // Fields drop in order: DynamoDB Local stops after everything that talks to it.
    _dynamodb: DynamoDbLocal,
}

impl Stack {
    pub async fn start() -> Result<Stack, String> {
        let dynamodb = tokio::task::spawn_blocking(|| DynamoDbLocal::start(0))
            .await
            .map_err(|e| format!("DynamoDB Local start task: {e}"))??;
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, dynamodb.port()));
        let dynamo_proxy = DynamoProxy::start(upstream).await?;

        // Seeding goes straight to DynamoDB Local, so the proxy counts only the benchmark.
        let store = Store::connect(TABLE, Some(dynamodb.endpoint())).await;
        store
            .create_table_if_missing()
            .await
            .map_err(|e| format!("create table: {e}"))?;
        let team = admin::create_team(&store, "Bench team")
            .await
            .map_err(|e| format!("seed team: {e}"))?;
        let project = admin::create_project(&store, &team.id, "Bench project")
            .await
            .map_err(|e| format!("seed project: {e}"))?;
        let (_, secret) = admin::create_api_key(
            &store,
            &team.id,
            &NewApiKey {
                name: "bench".into(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("seed API key: {e}"))?;

        let issuer = DevIssuer::start(0)
            .await
            .map_err(|e| format!("development issuer: {e}"))?;
        admin::add_member(
            &store,
            &team.id,
            &NewMember {
                user_id: BENCH_USER.to_owned(),
                role: Role::Owner,
                email: None,
            },
        )
        .await
        .map_err(|e| format!("seed member: {e}"))?;
        let session_token = issuer
            .mint(&TokenRequest {
                expires_in: Some(dev_issuer::MAX_EXPIRES_IN),
                ..TokenRequest::for_user(BENCH_USER)
            })
            .map_err(|e| format!("mint a session: {e}"))?;

        // DynamoDB Local is a JVM: its first thousand requests run slower while it compiles
        // them, and the first function measured would pay for that alone.
        for _ in 0..JVM_WARM_UP_CALLS {
            store
                .get_project(&project.id)
                .await
                .map_err(|e| format!("warm-up: {e}"))?;
        }
        let raw = Store::connect(TABLE, Some(&dynamo_proxy.url()))
            .await
            .client()
            .clone();
        let stripe = StripeEmulator::start(0)
            .await
            .map_err(|e| format!("Stripe emulator: {e}"))?;
        let stripe_relay = TcpRelay::start(stripe.addr(), None, Duration::ZERO).await?;
        Ok(Stack {
            dynamo_proxy,
            stripe,
            stripe_relay,
            raw,
            team_id: team.id,
            project_id: project.id,
            credentials: Credentials {
                api_key: secret.expose().to_owned(),
                session_token,
            },
            issuer,
            _dynamodb: dynamodb,
        })
    }

    /// Our configuration, as the template sets it, pointed at the local stack.
    pub fn function_env(&self) -> Vec<(String, String)> {
        vec![
            ("TABLE_NAME".into(), TABLE.into()),
            ("DYNAMODB_ENDPOINT".into(), self.dynamo_proxy.url()),
            ("STRIPE_SECRET_KEY".into(), STRIPE_KEY.into()),
            ("STRIPE_API_BASE".into(), self.stripe_relay.url()),
            ("AUTH_ISSUER".into(), self.issuer.url().to_owned()),
            ("AUTH_AUDIENCE".into(), dev_issuer::DEFAULT_AUDIENCE.into()),
        ]
    }

    pub fn vars(&self) -> Vars {
        Vars::from([
            ("team".to_owned(), self.team_id.clone()),
            ("project".to_owned(), self.project_id.clone()),
        ])
    }

    pub fn dynamo_calls(&self) -> Calls {
        self.dynamo_proxy.counts().snapshot()
    }

    /// Stripe requests so far, by route (`POST /v1/customers`).
    pub fn stripe_calls(&self) -> Calls {
        let mut calls = Calls::new();
        for request in self.stripe.requests() {
            *calls.entry(request.route).or_default() += 1;
        }
        calls
    }

    /// One raw SDK `GetItem`; the item must exist.
    pub async fn raw_get_item(&self, pk: &str, sk: &str) -> Result<(), String> {
        let out = self
            .raw
            .get_item()
            .table_name(TABLE)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "raw GetItem: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                )
            })?;
        match out.item {
            Some(_) => Ok(()),
            None => Err(format!("raw GetItem: no item at {pk} / {sk}")),
        }
    }
}
