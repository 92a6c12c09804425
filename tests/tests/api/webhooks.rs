//! Stripe → BillStack: signed events, built the way Stripe builds them, delivered to a
//! team's webhook endpoint; what each one changes (or, when it must not, leaves alone).

use billstack::clock;
use billstack::ids::CustomerId;
use billstack_tests::TestEnv;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const WHSEC: &str = "whsec_billstackTestsSigningSecret0123456789";

/// `env`'s team, reconnected with a webhook signing secret.
async fn with_webhooks() -> TestEnv {
    let env = TestEnv::new().await;
    let keys = connection::Connect::from_keys(
        stripe_emulator::DEFAULT_SECRET_KEY.to_owned(),
        None,
        Some(WHSEC.to_owned()),
    )
    .unwrap();
    connection::connect_team(&env.app, &env.team.id, &keys)
        .await
        .unwrap();
    env.stripe.clear_requests();
    env
}

/// An event as Stripe sends it.
fn event(kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": format!("evt_{}", billstack::ids::IdKind::Customer.generate().replace('_', "")),
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": created,
        "data": {"object": object},
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind,
    })
}

async fn deliver_raw(
    env: &TestEnv,
    team_id: &str,
    body: &str,
    signature: Option<&str>,
) -> (StatusCode, Value) {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(signature) = signature {
        headers.push(("stripe-signature", signature));
    }
    let (status, _, answer) = env
        .call_with_headers(
            None,
            &headers,
            Method::POST,
            &format!("/api/webhooks/stripe/{team_id}"),
            Some(body.to_owned()),
        )
        .await;
    (status, answer)
}

/// Delivers `event` signed with the team's secret, now.
async fn deliver(env: &TestEnv, event: &Value) -> (StatusCode, Value) {
    let body = event.to_string();
    let signature = webhooks::signature::sign(body.as_bytes(), WHSEC, clock::now_epoch());
    deliver_raw(env, &env.team.id, &body, Some(&signature)).await
}

fn with(mut object: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        object[k] = v.clone();
    }
    object
}

async fn get(env: &TestEnv, resource: &str, id: &Value) -> (StatusCode, Value) {
    env.call(
        Method::GET,
        &format!("{}/{}", env.path(resource), id.as_str().unwrap()),
        None,
    )
    .await
}

