//! The prices API: list, create, get, update and delete a project's prices, kept in
//! Stripe and in our table. A price's amount, currency and interval never change (as in
//! Stripe): only `isActive` and `metadata` can.

use std::str::FromStr;

use billstack::App;
use billstack::clock;
use billstack::error::ApiError;
use billstack::http::{ApiRequest, ApiResponse};
use billstack::ids::IdKind;
use billstack::input::{
    DEFAULT_LIMIT, Metadata, Page, Query, json_body, nullable, stripe_metadata_replacing,
    unwanted_stripe_keys, validate_metadata, whole_number,
};
use billstack::model::{Interval, Price, PriceType};
use billstack::routing::{Action, Resource};
use billstack::stripe::{NewStripePrice, StripeGateway, change_key, sorted, update_key};
use serde::Deserialize;
use serde_json::{Value, json};

/// Stripe's bound on `unit_amount` (in the currency's minor unit).
pub const MAX_UNIT_AMOUNT: i64 = 99_999_999;

/// Answers every prices route; other resources' routes are not this function's.
pub async fn handle(app: &App, req: ApiRequest) -> Result<ApiResponse, ApiError> {
    req.expect_resource(Resource::Prices)?;
    match req.route.action {
        Action::List => list(app, &req).await,
        Action::Create => create(app, &req).await,
        Action::Get => get(app, &req)
            .await
            .map(|p| ApiResponse::ok(json!({"price": p.to_json()}))),
        Action::Update => update(app, &req).await,
        Action::Delete => delete(app, &req).await,
    }
}

async fn get(app: &App, req: &ApiRequest) -> Result<Price, ApiError> {
    let id = req.object_id_of(Resource::Prices)?;
    app.store
        .get_price(req.project_id(), id)
        .await?
        .ok_or_else(|| Resource::Prices.not_found())
}

async fn list(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let query = Query::parse(
        req.query.as_deref(),
        &[
            "activeOnly",
            "productId",
            "limit",
            "offset",
            "startingAfter",
        ],
    )?;
    let active_only = query.boolean("activeOnly", true)?;
    // Bounded like every list (conventions.md: limit defaults to 50), so no answer
    // outgrows Lambda's 6 MB response limit; `hasMore` says when there is more.
    let page = Page::from_query(&query, Some(DEFAULT_LIMIT), IdKind::Price)?;
    let product_id = query.get("productId");
    if let Some(product_id) = product_id
        && !IdKind::Product.matches(product_id)
    {
        return Err(ApiError::invalid(
            "productId",
            "productId must be a product ID (pp_...)",
        ));
    }
    let (prices, has_more) = app
        .store
        .list_prices(req.project_id(), &page, active_only, product_id)
        .await?;
    Ok(ApiResponse::ok(json!({
        "prices": prices.iter().map(Price::to_json).collect::<Vec<_>>(),
        "hasMore": has_more,
    })))
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
    pub product_id: String,
    pub unit_amount: i64,
    pub currency: String,
    pub price_type: PriceType,
    pub interval: Option<Interval>,
    pub interval_count: Option<u32>,
    pub metadata: Metadata,
}

fn required<T>(value: Option<T>, param: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid(param, format!("Missing required parameter: {param}")))
}

impl NewPrice {
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body: CreateBody = json_body(body)?;
        let product_id = required(body.product_id, "productId")?;
        if !IdKind::Product.matches(&product_id) {
            return Err(ApiError::invalid(
                "productId",
                "productId must be a product ID (pp_...)",
            ));
        }
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
fn parse_currency(raw: &str) -> Result<String, ApiError> {
    let currency = raw.trim().to_ascii_lowercase();
    let known = currency.len() == 3
        && currency.bytes().all(|b| b.is_ascii_lowercase())
        && !matches!(
            stripe_types::Currency::from_str(&currency),
            Ok(stripe_types::Currency::Unknown(_))
        );
    if known {
        Ok(currency)
    } else {
        Err(ApiError::invalid(
            "currency",
            format!(
                "currency must be a three-letter ISO code Stripe supports (usd, eur, ...), not {raw:?}"
            ),
        ))
    }
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
        return Err(ApiError::conflict(
            "product_deleted",
            format!("Product {} is being deleted", product.id),
        )
        .with_param("productId"));
    }
    let id = req.new_object_id(IdKind::Price);
    // An earlier attempt under this Idempotency-Key may have finished all but its answer.
    if req.retried()
        && let Some(done) = app.store.get_price(project_id, &id).await?
    {
        return Ok(ApiResponse::created(json!({"price": done.to_json()})));
    }
    let now = clock::now_epoch();
    let ours = [("project_id", project_id), ("billstack_id", id.as_str())];
    let stripe = app.stripe_for(&req.principal.team_id).await?;
    let stripe_price = stripe
        .create_price(
            &NewStripePrice {
                product: &product.stripe_product_id,
                unit_amount: new.unit_amount,
                currency: &new.currency,
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
    Ok(ApiResponse::created(json!({"price": price.to_json()})))
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
            is_active,
            metadata,
        })
    }
}

