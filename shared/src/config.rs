//! Configuration from the environment, read once at start-up.

use std::time::Duration;

pub use crate::session::IssuerConfig;

/// Where the table and Stripe are, and the knobs of the request path.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `TABLE_NAME`.
    pub table_name: String,
    /// `DYNAMODB_ENDPOINT`: DynamoDB Local's URL; unset for AWS.
    pub dynamodb_endpoint: Option<String>,
    /// `KMS_KEY_ID`: the KMS key teams' Stripe secrets are encrypted under (an ID, ARN or
    /// `alias/…`). Needed by the function that connects Stripe; the others decrypt with the
    /// key named in each ciphertext.
    pub kms_key_id: Option<String>,
    /// `AWS_ENDPOINT_URL_KMS`: a local KMS (moto); unset for AWS. Read here, not only by
    /// aws-config, because a Lambda function builds its AWS settings without the loader.
    pub kms_endpoint: Option<String>,
    /// `STRIPE_KEY_CACHE_SECONDS` (default 300): how long a warm container keeps a team's
    /// decrypted Stripe key.
    pub stripe_key_cache_ttl: Duration,
    /// `BACKFILL_QUEUE_URL`: the SQS queue backfill jobs continue through (deployed); unset:
    /// the process runs its jobs itself (the local API, tests) or has none to run.
    pub backfill_queue_url: Option<String>,
    /// `PUBLIC_BASE_URL`: the API's public address (a custom domain) for the webhook URL a
    /// team is shown; unset: the address the request came to.
    pub public_base_url: Option<String>,
    /// `STRIPE_API_BASE`: the emulator's URL; unset for api.stripe.com.
    pub stripe_api_base: Option<String>,
    /// `STRIPE_TIMEOUT_MS` (default 8000): bound on each Stripe attempt.
    pub stripe_timeout: Duration,
    /// `AUTH_CACHE_TTL_SECONDS` (default 30): how long a warm container trusts a key it
    /// looked up, i.e. the longest a revoked key may keep working there.
    pub auth_cache_ttl: Duration,
    /// `AUTH_ISSUER`, `AUTH_AUDIENCE`, `AUTH_JWKS_URL`: who signs dashboard sessions. `None`
    /// (no `AUTH_ISSUER`): only API keys are accepted.
    pub sessions: Option<IssuerConfig>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("table_name", &self.table_name)
            .field("dynamodb_endpoint", &self.dynamodb_endpoint)
            .field("kms_key_id", &self.kms_key_id)
            .field("kms_endpoint", &self.kms_endpoint)
            .field("stripe_key_cache_ttl", &self.stripe_key_cache_ttl)
            .field("public_base_url", &self.public_base_url)
            .field("backfill_queue_url", &self.backfill_queue_url)
            .field("stripe_api_base", &self.stripe_api_base)
            .field("stripe_timeout", &self.stripe_timeout)
            .field("auth_cache_ttl", &self.auth_cache_ttl)
            .field("sessions", &self.sessions)
            .finish()
    }
}

pub const DEFAULT_STRIPE_TIMEOUT_MS: u64 = 8_000;
pub const DEFAULT_AUTH_CACHE_TTL_SECS: u64 = 30;
pub const DEFAULT_STRIPE_KEY_CACHE_SECS: u64 = 300;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str, default: u64) -> Result<u64, String> {
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| format!("{name} must be a whole number, got {raw:?}")),
    }
}

impl Config {
    /// Reads the environment; an error names the variable that is missing or wrong.
    pub fn from_env() -> Result<Self, String> {
        let table_name = var("TABLE_NAME").ok_or("TABLE_NAME is not set")?;
        if var("STRIPE_SECRET_KEY").is_some() || var("STRIPE_SECRET_PARAM").is_some() {
            return Err("STRIPE_SECRET_KEY and STRIPE_SECRET_PARAM are no longer read: each team connects its own Stripe account (POST /api/billstack/teams/{teamId}/stripe/connect); unset them".into());
        }
        let sessions = match (var("AUTH_ISSUER"), var("AUTH_AUDIENCE")) {
            (None, _) => None,
            (Some(_), None) => {
                return Err("AUTH_ISSUER is set but AUTH_AUDIENCE is not: set the audience (or Cognito app client ID) session tokens must carry".into());
            }
            (Some(issuer), Some(audience)) => Some(IssuerConfig {
                issuer,
                audience,
                jwks_url: var("AUTH_JWKS_URL"),
            }),
        };
        Ok(Self {
            sessions,
            table_name,
            dynamodb_endpoint: var("DYNAMODB_ENDPOINT"),
            kms_key_id: var("KMS_KEY_ID"),
            kms_endpoint: var("AWS_ENDPOINT_URL_KMS"),
            stripe_key_cache_ttl: Duration::from_secs(number(
                "STRIPE_KEY_CACHE_SECONDS",
                DEFAULT_STRIPE_KEY_CACHE_SECS,
            )?),
            backfill_queue_url: var("BACKFILL_QUEUE_URL"),
            public_base_url: var("PUBLIC_BASE_URL").map(|u| u.trim_end_matches('/').to_owned()),
            stripe_api_base: var("STRIPE_API_BASE"),
            stripe_timeout: Duration::from_millis(number(
                "STRIPE_TIMEOUT_MS",
                DEFAULT_STRIPE_TIMEOUT_MS,
            )?),
            auth_cache_ttl: Duration::from_secs(number(
                "AUTH_CACHE_TTL_SECONDS",
                DEFAULT_AUTH_CACHE_TTL_SECS,
            )?),
        })
    }
}
