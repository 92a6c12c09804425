//! The customers API end to end: handlers → DynamoDB Local and the Stripe emulator.

use std::collections::HashSet;
use std::sync::Arc;

use billstack::ids::CustomerId;
use billstack_tests::{Fault, FaultTiming, TestEnv};
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn create(env: &TestEnv, body: Value) -> Value {
    let (status, body) = env
        .call(Method::POST, &env.path("customers"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["customer"].clone()
}

fn item_path(env: &TestEnv, id: &str) -> String {
    format!("{}/{id}", env.path("customers"))
}

fn stripe_metadata(env: &TestEnv, stripe_id: &str) -> Value {
    env.stripe.customer(stripe_id).expect("stripe customer")["metadata"].clone()
}

#[tokio::test]
async fn create_writes_the_customer_to_stripe_and_dynamodb() {
    let env = TestEnv::new().await;
    let customer = create(
        &env,
        json!({"email": "  Jane@Example.com ", "name": "Jane Doe", "metadata": {"plan": "pro"}}),
    )
    .await;

    let id = customer["id"].as_str().unwrap();
    assert!(id.starts_with("pc_"), "{id}");
    assert_eq!(customer["email"], "jane@example.com");
    assert_eq!(customer["name"], "Jane Doe");
    assert_eq!(customer["metadata"], json!({"plan": "pro"}));
    assert_eq!(customer["projectId"], env.project.id.as_str());
    let created_at = customer["createdAt"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == 20,
        "{created_at}"
    );
    assert_eq!(customer["updatedAt"], customer["createdAt"]);
    let stripe_id = customer["stripeCustomerId"].as_str().unwrap();
    assert!(stripe_id.starts_with("cus_"));

    // Stripe: the customer, with our project_id and BillStack ID beside the client's keys.
    let in_stripe = env.stripe.customer(stripe_id).expect("in stripe");
    assert_eq!(in_stripe["email"], "jane@example.com");
    assert_eq!(in_stripe["name"], "Jane Doe");
    assert_eq!(
        in_stripe["metadata"],
        json!({"plan": "pro", "project_id": env.project.id, "billstack_id": id})
    );
    // The create carried an idempotency key derived from the BillStack ID.
    let creates: Vec<_> = env
        .stripe
        .requests()
        .into_iter()
        .filter(|r| r.route == "POST /v1/customers")
        .collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].idempotency_key.as_deref(),
        Some(format!("bs_{id}_create").as_str())
    );

    // DynamoDB: the record and the email's uniqueness item.
    let stored = env
        .store
        .get_customer(&env.project.id, &CustomerId::from(id))
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.email, "jane@example.com");
    assert_eq!(stored.stripe_customer_id, stripe_id);
    assert_eq!(
        env.store
            .email_owner(&env.project.id, "jane@example.com")
            .await
            .unwrap(),
        Some((id.to_owned(), "active".to_owned()))
    );

    // And GET answers the same object.
    let (status, got) = env.call(Method::GET, &item_path(&env, id), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["customer"], customer);
}

#[tokio::test]
async fn create_without_name_or_metadata() {
    let env = TestEnv::new().await;
    let customer = create(&env, json!({"email": "min@example.com"})).await;
    assert_eq!(customer["name"], Value::Null);
    assert_eq!(customer["metadata"], json!({}));
}

