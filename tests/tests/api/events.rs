//! Every file in `events/` is a contract. Each one is rendered with the values of a freshly
//! seeded world (its `{{placeholders}}`), parsed by `lambda_http` exactly as the Lambda
//! runtime parses an invocation, served by the same dispatch as the functions against
//! DynamoDB Local and the Stripe emulator, and its answer is checked against the event's
//! own `x-billstack-expect` (a field API Gateway never sends and `lambda_http` ignores).
//! A new file in `events/` is tested without touching this file. `events/README.md` has
//! the rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use billstack::admin::NewApiKey;
use billstack::auth::ApiKeySecret;
use billstack::model::Role;
use billstack::routing::Resource;
use billstack_tests::TestEnv;
use http::Method;
use serde_json::{Value, json};

const EXPECT: &str = "x-billstack-expect";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../events")
}

/// Every `*.json` under `dir`, sorted, as paths relative to `dir`.
fn event_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                out.push(path.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

/// The `{{name}}` placeholders of an event's text, in order of first use.
fn placeholders(text: &str) -> Result<BTreeSet<String>, String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed placeholder at ...{}", &rest[start..]))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("bad placeholder {{{{{name}}}}}"));
        }
        names.insert(name.to_owned());
        rest = &after[end + 2..];
    }
    Ok(names)
}

/// What each placeholder stands for; `scripts/render-events` seeds the same for manual runs.
const KNOWN: &[(&str, &str)] = &[
    ("teamId", "the seeded team"),
    ("projectId", "the seeded project of that team"),
    ("apiKey", "a full-access key of the team"),
    (
        "readOnlyApiKey",
        "a key with customers:read and products:read only",
    ),
    (
        "otherProjectApiKey",
        "a key of the team limited to another project",
    ),
    ("customerId", "a seeded customer of the project"),
    ("customerEmail", "that customer's email"),
    ("productId", "a seeded product of the project"),
    ("priceId", "a seeded price of that product"),
    ("sessionToken", "a session token of the team's owner"),
    ("ownerUserId", "the user ID of the team's owner"),
    (
        "memberSessionToken",
        "a session token of a plain member (role member) of the team",
    ),
    ("memberUserId", "that member's user ID"),
    (
        "outsiderSessionToken",
        "a session token of a signed-in user who belongs to no team",
    ),
    ("apiKeyId", "the ID of the {{apiKey}} key's record"),
    (
        "stripeCustomerId",
        "the seeded customer's Stripe customer ID",
    ),
    (
        "webhookSignature",
        "a Stripe-Signature of the event's body, made when it is sent, with the team's webhook secret (the team is connected with one)",
    ),
];

/// The webhook signing secret the team is connected with when an event needs one.
const WEBHOOK_SECRET: &str = "whsec_billstackEventsSigningSecret000000";

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

