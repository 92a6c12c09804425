//! Who may do what: API key secrets (their format and hash; a key's record and scopes are
//! in [`crate::model`]), dashboard sessions (verified by
//! [`SessionVerifier`], then a team membership), and the rules that decide whether a caller
//! may do something. The lookups in the table, with their warm-container cache, are
//! [`Authenticator`]; the rules are pure functions, unit-tested.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::TtlCache;
use crate::clock;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{ApiKeyId, ProjectId, TeamId};
use crate::model::{ApiKeyRecord, LAST_USED_INTERVAL_SECS, Membership, Role, Scope, scopes_allow};
use crate::routing::{Access, Action, Resource, TeamResource, TeamRoute};
use crate::session::{IssuerConfig, Session, SessionVerifier};
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
        Ok(Self(format!("{SECRET_PREFIX}{}", hex::encode(bytes))))
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
        hex::encode(Sha256::digest(self.0.as_bytes()))
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

/// Who is calling, once authenticated and authorized for the path's team and project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub team_id: TeamId,
    /// The project an API key is limited to.
    pub project_id: Option<ProjectId>,
    pub caller: Caller,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    ApiKey {
        key_id: ApiKeyId,
    },
    /// A member of the team, with full read and write access to its projects.
    Session {
        user_id: String,
        role: Role,
    },
}

/// Whether a team-level action is owners' work: members, API keys, the Stripe connection,
/// renaming the team. Any
/// member of the path's team may do the rest (read the team, its projects, members and
/// keys; create and rename projects); `/teams` itself needs only a session.
pub fn needs_owner(resource: TeamResource, action: Action) -> bool {
    matches!(
        (resource, action),
        (TeamResource::Teams, Action::Update)
            | (
                TeamResource::Members,
                Action::Create | Action::Update | Action::Delete
            )
            | (TeamResource::ApiKeys, Action::Create | Action::Delete)
            | (TeamResource::Stripe, Action::Create | Action::Delete)
    )
}

/// A signed-in user on a team-level route, with their membership of the path's team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamPrincipal {
    pub session: Session,
    /// `None` on `/teams` itself, which names no team.
    pub membership: Option<Membership>,
}

/// What the `Authorization` header carries.
#[derive(Debug)]
pub enum Credential {
    ApiKey(ApiKeySecret),
    /// Anything that is not a `bs_` key is tried as a session token (a JWT).
    Session(String),
}

/// The decision for one request, given the key's record: 401 for a revoked or expired
/// key, 403 for another team, another project or a missing scope.
pub fn authorize(
    key: &ApiKeyRecord,
    now_epoch: i64,
    team_id: &TeamId,
    project_id: &ProjectId,
    resource: Resource,
    access: Access,
) -> Result<Principal, ApiError> {
    check_key_usable(key, now_epoch)?;
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
        team_id: key.team_id.clone(),
        project_id: key.project_id.clone(),
        caller: Caller::ApiKey {
            key_id: key.id.clone(),
        },
    })
}

/// Reads the `Authorization` header value: a well-formed `bs_` key, or a token to verify as
/// a session; a 401 otherwise.
pub fn parse_credential(header: Option<&str>) -> Result<Credential, ApiError> {
    let header = header.ok_or_else(|| {
        ApiError::unauthorized(
            "Missing credentials: send an API key or a session token as Authorization: Bearer ...",
        )
    })?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "Invalid Authorization header: expected Bearer <API key or session token>",
            )
        })?;
    if token.starts_with(SECRET_PREFIX) {
        return ApiKeySecret::parse(token)
            .map(Credential::ApiKey)
            .ok_or_else(|| ApiError::unauthorized("Invalid API key"));
    }
    // A JWT is three base64url parts; anything else is neither a key nor a token.
    let jwt_shaped = token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='));
    if jwt_shaped {
        Ok(Credential::Session(token.to_owned()))
    } else {
        Err(ApiError::unauthorized(
            "Invalid credentials: not an API key (bs_...) or a session token",
        ))
    }
}

