//! Lever (c): the customers function's `main` (functions/customers/src/main.rs) on tokio's
//! `multi_thread` runtime. Its twin in this folder differs only in the flavour.

use billstack::config::Config;
use billstack::http::{init_tracing, serve};
use billstack::{App, lambda_http};
use lambda_http::{Error, Request, service_fn};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    init_tracing();
    let config = Config::from_env()?;
    let app = App::from_config(&config).await?;
    let app = &app;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(serve(app, request, |req| customers::handle(app, req)).await)
    }))
    .await
}
