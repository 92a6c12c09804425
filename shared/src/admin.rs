//! Making teams, members, projects and API keys: the rules each new record follows. Used by
//! the teams API, by `billstack-admin`, by the local server's seed and by tests, so all of
//! them make records the same way.

use crate::auth::ApiKeySecret;
use crate::clock;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{ApiKeyId, ProjectId, TeamId};
use crate::input;
use crate::model::{ApiKeyRecord, Scope};
use crate::model::{Membership, Project, Role, Team};
use crate::session::{MAX_USER_ID_LEN, Session};
use crate::store::Store;

/// The longest team, project or key name.
pub const MAX_NAME_LEN: usize = 256;

fn new_team(name: &str, owner_count: u32) -> Result<Team, ApiError> {
    let now = clock::now_epoch();
    Ok(Team {
        id: TeamId::generate(),
        name: input::text("name", name, MAX_NAME_LEN)?,
        created_at: now,
        updated_at: now,
        owner_count,
    })
}

/// A team with no members yet (operators add them with `billstack-admin member add`).
pub async fn create_team(store: &Store, name: &str) -> Result<Team, ApiError> {
    let team = new_team(name, 0)?;
    store.put_team(&team).await?;
    Ok(team)
}

/// A team created by a signed-in user, who becomes its first owner.
pub async fn create_team_owned_by(
    store: &Store,
    name: &str,
    owner: &Session,
) -> Result<(Team, Membership), ApiError> {
    let team = new_team(name, 1)?;
    let membership = Membership {
        team_id: team.id.clone(),
        user_id: owner.user_id.clone(),
        role: Role::Owner,
        email: owner.email.clone(),
        name: owner.name.clone(),
        created_at: team.created_at,
    };
    store.create_team_with_owner(&team, &membership).await?;
    Ok((team, membership))
}

/// Checks a user ID as the identity provider issues them (a token's `sub`).
pub fn user_id(param: &str, raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() || raw.len() > MAX_USER_ID_LEN || raw.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            param,
            format!(
                "{param} must be 1 to {MAX_USER_ID_LEN} characters with no control characters (the user's subject, sub, at the identity provider)"
            ),
        ));
    }
    Ok(raw.to_owned())
}

/// Who is added to a team.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub user_id: String,
    pub role: Role,
    pub email: Option<String>,
}

/// Adds a member to a team; 409 `member_exists` if the user is one already.
pub async fn add_member(
    store: &Store,
    team_id: &TeamId,
    new: &NewMember,
) -> Result<Membership, ApiError> {
    let membership = Membership {
        team_id: team_id.clone(),
        user_id: user_id("userId", &new.user_id)?,
        role: new.role,
        email: new
            .email
            .as_deref()
            .map(input::normalize_email)
            .transpose()?,
        name: None,
        created_at: clock::now_epoch(),
    };
    if store.add_member(&membership).await? {
        Ok(membership)
    } else {
        Err(ApiError::new(
            ErrorCode::MemberExists,
            format!("{} is a member of this team already", membership.user_id),
        )
        .with_param("userId"))
    }
}

pub async fn create_project(
    store: &Store,
    team_id: &TeamId,
    name: &str,
) -> Result<Project, ApiError> {
    let name = input::text("name", name, MAX_NAME_LEN)?;
    if store.get_team(team_id).await?.is_none() {
        return Err(ApiError::not_found(format!("Team {team_id} not found")));
    }
    let now = clock::now_epoch();
    let project = Project {
        id: ProjectId::generate(),
        team_id: team_id.clone(),
        name,
        created_at: now,
        updated_at: now,
    };
    store.put_project(&project).await?;
    Ok(project)
}

/// What an API key is made with.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub name: String,
    pub project_id: Option<String>,
    pub scopes: Vec<String>,
    /// RFC 3339.
    pub expires_at: Option<String>,
}

/// Creates a key; the secret is returned once and only its hash is stored.
pub async fn create_api_key(
    store: &Store,
    team_id: &TeamId,
    new: &NewApiKey,
) -> Result<(ApiKeyRecord, ApiKeySecret), ApiError> {
    let name = input::text("name", &new.name, MAX_NAME_LEN)?;
    let mut scopes = Vec::new();
    for raw in &new.scopes {
        let scope = Scope::parse(raw.trim()).ok_or_else(|| {
            let all: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid(
                "scopes",
                format!("Unknown scope {raw:?} (one of {})", all.join(", ")),
            )
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let now = clock::now_epoch();
    let expires_at = match &new.expires_at {
        None => None,
        Some(raw) => {
            let at = clock::parse_rfc3339(raw).ok_or_else(|| {
                ApiError::invalid(
                    "expiresAt",
                    "expiresAt must be an RFC 3339 timestamp such as 2027-01-01T00:00:00Z",
                )
            })?;
            if at <= now {
                return Err(ApiError::invalid(
                    "expiresAt",
                    "expiresAt must be in the future",
                ));
            }
            Some(at)
        }
    };
    if store.get_team(team_id).await?.is_none() {
        return Err(ApiError::not_found(format!("Team {team_id} not found")));
    }
    if let Some(project_id) = &new.project_id {
        // A project of another team is named exactly like one that does not exist.
        let ours = match ProjectId::parse(project_id) {
            Some(project_id) => store
                .get_team_project(team_id, &project_id)
                .await?
                .is_some(),
            None => false,
        };
        if !ours {
            return Err(ApiError::invalid(
                "projectId",
                format!("projectId {project_id:?} is not a project of this team"),
            ));
        }
    }
    let secret = ApiKeySecret::generate()?;
    let record = ApiKeyRecord {
        id: ApiKeyId::generate(),
        team_id: team_id.clone(),
        name,
        prefix: secret.display_prefix(),
        project_id: new.project_id.as_deref().map(ProjectId::from),
        scopes,
        expires_at,
        revoked_at: None,
        created_at: now,
        last_used_at: None,
    };
    store.put_api_key(&secret.hash(), &record).await?;
    Ok((record, secret))
}

/// Creates a symmetric KMS key for teams' secrets, with `alias` (`alias/…`) naming it, and
/// returns the alias: what `KMS_KEY_ID` is set to. For a local KMS; deployed, the template
/// creates the key.
pub async fn create_kms_key(kms: &crate::secrets::Kms, alias: &str) -> Result<String, ApiError> {
    let failed = |what: &str, detail: String| ApiError::internal(format!("kms {what}: {detail}"));
    let key = kms
        .client()
        .create_key()
        .description("BillStack team secrets (local)")
        .send()
        .await
        .map_err(|e| {
            failed(
                "CreateKey",
                aws_sdk_kms::error::DisplayErrorContext(&e).to_string(),
            )
        })?;
    let key_id = key
        .key_metadata
        .map(|m| m.key_id)
        .ok_or_else(|| failed("CreateKey", "no key in the answer".to_owned()))?;
    kms.client()
        .create_alias()
        .alias_name(alias)
        .target_key_id(&key_id)
        .send()
        .await
        .map_err(|e| {
            failed(
                "CreateAlias",
                aws_sdk_kms::error::DisplayErrorContext(&e).to_string(),
            )
        })?;
    Ok(alias.to_owned())
}
