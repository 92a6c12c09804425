//! What every handler works with: built once per process and passed by reference.

use crate::auth::Authenticator;
use crate::config::{Config, StripeSecret};
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
            auth: Authenticator::from_issuer_config(
                config.auth_cache_ttl,
                config.sessions.as_ref(),
            ),
        }
    }

    /// Builds the clients from `config`, with the settings a Lambda function uses
    /// ([`crate::aws::lambda_settings`]).
    pub async fn from_config(config: &Config) -> Result<Self, ApiError> {
        let sdk = crate::aws::lambda_settings(config.dynamodb_endpoint.is_some()).await;
        Self::with_sdk(config, &sdk)
    }

    /// Builds the clients from `config` on the AWS settings `sdk`.
    pub fn with_sdk(config: &Config, sdk: &aws_config::SdkConfig) -> Result<Self, ApiError> {
        let store =
            Store::with_config(sdk, &config.table_name, config.dynamodb_endpoint.as_deref());
        let stripe = match &config.stripe_secret {
            StripeSecret::Key(key) => StripeGateway::new(
                key,
                config.stripe_api_base.as_deref(),
                config.stripe_timeout,
            )?,
            StripeSecret::SsmParameter(name) => StripeGateway::from_ssm_parameter(
                aws_sdk_ssm::Client::new(sdk),
                name,
                config.stripe_api_base.as_deref(),
                config.stripe_timeout,
            ),
        };
        Ok(Self::new(store, stripe, config))
    }
}
