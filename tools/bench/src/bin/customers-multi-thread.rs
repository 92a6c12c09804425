//! Lever (c): the customers function's `main` (functions/customers/src/main.rs) on tokio's
//! `multi_thread` runtime. Its twin in this folder differs only in the flavour.

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    billstack::http::run_lambda(customers::handle).await
}
