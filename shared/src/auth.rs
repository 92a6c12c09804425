//! API keys: their format, their hash, their scopes, and the rule that decides whether a
//! key may do something. The lookup of a key in the table (with its warm-container cache)
//! is [`Authenticator`]; everything else here is pure and unit-tested.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock;
use crate::error::ApiError;
use crate::routing::Resource;
use crate::store::Store;

const SECRET_PREFIX: &str = "bs_";
const SECRET_HEX_LEN: usize = 48;

/// A raw API key secret, `bs_` + 48 lowercase hex characters. Never logged: its `Debug`
/// shows only the display prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// A new random secret (24 bytes from the OS).
    pub fn generate() -> Result<Self, ApiError> {
        let mut bytes = [0u8; SECRET_HEX_LEN / 2];
        getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
        Ok(Self(format!("{SECRET_PREFIX}{}", to_hex(&bytes))))
    }

    /// Accepts exactly `bs_` + 48 lowercase hex characters.
    pub fn parse(raw: &str) -> Option<Self> {
        let hex = raw.strip_prefix(SECRET_PREFIX)?;
        let well_formed = hex.len() == SECRET_HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        well_formed.then(|| Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the whole secret, lowercase hex: what the table stores.
    pub fn hash(&self) -> String {
        to_hex(&Sha256::digest(self.0.as_bytes()))
    }

    /// The short display prefix kept on the record, e.g. `bs_a1b2`.
    pub fn display_prefix(&self) -> String {
        self.0[..SECRET_PREFIX.len() + 4].to_owned()
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…)", self.display_prefix())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A key's scope. Prices fall under the products scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "customers:read")]
    CustomersRead,
    #[serde(rename = "customers:write")]
    CustomersWrite,
    #[serde(rename = "products:read")]
    ProductsRead,
    #[serde(rename = "products:write")]
    ProductsWrite,
    #[serde(rename = "subscriptions:read")]
    SubscriptionsRead,
    #[serde(rename = "subscriptions:write")]
    SubscriptionsWrite,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::CustomersRead,
        Scope::CustomersWrite,
        Scope::ProductsRead,
        Scope::ProductsWrite,
        Scope::SubscriptionsRead,
        Scope::SubscriptionsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CustomersRead => "customers:read",
            Scope::CustomersWrite => "customers:write",
            Scope::ProductsRead => "products:read",
            Scope::ProductsWrite => "products:write",
            Scope::SubscriptionsRead => "subscriptions:read",
            Scope::SubscriptionsWrite => "subscriptions:write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// The scope a request needs: the resource's `:write` scope for writes, its `:read`
    /// scope for reads.
    pub fn required(resource: Resource, access: Access) -> Scope {
        match (resource, access) {
            (Resource::Customers, Access::Read) => Scope::CustomersRead,
            (Resource::Customers, Access::Write) => Scope::CustomersWrite,
            (Resource::Products | Resource::Prices, Access::Read) => Scope::ProductsRead,
            (Resource::Products | Resource::Prices, Access::Write) => Scope::ProductsWrite,
        }
    }

    /// The write scope of the same family, which implies this one when this is a read scope.
    fn implied_by(self) -> Option<Scope> {
        match self {
            Scope::CustomersRead => Some(Scope::CustomersWrite),
            Scope::ProductsRead => Some(Scope::ProductsWrite),
            Scope::SubscriptionsRead => Some(Scope::SubscriptionsWrite),
            _ => None,
        }
    }
}

/// Whether a key with `scopes` may do `access` on `resource`. No scopes means full access;
/// a `:write` scope implies the `:read` scope of its resource.
pub fn scopes_allow(scopes: &[Scope], resource: Resource, access: Access) -> bool {
    if scopes.is_empty() {
        return true;
    }
    let needed = Scope::required(resource, access);
    scopes
        .iter()
        .any(|s| *s == needed || Some(*s) == needed.implied_by())
}

/// An API key record as the table keeps it (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub prefix: String,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub scopes: Vec<Scope>,
    /// Epoch seconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Epoch seconds.
    #[serde(default)]
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

impl ApiKeyRecord {
    /// The key as the API shows it (never the hash, never the secret).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "projectId": self.project_id,
            "scopes": self.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "expiresAt": self.expires_at.map(clock::rfc3339),
            "createdAt": clock::rfc3339(self.created_at),
        })
    }
}

/// Who is calling, once authenticated and authorized for the path's team and project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub team_id: String,
    pub project_id: Option<String>,
}

