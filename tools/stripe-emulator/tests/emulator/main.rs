//! Integration tests: the emulator runs in-process on a free port and is driven
//! with async-stripe itself (so every response shape is proven parseable) and,
//! where the client cannot express a request, with raw HTTP.

mod accounts;
mod auth;
mod bin;
mod common;
mod control;
mod customers;
mod faults;
mod idempotency;
mod prices;
mod products;
