//! What the functions run against: DynamoDB Local behind the counting proxy, the Stripe
//! emulator behind a connection-counting relay, a local KMS (moto) behind another counting
//! proxy, and a seeded team (connected to the emulator's default account), project and key.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use billstack::admin::{self, NewApiKey, NewMember};
use billstack::model::Role;
use billstack::secrets::Kms;
use billstack::store::Store;
use dev_issuer::{DevIssuer, TokenRequest};
use devstack::{DynamoDbLocal, MotoServer};
use stripe_emulator::StripeEmulator;

use crate::proxy::{DynamoProxy, TcpRelay};
use crate::spec::{Credentials, Vars};
use crate::stats::Calls;

pub const TABLE: &str = "billstack-bench";
/// The bench team's webhook signing secret.
const WEBHOOK_SECRET: &str = "whsec_billstackBenchSigningSecret00000000";
/// The KMS key teams' Stripe keys are encrypted under.
const KMS_KEY: &str = "alias/billstack-bench";
const JVM_WARM_UP_CALLS: usize = 1000;
/// The seeded owner of the bench team, whose session the session kinds send.
const BENCH_USER: &str = "bench_user";

pub struct Stack {
    pub dynamo_proxy: DynamoProxy,
    pub stripe: StripeEmulator,
    pub stripe_relay: TcpRelay,
    /// In front of the local KMS: counts its calls by operation (`Decrypt`).
    pub kms_proxy: DynamoProxy,
    /// The raw SDK client of the GetItem baseline, through the same proxy as the functions.
    raw: aws_sdk_dynamodb::Client,
    team_id: String,
    project_id: String,
    pub credentials: Credentials,
    /// Signs the sessions; the functions fetch its JWKS at their first session request.
    issuer: DevIssuer,
    // Fields drop in order: DynamoDB Local stops after everything that talks to it.
    _kms: MotoServer,
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

        // The team's Stripe connection, made the way an owner's connect makes it: the key
        // checked with the emulator and encrypted with the local KMS.
        let moto = tokio::task::spawn_blocking(|| MotoServer::start(0))
            .await
            .map_err(|e| format!("local KMS start task: {e}"))??;
        let kms_proxy =
            DynamoProxy::start(SocketAddr::from((Ipv4Addr::LOCALHOST, moto.port()))).await?;
        let sdk = billstack::aws::settings(true).await;
        admin::create_kms_key(&Kms::new(&sdk, Some(moto.endpoint()), None), KMS_KEY)
            .await
            .map_err(|e| format!("create the KMS key: {e}"))?;
        let config = billstack::config::Config {
            table_name: TABLE.to_owned(),
            dynamodb_endpoint: Some(dynamodb.endpoint().to_owned()),
            stripe_api_base: Some(stripe.url()),
            stripe_timeout: Duration::from_secs(8),
            auth_cache_ttl: Duration::ZERO,
            sessions: None,
            kms_key_id: Some(KMS_KEY.to_owned()),
            kms_endpoint: Some(moto.endpoint().to_owned()),
            stripe_key_cache_ttl: Duration::ZERO,
            public_base_url: None,
            backfill_queue_url: None,
        };
        let app = billstack::App::with_sdk(&config, &sdk).map_err(|e| e.to_string())?;
        let keys = connection::Connect::from_keys(
            stripe_emulator::DEFAULT_SECRET_KEY.to_owned(),
            None,
            Some(WEBHOOK_SECRET.to_owned()),
        )
        .map_err(|e| e.to_string())?;
        connection::connect_team(&app, &team.id, &keys)
            .await
            .map_err(|e| format!("connect Stripe: {e}"))?;
        stripe.clear_requests();
        Ok(Stack {
            kms_proxy,
            _kms: moto,
            dynamo_proxy,
            stripe,
            stripe_relay,
            raw,
            team_id: team.id.to_string(),
            project_id: project.id.to_string(),
            credentials: Credentials {
                api_key: secret.expose().to_owned(),
                session_token,
                webhook_secret: WEBHOOK_SECRET.to_owned(),
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
            ("STRIPE_API_BASE".into(), self.stripe_relay.url()),
            ("KMS_KEY_ID".into(), KMS_KEY.into()),
            ("AWS_ENDPOINT_URL_KMS".into(), self.kms_proxy.url()),
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

    /// Stripe requests so far, by route (`POST /v1/customers`), and KMS calls beside them
    /// (`KMS Decrypt`): both are what a request costs beyond our table.
    pub fn stripe_calls(&self) -> Calls {
        let mut calls = Calls::new();
        for request in self.stripe.requests() {
            *calls.entry(request.route).or_default() += 1;
        }
        for (operation, count) in self.kms_proxy.counts().snapshot() {
            *calls.entry(format!("KMS {operation}")).or_default() += count;
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
