//! `billstack-admin`: bootstrap a table with teams, projects and API keys.
//!
//! Reads `TABLE_NAME`, `DYNAMODB_ENDPOINT` (unset for AWS) and the usual AWS settings
//! (`AWS_PROFILE`, `AWS_REGION`, credentials). Prints JSON on stdout; errors go to stderr
//! with a non-zero exit code.

use std::collections::HashMap;
use std::process::ExitCode;

use billstack::admin::{self, NewApiKey};
use billstack::store::Store;
use serde_json::json;

const USAGE: &str = "usage:
  billstack-admin table create
  billstack-admin team create --name NAME
  billstack-admin project create --team TEAM_ID --name NAME
  billstack-admin api-key create --team TEAM_ID [--project PROJECT_ID] [--scopes a,b] [--expires-at RFC3339] [--name NAME]

environment: TABLE_NAME (required), DYNAMODB_ENDPOINT (DynamoDB Local; unset for AWS),
             AWS_PROFILE / AWS_REGION / AWS credentials as usual";

/// A usage mistake (exit 2) or a failure (exit 1).
enum Failure {
    Usage(String),
    Failed(String),
}

/// `--name value` pairs after the command words; each option once, all of them known.
fn options(args: &[String], allowed: &[&str]) -> Result<HashMap<String, String>, Failure> {
    let mut map = HashMap::new();
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let name = flag
            .strip_prefix("--")
            .filter(|n| allowed.contains(n))
            .ok_or_else(|| Failure::Usage(format!("unknown option {flag}")))?;
        let value = iter
            .next()
            .ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))?;
        if map.insert(name.to_owned(), value.clone()).is_some() {
            return Err(Failure::Usage(format!("{flag} given twice")));
        }
    }
    Ok(map)
}

fn required(opts: &HashMap<String, String>, name: &str) -> Result<String, Failure> {
    opts.get(name)
        .cloned()
        .ok_or_else(|| Failure::Usage(format!("--{name} is required")))
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
            Ok(json!({"team": team.to_json()}))
        }
        ["project", "create"] => {
            let opts = options(rest, &["team", "name"])?;
            let project = admin::create_project(
                &store().await?,
                &required(&opts, "team")?,
                &required(&opts, "name")?,
            )
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
            let (key, secret) =
                admin::create_api_key(&store().await?, &required(&opts, "team")?, &new)
                    .await
                    .map_err(failed)?;
            Ok(json!({"key": key.to_json(), "rawKey": secret.expose()}))
        }
        _ => Err(Failure::Usage("unknown command".to_owned())),
    }
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
