//! The prices API: list, create, get, update and delete a project's prices, kept in
//! Stripe and in our table. A price's amount, currency and interval never change (as in
//! Stripe): only `isActive` and `metadata` can.

use std::collections::HashMap;

use billstack::App;
use billstack::clock;
use billstack::error::{ApiError, ErrorCode};
use billstack::http::{ApiRequest, ApiResponse};
use billstack::ids::{PriceId, ProductId, ProjectId};
use billstack::input::{
    self, Metadata, Page, Query, json_body, nullable, stripe_metadata_replacing, validate_metadata,
    whole_number,
};
use billstack::model::{Currency, Interval, Price, PriceType};
use billstack::routing::Resource;
use billstack::store::Store;
use billstack::stripe::{NewStripePrice, StripeGateway, change_key};
use billstack::synced::{self, SyncedResource, our_metadata};
use serde::Deserialize;
use serde_json::Value;

/// Stripe's bound on `unit_amount` (in the currency's minor unit).
pub const MAX_UNIT_AMOUNT: i64 = 99_999_999;

/// Answers every prices route; other resources' routes are not this function's.
pub async fn handle(app: &App, req: ApiRequest) -> Result<ApiResponse, ApiError> {
    synced::handle::<Prices>(app, req).await
}

/// The prices resource: its own rules, for the flows every resource shares.
pub struct Prices;

impl SyncedResource for Prices {
    const RESOURCE: Resource = Resource::Prices;
    type Record = Price;
    type Patch = PricePatch;
    type Held = ();
    /// `active`, metadata: all Stripe lets change on a price.
    type Changes = (Option<bool>, Option<HashMap<String, String>>);

