//! API key authentication and authorization, end to end against DynamoDB Local.

use billstack::admin::{self, NewApiKey};
use billstack::auth::ApiKeySecret;
use billstack::clock;
use billstack::ids::ApiKeyId;
use billstack::model::{ApiKeyRecord, Scope};
use billstack_tests::{TestEnv, project_path};
use http::{Method, StatusCode};
use serde_json::json;

fn scoped(scopes: &[&str]) -> NewApiKey {
    NewApiKey {
        name: "scoped".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn missing_malformed_and_unknown_keys_are_401() {
    let env = TestEnv::new().await;
    let path = env.path("customers");
    let unknown = format!("Bearer bs_{}", "0".repeat(48));
    let cases = [
        None,
        Some("Bearer"),
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer sk_test_123"),
        Some("Bearer bs_123"),
        Some(unknown.as_str()),
    ];
    for header in cases {
        for method in [Method::GET, Method::POST] {
            let body =
                (method == Method::POST).then(|| json!({"email": "x@example.com"}).to_string());
            let (status, answer) = env.call_raw(header, method.clone(), &path, body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{header:?} {method}: {answer}"
            );
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap()
                    .to_lowercase()
                    .contains("key")
                    || answer["error"].as_str().unwrap().contains("Authorization")
            );
        }
    }
    assert_eq!(env.stripe.request_count("*"), 0);
}

#[tokio::test]
async fn revoked_and_expired_keys_are_401() {
    let env = TestEnv::new().await;
    let path = env.path("customers");
    let (_, raw) = env.key_with(scoped(&[])).await;
    let (status, _) = env.call_as(Some(&raw), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);

    let secret = ApiKeySecret::parse(&raw).unwrap();
    assert!(
        env.store
            .revoke_api_key(&secret.hash(), clock::now_epoch())
            .await
            .unwrap()
    );
    let (status, body) = env.call_as(Some(&raw), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );

    // An expired key, written as the table would hold it after its time passed.
    let expired = ApiKeySecret::generate().unwrap();
    let record = ApiKeyRecord {
        id: ApiKeyId::generate(),
        team_id: env.team.id.clone(),
        name: "expired".into(),
        prefix: expired.display_prefix(),
        project_id: None,
        scopes: vec![],
        expires_at: Some(clock::now_epoch() - 1),
        revoked_at: None,
        created_at: clock::now_epoch() - 100,
        last_used_at: None,
    };
    env.store
        .put_api_key(&expired.hash(), &record)
        .await
        .unwrap();
    let (status, body) = env
        .call_as(Some(expired.expose()), Method::GET, &path, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // A key that expires later works now.
    let (record, raw) = env
        .key_with(NewApiKey {
            name: "later".into(),
            expires_at: Some(clock::rfc3339(clock::now_epoch() + 3600)),
            ..Default::default()
        })
        .await;
    assert!(record.expires_at.is_some());
    let (status, _) = env.call_as(Some(&raw), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn scopes_gate_reads_and_writes() {
    let env = TestEnv::new().await;
    let path = env.path("customers");
    let (_, read) = env.key_with(scoped(&["customers:read"])).await;
    let (_, write) = env.key_with(scoped(&["customers:write"])).await;
    let (_, products) = env
        .key_with(scoped(&["products:write", "products:read"]))
        .await;

    let (status, _) = env.call_as(Some(&read), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = env
        .call_as(
            Some(&read),
            Method::POST,
            &path,
            Some(json!({"email": "r@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"].as_str().unwrap().contains("customers:write"),
        "{body}"
    );

    let (status, created) = env
        .call_as(
            Some(&write),
            Method::POST,
            &path,
            Some(json!({"email": "w@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let item = format!("{path}/{}", created["customer"]["id"].as_str().unwrap());
    // Write implies read.
    let (status, _) = env.call_as(Some(&write), Method::GET, &item, None).await;
    assert_eq!(status, StatusCode::OK);
    for (method, body) in [
        (Method::PATCH, Some(json!({"name": "x"}))),
        (Method::DELETE, None),
    ] {
        let (status, _) = env.call_as(Some(&read), method.clone(), &item, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
    }

    for method in [Method::GET, Method::POST] {
        let body = (method == Method::POST).then(|| json!({"email": "p@example.com"}));
        let (status, _) = env
            .call_as(Some(&products), method.clone(), &path, body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}");
    }
    // The refused write left nothing behind.
    assert_eq!(env.stripe.customers().len(), 1);
    assert!(
        env.store
            .email_owner(&env.project.id, "r@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_project_key_cannot_touch_another_projects_customers() {
    let env = TestEnv::new().await;
    let other = env.other_project().await;
    let (record, project_key) = env
        .key_with(NewApiKey {
            name: "project".into(),
            project_id: Some(env.project.id.to_string()),
            ..Default::default()
        })
        .await;
    assert_eq!(record.project_id.as_deref(), Some(env.project.id.as_str()));

    // A customer of the other project, made with the team-wide key.
    let other_path = project_path(&env.team.id, &other.id, "customers");
    let (status, created) = env
        .call(
            Method::POST,
            &other_path,
            Some(json!({"email": "o@example.com", "name": "Other"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let other_item = format!(
        "{other_path}/{}",
        created["customer"]["id"].as_str().unwrap()
    );

    let (status, _) = env
        .call_as(Some(&project_key), Method::GET, &other_path, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "Hijacked"}))),
        (Method::DELETE, None),
    ] {
        let (status, answer) = env
            .call_as(Some(&project_key), method.clone(), &other_item, body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {answer}");
    }
    let (status, _) = env
        .call_as(
            Some(&project_key),
            Method::POST,
            &other_path,
            Some(json!({"email": "sneak@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Untouched, in DynamoDB and in Stripe.
    let (status, body) = env.call(Method::GET, &other_item, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["customer"]["name"], "Other");
    assert_eq!(env.stripe.customers().len(), 1);
    // Its own project works.
    let (status, _) = env
        .call_as(
            Some(&project_key),
            Method::GET,
            &env.path("customers"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn other_teams_and_missing_projects() {
    let env = TestEnv::new().await;
    let other_team = admin::create_team(&env.store, "Other team").await.unwrap();
    let foreign_project = admin::create_project(&env.store, &other_team.id, "Theirs")
        .await
        .unwrap();

    // Our key on the other team's path: 403.
    let path = project_path(&other_team.id, &foreign_project.id, "customers");
    let (status, _) = env.call(Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Our team's path with a project that does not exist, or belongs to another team: 404.
    for project in ["proj_doesnotexist", foreign_project.id.as_str()] {
        let path = project_path(&env.team.id, project, "customers");
        let (status, body) = env.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{project}");
        assert_eq!(body["error"], "Project not found");
        let (status, _) = env
            .call(Method::POST, &path, Some(json!({"email": "x@example.com"})))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(env.stripe.request_count("*"), 0);
}

#[tokio::test]
async fn admin_refuses_bad_key_parameters() {
    let env = TestEnv::new().await;
    let err = admin::create_api_key(&env.store, &env.team.id, &scoped(&["customers:delete"]))
        .await
        .unwrap_err();
    assert_eq!(err.param.as_deref(), Some("scopes"));
    let past = NewApiKey {
        name: "past".into(),
        expires_at: Some("2020-01-01T00:00:00Z".into()),
        ..Default::default()
    };
    assert_eq!(
        admin::create_api_key(&env.store, &env.team.id, &past)
            .await
            .unwrap_err()
            .param
            .as_deref(),
        Some("expiresAt")
    );
    let foreign = NewApiKey {
        name: "foreign".into(),
        project_id: Some("proj_nope".into()),
        ..Default::default()
    };
    // A project that is not this team's is a bad parameter (team-api.md), named as such.
    let err = admin::create_api_key(&env.store, &env.team.id, &foreign)
        .await
        .unwrap_err();
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    assert_eq!(err.param.as_deref(), Some("projectId"));
    let (record, _) = env
        .key_with(scoped(&[
            "customers:read",
            "customers:read",
            "products:write",
        ]))
        .await;
    assert_eq!(
        record.scopes,
        vec![Scope::CustomersRead, Scope::ProductsWrite]
    );
    let json = record.to_json();
    assert_eq!(json["scopes"], json!(["customers:read", "products:write"]));
    assert!(json["prefix"].as_str().unwrap().starts_with("bs_"));
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let env = TestEnv::new().await;
    let (status, body) = env
        .call(Method::GET, "/api/billstack/teams/x/invoices", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("No route"));
    let (status, _) = env
        .call(
            Method::PUT,
            &format!("{}/pc_1", env.path("customers")),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// DynamoDB refuses keys over 2 KB with a validation error: a path ID that long must be a
/// 404 like any ID that names nothing, never a 500 (issue #10, item 10).
#[tokio::test]
async fn over_long_ids_in_the_path_are_404_not_500() {
    let env = TestEnv::new().await;
    let long_project = format!("proj_{}", "a".repeat(3000));
    let long_team = format!("team_{}", "a".repeat(3000));
    let owner = env.owner_token();
    for (token, path) in [
        (
            env.key.clone(),
            project_path(&env.team.id, &long_project, "customers"),
        ),
        (
            owner.clone(),
            project_path(&env.team.id, &long_project, "customers"),
        ),
        (
            owner.clone(),
            project_path(&long_team, &env.project.id, "customers"),
        ),
        (owner.clone(), format!("/api/billstack/teams/{long_team}")),
        (
            owner.clone(),
            format!("/api/billstack/teams/{long_team}/members"),
        ),
    ] {
        let (status, body) = env.call_as(Some(&token), Method::GET, &path, None).await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
            "{}: {status} {body}",
            &path[..60]
        );
        assert_ne!(body["code"], "internal_error");
    }
}
