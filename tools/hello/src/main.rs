//! The benchmark's baseline: a bare `lambda_http` function that answers 200 "hello", built
//! with the workspace's release profile and the same tokio flavour as our functions, so the
//! bench's ratios measure our own start-up and request work, nothing else.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_request: Request| async {
        Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(Body::from("hello"))
            .map_err(Error::from)
    }))
    .await
}
