//! The OpenAPI 3.1 document of the whole BillStack API.
//!
//! Written once, here, from the code's own limits: lengths, ranges, ID forms and enum values
//! come from the constants and types the handlers validate with, so a limit changed in the
//! code changes the document. `docs/openapi.json` is this document as `billstack-openapi`
//! prints it; the tests fail when the two differ, when `routing` matches a route the
//! document lacks (or the reverse), and, in the integration tests, when any answer of the
//! API does not match the schema the document gives for its route and status.
//!
//! Schemas of request bodies describe what the code may accept, never less: a value the
//! schema refuses, the API refuses too (a contract fuzzer checks it). A few rules are
//! checked beyond the schema (a recurring price needs an interval, a currency must be one
//! Stripe supports); the descriptions say so, and the API answers 400 naming the parameter.

use billstack::ids::IdKind;
use billstack::input::{
    DEFAULT_LIMIT, MAX_EMAIL_LEN, MAX_LIMIT, MAX_METADATA_KEY_LEN, MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_LEN, MAX_OFFSET, RESERVED_METADATA_KEYS,
};
use billstack::model::{Interval, SyncObject};
use serde_json::{Map, Value, json};

/// Where the document is committed, relative to the workspace root.
pub const DOCUMENT_PATH: &str = "docs/openapi.json";

/// The document, pretty-printed, as committed.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("a JSON value prints");
    text.push('\n');
    text
}

const TEAMS: &str = "/api/billstack/teams";
const PROJECT: &str = "/api/billstack/teams/{teamId}/projects/{projectId}";

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// An API key or a session (project routes).
    KeyOrSession,
    /// A session only (team routes).
    Session,
    /// Neither: Stripe signs the request (webhooks).
    StripeSignature,
}

/// One operation of the document.
struct Op {
    method: &'static str,
    path: String,
    id: String,
    tag: &'static str,
    summary: String,
    description: Option<String>,
    auth: Auth,
    parameters: Vec<Value>,
    /// The request body's schema, and whether a body is required.
    body: Option<(Value, bool)>,
    /// The success status, its description and body schema.
    ok: (u16, &'static str, Value),
    /// The error statuses it can answer.
    errors: Vec<u16>,
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn param_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

/// An ID of `kind`, as `IdKind::matches` accepts it.
fn id_schema(kind: IdKind) -> Value {
    json!({
        "type": "string",
        "pattern": format!("^{}[a-z0-9_-]{{1,64}}$", kind.prefix()),
        "description": format!("A {} ID ({}…)", kind.noun(), kind.prefix()),
    })
}

/// `schema`, or `null`: what an optional field the API reads as left out when `null`.
fn nullable(mut schema: Value) -> Value {
    if let Some(Value::String(t)) = schema.get("type").cloned() {
        schema["type"] = json!([t, "null"]);
        if let Some(Value::Array(values)) = schema.get_mut("enum") {
            values.push(Value::Null);
        }
        schema
    } else {
        json!({"oneOf": [schema, {"type": "null"}]})
    }
}

/// A display text as `input::text` accepts it: not blank, at most `max` characters (leading
/// and trailing white space is trimmed off before it is stored), no control characters.
fn text(max: usize, description: &str) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": max,
        // Something besides white space, and no control character (Unicode's Cc).
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        "description": format!("{description} At most {max} characters, not blank, no control characters; stored trimmed."),
    })
}

/// An object of a project as the API answers it: its ID, `fields`, then what every project
/// object has (metadata, project, times).
fn project_object(kind: IdKind, fields: Value) -> Value {
    let mut properties = Map::new();
    properties.insert("id".into(), id_schema(kind));
    if let Value::Object(fields) = fields {
        properties.extend(fields);
    }
    properties.insert("metadata".into(), schema_ref("Metadata"));
    properties.insert("projectId".into(), id_schema(IdKind::Project));
    properties.insert("createdAt".into(), timestamp("RFC 3339, UTC."));
    properties.insert("updatedAt".into(), timestamp("RFC 3339, UTC."));
    answer(Value::Object(properties))
}

fn timestamp(description: &str) -> Value {
    json!({"type": "string", "format": "date-time", "description": description})
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// An answer object whose every property is always present.
fn answer(properties: Value) -> Value {
    let required: Vec<String> = properties
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn wrapped(name: &str, schema: &str) -> Value {
    answer(json!({ name: schema_ref(schema) }))
}

fn list_of(plural: &str, schema: &str, paged: bool) -> Value {
    let mut properties = Map::new();
    properties.insert(
        plural.to_owned(),
        json!({"type": "array", "items": schema_ref(schema)}),
    );
    if paged {
        properties.insert(
            "hasMore".to_owned(),
            json!({"type": "boolean", "description": "Whether more objects follow this page."}),
        );
    }
    answer(Value::Object(properties))
}

fn path_param(name: &str, schema: Value, description: &str) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": schema,
    })
}

fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

fn paging_params(kind: IdKind) -> Vec<Value> {
    vec![
        param_ref("limit"),
        param_ref("offset"),
        query_param(
            "startingAfter",
            id_schema(kind),
            &format!(
                "A cursor: only {}s created before this one (newest first).",
                kind.noun()
            ),
        ),
    ]
}