#[tokio::test]
async fn customer_updated_applies_once_and_an_older_event_never_overwrites_a_newer_one() {
    let env = with_webhooks().await;
    let customer = env
        .create(
            "customers",
            json!({"email": "ann@example.com", "name": "Ann"}),
        )
        .await;
    let in_stripe = env
        .stripe
        .customer(customer["stripeCustomerId"].as_str().unwrap())
        .unwrap();
    let now = clock::now_epoch();
    let mut metadata = in_stripe["metadata"].clone();
    metadata["plan"] = json!("gold");
    let newer = event(
        "customer.updated",
        now + 20,
        with(
            in_stripe.clone(),
            json!({"name": "Ann Newer", "email": "Ann.New@Example.com", "metadata": metadata}),
        ),
    );
    let older = event(
        "customer.updated",
        now + 10,
        with(in_stripe.clone(), json!({"name": "Ann Older"})),
    );
    // Delivered newest first, as Stripe may.
    let (status, body) = deliver(&env, &newer).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{body}"
    );
    let (status, body) = deliver(&env, &older).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("stale")),
        "{body}"
    );
    let (_, got) = get(&env, "customers", &customer["id"]).await;
    assert_eq!(got["customer"]["name"], "Ann Newer");
    assert_eq!(got["customer"]["email"], "ann.new@example.com");
    assert_eq!(got["customer"]["metadata"], json!({"plan": "gold"}));
    // The email moved: the old one is free, the new one taken.
    let (status, _) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "ann@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "ann.new@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A redelivery is answered 200 and applies nothing.
    let stored = env
        .store
        .get_customer(
            &env.project.id,
            &CustomerId::from(customer["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .unwrap();
    let (status, body) = deliver(&env, &newer).await;
    assert_eq!(
        (status, &body),
        (
            StatusCode::OK,
            &json!({"received": true, "duplicate": true})
        )
    );
    let again = env
        .store
        .get_customer(
            &env.project.id,
            &CustomerId::from(customer["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, stored);
}

#[tokio::test]
async fn a_tie_is_decided_by_what_stripe_holds_now() {
    let env = with_webhooks().await;
    let customer = env
        .create("customers", json!({"email": "tie@example.com"}))
        .await;
    let stripe_id = customer["stripeCustomerId"].as_str().unwrap();
    let in_stripe = env.stripe.customer(stripe_id).unwrap();
    let synced = env
        .store
        .get_customer(
            &env.project.id,
            &CustomerId::from(customer["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .unwrap()
        .stripe_synced_at;
    // Stripe's current name is "Current"; the event (same second as our write) says "Event".
    let client = stripe::ClientBuilder::new(stripe_emulator::DEFAULT_SECRET_KEY)
        .url(env.stripe.url())
        .build()
        .unwrap();
    stripe_core::customer::UpdateCustomer::new(stripe_id)
        .name("Current")
        .send(&client)
        .await
        .unwrap();
    let tie = event(
        "customer.updated",
        synced,
        with(in_stripe, json!({"name": "Event"})),
    );
    let (status, body) = deliver(&env, &tie).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{body}"
    );
    let (_, got) = get(&env, "customers", &customer["id"]).await;
    assert_eq!(got["customer"]["name"], "Current");
}

#[tokio::test]
async fn a_conflicting_email_is_recorded_on_the_customer_not_applied() {
    let env = with_webhooks().await;
    env.create("customers", json!({"email": "taken@example.com"}))
        .await;
    let b = env
        .create("customers", json!({"email": "b@example.com"}))
        .await;
    let in_stripe = env
        .stripe
        .customer(b["stripeCustomerId"].as_str().unwrap())
        .unwrap();
    let (status, body) = deliver(
        &env,
        &event(
            "customer.updated",
            clock::now_epoch() + 5,
            with(
                in_stripe,
                json!({"email": "taken@example.com", "name": "B"}),
            ),
        ),
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("email_conflict")),
        "{body}"
    );
    let stored = env
        .store
        .get_customer(
            &env.project.id,
            &CustomerId::from(b["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.email, "b@example.com");
    assert_eq!(stored.email_conflict.as_deref(), Some("taken@example.com"));
    assert_eq!(
        stored.name.as_deref(),
        Some("B"),
        "the rest of the change applies"
    );
}

#[tokio::test]
async fn customer_deleted_marks_it_deleted_and_frees_its_email() {
    let env = with_webhooks().await;
    let customer = env
        .create("customers", json!({"email": "gone@example.com"}))
        .await;
    let in_stripe = env
        .stripe
        .customer(customer["stripeCustomerId"].as_str().unwrap())
        .unwrap();
    let (status, body) = deliver(
        &env,
        &event(
            "customer.deleted",
            clock::now_epoch(),
            with(in_stripe, json!({"deleted": true})),
        ),
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("deleted")),
        "{body}"
    );
    let (status, _) = get(&env, "customers", &customer["id"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = env.call(Method::GET, &env.path("customers"), None).await;
    assert_eq!(list["customers"], json!([]));
    let kept = env
        .store
        .get_deleted_customer(
            &env.project.id,
            &CustomerId::from(customer["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .expect("the record is kept");
    assert!(kept.deleted_at.is_some());
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "gone@example.com"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the email is free again: {body}"
    );
}

#[tokio::test]
async fn an_orphan_product_is_adopted_and_product_and_price_events_apply() {
    let env = with_webhooks().await;
    // Stripe took the product, our write failed, and so did the undo: an orphan.
    env.plant_orphan("products", json!({"name": "Orphan"}))
        .await;
    let orphan = env.stripe.products()[0].clone();
    let (_, list) = env
        .call(
            Method::GET,
            &format!("{}?activeOnly=false", env.path("products")),
            None,
        )
        .await;
    assert_eq!(list["products"], json!([]));

    let now = clock::now_epoch();
    let (status, body) = deliver(&env, &event("product.created", now, orphan.clone())).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("adopted")),
        "{body}"
    );
    let id = orphan["metadata"]["billstack_id"].clone();
    let (status, got) = get(&env, "products", &id).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["product"]["name"], "Orphan");
    assert_eq!(got["product"]["stripeProductId"], orphan["id"]);

    // Changed in Stripe's dashboard.
    let (status, body) = deliver(
        &env,
        &event(
            "product.updated",
            now + 5,
            with(orphan.clone(), json!({"name": "Renamed", "active": false})),
        ),
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{body}"
    );
    let (_, got) = get(&env, "products", &id).await;
    assert_eq!(
        (
            got["product"]["name"].as_str(),
            got["product"]["isActive"].as_bool()
        ),
        (Some("Renamed"), Some(false))
    );

    // A price of it, created in Stripe (with our metadata, as an orphan would carry).
    let (_, reactivated) = env
        .call(
            Method::PATCH,
            &format!("{}/{}", env.path("products"), id.as_str().unwrap()),
            Some(json!({"isActive": true})),
        )
        .await;
    assert_eq!(reactivated["product"]["isActive"], true, "{reactivated}");
    let price = env
        .create(
            "prices",
            json!({"productId": id, "unitAmount": 500, "currency": "eur", "type": "one_time"}),
        )
        .await;
    let in_stripe = env
        .stripe
        .price(price["stripePriceId"].as_str().unwrap())
        .unwrap();
    let (status, body) = deliver(
        &env,
        &event(
            "price.updated",
            clock::now_epoch() + 5,
            with(in_stripe.clone(), json!({"active": false})),
        ),
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{body}"
    );
    let (_, got) = get(&env, "prices", &price["id"]).await;
    assert_eq!(got["price"]["isActive"], false);
    let (status, body) = deliver(
        &env,
        &event("price.deleted", clock::now_epoch() + 6, in_stripe),
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("deleted")),
        "{body}"
    );
    let (status, _) = get(&env, "prices", &price["id"]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = deliver(
        &env,
        &event("product.deleted", clock::now_epoch() + 7, orphan),
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("deleted")),
        "{body}"
    );
    let (status, _) = get(&env, "products", &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_orphan_price_is_adopted_by_its_created_event() {
    let env = with_webhooks().await;
    let product = env.create("products", json!({"name": "Plan"})).await;
    // Our write of the price fails, and so does the undo (deactivation) in Stripe.
    env.plant_orphan(
        "prices",
        json!({"productId": product["id"], "unitAmount": 1200, "currency": "usd", "interval": "month"}),
    )
    .await;
    let orphan = env.stripe.prices()[0].clone();
    let (status, body) = deliver(
        &env,
        &event("price.created", clock::now_epoch(), orphan.clone()),
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("adopted")),
        "{body}"
    );
    let (status, got) = get(&env, "prices", &orphan["metadata"]["billstack_id"]).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["price"]["unitAmount"], 1200);
    assert_eq!(got["price"]["interval"], "month");
    assert_eq!(got["price"]["productId"], product["id"]);
}

#[tokio::test]
async fn bad_deliveries_are_refused_and_change_nothing() {
    let env = with_webhooks().await;
    let customer = env
        .create(
            "customers",
            json!({"email": "safe@example.com", "name": "Safe"}),
        )
        .await;
    let in_stripe = env
        .stripe
        .customer(customer["stripeCustomerId"].as_str().unwrap())
        .unwrap();
    let change = event(
        "customer.updated",
        clock::now_epoch() + 5,
        with(in_stripe.clone(), json!({"name": "Tampered"})),
    );
    let body = change.to_string();
    let now = clock::now_epoch();
    let signed = webhooks::signature::sign(body.as_bytes(), WHSEC, now);
    let team = env.team.id.to_string();
    let cases: Vec<(String, String, Option<String>, &str)> = vec![
        (team.clone(), body.clone(), None, "invalid_signature"),
        (
            team.clone(),
            body.clone(),
            Some(webhooks::signature::sign(
                body.as_bytes(),
                "whsec_notTheTeamsSecret000000000000",
                now,
            )),
            "invalid_signature",
        ),
        (
            team.clone(),
            body.clone(),
            Some(webhooks::signature::sign(body.as_bytes(), WHSEC, now - 301)),
            "invalid_signature",
        ),
        (
            team.clone(),
            body.replace("Tampered", "Tampered!"),
            Some(signed.clone()),
            "invalid_signature",
        ),
        (
            "team_0000000000000000000000000000000f".to_owned(),
            body.clone(),
            Some(signed.clone()),
            "webhook_not_configured",
        ),
        (
            "not-a-team".to_owned(),
            body.clone(),
            Some(signed.clone()),
            "webhook_not_configured",
        ),
        (
            team.clone(),
            "{not json".to_owned(),
            Some(webhooks::signature::sign(b"{not json", WHSEC, now)),
            "invalid_event",
        ),
    ];
    for (team_id, body, signature, code) in cases {
        let (status, answer) = deliver_raw(&env, &team_id, &body, signature.as_deref()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{code}: {answer}");
        assert_eq!(answer["code"], code, "{answer}");
    }
    // A team without a webhook secret.
    let other = billstack::admin::create_team(&env.store, "No secret")
        .await
        .unwrap();
    billstack_tests::connect_stripe(&env.app, &other.id, stripe_emulator::DEFAULT_SECRET_KEY).await;
    let (status, answer) = deliver_raw(&env, &other.id, &body, Some(&signed)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("webhook_not_configured"))
    );

    // Signed, but not for us: a type we do not handle, another team's project.
    let (status, answer) = deliver(&env, &event("invoice.paid", now, json!({"id": "in_1"}))).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("ignored")),
        "{answer}"
    );
    let elsewhere = billstack::admin::create_project(&env.store, &other.id, "Theirs")
        .await
        .unwrap();
    let mut metadata = in_stripe["metadata"].clone();
    metadata["project_id"] = json!(elsewhere.id);
    let foreign = event(
        "customer.updated",
        now + 6,
        with(in_stripe, json!({"name": "Foreign", "metadata": metadata})),
    );
    let (status, answer) = deliver(&env, &foreign).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("ignored")),
        "{answer}"
    );

    let (_, got) = get(&env, "customers", &customer["id"]).await;
    assert_eq!(got["customer"]["name"], "Safe", "nothing changed");
}

/// Within `limit`, until `done` holds.
async fn eventually(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    done()
}

/// `env`'s team connected with the emulator's webhook endpoint, so every change in Stripe
/// (ours included) is delivered to BillStack through the local API, as Stripe would.
async fn with_deliveries() -> TestEnv {
    let env = TestEnv::new().await;
    let addr = billstack_local::spawn_server(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        env.app.clone(),
    )
    .await
    .unwrap();
    let url = format!("http://{addr}/api/webhooks/stripe/{}", env.team.id);
    let (_, secret) = env
        .stripe
        .add_webhook_endpoint(stripe_emulator::DEFAULT_ACCOUNT_ID, &url)
        .unwrap();
    assert!(secret.starts_with("whsec_"));
    let keys = connection::Connect::from_keys(
        stripe_emulator::DEFAULT_SECRET_KEY.to_owned(),
        None,
        Some(secret),
    )
    .unwrap();
    connection::connect_team(&env.app, &env.team.id, &keys)
        .await
        .unwrap();
    env
}

#[tokio::test]
async fn the_emulators_deliveries_reach_billstack_reversed_and_twice_and_end_in_the_newest_state() {
    let env = with_deliveries().await;
    let customer = env
        .create("customers", json!({"email": "e2e@example.com"}))
        .await;
    let stripe_id = customer["stripeCustomerId"].as_str().unwrap().to_owned();
    // Our own create's event arrives too (a type BillStack does not act on).
    assert!(
        eventually(std::time::Duration::from_secs(10), || env
            .stripe
            .delivery_attempts()
            .iter()
            .any(|a| a.event_type == "customer.created" && a.status == 200))
        .await,
        "{:?}",
        env.stripe.delivery_attempts()
    );

    // Two changes in Stripe's dashboard, a second apart; held, then delivered newest first,
    // each twice.
    env.stripe.hold_deliveries();
    let client = stripe::ClientBuilder::new(stripe_emulator::DEFAULT_SECRET_KEY)
        .url(env.stripe.url())
        .build()
        .unwrap();
    for name in ["First", "Second"] {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        stripe_core::customer::UpdateCustomer::new(stripe_id.as_str())
            .name(name)
            .send(&client)
            .await
            .unwrap();
    }
    assert_eq!(env.stripe.pending_deliveries(), 2);
    env.stripe.release_deliveries(true, true);
    let updates = || {
        env.stripe
            .delivery_attempts()
            .into_iter()
            .filter(|a| a.event_type == "customer.updated")
            .collect::<Vec<_>>()
    };
    assert!(
        eventually(std::time::Duration::from_secs(10), || updates().len() == 4).await,
        "{:?}",
        updates()
    );
    assert!(updates().iter().all(|a| a.status == 200), "{:?}", updates());
    let (_, got) = get(&env, "customers", &customer["id"]).await;
    assert_eq!(got["customer"]["name"], "Second", "the newest state wins");
    let events = env.stripe.events(stripe_emulator::DEFAULT_ACCOUNT_ID);
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "customer.updated")
            .count(),
        2
    );
}

/// Whether the emulator delivered an event of `kind` and BillStack answered it 200.
fn delivered(env: &TestEnv, kind: &str) -> bool {
    env.stripe
        .delivery_attempts()
        .into_iter()
        .any(|a| a.event_type == kind && a.status == 200)
}

#[tokio::test]
async fn a_deleted_product_and_its_price_stay_deleted_when_stripe_reports_their_archiving() {
    let env = with_deliveries().await;
    let product = env.create("products", json!({"name": "Gone"})).await;
    let price = env
        .create(
            "prices",
            json!({"productId": product["id"], "unitAmount": 500, "currency": "usd", "interval": "month"}),
        )
        .await;
    // Stripe's word of the delete's archiving arrives after the delete is done: for objects
    // that carry our metadata but have no record any more.
    env.stripe.hold_deliveries();
    let (status, answer) = env
        .call(
            Method::DELETE,
            &format!(
                "{}/{}",
                env.path("products"),
                product["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    env.stripe.release_deliveries(false, false);
    assert!(
        eventually(std::time::Duration::from_secs(10), || delivered(
            &env,
            "product.updated"
        ) && delivered(
            &env,
            "price.updated"
        ))
        .await,
        "{:?}",
        env.stripe.delivery_attempts()
    );
    assert_eq!(
        get(&env, "products", &product["id"]).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&env, "prices", &price["id"]).await.0,
        StatusCode::NOT_FOUND
    );
    for resource in ["products", "prices"] {
        let (_, listed) = env
            .call(
                Method::GET,
                &format!("{}?activeOnly=false", env.path(resource)),
                None,
            )
            .await;
        assert_eq!(listed[resource], json!([]), "{resource}");
    }
}

#[tokio::test]
async fn the_echo_of_our_own_change_does_not_fail_the_request_that_made_it() {
    use std::time::Duration;
    let env = with_deliveries().await;
    let product = env.create("products", json!({"name": "Before"})).await;
    let stripe_id = product["stripeProductId"].as_str().unwrap();
    // Stripe applies the rename, and its product.updated reaches BillStack, before Stripe
    // answers the PATCH's call: the echo lands between our Stripe call and our write.
    env.stripe.inject_fault(
        billstack_tests::Fault::new(format!("POST /v1/products/{stripe_id}"), 0)
            .with_delay(Duration::from_millis(1500))
            .with_timing(billstack_tests::FaultTiming::AfterApply),
    );
    let item = format!(
        "{}/{}",
        env.path("products"),
        product["id"].as_str().unwrap()
    );
    let (status, answer) = env
        .call(Method::PATCH, &item, Some(json!({"name": "After"})))
        .await;
    assert!(
        delivered(&env, "product.updated"),
        "the echo came first: {:?}",
        env.stripe.delivery_attempts()
    );
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["product"]["name"], "After");
    assert_eq!(env.stripe.product(stripe_id).unwrap()["name"], "After");
    let (_, got) = get(&env, "products", &product["id"]).await;
    assert_eq!(got["product"]["name"], "After");

    // The delete of a product with a price meets the echoes of its own archiving too.
    env.create(
        "prices",
        json!({"productId": product["id"], "unitAmount": 500, "currency": "usd", "interval": "month"}),
    )
    .await;
    env.stripe.inject_fault(
        billstack_tests::Fault::new(format!("POST /v1/products/{stripe_id}"), 0)
            .with_delay(Duration::from_millis(1500))
            .with_timing(billstack_tests::FaultTiming::AfterApply),
    );
    let (status, answer) = env.call(Method::DELETE, &item, None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        get(&env, "products", &product["id"]).await.0,
        StatusCode::NOT_FOUND
    );
}

/// An event whose apply fails (DynamoDB failing while it writes) is answered 5xx and taken
/// back, so Stripe's redelivery of it applies it rather than being counted a duplicate.
#[tokio::test]
async fn an_event_whose_apply_fails_is_applied_by_stripes_redelivery() {
    let env = with_webhooks().await;
    let customer = env
        .create(
            "customers",
            json!({"email": "redo@example.com", "name": "Old"}),
        )
        .await;
    let in_stripe = env
        .stripe
        .customer(customer["stripeCustomerId"].as_str().unwrap())
        .unwrap();
    let updated = event(
        "customer.updated",
        clock::now_epoch() + 10,
        with(in_stripe, json!({"name": "New"})),
    );
    // The event's own record (a PutItem) goes through; the apply's write after it fails.
    let mut recorded = env.dynamo.hold_next("PutItem");
    let dynamo = &env.dynamo;
    let ((status, answer), ()) = tokio::join!(deliver(&env, &updated), async move {
        recorded.reached().await;
        dynamo.fail_next("TransactWriteItems", 3);
        recorded.release();
    });
    assert!(status.is_server_error(), "{status} {answer}");
    let (_, got) = get(&env, "customers", &customer["id"]).await;
    assert_eq!(got["customer"]["name"], "Old");

    let (status, answer) = deliver(&env, &updated).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (StatusCode::OK, Some("applied")),
        "{answer}"
    );
    let (_, got) = get(&env, "customers", &customer["id"]).await;
    assert_eq!(got["customer"]["name"], "New");
    let (status, answer) = deliver(&env, &updated).await;
    assert_eq!(
        (status, answer["duplicate"].as_bool()),
        (StatusCode::OK, Some(true))
    );
}