/// The decision for one request, given the key's record: 401 for a revoked or expired
/// key, 403 for another team, another project or a missing scope.
pub fn authorize(
    key: &ApiKeyRecord,
    now_epoch: i64,
    team_id: &str,
    project_id: &str,
    resource: Resource,
    access: Access,
) -> Result<Principal, ApiError> {
    if key.revoked_at.is_some() {
        return Err(ApiError::unauthorized("This API key has been revoked"));
    }
    if key.expires_at.is_some_and(|at| at <= now_epoch) {
        return Err(ApiError::unauthorized("This API key has expired"));
    }
    if key.team_id != team_id {
        return Err(ApiError::forbidden(
            "This API key does not belong to this team",
        ));
    }
    if key.project_id.as_deref().is_some_and(|p| p != project_id) {
        return Err(ApiError::forbidden(
            "This API key is limited to another project",
        ));
    }
    if !scopes_allow(&key.scopes, resource, access) {
        let needed = Scope::required(resource, access);
        return Err(ApiError::forbidden(format!(
            "This API key lacks the {} scope",
            needed.as_str()
        )));
    }
    Ok(Principal {
        key_id: key.id.clone(),
        team_id: key.team_id.clone(),
        project_id: key.project_id.clone(),
    })
}

/// Reads the `Authorization` header value into a well-formed secret, or a 401.
pub fn parse_bearer(header: Option<&str>) -> Result<ApiKeySecret, ApiError> {
    let header = header.ok_or_else(|| {
        ApiError::unauthorized("Missing API key: send it as Authorization: Bearer bs_...")
    })?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized("Invalid Authorization header: expected Bearer bs_...")
        })?;
    ApiKeySecret::parse(token.trim()).ok_or_else(|| ApiError::unauthorized("Invalid API key"))
}

/// Looks keys and projects up in the table, remembering what it found for `ttl` in the
/// warm container so a warm request costs no extra DynamoDB call. A revoked key therefore
/// keeps working for at most `ttl` in a container that has it cached; expiry is checked
/// on every request.
pub struct Authenticator {
    ttl: Duration,
    keys: Mutex<HashMap<String, (ApiKeyRecord, Instant)>>,
    projects: Mutex<HashMap<(String, String), Instant>>,
}

/// Bound on cached entries, so a flood of distinct keys cannot grow memory without end.
const CACHE_CAPACITY: usize = 1024;

impl Authenticator {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            keys: Mutex::new(HashMap::new()),
            projects: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticates the bearer key and authorizes it for `team_id`/`project_id`, then
    /// checks that the project exists in the team (404 `Project not found` otherwise).
    pub async fn authenticate(
        &self,
        store: &Store,
        authorization: Option<&str>,
        team_id: &str,
        project_id: &str,
        resource: Resource,
        access: Access,
    ) -> Result<Principal, ApiError> {
        let secret = parse_bearer(authorization)?;
        let key = self.key_record(store, &secret).await?;
        let principal = authorize(
            &key,
            clock::now_epoch(),
            team_id,
            project_id,
            resource,
            access,
        )?;
        self.ensure_project(store, team_id, project_id).await?;
        Ok(principal)
    }

    async fn key_record(
        &self,
        store: &Store,
        secret: &ApiKeySecret,
    ) -> Result<ApiKeyRecord, ApiError> {
        let hash = secret.hash();
        if let Some(record) = self.cached_key(&hash) {
            return Ok(record);
        }
        let record = store
            .get_api_key_by_hash(&hash)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Invalid API key"))?;
        if !self.ttl.is_zero()
            && let Ok(mut keys) = self.keys.lock()
        {
            if keys.len() >= CACHE_CAPACITY {
                keys.clear();
            }
            keys.insert(hash, (record.clone(), Instant::now()));
        }
        Ok(record)
    }

    fn cached_key(&self, hash: &str) -> Option<ApiKeyRecord> {
        let keys = self.keys.lock().ok()?;
        let (record, at) = keys.get(hash)?;
        (at.elapsed() < self.ttl).then(|| record.clone())
    }

