//! `billstack-local`: the whole API on 127.0.0.1:$BILLSTACK_PORT with everything it needs.
//!
//! - no `DYNAMODB_ENDPOINT`: starts DynamoDB Local (fetched once into a cache);
//! - no `AWS_ENDPOINT_URL_KMS`: starts a local KMS (moto, installed once into the cache)
//!   and creates a key for teams' secrets; with it (and `KMS_KEY_ID`) uses that KMS;
//! - no `STRIPE_API_BASE`: starts the Stripe emulator in-process; with it, uses that Stripe;
//! - creates the table if missing and, on a fresh table, a demo team, project and
//!   full-access key, connects the team to Stripe (the emulator's default account, or the
//!   account of `STRIPE_SECRET_KEY` if set) and prints curl lines that work as pasted;
//! - no `AUTH_ISSUER`: starts the development OIDC issuer in-process (port
//!   `BILLSTACK_ISSUER_PORT`, default 3001), seeds a demo user as the demo team's owner and
//!   prints a session token for them; with it (and `AUTH_AUDIENCE`), uses that issuer.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use billstack::App;
use billstack::admin::{self, NewApiKey, NewMember};
use billstack::config::{
    Config, DEFAULT_AUTH_CACHE_TTL_SECS, DEFAULT_STRIPE_KEY_CACHE_SECS, DEFAULT_STRIPE_TIMEOUT_MS,
    IssuerConfig,
};
use billstack::http::init_tracing;
use billstack::model::Role;
use billstack::secrets::{Kms, Secret};
use dev_issuer::{DevIssuer, TokenRequest};
use devstack::{DynamoDbLocal, MotoServer};
use stripe_emulator::StripeEmulator;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_port(name: &str, default: u16) -> Result<u16, String> {
    env(name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("{name} must be a port number, got {v:?}"))
    })
}