/// Reads the `Authorization` header value into a well-formed API key secret, or a 401.
pub fn parse_bearer(header: Option<&str>) -> Result<ApiKeySecret, ApiError> {
    match parse_credential(header)? {
        Credential::ApiKey(secret) => Ok(secret),
        Credential::Session(_) => Err(ApiError::unauthorized("Invalid API key")),
    }
}

/// Looks keys, memberships and projects up in the table, remembering what it found for
/// `ttl` in the warm container so a warm request costs no extra DynamoDB call. A revoked
/// key or a removed member therefore keeps working for at most `ttl` in a container that
/// has it cached (a revocation through this process's own API forgets it at once); expiry
/// is checked on every request. Team-level routes always read the membership afresh.
pub struct Authenticator {
    keys: TtlCache<String, ApiKeyRecord>,
    projects: TtlCache<(TeamId, ProjectId), ()>,
    members: TtlCache<(TeamId, String), Membership>,
    /// When this container last wrote a key's `lastUsedAt`.
    touched: TtlCache<String, ()>,
    sessions: Option<SessionVerifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("ttl", &self.keys.ttl())
            .field("sessions", &self.sessions)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// With sessions of `issuer` accepted beside API keys.
    pub fn with_sessions(ttl: Duration, issuer: Option<SessionVerifier>) -> Self {
        Self {
            keys: TtlCache::new(ttl),
            projects: TtlCache::new(ttl),
            members: TtlCache::new(ttl),
            touched: TtlCache::new(Duration::from_secs(LAST_USED_INTERVAL_SECS as u64)),
            sessions: issuer,
        }
    }

    pub fn from_issuer_config(ttl: Duration, issuer: Option<&IssuerConfig>) -> Self {
        Self::with_sessions(ttl, issuer.cloned().map(SessionVerifier::new))
    }

    /// Authenticates the caller and authorizes them for `team_id`/`project_id`, then
    /// checks that the project exists in the team (404 `Project not found` otherwise).
    /// A session needs a membership of the team (404 `Team not found` otherwise).
    pub async fn authenticate(
        &self,
        store: &Store,
        authorization: Option<&str>,
        team_id: &TeamId,
        project_id: &ProjectId,
        resource: Resource,
        access: Access,
    ) -> Result<Principal, ApiError> {
        let principal = match parse_credential(authorization)? {
            Credential::ApiKey(secret) => {
                let hash = secret.hash();
                let key = self.key_record(store, &hash).await?;
                let principal = authorize(
                    &key,
                    clock::now_epoch(),
                    team_id,
                    project_id,
                    resource,
                    access,
                )?;
                self.note_use(store, hash, &key).await;
                principal
            }
            Credential::Session(token) => {
                let session = self.verify_session(&token).await?;
                let membership = self.cached_membership(store, team_id, &session).await?;
                Principal {
                    team_id: team_id.clone(),
                    project_id: None,
                    caller: Caller::Session {
                        user_id: session.user_id,
                        role: membership.role,
                    },
                }
            }
        };
        self.ensure_project(store, team_id, project_id).await?;
        Ok(principal)
    }

    /// Authenticates a session for a team-level route and checks the role it needs. An API
    /// key, however valid, is 403 `session_required` there.
    pub async fn authenticate_team(
        &self,
        store: &Store,
        authorization: Option<&str>,
        route: &TeamRoute,
    ) -> Result<TeamPrincipal, ApiError> {
        let token = match parse_credential(authorization)? {
            Credential::ApiKey(secret) => {
                let key = self.key_record(store, &secret.hash()).await?;
                check_key_usable(&key, clock::now_epoch())?;
                return Err(ApiError::new(
                    ErrorCode::SessionRequired,
                    "This endpoint needs a dashboard session; API keys cannot manage teams",
                ));
            }
            Credential::Session(token) => token,
        };
        let session = self.verify_session(&token).await?;
        let Some(team_id) = route.team_id.as_ref() else {
            return Ok(TeamPrincipal {
                session,
                membership: None,
            });
        };
        let membership = self.read_membership(store, team_id, &session).await?;
        if needs_owner(route.resource, route.action) && membership.role != Role::Owner {
            return Err(ApiError::new(
                ErrorCode::OwnerRequired,
                "Only an owner of this team may do this",
            ));
        }
        Ok(TeamPrincipal {
            session,
            membership: Some(membership),
        })
    }

