//! What every resource kept in step with a Stripe object shares, written once: its routes'
//! dispatch, the read of one record, the PATCH flow and the undo. A resource brings only
//! its own rules, through [`SyncedResource`]: how a patch applies, which Stripe fields a
//! change touches, how its record is read and written.
//!
//! The PATCH flow: parse, read, apply; a change to nothing answers the record as it is.
//! Otherwise Stripe first (its own idempotency key, [`change_key`]), then the conditional
//! write of the next version; when that write fails, Stripe is put back to what our table
//! holds then ([`undo`]), and what the resource held for the write is let go.

use std::collections::HashMap;
use std::future::Future;

use serde_json::{Value, json};

use crate::App;
use crate::clock;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::ids::{Id, ProjectId};
use crate::input::{DEFAULT_LIMIT, Page, Query, stripe_metadata_replacing, unwanted_stripe_keys};
use crate::model::Mirrored;
use crate::routing::{Action, Resource};
use crate::store::Store;
use crate::stripe::{StripeGateway, change_key};

/// A resource whose records mirror Stripe objects: its own rules, for the shared flows.
pub trait SyncedResource: Send + Sync + 'static {
    const RESOURCE: Resource;
    /// The record's key in an answer: `customer`, `product`, `price`.
    const NAME: &'static str = Self::RESOURCE.id_kind().noun();
    type Record: Mirrored + Clone + PartialEq + Send + Sync;
    /// A validated PATCH body.
    type Patch: Send + Sync;
    /// What a change holds from before its Stripe call until its write (a customer's new
    /// email, reserved); `()` where nothing is.
    type Held: Send + Sync;
    /// A change as the Stripe object takes it; its `Debug` text names it in the key.
    type Changes: std::fmt::Debug + Send + Sync;

    /// The query parameters a list takes beyond its page's.
    const LIST_FILTERS: &'static [&'static str];
    /// A list's filters, as read from its query.
    type Filter: Send + Sync;
    fn filter(query: &Query) -> Result<Self::Filter, ApiError>;
    /// One page of the project's records that pass `filter`, and whether more follow.
    fn page(
        store: &Store,
        project_id: &ProjectId,
        page: &Page,
        filter: &Self::Filter,
    ) -> impl Future<Output = Result<(Vec<Self::Record>, bool), ApiError>> + Send;

    fn create(
        app: &App,
        req: &ApiRequest,
    ) -> impl Future<Output = Result<ApiResponse, ApiError>> + Send;
    fn delete(
        app: &App,
        req: &ApiRequest,
    ) -> impl Future<Output = Result<ApiResponse, ApiError>> + Send;

    fn load(
        store: &Store,
        project_id: &ProjectId,
        id: &IdOf<Self>,
    ) -> impl Future<Output = Result<Option<Self::Record>, ApiError>> + Send;

    fn parse_patch(body: &[u8]) -> Result<Self::Patch, ApiError>;
    /// The record with the patch applied (stamps untouched).
    fn patched(record: &Self::Record, patch: &Self::Patch) -> Self::Record;
    fn to_json(record: &Self::Record) -> Value;

    /// Takes what the change from `current` to `next` needs held before Stripe is called.
    fn hold(
        app: &App,
        current: &Self::Record,
        next: &Self::Record,
        now: i64,
    ) -> impl Future<Output = Result<Self::Held, ApiError>> + Send;
    /// Lets go of what [`SyncedResource::hold`] took, the change having failed.
    fn release(app: &App, held: &Self::Held) -> impl Future<Output = ()> + Send;
    /// Writes `next` if the stored record is still `current`.
    fn write(
        store: &Store,
        next: &Self::Record,
        current: &Self::Record,
        held: &Self::Held,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;

    /// What Stripe should hold once a change we pushed lost its write, given what our table
    /// holds now (`None`: the record is gone); `None` leaves Stripe as it is.
    fn truth_after_lost_write(
        found: Option<Self::Record>,
        pushed: &Self::Record,
    ) -> Option<Self::Record>;

    /// The Stripe fields that differ from `from` to `to`, with `metadata` (ours included)
    /// when it changed; `None` when no field does.
    fn changes(
        from: &Self::Record,
        to: &Self::Record,
        metadata: Option<HashMap<String, String>>,
    ) -> Option<Self::Changes>;
    /// Sends a change to the Stripe object; answers the metadata the object then holds.
    fn send(
        stripe: &StripeGateway,
        stripe_id: &str,
        changes: &Self::Changes,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<HashMap<String, String>, ApiError>> + Send;
}

/// The ID of `R`'s records.
pub type IdOf<R> = Id<<<R as SyncedResource>::Record as Mirrored>::Kind>;

/// Our metadata on every Stripe object we make: the project and our record's ID, which
/// find the record again (webhooks, backfills, an orphan of a failed create) and tell whose
/// the object is.
pub fn our_metadata<'a>(project_id: &'a str, id: &'a str) -> [(&'static str, &'a str); 2] {
    [("project_id", project_id), ("billstack_id", id)]
}

/// Answers every route of `R`'s resource; other resources' routes are not its function's.
pub async fn handle<R: SyncedResource>(
    app: &App,
    req: ApiRequest,
) -> Result<ApiResponse, ApiError> {
    req.expect_resource(R::RESOURCE)?;
    match req.route.action {
        Action::List => list::<R>(app, &req).await,
        Action::Create => R::create(app, &req).await,
        Action::Get => get::<R>(app, &req)
            .await
            .map(|record| ApiResponse::ok(answer::<R>(&record))),
        Action::Update => update::<R>(app, &req).await,
        Action::Delete => R::delete(app, &req).await,
    }
}

