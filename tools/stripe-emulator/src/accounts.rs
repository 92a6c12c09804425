//! Stripe accounts: each secret key belongs to one account, and each account has its own
//! customers, products, prices and idempotency keys, as in Stripe. The emulator starts
//! with one default account whose key is [`DEFAULT_SECRET_KEY`]; more are opened with
//! [`crate::StripeEmulator::open_account`] or `POST /_emulator/accounts`.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::ids;
use crate::store::Store;

/// The default account's secret key: valid from the start, in every emulator.
pub const DEFAULT_SECRET_KEY: &str = "sk_test_billstack_local";
/// The default account's publishable key.
pub const DEFAULT_PUBLISHABLE_KEY: &str = "pk_test_billstack_local";
/// The default account's ID.
pub const DEFAULT_ACCOUNT_ID: &str = "acct_emulatordefault";

/// The keys of an account, as `POST /_emulator/accounts` answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountKeys {
    pub id: String,
    pub name: String,
    pub secret_key: String,
    pub publishable_key: String,
    /// A restricted key of the account: it may use every object endpoint but, like a
    /// restricted key without the "Account" permission, not `GET /v1/account`.
    pub restricted_key: String,
}

impl AccountKeys {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "secretKey": self.secret_key,
            "publishableKey": self.publishable_key,
            "restrictedKey": self.restricted_key,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Account {
    pub keys: AccountKeys,
    pub created: i64,
    pub store: Store,
    pub endpoints: Vec<crate::events::Endpoint>,
    /// Every event of the account, oldest first.
    pub events: Vec<Value>,
}

impl Account {
    fn new(keys: AccountKeys) -> Self {
        Self {
            keys,
            created: ids::now(),
            store: Store::default(),
            endpoints: Vec::new(),
            events: Vec::new(),
        }
    }

    /// `GET /v1/account`, with the fields Stripe returns that matter here.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.keys.id,
            "object": "account",
            "business_profile": {"name": self.keys.name},
            "settings": {"dashboard": {"display_name": self.keys.name}},
            "charges_enabled": true,
            "payouts_enabled": true,
            "country": "US",
            "default_currency": "usd",
            "email": null,
            "type": "standard",
            "created": self.created,
        })
    }
}

/// Which kind of key authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Secret,
    Restricted,
}

#[derive(Debug)]
pub(crate) struct Accounts {
    list: Vec<Account>,
}

impl Default for Accounts {
    fn default() -> Self {
        Self {
            list: vec![Account::new(AccountKeys {
                id: DEFAULT_ACCOUNT_ID.to_owned(),
                name: "Emulator default account".to_owned(),
                secret_key: DEFAULT_SECRET_KEY.to_owned(),
                publishable_key: DEFAULT_PUBLISHABLE_KEY.to_owned(),
                restricted_key: "rk_test_billstack_local".to_owned(),
            })],
        }
    }
}

impl Accounts {
    /// Opens a new account named `name` (a generated name when `None`).
    pub fn open(&mut self, name: Option<&str>) -> AccountKeys {
        let id = ids::object_id("acct");
        let token = ids::object_id("x");
        let token = token.trim_start_matches("x_");
        let keys = AccountKeys {
            name: name.map_or_else(|| format!("Emulator account {}", &id[5..]), str::to_owned),
            secret_key: format!("sk_test_{token}{}", &id[5..]),
            publishable_key: format!("pk_test_{token}{}", &id[5..]),
            restricted_key: format!("rk_test_{token}{}", &id[5..]),
            id,
        };
        self.list.push(Account::new(keys.clone()));
        keys
    }

    /// The account `id`.
    pub fn get(&self, id: &str) -> Option<&Account> {
        self.list.iter().find(|a| a.keys.id == id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.list.iter_mut().find(|a| a.keys.id == id)
    }

    /// The account and kind of `key`; `None` for a key no account has.
    pub fn by_key(&mut self, key: &str) -> Option<(&mut Account, KeyKind)> {
        self.list.iter_mut().find_map(|a| {
            if a.keys.secret_key == key {
                Some((a, KeyKind::Secret))
            } else if a.keys.restricted_key == key {
                Some((a, KeyKind::Restricted))
            } else {
                None
            }
        })
    }
}

/// Hides all but a recognisable prefix and the last four characters of a key.
pub(crate) fn mask_key(key: &str) -> String {
    const PREFIXES: [&str; 6] = [
        "sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "pk_live_",
    ];
    let prefix = PREFIXES
        .iter()
        .find(|p| key.starts_with(*p))
        .copied()
        .unwrap_or("");
    let rest: Vec<char> = key[prefix.len()..].chars().collect();
    let shown = if rest.len() >= 12 { 4 } else { 0 };
    let stars = "*".repeat(rest.len() - shown);
    let tail: String = rest[rest.len() - shown..].iter().collect();
    format!("{prefix}{stars}{tail}")
}

/// The bearer key of an `Authorization` header, or Stripe's 401.
pub(crate) fn bearer_key(authorization: Option<&str>) -> Result<&str, ApiError> {
    let key = authorization.map(str::trim).and_then(|h| {
        let (scheme, key) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
    });
    match key {
        Some(k) if !k.is_empty() => Ok(k),
        _ => Err(ApiError::new(
            401,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the \
             Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
             YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or \
             we can help at https://support.stripe.com/.",
        )),
    }
}

/// Stripe's 401 for a key no account has.
pub(crate) fn invalid_key(key: &str) -> ApiError {
    ApiError::new(
        401,
        "invalid_request_error",
        format!("Invalid API Key provided: {}", mask_key(key)),
    )
}

/// Stripe's 403 for a restricted key without the permission an endpoint needs.
pub(crate) fn permission_denied(key: &str) -> ApiError {
    ApiError::new(
        403,
        "invalid_request_error",
        format!(
            "The provided key '{}' does not have the required permissions for this endpoint on account. Having more permissions would allow this request to continue.",
            mask_key(key)
        ),
    )
}