/// Creates, through the API, what the placeholders in `needed` refer to.
async fn seed(
    env: &TestEnv,
    needed: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>, String> {
    for name in needed {
        check(KNOWN.iter().any(|(known, _)| known == name), || {
            let known: Vec<_> = KNOWN.iter().map(|(k, _)| *k).collect();
            format!(
                "unknown placeholder {{{{{name}}}}} (known: {})",
                known.join(", ")
            )
        })?;
    }
    let wants = |name: &str| needed.contains(name);
    let mut values = BTreeMap::from([
        ("teamId".to_owned(), env.team.id.to_string()),
        ("projectId".to_owned(), env.project.id.to_string()),
        ("apiKey".to_owned(), env.key.clone()),
    ]);
    if wants("readOnlyApiKey") {
        let (_, key) = env
            .key_with(NewApiKey {
                name: "read only".into(),
                scopes: vec!["customers:read".into(), "products:read".into()],
                ..Default::default()
            })
            .await;
        values.insert("readOnlyApiKey".into(), key);
    }
    if wants("otherProjectApiKey") {
        let other = env.other_project().await;
        let (_, key) = env
            .key_with(NewApiKey {
                name: "other project".into(),
                project_id: Some(other.id.to_string()),
                ..Default::default()
            })
            .await;
        values.insert("otherProjectApiKey".into(), key);
    }
    values.insert("sessionToken".into(), env.owner_token());
    values.insert("ownerUserId".into(), env.owner.clone());
    if wants("memberSessionToken") || wants("memberUserId") {
        let member = format!("member_of_{}", env.team.id);
        env.add_member(&member, Role::Member).await;
        values.insert("memberSessionToken".into(), env.token(&member));
        values.insert("memberUserId".into(), member);
    }
    if wants("outsiderSessionToken") {
        values.insert(
            "outsiderSessionToken".into(),
            env.token(&format!("outsider_of_{}", env.team.id)),
        );
    }
    if wants("apiKeyId") {
        let secret = ApiKeySecret::parse(&env.key).ok_or("the env's key is malformed")?;
        let record = env
            .store
            .get_api_key_by_hash(&secret.hash())
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the env's key is not in the table")?;
        values.insert("apiKeyId".into(), record.id.to_string());
    }
    if wants("webhookSignature") {
        let keys = connection::Connect::from_keys(
            stripe_emulator::DEFAULT_SECRET_KEY.to_owned(),
            None,
            Some(WEBHOOK_SECRET.to_owned()),
        )
        .map_err(|e| e.message)?;
        connection::connect_team(&env.app, &env.team.id, &keys)
            .await
            .map_err(|e| e.message)?;
    }
    if wants("customerId") || wants("customerEmail") || wants("stripeCustomerId") {
        let email = "seeded.customer@example.com";
        let customer = create(
            env,
            "customers",
            json!({"email": email, "name": "Seeded Customer"}),
        )
        .await?;
        values.insert("customerId".into(), id_of(&customer, "customer")?);
        values.insert(
            "stripeCustomerId".into(),
            customer["customer"]["stripeCustomerId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        values.insert("customerEmail".into(), email.into());
    }
    if wants("productId") || wants("priceId") {
        let product = create(
            env,
            "products",
            json!({"name": "Seeded Product", "description": "Seeded for events"}),
        )
        .await?;
        values.insert("productId".into(), id_of(&product, "product")?);
    }
    if wants("priceId") {
        let price = create(
            env,
            "prices",
            json!({
                "productId": values["productId"],
                "unitAmount": 1500,
                "currency": "usd",
                "type": "recurring",
                "interval": "month",
            }),
        )
        .await?;
        values.insert("priceId".into(), id_of(&price, "price")?);
    }
    Ok(values)
}

async fn create(env: &TestEnv, resource: &str, body: Value) -> Result<Value, String> {
    let (status, answer) = env
        .call(Method::POST, &env.path(resource), Some(body))
        .await;
    check(status == 201, || {
        format!("seeding {resource} failed: {status} {answer}")
    })?;
    Ok(answer)
}

fn id_of(answer: &Value, object: &str) -> Result<String, String> {
    answer[object]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no {object}.id in {answer}"))
}

fn render(text: &str, values: &BTreeMap<String, String>) -> String {
    values.iter().fold(text.to_owned(), |text, (name, value)| {
        text.replace(&format!("{{{{{name}}}}}"), value)
    })
}

/// `expected` against `actual`: objects match key by key (keys not named are not
/// checked), arrays element by element with the same length, `"*"` is any non-null value,
/// a string ending in `*` is a prefix, anything else must be equal.
fn compare(expected: &Value, actual: &Value, at: &str, problems: &mut Vec<String>) {
    match expected {
        Value::String(s) if s == "*" => {
            if actual.is_null() {
                problems.push(format!("{at}: expected a value, got null or nothing"));
            }
        }
        Value::String(s) if s.ends_with('*') => {
            let prefix = &s[..s.len() - 1];
            if !actual.as_str().is_some_and(|a| a.starts_with(prefix)) {
                problems.push(format!(
                    "{at}: expected a string starting {prefix:?}, got {actual}"
                ));
            }
        }
        Value::Object(fields) => {
            if !actual.is_object() {
                problems.push(format!("{at}: expected an object, got {actual}"));
                return;
            }
            for (key, value) in fields {
                compare(
                    value,
                    actual.get(key).unwrap_or(&Value::Null),
                    &format!("{at}.{key}"),
                    problems,
                );
            }
        }
        Value::Array(items) => match actual.as_array() {
            Some(got) if got.len() == items.len() => {
                for (i, (e, a)) in items.iter().zip(got).enumerate() {
                    compare(e, a, &format!("{at}[{i}]"), problems);
                }
            }
            _ => problems.push(format!(
                "{at}: expected an array of {} items, got {actual}",
                items.len()
            )),
        },
        _ => {
            if expected != actual {
                problems.push(format!("{at}: expected {expected}, got {actual}"));
            }
        }
    }
}

/// The event's own consistency: what API Gateway would send for its route.
fn check_shape(event: &Value) -> Result<(), String> {
    let route_key = event["routeKey"].as_str().ok_or("no routeKey")?;
    let (method, template) = route_key
        .split_once(' ')
        .ok_or_else(|| format!("routeKey {route_key:?} is not \"METHOD /path\""))?;
    let context = &event["requestContext"];
    check(event["version"] == "2.0", || {
        "version must be \"2.0\" (HTTP API payload v2)".into()
    })?;
    check(context["routeKey"] == route_key, || {
        "requestContext.routeKey differs from routeKey".into()
    })?;
    check(context["http"]["method"] == method, || {
        format!("requestContext.http.method differs from routeKey's {method}")
    })?;
    // lambda_http prefixes the path with any stage other than $default, and the router
    // would then find no route: the template deploys the $default stage only.
    check(context["stage"] == "$default", || {
        "requestContext.stage must be \"$default\"".into()
    })?;
    let raw_path = event["rawPath"].as_str().ok_or("no rawPath")?;
    check(context["http"]["path"] == raw_path, || {
        "requestContext.http.path differs from rawPath".into()
    })?;
    let params = event["pathParameters"]
        .as_object()
        .ok_or("no pathParameters")?;
    let mut path = template.to_owned();
    for (name, value) in params {
        let slot = format!("{{{name}}}");
        check(path.contains(&slot), || {
            format!("pathParameters.{name} is not in the route {template}")
        })?;
        path = path.replace(&slot, value.as_str().unwrap_or_default());
    }
    check(path == raw_path, || {
        format!("rawPath {raw_path} is not the route {template} with its pathParameters ({path})")
    })?;
    let query = event["rawQueryString"].as_str().unwrap_or_default();
    if let Some(params) = event["queryStringParameters"].as_object() {
        let raw: BTreeMap<&str, &str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        let parsed: BTreeMap<&str, &str> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
            .collect();
        check(raw == parsed, || {
            "queryStringParameters differ from rawQueryString".into()
        })?;
    }
    Ok(())
}

/// Runs one event file's text in a fresh world and checks the answer; `Err` says why not.
async fn run_event(text: &str) -> Result<(), String> {
    let raw: Value = serde_json::from_str(text).map_err(|err| format!("not JSON: {err}"))?;
    let mut needed = placeholders(text)?;
    // Objects the event does not name but needs to exist (a product's price, say).
    if let Some(extra) = raw[EXPECT].get("seed") {
        let names = extra
            .as_array()
            .ok_or_else(|| format!("{EXPECT}.seed must be a list of placeholder names"))?;
        for name in names {
            let name = name.as_str().ok_or("seed names are strings")?;
            needed.insert(name.to_owned());
        }
    }

    let env = TestEnv::new().await;
    let values = seed(&env, &needed).await?;
    let mut rendered = render(text, &values);
    // A Stripe-Signature is made over the body as sent, at sending.
    if rendered.contains("{{webhookSignature}}") {
        let mut event: Value = serde_json::from_str(&rendered)
            .map_err(|err| format!("not JSON once rendered: {err}"))?;
        let body = event["body"].as_str().unwrap_or_default().to_owned();
        event["headers"]["stripe-signature"] = json!(webhooks::signature::sign(
            body.as_bytes(),
            WEBHOOK_SECRET,
            billstack::clock::now_epoch()
        ));
        rendered = event.to_string();
    }
    let event: Value =
        serde_json::from_str(&rendered).map_err(|err| format!("not JSON once rendered: {err}"))?;
    check_shape(&event)?;
    let expect = event
        .get(EXPECT)
        .ok_or_else(|| format!("no \"{EXPECT}\" field"))?;
    let status = expect["status"]
        .as_u64()
        .ok_or_else(|| format!("{EXPECT}.status must be a number"))?;

    // Exactly what the Lambda runtime does with the invocation payload.
    let request = lambda_http::request::from_str(&rendered)
        .map_err(|err| format!("lambda_http cannot parse it: {err}"))?;
    // A redelivery: the same invocation once before the one whose answer is checked.
    if expect["deliverTwice"] == true {
        let first = lambda_http::request::from_str(&rendered)
            .map_err(|err| format!("lambda_http cannot parse it: {err}"))?;
        billstack_tests::send(&env.app, first).await;
    }
    let (got_status, body) = billstack_tests::send(&env.app, request).await;

    let mut problems = Vec::new();
    if u64::from(got_status.as_u16()) != status {
        problems.push(format!("status: expected {status}, got {got_status}"));
    }
    if let Some(expected_body) = expect.get("body") {
        compare(expected_body, &body, "body", &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n      answer: {body}",
            problems.join("\n      ")
        ))
    }
}

#[tokio::test]
async fn every_event_file_gets_the_answer_it_expects() {
    let dir = events_dir();
    let files = event_files(&dir);
    assert!(
        files.len() >= 15,
        "expected at least one event per route in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(dir.join(file)).expect("read event");
        match run_event(&text).await {
            Ok(()) => eprintln!("ok   events/{}", file.display()),
            Err(why) => {
                eprintln!("FAIL events/{}: {why}", file.display());
                failures.push(format!("events/{}: {why}", file.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} event files failed:\n  {}",
        failures.len(),
        files.len(),
        failures.join("\n  ")
    );
}

#[test]
fn every_route_has_an_event() {
    let id_param = |r: Resource| match r {
        Resource::Customers => "customerId",
        Resource::Products => "productId",
        Resource::Prices => "priceId",
    };
    let base = "/api/billstack/teams/{teamId}/projects/{projectId}";
    let dir = events_dir();
    let covered: BTreeSet<String> = event_files(&dir)
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(dir.join(file)).ok()?;
            let event: Value = serde_json::from_str(&text).ok()?;
            event["routeKey"].as_str().map(str::to_owned)
        })
        .collect();
    let mut missing = Vec::new();
    for resource in Resource::ALL {
        let collection = format!("{base}/{}", resource.segment());
        let item = format!("{collection}/{{{}}}", id_param(resource));
        for route in [
            format!("GET {collection}"),
            format!("POST {collection}"),
            format!("GET {item}"),
            format!("PATCH {item}"),
            format!("DELETE {item}"),
        ] {
            if !covered.contains(&route) {
                missing.push(route);
            }
        }
    }
    let teams = "/api/billstack/teams";
    let team = format!("{teams}/{{teamId}}");
    for route in [
        format!("GET {teams}"),
        format!("POST {teams}"),
        format!("GET {team}"),
        format!("PATCH {team}"),
        format!("GET {team}/members"),
        format!("POST {team}/members"),
        format!("PATCH {team}/members/{{userId}}"),
        format!("DELETE {team}/members/{{userId}}"),
        format!("GET {team}/projects"),
        format!("POST {team}/projects"),
        format!("GET {team}/projects/{{projectId}}"),
        format!("PATCH {team}/projects/{{projectId}}"),
        format!("GET {team}/api-keys"),
        format!("POST {team}/api-keys"),
        format!("GET {team}/api-keys/{{keyId}}"),
        format!("DELETE {team}/api-keys/{{keyId}}"),
        format!("POST {team}/stripe/connect"),
        format!("GET {team}/stripe/status"),
        format!("GET {team}/stripe/webhook-url"),
        format!("DELETE {team}/stripe"),
        format!("POST {team}/stripe/backfill"),
        "POST /api/webhooks/stripe/{teamId}".to_owned(),
    ] {
        if !covered.contains(&route) {
            missing.push(route);
        }
    }
    assert!(missing.is_empty(), "routes without an event: {missing:#?}");
}

/// The harness itself must be able to fail: a wrong expectation, a broken event and an
/// unknown placeholder are each reported.
#[tokio::test]
async fn the_checker_reports_wrong_expectations_and_broken_events() {
    let text = std::fs::read_to_string(events_dir().join("customers/get.json")).expect("read");
    assert_eq!(run_event(&text).await, Ok(()));

    let mut event: Value = serde_json::from_str(&text).expect("json");
    event[EXPECT]["status"] = json!(404);
    let err = run_event(&event.to_string()).await.unwrap_err();
    assert!(err.contains("status: expected 404, got 200"), "{err}");

    let mut event: Value = serde_json::from_str(&text).expect("json");
    event[EXPECT]["body"]["customer"]["email"] = json!("someone.else@example.com");
    let err = run_event(&event.to_string()).await.unwrap_err();
    assert!(err.contains("body.customer.email"), "{err}");

    // No requestContext.http: lambda_http refuses it, as the Lambda runtime would.
    let mut event: Value = serde_json::from_str(&text).expect("json");
    event["requestContext"]
        .as_object_mut()
        .expect("context")
        .remove("http");
    let err = check_shape(&event).expect_err("an event without requestContext.http");
    assert!(err.contains("http"), "{err}");
    let parsed = lambda_http::request::from_str(&event.to_string());
    assert!(
        parsed.is_err(),
        "an event without requestContext.http must not parse"
    );

    // A named stage would put its name in front of the path.
    let mut event: Value = serde_json::from_str(&text).expect("json");
    event["requestContext"]["stage"] = json!("dev");
    let err = run_event(&event.to_string()).await.unwrap_err();
    assert!(err.contains("$default"), "{err}");

    let err = run_event(&text.replace("{{customerId}}", "{{customerID}}"))
        .await
        .unwrap_err();
    assert!(err.contains("unknown placeholder {{customerID}}"), "{err}");
}

#[test]
fn compare_semantics() {
    let mut problems = Vec::new();
    let actual = json!({"a": "pc_123", "b": [1, 2], "c": null, "d": {"e": 1, "f": 2}});
    compare(
        &json!({"a": "pc_*", "b": [1, 2], "d": {"e": 1}}),
        &actual,
        "body",
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    compare(
        &json!({"a": "pp_*", "b": [1], "c": "*", "d": {"e": 2}}),
        &actual,
        "body",
        &mut problems,
    );
    assert_eq!(problems.len(), 4, "{problems:#?}");
}
