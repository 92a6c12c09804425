//! The OpenAPI document as the local API serves it, and the check every other test's
//! answers go through (`billstack_tests::openapi`): it must refuse what the document does
//! not describe, or it would prove nothing.

use std::net::{Ipv4Addr, SocketAddr};

use billstack_tests::TestEnv;
use billstack_tests::openapi::check_exchange;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 GET over a fresh connection; answers the status line, headers and body.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_owned(), body.to_owned())
}

#[tokio::test]
async fn the_local_api_serves_the_document_and_its_page() {
    let env = TestEnv::new().await;
    let addr =
        billstack_local::spawn_server(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), env.app.clone())
            .await
            .expect("listen");

    let (head, body) = get(addr, "/openapi.json").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let served: Value = serde_json::from_str(&body).expect("JSON");
    let committed: Value =
        serde_json::from_str(billstack_local::OPENAPI_JSON).expect("committed JSON");
    // The committed document, with this server as its server (for "Try it out").
    assert_eq!(
        served["servers"],
        json!([{"url": format!("http://{addr}"), "description": "this local API"}])
    );
    assert_eq!(served["paths"], committed["paths"]);
    assert_eq!(served["components"], committed["components"]);
    assert_eq!(served["openapi"], "3.1.0");

    let (head, page) = get(addr, "/docs/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(page.contains("SwaggerUIBundle") && page.contains("url: \"/openapi.json\""));
    assert!(
        !page.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    let (head, _) = get(addr, "/docs").await;
    assert!(
        head.starts_with("HTTP/1.1 308") && head.contains("/docs/"),
        "{head}"
    );
    // The API itself is still the API.
    let (head, body) = get(addr, "/api/billstack/teams").await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(body.contains("\"error\""));
}

const CUSTOMER: &str = "/api/billstack/teams/team_a/projects/proj_a/customers/pc_a";

fn customer() -> Value {
    json!({
        "id": "pc_a", "email": "jane@example.com", "name": null,
        "stripeCustomerId": "cus_a", "metadata": {"plan": "pro"}, "projectId": "proj_a",
        "createdAt": "2026-03-30T12:00:00Z", "updatedAt": "2026-03-30T12:00:00Z",
    })
}

fn refused(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let err = std::panic::catch_unwind(f).expect_err("the check should refuse this");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn the_check_passes_a_documented_answer_and_refuses_drift() {
    check_exchange("GET", CUSTOMER, None, 200, &json!({"customer": customer()}));

    let mut extra = customer();
    extra["plan"] = json!("pro");
    let message = refused(move || {
        check_exchange("GET", CUSTOMER, None, 200, &json!({"customer": extra}));
    });
    assert!(message.contains("does not match"), "{message}");

    let mut missing = customer();
    missing.as_object_mut().unwrap().remove("updatedAt");
    refused(move || check_exchange("GET", CUSTOMER, None, 200, &json!({"customer": missing})));

    let message =
        refused(|| check_exchange("GET", CUSTOMER, None, 201, &json!({"customer": customer()})));
    assert!(message.contains("does not list"), "{message}");

    // Errors have one shape, on documented routes and unknown ones alike.
    check_exchange(
        "GET",
        CUSTOMER,
        None,
        404,
        &json!({"error": "Customer not found", "code": "not_found"}),
    );
    refused(|| {
        check_exchange(
            "GET",
            CUSTOMER,
            None,
            404,
            &json!({"message": "Customer not found"}),
        )
    });
    refused(|| check_exchange("GET", "/nowhere", None, 404, &json!({"error": 404})));

    // A body the API accepted must be one the document accepts.
    let path = "/api/billstack/teams/team_a/projects/proj_a/customers";
    let created = json!({"customer": customer()});
    check_exchange(
        "POST",
        path,
        Some(br#"{"email": "jane@example.com"}"#),
        201,
        &created,
    );
    let message = refused(|| {
        check_exchange(
            "POST",
            path,
            Some(br#"{"email": "jane@example.com", "plan": 1}"#),
            201,
            &json!({"customer": customer()}),
        );
    });
    assert!(message.contains("request body"), "{message}");
}
