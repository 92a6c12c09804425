use std::collections::HashMap;

use serde_json::json;
use stripe::ApiErrorsCode;
use stripe_core::customer::{
    CreateCustomer, DeleteCustomer, ListCustomer, RetrieveCustomer, RetrieveCustomerReturned,
    UpdateCustomer,
};
use stripe_shared::Customer;

use crate::common::{TestResult, api_error, call, metadata, setup};

fn ids(list: &[Customer]) -> Vec<String> {
    list.iter().map(|c| c.id.to_string()).collect()
}

#[tokio::test]
async fn create_retrieve_update_customer() -> TestResult {
    let (emu, client) = setup().await?;
    let created = CreateCustomer::new()
        .email("ada@example.com")
        .name("Ada")
        .description("first customer")
        .metadata(metadata(&[("plan", "pro"), ("project_id", "p_1")]))
        .send(&client)
        .await?;
    let id = created.id.to_string();
    assert!(id.starts_with("cus_") && id.len() == 18, "{id}");
    assert!(id[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(!created.livemode);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    assert!(
        (created.created - now).abs() < 60,
        "created {}",
        created.created
    );
    assert_eq!(created.email.as_deref(), Some("ada@example.com"));
    assert_eq!(created.name.as_deref(), Some("Ada"));
    assert_eq!(created.description.as_deref(), Some("first customer"));
    assert_eq!(
        created.metadata,
        Some(metadata(&[("plan", "pro"), ("project_id", "p_1")]))
    );

    // Inspection sees the same JSON the client parsed.
    let inspected = emu.customer(&id).ok_or("customer missing")?;
    assert_eq!(inspected["object"], "customer");
    assert_eq!(inspected["email"], "ada@example.com");
    assert_eq!(
        inspected["metadata"],
        json!({"plan": "pro", "project_id": "p_1"})
    );
    assert_eq!(emu.customers().len(), 1);

    let RetrieveCustomerReturned::Customer(fetched) =
        RetrieveCustomer::new(id.as_str()).send(&client).await?
    else {
        panic!("a live customer must not come back as deleted");
    };
    assert_eq!(fetched.id, created.id);
    assert_eq!(fetched.created, created.created);
    assert_eq!(fetched.email, created.email);

    // An empty string unsets a field; fields not sent stay as they were.
    let updated = UpdateCustomer::new(id.as_str())
        .name("Ada L.")
        .email("")
        .send(&client)
        .await?;
    assert_eq!(updated.name.as_deref(), Some("Ada L."));
    assert_eq!(updated.email, None);
    assert_eq!(updated.description.as_deref(), Some("first customer"));
    assert_eq!(
        emu.customer(&id).ok_or("customer missing")?["email"],
        json!(null)
    );
    assert_eq!(emu.request_count("POST /v1/customers"), 1);
    assert_eq!(emu.request_count("GET /v1/customers/:id"), 1);
    assert_eq!(emu.request_count("POST /v1/customers/:id"), 1);
    assert_eq!(emu.request_count("*"), 3);
    Ok(())
}

#[tokio::test]
async fn deleted_customer_is_gone() -> TestResult {
    let (emu, client) = setup().await?;
    let keep = CreateCustomer::new()
        .email("keep@example.com")
        .send(&client)
        .await?;
    let gone = CreateCustomer::new()
        .email("gone@example.com")
        .send(&client)
        .await?;
    let id = gone.id.to_string();

    let deleted = DeleteCustomer::new(id.as_str()).send(&client).await?;
    assert_eq!(deleted.id, gone.id);

    let (status, err) = api_error(RetrieveCustomer::new(id.as_str()).send(&client).await);
    assert_eq!(status, 404);
    assert_eq!(err.type_, stripe::ApiErrorsType::InvalidRequestError);
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));
    assert_eq!(err.message, Some(format!("No such customer: '{id}'")));
    let (status, _) = api_error(
        UpdateCustomer::new(id.as_str())
            .name("x")
            .send(&client)
            .await,
    );
    assert_eq!(status, 404);
    let (status, _) = api_error(DeleteCustomer::new(id.as_str()).send(&client).await);
    assert_eq!(status, 404);

    assert_eq!(
        emu.customer(&id),
        Some(json!({"id": id, "object": "customer", "deleted": true}))
    );
    let live: Vec<_> = emu.customers().iter().map(|c| c["id"].clone()).collect();
    assert_eq!(live, vec![json!(keep.id.as_str())]);
    let listed = ListCustomer::new().send(&client).await?;
    assert_eq!(ids(&listed.data), vec![keep.id.to_string()]);
    Ok(())
}

