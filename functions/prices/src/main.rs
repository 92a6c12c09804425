//! The prices Lambda: clients built once, every invocation served by [`prices::handle`].

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    billstack::http::run_lambda(prices::handle).await
}
