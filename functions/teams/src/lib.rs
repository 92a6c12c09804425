//! The team-level API, for signed-in dashboard users: their teams, a team's members,
//! projects and API keys. Sessions only; the role each action needs is checked before a
//! handler runs (`billstack::auth::needs_owner`). The Lambda, the local server and the tests
//! all call [`handle`].

use billstack::App;
use billstack::admin::{self, MAX_NAME_LEN, NewApiKey, NewMember};
use billstack::clock;
use billstack::error::{ApiError, ErrorCode};
use billstack::http::{ApiResponse, TeamRequest};
use billstack::ids::{ApiKeyId, IdKind, ProjectId};
use billstack::input::{self, DEFAULT_LIMIT, Page, Query, json_body, nullable};
use billstack::model::{Membership, Role};
use billstack::routing::{Action, TeamResource};
use billstack::store::RoleChange;
use serde::Deserialize;
use serde_json::json;

/// Answers every team-level route.
pub async fn handle(app: &App, req: TeamRequest) -> Result<ApiResponse, ApiError> {
    use Action::*;
    use TeamResource::*;
    match (req.route.resource, req.route.action) {
        (Teams, List) => list_teams(app, &req).await,
        (Teams, Create) => create_team(app, &req).await,
        (Teams, Get) => get_team(app, &req).await,
        (Teams, Update) => rename_team(app, &req).await,
        (Members, List) => list_members(app, &req).await,
        (Members, Create) => add_member(app, &req).await,
        (Members, Update) => change_role(app, &req).await,
        (Members, Delete) => remove_member(app, &req).await,
        (Projects, List) => list_projects(app, &req).await,
        (Projects, Create) => create_project(app, &req).await,
        (Projects, Get) => get_project(app, &req).await,
        (Projects, Update) => rename_project(app, &req).await,
        (ApiKeys, List) => list_keys(app, &req).await,
        (ApiKeys, Create) => create_key(app, &req).await,
        (ApiKeys, Get) => get_key(app, &req).await,
        (ApiKeys, Delete) => revoke_key(app, &req).await,
        _ => Err(ApiError::not_found(format!(
            "No route for {}",
            req.route.name()
        ))),
    }
}

/// `limit`/`offset` of a team-level list of `kind`, bounded as on every list. These lists
/// are read from `gsi1` and take no `startingAfter` cursor.
fn page(req: &TeamRequest, kind: IdKind) -> Result<Page, ApiError> {
    let query = Query::parse(req.query.as_deref(), &["limit", "offset"])?;
    Page::from_query(&query, Some(DEFAULT_LIMIT), kind)
}

