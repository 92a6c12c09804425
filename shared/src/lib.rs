//! BillStack's common crate: configuration, auth, errors and HTTP plumbing, routing, the
//! DynamoDB single-table store, the Stripe gateway, and domain types with their validation.

pub mod admin;
pub mod app;
pub mod auth;
pub mod aws;
pub mod cache;
pub mod clock;
pub mod config;
pub mod deadline;
pub mod error;
pub mod http;
pub mod ids;
pub mod input;
pub mod jobs;
pub mod model;
pub mod outbound;
pub mod routing;
pub mod secrets;
pub mod session;
pub mod store;
pub mod stripe;
pub mod synced;

pub use app::App;
pub use error::ApiError;
pub use lambda_http;
