use stripe_core::customer::{CreateCustomer, ListCustomer};

use crate::common::{TestResult, api_error, client_with_key, raw, setup};

/// Each account's keys see only its own objects; `GET /v1/account` answers per key.
#[tokio::test]
async fn accounts_keep_their_objects_apart() -> TestResult {
    let (emu, default_client) = setup().await?;
    let r = raw(
        emu.addr(),
        "POST",
        "/_emulator/accounts",
        &[("Content-Type", "application/json")],
        r#"{"name": "Team B"}"#,
    )
    .await?;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap_or_default().to_owned();
    let secret = r.body["secretKey"].as_str().unwrap_or_default().to_owned();
    assert!(id.starts_with("acct_"), "{id}");
    assert!(secret.starts_with("sk_test_"), "{secret}");
    assert!(
        r.body["publishableKey"]
            .as_str()
            .is_some_and(|k| k.starts_with("pk_test_"))
    );
    let other = client_with_key(&emu, &secret)?;

    CreateCustomer::new()
        .email("b@example.com")
        .send(&other)
        .await?;
    CreateCustomer::new()
        .email("a@example.com")
        .send(&default_client)
        .await?;
    let seen = ListCustomer::new().send(&other).await?;
    assert_eq!(seen.data.len(), 1);
    assert_eq!(seen.data[0].email.as_deref(), Some("b@example.com"));
    assert_eq!(emu.account(&id).customers().len(), 1);
    assert_eq!(emu.customers().len(), 1);
    assert_eq!(emu.customers()[0]["email"], "a@example.com");
    // An object of one account is missing in another.
    let (status, _) = api_error(
        stripe_core::customer::RetrieveCustomer::new(seen.data[0].id.as_str())
            .send(&default_client)
            .await,
    );
    assert_eq!(status, 404);

    let auth = format!("Bearer {secret}");
    let r = raw(
        emu.addr(),
        "GET",
        "/v1/account",
        &[("Authorization", auth.as_str())],
        "",
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["business_profile"]["name"], "Team B");

    let restricted = format!("Bearer {}", emu.open_account(None).restricted_key);
    let r = raw(
        emu.addr(),
        "GET",
        "/v1/account",
        &[("Authorization", restricted.as_str())],
        "",
    )
    .await?;
    assert_eq!(r.status, 403, "{}", r.text);

    let r = raw(
        emu.addr(),
        "GET",
        "/v1/account",
        &[("Authorization", "Bearer sk_test_nobodyhasthiskey")],
        "",
    )
    .await?;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(!r.text.contains("nobodyhasthis"), "{}", r.text);
    Ok(())
}
