//! The emulated objects, their JSON as Stripe renders it, and the `/v1` endpoints.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::error::{ApiError, Reply};
use crate::form::{Form, Kind, apply_metadata};
use crate::ids;

/// Objects of one kind, in creation order. Deleted objects stay as tombstones so
/// that a `starting_after` cursor on a deleted object still pages correctly.
#[derive(Debug)]
pub(crate) struct Table<T> {
    items: HashMap<String, Entry<T>>,
    order: Vec<String>,
}

#[derive(Debug)]
struct Entry<T> {
    object: T,
    deleted: bool,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            items: HashMap::new(),
            order: Vec::new(),
        }
    }
}

impl<T> Table<T> {
    fn insert(&mut self, id: String, object: T) {
        self.order.push(id.clone());
        self.items.insert(
            id,
            Entry {
                object,
                deleted: false,
            },
        );
    }

    /// A live (not deleted) object.
    pub fn get(&self, id: &str) -> Option<&T> {
        self.items.get(id).filter(|e| !e.deleted).map(|e| &e.object)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.items
            .get_mut(id)
            .filter(|e| !e.deleted)
            .map(|e| &mut e.object)
    }

    pub fn is_deleted(&self, id: &str) -> bool {
        self.items.get(id).is_some_and(|e| e.deleted)
    }

    fn mark_deleted(&mut self, id: &str) {
        if let Some(e) = self.items.get_mut(id) {
            e.deleted = true;
        }
    }

    /// Live objects in creation order.
    pub fn live(&self) -> impl Iterator<Item = &T> {
        self.order.iter().filter_map(|id| self.get(id))
    }

    /// One page of live objects matching `keep`, newest first, and whether more exist.
    fn page(
        &self,
        page: &PageParams,
        kind: &str,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(Vec<&T>, bool), ApiError> {
        let position = |id: &str, param: &str| {
            self.order
                .iter()
                .position(|x| x == id)
                .ok_or_else(|| ApiError::no_such_param(kind, id, param))
        };
        let take = page.limit + 1;
        if let Some(cursor) = &page.ending_before {
            // The objects just newer than the cursor, closest first, then shown newest first.
            let pos = position(cursor, "ending_before")?;
            let mut found: Vec<&T> = self.order[pos + 1..]
                .iter()
                .filter_map(|id| self.get(id))
                .filter(|o| keep(o))
                .take(take)
                .collect();
            let has_more = found.len() > page.limit;
            found.truncate(page.limit);
            found.reverse();
            return Ok((found, has_more));
        }
        let end = match &page.starting_after {
            Some(cursor) => position(cursor, "starting_after")?,
            None => self.order.len(),
        };
        let mut found: Vec<&T> = self.order[..end]
            .iter()
            .rev()
            .filter_map(|id| self.get(id))
            .filter(|o| keep(o))
            .take(take)
            .collect();
        let has_more = found.len() > page.limit;
        found.truncate(page.limit);
        Ok((found, has_more))
    }
}

#[derive(Debug)]
struct PageParams {
    limit: usize,
    starting_after: Option<String>,
    ending_before: Option<String>,
}

const PAGE_SPEC: [(&str, Kind); 4] = [
    ("limit", Kind::Scalar),
    ("starting_after", Kind::Scalar),
    ("ending_before", Kind::Scalar),
    ("expand", Kind::List),
];

fn page_params(form: &Form) -> Result<PageParams, ApiError> {
    let limit = match form.integer("limit")? {
        None => 10,
        Some(n) if n < 1 => {
            return Err(
                ApiError::invalid("This value must be greater than or equal to 1.").param("limit"),
            );
        }
        Some(n) if n > 100 => {
            return Err(
                ApiError::invalid("This value must be less than or equal to 100.").param("limit"),
            );
        }
        Some(n) => usize::try_from(n).unwrap_or(10),
    };
    let starting_after = form.optional_string("starting_after")?.flatten();
    let ending_before = form.optional_string("ending_before")?.flatten();
    if starting_after.is_some() && ending_before.is_some() {
        return Err(ApiError::invalid(
            "You may only specify one of these parameters: ending_before, starting_after.",
        )
        .code("parameters_exclusive")
        .param("ending_before"));
    }
    Ok(PageParams {
        limit,
        starting_after,
        ending_before,
    })
}

fn list_json(url: &str, data: Vec<Value>, has_more: bool) -> Value {
    json!({ "object": "list", "data": data, "has_more": has_more, "url": url })
}

/// Checks `expand` against the paths an object allows (`data.` prefixed for lists).
fn expansions(form: &Form, allowed: &[&str], list: bool) -> Result<Vec<String>, ApiError> {
    let requested = form.list("expand")?;
    for path in &requested {
        let inner = if list {
            path.strip_prefix("data.")
        } else {
            Some(path.as_str())
        };
        if !inner.is_some_and(|p| allowed.contains(&p)) {
            return Err(
                ApiError::invalid(format!("This property cannot be expanded ({path})."))
                    .param("expand"),
            );
        }
    }
    Ok(requested
        .into_iter()
        .map(|p| p.trim_start_matches("data.").to_string())
        .collect())
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| json!(s))
}

