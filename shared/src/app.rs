//! What every handler works with: built once per process and passed by reference.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::error::ApiError;
use crate::store::Store;
use crate::stripe::StripeGateway;

#[derive(Debug)]
pub struct App {
    pub store: Store,
    pub stripe: StripeGateway,
    pub auth: Authenticator,
}

impl App {
    pub fn new(store: Store, stripe: StripeGateway, config: &Config) -> Self {
        Self {
            store,
            stripe,
            auth: Authenticator::new(config.auth_cache_ttl),
        }
    }

    /// Builds the clients from `config`.
    pub async fn from_config(config: &Config) -> Result<Self, ApiError> {
        let store = Store::connect(&config.table_name, config.dynamodb_endpoint.as_deref()).await;
        let stripe = StripeGateway::new(
            &config.stripe_secret_key,
            config.stripe_api_base.as_deref(),
            config.stripe_timeout,
        )?;
        Ok(Self::new(store, stripe, config))
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}
