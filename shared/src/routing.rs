//! The one router: method + path → route, the same in Lambda, the local server and tests.

use http::Method;

use crate::error::ApiError;
use crate::ids::{IdKind, ProjectId, TeamId};

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

const BASE: &str = "/api/billstack/teams/";

/// A project-scoped resource, one Lambda function each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Customers,
    Products,
    Prices,
}

impl Resource {
    pub const ALL: [Resource; 3] = [Resource::Customers, Resource::Products, Resource::Prices];

    pub fn segment(self) -> &'static str {
        match self {
            Resource::Customers => "customers",
            Resource::Products => "products",
            Resource::Prices => "prices",
        }
    }

    /// The 404 for an object of this resource that does not exist in the project.
    pub fn not_found(self) -> ApiError {
        ApiError::not_found(match self {
            Resource::Customers => "Customer not found",
            Resource::Products => "Product not found",
            Resource::Prices => "Price not found",
        })
    }

    fn from_segment(s: &str) -> Option<Self> {
        Resource::ALL.into_iter().find(|r| r.segment() == s)
    }

    pub const fn id_kind(self) -> IdKind {
        match self {
            Resource::Customers => IdKind::Customer,
            Resource::Products => IdKind::Product,
            Resource::Prices => IdKind::Price,
        }
    }
}

/// What a request does, once its method is checked against its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    List,
    Create,
    Get,
    Update,
    Delete,
}

impl Action {
    /// The HTTP method of the action.
    pub fn method(self) -> &'static str {
        match self {
            Action::List | Action::Get => "GET",
            Action::Create => "POST",
            Action::Update => "PATCH",
            Action::Delete => "DELETE",
        }
    }

    pub fn access(self) -> Access {
        match self {
            Action::List | Action::Get => Access::Read,
            Action::Create | Action::Update | Action::Delete => Access::Write,
        }
    }
}

/// A matched project-scoped route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub team_id: TeamId,
    pub project_id: ProjectId,
    pub resource: Resource,
    pub action: Action,
    /// The object ID from the path, for Get/Update/Delete.
    pub object_id: Option<String>,
}

impl Route {
    /// A short, log-safe name such as `GET /customers/{id}`.
    pub fn name(&self) -> String {
        let item = matches!(self.action, Action::Get | Action::Update | Action::Delete);
        let suffix = if item { "/{id}" } else { "" };
        format!(
            "{} /{}{suffix}",
            self.action.method(),
            self.resource.segment()
        )
    }
}

/// A team-level resource, sessions only: the teams function serves all but the Stripe
/// connection, which has its own function (the only one that may encrypt with KMS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TeamResource {
    /// `/teams` and `/teams/{teamId}`.
    Teams,
    Members,
    Projects,
    ApiKeys,
    /// `/teams/{teamId}/stripe[/{operation}]`: the operation (`connect`, `status`,
    /// `webhook-url`) is the route's object ID.
    Stripe,
}

/// The operations below `/teams/{teamId}/stripe/`, with their methods and actions.
pub const STRIPE_OPERATIONS: [(&str, Method, Action); 4] = [
    ("connect", Method::POST, Action::Create),
    ("backfill", Method::POST, Action::Create),
    ("status", Method::GET, Action::Get),
    ("webhook-url", Method::GET, Action::Get),
];

impl TeamResource {
    /// The resources below `/teams/{teamId}/` that have collections and objects of their
    /// own (the Stripe connection has operations instead: [`STRIPE_OPERATIONS`]).
    pub const NESTED: [TeamResource; 3] = [
        TeamResource::Members,
        TeamResource::Projects,
        TeamResource::ApiKeys,
    ];

