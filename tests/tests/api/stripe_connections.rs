//! The Stripe transport keeps connections alive across calls, as a warm Lambda keeps them
//! across invocations, and replaces one the far end closed.

use billstack_tests::TestEnv;
use http::{Method, StatusCode};
use serde_json::json;

async fn create_product(env: &TestEnv, name: &str) -> String {
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("products"),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["product"]["stripeProductId"]
        .as_str()
        .expect("stripe id")
        .to_owned()
}

#[tokio::test]
async fn stripe_calls_share_one_kept_alive_connection() {
    let env = TestEnv::new().await;
    let first = create_product(&env, "One").await;
    let second = create_product(&env, "Two").await;
    let (status, body) = env
        .call(
            Method::PATCH,
            &format!("{}/{}", env.path("products"), {
                let (_, list) = env.call(Method::GET, &env.path("products"), None).await;
                list["products"][0]["id"].as_str().unwrap().to_owned()
            }),
            Some(json!({"name": "Two, renamed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(env.stripe.request_count("POST /v1/products"), 2);
    assert_eq!(env.stripe.request_count("POST /v1/products/:id"), 1);
    assert_eq!(
        env.stripe.connection_count(),
        1,
        "three Stripe calls, one connection"
    );
    assert!(env.stripe.product(&first).is_some());
    assert_eq!(env.stripe.product(&second).unwrap()["name"], "Two, renamed");
}

#[tokio::test]
async fn a_connection_the_far_end_closed_is_replaced() {
    let env = TestEnv::new().await;
    create_product(&env, "Before").await;
    assert_eq!(env.stripe.connection_count(), 1);

    env.stripe.close_idle_connections();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let after = create_product(&env, "After").await;
    assert_eq!(env.stripe.product(&after).unwrap()["name"], "After");
    assert_eq!(
        env.stripe.products().len(),
        2,
        "each product once in Stripe"
    );
    assert_eq!(env.stripe.connection_count(), 2);
}