    async fn ensure_project(
        &self,
        store: &Store,
        team_id: &str,
        project_id: &str,
    ) -> Result<(), ApiError> {
        let cache_key = (team_id.to_owned(), project_id.to_owned());
        let cached = self
            .projects
            .lock()
            .ok()
            .and_then(|p| p.get(&cache_key).copied())
            .is_some_and(|at| at.elapsed() < self.ttl);
        if cached {
            return Ok(());
        }
        match store.get_project(project_id).await? {
            Some(project) if project.team_id == team_id => {
                if !self.ttl.is_zero()
                    && let Ok(mut projects) = self.projects.lock()
                {
                    if projects.len() >= CACHE_CAPACITY {
                        projects.clear();
                    }
                    projects.insert(cache_key, Instant::now());
                }
                Ok(())
            }
            _ => Err(ApiError::not_found("Project not found")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn key(scopes: Vec<Scope>, project: Option<&str>) -> ApiKeyRecord {
        ApiKeyRecord {
            id: "key_1".into(),
            team_id: "team_a".into(),
            name: "test".into(),
            prefix: "bs_0123".into(),
            project_id: project.map(str::to_owned),
            scopes,
            expires_at: None,
            revoked_at: None,
            created_at: 0,
        }
    }

    #[test]
    fn secrets_have_the_documented_shape_and_hash() {
        let secret = ApiKeySecret::generate().unwrap();
        assert_eq!(secret.expose().len(), 3 + 48);
        assert!(ApiKeySecret::parse(secret.expose()).is_some());
        assert_eq!(secret.display_prefix().len(), 7);
        assert!(secret.expose().starts_with(&secret.display_prefix()));
        let fixed = ApiKeySecret::parse(&format!("bs_{}", "ab".repeat(24))).unwrap();
        // sha256("bs_abab...ab"), computed independently with `printf %s ... | sha256sum`.
        assert_eq!(
            fixed.hash(),
            "d02d870be7cbb69a6439773102956c12b5863a8855367349a875a3dd7b89eed4"
        );
        assert!(!format!("{fixed:?}").contains(&"ab".repeat(24)));
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for raw in [
            "",
            "bs_",
            "sk_test_123",
            &format!("bs_{}", "a".repeat(47)),
            &format!("bs_{}", "a".repeat(49)),
            &format!("bs_{}", "A".repeat(48)),
            &format!("bs_{}", "g".repeat(48)),
            &format!("BS_{}", "a".repeat(48)),
        ] {
            assert!(
                ApiKeySecret::parse(raw).is_none(),
                "{raw} should be refused"
            );
        }
    }

    #[test]
    fn bearer_header_parsing() {
        let good = format!("Bearer bs_{}", "0".repeat(48));
        assert!(parse_bearer(Some(&good)).is_ok());
        assert_eq!(
            parse_bearer(None).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            parse_bearer(Some("Basic abc")).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            parse_bearer(Some("Bearer bs_nothex")).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn no_scopes_means_full_access_and_write_implies_read() {
        assert!(scopes_allow(&[], Resource::Customers, Access::Write));
        assert!(scopes_allow(
            &[Scope::CustomersWrite],
            Resource::Customers,
            Access::Read
        ));
        assert!(scopes_allow(
            &[Scope::CustomersRead],
            Resource::Customers,
            Access::Read
        ));
        assert!(!scopes_allow(
            &[Scope::CustomersRead],
            Resource::Customers,
            Access::Write
        ));
        assert!(!scopes_allow(
            &[Scope::ProductsWrite],
            Resource::Customers,
            Access::Read
        ));
        assert!(scopes_allow(
            &[Scope::ProductsRead],
            Resource::Prices,
            Access::Read
        ));
        assert!(!scopes_allow(
            &[Scope::ProductsRead],
            Resource::Prices,
            Access::Write
        ));
        assert!(scopes_allow(
            &[Scope::ProductsWrite],
            Resource::Prices,
            Access::Write
        ));
    }

    #[test]
    fn scope_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
        }
        assert_eq!(Scope::parse("customers:delete"), None);
    }

    #[test]
    fn authorize_checks_revocation_expiry_team_project_and_scope() {
        let ok = authorize(
            &key(vec![], None),
            100,
            "team_a",
            "proj_x",
            Resource::Customers,
            Access::Write,
        );
        assert_eq!(ok.unwrap().team_id, "team_a");

        let mut revoked = key(vec![], None);
        revoked.revoked_at = Some(50);
        let err = authorize(
            &revoked,
            100,
            "team_a",
            "proj_x",
            Resource::Customers,
            Access::Read,
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);

        let mut expired = key(vec![], None);
        expired.expires_at = Some(100);
        let err = authorize(
            &expired,
            100,
            "team_a",
            "proj_x",
            Resource::Customers,
            Access::Read,
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        expired.expires_at = Some(101);
        assert!(
            authorize(
                &expired,
                100,
                "team_a",
                "proj_x",
                Resource::Customers,
                Access::Read
            )
            .is_ok()
        );

        let err = authorize(
            &key(vec![], None),
            100,
            "team_b",
            "proj_x",
            Resource::Customers,
            Access::Read,
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);

        let scoped = key(vec![], Some("proj_x"));
        assert!(
            authorize(
                &scoped,
                100,
                "team_a",
                "proj_x",
                Resource::Customers,
                Access::Read
            )
            .is_ok()
        );
        let err = authorize(
            &scoped,
            100,
            "team_a",
            "proj_y",
            Resource::Customers,
            Access::Read,
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);

        let read_only = key(vec![Scope::CustomersRead], None);
        let err = authorize(
            &read_only,
            100,
            "team_a",
            "proj_x",
            Resource::Customers,
            Access::Write,
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.message.contains("customers:write"));
    }
}