    async fn verify_session(&self, token: &str) -> Result<Session, ApiError> {
        match &self.sessions {
            Some(verifier) => verifier.verify(token).await,
            None => Err(ApiError::unauthorized(
                "Invalid API key: this deployment accepts no session tokens",
            )),
        }
    }

    /// The caller's membership of `team_id` (cached like keys), its profile kept current.
    async fn cached_membership(
        &self,
        store: &Store,
        team_id: &TeamId,
        session: &Session,
    ) -> Result<Membership, ApiError> {
        let cache_key = (team_id.to_owned(), session.user_id.clone());
        if let Some(membership) = self.members.get(&cache_key) {
            return Ok(membership);
        }
        let membership = self.read_membership(store, team_id, session).await?;
        self.members.insert(cache_key, membership.clone());
        Ok(membership)
    }

    /// The caller's membership of `team_id` as the table has it now, or 404 `Team not
    /// found` (for a team that does not exist as for one they are not in).
    async fn read_membership(
        &self,
        store: &Store,
        team_id: &TeamId,
        session: &Session,
    ) -> Result<Membership, ApiError> {
        // An ID of another form names no team (and an over-long one is no DynamoDB key).
        if !team_id.is_well_formed() {
            return Err(TeamResource::Teams.not_found());
        }
        let membership = store
            .get_membership(team_id, &session.user_id)
            .await?
            .ok_or_else(|| TeamResource::Teams.not_found())?;
        Ok(self.refresh_profile(store, membership, session).await)
    }

    /// Where the token's `email`/`name` differ from what the membership shows, records
    /// them (best effort: a failure is logged and the request goes on).
    async fn refresh_profile(
        &self,
        store: &Store,
        membership: Membership,
        session: &Session,
    ) -> Membership {
        let email = session.email.clone().or_else(|| membership.email.clone());
        let name = session.name.clone().or_else(|| membership.name.clone());
        if email == membership.email && name == membership.name {
            return membership;
        }
        let updated = Membership {
            email,
            name,
            ..membership
        };
        if let Err(err) = store.refresh_member_profile(&updated).await {
            tracing::warn!(
                code = err.code.as_str(),
                "could not record a member's profile"
            );
        }
        updated
    }

    /// Forgets what this container cached about a key (after revoking it here).
    pub fn forget_key(&self, hash: &str) {
        self.keys.remove(&hash.to_owned());
    }

    /// Forgets what this container cached about a membership (after changing it here).
    pub fn forget_membership(&self, team_id: &TeamId, user_id: &str) {
        self.members.remove(&(team_id.clone(), user_id.to_owned()));
    }

    /// The record of the key whose secret hashes to `hash`.
    async fn key_record(&self, store: &Store, hash: &str) -> Result<ApiKeyRecord, ApiError> {
        if let Some(record) = self.keys.get(&hash.to_owned()) {
            return Ok(record);
        }
        let record = store
            .get_api_key_by_hash(hash)
            .await?
            .ok_or_else(|| ApiError::unauthorized("Invalid API key"))?;
        self.keys.insert(hash.to_owned(), record.clone());
        Ok(record)
    }

    /// Writes the key's `lastUsedAt` when it is older than [`LAST_USED_INTERVAL_SECS`] and
    /// this container has not written it within that interval. Never fails the request.
    async fn note_use(&self, store: &Store, hash: String, key: &ApiKeyRecord) {
        let now = clock::now_epoch();
        let since = now - LAST_USED_INTERVAL_SECS;
        if key.last_used_at.is_some_and(|at| at > since) || self.touched.get(&hash).is_some() {
            return;
        }
        match store.touch_api_key(&hash, now, since).await {
            Ok(_) => self.touched.insert(hash, ()),
            Err(err) => tracing::warn!(
                code = err.code.as_str(),
                "could not record a key's last use"
            ),
        }
    }

