//! Each team's own Stripe account, end to end: connect (checked with the Stripe emulator,
//! encrypted with the local KMS), status, webhook URL, disconnect; every Stripe call going
//! to the team's own account; and what a bad connect, an unreachable KMS or a ciphertext
//! copied between teams leave behind.

use std::sync::Arc;
use std::time::Duration;

use billstack::model::{Project, Role, Team};
use billstack_tests::TestEnv;
use http::{Method, StatusCode};
use serde_json::{Value, json};

fn stripe_path(team_id: &str, rest: &str) -> String {
    format!("/api/billstack/teams/{team_id}/stripe{rest}")
}

/// A second team in `env`'s table, with its owner, a project and a full-access key.
struct OtherTeam {
    team: Team,
    project: Project,
    key: String,
    owner_token: String,
}

async fn other_team(env: &TestEnv, name: &str) -> OtherTeam {
    let seeded = billstack_tests::seed_team(&env.store, name).await;
    OtherTeam {
        owner_token: env.token(&seeded.owner),
        team: seeded.team,
        project: seeded.project,
        key: seeded.key,
    }
}

async fn connect(env: &TestEnv, token: &str, team_id: &str, body: Value) -> (StatusCode, Value) {
    env.call_as(
        Some(token),
        Method::POST,
        &stripe_path(team_id, "/connect"),
        Some(body),
    )
    .await
}

