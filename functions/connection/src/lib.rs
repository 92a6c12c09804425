//! A team's own Stripe account: connect (keys checked with Stripe, then encrypted with KMS
//! under the team's ID), status, the webhook URL to give Stripe, and disconnect. Sessions
//! only; owners only for connect and disconnect (checked before a handler runs). Its own
//! function because it alone may call KMS `Encrypt`.

use billstack::App;
use billstack::clock;
use billstack::error::{ApiError, ErrorCode};
use billstack::http::{ApiResponse, TeamRequest};
use billstack::ids::TeamId;
use billstack::input::{self, Query, json_body};
use billstack::model::{StripeConnection, SyncObject, SyncStatus};
use billstack::routing::{Action, TeamResource};
use billstack::secrets::Secret;
use serde::Deserialize;
use serde_json::{Value, json};

/// Answers every `/teams/{teamId}/stripe…` route.
pub async fn handle(app: &App, req: TeamRequest) -> Result<ApiResponse, ApiError> {
    let operation = req.route.object_id.as_deref();
    match (req.route.resource, req.route.action, operation) {
        (TeamResource::Stripe, Action::Create, Some("connect")) => connect(app, &req).await,
        (TeamResource::Stripe, Action::Create, Some("backfill")) => backfill(app, &req).await,
        (TeamResource::Stripe, Action::Get, Some("status")) => status(app, &req).await,
        (TeamResource::Stripe, Action::Get, Some("webhook-url")) => webhook_url(&req),
        (TeamResource::Stripe, Action::Delete, None) => disconnect(app, &req).await,
        _ => Err(ApiError::not_found(format!(
            "No route for {}",
            req.route.name()
        ))),
    }
}

/// Refuses a query string where a route takes none.
fn no_query(req: &TeamRequest) -> Result<(), ApiError> {
    Query::parse(req.query.as_deref(), &[]).map(|_| ())
}

/// Test or live mode, from a key's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Test,
    Live,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

/// Longest key accepted (Stripe's keys are about 110 characters).
pub const MAX_KEY_LEN: usize = 255;

/// The mode of a key `kinds_prefixes` allows (`["sk", "rk"]`), or `None` if it is not
/// such a key. Only the prefix is ever named in a message, never the value.
fn key_mode(value: &str, kinds: &[&str]) -> Option<Mode> {
    let (kind, rest) = value.split_once('_')?;
    if !kinds.contains(&kind) || value.len() > MAX_KEY_LEN {
        return None;
    }
    let (mode, body) = rest.split_once('_')?;
    let mode = match mode {
        "test" => Mode::Test,
        "live" => Mode::Live,
        _ => return None,
    };
    let well_formed =
        !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    well_formed.then_some(mode)
}

fn is_webhook_secret(value: &str) -> bool {
    value.strip_prefix("whsec_").is_some_and(|body| {
        (1..=MAX_KEY_LEN).contains(&body.len())
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-'))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConnectBody {
    secret_key: Option<String>,
    publishable_key: Option<String>,
    webhook_secret: Option<String>,
}

/// What a connect request asks for, checked for form (Stripe checks the rest).
#[derive(Debug)]
pub struct Connect {
    secret_key: Secret,
    mode: Mode,
    publishable_key: Option<String>,
    webhook_secret: Option<Secret>,
}

impl Connect {
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let body: ConnectBody = json_body(body)?;
        let secret_key = body.secret_key.ok_or_else(|| {
            ApiError::invalid("secretKey", "Missing required parameter: secretKey")
        })?;
        Self::from_keys(secret_key, body.publishable_key, body.webhook_secret)
    }

    /// Checks each key's form: kind, mode (the same for both keys), characters, length.
    pub fn from_keys(
        secret_key: String,
        publishable_key: Option<String>,
        webhook_secret: Option<String>,
    ) -> Result<Self, ApiError> {
        // Not a key at all is a key Stripe would refuse: the same code, said before asking.
        let mode = key_mode(&secret_key, &["sk", "rk"]).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidStripeKey,
                "secretKey must be a Stripe secret key (sk_test_…, sk_live_…) or restricted key (rk_test_…, rk_live_…)",
            )
            .with_param("secretKey")
        })?;
        let publishable_key = match publishable_key {
            None => None,
            Some(key) => match key_mode(&key, &["pk"]) {
                None => {
                    return Err(ApiError::invalid(
                        "publishableKey",
                        "publishableKey must be a Stripe publishable key (pk_test_… or pk_live_…)",
                    ));
                }
                Some(other) if other != mode => {
                    return Err(ApiError::invalid(
                        "publishableKey",
                        format!(
                            "publishableKey is a {}-mode key but secretKey is a {}-mode key; both must be of the same mode",
                            other.name(),
                            mode.name()
                        ),
                    ));
                }
                Some(_) => Some(key),
            },
        };
        let webhook_secret = match webhook_secret {
            None => None,
            Some(secret) if is_webhook_secret(&secret) => Some(Secret::new(secret)),
            Some(_) => {
                return Err(ApiError::invalid(
                    "webhookSecret",
                    "webhookSecret must be a Stripe webhook signing secret (whsec_…), as shown for the endpoint in Stripe's dashboard",
                ));
            }
        };
        Ok(Self {
            secret_key: Secret::new(secret_key),
            mode,
            publishable_key,
            webhook_secret,
        })
    }
}

