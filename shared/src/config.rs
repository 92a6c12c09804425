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
    /// `STRIPE_SECRET_KEY`, or `STRIPE_SECRET_PARAM`: the name of an SSM SecureString
    /// parameter holding it (read at the first Stripe call, never at init).
    pub stripe_secret: StripeSecret,
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
            .field("stripe_secret", &self.stripe_secret)
            .field("stripe_api_base", &self.stripe_api_base)
            .field("stripe_timeout", &self.stripe_timeout)
            .field("auth_cache_ttl", &self.auth_cache_ttl)
            .field("sessions", &self.sessions)
            .finish()
    }
}

/// Where the Stripe secret key comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum StripeSecret {
    Key(String),
    SsmParameter(String),
}

impl std::fmt::Debug for StripeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StripeSecret::Key(_) => f.write_str("Key(<redacted>)"),
            StripeSecret::SsmParameter(name) => write!(f, "SsmParameter({name})"),
        }
    }
}

pub const DEFAULT_STRIPE_TIMEOUT_MS: u64 = 8_000;
pub const DEFAULT_AUTH_CACHE_TTL_SECS: u64 = 30;

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
        let stripe_secret = match (var("STRIPE_SECRET_KEY"), var("STRIPE_SECRET_PARAM")) {
            (Some(key), _) if key.starts_with("sk_") || key.starts_with("rk_") => {
                StripeSecret::Key(key)
            }
            (Some(_), _) => {
                return Err("STRIPE_SECRET_KEY must be a Stripe secret key (sk_...) or restricted key (rk_...)".into());
            }
            (None, Some(name)) => StripeSecret::SsmParameter(name),
            (None, None) => {
                return Err("set STRIPE_SECRET_KEY, or STRIPE_SECRET_PARAM (an SSM SecureString parameter name)".into());
            }
        };
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
            stripe_secret,
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