    const LIST_FILTERS: &'static [&'static str] = &["activeOnly", "productId"];
    /// Active prices only (`activeOnly`, true unless asked), and of one product.
    type Filter = (bool, Option<ProductId>);

    fn filter(query: &Query) -> Result<Self::Filter, ApiError> {
        let active_only = query.boolean("activeOnly", true)?;
        let product_id = query.get("productId").map(product_id).transpose()?;
        Ok((active_only, product_id))
    }

    async fn page(
        store: &Store,
        project_id: &ProjectId,
        page: &Page,
        (active_only, product_id): &Self::Filter,
    ) -> Result<(Vec<Price>, bool), ApiError> {
        store
            .list_prices(project_id, page, *active_only, product_id.as_ref())
            .await
    }

    async fn create(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let new = NewPrice::parse(&req.body)?;
        let project_id = req.project_id();
        let product = app
            .store
            .get_product(project_id, &new.product_id)
            .await?
            .ok_or_else(|| {
                ApiError::invalid("productId", format!("No such product: {}", new.product_id))
            })?;
        if product.deleting {
            return Err(ApiError::new(
                ErrorCode::ProductDeleted,
                format!("Product {} is being deleted", product.id),
            )
            .with_param("productId"));
        }
        let (id, made_before) = synced::new_object::<Prices>(app, req).await?;
        if let Some(answer) = made_before {
            return Ok(answer);
        }
        let now = clock::now_epoch();
        let ours = our_metadata(project_id, &id);
        let stripe = app.stripe_for(&req.principal.team_id).await?;
        let stripe_price = stripe
            .create_price(
                &NewStripePrice {
                    product: &product.stripe_product_id,
                    unit_amount: new.unit_amount,
                    currency: new.currency.as_str(),
                    recurring: new.interval.zip(new.interval_count),
                    metadata: stripe_metadata_replacing(&new.metadata, &ours, []),
                },
                &format!("bs_{id}_create"),
            )
            .await?;
        let price = Price {
            id,
            project_id: project_id.to_owned(),
            product_id: product.id,
            unit_amount: new.unit_amount,
            currency: new.currency,
            price_type: new.price_type,
            interval: new.interval,
            interval_count: new.interval_count,
            is_active: true,
            metadata: new.metadata,
            stripe_price_id: stripe_price.id,
            created_at: now,
            updated_at: now,
            stripe_synced_at: now,
            version: 1,
        };
        if let Err(err) = app.store.insert_price(&price).await {
            // Stripe prices cannot be deleted: deactivate it, so nothing can use it.
            let key = format!("bs_{}_undo", price.id);
            if let Err(undo) = stripe
                .update_price(&price.stripe_price_id, Some(false), None, &key)
                .await
            {
                tracing::error!(stripe_price = %price.stripe_price_id, error = %undo, "active orphan Stripe price left behind");
            }
            return Err(err);
        }
        Ok(synced::created::<Prices>(&price))
    }

    /// Deactivates the price in Stripe (Stripe keeps prices forever), then removes ours.
    /// Subscriptions already using it are not affected. When our delete fails after Stripe
    /// deactivated the price, Stripe is put back to what our table holds then (active again
    /// if the price is still there and was).
    async fn delete(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
        let price = synced::get::<Prices>(app, req).await?;
        let stripe = app.stripe_for(&req.principal.team_id).await?;
        let key = change_key(&price.id, price.version, false, &"archive");
        stripe
            .update_price(&price.stripe_price_id, Some(false), None, &key)
            .await?;
        match app.store.delete_price(&price).await {
            Ok(true) => Ok(ApiResponse::deleted()),
            Ok(false) => Err(Resource::Prices.not_found()),
            Err(err) => {
                let archived = Price {
                    is_active: false,
                    ..price.clone()
                };
                synced::undo::<Prices>(app, &stripe, &price, &archived).await;
                Err(err)
            }
        }
    }

    async fn load(
        store: &Store,
        project_id: &ProjectId,
        id: &PriceId,
    ) -> Result<Option<Price>, ApiError> {
        store.get_price(project_id, id).await
    }

    fn parse_patch(body: &[u8]) -> Result<PricePatch, ApiError> {
        PricePatch::parse(body)
    }

    fn patched(current: &Price, patch: &PricePatch) -> Price {
        let mut next = current.clone();
        if let Some(active) = patch.is_active {
            next.is_active = active;
        }
        if let Some(metadata) = &patch.metadata {
            next.metadata = metadata.clone();
        }
        next
    }

    fn to_json(price: &Price) -> Value {
        price.to_json()
    }

    async fn hold(_: &App, _: &Price, _: &Price, _: i64) -> Result<(), ApiError> {
        Ok(())
    }

    async fn release(_: &App, _: &()) {}

    async fn write(store: &Store, next: &Price, current: &Price, _: &()) -> Result<(), ApiError> {
        store.replace_price(next, current.version).await
    }

    /// A price gone from our table is deactivated in Stripe.
    fn truth_after_lost_write(found: Option<Price>, pushed: &Price) -> Option<Price> {
        Some(found.unwrap_or_else(|| Price {
            is_active: false,
            ..pushed.clone()
        }))
    }

    fn changes(
        from: &Price,
        to: &Price,
        metadata: Option<HashMap<String, String>>,
    ) -> Option<Self::Changes> {
        let active = (to.is_active != from.is_active).then_some(to.is_active);
        (active.is_some() || metadata.is_some()).then_some((active, metadata))
    }

    async fn send(
        stripe: &StripeGateway,
        stripe_id: &str,
        (active, metadata): &Self::Changes,
        idempotency_key: &str,
    ) -> Result<HashMap<String, String>, ApiError> {
        Ok(stripe
            .update_price(stripe_id, *active, metadata.clone(), idempotency_key)
            .await?
            .metadata)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    product_id: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    unit_amount: Option<i64>,
    currency: Option<String>,
    #[serde(rename = "type")]
    price_type: Option<String>,
    interval: Option<String>,
    #[serde(default, deserialize_with = "whole_number")]
    interval_count: Option<i64>,
    metadata: Option<Metadata>,
}

/// A validated create request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPrice {
    pub product_id: ProductId,
    pub unit_amount: i64,
    pub currency: Currency,
    pub price_type: PriceType,
    pub interval: Option<Interval>,
    pub interval_count: Option<u32>,
    pub metadata: Metadata,
}

/// A `productId` given, if it has the form of a product's ID.
fn product_id(text: &str) -> Result<ProductId, ApiError> {
    ProductId::parse(text)
        .ok_or_else(|| ApiError::invalid("productId", "productId must be a product ID (pp_...)"))
}

fn required<T>(value: Option<T>, param: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid(param, format!("Missing required parameter: {param}")))
}

