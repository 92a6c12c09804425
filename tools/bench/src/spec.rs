//! What is benchmarked, as data (`tools/bench/functions.json`): each function's package and
//! binary, the requests that set it up, and the kinds of warm invocation it is measured on.
//! Adding a function is adding an entry there. Paths, queries and JSON string values are
//! templates: `{team}`, `{project}`, `{n}` (a number unique to each invocation) and every
//! variable captured so far (by earlier functions' setup too) are filled in.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub functions: Vec<FunctionSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// Short name, used in tables and as `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// The crate's folder, relative to the workspace root; a function whose folder is not in
    /// the checkout is skipped (and said so).
    pub dir: String,
    /// Cargo package, built with `cargo build --release -p <package>`.
    pub package: String,
    /// Binary name: `target/release/<binary>`, `target/lambda/<binary>/bootstrap`.
    pub binary: String,
    /// Whether the function calls Stripe (DESIGN.md §6 allows it 8 MB zipped instead of 6).
    pub calls_stripe: bool,
    /// Run once on the warm process before measuring; their captures feed the kinds.
    #[serde(default)]
    pub setup: Vec<Step>,
    pub kinds: Vec<Kind>,
}

/// One request: an API Gateway HTTP API (v2) event and the status it must answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub body: Option<Value>,
    pub expect: u16,
    /// Variable name → JSON pointer into the response body, e.g. `"/customer/id"`.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    /// Sent with the seeded owner's session token instead of the API key.
    #[serde(default)]
    pub session: bool,
    /// A Stripe event delivery: no key, the body signed with the team's webhook secret
    /// (`Stripe-Signature`), as Stripe sends it.
    #[serde(default)]
    pub stripe_event: bool,
}

/// What a request can authenticate with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub api_key: String,
    pub session_token: String,
    /// The team's webhook signing secret (`whsec_…`).
    pub webhook_secret: String,
}

/// A kind of warm invocation, measured `--invocations` times.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kind {
    pub name: String,
    #[serde(flatten)]
    pub step: Step,
    /// This kind reads one item: the raw SDK `GetItem` of that key is its baseline
    /// (DESIGN.md §6: latency ≤ 1.2 × the raw GetItem, exactly one DynamoDB call).
    #[serde(default)]
    pub raw_get_item: Option<ItemKey>,
    /// The kind sent as the first invocation after each cold start.
    #[serde(default)]
    pub cold: bool,
}

/// A table key, as templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemKey {
    pub pk: String,
    pub sk: String,
}

impl Spec {
    pub fn load(path: &Path) -> Result<Spec, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let spec: Spec = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a valid spec: {e}", path.display()))?;
        for function in &spec.functions {
            if function.kinds.iter().filter(|k| k.cold).count() > 1 {
                return Err(format!(
                    "{}: at most one kind may be marked cold",
                    function.name
                ));
            }
        }
        Ok(spec)
    }
}

/// Template variables: the seeded `team`, `project`, the captures, and `n`.
pub type Vars = BTreeMap<String, String>;

