use std::time::Duration;

use stripe::{
    ApiErrorsCode, ApiErrorsType, IdempotencyKey, RequestStrategy, StripeError, StripeRequest,
};
use stripe_core::customer::{CreateCustomer, ListCustomer, RetrieveCustomer, UpdateCustomer};
use stripe_emulator::{Fault, FaultTiming};
use stripe_product::product::{CreateProduct, ListProduct};

use crate::common::{TestResult, api_error, setup};

fn key(k: &str) -> Result<RequestStrategy, stripe::IdempotentKeyError> {
    Ok(RequestStrategy::Idempotent(IdempotencyKey::new(k)?))
}

#[tokio::test]
async fn before_apply_fault_changes_nothing_and_a_retry_runs_again() -> TestResult {
    let (emu, client) = setup().await?;
    emu.inject_fault(Fault {
        route: "POST /v1/customers".into(),
        times: 1,
        status: 500,
        timing: FaultTiming::BeforeApply,
        delay: None,
    });
    let create = || CreateCustomer::new().email("ada@example.com");
    let (status, err) = api_error(
        create()
            .customize()
            .request_strategy(key("c-1")?)
            .send(&client)
            .await,
    );
    assert_eq!(status, 500);
    assert_eq!(err.type_, ApiErrorsType::ApiError);
    assert!(emu.customers().is_empty());

    let retried = create()
        .customize()
        .request_strategy(key("c-1")?)
        .send(&client)
        .await?;
    assert_eq!(emu.customers().len(), 1);
    assert_eq!(emu.customers()[0]["id"], retried.id.as_str());
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 200]);
    assert_eq!(emu.request_count("POST /v1/customers"), 2);
    Ok(())
}

#[tokio::test]
async fn after_apply_fault_applies_and_a_retry_replays_the_success() -> TestResult {
    let (emu, client) = setup().await?;
    let c = CreateCustomer::new().name("Old").send(&client).await?;
    let id = c.id.to_string();
    emu.inject_fault(
        Fault::new("POST /v1/customers/:id", 502).with_timing(FaultTiming::AfterApply),
    );

    let update = || UpdateCustomer::new(id.as_str()).name("New");
    let (status, err) = api_error(
        update()
            .customize()
            .request_strategy(key("u-1")?)
            .send(&client)
            .await,
    );
    assert_eq!(status, 502);
    assert_eq!(err.type_, ApiErrorsType::ApiError);
    // The change happened although the client saw an error.
    assert_eq!(emu.customer(&id).ok_or("missing")?["name"], "New");

    // Someone else changes the customer; the retry replays the stored success, it does not re-apply.
    UpdateCustomer::new(id.as_str())
        .name("Other")
        .send(&client)
        .await?;
    let replayed = update()
        .customize()
        .request_strategy(key("u-1")?)
        .send(&client)
        .await?;
    assert_eq!(replayed.name.as_deref(), Some("New"));
    assert_eq!(emu.customer(&id).ok_or("missing")?["name"], "Other");

    // After apply without a key: the change still happens exactly once.
    emu.inject_fault(Fault::new("POST /v1/customers", 500).with_timing(FaultTiming::AfterApply));
    let (status, _) = api_error(CreateCustomer::new().name("second").send(&client).await);
    assert_eq!(status, 500);
    assert_eq!(emu.customers().len(), 2);
    Ok(())
}

#[tokio::test]
async fn faults_count_down_match_their_route_and_can_be_cleared() -> TestResult {
    let (emu, client) = setup().await?;
    emu.inject_fault(Fault::new("POST /v1/products", 429).with_times(2));
    for _ in 0..2 {
        let (status, err) = api_error(CreateProduct::new("p").send(&client).await);
        assert_eq!(status, 429);
        assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
        assert_eq!(err.code, Some(ApiErrorsCode::RateLimit));
    }
    CreateProduct::new("p").send(&client).await?;
    assert_eq!(emu.products().len(), 1);

    // Another route is not affected; a concrete path only hits that object.
    emu.inject_fault(Fault::new("GET /v1/products", 503));
    let a = CreateCustomer::new().send(&client).await?;
    let b = CreateCustomer::new().send(&client).await?;
    emu.inject_fault(Fault::new(format!("GET /v1/customers/{}", b.id), 500));
    RetrieveCustomer::new(a.id.as_str()).send(&client).await?;
    let (status, _) = api_error(RetrieveCustomer::new(b.id.as_str()).send(&client).await);
    assert_eq!(status, 500);
    RetrieveCustomer::new(b.id.as_str()).send(&client).await?;
    let (status, _) = api_error(ListProduct::new().send(&client).await);
    assert_eq!(status, 503);

    // "*" hits anything; clear_faults drops what is left.
    emu.inject_fault(Fault::new("*", 500).with_times(10));
    let (status, _) = api_error(ListCustomer::new().send(&client).await);
    assert_eq!(status, 500);
    emu.clear_faults();
    ListCustomer::new().send(&client).await?;
    ListProduct::new().send(&client).await?;

    // A zero-times fault does nothing.
    emu.inject_fault(Fault::new("GET /v1/customers", 500).with_times(0));
    ListCustomer::new().send(&client).await?;
    Ok(())
}

/// Polls `done` every 10 ms for up to 5 s (a loaded machine may be slow; never a fixed sleep).
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

#[tokio::test]
async fn delays_trip_client_timeouts() -> TestResult {
    let (emu, client) = setup().await?;
    // Status 0: delay only. Before apply, the request completes on the server after the
    // delay even though the client gave up (like a slow real Stripe).
    emu.inject_fault(Fault::new("POST /v1/customers", 0).with_delay(Duration::from_secs(1)));
    let result = CreateCustomer::new()
        .name("slow")
        .customize()
        .timeout(Duration::from_millis(100))
        .send(&client)
        .await;
    assert!(matches!(result, Err(StripeError::Timeout)), "{result:?}");
    assert!(
        emu.customers().is_empty(),
        "not applied before the delay ends"
    );
    assert!(eventually(|| emu.request_count("POST /v1/customers") == 1).await);
    assert_eq!(emu.requests()[0].status, 0, "still in flight");
    assert!(eventually(|| emu.customers().len() == 1).await);
    assert!(eventually(|| emu.requests()[0].status == 200).await);

    // After apply: the change is visible while the answer is still delayed.
    let id = emu.customers()[0]["id"]
        .as_str()
        .ok_or("no id")?
        .to_string();
    emu.inject_fault(
        Fault::new("POST /v1/customers/:id", 0)
            .with_timing(FaultTiming::AfterApply)
            .with_delay(Duration::from_secs(3)),
    );
    let result = UpdateCustomer::new(id.as_str())
        .name("renamed")
        .customize()
        .timeout(Duration::from_millis(100))
        .send(&client)
        .await;
    assert!(matches!(result, Err(StripeError::Timeout)), "{result:?}");
    assert!(eventually(|| emu.customer(&id).is_some_and(|c| c["name"] == "renamed")).await);
    assert_eq!(emu.requests()[1].status, 0, "applied, but not answered yet");

    // A delayed error: slow, then the status.
    emu.inject_fault(Fault::new("GET /v1/customers", 503).with_delay(Duration::from_millis(150)));
    let started = std::time::Instant::now();
    let (status, _) = api_error(ListCustomer::new().send(&client).await);
    assert_eq!(status, 503);
    assert!(started.elapsed() >= Duration::from_millis(150));
    Ok(())
}