#[tokio::main]
async fn main() {
    init_tracing();
    if let Err(err) = run().await {
        eprintln!("billstack-local: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let port = env_port("BILLSTACK_PORT", 3000)?;
    let table = env("TABLE_NAME").unwrap_or_else(|| "billstack-local".to_owned());

    // Kept alive until the server stops; dropping them stops them.
    let mut _dynamodb: Option<DynamoDbLocal> = None;
    let endpoint = match env("DYNAMODB_ENDPOINT") {
        Some(endpoint) => endpoint,
        None => {
            let ddb_port = env_port("DYNAMODB_LOCAL_PORT", 0)?;
            let local = tokio::task::spawn_blocking(move || DynamoDbLocal::start(ddb_port))
                .await
                .map_err(|e| e.to_string())??;
            eprintln!("DynamoDB Local (in memory) on {}", local.endpoint());
            let endpoint = local.endpoint().to_owned();
            _dynamodb = Some(local);
            endpoint
        }
    };

    let sdk = billstack::aws::settings(true).await;
    let mut _kms: Option<MotoServer> = None;
    let (kms_endpoint, kms_key_id) = match env("AWS_ENDPOINT_URL_KMS") {
        Some(endpoint) => (endpoint, env("KMS_KEY_ID")),
        None => {
            let moto = tokio::task::spawn_blocking(|| MotoServer::start(0))
                .await
                .map_err(|e| e.to_string())??;
            eprintln!("local KMS (moto, in memory) on {}", moto.endpoint());
            let endpoint = moto.endpoint().to_owned();
            _kms = Some(moto);
            let kms = Kms::new(&sdk, Some(&endpoint), None);
            let key = admin::create_kms_key(&kms, "alias/billstack-local")
                .await
                .map_err(|e| e.to_string())?;
            (endpoint, Some(key))
        }
    };

    let mut _emulator: Option<StripeEmulator> = None;
    let (demo_key, stripe_base) = match env("STRIPE_API_BASE") {
        Some(base) => (env("STRIPE_SECRET_KEY"), Some(base)),
        None if env("STRIPE_SECRET_KEY").is_some() => (env("STRIPE_SECRET_KEY"), None),
        None => {
            let emulator = StripeEmulator::start(env_port("STRIPE_EMULATOR_PORT", 12111)?)
                .await
                .map_err(|e| format!("cannot start the Stripe emulator: {e}"))?;
            eprintln!("Stripe emulator on {}", emulator.url());
            let url = emulator.url();
            _emulator = Some(emulator);
            (
                Some(stripe_emulator::DEFAULT_SECRET_KEY.to_owned()),
                Some(url),
            )
        }
    };

    let mut _issuer: Option<DevIssuer> = None;
    let sessions = match env("AUTH_ISSUER") {
        Some(issuer) => IssuerConfig {
            issuer,
            audience: env("AUTH_AUDIENCE").ok_or("AUTH_ISSUER is set but AUTH_AUDIENCE is not")?,
            jwks_url: env("AUTH_JWKS_URL"),
        },
        None => {
            let issuer = DevIssuer::start(env_port("BILLSTACK_ISSUER_PORT", 3001)?)
                .await
                .map_err(|e| {
                    format!("cannot start the development issuer: {e} (set BILLSTACK_ISSUER_PORT)")
                })?;
            eprintln!("development OIDC issuer on {}", issuer.url());
            let config = IssuerConfig {
                issuer: issuer.url().to_owned(),
                audience: dev_issuer::DEFAULT_AUDIENCE.to_owned(),
                jwks_url: None,
            };
            _issuer = Some(issuer);
            config
        }
    };

    let config = Config {
        sessions: Some(sessions),
        table_name: table.clone(),
        dynamodb_endpoint: Some(endpoint.clone()),
        stripe_api_base: stripe_base,
        stripe_timeout: Duration::from_millis(DEFAULT_STRIPE_TIMEOUT_MS),
        auth_cache_ttl: Duration::from_secs(DEFAULT_AUTH_CACHE_TTL_SECS),
        kms_key_id,
        kms_endpoint: Some(kms_endpoint),
        stripe_key_cache_ttl: Duration::from_secs(DEFAULT_STRIPE_KEY_CACHE_SECS),
        public_base_url: None,
        backfill_queue_url: None,
    };
    let mut app = App::with_sdk(&config, &sdk).map_err(|e| e.to_string())?;
    let (jobs, job_queue) = billstack_local::local_jobs();
    app.jobs = jobs;
    let app = Arc::new(app);
    // A Lambda invocation's budget: backfills run in the same steps as deployed.
    billstack_local::spawn_job_runner(app.clone(), job_queue, Duration::from_secs(30));
    let fresh = app
        .store
        .create_table_if_missing()
        .await
        .map_err(|e| e.to_string())?;
    let addr =
        billstack_local::spawn_server(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), app.clone())
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e} (set BILLSTACK_PORT)"))?;
    let base = format!("http://{addr}");

    if fresh {
        seed(
            &app,
            &base,
            _issuer.as_ref(),
            demo_key.map(Secret::new),
            _emulator.as_ref(),
        )
        .await
        .map_err(|e| e.to_string())?;
    } else {
        println!(
            "Table {table} already exists; create keys with: cargo run -p billstack-admin -- api-key create --team <team_id>"
        );
    }
    println!("BillStack local API listening on {base} (Ctrl-C to stop)");
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    println!("stopping");
    Ok(())
}

/// The demo user, owner of the demo team.
const DEMO_USER: &str = "user_demo";
/// The printed session token's lifetime: a working day.
const DEMO_TOKEN_SECS: i64 = 12 * 3600;

