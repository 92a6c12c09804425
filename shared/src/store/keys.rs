//! Every key format of the single table, in one place.
//!
//! | item            | pk                  | sk                  | gsi1pk                     | gsi1sk          |
//! |-----------------|---------------------|---------------------|----------------------------|-----------------|
//! | team            | `TEAM#{team}`       | `TEAM`              |                            |                 |
//! | project         | `PROJECT#{proj}`    | `PROJECT`           | `TEAM#{team}`              | `PROJECT#{proj}`|
//! | API key         | `APIKEY#{sha256}`   | `APIKEY`            | `TEAM#{team}`              | `APIKEY#{id}`   |
//! | customer        | `PROJECT#{proj}`    | `CUSTOMER#{id}`     |                            |                 |
//! | customer email  | `PROJECT#{proj}`    | `EMAIL#{email}`     |                            |                 |
//! | product         | `PROJECT#{proj}`    | `PRODUCT#{id}`      |                            |                 |
//! | price           | `PROJECT#{proj}`    | `PRICE#{id}`        | `PROJECT#{proj}#PRODUCT#{pp}` | `PRICE#{id}` |
//!
//! A project's objects all live in its partition, so a request can only ever read or
//! write inside the project its key was authorized for.

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const ENTITY: &str = "entity";

pub const CUSTOMER: &str = "CUSTOMER#";
pub const PRODUCT: &str = "PRODUCT#";
pub const PRICE: &str = "PRICE#";

pub fn team(team_id: &str) -> (String, String) {
    (format!("TEAM#{team_id}"), "TEAM".to_owned())
}

pub fn project(project_id: &str) -> (String, String) {
    (project_partition(project_id), "PROJECT".to_owned())
}

pub fn project_partition(project_id: &str) -> String {
    format!("PROJECT#{project_id}")
}

pub fn team_index(team_id: &str) -> String {
    format!("TEAM#{team_id}")
}

pub fn api_key(hash: &str) -> (String, String) {
    (format!("APIKEY#{hash}"), "APIKEY".to_owned())
}

/// An object of a project: `prefix` is one of [`CUSTOMER`], [`PRODUCT`], [`PRICE`].
pub fn object(project_id: &str, prefix: &str, id: &str) -> (String, String) {
    (project_partition(project_id), format!("{prefix}{id}"))
}

pub fn customer_email(project_id: &str, email: &str) -> (String, String) {
    (project_partition(project_id), format!("EMAIL#{email}"))
}

pub fn prices_of_product(project_id: &str, product_id: &str) -> String {
    format!("PROJECT#{project_id}#PRODUCT#{product_id}")
}