fn status_description(status: u16) -> &'static str {
    match status {
        400 => "Invalid or missing parameters; `param` names the offending one.",
        401 => "Missing or invalid API key or session.",
        403 => {
            "Authenticated but not allowed (scope, project, role, or an API key on a session-only route)."
        }
        404 => {
            "Not found (also another team's or project's object: its existence is never revealed)."
        }
        409 => {
            "Conflict: a duplicate, a concurrent change, a team without a Stripe connection (`stripe_not_connected`), or an Idempotency-Key still in progress."
        }
        429 => "Stripe throttled the request; retry after `Retry-After` seconds.",
        500 => "An internal error (never the client's fault).",
        502 => "Stripe failed or answered something unusable.",
        503 => {
            "DynamoDB, KMS or Stripe is briefly unavailable or busy; retry after `Retry-After` seconds."
        }
        _ => "Error.",
    }
}

/// What every project route may answer besides success; `writes` adds the statuses of a
/// change that reaches Stripe.
fn project_errors(writes: bool) -> Vec<u16> {
    if writes {
        vec![400, 401, 403, 404, 409, 429, 500, 502, 503]
    } else {
        vec![400, 401, 403, 404, 500, 503]
    }
}

/// What every team route may answer besides success; `writes` adds 409 (a conflict, a
/// last owner, an Idempotency-Key in progress).
fn team_errors(writes: bool) -> Vec<u16> {
    let mut errors = vec![400, 401, 403, 404, 500, 503];
    if writes {
        errors.push(409);
        errors.sort_unstable();
    }
    errors
}

fn project_params() -> Vec<Value> {
    vec![param_ref("teamId"), param_ref("projectId")]
}

fn idempotency() -> Value {
    param_ref("Idempotency-Key")
}

fn metadata_doc() -> String {
    format!(
        "Key-value pairs, both strings: at most {MAX_METADATA_KEYS} keys ({} of Stripe's 50 are BillStack's own), keys of 1 to {MAX_METADATA_KEY_LEN} characters without `[` or `]` and not {} or starting with `billstack_`, values of 1 to {MAX_METADATA_VALUE_LEN} characters.",
        RESERVED_METADATA_KEYS.len(),
        RESERVED_METADATA_KEYS
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(" or "),
    )
}

fn metadata_schema() -> Value {
    let reserved = RESERVED_METADATA_KEYS
        .iter()
        .map(|k| format!("{k}$"))
        .chain(["billstack_".to_owned()])
        .collect::<Vec<_>>()
        .join("|");
    json!({
        "type": "object",
        "description": metadata_doc(),
        "maxProperties": MAX_METADATA_KEYS,
        "propertyNames": {
            "minLength": 1,
            "maxLength": MAX_METADATA_KEY_LEN,
            "pattern": format!("^(?!{reserved})[^\\[\\]]*$"),
        },
        "additionalProperties": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_METADATA_VALUE_LEN,
        },
    })
}

fn email_schema(description: &str) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_EMAIL_LEN,
        // An at sign, or one of the compatibility forms NFKC folds into one.
        "pattern": "[@\u{ff20}\u{fe6b}]",
        // The same set; the first branch is the plain form most addresses take, there for
        // generators (a contract fuzzer, a mock server) to draw real addresses from.
        "anyOf": [
            {"pattern": "^(?=[^@]{1,64}@)[a-z0-9]+([._+-][a-z0-9]+)*@[a-z0-9]+(-[a-z0-9]+)*(\\.[a-z0-9]+(-[a-z0-9]+)*)*\\.[a-z]{2,24}$"},
            {"pattern": "[@\u{ff20}\u{fe6b}]"},
        ],
        "description": format!("{description} At most {MAX_EMAIL_LEN} characters as given; normalised before it is stored and compared (trimmed, NFKC, lowercased, the domain in its IDNA ASCII form), and then an address of at most {MAX_EMAIL_LEN} bytes with a local part of at most 64 and a dotted domain."),
    })
}

/// A project resource's five routes: what differs between customers, products and prices.
struct Crud {
    /// The path segment and list key (`customers`).
    plural: &'static str,
    /// The wrapper key of one object (`customer`).
    singular: &'static str,
    /// The schema name of one object (`Customer`).
    schema: &'static str,
    kind: IdKind,
    tag: &'static str,
    /// Query parameters of the list beyond paging.
    filters: Vec<Value>,
    list: &'static str,
    create: &'static str,
    update: &'static str,
    delete: &'static str,
}

impl Crud {
    fn ops(self) -> Vec<Op> {
        let base = format!("{PROJECT}/{}", self.plural);
        let id_param = format!("{}Id", self.singular);
        let item = format!("{base}/{{{id_param}}}");
        let with_id = || {
            let mut p = project_params();
            p.push(param_ref(&id_param));
            p
        };
        let mut list_params = project_params();
        list_params.extend(self.filters);
        list_params.extend(paging_params(self.kind));
        let mut create_params = project_params();
        create_params.push(idempotency());
        let title = |verb: &str| format!("{verb} a {}", self.singular);
        let op_id = |verb: &str| format!("{verb}{}", self.schema);
        let one = || wrapped(self.singular, self.schema);
        let op = |method, path: &String, id: String, summary: String, description: &str| Op {
            method,
            path: path.clone(),
            id,
            tag: self.tag,
            summary,
            description: Some(description.to_owned()),
            auth: Auth::KeyOrSession,
            parameters: Vec::new(),
            body: None,
            ok: (200, "", Value::Null),
            errors: project_errors(method != "get"),
        };
        vec![
            Op {
                parameters: list_params,
                ok: (
                    200,
                    "A page, newest first.",
                    list_of(self.plural, self.schema, true),
                ),
                ..op(
                    "get",
                    &base,
                    format!("list{}s", self.schema),
                    format!("List {}", self.plural),
                    self.list,
                )
            },
            Op {
                parameters: create_params,
                body: Some((schema_ref(&format!("{}Create", self.schema)), true)),
                ok: (201, "Created.", one()),
                ..op("post", &base, op_id("create"), title("Create"), self.create)
            },
            Op {
                parameters: with_id(),
                ok: (200, "Found.", one()),
                ..op("get", &item, op_id("get"), title("Get"), "Read access.")
            },
            Op {
                parameters: with_id(),
                body: Some((schema_ref(&format!("{}Update", self.schema)), true)),
                ok: (200, "Updated.", one()),
                ..op(
                    "patch",
                    &item,
                    op_id("update"),
                    title("Update"),
                    self.update,
                )
            },
            Op {
                parameters: with_id(),
                ok: (200, "Deleted.", schema_ref("Success")),
                ..op(
                    "delete",
                    &item,
                    op_id("delete"),
                    title("Delete"),
                    self.delete,
                )
            },
        ]
    }
}

