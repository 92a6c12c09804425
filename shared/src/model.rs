//! Records as the table keeps them, and their API shape.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::rfc3339;
use crate::input::Metadata;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: String,
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
    pub team_id: String,
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
    pub id: String,
    pub team_id: String,
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
    pub id: String,
    pub project_id: String,
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
    pub id: String,
    pub project_id: String,
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
    pub id: String,
    pub project_id: String,
    pub product_id: String,
    /// In the currency's minor unit.
    pub unit_amount: i64,
    /// Three letters, lowercase.
    pub currency: String,
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
    pub team_id: String,
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
    pub team_id: String,
    pub job_id: String,
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
    pub projects: Option<Vec<String>>,
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
