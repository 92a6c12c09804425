//! Each team's own Stripe account: the gateway for a team's connection, its key decrypted
//! with KMS once and kept in the warm container for a bounded time.
//!
//! Per request that calls Stripe: the team's connection record is read (one GetItem,
//! cached for `AUTH_CACHE_TTL_SECONDS` like keys and memberships, so a disconnect or a
//! reconnect reaches every warm container within that bound); the decrypted key is kept
//! for `STRIPE_KEY_CACHE_SECONDS` (default 300) per ciphertext, so a warm request makes
//! no KMS call and a new ciphertext (a reconnect) is decrypted afresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::stripe::RequestStrategy;
use sha2::{Digest, Sha256};
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::{CallError, StripeGateway, StripeHttp, stripe_error};
use crate::cache::TtlCache;
use crate::error::{ApiError, ErrorCode};
use crate::ids::TeamId;
use crate::model::StripeConnection;
use crate::secrets::{DecryptError, Kms, Secret};
use crate::store::Store;

/// The 409 of a Stripe-needing endpoint on a team with no (usable) connection.
pub fn not_connected(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::StripeNotConnected, message)
}

fn no_connection() -> ApiError {
    not_connected(
        "This team has not connected a Stripe account; a team owner connects one with POST /api/billstack/teams/{teamId}/stripe/connect",
    )
}

/// What Stripe says about the account a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// `None` for a restricted key without the permission to read the account.
    pub id: Option<String>,
    pub name: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct Account {
    id: String,
    business_profile: Option<BusinessProfile>,
    settings: Option<Settings>,
}

#[derive(miniserde::Deserialize)]
struct BusinessProfile {
    name: Option<String>,
}

#[derive(miniserde::Deserialize)]
struct Settings {
    dashboard: Option<Dashboard>,
}

#[derive(miniserde::Deserialize)]
struct Dashboard {
    display_name: Option<String>,
}

/// The Stripe accounts of every team this container serves.
pub struct StripeAccounts {
    http: StripeHttp,
    kms: Kms,
    records: TtlCache<TeamId, Option<Arc<StripeConnection>>>,
    /// Keyed by team and a digest of the ciphertext.
    gateways: TtlCache<(TeamId, [u8; 32]), StripeGateway>,
    /// Decrypted webhook signing secrets, keyed the same way.
    webhook_secrets: TtlCache<(TeamId, [u8; 32]), Secret>,
    decrypts: AtomicU64,
}

impl std::fmt::Debug for StripeAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeAccounts")
            .field("http", &self.http)
            .field("kms", &self.kms)
            .field("record_ttl", &self.records.ttl())
            .field("key_ttl", &self.gateways.ttl())
            .finish()
    }
}

impl StripeAccounts {
    /// `record_ttl`: how long a connection record is trusted; `key_ttl`: how long a
    /// decrypted key is kept.
    pub fn new(http: StripeHttp, kms: Kms, record_ttl: Duration, key_ttl: Duration) -> Self {
        Self {
            http,
            kms,
            records: TtlCache::new(record_ttl),
            gateways: TtlCache::new(key_ttl),
            webhook_secrets: TtlCache::new(key_ttl),
            decrypts: AtomicU64::new(0),
        }
    }

    pub fn kms(&self) -> &Kms {
        &self.kms
    }

    /// KMS `Decrypt` calls this container made (the benchmark and tests read it).
    pub fn decrypt_count(&self) -> u64 {
        self.decrypts.load(Ordering::Relaxed)
    }

    /// Forgets what this container knows of the team's connection (after it changed here).
    pub fn forget(&self, team_id: &TeamId) {
        self.records.remove(team_id);
    }

    /// The team's connection record, as cached.
    pub async fn connection(
        &self,
        store: &Store,
        team_id: &TeamId,
    ) -> Result<Option<Arc<StripeConnection>>, ApiError> {
        let key = team_id.to_owned();
        if let Some(record) = self.records.get(&key) {
            return Ok(record);
        }
        let record = store.get_stripe_connection(team_id).await?.map(Arc::new);
        self.records.insert(key, record.clone());
        Ok(record)
    }

    /// The gateway to the team's own Stripe account; 409 `stripe_not_connected` without one.
    pub async fn for_team(
        &self,
        store: &Store,
        team_id: &TeamId,
    ) -> Result<StripeGateway, ApiError> {
        let record = self
            .connection(store, team_id)
            .await?
            .ok_or_else(no_connection)?;
        self.gateway(&record).await
    }

