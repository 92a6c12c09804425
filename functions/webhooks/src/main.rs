//! The webhooks Lambda: clients built once, every delivery served by [`webhooks::handle`].

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    billstack::http::run_webhook_lambda(webhooks::handle).await
}
