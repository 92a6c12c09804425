//! The customers API: list, create, get, update and delete project-scoped customers, kept
//! in Stripe and in our table. The Lambda, the local server and the tests all call
//! [`handle`].

use billstack::App;
use billstack::clock;
use billstack::error::ApiError;
use billstack::http::{ApiRequest, ApiResponse};
use billstack::ids::IdKind;
use billstack::input::{
    self, DEFAULT_LIMIT, Metadata, Page, Query, json_body, nullable, stripe_metadata_replacing,
    unwanted_stripe_keys, validate_metadata,
};
use billstack::model::Customer;
use billstack::routing::{Action, Resource};
use billstack::store::EmailReservation;
use billstack::stripe::{CustomerChanges, StripeCustomer, StripeGateway, change_key, sorted};
use serde::Deserialize;
use serde_json::json;

pub const MAX_NAME_LEN: usize = 256;

/// Answers every customers route; other resources' routes are not this function's.
pub async fn handle(app: &App, req: ApiRequest) -> Result<ApiResponse, ApiError> {
    req.expect_resource(Resource::Customers)?;
    match req.route.action {
        Action::List => list(app, &req).await,
        Action::Create => create(app, &req).await,
        Action::Get => get(app, &req)
            .await
            .map(|c| ApiResponse::ok(json!({"customer": c.to_json()}))),
        Action::Update => update(app, &req).await,
        Action::Delete => delete(app, &req).await,
    }
}

async fn get(app: &App, req: &ApiRequest) -> Result<Customer, ApiError> {
    let id = req.object_id_of(Resource::Customers)?;
    app.store
        .get_customer(req.project_id(), id)
        .await?
        .ok_or_else(|| Resource::Customers.not_found())
}

