//! The one API error type and its one mapping to an HTTP response.
//!
//! Every failure a handler can meet becomes an [`ApiError`]; SDK and Stripe errors are
//! converted here (and only here), so the status a client sees never depends on which
//! handler met the failure.

use std::fmt;

use http::StatusCode;
use serde::Serialize;

/// A failure answered to the client as `{"error": "...", "code": "...", "param": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `invalid_parameter`.
    pub code: &'static str,
    /// Human readable; always safe to show (no secrets, no internals).
    pub message: String,
    /// The offending parameter, when there is one.
    pub param: Option<String>,
    /// Seconds a client should wait before retrying (429/503).
    pub retry_after: Option<u32>,
    /// The methods a path does allow, for the `Allow` header of a 405.
    pub allow: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            allow: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// 400 for a bad parameter; the message names it.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message).with_param(param)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 405, with the methods `path` does allow (the `Allow` header).
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[&str]) -> Self {
        let mut err = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("Method {method} is not allowed on {path}"),
        );
        err.allow = Some(allowed.join(", "));
        err
    }

    /// 503: a dependency throttled or is briefly unavailable; the client should retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            message,
        );
        err.retry_after = Some(1);
        err
    }

    pub fn rate_limited(message: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        err.retry_after = Some(1);
        err
    }

    /// 502: Stripe failed or answered something we cannot use.
    pub fn stripe_failed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "stripe_error", message)
    }

    /// 500: our own fault. The message shown to clients stays generic; details go to the log.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
        )
    }

    pub fn body_json(&self) -> String {
        serde_json::to_string(&ErrorBody {
            error: &self.message,
            code: self.code,
            param: self.param.as_deref(),
        })
        .unwrap_or_else(|_| r#"{"error":"Internal server error"}"#.to_owned())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_a_plain_string_with_code_and_param() {
        let err = ApiError::invalid("limit", "limit must be an integer from 1 to 100");
        let body: serde_json::Value = serde_json::from_str(&err.body_json()).unwrap();
        assert_eq!(body["error"], "limit must be an integer from 1 to 100");
        assert_eq!(body["code"], "invalid_parameter");
        assert_eq!(body["param"], "limit");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn internal_errors_hide_details() {
        let err = ApiError::internal("dynamodb exploded at arn:aws:...");
        assert_eq!(err.message, "Internal server error");
        assert!(!err.body_json().contains("arn:aws"));
    }
}