fn deleted_json(id: &str, object: &str) -> Value {
    json!({ "id": id, "object": object, "deleted": true })
}

// ---------------------------------------------------------------- customers

#[derive(Debug, Clone)]
pub(crate) struct Customer {
    id: String,
    created: i64,
    email: Option<String>,
    name: Option<String>,
    description: Option<String>,
    metadata: BTreeMap<String, String>,
    invoice_prefix: String,
}

impl Customer {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "customer",
            "address": null,
            "balance": 0,
            "created": self.created,
            "currency": null,
            "default_source": null,
            "delinquent": false,
            "description": opt(&self.description),
            "discount": null,
            "email": opt(&self.email),
            "invoice_prefix": self.invoice_prefix,
            "invoice_settings": {
                "custom_fields": null,
                "default_payment_method": null,
                "footer": null,
                "rendering_options": null
            },
            "livemode": false,
            "metadata": self.metadata,
            "name": opt(&self.name),
            "next_invoice_sequence": 1,
            "phone": null,
            "preferred_locales": [],
            "shipping": null,
            "tax_exempt": "none",
            "test_clock": null
        })
    }
}

const CUSTOMER_EXPANDABLE: [&str; 3] = [
    "default_source",
    "invoice_settings.default_payment_method",
    "test_clock",
];

const CUSTOMER_WRITE_SPEC: [(&str, Kind); 5] = [
    ("email", Kind::Scalar),
    ("name", Kind::Scalar),
    ("description", Kind::Scalar),
    ("metadata", Kind::Metadata),
    ("expand", Kind::List),
];

fn check_email(email: &Option<String>) -> Result<(), ApiError> {
    if let Some(e) = email {
        let valid = e.len() <= 512
            && e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            });
        if !valid {
            return Err(ApiError::invalid(format!("Invalid email address: {e}"))
                .code("email_invalid")
                .param("email"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- products

#[derive(Debug, Clone)]
pub(crate) struct Product {
    id: String,
    created: i64,
    updated: i64,
    name: String,
    description: Option<String>,
    active: bool,
    metadata: BTreeMap<String, String>,
}

impl Product {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "product",
            "active": self.active,
            "created": self.created,
            "default_price": null,
            "description": opt(&self.description),
            "images": [],
            "livemode": false,
            "marketing_features": [],
            "metadata": self.metadata,
            "name": self.name,
            "package_dimensions": null,
            "shippable": null,
            "statement_descriptor": null,
            "tax_code": null,
            "type": "service",
            "unit_label": null,
            "updated": self.updated,
            "url": null
        })
    }
}

const PRODUCT_EXPANDABLE: [&str; 2] = ["default_price", "tax_code"];

// ---------------------------------------------------------------- prices

#[derive(Debug, Clone)]
pub(crate) struct Price {
    id: String,
    created: i64,
    product: String,
    unit_amount: i64,
    currency: String,
    recurring: Option<(String, u64)>,
    nickname: Option<String>,
    active: bool,
    metadata: BTreeMap<String, String>,
}