fn project_ops() -> Vec<Op> {
    let customers = Crud {
        plural: "customers",
        singular: "customer",
        schema: "Customer",
        kind: IdKind::Customer,
        tag: "Customers",
        filters: Vec::new(),
        list: "Read access: a session, or an API key with `customers:read` or `customers:write`.",
        create: "Creates the customer in the team's Stripe account (with `project_id` and `billstack_id` metadata) and in BillStack. A Stripe customer of the same email that belongs to no project is linked instead of a new one. The email is unique per project (409 `email_exists`). Write access: a session, or an API key with `customers:write`.",
        update: "Changes the customer in Stripe and in BillStack. Fields left out stay as they are; `metadata` replaces the whole map (`null` clears it); `name: null` removes the name. Write access.",
        delete: "Removes the customer from BillStack only: the Stripe customer is kept, so its subscriptions and invoices are not broken. Write access.",
    };
    let products = Crud {
        plural: "products",
        singular: "product",
        schema: "Product",
        kind: IdKind::Product,
        tag: "Products",
        filters: vec![param_ref("activeOnly")],
        list: "Read access: a session, or an API key with `products:read` or `products:write`.",
        create: "Creates the product in the team's Stripe account and in BillStack. Write access: a session, or an API key with `products:write`.",
        update: "Changes the product in Stripe and in BillStack; fields left out stay as they are, `metadata` replaces the whole map. Write access.",
        delete: "Archives the product and deactivates its prices in Stripe, then removes them from BillStack. Write access.",
    };
    let prices = Crud {
        plural: "prices",
        singular: "price",
        schema: "Price",
        kind: IdKind::Price,
        tag: "Prices",
        filters: vec![
            param_ref("activeOnly"),
            query_param(
                "productId",
                id_schema(IdKind::Product),
                "Only the prices of this product.",
            ),
        ],
        list: "Read access (the products scopes).",
        create: "Creates the price under one of the project's products, in Stripe and in BillStack. Write access (`products:write`).",
        update: "Only `isActive` and `metadata` change: a price's amount, currency, type and interval are fixed, as in Stripe (400 naming the field). Write access.",
        delete: "Deactivates the price in Stripe and removes it from BillStack; subscriptions using it are not affected. Write access.",
    };
    [customers, products, prices]
        .into_iter()
        .flat_map(Crud::ops)
        .collect()
}

/// A session-only team operation: `writes` adds the statuses of a change.
struct TeamOp {
    method: &'static str,
    path: String,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: &'static str,
}

