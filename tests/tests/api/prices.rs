//! The prices API end to end: handlers → DynamoDB Local and the Stripe emulator.

use billstack::ids::{PriceId, ProductId};
use billstack_tests::{Fault, TestEnv, project_path};
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn product(env: &TestEnv, name: &str) -> String {
    let product = env.create("products", json!({"name": name})).await;
    product["id"].as_str().unwrap().to_owned()
}

async fn create(env: &TestEnv, body: Value) -> Value {
    env.create("prices", body).await
}

fn item(env: &TestEnv, id: &Value) -> String {
    format!("{}/{}", env.path("prices"), id.as_str().unwrap())
}

fn ids(list: &Value) -> Vec<&str> {
    list["prices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn create_recurring_and_one_time_prices_in_stripe_and_dynamodb() {
    let env = TestEnv::new().await;
    let product_id = product(&env, "Pro").await;
    let stored_product = env
        .store
        .get_product(&env.project.id, &ProductId::from(&product_id))
        .await
        .unwrap()
        .unwrap();

    let price = create(
        &env,
        json!({"productId": product_id, "unitAmount": 2999, "currency": "USD", "type": "recurring", "interval": "month", "intervalCount": 1, "metadata": {"tier": "pro"}}),
    )
    .await;
    let id = price["id"].as_str().unwrap();
    assert!(id.starts_with("pri_"));
    assert_eq!(price["productId"], product_id.as_str());
    assert_eq!(price["unitAmount"], 2999);
    assert_eq!(price["currency"], "usd");
    assert_eq!(price["type"], "recurring");
    assert_eq!(price["interval"], "month");
    assert_eq!(price["intervalCount"], 1);
    assert_eq!(price["isActive"], true);
    assert_eq!(price["metadata"], json!({"tier": "pro"}));
    assert!(price["createdAt"].as_str().unwrap().ends_with('Z'));

    let in_stripe = env
        .stripe
        .price(price["stripePriceId"].as_str().unwrap())
        .unwrap();
    assert_eq!(
        in_stripe["product"],
        stored_product.stripe_product_id.as_str()
    );
    assert_eq!(in_stripe["unit_amount"], 2999);
    assert_eq!(in_stripe["currency"], "usd");
    assert_eq!(in_stripe["type"], "recurring");
    assert_eq!(in_stripe["recurring"]["interval"], "month");
    assert_eq!(in_stripe["recurring"]["interval_count"], 1);
    assert_eq!(
        in_stripe["metadata"],
        json!({"tier": "pro", "project_id": env.project.id, "billstack_id": id})
    );
    let stored = env
        .store
        .get_price(&env.project.id, &PriceId::from(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.unit_amount, 2999);

    // Defaults: recurring, intervalCount 1.
    let yearly = create(&env, json!({"productId": product_id, "unitAmount": 30000, "currency": "eur", "interval": "year"})).await;
    assert_eq!(
        (yearly["type"].as_str(), yearly["intervalCount"].as_i64()),
        (Some("recurring"), Some(1))
    );

    let once = create(
        &env,
        json!({"productId": product_id, "unitAmount": 0, "currency": "gbp", "type": "one_time"}),
    )
    .await;
    assert_eq!(once["type"], "one_time");
    assert_eq!(once["interval"], Value::Null);
    assert_eq!(once["intervalCount"], Value::Null);
    let in_stripe = env
        .stripe
        .price(once["stripePriceId"].as_str().unwrap())
        .unwrap();
    assert_eq!(in_stripe["type"], "one_time");
    assert_eq!(in_stripe["recurring"], Value::Null);

    // A whole number written with a zero fraction is that integer, as JSON Schema says.
    let weekly = create(&env, json!({"productId": product_id, "unitAmount": 1500.0, "currency": "usd", "interval": "week", "intervalCount": 2.0})).await;
    assert_eq!(
        (
            weekly["unitAmount"].as_i64(),
            weekly["intervalCount"].as_i64()
        ),
        (Some(1500), Some(2))
    );
    let in_stripe = env
        .stripe
        .price(weekly["stripePriceId"].as_str().unwrap())
        .unwrap();
    assert_eq!(in_stripe["unit_amount"], 1500);
    assert_eq!(in_stripe["recurring"]["interval_count"], 2);

    let (status, got) = env.call(Method::GET, &item(&env, &price["id"]), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["price"], price);
}

#[tokio::test]
async fn bad_price_input_is_400_naming_it_and_writes_nothing() {
    let env = TestEnv::new().await;
    let product_id = product(&env, "P").await;
    let calls = env.stripe.request_count("*");
    let cases = [
        (
            json!({"unitAmount": 1, "currency": "usd", "interval": "month"}),
            "productId",
        ),
        (
            json!({"productId": "pp_0000", "unitAmount": 1, "currency": "usd", "interval": "month"}),
            "productId",
        ),
        (
            json!({"productId": "prod_123", "unitAmount": 1, "currency": "usd", "interval": "month"}),
            "productId",
        ),
        (
            json!({"productId": product_id, "currency": "usd", "interval": "month"}),
            "unitAmount",
        ),
        (
            json!({"productId": product_id, "unitAmount": 29.99, "currency": "usd", "interval": "month"}),
            "unitAmount",
        ),
        (
            json!({"productId": product_id, "unitAmount": -5, "currency": "usd", "interval": "month"}),
            "unitAmount",
        ),
        (
            json!({"productId": product_id, "unitAmount": 100_000_000, "currency": "usd", "interval": "month"}),
            "unitAmount",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "interval": "month"}),
            "currency",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "dollars", "interval": "month"}),
            "currency",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "usd"}),
            "interval",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "usd", "interval": "hour"}),
            "interval",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "usd", "interval": "month", "intervalCount": 37}),
            "intervalCount",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "usd", "interval": "week", "intervalCount": 157}),
            "intervalCount",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "usd", "interval": "day", "intervalCount": 0}),
            "intervalCount",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "usd", "interval": "day", "intervalCount": 1.5}),
            "intervalCount",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "usd", "type": "one_time", "interval": "month"}),
            "interval",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "usd", "type": "tiered", "interval": "month"}),
            "type",
        ),
        (
            json!({"productId": product_id, "unitAmount": 1, "currency": "usd", "interval": "month", "tiers": []}),
            "tiers",
        ),
    ];
    for (body, param) in cases {
        let (status, answer) = env
            .call(Method::POST, &env.path("prices"), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["param"], param, "{body}: {answer}");
    }
    // A product of another project is just as unknown here.
    let other = env.other_project().await;
    let (_, foreign) = env
        .call(
            Method::POST,
            &project_path(&env.team.id, &other.id, "products"),
            Some(json!({"name": "Theirs"})),
        )
        .await;
    let body = json!({"productId": foreign["product"]["id"], "unitAmount": 1, "currency": "usd", "interval": "month"});
    let (status, answer) = env
        .call(Method::POST, &env.path("prices"), Some(body))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("No such product"),
        "{answer}"
    );

    assert_eq!(env.stripe.request_count("POST /v1/prices"), 0);
    assert_eq!(
        env.stripe.request_count("*"),
        calls + 1,
        "only the foreign product's create"
    );
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{}?activeOnly=false", env.path("prices")),
            None,
        )
        .await;
    assert_eq!(list["prices"], json!([]));
}

