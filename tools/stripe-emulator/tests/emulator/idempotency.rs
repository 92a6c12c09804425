use stripe::{ApiErrorsType, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_core::customer::{CreateCustomer, UpdateCustomer};
use stripe_product::price::CreatePrice;
use stripe_product::product::CreateProduct;
use stripe_types::Currency;

use crate::common::{TestResult, api_error, metadata, post_idempotent, setup};

fn key(k: &str) -> Result<RequestStrategy, stripe::IdempotentKeyError> {
    Ok(RequestStrategy::Idempotent(IdempotencyKey::new(k)?))
}

#[tokio::test]
async fn same_key_same_request_replays_the_first_response() -> TestResult {
    let (emu, client) = setup().await?;
    let create = || {
        CreateCustomer::new()
            .email("ada@example.com")
            .metadata(metadata(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]))
    };
    let first = create()
        .customize()
        .request_strategy(key("create-ada")?)
        .send(&client)
        .await?;
    // A fresh HashMap may serialize the metadata in another order: still the same parameters.
    let second = create()
        .customize()
        .request_strategy(key("create-ada")?)
        .send(&client)
        .await?;
    assert_eq!(first.id, second.id);
    assert_eq!(first.created, second.created);
    assert_eq!(emu.customers().len(), 1);
    assert_eq!(emu.request_count("POST /v1/customers"), 2);

    // On the wire: same status and body, flagged as replayed; parameter order does not matter.
    let a = post_idempotent(
        &emu,
        "/v1/customers",
        "name=Bob&metadata[x]=1&metadata[y]=2",
        "raw-1",
    )
    .await?;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("idempotent-replayed"), None);
    assert_eq!(a.header("idempotency-key"), Some("raw-1"));
    let b = post_idempotent(
        &emu,
        "/v1/customers",
        "metadata[y]=2&metadata[x]=1&name=Bob",
        "raw-1",
    )
    .await?;
    assert_eq!(b.status, 200);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(a.text, b.text);
    assert_eq!(emu.customers().len(), 2);
    let keys: Vec<_> = emu
        .requests()
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(
        keys[2..],
        [Some("raw-1".to_string()), Some("raw-1".to_string())]
    );

    // Replays return the stored response, not the current state.
    let id = a.body["id"].as_str().ok_or("no id")?.to_string();
    UpdateCustomer::new(id.as_str())
        .name("Robert")
        .send(&client)
        .await?;
    let c = post_idempotent(
        &emu,
        "/v1/customers",
        "name=Bob&metadata[x]=1&metadata[y]=2",
        "raw-1",
    )
    .await?;
    assert_eq!(c.body["name"], "Bob");
    assert_eq!(emu.customer(&id).ok_or("missing")?["name"], "Robert");
    Ok(())
}

#[tokio::test]
async fn same_key_with_other_parameters_or_endpoint_is_refused() -> TestResult {
    let (emu, client) = setup().await?;
    CreateCustomer::new()
        .email("a@example.com")
        .customize()
        .request_strategy(key("k2")?)
        .send(&client)
        .await?;

    let (status, err) = api_error(
        CreateCustomer::new()
            .email("b@example.com")
            .customize()
            .request_strategy(key("k2")?)
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.type_, ApiErrorsType::IdempotencyError);
    let message = err.message.unwrap_or_default();
    assert!(
        message.starts_with("Keys for idempotent requests can only be used with the same parameters they were first used with"),
        "{message}"
    );

    let (status, err) = api_error(
        CreateProduct::new("p")
            .customize()
            .request_strategy(key("k2")?)
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.type_, ApiErrorsType::IdempotencyError);
    assert!(err.message.unwrap_or_default().contains("same endpoint"));

    assert_eq!(emu.customers().len(), 1);
    assert!(emu.products().is_empty());
    // GET requests ignore keys entirely.
    let r = crate::common::raw(
        emu.addr(),
        "GET",
        "/v1/customers",
        &[
            (
                "Authorization",
                &format!("Bearer {}", crate::common::TEST_KEY),
            ),
            ("Idempotency-Key", "k2"),
        ],
        "",
    )
    .await?;
    assert_eq!(r.status, 200);
    Ok(())
}

#[tokio::test]
async fn failed_requests_are_not_stored() -> TestResult {
    let (emu, client) = setup().await?;
    let product_id = "prod_later";
    // Refused because the product does not exist yet: nothing stored for the key...
    let body = format!("product={product_id}&unit_amount=100&currency=usd");
    let r = post_idempotent(&emu, "/v1/prices", &body, "price-1").await?;
    assert_eq!(r.status, 400);
    // ...so the same key may be used for another request afterwards.
    let product = CreateProduct::new("p").send(&client).await?;
    let price = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(100)
        .customize()
        .request_strategy(key("price-1")?)
        .send(&client)
        .await?;
    assert_eq!(emu.prices().len(), 1);
    assert_eq!(emu.prices()[0]["id"], price.id.as_str());

    // Stripe caps keys at 255 characters.
    let long = "k".repeat(256);
    let r = post_idempotent(&emu, "/v1/products", "name=x", &long).await?;
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("255"), "{}", r.text);
    assert_eq!(emu.products().len(), 1);
    Ok(())
}
