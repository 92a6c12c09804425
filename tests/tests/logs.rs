//! One JSON log line per request, and never a key, a header or a body in the logs.

use std::io::Write;
use std::sync::{Arc, Mutex};

use billstack_tests::TestEnv;
use http::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_json_line_per_request_without_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing::subscriber::set_global_default(billstack::http::json_subscriber(move || {
        writer.clone()
    }))
    .unwrap();

    let env = TestEnv::new().await;
    let (status, _) = env
        .call(
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "secret.person@example.com", "name": "Private Name"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = env
        .call_raw(
            Some("Bearer bs_not_a_real_key_but_still_private"),
            Method::GET,
            &env.path("customers"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Connecting Stripe: the keys go to Stripe and KMS, never to a log, also when refused.
    let account = env.stripe.open_account(None);
    let whsec = "whsec_loggedNeverEver0123456789abcd";
    let connect = format!("/api/billstack/teams/{}/stripe/connect", env.team.id);
    for body in [
        json!({"secretKey": account.secret_key, "webhookSecret": whsec}),
        json!({"secretKey": "sk_live_refusedByStripe0123456789"}),
        json!({"secretKey": account.restricted_key, "publishableKey": "pk_live_mismatched0123456789"}),
    ] {
        env.call_as(Some(&env.owner_token()), Method::POST, &connect, Some(body))
            .await;
    }
    let (status, _) = env
        .call(
            Method::POST,
            &env.path("products"),
            Some(json!({"name": "After the connect"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "billstack::request")
        .collect();
    assert_eq!(requests.len(), 6, "{text}");
    assert_eq!(requests[0]["fields"]["route"], "POST /customers");
    assert_eq!(requests[0]["fields"]["status"], 201);
    assert_eq!(requests[1]["fields"]["status"], 401);
    assert_eq!(requests[1]["fields"]["error_code"], "unauthorized");
    assert!(requests[0]["fields"]["latency_ms"].is_number());
    assert!(requests[0]["fields"]["request_id"].is_string());
    assert_eq!(requests[0]["fields"]["project_id"], env.project.id.as_str());

    for secret in [
        env.key.as_str(),
        &env.key[3..],
        "bs_not_a_real_key",
        "secret.person",
        "Private Name",
        "sk_test_",
        "sk_live_",
        "rk_test_",
        "rk_live_",
        "whsec_",
        &account.secret_key[8..],
        &account.restricted_key[8..],
        "refusedByStripe",
        "loggedNeverEver",
        "uthorization",
    ] {
        assert!(
            !text.contains(secret),
            "the logs contain {secret:?}:\n{text}"
        );
    }
}