impl NewPrice {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body: CreateBody = json_body(body)?;
        let product_id = product_id(&required(body.product_id, "productId")?)?;
        let unit_amount = required(body.unit_amount, "unitAmount")?;
        if !(0..=MAX_UNIT_AMOUNT).contains(&unit_amount) {
            return Err(ApiError::invalid(
                "unitAmount",
                format!(
                    "unitAmount must be an integer from 0 to {MAX_UNIT_AMOUNT} (in the currency's minor unit)"
                ),
            ));
        }
        let currency = parse_currency(&required(body.currency, "currency")?)?;
        let price_type = match body.price_type.as_deref() {
            None | Some("recurring") => PriceType::Recurring,
            Some("one_time") => PriceType::OneTime,
            Some(other) => {
                return Err(ApiError::invalid(
                    "type",
                    format!("type must be recurring or one_time, not {other:?}"),
                ));
            }
        };
        let (interval, interval_count) = match price_type {
            PriceType::OneTime => {
                if body.interval.is_some() {
                    return Err(ApiError::invalid(
                        "interval",
                        "interval is only for recurring prices",
                    ));
                }
                if body.interval_count.is_some() {
                    return Err(ApiError::invalid(
                        "intervalCount",
                        "intervalCount is only for recurring prices",
                    ));
                }
                (None, None)
            }
            PriceType::Recurring => {
                let raw = body.interval.ok_or_else(|| {
                    ApiError::invalid(
                        "interval",
                        "interval is required for recurring prices (day, week, month or year)",
                    )
                })?;
                let interval = Interval::ALL
                    .into_iter()
                    .find(|i| i.as_str() == raw)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "interval",
                            format!("interval must be day, week, month or year, not {raw:?}"),
                        )
                    })?;
                let count = body.interval_count.unwrap_or(1);
                let max = i64::from(interval.max_count());
                if !(1..=max).contains(&count) {
                    return Err(ApiError::invalid(
                        "intervalCount",
                        format!(
                            "intervalCount must be from 1 to {max} for interval {} (at most three years)",
                            interval.as_str()
                        ),
                    ));
                }
                (Some(interval), Some(count as u32))
            }
        };
        let metadata = body.metadata.unwrap_or_default();
        validate_metadata(&metadata)?;
        Ok(Self {
            product_id,
            unit_amount,
            currency,
            price_type,
            interval,
            interval_count,
            metadata,
        })
    }
}

/// Three letters, one of the currencies Stripe knows; stored lowercase.
fn parse_currency(raw: &str) -> Result<Currency, ApiError> {
    Currency::parse(raw).ok_or_else(|| {
        ApiError::invalid(
            "currency",
            format!(
                "currency must be a three-letter ISO code Stripe supports (usd, eur, ...), not {raw:?}"
            ),
        )
    })
}

/// Fields a price has but an update cannot change.
const IMMUTABLE: [&str; 6] = [
    "productId",
    "unitAmount",
    "currency",
    "type",
    "interval",
    "intervalCount",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UpdateBody {
    #[serde(default, deserialize_with = "nullable")]
    is_active: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    metadata: Option<Option<Metadata>>,
}

/// A validated update: only `isActive` and `metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PricePatch {
    pub is_active: Option<bool>,
    pub metadata: Option<Metadata>,
}