#[tokio::test]
async fn list_by_product_and_active_newest_first() {
    let env = TestEnv::new().await;
    let a = product(&env, "A").await;
    let b = product(&env, "B").await;
    let a1 = create(
        &env,
        json!({"productId": a, "unitAmount": 1, "currency": "usd", "interval": "month"}),
    )
    .await;
    let b1 = create(
        &env,
        json!({"productId": b, "unitAmount": 2, "currency": "usd", "interval": "month"}),
    )
    .await;
    let a2 = create(
        &env,
        json!({"productId": a, "unitAmount": 3, "currency": "usd", "type": "one_time"}),
    )
    .await;
    let (status, _) = env
        .call(
            Method::PATCH,
            &item(&env, &a1["id"]),
            Some(json!({"isActive": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let base = env.path("prices");
    let id = |p: &Value| p["id"].as_str().unwrap().to_owned();
    let (_, list) = env.call(Method::GET, &base, None).await;
    assert_eq!(ids(&list), vec![id(&a2), id(&b1)]);
    let (_, list) = env
        .call(Method::GET, &format!("{base}?activeOnly=false"), None)
        .await;
    assert_eq!(ids(&list), vec![id(&a2), id(&b1), id(&a1)]);
    let (_, list) = env
        .call(Method::GET, &format!("{base}?productId={a}"), None)
        .await;
    assert_eq!(ids(&list), vec![id(&a2)]);
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{base}?productId={a}&activeOnly=false"),
            None,
        )
        .await;
    assert_eq!(ids(&list), vec![id(&a2), id(&a1)]);
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{base}?productId={a}&activeOnly=false&limit=1&offset=1"),
            None,
        )
        .await;
    assert_eq!(ids(&list), vec![id(&a1)]);
    let (_, list) = env
        .call(Method::GET, &format!("{base}?productId=pp_unknown"), None)
        .await;
    assert_eq!(list["prices"], json!([]));

    // productId is served by a Query of that product's prices only.
    env.dynamo.reset_counts();
    let (status, _) = env
        .call(Method::GET, &format!("{base}?productId={b}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(env.dynamo.count("Query"), 1);

    for (query, param) in [
        ("activeOnly=nope", "activeOnly"),
        ("productId=prod_1", "productId"),
        ("product=pp_1", "product"),
    ] {
        let (status, body) = env
            .call(Method::GET, &format!("{base}?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["param"], param);
    }
}

#[tokio::test]
async fn only_is_active_and_metadata_can_change() {
    let env = TestEnv::new().await;
    let product_id = product(&env, "P").await;
    let price = create(&env, json!({"productId": product_id, "unitAmount": 500, "currency": "usd", "interval": "week", "metadata": {"a": "1", "b": "2"}})).await;
    let path = item(&env, &price["id"]);
    let stripe_id = price["stripePriceId"].as_str().unwrap();

    for field in [
        "unitAmount",
        "currency",
        "interval",
        "intervalCount",
        "type",
        "productId",
    ] {
        let (status, body) = env
            .call(Method::PATCH, &path, Some(json!({field: 1})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(body["param"], field);
        assert!(
            body["error"].as_str().unwrap().contains("new price"),
            "{body}"
        );
    }
    let (status, body) = env
        .call(Method::PATCH, &path, Some(json!({"nickname": "x"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["param"], "nickname");
    assert_eq!(env.stripe.request_count("POST /v1/prices/:id"), 0);

    let (status, body) = env
        .call(
            Method::PATCH,
            &path,
            Some(json!({"isActive": false, "metadata": {"b": "3"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["price"]["isActive"], false);
    assert_eq!(body["price"]["metadata"], json!({"b": "3"}));
    assert_eq!(body["price"]["unitAmount"], 500);
    let in_stripe = env.stripe.price(stripe_id).unwrap();
    assert_eq!(in_stripe["active"], false);
    assert_eq!(
        in_stripe["metadata"],
        json!({"b": "3", "project_id": env.project.id, "billstack_id": price["id"]})
    );
    assert!(
        !env.store
            .get_price(
                &env.project.id,
                &PriceId::from(price["id"].as_str().unwrap())
            )
            .await
            .unwrap()
            .unwrap()
            .is_active
    );

    let (status, body) = env
        .call(Method::PATCH, &path, Some(json!({"isActive": true})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["price"]["isActive"], true);
    assert_eq!(env.stripe.price(stripe_id).unwrap()["active"], true);
}

#[tokio::test]
async fn delete_deactivates_in_stripe_and_removes_ours() {
    let env = TestEnv::new().await;
    let product_id = product(&env, "P").await;
    let price = create(
        &env,
        json!({"productId": product_id, "unitAmount": 500, "currency": "usd", "interval": "month"}),
    )
    .await;
    let path = item(&env, &price["id"]);

    // Stripe failing first: nothing changes, and the retry works.
    env.stripe
        .inject_fault(Fault::new("POST /v1/prices/:id", 500).with_times(2));
    let (status, _) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, _) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true}));
    assert_eq!(
        env.stripe
            .price(price["stripePriceId"].as_str().unwrap())
            .unwrap()["active"],
        false
    );
    let (status, body) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "Price not found");
    let (status, _) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The product is still there.
    let (status, _) = env
        .call(
            Method::GET,
            &format!("{}/{product_id}", env.path("products")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn our_write_failing_after_stripe_created_the_price_deactivates_it() {
    let env = TestEnv::new().await;
    let product_id = product(&env, "P").await;
    env.dynamo.fail_next("TransactWriteItems", 3);
    let body =
        json!({"productId": product_id, "unitAmount": 700, "currency": "usd", "interval": "month"});
    let (status, _) = env
        .call(Method::POST, &env.path("prices"), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Stripe keeps every price, so the half-made one is deactivated; we have none.
    let stripe_prices = env.stripe.prices();
    assert_eq!(stripe_prices.len(), 1);
    assert_eq!(stripe_prices[0]["active"], false);
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{}?activeOnly=false", env.path("prices")),
            None,
        )
        .await;
    assert_eq!(list["prices"], json!([]));

    let price = create(&env, body).await;
    assert_eq!(
        env.stripe
            .price(price["stripePriceId"].as_str().unwrap())
            .unwrap()["active"],
        true
    );
}

#[tokio::test]
async fn unknown_or_foreign_price_is_404() {
    let env = TestEnv::new().await;
    let other = env.other_project().await;
    let other_products = project_path(&env.team.id, &other.id, "products");
    let (_, p) = env
        .call(
            Method::POST,
            &other_products,
            Some(json!({"name": "Theirs"})),
        )
        .await;
    let (status, theirs) = env
        .call(
            Method::POST,
            &project_path(&env.team.id, &other.id, "prices"),
            Some(json!({"productId": p["product"]["id"], "unitAmount": 1, "currency": "usd", "interval": "month"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for id in [theirs["price"]["id"].as_str().unwrap(), "pri_0000", "x"] {
        for method in [Method::GET, Method::PATCH, Method::DELETE] {
            let body = (method == Method::PATCH).then(|| json!({"isActive": false}));
            let (status, answer) = env
                .call(
                    method.clone(),
                    &format!("{}/{id}", env.path("prices")),
                    body,
                )
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {id}");
            assert_eq!(answer["error"], "Price not found");
        }
    }
    assert_eq!(
        env.stripe
            .price(theirs["price"]["stripePriceId"].as_str().unwrap())
            .unwrap()["active"],
        true
    );
}

/// Concurrent creates of prices for one product: their transactions each check the product,
/// and DynamoDB cancels the ones that overlap with `TransactionConflict`. That is a
/// retryable 503, never a 500, and Stripe and the table still agree (issue #10, item 1).
#[tokio::test]
async fn concurrent_price_creates_for_one_product_are_never_a_500() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    let product_id = product(&env, "Busy").await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..12 {
        let env = env.clone();
        let body = json!({"productId": product_id, "unitAmount": 100 + n, "currency": "usd", "type": "one_time"});
        tasks.spawn(async move {
            env.call(Method::POST, &env.path("prices"), Some(body))
                .await
        });
    }
    let mut created = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, answer) = result.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}: {answer}"
        );
        if status == StatusCode::CREATED {
            created.push(
                answer["price"]["stripePriceId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    // What DynamoDB answers when such transactions overlap, made deterministic: the next
    // create's transaction is cancelled with TransactionConflict.
    env.dynamo.conflict_next_transactions(1, 2);
    let (status, answer) = env
        .call(Method::POST, &env.path("prices"), Some(json!({"productId": product_id, "unitAmount": 99, "currency": "usd", "type": "one_time"})))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["code"], "service_unavailable");
    // Every active Stripe price is one of ours; the others were deactivated again.
    let mut active: Vec<String> = env
        .stripe
        .prices()
        .into_iter()
        .filter(|p| p["active"] == true)
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    active.sort();
    created.sort();
    assert_eq!(active, created);
}

/// A price PATCH whose write loses puts Stripe back to the winner's state (issue #10, item
/// 5): both read the price, the first changes Stripe and writes first, the second changes
/// Stripe last and loses its write; each is held at its write until the test lets it go.
#[tokio::test]
async fn a_price_patch_that_loses_its_write_puts_stripe_back() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    let product_id = product(&env, "P").await;
    let price = create(
        &env,
        json!({"productId": product_id, "unitAmount": 500, "currency": "usd", "interval": "month"}),
    )
    .await;
    let stripe_id = price["stripePriceId"].as_str().unwrap().to_owned();
    let path = item(&env, &price["id"]);
    let patch = |body: Value| {
        let (env, path) = (env.clone(), path.clone());
        tokio::spawn(async move { env.call(Method::PATCH, &path, Some(body)).await })
    };
    let mut first_write = env.dynamo.hold_next("PutItem");
    let first = patch(json!({"metadata": {"tier": "first"}}));
    first_write.reached().await;
    let mut second_write = env.dynamo.hold_next("PutItem");
    let second = patch(json!({"isActive": false, "metadata": {"tier": "second"}}));
    second_write.reached().await;
    first_write.release();
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    second_write.release();
    let (status, lost) = second.await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{lost}");

    let in_stripe = env.stripe.price(&stripe_id).unwrap();
    assert_eq!(in_stripe["active"], true, "the winner left it active");
    assert_eq!(in_stripe["metadata"]["tier"], "first");
    let (_, got) = env.call(Method::GET, &path, None).await;
    assert_eq!(got["price"]["metadata"], json!({"tier": "first"}));
    assert_eq!(got["price"]["isActive"], true);
}

/// A price delete that fails at either step leaves the price as it was, here and in
/// Stripe: Stripe failing changes nothing; our delete failing after Stripe deactivated the
/// price puts Stripe back (active again). The retry then deletes it and deactivates it in
/// Stripe for real, not as a replay of the attempt that was put back.
#[tokio::test]
async fn a_delete_failing_at_either_step_leaves_the_price_and_its_retry_deletes_it() {
    let env = TestEnv::new().await;
    let product_id = product(&env, "Kept").await;
    let price = create(
        &env,
        json!({"productId": product_id, "unitAmount": 900, "currency": "usd", "interval": "month"}),
    )
    .await;
    let stripe_id = price["stripePriceId"].as_str().unwrap();
    let path = item(&env, &price["id"]);
    let unchanged = || async {
        let (status, got) = env.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["price"], price);
        assert_eq!(env.stripe.price(stripe_id).unwrap()["active"], true);
    };

    env.stripe
        .inject_fault(Fault::new("POST /v1/prices/:id", 500).with_times(2));
    let (status, answer) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    unchanged().await;

    env.dynamo.fail_next("DeleteItem", 3);
    let (status, answer) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    unchanged().await;

    let (status, answer) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(env.stripe.price(stripe_id).unwrap()["active"], false);
}
