//! The one router: method + path → route, the same in Lambda, the local server and tests.

use http::Method;

use crate::auth::Access;
use crate::error::ApiError;
use crate::ids::IdKind;

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

    pub fn id_kind(self) -> IdKind {
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
    pub team_id: String,
    pub project_id: String,
    pub resource: Resource,
    pub action: Action,
    /// The object ID from the path, for Get/Update/Delete.
    pub object_id: Option<String>,
}

impl Route {
    /// A short, log-safe name such as `GET /customers/{id}`.
    pub fn name(&self) -> String {
        let (method, item) = match self.action {
            Action::List => ("GET", false),
            Action::Create => ("POST", false),
            Action::Get => ("GET", true),
            Action::Update => ("PATCH", true),
            Action::Delete => ("DELETE", true),
        };
        let suffix = if item { "/{id}" } else { "" };
        format!("{method} /{}{suffix}", self.resource.segment())
    }
}

/// Matches `/api/billstack/teams/{teamId}/projects/{projectId}/{resource}[/{id}]`.
/// Unknown paths are 404, known paths with another method are 405.
pub fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let no_route = || ApiError::not_found(format!("No route for {method} {path}"));
    let rest = path.strip_prefix(BASE).ok_or_else(no_route)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let parts: Vec<&str> = rest.split('/').collect();
    let (team_id, project_id, resource, object_id) = match parts.as_slice() {
        [team, "projects", project, resource] => (*team, *project, *resource, None),
        [team, "projects", project, resource, id] => (*team, *project, *resource, Some(*id)),
        _ => return Err(no_route()),
    };
    let resource = Resource::from_segment(resource).ok_or_else(no_route)?;
    if team_id.is_empty() || project_id.is_empty() || object_id.is_some_and(str::is_empty) {
        return Err(no_route());
    }
    let action = match (object_id.is_some(), method) {
        (false, &Method::GET) => Action::List,
        (false, &Method::POST) => Action::Create,
        (true, &Method::GET) => Action::Get,
        (true, &Method::PATCH) => Action::Update,
        (true, &Method::DELETE) => Action::Delete,
        _ => return Err(ApiError::method_not_allowed(method.as_str(), path)),
    };
    Ok(Route {
        team_id: team_id.to_owned(),
        project_id: project_id.to_owned(),
        resource,
        action,
        object_id: object_id.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn matches_collection_and_item_routes() {
        let r = route(
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

        let r = route(&Method::POST, "/api/billstack/teams/t/projects/p/prices/").unwrap();
        assert_eq!((r.resource, r.action), (Resource::Prices, Action::Create));

        let r = route(
            &Method::PATCH,
            "/api/billstack/teams/t/projects/p/products/pp_1",
        )
        .unwrap();
        assert_eq!(r.action, Action::Update);
        assert_eq!(r.object_id.as_deref(), Some("pp_1"));
        assert_eq!(r.name(), "PATCH /products/{id}");

        let r = route(
            &Method::DELETE,
            "/api/billstack/teams/t/projects/p/customers/pc_1",
        )
        .unwrap();
        assert_eq!(r.action, Action::Delete);
        assert_eq!(r.action.access(), Access::Write);
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        for path in [
            "/",
            "/api/billstack/teams/t/projects/p/invoices",
            "/api/billstack/teams/t/projects/p/customers/pc_1/extra",
            "/api/billstack/teams//projects/p/customers",
            "/api/billstack/teams/t/customers",
        ] {
            assert_eq!(
                route(&Method::GET, path).unwrap_err().status,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let err = route(
            &Method::PUT,
            "/api/billstack/teams/t/projects/p/customers/pc_1",
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::METHOD_NOT_ALLOWED);
        let err = route(
            &Method::DELETE,
            "/api/billstack/teams/t/projects/p/customers",
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
