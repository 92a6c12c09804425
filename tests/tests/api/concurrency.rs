//! Fifty concurrent creates, updates and deletes of one project's customers, products and
//! prices (issue #10): none answers 500, and when they are done our table and the team's
//! Stripe account agree on every object.

use std::collections::HashMap;
use std::sync::Arc;

use billstack_tests::TestEnv;
use http::{Method, StatusCode};
use serde_json::{Value, json};

async fn list(env: &TestEnv, resource: &str) -> Vec<Value> {
    let (status, body) = env
        .call(
            Method::GET,
            &format!(
                "{}?limit=100{}",
                env.path(resource),
                match resource {
                    "customers" => "",
                    _ => "&activeOnly=false",
                }
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body[resource].as_array().cloned().unwrap_or_default()
}

fn by_id(objects: Vec<Value>) -> HashMap<String, Value> {
    objects
        .into_iter()
        .map(|o| (o["id"].as_str().unwrap_or_default().to_owned(), o))
        .collect()
}

#[tokio::test]
async fn fifty_concurrent_mixed_writes_leave_stripe_and_the_table_in_agreement() {
    let env = Arc::new(TestEnv::new().await);
    let mut customers = Vec::new();
    for i in 0..5 {
        customers.push(
            env.create(
                "customers",
                json!({"email": format!("c{i}@example.com"), "name": format!("C{i}")}),
            )
            .await,
        );
    }
    let mut products = Vec::new();
    let mut prices = Vec::new();
    for i in 0..3 {
        let product = env
            .create("products", json!({"name": format!("P{i}")}))
            .await;
        for amount in [100, 200] {
            prices.push(
                env.create(
                    "prices",
                    json!({"productId": product["id"], "unitAmount": amount + i, "currency": "usd", "interval": "month"}),
                )
                .await,
            );
        }
        products.push(product);
    }
    let id = |o: &Value| o["id"].as_str().unwrap().to_owned();
    let item = |resource: &str, o: &Value| format!("{}/{}", env.path(resource), id(o));

    // Fifty requests, each object touched by several at once: renames and email changes
    // (two to one address), archive and re-activate, deletes racing updates, new prices
    // for products being deleted, duplicate creates.
    let mut requests: Vec<(Method, String, Option<Value>)> = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        requests.push((
            Method::PATCH,
            item("customers", c),
            Some(json!({"name": format!("Renamed {i}")})),
        ));
        requests.push((
            Method::PATCH,
            item("customers", c),
            Some(json!({"email": format!("moved{}@example.com", i % 3)})),
        ));
        requests.push((
            Method::PATCH,
            item("customers", c),
            Some(json!({"metadata": {"n": format!("{i}")}})),
        ));
        if i % 2 == 0 {
            requests.push((Method::DELETE, item("customers", c), None));
        }
    }
    for i in 0..9 {
        requests.push((
            Method::POST,
            env.path("customers"),
            Some(json!({"email": format!("new{}@example.com", i % 4)})),
        ));
    }
    for (i, p) in products.iter().enumerate() {
        requests.push((
            Method::PATCH,
            item("products", p),
            Some(json!({"name": format!("Product {i}")})),
        ));
        requests.push((
            Method::PATCH,
            item("products", p),
            Some(json!({"isActive": false})),
        ));
        requests.push((
            Method::PATCH,
            item("products", p),
            Some(json!({"isActive": true})),
        ));
        requests.push((Method::POST, env.path("prices"), Some(json!({"productId": p["id"], "unitAmount": 900, "currency": "eur", "type": "one_time"}))));
        if i != 1 {
            requests.push((Method::DELETE, item("products", p), None));
        }
    }
    for (i, p) in prices.iter().enumerate() {
        requests.push((
            Method::PATCH,
            item("prices", p),
            Some(json!({"isActive": i % 2 == 0, "metadata": {"k": "v"}})),
        ));
        if i % 3 == 0 {
            requests.push((Method::DELETE, item("prices", p), None));
        }
    }
    requests.push((
        Method::POST,
        env.path("products"),
        Some(json!({"name": "Late"})),
    ));
    requests.truncate(50);
    assert_eq!(requests.len(), 50);

    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(method, path, body)| {
            let env = env.clone();
            tokio::spawn(async move {
                let (status, answer) = env.call(method.clone(), &path, body).await;
                (method, path, status, answer)
            })
        })
        .collect();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut unfinished_deletes = Vec::new();
    for task in tasks {
        let (method, path, status, answer) = task.await.unwrap();
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {path}: {answer}"
        );
        assert!(
            [200, 201, 404, 409, 503].contains(&status.as_u16()),
            "{method} {path}: {status} {answer}"
        );
        *statuses.entry(status.as_u16()).or_default() += 1;
        if method == Method::DELETE && matches!(status.as_u16(), 409 | 503) {
            unfinished_deletes.push(path);
        }
    }
    // A delete told to retry (409 concurrent_update, 503) is retried, as a client does: one
    // stopped half way leaves its product marked and partly archived, and its retry
    // finishes it.
    for path in unfinished_deletes {
        let mut status = StatusCode::CONFLICT;
        for _ in 0..5 {
            status = env.call(Method::DELETE, &path, None).await.0;
            if matches!(status.as_u16(), 200 | 404) {
                break;
            }
        }
        assert!(
            matches!(status.as_u16(), 200 | 404),
            "DELETE {path}: {status}"
        );
    }
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 10,
        "{statuses:?}"
    );

    // Every record agrees with its Stripe object.
    let stripe_customers = by_id(env.stripe.customers());
    for c in list(&env, "customers").await {
        let s = &stripe_customers[c["stripeCustomerId"].as_str().unwrap()];
        assert_eq!(s["email"], c["email"], "{c} / {s}");
        assert_eq!(s["name"], c["name"], "{c} / {s}");
        for (k, v) in c["metadata"].as_object().unwrap() {
            assert_eq!(&s["metadata"][k], v, "{c} / {s}");
        }
        assert_eq!(s["metadata"]["billstack_id"], c["id"]);
    }
    let stripe_products = by_id(env.stripe.products());
    let our_products = by_id(list(&env, "products").await);
    for p in our_products.values() {
        let s = &stripe_products[p["stripeProductId"].as_str().unwrap()];
        assert_eq!(s["name"], p["name"], "{p} / {s}");
        assert_eq!(s["active"], p["isActive"], "{p} / {s}");
    }
    let our_prices = by_id(list(&env, "prices").await);
    let stripe_prices = by_id(env.stripe.prices());
    for p in our_prices.values() {
        let s = &stripe_prices[p["stripePriceId"].as_str().unwrap()];
        assert_eq!(s["active"], p["isActive"], "{p} / {s}");
        assert!(
            our_products.contains_key(p["productId"].as_str().unwrap()),
            "{p}: its product is gone"
        );
    }
    // Whatever Stripe holds of ours without a record is archived: deleted here, or the
    // orphan of a create that failed.
    for s in stripe_products.values() {
        let ours = s["metadata"]["billstack_id"].as_str().unwrap_or_default();
        if !our_products.contains_key(ours) {
            assert_eq!(
                s["active"], false,
                "a product we do not hold is archived: {s}"
            );
        }
    }
    for s in stripe_prices.values() {
        let ours = s["metadata"]["billstack_id"].as_str().unwrap_or_default();
        if !our_prices.contains_key(ours) {
            assert_eq!(
                s["active"], false,
                "a price we do not hold is inactive: {s}"
            );
        }
    }
}