fn webhook_url_of(req: &TeamRequest) -> String {
    format!("{}/api/webhooks/stripe/{}", req.base_url, req.team_id())
}

async fn connect(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let new = Connect::parse(&req.body)?;
    let connection = connect_team(app, req.team_id(), &new).await?;
    Ok(ApiResponse::ok(json!({
        "success": true,
        "webhookUrl": webhook_url_of(req),
        "syncStatus": connection.sync_status,
    })))
}

/// Connects `team_id` to the Stripe account of `new`'s keys, replacing any connection
/// before: the key is checked with Stripe, then encrypted with KMS for the team, then stored.
/// A failure at any step stores nothing.
pub async fn connect_team(
    app: &App,
    team_id: &TeamId,
    new: &Connect,
) -> Result<StripeConnection, ApiError> {
    // Stripe first: a key it refuses is never stored (nor encrypted).
    let account = app.stripe.check_key(&new.secret_key).await?;
    let previous = app.store.get_stripe_connection(team_id).await?;
    // Reconnecting the same account keeps what this request does not replace; another
    // account's webhook secret and publishable key have no meaning for the new one.
    let same_account = previous
        .as_ref()
        .filter(|p| p.account_id.is_some() && p.account_id == account.id);
    let secret_key_ciphertext = app.stripe.encrypt(team_id, &new.secret_key).await?;
    let webhook_secret_ciphertext = match &new.webhook_secret {
        Some(secret) => Some(app.stripe.encrypt(team_id, secret).await?),
        None => same_account.and_then(|p| p.webhook_secret_ciphertext.clone()),
    };
    let publishable_key = new.publishable_key.clone().or_else(|| {
        same_account
            .filter(|p| p.livemode == (new.mode == Mode::Live))
            .and_then(|p| p.publishable_key.clone())
    });
    let now = clock::now_epoch();
    let connection = StripeConnection {
        team_id: team_id.to_owned(),
        account_id: account.id,
        account_name: account.name,
        livemode: new.mode == Mode::Live,
        secret_key_ciphertext,
        webhook_secret_ciphertext,
        publishable_key,
        sync_status: SyncStatus::Pending,
        connected_at: previous
            .as_ref()
            .filter(|_| same_account.is_some())
            .map_or(now, |p| p.connected_at),
        updated_at: now,
    };
    app.store.put_stripe_connection(&connection).await?;
    app.stripe.forget(team_id);
    tracing::info!(
        team_id = team_id.as_str(),
        account_id = connection.account_id.as_deref().unwrap_or(""),
        livemode = connection.livemode,
        "stripe connected"
    );
    Ok(connection)
}

async fn status(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    no_query(req)?;
    let Some(connection) = app.store.get_stripe_connection(req.team_id()).await? else {
        return Ok(ApiResponse::ok(json!({
            "connected": false,
            "isActive": false,
            "syncStatus": null,
            "accountId": null,
            "accountName": null,
            "livemode": null,
            "keyValid": false,
            "webhookSecretSet": false,
        })));
    };
    let key_valid = key_still_valid(app, &connection).await;
    let backfill = app
        .store
        .get_backfill_job(req.team_id())
        .await?
        .map(|job| job.to_json());
    Ok(ApiResponse::ok(json!({
        "backfill": backfill,
        "connected": true,
        "isActive": key_valid == Some(true),
        "syncStatus": connection.sync_status,
        "accountId": connection.account_id,
        "accountName": connection.account_name,
        "livemode": connection.livemode,
        "keyValid": key_valid,
        "webhookSecretSet": connection.webhook_secret_ciphertext.is_some(),
    })))
}