async fn list(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let query = Query::parse(req.query.as_deref(), &["limit", "offset", "startingAfter"])?;
    let page = Page::from_query(&query, Some(DEFAULT_LIMIT), IdKind::Customer)?;
    let (customers, has_more) = app.store.list_customers(req.project_id(), &page).await?;
    Ok(ApiResponse::ok(json!({
        "customers": customers.iter().map(Customer::to_json).collect::<Vec<_>>(),
        "hasMore": has_more,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    email: Option<String>,
    name: Option<String>,
    metadata: Option<Metadata>,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    pub email: String,
    pub name: Option<String>,
    pub metadata: Metadata,
}

impl NewCustomer {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body: CreateBody = json_body(body)?;
        let email = body
            .email
            .ok_or_else(|| ApiError::invalid("email", "Missing required parameter: email"))?;
        let metadata = body.metadata.unwrap_or_default();
        validate_metadata(&metadata)?;
        Ok(Self {
            email: input::normalize_email(&email)?,
            name: body
                .name
                .map(|n| input::text("name", &n, MAX_NAME_LEN))
                .transpose()?,
            metadata,
        })
    }
}

/// Our keys on every Stripe customer: enough to find the project and record of an orphan.
fn our_metadata<'a>(project_id: &'a str, customer_id: &'a str) -> [(&'static str, &'a str); 2] {
    [("project_id", project_id), ("billstack_id", customer_id)]
}

async fn create(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let new = NewCustomer::parse(&req.body)?;
    let project_id = req.project_id();
    let now = clock::now_epoch();
    let id = req.new_object_id(IdKind::Customer);
    // An earlier attempt under this Idempotency-Key may have finished all but its answer.
    if req.retried()
        && let Some(done) = app.store.get_customer(project_id, &id).await?
    {
        return Ok(ApiResponse::created(json!({"customer": done.to_json()})));
    }
    let reservation = EmailReservation {
        project_id: project_id.to_owned(),
        email: new.email.clone(),
        customer_id: id.clone(),
    };
    let stripe = app.stripe_for(&req.principal.team_id).await?;
    app.store.reserve_email(&reservation, now).await?;

    let stripe_customer = match stripe_customer_for(app, &stripe, req, &id, &new).await {
        Ok(customer) => customer,
        Err(err) => {
            app.store.release_email(&reservation).await;
            return Err(err);
        }
    };
    let customer = Customer {
        id,
        project_id: project_id.to_owned(),
        email: new.email,
        name: new.name.or(stripe_customer.name),
        metadata: new.metadata,
        stripe_customer_id: stripe_customer.id,
        created_at: now,
        updated_at: now,
        stripe_synced_at: now,
        deleted_at: None,
        email_conflict: None,
        version: 1,
    };
    if let Err(err) = app.store.insert_customer(&customer, &reservation).await {
        // The Stripe customer stays, carrying project_id and billstack_id: the next create
        // of this email finds it and links to it instead of making another.
        app.store.release_email(&reservation).await;
        return Err(err);
    }
    Ok(ApiResponse::created(
        json!({"customer": customer.to_json()}),
    ))
}

/// Links to the project's Stripe customer with this email (or one that no project claimed),
/// else creates one, always in the team's own Stripe account. Never links to another
/// project's Stripe customer: the two projects would then change each other's customer.
async fn stripe_customer_for(
    app: &App,
    stripe: &StripeGateway,
    req: &ApiRequest,
    id: &str,
    new: &NewCustomer,
) -> Result<StripeCustomer, ApiError> {
    let project_id = req.project_id();
    let ours = our_metadata(project_id, id);
    let candidates = stripe.customers_by_email(&new.email).await?;
    let owner = |c: &StripeCustomer| c.metadata.get("project_id").cloned();
    let mut existing = candidates
        .iter()
        .find(|c| owner(c).as_deref() == Some(project_id));
    if existing.is_none() {
        // A customer no project claimed in its metadata may be linked by any project of the
        // team; the claim in our table lets only one of them have it, however they race.
        for candidate in candidates.iter().filter(|c| owner(c).is_none()) {
            if app
                .store
                .claim_stripe_customer(
                    &req.principal.team_id,
                    &candidate.id,
                    project_id,
                    id,
                    clock::now_epoch(),
                )
                .await?
            {
                existing = Some(candidate);
                break;
            }
        }
    }
    match existing {
        Some(existing) => {
            // A customer this project left behind takes exactly the new metadata; one that no
            // project claimed keeps its own keys beside ours.
            let stale: Vec<&String> = if owner(existing).is_some() {
                existing.metadata.keys().collect()
            } else {
                Vec::new()
            };
            let changes = CustomerChanges {
                email: None,
                name: new.name.clone().map(Some),
                metadata: Some(stripe_metadata_replacing(&new.metadata, &ours, stale)),
            };
            stripe
                .update_customer(&existing.id, &changes, &format!("bs_{id}_link"))
                .await
        }
        None => {
            let metadata = stripe_metadata_replacing(&new.metadata, &ours, []);
            stripe
                .create_customer(
                    &new.email,
                    new.name.as_deref(),
                    metadata,
                    &format!("bs_{id}_create"),
                )
                .await
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default, deserialize_with = "nullable")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    metadata: Option<Option<Metadata>>,
}

/// A validated update: `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerPatch {
    pub email: Option<String>,
    /// `Some(None)` removes the name.
    pub name: Option<Option<String>>,
    /// Replaces the metadata (`null` in the body means none).
    pub metadata: Option<Metadata>,
}

impl CustomerPatch {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body: UpdateBody = json_body(body)?;
        let email = match body.email {
            None => None,
            Some(None) => return Err(ApiError::invalid("email", "email cannot be removed")),
            Some(Some(raw)) => Some(input::normalize_email(&raw)?),
        };
        let name = match body.name {
            None => None,
            Some(None) => Some(None),
            Some(Some(raw)) => Some(Some(input::text("name", &raw, MAX_NAME_LEN)?)),
        };
        let metadata = body.metadata.map(Option::unwrap_or_default);
        if let Some(metadata) = &metadata {
            validate_metadata(metadata)?;
        }
        Ok(Self {
            email,
            name,
            metadata,
        })
    }
}

async fn update(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let patch = CustomerPatch::parse(&req.body)?;
    let current = get(app, req).await?;
    let mut next = current.clone();
    if let Some(email) = &patch.email {
        next.email = email.clone();
    }
    if let Some(name) = &patch.name {
        next.name = name.clone();
    }
    if let Some(metadata) = &patch.metadata {
        next.metadata = metadata.clone();
    }
    if next == current {
        return Ok(ApiResponse::ok(json!({"customer": current.to_json()})));
    }
    let stripe = app.stripe_for(&req.principal.team_id).await?;
    let email_changed = next.email != current.email;
    let reservation = EmailReservation {
        project_id: current.project_id.clone(),
        email: next.email.clone(),
        customer_id: current.id.clone(),
    };
    let now = clock::now_epoch();
    if email_changed {
        app.store.reserve_email(&reservation, now).await?;
    }
    let release = || async {
        if email_changed {
            app.store.release_email(&reservation).await;
        }
    };
    if let Err(err) = push_to_stripe(&stripe, &current, &next, current.version, false).await {
        release().await;
        return Err(err);
    }
    next.updated_at = now.max(current.updated_at);
    next.stripe_synced_at = now.max(current.stripe_synced_at);
    next.version = current.version + 1;
    let written = app
        .store
        .replace_customer(
            &next,
            current.version,
            email_changed.then_some((current.email.as_str(), &reservation)),
        )
        .await;
    if let Err(err) = written {
        release().await;
        undo_in_stripe(app, &stripe, &current, &next).await;
        return Err(err);
    }
    Ok(ApiResponse::ok(json!({"customer": next.to_json()})))
}

/// Makes the Stripe customer, which holds `current`, hold `next` instead. Metadata
/// replaces: the Stripe customer ends with exactly the new keys plus ours, including keys
/// set in Stripe behind our back.
async fn push_to_stripe(
    stripe: &StripeGateway,
    current: &Customer,
    next: &Customer,
    version: u64,
    undo: bool,
) -> Result<(), ApiError> {
    let ours = our_metadata(&current.project_id, &current.id);
    let changes = CustomerChanges {
        email: (next.email != current.email).then(|| next.email.clone()),
        name: (next.name != current.name).then(|| next.name.clone()),
        metadata: (next.metadata != current.metadata)
            .then(|| stripe_metadata_replacing(&next.metadata, &ours, current.metadata.keys())),
    };
    // Derived from the record's version and the change itself: a retry of the same change
    // replays in Stripe, a different change gets its own key (an undo names itself).
    let change = (&changes.email, &changes.name, sorted(&changes.metadata));
    let key = change_key(&current.id, version, undo, &change);
    let updated = stripe
        .update_customer(&current.stripe_customer_id, &changes, &key)
        .await?;
    if changes.metadata.is_some() {
        let extra = unwanted_stripe_keys(&updated.metadata, &next.metadata);
        if !extra.is_empty() {
            let cleanup = CustomerChanges {
                metadata: Some(extra),
                ..CustomerChanges::default()
            };
            stripe
                .update_customer(
                    &current.stripe_customer_id,
                    &cleanup,
                    &format!("{key}_cleanup"),
                )
                .await?;
        }
    }
    Ok(())
}

/// After Stripe took `pushed` but our write of it failed (another request changed the
/// customer meanwhile, or DynamoDB failed): puts Stripe back to what our table holds now,
/// so that Stripe never keeps a loser's values, nor an email our table does not give the
/// customer (which a later create of that email would link to). A customer deleted
/// meanwhile keeps its Stripe customer as it is, as every delete does. Best effort: a
/// failure is logged.
async fn undo_in_stripe(app: &App, stripe: &StripeGateway, current: &Customer, pushed: &Customer) {
    let truth = match app
        .store
        .get_customer(&current.project_id, &current.id)
        .await
    {
        Ok(Some(customer)) => customer,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(
                code = err.code,
                "could not read the customer to undo a change in Stripe"
            );
            return;
        }
    };
    if let Err(err) = push_to_stripe(stripe, pushed, &truth, current.version, true).await {
        tracing::warn!(
            code = err.code,
            "could not undo a customer change in Stripe"
        );
    }
}

