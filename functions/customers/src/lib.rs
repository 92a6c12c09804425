//! The customers API: list, create, get, update and delete project-scoped customers, kept
//! in Stripe and in our table. The Lambda, the local server and the tests all call
//! [`handle`].

use std::collections::HashMap;

use billstack::App;
use billstack::clock;
use billstack::error::ApiError;
use billstack::http::{ApiRequest, ApiResponse};
use billstack::ids::{CustomerId, ProjectId};
use billstack::input::{
    self, Metadata, Page, Query, json_body, nullable, stripe_metadata_replacing, validate_metadata,
};
use billstack::model::Customer;
use billstack::routing::Resource;
use billstack::store::{EmailReservation, Store};
use billstack::stripe::{CustomerChanges, StripeCustomer, StripeGateway};
use billstack::synced::{self, SyncedResource, our_metadata};
use serde::Deserialize;

pub const MAX_NAME_LEN: usize = 256;

/// Answers every customers route; other resources' routes are not this function's.
pub async fn handle(app: &App, req: ApiRequest) -> Result<ApiResponse, ApiError> {
    synced::handle::<Customers>(app, req).await
}

/// The customers resource: its own rules, for the flows every resource shares.
pub struct Customers;

impl SyncedResource for Customers {
    const RESOURCE: Resource = Resource::Customers;
    type Record = Customer;
    type Patch = CustomerPatch;
    /// The new email's reservation, when the change moves the email.
    type Held = Option<EmailReservation>;
    type Changes = CustomerChanges;

    const LIST_FILTERS: &'static [&'static str] = &[];
    type Filter = ();

    fn filter(_: &Query) -> Result<(), ApiError> {
        Ok(())
    }

    async fn page(
        store: &Store,
        project_id: &ProjectId,
        page: &Page,
        _: &(),
    ) -> Result<(Vec<Customer>, bool), ApiError> {
        store.list_customers(project_id, page).await
    }

    /// Reserves the email, links or makes the Stripe customer, then writes the customer and
    /// the email's activation in one transaction; any failure releases the email.
    async fn create(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let new = NewCustomer::parse(&req.body)?;
        let project_id = req.project_id();
        let now = clock::now_epoch();
        let (id, made_before) = synced::new_object::<Customers>(app, req).await?;
        if let Some(answer) = made_before {
            return Ok(answer);
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
        Ok(synced::created::<Customers>(&customer))
    }

    async fn delete(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let customer = synced::get::<Customers>(app, req).await?;
        // Our record only: the Stripe customer stays, so its subscriptions and invoices do too.
        if app.store.delete_customer(&customer).await? {
            Ok(ApiResponse::deleted())
        } else {
            Err(Resource::Customers.not_found())
        }
    }

    async fn load(
        store: &Store,
        project_id: &ProjectId,
        id: &CustomerId,
    ) -> Result<Option<Customer>, ApiError> {
        store.get_customer(project_id, id).await
    }

    fn parse_patch(body: &[u8]) -> Result<CustomerPatch, ApiError> {
        CustomerPatch::parse(body)
    }

    fn patched(current: &Customer, patch: &CustomerPatch) -> Customer {
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
        next
    }

    fn to_json(customer: &Customer) -> serde_json::Value {
        customer.to_json()
    }

    async fn hold(
        app: &App,
        current: &Customer,
        next: &Customer,
        now: i64,
    ) -> Result<Option<EmailReservation>, ApiError> {
        if next.email == current.email {
            return Ok(None);
        }
        let reservation = EmailReservation {
            project_id: current.project_id.clone(),
            email: next.email.clone(),
            customer_id: current.id.clone(),
        };
        app.store.reserve_email(&reservation, now).await?;
        Ok(Some(reservation))
    }

    async fn release(app: &App, held: &Option<EmailReservation>) {
        if let Some(reservation) = held {
            app.store.release_email(reservation).await;
        }
    }

    async fn write(
        store: &Store,
        next: &Customer,
        current: &Customer,
        held: &Option<EmailReservation>,
    ) -> Result<(), ApiError> {
        let moved = held.as_ref().map(|r| (current.email.as_str(), r));
        store.replace_customer(next, current.version, moved).await
    }

    /// A customer gone from our table keeps its Stripe customer as it is (its
    /// subscriptions and invoices stay).
    fn truth_after_lost_write(found: Option<Customer>, _pushed: &Customer) -> Option<Customer> {
        found
    }

    fn changes(
        from: &Customer,
        to: &Customer,
        metadata: Option<HashMap<String, String>>,
    ) -> Option<CustomerChanges> {
        let changes = CustomerChanges {
            email: (to.email != from.email).then(|| to.email.clone()),
            name: (to.name != from.name).then(|| to.name.clone()),
            metadata,
        };
        (changes != CustomerChanges::default()).then_some(changes)
    }

    async fn send(
        stripe: &StripeGateway,
        stripe_id: &str,
        changes: &CustomerChanges,
        idempotency_key: &str,
    ) -> Result<HashMap<String, String>, ApiError> {
        Ok(stripe
            .update_customer(stripe_id, changes, idempotency_key)
            .await?
            .metadata)
    }
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

/// Links to the project's Stripe customer with this email (or one that no project claimed),
/// else creates one, always in the team's own Stripe account. Never links to another
/// project's Stripe customer: the two projects would then change each other's customer.
async fn stripe_customer_for(
    app: &App,
    stripe: &StripeGateway,
    req: &ApiRequest,
    id: &CustomerId,
    new: &NewCustomer,
) -> Result<StripeCustomer, ApiError> {
    let project_id = req.project_id();
    let ours = our_metadata(project_id, id);
    let candidates = stripe.customers_by_email(&new.email).await?;
    let owner = |c: &StripeCustomer| c.metadata.get("project_id").cloned();
    let mut existing = None;
    for candidate in candidates
        .iter()
        .filter(|c| owner(c).as_deref() == Some(project_id))
    {
        if !held_by_another(app, project_id, id, candidate).await? {
            existing = Some(candidate);
            break;
        }
    }
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

/// Whether a Stripe customer of this project still belongs to another customer of ours: it
/// can hold an email our record does not (an update whose undo in Stripe failed), and is
/// then never linked, or two of our customers would share it. One left behind by a deleted
/// customer or by a create that failed is free.
async fn held_by_another(
    app: &App,
    project_id: &ProjectId,
    id: &CustomerId,
    candidate: &StripeCustomer,
) -> Result<bool, ApiError> {
    let holder = candidate.metadata.get("billstack_id");
    match holder.and_then(|holder| CustomerId::parse(holder)) {
        Some(holder) if holder != *id => Ok(app
            .store
            .get_customer(project_id, &holder)
            .await?
            .is_some_and(|c| c.stripe_customer_id == candidate.id)),
        _ => Ok(false),
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
        let metadata = input::patch_metadata(body.metadata)?;
        Ok(Self {
            email,
            name,
            metadata,
        })
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
