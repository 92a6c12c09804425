use serde_json::json;
use stripe_core::customer::{CreateCustomer, ListCustomer, UpdateCustomer};

use crate::common::{TestResult, api_error, raw, setup};

#[tokio::test]
async fn faults_and_counts_over_http() -> TestResult {
    let (emu, client) = setup().await?;
    let addr = emu.addr();
    let json_header = [("Content-Type", "application/json")];

    // No auth needed for control requests.
    let r = raw(
        addr,
        "POST",
        "/_emulator/faults",
        &json_header,
        r#"{"route":"POST /v1/customers","times":1,"status":503,"timing":"before"}"#,
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["route"], "POST /v1/customers");
    let (status, _) = api_error(CreateCustomer::new().name("a").send(&client).await);
    assert_eq!(status, 503);
    assert!(emu.customers().is_empty());
    let c = CreateCustomer::new().name("a").send(&client).await?;

    let r = raw(
        addr,
        "POST",
        "/_emulator/faults",
        &json_header,
        r#"{"route":"POST /v1/customers/:id","status":500,"timing":"after","delayMs":10}"#,
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    let (status, _) = api_error(
        UpdateCustomer::new(c.id.as_str())
            .name("b")
            .send(&client)
            .await,
    );
    assert_eq!(status, 500);
    assert_eq!(emu.customer(c.id.as_str()).ok_or("missing")?["name"], "b");

    let r = raw(addr, "GET", "/_emulator/requests", &[], "").await?;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"counts": {"POST /v1/customers": 2, "POST /v1/customers/:id": 1}, "total": 3})
    );

    // Defaults: times 1, status 500, timing before.
    for _ in 0..2 {
        let r = raw(
            addr,
            "POST",
            "/_emulator/faults",
            &json_header,
            r#"{"route":"GET /v1/customers"}"#,
        )
        .await?;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["status"], 500);
        assert_eq!(r.body["timing"], "before");
    }
    let r = raw(addr, "DELETE", "/_emulator/faults", &[], "").await?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"cleared": 2}));
    ListCustomer::new().send(&client).await?;
    Ok(())
}

#[tokio::test]
async fn bad_control_requests_are_refused() -> TestResult {
    let (emu, _client) = setup().await?;
    let addr = emu.addr();
    for body in [
        "not json",
        r#"{"times":1}"#,
        r#"{"route":""}"#,
        r#"{"route":"*","status":200}"#,
        r#"{"route":"*","timing":"later"}"#,
        r#"{"route":"*","delay":5}"#,
    ] {
        let r = raw(addr, "POST", "/_emulator/faults", &[], body).await?;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
    }
    let r = raw(addr, "GET", "/_emulator/nothing", &[], "").await?;
    assert_eq!(r.status, 404);
    // None of the above is recorded as a Stripe request.
    assert_eq!(emu.request_count("*"), 0);
    let r = raw(addr, "GET", "/_emulator/requests", &[], "").await?;
    assert_eq!(r.body, json!({"counts": {}, "total": 0}));
    Ok(())
}
