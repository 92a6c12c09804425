//! The products API end to end: handlers → DynamoDB Local and the Stripe emulator.

use billstack::admin::NewApiKey;
use billstack::ids::ProductId;
use billstack_tests::{Fault, FaultTiming, TestEnv, project_path};
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn create_product(env: &TestEnv, body: Value) -> Value {
    env.create("products", body).await
}

async fn create_price(env: &TestEnv, product_id: &str, unit_amount: i64) -> Value {
    let body = json!({"productId": product_id, "unitAmount": unit_amount, "currency": "usd", "interval": "month"});
    env.create("prices", body).await
}

fn item(env: &TestEnv, resource: &str, id: &Value) -> String {
    format!("{}/{}", env.path(resource), id.as_str().unwrap())
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn create_writes_the_product_to_stripe_and_dynamodb() {
    let env = TestEnv::new().await;
    let product = create_product(
        &env,
        json!({"name": "Pro Plan", "description": "Full access to all features"}),
    )
    .await;
    let id = product["id"].as_str().unwrap();
    assert!(id.starts_with("pp_"));
    assert_eq!(product["name"], "Pro Plan");
    assert_eq!(product["description"], "Full access to all features");
    assert_eq!(product["isActive"], true);
    assert_eq!(product["metadata"], json!({}));
    assert_eq!(product["projectId"], env.project.id.as_str());
    assert!(product["createdAt"].as_str().unwrap().ends_with('Z'));

    let stripe_id = product["stripeProductId"].as_str().unwrap();
    let in_stripe = env.stripe.product(stripe_id).expect("in Stripe");
    assert_eq!(in_stripe["name"], "Pro Plan");
    assert_eq!(in_stripe["active"], true);
    assert_eq!(
        in_stripe["metadata"],
        json!({"project_id": env.project.id, "billstack_id": id})
    );

    let stored = env
        .store
        .get_product(&env.project.id, &ProductId::from(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stripe_product_id, stripe_id);
    let (status, got) = env
        .call(Method::GET, &item(&env, "products", &product["id"]), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["product"], product);
}

#[tokio::test]
async fn bad_product_input_is_400_and_writes_nothing() {
    let env = TestEnv::new().await;
    for (body, param) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(251)}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "x", "description": 5}), "description"),
        (json!({"name": "x", "isActive": false}), "isActive"),
        (
            json!({"name": "x", "metadata": {"project_id": "p"}}),
            "metadata.project_id",
        ),
        (
            json!({"name": "x", "metadata": {"a": {"b": "c"}}}),
            "metadata.a",
        ),
    ] {
        let (status, answer) = env
            .call(Method::POST, &env.path("products"), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["param"], param, "{body}: {answer}");
    }
    assert_eq!(env.stripe.request_count("*"), 0);
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{}?activeOnly=false", env.path("products")),
            None,
        )
        .await;
    assert_eq!(list["products"], json!([]));
}