/// Whether Stripe still takes the stored key: `Some(false)` when Stripe refuses it or it
/// cannot be decrypted for this team, `None` when Stripe or KMS could not be asked now.
async fn key_still_valid(app: &App, connection: &StripeConnection) -> Option<bool> {
    let secret = match app
        .stripe
        .decrypt(&connection.team_id, &connection.secret_key_ciphertext)
        .await
    {
        Ok(secret) => secret,
        Err(err) if err.code == ErrorCode::StripeNotConnected => return Some(false),
        Err(_) => return None,
    };
    match app.stripe.check_key(&secret).await {
        Ok(_) => Some(true),
        Err(err) if err.code == ErrorCode::InvalidStripeKey => Some(false),
        Err(_) => None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BackfillBody {
    objects: Option<Vec<String>>,
    created_after: Option<Value>,
}

/// `{"objects"?: ["customers", "products", "prices"], "createdAfter"?: unix seconds or
/// RFC 3339}`: all three and every object when not given.
fn backfill_request(body: &[u8]) -> Result<backfill::BackfillRequest, ApiError> {
    let body: BackfillBody = if body.iter().all(u8::is_ascii_whitespace) {
        BackfillBody {
            objects: None,
            created_after: None,
        }
    } else {
        json_body(body)?
    };
    let objects = match body.objects {
        None => SyncObject::ALL.to_vec(),
        Some(names) => {
            let mut objects = Vec::new();
            for name in &names {
                let object = SyncObject::ALL
                    .into_iter()
                    .find(|o| o.as_str() == name)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "objects",
                            "objects may hold customers, products and prices",
                        )
                    })?;
                if !objects.contains(&object) {
                    objects.push(object);
                }
            }
            if objects.is_empty() {
                return Err(ApiError::invalid(
                    "objects",
                    "objects must name at least one of customers, products and prices",
                ));
            }
            // Products before prices: a price is adopted only under a product we hold.
            objects.sort();
            objects
        }
    };
    let created_after = match body.created_after {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            Some(input::as_whole(&n).filter(|t| *t >= 0).ok_or_else(|| {
                ApiError::invalid(
                    "createdAfter",
                    "createdAfter must be a Unix time in seconds or an RFC 3339 time",
                )
            })?)
        }
        Some(Value::String(text)) => Some(clock::parse_rfc3339(&text).ok_or_else(|| {
            ApiError::invalid(
                "createdAfter",
                "createdAfter must be a Unix time in seconds or an RFC 3339 time",
            )
        })?),
        Some(_) => {
            return Err(ApiError::invalid(
                "createdAfter",
                "createdAfter must be a Unix time in seconds or an RFC 3339 time",
            ));
        }
    };
    Ok(backfill::BackfillRequest {
        objects,
        created_after,
    })
}

async fn backfill(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    let request = backfill_request(&req.body)?;
    let job = backfill::start(app, req.team_id(), &request).await?;
    let mut body = json!({"success": true, "syncStatus": "syncing"});
    if let (Some(answer), Value::Object(fields)) = (body.as_object_mut(), job.to_json()) {
        answer.extend(fields);
    }
    Ok(ApiResponse::ok(body))
}

fn webhook_url(req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    no_query(req)?;
    let url = webhook_url_of(req);
    let instructions = format!(
        "In Stripe's dashboard (Developers → Webhooks), add an endpoint with the URL {url} and the events customer.updated, customer.deleted, product.created, product.updated, product.deleted, price.created, price.updated and price.deleted. Then copy the endpoint's signing secret (whsec_…) and connect again with it as webhookSecret."
    );
    Ok(ApiResponse::ok(json!({
        "webhookUrl": url,
        "instructions": instructions,
    })))
}

async fn disconnect(app: &App, req: &TeamRequest) -> Result<ApiResponse, ApiError> {
    no_query(req)?;
    let team_id = req.team_id();
    let removed = app.store.delete_stripe_connection(team_id).await?;
    app.stripe.forget(team_id);
    if removed {
        tracing::info!(team_id = team_id.as_str(), "stripe disconnected");
    }
    Ok(ApiResponse::deleted())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> ApiError {
        Connect::parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn keys_are_checked_for_kind_and_mode_without_echoing_them() {
        let ok = Connect::parse(
            br#"{"secretKey": "rk_live_abcdefgh1234", "publishableKey": "pk_live_publishable99", "webhookSecret": "whsec_abcdefghijklmnop1234"}"#,
        )
        .unwrap();
        assert_eq!(ok.mode, Mode::Live);
        assert!(!format!("{ok:?}").contains("abcdefgh"), "{ok:?}");
        for (body, param) in [
            (r#"{}"#, "secretKey"),
            (r#"{"secretKey": "pk_test_abcdefgh1234"}"#, "secretKey"),
            (r#"{"secretKey": "sk_prod_abcdefgh1234"}"#, "secretKey"),
            (r#"{"secretKey": "sk_test_"}"#, "secretKey"),
            (r#"{"secretKey": "sk_test_abc defgh1234"}"#, "secretKey"),
            (
                r#"{"secretKey": "sk_test_abcdefgh1234", "publishableKey": "pk_live_abcdefgh1234"}"#,
                "publishableKey",
            ),
            (
                r#"{"secretKey": "sk_test_abcdefgh1234", "publishableKey": "sk_test_abcdefgh1234"}"#,
                "publishableKey",
            ),
            (
                r#"{"secretKey": "sk_test_abcdefgh1234", "webhookSecret": "whsec_"}"#,
                "webhookSecret",
            ),
            (
                r#"{"secretKey": "sk_test_abcdefgh1234", "webhookSecret": "abcdefghijklmnopqrstuvwxyz"}"#,
                "webhookSecret",
            ),
        ] {
            let err = refused(body);
            assert_eq!(err.param.as_deref(), Some(param), "{body}: {err:?}");
            assert_eq!(err.status(), 400);
            assert!(!err.message.contains("abcdefgh"), "{}", err.message);
        }
        assert_eq!(
            refused(r#"{"secretKey": "sk_test_abcdefgh1234", "accountId": "x"}"#).status(),
            400
        );
        let mixed = refused(
            r#"{"secretKey": "sk_test_abcdefgh1234", "publishableKey": "pk_live_abcdefgh1234"}"#,
        );
        assert!(mixed.message.contains("live-mode"), "{}", mixed.message);
    }
}