impl Price {
    pub fn to_json(&self) -> Value {
        let recurring = match &self.recurring {
            Some((interval, count)) => json!({
                "interval": interval,
                "interval_count": count,
                "meter": null,
                "trial_period_days": null,
                "usage_type": "licensed"
            }),
            None => Value::Null,
        };
        json!({
            "id": self.id,
            "object": "price",
            "active": self.active,
            "billing_scheme": "per_unit",
            "created": self.created,
            "currency": self.currency,
            "custom_unit_amount": null,
            "livemode": false,
            "lookup_key": null,
            "metadata": self.metadata,
            "nickname": opt(&self.nickname),
            "product": self.product,
            "recurring": recurring,
            "tax_behavior": "unspecified",
            "tiers_mode": null,
            "transform_quantity": null,
            "type": if self.recurring.is_some() { "recurring" } else { "one_time" },
            "unit_amount": self.unit_amount,
            "unit_amount_decimal": self.unit_amount.to_string()
        })
    }
}

const PRICE_EXPANDABLE: [&str; 1] = ["product"];
const INTERVALS: [&str; 4] = ["day", "week", "month", "year"];

// ---------------------------------------------------------------- the store

/// A response remembered for an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub(crate) struct IdempotentResult {
    pub method: String,
    pub path: String,
    pub params: Vec<(String, String)>,
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    pub customers: Table<Customer>,
    pub products: Table<Product>,
    pub prices: Table<Price>,
    pub idempotency: HashMap<String, IdempotentResult>,
}

/// The resource a `/v1` path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Customers,
    Products,
    Prices,
}

impl Resource {
    pub fn from_segment(s: &str) -> Option<Resource> {
        match s {
            "customers" => Some(Resource::Customers),
            "products" => Some(Resource::Products),
            "prices" => Some(Resource::Prices),
            _ => None,
        }
    }
}

impl Store {
    /// Runs one authenticated `/v1` request against the state.
    pub fn dispatch(
        &mut self,
        method: &str,
        path: &str,
        target: Option<(Resource, Option<&str>)>,
        form: &Form,
    ) -> Reply {
        let result = match (method, target) {
            ("POST", Some((Resource::Customers, None))) => self.create_customer(form),
            ("GET", Some((Resource::Customers, None))) => self.list_customers(form),
            ("GET", Some((Resource::Customers, Some(id)))) => self.retrieve_customer(id, form),
            ("POST", Some((Resource::Customers, Some(id)))) => self.update_customer(id, form),
            ("DELETE", Some((Resource::Customers, Some(id)))) => self.delete_customer(id, form),
            ("POST", Some((Resource::Products, None))) => self.create_product(form),
            ("GET", Some((Resource::Products, None))) => self.list_products(form),
            ("GET", Some((Resource::Products, Some(id)))) => self.retrieve_product(id, form),
            ("POST", Some((Resource::Products, Some(id)))) => self.update_product(id, form),
            ("DELETE", Some((Resource::Products, Some(id)))) => self.delete_product(id, form),
            ("POST", Some((Resource::Prices, None))) => self.create_price(form),
            ("GET", Some((Resource::Prices, None))) => self.list_prices(form),
            ("GET", Some((Resource::Prices, Some(id)))) => self.retrieve_price(id, form),
            ("POST", Some((Resource::Prices, Some(id)))) => self.update_price(id, form),
            _ => Err(ApiError::unrecognized_url(method, path)),
        };
        match result {
            Ok(body) => Reply::ok(body),
            Err(err) => err.into_reply(),
        }
    }

    // ---- customers