    pub fn segment(self) -> &'static str {
        match self {
            TeamResource::Teams => "teams",
            TeamResource::Members => "members",
            TeamResource::Projects => "projects",
            TeamResource::ApiKeys => "api-keys",
            TeamResource::Stripe => "stripe",
        }
    }

    /// The 404 for an object of this resource that does not exist in the team.
    pub fn not_found(self) -> ApiError {
        ApiError::not_found(match self {
            TeamResource::Teams => "Team not found",
            TeamResource::Members => "Member not found",
            TeamResource::Projects => "Project not found",
            TeamResource::ApiKeys => "API key not found",
            TeamResource::Stripe => "Stripe is not connected",
        })
    }

    /// The actions each resource has, on its collection and on one of its objects.
    fn action(self, method: &Method, item: bool) -> Option<Action> {
        use TeamResource::*;
        match (self, item, method) {
            (Stripe, false, &Method::DELETE) => Some(Action::Delete),
            (Stripe, true, method) => STRIPE_OPERATIONS
                .iter()
                .find(|(_, m, _)| m == method)
                .map(|(_, _, action)| *action),
            (Stripe, false, _) => None,
            (_, false, &Method::GET) => Some(Action::List),
            (_, false, &Method::POST) => Some(Action::Create),
            (Teams | Projects | ApiKeys, true, &Method::GET) => Some(Action::Get),
            (Teams | Members | Projects, true, &Method::PATCH) => Some(Action::Update),
            (Members | ApiKeys, true, &Method::DELETE) => Some(Action::Delete),
            _ => None,
        }
    }
}

/// A matched team-level route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRoute {
    /// The path's team; `None` on `/teams` itself.
    pub team_id: Option<TeamId>,
    pub resource: TeamResource,
    pub action: Action,
    /// The object ID from the path (a member's user ID percent-decoded), for item routes
    /// below a team. `GET`/`PATCH /teams/{teamId}` name the team in `team_id` only.
    pub object_id: Option<String>,
}

impl TeamRoute {
    /// A short, log-safe name such as `PATCH /teams/{id}/members/{id}`.
    pub fn name(&self) -> String {
        let method = self.action.method();
        match (
            self.resource,
            self.team_id.is_some(),
            self.object_id.is_some(),
        ) {
            (TeamResource::Teams, false, _) => format!("{method} /teams"),
            (TeamResource::Teams, true, _) => format!("{method} /teams/{{id}}"),
            (TeamResource::Stripe, _, true) => format!(
                "{method} /teams/{{id}}/stripe/{}",
                self.object_id.as_deref().unwrap_or_default()
            ),
            (resource, _, false) => format!("{method} /teams/{{id}}/{}", resource.segment()),
            (resource, _, true) => format!("{method} /teams/{{id}}/{}/{{id}}", resource.segment()),
        }
    }
}

/// `POST /api/webhooks/stripe/{teamId}`: Stripe's events for one team, signed with the
/// team's webhook secret (no session or key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRoute {
    pub team_id: TeamId,
}

/// Where Stripe sends a team's events.
pub const WEBHOOK_BASE: &str = "/api/webhooks/stripe/";

/// What a path names: a project's resource, something of a team, or a team's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched {
    Project(Route),
    Team(TeamRoute),
    Webhook(WebhookRoute),
}

impl Matched {
    pub fn name(&self) -> String {
        match self {
            Matched::Project(route) => route.name(),
            Matched::Team(route) => route.name(),
            Matched::Webhook(_) => "POST /webhooks/stripe/{id}".to_owned(),
        }
    }

    pub fn team_id(&self) -> Option<&TeamId> {
        match self {
            Matched::Project(route) => Some(&route.team_id),
            Matched::Team(route) => route.team_id.as_ref(),
            Matched::Webhook(route) => Some(&route.team_id),
        }
    }

    pub fn project_id(&self) -> Option<&ProjectId> {
        match self {
            Matched::Project(route) => Some(&route.project_id),
            Matched::Team(_) | Matched::Webhook(_) => None,
        }
    }
}