async fn delete(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let customer = get(app, req).await?;
    // Our record only: the Stripe customer stays, so its subscriptions and invoices do too.
    if app.store.delete_customer(&customer).await? {
        Ok(ApiResponse::deleted())
    } else {
        Err(Resource::Customers.not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_requires_a_valid_email_and_normalizes_it() {
        let c = NewCustomer::parse(
            br#"{"email": " Jane@Example.com ", "name": "Jane", "metadata": {"plan": "pro"}}"#,
        )
        .unwrap();
        assert_eq!(c.email, "jane@example.com");
        assert_eq!(c.name.as_deref(), Some("Jane"));
        assert_eq!(c.metadata.get("plan").map(String::as_str), Some("pro"));

        let err = NewCustomer::parse(br#"{"name": "Jane"}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("email"));
        let err = NewCustomer::parse(br#"{"email": "nope"}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("email"));
        let err = NewCustomer::parse(br#"{"email": "a@b.co", "phone": "1"}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("phone"));
        let long = format!(r#"{{"email": "a@b.co", "name": "{}"}}"#, "x".repeat(257));
        assert_eq!(
            NewCustomer::parse(long.as_bytes())
                .unwrap_err()
                .param
                .as_deref(),
            Some("name")
        );
        let err = NewCustomer::parse(br#"{"email": "a@b.co", "metadata": {"project_id": "x"}}"#)
            .unwrap_err();
        assert_eq!(err.param.as_deref(), Some("metadata.project_id"));
    }

    #[test]
    fn patch_distinguishes_absent_null_and_values() {
        let p = CustomerPatch::parse(br#"{}"#).unwrap();
        assert_eq!(p, CustomerPatch::default());
        let p = CustomerPatch::parse(br#"{"name": null, "metadata": null}"#).unwrap();
        assert_eq!(p.name, Some(None));
        assert_eq!(p.metadata, Some(Metadata::new()));
        let p = CustomerPatch::parse(br#"{"email": "NEW@x.io"}"#).unwrap();
        assert_eq!(p.email.as_deref(), Some("new@x.io"));
        assert!(CustomerPatch::parse(br#"{"email": null}"#).is_err());
        assert!(CustomerPatch::parse(br#"{"unitAmount": 5}"#).is_err());
    }
}
