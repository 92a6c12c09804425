//! Stripe → BillStack: each team's events at `POST /api/webhooks/stripe/{teamId}`, verified
//! with the team's webhook signing secret, recorded by event ID (a redelivery is answered
//! 200 and applies nothing), routed by the object's `project_id` metadata to a project of
//! this team and by `billstack_id` to our record, and applied unless older than the state
//! the record already reflects.
//!
//! Stripe delivers at least once and in no fixed order. Each record keeps
//! `stripeSyncedAt`, the Stripe-side time of the state it reflects (our own write's time, or
//! the `created` time of the last event applied): an older event is ignored, a newer one
//! applied, and on a tie (one second, two changes) the object is fetched from Stripe and its
//! current state applied. An event whose handling fails is answered 5xx (its record taken
//! back) so that Stripe delivers it again; one that dies half way stays recorded (README).

pub mod signature;

use std::cmp::Ordering;

use billstack::App;
use billstack::clock;
use billstack::error::{ApiError, ErrorCode};
use billstack::http::{ApiResponse, WebhookRequest};
use billstack::ids::{Id, IdKind, ProductId, ProjectId, TeamId};
use billstack::input::{Metadata, RESERVED_METADATA_KEYS, normalize_email};
use billstack::model::{Currency, Interval, Mirrored, Price, PriceType, Product, SyncObject};
use billstack::store::EmailReservation;
use billstack::stripe::StripeGateway;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

/// The event as Stripe sends it, with what BillStack reads of it.
#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: EventData,
    /// The API request that made the change, if one did.
    #[serde(default)]
    request: Option<EventRequest>,
}

#[derive(Debug, Default, Deserialize)]
struct EventRequest {
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: Value,
}

/// What became of an event, as answered (and kept for a redelivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// The record already matches (a backfill writes nothing then).
    Unchanged,
    Adopted,
    Deleted,
    /// Older than the state the record reflects.
    Stale,
    /// The new email belongs to another customer of the project: recorded, not applied.
    EmailConflict,
    /// Not ours: no project of this team, no record, or a type we do not handle.
    Ignored(&'static str),
}

impl Outcome {
    fn to_json(self) -> Value {
        match self {
            Outcome::Applied => json!({"received": true, "outcome": "applied"}),
            Outcome::Unchanged => json!({"received": true, "outcome": "unchanged"}),
            Outcome::Adopted => json!({"received": true, "outcome": "adopted"}),
            Outcome::Deleted => json!({"received": true, "outcome": "deleted"}),
            Outcome::Stale => json!({"received": true, "outcome": "stale"}),
            Outcome::EmailConflict => json!({"received": true, "outcome": "email_conflict"}),
            Outcome::Ignored(why) => json!({"received": true, "outcome": "ignored", "reason": why}),
        }
    }
}

fn not_configured() -> ApiError {
    ApiError::new(
        ErrorCode::WebhookNotConfigured,
        "This endpoint has no webhook signing secret: a team owner connects Stripe again with the endpoint's webhookSecret (whsec_…)",
    )
}

/// Answers one delivery.
pub async fn handle(app: &App, req: WebhookRequest) -> Result<ApiResponse, ApiError> {
    let team_id = &req.route.team_id;
    // An unknown team and a team without a secret look the same from outside.
    if !team_id.is_well_formed() {
        return Err(not_configured());
    }
    let connection = app
        .stripe
        .connection(&app.store, team_id)
        .await?
        .ok_or_else(not_configured)?;
    let secret = match app.stripe.webhook_secret(&connection).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Err(not_configured()),
        Err(err) if err.code == ErrorCode::StripeNotConnected => return Err(not_configured()),
        Err(err) => return Err(err),
    };
    let now = clock::now_epoch();
    signature::verify(req.signature.as_deref(), &req.body, secret.expose(), now)?;
    let event: Event = serde_json::from_slice(&req.body).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidEvent,
            "The body is not a Stripe event (JSON with id, type, created and data.object)",
        )
    })?;
    if !event.id.starts_with("evt_")
        || event.id.len() > 255
        || !event
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError::new(
            ErrorCode::InvalidEvent,
            "The event's id is not a Stripe event ID (evt_…)",
        ));
    }

    // One conditional write records the event; a redelivery stops here.
    if !app
        .store
        .record_stripe_event(team_id, &event.id, now)
        .await?
    {
        return Ok(ApiResponse::ok(
            json!({"received": true, "duplicate": true}),
        ));
    }
    match apply(app, team_id, &event, true).await {
        Ok(outcome) => {
            let body = outcome.to_json();
            tracing::info!(
                team_id = team_id.as_str(),
                event_id = %event.id,
                event_type = %event.kind,
                outcome = %body["outcome"].as_str().unwrap_or(""),
                "stripe event"
            );
            Ok(ApiResponse::ok(body))
        }
        Err(err) => {
            // Taken back, so that Stripe's retry of this event applies it.
            app.store.forget_stripe_event(team_id, &event.id).await;
            Err(err)
        }
    }
}

