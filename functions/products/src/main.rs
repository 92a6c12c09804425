//! The products Lambda: clients built once, every invocation served by [`products::handle`].

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    billstack::http::run_lambda(products::handle).await
}
