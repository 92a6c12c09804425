//! Operator actions: teams, projects and API keys. Used by `billstack-admin`, by the local
//! server's seed and by tests, so all three make records the same way.

use crate::auth::{ApiKeyRecord, ApiKeySecret, Scope};
use crate::clock;
use crate::error::ApiError;
use crate::ids::IdKind;
use crate::input;
use crate::model::{Project, Team};
use crate::store::Store;

pub async fn create_team(store: &Store, name: &str) -> Result<Team, ApiError> {
    let team = Team {
        id: IdKind::Team.generate(),
        name: input::text("name", name, 256)?,
        created_at: clock::now_epoch(),
    };
    store.put_team(&team).await?;
    Ok(team)
}

pub async fn create_project(store: &Store, team_id: &str, name: &str) -> Result<Project, ApiError> {
    let name = input::text("name", name, 256)?;
    if store.get_team(team_id).await?.is_none() {
        return Err(ApiError::not_found(format!("Team {team_id} not found")));
    }
    let project = Project {
        id: IdKind::Project.generate(),
        team_id: team_id.to_owned(),
        name,
        created_at: clock::now_epoch(),
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
    team_id: &str,
    new: &NewApiKey,
) -> Result<(ApiKeyRecord, ApiKeySecret), ApiError> {
    let name = input::text("name", &new.name, 256)?;
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
        match store.get_project(project_id).await? {
            Some(project) if project.team_id == team_id => {}
            _ => return Err(ApiError::not_found("Project not found").with_param("projectId")),
        }
    }
    let secret = ApiKeySecret::generate()?;
    let record = ApiKeyRecord {
        id: IdKind::ApiKey.generate(),
        team_id: team_id.to_owned(),
        name,
        prefix: secret.display_prefix(),
        project_id: new.project_id.clone(),
        scopes,
        expires_at,
        revoked_at: None,
        created_at: now,
    };
    store.put_api_key(&secret.hash(), &record).await?;
    Ok((record, secret))
}