#[tokio::test]
async fn list_customers_filters_and_paginates() -> TestResult {
    let (emu, client) = setup().await?;
    let emails = [
        "a@example.com",
        "dup@example.com",
        "Dup@example.com",
        "dup@example.com",
        "e@example.com",
    ];
    let mut c = Vec::new();
    for email in emails {
        c.push(
            CreateCustomer::new()
                .email(email)
                .send(&client)
                .await?
                .id
                .to_string(),
        );
    }
    let newest_first: Vec<String> = c.iter().rev().cloned().collect();

    let all = ListCustomer::new().send(&client).await?;
    assert_eq!(ids(&all.data), newest_first);
    assert!(!all.has_more);
    assert_eq!(all.url, "/v1/customers");

    let page1 = ListCustomer::new().limit(2).send(&client).await?;
    assert_eq!(ids(&page1.data), vec![c[4].clone(), c[3].clone()]);
    assert!(page1.has_more);
    let page2 = ListCustomer::new()
        .limit(2)
        .starting_after(c[3].as_str())
        .send(&client)
        .await?;
    assert_eq!(ids(&page2.data), vec![c[2].clone(), c[1].clone()]);
    assert!(page2.has_more);
    let page3 = ListCustomer::new()
        .limit(2)
        .starting_after(c[1].as_str())
        .send(&client)
        .await?;
    assert_eq!(ids(&page3.data), vec![c[0].clone()]);
    assert!(!page3.has_more);

    let before = ListCustomer::new()
        .limit(2)
        .ending_before(c[1].as_str())
        .send(&client)
        .await?;
    assert_eq!(ids(&before.data), vec![c[3].clone(), c[2].clone()]);
    assert!(before.has_more);
    let before = ListCustomer::new()
        .limit(2)
        .ending_before(c[3].as_str())
        .send(&client)
        .await?;
    assert_eq!(ids(&before.data), vec![c[4].clone()]);
    assert!(!before.has_more);

    // The email filter is exact and case-sensitive.
    let dup = ListCustomer::new()
        .email("dup@example.com")
        .send(&client)
        .await?;
    assert_eq!(ids(&dup.data), vec![c[3].clone(), c[1].clone()]);
    let upper = ListCustomer::new()
        .email("Dup@example.com")
        .send(&client)
        .await?;
    assert_eq!(ids(&upper.data), vec![c[2].clone()]);
    let none = ListCustomer::new()
        .email("nobody@example.com")
        .send(&client)
        .await?;
    assert!(none.data.is_empty());
    let dup_page = ListCustomer::new()
        .email("dup@example.com")
        .limit(1)
        .starting_after(c[3].as_str())
        .send(&client)
        .await?;
    assert_eq!(ids(&dup_page.data), vec![c[1].clone()]);
    assert!(!dup_page.has_more);

    // A deleted customer still works as a cursor.
    DeleteCustomer::new(c[2].as_str()).send(&client).await?;
    let after_deleted = ListCustomer::new()
        .starting_after(c[2].as_str())
        .send(&client)
        .await?;
    assert_eq!(ids(&after_deleted.data), vec![c[1].clone(), c[0].clone()]);

    // Bad list parameters.
    for limit in [0, 101] {
        let (status, err) = api_error(ListCustomer::new().limit(limit).send(&client).await);
        assert_eq!(status, 400);
        assert_eq!(err.param.as_deref(), Some("limit"));
    }
    let (status, err) = api_error(
        ListCustomer::new()
            .starting_after("cus_doesnotexist00")
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.code, Some(ApiErrorsCode::ResourceMissing));
    assert_eq!(err.param.as_deref(), Some("starting_after"));
    let both = call(
        &emu,
        "GET",
        &format!(
            "/v1/customers?starting_after={}&ending_before={}",
            c[1], c[3]
        ),
        "",
    )
    .await?;
    assert_eq!(both.status, 400);
    assert!(
        both.error_message().contains("only specify one of"),
        "{}",
        both.text
    );
    Ok(())
}

#[tokio::test]
async fn list_default_limit_is_ten() -> TestResult {
    let (_emu, client) = setup().await?;
    for i in 0..12 {
        CreateCustomer::new()
            .name(format!("c{i}"))
            .send(&client)
            .await?;
    }
    let page = ListCustomer::new().send(&client).await?;
    assert_eq!(page.data.len(), 10);
    assert!(page.has_more);
    assert_eq!(page.data[0].name.as_deref(), Some("c11"));
    Ok(())
}

#[tokio::test]
async fn customer_metadata_merges_and_unsets() -> TestResult {
    let (emu, client) = setup().await?;
    let c = CreateCustomer::new()
        .metadata(metadata(&[("a", "1"), ("b", "2")]))
        .send(&client)
        .await?;
    let id = c.id.as_str();

    let merged = UpdateCustomer::new(id)
        .metadata(metadata(&[("b", ""), ("c", "3")]))
        .send(&client)
        .await?;
    assert_eq!(merged.metadata, Some(metadata(&[("a", "1"), ("c", "3")])));

    let untouched = UpdateCustomer::new(id).name("n").send(&client).await?;
    assert_eq!(
        untouched.metadata,
        Some(metadata(&[("a", "1"), ("c", "3")]))
    );

    // async-stripe sends an empty map as `metadata=`, which removes every key.
    let cleared = UpdateCustomer::new(id)
        .metadata(HashMap::new())
        .send(&client)
        .await?;
    assert_eq!(cleared.metadata, Some(HashMap::new()));
    assert_eq!(emu.customer(id).ok_or("missing")?["metadata"], json!({}));

    // The same over the raw wire format.
    let raw = call(
        &emu,
        "POST",
        &format!("/v1/customers/{id}"),
        "metadata[x]=1&metadata[y]=2",
    )
    .await?;
    assert_eq!(raw.body["metadata"], json!({"x": "1", "y": "2"}));
    let raw = call(&emu, "POST", &format!("/v1/customers/{id}"), "metadata=").await?;
    assert_eq!(raw.body["metadata"], json!({}));
    Ok(())
}