    /// Whether `project_id` is a project of `team_id` (404 `Project not found` if not),
    /// remembered for the cache's TTL like a key.
    pub async fn ensure_project(
        &self,
        store: &Store,
        team_id: &TeamId,
        project_id: &ProjectId,
    ) -> Result<(), ApiError> {
        let cache_key = (team_id.to_owned(), project_id.to_owned());
        if self.projects.get(&cache_key).is_some() {
            return Ok(());
        }
        // An ID of another form names nothing (and an over-long one is no DynamoDB key).
        if !project_id.is_well_formed() {
            return Err(ApiError::not_found("Project not found"));
        }
        match store.get_team_project(team_id, project_id).await? {
            Some(_) => {
                self.projects.insert(cache_key, ());
                Ok(())
            }
            None => Err(ApiError::not_found("Project not found")),
        }
    }
}

/// 401 for a revoked or expired key.
fn check_key_usable(key: &ApiKeyRecord, now_epoch: i64) -> Result<(), ApiError> {
    if key.revoked_at.is_some() {
        return Err(ApiError::unauthorized("This API key has been revoked"));
    }
    if key.expires_at.is_some_and(|at| at <= now_epoch) {
        return Err(ApiError::unauthorized("This API key has expired"));
    }
    Ok(())
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
            project_id: project.map(ProjectId::from),
            scopes,
            expires_at: None,
            revoked_at: None,
            created_at: 0,
            last_used_at: None,
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
            parse_bearer(None).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            parse_bearer(Some("Basic abc")).unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            parse_bearer(Some("Bearer bs_nothex")).unwrap_err().status(),
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
    fn owners_alone_manage_members_keys_stripe_and_the_team_name() {
        use TeamResource::*;
        for (resource, action) in [
            (Teams, Action::Update),
            (Members, Action::Create),
            (Members, Action::Update),
            (Members, Action::Delete),
            (ApiKeys, Action::Create),
            (ApiKeys, Action::Delete),
            (Stripe, Action::Create),
            (Stripe, Action::Delete),
        ] {
            assert!(needs_owner(resource, action), "{resource:?} {action:?}");
        }
        for (resource, action) in [
            (Teams, Action::Get),
            (Members, Action::List),
            (Projects, Action::Create),
            (Projects, Action::Update),
            (ApiKeys, Action::List),
            (ApiKeys, Action::Get),
            (Stripe, Action::Get),
        ] {
            assert!(!needs_owner(resource, action), "{resource:?} {action:?}");
        }
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
            &TeamId::from("team_a"),
            &ProjectId::from("proj_x"),
            Resource::Customers,
            Access::Write,
        );
        assert_eq!(ok.unwrap().team_id, "team_a");

        let mut revoked = key(vec![], None);
        revoked.revoked_at = Some(50);
        let err = authorize(
            &revoked,
            100,
            &TeamId::from("team_a"),
            &ProjectId::from("proj_x"),
            Resource::Customers,
            Access::Read,
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);

        let mut expired = key(vec![], None);
        expired.expires_at = Some(100);
        let err = authorize(
            &expired,
            100,
            &TeamId::from("team_a"),
            &ProjectId::from("proj_x"),
            Resource::Customers,
            Access::Read,
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        expired.expires_at = Some(101);
        assert!(
            authorize(
                &expired,
                100,
                &TeamId::from("team_a"),
                &ProjectId::from("proj_x"),
                Resource::Customers,
                Access::Read
            )
            .is_ok()
        );

        let err = authorize(
            &key(vec![], None),
            100,
            &TeamId::from("team_b"),
            &ProjectId::from("proj_x"),
            Resource::Customers,
            Access::Read,
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);

        let scoped = key(vec![], Some("proj_x"));
        assert!(
            authorize(
                &scoped,
                100,
                &TeamId::from("team_a"),
                &ProjectId::from("proj_x"),
                Resource::Customers,
                Access::Read
            )
            .is_ok()
        );
        let err = authorize(
            &scoped,
            100,
            &TeamId::from("team_a"),
            &ProjectId::from("proj_y"),
            Resource::Customers,
            Access::Read,
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);

        let read_only = key(vec![Scope::CustomersRead], None);
        let err = authorize(
            &read_only,
            100,
            &TeamId::from("team_a"),
            &ProjectId::from("proj_x"),
            Resource::Customers,
            Access::Write,
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN);
        assert!(err.message.contains("customers:write"));
    }
}
