//! The integration tests, one module per part of the API, in one test binary: each test
//! binary links the whole workspace (about 100 MB in a debug build), so one binary rather
//! than thirteen keeps a clean build's disk use and link time down, and one DynamoDB Local
//! and one KMS serve every test. Run one part with `cargo test -p billstack-tests --test
//! api customers::`. `logs` stays a binary of its own: it installs the process's global
//! tracing subscriber to read every line the API writes.

mod auth;
mod backfill;
mod concurrency;
mod connection;
mod customers;
mod events;
mod openapi;
mod prices;
mod products;
mod sessions;
mod stripe_connections;
mod teams;
mod webhooks;
