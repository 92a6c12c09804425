//! Lever (d): the customers function as it started before the cold-start work: AWS settings
//! from the default provider chains and the SDK's default HTTPS client, which loads the
//! machine's root certificates. Otherwise functions/customers/src/main.rs.

use billstack::App;
use billstack::config::Config;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    billstack::http::init_tracing();
    let config = Config::from_env()?;
    let sdk = billstack::aws::settings(config.dynamodb_endpoint.is_some()).await;
    billstack::http::serve_lambda(App::with_sdk(&config, &sdk)?, customers::handle).await
}