async fn status(env: &TestEnv, token: &str, team_id: &str) -> Value {
    let (code, body) = env
        .call_as(
            Some(token),
            Method::GET,
            &stripe_path(team_id, "/status"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

/// The team's stored connection record, raw.
async fn stored(env: &TestEnv, team_id: &str) -> Option<billstack::model::StripeConnection> {
    env.store
        .get_stripe_connection(&team_id.into())
        .await
        .unwrap()
}

#[tokio::test]
async fn two_teams_write_only_to_their_own_stripe_accounts() {
    let env = TestEnv::new().await;
    let b = other_team(&env, "Team B").await;
    let account = env.stripe.open_account(Some("Team B Inc"));
    let (code, body) = connect(
        &env,
        &b.owner_token,
        &b.team.id,
        json!({
            "secretKey": account.secret_key,
            "publishableKey": account.publishable_key,
            "webhookSecret": "whsec_0123456789abcdefghijklmnopqrstuv",
        }),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["syncStatus"], "pending");
    assert!(
        body["webhookUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/webhooks/stripe/{}", b.team.id)),
        "{body}"
    );

    let status_b = status(&env, &b.owner_token, &b.team.id).await;
    assert_eq!(
        status_b,
        json!({
            "backfill": null,
            "connected": true,
            "isActive": true,
            "syncStatus": "pending",
            "accountId": account.id,
            "accountName": "Team B Inc",
            "livemode": false,
            "keyValid": true,
            "webhookSecretSet": true,
        })
    );
    // At rest: ciphertexts, never the keys themselves.
    let record = stored(&env, &b.team.id).await.unwrap();
    let raw = format!(
        "{} {:?}",
        record.secret_key_ciphertext, record.webhook_secret_ciphertext
    );
    assert!(
        !raw.contains("sk_test_") && !raw.contains("whsec_"),
        "{raw}"
    );
    assert_eq!(
        record.publishable_key.as_deref(),
        Some(account.publishable_key.as_str())
    );

    // Each team's customers, products and prices land in its own account only.
    let path_b =
        |resource: &str| billstack_tests::project_path(&b.team.id, &b.project.id, resource);
    let (code, customer_b) = env
        .call_as(
            Some(&b.key),
            Method::POST,
            &path_b("customers"),
            Some(json!({"email": "b@example.com"})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{customer_b}");
    let (code, product_b) = env
        .call_as(
            Some(&b.key),
            Method::POST,
            &path_b("products"),
            Some(json!({"name": "B's plan"})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{product_b}");
    let (code, price_b) = env
        .call_as(
            Some(&b.key),
            Method::POST,
            &path_b("prices"),
            Some(json!({"productId": product_b["product"]["id"], "unitAmount": 900, "currency": "usd", "type": "one_time"})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{price_b}");
    let customer_a = env
        .create("customers", json!({"email": "a@example.com"}))
        .await;
    let product_a = env.create("products", json!({"name": "A's plan"})).await;

    let in_b = env.stripe.account(&account.id);
    assert_eq!(in_b.customers().len(), 1);
    assert_eq!(
        in_b.customers()[0]["id"],
        customer_b["customer"]["stripeCustomerId"]
    );
    assert_eq!(
        in_b.customers()[0]["metadata"]["project_id"],
        b.project.id.as_str()
    );
    assert_eq!(in_b.products().len(), 1);
    assert_eq!(in_b.prices().len(), 1);
    assert_eq!(in_b.prices()[0]["id"], price_b["price"]["stripePriceId"]);
    let in_a = env.stripe.default_account();
    assert_eq!(in_a.customers().len(), 1);
    assert_eq!(in_a.customers()[0]["id"], customer_a["stripeCustomerId"]);
    assert_eq!(in_a.products().len(), 1);
    assert_eq!(in_a.products()[0]["id"], product_a["stripeProductId"]);
    assert!(in_a.prices().is_empty());
}

#[tokio::test]
async fn disconnect_stops_stripe_writes_reads_go_on_and_reconnect_uses_the_new_account() {
    let env = TestEnv::new().await;
    let owner = env.owner_token();
    let customer = env
        .create("customers", json!({"email": "kept@example.com"}))
        .await;
    let product = env.create("products", json!({"name": "Kept"})).await;

    let (code, body) = env
        .call_as(
            Some(&owner),
            Method::DELETE,
            &stripe_path(&env.team.id, ""),
            None,
        )
        .await;
    assert_eq!((code, &body), (StatusCode::OK, &json!({"success": true})));
    assert!(stored(&env, &env.team.id).await.is_none());
    let gone = status(&env, &owner, &env.team.id).await;
    assert_eq!(gone["connected"], false);
    assert_eq!(gone["isActive"], false);
    assert_eq!(gone["accountId"], Value::Null);

    let before = env.stripe.request_count("*");
    let customer_path = format!(
        "{}/{}",
        env.path("customers"),
        customer["id"].as_str().unwrap()
    );
    let product_path = format!(
        "{}/{}",
        env.path("products"),
        product["id"].as_str().unwrap()
    );
    for (method, path, body) in [
        (
            Method::POST,
            env.path("customers"),
            Some(json!({"email": "new@example.com"})),
        ),
        (
            Method::POST,
            env.path("products"),
            Some(json!({"name": "New"})),
        ),
        (
            Method::POST,
            env.path("prices"),
            Some(
                json!({"productId": product["id"], "unitAmount": 100, "currency": "usd", "type": "one_time"}),
            ),
        ),
        (
            Method::PATCH,
            customer_path.clone(),
            Some(json!({"name": "Renamed"})),
        ),
        (Method::DELETE, product_path.clone(), None),
    ] {
        let (code, answer) = env.call(method.clone(), &path, body).await;
        assert_eq!(code, StatusCode::CONFLICT, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "stripe_not_connected", "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("stripe/connect"),
            "{answer}"
        );
    }
    assert_eq!(
        env.stripe.request_count("*"),
        before,
        "nothing reached Stripe"
    );
    // Nothing was half-written: the email is still free, the records are as they were.
    let (code, list) = env.call(Method::GET, &env.path("customers"), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["customers"].as_array().unwrap().len(), 1);
    assert_eq!(list["customers"][0]["name"], Value::Null);
    let (code, got) = env.call(Method::GET, &product_path, None).await;
    assert_eq!(
        (code, got["product"]["name"].as_str()),
        (StatusCode::OK, Some("Kept"))
    );
    let (code, _) = env.call(Method::GET, &env.path("prices"), None).await;
    assert_eq!(code, StatusCode::OK);

    // Another account from now on: new objects go there, the old ones stay readable.
    let account = env.stripe.open_account(None);
    let (code, body) = connect(
        &env,
        &owner,
        &env.team.id,
        json!({"secretKey": account.secret_key}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let fresh = env
        .create("customers", json!({"email": "new@example.com"}))
        .await;
    let in_new = env.stripe.account(&account.id).customers();
    assert_eq!(in_new.len(), 1);
    assert_eq!(in_new[0]["id"], fresh["stripeCustomerId"]);
    assert_eq!(
        env.stripe.customers().len(),
        1,
        "the old account keeps the old one"
    );
    let (code, _) = env.call(Method::GET, &customer_path, None).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn bad_connects_are_refused_and_store_nothing() {
    let env = TestEnv::new().await;
    let owner = env.owner_token();
    let before = stored(&env, &env.team.id).await.unwrap();
    let account = env.stripe.open_account(None);

    let unknown = "sk_test_thisKeyIsUnknownToStripe1234";
    let (code, body) = connect(&env, &owner, &env.team.id, json!({"secretKey": unknown})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_stripe_key");
    assert_eq!(body["param"], "secretKey");
    assert!(!body.to_string().contains("thisKeyIsUnknown"), "{body}");
    assert_eq!(
        env.stripe.request_count("GET /v1/account"),
        1,
        "checked with Stripe"
    );

    for (body, param) in [
        (
            json!({"secretKey": account.secret_key, "publishableKey": "pk_live_0123456789abcdef"}),
            "publishableKey",
        ),
        (
            json!({"secretKey": account.secret_key, "webhookSecret": "whsec_with space"}),
            "webhookSecret",
        ),
        (
            json!({"secretKey": account.secret_key, "webhookSecret": "not-a-webhook-secret-at-all"}),
            "webhookSecret",
        ),
        (
            json!({"secretKey": "pk_test_0123456789abcdef"}),
            "secretKey",
        ),
        (
            json!({"publishableKey": account.publishable_key}),
            "secretKey",
        ),
    ] {
        let (code, answer) = connect(&env, &owner, &env.team.id, body.clone()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["param"], param, "{answer}");
        assert!(
            !answer.to_string().contains(&account.secret_key[8..]),
            "{answer}"
        );
    }
    assert_eq!(
        env.stripe.request_count("GET /v1/account"),
        1,
        "malformed keys are refused before Stripe is asked"
    );

    // A member is not an owner; an API key is not a session.
    env.add_member("user_plain_member", Role::Member).await;
    let member = env.token("user_plain_member");
    let good = json!({"secretKey": account.secret_key});
    let (code, body) = connect(&env, &member, &env.team.id, good.clone()).await;
    assert_eq!(
        (code, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("owner_required"))
    );
    let (code, body) = env
        .call_as(
            Some(&member),
            Method::DELETE,
            &stripe_path(&env.team.id, ""),
            None,
        )
        .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("owner_required"))
    );
    let (code, body) = env
        .call(
            Method::POST,
            &stripe_path(&env.team.id, "/connect"),
            Some(good),
        )
        .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("session_required"))
    );
    // A member may read the status and the webhook URL.
    let seen = status(&env, &member, &env.team.id).await;
    assert_eq!(seen["accountId"], stripe_emulator::DEFAULT_ACCOUNT_ID);
    let (code, body) = env
        .call_as(
            Some(&member),
            Method::GET,
            &stripe_path(&env.team.id, "/webhook-url"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(
        body["webhookUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/webhooks/stripe/{}", env.team.id))
    );
    assert!(body["instructions"].as_str().unwrap().contains("whsec_"));
    // Outsiders learn nothing.
    let outsider = env.token("user_outsider");
    let (code, _) = env
        .call_as(
            Some(&outsider),
            Method::GET,
            &stripe_path(&env.team.id, "/status"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    assert_eq!(
        stored(&env, &env.team.id).await.unwrap(),
        before,
        "nothing changed"
    );
}

/// An App like `env`'s but whose KMS is somewhere else.
async fn app_with_kms(env: &TestEnv, endpoint: &str, key: &str) -> Arc<billstack::App> {
    let config = billstack::config::Config {
        dynamodb_endpoint: Some(billstack_tests::dynamodb_endpoint()),
        sessions: Some(billstack_tests::issuer_config(&env.issuer)),
        kms_endpoint: Some(endpoint.to_owned()),
        kms_key_id: Some(key.to_owned()),
        ..billstack_tests::config(&env.stripe.url(), Duration::ZERO)
    };
    Arc::new(billstack::App::from_config(&config).await.unwrap())
}

async fn send(
    app: &billstack::App,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder
        .body(body.map_or(billstack::lambda_http::Body::Empty, |b| {
            billstack::lambda_http::Body::Text(b.to_string())
        }))
        .unwrap();
    billstack_tests::send(app, request).await
}

#[tokio::test]
async fn kms_unreachable_or_refusing_is_503_and_stores_nothing() {
    let env = TestEnv::new().await;
    let before = stored(&env, &env.team.id).await.unwrap();
    let account = env.stripe.open_account(None);
    let body = json!({"secretKey": account.secret_key});
    let path = stripe_path(&env.team.id, "/connect");
    let dead = format!("http://127.0.0.1:{}", devstack::free_port().unwrap());
    let unreachable = app_with_kms(&env, &dead, billstack_tests::KMS_KEY).await;
    let refusing = app_with_kms(&env, &billstack_tests::kms_endpoint(), "alias/no-such-key").await;
    for app in [&unreachable, &refusing] {
        let (code, answer) = send(
            app,
            &env.owner_token(),
            Method::POST,
            &path,
            Some(body.clone()),
        )
        .await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("key service"),
            "{answer}"
        );
        assert_eq!(stored(&env, &env.team.id).await.unwrap(), before);
    }
    // A Stripe call that needs the key is 503 too when KMS cannot be reached, and writes
    // nothing.
    let (code, answer) = send(
        &unreachable,
        &env.key,
        Method::POST,
        &env.path("customers"),
        Some(json!({"email": "waits@example.com"})),
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let (_, list) = env.call(Method::GET, &env.path("customers"), None).await;
    assert_eq!(list["customers"], json!([]));
    assert!(env.stripe.customers().is_empty());
}

#[tokio::test]
async fn a_ciphertext_copied_from_another_team_does_not_decrypt() {
    let env = TestEnv::new().await;
    let b = other_team(&env, "Team B").await;
    let account = env.stripe.open_account(None);
    let (code, _) = connect(
        &env,
        &b.owner_token,
        &b.team.id,
        json!({"secretKey": account.secret_key}),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    // Team A's record gets team B's ciphertext: with it, A would write into B's account.
    let mut forged = stored(&env, &env.team.id).await.unwrap();
    forged.secret_key_ciphertext = stored(&env, &b.team.id)
        .await
        .unwrap()
        .secret_key_ciphertext;
    env.store.put_stripe_connection(&forged).await.unwrap();

    let (code, answer) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "x@example.com"})),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["code"], "stripe_not_connected");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("connect Stripe again"),
        "{answer}"
    );
    assert!(env.stripe.account(&account.id).customers().is_empty());
    assert!(env.stripe.customers().is_empty());
    let seen = status(&env, &env.owner_token(), &env.team.id).await;
    assert_eq!(
        (seen["keyValid"].clone(), seen["isActive"].clone()),
        (json!(false), json!(false))
    );
}

#[tokio::test]
async fn a_warm_container_decrypts_a_teams_key_once() {
    let env = TestEnv::with_auth_cache(Duration::from_secs(30)).await;
    let before = env.app.stripe.decrypt_count();
    for i in 0..3 {
        env.create(
            "customers",
            json!({"email": format!("warm{i}@example.com")}),
        )
        .await;
    }
    env.create("products", json!({"name": "Warm"})).await;
    assert_eq!(
        env.app.stripe.decrypt_count() - before,
        1,
        "one Decrypt, then the cached key"
    );
    // A reconnect here is seen at once, and its new key decrypted once.
    let account = env.stripe.open_account(None);
    let (code, _) = connect(
        &env,
        &env.owner_token(),
        &env.team.id,
        json!({"secretKey": account.secret_key}),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let after_connect = env.app.stripe.decrypt_count();
    env.create("customers", json!({"email": "next@example.com"}))
        .await;
    env.create("customers", json!({"email": "next2@example.com"}))
        .await;
    assert_eq!(env.app.stripe.decrypt_count() - after_connect, 1);
    assert_eq!(env.stripe.account(&account.id).customers().len(), 2);
}

#[tokio::test]
async fn a_restricted_key_that_may_not_read_the_account_is_accepted() {
    let env = TestEnv::new().await;
    let account = env.stripe.open_account(Some("Restricted Co"));
    let (code, body) = connect(
        &env,
        &env.owner_token(),
        &env.team.id,
        json!({"secretKey": account.restricted_key}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let seen = status(&env, &env.owner_token(), &env.team.id).await;
    assert_eq!(seen["accountId"], Value::Null);
    assert_eq!(seen["keyValid"], true);
    assert_eq!(seen["webhookSecretSet"], false);
    let customer = env
        .create("customers", json!({"email": "r@example.com"}))
        .await;
    assert_eq!(
        env.stripe.account(&account.id).customers()[0]["id"],
        customer["stripeCustomerId"]
    );
}

#[tokio::test]
async fn two_projects_racing_for_one_unclaimed_stripe_customer_get_two() {
    let env = TestEnv::new().await;
    let other = env.other_project().await;
    let client = stripe::ClientBuilder::new(stripe_emulator::DEFAULT_SECRET_KEY)
        .url(env.stripe.url())
        .build()
        .unwrap();
    let unclaimed = stripe_core::customer::CreateCustomer::new()
        .email("shared@example.com")
        .send(&client)
        .await
        .unwrap();
    let body = json!({"email": "shared@example.com"});
    let first_path = env.path("customers");
    let first = env.call(Method::POST, &first_path, Some(body.clone()));
    let second_path = billstack_tests::project_path(&env.team.id, &other.id, "customers");
    let second = env.call(Method::POST, &second_path, Some(body));
    let ((c1, b1), (c2, b2)) = tokio::join!(first, second);
    assert_eq!(
        (c1, c2),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{b1} {b2}"
    );
    let ids = [
        b1["customer"]["stripeCustomerId"].as_str().unwrap(),
        b2["customer"]["stripeCustomerId"].as_str().unwrap(),
    ];
    assert_ne!(ids[0], ids[1], "never one Stripe customer for two projects");
    assert!(
        ids.contains(&unclaimed.id.as_str()),
        "one of them linked it"
    );
    let owners: Vec<Value> = ids
        .iter()
        .map(|id| env.stripe.customer(id).unwrap()["metadata"]["project_id"].clone())
        .collect();
    assert!(
        owners.contains(&json!(env.project.id)) && owners.contains(&json!(other.id)),
        "{owners:?}"
    );
}