    /// The gateway for a connection record, decrypting its key unless a warm one is kept.
    pub async fn gateway(&self, record: &StripeConnection) -> Result<StripeGateway, ApiError> {
        self.decrypted(
            &self.gateways,
            &record.team_id,
            &record.secret_key_ciphertext,
            |secret| StripeGateway::new(&self.http, &secret),
        )
        .await
    }

    /// The team's webhook signing secret, decrypted (and kept like a key); `None` if the
    /// connection has none.
    pub async fn webhook_secret(
        &self,
        record: &StripeConnection,
    ) -> Result<Option<Secret>, ApiError> {
        let Some(ciphertext) = &record.webhook_secret_ciphertext else {
            return Ok(None);
        };
        self.decrypted(&self.webhook_secrets, &record.team_id, ciphertext, Ok)
            .await
            .map(Some)
    }

    /// What `build` makes of a team's decrypted secret, kept in `cache` per ciphertext, so
    /// a warm container decrypts each ciphertext once per key TTL.
    async fn decrypted<T: Clone>(
        &self,
        cache: &TtlCache<(TeamId, [u8; 32]), T>,
        team_id: &TeamId,
        ciphertext: &str,
        build: impl FnOnce(Secret) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let cache_key = (
            team_id.to_owned(),
            Sha256::digest(ciphertext.as_bytes()).into(),
        );
        if let Some(value) = cache.get(&cache_key) {
            return Ok(value);
        }
        let value = build(self.decrypt(team_id, ciphertext).await?)?;
        cache.insert(cache_key, value.clone());
        Ok(value)
    }

    /// Decrypts one of the team's stored secrets (base64 ciphertext).
    pub async fn decrypt(&self, team_id: &TeamId, ciphertext: &str) -> Result<Secret, ApiError> {
        use base64::Engine as _;
        let unreadable = || {
            // Never the value: only whose record it was.
            tracing::warn!(
                team_id = team_id.as_str(),
                "a stored Stripe secret does not decrypt for its team (copied from another record, or altered)"
            );
            not_connected(
                "This team's Stripe connection could not be read; a team owner must connect Stripe again",
            )
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(ciphertext)
            .map_err(|_| unreadable())?;
        self.decrypts.fetch_add(1, Ordering::Relaxed);
        match self.kms.decrypt(team_id, &bytes).await {
            Ok(secret) => Ok(secret),
            Err(DecryptError::NotThisTeams) => Err(unreadable()),
            Err(DecryptError::Failed(err)) => Err(err),
        }
    }

    /// Encrypts a secret for the team's record (base64 ciphertext).
    pub async fn encrypt(&self, team_id: &TeamId, secret: &Secret) -> Result<String, ApiError> {
        use base64::Engine as _;
        let bytes = self.kms.encrypt(team_id, secret).await?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Checks `secret_key` with Stripe (`GET /v1/account`) before anything is stored. A key
    /// Stripe refuses is 400 `invalid_stripe_key`. A restricted key that may not read the
    /// account is accepted if it can read customers, which BillStack needs anyway.
    pub async fn check_key(&self, secret_key: &Secret) -> Result<AccountInfo, ApiError> {
        let gateway = StripeGateway::new(&self.http, secret_key)?;
        let client = &*gateway.client;
        let account = RequestBuilder::new(StripeMethod::Get, "/account")
            .customize::<Account>()
            .request_strategy(RequestStrategy::Once)
            .send(client)
            .await;
        match account {
            Ok(account) => Ok(AccountInfo {
                name: account
                    .settings
                    .and_then(|s| s.dashboard)
                    .and_then(|d| d.display_name)
                    .or_else(|| account.business_profile.and_then(|b| b.name)),
                id: Some(account.id),
            }),
            Err(CallError::Stripe(_, 403)) if secret_key.expose().starts_with("rk_") => {
                let probe = RequestBuilder::new(StripeMethod::Get, "/customers")
                    .query(&std::collections::HashMap::from([("limit", "1")]))
                    .customize::<super::Unread>()
                    .request_strategy(RequestStrategy::Once)
                    .send(client)
                    .await;
                match probe {
                    Ok(_) => Ok(AccountInfo {
                        id: None,
                        name: None,
                    }),
                    Err(CallError::Stripe(_, 401 | 403)) => Err(refused_key(
                        "Stripe refused this restricted key for customers; give it write access to Customers, Products and Prices",
                    )),
                    Err(err) => Err(stripe_error(err)),
                }
            }
            Err(CallError::Stripe(_, 401 | 403)) => Err(refused_key(
                "Stripe refused this secret key: check that it is a current secret or restricted key of the account",
            )),
            Err(err) => Err(stripe_error(err)),
        }
    }
}

fn refused_key(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidStripeKey, message).with_param("secretKey")
}
