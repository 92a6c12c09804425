//! The products API: list, create, get, update and delete a project's products, kept in
//! Stripe and in our table. Deleting a product archives it and deactivates its prices in
//! Stripe, and removes it and its prices from our table.

use std::collections::HashMap;

use billstack::App;
use billstack::clock;
use billstack::deadline;
use billstack::error::ApiError;
use billstack::http::{ApiRequest, ApiResponse};
use billstack::ids::{ProductId, ProjectId};
use billstack::input::{
    self, Metadata, Page, Query, json_body, nullable, stripe_metadata_replacing, validate_metadata,
};
use billstack::model::{Mirrored, Price, Product};
use billstack::routing::Resource;
use billstack::store::Store;
use billstack::stripe::{ProductChanges, StripeGateway, update_key};
use billstack::synced::{self, SyncedResource, our_metadata};
use serde::Deserialize;

pub const MAX_NAME_LEN: usize = 250;
pub const MAX_DESCRIPTION_LEN: usize = 5000;
/// What one step of a delete (a Stripe call and our write) needs left of the invocation.
const DELETE_STEP: std::time::Duration = std::time::Duration::from_millis(1500);

/// Answers every products route; other resources' routes are not this function's.
pub async fn handle(app: &App, req: ApiRequest) -> Result<ApiResponse, ApiError> {
    synced::handle::<Products>(app, req).await
}

/// The products resource: its own rules, for the flows every resource shares.
pub struct Products;

impl SyncedResource for Products {
    const RESOURCE: Resource = Resource::Products;
    type Record = Product;
    type Patch = ProductPatch;
    type Held = ();
    type Changes = ProductChanges;

    const LIST_FILTERS: &'static [&'static str] = &["activeOnly"];
    /// Active products only (`activeOnly`, true unless asked).
    type Filter = bool;

    fn filter(query: &Query) -> Result<bool, ApiError> {
        query.boolean("activeOnly", true)
    }

    async fn page(
        store: &Store,
        project_id: &ProjectId,
        page: &Page,
        active_only: &bool,
    ) -> Result<(Vec<Product>, bool), ApiError> {
        store.list_products(project_id, page, *active_only).await
    }

    async fn create(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let new = NewProduct::parse(&req.body)?;
        let project_id = req.project_id();
        let (id, made_before) = synced::new_object::<Products>(app, req).await?;
        if let Some(answer) = made_before {
            return Ok(answer);
        }
        let now = clock::now_epoch();
        let ours = our_metadata(project_id, &id);
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
                    return Ok(synced::created::<Products>(&stored));
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
        Ok(synced::created::<Products>(&product))
    }

    /// Stripe first, our table last: a failure half way leaves our records in place (the
    /// prices already deactivated in Stripe are marked inactive here too), and the retry of
    /// the delete finishes the job. From the first step on, no new price can be added.
    async fn delete(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let found = synced::get::<Products>(app, req).await?;
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
            let mut inactive = Price {
                is_active: false,
                ..(*price).clone()
            };
            inactive.stamp(clock::now_epoch(), price);
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

    async fn load(
        store: &Store,
        project_id: &ProjectId,
        id: &ProductId,
    ) -> Result<Option<Product>, ApiError> {
        store.get_product(project_id, id).await
    }

    fn parse_patch(body: &[u8]) -> Result<ProductPatch, ApiError> {
        ProductPatch::parse(body)
    }

    fn patched(current: &Product, patch: &ProductPatch) -> Product {
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
        next
    }

    fn to_json(product: &Product) -> serde_json::Value {
        product.to_json()
    }

    async fn hold(_: &App, _: &Product, _: &Product, _: i64) -> Result<(), ApiError> {
        Ok(())
    }

    async fn release(_: &App, _: &()) {}

    async fn write(
        store: &Store,
        next: &Product,
        current: &Product,
        _: &(),
    ) -> Result<(), ApiError> {
        store.replace_product(next, current.version).await
    }

    /// A product gone, or being deleted, is archived in Stripe (with its own values, when
    /// we still hold it: the delete may have archived it already).
    fn truth_after_lost_write(found: Option<Product>, pushed: &Product) -> Option<Product> {
        let archived = |product: Product| Product {
            is_active: false,
            ..product
        };
        Some(match found {
            Some(product) if !product.deleting => product,
            Some(product) => archived(product),
            None => archived(pushed.clone()),
        })
    }

    fn changes(
        from: &Product,
        to: &Product,
        metadata: Option<HashMap<String, String>>,
    ) -> Option<ProductChanges> {
        let changes = ProductChanges {
            name: (to.name != from.name).then(|| to.name.clone()),
            description: (to.description != from.description).then(|| to.description.clone()),
            active: (to.is_active != from.is_active).then_some(to.is_active),
            metadata,
        };
        (changes != ProductChanges::default()).then_some(changes)
    }

    async fn send(
        stripe: &StripeGateway,
        stripe_id: &str,
        changes: &ProductChanges,
        idempotency_key: &str,
    ) -> Result<HashMap<String, String>, ApiError> {
        Ok(stripe
            .update_product(stripe_id, changes, idempotency_key)
            .await?
            .metadata)
    }
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
        let is_active = input::patch_active(body.is_active)?;
        let metadata = input::patch_metadata(body.metadata)?;
        Ok(Self {
            name,
            description,
            is_active,
            metadata,
        })
    }
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
