//! The products API: list, create, get, update and delete a project's products, kept in
//! Stripe and in our table. Deleting a product archives it and deactivates its prices in
//! Stripe, and removes it and its prices from our table.

use billstack::App;
use billstack::clock;
use billstack::deadline;
use billstack::error::ApiError;
use billstack::http::{ApiRequest, ApiResponse};
use billstack::ids::IdKind;
use billstack::input::{
    self, DEFAULT_LIMIT, Metadata, Page, Query, json_body, nullable, stripe_metadata_replacing,
    unwanted_stripe_keys, validate_metadata,
};
use billstack::model::Product;
use billstack::routing::{Action, Resource};
use billstack::stripe::{ProductChanges, StripeGateway, change_key, sorted, update_key};
use serde::Deserialize;
use serde_json::json;

pub const MAX_NAME_LEN: usize = 250;
pub const MAX_DESCRIPTION_LEN: usize = 5000;
/// What one step of a delete (a Stripe call and our write) needs left of the invocation.
const DELETE_STEP: std::time::Duration = std::time::Duration::from_millis(1500);

/// Answers every products route; other resources' routes are not this function's.
pub async fn handle(app: &App, req: ApiRequest) -> Result<ApiResponse, ApiError> {
    req.expect_resource(Resource::Products)?;
    match req.route.action {
        Action::List => list(app, &req).await,
        Action::Create => create(app, &req).await,
        Action::Get => get(app, &req)
            .await
            .map(|p| ApiResponse::ok(json!({"product": p.to_json()}))),
        Action::Update => update(app, &req).await,
        Action::Delete => delete(app, &req).await,
    }
}

async fn get(app: &App, req: &ApiRequest) -> Result<Product, ApiError> {
    let id = req.object_id_of(Resource::Products)?;
    app.store
        .get_product(req.project_id(), id)
        .await?
        .ok_or_else(|| Resource::Products.not_found())
}

