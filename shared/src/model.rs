//! Records as the table keeps them, and their API shape; an API key's scopes and what they
//! allow.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::ids::{
    ApiKeyId, CustomerId, CustomerKind, Id, JobId, Kind, PriceId, PriceKind, ProductId,
    ProductKind, ProjectId, TeamId,
};
use crate::input::Metadata;
use crate::routing::{Access, Resource};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub created_at: i64,
    /// Teams written before renames existed have none: their creation time stands in.
    #[serde(default)]
    pub updated_at: i64,
    /// How many members are owners; changed only in the transaction that changes a role,
    /// so that a team never loses its last owner, however requests race.
    #[serde(default)]
    pub owner_count: u32,
}

impl Team {
    /// The team as `role` (the caller's role in it, if any) sees it.
    pub fn to_json(&self, role: Option<Role>) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "role": role,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at.max(self.created_at)),
        })
    }
}

/// A member's role in a team. Both read and write every project of the team; owners also
/// manage members, API keys and the Stripe connection, and rename the team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }
}

/// A user's membership of a team. The user is the session token's `sub`; `email` and `name`
/// are what the owner gave or what the user's own token last said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub team_id: TeamId,
    pub user_id: String,
    pub role: Role,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub created_at: i64,
}

impl Membership {
    pub fn to_json(&self) -> Value {
        json!({
            "userId": self.user_id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "createdAt": rfc3339(self.created_at),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: ProjectId,
    pub team_id: TeamId,
    pub name: String,
    pub created_at: i64,
    /// Projects written before renames existed have none: their creation time stands in.
    #[serde(default)]
    pub updated_at: i64,
}

impl Project {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "teamId": self.team_id,
            "name": self.name,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at.max(self.created_at)),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub id: CustomerId,
    pub project_id: ProjectId,
    /// Trimmed and lowercased; unique per project.
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    pub stripe_customer_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Bumped on every write; updates are conditional on it.
    #[serde(default)]
    pub version: u64,
    /// When Stripe deleted the customer (the record is then kept apart, out of lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<i64>,
    /// An email the customer was given in Stripe that another customer of the project
    /// has: recorded, not applied (the emails of a project stay unique).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_conflict: Option<String>,
    /// The Stripe-side time of the state this record reflects: our own write's time, or
    /// the `created` time of the last Stripe event applied. An older event never
    /// overwrites it.
    #[serde(default)]
    pub stripe_synced_at: i64,
}

impl Customer {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "stripeCustomerId": self.stripe_customer_id,
            "metadata": self.metadata,
            "projectId": self.project_id,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: ProductId,
    pub project_id: ProjectId,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub is_active: bool,
    #[serde(default)]
    pub metadata: Metadata,
    pub stripe_product_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub version: u64,
    /// The Stripe-side time of the state this record reflects: our own write's time, or
    /// the `created` time of the last Stripe event applied. An older event never
    /// overwrites it.
    #[serde(default)]
    pub stripe_synced_at: i64,
    /// Set when a delete starts: from then on no price may be added to it.
    #[serde(default)]
    pub deleting: bool,
}

impl Product {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "isActive": self.is_active,
            "stripeProductId": self.stripe_product_id,
            "metadata": self.metadata,
            "projectId": self.project_id,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceType {
    Recurring,
    OneTime,
}

/// A price's currency: three lowercase letters, one of the currencies Stripe knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    /// `text` (any case, spaces around it taken off) as a currency Stripe knows.
    pub fn parse(text: &str) -> Option<Self> {
        use std::str::FromStr as _;
        let code = text.trim().to_ascii_lowercase();
        let known = code.len() == 3
            && code.bytes().all(|b| b.is_ascii_lowercase())
            && !matches!(
                stripe_types::Currency::from_str(&code),
                Ok(stripe_types::Currency::Unknown(_))
            );
        known.then_some(Currency(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Currency {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

impl Interval {
    pub const ALL: [Interval; 4] = [
        Interval::Day,
        Interval::Week,
        Interval::Month,
        Interval::Year,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    /// Stripe's bound: at most three years between billings.
    pub fn max_count(self) -> u32 {
        match self {
            Interval::Day => 1095,
            Interval::Week => 156,
            Interval::Month => 36,
            Interval::Year => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    pub id: PriceId,
    pub project_id: ProjectId,
    pub product_id: ProductId,
    /// In the currency's minor unit.
    pub unit_amount: i64,
    /// Three letters, lowercase.
    pub currency: Currency,
    #[serde(rename = "type")]
    pub price_type: PriceType,
    #[serde(default)]
    pub interval: Option<Interval>,
    #[serde(default)]
    pub interval_count: Option<u32>,
    pub is_active: bool,
    #[serde(default)]
    pub metadata: Metadata,
    pub stripe_price_id: String,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub version: u64,
    /// The Stripe-side time of the state this record reflects: our own write's time, or
    /// the `created` time of the last Stripe event applied. An older event never
    /// overwrites it.
    #[serde(default)]
    pub stripe_synced_at: i64,
}

impl Price {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "productId": self.product_id,
            "unitAmount": self.unit_amount,
            "currency": self.currency,
            "type": self.price_type,
            "interval": self.interval,
            "intervalCount": self.interval_count,
            "isActive": self.is_active,
            "stripePriceId": self.stripe_price_id,
            "metadata": self.metadata,
            "projectId": self.project_id,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
        })
    }
}

/// A team's Stripe connection, as stored: the account it reaches and its keys, the secret
/// ones only as KMS ciphertexts bound to the team (base64).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StripeConnection {
    pub team_id: TeamId,
    /// `acct_…`; `None` for a restricted key that may not read the account.
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub livemode: bool,
    /// The secret (`sk_`) or restricted (`rk_`) key, encrypted.
    pub secret_key_ciphertext: String,
    /// The webhook signing secret (`whsec_`), encrypted, once set.
    pub webhook_secret_ciphertext: Option<String>,
    /// Publishable keys are meant for browsers: kept as they are.
    pub publishable_key: Option<String>,
    pub sync_status: SyncStatus,
    pub connected_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for StripeConnection {
    // Ciphertexts are not secrets, but they have no place in a log either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeConnection")
            .field("team_id", &self.team_id)
            .field("account_id", &self.account_id)
            .field("livemode", &self.livemode)
            .field("sync_status", &self.sync_status)
            .finish_non_exhaustive()
    }
}

/// Where syncing a connected account from Stripe stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    /// Connected; nothing synced from Stripe yet.
    Pending,
    /// A backfill is running.
    Syncing,
    /// The last backfill finished.
    Ready,
    /// The last backfill gave up (see its job record).
    Failed,
}

/// The kinds of Stripe object a backfill pages through, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncObject {
    Customers,
    Products,
    Prices,
}

impl SyncObject {
    pub const ALL: [SyncObject; 3] = [
        SyncObject::Customers,
        SyncObject::Products,
        SyncObject::Prices,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncObject::Customers => "customers",
            SyncObject::Products => "products",
            SyncObject::Prices => "prices",
        }
    }
}

/// What a backfill did to one kind of object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncCounts {
    /// Objects read from Stripe.
    pub scanned: u64,
    /// Orphans adopted: in Stripe with our metadata, no record.
    pub created: u64,
    /// Records changed to match Stripe.
    pub updated: u64,
    pub unchanged: u64,
    /// Not ours: no project of this team, or no record we could adopt.
    pub ignored: u64,
    /// Our records whose Stripe object is gone: customers marked deleted, products and
    /// prices removed.
    #[serde(default)]
    pub deleted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

/// A team's backfill from Stripe: where it is, and what it did so far. One per team; a new
/// one replaces a finished one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillJob {
    pub team_id: TeamId,
    pub job_id: JobId,
    pub objects: Vec<SyncObject>,
    /// Only objects Stripe created after this time (Unix seconds).
    pub created_after: Option<i64>,
    /// Where the job is: below `objects.len()`, reading that kind from Stripe; from there on,
    /// checking our own records of kind `objects[phase - objects.len()]` against Stripe.
    pub phase: usize,
    /// The last object read (Stripe's `starting_after`, or our record's ID).
    pub cursor: Option<String>,
    /// The team's projects, listed when the job first checks our own records.
    #[serde(default)]
    pub projects: Option<Vec<ProjectId>>,
    /// The project whose records are being checked.
    #[serde(default)]
    pub project_index: usize,
    pub counts: std::collections::BTreeMap<SyncObject, SyncCounts>,
    pub job_state: JobState,
    /// Steps run so far; each save is conditional on it, so two runners never both advance.
    pub steps: u64,
    pub started_at: i64,
    pub updated_at: i64,
}

impl BackfillJob {
    pub fn to_json(&self) -> Value {
        json!({
            "jobId": self.job_id,
            "objects": self.objects,
            "state": self.job_state,
            "steps": self.steps,
            "counts": self.counts,
            "startedAt": rfc3339(self.started_at),
            "updatedAt": rfc3339(self.updated_at),
        })
    }
}

/// What every record mirroring a Stripe object has: its IDs, version, metadata and the
/// stamps of a write.
pub trait Mirrored {
    /// The kind of the record's own ID.
    type Kind: Kind;
    fn id(&self) -> &Id<Self::Kind>;
    fn project_id(&self) -> &ProjectId;
    fn version(&self) -> u64;
    fn metadata(&self) -> &Metadata;
    /// The Stripe object's ID.
    fn stripe_id(&self) -> &str;
    /// The Stripe-side time of the state the record reflects.
    fn stripe_synced_at(&self) -> i64;
    /// Stamps this as the version after `before`, written (and in Stripe) at `now`.
    fn stamp(&mut self, now: i64, before: &Self);
}

macro_rules! mirrored {
    ($record:ty, $kind:ty, $stripe_id:ident) => {
        impl Mirrored for $record {
            type Kind = $kind;
            fn id(&self) -> &Id<$kind> {
                &self.id
            }
            fn project_id(&self) -> &ProjectId {
                &self.project_id
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn metadata(&self) -> &Metadata {
                &self.metadata
            }
            fn stripe_id(&self) -> &str {
                &self.$stripe_id
            }
            fn stripe_synced_at(&self) -> i64 {
                self.stripe_synced_at
            }
            fn stamp(&mut self, now: i64, before: &Self) {
                self.updated_at = now.max(before.updated_at);
                self.stripe_synced_at = now.max(before.stripe_synced_at);
                self.version = before.version + 1;
            }
        }
    };
}

mirrored!(Customer, CustomerKind, stripe_customer_id);
mirrored!(Product, ProductKind, stripe_product_id);
mirrored!(Price, PriceKind, stripe_price_id);

/// A key's scope. Prices fall under the products scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "customers:read")]
    CustomersRead,
    #[serde(rename = "customers:write")]
    CustomersWrite,
    #[serde(rename = "products:read")]
    ProductsRead,
    #[serde(rename = "products:write")]
    ProductsWrite,
    #[serde(rename = "subscriptions:read")]
    SubscriptionsRead,
    #[serde(rename = "subscriptions:write")]
    SubscriptionsWrite,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::CustomersRead,
        Scope::CustomersWrite,
        Scope::ProductsRead,
        Scope::ProductsWrite,
        Scope::SubscriptionsRead,
        Scope::SubscriptionsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::CustomersRead => "customers:read",
            Scope::CustomersWrite => "customers:write",
            Scope::ProductsRead => "products:read",
            Scope::ProductsWrite => "products:write",
            Scope::SubscriptionsRead => "subscriptions:read",
            Scope::SubscriptionsWrite => "subscriptions:write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// The scope a request needs: the resource's `:write` scope for writes, its `:read`
    /// scope for reads.
    pub fn required(resource: Resource, access: Access) -> Scope {
        match (resource, access) {
            (Resource::Customers, Access::Read) => Scope::CustomersRead,
            (Resource::Customers, Access::Write) => Scope::CustomersWrite,
            (Resource::Products | Resource::Prices, Access::Read) => Scope::ProductsRead,
            (Resource::Products | Resource::Prices, Access::Write) => Scope::ProductsWrite,
        }
    }

    /// The write scope of the same family, which implies this one when this is a read scope.
    fn implied_by(self) -> Option<Scope> {
        match self {
            Scope::CustomersRead => Some(Scope::CustomersWrite),
            Scope::ProductsRead => Some(Scope::ProductsWrite),
            Scope::SubscriptionsRead => Some(Scope::SubscriptionsWrite),
            _ => None,
        }
    }
}

/// Whether a key with `scopes` may do `access` on `resource`. No scopes means full access;
/// a `:write` scope implies the `:read` scope of its resource.
pub fn scopes_allow(scopes: &[Scope], resource: Resource, access: Access) -> bool {
    if scopes.is_empty() {
        return true;
    }
    let needed = Scope::required(resource, access);
    scopes
        .iter()
        .any(|s| *s == needed || Some(*s) == needed.implied_by())
}

/// An API key record as the table keeps it (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub team_id: TeamId,
    pub name: String,
    pub prefix: String,
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    #[serde(default)]
    pub scopes: Vec<Scope>,
    /// Epoch seconds.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Epoch seconds.
    #[serde(default)]
    pub revoked_at: Option<i64>,
    pub created_at: i64,
    /// Epoch seconds; kept to within [`LAST_USED_INTERVAL_SECS`].
    #[serde(default)]
    pub last_used_at: Option<i64>,
}

impl ApiKeyRecord {
    /// The key as the API shows it (never the hash, never the secret).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "projectId": self.project_id,
            "scopes": self.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "expiresAt": self.expires_at.map(rfc3339),
            "createdAt": rfc3339(self.created_at),
            "lastUsedAt": self.last_used_at.map(rfc3339),
            "revokedAt": self.revoked_at.map(rfc3339),
        })
    }
}

/// How often, at most, a key's `lastUsedAt` is written: a key in use gets one write per
/// this interval, not one per request.
pub const LAST_USED_INTERVAL_SECS: i64 = 60;