async fn update(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let patch = PricePatch::parse(&req.body)?;
    let current = get(app, req).await?;
    let mut next = current.clone();
    if let Some(active) = patch.is_active {
        next.is_active = active;
    }
    if let Some(metadata) = &patch.metadata {
        next.metadata = metadata.clone();
    }
    if next == current {
        return Ok(ApiResponse::ok(json!({"price": current.to_json()})));
    }
    let stripe = app.stripe_for(&req.principal.team_id).await?;
    push_to_stripe(&stripe, &current, &next, current.version, false).await?;
    next.updated_at = clock::now_epoch().max(current.updated_at);
    next.stripe_synced_at = next.updated_at.max(current.stripe_synced_at);
    next.version = current.version + 1;
    if let Err(err) = app.store.replace_price(&next, current.version).await {
        undo_in_stripe(app, &stripe, &current, &next).await;
        return Err(err);
    }
    Ok(ApiResponse::ok(json!({"price": next.to_json()})))
}

/// Makes the Stripe price, which holds `from`, hold `to` instead (only `active` and
/// metadata change; metadata replaces). The idempotency key derives from the record's
/// `version`, the change and whether it is an `undo`.
async fn push_to_stripe(
    stripe: &StripeGateway,
    from: &Price,
    to: &Price,
    version: u64,
    undo: bool,
) -> Result<(), ApiError> {
    let ours = [
        ("project_id", from.project_id.as_str()),
        ("billstack_id", from.id.as_str()),
    ];
    let active = (to.is_active != from.is_active).then_some(to.is_active);
    let metadata = (to.metadata != from.metadata)
        .then(|| stripe_metadata_replacing(&to.metadata, &ours, from.metadata.keys()));
    let change = (active, sorted(&metadata));
    let key = change_key(&from.id, version, undo, &change);
    let updated = stripe
        .update_price(&from.stripe_price_id, active, metadata.clone(), &key)
        .await?;
    if metadata.is_some() {
        let extra = unwanted_stripe_keys(&updated.metadata, &to.metadata);
        if !extra.is_empty() {
            stripe
                .update_price(
                    &from.stripe_price_id,
                    None,
                    Some(extra),
                    &format!("{key}_cleanup"),
                )
                .await?;
        }
    }
    Ok(())
}

/// After Stripe took `pushed` but our write of it failed (another request changed or
/// deleted the price meanwhile, or DynamoDB failed): puts Stripe back to what our table
/// holds now, deactivated if the price is gone. Best effort: a failure is logged.
async fn undo_in_stripe(app: &App, stripe: &StripeGateway, current: &Price, pushed: &Price) {
    let truth = match app.store.get_price(&current.project_id, &current.id).await {
        Ok(Some(price)) => price,
        Ok(None) => Price {
            is_active: false,
            ..pushed.clone()
        },
        Err(err) => {
            tracing::warn!(
                code = err.code,
                "could not read the price to undo a change in Stripe"
            );
            return;
        }
    };
    if let Err(err) = push_to_stripe(stripe, pushed, &truth, current.version, true).await {
        tracing::warn!(code = err.code, "could not undo a price change in Stripe");
    }
}

/// Deactivates the price in Stripe (Stripe keeps prices forever), then removes ours.
/// Subscriptions already using it are not affected.
async fn delete(app: &App, req: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let price = get(app, req).await?;
    let stripe = app.stripe_for(&req.principal.team_id).await?;
    let key = update_key(&price.id, price.version, &"archive");
    stripe
        .update_price(&price.stripe_price_id, Some(false), None, &key)
        .await?;
    if app.store.delete_price(&price).await? {
        Ok(ApiResponse::deleted())
    } else {
        Err(Resource::Prices.not_found())
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