#[tokio::test]
async fn metadata_limits_are_enforced() -> TestResult {
    let (emu, client) = setup().await?;
    let fifty_one: HashMap<String, String> = (0..51)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let (status, err) = api_error(
        CreateCustomer::new()
            .metadata(fifty_one)
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.param.as_deref(), Some("metadata"));
    let long_key = "k".repeat(41);
    let (status, _) = api_error(
        CreateCustomer::new()
            .metadata(metadata(&[(&long_key, "v")]))
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    let long_value = "v".repeat(501);
    let (status, err) = api_error(
        CreateCustomer::new()
            .metadata(metadata(&[("k", &long_value)]))
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.param.as_deref(), Some("metadata[k]"));
    assert!(
        emu.customers().is_empty(),
        "refused creates must not create anything"
    );

    // Exactly at the limits is fine.
    let fifty: HashMap<String, String> = (0..50)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let c = CreateCustomer::new().metadata(fifty).send(&client).await?;
    let edge = UpdateCustomer::new(c.id.as_str())
        .metadata(metadata(&[(&"k".repeat(40), &"v".repeat(500)), ("k1", "")]))
        .send(&client)
        .await?;
    assert_eq!(edge.metadata.as_ref().map(HashMap::len), Some(50));

    // A merge that would leave 51 keys is refused and changes nothing.
    let (status, _) = api_error(
        UpdateCustomer::new(c.id.as_str())
            .metadata(metadata(&[("extra", "1")]))
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    let stored = emu.customer(c.id.as_str()).ok_or("missing")?;
    assert_eq!(stored["metadata"].as_object().map(|m| m.len()), Some(50));
    assert_eq!(stored["metadata"].get("extra"), None);
    Ok(())
}

#[tokio::test]
async fn unknown_and_invalid_parameters_are_refused() -> TestResult {
    let (emu, client) = setup().await?;
    // A real Stripe parameter the emulator does not model is refused like an unknown one.
    let (status, err) = api_error(CreateCustomer::new().phone("+100").send(&client).await);
    assert_eq!(status, 400);
    assert_eq!(
        err.message.as_deref(),
        Some("Received unknown parameter: phone")
    );
    assert_eq!(err.param.as_deref(), Some("phone"));
    assert_eq!(err.code, Some(ApiErrorsCode::ParameterUnknown));

    let r = call(&emu, "GET", "/v1/customers?foo=1", "").await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    assert_eq!(r.body["error"]["param"], "foo");
    assert_eq!(r.error_message(), "Received unknown parameter: foo");

    let r = call(&emu, "POST", "/v1/customers", "email=not-an-email").await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "email_invalid");

    let r = call(&emu, "POST", "/v1/customers", "expand[]=sources").await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["param"], "expand");

    let r = call(&emu, "GET", "/v1/invoices", "").await?;
    assert_eq!(r.status, 404);
    assert!(
        r.error_message()
            .starts_with("Unrecognized request URL (GET: /v1/invoices)"),
        "{}",
        r.text
    );
    assert!(emu.customers().is_empty());
    Ok(())
}

#[tokio::test]
async fn requests_are_recorded() -> TestResult {
    let (emu, client) = setup().await?;
    let c = CreateCustomer::new().send(&client).await?;
    let _ = RetrieveCustomer::new("cus_missing").send(&client).await;
    let r =
        crate::common::post_idempotent(&emu, &format!("/v1/customers/{}", c.id), "name=x", "key-1")
            .await?;
    assert_eq!(r.status, 200);

    let log = emu.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(
        (log[0].method.as_str(), log[0].route.as_str()),
        ("POST", "POST /v1/customers")
    );
    assert_eq!(log[0].path, "/v1/customers");
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].idempotency_key, None);
    assert_eq!(log[1].route, "GET /v1/customers/:id");
    assert_eq!(log[1].path, "/v1/customers/cus_missing");
    assert_eq!(log[1].status, 404);
    assert_eq!(log[2].route, "POST /v1/customers/:id");
    assert_eq!(log[2].idempotency_key.as_deref(), Some("key-1"));
    // A concrete path counts too.
    assert_eq!(emu.request_count("GET /v1/customers/cus_missing"), 1);
    assert_eq!(emu.request_count("GET /v1/customers"), 0);
    Ok(())
}
