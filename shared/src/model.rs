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
}

impl Team {
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "createdAt": rfc3339(self.created_at)})
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: String,
    pub team_id: String,
    pub name: String,
    pub created_at: i64,
}

impl Project {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "teamId": self.team_id,
            "name": self.name,
            "createdAt": rfc3339(self.created_at),
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
