//! A team's backfill from Stripe: over an account of thousands of objects, in many steps
//! (each "invocation" of the test's job runner runs one), repairing every drift planted.

use std::time::{Duration, Instant};

use billstack_tests::TestEnv;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use stripe_core::customer::{CreateCustomer, UpdateCustomer};
use stripe_product::price::{CreatePrice, UpdatePrice};
use stripe_product::product::{CreateProduct, UpdateProduct};

fn client(env: &TestEnv) -> stripe::Client {
    stripe::ClientBuilder::new(stripe_emulator::DEFAULT_SECRET_KEY)
        .url(env.stripe.url())
        .build()
        .unwrap()
}

async fn status(env: &TestEnv) -> Value {
    let (code, body) = env
        .call_as(
            Some(&env.owner_token()),
            Method::GET,
            &format!("/api/billstack/teams/{}/stripe/status", env.team.id),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

async fn get(env: &TestEnv, resource: &str, id: &Value) -> Value {
    let (code, body) = env
        .call(
            Method::GET,
            &format!("{}/{}", env.path(resource), id.as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_backfill_over_thousands_of_objects_runs_in_steps_and_repairs_every_drift() {
    let env = TestEnv::new().await;
    let stripe = client(&env);

    // Ours, then changed in Stripe behind our back (no webhook reaches us here).
    let customer = env
        .create(
            "customers",
            json!({"email": "drift@example.com", "name": "Before"}),
        )
        .await;
    let product = env.create("products", json!({"name": "Before"})).await;
    let price = env
        .create(
            "prices",
            json!({"productId": product["id"], "unitAmount": 900, "currency": "usd", "type": "one_time"}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    UpdateCustomer::new(customer["stripeCustomerId"].as_str().unwrap())
        .name("After")
        .metadata([("tier".to_owned(), "gold".to_owned())])
        .send(&stripe)
        .await
        .unwrap();
    UpdateProduct::new(product["stripeProductId"].as_str().unwrap())
        .name("After")
        .active(false)
        .send(&stripe)
        .await
        .unwrap();
    UpdatePrice::new(price["stripePriceId"].as_str().unwrap())
        .active(false)
        .send(&stripe)
        .await
        .unwrap();

    // Deleted in Stripe's dashboard, still ours here.
    let doomed_customer = env
        .create("customers", json!({"email": "doomed@example.com"}))
        .await;
    let doomed_product = env.create("products", json!({"name": "Doomed"})).await;
    stripe_core::customer::DeleteCustomer::new(
        doomed_customer["stripeCustomerId"].as_str().unwrap(),
    )
    .send(&stripe)
    .await
    .unwrap();
    stripe_product::product::DeleteProduct::new(
        doomed_product["stripeProductId"].as_str().unwrap(),
    )
    .send(&stripe)
    .await
    .unwrap();

    // An orphan product and an orphan price: our create reached Stripe, our writes failed,
    // and so did the undo.
    env.plant_orphan("products", json!({"name": "Orphan"}))
        .await;
    let live = env.create("products", json!({"name": "Live"})).await;
    env.plant_orphan(
        "prices",
        json!({"productId": live["id"], "unitAmount": 300, "currency": "eur", "interval": "year"}),
    )
    .await;

    // The rest of the account: objects no project of ours owns.
    let mut tasks = tokio::task::JoinSet::new();
    for batch in 0..10 {
        let stripe = client(&env);
        tasks.spawn(async move {
            for i in 0..250 {
                CreateCustomer::new()
                    .email(format!("other{batch}-{i}@example.com"))
                    .send(&stripe)
                    .await
                    .unwrap();
            }
        });
    }
    for batch in 0..3 {
        let stripe = client(&env);
        tasks.spawn(async move {
            for i in 0..100 {
                let product = CreateProduct::new(format!("Other {batch}-{i}"))
                    .send(&stripe)
                    .await
                    .unwrap();
                // Three prices each, four for a third of them: 1,000 with ours.
                let amounts: &[i64] = if i % 3 == 0 {
                    &[100, 200, 300, 400]
                } else {
                    &[100, 200, 300]
                };
                for &amount in amounts {
                    CreatePrice::new(stripe_types::Currency::USD)
                        .product(product.id.as_str())
                        .unit_amount(amount + i)
                        .send(&stripe)
                        .await
                        .unwrap();
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let orphan_product = env
        .stripe
        .products()
        .into_iter()
        .find(|p| p["name"] == "Orphan")
        .unwrap();
    let orphan_price = env
        .stripe
        .prices()
        .into_iter()
        .find(|p| p["unit_amount"] == 300 && p["currency"] == "eur")
        .unwrap();

    // A member may not start one; the owner may.
    let path = format!("/api/billstack/teams/{}/stripe/backfill", env.team.id);
    env.add_member("user_member", billstack::model::Role::Member)
        .await;
    let (code, _) = env
        .call_as(
            Some(&env.token("user_member")),
            Method::POST,
            &path,
            Some(json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, started) = env
        .call_as(
            Some(&env.owner_token()),
            Method::POST,
            &path,
            Some(json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{started}");
    assert_eq!(started["success"], true);
    assert_eq!(started["syncStatus"], "syncing");
    assert!(started["jobId"].as_str().unwrap().starts_with("job_"));

    let began = Instant::now();
    let done = loop {
        let seen = status(&env).await;
        if seen["syncStatus"] == "ready" {
            break seen;
        }
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "not done in 2 minutes: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let job = &done["backfill"];
    assert_eq!(job["state"], "done", "{job}");
    // 2,501 customers, 303 products and 1,004 prices: at least 26 + 4 + 11 pages.
    assert!(job["steps"].as_u64().unwrap() >= 41, "{job}");
    assert_eq!(job["counts"]["customers"]["scanned"], 2501, "{job}");
    assert_eq!(job["counts"]["customers"]["updated"], 1, "{job}");
    assert_eq!(job["counts"]["products"]["scanned"], 303, "{job}");
    assert_eq!(job["counts"]["products"]["created"], 1, "{job}");
    assert_eq!(job["counts"]["products"]["updated"], 1, "{job}");
    assert_eq!(job["counts"]["prices"]["scanned"], 1004, "{job}");
    assert_eq!(job["counts"]["prices"]["created"], 1, "{job}");
    assert_eq!(job["counts"]["prices"]["updated"], 1, "{job}");
    assert_eq!(job["counts"]["customers"]["deleted"], 1, "{job}");
    assert_eq!(job["counts"]["products"]["deleted"], 1, "{job}");
    assert_eq!(job["counts"]["prices"]["deleted"], 0, "{job}");

    for (resource, record) in [
        ("customers", &doomed_customer),
        ("products", &doomed_product),
    ] {
        let (code, _) = env
            .call(
                Method::GET,
                &format!("{}/{}", env.path(resource), record["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{resource} deleted in Stripe");
    }
    let (code, _) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "doomed@example.com"})),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::CREATED,
        "the deleted customer's email is free"
    );
    let got = get(&env, "customers", &customer["id"]).await;
    assert_eq!(got["customer"]["name"], "After");
    assert_eq!(got["customer"]["metadata"], json!({"tier": "gold"}));
    let got = get(&env, "products", &product["id"]).await;
    assert_eq!(
        (
            got["product"]["name"].as_str(),
            got["product"]["isActive"].as_bool()
        ),
        (Some("After"), Some(false))
    );
    assert_eq!(
        get(&env, "prices", &price["id"]).await["price"]["isActive"],
        false
    );
    let adopted = get(
        &env,
        "products",
        &orphan_product["metadata"]["billstack_id"],
    )
    .await;
    assert_eq!(adopted["product"]["name"], "Orphan");
    let adopted = get(&env, "prices", &orphan_price["metadata"]["billstack_id"]).await;
    assert_eq!(adopted["price"]["productId"], live["id"]);
    assert_eq!(adopted["price"]["interval"], "year");

    // Again, nothing left to repair.
    let (code, _) = env
        .call_as(
            Some(&env.owner_token()),
            Method::POST,
            &path,
            Some(json!({"objects": ["products"]})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let again = loop {
        let seen = status(&env).await;
        if seen["syncStatus"] == "ready" && seen["backfill"]["objects"] == json!(["products"]) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        again["backfill"]["counts"]["products"]["updated"], 0,
        "{again}"
    );
    assert_eq!(
        again["backfill"]["counts"]["products"]["created"], 0,
        "{again}"
    );
}

#[tokio::test]
async fn a_backfill_needs_a_connection_and_a_well_formed_request() {
    let env = TestEnv::new().await;
    let path = format!("/api/billstack/teams/{}/stripe/backfill", env.team.id);
    for (body, param) in [
        (json!({"objects": ["invoices"]}), "objects"),
        (json!({"objects": []}), "objects"),
        (json!({"createdAfter": "yesterday"}), "createdAfter"),
        (json!({"createdAfter": -1}), "createdAfter"),
        (json!({"since": 1}), ""),
    ] {
        let (code, answer) = env
            .call_as(
                Some(&env.owner_token()),
                Method::POST,
                &path,
                Some(body.clone()),
            )
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}: {answer}");
        if !param.is_empty() {
            assert_eq!(answer["param"], param, "{answer}");
        }
    }
    let (code, _) = env
        .call_as(
            Some(&env.owner_token()),
            Method::DELETE,
            &format!("/api/billstack/teams/{}/stripe", env.team.id),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, answer) = env
        .call_as(Some(&env.owner_token()), Method::POST, &path, None)
        .await;
    assert_eq!(
        (code, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("stripe_not_connected"))
    );
}