/// Refuses a query string where a route takes none.
fn no_query(req: &TeamRequest) -> Result<(), ApiError> {
    Query::parse(req.query.as_deref(), &[]).map(|_| ())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NameBody {
    name: Option<String>,
}

fn required_name(body: &[u8]) -> Result<String, ApiError> {
    let body: NameBody = json_body(body)?;
    let name = body
        .name
        .ok_or_else(|| ApiError::invalid("name", "Missing required parameter: name"))?;
    input::text("name", &name, MAX_NAME_LEN)
}

async fn list_teams(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let page = page(req, IdKind::Team)?;
    let (teams, has_more) = app.store.teams_of_user(req.user_id(), &page).await?;
    Ok(ApiResponse::ok(json!({
        "teams": teams.iter().map(|(team, role)| team.to_json(Some(*role))).collect::<Vec<_>>(),
        "hasMore": has_more,
    })))
}

async fn create_team(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let name = required_name(&req.body)?;
    let (team, membership) =
        admin::create_team_owned_by(&app.store, &name, &req.principal.session).await?;
    Ok(ApiResponse::created(
        json!({"team": team.to_json(Some(membership.role))}),
    ))
}

async fn get_team(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    no_query(req)?;
    let team = app
        .store
        .get_team(req.team_id())
        .await?
        .ok_or_else(|| TeamResource::Teams.not_found())?;
    Ok(ApiResponse::ok(json!({"team": team.to_json(req.role())})))
}

async fn rename_team(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let name = required_name(&req.body)?;
    let team = app
        .store
        .rename_team(req.team_id(), &name, clock::now_epoch())
        .await?
        .ok_or_else(|| TeamResource::Teams.not_found())?;
    Ok(ApiResponse::ok(json!({"team": team.to_json(req.role())})))
}

async fn list_members(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    no_query(req)?;
    let members = app.store.list_members(req.team_id()).await?;
    Ok(ApiResponse::ok(json!({
        "members": members.iter().map(Membership::to_json).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AddMemberBody {
    user_id: Option<String>,
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    email: Option<String>,
}

async fn add_member(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let body: AddMemberBody = json_body(&req.body)?;
    let user_id = body
        .user_id
        .ok_or_else(|| ApiError::invalid("userId", "Missing required parameter: userId"))?;
    let membership = admin::add_member(
        &app.store,
        req.team_id(),
        &NewMember {
            user_id,
            role: body.role.unwrap_or(Role::Member),
            email: body.email,
        },
    )
    .await?;
    Ok(ApiResponse::created(
        json!({"member": membership.to_json()}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: Option<Role>,
}

/// The path's user ID, checked as a user ID; a malformed one names no member.
fn member_id(req: &TeamRequest) -> Result<String, ApiError> {
    admin::user_id("userId", req.object_id()).map_err(|_| TeamResource::Members.not_found())
}

fn last_owner() -> ApiError {
    ApiError::new(
        ErrorCode::LastOwner,
        "A team must keep at least one owner: make another member an owner first",
    )
}

async fn change_role(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let user_id = member_id(req)?;
    let body: RoleBody = json_body(&req.body)?;
    let role = body
        .role
        .ok_or_else(|| ApiError::invalid("role", "Missing required parameter: role"))?;
    let changed = app.store.change_role(req.team_id(), &user_id, role).await?;
    app.auth.forget_membership(req.team_id(), &user_id);
    match changed {
        RoleChange::Done(membership) => {
            Ok(ApiResponse::ok(json!({"member": membership.to_json()})))
        }
        RoleChange::NotFound => Err(TeamResource::Members.not_found()),
        RoleChange::LastOwner => Err(last_owner()),
    }
}

async fn remove_member(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    no_query(req)?;
    let user_id = member_id(req)?;
    let removed = app.store.remove_member(req.team_id(), &user_id).await?;
    app.auth.forget_membership(req.team_id(), &user_id);
    match removed {
        RoleChange::Done(_) => Ok(ApiResponse::deleted()),
        RoleChange::NotFound => Err(TeamResource::Members.not_found()),
        RoleChange::LastOwner => Err(last_owner()),
    }
}

async fn list_projects(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let page = page(req, IdKind::Project)?;
    let (projects, has_more) = app.store.list_projects(req.team_id(), &page).await?;
    Ok(ApiResponse::ok(json!({
        "projects": projects.iter().map(|p| p.to_json()).collect::<Vec<_>>(),
        "hasMore": has_more,
    })))
}

async fn create_project(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let name = required_name(&req.body)?;
    let project = admin::create_project(&app.store, req.team_id(), &name).await?;
    Ok(ApiResponse::created(json!({"project": project.to_json()})))
}

/// The path's project ID, if it has the form of one; otherwise the 404 without a lookup.
fn project_id(req: &TeamRequest) -> Result<ProjectId, ApiError> {
    req.object_id_of(TeamResource::Projects)
}

async fn get_project(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    no_query(req)?;
    let project = app
        .store
        .get_team_project(req.team_id(), &project_id(req)?)
        .await?
        .ok_or_else(|| TeamResource::Projects.not_found())?;
    Ok(ApiResponse::ok(json!({"project": project.to_json()})))
}

async fn rename_project(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let id = project_id(req)?;
    let name = required_name(&req.body)?;
    let project = app
        .store
        .rename_project(req.team_id(), &id, &name, clock::now_epoch())
        .await?
        .ok_or_else(|| TeamResource::Projects.not_found())?;
    Ok(ApiResponse::ok(json!({"project": project.to_json()})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateKeyBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    project_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    scopes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
}

async fn list_keys(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let page = page(req, IdKind::ApiKey)?;
    let (keys, has_more) = app.store.list_api_keys(req.team_id(), &page).await?;
    Ok(ApiResponse::ok(json!({
        "keys": keys.iter().map(|k| k.to_json()).collect::<Vec<_>>(),
        "hasMore": has_more,
    })))
}

async fn create_key(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let body: CreateKeyBody = json_body(&req.body)?;
    let name = body
        .name
        .ok_or_else(|| ApiError::invalid("name", "Missing required parameter: name"))?;
    let (record, secret) = admin::create_api_key(
        &app.store,
        req.team_id(),
        &NewApiKey {
            name,
            project_id: body.project_id.flatten(),
            scopes: body.scopes.flatten().unwrap_or_default(),
            expires_at: body.expires_at.flatten(),
        },
    )
    .await?;
    Ok(ApiResponse::created(
        json!({"key": record.to_json(), "rawKey": secret.expose()}),
    ))
}

/// The path's key, if it is one of this team's.
async fn find_key(
    app: &App,
    req: &TeamRequest,
) -> Result<(String, billstack::model::ApiKeyRecord), ApiError> {
    let id: ApiKeyId = req.object_id_of(TeamResource::ApiKeys)?;
    app.store
        .get_api_key(req.team_id(), &id)
        .await?
        .ok_or_else(|| TeamResource::ApiKeys.not_found())
}

async fn get_key(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    no_query(req)?;
    let (_, record) = find_key(app, req).await?;
    Ok(ApiResponse::ok(json!({"key": record.to_json()})))
}

/// Revokes a key; the record stays, with `revokedAt`. Revoking it again answers the same.
async fn revoke_key(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    no_query(req)?;
    let (hash, _) = find_key(app, req).await?;
    if !app.store.revoke_api_key(&hash, clock::now_epoch()).await? {
        return Err(TeamResource::ApiKeys.not_found());
    }
    app.auth.forget_key(&hash);
    Ok(ApiResponse::deleted())
}
