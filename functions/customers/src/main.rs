//! The customers Lambda: clients built once, every invocation served by [`customers::handle`].

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    billstack::http::run_lambda(customers::handle).await
}