impl PricePatch {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        // Name the immutable fields first, with the way out, before the generic checks.
        if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body)
            && let Some(field) = IMMUTABLE.iter().find(|f| fields.contains_key(**f))
        {
            return Err(ApiError::invalid(
                *field,
                format!(
                    "{field} cannot be changed: a price's amount, currency, type and interval are fixed (as in Stripe). Create a new price instead; only isActive and metadata can be updated"
                ),
            ));
        }
        let body: UpdateBody = json_body(body)?;
        let is_active = input::patch_active(body.is_active)?;
        let metadata = input::patch_metadata(body.metadata)?;
        Ok(Self {
            is_active,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(body: &str) -> Option<String> {
        NewPrice::parse(body.as_bytes()).unwrap_err().param
    }

    #[test]
    fn recurring_by_default_with_interval_count_one() {
        let p = NewPrice::parse(
            br#"{"productId": "pp_1", "unitAmount": 2999, "currency": "USD", "interval": "month"}"#,
        )
        .unwrap();
        assert_eq!(p.price_type, PriceType::Recurring);
        assert_eq!(
            (p.interval, p.interval_count),
            (Some(Interval::Month), Some(1))
        );
        assert_eq!(p.currency, "usd");
        let p = NewPrice::parse(
            br#"{"productId": "pp_1", "unitAmount": 0, "currency": "eur", "type": "one_time"}"#,
        )
        .unwrap();
        assert_eq!(
            (p.price_type, p.interval, p.interval_count),
            (PriceType::OneTime, None, None)
        );
    }

    #[test]
    fn create_validation_names_the_parameter() {
        let base = r#""productId": "pp_1", "currency": "usd", "interval": "month""#;
        assert_eq!(
            param(&format!(r#"{{{base}}}"#)).as_deref(),
            Some("unitAmount")
        );
        assert_eq!(
            param(&format!(r#"{{{base}, "unitAmount": -1}}"#)).as_deref(),
            Some("unitAmount")
        );
        assert_eq!(
            param(&format!(r#"{{{base}, "unitAmount": 100000000}}"#)).as_deref(),
            Some("unitAmount")
        );
        assert_eq!(
            param(&format!(r#"{{{base}, "unitAmount": 29.99}}"#)).as_deref(),
            Some("unitAmount")
        );
        assert_eq!(
            param(&format!(r#"{{{base}, "unitAmount": "100"}}"#)).as_deref(),
            Some("unitAmount")
        );
        assert!(
            NewPrice::parse(format!(r#"{{{base}, "unitAmount": 99999999}}"#).as_bytes()).is_ok()
        );
        assert_eq!(
            param(r#"{"unitAmount": 1, "currency": "usd", "interval": "month"}"#).as_deref(),
            Some("productId")
        );
        assert_eq!(param(r#"{"productId": "prod_1", "unitAmount": 1, "currency": "usd", "interval": "month"}"#).as_deref(), Some("productId"));
        for currency in ["us", "usdd", "xyz", "u$d", ""] {
            let body = format!(
                r#"{{"productId": "pp_1", "unitAmount": 1, "currency": "{currency}", "interval": "month"}}"#
            );
            assert_eq!(param(&body).as_deref(), Some("currency"), "{currency}");
        }
        assert_eq!(
            param(r#"{"productId": "pp_1", "unitAmount": 1, "currency": "usd"}"#).as_deref(),
            Some("interval")
        );
        assert_eq!(param(r#"{"productId": "pp_1", "unitAmount": 1, "currency": "usd", "interval": "fortnight"}"#).as_deref(), Some("interval"));
        assert_eq!(param(r#"{"productId": "pp_1", "unitAmount": 1, "currency": "usd", "type": "metered", "interval": "month"}"#).as_deref(), Some("type"));
        assert_eq!(param(r#"{"productId": "pp_1", "unitAmount": 1, "currency": "usd", "type": "one_time", "interval": "month"}"#).as_deref(), Some("interval"));
        assert_eq!(param(r#"{"productId": "pp_1", "unitAmount": 1, "currency": "usd", "type": "one_time", "intervalCount": 1}"#).as_deref(), Some("intervalCount"));
        assert_eq!(param(r#"{"productId": "pp_1", "unitAmount": 1, "currency": "usd", "interval": "month", "nickname": "x"}"#).as_deref(), Some("nickname"));
    }

    #[test]
    fn interval_count_is_at_most_three_years() {
        for (interval, max) in [("day", 1095), ("week", 156), ("month", 36), ("year", 3)] {
            let body = |count: i64| {
                format!(
                    r#"{{"productId": "pp_1", "unitAmount": 1, "currency": "usd", "interval": "{interval}", "intervalCount": {count}}}"#
                )
            };
            assert!(
                NewPrice::parse(body(max).as_bytes()).is_ok(),
                "{interval} {max}"
            );
            assert_eq!(
                param(&body(max + 1)).as_deref(),
                Some("intervalCount"),
                "{interval}"
            );
            assert_eq!(
                param(&body(0)).as_deref(),
                Some("intervalCount"),
                "{interval}"
            );
        }
    }

    #[test]
    fn updates_refuse_immutable_fields_with_the_way_out() {
        for field in IMMUTABLE {
            let body = format!(r#"{{"{field}": 1}}"#);
            let err = PricePatch::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(field));
            assert!(
                err.message.contains("Create a new price"),
                "{}",
                err.message
            );
        }
        let p = PricePatch::parse(br#"{"isActive": false, "metadata": {"a": "b"}}"#).unwrap();
        assert_eq!(p.is_active, Some(false));
        assert_eq!(
            PricePatch::parse(br#"{"nickname": "x"}"#)
                .unwrap_err()
                .param
                .as_deref(),
            Some("nickname")
        );
    }
}