/// Matches every route of the API:
/// `/api/billstack/teams[/{teamId}[/{members|projects|api-keys}[/{id}]]]` and
/// `/api/billstack/teams/{teamId}/projects/{projectId}/{resource}[/{id}]`.
/// Unknown paths are 404, known paths with another method are 405 with the methods they
/// allow (the `Allow` header).
pub fn route(method: &Method, path: &str) -> Result<Matched, ApiError> {
    match_route(method, path).map_err(|unmatched| match unmatched {
        Unmatched::NoRoute => ApiError::not_found(format!("No route for {method} {path}")),
        Unmatched::NotAllowed => {
            let allowed: Vec<&str> = METHODS
                .iter()
                .filter(|m| match_route(m, path).is_ok())
                .map(Method::as_str)
                .collect();
            ApiError::method_not_allowed(method.as_str(), path, &allowed)
        }
    })
}

/// Every method a route of this API takes.
const METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PATCH, Method::DELETE];

/// Why a request matched no route.
enum Unmatched {
    NoRoute,
    /// The path is a route's, the method is not.
    NotAllowed,
}

fn match_route(method: &Method, path: &str) -> Result<Matched, Unmatched> {
    let no_route = || Unmatched::NoRoute;
    let not_allowed = || Unmatched::NotAllowed;
    if let Some(team_id) = path.strip_prefix(WEBHOOK_BASE) {
        let team_id = team_id.strip_suffix('/').unwrap_or(team_id);
        if team_id.is_empty() || team_id.contains('/') {
            return Err(no_route());
        }
        if method != Method::POST {
            return Err(not_allowed());
        }
        return Ok(Matched::Webhook(WebhookRoute {
            team_id: team_id.into(),
        }));
    }
    let rest = path
        .strip_prefix(BASE.trim_end_matches('/'))
        .ok_or_else(no_route)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let parts: Vec<&str> = match rest.strip_prefix('/') {
        None if rest.is_empty() => Vec::new(),
        None => return Err(no_route()),
        Some(rest) => rest.split('/').collect(),
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(no_route());
    }
    let team = |resource: TeamResource, team_id: Option<&str>, object_id: Option<String>| {
        let action = resource
            .action(
                method,
                object_id.is_some() || (resource == TeamResource::Teams && team_id.is_some()),
            )
            .ok_or_else(not_allowed)?;
        Ok(Matched::Team(TeamRoute {
            team_id: team_id.map(TeamId::from),
            resource,
            action,
            object_id,
        }))
    };
    let team_resource = |segment: &str| {
        TeamResource::NESTED
            .into_iter()
            .find(|r| r.segment() == segment)
    };
    match parts.as_slice() {
        [team_id, "stripe"] => team(TeamResource::Stripe, Some(team_id), None),
        [team_id, "stripe", operation] => {
            let (name, expected, _) = STRIPE_OPERATIONS
                .iter()
                .find(|(name, _, _)| name == operation)
                .ok_or_else(no_route)?;
            if expected != method {
                return Err(not_allowed());
            }
            team(
                TeamResource::Stripe,
                Some(team_id),
                Some((*name).to_owned()),
            )
        }
        [] => team(TeamResource::Teams, None, None),
        [team_id] => team(TeamResource::Teams, Some(team_id), None),
        [team_id, resource] => {
            let resource = team_resource(resource).ok_or_else(no_route)?;
            team(resource, Some(team_id), None)
        }
        [team_id, resource, id] => {
            let resource = team_resource(resource).ok_or_else(no_route)?;
            // A user ID comes from the identity provider and may hold any character.
            let id = percent_encoding::percent_decode_str(id)
                .decode_utf8()
                .map_err(|_| no_route())?
                .into_owned();
            team(resource, Some(team_id), Some(id))
        }
        [team_id, "projects", project_id, resource, rest @ ..] if rest.len() <= 1 => {
            let resource = Resource::from_segment(resource).ok_or_else(no_route)?;
            let object_id = rest.first().copied();
            let action = match (object_id.is_some(), method) {
                (false, &Method::GET) => Action::List,
                (false, &Method::POST) => Action::Create,
                (true, &Method::GET) => Action::Get,
                (true, &Method::PATCH) => Action::Update,
                (true, &Method::DELETE) => Action::Delete,
                _ => return Err(not_allowed()),
            };
            Ok(Matched::Project(Route {
                team_id: (*team_id).into(),
                project_id: (*project_id).into(),
                resource,
                action,
                object_id: object_id.map(str::to_owned),
            }))
        }
        _ => Err(no_route()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn project_route(method: &Method, path: &str) -> Result<Route, ApiError> {
        match route(method, path)? {
            Matched::Project(route) => Ok(route),
            other => panic!("{path} is not a project route: {other:?}"),
        }
    }

    fn team_route(method: &Method, path: &str) -> TeamRoute {
        match route(method, path).unwrap() {
            Matched::Team(route) => route,
            other => panic!("{path} is not a team route: {other:?}"),
        }
    }

    #[test]
    fn matches_team_level_routes() {
        let r = team_route(&Method::GET, "/api/billstack/teams");
        assert_eq!(
            (r.resource, r.action, r.team_id.clone()),
            (TeamResource::Teams, Action::List, None)
        );
        assert_eq!(r.name(), "GET /teams");
        let r = team_route(&Method::POST, "/api/billstack/teams/");
        assert_eq!(r.action, Action::Create);
        let r = team_route(&Method::PATCH, "/api/billstack/teams/team_1");
        assert_eq!(
            (r.resource, r.action),
            (TeamResource::Teams, Action::Update)
        );
        assert_eq!(r.team_id.as_deref(), Some("team_1"));
        assert_eq!(r.name(), "PATCH /teams/{id}");
        let r = team_route(&Method::DELETE, "/api/billstack/teams/t/members/auth0%7C42");
        assert_eq!(
            (r.resource, r.action),
            (TeamResource::Members, Action::Delete)
        );
        assert_eq!(r.object_id.as_deref(), Some("auth0|42"));
        assert_eq!(r.name(), "DELETE /teams/{id}/members/{id}");
        let r = team_route(&Method::GET, "/api/billstack/teams/t/projects/proj_1");
        assert_eq!(
            (r.resource, r.action),
            (TeamResource::Projects, Action::Get)
        );
        let r = team_route(&Method::POST, "/api/billstack/teams/t/api-keys");
        assert_eq!(
            (r.resource, r.action),
            (TeamResource::ApiKeys, Action::Create)
        );
        assert_eq!(r.name(), "POST /teams/{id}/api-keys");
        let r = team_route(&Method::POST, "/api/billstack/teams/t/stripe/connect");
        assert_eq!(
            (r.resource, r.action, r.object_id.as_deref()),
            (TeamResource::Stripe, Action::Create, Some("connect"))
        );
        assert_eq!(r.name(), "POST /teams/{id}/stripe/connect");
        let r = team_route(&Method::GET, "/api/billstack/teams/t/stripe/webhook-url");
        assert_eq!(
            (r.action, r.object_id.as_deref()),
            (Action::Get, Some("webhook-url"))
        );
        let r = team_route(&Method::DELETE, "/api/billstack/teams/t/stripe");
        assert_eq!(
            (r.resource, r.action),
            (TeamResource::Stripe, Action::Delete)
        );
        assert_eq!(r.name(), "DELETE /teams/{id}/stripe");
        for (method, path) in [
            (Method::GET, "/api/billstack/teams/t/stripe/connect"),
            (Method::POST, "/api/billstack/teams/t/stripe/status"),
            (Method::GET, "/api/billstack/teams/t/stripe"),
            (Method::DELETE, "/api/billstack/teams/t"),
            (Method::GET, "/api/billstack/teams/t/members/u"),
            (Method::DELETE, "/api/billstack/teams/t/projects/proj_1"),
            (Method::PATCH, "/api/billstack/teams/t/api-keys/key_1"),
            (Method::PUT, "/api/billstack/teams"),
        ] {
            assert_eq!(
                route(&method, path).unwrap_err().status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
        }
        for path in [
            "/api/billstack/teams/t/invoices",
            "/api/billstack/teams/t/api-keys/k/x",
            "/api/billstack/teams/t/stripe/unknown",
            "/api/billstack/teams/t/stripe/status/x",
            "/api/billstack/teamsx",
            "/api/billstack/teams/t//members",
        ] {
            assert_eq!(
                route(&Method::GET, path).unwrap_err().status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }

    #[test]
    fn matches_collection_and_item_routes() {
        let r = project_route(
            &Method::GET,
            "/api/billstack/teams/team_1/projects/proj_1/customers",
        )
        .unwrap();
        assert_eq!(
            (r.resource, r.action, r.object_id),
            (Resource::Customers, Action::List, None)
        );
        assert_eq!(r.team_id, "team_1");
        assert_eq!(r.project_id, "proj_1");

        let r = project_route(&Method::POST, "/api/billstack/teams/t/projects/p/prices/").unwrap();
        assert_eq!((r.resource, r.action), (Resource::Prices, Action::Create));

        let r = project_route(
            &Method::PATCH,
            "/api/billstack/teams/t/projects/p/products/pp_1",
        )
        .unwrap();
        assert_eq!(r.action, Action::Update);
        assert_eq!(r.object_id.as_deref(), Some("pp_1"));
        assert_eq!(r.name(), "PATCH /products/{id}");

        let r = project_route(
            &Method::DELETE,
            "/api/billstack/teams/t/projects/p/customers/pc_1",
        )
        .unwrap();
        assert_eq!(r.action, Action::Delete);
        assert_eq!(r.action.access(), Access::Write);
    }

    #[test]
    fn matches_the_webhook_route() {
        assert_eq!(
            route(&Method::POST, "/api/webhooks/stripe/team_1").unwrap(),
            Matched::Webhook(WebhookRoute {
                team_id: "team_1".into()
            })
        );
        assert_eq!(
            route(&Method::GET, "/api/webhooks/stripe/team_1")
                .unwrap_err()
                .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        for path in [
            "/api/webhooks/stripe/",
            "/api/webhooks/stripe/t/x",
            "/api/webhooks/other/t",
        ] {
            assert_eq!(
                route(&Method::POST, path).unwrap_err().status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        for path in [
            "/",
            "/api/billstack/teams/t/projects/p/invoices",
            "/api/billstack/teams/t/projects/p/customers/pc_1/extra",
            "/api/billstack/teams//projects/p/customers",
            "/api/billstack/teams/t/projects/p/customers/pc_1/x/y",
            "/api/billstack/teams/t/customers",
        ] {
            assert_eq!(
                route(&Method::GET, path).unwrap_err().status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let err = route(
            &Method::PUT,
            "/api/billstack/teams/t/projects/p/customers/pc_1",
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(err.allow.as_deref(), Some("GET, PATCH, DELETE"));
        let err = route(
            &Method::DELETE,
            "/api/billstack/teams/t/projects/p/customers",
        )
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(err.allow.as_deref(), Some("GET, POST"));
        // Each 405 names what its path allows.
        for (method, path, allow) in [
            (Method::TRACE, "/api/billstack/teams", "GET, POST"),
            (Method::OPTIONS, "/api/billstack/teams/t", "GET, PATCH"),
            (
                Method::HEAD,
                "/api/billstack/teams/t/members/u",
                "PATCH, DELETE",
            ),
            (
                Method::PATCH,
                "/api/billstack/teams/t/api-keys/key_1",
                "GET, DELETE",
            ),
            (Method::GET, "/api/billstack/teams/t/stripe", "DELETE"),
            (Method::GET, "/api/billstack/teams/t/stripe/connect", "POST"),
            (Method::POST, "/api/billstack/teams/t/stripe/status", "GET"),
            (Method::GET, "/api/webhooks/stripe/t", "POST"),
        ] {
            let err = route(&method, path).unwrap_err();
            assert_eq!(
                err.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(err.allow.as_deref(), Some(allow), "{method} {path}");
        }
    }
}