/// A page of the project's records, newest first. Bounded like every list (a `limit` of
/// 50 unless asked, conventions.md), so no answer outgrows Lambda's 6 MB response limit;
/// `hasMore` says when there is more.
async fn list<R: SyncedResource>(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let allowed: Vec<&str> = R::LIST_FILTERS
        .iter()
        .copied()
        .chain(["limit", "offset", "startingAfter"])
        .collect();
    let query = Query::parse(req.query.as_deref(), &allowed)?;
    let filter = R::filter(&query)?;
    let page = Page::from_query(&query, Some(DEFAULT_LIMIT), R::RESOURCE.id_kind())?;
    let (records, has_more) = R::page(&app.store, req.project_id(), &page, &filter).await?;
    Ok(ApiResponse::ok(json!({
        R::RESOURCE.segment(): records.iter().map(R::to_json).collect::<Vec<_>>(),
        "hasMore": has_more,
    })))
}

/// `{"<name>": record}`.
fn answer<R: SyncedResource>(record: &R::Record) -> Value {
    json!({ R::NAME: R::to_json(record) })
}

/// The record the path names, or 404.
pub async fn get<R: SyncedResource>(app: &App, req: &ApiRequest) -> Result<R::Record, ApiError> {
    let id = req.object_id_of(R::RESOURCE)?;
    R::load(&app.store, req.project_id(), &id)
        .await?
        .ok_or_else(|| R::RESOURCE.not_found())
}

/// The new object's ID for a create, and the answer to give at once when an earlier
/// attempt under the same `Idempotency-Key` finished all but its answer (the ID kept with
/// the key names its record).
pub async fn new_object<R: SyncedResource>(
    app: &App,
    req: &ApiRequest,
) -> Result<(IdOf<R>, Option<ApiResponse>), ApiError> {
    let id = req.new_object_id();
    if !req.retried() {
        return Ok((id, None));
    }
    let done = R::load(&app.store, req.project_id(), &id).await?;
    Ok((id, done.map(|record| created::<R>(&record))))
}

/// 201 with the record made.
pub fn created<R: SyncedResource>(record: &R::Record) -> ApiResponse {
    ApiResponse::created(answer::<R>(record))
}

async fn update<R: SyncedResource>(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let patch = R::parse_patch(&req.body)?;
    let current = get::<R>(app, req).await?;
    let mut next = R::patched(&current, &patch);
    if next == current {
        return Ok(ApiResponse::ok(answer::<R>(&current)));
    }
    let stripe = app.stripe_for(&req.principal.team_id).await?;
    let now = clock::now_epoch();
    let held = R::hold(app, &current, &next, now).await?;
    if let Err(err) = push::<R>(&stripe, &current, &next, current.version(), false).await {
        R::release(app, &held).await;
        return Err(err);
    }
    next.stamp(now, &current);
    if let Err(err) = R::write(&app.store, &next, &current, &held).await {
        R::release(app, &held).await;
        undo::<R>(app, &stripe, &current, &next).await;
        return Err(err);
    }
    Ok(ApiResponse::ok(answer::<R>(&next)))
}

/// Makes the Stripe object, which holds `from`, hold `to` instead. Metadata replaces: the
/// object ends with exactly `to`'s keys plus ours, including keys set in Stripe behind our
/// back. Nothing is sent when no Stripe field differs.
pub async fn push<R: SyncedResource>(
    stripe: &StripeGateway,
    from: &R::Record,
    to: &R::Record,
    version: u64,
    undo: bool,
) -> Result<(), ApiError> {
    let ours = our_metadata(from.project_id(), from.id());
    let metadata = (to.metadata() != from.metadata())
        .then(|| stripe_metadata_replacing(to.metadata(), &ours, from.metadata().keys()));
    let replaces_metadata = metadata.is_some();
    let Some(changes) = R::changes(from, to, metadata) else {
        return Ok(());
    };
    let key = change_key(from.id(), version, undo, &changes);
    let held = R::send(stripe, from.stripe_id(), &changes, &key).await?;
    if replaces_metadata {
        let extra = unwanted_stripe_keys(&held, to.metadata());
        // A change from `to` to itself is its metadata alone: the keys to remove.
        if let Some(cleanup) = (!extra.is_empty())
            .then(|| R::changes(to, to, Some(extra)))
            .flatten()
        {
            R::send(
                stripe,
                from.stripe_id(),
                &cleanup,
                &format!("{key}_cleanup"),
            )
            .await?;
        }
    }
    Ok(())
}

/// After Stripe took `pushed` but our write of it failed (another request changed or
/// deleted the record meanwhile, or DynamoDB failed): puts Stripe back to what our table
/// holds now, as the resource says ([`SyncedResource::truth_after_lost_write`]), so Stripe
/// never keeps a loser's values or an object we deleted active again. Best effort: a
/// failure is logged, and the record (with its `stripeSyncedAt`) stays the truth that the
/// client's retry, a later write or a backfill restores.
pub async fn undo<R: SyncedResource>(
    app: &App,
    stripe: &StripeGateway,
    current: &R::Record,
    pushed: &R::Record,
) {
    let found = match R::load(&app.store, current.project_id(), current.id()).await {
        Ok(found) => found,
        Err(err) => {
            tracing::warn!(
                resource = R::NAME,
                code = err.code.as_str(),
                "could not read the record to undo a change in Stripe"
            );
            return;
        }
    };
    let Some(truth) = R::truth_after_lost_write(found, pushed) else {
        return;
    };
    if let Err(err) = push::<R>(stripe, pushed, &truth, current.version(), true).await {
        tracing::warn!(
            resource = R::NAME,
            code = err.code.as_str(),
            "could not undo a change in Stripe"
        );
    }
}