/// Repairs our record of one Stripe object (as a list of Stripe's answers it) to match it,
/// the way a `*.updated` event of it arriving now would, without writing a record that
/// already matches: what a backfill does with each object it reads.
pub async fn reconcile(
    app: &App,
    team_id: &TeamId,
    object_type: SyncObject,
    object: &Value,
) -> Result<Outcome, ApiError> {
    let resource = match object_type {
        SyncObject::Customers => "customer",
        SyncObject::Products => "product",
        SyncObject::Prices => "price",
    };
    let event = Event {
        id: String::new(),
        kind: format!("{resource}.updated"),
        created: clock::now_epoch(),
        data: EventData {
            object: object.clone(),
        },
        request: None,
    };
    apply(app, team_id, &event, false).await
}

async fn apply(
    app: &App,
    team_id: &TeamId,
    event: &Event,
    write_unchanged: bool,
) -> Result<Outcome, ApiError> {
    let object = &event.data.object;
    let (resource, action) = event.kind.split_once('.').unwrap_or((&event.kind, ""));
    let kind = match resource {
        "customer" => IdKind::Customer,
        "product" => IdKind::Product,
        "price" => IdKind::Price,
        _ => return Ok(Outcome::Ignored("event type not handled")),
    };
    if !matches!(
        (resource, action),
        ("customer", "updated" | "deleted")
            | ("product" | "price", "created" | "updated" | "deleted")
    ) {
        return Ok(Outcome::Ignored("event type not handled"));
    }
    let Some((project_id, record_id)) = owner(app, team_id, object, kind).await? else {
        return Ok(Outcome::Ignored(
            "the object belongs to no project of this team",
        ));
    };
    let target = Target {
        app,
        team_id,
        project_id: &project_id,
        record_id: &record_id,
        event,
        write_unchanged,
    };
    match resource {
        "customer" => target.customer(action == "deleted").await,
        "product" => target.product(action).await,
        _ => target.price(action).await,
    }
}

/// The project (of this team) and record an object's metadata names, if any.
async fn owner(
    app: &App,
    team_id: &TeamId,
    object: &Value,
    kind: IdKind,
) -> Result<Option<(ProjectId, String)>, ApiError> {
    let metadata = &object["metadata"];
    let (Some(project_id), Some(record_id)) = (
        metadata["project_id"].as_str(),
        metadata["billstack_id"].as_str(),
    ) else {
        return Ok(None);
    };
    if !kind.matches(record_id) {
        return Ok(None);
    }
    // Another team's project ID in the metadata is never applied here. (Remembered for the
    // auth cache's TTL, as for API requests.)
    let project_id = ProjectId::from(project_id);
    match app
        .auth
        .ensure_project(&app.store, team_id, &project_id)
        .await
    {
        Ok(()) => Ok(Some((project_id, record_id.to_owned()))),
        Err(err) if err.status() == StatusCode::NOT_FOUND => Ok(None),
        Err(err) => Err(err),
    }
}

