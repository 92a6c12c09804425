//! Every answer the integration tests get is checked against `docs/openapi.json`: its
//! route's operation must list the status, and the body must match that status's schema.
//! A request body the API accepted (2xx) must match the operation's request schema too.
//! So the document cannot drift from the code without some test failing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::Validator;
use serde_json::Value;

fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_json::from_str(billstack_local::OPENAPI_JSON).expect("docs/openapi.json parses")
    })
}

/// A JSON Pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The document's path template that `path` is an instance of.
fn template_of(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .find_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(t, s)| {
                    (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s
                });
            matches.then_some(template.as_str())
        })
}

/// A validator for the schema at `pointer` in the document (refs resolve in the document).
fn validator(pointer: &str) -> Arc<Validator> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(pointer) {
        return v.clone();
    }
    let mut root = document().clone();
    // A URI fragment: the braces of path templates are percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    root["$ref"] = Value::String(format!("#{fragment}"));
    let built = Arc::new(
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}")),
    );
    cache
        .lock()
        .unwrap()
        .insert(pointer.to_owned(), built.clone());
    built
}

fn check(pointer: &str, instance: &Value, what: &str) {
    let validator = validator(pointer);
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match docs/openapi.json ({pointer}): {errors:?}\nbody: {instance}"
    );
}

/// Checks one exchange against the document. Paths the document does not name (a test of
/// an unknown route) must still answer the error schema.
pub fn check_exchange(
    method: &str,
    path: &str,
    request_body: Option<&[u8]>,
    status: u16,
    body: &Value,
) {
    let doc = document();
    let method = method.to_ascii_lowercase();
    let operation = template_of(path).and_then(|t| {
        let op = &doc["paths"][t][&method];
        op.is_object()
            .then(|| format!("/paths/{}/{method}", escape(t)))
    });
    let Some(operation) = operation else {
        assert!(
            status >= 400,
            "{method} {path} answered {status} but docs/openapi.json has no such operation"
        );
        check(
            "/components/schemas/Error",
            body,
            &format!("{method} {path} → {status}"),
        );
        return;
    };
    let responses = format!("{operation}/responses/{status}");
    let response = doc.pointer(&responses).unwrap_or_else(|| {
        panic!("{method} {path} answered {status}, which docs/openapi.json does not list for it ({operation})")
    });
    let response_pointer = match response.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference.trim_start_matches('#').to_owned(),
        None => responses,
    };
    check(
        &format!("{response_pointer}/content/application~1json/schema"),
        body,
        &format!("{method} {path} → {status}"),
    );
    if (200..300).contains(&status)
        && let Some(raw) = request_body.filter(|b| !b.iter().all(u8::is_ascii_whitespace))
        && let Ok(sent) = serde_json::from_slice::<Value>(raw)
        && doc.pointer(&format!("{operation}/requestBody")).is_some()
    {
        check(
            &format!("{operation}/requestBody/content/application~1json/schema"),
            &sent,
            &format!("the request body {method} {path} accepted"),
        );
    }
}