/// Replaces every `{name}` in `template` with its variable; an unknown name is an error.
pub fn fill(template: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed {{ in template {template:?}"))?;
        let name = &after[..close];
        let value = vars.get(name).ok_or_else(|| {
            format!("template {template:?} uses {{{name}}}, which nothing has set (is the function that captures it in this run?)")
        })?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// [`fill`] on every string inside a JSON value (keys included).
pub fn fill_json(value: &Value, vars: &Vars) -> Result<Value, String> {
    Ok(match value {
        // `"#{name}"`: the variable as a JSON number (a Stripe event's `created`).
        Value::String(s) if s.starts_with("#{") && s.ends_with('}') => {
            let filled = fill(&s[1..], vars)?;
            let number: i64 = filled
                .parse()
                .map_err(|_| format!("{s:?} is not a number once filled ({filled:?})"))?;
            Value::from(number)
        }
        Value::String(s) => Value::String(fill(s, vars)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| fill_json(v, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((fill(k, vars)?, fill_json(v, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// A filled-in request, ready to become an event.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Option<String>,
    pub authorization: Option<String>,
    /// `Stripe-Signature`, for a Stripe event delivery.
    pub stripe_signature: Option<String>,
}

impl Step {
    pub fn request(&self, vars: &Vars, credentials: &Credentials) -> Result<HttpRequest, String> {
        let bearer = if self.session {
            &credentials.session_token
        } else {
            &credentials.api_key
        };
        let body = self
            .body
            .as_ref()
            .map(|b| fill_json(b, vars).map(|v| v.to_string()))
            .transpose()?;
        let now = billstack::clock::now_epoch();
        let stripe_signature = self.stripe_event.then(|| {
            webhooks::signature::sign(
                body.as_deref().unwrap_or_default().as_bytes(),
                &credentials.webhook_secret,
                now,
            )
        });
        Ok(HttpRequest {
            stripe_signature,
            method: self.method.to_ascii_uppercase(),
            path: fill(&self.path, vars)?,
            query: self
                .query
                .as_deref()
                .map(|q| fill(q, vars))
                .transpose()?
                .unwrap_or_default(),
            body,
            authorization: (!self.stripe_event).then(|| format!("Bearer {bearer}")),
        })
    }
}

/// The event API Gateway's HTTP API (payload format 2.0) sends for `request`, as a `$default`
/// route; `n` makes its request ID unique.
pub fn apigw_v2_event(request: &HttpRequest, n: u64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut headers = serde_json::Map::new();
    headers.insert("accept".into(), json!("application/json"));
    headers.insert(
        "host".into(),
        json!("bench.execute-api.us-east-1.amazonaws.com"),
    );
    headers.insert("user-agent".into(), json!("billstack-bench"));
    headers.insert("x-forwarded-proto".into(), json!("https"));
    if let Some(auth) = &request.authorization {
        headers.insert("authorization".into(), json!(auth));
    }
    if let Some(signature) = &request.stripe_signature {
        headers.insert("stripe-signature".into(), json!(signature));
    }
    if let Some(body) = &request.body {
        headers.insert("content-type".into(), json!("application/json"));
        headers.insert("content-length".into(), json!(body.len().to_string()));
    }
    let time = billstack::clock::rfc3339(now.as_secs() as i64);
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "billstack-bench"
            },
            "requestId": format!("bench-{n}"),
            "routeKey": "$default",
            "stage": "$default",
            "time": time,
            "timeEpoch": now.as_millis() as u64
        },
        "body": request.body,
        "isBase64Encoded": false
    })
}

/// What a function answered, read from its API Gateway v2 response.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// The body, parsed when it is JSON.
    pub body: Value,
}

pub fn parse_apigw_v2_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let envelope: Value = serde_json::from_slice(raw).map_err(|e| {
        format!(
            "the function's response is not JSON ({e}): {}",
            String::from_utf8_lossy(raw)
        )
    })?;
    let status = envelope
        .get("statusCode")
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("the function's response has no statusCode: {envelope}"))?
        as u16;
    let text = envelope.get("body").and_then(Value::as_str).unwrap_or("");
    let body = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
    Ok(HttpResponse { status, body })
}

impl Step {
    /// Checks the status and adds this step's captures to `vars`.
    pub fn check(&self, response: &HttpResponse, vars: &mut Vars) -> Result<(), String> {
        if response.status != self.expect {
            let body = response.body.to_string();
            return Err(format!(
                "{} {} answered {} (expected {}): {}",
                self.method,
                self.path,
                response.status,
                self.expect,
                body.chars().take(400).collect::<String>()
            ));
        }
        for (name, pointer) in &self.capture {
            let value = response.body.pointer(pointer).ok_or_else(|| {
                format!(
                    "{} {}: the response has nothing at {pointer}",
                    self.method, self.path
                )
            })?;
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vars.insert(name.clone(), value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn templates_fill_known_names_and_refuse_unknown_ones() {
        let v = vars(&[("team", "team_1"), ("n", "7")]);
        assert_eq!(fill("/t/{team}/x{n}y", &v).unwrap(), "/t/team_1/x7y");
        assert_eq!(fill("plain", &v).unwrap(), "plain");
        assert!(fill("/{missing}", &v).unwrap_err().contains("{missing}"));
        assert!(fill("/{team", &v).is_err());
        let body =
            json!({"email": "b{n}@x.io", "amount": 5, "tags": ["{team}"], "m": {"{n}": "v"}});
        assert_eq!(
            fill_json(&body, &v).unwrap(),
            json!({"email": "b7@x.io", "amount": 5, "tags": ["team_1"], "m": {"7": "v"}})
        );
    }

    #[test]
    fn events_are_api_gateway_v2_requests_lambda_http_accepts() {
        use lambda_http::RequestExt;
        let step = Step {
            method: "post".into(),
            path: "/api/billstack/teams/{team}/projects/{project}/customers".into(),
            query: Some("limit=5".into()),
            body: Some(json!({"email": "a{n}@b.co"})),
            expect: 201,
            capture: BTreeMap::new(),
            session: false,
            stripe_event: false,
        };
        let v = vars(&[("team", "t1"), ("project", "p1"), ("n", "3")]);
        let request = step
            .request(
                &v,
                &Credentials {
                    api_key: "bs_key".into(),
                    session_token: "a.b.c".into(),
                    webhook_secret: "whsec_x".into(),
                },
            )
            .unwrap();
        let event = apigw_v2_event(&request, 3);
        let parsed = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!(parsed.method(), http::Method::POST);
        assert_eq!(
            parsed.uri().path(),
            "/api/billstack/teams/t1/projects/p1/customers"
        );
        assert_eq!(parsed.uri().query(), Some("limit=5"));
        assert_eq!(parsed.headers()["authorization"], "Bearer bs_key");
        assert_eq!(parsed.body().as_ref(), br#"{"email":"a3@b.co"}"#);
        assert_eq!(parsed.query_string_parameters().first("limit"), Some("5"));
    }

    #[test]
    fn a_stripe_event_is_signed_and_carries_no_key() {
        let step = Step {
            method: "POST".into(),
            path: "/api/webhooks/stripe/{team}".into(),
            query: None,
            body: Some(json!({"id": "evt_{n}", "created": "#{n}"})),
            expect: 200,
            capture: BTreeMap::new(),
            session: false,
            stripe_event: true,
        };
        let credentials = Credentials {
            api_key: "bs_key".into(),
            session_token: "a.b.c".into(),
            webhook_secret: "whsec_bench_secret".into(),
        };
        let request = step
            .request(&vars(&[("team", "t1"), ("n", "42")]), &credentials)
            .unwrap();
        let body = request.body.clone().unwrap();
        assert_eq!(body, r#"{"created":42,"id":"evt_42"}"#);
        assert_eq!(request.authorization, None);
        let signature = request.stripe_signature.unwrap();
        assert!(
            webhooks::signature::verify(
                Some(&signature),
                body.as_bytes(),
                "whsec_bench_secret",
                billstack::clock::now_epoch()
            )
            .is_ok()
        );
    }

    #[test]
    fn responses_are_checked_and_captured() {
        let raw = br#"{"statusCode":201,"headers":{},"body":"{\"customer\":{\"id\":\"pc_1\",\"version\":1}}","isBase64Encoded":false}"#;
        let response = parse_apigw_v2_response(raw).unwrap();
        assert_eq!(response.status, 201);
        let mut step = Step {
            method: "POST".into(),
            path: "/x".into(),
            query: None,
            body: None,
            expect: 201,
            capture: BTreeMap::from([
                ("customer_id".to_owned(), "/customer/id".to_owned()),
                ("version".to_owned(), "/customer/version".to_owned()),
            ]),
            session: false,
            stripe_event: false,
        };
        let mut v = Vars::new();
        step.check(&response, &mut v).unwrap();
        assert_eq!(v, vars(&[("customer_id", "pc_1"), ("version", "1")]));

        step.expect = 200;
        assert!(step.check(&response, &mut v).unwrap_err().contains("201"));

        let text = parse_apigw_v2_response(br#"{"statusCode":200,"body":"hello"}"#).unwrap();
        assert_eq!(text.body, json!("hello"));
    }

    #[test]
    fn the_shipped_spec_parses_and_names_one_cold_kind_per_function() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("functions.json");
        let spec = Spec::load(&path).unwrap();
        assert!(spec.functions.iter().any(|f| f.name == "customers"));
        for function in &spec.functions {
            let cold = function.kinds.iter().filter(|k| k.cold).count();
            assert_eq!(cold, 1, "{}", function.name);
        }
    }
}