async fn list(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let query = Query::parse(
        req.query.as_deref(),
        &["activeOnly", "limit", "offset", "startingAfter"],
    )?;
    let active_only = query.boolean("activeOnly", true)?;
    // Bounded like every list (conventions.md: limit defaults to 50), so no answer
    // outgrows Lambda's 6 MB response limit; `hasMore` says when there is more.
    let page = Page::from_query(&query, Some(DEFAULT_LIMIT), IdKind::Product)?;
    let (products, has_more) = app
        .store
        .list_products(req.project_id(), &page, active_only)
        .await?;
    Ok(ApiResponse::ok(json!({
        "products": products.iter().map(Product::to_json).collect::<Vec<_>>(),
        "hasMore": has_more,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: Option<String>,
    description: Option<String>,
    metadata: Option<Metadata>,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub name: String,
    pub description: Option<String>,
    pub metadata: Metadata,
}

impl NewProduct {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body: CreateBody = json_body(body)?;
        let name = body
            .name
            .ok_or_else(|| ApiError::invalid("name", "Missing required parameter: name"))?;
        let metadata = body.metadata.unwrap_or_default();
        validate_metadata(&metadata)?;
        Ok(Self {
            name: input::text("name", &name, MAX_NAME_LEN)?,
            description: body
                .description
                .map(|d| input::text("description", &d, MAX_DESCRIPTION_LEN))
                .transpose()?,
            metadata,
        })
    }
}

async fn create(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let new = NewProduct::parse(&req.body)?;
    let project_id = req.project_id();
    let id = req.new_object_id(IdKind::Product);
    // An earlier attempt under this Idempotency-Key may have finished all but its answer.
    if req.retried()
        && let Some(done) = app.store.get_product(project_id, &id).await?
    {
        return Ok(ApiResponse::created(json!({"product": done.to_json()})));
    }
    let now = clock::now_epoch();
    let ours = [("project_id", project_id), ("billstack_id", id.as_str())];
    let stripe = app.stripe_for(&req.principal.team_id).await?;
    let stripe_product = stripe
        .create_product(
            &new.name,
            new.description.as_deref(),
            stripe_metadata_replacing(&new.metadata, &ours, []),
            &format!("bs_{id}_create"),
        )
        .await?;
    let product = Product {
        id,
        project_id: project_id.to_owned(),
        name: new.name,
        description: new.description,
        is_active: true,
        metadata: new.metadata,
        stripe_product_id: stripe_product.id,
        created_at: now,
        updated_at: now,
        stripe_synced_at: now,
        version: 1,
        deleting: false,
    };
    if let Err(err) = app.store.insert_product(&product).await {
        // A write whose answer was lost may have committed (the SDK's retry then fails its
        // condition on our own record): look before undoing anything.
        match app.store.get_product(project_id, &product.id).await {
            Ok(Some(stored)) if stored.stripe_product_id == product.stripe_product_id => {
                return Ok(ApiResponse::created(json!({"product": stored.to_json()})));
            }
            // Not written: undo the Stripe side (a product with no prices can be deleted).
            Ok(_) => {
                if let Err(undo) = stripe.delete_product(&product.stripe_product_id).await {
                    tracing::error!(stripe_product = %product.stripe_product_id, error = %undo, "orphan Stripe product left behind");
                }
            }
            // Cannot tell: keep the Stripe product (its metadata names our ID) rather than
            // risk deleting the Stripe side of a record that exists.
            Err(_) => {
                tracing::error!(stripe_product = %product.stripe_product_id, "product write unconfirmed; Stripe product kept");
            }
        }
        return Err(err);
    }
    Ok(ApiResponse::created(json!({"product": product.to_json()})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateBody {
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    is_active: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    metadata: Option<Option<Metadata>>,
}

/// A validated update: `None` leaves a field alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
    /// Replaces the metadata (`null` means none).
    pub metadata: Option<Metadata>,
}

impl ProductPatch {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body: UpdateBody = json_body(body)?;
        let name = match body.name {
            None => None,
            Some(None) => return Err(ApiError::invalid("name", "name cannot be removed")),
            Some(Some(raw)) => Some(input::text("name", &raw, MAX_NAME_LEN)?),
        };
        let description = match body.description {
            None => None,
            Some(None) => Some(None),
            Some(Some(raw)) => Some(Some(input::text("description", &raw, MAX_DESCRIPTION_LEN)?)),
        };
        let is_active = match body.is_active {
            None => None,
            Some(None) => {
                return Err(ApiError::invalid(
                    "isActive",
                    "isActive must be true or false",
                ));
            }
            Some(Some(active)) => Some(active),
        };
        let metadata = body.metadata.map(Option::unwrap_or_default);
        if let Some(metadata) = &metadata {
            validate_metadata(metadata)?;
        }
        Ok(Self {
            name,
            description,
            is_active,
            metadata,
        })
    }
}

async fn update(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let patch = ProductPatch::parse(&req.body)?;
    let current = get(app, req).await?;
    let mut next = current.clone();
    if let Some(name) = &patch.name {
        next.name = name.clone();
    }
    if let Some(description) = &patch.description {
        next.description = description.clone();
    }
    if let Some(active) = patch.is_active {
        next.is_active = active;
    }
    if let Some(metadata) = &patch.metadata {
        next.metadata = metadata.clone();
    }
    if next == current {
        return Ok(ApiResponse::ok(json!({"product": current.to_json()})));
    }
    let stripe = app.stripe_for(&req.principal.team_id).await?;
    push_to_stripe(&stripe, &current, &next, current.version, false).await?;
    next.updated_at = clock::now_epoch().max(current.updated_at);
    next.stripe_synced_at = next.updated_at.max(current.stripe_synced_at);
    next.version = current.version + 1;
    if let Err(err) = app.store.replace_product(&next, current.version).await {
        undo_in_stripe(app, &stripe, &current, &next).await;
        return Err(err);
    }
    Ok(ApiResponse::ok(json!({"product": next.to_json()})))
}

/// Makes the Stripe product, which holds `from`, hold `to` instead (metadata replaces: keys
/// set in Stripe behind our back go too). The idempotency key derives from the record's
/// `version`, the change and whether it is an `undo`, so a retry replays and another
/// change gets its own.
async fn push_to_stripe(
    stripe: &StripeGateway,
    from: &Product,
    to: &Product,
    version: u64,
    undo: bool,
) -> Result<(), ApiError> {
    let ours = [
        ("project_id", from.project_id.as_str()),
        ("billstack_id", from.id.as_str()),
    ];
    let changes = ProductChanges {
        name: (to.name != from.name).then(|| to.name.clone()),
        description: (to.description != from.description).then(|| to.description.clone()),
        active: (to.is_active != from.is_active).then_some(to.is_active),
        metadata: (to.metadata != from.metadata)
            .then(|| stripe_metadata_replacing(&to.metadata, &ours, from.metadata.keys())),
    };
    let change = (
        &changes.name,
        &changes.description,
        changes.active,
        sorted(&changes.metadata),
    );
    let key = change_key(&from.id, version, undo, &change);
    let updated = stripe
        .update_product(&from.stripe_product_id, &changes, &key)
        .await?;
    if changes.metadata.is_some() {
        let extra = unwanted_stripe_keys(&updated.metadata, &to.metadata);
        if !extra.is_empty() {
            let cleanup = ProductChanges {
                metadata: Some(extra),
                ..ProductChanges::default()
            };
            stripe
                .update_product(&from.stripe_product_id, &cleanup, &format!("{key}_cleanup"))
                .await?;
        }
    }
    Ok(())
}

/// After Stripe took `pushed` but our write of it failed (another request changed or
/// deleted the product meanwhile, or DynamoDB failed): puts Stripe back to what our table
/// holds now, archived if the product is gone or being deleted, so that Stripe never keeps
/// a loser's values or an object we deleted active again. Best effort: a failure is logged,
/// and the record (with its `stripeSyncedAt`) stays the truth a later write or backfill
/// restores.
async fn undo_in_stripe(app: &App, stripe: &StripeGateway, current: &Product, pushed: &Product) {
    let truth = match app
        .store
        .get_product(&current.project_id, &current.id)
        .await
    {
        Ok(Some(product)) if !product.deleting => product,
        // Being deleted: its own values, archived (the delete may have archived it).
        Ok(Some(product)) => Product {
            is_active: false,
            ..product
        },
        Ok(None) => Product {
            is_active: false,
            ..pushed.clone()
        },
        Err(err) => {
            tracing::warn!(
                code = err.code,
                "could not read the product to undo a change in Stripe"
            );
            return;
        }
    };
    if let Err(err) = push_to_stripe(stripe, pushed, &truth, current.version, true).await {
        tracing::warn!(code = err.code, "could not undo a product change in Stripe");
    }
}

/// Stripe first, our table last: a failure half way leaves our records in place (the
/// prices already deactivated in Stripe are marked inactive here too), and the retry of
/// the delete finishes the job. From the first step on, no new price can be added.
async fn delete(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let found = get(app, req).await?;
    let stripe = app.stripe_for(&req.principal.team_id).await?;
    // A retry of a delete finds the mark (and its version, which the keys below derive
    // from) in place.
    let product = if found.deleting {
        found
    } else {
        app.store.mark_product_deleting(&found).await?
    };
    let prices = app
        .store
        .prices_of_product(&product.project_id, &product.id)
        .await?;
    // Each price is deactivated once: a price inactive in our record is inactive in Stripe
    // (we write it so only after Stripe did), so a retried delete goes on where the last
    // attempt stopped. Each step must fit in what is left of the invocation; when the next
    // one would not, the attempt answers 503 with what it did, and its retry continues.
    let active: Vec<_> = prices.iter().filter(|p| p.is_active).collect();
    for (done, price) in active.iter().enumerate() {
        if !deadline::allows(DELETE_STEP) {
            let left = active.len() - done;
            return Err(ApiError::unavailable(format!(
                "Deleting this product takes more than one request: {left} of its prices are still to be deactivated in Stripe; retry the delete to continue"
            )));
        }
        let key = update_key(&price.id, price.version, &"archive");
        stripe
            .update_price(&price.stripe_price_id, Some(false), None, &key)
            .await?;
        let mut inactive = (*price).clone();
        inactive.is_active = false;
        inactive.updated_at = clock::now_epoch().max(price.updated_at);
        inactive.stripe_synced_at = inactive.updated_at.max(price.stripe_synced_at);
        inactive.version = price.version + 1;
        app.store.replace_price(&inactive, price.version).await?;
    }
    if !deadline::allows(DELETE_STEP) {
        return Err(ApiError::unavailable(
            "Deleting this product takes more than one request: its prices are deactivated; retry the delete to finish it",
        ));
    }
    let archive = ProductChanges {
        active: Some(false),
        ..ProductChanges::default()
    };
    let key = update_key(&product.id, product.version, &"archive");
    stripe
        .update_product(&product.stripe_product_id, &archive, &key)
        .await?;
    app.store
        .delete_product_with_prices(&product, &prices)
        .await?;
    Ok(ApiResponse::deleted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_requires_a_name_within_bounds() {
        let p =
            NewProduct::parse(br#"{"name": " Pro Plan ", "description": "All of it"}"#).unwrap();
        assert_eq!(p.name, "Pro Plan");
        assert_eq!(p.description.as_deref(), Some("All of it"));
        for (body, param) in [
            (r#"{}"#.to_owned(), "name"),
            (r#"{"name": ""}"#.to_owned(), "name"),
            (format!(r#"{{"name": "{}"}}"#, "x".repeat(251)), "name"),
            (r#"{"name": "x", "price": 5}"#.to_owned(), "price"),
            (
                r#"{"name": "x", "metadata": {"project_id": "p"}}"#.to_owned(),
                "metadata.project_id",
            ),
        ] {
            assert_eq!(
                NewProduct::parse(body.as_bytes())
                    .unwrap_err()
                    .param
                    .as_deref(),
                Some(param),
                "{body}"
            );
        }
        assert!(
            NewProduct::parse(format!(r#"{{"name": "{}"}}"#, "x".repeat(250)).as_bytes()).is_ok()
        );
    }

    #[test]
    fn patch_fields() {
        let p = ProductPatch::parse(br#"{"isActive": false, "description": null}"#).unwrap();
        assert_eq!(p.is_active, Some(false));
        assert_eq!(p.description, Some(None));
        assert_eq!(
            ProductPatch::parse(br#"{"isActive": "no"}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("isActive")
        );
        assert_eq!(
            ProductPatch::parse(br#"{"isActive": null}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("isActive")
        );
        assert_eq!(
            ProductPatch::parse(br#"{"name": null}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("name")
        );
        assert_eq!(
            ProductPatch::parse(br#"{"active": true}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("active")
        );
    }
}
