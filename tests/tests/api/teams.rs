//! The team-level API end to end, with real session tokens and DynamoDB Local: teams,
//! members and roles, projects, API keys; who may do what, and the state each call leaves.

use billstack::auth::ApiKeySecret;
use billstack::ids::{ProjectId, TeamId};
use billstack::model::Role;
use billstack_tests::TestEnv;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const TEAMS: &str = "/api/billstack/teams";

fn team_path(env: &TestEnv, rest: &str) -> String {
    format!("{TEAMS}/{}{rest}", env.team.id)
}

async fn call(
    env: &TestEnv,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    env.call_as(Some(token), method, path, body).await
}

#[tokio::test]
async fn a_user_creates_a_team_and_becomes_its_owner() {
    let env = TestEnv::new().await;
    let token = env
        .issuer
        .mint(&billstack_tests::TokenRequest {
            email: Some("Founder@Example.com".into()),
            name: Some("Founder".into()),
            ..billstack_tests::TokenRequest::for_user("user_founder")
        })
        .unwrap();
    let (status, body) = call(
        &env,
        &token,
        Method::POST,
        TEAMS,
        Some(json!({"name": "  Acme  "})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let team = &body["team"];
    let id = team["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("team_"));
    assert_eq!(team["name"], "Acme");
    assert_eq!(team["role"], "owner");
    assert_eq!(team["createdAt"], team["updatedAt"]);

    // In the table: the team with one owner, and the founder's membership.
    let stored = env
        .store
        .get_team(&TeamId::from(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.owner_count, 1);
    let membership = env
        .store
        .get_membership(&TeamId::from(&id), "user_founder")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(membership.role, Role::Owner);
    assert_eq!(membership.name.as_deref(), Some("Founder"));

    let (status, body) = call(&env, &token, Method::GET, TEAMS, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["teams"].as_array().unwrap().len(), 1);
    assert_eq!(body["teams"][0]["id"], json!(id));

    let (status, body) = call(
        &env,
        &token,
        Method::GET,
        &format!("{TEAMS}/{id}/members"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["members"][0]["userId"], "user_founder");
    assert_eq!(body["members"][0]["name"], "Founder");
    assert_eq!(body["members"][0]["role"], "owner");

    let (status, body) = call(
        &env,
        &token,
        Method::PATCH,
        &format!("{TEAMS}/{id}"),
        Some(json!({"name": "Acme Inc"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["team"]["name"], "Acme Inc");
    assert_eq!(
        env.store
            .get_team(&TeamId::from(&id))
            .await
            .unwrap()
            .unwrap()
            .name,
        "Acme Inc"
    );

    for (body, param) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x", "plan": "pro"}), "plan"),
        (json!({"name": 7}), "name"),
    ] {
        let (status, answer) = call(&env, &token, Method::POST, TEAMS, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["param"], param, "{answer}");
    }
    let (_, body) = call(&env, &token, Method::GET, TEAMS, None).await;
    assert_eq!(
        body["teams"].as_array().unwrap().len(),
        1,
        "no half-made team"
    );
}

#[tokio::test]
async fn members_roles_and_the_last_owner() {
    let env = TestEnv::new().await;
    let owner = env.owner_token();
    let members = team_path(&env, "/members");

    let (status, body) = call(
        &env,
        &owner,
        Method::POST,
        &members,
        Some(json!({"userId": "user_2", "email": "Two@Example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["member"],
        json!({
            "userId": "user_2", "email": "two@example.com", "name": null, "role": "member",
            "createdAt": body["member"]["createdAt"],
        })
    );
    let (status, body) = call(
        &env,
        &owner,
        Method::POST,
        &members,
        Some(json!({"userId": "user_2"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "member_exists");
    for (bad, param) in [
        (json!({"role": "member"}), "userId"),
        (json!({"userId": "u", "role": "admin"}), "role"),
        (json!({"userId": ""}), "userId"),
        (json!({"userId": "u", "email": "nope"}), "email"),
    ] {
        let (status, answer) = call(&env, &owner, Method::POST, &members, Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["param"], param);
    }

    // A member reads the team but does no owner's work.
    let member = env.token("user_2");
    let (status, body) = call(&env, &member, Method::GET, &members, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["members"].as_array().unwrap().len(), 2);
    let (status, body) = call(&env, &member, Method::GET, &team_path(&env, ""), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["team"]["role"], "member");
    for (method, path, body) in [
        (
            Method::POST,
            members.clone(),
            Some(json!({"userId": "user_3"})),
        ),
        (
            Method::PATCH,
            format!("{members}/user_2"),
            Some(json!({"role": "owner"})),
        ),
        (Method::DELETE, format!("{members}/{}", env.owner), None),
        (
            Method::PATCH,
            team_path(&env, ""),
            Some(json!({"name": "Mine now"})),
        ),
        (
            Method::POST,
            team_path(&env, "/api-keys"),
            Some(json!({"name": "k"})),
        ),
    ] {
        let (status, answer) = call(&env, &member, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "owner_required");
    }
    assert_eq!(
        env.store
            .get_membership(&env.team.id, "user_2")
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Member
    );
    assert!(
        env.store
            .get_membership(&env.team.id, "user_3")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        env.store
            .get_team(&env.team.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Test team"
    );

    // The only owner can neither leave nor step down.
    let me = format!("{members}/{}", env.owner);
    let (status, body) = call(&env, &owner, Method::DELETE, &me, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "last_owner");
    let (status, body) = call(
        &env,
        &owner,
        Method::PATCH,
        &me,
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "last_owner");
    assert_eq!(
        env.store
            .get_team(&env.team.id)
            .await
            .unwrap()
            .unwrap()
            .owner_count,
        1
    );

    // With a second owner, the first may step down; then the new owner removes them.
    let (status, body) = call(
        &env,
        &owner,
        Method::PATCH,
        &format!("{members}/user_2"),
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["member"]["role"], "owner");
    let (status, body) = call(
        &env,
        &owner,
        Method::PATCH,
        &me,
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = call(&env, &member, Method::DELETE, &me, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        env.store
            .get_team(&env.team.id)
            .await
            .unwrap()
            .unwrap()
            .owner_count,
        1
    );
    // The removed user sees no team any more.
    let (status, body) = call(&env, &owner, Method::GET, &team_path(&env, ""), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "Team not found");
    let (status, _) = call(
        &env,
        &member,
        Method::DELETE,
        &format!("{members}/nobody"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn two_owners_removing_each_other_at_once_leave_one_owner() {
    let env = TestEnv::new().await;
    env.add_member("user_b", Role::Owner).await;
    assert_eq!(
        env.store
            .get_team(&env.team.id)
            .await
            .unwrap()
            .unwrap()
            .owner_count,
        2
    );
    let members = team_path(&env, "/members");
    let (a, b) = (env.owner_token(), env.token("user_b"));
    let remove_b = format!("{members}/user_b");
    let remove_a = format!("{members}/{}", env.owner);
    let ((sa, ba), (sb, bb)) = tokio::join!(
        call(&env, &a, Method::DELETE, &remove_b, None),
        call(&env, &b, Method::DELETE, &remove_a, None),
    );
    let statuses = [sa, sb];
    assert!(statuses.contains(&StatusCode::OK), "{ba} {bb}");
    assert!(
        statuses.iter().all(|s| [
            StatusCode::OK,
            StatusCode::CONFLICT,
            StatusCode::NOT_FOUND,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(s)),
        "{ba} {bb}"
    );
    let left = env.store.list_members(&env.team.id).await.unwrap();
    let owners = left.iter().filter(|m| m.role == Role::Owner).count();
    assert_eq!(owners, 1, "{left:?}");
    assert_eq!(
        env.store
            .get_team(&env.team.id)
            .await
            .unwrap()
            .unwrap()
            .owner_count,
        1
    );
}

#[tokio::test]
async fn members_create_and_rename_projects_of_their_team_only() {
    let env = TestEnv::new().await;
    env.add_member("user_m", Role::Member).await;
    let member = env.token("user_m");
    let projects = team_path(&env, "/projects");
    let (status, body) = call(
        &env,
        &member,
        Method::POST,
        &projects,
        Some(json!({"name": "Mobile app"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let project = body["project"].clone();
    let id = project["id"].as_str().unwrap();
    assert!(id.starts_with("proj_"));
    assert_eq!(project["teamId"], json!(env.team.id));
    assert_eq!(
        env.store
            .get_project(&ProjectId::from(id))
            .await
            .unwrap()
            .unwrap()
            .name,
        "Mobile app"
    );

    let (status, body) = call(&env, &member, Method::GET, &projects, None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id, env.project.id.as_str()], "newest first");

    let (status, body) = call(
        &env,
        &member,
        Method::PATCH,
        &format!("{projects}/{id}"),
        Some(json!({"name": "Mobile"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["project"]["name"], "Mobile");
    let (status, body) = call(
        &env,
        &member,
        Method::GET,
        &format!("{projects}/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["project"]["name"], "Mobile");

    // Another team's project, through this team's path, does not exist here.
    let other = TestEnv::new().await;
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "Stolen"}))),
    ] {
        let (status, answer) = call(
            &env,
            &member,
            method,
            &format!("{projects}/{}", other.project.id),
            body,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        assert_eq!(answer["error"], "Project not found");
    }
    assert_eq!(
        other
            .store
            .get_project(&other.project.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Test project"
    );
    let (status, _) = call(
        &env,
        &member,
        Method::GET,
        &format!("{projects}/proj_{}", "a".repeat(2000)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_keys_are_created_used_listed_and_revoked_by_owners() {
    let env = TestEnv::new().await;
    let owner = env.owner_token();
    let keys = team_path(&env, "/api-keys");
    let (status, body) = call(&env, &owner, Method::POST, &keys, Some(json!({
        "name": "backend", "projectId": env.project.id, "scopes": ["customers:read", "customers:write"],
        "expiresAt": "2099-01-01T00:00:00Z",
    }))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let raw = body["rawKey"].as_str().unwrap().to_owned();
    let key = body["key"].clone();
    let key_id = key["id"].as_str().unwrap().to_owned();
    assert!(ApiKeySecret::parse(&raw).is_some());
    assert_eq!(key["prefix"], json!(&raw[..7]));
    assert_eq!(key["projectId"], json!(env.project.id));
    assert_eq!(key["scopes"], json!(["customers:read", "customers:write"]));
    assert_eq!(key["expiresAt"], "2099-01-01T00:00:00Z");
    assert_eq!(key["lastUsedAt"], Value::Null);
    assert_eq!(key["revokedAt"], Value::Null);
    // Only the hash is stored.
    let secret = ApiKeySecret::parse(&raw).unwrap();
    assert!(
        env.store
            .get_api_key_by_hash(&secret.hash())
            .await
            .unwrap()
            .is_some()
    );

    // The key works where its scopes and project allow, and nowhere else.
    let (status, body) = env
        .call_as(
            Some(&raw),
            Method::POST,
            &env.path("customers"),
            Some(json!({"email": "k@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = env
        .call_as(Some(&raw), Method::GET, &env.path("products"), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Listed (newest first), and read by ID, with its last use and never its secret.
    let (status, body) = call(&env, &owner, Method::GET, &keys, None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = body["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{body}");
    assert_eq!(listed[0]["id"], json!(key_id));
    assert!(
        !body.to_string().contains(&raw[3..]),
        "the secret never appears again"
    );
    assert!(!body.to_string().contains(&secret.hash()), "nor its hash");
    let (status, body) = call(
        &env,
        &env.token("user_reader"),
        Method::GET,
        &format!("{keys}/{key_id}"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a non-member sees no key: {body}"
    );
    env.add_member("user_reader", Role::Member).await;
    let (status, body) = call(
        &env,
        &env.token("user_reader"),
        Method::GET,
        &format!("{keys}/{key_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "members read keys");
    assert!(
        body["key"]["lastUsedAt"].as_str().unwrap().ends_with('Z'),
        "{body}"
    );

    // Revoked: the record stays, the key stops working at once here.
    let (status, body) = call(
        &env,
        &owner,
        Method::DELETE,
        &format!("{keys}/{key_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"success": true}));
    let (status, body) = env
        .call_as(Some(&raw), Method::GET, &env.path("customers"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("revoked"));
    let (_, body) = call(&env, &owner, Method::GET, &format!("{keys}/{key_id}"), None).await;
    let revoked_at = body["key"]["revokedAt"].clone();
    assert!(revoked_at.as_str().unwrap().ends_with('Z'));
    let (status, _) = call(
        &env,
        &owner,
        Method::DELETE,
        &format!("{keys}/{key_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "revoking again answers the same");
    let (_, body) = call(&env, &owner, Method::GET, &format!("{keys}/{key_id}"), None).await;
    assert_eq!(
        body["key"]["revokedAt"], revoked_at,
        "the first revocation's time is kept"
    );
    let (status, _) = call(
        &env,
        &owner,
        Method::DELETE,
        &format!("{keys}/key_0000000000000000000000000000dead"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_key_requests_are_400_and_leave_no_key() {
    let env = TestEnv::new().await;
    let owner = env.owner_token();
    let keys = team_path(&env, "/api-keys");
    let other = TestEnv::new().await;
    for (body, param) in [
        (json!({"scopes": []}), "name"),
        (
            json!({"name": "k", "projectId": other.project.id}),
            "projectId",
        ),
        (
            json!({"name": "k", "projectId": "proj_0000000000000000000000000000dead"}),
            "projectId",
        ),
        (
            json!({"name": "k", "scopes": ["customers:delete"]}),
            "scopes",
        ),
        (json!({"name": "k", "scopes": "customers:read"}), "scopes"),
        (
            json!({"name": "k", "expiresAt": "2020-01-01T00:00:00Z"}),
            "expiresAt",
        ),
        (json!({"name": "k", "expiresAt": "tomorrow"}), "expiresAt"),
        (json!({"name": "k", "team": "x"}), "team"),
    ] {
        let (status, answer) = call(&env, &owner, Method::POST, &keys, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["param"], param, "{answer}");
    }
    let (status, _, answer) = env
        .call_with_headers(
            Some(&format!("Bearer {owner}")),
            &[("idempotency-key", "k1")],
            Method::POST,
            &keys,
            Some(json!({"name": "k"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["param"], "Idempotency-Key");
    let (_, body) = call(&env, &owner, Method::GET, &keys, None).await;
    assert_eq!(
        body["keys"].as_array().unwrap().len(),
        1,
        "only the env's own key: {body}"
    );
}

#[tokio::test]
async fn api_keys_on_team_endpoints_are_403_session_required() {
    let env = TestEnv::new().await;
    for (method, path, body) in [
        (Method::GET, TEAMS.to_owned(), None),
        (
            Method::POST,
            TEAMS.to_owned(),
            Some(json!({"name": "By key"})),
        ),
        (Method::GET, team_path(&env, ""), None),
        (
            Method::POST,
            team_path(&env, "/api-keys"),
            Some(json!({"name": "escalate"})),
        ),
        (
            Method::POST,
            team_path(&env, "/members"),
            Some(json!({"userId": "u"})),
        ),
        (Method::GET, team_path(&env, "/projects"), None),
    ] {
        let (status, answer) = env.call(method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "session_required");
    }
    // An unknown or revoked key is still a 401 there.
    let (status, _) = env
        .call_as(
            Some(&format!("bs_{}", "0".repeat(48))),
            Method::GET,
            TEAMS,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body) = env
        .call_as(
            Some(&env.owner_token()),
            Method::GET,
            &team_path(&env, "/api-keys"),
            None,
        )
        .await;
    assert_eq!(
        body["keys"].as_array().unwrap().len(),
        1,
        "no key was made: {body}"
    );
}

#[tokio::test]
async fn team_creates_replay_under_an_idempotency_key() {
    let env = TestEnv::new().await;
    let owner = format!("Bearer {}", env.owner_token());
    let send = |key: &'static str, name: &'static str| {
        let owner = owner.clone();
        let env = &env;
        async move {
            env.call_with_headers(
                Some(&owner),
                &[("idempotency-key", key)],
                Method::POST,
                &team_path(env, "/projects"),
                Some(json!({"name": name}).to_string()),
            )
            .await
        }
    };
    let (status, _, first) = send("p-1", "Once").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, headers, again) = send("p-1", "Once").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again, first);
    let (status, _, other) = send("p-1", "Twice").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{other}");
    let (_, body) = env
        .call_as(
            Some(&env.owner_token()),
            Method::GET,
            &team_path(&env, "/projects"),
            None,
        )
        .await;
    assert_eq!(
        body["projects"].as_array().unwrap().len(),
        2,
        "one project made: {body}"
    );
}
