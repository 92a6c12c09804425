//! Dashboard sessions: OpenID Connect JWTs from the deployment's issuer, verified here (not by
//! API Gateway's JWT authorizer, which would refuse every `bs_` key on the same routes).
//!
//! The signature is checked against the issuer's JWKS, fetched at the first session request
//! of a warm container (never at init) and fetched again, at most once a minute, when a
//! token names a key we do not have. Then `iss`, `aud` (or Cognito's `client_id`), `exp` and
//! `nbf` (60 s of leeway), on an allow-list of asymmetric algorithms: `none` and HS* never
//! pass, so a token "signed" with the public key as an HMAC secret is refused before any
//! key is looked at. jsonwebtoken does the cryptography, on aws-lc-rs like the rest of the
//! binary.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};

use crate::error::ApiError;
use crate::outbound::{self, HttpsClient};

/// Algorithms a session token may be signed with. Asymmetric only.
pub const ALLOWED_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;
/// The least time between two JWKS fetches caused by unknown `kid`s.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(60);
/// A user ID (`sub`) longer than this is refused: it becomes part of table keys.
pub const MAX_USER_ID_LEN: usize = 255;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Which issuer signs sessions: `AUTH_ISSUER`, `AUTH_AUDIENCE`, optionally `AUTH_JWKS_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    pub issuer: String,
    pub audience: String,
    /// `None`: the `jwks_uri` of the issuer's discovery document.
    pub jwks_url: Option<String>,
}

/// A verified session: who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The token's `sub`.
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    /// Cognito access tokens name their app client here instead of in `aud`.
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The issuer's keys as last fetched.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, (Option<Algorithm>, DecodingKey)>,
    fetched_at: Option<Instant>,
}

/// Verifies session tokens; built once per process, fetches keys lazily.
pub struct SessionVerifier {
    config: IssuerConfig,
    min_refresh: Duration,
    client: OnceCell<HttpsClient>,
    jwks_url: OnceCell<String>,
    keys: Mutex<KeySet>,
}

impl std::fmt::Debug for SessionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionVerifier")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish_non_exhaustive()
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::unauthorized(message.to_owned())
}

fn unavailable(detail: &str) -> ApiError {
    tracing::warn!(detail, "identity provider keys unavailable");
    ApiError::unavailable("The identity provider's signing keys could not be fetched; retry")
}

impl SessionVerifier {
    pub fn new(config: IssuerConfig) -> Self {
        Self::with_min_refresh(config, DEFAULT_MIN_REFRESH)
    }

    /// With another bound between key fetches (tests shorten it).
    pub fn with_min_refresh(config: IssuerConfig, min_refresh: Duration) -> Self {
        Self {
            config,
            min_refresh,
            client: OnceCell::new(),
            jwks_url: OnceCell::new(),
            keys: Mutex::new(KeySet::default()),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Verifies `token` and answers its session, or a 401 that names the check that failed
    /// (never the token), or a 503 when the issuer's keys cannot be fetched at all.
    pub async fn verify(&self, token: &str) -> Result<Session, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|err| match err.kind() {
            ErrorKind::Json(_) | ErrorKind::InvalidAlgorithmName => {
                unauthorized("Invalid session token: unsupported or missing algorithm")
            }
            _ => unauthorized("Invalid session token: not a well-formed JWT"),
        })?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(ApiError::unauthorized(format!(
                "Invalid session token: algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.key_for(header.kid.as_deref(), header.alg).await?;

        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        // Checked below: Cognito access tokens carry `client_id` instead of `aud`.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|err| {
                unauthorized(match err.kind() {
                    ErrorKind::ExpiredSignature => "Session token expired",
                    ErrorKind::ImmatureSignature => "Session token not yet valid (nbf)",
                    ErrorKind::InvalidIssuer => "Session token has the wrong issuer",
                    ErrorKind::InvalidSignature => "Session token signature is invalid",
                    ErrorKind::InvalidAlgorithm => {
                        "Session token algorithm does not match its signing key"
                    }
                    ErrorKind::MissingRequiredClaim(_) => {
                        "Session token lacks a required claim (exp, iss, sub)"
                    }
                    ErrorKind::InvalidClaimFormat(_) => "Session token has a malformed claim",
                    _ => "Invalid session token",
                })
            })?
            .claims;
        let audience = &self.config.audience;
        let audience_ok = match &claims.aud {
            Some(Audience::One(aud)) => aud == audience,
            Some(Audience::Many(auds)) => auds.iter().any(|a| a == audience),
            None => claims.client_id.as_deref() == Some(audience.as_str()),
        };
        if !audience_ok {
            return Err(unauthorized("Session token has the wrong audience"));
        }
        let user_id = claims
            .sub
            .filter(|s| {
                !s.is_empty() && s.len() <= MAX_USER_ID_LEN && !s.chars().any(char::is_control)
            })
            .ok_or_else(|| unauthorized("Session token has an unusable subject (sub)"))?;
        Ok(Session {
            user_id,
            email: claims.email.filter(|e| !e.is_empty()),
            name: claims.name.filter(|n| !n.is_empty()),
        })
    }

    /// The key named `kid` (or the only key, for a token without `kid`), fetching the key
    /// set first if we have none, or again if `kid` is new and the last fetch is old enough.
    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, ApiError> {
        let mut set = self.keys.lock().await;
        let find = |set: &KeySet| -> Option<(Option<Algorithm>, DecodingKey)> {
            match kid {
                Some(kid) => set.keys.get(kid).cloned(),
                None if set.keys.len() == 1 => set.keys.values().next().cloned(),
                None => None,
            }
        };
        let mut found = find(&set);
        let may_refresh = set
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.min_refresh);
        if found.is_none() && may_refresh {
            match self.fetch_keys().await {
                Ok(keys) => {
                    set.keys = keys;
                    set.fetched_at = Some(Instant::now());
                }
                // With keys in hand, an unknown kid is the token's problem; with none, ours.
                Err(detail) if set.keys.is_empty() => return Err(unavailable(&detail)),
                Err(detail) => {
                    tracing::warn!(detail, "identity provider keys refresh failed");
                    set.fetched_at = Some(Instant::now());
                }
            }
            found = find(&set);
        }
        let (key_alg, key) = found.ok_or_else(|| {
            unauthorized(if kid.is_some() {
                "Session token is signed by an unknown signing key (kid)"
            } else {
                "Session token names no signing key (kid)"
            })
        })?;
        if key_alg.is_some_and(|key_alg| key_alg != alg) {
            return Err(unauthorized(
                "Session token algorithm does not match its signing key",
            ));
        }
        Ok(key)
    }

    async fn fetch_keys(
        &self,
    ) -> Result<HashMap<String, (Option<Algorithm>, DecodingKey)>, String> {
        let client = self
            .client
            .get_or_init(|| async { outbound::https_client() })
            .await;
        let url = self
            .jwks_url
            .get_or_try_init(|| async {
                match &self.config.jwks_url {
                    Some(url) => Ok(url.clone()),
                    None => self.discover(client).await,
                }
            })
            .await?;
        let body = outbound::get(client, url, FETCH_TIMEOUT, MAX_DOCUMENT_BYTES).await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| format!("JWKS at {url} is not a key set: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // Keys of kinds we cannot use (an HMAC `oct` key, say) are skipped, not trusted.
            if matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            ) {
                continue;
            }
            // A key's own `alg`, where it names one of the signing algorithms (not, say, RSA-OAEP).
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| serde_json::to_value(a).ok())
                .and_then(|v| v.as_str().and_then(|s| s.parse::<Algorithm>().ok()));
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (alg, key));
            }
        }
        tracing::info!(
            keys = keys.len(),
            "fetched the identity provider's signing keys"
        );
        Ok(keys)
    }

    /// The `jwks_uri` of `{issuer}/.well-known/openid-configuration`, whose `issuer` must be
    /// ours (OpenID Connect Discovery §4.3).
    async fn discover(&self, client: &HttpsClient) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let body = outbound::get(client, &url, FETCH_TIMEOUT, MAX_DOCUMENT_BYTES).await?;
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|e| format!("discovery document at {url} is invalid: {e}"))?;
        if doc.issuer != self.config.issuer {
            return Err(format!(
                "discovery document at {url} names issuer {:?}, not {:?}",
                doc.issuer, self.config.issuer
            ));
        }
        Ok(doc.jwks_uri)
    }
}