/// Metadata as clients see it: ours taken out.
fn client_metadata(object: &Value) -> Metadata {
    object["metadata"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !RESERVED_METADATA_KEYS.contains(&k.as_str()))
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn text(object: &Value, field: &str) -> Option<String> {
    object[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One kind of mirrored object, as its events see it.
struct Mirror {
    /// Why an event of another Stripe object than the record's does not apply.
    other: &'static str,
    /// Why an event of a record we do not have does not apply (when it is not adopted).
    missing: &'static str,
    /// Where Stripe serves the object (`/customers`, …).
    path: &'static str,
    /// Whether an object we have no record of is adopted.
    adopts: bool,
}

const CUSTOMER: Mirror = Mirror {
    other: "another Stripe customer than the record's",
    missing: "no such customer",
    path: "/customers",
    adopts: false,
};
const PRODUCT: Mirror = Mirror {
    other: "another Stripe product than the record's",
    missing: "no such product",
    path: "/products",
    adopts: true,
};
const PRICE: Mirror = Mirror {
    other: "another Stripe price than the record's",
    missing: "no such price",
    path: "/prices",
    adopts: true,
};

/// Where an event leads, from [`Target::step`].
enum Step<R> {
    /// Nothing to write: the outcome says why.
    Done(Outcome),
    /// A `*.deleted` event of a record we have.
    Delete(R),
    /// An event of an object we have no record of.
    Adopt,
    /// The record, and the newer Stripe state to apply over it.
    Apply(R, Value),
}

struct Target<'a> {
    app: &'a App,
    team_id: &'a TeamId,
    project_id: &'a ProjectId,
    /// Of the kind the event names.
    record_id: &'a str,
    event: &'a Event,
    /// A webhook event writes even a matching record (its time moves `stripeSyncedAt` on,
    /// so an older event can no longer apply); a backfill does not.
    write_unchanged: bool,
}

impl Target<'_> {
    async fn stripe(&self) -> Result<StripeGateway, ApiError> {
        self.app.stripe_for(self.team_id).await
    }

    /// The record's ID, as the kind of ID the event's object names.
    fn record_id<K>(&self) -> Id<K> {
        Id::from(self.record_id)
    }

    fn object(&self) -> &Value {
        &self.event.data.object
    }

    fn stripe_id(&self) -> &str {
        self.object()["id"].as_str().unwrap_or_default()
    }

    /// Why the event does not apply to the record we hold, if it does not: it is of
    /// another Stripe object than the record's (`other` says so), or of our own change.
    fn not_for(&self, current: Option<&impl Mirrored>, other: &'static str) -> Option<Outcome> {
        let current = current?;
        if current.stripe_id() != self.stripe_id() {
            return Some(Outcome::Ignored(other));
        }
        self.own_change().then_some(Outcome::Ignored(OWN_CHANGE))
    }

    /// Whether a BillStack request on this very record made the change (every Stripe call
    /// we make for a record carries an idempotency key `bs_<record ID>_…`). That request
    /// writes the record itself: applying its echo too would race it, bump the version it
    /// writes on and fail it with 409 (a product's delete, say, meeting its own archive).
    fn own_change(&self) -> bool {
        let ours = format!("bs_{}_", self.record_id);
        self.event
            .request
            .as_ref()
            .and_then(|r| r.idempotency_key.as_deref())
            .is_some_and(|key| key.starts_with(&ours))
    }

    /// The state to apply over a record that reflects Stripe as of `synced_at`: the event's
    /// object if newer, Stripe's current object on a tie, nothing if older.
    async fn newer_state(&self, synced_at: i64, path: &str) -> Result<Option<Value>, ApiError> {
        match self.event.created.cmp(&synced_at) {
            Ordering::Less => Ok(None),
            Ordering::Greater => Ok(Some(self.object().clone())),
            Ordering::Equal => self.stripe().await?.retrieve_json(path).await,
        }
    }

    /// The event's object at Stripe, under `mirror`'s path.
    fn stripe_path(&self, mirror: &Mirror) -> String {
        format!("{}/{}", mirror.path, self.stripe_id())
    }

    /// What every event of a mirrored object decides first, given the record it names as
    /// stored: nothing to do (another object's event, our own change, a record we do not
    /// have, an older state), a delete, an adoption, or the newer state to apply.
    async fn step<R: Mirrored>(
        &self,
        current: Option<R>,
        deleted: bool,
        mirror: &Mirror,
    ) -> Result<Step<R>, ApiError> {
        if let Some(outcome) = self.not_for(current.as_ref(), mirror.other) {
            return Ok(Step::Done(outcome));
        }
        let Some(current) = current else {
            return Ok(if deleted || !mirror.adopts {
                Step::Done(Outcome::Ignored(mirror.missing))
            } else {
                Step::Adopt
            });
        };
        if deleted {
            return Ok(Step::Delete(current));
        }
        let path = self.stripe_path(mirror);
        Ok(
            match self.newer_state(current.stripe_synced_at(), &path).await? {
                Some(state) => Step::Apply(current, state),
                None => Step::Done(Outcome::Stale),
            },
        )
    }

    async fn customer(&self, deleted: bool) -> Result<Outcome, ApiError> {
        let store = &self.app.store;
        let current = store
            .get_customer(self.project_id, &self.record_id())
            .await?;
        let (current, state) = match self.step(current, deleted, &CUSTOMER).await? {
            Step::Done(outcome) => return Ok(outcome),
            // Nothing follows a deletion in Stripe: it applies whatever came before it.
            Step::Delete(current) => {
                return if store
                    .mark_customer_deleted(&current, self.event.created)
                    .await?
                {
                    Ok(Outcome::Deleted)
                } else {
                    Err(changed_meanwhile())
                };
            }
            // Never for customers (CUSTOMER.adopts is false).
            Step::Adopt => return Ok(Outcome::Ignored(CUSTOMER.missing)),
            Step::Apply(current, state) => (current, state),
        };
        let mut next = current.clone();
        next.name = text(&state, "name");
        next.metadata = client_metadata(&state);
        next.stamp(clock::now_epoch(), &current);
        next.stripe_synced_at = self.event.created;
        let email = text(&state, "email").and_then(|e| normalize_email(&e).ok());
        if !self.write_unchanged
            && next.name == current.name
            && next.metadata == current.metadata
            && email.as_ref().is_none_or(|e| *e == current.email)
        {
            return Ok(Outcome::Unchanged);
        }
        let mut outcome = Outcome::Applied;
        let mut reservation = None;
        if let Some(email) = email.filter(|e| *e != current.email) {
            let claim = EmailReservation {
                project_id: current.project_id.clone(),
                email: email.clone(),
                customer_id: current.id.clone(),
            };
            match store.reserve_email(&claim, clock::now_epoch()).await {
                Ok(()) => {
                    next.email = email;
                    next.email_conflict = None;
                    reservation = Some(claim);
                }
                Err(err) if err.code == ErrorCode::EmailTaken => {
                    next.email_conflict = Some(email);
                    outcome = Outcome::EmailConflict;
                }
                Err(err) => return Err(err),
            }
        }
        let change = reservation.as_ref().map(|r| (current.email.as_str(), r));
        if let Err(err) = store.replace_customer(&next, current.version, change).await {
            if let Some(reservation) = &reservation {
                store.release_email(reservation).await;
            }
            return Err(err);
        }
        Ok(outcome)
    }

    async fn product(&self, action: &str) -> Result<Outcome, ApiError> {
        let store = &self.app.store;
        let current = store
            .get_product(self.project_id, &self.record_id())
            .await?;
        match self.step(current, action == "deleted", &PRODUCT).await? {
            Step::Done(outcome) => Ok(outcome),
            Step::Delete(current) => {
                let prices = store
                    .prices_of_product(self.project_id, &current.id)
                    .await?;
                store.delete_product_with_prices(&current, &prices).await?;
                Ok(Outcome::Deleted)
            }
            Step::Adopt => {
                // An orphan (our write failed after Stripe's), or a late event of a product
                // since deleted: only what Stripe holds now is adopted.
                let path = self.stripe_path(&PRODUCT);
                let Some(state) = self.stripe().await?.retrieve_json(&path).await? else {
                    return Ok(Outcome::Ignored("the product is gone from Stripe"));
                };
                if archived(&state) {
                    return Ok(Outcome::Ignored(ARCHIVED_ORPHAN));
                }
                let now = clock::now_epoch();
                let product = Product {
                    id: self.record_id(),
                    project_id: self.project_id.clone(),
                    name: text(&state, "name").unwrap_or_default(),
                    description: text(&state, "description"),
                    is_active: state["active"].as_bool().unwrap_or(true),
                    metadata: client_metadata(&state),
                    stripe_product_id: self.stripe_id().to_owned(),
                    created_at: state["created"].as_i64().unwrap_or(now),
                    updated_at: now,
                    version: 1,
                    stripe_synced_at: self.event.created,
                    deleting: false,
                };
                match store.insert_product(&product).await {
                    Ok(()) => Ok(Outcome::Adopted),
                    Err(err) if err.code == ErrorCode::AlreadyExists => {
                        Ok(Outcome::Ignored("already adopted by another delivery"))
                    }
                    Err(err) => Err(err),
                }
            }
            Step::Apply(current, state) => {
                let mut next = Product {
                    name: text(&state, "name").unwrap_or_else(|| current.name.clone()),
                    description: text(&state, "description"),
                    is_active: state["active"].as_bool().unwrap_or(current.is_active),
                    metadata: client_metadata(&state),
                    ..current.clone()
                };
                next.stamp(clock::now_epoch(), &current);
                next.stripe_synced_at = self.event.created;
                let same = next.name == current.name
                    && next.description == current.description
                    && next.is_active == current.is_active
                    && next.metadata == current.metadata;
                if same && !self.write_unchanged {
                    return Ok(Outcome::Unchanged);
                }
                store.replace_product(&next, current.version).await?;
                Ok(Outcome::Applied)
            }
        }
    }

    async fn price(&self, action: &str) -> Result<Outcome, ApiError> {
        let store = &self.app.store;
        let current = store.get_price(self.project_id, &self.record_id()).await?;
        match self.step(current, action == "deleted", &PRICE).await? {
            Step::Done(outcome) => Ok(outcome),
            Step::Delete(current) => {
                store.delete_price(&current).await?;
                Ok(Outcome::Deleted)
            }
            Step::Adopt => self.adopt_price(&self.stripe_path(&PRICE)).await,
            Step::Apply(current, state) => {
                // Stripe changes nothing else of a price.
                let mut next = Price {
                    is_active: state["active"].as_bool().unwrap_or(current.is_active),
                    metadata: client_metadata(&state),
                    ..current.clone()
                };
                next.stamp(clock::now_epoch(), &current);
                next.stripe_synced_at = self.event.created;
                let same = next.is_active == current.is_active && next.metadata == current.metadata;
                if same && !self.write_unchanged {
                    return Ok(Outcome::Unchanged);
                }
                store.replace_price(&next, current.version).await?;
                Ok(Outcome::Applied)
            }
        }
    }

    /// A price Stripe holds for our project but we have no record of: adopted if its product
    /// is one of ours in the project.
    async fn adopt_price(&self, path: &str) -> Result<Outcome, ApiError> {
        let stripe = self.stripe().await?;
        let Some(state) = stripe.retrieve_json(path).await? else {
            return Ok(Outcome::Ignored("the price is gone from Stripe"));
        };
        if archived(&state) {
            return Ok(Outcome::Ignored(ARCHIVED_ORPHAN));
        }
        let stripe_product = state["product"]
            .as_str()
            .or_else(|| state["product"]["id"].as_str())
            .unwrap_or_default();
        let product = match stripe
            .retrieve_json(&format!("/products/{stripe_product}"))
            .await?
        {
            Some(p) if p["metadata"]["project_id"] == self.project_id.as_str() => {
                p["metadata"]["billstack_id"].as_str().map(ProductId::from)
            }
            _ => None,
        };
        let Some(product_id) = product else {
            return Ok(Outcome::Ignored(
                "the price's product is not one of the project's",
            ));
        };
        let recurring = &state["recurring"];
        let interval = recurring["interval"]
            .as_str()
            .and_then(|i| Interval::ALL.into_iter().find(|x| x.as_str() == i));
        let price_type = if interval.is_some() {
            PriceType::Recurring
        } else {
            PriceType::OneTime
        };
        let (Some(unit_amount), Some(currency)) = (
            state["unit_amount"].as_i64(),
            state["currency"].as_str().and_then(Currency::parse),
        ) else {
            return Ok(Outcome::Ignored("a price BillStack cannot represent"));
        };
        let now = clock::now_epoch();
        let price = Price {
            id: self.record_id(),
            project_id: self.project_id.clone(),
            product_id,
            unit_amount,
            currency,
            price_type,
            interval,
            interval_count: interval
                .and(recurring["interval_count"].as_u64())
                .and_then(|c| u32::try_from(c).ok()),
            is_active: state["active"].as_bool().unwrap_or(true),
            metadata: client_metadata(&state),
            stripe_price_id: self.stripe_id().to_owned(),
            created_at: state["created"].as_i64().unwrap_or(now),
            updated_at: now,
            version: 1,
            stripe_synced_at: self.event.created,
        };
        match self.app.store.insert_price(&price).await {
            Ok(()) => Ok(Outcome::Adopted),
            // The price exists already (another delivery adopted it) or its product went.
            Err(err) if err.code == ErrorCode::ProductDeleted => {
                Ok(Outcome::Ignored("already adopted, or its product is gone"))
            }
            Err(err) => Err(err),
        }
    }
}

/// Why the echo of our own change to a record we hold is not applied ([`Target::own_change`]).
const OWN_CHANGE: &str = "our own change: the request that made it writes the record";

/// Why an archived product or price with our metadata and no record is not adopted: that is
/// what a BillStack delete leaves in Stripe (it archives, never deletes), so adopting it
/// would bring the deleted object back. An orphan of a failed create is active.
const ARCHIVED_ORPHAN: &str = "archived in Stripe with no record: deleted in BillStack";

fn archived(state: &Value) -> bool {
    state["active"] == Value::Bool(false)
}

fn changed_meanwhile() -> ApiError {
    ApiError::new(
        ErrorCode::ConcurrentUpdate,
        "The record changed while the event was applied; Stripe will deliver it again",
    )
}
