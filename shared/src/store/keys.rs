//! Every key format of the single table, in one place.
//!
//! | item            | pk                  | sk                  | gsi1pk                     | gsi1sk          |
//! |-----------------|---------------------|---------------------|----------------------------|-----------------|
//! | team            | `TEAM#{team}`       | `TEAM`              |                            |                 |
//! | membership      | `TEAM#{team}`       | `MEMBER#{user}`     | `USER#{user}`              | `TEAM#{team}`   |
//! | project         | `PROJECT#{proj}`    | `PROJECT`           | `TEAM#{team}`              | `PROJECT#{proj}`|
//! | API key         | `APIKEY#{sha256}`   | `APIKEY`            | `TEAM#{team}`              | `APIKEY#{id}`   |
//! | API key by ID   | `TEAM#{team}`       | `APIKEY#{id}`       |                            |                 |
//! | Stripe connection | `TEAM#{team}`     | `STRIPE`            |                            |                 |
//! | Stripe customer claim | `TEAM#{team}` | `STRIPECUS#{cus}`   |                            |                 |
//! | Stripe event seen | `TEAM#{team}`     | `EVENT#{evt}`       |                            |                 |
//! | backfill job    | `TEAM#{team}`       | `BACKFILL`          |                            |                 |
//! | deleted customer | `PROJECT#{proj}`   | `DELETEDCUSTOMER#{id}` |                         |                 |
//! | customer        | `PROJECT#{proj}`    | `CUSTOMER#{id}`     |                            |                 |
//! | customer email  | `PROJECT#{proj}`    | `EMAIL#{email}`     |                            |                 |
//! | product         | `PROJECT#{proj}`    | `PRODUCT#{id}`      |                            |                 |
//! | price           | `PROJECT#{proj}`    | `PRICE#{id}`        | `PROJECT#{proj}#PRODUCT#{pp}` | `PRICE#{id}` |
//! | client `Idempotency-Key` | its scope's partition | `IDEMPOTENCY#{key}` |            |                 |
//!
//! A team's members and its API keys' IDs live in the team's partition, so the membership
//! check of a session and the lookup of a key by its ID are strongly consistent reads;
//! the team's projects and keys are listed through `gsi1` (eventually consistent).
//!
//! A project's objects all live in its partition, so a request can only ever read or
//! write inside the project its key was authorized for.

use crate::ids::{ApiKeyId, ProductId, ProjectId, TeamId};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const ENTITY: &str = "entity";

pub const CUSTOMER: &str = "CUSTOMER#";
/// A customer deleted in Stripe: kept, out of lists and reads.
pub const DELETED_CUSTOMER: &str = "DELETEDCUSTOMER#";
pub const PRODUCT: &str = "PRODUCT#";
pub const PRICE: &str = "PRICE#";
pub const MEMBER: &str = "MEMBER#";
pub const PROJECT_INDEX: &str = "PROJECT#";
pub const APIKEY_INDEX: &str = "APIKEY#";
pub const TEAM_INDEX: &str = "TEAM#";

pub fn team(team_id: &TeamId) -> (String, String) {
    (format!("TEAM#{team_id}"), "TEAM".to_owned())
}

pub fn project(project_id: &ProjectId) -> (String, String) {
    (project_partition(project_id), "PROJECT".to_owned())
}

pub fn project_partition(project_id: &ProjectId) -> String {
    format!("PROJECT#{project_id}")
}

pub fn team_index(team_id: &TeamId) -> String {
    format!("TEAM#{team_id}")
}

pub fn member(team_id: &TeamId, user_id: &str) -> (String, String) {
    (team_index(team_id), format!("{MEMBER}{user_id}"))
}

/// `gsi1pk` of a user's memberships.
pub fn user_index(user_id: &str) -> String {
    format!("USER#{user_id}")
}

/// `gsi1sk` of an item listed under its team (`prefix`: [`PROJECT_INDEX`], [`APIKEY_INDEX`],
/// or [`TEAM_INDEX`] for a membership under its user).
pub fn index_sort(prefix: &str, id: &str) -> String {
    format!("{prefix}{id}")
}

/// Where the hash of a key's secret is found from the key's ID.
pub fn api_key_by_id(team_id: &TeamId, key_id: &ApiKeyId) -> (String, String) {
    (team_index(team_id), format!("{APIKEY_INDEX}{key_id}"))
}

/// A team's Stripe connection.
pub fn stripe_connection(team_id: &TeamId) -> (String, String) {
    (team_index(team_id), "STRIPE".to_owned())
}

/// A Stripe event the team's webhook received.
pub fn stripe_event(team_id: &TeamId, event_id: &str) -> (String, String) {
    (team_index(team_id), format!("EVENT#{event_id}"))
}

/// A team's backfill job.
pub fn backfill_job(team_id: &TeamId) -> (String, String) {
    (team_index(team_id), "BACKFILL".to_owned())
}

/// Which project linked a Stripe customer of the team's account.
pub fn stripe_customer_claim(team_id: &TeamId, stripe_customer_id: &str) -> (String, String) {
    (
        team_index(team_id),
        format!("STRIPECUS#{stripe_customer_id}"),
    )
}

pub fn api_key(hash: &str) -> (String, String) {
    (format!("APIKEY#{hash}"), "APIKEY".to_owned())
}

/// An object of a project: `prefix` is one of [`CUSTOMER`], [`PRODUCT`], [`PRICE`].
pub fn object(project_id: &ProjectId, prefix: &str, id: &str) -> (String, String) {
    (project_partition(project_id), format!("{prefix}{id}"))
}

pub fn customer_email(project_id: &ProjectId, email: &str) -> (String, String) {
    (project_partition(project_id), format!("EMAIL#{email}"))
}

/// A client's `Idempotency-Key` in the partition of its scope (a project, team or user).
pub fn idempotency(partition: String, idempotency_key: &str) -> (String, String) {
    (partition, format!("IDEMPOTENCY#{idempotency_key}"))
}

/// Where an item that claims something stands (`state`): an email's reservation, a
/// client key's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// Claimed by an attempt still under way (or dead: stale after a while).
    Pending,
    /// An email reservation whose customer exists.
    Active,
    /// A client key whose answer is kept.
    Done,
    /// A client key whose attempt failed: its next retry takes it over.
    Released,
}

impl ItemState {
    pub const fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Active => "active",
            ItemState::Done => "done",
            ItemState::Released => "released",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ItemState::Pending,
            ItemState::Active,
            ItemState::Done,
            ItemState::Released,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

pub fn prices_of_product(project_id: &ProjectId, product_id: &ProductId) -> String {
    format!("PROJECT#{project_id}#PRODUCT#{product_id}")
}