#[tokio::test]
async fn list_filters_active_and_pages_newest_first() {
    let env = TestEnv::new().await;
    let mut all = Vec::new();
    for i in 0..5 {
        all.push(
            create_product(&env, json!({"name": format!("P{i}")})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    all.reverse();
    // Deactivate P1 (all[3]).
    let (status, _) = env
        .call(
            Method::PATCH,
            &format!("{}/{}", env.path("products"), all[3]),
            Some(json!({"isActive": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let base = env.path("products");
    let (status, list) = env.call(Method::GET, &base, None).await;
    assert_eq!(status, StatusCode::OK);
    let active: Vec<String> = all.iter().filter(|id| **id != all[3]).cloned().collect();
    assert_eq!(
        ids(&list, "products"),
        active,
        "activeOnly defaults to true"
    );
    let (_, list) = env
        .call(Method::GET, &format!("{base}?activeOnly=true"), None)
        .await;
    assert_eq!(ids(&list, "products"), active);
    let (_, list) = env
        .call(Method::GET, &format!("{base}?activeOnly=false"), None)
        .await;
    assert_eq!(ids(&list, "products"), all);
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{base}?activeOnly=false&limit=2&offset=2"),
            None,
        )
        .await;
    assert_eq!(ids(&list, "products"), all[2..4]);
    assert_eq!(list["hasMore"], true);
    let (_, list) = env
        .call(Method::GET, &format!("{base}?limit=2&offset=2"), None)
        .await;
    assert_eq!(ids(&list, "products"), active[2..4]);

    for (query, param) in [
        ("activeOnly=yes", "activeOnly"),
        ("activeOnly=1", "activeOnly"),
        ("limit=0", "limit"),
        ("offset=-2", "offset"),
    ] {
        let (status, body) = env
            .call(Method::GET, &format!("{base}?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["param"], param);
    }
}

#[tokio::test]
async fn update_goes_to_stripe_then_our_record() {
    let env = TestEnv::new().await;
    let product = create_product(
        &env,
        json!({"name": "Pro Plan", "description": "d", "metadata": {"tier": "2", "old": "x"}}),
    )
    .await;
    let path = item(&env, "products", &product["id"]);
    let stripe_id = product["stripeProductId"].as_str().unwrap();

    let (status, body) = env
        .call(Method::PATCH, &path, Some(json!({"name": "Pro Plan v2", "description": null, "isActive": false, "metadata": {"tier": "3"}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updated = &body["product"];
    assert_eq!(updated["name"], "Pro Plan v2");
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(updated["isActive"], false);
    assert_eq!(updated["metadata"], json!({"tier": "3"}));

    let in_stripe = env.stripe.product(stripe_id).unwrap();
    assert_eq!(in_stripe["name"], "Pro Plan v2");
    assert_eq!(in_stripe["active"], false);
    assert_eq!(in_stripe["description"], Value::Null);
    assert_eq!(
        in_stripe["metadata"],
        json!({"tier": "3", "project_id": env.project.id, "billstack_id": product["id"]})
    );
    let stored = env
        .store
        .get_product(
            &env.project.id,
            &ProductId::from(product["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.is_active);

    for (body, param) in [
        (json!({"name": ""}), "name"),
        (json!({"name": null}), "name"),
        (json!({"isActive": "false"}), "isActive"),
        (json!({"price": 1}), "price"),
    ] {
        let (status, answer) = env.call(Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["param"], param);
    }

    // Stripe failing leaves our record as it was; the retry applies.
    env.stripe
        .inject_fault(Fault::new("POST /v1/products/:id", 500).with_times(2));
    let (status, _) = env
        .call(Method::PATCH, &path, Some(json!({"name": "v3"})))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (_, body) = env.call(Method::GET, &path, None).await;
    assert_eq!(body["product"]["name"], "Pro Plan v2");
    let (status, body) = env
        .call(Method::PATCH, &path, Some(json!({"name": "v3"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["product"]["name"], "v3");
    assert_eq!(env.stripe.product(stripe_id).unwrap()["name"], "v3");
}

#[tokio::test]
async fn unknown_or_foreign_product_is_404() {
    let env = TestEnv::new().await;
    let other = env.other_project().await;
    let (status, foreign) = env
        .call(
            Method::POST,
            &project_path(&env.team.id, &other.id, "products"),
            Some(json!({"name": "Theirs"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for id in [
        foreign["product"]["id"].as_str().unwrap(),
        "pp_0000",
        "nope",
    ] {
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let body = (method == Method::PATCH).then(|| json!({"name": "x"}));
            let (status, answer) = env
                .call(
                    method.clone(),
                    &format!("{}/{id}", env.path("products")),
                    body,
                )
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {id}");
            assert_eq!(answer["error"], "Product not found");
        }
    }
    assert!(
        env.stripe
            .product(foreign["product"]["stripeProductId"].as_str().unwrap())
            .unwrap()["active"]
            == true
    );
}

#[tokio::test]
async fn delete_archives_the_product_and_its_prices_in_stripe_and_removes_them_here() {
    let env = TestEnv::new().await;
    let product = create_product(&env, json!({"name": "Doomed"})).await;
    let keep = create_product(&env, json!({"name": "Kept"})).await;
    let p1 = create_price(&env, product["id"].as_str().unwrap(), 1000).await;
    let p2 = create_price(&env, product["id"].as_str().unwrap(), 2000).await;
    let kept_price = create_price(&env, keep["id"].as_str().unwrap(), 3000).await;

    let (status, body) = env
        .call(
            Method::DELETE,
            &item(&env, "products", &product["id"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"success": true}));

    // Stripe: product and its prices inactive; the other product untouched.
    assert_eq!(
        env.stripe
            .product(product["stripeProductId"].as_str().unwrap())
            .unwrap()["active"],
        false
    );
    for price in [&p1, &p2] {
        assert_eq!(
            env.stripe
                .price(price["stripePriceId"].as_str().unwrap())
                .unwrap()["active"],
            false
        );
    }
    assert_eq!(
        env.stripe
            .price(kept_price["stripePriceId"].as_str().unwrap())
            .unwrap()["active"],
        true
    );
    assert_eq!(
        env.stripe
            .product(keep["stripeProductId"].as_str().unwrap())
            .unwrap()["active"],
        true
    );

    // Ours: none of them, in any list.
    let (status, _) = env
        .call(Method::GET, &item(&env, "products", &product["id"]), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for price in [&p1, &p2] {
        let (status, _) = env
            .call(Method::GET, &item(&env, "prices", &price["id"]), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{}?activeOnly=false", env.path("products")),
            None,
        )
        .await;
    assert_eq!(
        ids(&list, "products"),
        vec![keep["id"].as_str().unwrap().to_owned()]
    );
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{}?activeOnly=false", env.path("prices")),
            None,
        )
        .await;
    assert_eq!(
        ids(&list, "prices"),
        vec![kept_price["id"].as_str().unwrap().to_owned()]
    );
    let (_, list) = env
        .call(
            Method::GET,
            &format!(
                "{}?activeOnly=false&productId={}",
                env.path("prices"),
                product["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(list["prices"], json!([]));

    // And no price can be added to it any more.
    let body = json!({"productId": product["id"], "unitAmount": 1, "currency": "usd", "interval": "month"});
    let (status, answer) = env
        .call(Method::POST, &env.path("prices"), Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["param"], "productId");
}

#[tokio::test]
async fn a_delete_failing_half_way_leaves_consistent_records_and_the_retry_finishes() {
    let env = TestEnv::new().await;
    let product = create_product(&env, json!({"name": "Half"})).await;
    let product_id = product["id"].as_str().unwrap();
    let prices = [
        create_price(&env, product_id, 100).await,
        create_price(&env, product_id, 200).await,
    ];

    // The second price's deactivation fails in Stripe (both attempts).
    let second = prices[0]["stripePriceId"].as_str().unwrap(); // newest first: prices[0] is deactivated second
    let first = prices[1]["stripePriceId"].as_str().unwrap();
    env.stripe
        .inject_fault(Fault::new(format!("POST /v1/prices/{second}"), 500).with_times(2));
    let (status, _) = env
        .call(
            Method::DELETE,
            &item(&env, "products", &product["id"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    // Still ours; what Stripe deactivated is inactive here too; nothing else changed.
    let (status, body) = env
        .call(Method::GET, &item(&env, "products", &product["id"]), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["product"]["isActive"], true);
    assert_eq!(
        env.stripe
            .product(product["stripeProductId"].as_str().unwrap())
            .unwrap()["active"],
        true
    );
    for price in &prices {
        let stripe_active = env
            .stripe
            .price(price["stripePriceId"].as_str().unwrap())
            .unwrap()["active"]
            .clone();
        let (_, ours) = env
            .call(Method::GET, &item(&env, "prices", &price["id"]), None)
            .await;
        assert_eq!(
            ours["price"]["isActive"], stripe_active,
            "our record matches Stripe"
        );
    }
    assert_eq!(env.stripe.price(first).unwrap()["active"], false);
    // A product being deleted takes no new price.
    let body =
        json!({"productId": product_id, "unitAmount": 1, "currency": "usd", "interval": "month"});
    let (status, _) = env
        .call(Method::POST, &env.path("prices"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, _) = env
        .call(
            Method::DELETE,
            &item(&env, "products", &product["id"]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        env.stripe
            .product(product["stripeProductId"].as_str().unwrap())
            .unwrap()["active"],
        false
    );
    assert_eq!(env.stripe.price(second).unwrap()["active"], false);
    assert!(
        env.store
            .get_product(&env.project.id, &ProductId::from(product_id))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.store
            .prices_of_product(&env.project.id, &ProductId::from(product_id))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn create_failures_half_way_leave_nothing_and_a_retry_succeeds() {
    let env = TestEnv::new().await;
    // Stripe fails: nothing anywhere.
    env.stripe
        .inject_fault(Fault::new("POST /v1/products", 500).with_times(2));
    let (status, _) = env
        .call(
            Method::POST,
            &env.path("products"),
            Some(json!({"name": "A"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(env.stripe.products().is_empty());

    // Stripe answered but our write fails: the Stripe product is removed again.
    env.dynamo.fail_next("PutItem", 3);
    let (status, _) = env
        .call(
            Method::POST,
            &env.path("products"),
            Some(json!({"name": "A"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        env.stripe.products().is_empty(),
        "{:?}",
        env.stripe.products()
    );
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{}?activeOnly=false", env.path("products")),
            None,
        )
        .await;
    assert_eq!(list["products"], json!([]));

    // A lost Stripe response is retried with the same key: one product.
    env.stripe
        .inject_fault(Fault::new("POST /v1/products", 500).with_timing(FaultTiming::AfterApply));
    let product = create_product(&env, json!({"name": "A"})).await;
    assert_eq!(env.stripe.products().len(), 1);
    assert_eq!(env.stripe.products()[0]["id"], product["stripeProductId"]);
}

#[tokio::test]
async fn products_scopes_cover_products_and_prices_but_not_customers() {
    let env = TestEnv::new().await;
    let key = |scopes: &[&str]| NewApiKey {
        name: "k".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let (_, read) = env.key_with(key(&["products:read"])).await;
    let (_, write) = env.key_with(key(&["products:write"])).await;
    let (_, customers) = env.key_with(key(&["customers:write"])).await;

    let (status, created) = env
        .call_as(
            Some(&write),
            Method::POST,
            &env.path("products"),
            Some(json!({"name": "S"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let product_id = created["product"]["id"].clone();
    let price_body =
        json!({"productId": product_id, "unitAmount": 5, "currency": "usd", "type": "one_time"});
    let (status, _) = env
        .call_as(
            Some(&write),
            Method::POST,
            &env.path("prices"),
            Some(price_body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for resource in ["products", "prices"] {
        let (status, _) = env
            .call_as(Some(&read), Method::GET, &env.path(resource), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{resource}");
        let (status, _) = env
            .call_as(Some(&write), Method::GET, &env.path(resource), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{resource}");
        let (status, _) = env
            .call_as(Some(&customers), Method::GET, &env.path(resource), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{resource}");
    }
    let (status, _) = env
        .call_as(
            Some(&read),
            Method::POST,
            &env.path("products"),
            Some(json!({"name": "no"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = env
        .call_as(
            Some(&read),
            Method::POST,
            &env.path("prices"),
            Some(price_body),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = env
        .call_as(
            Some(&read),
            Method::DELETE,
            &item(&env, "products", &product_id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(env.stripe.products().len(), 1);
}

#[tokio::test]
async fn a_retried_create_with_an_idempotency_key_gets_the_same_product() {
    let env = TestEnv::new().await;
    let auth = format!("Bearer {}", env.key);
    let body = json!({"name": "Once"}).to_string();
    let send = |key: &'static str, body: String| {
        let (auth, path) = (auth.clone(), env.path("products"));
        let env = &env;
        async move {
            env.call_with_headers(
                Some(&auth),
                &[("idempotency-key", key)],
                Method::POST,
                &path,
                Some(body),
            )
            .await
        }
    };

    // The first try fails in Stripe: nothing is kept for the key, so the retry runs.
    env.stripe
        .inject_fault(Fault::new("POST /v1/products", 500).with_times(2));
    let (status, _, _) = send("order-42", body.clone()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);

    let (status, headers, first) = send("order-42", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, headers, again) = send("order-42", body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(again, first, "the same product, replayed");
    assert_eq!(env.stripe.products().len(), 1);
    let (_, list) = env.call(Method::GET, &env.path("products"), None).await;
    assert_eq!(list["products"].as_array().unwrap().len(), 1);

    // The same key with another request is refused; a new key makes a new product.
    let (status, _, refused) = send("order-42", json!({"name": "Other"}).to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["code"], "idempotency_error");
    let (status, _, other) = send("order-43", body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(other["product"]["id"], first["product"]["id"]);

    let long = "k".repeat(256);
    let (status, _, answer) = env
        .call_with_headers(
            Some(&auth),
            &[("idempotency-key", long.as_str())],
            Method::POST,
            &env.path("products"),
            Some(json!({"name": "x"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["param"], "Idempotency-Key");

    // A key beyond ASCII is refused, never taken as no key (which made each retry a new
    // product).
    for _ in 0..2 {
        let request = http::Request::builder()
            .method(Method::POST)
            .uri(env.path("products"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .header(
                "idempotency-key",
                http::HeaderValue::from_bytes("\u{d7}\u{f8}".as_bytes()).unwrap(),
            )
            .body(billstack::lambda_http::Body::Text(
                json!({"name": "Twice?"}).to_string(),
            ))
            .unwrap();
        let (status, answer) = billstack_tests::send(&env.app, request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["param"], "Idempotency-Key");
    }
    assert_eq!(
        env.stripe.products().len(),
        2,
        "no product for the refused keys"
    );
}

/// A PATCH that read the product before a delete marked it, and writes after, must not
/// undo the mark: else a price is accepted for a product whose delete then leaves that
/// price pointing at nothing (issue #10, item 2). Stripe delays hold each request at its
/// Stripe call: the PATCH's for 1.5 s, the delete's price deactivation for 4 s.
#[tokio::test]
async fn a_patch_racing_a_delete_does_not_undo_its_deleting_mark() {
    use std::time::Duration;
    let env = std::sync::Arc::new(TestEnv::new().await);
    let product = create_product(&env, json!({"name": "Doomed"})).await;
    let price = create_price(&env, product["id"].as_str().unwrap(), 500).await;
    let product_path = item(&env, "products", &product["id"]);
    let delay = |path: String, ms: u64| {
        Fault::new(path, 0)
            .with_delay(Duration::from_millis(ms))
            .with_timing(FaultTiming::BeforeApply)
    };
    env.stripe.inject_fault(delay(
        format!(
            "POST /v1/products/{}",
            product["stripeProductId"].as_str().unwrap()
        ),
        1500,
    ));
    env.stripe.inject_fault(delay(
        format!(
            "POST /v1/prices/{}",
            price["stripePriceId"].as_str().unwrap()
        ),
        4000,
    ));
    let patch = {
        let (env, path) = (env.clone(), product_path.clone());
        tokio::spawn(async move {
            env.call(Method::PATCH, &path, Some(json!({"name": "Renamed"})))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let delete = {
        let (env, path) = (env.clone(), product_path.clone());
        tokio::spawn(async move { env.call(Method::DELETE, &path, None).await })
    };
    let (patch_status, patch_body) = patch.await.unwrap();
    assert_ne!(
        patch_status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{patch_body}"
    );
    // The delete is still held at Stripe: its mark must stand, and refuse new prices.
    let stored = env
        .store
        .get_product(
            &env.project.id,
            &ProductId::from(product["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .expect("the product is still there mid-delete");
    assert!(stored.deleting, "the PATCH ({patch_status}) undid the mark");
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("prices"),
            Some(json!({"productId": product["id"], "unitAmount": 700, "currency": "usd", "type": "one_time"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = delete.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{}?activeOnly=false", env.path("prices")),
            None,
        )
        .await;
    assert_eq!(list["prices"], json!([]), "no price outlives its product");
}

/// A list without `limit` is bounded like every list (50, with `hasMore`), for products and
/// prices alike, so no answer outgrows Lambda's 6 MB response limit (issue #10, item 8).
#[tokio::test]
async fn lists_without_a_limit_are_bounded_at_fifty() {
    let env = TestEnv::new().await;
    let first = create_product(&env, json!({"name": "P0"})).await;
    let product_id = first["id"].as_str().unwrap().to_owned();
    for n in 1..51 {
        create_product(&env, json!({"name": format!("P{n}")})).await;
        create_price(&env, &product_id, 100 + n).await;
    }
    create_price(&env, &product_id, 99).await;
    for (resource, query) in [
        ("products", String::new()),
        ("prices", String::new()),
        ("prices", format!("?productId={product_id}")),
    ] {
        let (status, list) = env
            .call(Method::GET, &format!("{}{query}", env.path(resource)), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            list[resource].as_array().unwrap().len(),
            50,
            "{resource}{query}"
        );
        assert_eq!(list["hasMore"], true, "{resource}{query}");
    }
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{}?offset=50", env.path("products")),
            None,
        )
        .await;
    assert_eq!(
        ids(&list, "products"),
        vec![product_id.clone()],
        "the oldest is last"
    );
    assert_eq!(list["hasMore"], false);
}

/// The product's PutItem is applied but its answer is lost; the SDK retries it and the
/// retry fails its condition on our own record. That is a success, not a reason to delete
/// the Stripe product of a record that exists (issue #10, item 9).
#[tokio::test]
async fn a_lost_answer_to_the_product_write_is_not_undone_in_stripe() {
    let env = TestEnv::new().await;
    env.dynamo.lose_next_answers("PutItem", 1);
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("products"),
            Some(json!({"name": "Ambiguous"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stripe_id = body["product"]["stripeProductId"].as_str().unwrap();
    assert!(
        env.stripe.product(stripe_id).is_some(),
        "the Stripe product is kept"
    );
    assert_eq!(env.stripe.request_count("DELETE /v1/products/:id"), 0);
    let stored = env
        .store
        .get_product(
            &env.project.id,
            &ProductId::from(body["product"]["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .expect("the record is there");
    assert_eq!(stored.stripe_product_id, stripe_id);
}

/// When keeping a create's answer fails after the work succeeded, the client still gets
/// the answer (a 5xx would make it retry a create that happened), and a retry at once is
/// told to wait rather than run the create again (issue #10, item 6, in part).
#[tokio::test]
async fn a_create_whose_answer_cannot_be_kept_still_answers_and_is_not_run_twice() {
    let env = TestEnv::new().await;
    // A first call stamps the key's lastUsedAt (an UpdateItem), so the only UpdateItem of
    // the create below is the one that keeps its answer.
    env.call(Method::GET, &env.path("products"), None).await;
    env.dynamo.fail_next("UpdateItem", 3);
    let send = || env.create_with_key("products", "kept-or-not", json!({"name": "Once"}));
    let (status, _, created) = send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(
        env.dynamo.count("UpdateItem") >= 1,
        "keeping the answer was tried"
    );
    let (status, _, again) = send().await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["code"], "idempotency_in_progress");
    assert_eq!(env.stripe.products().len(), 1);
    let (_, list) = env.call(Method::GET, &env.path("products"), None).await;
    assert_eq!(list["products"].as_array().unwrap().len(), 1);

    // Once the claim has gone stale (its attempt may have died), a retry takes it over with
    // the object ID kept with the key: it finds the product made, and makes no second one.
    env.age_idempotency_claim("kept-or-not").await;
    let (status, _, retried) = send().await;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    assert_eq!(retried["product"]["id"], created["product"]["id"]);
    assert_eq!(env.stripe.products().len(), 1);
    let (status, _, replayed) = send().await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(replayed, retried, "kept this time, and replayed");
}

/// A create that failed after Stripe made the object (our write failed, and so did the undo
/// in Stripe): its retry under the same Idempotency-Key makes that same object (Stripe
/// replays the create), never a second one (issue #10, item 6).
#[tokio::test]
async fn a_retry_of_a_create_that_failed_midway_makes_the_same_object_once() {
    let env = TestEnv::new().await;
    let send = || env.create_with_key("products", "failed-midway", json!({"name": "Once"}));
    env.stripe
        .inject_fault(Fault::new("DELETE /v1/products/:id", 500).with_times(2));
    // The claim of the key is the first PutItem: held until the product's write is set to
    // fail (three tries, as the SDK makes).
    let mut claim = env.dynamo.hold_next("PutItem");
    let dynamo = &env.dynamo;
    let ((status, _, failed), ()) = tokio::join!(send(), async move {
        claim.reached().await;
        dynamo.fail_next("PutItem", 3);
        claim.release();
    });
    assert!(status.is_server_error(), "{status} {failed}");
    let orphans = env.stripe.products();
    assert_eq!(
        orphans.len(),
        1,
        "the failed attempt left its product in Stripe"
    );

    let (status, _, created) = send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(env.stripe.products().len(), 1, "no second Stripe product");
    assert_eq!(
        created["product"]["stripeProductId"], orphans[0]["id"],
        "the retry made the very object the failed attempt left"
    );
    let (_, list) = env.call(Method::GET, &env.path("products"), None).await;
    assert_eq!(list["products"].as_array().unwrap().len(), 1);
}

/// A request as Lambda hands it over with `left_ms` milliseconds left of the invocation (or
/// no deadline, as outside Lambda).
async fn call_within(
    env: &TestEnv,
    method: Method,
    path: &str,
    body: Option<Value>,
    left_ms: Option<u64>,
) -> (StatusCode, Value) {
    use billstack::lambda_http::RequestExt;
    let mut context = billstack::lambda_http::Context::default();
    if let Some(left) = left_ms {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        context.deadline = now + left;
    }
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", env.key))
        .header("content-type", "application/json")
        .body(body.map_or(billstack::lambda_http::Body::Empty, |b| {
            billstack::lambda_http::Body::Text(b.to_string())
        }))
        .unwrap()
        .with_lambda_context(context);
    billstack_tests::send(&env.app, request).await
}

/// Every Stripe attempt, and every retry, ends inside the invocation's deadline, however the
/// calls add up (issue #10, item 7): a retry that could not end in time is not started,
/// and an attempt is cut at the deadline rather than at its own 8 s.
#[tokio::test]
async fn stripe_calls_stop_inside_the_invocations_deadline() {
    use std::time::Duration;
    let env = TestEnv::new().await;
    let path = env.path("products");
    let send = |left_ms| {
        call_within(
            &env,
            Method::POST,
            &path,
            Some(json!({"name": "In time"})),
            left_ms,
        )
    };
    let creates = || env.stripe.request_count("POST /v1/products");

    // Stripe answers 500 after a second, every time. With no deadline (a local call) the
    // create is tried twice, as always.
    env.stripe.inject_fault(
        Fault::new("POST /v1/products", 500)
            .with_delay(Duration::from_millis(1000))
            .with_times(10),
    );
    let (status, answer) = send(None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert_eq!(creates(), 2);
    // With 1.6 s left, 1.1 s once the answer's reserve is kept: after the first failure no
    // retry could end in time, so the failure is answered.
    let (status, answer) = send(Some(1600)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert_eq!(creates(), 3, "one attempt, no retry");

    // Stripe takes 5 s: the attempt is cut at the deadline, and not retried.
    env.stripe.clear_faults();
    env.stripe.inject_fault(
        Fault::new("POST /v1/products", 0)
            .with_delay(Duration::from_millis(5000))
            .with_times(1),
    );
    let (status, answer) = send(Some(2000)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert_eq!(creates(), 4, "cut, not retried");
    let (_, list) = env.call(Method::GET, &env.path("products"), None).await;
    assert_eq!(list["products"], json!([]));
}

/// DynamoDB calls end inside the invocation's deadline too (issue #10, item 7): a read held
/// at the proxy past it is answered 503, to retry, instead of whatever the call brings back
/// after the function's time is up. Without a deadline the same held read waits and answers.
#[tokio::test]
async fn dynamodb_calls_stop_inside_the_invocations_deadline() {
    use std::time::Duration;
    let env = TestEnv::new().await;
    let product = create_product(&env, json!({"name": "Slow read"})).await;
    let path = item(&env, "products", &product["id"]);
    let held_for = |left_ms| {
        let mut held = env.dynamo.hold_next("GetItem");
        let (env, path) = (&env, &path);
        async move {
            let release = async {
                held.reached().await;
                tokio::time::sleep(Duration::from_millis(2500)).await;
                held.release();
            };
            let (answer, ()) =
                tokio::join!(call_within(env, Method::GET, path, None, left_ms), release);
            answer
        }
    };
    // 1.5 s left (1 s after the answer's reserve), the read held 2.5 s: cut, 503.
    let (status, answer) = held_for(Some(1500)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"], "The database is busy; retry the request");
    // No deadline: the read waits for its answer.
    let (status, answer) = held_for(None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["product"]["id"], product["id"]);
}

/// A product with more prices than one invocation can deactivate is deleted all the same:
/// each attempt goes on where the last stopped, answers 503 while prices are left, and
/// calls Stripe once per price in all (issue #10, item 3).
#[tokio::test]
async fn a_product_with_many_prices_is_deleted_over_several_attempts() {
    use std::time::Duration;
    let env = TestEnv::new().await;
    let product = create_product(&env, json!({"name": "Crowded"})).await;
    let product_id = product["id"].as_str().unwrap();
    for amount in 0..12 {
        create_price(&env, product_id, 100 + amount).await;
    }
    // Each deactivation takes Stripe 200 ms; an invocation has 2.5 s (2 s after its
    // answer's reserve), so a few fit in each.
    env.stripe.inject_fault(
        Fault::new("POST /v1/prices/:id", 0)
            .with_delay(Duration::from_millis(200))
            .with_times(100),
    );
    let path = item(&env, "products", &product["id"]);
    let mut attempts = Vec::new();
    loop {
        let (status, answer) = call_within(&env, Method::DELETE, &path, None, Some(2500)).await;
        attempts.push(status);
        if status == StatusCode::OK || attempts.len() == 20 {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("retry the delete"),
            "{answer}"
        );
    }
    assert_eq!(attempts.last(), Some(&StatusCode::OK), "{attempts:?}");
    assert!(
        attempts.len() >= 2,
        "it took more than one invocation: {attempts:?}"
    );
    assert_eq!(
        env.stripe.request_count("POST /v1/prices/:id"),
        12,
        "each price deactivated once, never again on a retry"
    );
    assert!(env.stripe.prices().iter().all(|p| p["active"] == false));
    let stripe_product = env
        .stripe
        .product(product["stripeProductId"].as_str().unwrap())
        .unwrap();
    assert_eq!(stripe_product["active"], false);
    assert_eq!(
        env.call(Method::GET, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, prices) = env
        .call(
            Method::GET,
            &format!("{}?activeOnly=false", env.path("prices")),
            None,
        )
        .await;
    assert_eq!(prices["prices"], json!([]));
}

/// Stripe is changed before our table, so a PATCH whose write loses must put Stripe back
/// (issue #10, item 5): to the winner's values when another PATCH won, archived when a
/// delete won.
#[tokio::test]
async fn a_patch_that_loses_its_write_puts_stripe_back() {
    use std::time::Duration;
    let env = std::sync::Arc::new(TestEnv::new().await);
    let product = create_product(&env, json!({"name": "Start"})).await;
    let stripe_id = product["stripeProductId"].as_str().unwrap().to_owned();
    let path = item(&env, "products", &product["id"]);
    let patch = |body: Value| {
        let (env, path) = (env.clone(), path.clone());
        tokio::spawn(async move { env.call(Method::PATCH, &path, Some(body)).await })
    };

    // Two renames, both read before either writes: the first changes Stripe first and
    // writes first; the second changes Stripe last and loses its write. Each is held at
    // its write (a pause point) until the test lets it go.
    let mut first_write = env.dynamo.hold_next("PutItem");
    let first = patch(json!({"name": "First"}));
    first_write.reached().await;
    let mut second_write = env.dynamo.hold_next("PutItem");
    let second = patch(json!({"name": "Second"}));
    second_write.reached().await;
    assert_eq!(env.stripe.product(&stripe_id).unwrap()["name"], "Second");
    first_write.release();
    let (status, won) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{won}");
    second_write.release();
    let (status, lost) = second.await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{lost}");
    assert_eq!(
        env.stripe.product(&stripe_id).unwrap()["name"],
        "First",
        "the winner's name"
    );
    let (_, got) = env.call(Method::GET, &path, None).await;
    assert_eq!(got["product"]["name"], "First");

    // An archived product re-activated in Stripe by a PATCH that a delete beats (the
    // PATCH read it first; its Stripe call, held 2 s by the emulator, lands after the
    // delete's archive) ends archived.
    let (status, _) = env
        .call(Method::PATCH, &path, Some(json!({"isActive": false})))
        .await;
    assert_eq!(status, StatusCode::OK);
    env.stripe.inject_fault(
        Fault::new(format!("POST /v1/products/{stripe_id}"), 0)
            .with_delay(Duration::from_millis(2000))
            .with_timing(FaultTiming::BeforeApply),
    );
    let loser = patch(json!({"isActive": true}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, deleted) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    let (status, lost) = loser.await.unwrap();
    assert!(status.is_client_error(), "{status} {lost}");
    assert_eq!(env.stripe.product(&stripe_id).unwrap()["active"], false);
    assert_eq!(
        env.call(Method::GET, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
}

/// A product change Stripe took but our table could not (DynamoDB failing) is put back in
/// Stripe, and the client's retry of it then changes Stripe again (issue #10, item 5).
#[tokio::test]
async fn an_update_whose_write_fails_puts_stripe_back_and_its_retry_applies() {
    let env = TestEnv::new().await;
    let product =
        create_product(&env, json!({"name": "Before", "metadata": {"tier": "one"}})).await;
    let stripe_id = product["stripeProductId"].as_str().unwrap();
    let path = item(&env, "products", &product["id"]);
    let patch = json!({"name": "After", "isActive": false, "metadata": {"tier": "two"}});
    env.dynamo.fail_next("PutItem", 3);
    let (status, answer) = env.call(Method::PATCH, &path, Some(patch.clone())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let in_stripe = env.stripe.product(stripe_id).unwrap();
    assert_eq!(
        (
            &in_stripe["name"],
            &in_stripe["active"],
            &in_stripe["metadata"]["tier"]
        ),
        (&json!("Before"), &json!(true), &json!("one"))
    );
    let (_, got) = env.call(Method::GET, &path, None).await;
    assert_eq!(got["product"], product);

    let (status, answer) = env.call(Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let in_stripe = env.stripe.product(stripe_id).unwrap();
    assert_eq!(
        (
            &in_stripe["name"],
            &in_stripe["active"],
            &in_stripe["metadata"]["tier"]
        ),
        (&json!("After"), &json!(false), &json!("two"))
    );
}

/// An invocation that dies at its last step, the product's write (held at the proxy while
/// the invocation's future is dropped, so none of our code after it runs, as when Lambda
/// stops a function that ran out of time), is finished by the client's retry under the
/// same Idempotency-Key once the dead attempt's claim is stale: one product, in Stripe and
/// here, whether or not the dead write reached DynamoDB.
#[tokio::test]
async fn a_create_whose_invocation_died_at_its_write_is_finished_by_its_retry() {
    let env = TestEnv::new().await;
    let send = || env.create_with_key("products", "dies-at-write", json!({"name": "Survivor"}));
    // The first PutItem claims the key; the second is the product's record.
    let mut claim = env.dynamo.hold_next("PutItem");
    let mut write = None;
    {
        let dying = send();
        let reached = async {
            claim.reached().await;
            let mut record = env.dynamo.hold_next("PutItem");
            claim.release();
            record.reached().await;
            write = Some(record);
        };
        tokio::select! {
            answer = dying => panic!("the attempt was to die, not answer: {answer:?}"),
            () = reached => {}
        }
    }
    write.expect("the write was reached").release();
    let made = env.stripe.products();
    assert_eq!(made.len(), 1);

    env.age_idempotency_claim("dies-at-write").await;
    let (status, _, created) = send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["product"]["stripeProductId"], made[0]["id"]);
    assert_eq!(env.stripe.products().len(), 1, "no second Stripe product");
    let (_, list) = env.call(Method::GET, &env.path("products"), None).await;
    assert_eq!(list["products"], json!([created["product"]]));
}