    fn create_customer(&mut self, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&CUSTOMER_WRITE_SPEC)?;
        expansions(form, &CUSTOMER_EXPANDABLE, false)?;
        let email = form.optional_string("email")?.flatten();
        check_email(&email)?;
        let metadata = match form.metadata()? {
            Some(ops) => apply_metadata(&BTreeMap::new(), &ops)?,
            None => BTreeMap::new(),
        };
        let customer = Customer {
            id: ids::object_id("cus"),
            created: ids::now(),
            email,
            name: form.optional_string("name")?.flatten(),
            description: form.optional_string("description")?.flatten(),
            metadata,
            invoice_prefix: ids::invoice_prefix(),
        };
        let body = customer.to_json();
        self.customers.insert(customer.id.clone(), customer);
        Ok(body)
    }

    fn retrieve_customer(&self, id: &str, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&[("expand", Kind::List)])?;
        expansions(form, &CUSTOMER_EXPANDABLE, false)?;
        self.customers
            .get(id)
            .map(Customer::to_json)
            .ok_or_else(|| ApiError::no_such("customer", id))
    }

    fn update_customer(&mut self, id: &str, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&CUSTOMER_WRITE_SPEC)?;
        expansions(form, &CUSTOMER_EXPANDABLE, false)?;
        let email = form.optional_string("email")?;
        if let Some(e) = &email {
            check_email(e)?;
        }
        let name = form.optional_string("name")?;
        let description = form.optional_string("description")?;
        let ops = form.metadata()?;
        let customer = self
            .customers
            .get_mut(id)
            .ok_or_else(|| ApiError::no_such("customer", id))?;
        let metadata = match &ops {
            Some(ops) => Some(apply_metadata(&customer.metadata, ops)?),
            None => None,
        };
        if let Some(v) = email {
            customer.email = v;
        }
        if let Some(v) = name {
            customer.name = v;
        }
        if let Some(v) = description {
            customer.description = v;
        }
        if let Some(m) = metadata {
            customer.metadata = m;
        }
        Ok(customer.to_json())
    }

    fn delete_customer(&mut self, id: &str, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&[])?;
        if self.customers.get(id).is_none() {
            return Err(ApiError::no_such("customer", id));
        }
        self.customers.mark_deleted(id);
        Ok(deleted_json(id, "customer"))
    }

    fn list_customers(&self, form: &Form) -> Result<Value, ApiError> {
        let mut spec = PAGE_SPEC.to_vec();
        spec.push(("email", Kind::Scalar));
        form.check_known(&spec)?;
        expansions(form, &CUSTOMER_EXPANDABLE, true)?;
        let page = page_params(form)?;
        let email = form.scalar("email")?;
        let (found, has_more) = self.customers.page(&page, "customer", |c| match &email {
            Some(e) => c.email.as_deref() == Some(e.as_str()),
            None => true,
        })?;
        let data = found.into_iter().map(Customer::to_json).collect();
        Ok(list_json("/v1/customers", data, has_more))
    }

    // ---- products

    fn create_product(&mut self, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&[
            ("name", Kind::Scalar),
            ("description", Kind::Scalar),
            ("active", Kind::Scalar),
            ("metadata", Kind::Metadata),
            ("expand", Kind::List),
        ])?;
        expansions(form, &PRODUCT_EXPANDABLE, false)?;
        let name = match form.scalar("name")? {
            None => return Err(ApiError::missing_param("name")),
            Some(n) if n.is_empty() => return Err(ApiError::empty_param("name")),
            Some(n) => n,
        };
        let metadata = match form.metadata()? {
            Some(ops) => apply_metadata(&BTreeMap::new(), &ops)?,
            None => BTreeMap::new(),
        };
        let now = ids::now();
        let product = Product {
            id: ids::object_id("prod"),
            created: now,
            updated: now,
            name,
            description: form.optional_string("description")?.flatten(),
            active: form.boolean("active")?.unwrap_or(true),
            metadata,
        };
        let body = product.to_json();
        self.products.insert(product.id.clone(), product);
        Ok(body)
    }

    fn retrieve_product(&self, id: &str, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&[("expand", Kind::List)])?;
        expansions(form, &PRODUCT_EXPANDABLE, false)?;
        self.products
            .get(id)
            .map(Product::to_json)
            .ok_or_else(|| ApiError::no_such("product", id))
    }

    fn update_product(&mut self, id: &str, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&[
            ("name", Kind::Scalar),
            ("description", Kind::Scalar),
            ("active", Kind::Scalar),
            ("metadata", Kind::Metadata),
            ("expand", Kind::List),
        ])?;
        expansions(form, &PRODUCT_EXPANDABLE, false)?;
        let name = form.scalar("name")?;
        if name.as_deref() == Some("") {
            return Err(ApiError::empty_param("name"));
        }
        let description = form.optional_string("description")?;
        let active = form.boolean("active")?;
        let ops = form.metadata()?;
        let product = self
            .products
            .get_mut(id)
            .ok_or_else(|| ApiError::no_such("product", id))?;
        let metadata = match &ops {
            Some(ops) => Some(apply_metadata(&product.metadata, ops)?),
            None => None,
        };
        if let Some(v) = name {
            product.name = v;
        }
        if let Some(v) = description {
            product.description = v;
        }
        if let Some(v) = active {
            product.active = v;
        }
        if let Some(m) = metadata {
            product.metadata = m;
        }
        product.updated = ids::now();
        Ok(product.to_json())
    }

    fn delete_product(&mut self, id: &str, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&[])?;
        if self.products.get(id).is_none() {
            return Err(ApiError::no_such("product", id));
        }
        if self.prices.live().any(|p| p.product == id) {
            return Err(ApiError::invalid(
                "This product cannot be deleted because it has one or more user-created prices.",
            ));
        }
        self.products.mark_deleted(id);
        Ok(deleted_json(id, "product"))
    }

    fn list_products(&self, form: &Form) -> Result<Value, ApiError> {
        let mut spec = PAGE_SPEC.to_vec();
        spec.push(("active", Kind::Scalar));
        form.check_known(&spec)?;
        expansions(form, &PRODUCT_EXPANDABLE, true)?;
        let page = page_params(form)?;
        let active = form.boolean("active")?;
        let (found, has_more) = self
            .products
            .page(&page, "product", |p| active.is_none_or(|a| p.active == a))?;
        let data = found.into_iter().map(Product::to_json).collect();
        Ok(list_json("/v1/products", data, has_more))
    }

    // ---- prices

    fn price_json(&self, price: &Price, expand: &[String]) -> Value {
        let mut body = price.to_json();
        if expand.iter().any(|e| e == "product")
            && let Some(product) = self.products.get(&price.product)
        {
            body["product"] = product.to_json();
        }
        body
    }

    fn create_price(&mut self, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&[
            ("product", Kind::Scalar),
            ("unit_amount", Kind::Scalar),
            ("currency", Kind::Scalar),
            ("recurring", Kind::Hash(&["interval", "interval_count"])),
            ("nickname", Kind::Scalar),
            ("active", Kind::Scalar),
            ("metadata", Kind::Metadata),
            ("expand", Kind::List),
        ])?;
        let expand = expansions(form, &PRICE_EXPANDABLE, false)?;
        let currency = match form.scalar("currency")? {
            None => return Err(ApiError::missing_param("currency")),
            Some(c) if c.is_empty() => return Err(ApiError::empty_param("currency")),
            Some(c) if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
                c.to_ascii_lowercase()
            }
            Some(c) => {
                return Err(ApiError::invalid(format!("Invalid currency: {c}.")).param("currency"));
            }
        };
        let product = match form.scalar("product")? {
            None => return Err(ApiError::missing_param("product")),
            Some(p) if p.is_empty() => return Err(ApiError::empty_param("product")),
            Some(p) => p,
        };
        let unit_amount = match form.integer("unit_amount")? {
            None => return Err(ApiError::missing_param("unit_amount")),
            Some(n) if n < 0 => {
                return Err(
                    ApiError::invalid("This value must be greater than or equal to 0.")
                        .param("unit_amount"),
                );
            }
            Some(n) => n,
        };
        let recurring = match form.hash("recurring")? {
            None => None,
            Some(r) => {
                let interval = match r.get("interval").map(String::as_str) {
                    None => return Err(ApiError::missing_param("recurring[interval]")),
                    Some(i) if INTERVALS.contains(&i) => i.to_string(),
                    Some(i) => {
                        return Err(ApiError::invalid(format!(
                            "Invalid recurring[interval]: must be one of day, week, month, or \
                             year (got {i})"
                        ))
                        .param("recurring[interval]"));
                    }
                };
                let max = match interval.as_str() {
                    "day" => 1095,
                    "week" => 156,
                    "month" => 36,
                    _ => 3,
                };
                let count = match r.get("interval_count") {
                    None => 1,
                    Some(c) => match c.parse::<u64>() {
                        Ok(n) if n > max => {
                            return Err(ApiError::invalid(
                                "Invalid recurring[interval_count]: the maximum interval is three \
                                 years (3 years, 36 months, 156 weeks or 1095 days).",
                            )
                            .param("recurring[interval_count]"));
                        }
                        Ok(n) if n >= 1 => n,
                        _ => {
                            return Err(ApiError::invalid(format!(
                                "Invalid recurring[interval_count]: must be a positive integer \
                                 (got {c})"
                            ))
                            .param("recurring[interval_count]"));
                        }
                    },
                };
                Some((interval, count))
            }
        };
        let metadata = match form.metadata()? {
            Some(ops) => apply_metadata(&BTreeMap::new(), &ops)?,
            None => BTreeMap::new(),
        };
        let nickname = form.optional_string("nickname")?.flatten();
        let active = form.boolean("active")?.unwrap_or(true);
        if self.products.get(&product).is_none() {
            return Err(ApiError::no_such_param("product", &product, "product"));
        }
        let price = Price {
            id: ids::object_id("price"),
            created: ids::now(),
            product,
            unit_amount,
            currency,
            recurring,
            nickname,
            active,
            metadata,
        };
        let body = self.price_json(&price, &expand);
        self.prices.insert(price.id.clone(), price);
        Ok(body)
    }

    fn retrieve_price(&self, id: &str, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&[("expand", Kind::List)])?;
        let expand = expansions(form, &PRICE_EXPANDABLE, false)?;
        let price = self
            .prices
            .get(id)
            .ok_or_else(|| ApiError::no_such("price", id))?;
        Ok(self.price_json(price, &expand))
    }

    fn update_price(&mut self, id: &str, form: &Form) -> Result<Value, ApiError> {
        form.check_known(&[
            ("active", Kind::Scalar),
            ("metadata", Kind::Metadata),
            ("nickname", Kind::Scalar),
            ("expand", Kind::List),
        ])?;
        let expand = expansions(form, &PRICE_EXPANDABLE, false)?;
        let active = form.boolean("active")?;
        let nickname = form.optional_string("nickname")?;
        let ops = form.metadata()?;
        let price = self
            .prices
            .get_mut(id)
            .ok_or_else(|| ApiError::no_such("price", id))?;
        let metadata = match &ops {
            Some(ops) => Some(apply_metadata(&price.metadata, ops)?),
            None => None,
        };
        if let Some(v) = active {
            price.active = v;
        }
        if let Some(v) = nickname {
            price.nickname = v;
        }
        if let Some(m) = metadata {
            price.metadata = m;
        }
        let price = price.clone();
        Ok(self.price_json(&price, &expand))
    }

    fn list_prices(&self, form: &Form) -> Result<Value, ApiError> {
        let mut spec = PAGE_SPEC.to_vec();
        spec.push(("active", Kind::Scalar));
        spec.push(("product", Kind::Scalar));
        form.check_known(&spec)?;
        let expand = expansions(form, &PRICE_EXPANDABLE, true)?;
        let page = page_params(form)?;
        let active = form.boolean("active")?;
        let product = form.scalar("product")?;
        let (found, has_more) = self.prices.page(&page, "price", |p| {
            active.is_none_or(|a| p.active == a)
                && product.as_ref().is_none_or(|prod| &p.product == prod)
        })?;
        let data = found
            .into_iter()
            .map(|p| self.price_json(p, &expand))
            .collect();
        Ok(list_json("/v1/prices", data, has_more))
    }

    // ---- inspection

    pub fn customer_json(&self, id: &str) -> Option<Value> {
        if self.customers.is_deleted(id) {
            return Some(deleted_json(id, "customer"));
        }
        self.customers.get(id).map(Customer::to_json)
    }

    pub fn product_json(&self, id: &str) -> Option<Value> {
        if self.products.is_deleted(id) {
            return Some(deleted_json(id, "product"));
        }
        self.products.get(id).map(Product::to_json)
    }

    pub fn price_json_plain(&self, id: &str) -> Option<Value> {
        self.prices.get(id).map(Price::to_json)
    }
}
