//! What every handler works with: built once per process and passed by reference.

use crate::auth::Authenticator;
use crate::config::Config;
use crate::error::ApiError;
use crate::ids::TeamId;
use crate::jobs::Jobs;
use crate::secrets::Kms;
use crate::store::Store;
use crate::stripe::{StripeAccounts, StripeGateway, StripeHttp};

#[derive(Debug)]
pub struct App {
    pub store: Store,
    /// Every team's own Stripe account.
    pub stripe: StripeAccounts,
    pub auth: Authenticator,
    /// `PUBLIC_BASE_URL`, if set.
    pub public_base_url: Option<String>,
    /// Where background jobs (backfills) are handed on.
    pub jobs: Jobs,
}

impl App {
    pub fn new(store: Store, stripe: StripeAccounts, config: &Config) -> Self {
        Self {
            store,
            stripe,
            auth: Authenticator::from_issuer_config(
                config.auth_cache_ttl,
                config.sessions.as_ref(),
            ),
            public_base_url: config.public_base_url.clone(),
            jobs: Jobs::Off,
        }
    }

    /// The gateway to `team_id`'s own Stripe account; 409 `stripe_not_connected` if the
    /// team has none.
    pub async fn stripe_for(&self, team_id: &TeamId) -> Result<StripeGateway, ApiError> {
        self.stripe.for_team(&self.store, team_id).await
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
        let user_agent = concat!("BillStack/", env!("CARGO_PKG_VERSION"));
        let http = StripeHttp::new(
            config.stripe_api_base.as_deref(),
            Some(config.stripe_timeout),
            user_agent,
        )
        .map_err(|e| ApiError::internal(format!("stripe client: {e}")))?;
        let kms = Kms::new(
            sdk,
            config.kms_endpoint.as_deref(),
            config.kms_key_id.as_deref(),
        );
        let stripe = StripeAccounts::new(
            http,
            kms,
            config.auth_cache_ttl,
            config.stripe_key_cache_ttl,
        );
        let mut app = Self::new(store, stripe, config);
        if let Some(url) = &config.backfill_queue_url {
            app.jobs = Jobs::queue(sdk, url);
        }
        Ok(app)
    }
}
