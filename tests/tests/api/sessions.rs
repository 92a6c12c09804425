//! Dashboard sessions end to end: real tokens signed by a development OIDC issuer on
//! loopback, verified against its JWKS over HTTP, and memberships in DynamoDB Local.
//! Every bad token is a 401 naming the check that failed, and none of them writes.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use billstack::clock;
use billstack::session::{IssuerConfig, SessionVerifier};
use billstack_tests::{DevIssuer, TestEnv, TokenRequest, issuer_config};
use http::{Method, StatusCode};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

const TEAMS: &str = "/api/billstack/teams";

async fn get_teams(env: &TestEnv, token: &str) -> (StatusCode, Value) {
    env.call_as(Some(token), Method::GET, TEAMS, None).await
}

/// Teams `user` belongs to, read straight from the table.
async fn teams_of(env: &TestEnv, user: &str) -> usize {
    let page = billstack::input::Page {
        limit: Some(100),
        offset: 0,
        starting_after: None,
    };
    env.store.teams_of_user(user, &page).await.unwrap().0.len()
}

#[tokio::test]
async fn a_valid_session_lists_the_users_teams_with_their_role() {
    let env = TestEnv::new().await;
    let (status, body) = get_teams(&env, &env.owner_token()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["teams"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["teams"][0]["id"], json!(env.team.id));
    assert_eq!(body["teams"][0]["role"], "owner");
    assert_eq!(body["teams"][0]["name"], "Test team");
    assert!(
        body["teams"][0]["createdAt"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(body["hasMore"], false);

    // EdDSA as well as RS256.
    let token = env
        .issuer
        .mint(&TokenRequest {
            alg: Some("EdDSA".into()),
            ..TokenRequest::for_user(&env.owner)
        })
        .unwrap();
    let (status, body) = get_teams(&env, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["teams"][0]["id"], json!(env.team.id));
}

#[tokio::test]
async fn a_cognito_access_token_names_its_audience_in_client_id() {
    let env = TestEnv::new().await;
    let mut claims = env.issuer.claims_for(&env.owner);
    claims.as_object_mut().unwrap().remove("aud");
    claims["client_id"] = json!(dev_issuer::DEFAULT_AUDIENCE);
    claims["token_use"] = json!("access");
    let (status, body) = get_teams(&env, &env.issuer.sign(&claims, Algorithm::RS256)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    claims["client_id"] = json!("another-app");
    let (status, body) = get_teams(&env, &env.issuer.sign(&claims, Algorithm::RS256)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "Session token has the wrong audience");
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Every way a token can be bad, each answered 401 with what failed; and nothing written.
#[tokio::test]
async fn bad_tokens_are_401_naming_the_failed_check_and_write_nothing() {
    let env = TestEnv::new().await;
    let user = "user_attacker";
    let now = clock::now_epoch();
    let good = env.issuer.token_for(user);
    let claims = env.issuer.claims_for(user);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        change(&mut c);
        env.issuer.sign(&c, Algorithm::RS256)
    };

    let expired = with(&|c| {
        c["exp"] = json!(now - 120);
        c["iat"] = json!(now - 3600);
        c["nbf"] = json!(now - 3600);
    });
    let not_yet = with(&|c| c["nbf"] = json!(now + 600));
    let wrong_issuer = with(&|c| c["iss"] = json!("https://issuer.example.com"));
    let wrong_audience = with(&|c| c["aud"] = json!("someone-else"));
    let no_sub = with(&|c| {
        c.as_object_mut().unwrap().remove("sub");
    });
    let unknown_kid = env
        .issuer
        .sign_with_unpublished_key(&claims, Algorithm::RS256);
    let header = |alg: &str| b64(&json!({"alg": alg, "typ": "JWT", "kid": "dev-rs256-1"}));
    let alg_none = format!("{}.{}.", header("none"), b64(&claims));
    // HS256 "signed" with the issuer's public key as the HMAC secret: the classic confusion.
    let jwks = reqwest_free_get(&env.issuer.jwks_url()).await;
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("dev-rs256-1".into()),
            ..jsonwebtoken::Header::new(Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(jwks.as_bytes()).unwrap(),
    )
    .unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let mut raised = claims.clone();
    raised["sub"] = json!(env.owner);
    let tampered = format!("{}.{}.{}", parts[0], b64(&raised), parts[2]);

    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", expired, "Session token expired"),
        (
            "nbf in the future",
            not_yet,
            "Session token not yet valid (nbf)",
        ),
        (
            "wrong issuer",
            wrong_issuer,
            "Session token has the wrong issuer",
        ),
        (
            "wrong audience",
            wrong_audience,
            "Session token has the wrong audience",
        ),
        (
            "no sub",
            no_sub,
            "Session token lacks a required claim (exp, iss, sub)",
        ),
        (
            "unknown kid",
            unknown_kid,
            "Session token is signed by an unknown signing key (kid)",
        ),
        (
            "alg none",
            alg_none,
            "Invalid session token: unsupported or missing algorithm",
        ),
        (
            "HS256 with the public key",
            hs256,
            "Invalid session token: algorithm HS256 is not accepted",
        ),
        (
            "tampered payload",
            tampered,
            "Session token signature is invalid",
        ),
        (
            "garbage",
            "not-a-token".to_owned(),
            "Invalid credentials: not an API key (bs_...) or a session token",
        ),
        (
            "three garbage parts",
            "a.b.c".to_owned(),
            "Invalid session token: not a well-formed JWT",
        ),
    ];
    for (what, token, message) in &cases {
        for (method, path, body) in [
            (Method::GET, TEAMS.to_owned(), None),
            (
                Method::POST,
                TEAMS.to_owned(),
                Some(json!({"name": "Hijack"})),
            ),
            (
                Method::POST,
                env.path("customers"),
                Some(json!({"email": "x@example.com"})),
            ),
            (
                Method::POST,
                format!("{TEAMS}/{}/members", env.team.id),
                Some(json!({"userId": user, "role": "owner"})),
            ),
        ] {
            let (status, answer) = env.call_as(Some(token), method.clone(), &path, body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{what}: {method} {path}: {answer}"
            );
            assert_eq!(answer["error"], *message, "{what}");
            assert_eq!(answer["code"], "unauthorized");
            assert!(
                !answer.to_string().contains(token.as_str()),
                "{what}: echoes the token"
            );
        }
    }
    // Nothing was written: no team for the attacker, no membership, no customer, no Stripe call.
    assert_eq!(teams_of(&env, user).await, 0);
    assert!(
        env.store
            .get_membership(&env.team.id, user)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(env.stripe.request_count("*"), 0);
    // The good token works, so the 401s above were the tokens' fault.
    let (status, _) = get_teams(&env, &good).await;
    assert_eq!(status, StatusCode::OK);
    // One JWKS fetch served every request: unknown kids within a minute do not refetch.
    assert_eq!(
        env.issuer.jwks_fetches(),
        1 + 1,
        "one by the verifier, one by this test"
    );
}

/// The test's own plain HTTP GET of a loopback URL (the issuer's JWKS).
async fn reqwest_free_get(url: &str) -> String {
    let client = billstack::outbound::https_client();
    let body = billstack::outbound::get(&client, url, Duration::from_secs(5), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn keys_are_fetched_at_first_use_and_again_for_a_new_kid_at_most_once_a_minute() {
    let issuer = DevIssuer::start(0).await.unwrap();
    let verifier = SessionVerifier::new(issuer_config(&issuer));
    assert_eq!(
        issuer.jwks_fetches(),
        0,
        "nothing is fetched before the first token"
    );
    let session = verifier.verify(&issuer.token_for("u1")).await.unwrap();
    assert_eq!(session.user_id, "u1");
    verifier.verify(&issuer.token_for("u2")).await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 1);

    // A rotated-in key is not seen within the minute: refused, no second fetch.
    let kid = issuer.rotate(Algorithm::RS256);
    let rotated = issuer.sign_with_kid(&issuer.claims_for("u3"), &kid);
    let err = verifier.verify(&rotated).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(issuer.jwks_fetches(), 1);

    // With the bound at zero, the new kid triggers one fetch and then verifies.
    let eager = SessionVerifier::with_min_refresh(issuer_config(&issuer), Duration::ZERO);
    eager.verify(&issuer.token_for("u1")).await.unwrap();
    let fetched = issuer.jwks_fetches();
    let kid = issuer.rotate(Algorithm::EdDSA);
    let rotated = issuer.sign_with_kid(&issuer.claims_for("u4"), &kid);
    assert_eq!(eager.verify(&rotated).await.unwrap().user_id, "u4");
    assert_eq!(issuer.jwks_fetches(), fetched + 1);
}

#[tokio::test]
async fn discovery_and_an_explicit_jwks_url_both_work_and_an_unreachable_issuer_is_503() {
    let issuer = DevIssuer::start(0).await.unwrap();
    let explicit = SessionVerifier::new(IssuerConfig {
        jwks_url: Some(issuer.jwks_url()),
        ..issuer_config(&issuer)
    });
    assert!(explicit.verify(&issuer.token_for("u")).await.is_ok());

    // An issuer nobody answers for: our fault to surface as retryable, not the token's.
    let token = issuer.token_for("u");
    let gone = SessionVerifier::new(IssuerConfig {
        jwks_url: Some("http://127.0.0.1:9/.well-known/jwks.json".into()),
        ..issuer_config(&issuer)
    });
    let err = gone.verify(&token).await.unwrap_err();
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.retry_after, Some(1));
}

#[tokio::test]
async fn sessions_of_members_read_and_write_project_endpoints_and_others_get_404() {
    let env = TestEnv::new().await;
    env.add_member("user_member", billstack::model::Role::Member)
        .await;
    let member = env.token("user_member");
    let (status, body) = env
        .call_as(
            Some(&member),
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "session@example.com", "name": "By Session"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["customer"]["id"].as_str().unwrap().to_owned();
    let stripe_id = body["customer"]["stripeCustomerId"].as_str().unwrap();
    assert!(
        env.stripe.customer(stripe_id).is_some(),
        "created in Stripe"
    );
    let (status, body) = env
        .call_as(
            Some(&member),
            Method::GET,
            &format!("{}/{id}", env.path("customers")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["customer"]["email"], "session@example.com");

    // A user of no team, and a member of another team, see nothing of this one.
    let other = TestEnv::new().await;
    for token in [env.token("user_nobody"), env.token(&other.owner)] {
        for (method, body) in [
            (Method::GET, None),
            (Method::POST, Some(json!({"email": "intruder@example.com"}))),
        ] {
            let (status, answer) = env
                .call_as(Some(&token), method, &env.path("customers"), body)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
            assert_eq!(answer["error"], "Team not found");
        }
    }
    // The member's session on a project of another team through this team's path.
    let (status, body) = env
        .call_as(
            Some(&member),
            Method::GET,
            &billstack_tests::project_path(&env.team.id, &other.project.id, "customers"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "Project not found");
    let (_, list) = env.call(Method::GET, &env.path("customers"), None).await;
    assert_eq!(
        list["customers"].as_array().unwrap().len(),
        1,
        "no intruder customer"
    );
}

#[tokio::test]
async fn a_warm_session_get_makes_no_dynamodb_call_beyond_the_apikey_path() {
    let env = TestEnv::with_auth_cache(Duration::from_secs(30)).await;
    let token = env.owner_token();
    let created = env
        .create("customers", json!({"email": "warm.session@example.com"}))
        .await;
    let path = format!(
        "{}/{}",
        env.path("customers"),
        created["id"].as_str().unwrap()
    );
    let (status, _) = env.call_as(Some(&token), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    env.dynamo.reset_counts();
    let (status, _) = env.call_as(Some(&token), Method::GET, &path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        env.dynamo.counts(),
        std::collections::HashMap::from([("GetItem".to_owned(), 1)])
    );
}

#[tokio::test]
async fn an_unconfigured_deployment_refuses_session_tokens_but_keeps_api_keys() {
    let env = TestEnv::new().await;
    let config = billstack::config::Config {
        dynamodb_endpoint: Some(env.dynamo.endpoint().to_owned()),
        sessions: None,
        ..billstack_tests::config(&env.stripe.url(), Duration::ZERO)
    };
    let app = billstack::App::from_config(&config).await.unwrap();
    let request = |auth: String| {
        http::Request::builder()
            .method(Method::GET)
            .uri(env.path("customers"))
            .header("authorization", auth)
            .body(billstack::lambda_http::Body::Empty)
            .unwrap()
    };
    let (status, body) =
        billstack_tests::send(&app, request(format!("Bearer {}", env.owner_token()))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no session tokens")
    );
    let (status, _) = billstack_tests::send(&app, request(format!("Bearer {}", env.key))).await;
    assert_eq!(status, StatusCode::OK);
}
