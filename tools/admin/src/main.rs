//! `billstack-admin`: bootstrap a table with teams, members, projects and API keys, and mint
//! development session tokens from the local issuer.
//!
//! Reads `TABLE_NAME`, `DYNAMODB_ENDPOINT` (unset for AWS) and the usual AWS settings
//! (`AWS_PROFILE`, `AWS_REGION`, credentials). Prints JSON on stdout; errors go to stderr
//! with a non-zero exit code.

use std::collections::HashMap;
use std::process::ExitCode;

use billstack::admin::{self, NewApiKey, NewMember};
use billstack::ids::TeamId;
use billstack::model::Role;
use billstack::store::Store;
use serde_json::json;

const USAGE: &str = "usage:
  billstack-admin table create
  billstack-admin team create --name NAME
  billstack-admin project create --team TEAM_ID --name NAME
  billstack-admin api-key create --team TEAM_ID [--project PROJECT_ID] [--scopes a,b] [--expires-at RFC3339] [--name NAME]
  billstack-admin member add --team TEAM_ID --user USER_ID [--role owner|member] [--email EMAIL]
  billstack-admin token mint --user USER_ID [--email EMAIL] [--name NAME] [--expires-in SECONDS]
                             [--issuer http://127.0.0.1:3001]   (the development issuer only)

environment: TABLE_NAME (required), DYNAMODB_ENDPOINT (DynamoDB Local; unset for AWS),
             AWS_PROFILE / AWS_REGION / AWS credentials as usual";

/// A usage mistake (exit 2) or a failure (exit 1).
enum Failure {
    Usage(String),
    Failed(String),
}

fn usage(err: lexopt::Error) -> Failure {
    Failure::Usage(err.to_string())
}

/// `--name value` (or `--name=value`) pairs after the command words; each option once, all
/// of them known.
fn options(args: &[String], allowed: &[&str]) -> Result<HashMap<String, String>, Failure> {
    use lexopt::ValueExt;
    let mut parser = lexopt::Parser::from_args(args);
    let mut map = HashMap::new();
    while let Some(arg) = parser.next().map_err(usage)? {
        let name = match arg {
            lexopt::Arg::Long(name) if allowed.contains(&name) => name.to_owned(),
            other => return Err(usage(other.unexpected())),
        };
        let value = parser.value().map_err(usage)?.string().map_err(usage)?;
        if map.insert(name.clone(), value).is_some() {
            return Err(Failure::Usage(format!("--{name} given twice")));
        }
    }
    Ok(map)
}

fn required(opts: &HashMap<String, String>, name: &str) -> Result<String, Failure> {
    opts.get(name)
        .cloned()
        .ok_or_else(|| Failure::Usage(format!("--{name} is required")))
}

/// `--team`, which must have the form of a team's ID.
fn team(opts: &HashMap<String, String>) -> Result<TeamId, Failure> {
    let team = required(opts, "team")?;
    TeamId::parse(&team)
        .ok_or_else(|| Failure::Usage(format!("--team {team:?} is not a team ID (team_...)")))
}

async fn store() -> Result<Store, Failure> {
    let table = std::env::var("TABLE_NAME")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Failure::Usage("TABLE_NAME is not set".to_owned()))?;
    let endpoint = std::env::var("DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    Ok(Store::connect(table, endpoint.as_deref()).await)
}

fn failed(err: billstack::ApiError) -> Failure {
    Failure::Failed(err.message)
}

async fn run(args: &[String]) -> Result<serde_json::Value, Failure> {
    let words: Vec<&str> = args.iter().take(2).map(String::as_str).collect();
    let rest = args.get(2..).unwrap_or_default();
    match words.as_slice() {
        ["table", "create"] => {
            options(rest, &[])?;
            let store = store().await?;
            let created = store.create_table_if_missing().await.map_err(failed)?;
            Ok(json!({"table": store.table(), "created": created}))
        }
        ["team", "create"] => {
            let opts = options(rest, &["name"])?;
            let team = admin::create_team(&store().await?, &required(&opts, "name")?)
                .await
                .map_err(failed)?;
            Ok(json!({"team": team.to_json(None)}))
        }
        ["project", "create"] => {
            let opts = options(rest, &["team", "name"])?;
            let project =
                admin::create_project(&store().await?, &team(&opts)?, &required(&opts, "name")?)
                    .await
                    .map_err(failed)?;
            Ok(json!({"project": project.to_json()}))
        }
        ["api-key", "create"] => {
            let opts = options(rest, &["team", "project", "scopes", "expires-at", "name"])?;
            let new = NewApiKey {
                name: opts
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| "API key".to_owned()),
                project_id: opts.get("project").cloned(),
                scopes: opts
                    .get("scopes")
                    .map(|s| {
                        s.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                expires_at: opts.get("expires-at").cloned(),
            };
            let (key, secret) = admin::create_api_key(&store().await?, &team(&opts)?, &new)
                .await
                .map_err(failed)?;
            Ok(json!({"key": key.to_json(), "rawKey": secret.expose()}))
        }
        ["member", "add"] => {
            let opts = options(rest, &["team", "user", "role", "email"])?;
            let role = match opts.get("role").map(String::as_str) {
                None | Some("member") => Role::Member,
                Some("owner") => Role::Owner,
                Some(other) => {
                    return Err(Failure::Usage(format!(
                        "--role must be owner or member, not {other}"
                    )));
                }
            };
            let member = admin::add_member(
                &store().await?,
                &team(&opts)?,
                &NewMember {
                    user_id: required(&opts, "user")?,
                    role,
                    email: opts.get("email").cloned(),
                },
            )
            .await
            .map_err(failed)?;
            Ok(json!({"member": member.to_json()}))
        }
        ["token", "mint"] => {
            let opts = options(rest, &["user", "email", "name", "expires-in", "issuer"])?;
            mint_token(&opts).await
        }
        _ => Err(Failure::Usage("unknown command".to_owned())),
    }
}

/// Asks the development issuer (`scripts/local`'s, or `dev-issuer`) for a token. Only an
/// issuer on loopback is asked: a real identity provider mints tokens at sign-in, not here.
async fn mint_token(opts: &HashMap<String, String>) -> Result<serde_json::Value, Failure> {
    let issuer = opts
        .get("issuer")
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:3001".to_owned());
    let uri: http::Uri = issuer
        .parse()
        .map_err(|_| Failure::Usage(format!("--issuer {issuer} is not a URL")))?;
    let loopback = uri.scheme_str() == Some("http")
        && matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if !loopback {
        return Err(Failure::Usage(format!(
            "--issuer {issuer}: tokens are minted by the development issuer on http://127.0.0.1 only"
        )));
    }
    let mut body = json!({"sub": required(opts, "user")?});
    for (option, field) in [("email", "email"), ("name", "name")] {
        if let Some(value) = opts.get(option) {
            body[field] = json!(value);
        }
    }
    if let Some(secs) = opts.get("expires-in") {
        let secs: i64 = secs
            .parse()
            .map_err(|_| Failure::Usage("--expires-in must be a number of seconds".to_owned()))?;
        body["expiresIn"] = json!(secs);
    }
    let answer = billstack::outbound::post_json(
        &billstack::outbound::https_client(),
        &format!("{}/token", issuer.trim_end_matches('/')),
        &body,
        std::time::Duration::from_secs(5),
        64 * 1024,
    )
    .await
    .map_err(|e| Failure::Failed(format!("the issuer refused or is not running: {e}")))?;
    serde_json::from_slice(&answer).map_err(|e| Failure::Failed(e.to_string()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&args).await {
        Ok(value) => {
            println!("{value:#}");
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("billstack-admin: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(msg)) => {
            eprintln!("billstack-admin: {msg}");
            ExitCode::from(1)
        }
    }
}