/// A demo team, project and full-access key, and (with the development issuer) a demo
/// user who owns the team, with curl lines that work as pasted.
async fn seed(
    app: &App,
    base: &str,
    issuer: Option<&DevIssuer>,
    stripe_key: Option<Secret>,
    emulator: Option<&StripeEmulator>,
) -> Result<(), billstack::ApiError> {
    let store = &app.store;
    let team = admin::create_team(store, "Demo team").await?;
    let project = admin::create_project(store, &team.id, "Demo project").await?;
    let (key, secret) = admin::create_api_key(
        store,
        &team.id,
        &NewApiKey {
            name: "Local demo key (full access)".to_owned(),
            ..NewApiKey::default()
        },
    )
    .await?;
    let customers = format!(
        "{base}/api/billstack/teams/{}/projects/{}/customers",
        team.id, project.id
    );
    let raw = secret.expose();
    println!();
    println!("Seeded a fresh table:");
    println!("  team     {}", team.id);
    println!("  project  {}", project.id);
    println!("  API key  {} ({}), shown once: {raw}", key.id, key.prefix);
    match stripe_key {
        Some(secret_key) => {
            // The emulator's events come back to this API, signed for the demo team.
            let webhook = format!("{base}/api/webhooks/stripe/{}", team.id);
            let webhook_secret = emulator.and_then(|e| {
                e.add_webhook_endpoint(stripe_emulator::DEFAULT_ACCOUNT_ID, &webhook)
                    .map(|(_, secret)| secret)
            });
            let new = connection::Connect::from_keys(
                secret_key.expose().to_owned(),
                None,
                webhook_secret.clone(),
            )?;
            let connected = connection::connect_team(app, &team.id, &new).await?;
            println!(
                "  Stripe   connected to {} ({})",
                connected
                    .account_id
                    .as_deref()
                    .unwrap_or("a restricted key's account"),
                connected.account_name.as_deref().unwrap_or("unnamed")
            );
            if webhook_secret.is_some() {
                println!("  webhook  the emulator delivers the account's events to {webhook}");
            }
        }
        None => println!(
            "  Stripe   not connected (STRIPE_API_BASE without STRIPE_SECRET_KEY): connect with POST /api/billstack/teams/{}/stripe/connect",
            team.id
        ),
    }
    println!();
    println!("Try it:");
    println!(
        "  curl -s -X POST \"{customers}\" -H \"Authorization: Bearer {raw}\" -H \"Content-Type: application/json\" -d '{{\"email\": \"jane@example.com\", \"name\": \"Jane Doe\", \"metadata\": {{\"plan\": \"pro\"}}}}'"
    );
    println!("  curl -s \"{customers}?limit=25\" -H \"Authorization: Bearer {raw}\"");
    if let Some(emulator) = emulator {
        println!(
            "  # a change made in Stripe (the emulator) comes back through the webhook: use the created customer's stripeCustomerId"
        );
        println!(
            "  curl -s -X POST \"{}/v1/customers/cus_…\" -H \"Authorization: Bearer {}\" -d name=\"Renamed in Stripe\"",
            emulator.url(),
            stripe_emulator::DEFAULT_SECRET_KEY
        );
    }
    println!();
    if let Some(issuer) = issuer {
        admin::add_member(
            store,
            &team.id,
            &NewMember {
                user_id: DEMO_USER.to_owned(),
                role: Role::Owner,
                email: Some("demo@example.com".to_owned()),
            },
        )
        .await?;
        let token = issuer
            .mint(&TokenRequest {
                email: Some("demo@example.com".to_owned()),
                name: Some("Demo User".to_owned()),
                expires_in: Some(DEMO_TOKEN_SECS),
                ..TokenRequest::for_user(DEMO_USER)
            })
            .map_err(billstack::ApiError::internal)?;
        let teams = format!("{base}/api/billstack/teams");
        println!("Dashboard session of {DEMO_USER}, owner of the team (valid 12 h):");
        println!("  export TOKEN={token}");
        println!("  curl -s \"{teams}\" -H \"Authorization: Bearer $TOKEN\"");
        println!(
            "  curl -s -X POST \"{teams}/{}/api-keys\" -H \"Authorization: Bearer $TOKEN\" -H \"Content-Type: application/json\" -d '{{\"name\": \"backend\", \"scopes\": [\"customers:read\", \"customers:write\"]}}'",
            team.id
        );
        println!("  curl -s \"{customers}\" -H \"Authorization: Bearer $TOKEN\"");
        println!(
            "  curl -s \"{teams}/{}/stripe/status\" -H \"Authorization: Bearer $TOKEN\"",
            team.id
        );
        println!(
            "A token for another user: curl -s -X POST {}/token -d '{{\"sub\": \"user_2\", \"email\": \"two@example.com\"}}'",
            issuer.url()
        );
        println!();
    }
    Ok(())
}
