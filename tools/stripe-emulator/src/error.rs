//! Stripe-shaped errors and the reply type every handler produces.

use serde_json::{Map, Value, json};

/// One answer of the emulator: status, JSON body and extra headers.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Reply {
            status: 200,
            body,
            headers: Vec::new(),
        }
    }

    pub fn with_status(status: u16, body: Value) -> Self {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An error as Stripe answers it: `{"error": {"type", "code"?, "message", "param"?, "doc_url"?}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            code: None,
            message: message.into(),
            param: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// `Received unknown parameter: X` (Stripe's wording, also for parameters it
    /// knows but the emulator does not model).
    pub fn unknown_param(name: &str) -> Self {
        Self::invalid(format!("Received unknown parameter: {name}"))
            .code("parameter_unknown")
            .param(name)
    }

    pub fn missing_param(name: &str) -> Self {
        Self::invalid(format!("Missing required param: {name}."))
            .code("parameter_missing")
            .param(name)
    }

    /// A parameter given as an empty string where it cannot be unset.
    pub fn empty_param(name: &str) -> Self {
        Self::invalid(format!(
            "You passed an empty string for '{name}'. We assume empty values are an attempt to \
             unset a parameter; however '{name}' cannot be unset. You should remove '{name}' from \
             your request or supply a non-empty value."
        ))
        .code("parameter_invalid_empty")
        .param(name)
    }

    /// 404 for an object addressed by the URL: `No such customer: 'cus_x'`.
    pub fn no_such(kind: &str, id: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!("No such {kind}: '{id}'"),
        )
        .code("resource_missing")
        .param("id")
    }

    /// 400 for an object referenced by a parameter (`product`, `starting_after`).
    pub fn no_such_param(kind: &str, id: &str, param: &str) -> Self {
        Self::invalid(format!("No such {kind}: '{id}'"))
            .code("resource_missing")
            .param(param)
    }

    pub fn unrecognized_url(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs \
                 or we can help at https://support.stripe.com/."
            ),
        )
    }

    /// The error answered for an injected fault of the given status.
    pub fn injected(status: u16) -> Self {
        match status {
            429 => Self::new(
                429,
                "invalid_request_error",
                "Request rate limit exceeded. Learn more about rate limits here \
                 https://stripe.com/docs/rate-limits.",
            )
            .code("rate_limit"),
            500..=599 => Self::new(
                status,
                "api_error",
                "Sorry, something went wrong. We've already been notified of the problem. \
                 (Injected by the Stripe emulator.)",
            ),
            _ => Self::new(
                status,
                "invalid_request_error",
                format!("Injected fault (status {status}) from the Stripe emulator."),
            ),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut inner = Map::new();
        if let Some(code) = self.code {
            inner.insert("code".into(), json!(code));
            inner.insert(
                "doc_url".into(),
                json!(format!(
                    "https://stripe.com/docs/error-codes/{}",
                    code.replace('_', "-")
                )),
            );
        }
        inner.insert("message".into(), json!(self.message));
        if let Some(param) = &self.param {
            inner.insert("param".into(), json!(param));
        }
        inner.insert("type".into(), json!(self.kind));
        json!({ "error": Value::Object(inner) })
    }

    pub fn into_reply(self) -> Reply {
        Reply::with_status(self.status, self.to_json())
    }
}

impl From<ApiError> for Reply {
    fn from(err: ApiError) -> Self {
        err.into_reply()
    }
}