impl TeamOp {
    fn op(
        self,
        parameters: Vec<Value>,
        body: Option<(Value, bool)>,
        ok: (u16, &'static str, Value),
        writes: bool,
    ) -> Op {
        Op {
            method: self.method,
            path: self.path,
            id: self.id.to_owned(),
            tag: self.tag,
            summary: self.summary.to_owned(),
            description: Some(self.description.to_owned()),
            auth: Auth::Session,
            parameters,
            body,
            ok,
            errors: team_errors(writes),
        }
    }
}

fn team_op(
    method: &'static str,
    path: String,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: &'static str,
) -> TeamOp {
    TeamOp {
        method,
        path,
        id,
        tag,
        summary,
        description,
    }
}

fn team_ops() -> Vec<Op> {
    let team = format!("{TEAMS}/{{teamId}}");
    let t = || vec![param_ref("teamId")];
    let with = |extra: Vec<Value>| {
        let mut p = t();
        p.extend(extra);
        p
    };
    let name_body = || Some((schema_ref("NameBody"), true));
    let list_teams = vec![param_ref("limit"), param_ref("offset")];
    vec![
        team_op("get", TEAMS.into(), "listTeams", "Teams", "List your teams", "The caller's teams, each with the caller's `role`. Any signed-in user.").op(list_teams, None, (200, "A page of teams.", list_of("teams", "Team", true)), false),
        team_op("post", TEAMS.into(), "createTeam", "Teams", "Create a team", "The caller becomes its owner. Any signed-in user.").op(vec![idempotency()], name_body(), (201, "The team, created.", wrapped("team", "Team")), true),
        team_op("get", team.clone(), "getTeam", "Teams", "Get a team", "Any member.").op(t(), None, (200, "The team.", wrapped("team", "Team")), false),
        team_op("patch", team.clone(), "renameTeam", "Teams", "Rename a team", "Owners only.").op(t(), name_body(), (200, "The team, renamed.", wrapped("team", "Team")), true),
        team_op("get", format!("{team}/members"), "listMembers", "Members", "List members", "Any member; oldest first.").op(t(), None, (
                200,
                "The team's members.",
                list_of("members", "Member", false),
            ), false),
        team_op("post", format!("{team}/members"), "addMember", "Members", "Add a member", "Owners only; `role` defaults to `member` (409 `member_exists` for a member already).").op(with(vec![idempotency()]), Some((schema_ref("MemberCreate"), true)), (201, "The member, added.", wrapped("member", "Member")), true),
        team_op("patch", format!("{team}/members/{{userId}}"), "changeMemberRole", "Members", "Change a member's role", "Owners only. A team never loses its last owner (409 `last_owner`).").op(with(vec![param_ref("userId")]), Some((schema_ref("RoleBody"), true)), (200, "The member, changed.", wrapped("member", "Member")), true),
        team_op("delete", format!("{team}/members/{{userId}}"), "removeMember", "Members", "Remove a member", "Owners only. A team never loses its last owner (409 `last_owner`).").op(with(vec![param_ref("userId")]), None, (200, "Removed.", schema_ref("Success")), true),
        team_op("get", format!("{team}/projects"), "listProjects", "Projects", "List projects", "Any member.").op(with(vec![param_ref("limit"), param_ref("offset")]), None, (
                200,
                "A page of projects.",
                list_of("projects", "Project", true),
            ), false),
        team_op("post", format!("{team}/projects"), "createProject", "Projects", "Create a project", "Any member.").op(with(vec![idempotency()]), name_body(), (201, "The project, created.", wrapped("project", "Project")), true),
        team_op("get", format!("{team}/projects/{{projectId}}"), "getProject", "Projects", "Get a project", "Any member.").op(with(vec![param_ref("projectId")]), None, (200, "The project.", wrapped("project", "Project")), false),
        team_op("patch", format!("{team}/projects/{{projectId}}"), "renameProject", "Projects", "Rename a project", "Any member.").op(with(vec![param_ref("projectId")]), name_body(), (200, "The project, renamed.", wrapped("project", "Project")), true),
        team_op("get", format!("{team}/api-keys"), "listApiKeys", "API keys", "List API keys", "Newest first, revoked ones included; never the secret or its hash. Any member.").op(with(vec![param_ref("limit"), param_ref("offset")]), None, (200, "A page of keys.", list_of("keys", "ApiKey", true)), false),
        team_op("post", format!("{team}/api-keys"), "createApiKey", "API keys", "Create an API key", "Owners only. The raw key is in this answer only. No Idempotency-Key (400): the secret is never stored, so no answer could be replayed.").op(t(), Some((schema_ref("ApiKeyCreate"), true)), (
                201,
                "The key, with its secret shown once.",
                schema_ref("ApiKeyCreated"),
            ), true),
        team_op("get", format!("{team}/api-keys/{{keyId}}"), "getApiKey", "API keys", "Get an API key", "Any member.").op(with(vec![param_ref("keyId")]), None, (200, "The key.", wrapped("key", "ApiKey")), false),
        team_op("delete", format!("{team}/api-keys/{{keyId}}"), "revokeApiKey", "API keys", "Revoke an API key", "Owners only. The record is kept with `revokedAt`; the key stops working everywhere within the authentication cache's bound.").op(with(vec![param_ref("keyId")]), None, (200, "Revoked.", schema_ref("Success")), true),
    ]
}

fn stripe_ops() -> Vec<Op> {
    let base = format!("{TEAMS}/{{teamId}}/stripe");
    let t = || vec![param_ref("teamId")];
    let mut connect = team_op("post", format!("{base}/connect"), "connectStripe", "Stripe connection", "Connect the team's Stripe account", "Owners only. Checks the key with Stripe (`GET /v1/account`; a key Stripe refuses is 400 `invalid_stripe_key`), encrypts the secrets with KMS, then stores them, replacing any connection before. No secret is ever returned, logged or echoed.").op(t(), Some((schema_ref("StripeConnect"), true)), (200, "Connected.", schema_ref("StripeConnected")), true);
    connect.errors.extend([429, 502]);
    let mut backfill = team_op("post", format!("{base}/backfill"), "backfillStripe", "Stripe connection", "Sync the team's objects from Stripe", "Owners only. Starts (or joins) the team's backfill job: objects Stripe holds with our metadata are adopted or updated, our records whose Stripe object is gone are marked deleted or removed. The body may be left out.").op(t(), Some((schema_ref("BackfillRequest"), false)), (200, "The job, started.", schema_ref("BackfillStarted")), true);
    backfill.errors.extend([429, 502]);
    vec![
        connect,
        team_op("get", format!("{base}/status"), "stripeStatus", "Stripe connection", "The Stripe connection's status", "Any member. `keyValid` is `null` when Stripe could not be asked.").op(t(), None, (200, "The status.", schema_ref("StripeStatus")), false),
        team_op("get", format!("{base}/webhook-url"), "stripeWebhookUrl", "Stripe connection", "The webhook endpoint to add in Stripe", "Any member.").op(t(), None, (
                200,
                "The URL and what to do with it.",
                schema_ref("WebhookUrl"),
            ), false),
        backfill,
        team_op("delete", base, "disconnectStripe", "Stripe connection", "Disconnect Stripe", "Owners only. Deletes the stored keys; project endpoints that need Stripe then answer 409 `stripe_not_connected`.").op(t(), None, (
                200,
                "Disconnected (also when nothing was connected).",
                schema_ref("Success"),
            ), true),
    ]
}

fn webhook_ops() -> Vec<Op> {
    vec![Op {
        method: "post",
        path: "/api/webhooks/stripe/{teamId}".into(),
        id: "receiveStripeEvent".into(),
        tag: "Webhooks",
        summary: "Receive a Stripe event".into(),
        description: Some("Stripe's deliveries for one team. No session or key: `Stripe-Signature` is checked with the team's webhook secret over the raw body (HMAC-SHA256, 5-minute tolerance); a bad or missing signature is 400 and changes nothing. Each event is applied once (a redelivery answers `duplicate`) and an older event never overwrites a newer state (`stale`).".into()),
        auth: Auth::StripeSignature,
        parameters: vec![
            param_ref("teamId"),
            json!({
                "name": "Stripe-Signature",
                "in": "header",
                "required": true,
                "description": "Stripe's signature header: `t=<unix time>,v1=<hex HMAC-SHA256>`.",
                "schema": {"type": "string"},
            }),
        ],
        body: Some((json!({"type": "object", "description": "A Stripe event object."}), true)),
        ok: (200, "Received: applied, or why not.", schema_ref("WebhookReceived")),
        errors: vec![400, 404, 409, 500, 502, 503],
    }]
}

fn all_ops() -> Vec<Op> {
    [project_ops(), team_ops(), stripe_ops(), webhook_ops()]
        .into_iter()
        .flatten()
        .collect()
}

fn operation(op: Op) -> Value {
    let mut responses = Map::new();
    responses.insert(
        op.ok.0.to_string(),
        json!({
            "description": op.ok.1,
            "headers": if op.method == "post" && op.auth != Auth::StripeSignature {
                json!({"Idempotent-Replayed": {"$ref": "#/components/headers/Idempotent-Replayed"}})
            } else {
                json!({})
            },
            "content": {"application/json": {"schema": op.ok.2}},
        }),
    );
    for status in op.errors {
        let name = match status {
            429 | 503 => "RetryableError",
            _ => "Error",
        };
        responses.insert(
            status.to_string(),
            json!({"$ref": format!("#/components/responses/{name}{status}")}),
        );
    }
    let security = match op.auth {
        Auth::KeyOrSession => json!([{"apiKey": []}, {"session": []}]),
        Auth::Session => json!([{"session": []}]),
        Auth::StripeSignature => json!([]),
    };
    let mut out = json!({
        "operationId": op.id,
        "tags": [op.tag],
        "summary": op.summary,
        "security": security,
        "parameters": op.parameters,
        "responses": responses,
    });
    if let Some(description) = op.description {
        out["description"] = json!(description);
    }
    if let Some((schema, required)) = op.body {
        out["requestBody"] = json!({
            "required": required,
            "content": {"application/json": {"schema": schema}},
        });
    }
    out
}

fn error_responses() -> Value {
    let mut responses = Map::new();
    for status in [400, 401, 403, 404, 409, 500, 502] {
        responses.insert(
            format!("Error{status}"),
            json!({
                "description": status_description(status),
                "content": {"application/json": {"schema": schema_ref("Error")}},
            }),
        );
    }
    for status in [429, 503] {
        responses.insert(
            format!("RetryableError{status}"),
            json!({
                "description": status_description(status),
                "headers": {"Retry-After": {"$ref": "#/components/headers/Retry-After"}},
                "content": {"application/json": {"schema": schema_ref("Error")}},
            }),
        );
    }
    Value::Object(responses)
}

fn parameters() -> Value {
    let id = |name: &str, kind: IdKind, what: &str| path_param(name, id_schema(kind), what);
    json!({
        "teamId": path_param("teamId", json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^/]+$"}), "The team (`team_…`)."),
        "projectId": id("projectId", IdKind::Project, "The project."),
        "customerId": id("customerId", IdKind::Customer, "The customer."),
        "productId": id("productId", IdKind::Product, "The product."),
        "priceId": id("priceId", IdKind::Price, "The price."),
        "keyId": id("keyId", IdKind::ApiKey, "The API key record."),
        "userId": path_param("userId", json!({"type": "string", "minLength": 1, "maxLength": billstack::session::MAX_USER_ID_LEN}), "The member's user ID (the `sub` of their session), percent-encoded."),
        "limit": query_param("limit", json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}), "At most this many objects."),
        "offset": query_param("offset", json!({"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}), "Skip this many objects (use `startingAfter` beyond that)."),
        "activeOnly": query_param("activeOnly", json!({"type": "boolean", "default": true}), "Only active objects."),
        "Idempotency-Key": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Makes a create safe to retry: the first request with a key runs, a retry of the same request (same route and body) within 24 hours replays its answer (with `Idempotent-Replayed: true`), the same key with another request is 400 `idempotency_error`, and one still running is 409 `idempotency_in_progress`. A retry of a request that failed, or never finished, makes the same object its first attempt began (in Stripe too), never a second one.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
        },
    })
}

fn schemas() -> Value {
    let interval_names: Vec<&str> = Interval::ALL.iter().map(|i| i.as_str()).collect();
    let interval_bounds = Interval::ALL
        .iter()
        .map(|i| format!("{} {}", i.max_count(), i.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let max_interval_count = Interval::ALL
        .iter()
        .map(|i| i.max_count())
        .max()
        .unwrap_or(1);
    let scopes: Vec<&str> = billstack::model::Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let sync_objects: Vec<&str> = SyncObject::ALL.iter().map(|o| o.as_str()).collect();
    let sync_status = json!({"type": "string", "enum": ["pending", "syncing", "ready", "failed"]});
    let count = json!({"type": "integer", "minimum": 0});
    let counts = answer(json!({
        "scanned": count, "created": count, "updated": count,
        "unchanged": count, "ignored": count, "deleted": count,
    }));
    let mut counts_by_object = Map::new();
    for object in &sync_objects {
        counts_by_object.insert((*object).to_owned(), schema_ref("SyncCounts"));
    }
    let job_properties = json!({
        "jobId": id_schema(IdKind::Job),
        "objects": {"type": "array", "items": {"type": "string", "enum": sync_objects}},
        "state": {"type": "string", "enum": ["running", "done", "failed"]},
        "steps": count,
        "counts": {"type": "object", "properties": counts_by_object, "additionalProperties": false},
        "startedAt": timestamp("When the job started."),
        "updatedAt": timestamp("When the job last made progress."),
    });
    let mut started = job_properties.as_object().cloned().unwrap_or_default();
    started.insert("success".into(), json!({"const": true}));
    started.insert("syncStatus".into(), json!({"const": "syncing"}));
    let currency_doc = "Three-letter ISO currency code, one Stripe supports (usd, eur, ...); case-insensitive, stored lowercase.";
    let stripe_key = |prefixes: &str, what: &str| {
        json!({
            "type": "string",
            "maxLength": connection::MAX_KEY_LEN,
            "pattern": format!("^({prefixes})_(test|live)_[A-Za-z0-9_]+$"),
            "description": what,
        })
    };
    json!({
        "Error": {
            "type": "object",
            "description": "Every error: `error` is a plain, human-readable string; `code` a stable machine-readable code; `param` the offending parameter, when there is one.",
            "properties": {
                "error": {"type": "string"},
                "code": {
                    "type": "string",
                    "enum": billstack::error::ErrorCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                },
                "param": {"type": "string"},
            },
            "required": ["error", "code"],
            "additionalProperties": false,
        },
        "Success": answer(json!({"success": {"const": true}})),
        "Metadata": metadata_schema(),
        "Customer": project_object(IdKind::Customer, json!({
            "email": {"type": "string", "description": "Normalised (see CustomerCreate)."},
            "name": {"type": ["string", "null"]},
            "stripeCustomerId": {"type": "string", "pattern": "^cus_", "description": "The customer in the team's Stripe account."},
        })),
        "CustomerCreate": object(json!({
            "email": email_schema("Unique per project."),
            "name": nullable(text(customers::MAX_NAME_LEN, "Display name.")),
            "metadata": nullable(schema_ref("Metadata")),
        }), &["email"]),
        "CustomerUpdate": object(json!({
            "email": email_schema("A new email, unique per project (409 `email_exists`)."),
            "name": nullable(text(customers::MAX_NAME_LEN, "A new display name; `null` removes it.")),
            "metadata": nullable(schema_ref("Metadata")),
        }), &[]),
        "Product": project_object(IdKind::Product, json!({
            "name": {"type": "string"},
            "description": {"type": ["string", "null"]},
            "isActive": {"type": "boolean"},
            "stripeProductId": {"type": "string", "pattern": "^prod_"},
        })),
        "ProductCreate": object(json!({
            "name": text(products::MAX_NAME_LEN, "Product name."),
            "description": nullable(text(products::MAX_DESCRIPTION_LEN, "Product description.")),
            "metadata": nullable(schema_ref("Metadata")),
        }), &["name"]),
        "ProductUpdate": object(json!({
            "name": text(products::MAX_NAME_LEN, "A new name."),
            "description": nullable(text(products::MAX_DESCRIPTION_LEN, "A new description; `null` removes it.")),
            "isActive": {"type": "boolean", "description": "Activate or archive (in Stripe too)."},
            "metadata": nullable(schema_ref("Metadata")),
        }), &[]),
        "Price": project_object(IdKind::Price, json!({
            "productId": id_schema(IdKind::Product),
            "unitAmount": {"type": "integer", "minimum": 0, "maximum": prices::MAX_UNIT_AMOUNT, "description": "In the currency's minor unit (2999 = $29.99)."},
            "currency": {"type": "string", "pattern": "^[a-z]{3}$"},
            "type": {"type": "string", "enum": ["recurring", "one_time"]},
            "interval": {"type": ["string", "null"], "enum": interval_names.iter().map(|s| json!(s)).chain([Value::Null]).collect::<Vec<_>>()},
            "intervalCount": {"type": ["integer", "null"], "minimum": 1},
            "isActive": {"type": "boolean"},
            "stripePriceId": {"type": "string", "pattern": "^price_"},
        })),
        "PriceCreate": object(json!({
            "productId": id_schema(IdKind::Product),
            "unitAmount": {"type": "integer", "minimum": 0, "maximum": prices::MAX_UNIT_AMOUNT, "description": "In the currency's minor unit (2999 = $29.99)."},
            "currency": {
                "type": "string",
                "pattern": "^\\s*[A-Za-z]{3}\\s*$",
                // The same set; the first branch names common codes, for generators.
                "anyOf": [{"enum": ["usd", "eur", "gbp", "jpy", "cad", "aud", "chf", "sek"]}, {"pattern": "^\\s*[A-Za-z]{3}\\s*$"}],
                "description": currency_doc,
            },
            "type": nullable(json!({"type": "string", "enum": ["recurring", "one_time"], "default": "recurring"})),
            "interval": nullable(json!({"type": "string", "enum": interval_names, "description": "Required for a recurring price; not allowed on a one-time price."})),
            "intervalCount": nullable(json!({"type": "integer", "minimum": 1, "maximum": max_interval_count, "default": 1, "description": format!("Recurring prices only; at most three years between billings: {interval_bounds}.")})),
            "metadata": nullable(schema_ref("Metadata")),
        }), &["productId", "unitAmount", "currency"]),
        "PriceUpdate": object(json!({
            "isActive": {"type": "boolean"},
            "metadata": nullable(schema_ref("Metadata")),
        }), &[]),
        "Team": answer(json!({
            "id": id_schema(IdKind::Team),
            "name": {"type": "string"},
            "role": {"type": ["string", "null"], "enum": ["owner", "member", null], "description": "The caller's role in the team."},
            "createdAt": timestamp("RFC 3339, UTC."),
            "updatedAt": timestamp("RFC 3339, UTC."),
        })),
        "NameBody": object(json!({"name": text(billstack::admin::MAX_NAME_LEN, "The name.")}), &["name"]),
        "Member": answer(json!({
            "userId": {"type": "string"},
            "email": {"type": ["string", "null"]},
            "name": {"type": ["string", "null"]},
            "role": {"type": "string", "enum": ["owner", "member"]},
            "createdAt": timestamp("RFC 3339, UTC."),
        })),
        "MemberCreate": object(json!({
            "userId": {"type": "string", "minLength": 1, "maxLength": billstack::session::MAX_USER_ID_LEN, "description": "The user's subject (`sub`) at the identity provider: 1 to 255 bytes, no control characters."},
            "role": nullable(json!({"type": "string", "enum": ["owner", "member"], "default": "member"})),
            "email": nullable(email_schema("Shown in member lists until the user's own session says otherwise.")),
        }), &["userId"]),
        "RoleBody": object(json!({"role": {"type": "string", "enum": ["owner", "member"]}}), &["role"]),
        "Project": answer(json!({
            "id": id_schema(IdKind::Project),
            "teamId": id_schema(IdKind::Team),
            "name": {"type": "string"},
            "createdAt": timestamp("RFC 3339, UTC."),
            "updatedAt": timestamp("RFC 3339, UTC."),
        })),
        "ApiKey": answer(json!({
            "id": id_schema(IdKind::ApiKey),
            "name": {"type": "string"},
            "prefix": {"type": "string", "pattern": "^bs_[0-9a-f]{4}$", "description": "The first characters of the key, for display."},
            "projectId": nullable(id_schema(IdKind::Project)),
            "scopes": {"type": "array", "items": {"type": "string", "enum": scopes}},
            "expiresAt": {"type": ["string", "null"], "format": "date-time"},
            "createdAt": timestamp("RFC 3339, UTC."),
            "lastUsedAt": {"type": ["string", "null"], "format": "date-time", "description": "Kept to within a minute."},
            "revokedAt": {"type": ["string", "null"], "format": "date-time"},
        })),
        "ApiKeyCreate": object(json!({
            "name": text(billstack::admin::MAX_NAME_LEN, "What the key is for."),
            "projectId": {"type": ["string", "null"], "description": "Limit the key to this project of the team (400 otherwise); no project covers every project of the team."},
            "scopes": {
                "type": ["array", "null"],
                "items": {"type": "string", "pattern": format!("^\\s*({})\\s*$", scopes.join("|")), "description": format!("One of {}.", scopes.join(", "))},
                "description": "No scopes (or none given) means full access; a `:write` scope implies its `:read`.",
            },
            "expiresAt": {"type": ["string", "null"], "format": "date-time", "description": "RFC 3339, in the future."},
        }), &["name"]),
        "ApiKeyCreated": answer(json!({
            "key": schema_ref("ApiKey"),
            "rawKey": {"type": "string", "pattern": "^bs_[0-9a-f]{48}$", "description": "The key itself, shown this once: only its SHA-256 hash is kept."},
        })),
        "StripeConnect": object(json!({
            "secretKey": stripe_key("sk|rk", "A secret (`sk_test_…`, `sk_live_…`) or restricted (`rk_…`) key."),
            "publishableKey": nullable(stripe_key("pk", "The publishable key, of the same mode.")),
            "webhookSecret": {"type": ["string", "null"], "pattern": format!("^whsec_[A-Za-z0-9+/=_-]{{1,{}}}$", connection::MAX_KEY_LEN), "description": "The webhook endpoint's signing secret (it may be set later by connecting again)."},
        }), &["secretKey"]),
        "StripeConnected": answer(json!({
            "success": {"const": true},
            "webhookUrl": {"type": "string", "format": "uri"},
            "syncStatus": sync_status,
        })),
        "StripeStatus": {
            "type": "object",
            "properties": {
                "connected": {"type": "boolean"},
                "isActive": {"type": "boolean", "description": "Connected and the key still valid."},
                "syncStatus": nullable(sync_status.clone()),
                "accountId": {"type": ["string", "null"], "description": "`acct_…`; `null` for a restricted key that may not read the account."},
                "accountName": {"type": ["string", "null"]},
                "livemode": {"type": ["boolean", "null"]},
                "keyValid": {"type": ["boolean", "null"], "description": "`null` when Stripe could not be asked."},
                "webhookSecretSet": {"type": "boolean"},
                "backfill": nullable(schema_ref("BackfillJob")),
            },
            "required": ["connected", "isActive", "syncStatus", "accountId", "accountName", "livemode", "keyValid", "webhookSecretSet"],
            "additionalProperties": false,
        },
        "WebhookUrl": answer(json!({
            "webhookUrl": {"type": "string", "format": "uri"},
            "instructions": {"type": "string"},
        })),
        "BackfillRequest": object(json!({
            "objects": {"type": ["array", "null"], "minItems": 1, "items": {"type": "string", "enum": sync_objects}, "description": "What to sync; all of them when left out."},
            "createdAfter": {
                "oneOf": [
                    {"type": "integer", "minimum": 0, "description": "Unix time, seconds."},
                    {"type": "string", "format": "date-time"},
                    {"type": "null"},
                ],
                "description": "Only objects Stripe created after this time.",
            },
        }), &[]),
        "SyncCounts": counts,
        "BackfillJob": answer(job_properties),
        "BackfillStarted": answer(Value::Object(started)),
        "WebhookReceived": {
            "type": "object",
            "properties": {
                "received": {"const": true},
                "duplicate": {"type": "boolean", "description": "`true`: the event was received before, and nothing was applied again."},
                "outcome": {"type": "string", "enum": ["applied", "unchanged", "adopted", "deleted", "stale", "email_conflict", "ignored"]},
                "reason": {"type": "string", "description": "Why an event was ignored."},
            },
            "required": ["received"],
            "additionalProperties": false,
        },
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in all_ops() {
        let path = op.path.clone();
        let method = op.method;
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "BillStack API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A multi-tenant billing layer over Stripe: each team connects its own Stripe account; each project has its own customers, products and prices, kept in the team's Stripe account and in BillStack. Bodies are JSON, field names camelCase, timestamps RFC 3339 UTC, amounts integers in the currency's minor unit. Every error is `{\"error\": \"...\", \"code\": \"...\", \"param\"?: \"...\"}`. Lists are newest first, at most `limit` (default 50, at most 100) objects, with `hasMore`.",
        },
        "servers": [{"url": "http://127.0.0.1:3000", "description": "scripts/local"}],
        "tags": [
            {"name": "Customers"}, {"name": "Products"}, {"name": "Prices"},
            {"name": "Teams"}, {"name": "Members"}, {"name": "Projects"},
            {"name": "API keys"}, {"name": "Stripe connection"}, {"name": "Webhooks"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "bs_<48 hex>", "description": "An API key: `Authorization: Bearer bs_…`. Project routes only."},
                "session": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "A dashboard session: an OIDC token of the deployment's issuer."},
            },
            "headers": {
                "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}},
                "Idempotent-Replayed": {"description": "`true` on an answer replayed for a retried Idempotency-Key.", "schema": {"type": "string", "enum": ["true"]}},
            },
            "parameters": parameters(),
            "responses": error_responses(),
            "schemas": schemas(),
        },
    })
}

/// Every (method, path template) pair of the document, methods uppercase.
pub fn operations(document: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            if let Some(item) = item.as_object() {
                for method in item.keys() {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use billstack::routing::{self, Resource, STRIPE_OPERATIONS, TeamResource, WEBHOOK_BASE};
    use http::Method;

    use super::*;

    /// The path parameter that names an object below each collection segment.
    fn object_param(segment: &str) -> &'static str {
        match segment {
            "customers" => "customerId",
            "products" => "productId",
            "prices" => "priceId",
            "members" => "userId",
            "projects" => "projectId",
            "api-keys" => "keyId",
            other => panic!(
                "new collection {other:?}: name its path parameter here and document its routes"
            ),
        }
    }

    /// A value each path parameter can take that routing matches.
    fn sample(template: &str) -> String {
        [
            ("{teamId}", "team_sample"),
            ("{projectId}", "proj_sample"),
            ("{customerId}", "pc_sample"),
            ("{productId}", "pp_sample"),
            ("{priceId}", "pri_sample"),
            ("{keyId}", "key_sample"),
            ("{userId}", "user_sample"),
        ]
        .iter()
        .fold(template.to_owned(), |path, (param, value)| {
            path.replace(param, value)
        })
    }

    /// Every path shape routing is built from, with our parameter names.
    fn candidate_paths() -> Vec<String> {
        let team = format!("{TEAMS}/{{teamId}}");
        let mut paths = vec![TEAMS.to_owned(), team.clone()];
        for resource in TeamResource::NESTED {
            let segment = resource.segment();
            paths.push(format!("{team}/{segment}"));
            paths.push(format!("{team}/{segment}/{{{}}}", object_param(segment)));
        }
        let stripe = TeamResource::Stripe.segment();
        paths.push(format!("{team}/{stripe}"));
        for (operation, _, _) in STRIPE_OPERATIONS {
            paths.push(format!("{team}/{stripe}/{operation}"));
        }
        for resource in Resource::ALL {
            let segment = resource.segment();
            paths.push(format!("{PROJECT}/{segment}"));
            paths.push(format!("{PROJECT}/{segment}/{{{}}}", object_param(segment)));
        }
        paths.push(format!("{WEBHOOK_BASE}{{teamId}}"));
        paths
    }

    /// The (method, path) pairs routing answers with a route (not 404 or 405).
    fn routed() -> BTreeSet<(String, String)> {
        let methods = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ];
        let mut routed = BTreeSet::new();
        for path in candidate_paths() {
            let concrete = sample(&path);
            for method in &methods {
                if routing::route(method, &concrete).is_ok() {
                    routed.insert((method.as_str().to_owned(), path.clone()));
                }
            }
        }
        routed
    }

    #[test]
    fn the_document_has_every_route_routing_knows_and_no_other() {
        let documented: BTreeSet<(String, String)> = operations(&document()).into_iter().collect();
        let routed = routed();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from the document: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented routes routing does not know: {unrouted:?}"
        );
        // 15 project routes, 21 team routes, the webhook.
        assert_eq!(routed.len(), 37);
    }

    #[test]
    fn the_committed_document_is_the_one_the_code_describes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(DOCUMENT_PATH);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == document_json(),
            "{DOCUMENT_PATH} differs from the code's document: run `cargo run -p billstack-openapi` and commit it"
        );
    }

    #[test]
    fn every_reference_resolves_and_every_operation_id_is_unique() {
        let doc = document();
        let text = doc.to_string();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("\"$ref\":\"#/") {
            let tail = &rest[at + 9..];
            let end = tail.find('"').expect("a closed string");
            let pointer = &tail[..end];
            assert!(
                doc.pointer(pointer).is_some(),
                "unresolved reference #/{pointer}"
            );
            rest = &tail[end..];
        }
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            }
        }
    }
}