#[tokio::test]
async fn bad_create_input_is_a_400_naming_the_problem_and_writes_nothing() {
    let env = TestEnv::new().await;
    let cases: Vec<(String, &str)> = vec![
        (json!({"name": "No Email"}).to_string(), "email"),
        (json!({"email": "not-an-email"}).to_string(), "email"),
        (json!({"email": ""}).to_string(), "email"),
        (json!({"email": 42}).to_string(), "email"),
        (
            json!({"email": "a@example.com", "phone": "123"}).to_string(),
            "phone",
        ),
        (
            json!({"email": "a@example.com", "name": 7}).to_string(),
            "name",
        ),
        (
            json!({"email": "a@example.com", "name": "x".repeat(257)}).to_string(),
            "name",
        ),
        (
            json!({"email": "a@example.com", "metadata": "plan=pro"}).to_string(),
            "metadata",
        ),
        (
            json!({"email": "a@example.com", "metadata": {"plan": 1}}).to_string(),
            "metadata.plan",
        ),
        (
            json!({"email": "a@example.com", "metadata": {"project_id": "proj_x"}}).to_string(),
            "metadata.project_id",
        ),
        (
            json!({"email": "a@example.com", "metadata": {"k[1]": "v"}}).to_string(),
            "metadata.k[1]",
        ),
        (
            format!(
                r#"{{"email": "a@example.com", "metadata": {{"{}": "v"}}}}"#,
                "k".repeat(41)
            ),
            "long-key",
        ),
        (
            json!({"email": "a@example.com", "metadata": {"k": "v".repeat(501)}}).to_string(),
            "metadata.k",
        ),
    ];
    for (body, param) in cases {
        let (status, answer) = env
            .call_raw(
                Some(&format!("Bearer {}", env.key)),
                Method::POST,
                &env.path("customers"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        let message = answer["error"].as_str().expect("error is a string");
        assert!(!message.is_empty());
        if param != "long-key" {
            assert_eq!(answer["param"], param, "{body} → {answer}");
        }
    }
    let too_many: serde_json::Map<String, Value> =
        (0..49).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (status, answer) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "a@example.com", "metadata": too_many})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["param"], "metadata");

    for raw in ["{\"email\": ", "not json", "[]", ""] {
        let (status, answer) = env
            .call_raw(
                Some(&format!("Bearer {}", env.key)),
                Method::POST,
                &env.path("customers"),
                Some(raw.to_owned()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw:?}");
        assert!(
            answer["error"].as_str().unwrap().contains("JSON"),
            "{answer}"
        );
    }

    // Nothing half-written: no Stripe call at all, no customer, no email claimed.
    assert_eq!(env.stripe.request_count("*"), 0);
    let (_, list) = env.call(Method::GET, &env.path("customers"), None).await;
    assert_eq!(list["customers"], json!([]));
    assert_eq!(
        env.store
            .email_owner(&env.project.id, "a@example.com")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn forty_eight_metadata_keys_fit_beside_ours() {
    let env = TestEnv::new().await;
    let metadata: serde_json::Map<String, Value> =
        (0..48).map(|i| (format!("k{i}"), json!("v"))).collect();
    let customer = create(
        &env,
        json!({"email": "many@example.com", "metadata": metadata}),
    )
    .await;
    let in_stripe = stripe_metadata(&env, customer["stripeCustomerId"].as_str().unwrap());
    assert_eq!(in_stripe.as_object().unwrap().len(), 50);
}

#[tokio::test]
async fn duplicate_email_is_409_case_insensitively() {
    let env = TestEnv::new().await;
    create(&env, json!({"email": "dup@example.com"})).await;
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "DUP@example.com "})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("dup@example.com"));
    assert_eq!(env.stripe.customers().len(), 1);

    // The same email in another project of the team is fine.
    let other = env.other_project().await;
    let path = billstack_tests::project_path(&env.team.id, &other.id, "customers");
    let (status, _) = env
        .call(
            Method::POST,
            &path,
            Some(json!({"email": "dup@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_of_one_email_make_one_customer() {
    let env = Arc::new(TestEnv::new().await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let env = env.clone();
        tasks.spawn(async move {
            let body = json!({"email": "race@example.com", "name": format!("Racer {i}")});
            env.call(Method::POST, &env.path("customers"), Some(body))
                .await
        });
    }
    let mut statuses = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        if status != StatusCode::CREATED {
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count(),
        19
    );
    assert_eq!(
        env.stripe.customers().len(),
        1,
        "exactly one Stripe customer"
    );
    assert_eq!(env.stripe.request_count("POST /v1/customers"), 1);
    let (_, list) = env.call(Method::GET, &env.path("customers"), None).await;
    assert_eq!(list["customers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn get_unknown_or_foreign_customer_is_404() {
    let env = TestEnv::new().await;
    for id in ["pc_0000000000000000000000000000000", "not-an-id", "pp_123"] {
        let (status, body) = env.call(Method::GET, &item_path(&env, id), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "Customer not found");
    }

    // A customer of another project of the same team, reached through this project's path.
    let other = env.other_project().await;
    let other_path = billstack_tests::project_path(&env.team.id, &other.id, "customers");
    let (status, foreign) = env
        .call(
            Method::POST,
            &other_path,
            Some(json!({"email": "f@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let foreign_id = foreign["customer"]["id"].as_str().unwrap();
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let body = (method == Method::PATCH).then(|| json!({"name": "Hijacked"}));
        let (status, answer) = env
            .call(method.clone(), &item_path(&env, foreign_id), body)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {answer}");
        assert_eq!(answer["error"], "Customer not found");
    }
    let stored = env
        .store
        .get_customer(&other.id, &CustomerId::from(foreign_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, None, "untouched");
}

#[tokio::test]
async fn list_is_newest_first_with_limit_offset_and_cursor() {
    let env = TestEnv::new().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let c = create(&env, json!({"email": format!("user{i}@example.com")})).await;
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    ids.reverse(); // newest first

    let list_ids = |body: &Value| -> Vec<String> {
        body["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let base = env.path("customers");
    let (status, all) = env.call(Method::GET, &base, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list_ids(&all), ids);
    assert_eq!(all["hasMore"], false);
    assert!(all["customers"][0]["updatedAt"].is_string());

    let (_, page) = env
        .call(Method::GET, &format!("{base}?limit=3"), None)
        .await;
    assert_eq!(list_ids(&page), ids[..3]);
    assert_eq!(page["hasMore"], true);
    let (_, page) = env
        .call(Method::GET, &format!("{base}?limit=3&offset=3"), None)
        .await;
    assert_eq!(list_ids(&page), ids[3..6]);
    let (_, page) = env
        .call(Method::GET, &format!("{base}?limit=3&offset=6"), None)
        .await;
    assert_eq!(list_ids(&page), ids[6..]);
    assert_eq!(page["hasMore"], false);
    let (_, page) = env
        .call(Method::GET, &format!("{base}?offset=50"), None)
        .await;
    assert_eq!(list_ids(&page), Vec::<String>::new());
    let (_, page) = env
        .call(
            Method::GET,
            &format!("{base}?limit=2&startingAfter={}", ids[1]),
            None,
        )
        .await;
    assert_eq!(list_ids(&page), ids[2..4]);

    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("sort=asc", "sort"),
        ("startingAfter=pp_1", "startingAfter"),
    ] {
        let (status, body) = env
            .call(Method::GET, &format!("{base}?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["param"], param, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(param));
    }
}

#[tokio::test]
async fn update_changes_stripe_then_our_record_and_metadata_replaces() {
    let env = TestEnv::new().await;
    let customer = create(&env, json!({"email": "up@example.com", "name": "Jane", "metadata": {"plan": "pro", "seats": "3"}})).await;
    let id = customer["id"].as_str().unwrap();
    let stripe_id = customer["stripeCustomerId"].as_str().unwrap();

    // Somebody adds a key in Stripe behind our back; "replaces" must remove it too.
    let client = stripe_client(&env);
    stripe_core::customer::UpdateCustomer::new(stripe_id)
        .metadata(std::collections::HashMap::from([(
            "external".to_owned(),
            "x".to_owned(),
        )]))
        .send(&client)
        .await
        .unwrap();

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = env
        .call(
            Method::PATCH,
            &item_path(&env, id),
            Some(json!({"name": "Jane Smith", "metadata": {"plan": "enterprise"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let updated = &body["customer"];
    assert_eq!(updated["name"], "Jane Smith");
    assert_eq!(updated["metadata"], json!({"plan": "enterprise"}));
    assert_eq!(updated["email"], "up@example.com");
    assert_eq!(updated["createdAt"], customer["createdAt"]);
    assert!(updated["updatedAt"].as_str().unwrap() > customer["updatedAt"].as_str().unwrap());

    let in_stripe = env.stripe.customer(stripe_id).unwrap();
    assert_eq!(in_stripe["name"], "Jane Smith");
    assert_eq!(
        in_stripe["metadata"],
        json!({"plan": "enterprise", "project_id": env.project.id, "billstack_id": id})
    );
    let stored = env
        .store
        .get_customer(&env.project.id, &CustomerId::from(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name.as_deref(), Some("Jane Smith"));
    assert_eq!(stored.metadata.len(), 1);

    // null removes the name; {} clears the metadata.
    let (status, body) = env
        .call(
            Method::PATCH,
            &item_path(&env, id),
            Some(json!({"name": null, "metadata": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customer"]["name"], Value::Null);
    let in_stripe = env.stripe.customer(stripe_id).unwrap();
    assert_eq!(in_stripe["name"], Value::Null);
    assert_eq!(
        in_stripe["metadata"],
        json!({"project_id": env.project.id, "billstack_id": id})
    );

    // An empty patch changes nothing and calls nobody.
    let stripe_calls = env.stripe.request_count("*");
    let (status, body) = env
        .call(Method::PATCH, &item_path(&env, id), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["customer"]["id"], id);
    assert_eq!(env.stripe.request_count("*"), stripe_calls);
}

fn stripe_client(env: &TestEnv) -> stripe::Client {
    stripe::ClientBuilder::new(stripe_emulator::DEFAULT_SECRET_KEY)
        .url(env.stripe.url())
        .build()
        .unwrap()
}

#[tokio::test]
async fn update_email_keeps_it_unique_and_frees_the_old_one() {
    let env = TestEnv::new().await;
    let a = create(&env, json!({"email": "a@example.com"})).await;
    create(&env, json!({"email": "b@example.com"})).await;
    let a_id = a["id"].as_str().unwrap();

    let (status, body) = env
        .call(
            Method::PATCH,
            &item_path(&env, a_id),
            Some(json!({"email": "B@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        env.stripe
            .customer(a["stripeCustomerId"].as_str().unwrap())
            .unwrap()["email"],
        "a@example.com"
    );

    let (status, body) = env
        .call(
            Method::PATCH,
            &item_path(&env, a_id),
            Some(json!({"email": "New@Example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customer"]["email"], "new@example.com");
    assert_eq!(
        env.stripe
            .customer(a["stripeCustomerId"].as_str().unwrap())
            .unwrap()["email"],
        "new@example.com"
    );
    assert_eq!(
        env.store
            .email_owner(&env.project.id, "a@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        env.store
            .email_owner(&env.project.id, "new@example.com")
            .await
            .unwrap(),
        Some((a_id.to_owned(), "active".to_owned()))
    );
    // The old email is free again.
    create(&env, json!({"email": "a@example.com"})).await;

    for (body, param) in [
        (json!({"email": "nope"}), "email"),
        (json!({"email": null}), "email"),
        (json!({"unitAmount": 5}), "unitAmount"),
        (json!({"name": ""}), "name"),
        (
            json!({"metadata": {"billstack_id": "x"}}),
            "metadata.billstack_id",
        ),
    ] {
        let (status, answer) = env
            .call(Method::PATCH, &item_path(&env, a_id), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["param"], param, "{body}: {answer}");
    }
    let (status, _) = env
        .call(
            Method::PATCH,
            &item_path(&env, "pc_0000000000000000000000000000000"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_removes_our_record_only_and_recreate_links_to_stripe() {
    let env = TestEnv::new().await;
    let customer = create(
        &env,
        json!({"email": "gone@example.com", "name": "Old", "metadata": {"old": "1"}}),
    )
    .await;
    let id = customer["id"].as_str().unwrap();
    let stripe_id = customer["stripeCustomerId"].as_str().unwrap();

    let (status, body) = env.call(Method::DELETE, &item_path(&env, id), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"success": true}));
    let (status, _) = env.call(Method::GET, &item_path(&env, id), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = env.call(Method::DELETE, &item_path(&env, id), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        env.store
            .get_customer(&env.project.id, &CustomerId::from(id))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        env.store
            .email_owner(&env.project.id, "gone@example.com")
            .await
            .unwrap(),
        None
    );
    assert!(
        env.stripe.customer(stripe_id).is_some(),
        "the Stripe customer is preserved"
    );
    assert_eq!(env.stripe.request_count("DELETE /v1/customers/:id"), 0);

    // The email is free again, and a new customer links to the preserved Stripe customer.
    let again = create(
        &env,
        json!({"email": "gone@example.com", "name": "New", "metadata": {"new": "2"}}),
    )
    .await;
    assert_ne!(again["id"], customer["id"]);
    assert_eq!(again["stripeCustomerId"], stripe_id);
    assert_eq!(env.stripe.customers().len(), 1);
    let in_stripe = env.stripe.customer(stripe_id).unwrap();
    assert_eq!(in_stripe["name"], "New");
    assert_eq!(
        in_stripe["metadata"],
        json!({"new": "2", "project_id": env.project.id, "billstack_id": again["id"]})
    );
}

#[tokio::test]
async fn create_links_to_an_unclaimed_stripe_customer_but_never_to_another_projects() {
    let env = TestEnv::new().await;
    let client = stripe_client(&env);
    let unclaimed = stripe_core::customer::CreateCustomer::new()
        .email("existing@example.com")
        .metadata(std::collections::HashMap::from([(
            "crm".to_owned(),
            "42".to_owned(),
        )]))
        .send(&client)
        .await
        .unwrap();
    let claimed = stripe_core::customer::CreateCustomer::new()
        .email("taken@example.com")
        .metadata(std::collections::HashMap::from([(
            "project_id".to_owned(),
            "proj_someone_else".to_owned(),
        )]))
        .send(&client)
        .await
        .unwrap();

    let linked = create(
        &env,
        json!({"email": "existing@example.com", "name": "Linked", "metadata": {"plan": "pro"}}),
    )
    .await;
    assert_eq!(linked["stripeCustomerId"], unclaimed.id.as_str());
    let in_stripe = env.stripe.customer(unclaimed.id.as_str()).unwrap();
    assert_eq!(in_stripe["name"], "Linked");
    // Its own keys stay; ours and the request's are added.
    assert_eq!(
        in_stripe["metadata"],
        json!({"crm": "42", "plan": "pro", "project_id": env.project.id, "billstack_id": linked["id"]})
    );

    let separate = create(&env, json!({"email": "taken@example.com"})).await;
    assert_ne!(separate["stripeCustomerId"], claimed.id.as_str());
    assert_eq!(
        env.stripe.customer(claimed.id.as_str()).unwrap()["metadata"]["project_id"],
        "proj_someone_else"
    );
    assert_eq!(env.stripe.customers().len(), 3);
}

#[tokio::test]
async fn stripe_failure_releases_the_email_and_a_retry_succeeds() {
    let env = TestEnv::new().await;
    // Both of our attempts fail before Stripe applies anything.
    env.stripe
        .inject_fault(Fault::new("POST /v1/customers", 500).with_times(2));
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "flaky@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body["error"].is_string());
    assert!(env.stripe.customers().is_empty());
    assert_eq!(
        env.store
            .email_owner(&env.project.id, "flaky@example.com")
            .await
            .unwrap(),
        None
    );
    let (_, list) = env.call(Method::GET, &env.path("customers"), None).await;
    assert_eq!(list["customers"], json!([]));

    let customer = create(&env, json!({"email": "flaky@example.com"})).await;
    assert_eq!(env.stripe.customers().len(), 1);
    assert_eq!(
        env.stripe.customers()[0]["id"],
        customer["stripeCustomerId"]
    );
}

#[tokio::test]
async fn a_lost_stripe_response_is_retried_with_the_same_key_and_makes_one_customer() {
    let env = TestEnv::new().await;
    // Stripe creates the customer but the response is lost; our retry replays it.
    env.stripe
        .inject_fault(Fault::new("POST /v1/customers", 500).with_timing(FaultTiming::AfterApply));
    let customer = create(&env, json!({"email": "lost@example.com"})).await;
    assert_eq!(env.stripe.customers().len(), 1);
    assert_eq!(
        env.stripe.customers()[0]["id"],
        customer["stripeCustomerId"]
    );
    let keys: HashSet<_> = env
        .stripe
        .requests()
        .into_iter()
        .filter(|r| r.route == "POST /v1/customers")
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys.len(), 1, "both attempts used one idempotency key");
}

#[tokio::test]
async fn a_lost_response_on_every_attempt_leaves_an_orphan_that_the_retry_links() {
    let env = TestEnv::new().await;
    env.stripe.inject_fault(
        Fault::new("POST /v1/customers", 500)
            .with_times(2)
            .with_timing(FaultTiming::AfterApply),
    );
    let (status, _) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "orphan@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(env.stripe.customers().len(), 1, "Stripe has it, we do not");
    let orphan = env.stripe.customers()[0].clone();
    assert_eq!(orphan["metadata"]["project_id"], env.project.id.as_str());

    // The client's retry finds the orphan by email and project and links it.
    let customer = create(&env, json!({"email": "orphan@example.com"})).await;
    assert_eq!(customer["stripeCustomerId"], orphan["id"]);
    assert_eq!(env.stripe.customers().len(), 1);
    assert_eq!(
        env.stripe.customer(orphan["id"].as_str().unwrap()).unwrap()["metadata"]["billstack_id"],
        customer["id"]
    );
}

#[tokio::test]
async fn stripe_throttling_is_429_and_a_failed_update_leaves_the_record() {
    let env = TestEnv::new().await;
    env.stripe
        .inject_fault(Fault::new("GET /v1/customers", 429).with_times(2));
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "busy@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(
        env.store
            .email_owner(&env.project.id, "busy@example.com")
            .await
            .unwrap(),
        None
    );

    let customer = create(&env, json!({"email": "busy@example.com", "name": "Before"})).await;
    let id = customer["id"].as_str().unwrap();
    env.stripe
        .inject_fault(Fault::new("POST /v1/customers/:id", 503).with_times(2));
    let (status, _) = env
        .call(
            Method::PATCH,
            &item_path(&env, id),
            Some(json!({"name": "After", "email": "moved@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let stored = env
        .store
        .get_customer(&env.project.id, &CustomerId::from(id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name.as_deref(), Some("Before"));
    assert_eq!(stored.email, "busy@example.com");
    assert_eq!(
        env.store
            .email_owner(&env.project.id, "moved@example.com")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        env.stripe
            .customer(customer["stripeCustomerId"].as_str().unwrap())
            .unwrap()["name"],
        "Before"
    );

    // The retry goes through.
    let (status, body) = env
        .call(
            Method::PATCH,
            &item_path(&env, id),
            Some(json!({"name": "After", "email": "moved@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customer"]["name"], "After");
}

#[tokio::test]
async fn our_write_failing_after_stripe_answered_leaves_nothing_half_made() {
    let env = TestEnv::new().await;
    // Every attempt of the SDK (3) at the final transaction fails.
    env.dynamo.fail_next("TransactWriteItems", 3);
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "half@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        env.store
            .email_owner(&env.project.id, "half@example.com")
            .await
            .unwrap()
            .is_none(),
        "email released"
    );
    let (_, list) = env.call(Method::GET, &env.path("customers"), None).await;
    assert_eq!(list["customers"], json!([]));
    // Stripe has the customer, tagged so the retry can find it.
    assert_eq!(env.stripe.customers().len(), 1);

    let customer = create(&env, json!({"email": "half@example.com"})).await;
    assert_eq!(
        env.stripe.customers().len(),
        1,
        "the retry linked, it did not create another"
    );
    assert_eq!(
        customer["stripeCustomerId"],
        env.stripe.customers()[0]["id"]
    );
}

#[tokio::test]
async fn a_warm_get_with_a_cached_key_makes_one_dynamodb_call() {
    let env = TestEnv::with_auth_cache(std::time::Duration::from_secs(30)).await;
    let customer = create(&env, json!({"email": "warm@example.com"})).await;
    let path = item_path(&env, customer["id"].as_str().unwrap());
    let (status, _) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    env.dynamo.reset_counts();
    let stripe_calls = env.stripe.request_count("*");
    let (status, _) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        env.dynamo.counts(),
        std::collections::HashMap::from([("GetItem".to_owned(), 1)])
    );
    assert_eq!(
        env.stripe.request_count("*"),
        stripe_calls,
        "no Stripe call on a read"
    );
}

#[tokio::test]
async fn create_makes_the_fewest_calls_the_design_allows() {
    let env = TestEnv::with_auth_cache(std::time::Duration::from_secs(30)).await;
    create(&env, json!({"email": "first@example.com"})).await; // warms the key cache
    env.dynamo.reset_counts();
    let before = env.stripe.request_count("*");
    create(&env, json!({"email": "count@example.com"})).await;
    // Reserve the email, then customer + activation in one transaction.
    assert_eq!(
        env.dynamo.counts(),
        std::collections::HashMap::from([
            ("PutItem".to_owned(), 1),
            ("TransactWriteItems".to_owned(), 1)
        ])
    );
    // Look for a Stripe customer with this email, then create one.
    assert_eq!(env.stripe.request_count("*") - before, 2);
}

/// A customer's transaction cancelled by another transaction on its items is a retryable
/// 503, never a 500; the email is free again and the retry creates the customer once
/// (issue #10, item 1).
#[tokio::test]
async fn a_transaction_conflict_on_create_is_503_and_the_retry_succeeds() {
    let env = TestEnv::new().await;
    env.dynamo.conflict_next_transactions(1, 2);
    let body = json!({"email": "conflict@example.com"});
    let (status, answer) = env
        .call(Method::POST, &env.path("customers"), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["code"], "service_unavailable");
    let (status, answer) = env
        .call(Method::POST, &env.path("customers"), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (_, list) = env.call(Method::GET, &env.path("customers"), None).await;
    assert_eq!(list["customers"].as_array().unwrap().len(), 1);
    assert_eq!(
        env.stripe
            .customers()
            .iter()
            .filter(|c| c["email"] == "conflict@example.com")
            .count(),
        1,
        "the retry linked to the Stripe customer of the first attempt"
    );
}

/// Full-width and ASCII forms of one address are one customer: the second create is 409
/// (issue #10, item 11; the rule is in input::normalize_email and the README).
#[tokio::test]
async fn compatibility_forms_of_one_email_are_one_reservation() {
    let env = TestEnv::new().await;
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "ｊａｎｅ＠ｅｘａｍｐｌｅ.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["customer"]["email"], "jane@example.com");
    let (status, body) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "Jane@Example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "email_taken");
}

/// A delete that read the customer before an email change committed, and writes after it,
/// must free the new email, not leave its reservation pointing at a deleted customer for
/// good (issue #10, item 4). The proxy holds the delete's write at a pause point while the
/// change runs to its end: no timing involved.
#[tokio::test]
async fn a_delete_racing_an_email_change_frees_the_email_the_customer_has() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    let customer = env
        .create("customers", json!({"email": "before@example.com"}))
        .await;
    let path = item_path(&env, customer["id"].as_str().unwrap());

    let mut hold = env.dynamo.hold_next("TransactWriteItems");
    let delete = tokio::spawn({
        let (env, path) = (env.clone(), path.clone());
        async move { env.call(Method::DELETE, &path, None).await }
    });
    hold.reached().await;
    let (status, changed) = env
        .call(
            Method::PATCH,
            &path,
            Some(json!({"email": "after@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    hold.release();
    let (status, deleted) = delete.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{deleted}");

    assert_eq!(
        env.call(Method::GET, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
    // Both addresses are free again: nothing holds either one.
    for email in ["after@example.com", "before@example.com"] {
        let (status, body) = env
            .call(
                Method::POST,
                &env.path("customers"),
                Some(json!({"email": email})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{email}: {body}");
    }
}

/// An email change whose write loses to another PATCH must put the Stripe customer back
/// (issue #10, item 5): else Stripe keeps an email our table does not give the customer,
/// and a later create of that email links to this same Stripe customer (two customers of
/// ours, one Stripe customer). The proxy holds the loser's write while the winner runs.
#[tokio::test]
async fn an_email_change_that_loses_its_write_puts_stripe_back() {
    let env = std::sync::Arc::new(TestEnv::new().await);
    let customer = env
        .create(
            "customers",
            json!({"email": "kept@example.com", "name": "Start"}),
        )
        .await;
    let stripe_id = customer["stripeCustomerId"].as_str().unwrap().to_owned();
    let path = item_path(&env, customer["id"].as_str().unwrap());

    let mut hold = env.dynamo.hold_next("TransactWriteItems");
    let loser = tokio::spawn({
        let (env, path) = (env.clone(), path.clone());
        async move {
            env.call(
                Method::PATCH,
                &path,
                Some(json!({"email": "lost@example.com"})),
            )
            .await
        }
    });
    hold.reached().await;
    assert_eq!(
        env.stripe.customer(&stripe_id).unwrap()["email"],
        "lost@example.com"
    );
    let (status, won) = env
        .call(Method::PATCH, &path, Some(json!({"name": "Winner"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{won}");
    hold.release();
    let (status, lost) = loser.await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{lost}");

    let in_stripe = env.stripe.customer(&stripe_id).unwrap();
    assert_eq!(in_stripe["email"], "kept@example.com");
    assert_eq!(in_stripe["name"], "Winner");
    let (_, got) = env.call(Method::GET, &path, None).await;
    assert_eq!(got["customer"]["email"], "kept@example.com");
    // The lost email is free, and a customer made with it gets a Stripe customer of its own.
    let other = env
        .create("customers", json!({"email": "lost@example.com"}))
        .await;
    assert_ne!(other["stripeCustomerId"].as_str(), Some(stripe_id.as_str()));
}

/// A change Stripe took but our table could not (DynamoDB failing) is put back in Stripe:
/// the record stays the truth, and Stripe agrees with it (issue #10, item 5).
#[tokio::test]
async fn an_update_whose_write_fails_puts_stripe_back() {
    let env = TestEnv::new().await;
    let customer = env
        .create(
            "customers",
            json!({"email": "same@example.com", "name": "Before"}),
        )
        .await;
    let stripe_id = customer["stripeCustomerId"].as_str().unwrap().to_owned();
    let path = item_path(&env, customer["id"].as_str().unwrap());
    env.dynamo.fail_next("TransactWriteItems", 3);
    let (status, answer) = env
        .call(
            Method::PATCH,
            &path,
            Some(json!({"name": "After", "email": "moved@example.com"})),
        )
        .await;
    assert!(status.is_server_error(), "{status} {answer}");
    let in_stripe = env.stripe.customer(&stripe_id).unwrap();
    assert_eq!(in_stripe["name"], "Before");
    assert_eq!(in_stripe["email"], "same@example.com");
    let (_, got) = env.call(Method::GET, &path, None).await;
    assert_eq!(got["customer"]["name"], "Before");
    // The new email was released: another customer may take it.
    let other = env
        .create("customers", json!({"email": "moved@example.com"}))
        .await;
    assert_ne!(other["stripeCustomerId"].as_str(), Some(stripe_id.as_str()));

    // The client's retry of the change (after the undo) changes Stripe again: its call is
    // not taken for a replay of the attempt that was undone.
    let (status, answer) = env
        .call(Method::PATCH, &path, Some(json!({"name": "After"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(env.stripe.customer(&stripe_id).unwrap()["name"], "After");
    env.dynamo.fail_next("TransactWriteItems", 3);
    let patch = json!({"name": "Again"});
    let (status, _) = env.call(Method::PATCH, &path, Some(patch.clone())).await;
    assert!(status.is_server_error());
    assert_eq!(env.stripe.customer(&stripe_id).unwrap()["name"], "After");
    let (status, answer) = env.call(Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(env.stripe.customer(&stripe_id).unwrap()["name"], "Again");
}

/// A PATCH whose write fails (DynamoDB failing) while Stripe fails the undo too: what the
/// client was told failed stays in Stripe for now. Answered 5xx, so the client retries.
async fn patch_with_a_failing_undo(env: &TestEnv, path: &str, patch: Value) -> (StatusCode, Value) {
    env.dynamo.fail_next("TransactWriteItems", 3);
    // Held until Stripe has taken the change; the undo and its retry then meet a 500.
    let mut write = env.dynamo.hold_next("TransactWriteItems");
    let stripe = &env.stripe;
    let (answer, ()) = tokio::join!(env.call(Method::PATCH, path, Some(patch)), async move {
        write.reached().await;
        stripe.inject_fault(Fault::new("POST /v1/customers/:id", 500).with_times(2));
        write.release();
    });
    answer
}

/// The undo itself failing (issue #10, item 5): the record stays the truth, the client's
/// retry of its PATCH makes Stripe and the table agree, and meanwhile the Stripe customer,
/// which holds an email our table does not give it, is never linked by a create of that
/// email (two of our customers would share one Stripe customer).
#[tokio::test]
async fn an_update_whose_undo_fails_too_is_mended_by_its_retry_and_never_shared() {
    let env = TestEnv::new().await;
    let retried = create(&env, json!({"email": "one@example.com", "name": "Before"})).await;
    let path = item_path(&env, retried["id"].as_str().unwrap());
    let stripe_id = retried["stripeCustomerId"].as_str().unwrap();
    let patch = json!({"name": "After", "email": "one.moved@example.com"});
    let (status, answer) = patch_with_a_failing_undo(&env, &path, patch.clone()).await;
    assert!(status.is_server_error(), "{status} {answer}");
    assert_eq!(
        env.stripe.customer(stripe_id).unwrap()["email"],
        "one.moved@example.com"
    );
    let (_, got) = env.call(Method::GET, &path, None).await;
    assert_eq!(got["customer"]["email"], "one@example.com");
    assert_eq!(got["customer"]["name"], "Before");
    let (status, answer) = env.call(Method::PATCH, &path, Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let in_stripe = env.stripe.customer(stripe_id).unwrap();
    assert_eq!(
        (&in_stripe["email"], &in_stripe["name"]),
        (&answer["customer"]["email"], &answer["customer"]["name"])
    );
    assert_eq!(answer["customer"]["email"], "one.moved@example.com");

    // Another customer's undo fails; before any retry, a create of the email its Stripe
    // customer now holds gets a Stripe customer of its own.
    let held = create(&env, json!({"email": "two@example.com"})).await;
    let path = item_path(&env, held["id"].as_str().unwrap());
    let (status, _) =
        patch_with_a_failing_undo(&env, &path, json!({"email": "two.moved@example.com"})).await;
    assert!(status.is_server_error());
    let held_stripe_id = held["stripeCustomerId"].as_str().unwrap();
    assert_eq!(
        env.stripe.customer(held_stripe_id).unwrap()["email"],
        "two.moved@example.com"
    );
    let other = create(&env, json!({"email": "two.moved@example.com"})).await;
    assert_ne!(other["stripeCustomerId"].as_str(), Some(held_stripe_id));
    assert_eq!(
        stripe_metadata(&env, held_stripe_id)["billstack_id"],
        held["id"],
        "the held Stripe customer is still only its own customer's"
    );
}

/// A customer delete whose write fails (DynamoDB failing) changes nothing: the record and
/// its email stay, and the retry deletes both.
#[tokio::test]
async fn a_delete_whose_write_fails_changes_nothing_and_its_retry_deletes() {
    let env = TestEnv::new().await;
    let customer = create(&env, json!({"email": "stays@example.com"})).await;
    let path = item_path(&env, customer["id"].as_str().unwrap());
    env.dynamo.fail_next("TransactWriteItems", 3);
    let (status, answer) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    let (status, got) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["customer"], customer);
    let (status, taken) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "stays@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");

    let (status, _) = env.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    create(&env, json!({"email": "stays@example.com"})).await;
}

/// An invocation that dies half way through a create: its future is dropped where it
/// stands, so none of our code after that point runs, as when Lambda stops a function that
/// ran out of time. Here it dies while Stripe, having made the customer, is slow to answer.
/// The client's retry under the same Idempotency-Key is told the first attempt is in
/// progress; once that claim has gone stale, the retry makes the customer the dead attempt
/// began, around the Stripe customer it made, and no second one.
#[tokio::test]
async fn a_create_whose_invocation_died_after_stripe_is_finished_by_its_retry() {
    use std::time::Duration;
    let env = TestEnv::new().await;
    let path = env.path("customers");
    let send = || {
        env.create_with_key(
            "customers",
            "dies-midway",
            json!({"email": "dies@example.com"}),
        )
    };
    env.stripe.inject_fault(
        Fault::new("POST /v1/customers", 0)
            .with_timing(FaultTiming::AfterApply)
            .with_delay(Duration::from_secs(60)),
    );
    {
        let dying = send();
        let made = async {
            while env.stripe.customers().is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            answer = dying => panic!("the attempt was to die, not answer: {answer:?}"),
            () = made => {}
        }
    }
    let made = env.stripe.customers();
    assert_eq!(made.len(), 1);

    let (status, _, answer) = send().await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["code"], "idempotency_in_progress");
    // The dead attempt's reservation holds the email until it goes stale.
    let (status, answer) = env
        .call(
            Method::POST,
            &path,
            Some(json!({"email": "dies@example.com"})),
        )
        .await;
    assert_eq!(
        (status, &answer["code"]),
        (StatusCode::CONFLICT, &json!("email_taken"))
    );

    env.age_idempotency_claim("dies-midway").await;
    let (status, _, created) = send().await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let customer = &created["customer"];
    assert_eq!(customer["stripeCustomerId"], made[0]["id"]);
    assert_eq!(
        customer["id"], made[0]["metadata"]["billstack_id"],
        "the dead attempt's ID"
    );
    assert_eq!(env.stripe.customers().len(), 1, "no second Stripe customer");
    let (_, list) = env.call(Method::GET, &path, None).await;
    assert_eq!(list["customers"], json!([customer]));
    let (status, _, replayed) = send().await;
    assert_eq!((status, &replayed), (StatusCode::CREATED, &created));
}
