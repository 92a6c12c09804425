use stripe::ApiErrorsType;
use stripe_core::customer::{CreateCustomer, ListCustomer};

use crate::common::{TestResult, api_error, client_with_key, raw, setup};

#[tokio::test]
async fn requests_without_a_test_secret_key_are_refused() -> TestResult {
    let (emu, _) = setup().await?;

    let live = client_with_key(&emu, "sk_live_0123456789abcdef9999")?;
    let (status, err) = api_error(
        CreateCustomer::new()
            .email("x@example.com")
            .send(&live)
            .await,
    );
    assert_eq!(status, 401);
    assert_eq!(err.type_, ApiErrorsType::InvalidRequestError);
    let message = err.message.unwrap_or_default();
    assert_eq!(
        message,
        "Invalid API Key provided: sk_live_****************9999"
    );
    assert!(!message.contains("0123456789abcdef"));

    let garbage = client_with_key(&emu, "not-a-key-at-all-secret")?;
    let (status, err) = api_error(ListCustomer::new().send(&garbage).await);
    assert_eq!(status, 401);
    assert!(!err.message.unwrap_or_default().contains("secret"));

    let r = raw(
        emu.addr(),
        "POST",
        "/v1/customers",
        &[],
        "email=x%40example.com",
    )
    .await?;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    assert!(
        r.error_message()
            .starts_with("You did not provide an API key."),
        "{}",
        r.text
    );

    let r = raw(
        emu.addr(),
        "GET",
        "/v1/customers",
        &[("Authorization", "Basic c2tfdGVzdF94Og==")],
        "",
    )
    .await?;
    assert_eq!(r.status, 401);

    // An idempotent request refused for auth stores nothing.
    let r = raw(
        emu.addr(),
        "POST",
        "/v1/customers",
        &[
            ("Authorization", "Bearer sk_live_x"),
            ("Idempotency-Key", "auth-1"),
        ],
        "name=a",
    )
    .await?;
    assert_eq!(r.status, 401);
    let ok = crate::common::post_idempotent(&emu, "/v1/customers", "name=b", "auth-1").await?;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["name"], "b");

    assert_eq!(emu.customers().len(), 1);
    let statuses: Vec<u16> = emu.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![401, 401, 401, 401, 401, 200]);
    Ok(())
}
