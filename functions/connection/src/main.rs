//! The Stripe connection Lambda: clients built once, every invocation served by
//! [`connection::handle`].

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    billstack::http::run_team_lambda(connection::handle).await
}
